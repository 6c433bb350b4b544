//! Integration tests: hostile input through the real binary.
//!
//! One loopback server (the raw HTTP server of the fetch tests) plays eight hostile
//! publishers and one good one; `newsrelay fetch` runs over a config naming all nine with
//! small limits. Each hostile feed must be refused within its limit with a summary line that
//! names the feed and the reason, the process's peak memory (wait4 rusage of the child) must
//! stay bounded (measured for the whole run and for each case run alone), and the good feed's
//! items must be stored.

use crate::fetch::{reply, response, serve, zero_megabyte_deflate_block};
use newsrelay::item::FeedId;
use newsrelay::store::{Scope, Store};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Largest peak resident set the fetch process may reach over all nine feeds.
const PEAK_RSS_LIMIT_KB: u64 = 150 * 1024;
const TIMEOUT_SECS: u64 = 3;

fn good_feed() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel>\
         <title>Good publisher</title><link>http://example.org/</link><description>d</description>",
    );
    for n in 0..3 {
        s.push_str(&format!(
            "<item><title>Border management workshop {n}</title>\
             <link>http://example.org/good/{n}</link><guid isPermaLink=\"false\">urn:good:{n}</guid>\
             <pubDate>Fri, 16 Aug 2019 0{n}:22:23 +0200</pubDate>\
             <description>Good item {n}.</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s
}

/// A DTD whose ten levels of entities would expand `&lol9;` to 10^9 "lol"s.
fn billion_laughs() -> String {
    let mut s = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n<!ENTITY lol \"lol\">\n");
    for level in 1..10 {
        let prev = if level == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", level - 1)
        };
        s.push_str(&format!(
            "<!ENTITY lol{level} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    s.push_str("]>\n<rss version=\"2.0\"><channel><title>&lol9;</title>");
    s.push_str("<item><title>&lol9;</title><guid>urn:laughs:1</guid></item></channel></rss>");
    s
}

/// 100,000 nested elements inside a channel (about 0.7 MB, under the body cap).
fn nested() -> String {
    let depth = 100_000;
    let mut s = String::with_capacity(depth * 7 + 200);
    s.push_str("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Deep</title>");
    s.push_str(&"<x>".repeat(depth));
    s.push_str(&"</x>".repeat(depth));
    s.push_str("<item><title>t</title><guid>urn:deep:1</guid></item></channel></rss>");
    s
}

/// A feed that declares UTF-8 and carries bytes that are not UTF-8 in its items.
fn invalid_utf8() -> Vec<u8> {
    let mut s = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel>\
<title>Broken bytes</title><link>http://example.org/</link><description>d</description>"
        .to_vec();
    for n in 0..2 {
        s.extend_from_slice(b"<item><title>Caf\xe9 \xff\xfe migration ");
        s.extend_from_slice(n.to_string().as_bytes());
        s.extend_from_slice(b" \xc3(</title><link>http://example.org/utf/");
        s.extend_from_slice(n.to_string().as_bytes());
        s.extend_from_slice(b"</link><guid isPermaLink=\"false\">urn:utf:");
        s.extend_from_slice(n.to_string().as_bytes());
        s.extend_from_slice(b"</guid><description>Text \x80\x81 here.</description></item>");
    }
    s.extend_from_slice(b"</channel></rss>");
    s
}

/// Waits for `child`, returning its exit code and peak resident set (kB) from wait4.
fn wait_with_peak_rss(child: &std::process::Child) -> (i32, u64) {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss as u64)
}

/// The `[N ms]` at the end of a summary line.
fn millis(line: &str) -> u64 {
    line.rsplit_once('[')
        .and_then(|(_, t)| t.strip_suffix(" ms]"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no [N ms] in {line:?}"))
}

/// Runs `newsrelay fetch` on `config_path`: exit code, its own peak RSS (kB), stdout, stderr.
fn run_fetch(config_path: &std::path::Path) -> (i32, u64, String, String) {
    // Reaped by wait4 in wait_with_peak_rss, which also reads its peak memory.
    #[allow(clippy::zombie_processes)]
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .arg("--config")
        .arg(config_path)
        .arg("fetch")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // wait4's ru_maxrss also counts the test process the child was spawned from (Linux keeps
    // the pre-exec high-water mark), so it is only an upper bound. The child's own peak is
    // its VmHWM, a high-water mark polled every 2 ms until it exits.
    let pid = child.id();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let poller = std::thread::spawn(move || {
        let mut hwm = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if let Some(kb) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                })
            {
                hwm = hwm.max(kb);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        hwm
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let (code, _upper_bound) = wait_with_peak_rss(&child);
    done.store(true, Ordering::Relaxed);
    let own = poller.join().unwrap();
    assert!(own > 0, "no VmHWM read for the fetch process");
    (code, own, stdout, errs.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_are_refused_within_limits_and_the_good_feed_is_stored() {
    let bomb_block = Arc::new(zero_megabyte_deflate_block());
    let bomb_blocks_sent = Arc::new(AtomicUsize::new(0));
    let endless_bytes_sent = Arc::new(AtomicUsize::new(0));
    let (sent_bomb, sent_endless) = (bomb_blocks_sent.clone(), endless_bytes_sent.clone());
    let laughs = billion_laughs();
    let deep = nested();
    let (addr, _log) = serve(move |mut stream, req| {
        let block = bomb_block.clone();
        let (sent_bomb, sent_endless) = (sent_bomb.clone(), sent_endless.clone());
        let (laughs, deep) = (laughs.clone(), deep.clone());
        async move {
            match req.path.as_str() {
                "/good" => reply(stream, response("200 OK", &[], good_feed().as_bytes())).await,
                "/bomb" => {
                    // A gzip stream of zero megabytes: a few KiB per decoded MiB, up to 100 GB.
                    let head =
                        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n";
                    let gzip_header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
                    if stream.write_all(head.as_bytes()).await.is_err()
                        || stream.write_all(&gzip_header).await.is_err()
                    {
                        return;
                    }
                    for _ in 0..100_000 {
                        if stream.write_all(&block).await.is_err() {
                            return;
                        }
                        sent_bomb.fetch_add(1, Ordering::Relaxed);
                    }
                }
                "/endless" => {
                    let head =
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<rss>\r\n";
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                    for _ in 0..100_000 {
                        if stream.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                        sent_endless.fetch_add(0x10000, Ordering::Relaxed);
                    }
                }
                "/trickle" => {
                    let body = good_feed();
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    for b in body.as_bytes().iter().take(60) {
                        if stream.write_all(&[*b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                "/loop" | "/loop-b" => {
                    let to = if req.path == "/loop" {
                        "/loop-b"
                    } else {
                        "/loop"
                    };
                    reply(stream, response("302 Found", &[("Location", to)], b"")).await
                }
                "/nested" => reply(stream, response("200 OK", &[], deep.as_bytes())).await,
                "/laughs" => reply(stream, response("200 OK", &[], laughs.as_bytes())).await,
                "/utf8" => reply(stream, response("200 OK", &[], &invalid_utf8())).await,
                "/huge" => {
                    let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n<rss>";
                    let _ = stream.write_all(head.as_bytes()).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                _ => reply(stream, response("404 Not Found", &[], b"")).await,
            }
        }
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "good", "bomb", "endless", "trickle", "loop", "nested", "laughs", "utf8", "huge",
    ];
    let mut config = format!(
        "[store]\npath = \"db\"\n\n[fetch]\ntimeout = \"{TIMEOUT_SECS}s\"\nconnect_timeout = \"2s\"\n\
         max_body = \"2MB\"\nconcurrency = 16\nper_host = 16\n\n[taxonomy]\nfile = \"{}/config/programmes.toml\"\n",
        env!("CARGO_MANIFEST_DIR")
    );
    for c in cases {
        config.push_str(&format!(
            "\n[[feeds]]\nid = \"{c}\"\nurl = \"http://{addr}/{c}\"\n"
        ));
    }
    let config_path = dir.path().join("newsrelay.toml");
    std::fs::write(&config_path, &config).unwrap();

    // Each case alone too, all at once, for its own peak memory (the good feed alone is the
    // baseline: what loading the config and taxonomy costs).
    let alone: Vec<(String, std::path::PathBuf)> = cases
        .iter()
        .map(|c| {
            let d = dir.path().join(format!("alone-{c}"));
            std::fs::create_dir_all(&d).unwrap();
            let head = config.split("\n[[feeds]]").next().unwrap();
            let text = format!("{head}\n[[feeds]]\nid = \"{c}\"\nurl = \"http://{addr}/{c}\"\n");
            let p = d.join("newsrelay.toml");
            std::fs::write(&p, text).unwrap();
            (c.to_string(), p)
        })
        .collect();
    let per_case = tokio::task::spawn_blocking(move || {
        let runs: Vec<_> = alone
            .into_iter()
            .map(|(c, p)| std::thread::spawn(move || (c, run_fetch(&p))))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (c, (code, peak, _, _)) in &per_case {
        eprintln!(
            "{c:8} alone: exit {code}, peak RSS {:.1} MB",
            *peak as f64 / 1024.0
        );
        assert!(*peak < PEAK_RSS_LIMIT_KB, "{c}: peak RSS {peak} kB");
        let good = c == "good" || c == "utf8";
        assert_eq!(*code, if good { 0 } else { 1 }, "{c} alone: exit code");
    }

    let started = Instant::now();
    let (code, peak_kb, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_fetch(&config_path))
            .await
            .unwrap();
    let wall = started.elapsed();
    eprintln!("{stdout}");
    eprintln!(
        "newsrelay fetch over {} feeds: exit {code}, {:.1} s, peak RSS {:.1} MB",
        cases.len(),
        wall.as_secs_f64(),
        peak_kb as f64 / 1024.0
    );
    assert_eq!(code, 0, "one feed was good, so the run succeeds\n{stderr}");
    assert!(
        peak_kb < PEAK_RSS_LIMIT_KB,
        "peak RSS {peak_kb} kB over {PEAK_RSS_LIMIT_KB} kB"
    );
    assert!(wall < Duration::from_secs(TIMEOUT_SECS + 10), "{wall:?}");

    let line = |id: &str| -> &str {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{id}: ")))
            .unwrap_or_else(|| panic!("no summary line for {id}:\n{stdout}"))
    };
    // (feed, what its line must say, longest it may take)
    let limit = Duration::from_secs(TIMEOUT_SECS);
    let refused: [(&str, &str, Duration); 7] = [
        ("bomb", "over the 2000000-byte limit (stopped after", limit),
        (
            "endless",
            "over the 2000000-byte limit (stopped after",
            limit,
        ),
        (
            "trickle",
            "took longer than the 3s timeout",
            limit + Duration::from_secs(1),
        ),
        ("loop", "redirect loop", limit),
        ("nested", "elements nest deeper than 512 levels", limit),
        ("laughs", "declares entities (DTD)", limit),
        (
            "huge",
            "over the 2000000-byte limit (Content-Length 1000000000)",
            limit,
        ),
    ];
    for (id, reason, within) in refused {
        let l = line(id);
        eprintln!("{id:8} refused in {:5} ms: {l}", millis(l));
        assert!(l.contains(reason), "{id}: expected {reason:?} in {l:?}");
        assert!(
            l.contains("failed") || l.contains("error:"),
            "{id}: not reported as a failure: {l:?}"
        );
        assert!(
            Duration::from_millis(millis(l)) <= within,
            "{id}: took {} ms, limit {within:?}",
            millis(l)
        );
    }
    // The servers were cut off long before they finished.
    assert!(bomb_blocks_sent.load(Ordering::Relaxed) < 100_000);
    assert!(endless_bytes_sent.load(Ordering::Relaxed) < 100_000 * 0x10000);

    let good = line("good");
    assert!(good.contains("3 new"), "{good}");
    let utf8 = line("utf8");
    eprintln!("utf8     {utf8}");
    assert!(utf8.contains("2 new"), "{utf8}");
    assert!(utf8.contains("recovered:"), "invalid UTF-8 is bozo: {utf8}");

    let store = Store::open(&dir.path().join("db")).unwrap();
    assert!(store.verify().unwrap().problems.is_empty());
    assert_eq!(store.item_count(), 5, "3 good items and 2 recovered ones");
    let page = store
        .latest(&Scope::Feed(FeedId("utf8".into())), None, 10)
        .unwrap();
    // Not UTF-8, so decoded with the windows-1252 fallback (as lenient readers do): é survives,
    // the stray bytes become their windows-1252 characters, and the feed is marked bozo.
    assert_eq!(page.items.len(), 2);
    for item in &page.items {
        assert!(item.title.starts_with("Café "), "{:?}", item.title);
        eprintln!("utf8 item stored as {:?}", item.title);
    }
    for (id, _, _) in refused {
        let state = store.feed_state(&FeedId(id.into())).unwrap().unwrap();
        assert_eq!(state.error_count, 1, "{id}");
        assert!(state.last_error.is_some(), "{id}");
    }
}
