//! Integration tests: newsrelay as an installed system service: the systemd unit, the example
//! config, JSON logs with a span per feed, and `newsrelay status` over a real store (free, held
//! by a running daemon, and held with no server answering).

use crate::Daemon;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_newsrelay");

fn newsrelay(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// The unit

/// The unit's `Key=value` lines (comments and sections dropped), in order.
fn unit_lines() -> Vec<(String, String)> {
    std::fs::read_to_string(format!("{ROOT}/config/newsrelay.service"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let tool = Path::new("/usr/bin/systemd-analyze");
    if !tool.exists() {
        eprintln!("systemd-analyze is not installed: unit verification skipped");
        return;
    }
    // Verify a copy whose ExecStart names the binary just built (verify checks that the
    // command exists and is executable); everything else is the unit as shipped.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(format!("{ROOT}/config/newsrelay.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/newsrelay "), "{unit}");
    let copy = dir.path().join("newsrelay.service");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/bin/newsrelay ",
            &format!("ExecStart={BIN} "),
        ),
    )
    .unwrap();
    let out = Command::new(tool)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let about_unit: Vec<&str> = said.lines().filter(|l| l.contains("newsrelay")).collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: exit {:?}\n{said}",
        out.status.code()
    );
}

#[test]
fn unit_is_notify_with_watchdog_dedicated_user_and_hardening() {
    let lines = unit_lines();
    let get = |k: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |k: &str| -> String {
        let v = get(k);
        assert_eq!(v.len(), 1, "{k}= should appear once, found {v:?}");
        v[0].to_string()
    };
    assert_eq!(one("Type"), "notify");
    assert!(
        one("WatchdogSec")
            .trim_end_matches('s')
            .parse::<u32>()
            .unwrap()
            >= 10
    );
    assert_eq!(one("User"), "newsrelay");
    assert_eq!(one("Group"), "newsrelay");
    assert_eq!(one("StateDirectory"), "newsrelay");
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallArchitectures", "native"),
    ] {
        assert_eq!(one(k), v, "{k}");
    }
    assert_eq!(
        get("SystemCallFilter"),
        ["@system-service", "~@privileged @resources"]
    );
    assert_eq!(get("CapabilityBoundingSet"), [""]);
    // The store path of the example config lives in the state directory, where the unit
    // lets the service write.
    let example = std::fs::read_to_string(format!("{ROOT}/config/newsrelay.example.toml")).unwrap();
    assert!(
        example.contains("path = \"/var/lib/newsrelay/"),
        "{example}"
    );
    assert_eq!(one("WorkingDirectory"), "/var/lib/newsrelay");
    assert!(one("ExecStart").contains("--config /etc/newsrelay/newsrelay.toml run"));
}

// ---------------------------------------------------------------------------------------------
// The example config

#[test]
fn printed_example_config_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    super::bundled_taxonomy_into(dir.path());
    let out = Command::new(BIN)
        .args(["print-config", "--example"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = dir.path().join("newsrelay.toml");
    std::fs::write(&cfg, &out.stdout).unwrap();
    let check = newsrelay(&cfg, &["check-config"]);
    assert!(
        check.status.success(),
        "the printed example does not validate: {}",
        text(&check.stderr)
    );
    let said = text(&check.stdout);
    assert!(
        said.contains(": ok (1 feeds, 1 subscribers; taxonomy "),
        "{said}"
    );
    assert!(said.contains("6 programmes"), "{said}");

    // check-config also loads the taxonomy: a broken one fails with its file named.
    std::fs::write(dir.path().join("programmes.toml"), "[classifier\n").unwrap();
    let bad = newsrelay(&cfg, &["check-config"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stdout));
    let err = text(&bad.stderr);
    assert!(err.contains("programmes.toml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

// ---------------------------------------------------------------------------------------------
// The daemon, as a service manager runs it

const FEED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Service test</title><link>http://example.org/</link>
<description>d</description>
<item><title>Workshop on asylum capacities</title><link>http://example.org/a</link>
<guid>urn:test:a</guid><pubDate>Fri, 16 Aug 2019 09:22:23 +0200</pubDate>
<description>ICMPD supports asylum capacity building.</description></item>
<item><title>Border management training in the Western Balkans</title><link>http://example.org/b</link>
<guid>urn:test:b</guid><pubDate>Sat, 17 Aug 2019 09:22:23 +0200</pubDate>
<description>Border guards trained on integrated border management.</description></item>
</channel></rss>"#;

/// A folder with a taxonomy, a two-item feed (`good`) and a feed whose file is missing
/// (`broken`); `extra` is appended to the config.
fn service_dir(port: u16, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    super::bundled_taxonomy_into(dir.path());
    std::fs::write(dir.path().join("feed.xml"), FEED).unwrap();
    let cfg = dir.path().join("newsrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"state/db\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [[feeds]]\nid = \"good\"\nurl = \"file://feed.xml\"\n\
             [[feeds]]\nid = \"broken\"\nurl = \"file://missing.xml\"\n{extra}"
        ),
    )
    .unwrap();
    (dir, cfg)
}

#[test]
fn json_logs_are_one_object_per_line_with_the_feed_in_a_span() {
    let (_dir, cfg) = service_dir(free_port(), "[log]\nlevel = \"info\"\nformat = \"json\"\n");
    let mut d = Daemon::start(&cfg, None);
    d.wait_for("fetch cycle done");
    assert_eq!(d.stop(), Some(0));

    let mut by_feed: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in &d.seen {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        assert_ne!(v["level"], "DEBUG", "level info from the config: {line}");
        if let Some(feed) = v["span"]["feed"].as_str() {
            assert_eq!(v["span"]["name"], "feed", "{line}");
            let message = v["message"].as_str().unwrap_or_default().to_string();
            by_feed.entry(feed.to_string()).or_default().push(message);
        }
    }
    let good = by_feed.get("good").cloned().unwrap_or_default();
    let broken = by_feed.get("broken").cloned().unwrap_or_default();
    assert!(
        good.iter().any(|m| m == "stored"),
        "{by_feed:?}\n{:#?}",
        d.seen
    );
    assert!(broken.iter().any(|m| m == "fetch failed"), "{by_feed:?}");
    // Lines outside a feed's work carry no feed.
    assert!(d
        .seen
        .iter()
        .any(|l| l.contains("fetch cycle done") && !l.contains("\"feed\"")));
}

/// The start column of `word` in `line`, in characters.
fn column(line: &str, word: &str) -> usize {
    let at = line
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} not in {line:?}"));
    line[..at].chars().count()
}

/// The table row that starts with `first`.
fn row<'a>(out: &'a str, first: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{out}"))
}

const SUBSCRIBER: &str = "[[subscribers]]\nemail = \"staff@example.org\"\nfrequency = \"daily\"\n\
                          at = \"08:00\"\ntimezone = \"Europe/Vienna\"\n";

#[test]
fn status_shows_feed_health_counts_store_size_and_next_digest() {
    let (dir, cfg) = service_dir(free_port(), SUBSCRIBER);
    // Before anything was fetched: status works and creates nothing.
    let before = newsrelay(&cfg, &["status"]);
    assert!(before.status.success(), "{}", text(&before.stderr));
    assert!(
        text(&before.stdout)
            .starts_with("newsrelay: 2 feeds (0 ok, 0 failing, 2 never fetched), 0 items"),
        "{}",
        text(&before.stdout)
    );
    assert!(
        !dir.path().join("state").exists(),
        "status created the store"
    );

    let fetched = newsrelay(&cfg, &["fetch"]);
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    let out = newsrelay(&cfg, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let summary = s.lines().next().unwrap();
    assert!(
        summary
            .starts_with("newsrelay: 2 feeds (1 ok, 1 failing, 0 never fetched), 2 items, store "),
        "{s}"
    );
    assert!(summary.contains(" on disk, next check in "), "{s}");

    // One aligned row per feed under its header.
    let header = row(&s, "FEED");
    let good = row(&s, "good");
    let broken = row(&s, "broken");
    // Each cell starts under its header.
    let cell = |line: &str, col: &str| -> String {
        line.chars().skip(column(header, col)).collect::<String>()
    };
    assert!(
        cell(good, "LAST SUCCESS")
            .chars()
            .next()
            .unwrap()
            .is_ascii_digit(),
        "{s}"
    );
    assert!(cell(good, "NEXT CHECK").starts_with("in "), "{s}");
    assert!(cell(broken, "LAST ERROR").contains("missing.xml"), "{s}");
    assert_eq!(column(good, "ok"), column(header, "HEALTH"), "{s}");
    assert_eq!(
        column(broken, "FAILING x1"),
        column(header, "HEALTH"),
        "{s}"
    );
    // ITEMS is right-aligned: the count ends where the header ends.
    assert_eq!(
        column(good, " 2 ") + 2,
        column(header, "ITEMS") + "ITEMS".len(),
        "{s}"
    );
    assert!(good.contains("s ago") || good.contains("m ago"), "{s}");
    assert!(
        broken.contains("never") && broken.contains("missing.xml"),
        "{s}"
    );

    // The counts are the store's own.
    let store = newsrelay::store::Store::open(&dir.path().join("state/db")).unwrap();
    assert_eq!(store.item_count(), 2);
    drop(store);

    // No digest recorded yet: today's period is due (the first digest covers one period).
    let sub = row(&s, "staff@example.org");
    assert!(sub.contains("daily 08:00 Europe/Vienna"), "{s}");
    assert!(sub.contains("never") && sub.contains(" due now"), "{s}");

    // Once the latest period is recorded as sent, the next one is named with its local time.
    let sub_settings = newsrelay::config::Config::load(&cfg).unwrap().subscribers[0].clone();
    let schedule = newsrelay::schedule::DigestSchedule::from_subscriber(&sub_settings);
    let now = chrono::Utc::now();
    let latest = schedule.latest_due(now).unwrap();
    let ledger_dir = dir.path().join("state/digest/ledger");
    let ledgers = newsrelay::digest::FileLedger::new(&ledger_dir).unwrap();
    let sent = newsrelay::digest::Delivery {
        period: latest.key.clone(),
        due: latest.due,
        since: None,
        until: latest.due,
        message_id: "<test@example.org>".into(),
        item_ids: Vec::new(),
        state: newsrelay::digest::DeliveryState::Sent,
        attempts: 0,
        last_error: None,
    };
    let ledger = newsrelay::digest::SubscriberLedger {
        last_sent: Some(sent),
        current: None,
        handled_due: Some(latest.due),
        unsubscribed: None,
    };
    newsrelay::digest::LedgerStore::save(&ledgers, "staff@example.org", &ledger).unwrap();
    let next = schedule.next_due(now).unwrap();
    let out = newsrelay(&cfg, &["status"]);
    let s = text(&out.stdout);
    let sub = row(&s, "staff@example.org");
    assert!(sub.contains(&latest.key), "last sent: {s}");
    assert!(
        sub.contains(&format!(" {} 08:00 CE", next.key)) && sub.contains("(in "),
        "{s}"
    );
}

#[test]
fn status_asks_the_running_daemon_when_it_holds_the_store() {
    let port = free_port();
    let (_dir, cfg) = service_dir(port, "");
    let mut d = Daemon::start(&cfg, None);
    d.wait_for("fetch cycle done");
    let out = newsrelay(&cfg, &["status"]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{}{s}", text(&out.stderr));
    assert!(
        s.contains(&format!(
            "read from the running daemon at http://127.0.0.1:{port}/api/status"
        )),
        "{s}"
    );
    assert!(
        s.starts_with("newsrelay: 2 feeds (1 ok, 1 failing, 0 never fetched), 2 items"),
        "{s}"
    );
    assert!(row(&s, "good").contains(" ok "), "{s}");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn status_says_what_to_do_when_the_store_is_held_and_no_server_answers() {
    let (dir, cfg) = service_dir(free_port(), "");
    let fetched = newsrelay(&cfg, &["fetch"]);
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    // This process holds the store's lock, as a daemon would, with nothing on server.listen.
    let held = newsrelay::store::Store::open(&dir.path().join("state/db")).unwrap();
    let out = newsrelay(&cfg, &["status"]);
    drop(held);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("in use by a running newsrelay")
            && err.contains("did not answer")
            && err.contains("systemctl stop newsrelay"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The Debian package's inputs (building the .deb itself is scripts/build-deb, not CI)

#[test]
fn debian_package_inputs_exist_and_scripts_parse() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(format!("{ROOT}/Cargo.toml")).unwrap()).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let mut dests = Vec::new();
    for asset in deb["assets"].as_array().unwrap() {
        let source = asset[0].as_str().unwrap();
        dests.push(asset[1].as_str().unwrap().to_string());
        if source.starts_with("target/") {
            continue; // built by cargo deb or by scripts/build-deb
        }
        let found = if let Some(dir) = source.strip_suffix("/*.jsonl") {
            std::fs::read_dir(format!("{ROOT}/{dir}"))
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        } else {
            Path::new(&format!("{ROOT}/{source}")).is_file()
        };
        assert!(found, "package asset {source} is missing");
    }
    for want in [
        "usr/bin/",
        "etc/newsrelay/newsrelay.toml",
        "etc/newsrelay/programmes.toml",
        "usr/share/newsrelay/labelled/",
    ] {
        assert!(
            dests.iter().any(|d| d == want),
            "no asset installed at {want}"
        );
    }
    // The installed taxonomy's training set is where the package puts it.
    let build = std::fs::read_to_string(format!("{ROOT}/scripts/build-deb")).unwrap();
    assert!(build.contains("training = [\"/usr/share/newsrelay/labelled\"]"));
    let units = &deb["systemd-units"];
    assert_eq!(units["unit-name"].as_str(), Some("newsrelay"));
    let dir = units["unit-scripts"].as_str().unwrap();
    assert!(Path::new(&format!("{ROOT}/{dir}/newsrelay.service")).is_file());

    let scripts = deb["maintainer-scripts"].as_str().unwrap();
    for script in ["postinst", "postrm"] {
        let path = format!("{ROOT}/{scripts}/{script}");
        let out = Command::new("sh").args(["-n", &path]).output().unwrap();
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
        let body = std::fs::read_to_string(&path).unwrap();
        assert!(
            body.contains("#DEBHELPER#"),
            "{script} lacks the #DEBHELPER# token"
        );
    }
    let postinst = std::fs::read_to_string(format!("{ROOT}/{scripts}/postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group"), "{postinst}");
}
