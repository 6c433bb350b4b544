//! Writes applied but not yet committed: the store's write batch.
//!
//! In: each feed's resolved writes (the new version of an item, the version it replaces, its
//! encoded value) and encoded feed states, in the order they were applied. Out: one sled
//! transaction over all of them when the batch is committed, and meanwhile the staged version of
//! an item, link or feed state for the write path's own lookups (dedup must see what an earlier
//! feed of the same batch stored). sled rolls its log buffer twice for every transaction (each
//! roll a write and a `sync_file_range` that waits for the disk), so one transaction per feed
//! document cost more than everything else the store does; a batch of documents pays it once
//! (docs/design-notes.md, "Store write batches"). Nothing here is durable, and nothing here is
//! ever reported stored before the commit that carries it has been flushed.

use crate::item::Item;
use std::collections::HashMap;
use std::sync::Arc;

/// Documents staged before the batch is committed on its own (no flush), in caller-flush mode.
/// On the corpus, 64 documents per transaction wrote 2.5x faster than one; 256 a little
/// faster again, with the byte bound below keeping the batch's memory in check.
pub(super) const MAX_STAGED_DOCUMENTS: usize = 256;

/// Encoded bytes staged before the batch is committed on its own: bounds the memory a batch
/// holds whatever its documents' sizes.
pub(super) const MAX_STAGED_BYTES: usize = 8 * 1024 * 1024;

/// One write of the batch, applied in order inside the commit's transaction.
pub(super) enum StagedWrite {
    /// `new` replaces `old` (None: a new item), `value` is `new` encoded.
    Item {
        new: Arc<Item>,
        old: Option<Arc<Item>>,
        value: Vec<u8>,
    },
    State {
        feed: String,
        value: Vec<u8>,
    },
}

/// The batch being built. Every field is cleared together when the batch is committed or
/// dropped.
#[derive(Default)]
pub(super) struct Staged {
    pub writes: Vec<StagedWrite>,
    /// The latest staged version of each item written in this batch.
    pub items: HashMap<String, Arc<Item>>,
    /// Canonical links first claimed in this batch, to the id claiming them.
    pub links: HashMap<String, String>,
    /// The latest staged state of each feed, encoded.
    pub states: HashMap<String, Vec<u8>>,
    pub documents: usize,
    pub bytes: usize,
    /// Number of the batch being built; a caller keeps the number its writes went into and
    /// asks [`Staged::lost`] after syncing.
    pub generation: u64,
    /// Batches whose commit failed (their writes were dropped), newest last, at most
    /// [`LOST_KEPT`].
    pub lost: Vec<u64>,
}

/// Failed batch numbers remembered: a caller asks right after its sync, so only the last few
/// can still be asked about.
const LOST_KEPT: usize = 64;

impl Staged {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.documents >= MAX_STAGED_DOCUMENTS || self.bytes >= MAX_STAGED_BYTES
    }

    /// Stages `new` (replacing `old`) with its encoded value.
    pub fn push_item(&mut self, new: Arc<Item>, old: Option<Arc<Item>>, value: Vec<u8>) {
        if let Some(link) = &new.link {
            self.links
                .entry(link.clone())
                .or_insert_with(|| new.id.0.clone());
        }
        self.bytes += value.len();
        self.items.insert(new.id.0.clone(), new.clone());
        self.writes.push(StagedWrite::Item { new, old, value });
    }

    pub fn push_state(&mut self, feed: &str, value: Vec<u8>) {
        self.bytes += value.len();
        self.states.insert(feed.to_string(), value.clone());
        self.writes.push(StagedWrite::State {
            feed: feed.to_string(),
            value,
        });
    }

    /// Ends the batch (committed or dropped): the next writes go into a new one.
    pub fn finish(&mut self, committed: bool) {
        if !committed && !self.writes.is_empty() {
            if self.lost.len() >= LOST_KEPT {
                self.lost.remove(0);
            }
            self.lost.push(self.generation);
        }
        self.writes.clear();
        self.items.clear();
        self.links.clear();
        self.states.clear();
        self.documents = 0;
        self.bytes = 0;
        self.generation += 1;
    }

    /// Whether the batch numbered `generation` was dropped by a failed commit. Past the
    /// remembered failures, an older batch counts as lost: only a store failing over and over
    /// gets there, and a write wrongly reported failed is fetched again, never lost.
    pub fn was_lost(&self, generation: u64) -> bool {
        self.lost.contains(&generation)
            || (self.lost.len() >= LOST_KEPT && self.lost.first().is_some_and(|f| generation < *f))
    }
}
