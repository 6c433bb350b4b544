//! Integration tests: `newsrelay run` as a service manager drives it (signals, reload, stop).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const FEED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Daemon test</title><link>http://example.org/</link>
<description>d</description>
<item><title>Workshop on asylum capacities</title><link>http://example.org/a</link>
<guid>urn:test:a</guid><pubDate>Fri, 16 Aug 2019 09:22:23 +0200</pubDate>
<description>ICMPD supports asylum capacity building.</description></item>
</channel></rss>"#;

struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(config: &std::path::Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
            .args(["--config", config.to_str().unwrap(), "run"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!(
            "no log line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("daemon did not exit within 30 s");
    }
}

#[test]
fn sighup_rejects_bad_config_and_sigterm_exits_zero_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.xml"), FEED).unwrap();
    // The daemon classifies what it stores, so it needs its taxonomy beside the config.
    let taxonomy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/programmes.toml"
    ))
    .unwrap()
    .replace(
        "\"../fixtures/labelled\"",
        &format!("\"{}/fixtures/labelled\"", env!("CARGO_MANIFEST_DIR")),
    );
    std::fs::write(dir.path().join("programmes.toml"), taxonomy).unwrap();
    let good = "[store]\npath = \"db\"\n[server]\nlisten = \"127.0.0.1:0\"\n[[feeds]]\nid = \"test\"\nurl = \"file://feed.xml\"\n";
    let cfg = dir.path().join("newsrelay.toml");
    std::fs::write(&cfg, good).unwrap();

    let mut d = Daemon::start(&cfg);
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
