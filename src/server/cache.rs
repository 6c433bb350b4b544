//! Rendered documents and the cache that keeps them between store changes.
//!
//! In: a document's bytes, media type and Last-Modified instant. Out: a [`Rendered`] holding
//! the identity, gzip and brotli bodies, each with a strong ETag that hashes exactly the bytes
//! sent, all compressed once when the document is rendered; and a [`FeedCache`] keyed by the
//! request's canonical form, emptied whenever the store's generation changes. It must never
//! grow past its byte budget, never serve a document rendered for an older generation, and
//! never compress per request.

use axum::body::Bytes;
use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Bodies under this size are sent uncompressed (the headers would outweigh the saving).
const MIN_COMPRESS: usize = 512;
/// Brotli quality and window: close to the best ratio at a render cost paid once per change.
/// Brotli quality 5: from quality 9 up the encoder's hash tables take tens of MB per
/// concurrent render (heaptrack: 75 MB at the peak under wrk with two render slots, the
/// largest single consumer in the soak), for a few percent smaller feeds.
const BROTLI_QUALITY: u32 = 5;
/// Largest window (log2 bytes); a smaller body gets the smallest window that holds it.
const BROTLI_WINDOW: u32 = 22;

/// A content coding the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Brotli,
}

impl Coding {
    /// The `Content-Encoding` value, None for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Brotli => Some("br"),
        }
    }
}

/// One encoding of a document.
#[derive(Debug, Clone)]
pub struct Variant {
    pub coding: Coding,
    pub body: Bytes,
    /// Strong ETag over exactly `body`.
    pub etag: HeaderValue,
}

/// A rendered document in every encoding worth sending.
#[derive(Debug)]
pub struct Rendered {
    pub content_type: &'static str,
    /// `Last-Modified`, already formatted as an HTTP date.
    pub last_modified: HeaderValue,
    /// The same instant truncated to seconds, for If-Modified-Since.
    pub last_modified_secs: i64,
    pub cache_control: &'static str,
    pub identity: Variant,
    pub gzip: Option<Variant>,
    pub brotli: Option<Variant>,
    /// Generation of the store this was rendered from.
    pub generation: u64,
    created: Instant,
}

fn etag_for(body: &[u8]) -> HeaderValue {
    let h = xxhash_rust::xxh3::xxh3_128(body);
    // Hex digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{h:032x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn variant(coding: Coding, body: Vec<u8>) -> Variant {
    let etag = etag_for(&body);
    Variant {
        coding,
        body: Bytes::from(body),
        etag,
    }
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 3),
        flate2::Compression::new(6),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

fn brotli(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() / 4);
    {
        // The window (and the ring buffer sized from it) need not be larger than the body.
        let needed = usize::BITS - body.len().max(1).leading_zeros();
        let window = needed.clamp(16, BROTLI_WINDOW);
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, window);
        w.write_all(body).ok()?;
        w.flush().ok()?;
    }
    Some(out)
}

/// An HTTP date (IMF-fixdate) for a header.
pub fn http_date(t: DateTime<Utc>) -> HeaderValue {
    let s = t.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

impl Rendered {
    /// Builds every encoding of `body`. Compression runs here, once per render.
    pub fn new(
        body: Vec<u8>,
        content_type: &'static str,
        cache_control: &'static str,
        last_modified: DateTime<Utc>,
        generation: u64,
    ) -> Rendered {
        let (gz, br) = if body.len() >= MIN_COMPRESS {
            (
                gzip(&body).filter(|c| c.len() < body.len()),
                brotli(&body).filter(|c| c.len() < body.len()),
            )
        } else {
            (None, None)
        };
        Rendered {
            content_type,
            last_modified: http_date(last_modified),
            last_modified_secs: last_modified.timestamp(),
            cache_control,
            identity: variant(Coding::Identity, body),
            gzip: gz.map(|b| variant(Coding::Gzip, b)),
            brotli: br.map(|b| variant(Coding::Brotli, b)),
            generation,
            created: Instant::now(),
        }
    }

    /// The variant for a negotiated coding, falling back to identity when that coding was not
    /// worth keeping.
    pub fn variant(&self, coding: Coding) -> &Variant {
        match coding {
            Coding::Brotli => self.brotli.as_ref().unwrap_or(&self.identity),
            Coding::Gzip => self.gzip.as_ref().unwrap_or(&self.identity),
            Coding::Identity => &self.identity,
        }
    }

    /// Bytes held by every variant.
    pub fn size(&self) -> usize {
        self.identity.body.len()
            + self.gzip.as_ref().map_or(0, |v| v.body.len())
            + self.brotli.as_ref().map_or(0, |v| v.body.len())
    }
}

/// Rendered documents of the current generation, bounded in bytes and age.
#[derive(Debug)]
pub struct FeedCache {
    entries: RwLock<HashMap<String, Arc<Rendered>>>,
    max_bytes: usize,
    max_age: Duration,
}

impl FeedCache {
    pub fn new(max_bytes: usize, max_age: Duration) -> FeedCache {
        FeedCache {
            entries: RwLock::new(HashMap::new()),
            max_bytes,
            max_age,
        }
    }

    /// The document for `key` if it was rendered for `generation` and is not too old.
    pub fn get(&self, key: &str, generation: u64) -> Option<Arc<Rendered>> {
        let entries = self.entries.read().ok()?;
        entries
            .get(key)
            .filter(|r| r.generation == generation && r.created.elapsed() < self.max_age)
            .cloned()
    }

    /// Keeps `doc` unless the generation moved on while it was rendered. Evicts entries of
    /// other generations first, then arbitrary ones, until the budget holds.
    pub fn put(&self, key: String, doc: Arc<Rendered>, current_generation: u64) {
        if doc.generation != current_generation || doc.size() > self.max_bytes {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        entries.retain(|_, r| r.generation == current_generation);
        let mut total: usize = entries.values().map(|r| r.size()).sum();
        while total + doc.size() > self.max_bytes {
            let Some(victim) = entries.keys().next().cloned() else {
                break;
            };
            if let Some(r) = entries.remove(&victim) {
                total = total.saturating_sub(r.size());
            }
        }
        entries.insert(key, doc);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn doc(text: &str, generation: u64) -> Arc<Rendered> {
        Arc::new(Rendered::new(
            text.as_bytes().to_vec(),
            "text/plain",
            "no-cache",
            Utc::now(),
            generation,
        ))
    }

    #[test]
    fn variants_decode_to_the_same_bytes_with_distinct_etags() {
        let text = "news item text ".repeat(200);
        let r = doc(&text, 1);
        let gz = r.gzip.as_ref().unwrap();
        let br = r.brotli.as_ref().unwrap();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz.body[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        out.clear();
        brotli::Decompressor::new(&br.body[..], 4096)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        assert_ne!(r.identity.etag, gz.etag);
        assert_ne!(gz.etag, br.etag);
        assert_eq!(r.identity.etag, etag_for(text.as_bytes()));
    }

    #[test]
    fn small_bodies_stay_uncompressed() {
        let r = doc("tiny", 1);
        assert!(r.gzip.is_none() && r.brotli.is_none());
        assert_eq!(r.variant(Coding::Brotli).coding, Coding::Identity);
    }

    #[test]
    fn cache_respects_generation_and_budget() {
        let cache = FeedCache::new(3000, Duration::from_secs(60));
        cache.put("a".into(), doc("a", 1), 1);
        assert!(cache.get("a", 1).is_some());
        assert!(
            cache.get("a", 2).is_none(),
            "older generation must not be served"
        );
        cache.put("stale".into(), doc("s", 1), 2);
        assert!(
            cache.get("stale", 1).is_none(),
            "render of an old generation is dropped"
        );
        for i in 0..20 {
            cache.put(format!("k{i}"), doc(&"x".repeat(400), 2), 2);
        }
        let total: usize = cache
            .entries
            .read()
            .unwrap()
            .values()
            .map(|r| r.size())
            .sum();
        assert!(total <= 3000, "{total}");
        assert!(cache.get("a", 1).is_none());
    }
}
