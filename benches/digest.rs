//! Digest rendering speed: 10,000 subscribers, each a full multipart message (content
//! selection, HTML, plain text, headers, encoding to bytes), on one core.
//!
//! Printed first: digests per second over all 10,000 subscribers for three variants in the
//! same process, and their ratios: the HTML part alone, the full message with the plain text
//! written directly (the default), and the full message with the plain text from html2text
//! over the whole HTML part. The window's items are prepared once, as a run does.
//! Then end to end for 1,000 subscribers: items from the sled store, the synced file ledger,
//! and delivery to a loopback SMTP server (when python3 and aiosmtpd are present), beside the
//! same run into `.eml` files and with an in-memory ledger.
//! Then criterion timings of one digest for each variant.

use chrono::{DateTime, Duration, Utc, Weekday};
use criterion::{criterion_group, Criterion};
use newsrelay::config::{DigestSettings, Frequency, SubscriberSettings};
use newsrelay::digest::{
    build_content, render_html, render_open_digest, Delivery, DigestContext, DigestFrame,
    DigestKey, DisplayNames, NextDigest, PreparedWindow, SubscriberLedger, TextStyle,
};
use newsrelay::item::{ContentHash, FeedId, IdBasis, Item, ItemId, Label, Labels};
use newsrelay::schedule::DigestSchedule;
use std::hint::black_box;
use std::time::Instant;

const SUBSCRIBERS: usize = 10_000;
const ITEMS_PER_DAY: usize = 120;

const PROGRAMMES: [&str; 6] = [
    "irregular-migration-return",
    "trafficking-in-human-beings",
    "border-management-visa",
    "asylum",
    "migration-development",
    "legal-migration-integration",
];
const INITIATIVES: [&str; 4] = ["mieux", "prague-process", "rabat-process", "mtm"];
const REGIONS: [&str; 4] = ["western-balkans", "silk-routes", "north-africa", "eu"];

fn now() -> DateTime<Utc> {
    "2026-03-10T07:30:00Z".parse().expect("fixed instant")
}

fn label(id: &str, score: f32) -> Label {
    Label {
        id: id.to_string(),
        score,
        why: Vec::new(),
    }
}

/// One day of items with realistic lengths and a spread of labels.
fn items() -> Vec<Item> {
    let start: DateTime<Utc> = "2026-03-09T07:05:00Z".parse().expect("fixed instant");
    (0..ITEMS_PER_DAY)
        .map(|i| {
            let seen = start + Duration::minutes(11 * i as i64);
            let mut programmes = vec![label(PROGRAMMES[i % 6], 0.9)];
            if i % 4 == 0 {
                programmes.push(label(PROGRAMMES[(i / 4) % 6], 0.6));
            }
            Item {
                id: ItemId(format!("{i:016x}")),
                id_basis: IdBasis::Guid,
                feed: FeedId("icmpd-news".into()),
                sources: Vec::new(),
                link: Some(format!(
                    "https://www.icmpd.org/news/2026/ministers-agree-on-next-steps-in-regional-cooperation-{i}"
                )),
                title: format!(
                    "Ministers agree on next steps for regional cooperation on migration & asylum ({i})"
                ),
                summary_text: "Senior officials from 20 countries met in Vienna to review progress \
                    on the joint action plan, exchange practices on reception and integration, \
                    and agree on priorities for capacity building in the coming year, with a \
                    focus on <data> sharing and \"whole-of-route\" approaches."
                    .to_string(),
                content_html: String::new(),
                published: Some(seen - Duration::hours(2)),
                updated: None,
                first_seen: seen,
                authors: Vec::new(),
                categories: Vec::new(),
                enclosures: Vec::new(),
                content_hash: ContentHash(i as u64),
                fingerprint: 0,
                revision: 0,
                labels: Labels {
                    programmes,
                    initiatives: if i % 3 == 0 {
                        vec![label(INITIATIVES[i % 4], 0.8)]
                    } else {
                        Vec::new()
                    },
                    regions: vec![label(REGIONS[i % 4], 0.7)],
                    taxonomy_version: 1,
                },
            }
        })
        .collect()
}

/// Subscribers with one or two programmes, some with an initiative, a few with everything.
fn subscribers() -> Vec<SubscriberSettings> {
    (0..SUBSCRIBERS)
        .map(|i| {
            let (programmes, initiatives) = match i % 10 {
                0 => (Vec::new(), Vec::new()),
                1 => (Vec::new(), vec![INITIATIVES[i % 4].to_string()]),
                n if n % 2 == 0 => (
                    vec![
                        PROGRAMMES[i % 6].to_string(),
                        PROGRAMMES[(i / 6) % 6].to_string(),
                    ],
                    Vec::new(),
                ),
                _ => (vec![PROGRAMMES[i % 6].to_string()], Vec::new()),
            };
            SubscriberSettings {
                email: format!("subscriber{i}@example.org"),
                name: Some(format!("Subscriber {i}")),
                programmes,
                initiatives,
                regions: Vec::new(),
                frequency: Frequency::Daily,
                at: (8, 0),
                weekday: Weekday::Mon,
                timezone: chrono_tz::Europe::Vienna,
            }
        })
        .collect()
}

struct Fixture {
    items: Vec<Item>,
    /// The window's items prepared once, as a run does for all subscribers sharing it.
    window: PreparedWindow,
    subs: Vec<SubscriberSettings>,
    deliveries: Vec<Delivery>,
    key: DigestKey,
    names: DisplayNames,
    settings: DigestSettings,
    from: lettre::message::Mailbox,
}

fn fixture() -> Fixture {
    let key = DigestKey::new(b"bench secret, thirty-two bytes..");
    let subs = subscribers();
    let deliveries = subs
        .iter()
        .filter_map(|s| {
            let mut l = SubscriberLedger::default();
            match l.next(&DigestSchedule::from_subscriber(s), now(), false, |p| {
                format!("<digest.{p}@example.org>")
            }) {
                NextDigest::Send { .. } => l.open_digest().cloned(),
                NextDigest::Nothing => None,
            }
        })
        .collect();
    let items = items();
    let names = DisplayNames::default();
    Fixture {
        window: PreparedWindow::new(&items, &names),
        items,
        subs,
        deliveries,
        key,
        names,
        from: "ICMPD news <news@example.org>"
            .parse()
            .expect("fixed sender parses"),
        settings: DigestSettings {
            send_empty: false,
            max_items: 200,
            check_every: std::time::Duration::from_secs(60),
            plain_text: Default::default(),
        },
    }
}

impl Fixture {
    fn ctx(&self, style: TextStyle) -> DigestContext<'_> {
        DigestContext {
            settings: &self.settings,
            base_url: "https://news.example.org",
            from: self.from.clone(),
            key: &self.key,
            names: &self.names,
            text_style: style,
        }
    }

    /// Content selection and the HTML part only.
    fn html_only(&self, i: usize) -> usize {
        let (sub, d) = (&self.subs[i], &self.deliveries[i]);
        let period = DigestSchedule::from_subscriber(sub)
            .latest_due(d.due)
            .expect("bench subscriber has a period");
        let content = build_content(sub, &self.window, &self.names, self.settings.max_items);
        let url = self
            .key
            .unsubscribe_url("https://news.example.org", &sub.email);
        let frame = DigestFrame {
            title: "ICMPD news",
            period: &period,
            unsubscribe_url: &url,
            base_url: "https://news.example.org",
        };
        render_html(&frame, &content).len()
    }

    /// The whole message, encoded to the bytes sent over SMTP.
    fn full(&self, ctx: &DigestContext<'_>, i: usize) -> (usize, usize) {
        match render_open_digest(ctx, &self.subs[i], &self.deliveries[i], &self.window, now()) {
            Ok((message, content)) => (message.formatted().len(), content.item_count()),
            Err(e) => panic!("render failed: {e}"),
        }
    }
}

/// Renders all subscribers once and returns (digests/s, bytes, items).
fn throughput(mut one: impl FnMut(usize) -> (usize, usize), n: usize) -> (f64, usize, usize) {
    let start = Instant::now();
    let (mut bytes, mut items) = (0, 0);
    for i in 0..n {
        let (b, k) = one(i);
        bytes += b;
        items += k;
    }
    let secs = start.elapsed().as_secs_f64();
    (n as f64 / secs, bytes, items)
}

fn report() {
    let f = fixture();
    let n = f.deliveries.len().min(f.subs.len());
    assert_eq!(n, SUBSCRIBERS, "every subscriber has a due digest");
    let direct = f.ctx(TextStyle::Direct);
    let h2t = f.ctx(TextStyle::Html2Text);
    // Warm up caches and allocators.
    let _ = throughput(|i| (f.html_only(i), 0), 200);
    let (html_rate, html_bytes, _) = throughput(|i| (f.html_only(i), 0), n);
    let (direct_rate, direct_bytes, items) = throughput(|i| f.full(&direct, i), n);
    let (h2t_rate, h2t_bytes, _) = throughput(|i| f.full(&h2t, i), n);
    let prep_start = Instant::now();
    let prepared = PreparedWindow::new(&f.items, &f.names);
    let prep = prep_start.elapsed();
    println!(
        "digest render, {n} subscribers, {} items in the window, {:.1} items per digest (one core):",
        f.items.len(),
        items as f64 / n as f64
    );
    println!(
        "  preparing the shared window once: {:.2} ms for {} items",
        prep.as_secs_f64() * 1000.0,
        prepared.len()
    );
    println!(
        "  HTML part alone:                   {html_rate:>8.0} digests/s ({:.1} KB avg)",
        html_bytes as f64 / n as f64 / 1000.0
    );
    println!(
        "  full message, direct text (default): {direct_rate:>8.0} digests/s ({:.1} KB avg encoded)",
        direct_bytes as f64 / n as f64 / 1000.0
    );
    println!(
        "  full message, html2text:           {h2t_rate:>8.0} digests/s ({:.1} KB avg encoded)",
        h2t_bytes as f64 / n as f64 / 1000.0
    );
    println!(
        "  ratios: html-only / direct-full = {:.2}x, direct-full / html2text-full = {:.2}x; target >= 500 digests/s (default): {}",
        html_rate / direct_rate,
        direct_rate / h2t_rate,
        if direct_rate >= 500.0 { "met" } else { "NOT met" }
    );
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let direct = f.ctx(TextStyle::Direct);
    let h2t = f.ctx(TextStyle::Html2Text);
    let mut g = c.benchmark_group("digest_one");
    let mut i = 0usize;
    g.bench_function("html_part_only", |b| {
        b.iter(|| {
            i = (i + 1) % SUBSCRIBERS;
            black_box(f.html_only(i))
        })
    });
    g.bench_function("full_message_direct_text", |b| {
        b.iter(|| {
            i = (i + 1) % SUBSCRIBERS;
            black_box(f.full(&direct, i))
        })
    });
    g.bench_function("full_message_html2text", |b| {
        b.iter(|| {
            i = (i + 1) % SUBSCRIBERS;
            black_box(f.full(&h2t, i))
        })
    });
    g.finish();
}

/// End to end: items from the sled store, the durable file ledger (two synced writes per
/// digest), and delivery to a loopback SMTP server (aiosmtpd, `tests/smtp/server.py`), beside
/// the same run writing `.eml` files, and with an in-memory ledger, to show where time goes.
fn end_to_end() {
    use newsrelay::config::{SmtpSecurity, SmtpSettings};
    use newsrelay::digest::{DirMailer, FileLedger, MemoryLedger, SmtpMailer, SmtpOptions};
    let f = fixture();
    let subs: Vec<SubscriberSettings> = f.subs.iter().take(E2E_SUBSCRIBERS).cloned().collect();
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = newsrelay::store::Store::open(&dir.path().join("db")).expect("open store");
    let intents: Vec<newsrelay::dedup::Intent> = f
        .items
        .iter()
        .map(|i| newsrelay::dedup::Intent::Insert(Box::new(i.clone())))
        .collect();
    store
        .apply(
            &newsrelay::item::FeedId("icmpd-news".into()),
            &intents,
            None,
        )
        .expect("write store");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ctx = f.ctx(TextStyle::Direct);
    let eml = DirMailer::new(&dir.path().join("eml")).expect("eml folder");
    println!(
        "end-to-end delivery, {E2E_SUBSCRIBERS} subscribers, items read from sled, {} items in the window:",
        f.items.len()
    );
    let run = Run {
        rt: &rt,
        ctx: &ctx,
        subs: &subs,
        store: &store,
    };
    let mem_eml = run.timed("memory ledger, .eml files", &MemoryLedger::default(), &eml);
    let ledger = FileLedger::new(&dir.path().join("ledger1")).expect("ledger");
    let file_eml = run.timed("file ledger (synced), .eml files", &ledger, &eml);
    match start_smtp_server(&dir.path().join("smtp")) {
        None => println!("  SMTP loopback: skipped (python3 with aiosmtpd not available)"),
        Some((mut child, port)) => {
            let smtp = SmtpSettings {
                host: "127.0.0.1".into(),
                port,
                security: SmtpSecurity::None,
                from: "ICMPD news <news@example.org>".into(),
                username: None,
                password_file: None,
                timeout: std::time::Duration::from_secs(30),
            };
            // The transport's connection pool starts a task: build it inside the runtime.
            let _inside = rt.enter();
            let mailer = SmtpMailer::new(&smtp, &SmtpOptions::default()).expect("mailer");
            let ledger = FileLedger::new(&dir.path().join("ledger2")).expect("ledger");
            let file_smtp = run.timed("file ledger (synced), SMTP loopback", &ledger, &mailer);
            println!(
                "  ratios: memory+eml / file+eml = {:.2}x, file+eml / file+SMTP = {:.2}x",
                mem_eml / file_eml,
                file_eml / file_smtp
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const E2E_SUBSCRIBERS: usize = 1_000;

struct Run<'a> {
    rt: &'a tokio::runtime::Runtime,
    ctx: &'a DigestContext<'a>,
    subs: &'a [SubscriberSettings],
    store: &'a newsrelay::store::Store,
}

impl Run<'_> {
    fn timed(
        &self,
        label: &str,
        ledgers: &impl newsrelay::digest::LedgerStore,
        mailer: &impl newsrelay::digest::Mailer,
    ) -> f64 {
        let start = Instant::now();
        let report = self.rt.block_on(newsrelay::digest::run_digests(
            self.ctx,
            self.subs,
            self.store,
            ledgers,
            mailer,
            now(),
            false,
        ));
        let rate = self.subs.len() as f64 / start.elapsed().as_secs_f64();
        println!(
            "  {label:<38} {rate:>7.0} digests/s ({} sent, {} failed)",
            report.sent(),
            report.failed()
        );
        rate
    }
}

/// Starts the test SMTP server; None when python3 or aiosmtpd is missing.
fn start_smtp_server(out: &std::path::Path) -> Option<(std::process::Child, u16)> {
    use std::io::BufRead;
    std::fs::create_dir_all(out).ok()?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
    let mut child = std::process::Command::new("python3")
        .arg("-u")
        .arg(script)
        .arg(out)
        .args(["--lifetime", "600"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    let stdout = child.stdout.take()?;
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    match line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
    {
        Some(port) => Some((child, port)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    report();
    end_to_end();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
