//! Integration test: the digest crash test.
//!
//! `newsrelay digest send` runs as a real process against the real SMTP test server
//! (`tests/smtp/server.py`, aiosmtpd on loopback) and a real sled store holding the items, with
//! 200 subscribers due. It is killed with SIGKILL at seeded random points, at least 20 times
//! (`NEWSRELAY_CRASH_KILLS` asks for more, `NEWSRELAY_CRASH_SEED` repeats a run), and restarted
//! each time until everything is sent. Then what the server received is counted: every
//! subscriber got a digest, every matching item arrived, nothing unexpected arrived, and every
//! duplicate is the message that was in flight when a sender was killed, carrying the same
//! Message-ID and content as its first copy.

use super::digest::{item, python_available, start_smtp, store_with};
use chrono::{DateTime, Duration, Timelike, Utc};
use newsrelay::item::{Item, Label};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const SUBSCRIBERS: usize = 200;
/// Items inside every subscriber's window, and outside it (before and after).
const IN_WINDOW: usize = 120;
const OUTSIDE: usize = 10;
const MIN_KILLS: usize = 20;

const PROGRAMMES: [&str; 6] = [
    "irregular-migration-return",
    "trafficking-in-human-beings",
    "border-management-visa",
    "asylum",
    "migration-development",
    "legal-migration-integration",
];
const INITIATIVES: [&str; 8] = [
    "mieux",
    "prague-process",
    "rabat-process",
    "budapest-process",
    "khartoum-process",
    "euromed-migration",
    "mc2cm",
    "mtm",
];
const REGIONS: [&str; 9] = [
    "eu",
    "western-balkans",
    "turkey",
    "eastern-europe-central-asia",
    "silk-routes",
    "middle-east",
    "north-africa",
    "sub-saharan-africa",
    "latin-america-caribbean",
];
const ZONES: [&str; 4] = ["UTC", "Europe/Vienna", "America/New_York", "Asia/Tokyo"];

/// SplitMix64: small, seeded, good enough to pick kill points and labels.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn pick<'a>(&mut self, from: &[&'a str], n: usize) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        while out.len() < n.min(from.len()) {
            let c = from[self.range(0, from.len() as u64 - 1) as usize];
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

struct Sub {
    email: String,
    zone: &'static str,
    programmes: Vec<&'static str>,
    initiatives: Vec<&'static str>,
    regions: Vec<&'static str>,
}

impl Sub {
    /// The subscription rule, written out here rather than taken from the library: within a
    /// kind any listed id matches, across kinds every listed kind must match.
    fn wants(&self, i: &Item) -> bool {
        let ok = |want: &[&str], have: &[Label]| {
            want.is_empty() || have.iter().any(|l| want.contains(&l.id.as_str()))
        };
        ok(&self.programmes, &i.labels.programmes)
            && ok(&self.initiatives, &i.labels.initiatives)
            && ok(&self.regions, &i.labels.regions)
    }
}

fn label(id: &str) -> Label {
    Label {
        id: id.to_string(),
        score: 0.9,
        why: vec!["test".into()],
    }
}

fn ids(list: &[&str]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum KillPoint {
    /// A few milliseconds after start: opening the store, the key, the ledger, rendering.
    Early,
    /// As soon as the server has recorded a chosen number of further messages.
    MidSend,
    /// While the server holds its answer to a message it has already recorded: the crash
    /// window, where the sender cannot know the message arrived.
    Held,
    /// While the server holds its answer to RCPT TO: the digest is `sending`, but the server
    /// has not got it.
    BeforeData,
    /// A moment (0–3 ms) after the server recorded a message: around the ledger write.
    AfterAccept,
}

struct Round {
    point: Option<KillPoint>,
    /// Messages recorded by the server before and after this run.
    before: usize,
    after: usize,
}

fn received_count(out: &Path) -> usize {
    std::fs::read_dir(out)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

/// Waits (bounded) until `cond` holds; false on timeout.
fn wait_until(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_micros(300));
    }
    cond()
}

/// Waits until the server's count has not moved for 60 ms (a killed sender's last bytes may
/// still be in the server's buffer).
fn settled_count(out: &Path) -> usize {
    let mut last = received_count(out);
    let mut still = Instant::now();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while still.elapsed() < std::time::Duration::from_millis(60) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        let now = received_count(out);
        if now != last {
            last = now;
            still = Instant::now();
        }
    }
    last
}

fn sender(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .arg("--config")
        .arg(config)
        .args(["digest", "send"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start newsrelay digest send")
}

/// The item ids a digest's HTML part links to.
fn linked_items(html: &str) -> Vec<String> {
    const PREFIX: &str = "https://news.test/item/";
    html.match_indices(PREFIX)
        .map(|(at, _)| {
            html[at + PREFIX.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .collect()
}

#[test]
fn sigkill_while_sending_200_digests_misses_nothing_and_duplicates_only_in_flight() {
    if !python_available() {
        eprintln!("SKIP: python3 is not installed; the crash test needs the SMTP test server");
        return;
    }
    let started = Instant::now();
    let seed: u64 = match std::env::var("NEWSRELAY_CRASH_SEED") {
        Ok(s) => s.trim().parse().expect("NEWSRELAY_CRASH_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    let kills_wanted: usize = std::env::var("NEWSRELAY_CRASH_KILLS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(MIN_KILLS)
        .max(MIN_KILLS);
    println!("digest crash test: seed {seed} (NEWSRELAY_CRASH_SEED={seed} repeats it), {kills_wanted} kills wanted");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail");
    let control = dir.path().join("control");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&control).unwrap();
    let server = start_smtp(
        &out,
        &[
            "--control",
            control.to_str().unwrap(),
            "--hold-seconds",
            "10",
        ],
    )
    .expect("python3 is present");

    // Everybody's digest is due at the same instant D, about 12 h ago, at D's local time in
    // their zone. Items in (D-20h, D-2h] are inside every window, whatever a daylight-saving
    // change does to it; items before D-30h or after D+1h are outside.
    let d: DateTime<Utc> = (Utc::now() - Duration::hours(12))
        .with_second(0)
        .and_then(|x| x.with_nanosecond(0))
        .unwrap();
    let mut items: Vec<Item> = Vec::new();
    let window_start = d - Duration::hours(20);
    for n in 0..IN_WINDOW + 2 * OUTSIDE {
        let seen = if n < IN_WINDOW {
            window_start + Duration::seconds(1 + (n as i64) * (18 * 3600 - 2) / IN_WINDOW as i64)
        } else if n < IN_WINDOW + OUTSIDE {
            d - Duration::hours(30) - Duration::minutes(n as i64)
        } else {
            d + Duration::hours(1) + Duration::minutes(n as i64 % 300)
        };
        let id = format!("it{n:04}");
        let mut it = item(
            &id,
            &format!("Story {id}"),
            &[],
            &[],
            "2026-01-01T00:00:00Z",
        );
        it.first_seen = seen;
        it.link = Some(format!("https://news.test/item/{id}"));
        let np = rng.range(1, 2) as usize;
        let ni = rng.range(0, 1) as usize;
        let nr = rng.range(0, 2) as usize;
        it.labels.programmes = rng.pick(&PROGRAMMES, np).into_iter().map(label).collect();
        it.labels.initiatives = rng.pick(&INITIATIVES, ni).into_iter().map(label).collect();
        it.labels.regions = rng.pick(&REGIONS, nr).into_iter().map(label).collect();
        items.push(it);
    }
    drop(store_with(dir.path(), &items));

    let subs: Vec<Sub> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut s = Sub {
                email: format!("s{i:03}@example.org"),
                zone: ZONES[i % ZONES.len()],
                programmes: Vec::new(),
                initiatives: Vec::new(),
                regions: Vec::new(),
            };
            let n = rng.range(1, 2) as usize;
            match rng.range(0, 9) {
                0..=3 => s.programmes = rng.pick(&PROGRAMMES, n),
                4 | 5 => s.initiatives = rng.pick(&INITIATIVES, n),
                6 | 7 => s.regions = rng.pick(&REGIONS, n),
                8 => {
                    s.programmes = rng.pick(&PROGRAMMES, 1);
                    s.regions = rng.pick(&REGIONS, 2);
                }
                _ => {}
            }
            s
        })
        .collect();

    let mut config = format!(
        "[store]\npath = \"db\"\n[server]\nbase_url = \"https://news.example.org\"\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"ICMPD news <news@example.org>\"\n\
         timeout = \"5s\"\n[digest]\nsend_empty = true\nmax_items = 1000\n",
        server.port
    );
    for s in &subs {
        let tz: chrono_tz::Tz = s.zone.parse().unwrap();
        let local = d.with_timezone(&tz);
        config.push_str(&format!(
            "[[subscribers]]\nemail = \"{}\"\nprogrammes = {}\ninitiatives = {}\nregions = {}\n\
             at = \"{:02}:{:02}\"\ntimezone = \"{}\"\n",
            s.email,
            ids(&s.programmes),
            ids(&s.initiatives),
            ids(&s.regions),
            local.hour(),
            local.minute(),
            s.zone
        ));
    }
    let config_path = dir.path().join("newsrelay.toml");
    std::fs::write(&config_path, config).unwrap();

    // Kill rounds.
    let points = [
        KillPoint::Early,
        KillPoint::MidSend,
        KillPoint::Held,
        KillPoint::BeforeData,
        KillPoint::AfterAccept,
    ];
    let mut rounds: Vec<Round> = Vec::new();
    let limit = std::time::Duration::from_secs(20);
    let mut kills = 0;
    while kills < kills_wanted && rounds.len() < 3 * kills_wanted {
        let before = settled_count(&out);
        if before >= SUBSCRIBERS {
            break;
        }
        let point = points[rng.range(0, points.len() as u64 - 1) as usize];
        // Few messages per kill, so that the kills are spread over the whole send.
        let left = (SUBSCRIBERS - before) as u64;
        let per_kill = (left / (kills_wanted - kills) as u64).clamp(1, 6);
        let k = rng.range(1, per_kill) as usize;
        match point {
            KillPoint::Held => std::fs::write(control.join("hold"), b"").unwrap(),
            KillPoint::BeforeData => std::fs::write(control.join("hold-rcpt"), b"").unwrap(),
            _ => {}
        }
        let mut child = sender(&config_path);
        let reached = match point {
            KillPoint::Early => {
                std::thread::sleep(std::time::Duration::from_millis(rng.range(0, 60)));
                true
            }
            KillPoint::MidSend => wait_until(limit, || received_count(&out) >= before + k),
            KillPoint::Held | KillPoint::BeforeData => {
                wait_until(limit, || control.join("held").exists())
            }
            KillPoint::AfterAccept => {
                let ok = wait_until(limit, || received_count(&out) >= before + k);
                let pause = std::time::Duration::from_micros(rng.range(0, 3000));
                let t0 = Instant::now();
                while t0.elapsed() < pause {
                    std::hint::spin_loop();
                }
                ok
            }
        };
        let exited = child.try_wait().unwrap();
        assert!(
            reached || exited.is_some(),
            "seed {seed}: kill point {point:?} not reached within {limit:?}"
        );
        // SIGKILL: no handler, no flush, no goodbye.
        let _ = child.kill();
        let status = child.wait().unwrap();
        let _ = std::fs::remove_file(control.join("held"));
        let _ = std::fs::remove_file(control.join("hold"));
        let _ = std::fs::remove_file(control.join("hold-rcpt"));
        let after = settled_count(&out);
        let killed = exited.is_none() && !status.success();
        kills += usize::from(killed);
        rounds.push(Round {
            point: killed.then_some(point),
            before,
            after,
        });
    }

    // Restart until a run sends nothing more.
    let mut clean_runs = 0;
    loop {
        let before = settled_count(&out);
        let o = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
            .arg("--config")
            .arg(&config_path)
            .args(["digest", "send"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "seed {seed}: restart failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let after = settled_count(&out);
        rounds.push(Round {
            point: None,
            before,
            after,
        });
        clean_runs += 1;
        if after == before {
            break;
        }
        assert!(
            clean_runs < 5,
            "seed {seed}: still sending after 5 clean runs"
        );
    }

    // Count what arrived.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let messages: Vec<Value> = files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    // Per subscriber: (message number, Message-ID, HTML part) in arrival order.
    let mut by_sub: BTreeMap<String, Vec<(usize, String, String)>> = BTreeMap::new();
    for m in &messages {
        let to = m["rcpt_tos"][0].as_str().unwrap_or("").to_string();
        let n = m["n"].as_u64().unwrap_or(0) as usize;
        let mid = m["headers"]["message-id"][0]
            .as_str()
            .unwrap_or("")
            .to_string();
        let html = m["parts"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["content_type"] == "text/html"))
            .and_then(|p| p["body"].as_str())
            .unwrap_or("")
            .to_string();
        by_sub.entry(to).or_default().push((n, mid, html));
    }
    // The message in flight when each kill struck: the last one the server recorded in that
    // round (if the round recorded any).
    let in_flight: BTreeSet<usize> = rounds
        .iter()
        .filter(|r| r.point.is_some() && r.after > r.before)
        .map(|r| r.after)
        .collect();

    let (mut missed_subs, mut expected_items, mut missed_items, mut unexpected) = (0, 0, 0, 0);
    let (mut duplicates, mut outside_window, mut mid_mismatch) = (0, 0, 0);
    let mut failures: Vec<String> = Vec::new();
    for s in &subs {
        let want: BTreeSet<String> = items[..IN_WINDOW]
            .iter()
            .filter(|i| s.wants(i))
            .map(|i| i.id.0.clone())
            .collect();
        expected_items += want.len();
        let Some(copies) = by_sub.get(&s.email) else {
            missed_subs += 1;
            missed_items += want.len();
            failures.push(format!("{}: no digest", s.email));
            continue;
        };
        let got: BTreeSet<String> = linked_items(&copies[0].2).into_iter().collect();
        missed_items += want.difference(&got).count();
        unexpected += got.difference(&want).count();
        if got != want {
            failures.push(format!(
                "{}: missing {:?}, unexpected {:?}",
                s.email,
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            ));
        }
        for dup in &copies[1..] {
            duplicates += 1;
            if dup.1 != copies[0].1 || dup.2 != copies[0].2 {
                mid_mismatch += 1;
                failures.push(format!(
                    "{}: copy #{} differs from #{} ({} vs {})",
                    s.email, dup.0, copies[0].0, dup.1, copies[0].1
                ));
            }
        }
        // Each copy but the last must have been in flight when a sender was killed.
        for early in &copies[..copies.len() - 1] {
            if !in_flight.contains(&early.0) {
                outside_window += 1;
                failures.push(format!(
                    "{}: copy #{} was followed by another, but was not in flight at a kill",
                    s.email, early.0
                ));
            }
        }
    }
    // Every held kill left its recorded message in `sending`: it must have been sent again.
    let held_resent = rounds
        .iter()
        .filter(|r| r.point == Some(KillPoint::Held) && r.after > r.before)
        .filter(|r| {
            by_sub
                .values()
                .any(|c| c.iter().any(|x| x.0 == r.after) && c.iter().any(|x| x.0 > r.after))
        })
        .count();
    let held = rounds
        .iter()
        .filter(|r| r.point == Some(KillPoint::Held) && r.after > r.before)
        .count();
    // A kill before the message reached the server records nothing in that run.
    for r in rounds
        .iter()
        .filter(|r| r.point == Some(KillPoint::BeforeData))
    {
        assert_eq!(
            r.after, r.before,
            "seed {seed}: held at RCPT, yet a message arrived"
        );
    }
    let count = |p: KillPoint| rounds.iter().filter(|r| r.point == Some(p)).count();
    println!(
        "digest crash test: seed {seed}: {kills} kills (early {}, mid-send {}, held in the crash window {}, held before the message {}, just after accept {}), then {clean_runs} clean runs; {} messages for {SUBSCRIBERS} subscribers, {} expected items",
        count(KillPoint::Early),
        count(KillPoint::MidSend),
        count(KillPoint::Held),
        count(KillPoint::BeforeData),
        count(KillPoint::AfterAccept),
        messages.len(),
        expected_items
    );
    println!(
        "digest crash test: {missed_subs} subscribers missed, {missed_items} items missed, {unexpected} unexpected items, {duplicates} duplicates ({outside_window} outside a crash window, {mid_mismatch} with another Message-ID or content); held kills re-sent {held_resent}/{held}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= MIN_KILLS, "seed {seed}: only {kills} kills");
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
    assert_eq!(
        missed_subs + missed_items + unexpected + outside_window + mid_mismatch,
        0
    );
    assert_eq!(
        held_resent, held,
        "seed {seed}: a held message was not re-sent"
    );
    assert!(
        duplicates <= kills,
        "seed {seed}: {duplicates} duplicates from {kills} kills"
    );
    assert_eq!(messages.len(), SUBSCRIBERS + duplicates);
}
