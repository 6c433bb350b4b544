//! Integration tests: faults. SIGKILL of the daemon during ingest, SIGKILL during
//! compaction, and a full disk during ingest; after each, the store must open, hold every
//! item that was reported stored, and hold no duplicates.
//!
//! The kill rounds use the harness of the ingest tests ([`crate::ingest::kill_restart_rounds`]).
//! `NEWSRELAY_FAULT_ROUNDS` sets the number of daemon kill rounds (default 20).

use crate::fetch::{reply, response, serve_n};
use crate::ingest::{generated_item, kill_restart_rounds, Round, Stream, Wait};
use newsrelay::store::{Scope, Store};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn newsrelay() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_newsrelay"))
}

/// Every (feed, guid) of every stored item's sources; panics on a repeat (a duplicate).
fn stored_guids(store: &Store) -> BTreeSet<(String, String)> {
    let mut holder: BTreeMap<(String, String), newsrelay::item::Item> = BTreeMap::new();
    let mut before = None;
    loop {
        let page = store.latest(&Scope::All, before.as_ref(), 1000).unwrap();
        for item in &page.items {
            for s in &item.sources {
                if let Some(g) = &s.guid {
                    if let Some(other) = holder.insert((s.feed.0.clone(), g.clone()), item.clone())
                    {
                        panic!(
                            "duplicate: {} {g} is in two items:\n{other:?}\n{item:?}",
                            s.feed
                        );
                    }
                }
            }
        }
        match page.next {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    holder.into_keys().collect()
}

const WORDS: [&str; 48] = [
    "asylum",
    "border",
    "visa",
    "return",
    "integration",
    "labour",
    "mobility",
    "dialogue",
    "Vienna",
    "Rabat",
    "Prague",
    "Budapest",
    "Khartoum",
    "Silk",
    "routes",
    "Balkans",
    "Turkey",
    "Jordan",
    "Lebanon",
    "Tunisia",
    "Morocco",
    "Nigeria",
    "Ghana",
    "Senegal",
    "capacity",
    "training",
    "workshop",
    "conference",
    "report",
    "policy",
    "data",
    "census",
    "diaspora",
    "remittances",
    "trafficking",
    "smuggling",
    "protection",
    "reception",
    "skills",
    "youth",
    "climate",
    "urban",
    "cities",
    "evaluation",
    "partnership",
    "ministers",
    "experts",
    "study",
];

/// A title of eight words picked by `seed`: distinct seeds give unrelated texts, so no two
/// generated items are near-duplicates of each other.
fn words(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // A vocabulary word with a number: tokens from a space of ~500,000, so texts
            // share few tokens and their fingerprints are far apart.
            format!(
                "{}{}",
                WORDS[(x % WORDS.len() as u64) as usize],
                (x >> 8) % 10_000
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Feed `feed`'s RSS document with items `first..first + count`, each `extra` bytes of text.
fn window_feed(feed: usize, first: usize, count: usize, extra: usize) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Feed {feed}</title>\
         <link>http://example.org/{feed}/</link><description>d</description>"
    );
    for n in first..first + count {
        let seed = (feed as u64) << 32 | n as u64;
        s.push_str(&format!(
            "<item><title>{}</title><link>http://example.org/{feed}/{n}</link>\
             <guid isPermaLink=\"false\">urn:f{feed}:{n}</guid>\
             <pubDate>{}</pubDate><description>{} {}</description></item>",
            words(seed, 8),
            (chrono::DateTime::from_timestamp(1_700_000_000 + n as i64 * 60, 0).unwrap())
                .to_rfc2822(),
            words(seed ^ 0xabc, 30),
            words(seed ^ 0xdef, extra / 8)
        ));
    }
    s.push_str("</channel></rss>");
    s
}

fn taxonomy() -> String {
    format!("{}/config/programmes.toml", env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// SIGKILL of the daemon during ingest (issue: crash safety of `newsrelay run`).

/// Per feed, each request's (round, request number).
type Served = Arc<Mutex<BTreeMap<usize, Vec<(usize, usize)>>>>;

const FEEDS: usize = 40;
const WINDOW: usize = 10;
const STEP: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_killed_at_random_points_during_ingest_loses_nothing_reported() {
    let rounds: usize = std::env::var("NEWSRELAY_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // Which window each request of each feed got: (round, request number).
    let served: Served = Default::default();
    let round_now = Arc::new(AtomicUsize::new(0));
    let (log, current) = (served.clone(), round_now.clone());
    let (addr, _) = serve_n(rounds * FEEDS * 3 + 100, move |stream, req| {
        let (log, current) = (log.clone(), current.clone());
        async move {
            let Some(feed) = req
                .path
                .strip_prefix("/f")
                .and_then(|n| n.parse::<usize>().ok())
            else {
                return reply(stream, response("404 Not Found", &[], b"")).await;
            };
            let r = {
                let mut log = log.lock().unwrap();
                let list = log.entry(feed).or_default();
                list.push((current.load(Ordering::SeqCst), list.len()));
                list.len() - 1
            };
            let body = window_feed(feed, r * STEP, WINDOW, 200);
            reply(stream, response("200 OK", &[], body.as_bytes())).await
        }
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        "[store]\npath = \"db\"\n\n[server]\nlisten = \"127.0.0.1:0\"\nbase_url = \"http://127.0.0.1\"\n\n\
         [fetch]\ninterval = \"1s\"\ntimeout = \"5s\"\nconcurrency = 16\nper_host = 16\n\n\
         [log]\nformat = \"json\"\nlevel = \"info\"\n\n[taxonomy]\nfile = \"{}\"\n",
        taxonomy()
    );
    for k in 0..FEEDS {
        config.push_str(&format!(
            "\n[[feeds]]\nid = \"f{k}\"\nurl = \"http://{addr}/f{k}\"\n"
        ));
    }
    let config_path = dir.path().join("newsrelay.toml");
    std::fs::write(&config_path, config).unwrap();
    let db = dir.path().join("db");

    let spawned = AtomicUsize::new(0);
    let spawn = || {
        round_now.store(spawned.fetch_add(1, Ordering::SeqCst), Ordering::SeqCst);
        let mut c = newsrelay();
        c.arg("--config").arg(&config_path).arg("run");
        c.env_remove("RUST_LOG");
        c
    };
    // A "stored" line is printed after the feed's items were flushed.
    let stored_feed = |line: &str| -> Option<usize> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["message"] != "stored" {
            return None;
        }
        v["span"]["feed"].as_str()?.strip_prefix('f')?.parse().ok()
    };
    // Each round's delay starts at the round's first feed request (the daemon has started
    // and its cycle is under way), so the kills land in fetching and storing.
    let fetching = |round: usize| {
        served
            .lock()
            .unwrap()
            .values()
            .any(|list| list.iter().any(|(r, _)| *r == round))
    };
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    let mut points = Vec::new();
    let started = Instant::now();
    tokio::task::block_in_place(|| {
        kill_restart_rounds(
            rounds,
            Duration::from_millis(1000),
            &spawn,
            Stream::Stderr,
            Wait::Until(&fetching),
            &mut |round: &Round| {
                let mut per_feed: BTreeMap<usize, usize> = BTreeMap::new();
                for l in &round.lines {
                    if let Some(k) = stored_feed(l) {
                        *per_feed.entry(k).or_default() += 1;
                    }
                }
                let log = served.lock().unwrap();
                let mut requests = 0;
                for (feed, list) in log.iter() {
                    let this_round: Vec<usize> = list
                        .iter()
                        .filter(|(r, _)| *r == round.index)
                        .map(|(_, n)| *n)
                        .collect();
                    requests += this_round.len();
                    let reported = per_feed.get(feed).copied().unwrap_or(0);
                    assert!(
                        reported <= this_round.len(),
                        "round {}: feed {feed} reported {reported} times, fetched {}",
                        round.index,
                        this_round.len()
                    );
                    for n in this_round.iter().take(reported) {
                        for i in n * STEP..n * STEP + WINDOW {
                            expected.insert((format!("f{feed}"), format!("urn:f{feed}:{i}")));
                        }
                    }
                }
                drop(log);
                let store = Store::open(&db)
                    .unwrap_or_else(|e| panic!("round {}: store does not open: {e}", round.index));
                let integrity = store.verify().unwrap();
                assert!(
                    integrity.problems.is_empty(),
                    "round {}: {:?}",
                    round.index,
                    integrity.problems
                );
                let present = stored_guids(&store);
                let missing: Vec<_> = expected.difference(&present).take(5).collect();
                assert!(
                    missing.is_empty(),
                    "round {}: reported stored but missing: {missing:?}",
                    round.index
                );
                points.push(format!(
                    "round {:2}: killed {:4} ms after the first request{}, {:3} feeds reported stored, {:3} requests served, {:5} items in store",
                    round.index,
                    round.delay_ms,
                    if round.finished { " (had exited)" } else { "" },
                    per_feed.values().sum::<usize>(),
                    requests,
                    store.item_count()
                ));
            },
        );
    });
    for p in &points {
        eprintln!("{p}");
    }
    eprintln!(
        "{rounds} kill rounds in {:.1} s; {} items reported stored, all present, no duplicates",
        started.elapsed().as_secs_f64(),
        expected.len()
    );
    assert!(
        expected.len() >= WINDOW * 5,
        "too little was reported stored ({}); the kills came too early to test anything",
        expected.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Compaction.

/// A store at `db` with `n` generated items, feed states and a tombstone, through the import
/// path (the same records an export writes).
fn filled_store(db: &Path, n: u64) -> Vec<u8> {
    let mut lines = Vec::new();
    writeln!(
        lines,
        r#"{{"kind":"header","format":"newsrelay-export","schema":2}}"#
    )
    .unwrap();
    for i in 0..n {
        let line = serde_json::json!({"kind": "item", "item": generated_item(i)});
        writeln!(lines, "{line}").unwrap();
    }
    let store = Store::open(db).unwrap();
    store
        .import(&mut std::io::Cursor::new(&lines), &mut |_| {})
        .unwrap();
    let mut state = newsrelay::item::FeedState {
        error_count: 2,
        last_error: Some("HTTP 503".into()),
        ..Default::default()
    };
    state.etag = Some("\"v1\"".into());
    store
        .put_feed_state(&newsrelay::item::FeedId("feed-1".into()), &state)
        .unwrap();
    store.flush().unwrap();
    let mut export = Vec::new();
    store.export(&mut export).unwrap();
    export
}

fn export_of(db: &Path) -> Vec<u8> {
    let store = Store::open(db).unwrap();
    let mut out = Vec::new();
    store.export(&mut out).unwrap();
    out
}

fn leftovers(db: &Path) -> Vec<String> {
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    [
        ".compact-new",
        ".compact-old",
        ".compact-ready",
        ".compact-lock",
    ]
    .iter()
    .filter(|s| db.with_file_name(format!("{name}{s}")).exists())
    .map(|s| s.trim_start_matches(".compact-").to_string())
    .collect()
}

#[test]
fn compact_keeps_every_record_and_is_refused_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("newsrelay.toml");
    std::fs::write(&config, "[store]\npath = \"db\"\n").unwrap();
    let db = dir.path().join("db");
    filled_store(&db, 500);
    {
        // Churn: every item rewritten a few times, as reclassification does.
        let store = Store::open(&db).unwrap();
        for version in 2..6u64 {
            let label = |_: &newsrelay::item::Item| newsrelay::item::Labels {
                taxonomy_version: version,
                programmes: vec![newsrelay::item::Label {
                    id: ["asylum", "migration-development"][(version % 2) as usize].into(),
                    score: 0.9,
                    why: vec![format!("pass {version}")],
                }],
                ..Default::default()
            };
            store
                .relabel(&newsrelay::store::RelabelSelection::All, version, &label)
                .unwrap();
        }
    }
    let before = export_of(&db);
    // The digest ledger and key live beside the store; compaction must not touch them.
    let digest = dir.path().join("digest");
    std::fs::create_dir_all(digest.join("ledger")).unwrap();
    std::fs::write(digest.join("key"), b"secret").unwrap();

    let held = Store::open(&db).unwrap();
    let out = newsrelay()
        .arg("--config")
        .arg(&config)
        .arg("compact")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    eprintln!("refused while open: {}", stderr.trim());
    // Dropping the store returns once its lock is free, so the next command can open it.
    drop(held);

    let out = newsrelay()
        .arg("--config")
        .arg(&config)
        .arg("compact")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("compacted ")
            && stdout.contains(" MB -> ")
            && stdout.contains("500 items"),
        "{stdout}"
    );
    eprintln!("{}", stdout.trim());
    assert!(leftovers(&db).is_empty(), "{:?}", leftovers(&db));
    assert_eq!(export_of(&db), before, "export after compaction differs");
    assert_eq!(std::fs::read(digest.join("key")).unwrap(), b"secret");
    let store = Store::open(&db).unwrap();
    assert!(store.verify().unwrap().problems.is_empty());
    assert_eq!(
        store.schema_version().unwrap(),
        newsrelay::store::SCHEMA_VERSION
    );
}

#[test]
fn compaction_killed_at_any_point_leaves_a_whole_store() {
    const ITEMS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("newsrelay.toml");
    std::fs::write(&config, "[store]\npath = \"db\"\n").unwrap();
    let db = dir.path().join("db");
    let before = filled_store(&db, ITEMS);
    let spawn = || {
        let mut c = newsrelay();
        c.arg("--config").arg(&config).arg("compact");
        c
    };
    // One full run to learn how long a compaction takes here.
    let t = Instant::now();
    let out = spawn().output().unwrap();
    assert!(out.status.success());
    let full = t.elapsed();
    eprintln!(
        "full compaction of {ITEMS} items: {} ms: {}",
        full.as_millis(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut check = |round: &Round| {
        let left = leftovers(&db);
        let kind = if round.finished {
            "finished".to_string()
        } else if left.is_empty() {
            "before start".to_string()
        } else {
            left.join("+")
        };
        *kinds.entry(kind).or_default() += 1;
        assert_eq!(
            export_of(&db),
            before,
            "round {}: killed at {} ms with {left:?} left: the store changed",
            round.index,
            round.delay_ms
        );
        assert!(
            leftovers(&db).is_empty(),
            "round {}: open left {:?}",
            round.index,
            leftovers(&db)
        );
        let store = Store::open(&db).unwrap();
        assert!(store.verify().unwrap().problems.is_empty());
        assert_eq!(store.item_count() as u64, ITEMS);
    };
    let started = Instant::now();
    // Anywhere in the run: mostly the copy, which is most of its time.
    kill_restart_rounds(
        6,
        full + full / 4,
        &spawn,
        Stream::Stdout,
        Wait::Spawn,
        &mut check,
    );
    // Aimed at the swap: the moment the ready marker, or the old folder, appears, plus 0-3 ms.
    let name = |suffix: &str| db.with_file_name(format!("db{suffix}"));
    let swap = |round: usize| {
        name(if round % 2 == 0 {
            ".compact-ready"
        } else {
            ".compact-old"
        })
        .exists()
    };
    kill_restart_rounds(
        6,
        Duration::from_millis(3),
        &spawn,
        Stream::Stdout,
        Wait::Until(&swap),
        &mut check,
    );
    eprintln!(
        "12 compaction kills in {:.1} s; state at the kill (leftover files) -> rounds: {kinds:?}",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// A full disk during ingest.

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Result<Tmpfs, String> {
    std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Tmpfs(at.to_path_buf()))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_during_ingest_loses_nothing_reported() {
    const DISK_FEEDS: usize = 30;
    const ITEMS_PER_FEED: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("disk");
    let disk = match mount_tmpfs(&mnt, "5m") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED full_disk_during_ingest: cannot mount a 5 MB tmpfs here ({e}); run as root with mount allowed");
            return;
        }
    };
    let (addr, _) = serve_n(DISK_FEEDS * 3, |stream, req| async move {
        let feed: usize = req
            .path
            .strip_prefix("/f")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let body = window_feed(feed, 0, ITEMS_PER_FEED, 2000);
        reply(stream, response("200 OK", &[], body.as_bytes())).await
    })
    .await;
    let mut config = format!(
        "[store]\npath = \"disk/db\"\n\n[fetch]\ntimeout = \"10s\"\nconcurrency = 4\nper_host = 4\n\n\
         [taxonomy]\nfile = \"{}\"\n",
        taxonomy()
    );
    for k in 0..DISK_FEEDS {
        config.push_str(&format!(
            "\n[[feeds]]\nid = \"f{k}\"\nurl = \"http://{addr}/f{k}\"\n"
        ));
    }
    let config_path = dir.path().join("newsrelay.toml");
    std::fs::write(&config_path, config).unwrap();
    let run = || {
        let path = config_path.clone();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let mut child = newsrelay()
                .arg("--config")
                .arg(&path)
                .arg("fetch")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let read = |mut r: Box<dyn std::io::Read + Send>| {
                std::thread::spawn(move || {
                    let mut s = Vec::new();
                    let _ = r.read_to_end(&mut s);
                    s
                })
            };
            let out_reader = read(Box::new(child.stdout.take().unwrap()));
            let err_reader = read(Box::new(child.stderr.take().unwrap()));
            // Bounded: a writer stuck on a full disk is killed (and the test then fails).
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if t.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    break child.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let out = std::process::Output {
                status,
                stdout: out_reader.join().unwrap(),
                stderr: err_reader.join().unwrap(),
            };
            (out, t.elapsed())
        })
    };
    let (out, took) = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "first run on the full disk: exit {:?} in {:.1} s\nstdout:\n{}\nstderr (first lines):\n{}",
        out.status.code(),
        took.as_secs_f64(),
        stdout.lines().take(50).collect::<Vec<_>>().join("\n"),
        stderr.lines().take(10).collect::<Vec<_>>().join("\n")
    );
    assert!(
        !stderr.contains("panicked"),
        "a full disk must be an error, not a panic:\n{stderr}"
    );
    // Reported stored: a summary line with new items and no error.
    let mut expected: HashSet<(String, String)> = HashSet::new();
    let mut reported_feeds = 0;
    for l in stdout.lines() {
        let Some((feed, rest)) = l.split_once(": ") else {
            continue;
        };
        if rest.contains(" entries, ") && !rest.contains("error") && !rest.starts_with("failed") {
            reported_feeds += 1;
            for i in 0..ITEMS_PER_FEED {
                expected.insert((feed.to_string(), format!("urn:{feed}:{i}")));
            }
        }
    }
    let failed = stdout
        .lines()
        .filter(|l| l.contains("error") || l.contains("failed:"))
        .count();
    eprintln!("{reported_feeds} feeds reported stored, {failed} failed on the full disk");
    for l in stdout
        .lines()
        .filter(|l| l.contains("error") || l.contains("failed:"))
    {
        assert!(
            l.contains("disk full") && l.contains("free space and restart newsrelay"),
            "a full disk must be named as such, with what to do: {l}"
        );
    }
    // Give the disk room again and start over: the store opens, nothing reported is lost.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(&disk.0)
        .status()
        .unwrap();
    assert!(grown.success());
    let db = mnt.join("db");
    {
        let store = Store::open(&db).expect("store opens after the disk was full");
        assert!(store.verify().unwrap().problems.is_empty());
        let present: HashSet<_> = stored_guids(&store).into_iter().collect();
        let missing: Vec<_> = expected.difference(&present).take(5).collect();
        assert!(
            missing.is_empty(),
            "reported stored but missing: {missing:?}"
        );
    }
    let (out, _) = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let store = Store::open(&db).unwrap();
    assert!(store.verify().unwrap().problems.is_empty());
    let present = stored_guids(&store);
    assert_eq!(
        present.len(),
        DISK_FEEDS * ITEMS_PER_FEED,
        "after room was made, every item is stored exactly once"
    );
    eprintln!(
        "after growing the disk: {} items, {}",
        present.len(),
        stdout.lines().last().unwrap_or_default()
    );
    assert!(
        failed > 0 || reported_feeds == DISK_FEEDS,
        "the disk never filled up; make it smaller"
    );
}
