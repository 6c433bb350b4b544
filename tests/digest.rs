//! Integration tests: digest.
//!
//! Schedules across the 2026 Europe/Vienna daylight-saving changes with an injected clock, and
//! delivery to a real SMTP server process on loopback (aiosmtpd, `tests/smtp/server.py`) whose
//! received messages are parsed by Python's email module and checked here: parts, headers,
//! grouping, escaping, retries, refusals, the crash window, STARTTLS and TLS with a test
//! certificate. Without python3 the SMTP tests skip with a message; without aiosmtpd they fail.

use chrono::{DateTime, Duration, NaiveDate, Utc, Weekday};
use newsrelay::config::{
    DigestSettings, Frequency, SmtpSecurity, SmtpSettings, SubscriberSettings,
};
use newsrelay::digest::{
    run_digests, unsubscribe, DigestContext, DigestKey, DirMailer, DisplayNames, FileLedger,
    LedgerStore, Mailer, MemoryItems, MemoryLedger, NextDigest, Outcome, RetryPolicy, SendError,
    SmtpMailer, SmtpOptions, SubscriberLedger, TextStyle,
};
use newsrelay::item::{ContentHash, FeedId, IdBasis, Item, ItemId, Label, Labels};
use newsrelay::schedule::DigestSchedule;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const BASE_URL: &str = "http://127.0.0.1:8080";
const FROM: &str = "ICMPD news <news@example.org>";

pub(crate) fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instant")
}

fn subscriber(email: &str, programmes: &[&str], initiatives: &[&str]) -> SubscriberSettings {
    SubscriberSettings {
        email: email.to_string(),
        name: None,
        programmes: programmes.iter().map(|s| s.to_string()).collect(),
        initiatives: initiatives.iter().map(|s| s.to_string()).collect(),
        regions: Vec::new(),
        frequency: Frequency::Daily,
        at: (8, 0),
        weekday: Weekday::Mon,
        timezone: chrono_tz::Europe::Vienna,
    }
}

fn label(id: &str, score: f32) -> Label {
    Label {
        id: id.to_string(),
        score,
        why: vec!["test".into()],
    }
}

pub(crate) fn item(
    id: &str,
    title: &str,
    programmes: &[&str],
    initiatives: &[&str],
    seen: &str,
) -> Item {
    let first_seen = t(seen);
    Item {
        id: ItemId(id.to_string()),
        id_basis: IdBasis::Guid,
        feed: FeedId("icmpd-news".into()),
        sources: Vec::new(),
        link: Some(format!("https://www.icmpd.org/news/{id}")),
        title: title.to_string(),
        summary_text: format!("Summary of {id}: what happened and why it matters."),
        content_html: String::new(),
        published: Some(first_seen - Duration::hours(1)),
        updated: None,
        first_seen,
        authors: Vec::new(),
        categories: Vec::new(),
        enclosures: Vec::new(),
        content_hash: ContentHash(1),
        fingerprint: 0,
        revision: 0,
        labels: Labels {
            programmes: programmes.iter().map(|p| label(p, 0.9)).collect(),
            initiatives: initiatives.iter().map(|p| label(p, 0.8)).collect(),
            regions: Vec::new(),
            taxonomy_version: 1,
        },
    }
}

fn settings(send_empty: bool) -> DigestSettings {
    DigestSettings {
        send_empty,
        max_items: 200,
        check_every: std::time::Duration::from_secs(60),
        plain_text: Default::default(),
    }
}

fn context<'a>(
    settings: &'a DigestSettings,
    key: &'a DigestKey,
    names: &'a DisplayNames,
) -> DigestContext<'a> {
    DigestContext {
        settings,
        base_url: BASE_URL,
        from: FROM.parse().expect("from mailbox"),
        key,
        names,
        text_style: TextStyle::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Schedule across daylight-saving changes, with an injected clock.

/// Ticks a clock every minute from `start` to `end` and records each digest the ledger opens
/// and (as if accepted) completes: (period key, instant sent).
fn simulate(schedule: &DigestSchedule, start: &str, end: &str) -> Vec<(String, DateTime<Utc>)> {
    let mut ledger = SubscriberLedger::default();
    let mut sent = Vec::new();
    let (mut now, end) = (t(start), t(end));
    let mut ticks = 0;
    while now <= end && ticks < 40_000 {
        if let NextDigest::Send { .. } = ledger.next(schedule, now, false, |k| format!("<{k}>")) {
            let period = ledger.open_digest().expect("opened").period.clone();
            ledger.mark_sending(Vec::new()).expect("sending");
            ledger.mark_sent().expect("sent");
            sent.push((period, now));
        }
        now += Duration::minutes(1);
        ticks += 1;
    }
    sent
}

fn vienna(frequency: Frequency, at: (u32, u32), weekday: Weekday) -> DigestSchedule {
    DigestSchedule {
        frequency,
        at,
        weekday,
        timezone: chrono_tz::Europe::Vienna,
    }
}

#[test]
fn spring_change_nonexistent_time_goes_out_once_at_first_valid_instant() {
    // 29 March 2026: Vienna clocks jump from 02:00 to 03:00, so 02:30 does not exist.
    let s = vienna(Frequency::Daily, (2, 30), Weekday::Mon);
    // Start just after the 28 March digest (01:30 UTC) so the first send is the 29th's.
    let sent = simulate(&s, "2026-03-28T01:31:00Z", "2026-03-30T02:00:00Z");
    let keys: Vec<&str> = sent.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["2026-03-28", "2026-03-29", "2026-03-30"],
        "one digest per day: {sent:?}"
    );
    // The 28th: first tick (missed earlier) ; the 29th at 03:00 CEST = 01:00 UTC;
    // the 30th at 02:30 CEST = 00:30 UTC.
    assert_eq!(sent[1].1, t("2026-03-29T01:00:00Z"));
    assert_eq!(sent[2].1, t("2026-03-30T00:30:00Z"));
}

#[test]
fn autumn_change_repeated_time_goes_out_once() {
    // 25 October 2026: Vienna clocks go back from 03:00 to 02:00, so 02:30 happens twice.
    let s = vienna(Frequency::Daily, (2, 30), Weekday::Mon);
    let sent = simulate(&s, "2026-10-24T00:31:00Z", "2026-10-26T03:00:00Z");
    let keys: Vec<&str> = sent.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["2026-10-24", "2026-10-25", "2026-10-26"],
        "one digest per day: {sent:?}"
    );
    assert_eq!(sent[1].1, t("2026-10-25T00:30:00Z"), "first 02:30 (CEST)");
    assert_eq!(sent[2].1, t("2026-10-26T01:30:00Z"), "02:30 CET");
}

#[test]
fn local_hour_is_kept_across_both_changes() {
    // An 08:00 digest stays at 08:00 local: 07:00 UTC in winter, 06:00 UTC in summer.
    let s = vienna(Frequency::Daily, (8, 0), Weekday::Mon);
    let spring = simulate(&s, "2026-03-28T07:01:00Z", "2026-03-30T07:00:00Z");
    assert_eq!(
        spring.iter().map(|(_, at)| *at).collect::<Vec<_>>(),
        [
            t("2026-03-28T07:01:00Z"),
            t("2026-03-29T06:00:00Z"),
            t("2026-03-30T06:00:00Z")
        ]
    );
    let autumn = simulate(&s, "2026-10-24T06:01:00Z", "2026-10-26T08:00:00Z");
    assert_eq!(
        autumn.iter().map(|(_, at)| *at).collect::<Vec<_>>(),
        [
            t("2026-10-24T06:01:00Z"),
            t("2026-10-25T07:00:00Z"),
            t("2026-10-26T07:00:00Z")
        ]
    );
}

#[test]
fn weekly_digest_on_change_days() {
    // Both 2026 changes fall on a Sunday; a weekly Sunday 02:30 digest goes out once each week.
    let s = vienna(Frequency::Weekly, (2, 30), Weekday::Sun);
    let spring = simulate(&s, "2026-03-22T01:31:00Z", "2026-04-06T00:00:00Z");
    assert_eq!(
        spring,
        vec![
            ("2026-W12".to_string(), t("2026-03-22T01:31:00Z")),
            ("2026-W13".to_string(), t("2026-03-29T01:00:00Z")),
            ("2026-W14".to_string(), t("2026-04-05T00:30:00Z")),
        ]
    );
    let autumn = simulate(&s, "2026-10-18T00:31:00Z", "2026-11-02T00:00:00Z");
    assert_eq!(
        autumn,
        vec![
            ("2026-W42".to_string(), t("2026-10-18T00:31:00Z")),
            ("2026-W43".to_string(), t("2026-10-25T00:30:00Z")),
            ("2026-W44".to_string(), t("2026-11-01T01:30:00Z")),
        ]
    );
}

#[test]
fn after_downtime_one_digest_for_the_latest_missed_period() {
    let s = vienna(Frequency::Daily, (8, 0), Weekday::Mon);
    let mut ledger = SubscriberLedger::default();
    ledger.next(&s, t("2026-03-02T07:30:00Z"), false, |k| k.to_string());
    ledger.mark_sending(Vec::new()).unwrap();
    ledger.mark_sent().unwrap();
    // Down from the 2nd to the 6th: on start, one digest, for the 6th, covering since the 2nd.
    let now = t("2026-03-06T12:00:00Z");
    assert!(matches!(
        ledger.next(&s, now, false, |k| k.to_string()),
        NextDigest::Send { resend: false }
    ));
    let d = ledger.open_digest().unwrap().clone();
    assert_eq!(d.period, "2026-03-06");
    assert_eq!(d.since, Some(t("2026-03-02T07:00:00Z")));
    ledger.mark_sending(Vec::new()).unwrap();
    ledger.mark_sent().unwrap();
    assert_eq!(
        ledger.next(&s, now + Duration::hours(1), false, |k| k.to_string()),
        NextDigest::Nothing
    );
    // The weekly equivalent: three missed Mondays, one digest.
    let w = vienna(Frequency::Weekly, (8, 0), Weekday::Mon);
    assert_eq!(
        w.pending(t("2026-03-25T00:00:00Z"), Some(t("2026-03-02T07:00:00Z")))
            .map(|p| p.key),
        Some("2026-W13".to_string())
    );
}

#[test]
fn other_zones_and_dates() {
    let ny = DigestSchedule {
        frequency: Frequency::Daily,
        at: (2, 30),
        weekday: Weekday::Mon,
        timezone: chrono_tz::America::New_York,
    };
    // US spring change, 8 March 2026: 02:30 EST does not exist → 03:00 EDT = 07:00 UTC.
    let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
    assert_eq!(ny.due_on(d), Some(t("2026-03-08T07:00:00Z")));
    // Apia skipped 30 December 2011 entirely: the digest of that date goes out at the first
    // valid instant after, and the next day's digest is still a separate one.
    let apia = DigestSchedule {
        timezone: chrono_tz::Pacific::Apia,
        ..ny
    };
    let skipped = NaiveDate::from_ymd_opt(2011, 12, 30).unwrap();
    let next = NaiveDate::from_ymd_opt(2011, 12, 31).unwrap();
    let a = apia.due_on(skipped).expect("resolved");
    let b = apia.due_on(next).expect("resolved");
    assert!(a < b, "{a} {b}");
}

// ---------------------------------------------------------------------------------------------
// A real SMTP server on loopback.

pub(crate) struct SmtpServer {
    child: Child,
    pub(crate) port: u16,
    out: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn python_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Starts `tests/smtp/server.py`; None (with a message) only when python3 is missing.
pub(crate) fn start_smtp(out: &Path, args: &[&str]) -> Option<SmtpServer> {
    if !python_available() {
        eprintln!("SKIP: python3 is not installed; the SMTP delivery tests need it");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
    let mut child = Command::new("python3")
        .arg("-u")
        .arg(&script)
        .arg(out)
        .args(args)
        .args(["--lifetime", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python3");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_default();
    let port = match line.trim().strip_prefix("PORT ") {
        Some(p) => p.parse().expect("port number"),
        None => {
            let _ = child.kill();
            panic!("SMTP test server did not start: {line:?} (is aiosmtpd installed? python3 -m pip install aiosmtpd)");
        }
    };
    Some(SmtpServer {
        child,
        port,
        out: out.to_path_buf(),
    })
}

impl SmtpServer {
    fn smtp(&self, security: SmtpSecurity) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            security,
            from: FROM.into(),
            username: None,
            password_file: None,
            timeout: std::time::Duration::from_secs(10),
        }
    }

    /// Waits (bounded) until `n` messages arrived and returns them in arrival order.
    pub(crate) fn received(&self, n: usize) -> Vec<Value> {
        self.received_within(n, std::time::Duration::from_secs(10))
    }

    /// Like `received`, for checking that no more arrived: waits `wait` at most.
    pub(crate) fn received_within(&self, n: usize, wait: std::time::Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "json"))
                        .collect()
                })
                .unwrap_or_default();
            if files.len() >= n || Instant::now() > deadline {
                files.sort();
                return files
                    .iter()
                    .map(|p| {
                        serde_json::from_slice(&std::fs::read(p).expect("read record"))
                            .expect("json record")
                    })
                    .collect();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

pub(crate) fn header<'a>(m: &'a Value, name: &str) -> &'a str {
    m["headers"][name][0].as_str().unwrap_or("")
}

pub(crate) fn part<'a>(m: &'a Value, content_type: &str) -> &'a str {
    m["parts"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["content_type"] == content_type))
        .and_then(|p| p["body"].as_str())
        .unwrap_or("")
}

fn quick_retry() -> SmtpOptions {
    SmtpOptions {
        retry: RetryPolicy {
            attempts: 3,
            first_backoff: std::time::Duration::from_millis(20),
            max_backoff: std::time::Duration::from_millis(100),
        },
        extra_root_pem: None,
    }
}

#[tokio::test]
async fn delivers_grouped_escaped_digests_each_item_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start_smtp(dir.path(), &[]) else {
        return;
    };
    let mailer = SmtpMailer::new(&server.smtp(SmtpSecurity::None), &quick_retry()).unwrap();
    let key = DigestKey::new(b"test secret, 32 bytes or so.....");
    let names = DisplayNames::default();
    let cfg = settings(false);
    let ctx = context(&cfg, &key, &names);
    let alice = subscriber(
        "alice@example.org",
        &["asylum", "border-management-visa"],
        &[],
    );
    let carol = subscriber("carol@example.org", &[], &["mieux"]);
    let subs = vec![alice.clone(), carol.clone()];

    // Alice's 10 March digest is due 08:00 Vienna = 07:00 UTC; it covers (9 Mar 07:00, 10 Mar 07:00].
    let hostile = "<script>alert(\"x\")</script> & <b>bold</b>";
    let mut h = item("h1", hostile, &["asylum"], &[], "2026-03-09T20:00:00Z");
    h.summary_text = "<img src=x onerror=alert(1)> Tom & Jerry".into();
    h.link = Some("javascript:alert(1)".into());
    let mut items = vec![
        item(
            "a1",
            "Asylum older",
            &["asylum"],
            &[],
            "2026-03-09T09:00:00Z",
        ),
        item(
            "a2",
            "Asylum newer",
            &["asylum"],
            &[],
            "2026-03-09T18:00:00Z",
        ),
        item(
            "b1",
            "Border news",
            &["border-management-visa"],
            &[],
            "2026-03-09T12:00:00Z",
        ),
        item(
            "t1",
            "Trafficking only",
            &["trafficking-in-human-beings"],
            &[],
            "2026-03-09T13:00:00Z",
        ),
        item(
            "m1",
            "MIEUX and asylum",
            &["asylum"],
            &["mieux"],
            "2026-03-09T14:00:00Z",
        ),
        // Exactly at the cut: belongs to the 10 March digest, not the 11th.
        item(
            "edge",
            "At the cut",
            &["asylum"],
            &[],
            "2026-03-10T07:00:00Z",
        ),
        // Before the first digest's window: a new subscriber starts one period back.
        item("old", "Too old", &["asylum"], &[], "2026-03-08T12:00:00Z"),
        h,
    ];
    let store = MemoryItems(items.clone());
    let ledgers = MemoryLedger::default();

    let report = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T07:30:00Z"),
        false,
    )
    .await;
    assert_eq!(report.sent(), 2, "{report:?}");
    let got = server.received(2);
    assert_eq!(got.len(), 2);
    let to_alice = got
        .iter()
        .find(|m| m["rcpt_tos"][0] == "alice@example.org")
        .expect("alice's digest");

    // Structure and headers.
    assert_eq!(to_alice["content_type"], "multipart/alternative");
    let types: Vec<&str> = to_alice["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    let token = key.unsubscribe_token("alice@example.org");
    assert_eq!(
        header(to_alice, "list-unsubscribe"),
        format!("<{BASE_URL}/unsubscribe/{token}>")
    );
    assert_eq!(
        header(to_alice, "list-unsubscribe-post"),
        "List-Unsubscribe=One-Click"
    );
    assert_eq!(
        key.subscriber_for_token(&token, &subs)
            .map(|s| s.email.as_str()),
        Some("alice@example.org")
    );
    assert!(key
        .subscriber_for_token(&key.unsubscribe_token("eve@example.org"), &subs)
        .is_none());
    let from: lettre::message::Mailbox = FROM.parse().unwrap();
    assert_eq!(
        header(to_alice, "message-id"),
        key.message_id("alice@example.org", "2026-03-10", &from)
    );
    assert_ne!(
        header(to_alice, "message-id"),
        key.message_id("carol@example.org", "2026-03-10", &from)
    );
    assert_eq!(
        header(to_alice, "subject"),
        "ICMPD news: 6 items in Asylum, Border Management and Visa (10 Mar 2026)"
    );

    // Grouping: Asylum before Border (the subscriber's order), newest first inside a group,
    // the item carrying both asylum and MIEUX shown once, other programmes left out.
    let html = part(to_alice, "text/html");
    let text = part(to_alice, "text/plain");
    let pos = |s: &str| {
        html.find(s)
            .unwrap_or_else(|| panic!("{s:?} missing from HTML"))
    };
    assert!(pos(">Asylum <") < pos(">Border Management and Visa <"));
    assert!(pos("At the cut") < pos("Asylum newer"));
    assert!(pos("Asylum newer") < pos("MIEUX and asylum"));
    assert!(pos("MIEUX and asylum") < pos("Asylum older"));
    assert!(pos("Asylum older") < pos("Border news"));
    assert_eq!(html.matches("MIEUX and asylum").count(), 1);
    assert!(!html.contains("Trafficking only") && !html.contains("Too old"));
    for title in [
        "Asylum older",
        "Asylum newer",
        "Border news",
        "MIEUX and asylum",
        "At the cut",
    ] {
        assert!(
            text.contains(title),
            "{title} missing from text part:\n{text}"
        );
    }
    assert!(
        text.contains(&format!("{BASE_URL}/unsubscribe/{token}")),
        "{text}"
    );

    // Renders without fetching anything: inline CSS only, no stylesheet, image, script or
    // other remote asset; every link is a plain http(s) anchor.
    for remote in [
        "<link", "<style", "<img", "<script", "<iframe", " src=\"", "url(", "@import",
    ] {
        assert!(!html.contains(remote), "{remote} in the HTML part");
    }
    assert!(html.matches("style=\"").count() > 10, "inline CSS");
    for href in html.split("href=\"").skip(1) {
        assert!(
            href.starts_with("https://") || href.starts_with("http://"),
            "{href:.60}"
        );
    }

    // Hostile text is escaped, never markup; a javascript: link is dropped.
    assert!(html.contains(
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    ));
    assert!(!html.contains("<script") && !html.contains("<b>bold") && !html.contains("<img"));
    assert!(!html.contains("javascript:"));
    assert!(html.contains("Tom &amp; Jerry"));
    assert!(
        text.contains("<script>alert(\"x\")</script>"),
        "plain text keeps the literal title"
    );

    let to_carol = got
        .iter()
        .find(|m| m["rcpt_tos"][0] == "carol@example.org")
        .expect("carol's digest");
    assert_eq!(
        header(to_carol, "subject"),
        "ICMPD news: 1 item in MIEUX (10 Mar 2026)"
    );

    // The next day: only what was first stored after the cut.
    items.push(item(
        "a3",
        "Asylum next day",
        &["asylum"],
        &[],
        "2026-03-10T12:00:00Z",
    ));
    items.push(item(
        "m2",
        "MIEUX next day",
        &[],
        &["mieux"],
        "2026-03-10T13:00:00Z",
    ));
    let store = MemoryItems(items.clone());
    let again = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T09:00:00Z"),
        false,
    )
    .await;
    assert_eq!(again.sent(), 0, "nothing due twice: {again:?}");
    let report = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-11T07:05:00Z"),
        false,
    )
    .await;
    assert_eq!(report.sent(), 2, "{report:?}");
    let got = server.received(4);
    assert_eq!(got.len(), 4);

    // Across alice's consecutive digests every matching item appears exactly once.
    let alice_html: Vec<&str> = got
        .iter()
        .filter(|m| m["rcpt_tos"][0] == "alice@example.org")
        .map(|m| part(m, "text/html"))
        .collect();
    assert_eq!(alice_html.len(), 2);
    let matching: Vec<&Item> = items
        .iter()
        .filter(|i| newsrelay::digest::matches(&alice, i) && i.id.0 != "old")
        .collect();
    for i in matching {
        let link = i.link.as_deref().unwrap_or("");
        let mut needle = String::new();
        newsrelay::digest::render::escape_html(&i.title, &mut needle);
        let n: usize = alice_html.iter().map(|h| h.matches(&needle).count()).sum();
        assert_eq!(n, 1, "{} ({link}) appears {n} times", i.title);
    }
    assert!(alice_html[1].contains("Asylum next day") && !alice_html[1].contains("At the cut"));
    let carol_second = got
        .iter()
        .filter(|m| m["rcpt_tos"][0] == "carol@example.org")
        .nth(1)
        .expect("carol's second digest");
    assert_eq!(
        header(carol_second, "subject"),
        "ICMPD news: 1 item in MIEUX (11 Mar 2026)"
    );
    assert_eq!(
        header(carol_second, "message-id"),
        key.message_id("carol@example.org", "2026-03-11", &from)
    );
}

#[tokio::test]
async fn empty_digest_is_sent_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start_smtp(dir.path(), &[]) else {
        return;
    };
    let mailer = SmtpMailer::new(&server.smtp(SmtpSecurity::None), &quick_retry()).unwrap();
    let key = DigestKey::new(b"another test secret of some size");
    let names = DisplayNames::default();
    let subs = vec![subscriber("dora@example.org", &["asylum"], &[])];
    let store = MemoryItems(vec![item(
        "x",
        "Other topic",
        &["mtm"],
        &[],
        "2026-03-09T20:00:00Z",
    )]);

    let off = settings(false);
    let ledgers = MemoryLedger::default();
    let r = run_digests(
        &context(&off, &key, &names),
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    assert_eq!(r.subscribers[0].outcome, Outcome::SkippedEmpty);
    // Handled: not reconsidered on the next check.
    let r = run_digests(
        &context(&off, &key, &names),
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T08:01:00Z"),
        false,
    )
    .await;
    assert_eq!(r.subscribers[0].outcome, Outcome::NotDue);

    let on = settings(true);
    let ledgers = MemoryLedger::default();
    let r = run_digests(
        &context(&on, &key, &names),
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    assert_eq!(r.sent(), 1, "{r:?}");
    let got = server.received(1);
    assert_eq!(got.len(), 1, "only the send_empty digest arrived");
    assert_eq!(
        header(&got[0], "subject"),
        "ICMPD news: no new items (10 Mar 2026)"
    );
    assert!(part(&got[0], "text/html").contains("No new items matched"));
}

#[tokio::test]
async fn temporary_refusals_are_retried_permanent_ones_reported() {
    let dir = tempfile::tempdir().unwrap();
    // The first two DATA commands get 451; the third attempt goes through.
    let Some(server) = start_smtp(
        dir.path(),
        &["--tempfail", "2", "--reject", "gone@example.org"],
    ) else {
        return;
    };
    let mailer = SmtpMailer::new(&server.smtp(SmtpSecurity::None), &quick_retry()).unwrap();
    let key = DigestKey::new(b"retry test secret ...............");
    let names = DisplayNames::default();
    let cfg = settings(false);
    let ctx = context(&cfg, &key, &names);
    let subs = vec![subscriber("erin@example.org", &[], &[])];
    let items = vec![item(
        "r1",
        "Retry me",
        &["asylum"],
        &[],
        "2026-03-09T20:00:00Z",
    )];
    let store = MemoryItems(items.clone());
    let ledgers = MemoryLedger::default();
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    assert!(
        matches!(r.subscribers[0].outcome, Outcome::Sent { .. }),
        "{r:?}"
    );
    assert_eq!(server.received(1).len(), 1);

    // 550 on RCPT: reported at once as permanent, items kept for the next digest.
    let gone = vec![subscriber("gone@example.org", &[], &[])];
    let r = run_digests(
        &ctx,
        &gone,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    match &r.subscribers[0].outcome {
        Outcome::PermanentFailure(e) => {
            assert!(
                e.contains("permanently") && e.contains("gone@example.org"),
                "{e}"
            )
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    let l = ledgers.load("gone@example.org").unwrap();
    assert!(l.last_sent.is_none());
    assert_eq!(l.handled_due, Some(t("2026-03-10T07:00:00Z")));
    let r = run_digests(
        &ctx,
        &gone,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T09:00:00Z"),
        false,
    )
    .await;
    assert_eq!(
        r.subscribers[0].outcome,
        Outcome::NotDue,
        "not retried within the period"
    );
}

#[tokio::test]
async fn exhausted_retries_leave_digest_pending_then_same_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start_smtp(dir.path(), &["--tempfail", "3"]) else {
        return;
    };
    let policy = SmtpOptions {
        retry: RetryPolicy {
            attempts: 2,
            first_backoff: std::time::Duration::from_millis(10),
            max_backoff: std::time::Duration::from_millis(10),
        },
        extra_root_pem: None,
    };
    let mailer = SmtpMailer::new(&server.smtp(SmtpSecurity::None), &policy).unwrap();
    let key = DigestKey::new(b"pending test secret .............");
    let names = DisplayNames::default();
    let cfg = settings(false);
    let ctx = context(&cfg, &key, &names);
    let subs = vec![subscriber("finn@example.org", &[], &[])];
    let store = MemoryItems(vec![item(
        "p1",
        "Pending",
        &["asylum"],
        &[],
        "2026-03-09T20:00:00Z",
    )]);
    let ledgers = MemoryLedger::default();
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    match &r.subscribers[0].outcome {
        Outcome::TemporaryFailure(e) => {
            assert!(e.contains("451") && e.contains("2 attempts"), "{e}")
        }
        other => panic!("expected a temporary failure, got {other:?}"),
    }
    let l = ledgers.load("finn@example.org").unwrap();
    let pending = l.open_digest().expect("still open");
    assert_eq!(pending.attempts, 1);
    // Next check: one more 451, then accepted; same period, same Message-ID.
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T08:01:00Z"),
        false,
    )
    .await;
    assert!(
        matches!(r.subscribers[0].outcome, Outcome::Sent { .. }),
        "{r:?}"
    );
    let got = server.received(1);
    assert_eq!(got.len(), 1);
    assert_eq!(header(&got[0], "message-id"), pending.message_id);
}

/// A mailer that hands the message to SMTP and then never returns, as if the process died
/// right after the server accepted it.
struct DiesAfterSend<'a>(&'a SmtpMailer);

impl Mailer for DiesAfterSend<'_> {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError> {
        self.0.send(message).await?;
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test]
async fn crash_in_sending_resends_with_same_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start_smtp(dir.path(), &[]) else {
        return;
    };
    let smtp = SmtpMailer::new(&server.smtp(SmtpSecurity::None), &quick_retry()).unwrap();
    let key = DigestKey::new(b"crash test secret ...............");
    let names = DisplayNames::default();
    let cfg = settings(false);
    let ctx = context(&cfg, &key, &names);
    let subs = vec![subscriber("gina@example.org", &[], &[])];
    let store = MemoryItems(vec![item(
        "c1",
        "Crash window",
        &["asylum"],
        &[],
        "2026-03-09T20:00:00Z",
    )]);
    let ledger_dir = dir.path().join("ledger");
    let ledgers = FileLedger::new(&ledger_dir).unwrap();
    let now = t("2026-03-10T08:00:00Z");
    let dying = DiesAfterSend(&smtp);
    let crashed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        run_digests(&ctx, &subs, &store, &ledgers, &dying, now, false),
    )
    .await;
    assert!(crashed.is_err(), "the run was cut off after the send");
    assert_eq!(server.received(1).len(), 1);
    let l = ledgers.load("gina@example.org").unwrap();
    assert_eq!(
        l.open_digest().map(|d| d.state),
        Some(newsrelay::digest::DeliveryState::Sending)
    );
    assert!(
        l.last_sent.is_none(),
        "items not delivered before the server's answer was seen"
    );

    // Restart (a day later even), reading the ledger from disk: the same digest is re-sent,
    // recognisably the same.
    drop(ledgers);
    let ledgers = FileLedger::new(&ledger_dir).unwrap();
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &smtp,
        now + Duration::days(1),
        false,
    )
    .await;
    match &r.subscribers[0].outcome {
        Outcome::Sent { resend, .. } => assert!(*resend),
        other => panic!("expected a re-send, got {other:?}"),
    }
    let got = server.received(2);
    assert_eq!(got.len(), 2);
    assert_eq!(header(&got[0], "message-id"), header(&got[1], "message-id"));
    assert_eq!(part(&got[0], "text/html"), part(&got[1], "text/html"));
    // Then the newer period goes out normally, without the crash-window item.
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &smtp,
        now + Duration::days(1),
        false,
    )
    .await;
    assert_eq!(r.subscribers[0].outcome, Outcome::SkippedEmpty);
}

#[tokio::test]
async fn preview_writes_eml_files() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = DirMailer::new(&dir.path().join("out")).unwrap();
    let key = DigestKey::new(b"preview secret ..................");
    let names = DisplayNames::default();
    let cfg = settings(false);
    let ctx = DigestContext {
        text_style: TextStyle::Html2Text,
        ..context(&cfg, &key, &names)
    };
    let subs = vec![subscriber("hank@example.org", &["asylum"], &[])];
    let store = MemoryItems(vec![item(
        "e1",
        "Preview item",
        &["asylum"],
        &[],
        "2026-03-09T20:00:00Z",
    )]);
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &MemoryLedger::default(),
        &mailer,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    assert_eq!(r.sent(), 1, "{r:?}");
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].to_string_lossy().ends_with(".eml"));
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(raw.contains("multipart/alternative"));
    assert!(raw.contains("Subject: ICMPD news: 1 item in Asylum (10 Mar 2026)"));
    // The html2text plain part keeps the unsubscribe URL whole (it is never wrapped).
    let unsubscribe = key.unsubscribe_url(BASE_URL, "hank@example.org");
    // Both parts are quoted-printable: join soft line breaks before looking.
    let unfolded = raw.replace("=\r\n", "").replace("=\n", "");
    assert_eq!(
        unfolded.matches(&unsubscribe).count(),
        3,
        "header, HTML and text:\n{raw}"
    );
}

#[test]
fn unsubscribe_tokens_verify_and_key_file_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/digest.key");
    let k1 = DigestKey::load_or_create(&path).unwrap();
    let k2 = DigestKey::load_or_create(&path).unwrap();
    let tok = k1.unsubscribe_token("Ivy@Example.org");
    assert_eq!(
        tok,
        k2.unsubscribe_token("ivy@example.org"),
        "same key, case-insensitive"
    );
    assert_eq!(tok.len(), 43);
    assert!(k2.verify_unsubscribe(&tok, "ivy@example.org"));
    assert!(!k2.verify_unsubscribe(&tok, "jay@example.org"));
    let mut tampered = tok.clone();
    tampered.replace_range(..1, if tok.starts_with('A') { "B" } else { "A" });
    assert!(!k2.verify_unsubscribe(&tampered, "ivy@example.org"));
    assert!(!k2.verify_unsubscribe("not base64 !!", "ivy@example.org"));
    let other = DigestKey::new(b"a different secret altogether...");
    assert!(!other.verify_unsubscribe(&tok, "ivy@example.org"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key file readable by others: {mode:o}");
    }
    std::fs::write(&path, b"short").unwrap();
    let e = DigestKey::load_or_create(&path).unwrap_err().to_string();
    assert!(e.contains("digest.key") && e.contains("16 bytes"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// TLS with a certificate made at test time.

fn test_certificate(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_pem = ck.cert.pem();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, cert_pem.into_bytes())
}

async fn tls_round_trip(security: SmtpSecurity, flag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, keyfile, pem) = test_certificate(dir.path());
    let out = dir.path().join("mail");
    std::fs::create_dir_all(&out).unwrap();
    let Some(server) = start_smtp(
        &out,
        &[
            flag,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            keyfile.to_str().unwrap(),
            "--auth",
            "digest:s3cret-pass",
        ],
    ) else {
        return;
    };
    let password_file = dir.path().join("smtp.pass");
    std::fs::write(&password_file, "s3cret-pass\n").unwrap();
    let mut smtp = server.smtp(security);
    smtp.username = Some("digest".into());
    smtp.password_file = Some(password_file);
    let options = SmtpOptions {
        extra_root_pem: Some(pem),
        ..quick_retry()
    };
    let mailer = SmtpMailer::new(&smtp, &options).unwrap();
    assert!(
        !format!("{mailer:?}").contains("s3cret"),
        "password never printed"
    );
    let key = DigestKey::new(b"tls test secret .................");
    let names = DisplayNames::default();
    let cfg = settings(false);
    let ctx = context(&cfg, &key, &names);
    let subs = vec![subscriber("kim@example.org", &[], &[])];
    let store = MemoryItems(vec![item(
        "s1",
        "Over TLS",
        &["asylum"],
        &[],
        "2026-03-09T20:00:00Z",
    )]);
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &MemoryLedger::default(),
        &mailer,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    assert_eq!(r.sent(), 1, "{r:?}");
    let got = server.received(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["authenticated"], true);

    // Without trusting the test certificate the connection is refused, and the error says so.
    let untrusting = SmtpMailer::new(
        &smtp,
        &SmtpOptions {
            retry: RetryPolicy {
                attempts: 1,
                ..quick_retry().retry
            },
            extra_root_pem: None,
        },
    )
    .unwrap();
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &MemoryLedger::default(),
        &untrusting,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    match &r.subscribers[0].outcome {
        Outcome::TemporaryFailure(e) => assert!(!e.contains("s3cret"), "{e}"),
        other => panic!("expected a refused TLS connection, got {other:?}"),
    }
}

#[tokio::test]
async fn starttls_with_authentication() {
    tls_round_trip(SmtpSecurity::StartTls, "--starttls").await;
}

#[tokio::test]
async fn implicit_tls_with_authentication() {
    tls_round_trip(SmtpSecurity::Tls, "--tls").await;
}

#[tokio::test]
async fn one_click_unsubscribe_stops_digests_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = DirMailer::new(&dir.path().join("out")).unwrap();
    let key = DigestKey::new(b"unsubscribe flow secret .........");
    let names = DisplayNames::default();
    let cfg = settings(true);
    let ctx = context(&cfg, &key, &names);
    let subs = vec![
        subscriber("lea@example.org", &[], &[]),
        subscriber("max@example.org", &[], &[]),
    ];
    let store = MemoryItems(vec![item(
        "u1",
        "Unsubscribe",
        &["asylum"],
        &[],
        "2026-03-09T20:00:00Z",
    )]);
    let ledgers = FileLedger::new(&dir.path().join("ledger")).unwrap();
    let token = key.unsubscribe_token("lea@example.org");
    assert!(unsubscribe(
        &key,
        &subs,
        &ledgers,
        "forged-token",
        t("2026-03-09T21:00:00Z")
    )
    .unwrap()
    .is_none());
    let who = unsubscribe(&key, &subs, &ledgers, &token, t("2026-03-09T21:00:00Z")).unwrap();
    assert_eq!(who.map(|s| s.email.as_str()), Some("lea@example.org"));

    let ledgers = FileLedger::new(&dir.path().join("ledger")).unwrap();
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T08:00:00Z"),
        false,
    )
    .await;
    assert_eq!(r.subscribers[0].outcome, Outcome::Unsubscribed);
    assert!(
        matches!(r.subscribers[1].outcome, Outcome::Sent { .. }),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        1
    );
    // Ledger files are named by a hash, never by the address.
    for e in std::fs::read_dir(dir.path().join("ledger")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.contains("example"), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// The real store.

pub(crate) fn store_with(dir: &Path, items: &[Item]) -> newsrelay::store::Store {
    let store = newsrelay::store::Store::open(&dir.join("db")).unwrap();
    for chunk in items.chunks(500) {
        let intents: Vec<newsrelay::dedup::Intent> = chunk
            .iter()
            .map(|i| newsrelay::dedup::Intent::Insert(Box::new(i.clone())))
            .collect();
        store
            .apply(&FeedId("icmpd-news".into()), &intents, None)
            .unwrap();
    }
    store
}

#[test]
fn store_window_pages_exactly_across_page_size() {
    use newsrelay::digest::DigestItems;
    let dir = tempfile::tempdir().unwrap();
    // 2,600 items over three days, every fifth one stamped at the same instant as its
    // neighbour (an ingest batch), so pages end inside groups of equal instants.
    let start = t("2026-03-08T00:00:00Z");
    let items: Vec<Item> = (0..2600)
        .map(|n| {
            let seen = start + Duration::seconds(100 * (n - n % 5 / 4) as i64);
            let mut i = item(
                &format!("s{n:05}"),
                &format!("Story {n}"),
                &["asylum"],
                &[],
                "2026-03-08T00:00:00Z",
            );
            i.first_seen = seen;
            i
        })
        .collect();
    let store = store_with(dir.path(), &items);
    let (after, until) = (t("2026-03-08T07:00:00Z"), t("2026-03-10T07:00:00Z"));
    let mut got: Vec<String> = store
        .first_stored_between(Some(after), until)
        .unwrap()
        .into_iter()
        .map(|i| i.id.0)
        .collect();
    got.sort();
    let mut want: Vec<String> = items
        .iter()
        .filter(|i| i.first_seen > after && i.first_seen <= until)
        .map(|i| i.id.0.clone())
        .collect();
    want.sort();
    assert!(
        want.len() > newsrelay::store::MAX_PAGE,
        "window spans several pages: {}",
        want.len()
    );
    assert_eq!(got, want);
    // From the beginning.
    assert_eq!(
        store.first_stored_between(None, until).unwrap().len(),
        items.iter().filter(|i| i.first_seen <= until).count()
    );
}

#[tokio::test]
async fn store_backed_consecutive_digests_deliver_each_item_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail");
    std::fs::create_dir_all(&out).unwrap();
    let Some(server) = start_smtp(&out, &[]) else {
        return;
    };
    let mailer = SmtpMailer::new(&server.smtp(SmtpSecurity::None), &quick_retry()).unwrap();
    let key = DigestKey::new(b"store-backed digest secret ......");
    let names = DisplayNames::default();
    let cfg = settings(false);
    let ctx = context(&cfg, &key, &names);
    let subs = vec![subscriber("nina@example.org", &["asylum"], &[])];
    let ledger_dir = dir.path().join("ledger");

    // Day one: three items, one of another programme.
    let day1 = vec![
        item(
            "d1a",
            "Day one asylum",
            &["asylum"],
            &[],
            "2026-03-09T10:00:00Z",
        ),
        item(
            "d1b",
            "Day one second",
            &["asylum"],
            &[],
            "2026-03-09T11:00:00Z",
        ),
        item(
            "d1x",
            "Day one other",
            &["mtm"],
            &[],
            "2026-03-09T12:00:00Z",
        ),
    ];
    let store = store_with(dir.path(), &day1);
    let ledgers = FileLedger::new(&ledger_dir).unwrap();
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T07:01:00Z"),
        false,
    )
    .await;
    assert_eq!(r.sent(), 1, "{r:?}");
    drop(store);

    // Day two: new items arrive (one exactly at the cut of day one's digest is impossible
    // now: it is stored later); restart with the same store and ledger.
    let day2 = vec![
        item(
            "d2a",
            "Day two asylum",
            &["asylum"],
            &[],
            "2026-03-10T09:00:00Z",
        ),
        item(
            "d2b",
            "Day two late",
            &["asylum"],
            &[],
            "2026-03-11T06:59:00Z",
        ),
    ];
    let store = store_with(dir.path(), &day2);
    let ledgers = FileLedger::new(&ledger_dir).unwrap();
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-11T07:01:00Z"),
        false,
    )
    .await;
    assert_eq!(r.sent(), 1, "{r:?}");
    let r = run_digests(
        &ctx,
        &subs,
        &store,
        &ledgers,
        &mailer,
        t("2026-03-11T07:02:00Z"),
        false,
    )
    .await;
    assert_eq!(r.sent(), 0, "{r:?}");

    let got = server.received(2);
    assert_eq!(got.len(), 2);
    let htmls: Vec<&str> = got.iter().map(|m| part(m, "text/html")).collect();
    for title in [
        "Day one asylum",
        "Day one second",
        "Day two asylum",
        "Day two late",
    ] {
        let n: usize = htmls.iter().map(|h| h.matches(title).count()).sum();
        assert_eq!(n, 1, "{title} appears {n} times");
    }
    assert!(!htmls.iter().any(|h| h.contains("Day one other")));
    assert!(htmls[0].contains("Day one asylum") && htmls[1].contains("Day two late"));
}

#[tokio::test]
async fn store_backed_first_digest_covers_its_period_then_each_item_once() {
    // A new subscriber's first digest holds the items of its first period only, however much
    // the store holds from before; the digests after it start where it ended. Many subscribers
    // in other zones and at other times, with other filters, read windows of the same store
    // in the same run, each digest as the whole window would give it.
    let dir = tempfile::tempdir().unwrap();
    let key = DigestKey::new(b"first digest window secret .......");
    let names = DisplayNames::default();
    let mut cfg = settings(false);
    cfg.max_items = 3;
    let ctx = context(&cfg, &key, &names);
    // 800 items, one every 10 minutes from 5 March to 10 March.
    let start = t("2026-03-05T00:05:00Z");
    let items: Vec<Item> = (0..800)
        .map(|n| {
            let programme = ["asylum", "mtm", "mieux"][n % 3];
            let mut i = item(
                &format!("h{n:04}"),
                &format!("History {n}"),
                &[programme],
                &[],
                "2026-03-05T00:00:00Z",
            );
            i.first_seen = start + Duration::minutes(10 * n as i64);
            i.published = Some(i.first_seen - Duration::minutes((n % 5) as i64 * 25));
            i
        })
        .collect();
    let store = store_with(dir.path(), &items);
    let mut subs = vec![subscriber("nina@example.org", &["asylum"], &[])];
    for (n, tz) in [
        chrono_tz::UTC,
        chrono_tz::America::Bogota,
        chrono_tz::Asia::Tokyo,
    ]
    .into_iter()
    .enumerate()
    {
        for m in 0..8u32 {
            let mut s = subscriber(
                &format!("zone{n}-{m}@example.org"),
                &[["asylum", "mtm", "mieux"][(m % 3) as usize]],
                &[],
            );
            s.timezone = tz;
            s.at = (6, 7 * m);
            if m % 4 == 0 {
                s.programmes.clear();
            }
            subs.push(s);
        }
    }
    let ledger_dir = dir.path().join("ledger");
    let ledgers = FileLedger::new(&ledger_dir).unwrap();
    let mail = dir.path().join("mail");
    let mailer = DirMailer::new(&mail).unwrap();
    let now = t("2026-03-09T07:30:00Z");
    let r = run_digests(&ctx, &subs, &store, &ledgers, &mailer, now, false).await;
    assert_eq!(r.sent(), subs.len(), "{r:?}");
    assert_eq!(r.failed(), 0, "{r:?}");
    for s in &subs {
        let ledger = ledgers.load(&s.email).unwrap();
        let d = ledger.last_sent.as_ref().expect("sent");
        // One period back from the period due, not the whole store.
        let schedule = DigestSchedule::from_subscriber(s);
        let due = schedule.latest_due(now).unwrap();
        assert_eq!(d.until, due.due);
        assert_eq!(
            d.since,
            Some(schedule.previous(&due).unwrap().due),
            "{}",
            s.email
        );
        // What the whole window gives: the newest 3 matching items by display date.
        let mut want: Vec<&Item> = items
            .iter()
            .filter(|i| d.since.is_none_or(|a| i.first_seen > a) && i.first_seen <= d.until)
            .filter(|i| newsrelay::digest::matches(s, i))
            .collect();
        want.sort_by(|a, b| {
            b.display_date()
                .cmp(&a.display_date())
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut want: Vec<String> = want.iter().take(3).map(|i| i.id.0.clone()).collect();
        let mut got: Vec<String> = d.item_ids.iter().map(|i| i.0.clone()).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{}", s.email);
    }
    let nina = ledgers.load("nina@example.org").unwrap();
    let first = nina.last_sent.unwrap();
    assert_eq!(first.since, Some(t("2026-03-08T07:00:00Z")));
    assert_eq!(first.item_ids.len(), 3);

    // The next day: the new digest starts where the first ended, and nothing repeats.
    let r = run_digests(
        &ctx,
        &subs[..1],
        &store,
        &ledgers,
        &mailer,
        t("2026-03-10T07:30:00Z"),
        false,
    )
    .await;
    assert_eq!(r.sent(), 1, "{r:?}");
    let second = ledgers.load("nina@example.org").unwrap().last_sent.unwrap();
    assert_eq!(second.since, Some(first.until));
    assert!(second
        .item_ids
        .iter()
        .all(|id| !first.item_ids.contains(id)));
    let previews = std::fs::read_dir(&mail).unwrap().count();
    assert_eq!(previews, subs.len() + 1);
}

// ---------------------------------------------------------------------------------------------
// The commands.

fn newsrelay(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run newsrelay")
}

#[test]
fn digest_preview_and_send_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail");
    std::fs::create_dir_all(&out).unwrap();
    let Some(server) = start_smtp(&out, &[]) else {
        return;
    };
    // One item inside the window of the digest due most recently, one outside it.
    let sub = subscriber("olga@example.org", &["asylum"], &[]);
    let due = DigestSchedule::from_subscriber(&sub)
        .latest_due(Utc::now())
        .unwrap()
        .due;
    let mut inside = item(
        "cli1",
        "Command line item",
        &["asylum"],
        &[],
        "2026-01-01T00:00:00Z",
    );
    inside.first_seen = due - Duration::hours(1);
    let mut outside = item(
        "cli2",
        "Too early",
        &["asylum"],
        &[],
        "2026-01-01T00:00:00Z",
    );
    outside.first_seen = due - Duration::days(3);
    drop(store_with(dir.path(), &[inside, outside]));
    let config = dir.path().join("newsrelay.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"db\"\n[server]\nbase_url = \"https://news.example.org\"\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"ICMPD news <news@example.org>\"\n\
             [[subscribers]]\nemail = \"olga@example.org\"\nprogrammes = [\"asylum\"]\n\
             at = \"08:00\"\ntimezone = \"Europe/Vienna\"\n",
            server.port
        ),
    )
    .unwrap();

    let preview_dir = dir.path().join("preview");
    let o = newsrelay(
        &config,
        &["digest", "preview", "--out", preview_dir.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("olga@example.org") && stdout.contains("1 items written"),
        "{stdout}"
    );
    let files: Vec<_> = std::fs::read_dir(&preview_dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    // The key was created beside the store; the unsubscribe link uses it.
    assert!(dir.path().join("digest/key").exists());

    let o = newsrelay(&config, &["digest", "send"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("1 items sent"), "{stdout}");
    let got = server.received(1);
    assert_eq!(got.len(), 1, "the preview sent nothing; send sent one");
    let html = part(&got[0], "text/html");
    assert!(html.contains("Command line item") && !html.contains("Too early"));
    assert!(
        header(&got[0], "list-unsubscribe").starts_with("<https://news.example.org/unsubscribe/")
    );

    let o = newsrelay(&config, &["digest", "send"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(stdout.contains("nothing due (next: "), "{stdout}");
    let o = newsrelay(&config, &["digest", "send", "--now"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(stdout.contains("no new items, not sent"), "{stdout}");
    assert_eq!(
        server
            .received_within(2, std::time::Duration::from_millis(500))
            .len(),
        1,
        "no second message"
    );

    // Without [smtp], send refuses with a clear line and exit 1.
    std::fs::write(&config, "[store]\npath = \"db\"\n").unwrap();
    let o = newsrelay(&config, &["digest", "send"]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("[smtp]") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[test]
fn killed_while_sending_resends_same_message_id_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail");
    std::fs::create_dir_all(&out).unwrap();
    // The server records the first message, then keeps the client waiting for its answer.
    let Some(server) = start_smtp(&out, &["--hold-first", "30"]) else {
        return;
    };
    let sub = subscriber("pia@example.org", &[], &[]);
    let due = DigestSchedule::from_subscriber(&sub)
        .latest_due(Utc::now())
        .unwrap()
        .due;
    let mut it = item(
        "k1",
        "Sent during a crash",
        &["asylum"],
        &[],
        "2026-01-01T00:00:00Z",
    );
    it.first_seen = due - Duration::minutes(30);
    drop(store_with(dir.path(), &[it]));
    let config = dir.path().join("newsrelay.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"db\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\n\
             from = \"ICMPD news <news@example.org>\"\n\
             [[subscribers]]\nemail = \"pia@example.org\"\ntimezone = \"Europe/Vienna\"\n",
            server.port
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .arg("--config")
        .arg(&config)
        .args(["digest", "send"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the server holds the message, then kill the sender (SIGKILL).
    assert_eq!(server.received(1).len(), 1, "first message arrived");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");

    // Restart: the ledger on disk says `sending`; the same digest goes out again.
    let o = newsrelay(&config, &["digest", "send"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("re-sent after an interrupted send"),
        "{stdout}"
    );
    let got = server.received(2);
    assert_eq!(got.len(), 2);
    assert_eq!(header(&got[0], "message-id"), header(&got[1], "message-id"));
    assert!(part(&got[1], "text/html").contains("Sent during a crash"));
    // And nothing more: the period is now handled.
    let o = newsrelay(&config, &["digest", "send"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing due"));
    assert_eq!(
        server
            .received_within(3, std::time::Duration::from_millis(500))
            .len(),
        2
    );
}

#[test]
fn key_created_once_when_several_processes_start_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digest/key");
    // Eight concurrent first starts: all end up with the one key that won, none fails.
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    DigestKey::load_or_create(&path)
                        .map(|k| k.unsubscribe_token("ivy@example.org"))
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "{tokens:?}");
    let again = DigestKey::load_or_create(&path).unwrap();
    assert_eq!(again.unsubscribe_token("ivy@example.org"), tokens[0]);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("digest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["key"], "no temporary files left behind");
}

#[test]
fn unsubscribe_during_a_send_survives_the_senders_save() {
    let dir = tempfile::tempdir().unwrap();
    let sched = DigestSchedule::from_subscriber(&subscriber("rae@example.org", &[], &[]));
    let ledgers = FileLedger::new(&dir.path().join("ledger")).unwrap();
    // The sender loads the ledger and opens a digest...
    let mut sending = ledgers.load("rae@example.org").unwrap();
    assert!(matches!(
        sending.next(&sched, t("2026-03-10T08:00:00Z"), false, |p| format!(
            "<{p}@x>"
        )),
        NextDigest::Send { .. }
    ));
    sending.mark_sending(Vec::new()).unwrap();
    ledgers.save("rae@example.org", &sending).unwrap();
    // ...the server records a one-click unsubscribe meanwhile (its own ledger handle)...
    let server_side = FileLedger::new(&dir.path().join("ledger")).unwrap();
    let mut l = server_side.load("rae@example.org").unwrap();
    l.unsubscribe(t("2026-03-10T08:00:01Z"));
    server_side.save("rae@example.org", &l).unwrap();
    // ...and the sender saves its stale copy after the server accepted the digest.
    sending.mark_sent().unwrap();
    ledgers.save("rae@example.org", &sending).unwrap();
    let after = ledgers.load("rae@example.org").unwrap();
    assert_eq!(after.unsubscribed, Some(t("2026-03-10T08:00:01Z")));
    assert!(after.last_sent.is_some(), "the sent digest is recorded too");
    assert_eq!(
        after
            .clone()
            .next(&sched, t("2026-03-11T08:00:00Z"), true, |p| p.to_string()),
        NextDigest::Nothing
    );
}
