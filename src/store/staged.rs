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

/// An item written more than once in one batch (fetched twice, or carried by two feeds).
pub(super) struct Superseded<'w> {
    /// Position of its first write in the batch.
    pub first: usize,
    /// Its last version, and that version encoded.
    pub last: &'w Arc<Item>,
    pub last_value: &'w [u8],
}

/// The items written more than once in `writes`, by id. Only the last version needs to reach
/// sled, in place of the version stored before the batch (the first write's `old`): each
/// earlier one would be written with its index entries and removed again by the next one in
/// the same transaction.
pub(super) fn superseded(writes: &[StagedWrite]) -> HashMap<&str, Superseded<'_>> {
    let mut seen: HashMap<&str, (usize, Superseded<'_>)> = HashMap::with_capacity(writes.len());
    for (at, w) in writes.iter().enumerate() {
        if let StagedWrite::Item { new, value, .. } = w {
            let latest = Superseded {
                first: at,
                last: new,
                last_value: value,
            };
            seen.entry(new.id.0.as_str())
                .and_modify(|(writes, s)| {
                    *writes += 1;
                    s.last = latest.last;
                    s.last_value = latest.last_value;
                })
                .or_insert((1, latest));
        }
    }
    seen.into_iter()
        .filter(|(_, (writes, _))| *writes > 1)
        .map(|(id, (_, s))| (id, s))
        .collect()
}

/// What a batch wrote, for lookups: the latest version of each item, each link first claimed
/// in it (to the claiming id), and the latest state of each feed (encoded).
#[derive(Default)]
pub(super) struct Overlay {
    pub items: HashMap<String, Arc<Item>>,
    pub links: HashMap<String, String>,
    pub states: HashMap<String, Vec<u8>>,
}

/// The batch being built, and the one being committed. The batch's fields are cleared
/// together when it is taken for its commit or dropped.
#[derive(Default)]
pub(super) struct Staged {
    pub writes: Vec<StagedWrite>,
    /// What this batch wrote.
    overlay: Overlay,
    /// What the batch being committed wrote, until its transaction has ended: staging goes on
    /// meanwhile, and its lookups must see that batch until sled has it.
    committing: Option<Arc<Overlay>>,
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

    /// The latest staged version of an item: this batch's, else the committing one's.
    pub fn item(&self, id: &str) -> Option<&Arc<Item>> {
        self.overlay
            .items
            .get(id)
            .or_else(|| self.committing.as_ref()?.items.get(id))
    }

    /// The id a link was claimed by in this batch or the committing one.
    pub fn link(&self, link: &str) -> Option<&String> {
        self.overlay
            .links
            .get(link)
            .or_else(|| self.committing.as_ref()?.links.get(link))
    }

    /// A feed's latest staged state, encoded.
    pub fn state(&self, feed: &str) -> Option<&Vec<u8>> {
        self.overlay
            .states
            .get(feed)
            .or_else(|| self.committing.as_ref()?.states.get(feed))
    }

    /// Every staged feed state, the newest of each feed.
    pub fn states(&self) -> HashMap<String, Vec<u8>> {
        let mut out = self
            .committing
            .as_ref()
            .map(|c| c.states.clone())
            .unwrap_or_default();
        out.extend(
            self.overlay
                .states
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        out
    }

    /// Every staged item, the newest version of each.
    pub fn items(&self) -> impl Iterator<Item = &Arc<Item>> {
        let committing = self.committing.iter().flat_map(|c| {
            c.items
                .iter()
                .filter(|(id, _)| !self.overlay.items.contains_key(*id))
                .map(|(_, item)| item)
        });
        self.overlay.items.values().chain(committing)
    }

    /// Stages `new` (replacing `old`) with its encoded value.
    pub fn push_item(&mut self, new: Arc<Item>, old: Option<Arc<Item>>, value: Vec<u8>) {
        if let Some(link) = &new.link {
            if self.link(link).is_none() {
                self.overlay.links.insert(link.clone(), new.id.0.clone());
            }
        }
        self.bytes += value.len();
        self.overlay.items.insert(new.id.0.clone(), new.clone());
        self.writes.push(StagedWrite::Item { new, old, value });
    }

    pub fn push_state(&mut self, feed: &str, value: Vec<u8>) {
        self.bytes += value.len();
        self.overlay.states.insert(feed.to_string(), value.clone());
        self.writes.push(StagedWrite::State {
            feed: feed.to_string(),
            value,
        });
    }

    /// Takes the batch for its commit: its writes, in order, and its number. Its lookups stay
    /// visible (as the committing batch) until [`Staged::committed`]; the next writes go into
    /// a new batch. There is at most one commit at a time (the store's commit lock).
    pub fn take_for_commit(&mut self) -> (Vec<StagedWrite>, u64) {
        let writes = std::mem::take(&mut self.writes);
        self.committing = Some(Arc::new(std::mem::take(&mut self.overlay)));
        self.documents = 0;
        self.bytes = 0;
        self.generation += 1;
        (writes, self.generation - 1)
    }

    /// Ends the commit of batch `generation`: sled has its writes, or (failed) they are
    /// dropped and its writers will be told. Returns the committing batch's lookups, for the
    /// caller to drop outside the lock.
    pub fn committed(&mut self, generation: u64, ok: bool) -> Option<Arc<Overlay>> {
        if !ok {
            self.remember_lost(generation);
        }
        self.committing.take()
    }

    /// Drops the batch being built (a panic while it was held): its writers will be told.
    pub fn drop_batch(&mut self) {
        if !self.writes.is_empty() {
            self.remember_lost(self.generation);
        }
        self.writes.clear();
        self.overlay = Overlay::default();
        self.documents = 0;
        self.bytes = 0;
        self.generation += 1;
    }

    fn remember_lost(&mut self, generation: u64) {
        if self.lost.len() >= LOST_KEPT {
            self.lost.remove(0);
        }
        self.lost.push(generation);
    }

    /// Whether the batch numbered `generation` was dropped by a failed commit. Past the
    /// remembered failures, an older batch counts as lost: only a store failing over and over
    /// gets there, and a write wrongly reported failed is fetched again, never lost.
    pub fn was_lost(&self, generation: u64) -> bool {
        self.lost.contains(&generation)
            || (self.lost.len() >= LOST_KEPT && self.lost.first().is_some_and(|f| generation < *f))
    }
}
