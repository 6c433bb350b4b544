//! HTTP caching semantics for rendered documents: content negotiation and conditional requests.
//!
//! In: request headers (`Accept-Encoding`, `If-None-Match`, `If-Modified-Since`) and a
//! [`Rendered`] document. Out: a 200 with the negotiated encoding, `ETag`, `Last-Modified`,
//! `Cache-Control` and `Vary: Accept-Encoding`, or a 304 carrying the same validators. It must
//! never send an encoding the client refused, never answer 304 to a validator it did not
//! issue, and never read the body of a header it cannot parse (a bad header counts as absent).

use super::cache::{Coding, Rendered};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::DateTime;

/// Longest header value the parsers look at; longer ones count as absent.
const MAX_HEADER: usize = 4096;

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() <= MAX_HEADER)
}

/// The q-value a coding gets from `Accept-Encoding` (RFC 9110 §12.5.3); `*` covers codings not
/// listed. Identity is acceptable unless refused explicitly.
fn quality(accept: &str, name: &str) -> Option<f32> {
    let mut star = None;
    for part in accept.split(',').take(32) {
        let mut pieces = part.split(';');
        let coding = pieces.next().unwrap_or("").trim();
        let q = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .next()
            .map_or(Some(1.0), |v| v.trim().parse::<f32>().ok())
            .unwrap_or(0.0);
        if coding.eq_ignore_ascii_case(name) {
            return Some(q);
        }
        if coding == "*" {
            star = Some(q);
        }
    }
    star
}

/// Picks brotli, then gzip, then identity, by the client's preferences.
pub fn negotiate(headers: &HeaderMap) -> Coding {
    let Some(accept) = header_str(headers, header::ACCEPT_ENCODING) else {
        return Coding::Identity;
    };
    let br = quality(accept, "br").unwrap_or(0.0);
    let gz = quality(accept, "gzip").unwrap_or(0.0);
    if br > 0.0 && br >= gz {
        Coding::Brotli
    } else if gz > 0.0 {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// True when `If-None-Match` lists `etag` (weak comparison, as RFC 9110 §13.1.2 asks) or `*`.
fn none_match(if_none_match: &str, etag: &str) -> bool {
    let want = etag.trim_start_matches("W/");
    if_none_match.split(',').take(64).any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == want
    })
}

/// The outcome of evaluating a request's preconditions.
pub fn is_not_modified(headers: &HeaderMap, etag: &HeaderValue, last_modified_secs: i64) -> bool {
    if let Some(inm) = header_str(headers, header::IF_NONE_MATCH) {
        // If-None-Match present: If-Modified-Since is ignored (RFC 9110 §13.1.3).
        return etag.to_str().is_ok_and(|e| none_match(inm, e));
    }
    if let Some(ims) = header_str(headers, header::IF_MODIFIED_SINCE) {
        if let Ok(since) = DateTime::parse_from_rfc2822(ims.trim()) {
            return last_modified_secs <= since.timestamp();
        }
    }
    false
}

/// The response for a rendered document: 304 when the client's copy is current, else 200 with
/// the negotiated body. HEAD gets the same headers; axum drops the body.
pub fn respond(headers: &HeaderMap, doc: &Rendered) -> Response {
    let variant = doc.variant(negotiate(headers));
    let not_modified = is_not_modified(headers, &variant.etag, doc.last_modified_secs);
    let mut builder = Response::builder()
        .header(header::ETAG, variant.etag.clone())
        .header(header::LAST_MODIFIED, doc.last_modified.clone())
        .header(header::CACHE_CONTROL, doc.cache_control)
        .header(header::VARY, "Accept-Encoding");
    let response = if not_modified {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        builder = builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, doc.content_type);
        if let Some(enc) = variant.coding.header() {
            builder = builder.header(header::CONTENT_ENCODING, enc);
        }
        builder.body(Body::from(variant.body.clone()))
    };
    response.unwrap_or_else(|_| {
        let mut r = Response::new(Body::from("cannot build response"));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn negotiation_follows_q_values() {
        let n = |v: &str| negotiate(&headers(&[("accept-encoding", v)]));
        assert_eq!(n("gzip, deflate, br"), Coding::Brotli);
        assert_eq!(n("gzip"), Coding::Gzip);
        assert_eq!(n("br;q=0, gzip"), Coding::Gzip);
        assert_eq!(n("br;q=0.5, gzip;q=0.8"), Coding::Gzip);
        assert_eq!(n("identity"), Coding::Identity);
        assert_eq!(n("*"), Coding::Brotli);
        assert_eq!(n("*;q=0"), Coding::Identity);
        assert_eq!(negotiate(&HeaderMap::new()), Coding::Identity);
    }

    #[test]
    fn preconditions() {
        let etag = HeaderValue::from_static("\"abc\"");
        let lm = 1_700_000_000;
        let h = |k: &'static str, v: &str| headers(&[(k, v)]);
        assert!(is_not_modified(&h("if-none-match", "\"abc\""), &etag, lm));
        assert!(is_not_modified(
            &h("if-none-match", "\"x\", W/\"abc\""),
            &etag,
            lm
        ));
        assert!(is_not_modified(&h("if-none-match", "*"), &etag, lm));
        assert!(!is_not_modified(&h("if-none-match", "\"abd\""), &etag, lm));
        let date = "Tue, 14 Nov 2023 22:13:20 GMT"; // == lm
        assert!(is_not_modified(&h("if-modified-since", date), &etag, lm));
        assert!(!is_not_modified(
            &h("if-modified-since", date),
            &etag,
            lm + 1
        ));
        assert!(!is_not_modified(
            &h("if-modified-since", "yesterday"),
            &etag,
            lm
        ));
        // If-None-Match wins over If-Modified-Since.
        let both = headers(&[("if-none-match", "\"zzz\""), ("if-modified-since", date)]);
        assert!(!is_not_modified(&both, &etag, lm));
    }
}
