//! Read-only figures about the store for `newsrelay status` and `GET /api/status`.
//!
//! In: the open store, or only its folder on disk. Out: item counts per source feed (from the
//! `feed_time` index: an item merged from several feeds counts once for each), the store's size
//! on disk, and whether an open failed because another process holds the store. It never
//! writes and never opens the store itself.

use super::{keys, Store, StoreError};
use std::collections::BTreeMap;

impl Store {
    /// Number of items per source feed id (scans the feed index's keys once).
    pub fn items_per_feed(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for kv in self.feed_time.iter().keys() {
            let k = kv?;
            if let Some((name, _, _)) = keys::split_scoped_key(&k) {
                *counts.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

impl StoreError {
    /// True when the store could not be opened because another process (normally a running
    /// `newsrelay run` or `serve`) holds its lock, or a compaction is rewriting it.
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::InUse { .. })
    }
}
