//! Integration tests: fetch.
//!
//! Every network test starts its own server on 127.0.0.1:0 that writes raw HTTP, so the
//! misbehaving cases (bombs, trickles, silence, loops) are exactly what a hostile or broken
//! server would send. Servers live on the test's runtime and end with it; every server loop is
//! bounded in count, and every fetch runs under the fetcher's own short deadline.

use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Timelike, Utc, Weekday};
use newsrelay::config::FetchSettings;
use newsrelay::fetch::policy::{
    self, backoff_delay, skip_closed_windows, success_delay, BACKOFF_CAP, BACKOFF_JITTER,
    REDIRECT_ADOPT_AFTER,
};
use newsrelay::fetch::{
    apply_outcome, FeedHints, FetchError, FetchOutcome, FetchRequest, FetchedFeed, Fetcher,
    ResponseMeta, RetryAfter,
};
use newsrelay::item::FeedState;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONTACT: &str = "https://ops.example.org/newsrelay";
const FEED: &str =
    "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>News centre</title>\
<item><title>Migration dialogue</title><link>https://example.org/a</link></item></channel></rss>";

fn settings() -> FetchSettings {
    FetchSettings {
        interval: Duration::from_secs(1800),
        concurrency: 16,
        per_host: 2,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_body: 1_000_000,
        max_redirects: 5,
        contact_url: Some(CONTACT.into()),
    }
}

fn fetcher(s: &FetchSettings) -> Fetcher {
    Fetcher::new(s).expect("fetcher builds")
}

fn request(url: String) -> FetchRequest {
    FetchRequest {
        url,
        ..FetchRequest::default()
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 9, 15, 0)
        .single()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 server.

/// One request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request head (bounded to 16 KiB).
pub(crate) async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return None;
        }
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Request { path, headers })
}

/// Starts a server whose handler gets each connection's stream and request. Requests are
/// logged in order. Ends with the test's runtime; accepts at most 200 connections.
pub(crate) async fn serve<F, Fut>(handler: F) -> (SocketAddr, Arc<Mutex<Vec<Request>>>)
where
    F: Fn(TcpStream, Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    serve_n(200, handler).await
}

/// [`serve`] accepting at most `connections` connections.
pub(crate) async fn serve_n<F, Fut>(
    connections: usize,
    handler: F,
) -> (SocketAddr, Arc<Mutex<Vec<Request>>>)
where
    F: Fn(TcpStream, Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Some(req) = read_request(&mut stream).await {
                    seen.lock().unwrap().push(req.clone());
                    handler(stream, req).await;
                }
            });
        }
    });
    (addr, log)
}

/// A complete response with `Connection: close`.
pub(crate) fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

pub(crate) async fn reply(mut stream: TcpStream, bytes: Vec<u8>) {
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

fn modified(result: Result<FetchOutcome, FetchError>) -> FetchedFeed {
    match result {
        Ok(FetchOutcome::Modified(f)) => f,
        other => panic!("expected a body, got {other:?}"),
    }
}

fn assert_one_line(e: &FetchError) {
    let text = e.to_string();
    assert!(!text.contains('\n') && !text.is_empty(), "{text:?}");
}

// ---------------------------------------------------------------------------------------------
// Conditional GET.

#[tokio::test]
async fn conditional_get_200_then_304_with_etag_and_last_modified() {
    const ETAG: &str = "\"v1\"";
    const LM: &str = "Tue, 10 Mar 2026 08:00:00 GMT";
    let (addr, log) = serve(|stream, req| async move {
        let fresh = req.header("if-none-match") == Some(ETAG)
            || req.header("if-modified-since") == Some(LM);
        let bytes = if fresh {
            response("304 Not Modified", &[("ETag", ETAG)], b"")
        } else {
            response(
                "200 OK",
                &[
                    ("Content-Type", "application/rss+xml"),
                    ("ETag", ETAG),
                    ("Last-Modified", LM),
                    ("Cache-Control", "public, max-age=600"),
                ],
                FEED.as_bytes(),
            )
        };
        reply(stream, bytes).await;
    })
    .await;
    let f = fetcher(&settings());
    let url = format!("http://{addr}/rss");
    let mut state = FeedState::default();

    let first = f.fetch(&FetchRequest::for_feed(&url, &state)).await;
    let feed = modified(first.clone());
    assert_eq!(feed.body, FEED.as_bytes());
    assert_eq!(feed.meta.status, 200);
    assert_eq!(feed.meta.etag.as_deref(), Some(ETAG));
    assert_eq!(feed.meta.last_modified.as_deref(), Some(LM));
    assert_eq!(feed.meta.cache_max_age, Some(Duration::from_secs(600)));
    apply_outcome(
        &mut state,
        &first,
        &FeedHints::default(),
        Duration::from_secs(300),
        now(),
        1,
    );
    assert_eq!(state.etag.as_deref(), Some(ETAG));
    assert_eq!(state.last_modified.as_deref(), Some(LM));
    // max-age (600 s) outranks the 300 s interval.
    assert_eq!(state.next_check, Some(now() + ChronoDuration::seconds(600)));

    let second = f.fetch(&FetchRequest::for_feed(&url, &state)).await;
    match &second {
        Ok(FetchOutcome::NotModified(meta)) => assert_eq!(meta.status, 304),
        other => panic!("expected 304, got {other:?}"),
    }
    apply_outcome(
        &mut state,
        &second,
        &FeedHints::default(),
        Duration::from_secs(300),
        now(),
        1,
    );
    // A 304 without Last-Modified keeps the stored one.
    assert_eq!(state.last_modified.as_deref(), Some(LM));
    assert_eq!(state.last_success, Some(now()));

    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].header("if-none-match"), None);
    assert_eq!(log[1].header("if-none-match"), Some(ETAG));
    assert_eq!(log[1].header("if-modified-since"), Some(LM));
    let ua = log[0].header("user-agent").unwrap_or_default();
    assert!(ua.starts_with("newsrelay/") && ua.contains(CONTACT), "{ua}");
}

#[tokio::test]
async fn last_modified_alone_gives_304() {
    const LM: &str = "Mon, 09 Mar 2026 07:00:00 GMT";
    let (addr, _log) = serve(|stream, req| async move {
        let bytes = if req.header("if-modified-since") == Some(LM) {
            response("304 Not Modified", &[], b"")
        } else {
            response("200 OK", &[("Last-Modified", LM)], FEED.as_bytes())
        };
        reply(stream, bytes).await;
    })
    .await;
    let f = fetcher(&settings());
    let url = format!("http://{addr}/feed");
    let first = modified(f.fetch(&request(url.clone())).await);
    assert_eq!(first.meta.etag, None);
    let again = FetchRequest {
        url,
        etag: None,
        last_modified: first.meta.last_modified,
    };
    assert!(matches!(
        f.fetch(&again).await,
        Ok(FetchOutcome::NotModified(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Redirects.

#[tokio::test]
async fn temporary_redirect_is_followed_but_not_recorded() {
    let (addr, _log) = serve(|stream, req| async move {
        let bytes = match req.path.as_str() {
            "/old" => response("302 Found", &[("Location", "/new")], b""),
            "/new" => response("200 OK", &[], FEED.as_bytes()),
            _ => response("404 Not Found", &[], b""),
        };
        reply(stream, bytes).await;
    })
    .await;
    let f = fetcher(&settings());
    let feed = modified(f.fetch(&request(format!("http://{addr}/old"))).await);
    assert_eq!(feed.meta.final_url, format!("http://{addr}/new"));
    assert_eq!(feed.meta.redirects, 1);
    assert_eq!(feed.meta.permanent_redirect, None);
    assert_eq!(feed.body, FEED.as_bytes());
}

#[tokio::test]
async fn permanent_redirect_is_the_end_of_the_leading_permanent_run() {
    let (addr, _log) = serve(|stream, req| async move {
        let bytes = match req.path.as_str() {
            "/a" => response("308 Permanent Redirect", &[("Location", "/b")], b""),
            "/b" => response("301 Moved Permanently", &[("Location", "/c")], b""),
            "/c" => response("302 Found", &[("Location", "/d")], b""),
            "/d" => response("200 OK", &[], FEED.as_bytes()),
            _ => response("404 Not Found", &[], b""),
        };
        reply(stream, bytes).await;
    })
    .await;
    let feed = modified(
        fetcher(&settings())
            .fetch(&request(format!("http://{addr}/a")))
            .await,
    );
    assert_eq!(feed.meta.redirects, 3);
    assert_eq!(feed.meta.final_url, format!("http://{addr}/d"));
    // /c moved for good; /d is only where /c points today.
    assert_eq!(
        feed.meta.permanent_redirect,
        Some(format!("http://{addr}/c"))
    );
}

#[tokio::test]
async fn permanent_redirect_adopted_after_repeated_sightings() {
    let (addr, log) = serve(|stream, req| async move {
        let bytes = match req.path.as_str() {
            "/feed" => response("301 Moved Permanently", &[("Location", "/moved")], b""),
            "/moved" => response("200 OK", &[], FEED.as_bytes()),
            _ => response("404 Not Found", &[], b""),
        };
        reply(stream, bytes).await;
    })
    .await;
    let f = fetcher(&settings());
    let configured = format!("http://{addr}/feed");
    let target = format!("http://{addr}/moved");
    let mut state = FeedState::default();
    let hints = FeedHints::default();
    for sighting in 1..=REDIRECT_ADOPT_AFTER {
        let result = f.fetch(&FetchRequest::for_feed(&configured, &state)).await;
        assert_eq!(
            result.as_ref().map(|o| o.meta().permanent_redirect.clone()),
            Ok(Some(target.clone()))
        );
        apply_outcome(
            &mut state,
            &result,
            &hints,
            Duration::from_secs(60),
            now(),
            7,
        );
        if sighting < REDIRECT_ADOPT_AFTER {
            assert_eq!(state.moved_to, None, "adopted too early");
            assert_eq!(state.redirect_candidate, Some((target.clone(), sighting)));
        }
    }
    assert_eq!(state.moved_to.as_deref(), Some(target.as_str()));
    assert_eq!(state.redirect_candidate, None);

    // Once adopted, the feed is fetched at its new address directly.
    let result = f.fetch(&FetchRequest::for_feed(&configured, &state)).await;
    assert_eq!(modified(result).meta.redirects, 0);
    let log = log.lock().unwrap();
    assert_eq!(log.last().map(|r| r.path.as_str()), Some("/moved"));
    assert_eq!(log.iter().filter(|r| r.path == "/feed").count(), 3);
}

#[test]
fn redirect_streak_broken_by_a_direct_answer() {
    let meta = |redirect: Option<&str>| ResponseMeta {
        final_url: "http://example.org/feed".into(),
        status: 200,
        content_type: None,
        headers: vec![],
        etag: None,
        last_modified: None,
        cache_max_age: None,
        permanent_redirect: redirect.map(String::from),
        redirects: u32::from(redirect.is_some()),
        elapsed: Duration::ZERO,
    };
    let not_modified = |r| Ok(FetchOutcome::NotModified(meta(r)));
    let mut state = FeedState::default();
    let h = FeedHints::default();
    let i = Duration::from_secs(60);
    apply_outcome(
        &mut state,
        &not_modified(Some("http://b/")),
        &h,
        i,
        now(),
        0,
    );
    apply_outcome(
        &mut state,
        &not_modified(Some("http://b/")),
        &h,
        i,
        now(),
        0,
    );
    assert_eq!(state.redirect_candidate, Some(("http://b/".into(), 2)));
    // A failure neither confirms nor breaks the streak.
    let failure = Err(FetchError::Http {
        url: "http://example.org/feed".into(),
        status: 500,
        retry_after: None,
    });
    apply_outcome(&mut state, &failure, &h, i, now(), 0);
    assert_eq!(state.redirect_candidate, Some(("http://b/".into(), 2)));
    // A different target restarts the count; a direct answer clears it.
    apply_outcome(
        &mut state,
        &not_modified(Some("http://c/")),
        &h,
        i,
        now(),
        0,
    );
    assert_eq!(state.redirect_candidate, Some(("http://c/".into(), 1)));
    apply_outcome(&mut state, &not_modified(None), &h, i, now(), 0);
    assert_eq!(state.redirect_candidate, None);
    assert_eq!(state.moved_to, None);
}

#[tokio::test]
async fn redirect_loop_is_detected() {
    let (addr, log) = serve(|stream, req| async move {
        let to = if req.path == "/a" { "/b" } else { "/a" };
        reply(stream, response("302 Found", &[("Location", to)], b"")).await;
    })
    .await;
    let f = fetcher(&settings());
    let err = f
        .fetch(&request(format!("http://{addr}/a")))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::RedirectLoop { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("http://{addr}/a")),
        "{err}"
    );
    assert_one_line(&err);
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn too_long_redirect_chain_stops_at_the_limit() {
    let (addr, log) = serve(|stream, req| async move {
        let n: u32 = req.path.trim_start_matches("/r/").parse().unwrap_or(0);
        let to = format!("/r/{}", n + 1);
        reply(
            stream,
            response("307 Temporary Redirect", &[("Location", &to)], b""),
        )
        .await;
    })
    .await;
    let s = settings();
    let f = fetcher(&s);
    let err = f
        .fetch(&request(format!("http://{addr}/r/0")))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        FetchError::TooManyRedirects {
            url: format!("http://{addr}/r/0"),
            limit: s.max_redirects
        }
    );
    assert!(err.to_string().contains("more than 5 redirects"), "{err}");
    // The first request and the five allowed redirects; the sixth is never requested.
    assert_eq!(log.lock().unwrap().len(), s.max_redirects + 1);
}

#[tokio::test]
async fn redirect_to_another_scheme_is_refused() {
    let (addr, _log) = serve(|stream, _req| async move {
        let bytes = response("302 Found", &[("Location", "file:///etc/passwd")], b"");
        reply(stream, bytes).await;
    })
    .await;
    let err = fetcher(&settings())
        .fetch(&request(format!("http://{addr}/x")))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::BadRedirect { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Server asks to come back later.

#[tokio::test]
async fn status_429_with_retry_after_seconds_sets_next_check() {
    let (addr, _log) = serve(|stream, _req| async move {
        let bytes = response(
            "429 Too Many Requests",
            &[("Retry-After", "7200")],
            b"slow down",
        );
        reply(stream, bytes).await;
    })
    .await;
    let url = format!("http://{addr}/feed");
    let result = fetcher(&settings()).fetch(&request(url.clone())).await;
    let err = result.clone().unwrap_err();
    assert_eq!(
        err,
        FetchError::Http {
            url: url.clone(),
            status: 429,
            retry_after: Some(RetryAfter::Seconds(7200))
        }
    );
    assert!(err.to_string().contains("429") && err.to_string().contains(&url));
    let mut state = FeedState::default();
    apply_outcome(
        &mut state,
        &result,
        &FeedHints::default(),
        Duration::from_secs(600),
        now(),
        3,
    );
    assert_eq!(state.error_count, 1);
    assert_eq!(state.last_error, Some(err.to_string()));
    // The 600 s backoff is raised to the server's 2 h.
    assert_eq!(
        state.next_check,
        Some(now() + ChronoDuration::seconds(7200))
    );
}

#[tokio::test]
async fn status_503_with_retry_after_date_sets_next_check() {
    let (addr, _log) = serve(|stream, _req| async move {
        let bytes = response(
            "503 Service Unavailable",
            &[("Retry-After", "Tue, 10 Mar 2026 13:00:00 GMT")],
            b"",
        );
        reply(stream, bytes).await;
    })
    .await;
    let result = fetcher(&settings())
        .fetch(&request(format!("http://{addr}/feed")))
        .await;
    let at = Utc
        .with_ymd_and_hms(2026, 3, 10, 13, 0, 0)
        .single()
        .unwrap();
    assert_eq!(
        result.as_ref().err().and_then(FetchError::retry_after),
        Some(RetryAfter::At(at))
    );
    let mut state = FeedState::default();
    apply_outcome(
        &mut state,
        &result,
        &FeedHints::default(),
        Duration::from_secs(600),
        now(),
        3,
    );
    assert_eq!(state.next_check, Some(at));
}

// ---------------------------------------------------------------------------------------------
// Compression and size limits.

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
    w.write_all(data).unwrap();
    w.into_inner()
}

#[tokio::test]
async fn gzip_brotli_and_deflate_bodies_are_decompressed() {
    let body: Vec<u8> = FEED.repeat(50).into_bytes();
    let encoded = Arc::new([
        ("gzip", gzip(&body)),
        ("br", brotli(&body)),
        ("deflate", zlib(&body)),
    ]);
    let served = encoded.clone();
    let (addr, log) = serve(move |stream, req| {
        let served = served.clone();
        async move {
            let name = req.path.trim_start_matches('/');
            let bytes = match served.iter().find(|(n, _)| *n == name) {
                Some((n, data)) => response("200 OK", &[("Content-Encoding", n)], data),
                None => response("404 Not Found", &[], b""),
            };
            reply(stream, bytes).await;
        }
    })
    .await;
    let f = fetcher(&settings());
    for (name, data) in encoded.iter() {
        assert!(data.len() < body.len() / 5, "{name} really compresses");
        let feed = modified(f.fetch(&request(format!("http://{addr}/{name}"))).await);
        assert_eq!(feed.body, body, "{name}");
    }
    let accept = log.lock().unwrap()[0]
        .header("accept-encoding")
        .unwrap_or_default()
        .to_string();
    assert!(accept.contains("gzip") && accept.contains("br"), "{accept}");
}

/// One megabyte of zeros as a byte-aligned, non-final deflate block: repeated, it decompresses
/// to another megabyte each time, so a few KiB on the wire are gigabytes in memory.
pub(crate) fn zero_megabyte_deflate_block() -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; 1 << 20]).unwrap();
    e.flush().unwrap();
    e.get_ref().clone()
}

#[tokio::test]
async fn gzip_bomb_stops_at_the_cap() {
    let block = Arc::new(zero_megabyte_deflate_block());
    assert!(block.len() < 8 * 1024, "block is {} bytes", block.len());
    let megabytes_sent = Arc::new(AtomicUsize::new(0));
    let sent = megabytes_sent.clone();
    let (addr, _log) = serve(move |mut stream, _req| {
        let block = block.clone();
        let sent = sent.clone();
        async move {
            let head = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n";
            let gzip_header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
            if stream.write_all(head.as_bytes()).await.is_err()
                || stream.write_all(&gzip_header).await.is_err()
            {
                return;
            }
            // Up to 100 GB decompressed; the client must hang up long before.
            for _ in 0..100_000 {
                if stream.write_all(&block).await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    let s = FetchSettings {
        max_body: 4_000_000,
        ..settings()
    };
    let started = Instant::now();
    let err = fetcher(&s)
        .fetch(&request(format!("http://{addr}/bomb")))
        .await
        .unwrap_err();
    match &err {
        FetchError::TooLarge { limit, detail, .. } => {
            assert_eq!(*limit, 4_000_000);
            // At most the cap plus one decoded chunk was ever held.
            let held: u64 = detail
                .trim_start_matches("stopped after ")
                .trim_end_matches(" bytes")
                .parse()
                .unwrap();
            assert!(held > 4_000_000 && held < 4_000_000 + (1 << 20), "{detail}");
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert_one_line(&err);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The server got far less than its 100 000 blocks out.
    assert!(megabytes_sent.load(Ordering::Relaxed) < 100_000);
}

#[tokio::test]
async fn endless_chunked_body_is_cut_at_the_cap() {
    let (addr, _log) = serve(|mut stream, _req| async move {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        for _ in 0..100_000 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let started = Instant::now();
    let err = fetcher(&settings())
        .fetch(&request(format!("http://{addr}/endless")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FetchError::TooLarge { limit: 1_000_000, detail, .. } if detail.starts_with("stopped after")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn many_tiny_chunks_arrive_intact() {
    // 3000 one-byte chunks: more than the fetcher holds before joining them.
    let expected: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let served = expected.clone();
    let (addr, _log) = serve(move |mut stream, _req| {
        let served = served.clone();
        async move {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for b in &served {
                out.extend_from_slice(b"1\r\n");
                out.push(*b);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
        }
    })
    .await;
    let feed = modified(
        fetcher(&settings())
            .fetch(&request(format!("http://{addr}/tiny")))
            .await,
    );
    assert_eq!(feed.body, expected);
}

#[tokio::test]
async fn huge_content_length_is_refused_before_reading() {
    let (addr, _log) = serve(|mut stream, _req| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(b"<rss>").await;
        // Then nothing: a client that tried to read the body would wait for the timeout.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let started = Instant::now();
    let err = fetcher(&settings())
        .fetch(&request(format!("http://{addr}/huge")))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("over the 1000000-byte limit (Content-Length 1000000000)"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------------
// Timeouts and dead servers.

#[tokio::test]
async fn one_byte_per_second_is_cut_by_the_total_timeout() {
    let (addr, _log) = serve(|mut stream, _req| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..100 {
            if stream.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let s = FetchSettings {
        timeout: Duration::from_millis(1500),
        ..settings()
    };
    let url = format!("http://{addr}/trickle");
    let started = Instant::now();
    let err = fetcher(&s).fetch(&request(url.clone())).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err,
        FetchError::Timeout {
            url,
            limit: Duration::from_millis(1500)
        }
    );
    assert!(err.to_string().contains("1.5s timeout"), "{err}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn server_that_never_answers_times_out() {
    let (addr, log) = serve(|stream, _req| async move {
        let _held_open = stream;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let s = FetchSettings {
        timeout: Duration::from_millis(800),
        ..settings()
    };
    let started = Instant::now();
    let err = fetcher(&s)
        .fetch(&request(format!("http://{addr}/silent")))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "the request did reach the server"
    );
}

#[tokio::test]
async fn closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/feed");
    let err = fetcher(&settings())
        .fetch(&request(url.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Connect { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with(&format!("cannot connect to {url}")));
    assert_one_line(&err);
}

#[tokio::test]
async fn bad_urls_are_refused_without_io() {
    let f = fetcher(&settings());
    for url in ["not a url", "ftp://example.org/feed.xml", "http://"] {
        let err = f.fetch(&request(url.into())).await.unwrap_err();
        assert!(matches!(err, FetchError::BadUrl { .. }), "{url}: {err}");
        assert_one_line(&err);
    }
}

// ---------------------------------------------------------------------------------------------
// Headers for the parser.

#[tokio::test]
async fn wrong_charset_header_and_parser_headers_pass_through() {
    // The body is UTF-8 although the header claims Latin-1; the parser decides, not the fetcher.
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><rss><channel><title>Migración</title></channel></rss>";
    let (addr, _log) = serve(move |stream, _req| async move {
        let bytes = response(
            "200 OK",
            &[
                ("Content-Type", "text/xml; charset=ISO-8859-1"),
                ("Content-Language", "es"),
                ("Content-Location", "/news/rss.xml"),
                ("X-Other", "not for the parser"),
            ],
            body.as_bytes(),
        );
        reply(stream, bytes).await;
    })
    .await;
    let feed = modified(
        fetcher(&settings())
            .fetch(&request(format!("http://{addr}/rss")))
            .await,
    );
    assert_eq!(feed.body, body.as_bytes(), "bytes untouched");
    assert_eq!(
        feed.meta.content_type.as_deref(),
        Some("text/xml; charset=ISO-8859-1")
    );
    assert_eq!(
        feed.meta.headers,
        vec![
            (
                "content-type".to_string(),
                "text/xml; charset=ISO-8859-1".to_string()
            ),
            ("content-location".to_string(), "/news/rss.xml".to_string()),
            ("content-language".to_string(), "es".to_string()),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Politeness: per-host and global limits.

/// Counts requests being held at once and the most held at once.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// A server that holds each request (one per connection) for 150 ms, counted on every gauge.
async fn counting_server(gauges: Vec<Gauge>) -> (SocketAddr, Arc<Mutex<Vec<Request>>>) {
    let gauges = Arc::new(gauges);
    serve(move |stream, _req| {
        let gauges = gauges.clone();
        async move {
            gauges.iter().for_each(Gauge::enter);
            tokio::time::sleep(Duration::from_millis(150)).await;
            gauges.iter().for_each(Gauge::leave);
            reply(stream, response("200 OK", &[], FEED.as_bytes())).await;
        }
    })
    .await
}

#[tokio::test]
async fn per_host_limit_is_observed_at_the_server() {
    let (host_a, host_b, both) = (Gauge::default(), Gauge::default(), Gauge::default());
    let (a, log_a) = counting_server(vec![host_a.clone(), both.clone()]).await;
    let (b, _log_b) = counting_server(vec![host_b.clone(), both.clone()]).await;
    let f = fetcher(&FetchSettings {
        per_host: 2,
        concurrency: 16,
        ..settings()
    });
    let urls: Vec<String> = (0..6)
        .map(|i| format!("http://{a}/feed{i}"))
        .chain((0..6).map(|i| format!("http://{b}/feed{i}")))
        .collect();
    let started = Instant::now();
    let requests: Vec<FetchRequest> = urls.iter().map(|u| request(u.clone())).collect();
    let results = futures_util::future::join_all(requests.iter().map(|r| f.fetch(r))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(log_a.lock().unwrap().len(), 6);
    assert_eq!(host_a.peak(), 2, "host a");
    assert_eq!(host_b.peak(), 2, "host b");
    assert_eq!(both.peak(), 4, "the two hosts ran side by side");
    // Six requests per host, two at a time, 150 ms each: at least three rounds.
    assert!(started.elapsed() >= Duration::from_millis(440));
    assert_eq!(f.host_permits_available(&urls[0]), Some(2));
}

#[tokio::test]
async fn waiting_for_a_busy_host_is_not_counted_in_the_timeout() {
    let gauge = Gauge::default();
    let (addr, _) = counting_server(vec![gauge.clone()]).await;
    // Each answer takes 150 ms; four in a row take 600 ms, past the 400 ms timeout of each.
    let f = fetcher(&FetchSettings {
        per_host: 1,
        timeout: Duration::from_millis(400),
        ..settings()
    });
    let requests: Vec<FetchRequest> = (0..4)
        .map(|i| request(format!("http://{addr}/{i}")))
        .collect();
    let started = Instant::now();
    let results = futures_util::future::join_all(requests.iter().map(|r| f.fetch(r))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert!(started.elapsed() >= Duration::from_millis(590));
    assert_eq!(gauge.peak(), 1);
}

#[tokio::test]
async fn global_concurrency_limit_spans_hosts() {
    let (host_a, host_b, both) = (Gauge::default(), Gauge::default(), Gauge::default());
    let (a, _) = counting_server(vec![host_a.clone(), both.clone()]).await;
    let (b, _) = counting_server(vec![host_b.clone(), both.clone()]).await;
    let f = fetcher(&FetchSettings {
        per_host: 4,
        concurrency: 3,
        ..settings()
    });
    let urls: Vec<String> = (0..4)
        .flat_map(|i| [format!("http://{a}/{i}"), format!("http://{b}/{i}")])
        .collect();
    let requests: Vec<FetchRequest> = urls.iter().map(|u| request(u.clone())).collect();
    let results = futures_util::future::join_all(requests.iter().map(|r| f.fetch(r))).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(
        both.peak(),
        3,
        "three at once across both hosts, never more"
    );
    assert!(host_a.peak() <= 3 && host_b.peak() <= 3);
}

// ---------------------------------------------------------------------------------------------
// file:// sources.

#[tokio::test]
async fn file_source_reads_with_cap_and_modification_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.xml");
    std::fs::write(&path, FEED).unwrap();
    let url = url::Url::from_file_path(&path).unwrap().to_string();
    let f = fetcher(&settings());
    let feed = modified(f.fetch(&request(url.clone())).await);
    assert_eq!(feed.body, FEED.as_bytes());
    assert!(feed.meta.last_modified.is_some());
    let again = FetchRequest {
        url: url.clone(),
        etag: None,
        last_modified: feed.meta.last_modified,
    };
    assert!(matches!(
        f.fetch(&again).await,
        Ok(FetchOutcome::NotModified(_))
    ));

    let big = dir.path().join("big.xml");
    std::fs::write(&big, vec![b' '; 2_000]).unwrap();
    let small_cap = fetcher(&FetchSettings {
        max_body: 1_000,
        ..settings()
    });
    let err = small_cap
        .fetch(&request(
            url::Url::from_file_path(&big).unwrap().to_string(),
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("1000-byte limit (file of 2000 bytes)"),
        "{err}"
    );

    for not_a_file in [dir.path().to_path_buf(), "/dev/zero".into()] {
        let u = url::Url::from_file_path(&not_a_file).unwrap().to_string();
        let err = f.fetch(&request(u)).await.unwrap_err();
        assert!(err.to_string().ends_with("not a regular file"), "{err}");
    }

    let missing = url::Url::from_file_path(dir.path().join("missing.xml")).unwrap();
    let err = f.fetch(&request(missing.to_string())).await.unwrap_err();
    assert!(matches!(err, FetchError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.xml"), "{err}");
    assert_one_line(&err);
}

// ---------------------------------------------------------------------------------------------
// Pure policy: backoff and next check.

#[test]
fn backoff_grows_exponentially_up_to_the_cap() {
    let interval = Duration::from_secs(1800);
    let mut previous_upper = Duration::ZERO;
    for n in 1..=40u32 {
        let upper = interval
            .checked_mul(1u32 << (n - 1).min(20))
            .unwrap_or(BACKOFF_CAP)
            .min(BACKOFF_CAP);
        let lower = upper.mul_f64(1.0 - BACKOFF_JITTER);
        for seed in 0..200u64 {
            let d = backoff_delay(n, interval, seed);
            assert!(d <= upper && d >= lower, "n={n} seed={seed}: {d:?}");
        }
        assert!(upper >= previous_upper);
        previous_upper = upper;
    }
    // Doubling: 30 min, 1 h, 2 h, ... then 24 h at most, still probing.
    assert!(backoff_delay(2, interval, 5) > backoff_delay(1, interval, 5).mul_f64(1.5));
    assert!(backoff_delay(u32::MAX, interval, 5) <= BACKOFF_CAP);
    assert!(backoff_delay(u32::MAX, interval, 5) >= BACKOFF_CAP.mul_f64(0.8));
}

#[test]
fn backoff_jitter_is_deterministic_and_spread() {
    let interval = Duration::from_secs(600);
    assert_eq!(
        backoff_delay(3, interval, 42),
        backoff_delay(3, interval, 42)
    );
    let delays: std::collections::HashSet<Duration> =
        (0..100u64).map(|s| backoff_delay(3, interval, s)).collect();
    assert!(delays.len() > 90, "only {} distinct delays", delays.len());
    let secs: Vec<f64> = (0..1000u64)
        .map(|s| backoff_delay(3, interval, s).as_secs_f64())
        .collect();
    let mean = secs.iter().sum::<f64>() / secs.len() as f64;
    // Uniform over [0.8, 1.0] × 2400 s: the mean sits near 2160 s.
    assert!((mean - 2160.0).abs() < 30.0, "mean {mean}");
}

#[test]
fn failures_count_up_and_success_resets() {
    let mut state = FeedState::default();
    let err: Result<FetchOutcome, FetchError> = Err(FetchError::Connect {
        url: "http://example.org/feed".into(),
        reason: "connection refused".into(),
    });
    let h = FeedHints::default();
    let interval = Duration::from_secs(600);
    let mut last_delay = ChronoDuration::zero();
    for n in 1..=5 {
        apply_outcome(&mut state, &err, &h, interval, now(), 9);
        assert_eq!(state.error_count, n);
        let delay = state.next_check.unwrap() - now();
        assert!(
            delay > last_delay,
            "backoff grows: {delay} after {last_delay}"
        );
        last_delay = delay;
    }
    assert_eq!(
        state.last_error.as_deref(),
        Some("cannot connect to http://example.org/feed: connection refused")
    );
    let ok = Ok(FetchOutcome::NotModified(ResponseMeta {
        final_url: "http://example.org/feed".into(),
        status: 304,
        content_type: None,
        headers: vec![],
        etag: None,
        last_modified: None,
        cache_max_age: None,
        permanent_redirect: None,
        redirects: 0,
        elapsed: Duration::ZERO,
    }));
    apply_outcome(&mut state, &ok, &h, interval, now(), 9);
    assert_eq!(state.error_count, 0);
    assert_eq!(state.last_error, None);
    assert_eq!(state.next_check, Some(now() + ChronoDuration::seconds(600)));
}

#[test]
fn ttl_and_max_age_are_floors_never_ceilings() {
    let interval = Duration::from_secs(1800);
    let ttl = FeedHints {
        ttl_minutes: Some(120),
        ..FeedHints::default()
    };
    assert_eq!(
        success_delay(interval, &ttl, None),
        Duration::from_secs(7200)
    );
    // A short ttl or max-age never makes polling more frequent than the interval.
    let short = FeedHints {
        ttl_minutes: Some(5),
        ..FeedHints::default()
    };
    assert_eq!(
        success_delay(interval, &short, Some(Duration::from_secs(60))),
        interval
    );
    assert_eq!(
        success_delay(interval, &short, Some(Duration::from_secs(3 * 3600))),
        Duration::from_secs(3 * 3600)
    );
    // Absurd hints are clamped so the feed is still read daily.
    assert_eq!(
        success_delay(
            interval,
            &FeedHints::default(),
            Some(Duration::from_secs(u64::MAX / 2))
        ),
        policy::HINT_CAP
    );
}

#[test]
fn skip_hours_and_days_push_the_next_check_out() {
    // 2026-03-10 is a Tuesday.
    let due = Utc
        .with_ymd_and_hms(2026, 3, 10, 22, 30, 0)
        .single()
        .unwrap();
    let night = FeedHints {
        skip_hours: vec![22, 23, 0, 1, 2, 3, 4, 5],
        ..FeedHints::default()
    };
    assert_eq!(
        skip_closed_windows(due, &night),
        Utc.with_ymd_and_hms(2026, 3, 11, 6, 0, 0).single().unwrap()
    );
    let open = Utc
        .with_ymd_and_hms(2026, 3, 10, 12, 30, 0)
        .single()
        .unwrap();
    assert_eq!(
        skip_closed_windows(open, &night),
        open,
        "open hours untouched"
    );

    let weekend_and_night = FeedHints {
        skip_hours: vec![0, 1],
        skip_days: vec![Weekday::Sat, Weekday::Sun],
        ..FeedHints::default()
    };
    let friday_evening = Utc
        .with_ymd_and_hms(2026, 3, 13, 23, 10, 0)
        .single()
        .unwrap();
    assert_eq!(
        skip_closed_windows(friday_evening, &weekend_and_night),
        friday_evening
    );
    let saturday = Utc
        .with_ymd_and_hms(2026, 3, 14, 10, 0, 0)
        .single()
        .unwrap();
    let next = skip_closed_windows(saturday, &weekend_and_night);
    assert_eq!(
        next,
        Utc.with_ymd_and_hms(2026, 3, 16, 2, 0, 0).single().unwrap()
    );
    assert_eq!(next.weekday(), Weekday::Mon);
    assert_eq!(next.hour(), 2);

    // A list closing every hour is ignored instead of never fetching.
    let all = FeedHints {
        skip_hours: (0..24).collect(),
        ..FeedHints::default()
    };
    assert_eq!(skip_closed_windows(due, &all), due);
}

#[test]
fn apply_outcome_combines_ttl_and_skip_hours() {
    let hints = FeedHints {
        ttl_minutes: Some(60),
        skip_hours: vec![10],
        ..FeedHints::default()
    };
    let mut state = FeedState::default();
    let ok = Ok(FetchOutcome::Modified(FetchedFeed {
        body: FEED.as_bytes().to_vec(),
        meta: ResponseMeta {
            final_url: "http://example.org/feed".into(),
            status: 200,
            content_type: None,
            headers: vec![],
            etag: Some("\"x\"".into()),
            last_modified: None,
            cache_max_age: None,
            permanent_redirect: None,
            redirects: 0,
            elapsed: Duration::ZERO,
        },
    }));
    // now() is 09:15; the 60 min ttl gives 10:15, inside the skipped hour 10: moved to 11:00.
    apply_outcome(&mut state, &ok, &hints, Duration::from_secs(900), now(), 0);
    assert_eq!(
        state.next_check,
        Some(
            Utc.with_ymd_and_hms(2026, 3, 10, 11, 0, 0)
                .single()
                .unwrap()
        )
    );
    assert_eq!(state.etag.as_deref(), Some("\"x\""));
    assert_eq!(state.last_fetch, Some(now()));
}

#[test]
fn hints_from_parsed_feed_meta() {
    let meta = newsrelay::parse::FeedMeta {
        ttl_minutes: Some(90),
        skip_hours: vec![3, 99],
        skip_days: vec!["Saturday".into(), "Funday".into(), " sunday ".into()],
        ..Default::default()
    };
    let hints = FeedHints::from_meta(&meta);
    assert_eq!(hints.ttl_minutes, Some(90));
    assert_eq!(hints.skip_hours, vec![3]);
    assert_eq!(hints.skip_days, vec![Weekday::Sat, Weekday::Sun]);
}
