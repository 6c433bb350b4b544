//! The items themselves: values under a sequence number, found by id through a small index.
//!
//! In: item ids and encoded item values. Out: the value stored for an id, items in id order
//! (relabel, migration) or in the order first stored (export, verify). `item_log` maps a
//! sequence number (8 bytes, big-endian, allocated in increasing order) to the item's value;
//! `item_ids` maps the id to that number. New items therefore append to the log's last leaf,
//! which stays in sled's cache, instead of landing in a random leaf of large values that sled
//! must read back from disk and rewrite (docs/design-notes.md, "Store write batches"); the
//! random inserts go to `item_ids`, whose leaves hold 8-byte values. An edited item keeps its
//! number. It must never hand out a number twice, and never panic on a malformed number read
//! back from disk.

use super::{keys, StoreError};
use sled::transaction::TransactionalTree;
use sled::IVec;
use std::sync::atomic::{AtomicU64, Ordering};

pub(super) struct ItemTrees {
    /// id → sequence number.
    pub ids: sled::Tree,
    /// sequence number → item value.
    pub log: sled::Tree,
    /// The next number to hand out (one past the log's last key when opened).
    next: AtomicU64,
}

impl ItemTrees {
    pub fn open(db: &sled::Db) -> Result<ItemTrees, StoreError> {
        let ids = db.open_tree(keys::ITEM_IDS)?;
        let log = db.open_tree(keys::ITEM_LOG)?;
        let next = match log.last()? {
            Some((k, _)) => decode_seq(keys::ITEM_LOG, &k)?.saturating_add(1),
            None => 1,
        };
        Ok(ItemTrees {
            ids,
            log,
            next: AtomicU64::new(next),
        })
    }

    /// A sequence number never handed out before. A transaction that retries takes a new one;
    /// the gap is harmless.
    pub fn allocate(&self) -> [u8; 8] {
        self.next.fetch_add(1, Ordering::Relaxed).to_be_bytes()
    }

    /// The value stored for `id`.
    pub fn get(&self, id: &[u8]) -> Result<Option<IVec>, StoreError> {
        match self.ids.get(id)? {
            Some(seq) => Ok(self.log.get(seq)?),
            None => Ok(None),
        }
    }

    /// [`ItemTrees::get`] without waiting for a batch being committed (sled's
    /// `get_unlocked`, docs/design-notes.md, "Vendored sled"). Only for a caller that reads
    /// the committing batch's items from the batch itself: an item that batch writes may
    /// read here as before the batch or after it, and a new one as not yet stored.
    pub fn get_unlocked(&self, id: &[u8]) -> Result<Option<IVec>, StoreError> {
        match self.ids.get_unlocked(id)? {
            Some(seq) => Ok(self.log.get_unlocked(seq)?),
            None => Ok(None),
        }
    }

    pub fn contains_key(&self, id: &[u8]) -> Result<bool, StoreError> {
        Ok(self.ids.contains_key(id)?)
    }

    /// Number of stored items.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Up to `limit` items in id order after `after` (exclusive): (id, value).
    pub fn page_after(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(IVec, IVec)>, StoreError> {
        let range = match after {
            Some(k) => self
                .ids
                .range::<&[u8], _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
            None => self.ids.iter(),
        };
        let mut out = Vec::with_capacity(limit.min(4096));
        for kv in range.take(limit) {
            let (id, seq) = kv?;
            match self.log.get(&seq)? {
                Some(v) => out.push((id, v)),
                None => {
                    return Err(StoreError::Corrupt {
                        tree: keys::ITEM_IDS,
                        key: String::from_utf8_lossy(&id).into_owned(),
                        message: "its sequence number has no item".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Every item in id order: (id, value).
    pub fn iter(&self) -> impl Iterator<Item = Result<(IVec, IVec), StoreError>> + '_ {
        self.ids.iter().map(move |kv| {
            let (id, seq) = kv?;
            match self.log.get(&seq)? {
                Some(v) => Ok((id, v)),
                None => Err(StoreError::Corrupt {
                    tree: keys::ITEM_IDS,
                    key: String::from_utf8_lossy(&id).into_owned(),
                    message: "its sequence number has no item".into(),
                }),
            }
        })
    }

    /// Number of ids up to and including `id` (a resumed pass's progress).
    pub fn count_through(&self, id: &[u8]) -> usize {
        self.ids.range(..=id).keys().count()
    }
}

/// A sequence number read back from disk.
pub(super) fn decode_seq(tree: &'static str, b: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(b)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            tree,
            key: format!("{b:?}"),
            message: format!("sequence number of {} bytes, expected 8", b.len()),
        })
}

/// The two item trees inside a write transaction.
pub(super) struct TxItems<'a> {
    pub ids: &'a TransactionalTree,
    pub log: &'a TransactionalTree,
    pub trees: &'a ItemTrees,
}

type TxResult<T> = Result<T, sled::transaction::ConflictableTransactionError<StoreError>>;

impl TxItems<'_> {
    pub fn get(&self, id: &[u8]) -> TxResult<Option<IVec>> {
        match self.ids.get(id)? {
            Some(seq) => Ok(self.log.get(seq)?),
            None => Ok(None),
        }
    }

    pub fn contains(&self, id: &[u8]) -> TxResult<bool> {
        Ok(self.ids.get(id)?.is_some())
    }

    /// Stores `value` for `id`: under its number when it has one, else under a new one.
    pub fn put(&self, id: &[u8], value: &[u8]) -> TxResult<()> {
        let seq = match self.ids.get(id)? {
            Some(seq) => seq,
            None => {
                let seq = IVec::from(&self.trees.allocate());
                self.ids.insert_blind(id, seq.clone())?;
                seq
            }
        };
        self.log.insert_blind(seq, value)?;
        Ok(())
    }

    /// Stores `value` for an `id` the caller knows is not stored, under a new number.
    pub fn put_new(&self, id: &[u8], value: &[u8]) -> TxResult<()> {
        let seq = self.trees.allocate();
        self.ids.insert_blind(id, &seq)?;
        self.log.insert_blind(&seq, value)?;
        Ok(())
    }

    pub fn remove(&self, id: &[u8]) -> TxResult<()> {
        if let Some(seq) = self.ids.remove(id)? {
            self.log.remove(seq)?;
        }
        Ok(())
    }
}
