//! Ingest: one feed end to end (fetch → parse → normalize → dedup → classify → store).
//!
//! In: a configured feed, the store, the taxonomy. Out: a per-feed report (new, updated,
//! skipped, errors). A bad feed becomes a report, never a crash, and never stops other feeds.
