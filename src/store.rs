//! The store: sled trees, key layouts and atomic application of one feed's intents.
//!
//! In: intents from `dedup`, feed state from `fetch`, delivery records from `digest`. Out:
//! items and indexes read back in order. Every sled type stays inside this module. It must never
//! report a write as done before it is durable (flushed).
