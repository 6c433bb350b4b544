//! Integration tests: `newsrelay run` as a service manager drives it (signals, reload, stop).

use crate::Daemon;
use std::process::Command;
use std::time::Duration;

const FEED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Daemon test</title><link>http://example.org/</link>
<description>d</description>
<item><title>Workshop on asylum capacities</title><link>http://example.org/a</link>
<guid>urn:test:a</guid><pubDate>Fri, 16 Aug 2019 09:22:23 +0200</pubDate>
<description>ICMPD supports asylum capacity building.</description></item>
</channel></rss>"#;

#[test]
fn sighup_rejects_bad_config_and_sigterm_exits_zero_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.xml"), FEED).unwrap();
    // The daemon classifies what it stores, so it needs its taxonomy beside the config.
    super::bundled_taxonomy_into(dir.path());
    let good = "[store]\npath = \"db\"\n[server]\nlisten = \"127.0.0.1:0\"\n[[feeds]]\nid = \"test\"\nurl = \"file://feed.xml\"\n";
    let cfg = dir.path().join("newsrelay.toml");
    std::fs::write(&cfg, good).unwrap();

    let mut d = Daemon::start(&cfg, Some("info"));
    d.wait_for("fetch cycle done");

    // A broken config is rejected with its line, and the daemon keeps running.
    std::fs::write(&cfg, format!("{good}bogus_key = 1\n")).unwrap();
    d.signal("-HUP");
    let line = d.wait_for("reload rejected");
    assert!(line.contains("bogus_key") && line.contains(":8:"), "{line}");

    // A good config is accepted.
    std::fs::write(&cfg, good).unwrap();
    d.signal("-HUP");
    d.wait_for("config reloaded");

    d.signal("-TERM");
    d.wait_for("stopped cleanly");
    assert_eq!(d.wait_exit(), Some(0));

    // The store was released and opens again.
    let out = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .args(["--config", cfg.to_str().unwrap(), "export"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One HTTP/1.1 request over a plain socket; returns (status, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 26\r\nConnection: close\r\n\r\nList-Unsubscribe=One-Click"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, raw)
}

#[test]
fn daemon_sends_due_digest_and_one_click_unsubscribe_stops_further_digests() {
    use super::digest::{header, item, part, start_smtp, store_with};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail");
    std::fs::create_dir_all(&out).unwrap();
    let Some(smtp) = start_smtp(&out, &[]) else {
        return;
    };
    // Both subscribers' digests fell due 30 minutes ago (UTC); one item is in the window.
    let now = chrono::Utc::now();
    let due = now - chrono::Duration::minutes(30);
    let mut inside = item(
        "dd1",
        "Due before start",
        &["asylum"],
        &[],
        "2026-01-01T00:00:00Z",
    );
    inside.first_seen = due - chrono::Duration::hours(1);
    drop(store_with(dir.path(), &[inside]));
    std::fs::write(dir.path().join("feed.xml"), FEED).unwrap();
    super::bundled_taxonomy_into(dir.path());
    let at = due.format("%H:%M");
    let cfg = dir.path().join("newsrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"db\"\n[server]\nlisten = \"127.0.0.1:0\"\nbase_url = \"https://news.example.org\"\n\
             [[feeds]]\nid = \"test\"\nurl = \"file://feed.xml\"\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"ICMPD news <news@example.org>\"\n\
             [[subscribers]]\nemail = \"quit@example.org\"\nat = \"{at}\"\ntimezone = \"UTC\"\n\
             [[subscribers]]\nemail = \"stay@example.org\"\nat = \"{at}\"\ntimezone = \"UTC\"\n",
            smtp.port
        ),
    )
    .unwrap();

    let mut d = Daemon::start(&cfg, Some("info"));
    let line = d.wait_for("HTTP server listening");
    let addr = line
        .split("listen=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("listen address in the log line")
        .to_string();
    // The daemon's scheduler tick sends both due digests.
    let got = smtp.received(2);
    assert_eq!(got.len(), 2, "both due digests delivered by the daemon");
    let to_quit = got
        .iter()
        .find(|m| m["rcpt_tos"][0] == "quit@example.org")
        .expect("digest to quit@");
    assert!(part(to_quit, "text/html").contains("Due before start"));
    let link = header(to_quit, "list-unsubscribe");
    let token = link
        .trim_matches(|c| c == '<' || c == '>')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        link.starts_with("<https://news.example.org/unsubscribe/"),
        "{link}"
    );

    // GET shows a confirm page and changes nothing; a forged token is refused; POST is the click.
    let (status, page) = http(&addr, "GET", &format!("/unsubscribe/{token}"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(http(&addr, "POST", "/unsubscribe/not-a-real-token").0, 404);
    let (status, page) = http(&addr, "POST", &format!("/unsubscribe/{token}"));
    assert_eq!(status, 200, "{page}");
    d.wait_for("unsubscribed");
    d.signal("-TERM");
    assert_eq!(d.wait_exit(), Some(0));

    // A new item, then everything pending sent now: only the subscriber who stayed gets it.
    let mut later = item(
        "dd2",
        "After the click",
        &["asylum"],
        &[],
        "2026-01-01T00:00:00Z",
    );
    later.first_seen = chrono::Utc::now() - chrono::Duration::seconds(1);
    drop(store_with(dir.path(), &[later]));
    let o = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .args(["--config", cfg.to_str().unwrap(), "digest", "send", "--now"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("quit@example.org: unsubscribed"),
        "{stdout}"
    );
    let got = smtp.received(3);
    assert_eq!(got.len(), 3, "{stdout}");
    assert_eq!(got[2]["rcpt_tos"][0], "stay@example.org");
    assert!(part(&got[2], "text/html").contains("After the click"));
    assert_eq!(
        smtp.received_within(4, Duration::from_millis(300)).len(),
        3,
        "nothing more for the unsubscribed address"
    );
}
