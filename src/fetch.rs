//! Fetching: a feed URL and its stored validators → a fetched body, not-modified, or a failure.
//!
//! In: the feed's URL, ETag and Last-Modified, fetch settings. Out: the body (decompressed,
//! capped), the response headers needed by the parser, new validators and the next-check hint.
//! It must never read unbounded bodies, wait without a timeout, follow redirects without a
//! limit, or touch the store.
