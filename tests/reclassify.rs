//! Integration tests: `newsrelay reclassify` and the daemon's background reclassification.
//! A store is filled by the real binary from a `file://` feed under one taxonomy; the taxonomy
//! is then edited (a new phrase moves items into another programme) and the real binary
//! relabels the store. Checked: labels, the per-programme index, resume after SIGKILL, and
//! that a second run changes nothing.

use newsrelay::classify::Classifier;
use newsrelay::store::{Scope, Store};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Words made of random letters, so no two items look alike to the near-duplicate check and
/// none matches a taxonomy phrase.
fn words(seed: u64, n: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            (0..7)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    char::from(b'a' + ((x >> 33) % 26) as u8)
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An RSS feed: even items are about border management, odd ones about "Zephyr" (a word the
/// shipped taxonomy does not know).
fn feed(n: usize) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>t</title>\
         <link>http://example.org/</link><description>d</description>\n",
    );
    for i in 0..n {
        let (title, summary) = if i % 2 == 0 {
            (
                format!("Border guards trained {}", words(i as u64, 3)),
                format!(
                    "Integrated border management course for border police. {}",
                    words(i as u64 + 7919, 12)
                ),
            )
        } else {
            (
                format!("Zephyr meeting {}", words(i as u64, 3)),
                format!("Partners met. {}", words(i as u64 + 7919, 12)),
            )
        };
        s.push_str(&format!(
            "<item><title>{title}</title><link>http://example.org/n/{i}</link>\
             <guid>urn:test:{i}</guid><pubDate>Fri, 16 Aug 2019 09:22:23 +0200</pubDate>\
             <description>{summary}</description></item>\n"
        ));
    }
    s.push_str("</channel></rss>\n");
    s
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    taxonomy: PathBuf,
}

impl Setup {
    /// A config with one feed of `n` items, the shipped taxonomy beside it, and a store
    /// filled by `newsrelay fetch`.
    fn new(n: usize) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("feed.xml"), feed(n)).unwrap();
        let taxonomy = std::fs::read_to_string(format!("{ROOT}/config/programmes.toml"))
            .unwrap()
            .replace(
                "\"../fixtures/labelled\"",
                &format!("\"{ROOT}/fixtures/labelled\""),
            );
        std::fs::write(dir.join("programmes.toml"), taxonomy).unwrap();
        let config = dir.join("newsrelay.toml");
        std::fs::write(
            &config,
            "[store]\npath = \"db\"\n[server]\nlisten = \"127.0.0.1:0\"\n[fetch]\nmax_body = \"50MB\"\n\
             [[feeds]]\nid = \"test\"\nurl = \"file://feed.xml\"\n",
        )
        .unwrap();
        let s = Setup {
            taxonomy: dir.join("programmes.toml"),
            _dir: tmp,
            dir,
            config,
        };
        let (ok, out, err) = s.newsrelay(&["fetch"]);
        assert!(ok, "fetch failed: {out}{err}");
        s
    }

    fn newsrelay(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Edits the taxonomy: "Zephyr" becomes an asylum phrase.
    fn teach_zephyr(&self) {
        let text = std::fs::read_to_string(&self.taxonomy).unwrap();
        let edited = text.replacen(
            "[label.phrases]\n\"asylum\" = 2.0\n",
            "[label.phrases]\n\"asylum\" = 2.0\n\"zephyr\" = 3.0\n",
            1,
        );
        assert_ne!(text, edited, "the asylum phrases moved in programmes.toml");
        std::fs::write(&self.taxonomy, edited).unwrap();
    }

    fn version(&self) -> u64 {
        Classifier::from_taxonomy_file(&self.taxonomy)
            .unwrap()
            .version()
    }

    /// Opens the store (the binary must have exited) and checks every item and the index.
    fn check_store(&self, n: usize, zephyr_is_asylum: bool) {
        let store = Store::open(&self.dir.join("db")).unwrap();
        assert_eq!(store.item_count(), n);
        let version = self.version();
        let mut all = Vec::new();
        let mut page = store.latest(&Scope::All, None, 1000).unwrap();
        loop {
            all.append(&mut page.items);
            match page.next.take() {
                Some(c) => page = store.latest(&Scope::All, Some(&c), 1000).unwrap(),
                None => break,
            }
        }
        assert_eq!(all.len(), n);
        let mut asylum = 0;
        for item in &all {
            let ids: Vec<&str> = item
                .labels
                .programmes
                .iter()
                .map(|l| l.id.as_str())
                .collect();
            if item.title.starts_with("Zephyr") {
                if zephyr_is_asylum {
                    assert_eq!(ids, ["asylum"], "{}", item.title);
                    asylum += 1;
                } else {
                    assert!(ids.is_empty(), "{}: {ids:?}", item.title);
                }
            } else {
                assert_eq!(ids, ["border-management-visa"], "{}", item.title);
            }
            if zephyr_is_asylum {
                assert_eq!(item.labels.taxonomy_version, version, "{}", item.title);
            }
        }
        // The per-programme index (what /feeds/{id}.rss reads) holds exactly those items.
        let counts = store.counts_per_label().unwrap();
        assert_eq!(counts.get("asylum").copied().unwrap_or(0), asylum);
        assert_eq!(
            counts.get("border-management-visa").copied(),
            Some(n as u64 / 2)
        );
        let listed = store
            .latest(&Scope::Label("asylum".into()), None, 1000)
            .unwrap();
        assert_eq!(listed.items.len() as u64, asylum.min(1000));
        assert!(listed.items.iter().all(|i| i.title.starts_with("Zephyr")));
        let integrity = store.verify().unwrap();
        assert!(integrity.problems.is_empty(), "{:?}", integrity.problems);
    }
}

/// `N items checked, M relabelled (K with changed labels)` from the summary line.
fn summary(out: &str) -> (u64, u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains("items checked"))
        .unwrap_or_else(|| panic!("no summary in {out:?}"));
    // "taxonomy version HEX: N items checked, M relabelled (K with changed labels) in ..."
    let after = &line[line.find(": ").unwrap() + 2..];
    let nums: Vec<u64> = after
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums.len() >= 3, "{line}");
    (nums[0], nums[1], nums[2])
}

#[test]
fn reclassify_moves_items_and_the_index_and_a_second_run_changes_nothing() {
    let s = Setup::new(400);
    s.check_store(400, false);
    s.teach_zephyr();
    let (ok, out, err) = s.newsrelay(&["reclassify"]);
    assert!(ok, "{err}");
    assert_eq!(summary(&out), (400, 400, 200), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["asylum", "+200", "-0"]),
        "per-programme changes: {out}"
    );
    assert!(!out.contains("border-management-visa"), "{out}");
    // Not a terminal: plain progress lines on stderr.
    assert!(err.contains("reclassify: 400/400 items checked"), "{err}");
    s.check_store(400, true);

    let (ok, out, err) = s.newsrelay(&["reclassify"]);
    assert!(ok, "{err}");
    assert_eq!(summary(&out), (400, 0, 0), "{out}");
    s.check_store(400, true);
}

#[test]
fn reclassify_resumes_after_sigkill_without_redoing_items() {
    let n = 3000;
    let s = Setup::new(n);
    s.teach_zephyr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .arg("--config")
        .arg(&s.config)
        .args(["reclassify", "--batch", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first progress line (a tenth of the store, durable) is the moment to kill it.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !line.starts_with("reclassify:") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no progress line");
        assert!(Instant::now() < deadline);
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "the run ended before the kill");
    let reported: u64 = line
        .trim_start_matches("reclassify: ")
        .split('/')
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(reported > 0 && reported < n as u64, "{line}");

    let (ok, out, err) = s.newsrelay(&["reclassify"]);
    assert!(ok, "{err}");
    let done: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("resumed an interrupted pass: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("not resumed: {out}"));
    assert!(done >= reported, "{done} done, {reported} reported durable");
    let (checked, relabelled, _) = summary(&out);
    // Only what the killed run had not finished is read and relabelled again.
    assert_eq!(checked, n as u64 - done, "{out}");
    assert_eq!(relabelled, n as u64 - done, "{out}");
    s.check_store(n, true);

    let (ok, out, _) = s.newsrelay(&["reclassify"]);
    assert!(ok);
    assert_eq!(summary(&out), (n as u64, 0, 0), "{out}");
}

/// Waits (bounded) until a log line, seen before or new, contains every needle.
fn wait_for(lines: &std::sync::mpsc::Receiver<String>, seen: &mut Vec<String>, needles: &[&str]) {
    if seen.iter().any(|l| needles.iter().all(|n| l.contains(n))) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(line.clone());
            if needles.iter().all(|n| line.contains(n)) {
                return;
            }
        }
    }
    panic!("no log line with {needles:?}; saw:\n{}", seen.join("\n"));
}

#[test]
fn daemon_reclassifies_in_the_background_after_sighup_changed_the_taxonomy() {
    let s = Setup::new(200);
    let mut child = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .arg("--config")
        .arg(&s.config)
        .arg("run")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    // At start: the store is current, nothing to relabel.
    wait_for(
        &lines,
        &mut seen,
        &["reclassification done", "relabelled=0"],
    );

    // A broken taxonomy is rejected and the running one kept.
    let good = std::fs::read_to_string(&s.taxonomy).unwrap();
    std::fs::write(&s.taxonomy, format!("{good}\n[[[ broken\n")).unwrap();
    let hup = |pid: u32| {
        assert!(Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success())
    };
    hup(child.id());
    wait_for(&lines, &mut seen, &["taxonomy rejected", "programmes.toml"]);

    std::fs::write(&s.taxonomy, good).unwrap();
    s.teach_zephyr();
    hup(child.id());
    wait_for(&lines, &mut seen, &["taxonomy changed"]);
    wait_for(
        &lines,
        &mut seen,
        &[
            "reclassification done",
            "relabelled=200",
            "labels_changed=100",
        ],
    );
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    wait_for(&lines, &mut seen, &["stopped cleanly"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    s.check_store(200, true);
}
