//! Compaction: rewrite the sled folder into a fresh one beside it and swap them by renames.
//!
//! In: the store's path. Out: a [`CompactReport`] with the sizes before and after, and a store
//! at the same path holding exactly the same records. Every tree is copied record by record
//! into `PATH.compact-new`, flushed, compared record by record with the original and checked
//! with [`Store::verify`]; only then is a `PATH.compact-ready` marker written and the folders
//! swapped (`PATH` → `PATH.compact-old`, `PATH.compact-new` → `PATH`). A `PATH.compact-lock`
//! file is held locked for the whole run. [`recover`], called by [`Store::open`], finishes or
//! rolls back a run that was killed, so a kill at any moment leaves a store that opens with
//! nothing lost. It never deletes the only copy of the data: the old folder is removed only
//! once the new one is in place.

use super::{Store, StoreError};
use fs2::FileExt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes on disk of the store folder before and after.
    pub before_bytes: u64,
    pub after_bytes: u64,
    /// Trees copied and records in them (all trees, indexes included).
    pub trees: usize,
    pub records: u64,
    pub items: u64,
}

/// The sibling paths a compaction of `path` uses.
struct Paths {
    new: PathBuf,
    old: PathBuf,
    ready: PathBuf,
    lock: PathBuf,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(suffix);
    path.with_file_name(name)
}

fn paths(path: &Path) -> Paths {
    Paths {
        new: sibling(path, ".compact-new"),
        old: sibling(path, ".compact-old"),
        ready: sibling(path, ".compact-ready"),
        lock: sibling(path, ".compact-lock"),
    }
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> StoreError {
    StoreError::Compact(format!("{what} {}: {e}", p.display()))
}

/// Makes renames and creations in `path`'s folder durable.
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync folder", &parent, e))
}

fn in_use(path: &Path) -> StoreError {
    StoreError::InUse {
        path: path.display().to_string(),
        by: "a compaction".into(),
    }
}

/// Takes the compaction lock of `path` without waiting; `None` when another process holds it.
fn try_lock(lock: &Path) -> Result<Option<File>, StoreError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .map_err(|e| io_err("cannot open", lock, e))?;
    match f.try_lock_exclusive() {
        Ok(()) => Ok(Some(f)),
        Err(_) => Ok(None),
    }
}

/// True when a compaction of `path` is running in another process right now.
pub(super) fn running_elsewhere(path: &Path) -> Result<bool, StoreError> {
    let p = paths(path);
    if !p.lock.exists() {
        return Ok(false);
    }
    Ok(try_lock(&p.lock)?.is_none())
}

/// Finishes or rolls back a compaction of `path` that was interrupted. Called before the
/// store is opened; does nothing when no compaction left anything behind. Refuses (InUse)
/// while a compaction runs in another process.
pub(super) fn recover(path: &Path) -> Result<(), StoreError> {
    let p = paths(path);
    if !(p.lock.exists() || p.new.exists() || p.old.exists() || p.ready.exists()) {
        return Ok(());
    }
    let Some(lock) = try_lock(&p.lock)? else {
        return Err(in_use(path));
    };
    let ready = p.ready.exists();
    match (path.exists(), p.old.exists()) {
        // Killed between the two renames: the new copy was complete (the marker is written
        // before the first rename), so put it in place.
        (false, true) if ready && p.new.exists() => {
            fs::rename(&p.new, path).map_err(|e| io_err("cannot move", &p.new, e))?;
            sync_parent(path)?;
        }
        // The old folder moved aside without a complete new one: put the old one back.
        (false, true) => {
            fs::rename(&p.old, path).map_err(|e| io_err("cannot move", &p.old, e))?;
            sync_parent(path)?;
        }
        _ => {}
    }
    // Now `path` holds the store; whatever else is left is a copy that is no longer needed:
    // either an unfinished new copy (the swap never started) or the old folder (the swap
    // finished). Remove the marker first so a kill here never pairs a stale marker with a
    // partial copy.
    if path.exists() {
        if p.ready.exists() {
            fs::remove_file(&p.ready).map_err(|e| io_err("cannot remove", &p.ready, e))?;
            sync_parent(path)?;
        }
        for leftover in [&p.new, &p.old] {
            if leftover.exists() {
                fs::remove_dir_all(leftover).map_err(|e| io_err("cannot remove", leftover, e))?;
            }
        }
    }
    let _ = fs::remove_file(&p.lock);
    drop(lock);
    Ok(())
}

/// Bytes of disk the files under `path` take (allocated blocks, as `du` counts them).
pub fn disk_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = fs::read_dir(&p) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

/// Rewrites the store at `path` (see the module comment). Fails with
/// [`StoreError::InUse`] while another process has the store open.
pub fn compact(path: &Path) -> Result<CompactReport, StoreError> {
    if !path.exists() {
        return Err(StoreError::Compact(format!(
            "no store at {} (check store.path in the config)",
            path.display()
        )));
    }
    recover(path)?;
    let p = paths(path);
    let Some(lock) = try_lock(&p.lock)? else {
        return Err(in_use(path));
    };
    let mut report = CompactReport {
        before_bytes: disk_size(path),
        ..Default::default()
    };
    {
        let old = Store::open_unlocked(path)?;
        report.items = old.items.len() as u64;
        let fresh = sled::Config::new()
            .path(&p.new)
            .cache_capacity(super::SLED_CACHE_BYTES)
            .open()
            .map_err(|e| StoreError::Open {
                path: p.new.display().to_string(),
                message: e.to_string(),
            })?;
        let mut names = old.db.tree_names();
        names.sort();
        for name in &names {
            let from = old.db.open_tree(name)?;
            let to = fresh.open_tree(name)?;
            let mut batch = sled::Batch::default();
            let mut n = 0usize;
            for kv in from.iter() {
                let (k, v) = kv?;
                batch.insert(k, v);
                n += 1;
                report.records += 1;
                if n % 4096 == 0 {
                    to.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            to.apply_batch(batch)?;
        }
        report.trees = names.len();
        fresh.flush()?;
        // Compare every record of every tree, in order.
        for name in &names {
            let a = old.db.open_tree(name)?;
            let b = fresh.open_tree(name)?;
            let mut left = a.iter();
            let mut right = b.iter();
            loop {
                match (left.next().transpose()?, right.next().transpose()?) {
                    (None, None) => break,
                    (Some(x), Some(y)) if x == y => {}
                    _ => {
                        return Err(StoreError::Compact(format!(
                            "the copy of tree {} in {} differs from the original; the store was left as it was",
                            String::from_utf8_lossy(name),
                            p.new.display()
                        )))
                    }
                }
            }
        }
        drop(fresh);
        Store::wait_until_released(&p.new, std::time::Duration::from_secs(10))?;
        let copy = Store::open_unlocked(&p.new)?;
        let integrity = copy.verify()?;
        if integrity.items != report.items {
            return Err(StoreError::Compact(format!(
                "the copy holds {} items, the store {}; the store was left as it was",
                integrity.items, report.items
            )));
        }
        copy.flush()?;
    }
    // The copy is complete and durable: mark it, then swap.
    File::create(&p.ready)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("cannot write", &p.ready, e))?;
    sync_parent(path)?;
    fs::rename(path, &p.old).map_err(|e| io_err("cannot move", path, e))?;
    sync_parent(path)?;
    fs::rename(&p.new, path).map_err(|e| io_err("cannot move", &p.new, e))?;
    sync_parent(path)?;
    fs::remove_file(&p.ready).map_err(|e| io_err("cannot remove", &p.ready, e))?;
    sync_parent(path)?;
    fs::remove_dir_all(&p.old).map_err(|e| io_err("cannot remove", &p.old, e))?;
    report.after_bytes = disk_size(path);
    let _ = fs::remove_file(&p.lock);
    drop(lock);
    Ok(report)
}
