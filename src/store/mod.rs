//! The store: sled trees, key layouts and atomic application of one feed's intents.
//!
//! In: intents from `dedup`, feed state from `fetch` and `ingest`, JSON lines to import. Out:
//! items and indexes read back in order (latest overall, by label, by feed, since an instant),
//! counts, and JSON lines to export. Each feed's intents are applied in one sled transaction
//! over the item and every index entry, then synced (a flush shared with the feeds stored at
//! the same moment): nothing is reported stored before it is durable. The near-duplicate
//! index is derived data held in memory (`store/near.rs`). Every sled type stays inside this module
//! (keys in [`keys`]). It must never panic on what it reads back from disk, and never return
//! an unbounded result.

mod compact;
mod items;
pub mod keys;
mod near;
mod staged;
mod stats;
mod transfer;

pub use compact::{compact, disk_size, CompactReport};
pub use transfer::{ExportReport, ImportProgress, ImportReport};

use crate::dedup::{Intent, Known, Policy, StoredMeta};
use crate::item::{FeedId, FeedState, Item, ItemId, Labels};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// The layout this build writes. 1: unversioned JSON values, no `item_time` or `fingerprints`
/// trees. 2: version byte on values, `item_time` and `fingerprints` indexes. 3: fingerprints
/// over distinct word pairs, indexed in 4 bands of 16 bits (probed one bit either way) with the
/// instant first seen in the key, newest read first (recomputed on migration). 4: no
/// `fingerprints` tree; each `item_time` entry carries its item's fingerprint, from which the
/// near-duplicate index is built in memory (`store/near.rs`). 5: items stored under a sequence number
/// in `item_log`, found by id through `item_ids` (`store/items.rs`); item values LZ4-compressed.
pub const SCHEMA_VERSION: u32 = 5;

/// Largest page any query returns.
pub const MAX_PAGE: usize = 1000;

/// Items written per transaction by relabel, purge, import and migration.
const BATCH: usize = 256;

/// sled's page cache. sled's real memory use is many times this figure (its accounting
/// undercounts nodes), and it grows towards it: two daemons side by side on the same changing
/// feeds, 64 MB grew 146 → 158 MB in 3 minutes while 8 MB stayed flat at 135 MB, ingesting at
/// the same rate. The OS page cache still holds the files.
pub const SLED_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Most candidates read per fingerprint band in a near-duplicate lookup.
const MAX_BAND_CANDIDATES: usize = 256;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open store at {path}: {message}")]
    Open { path: String, message: String },
    #[error("store I/O failed: {0}")]
    Db(String),
    #[error("corrupt value in tree {tree} at key {key}: {message}")]
    Corrupt {
        tree: &'static str,
        key: String,
        message: String,
    },
    #[error("store schema version {found} is newer than this build supports ({supported}); upgrade newsrelay")]
    TooNew { found: u32, supported: u32 },
    #[error(
        "store at {path} is in use by {by}; stop it first (systemctl stop newsrelay) and try again"
    )]
    InUse { path: String, by: String },
    #[error("compaction failed: {0}")]
    Compact(String),
    #[error("cannot encode value: {0}")]
    Encode(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => StoreError::Db(
                "disk full (no space left on the store's filesystem); free space and restart newsrelay"
                    .into(),
            ),
            sled::Error::Io(io) => StoreError::Db(io.to_string()),
            other => StoreError::Db(other.to_string()),
        }
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            // Through the same mapping as a plain write, so a full disk reads the same.
            TransactionError::Storage(e) => e.into(),
        }
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    keys::encode_value(v).map_err(|e| StoreError::Encode(e.to_string()))
}

/// An item's value: compressed ([`keys::VALUE_VERSION_LZ4`]).
fn encode_item(item: &Item) -> Result<Vec<u8>, StoreError> {
    // Room for the JSON at once: growing it by doubling was a third of encoding.
    let size_hint = 1024 + item.content_html.len() + item.summary_text.len() + item.title.len();
    keys::encode_compressed_value(item, size_hint).map_err(|e| StoreError::Encode(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<T, StoreError> {
    keys::decode_value(value).map_err(|e| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

/// Which items a listing walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Items carrying this taxonomy id (programme, initiative or region).
    Label(String),
    /// Items that arrived through this feed (first or merged source).
    Feed(FeedId),
}

/// A position in a listing: the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub first_seen: DateTime<Utc>,
    pub id: ItemId,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.first_seen.timestamp_micros(), self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (t, id) = s
            .split_once('.')
            .ok_or_else(|| format!("cursor {s:?} must be MICROS.ID"))?;
        let micros: i64 = t
            .parse()
            .map_err(|_| format!("cursor {s:?}: {t:?} is not a number"))?;
        let first_seen = Utc
            .timestamp_micros(micros)
            .single()
            .ok_or_else(|| format!("cursor {s:?}: instant out of range"))?;
        if id.is_empty() {
            return Err(format!("cursor {s:?} has no id"));
        }
        Ok(Cursor {
            first_seen,
            id: ItemId(id.to_string()),
        })
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Pass back as `before` for the next page; None at the end.
    pub next: Option<Cursor>,
}

/// Label filters: within a kind any listed id matches, across kinds all must; empty = any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelFilter {
    pub programmes: Vec<String>,
    pub initiatives: Vec<String>,
    pub regions: Vec<String>,
}

impl LabelFilter {
    pub fn matches(&self, labels: &Labels) -> bool {
        fn any(wanted: &[String], have: &[crate::item::Label]) -> bool {
            wanted.is_empty() || have.iter().any(|l| wanted.contains(&l.id))
        }
        any(&self.programmes, &labels.programmes)
            && any(&self.initiatives, &labels.initiatives)
            && any(&self.regions, &labels.regions)
    }
}

/// Items first stored in one week (Monday 00:00 UTC onwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekCount {
    pub week_start: DateTime<Utc>,
    pub count: u64,
}

/// What applying one feed's intents did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub inserted: usize,
    pub updated: usize,
    pub merged: usize,
    pub skipped: usize,
    /// Ids of inserted items, in document order.
    pub inserted_ids: Vec<ItemId>,
}

/// Which items a relabel pass covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelabelSelection {
    All,
    Ids(Vec<ItemId>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelabelReport {
    /// Items read in this pass (the ones a resumed pass skipped are not counted).
    pub examined: u64,
    /// Items written at the new version.
    pub changed: u64,
    /// Of those, items whose set of labels differs from before (not only scores or reasons).
    pub labels_changed: u64,
    /// Per label id: items that gained it, and items that lost it.
    pub gained: BTreeMap<String, u64>,
    pub lost: BTreeMap<String, u64>,
    /// Items in the selection (the store's item count for a whole-store pass).
    pub total: u64,
    /// Items an interrupted pass at the same version had already done (skipped on resume).
    pub done_before: u64,
    /// True when an interrupted pass at the same taxonomy version was resumed.
    pub resumed: bool,
    /// True when the observer stopped the pass before the end (it resumes next time).
    pub stopped: bool,
}

/// Result of [`Store::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Integrity {
    pub items: u64,
    /// One line per inconsistency; empty when the store is sound.
    pub problems: Vec<String>,
}

/// The fields of a stored [`Item`] that dedup decides with.
#[derive(Deserialize)]
struct MetaView {
    id: ItemId,
    feed: FeedId,
    sources: Vec<crate::item::Source>,
    content_hash: crate::item::ContentHash,
    revision: u32,
    fingerprint: u64,
    title: String,
}

impl MetaView {
    /// The same fields of an item held in memory (a staged one).
    fn of(item: &Item) -> MetaView {
        MetaView {
            id: item.id.clone(),
            feed: item.feed.clone(),
            sources: item.sources.clone(),
            content_hash: item.content_hash,
            revision: item.revision,
            fingerprint: item.fingerprint,
            title: item.title.clone(),
        }
    }

    fn into_meta(self) -> StoredMeta {
        StoredMeta {
            source_feeds: self.sources.iter().map(|s| s.feed.clone()).collect(),
            source_entries: self
                .sources
                .iter()
                .filter_map(|s| crate::dedup::entry_key(s).map(|k| (s.feed.clone(), k.to_string())))
                .collect(),
            id: self.id,
            feed: self.feed,
            content_hash: self.content_hash,
            revision: self.revision,
            fingerprint: self.fingerprint,
            title: self.title,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tombstone {
    purged_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RelabelProgress {
    version: u64,
    /// Last item id relabelled; the pass resumes after it.
    after: Option<String>,
    done: bool,
}

/// Writes applied by [`Store::apply_staged`] and not yet known durable: the number of the
/// write batch that carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "pass it to Store::make_durable before reporting the writes stored"]
struct Staging {
    generation: u64,
}

/// The open store. Cheap to share by reference between threads.
pub struct Store {
    db: sled::Db,
    items: items::ItemTrees,
    item_time: sled::Tree,
    feed_time: sled::Tree,
    label_time: sled::Tree,
    url_index: sled::Tree,
    feed_state: sled::Tree,
    tombstones: sled::Tree,
    digest_ledger: sled::Tree,
    meta: sled::Tree,
    policy: Policy,
    /// Near-duplicate candidates by fingerprint band, built from `item_time` on first use and
    /// updated after every committed write ([`near`]).
    near: std::sync::Mutex<near::NearIndex>,
    /// Writes applied but not yet committed to sled ([`staged`]): one transaction carries
    /// the writes of many feeds.
    staged: std::sync::Mutex<staged::Staged>,
    /// Coalesces concurrent flushes ([`Store::sync`]).
    syncer: GroupSync,
    /// See [`Store::dedup_lock`].
    dedup: std::sync::Mutex<()>,
    /// Held through a commit: one batch is committed at a time, in order. Taken before
    /// `staged` (then `near`), never after.
    commit_lock: std::sync::Mutex<()>,
    /// Every batch numbered below this is durable (committed and flushed) or lost.
    durable_below: std::sync::atomic::AtomicU64,
    /// Whether `tombstones` may hold anything: read once at open, set before any write of a
    /// tombstone. Most stores have purged nothing, and asking sled whether the tree is empty
    /// for every document was 2% of ingest.
    tombstones_present: std::sync::atomic::AtomicBool,
    /// Sync after every `apply` and `purge_expired` (the default). Off in caller-flush mode,
    /// where the caller flushes once before reporting anything stored.
    flush_each: bool,
    /// Declared last, so it drops after `db` and every tree: waits until sled has let go of
    /// the store's file lock ([`ReleasedOnDrop`]).
    _released_on_drop: ReleasedOnDrop,
}

/// How long dropping a [`Store`] waits for sled to let go of the store's lock.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Makes dropping a [`Store`] return only once the store can be opened again. sled closes its
/// lock file when its last handle goes, and its flusher and I/O threads hold handles for a
/// moment after the `Db` is dropped; a reopen in the same process, or a child process started
/// right after the drop (a test, `newsrelay compact` after a command), was refused as in use
/// now and then. Waiting here fixes that for every caller instead of each one waiting.
struct ReleasedOnDrop {
    path: PathBuf,
}

impl Drop for ReleasedOnDrop {
    fn drop(&mut self) {
        if let Err(e) = Store::wait_until_released(&self.path, RELEASE_WAIT) {
            tracing::warn!(store = %self.path.display(), error = %e,
                "the store's lock was still held after it was closed");
        }
    }
}

/// A store dropped with a staged batch (caller-flush mode, or feed states recorded since the
/// last sync) commits it, and sled flushes on close: what a caller forgot to flush is kept,
/// as it was when every write went straight to sled.
impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.commit_staged() {
            tracing::error!(error = %e, "cannot commit the last staged writes on close");
        }
    }
}

/// The trees one write transaction touches.
struct Tx<'a> {
    items: items::TxItems<'a>,
    item_time: &'a TransactionalTree,
    feed_time: &'a TransactionalTree,
    label_time: &'a TransactionalTree,
    url_index: &'a TransactionalTree,
    feed_state: &'a TransactionalTree,
    tombstones: &'a TransactionalTree,
    meta: &'a TransactionalTree,
}

impl Store {
    /// Opens (creating if needed) the store in `path`, migrating an older schema. A
    /// compaction that was interrupted is finished or rolled back first; a store another
    /// process holds open (or is compacting) is refused with [`StoreError::InUse`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        compact::recover(path)?;
        let store = Store::open_unlocked(path)?;
        // A compaction that started between the check above and the open: leave it alone.
        if compact::running_elsewhere(path)? {
            return Err(StoreError::InUse {
                path: path.display().to_string(),
                by: "a compaction".into(),
            });
        }
        Ok(store)
    }

    /// Waits (up to `within`) until nothing holds sled's lock of the store at `path`. sled
    /// frees its file lock only once its background threads have let go of the database, a
    /// moment after its last handle is dropped. Dropping a `Store` already waits here
    /// (`ReleasedOnDrop`); callers need it after dropping a raw sled handle (compaction's
    /// copy, tests that write an old layout). Returns `InUse` when the lock is still held at
    /// the deadline (another process has the store open).
    pub fn wait_until_released(path: &Path, within: std::time::Duration) -> Result<(), StoreError> {
        use fs2::FileExt;
        let lock_file = match std::fs::File::open(path.join("db")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let deadline = std::time::Instant::now() + within;
        while lock_file.try_lock_exclusive().is_err() {
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::InUse {
                    path: path.display().to_string(),
                    by: "another newsrelay process (is the daemon running?)".into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Closing the file releases the lock just taken.
        drop(lock_file);
        Ok(())
    }

    /// Opens the sled folder at `path` without looking for compaction leftovers.
    fn open_unlocked(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(|e| {
                let message = e.to_string();
                if message.contains("could not acquire lock") {
                    StoreError::InUse {
                        path: path.display().to_string(),
                        by: "another newsrelay process (is the daemon running?)".into(),
                    }
                } else {
                    StoreError::Open {
                        path: path.display().to_string(),
                        message,
                    }
                }
            })?;
        let t = |name: &str| db.open_tree(name);
        let tombstones = t(keys::TOMBSTONES)?;
        let tombstones_present = std::sync::atomic::AtomicBool::new(!tombstones.is_empty());
        let store = Store {
            items: items::ItemTrees::open(&db)?,
            item_time: t(keys::ITEM_TIME)?,
            feed_time: t(keys::FEED_TIME)?,
            label_time: t(keys::LABEL_TIME)?,
            url_index: t(keys::URL_INDEX)?,
            feed_state: t(keys::FEED_STATE)?,
            tombstones,
            digest_ledger: t(keys::DIGEST_LEDGER)?,
            meta: t(keys::META)?,
            db,
            policy: Policy::default(),
            flush_each: true,
            near: Default::default(),
            staged: Default::default(),
            syncer: GroupSync::default(),
            commit_lock: std::sync::Mutex::new(()),
            dedup: std::sync::Mutex::new(()),
            durable_below: std::sync::atomic::AtomicU64::new(0),
            tombstones_present,
            _released_on_drop: ReleasedOnDrop {
                path: path.to_path_buf(),
            },
        };
        store.migrate()?;
        Ok(store)
    }

    /// Caller-flush mode: `apply` and `purge_expired` stay atomic but no longer sync; the
    /// caller must call [`Store::flush`] before it reports anything stored (benchmarks that
    /// flush once per batch of feeds). Import and relabel still flush every batch. The
    /// daemon does not use it: its concurrent feeds share flushes through [`Store::sync`].
    pub fn with_group_commit(mut self) -> Store {
        self.flush_each = false;
        self
    }

    /// Makes the writes so far durable unless in group-commit mode ([`Store::sync`]).
    fn commit(&self) -> Result<(), StoreError> {
        if self.flush_each {
            self.sync()
        } else {
            Ok(())
        }
    }

    /// Held by a writer from its dedup lookups ([`Store::known_for`]) until its intents are
    /// applied: two feeds carrying one story decide one after the other, so the second sees
    /// the first's item (by id, link or fingerprint) instead of inserting it again.
    pub fn dedup_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.dedup.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an item with this id is stored or staged (the in-memory index; no sled read).
    pub fn has_item(&self, id: &ItemId) -> Result<bool, StoreError> {
        Ok(self.near_index()?.contains(&id.0))
    }

    /// Whether any item may have been purged (see `tombstones_present`).
    fn may_hold_tombstones(&self) -> bool {
        self.tombstones_present
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Called before a transaction that may write tombstones.
    fn tombstones_written(&self) {
        self.tombstones_present
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The dedup policy this store looks candidates up with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The schema version recorded on disk.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(match self.meta.get(keys::META_SCHEMA_VERSION)? {
            Some(v) => {
                v.as_ref()
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        tree: keys::META,
                        key: "schema_version".into(),
                        message: format!("{} bytes, expected 4", v.len()),
                    })?
            }
            // Schema 1 wrote no version; its items are in the legacy `items` tree.
            None => match self.legacy_items()? {
                Some(legacy) if !legacy.is_empty() => 1,
                _ => SCHEMA_VERSION,
            },
        })
    }

    /// Schema 4 and older's `items` tree (id → value), if the store still has one. Not
    /// opened otherwise: sled would create it.
    fn legacy_items(&self) -> Result<Option<sled::Tree>, StoreError> {
        let name: &[u8] = keys::ITEMS.as_bytes();
        if self.db.tree_names().iter().any(|n| n.as_ref() == name) {
            Ok(Some(self.db.open_tree(keys::ITEMS)?))
        } else {
            Ok(None)
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < 5 {
            // 1 → 2: rewrite values with a version byte and build every index afresh.
            // 2 → 3: the fingerprint function changed: recompute each item's fingerprint.
            // 3 → 4: the fingerprint moves from the `fingerprints` band entries into the
            // item's `item_time` value, and the `fingerprints` tree is dropped.
            // 4 → 5: items move from `items` (by id) to `item_log` (by sequence number) and
            // `item_ids`, values compressed.
            // Every item is rewritten with its indexes; each batch is idempotent (an id keeps
            // the number it was given) and the schema version is written before the old trees
            // are dropped, so a migration cut short simply runs again on next open.
            let legacy = self.legacy_items()?;
            let mut after: Option<sled::IVec> = None;
            while let Some(legacy) = &legacy {
                let range = match &after {
                    Some(k) => legacy.range::<&[u8], _>((
                        std::ops::Bound::Excluded(k.as_ref()),
                        std::ops::Bound::Unbounded,
                    )),
                    None => legacy.iter(),
                };
                let mut batch = Vec::with_capacity(BATCH);
                for kv in range.take(BATCH) {
                    let (k, v) = kv?;
                    let mut item: Item = decode(keys::ITEMS, &k, &v)?;
                    if found < 3 {
                        item.fingerprint =
                            crate::normalize::fingerprint_of(&item.title, &item.content_html);
                    }
                    batch.push(item);
                    after = Some(k);
                }
                if batch.is_empty() {
                    break;
                }
                self.transaction(|tx| {
                    for item in &batch {
                        tx.write_item(item, None)?;
                    }
                    Ok(())
                })?;
            }
        }
        if found != SCHEMA_VERSION || self.meta.get(keys::META_SCHEMA_VERSION)?.is_none() {
            self.meta
                .insert(keys::META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
            self.flush()?;
        }
        // Trees of older schemas, dropped once the version says the migration is done (and on
        // the next open if a crash came between the two).
        if self.legacy_items()?.is_some() {
            self.db.drop_tree(keys::ITEMS)?;
        }
        let fingerprints: &[u8] = keys::FINGERPRINTS.as_bytes();
        if self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == fingerprints)
        {
            self.db.drop_tree(keys::FINGERPRINTS)?;
        }
        Ok(())
    }

    /// Makes every write so far durable: commits the staged batch, then flushes.
    pub fn flush(&self) -> Result<(), StoreError> {
        let covers = self.commit_staged()?;
        self.db.flush()?;
        self.durable_below
            .fetch_max(covers, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Makes every write this thread finished before the call durable, sharing the commit and
    /// the flush with other threads that sync at the same time: a caller waits for a flush
    /// that started after its call (or starts one), so feeds stored concurrently pay for one
    /// transaction and one fsync together instead of one each (docs/store.md).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.syncer.sync(|| self.flush())
    }

    /// Waits until the writes of `staging` are durable (a shared [`Store::sync`]), or reports
    /// that the commit carrying them failed. In caller-flush mode it does not sync (the
    /// caller flushes) and only reports a failed commit.
    fn make_durable(&self, staging: Staging) -> Result<(), StoreError> {
        if self.flush_each && !self.is_durable(staging) {
            self.sync()?;
        }
        if self.lock_staged().was_lost(staging.generation) {
            return Err(StoreError::Db(
                "the write batch holding these items failed to commit; they were not stored".into(),
            ));
        }
        Ok(())
    }

    /// Whether the writes of `staging` are durable already (or lost: [`Store::make_durable`]
    /// tells which): a flush that started after they were committed has finished.
    fn is_durable(&self, staging: Staging) -> bool {
        staging.generation < self.durable_below.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The staged batch. A panic while it was held may have left it half built: it is
    /// dropped (its writers are told their writes failed) and the near-duplicate index, which
    /// may hold its items, is rebuilt on next use.
    fn lock_staged(&self) -> std::sync::MutexGuard<'_, staged::Staged> {
        self.staged.lock().unwrap_or_else(|poisoned| {
            let mut st = poisoned.into_inner();
            st.drop_batch();
            self.lock_near().reset();
            // Dropped once: later writers stage into a sound batch.
            self.staged.clear_poison();
            st
        })
    }

    /// Commits the staged batch (one transaction, no flush). Returns the number of the next
    /// batch: every batch numbered below it is now committed or lost. Staging goes on while
    /// the transaction runs (into the next batch); commits are one at a time.
    fn commit_staged(&self) -> Result<u64, StoreError> {
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.commit_holding_lock()
    }

    /// [`Store::commit_staged`] for a caller holding the commit lock. On failure the batch is
    /// dropped: its writers learn it from [`Store::make_durable`], and the near-duplicate
    /// index (which held its items) is rebuilt from the store on next use.
    fn commit_holding_lock(&self) -> Result<u64, StoreError> {
        let (writes, generation) = {
            let mut st = self.lock_staged();
            if st.is_empty() {
                return Ok(st.generation);
            }
            st.take_for_commit()
        };
        let superseded = staged::superseded(&writes);
        let result = self.transaction(|tx| {
            for (at, w) in writes.iter().enumerate() {
                match w {
                    staged::StagedWrite::Item { new, old, value } => {
                        // An item written more than once in the batch is written once, at its
                        // first write's place (where it first claimed its link), with its last
                        // version.
                        let (new, value) = match superseded.get(new.id.0.as_str()) {
                            None => (new, value.as_slice()),
                            Some(s) if s.first == at => (s.last, s.last_value),
                            Some(_) => continue,
                        };
                        // No old version: staging found no item with this id.
                        tx.write_item_value(new, value, old.as_deref(), old.is_none())?
                    }
                    staged::StagedWrite::State { feed, value } => {
                        tx.feed_state
                            .insert_blind(feed.as_bytes(), value.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        let overlay = {
            let mut st = self.lock_staged();
            let overlay = st.committed(generation, result.is_ok());
            if result.is_err() {
                self.lock_near().reset();
            }
            overlay
        };
        // The batch's items and values are freed outside the locks.
        drop((writes, overlay));
        result.map(|()| generation + 1)
    }

    /// Runs `f` (a transaction of its own: purge, relabel, import) after committing the
    /// staged batch, with staging held off until it returns: `f` reads and writes the
    /// committed store, and no staged write can be based on what `f` is changing.
    fn exclusive<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.commit_holding_lock()?;
        let _st = self.lock_staged();
        f()
    }

    fn transaction<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        let trees = (
            &self.items.ids,
            &self.items.log,
            &self.item_time,
            &self.feed_time,
            &self.label_time,
            &self.url_index,
            &self.feed_state,
            &self.tombstones,
            &self.meta,
        );
        Ok(trees.transaction(
            |(
                item_ids,
                item_log,
                item_time,
                feed_time,
                label_time,
                url_index,
                feed_state,
                tombstones,
                meta,
            )| {
                f(&Tx {
                    items: items::TxItems {
                        ids: item_ids,
                        log: item_log,
                        trees: &self.items,
                    },
                    item_time,
                    feed_time,
                    label_time,
                    url_index,
                    feed_state,
                    tombstones,
                    meta,
                })
            },
        )?)
    }

    // -----------------------------------------------------------------------------------------
    // Writing

    /// What the store knows about each of `items` (by id, canonical link, near fingerprint,
    /// tombstones), for [`crate::dedup::decide`].
    pub fn known_for(&self, items: &[Item]) -> Result<Vec<Known>, StoreError> {
        let mut out = Vec::with_capacity(items.len());
        // Most stores have purged nothing: no look at all instead of two per item.
        let any_tombstones = self.may_hold_tombstones();
        for item in items {
            let mut k = Known {
                tombstoned: any_tombstones && self.is_tombstoned(&item.id, item.link.as_deref())?,
                ..Default::default()
            };
            if k.tombstoned {
                out.push(k);
                continue;
            }
            // Only an id the index knows is read from sled: a miss there still descends the
            // items tree and pulls its pages in (a fifth of a first fetch cycle's time). The
            // index also holds the staged batch's items, read from the batch.
            k.by_id = if self.has_item(&item.id)? {
                self.meta_of(item.id.0.as_bytes())?
            } else {
                None
            };
            if let Some(link) = &item.link {
                // A link the index has never seen claimed is not in the batch or `url_index`.
                let staged_claim = {
                    let st = self.lock_staged();
                    if self.near_index_locked(&st)?.may_claim(link) {
                        Some(st.link(link).cloned())
                    } else {
                        None
                    }
                };
                let claim = match staged_claim {
                    None => None,
                    Some(Some(id)) => Some(id.into_bytes()),
                    // Claims of the staged and committing batches were read from them.
                    Some(None) => self
                        .url_index
                        .get_unlocked(link.as_bytes())?
                        .map(|v| v.to_vec()),
                };
                if let Some(id) = claim {
                    k.by_link = if id == item.id.0.as_bytes() {
                        k.by_id.clone()
                    } else {
                        self.meta_of(&id)?
                    };
                }
            }
            if k.by_id.is_none() && k.by_link.is_none() && item.fingerprint != 0 {
                for id in self.near_candidates(item.fingerprint)? {
                    if let Some(m) = self.meta_of(id.as_bytes())? {
                        k.near.push(m);
                    }
                }
            }
            out.push(k);
        }
        Ok(out)
    }

    /// The near-duplicate index as it is (built or not). A poisoned lock (a panic while it
    /// was held) leaves an index that may be half updated: it is reset, so the next lookup
    /// rebuilds it from the store.
    fn lock_near(&self) -> std::sync::MutexGuard<'_, near::NearIndex> {
        self.near.lock().unwrap_or_else(|poisoned| {
            let mut ix = poisoned.into_inner();
            ix.reset();
            // Reset once: the next lock finds a sound (empty) index, not a poisoned one.
            self.near.clear_poison();
            ix
        })
    }

    /// The near-duplicate index, built on first use.
    fn near_index(&self) -> Result<std::sync::MutexGuard<'_, near::NearIndex>, StoreError> {
        let st = self.lock_staged();
        self.near_index_locked(&st)
    }

    /// The near-duplicate index for a caller holding the staged batch (locks are always taken
    /// batch first, index second). Built on first use from `item_time` and the batch's items.
    fn near_index_locked(
        &self,
        st: &staged::Staged,
    ) -> Result<std::sync::MutexGuard<'_, near::NearIndex>, StoreError> {
        let mut ix = self.lock_near();
        if !ix.is_loaded() {
            for kv in self.item_time.iter() {
                let (k, v) = kv?;
                let Some((t, id)) = keys::split_time_key(&k) else {
                    continue;
                };
                ix.upsert(&id, keys::decode_fingerprint(&v), t.timestamp_micros());
            }
            for link in self.url_index.iter().keys() {
                ix.claim_hash(near::link_hash(&link?));
            }
            for item in st.items() {
                Written::of(item).index_into(&mut ix);
            }
            ix.mark_loaded();
        }
        Ok(ix)
    }

    /// Ids of stored items whose fingerprint is within the dedup distance of `fingerprint`.
    fn near_candidates(&self, fingerprint: u64) -> Result<Vec<String>, StoreError> {
        Ok(self.near_index()?.candidates(
            fingerprint,
            self.policy.near_duplicate_max_distance,
            MAX_BAND_CANDIDATES,
        ))
    }

    /// Brings the near-duplicate index up to date after a committed write (a no-op while it is
    /// not built: the build reads the committed store).
    fn near_written(&self, written: &[Written]) {
        let mut ix = self.lock_near();
        if ix.is_loaded() {
            for w in written {
                w.index_into(&mut ix);
            }
        }
    }

    /// Drops purged items from the near-duplicate index.
    fn near_removed(&self, items: &[Item]) {
        let mut ix = self.lock_near();
        if ix.is_loaded() {
            for item in items {
                ix.remove(&item.id.0);
            }
        }
    }

    /// Items in the in-memory index (built on demand): every stored item.
    #[cfg(test)]
    fn near_index_len(&self) -> Result<usize, StoreError> {
        Ok(self.near_index()?.len())
    }

    /// What dedup needs of a stored item, read without materialising its content, authors,
    /// enclosures or labels (serde skips them): a re-fetched feed looks up every one of its
    /// items, and decoding whole items was the larger part of that.
    fn meta_of(&self, id: &[u8]) -> Result<Option<StoredMeta>, StoreError> {
        let staged = std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.lock_staged().item(id).cloned());
        if let Some(item) = staged {
            return Ok(Some(MetaView::of(&item).into_meta()));
        }
        // The staged and committing batches answered above, so sled's transaction lock is
        // not needed here: a read that waited on it stalled this thread for a whole commit.
        Ok(match self.items.get_unlocked(id)? {
            None => None,
            Some(v) => Some(decode::<MetaView>(keys::ITEMS, id, &v)?.into_meta()),
        })
    }

    /// Applies one feed's intents (items, every index entry and, when given, the feed's state)
    /// and makes them durable: staged into the write batch, then a sync shared with the
    /// feeds stored at the same moment commits the batch in one transaction and flushes
    /// ([`Store::sync`]). Returns only once the writes are durable, unless the store is in
    /// caller-flush mode ([`Store::with_group_commit`]).
    pub fn apply(
        &self,
        feed: &FeedId,
        intents: &[Intent],
        state: Option<&FeedState>,
    ) -> Result<ApplyReport, StoreError> {
        let (report, staging) = self.apply_staged(feed, intents.to_vec(), state)?;
        self.make_durable(staging)?;
        Ok(report)
    }

    /// [`Store::apply`] for a writer holding the [`Store::dedup_lock`]: released once the
    /// intents are staged, before waiting for them to be durable. Takes the intents by value:
    /// their items become the staged versions without a copy.
    pub fn apply_with(
        &self,
        feed: &FeedId,
        intents: Vec<Intent>,
        state: Option<&FeedState>,
        dedup: std::sync::MutexGuard<'_, ()>,
    ) -> Result<ApplyReport, StoreError> {
        let staged = self.apply_staged(feed, intents, state);
        drop(dedup);
        let (report, staging) = staged?;
        self.make_durable(staging)?;
        Ok(report)
    }

    /// Applies one feed's intents to the write batch without waiting for them to be durable:
    /// the caller must pass the returned [`Staging`] to [`Store::make_durable`] before it
    /// reports anything stored. Later lookups of the write path (dedup, feed state) already
    /// see these writes. The whole feed goes into one batch, so it commits atomically; a full
    /// batch is committed (not flushed) here.
    fn apply_staged(
        &self,
        feed: &FeedId,
        intents: Vec<Intent>,
        state: Option<&FeedState>,
    ) -> Result<(ApplyReport, Staging), StoreError> {
        let state_value = state.map(encode).transpose()?;
        let mut r = ApplyReport::default();
        let mut st = self.lock_staged();
        // The index knows every stored and staged id (a sled lookup per new item was a tenth of
        // ingest), and takes this feed's items as they are staged. Built now if it is not yet.
        let mut ix = self.near_index_locked(&st)?;
        let written = |ix: &mut near::NearIndex, item: &Item| Written::of(item).index_into(ix);
        for intent in intents {
            match intent {
                Intent::Insert(item) => {
                    if ix.contains(&item.id.0) {
                        r.skipped += 1;
                        continue;
                    }
                    let new: Arc<Item> = Arc::from(item);
                    written(&mut ix, &new);
                    r.inserted += 1;
                    r.inserted_ids.push(new.id.clone());
                    let value = encode_item(&new)?;
                    st.push_item(new, None, value);
                }
                Intent::Update(item) => match self.current(&st, &item.id)? {
                    Some(old) => {
                        let mut new = *item;
                        let fresh = new.sources.first().cloned();
                        new.first_seen = old.first_seen;
                        new.feed = old.feed.clone();
                        new.sources = old.sources.clone();
                        if let Some(s) = new.sources.iter_mut().find(|s| s.feed == *feed) {
                            if let Some(fresh) = fresh {
                                *s = fresh;
                            }
                        }
                        written(&mut ix, &new);
                        r.updated += 1;
                        let value = encode_item(&new)?;
                        st.push_item(Arc::new(new), Some(old), value);
                    }
                    None => {
                        let new: Arc<Item> = Arc::from(item);
                        written(&mut ix, &new);
                        r.inserted += 1;
                        r.inserted_ids.push(new.id.clone());
                        let value = encode_item(&new)?;
                        st.push_item(new, None, value);
                    }
                },
                Intent::MergeSource { into, source } => match self.current(&st, &into)? {
                    Some(old) if !old.sources.iter().any(|s| s.feed == source.feed) => {
                        let mut new = (*old).clone();
                        new.sources.push(source);
                        r.merged += 1;
                        let value = encode_item(&new)?;
                        st.push_item(Arc::new(new), Some(old), value);
                    }
                    _ => r.skipped += 1,
                },
                Intent::Skip { .. } => r.skipped += 1,
            }
        }
        if let Some(v) = state_value {
            st.push_state(&feed.0, v);
        }
        st.documents += 1;
        drop(ix);
        let staging = Staging {
            generation: st.generation,
        };
        if st.is_full() {
            drop(st);
            self.commit_staged()?;
        }
        Ok((r, staging))
    }

    /// The current version of an item for the write path: the staged one, else the stored one.
    fn current(&self, st: &staged::Staged, id: &ItemId) -> Result<Option<Arc<Item>>, StoreError> {
        if let Some(item) = st.item(&id.0) {
            return Ok(Some(item.clone()));
        }
        Ok(self.get(id)?.map(Arc::new))
    }

    /// Stores a feed's state. It is durable with the next flush or sync: a state lost to a
    /// crash costs one more conditional request, never an item (items are synced by
    /// [`Store::apply`] before their feed's state says they were fetched).
    pub fn put_feed_state(&self, feed: &FeedId, state: &FeedState) -> Result<(), StoreError> {
        // Staged, in order with the batch: a state written straight to sled would be
        // overwritten by an older one still staged for the same feed.
        let value = encode(state)?;
        let mut st = self.lock_staged();
        st.push_state(&feed.0, value);
        if st.is_full() {
            drop(st);
            self.commit_staged()?;
        }
        Ok(())
    }

    /// Purges this feed's items first stored before `now - retention`, leaving tombstones (id
    /// and canonical link) so they never come back. Items another feed brought first are left
    /// to that feed's retention. Returns how many were purged, after flushing.
    pub fn purge_expired(
        &self,
        feed: &FeedId,
        retention: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let retention = Duration::from_std(retention).unwrap_or(Duration::MAX);
        let cutoff = now
            .checked_sub_signed(retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let prefix = keys::scoped_prefix(&feed.0);
        let end = keys::scoped_time_key(&feed.0, cutoff, "");
        let mut purged = 0;
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            for kv in self.feed_time.range(prefix.clone()..end.clone()) {
                let (k, _) = kv?;
                let Some((_, _, id)) = keys::split_scoped_key(&k) else {
                    continue;
                };
                if let Some(v) = self.items.get(id.as_bytes())? {
                    let item: Item = decode(keys::ITEMS, id.as_bytes(), &v)?;
                    if item.feed == *feed {
                        batch.push(item);
                        if batch.len() >= BATCH {
                            break;
                        }
                    }
                }
            }
            if batch.is_empty() {
                break;
            }
            let tomb = encode(&Tombstone { purged_at: now })?;
            self.tombstones_written();
            self.exclusive(|| {
                self.transaction(|tx| {
                    for item in &batch {
                        // The stored version: a batch committed since the scan may have
                        // changed its index entries.
                        let Some(item) = tx.read_item(&item.id)? else {
                            continue;
                        };
                        tx.remove_indexes(&item)?;
                        tx.items.remove(item.id.0.as_bytes())?;
                        tx.tombstones
                            .insert_blind(keys::tombstone_id_key(&item.id.0), tomb.as_slice())?;
                        if let Some(l) = &item.link {
                            tx.tombstones
                                .insert_blind(keys::tombstone_url_key(l), tomb.as_slice())?;
                        }
                    }
                    Ok(())
                })
            })?;
            self.near_removed(&batch);
            purged += batch.len();
        }
        if purged > 0 {
            self.commit()?;
        }
        Ok(purged)
    }

    /// Reclassifies stored items with `label` at taxonomy `version`, in batches of 256 (see
    /// [`Store::relabel_pass`]).
    pub fn relabel(
        &self,
        selection: &RelabelSelection,
        version: u64,
        label: &dyn Fn(&Item) -> Labels,
    ) -> Result<RelabelReport, StoreError> {
        self.relabel_pass(selection, version, BATCH, label, &mut |_| true)
    }

    /// Reclassifies stored items with `label` at taxonomy `version`. Items already at that
    /// version are left alone. Each batch is one transaction over the items, their index
    /// entries and (for [`RelabelSelection::All`]) the pass's position in `meta`, then a flush:
    /// an interrupted pass resumes after the last durable batch and redoes nothing. `label` runs
    /// outside the transaction; an item changed meanwhile (a concurrent ingest) is labelled
    /// again from its stored form. `observe` is called after each durable batch and stops the
    /// pass (resumable) by returning false.
    pub fn relabel_pass(
        &self,
        selection: &RelabelSelection,
        version: u64,
        batch_size: usize,
        label: &dyn Fn(&Item) -> Labels,
        observe: &mut dyn FnMut(&RelabelReport) -> bool,
    ) -> Result<RelabelReport, StoreError> {
        let batch_size = batch_size.clamp(1, 4096);
        let mut report = RelabelReport::default();
        let relabel_batch = |batch: &[Item],
                             progress: Option<&RelabelProgress>,
                             report: &mut RelabelReport|
         -> Result<(), StoreError> {
            let mut changed = Vec::new();
            for old in batch {
                if old.labels.taxonomy_version == version {
                    continue;
                }
                let mut new = old.clone();
                new.labels = label(old);
                new.labels.taxonomy_version = version;
                changed.push((old, new));
            }
            let progress = progress.map(encode).transpose()?;
            let written = self.exclusive(|| {
                self.transaction(|tx| {
                    let mut written = Vec::with_capacity(changed.len());
                    for (old, new) in &changed {
                        match tx.read_item(&old.id)? {
                            None => {}
                            Some(cur) if cur == **old => {
                                tx.write_item(new, Some(old))?;
                                written.push((owned_names(&old.labels), owned_names(&new.labels)));
                            }
                            Some(cur) if cur.labels.taxonomy_version == version => {}
                            Some(cur) => {
                                let mut fresh = cur.clone();
                                fresh.labels = label(&cur);
                                fresh.labels.taxonomy_version = version;
                                tx.write_item(&fresh, Some(&cur))?;
                                written
                                    .push((owned_names(&cur.labels), owned_names(&fresh.labels)));
                            }
                        }
                    }
                    if let Some(p) = &progress {
                        tx.meta.insert(keys::META_RELABEL_PROGRESS, p.as_slice())?;
                    }
                    Ok(written)
                })
            })?;
            self.flush()?;
            report.examined += batch.len() as u64;
            for (old, new) in written {
                report.changed += 1;
                if old != new {
                    report.labels_changed += 1;
                }
                for l in new.difference(&old) {
                    *report.gained.entry(l.clone()).or_default() += 1;
                }
                for l in old.difference(&new) {
                    *report.lost.entry(l.clone()).or_default() += 1;
                }
            }
            Ok(())
        };
        match selection {
            RelabelSelection::Ids(ids) => {
                report.total = ids.len() as u64;
                for chunk in ids.chunks(batch_size) {
                    let mut batch = Vec::with_capacity(chunk.len());
                    for id in chunk {
                        if let Some(item) = self.get(id)? {
                            batch.push(item);
                        }
                    }
                    relabel_batch(&batch, None, &mut report)?;
                    if !observe(&report) {
                        report.stopped = true;
                        break;
                    }
                }
            }
            RelabelSelection::All => {
                let mut after: Option<String> = match self.meta.get(keys::META_RELABEL_PROGRESS)? {
                    Some(v) => {
                        let p: RelabelProgress =
                            decode(keys::META, keys::META_RELABEL_PROGRESS, &v)?;
                        if p.version == version && !p.done {
                            report.resumed = p.after.is_some();
                            p.after
                        } else {
                            None
                        }
                    }
                    None => None,
                };
                report.total = self.items.len() as u64;
                if let Some(k) = &after {
                    report.done_before = self.items.count_through(k.as_bytes()) as u64;
                }
                loop {
                    let mut batch = Vec::with_capacity(batch_size);
                    for (k, v) in self
                        .items
                        .page_after(after.as_ref().map(|a| a.as_bytes()), batch_size)?
                    {
                        batch.push(decode::<Item>(keys::ITEMS, &k, &v)?);
                    }
                    let done = batch.len() < batch_size;
                    if let Some(last) = batch.last() {
                        after = Some(last.id.0.clone());
                    }
                    let progress = RelabelProgress {
                        version,
                        after: after.clone(),
                        done,
                    };
                    relabel_batch(&batch, Some(&progress), &mut report)?;
                    let go_on = observe(&report);
                    if done {
                        break;
                    }
                    if !go_on {
                        report.stopped = true;
                        break;
                    }
                }
            }
        }
        Ok(report)
    }

    // -----------------------------------------------------------------------------------------
    // Reading

    /// One item by id.
    pub fn get(&self, id: &ItemId) -> Result<Option<Item>, StoreError> {
        match self.items.get(id.0.as_bytes())? {
            Some(v) => Ok(Some(decode(keys::ITEMS, id.0.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Number of stored items (scans the time index).
    pub fn item_count(&self) -> usize {
        self.item_time.len()
    }

    /// Whether an id or canonical link is tombstoned.
    pub fn is_tombstoned(&self, id: &ItemId, link: Option<&str>) -> Result<bool, StoreError> {
        Ok(self
            .tombstones
            .contains_key(keys::tombstone_id_key(&id.0))?
            || match link {
                Some(l) => self.tombstones.contains_key(keys::tombstone_url_key(l))?,
                None => false,
            })
    }

    /// Newest first, up to `limit` (at most [`MAX_PAGE`]) items before `before`.
    pub fn latest(
        &self,
        scope: &Scope,
        before: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let limit = limit.min(MAX_PAGE);
        let (tree, prefix) = match scope {
            Scope::All => (&self.item_time, Vec::new()),
            Scope::Label(l) => (&self.label_time, keys::scoped_prefix(l)),
            Scope::Feed(f) => (&self.feed_time, keys::scoped_prefix(&f.0)),
        };
        let mut end = prefix.clone();
        match before {
            Some(c) => end.extend_from_slice(&keys::time_key(c.first_seen, &c.id.0)),
            None => end.extend_from_slice(&[0xff; 9]),
        }
        let mut page = Page::default();
        for kv in tree.range(prefix.clone()..end).rev() {
            if page.items.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let Some((_, id)) = k.get(prefix.len()..).and_then(keys::split_time_key) else {
                continue;
            };
            if let Some(item) = self.get(&ItemId(id))? {
                page.items.push(item);
            }
        }
        if page.items.len() == limit {
            page.next = page.items.last().map(|i| Cursor {
                first_seen: i.first_seen,
                id: i.id.clone(),
            });
        }
        Ok(page)
    }

    /// Items first stored strictly after `after`, oldest first, matching `filter`, at most
    /// `limit` (capped at [`MAX_PAGE`]).
    pub fn stored_since(
        &self,
        after: DateTime<Utc>,
        filter: &LabelFilter,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let limit = limit.min(MAX_PAGE);
        let mut start = keys::instant(after).to_vec();
        start.push(0xff);
        let mut out = Vec::new();
        for kv in self.item_time.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let Some((_, id)) = keys::split_time_key(&k) else {
                continue;
            };
            if let Some(item) = self.get(&ItemId(id))? {
                if filter.matches(&item.labels) {
                    out.push(item);
                }
            }
        }
        Ok(out)
    }

    /// Number of items per taxonomy id (scans the label index's keys).
    pub fn counts_per_label(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for kv in self.label_time.iter().keys() {
            let k = kv?;
            if let Some((name, _, _)) = keys::split_scoped_key(&k) {
                *counts.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    /// Items per week for one taxonomy id, the last `weeks` weeks up to `now`'s week, oldest
    /// first (weeks start Monday 00:00 UTC).
    pub fn weekly_counts(
        &self,
        label: &str,
        weeks: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<WeekCount>, StoreError> {
        let weeks = weeks.clamp(1, 520);
        let today = now.date_naive();
        let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
        let this_week = Utc.from_utc_datetime(&monday.and_time(chrono::NaiveTime::MIN));
        let first = this_week - Duration::weeks(i64::from(weeks) - 1);
        let mut out: Vec<WeekCount> = (0..weeks)
            .map(|w| WeekCount {
                week_start: first + Duration::weeks(i64::from(w)),
                count: 0,
            })
            .collect();
        let start = keys::scoped_time_key(label, first, "");
        let mut end = keys::scoped_prefix(label);
        end.extend_from_slice(&[0xff; 9]);
        for kv in self.label_time.range(start..end).keys() {
            let k = kv?;
            if let Some((_, t, _)) = keys::split_scoped_key(&k) {
                let week = (t - first).num_weeks();
                if let Some(slot) = usize::try_from(week).ok().and_then(|w| out.get_mut(w)) {
                    slot.count += 1;
                }
            }
        }
        Ok(out)
    }

    pub fn feed_state(&self, feed: &FeedId) -> Result<Option<FeedState>, StoreError> {
        let staged = self.lock_staged().state(&feed.0).cloned();
        if let Some(v) = staged {
            return Ok(Some(decode(keys::FEED_STATE, feed.0.as_bytes(), &v)?));
        }
        // The staged and committing batches answered above (see `meta_of`).
        match self.feed_state.get_unlocked(feed.0.as_bytes())? {
            Some(v) => Ok(Some(decode(keys::FEED_STATE, feed.0.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every feed's state, by feed id.
    pub fn feed_states(&self) -> Result<Vec<(FeedId, FeedState)>, StoreError> {
        let mut staged = self.lock_staged().states();
        let mut out = Vec::new();
        for kv in self.feed_state.iter() {
            let (k, v) = kv?;
            let feed = String::from_utf8_lossy(&k).into_owned();
            let state = match staged.remove(&feed) {
                Some(newer) => decode(keys::FEED_STATE, &k, &newer)?,
                None => decode(keys::FEED_STATE, &k, &v)?,
            };
            out.push((FeedId(feed), state));
        }
        for (feed, v) in staged {
            let state = decode(keys::FEED_STATE, feed.as_bytes(), &v)?;
            out.push((FeedId(feed), state));
        }
        out.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
        Ok(out)
    }

    /// Checks that every item has its index entries and every index entry its item.
    pub fn verify(&self) -> Result<Integrity, StoreError> {
        let mut r = Integrity::default();
        let note = |r: &mut Integrity, s: String| {
            if r.problems.len() < 100 {
                r.problems.push(s);
            }
        };
        for kv in self.items.ids.iter() {
            let (k, seq) = kv?;
            r.items += 1;
            let Some(v) = self.items.log.get(&seq)? else {
                note(
                    &mut r,
                    format!(
                        "item {} has no value in item_log",
                        String::from_utf8_lossy(&k)
                    ),
                );
                continue;
            };
            let item: Item = match decode(keys::ITEMS, &k, &v) {
                Ok(i) => i,
                Err(e) => {
                    note(&mut r, e.to_string());
                    continue;
                }
            };
            if item.id.0.as_bytes() != k.as_ref() {
                note(
                    &mut r,
                    format!(
                        "item under key {} has id {}",
                        String::from_utf8_lossy(&k),
                        item.id
                    ),
                );
            }
            match self
                .item_time
                .get(keys::time_key(item.first_seen, &item.id.0))?
            {
                None => note(&mut r, format!("item {} missing from item_time", item.id)),
                Some(v) if keys::decode_fingerprint(&v) != item.fingerprint => note(
                    &mut r,
                    format!("item_time entry of {} holds another fingerprint", item.id),
                ),
                Some(_) => {}
            }
            if !self.feed_time.contains_key(keys::scoped_time_key(
                &item.feed.0,
                item.first_seen,
                &item.id.0,
            ))? {
                note(&mut r, format!("item {} missing from feed_time", item.id));
            }
            for l in label_names(&item.labels) {
                if !self.label_time.contains_key(keys::scoped_time_key(
                    l,
                    item.first_seen,
                    &item.id.0,
                ))? {
                    note(
                        &mut r,
                        format!("item {} missing from label_time {l}", item.id),
                    );
                }
            }
        }
        let mut indexed = 0u64;
        for kv in self.item_time.iter().keys() {
            let k = kv?;
            indexed += 1;
            match keys::split_time_key(&k) {
                Some((_, id)) if self.items.contains_key(id.as_bytes())? => {}
                _ => note(
                    &mut r,
                    format!(
                        "item_time entry {} has no item",
                        String::from_utf8_lossy(&k)
                    ),
                ),
            }
        }
        if indexed != r.items {
            let items = r.items;
            note(
                &mut r,
                format!("{items} items but {indexed} item_time entries"),
            );
        }
        let logged = self.items.log.len() as u64;
        if logged != r.items {
            let items = r.items;
            note(
                &mut r,
                format!("{items} item ids but {logged} item_log values"),
            );
        }
        for kv in self.url_index.iter() {
            let (url, id) = kv?;
            if !self.items.contains_key(&id)? {
                note(
                    &mut r,
                    format!(
                        "url_index {} points to missing item",
                        String::from_utf8_lossy(&url)
                    ),
                );
            }
        }
        Ok(r)
    }

    /// Reserved for the digest ledger: number of delivery records.
    pub fn digest_ledger_len(&self) -> usize {
        self.digest_ledger.len()
    }
}

/// What the near-duplicate index needs of an item written in a transaction.
struct Written {
    id: String,
    fingerprint: u64,
    first_seen: i64,
    /// [`near::link_hash`] of its link.
    link: Option<u64>,
}

impl Written {
    /// Puts this write into the in-memory index: its id, fingerprint and link.
    fn index_into(&self, ix: &mut near::NearIndex) {
        ix.upsert(&self.id, self.fingerprint, self.first_seen);
        if let Some(h) = self.link {
            ix.claim_hash(h);
        }
    }

    fn of(item: &Item) -> Written {
        Written {
            id: item.id.0.clone(),
            fingerprint: item.fingerprint,
            first_seen: item.first_seen.timestamp_micros(),
            link: item.link.as_deref().map(|l| near::link_hash(l.as_bytes())),
        }
    }
}

/// Group commit: threads that need their writes durable at the same time share one flush.
/// Each caller takes a ticket after its writes; a flush covers every ticket taken before it
/// started. A caller returns once a flush that covers its ticket has finished, starting one
/// itself when none is running. A failed flush covers nothing: its waiters try again.
#[derive(Default)]
struct GroupSync {
    state: std::sync::Mutex<SyncState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Tickets handed out so far.
    issued: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    flushing: bool,
}

impl GroupSync {
    fn sync(&self, flush: impl Fn() -> Result<(), StoreError>) -> Result<(), StoreError> {
        let lock = || self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = lock();
        st.issued += 1;
        let ticket = st.issued;
        loop {
            if st.durable >= ticket {
                return Ok(());
            }
            if !st.flushing {
                st.flushing = true;
                let covers = st.issued;
                drop(st);
                let result = flush();
                st = lock();
                st.flushing = false;
                if result.is_ok() {
                    st.durable = st.durable.max(covers);
                }
                self.done.notify_all();
                result?;
                continue;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Every label id of an item, owned (for the per-label change counts of a relabel pass).
fn owned_names(labels: &Labels) -> BTreeSet<String> {
    labels.all_ids().map(str::to_string).collect()
}

/// Label ids usable as index keys, without repeats.
fn label_names(labels: &Labels) -> Vec<&str> {
    distinct(labels.all_ids().filter(|l| keys::usable_name(l)).collect())
}

/// `names` sorted, each once. A plain vector: an item has one or two feeds and a few labels,
/// and a `BTreeSet` per item written cost more than the sort.
fn distinct(mut names: Vec<&str>) -> Vec<&str> {
    names.sort_unstable();
    names.dedup();
    names
}

impl Tx<'_> {
    fn read_item(&self, id: &ItemId) -> TxResult<Option<Item>> {
        match self.items.get(id.0.as_bytes())? {
            Some(v) => Ok(Some(
                decode(keys::ITEMS, id.0.as_bytes(), &v).map_err(abort)?,
            )),
            None => Ok(None),
        }
    }

    /// Writes `item` and its index entries, first removing those of `old` (its previous
    /// version) when given.
    fn write_item(&self, item: &Item, old: Option<&Item>) -> TxResult<()> {
        let value = encode_item(item).map_err(abort)?;
        self.write_item_value(item, &value, old, false)
    }

    /// [`Tx::write_item`] with the item already encoded as `value`. `new_id`: the caller knows
    /// no item has this id (a staged insert), so its sequence number is not looked up.
    fn write_item_value(
        &self,
        item: &Item,
        value: &[u8],
        old: Option<&Item>,
        new_id: bool,
    ) -> TxResult<()> {
        if let Some(old) = old {
            self.remove_indexes(old)?;
        }
        let id = item.id.0.as_str();
        if new_id {
            self.items.put_new(id.as_bytes(), value)?;
        } else {
            self.items.put(id.as_bytes(), value)?;
        }
        self.item_time.insert_blind(
            keys::time_key(item.first_seen, id),
            &keys::encode_fingerprint(item.fingerprint),
        )?;
        for f in source_feeds(item) {
            self.feed_time
                .insert_blind(keys::scoped_time_key(f, item.first_seen, id), &[])?;
        }
        for l in label_names(&item.labels) {
            self.label_time
                .insert_blind(keys::scoped_time_key(l, item.first_seen, id), &[])?;
        }
        if let Some(link) = &item.link {
            if self.url_index.get(link.as_bytes())?.is_none() {
                self.url_index
                    .insert_blind(link.as_bytes(), id.as_bytes())?;
            }
        }
        Ok(())
    }

    fn remove_indexes(&self, item: &Item) -> TxResult<()> {
        let id = item.id.0.as_str();
        self.item_time.remove(keys::time_key(item.first_seen, id))?;
        for f in source_feeds(item) {
            self.feed_time
                .remove(keys::scoped_time_key(f, item.first_seen, id))?;
        }
        for l in label_names(&item.labels) {
            self.label_time
                .remove(keys::scoped_time_key(l, item.first_seen, id))?;
        }
        if let Some(link) = &item.link {
            if self.url_index.get(link.as_bytes())?.as_deref() == Some(id.as_bytes()) {
                self.url_index.remove(link.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// The feeds an item is indexed under: its first feed and every merged source.
fn source_feeds(item: &Item) -> Vec<&str> {
    distinct(
        std::iter::once(item.feed.0.as_str())
            .chain(item.sources.iter().map(|s| s.feed.0.as_str()))
            .filter(|f| keys::usable_name(f))
            .collect(),
    )
}

#[cfg(test)]
mod tests;
