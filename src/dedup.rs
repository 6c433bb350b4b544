//! Deduplication decisions: new items + what the store already knows → intents.
//!
//! In: normalised items of one feed and the stored metadata for their ids, links and
//! fingerprints. Out: one intent per item (insert, update, skip, merge into an existing item as
//! another source). It must never do I/O: the store applies the intents.
