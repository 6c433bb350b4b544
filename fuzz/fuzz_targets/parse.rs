//! Fuzz target: any bytes, with or without an HTTP context, must parse or give an error —
//! never panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsrelay::parse::{parse_feed, FeedInput, Limits};

fuzz_target!(|data: &[u8]| {
    // The first byte picks an HTTP context so the charset logic is exercised too.
    let (ctx, body) = match data.split_first() {
        Some((c, rest)) => (*c, rest),
        None => (0, data),
    };
    let content_type = match ctx % 5 {
        0 => None,
        1 => Some("application/rss+xml; charset=utf-8"),
        2 => Some("text/xml"),
        3 => Some("application/xml; charset=iso-8859-1"),
        _ => Some("application/feed+json"),
    };
    let headers = vec![("content-location".to_string(), "../feed/".to_string())];
    let input = FeedInput {
        body,
        url: Some("http://example.org/a/b/feed.xml"),
        content_type,
        headers: if ctx & 8 != 0 { &headers } else { &[] },
        limits: Limits {
            max_bytes: 1 << 20,
            max_depth: 64,
        },
    };
    if let Ok(feed) = parse_feed(&input) {
        let _ = serde_json::to_string(&feed);
    }
});
