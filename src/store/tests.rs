//! Store tests that need raw sled access: the schema migrations.

use super::*;
use crate::item::{ContentHash, IdBasis, Label, Source};

fn item(id: &str, feed: &str, label: &str, secs: i64) -> Item {
    let title = format!("Title {id}");
    let content_html = "<p>Ministers of the Rabat Process met in Cadiz to adopt a new action \
        plan on migration and development between Europe and Africa, with support from the \
        European Union and partner states.</p>"
        .to_string();
    Item {
        fingerprint: crate::normalize::fingerprint_of(&title, &content_html),
        title,
        content_html,
        id: ItemId(id.into()),
        id_basis: IdBasis::Guid,
        feed: FeedId(feed.into()),
        sources: vec![Source {
            feed: FeedId(feed.into()),
            guid: Some(id.into()),
            link: None,
        }],
        link: Some(format!("https://example.org/{id}")),
        summary_text: String::new(),
        published: None,
        updated: None,
        first_seen: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
        authors: vec![],
        categories: vec![],
        enclosures: vec![],
        content_hash: ContentHash(7),
        revision: 0,
        labels: Labels {
            programmes: vec![Label {
                id: label.into(),
                score: 1.0,
                why: vec![],
            }],
            ..Default::default()
        },
    }
}

/// Items "0000", "0001", … of feed `f`, one second apart.
fn numbered_items(n: i64) -> Vec<Item> {
    (0..n)
        .map(|n| item(&format!("{n:04}"), "f", "asylum", n))
        .collect()
}

/// Writes a store the way schema 1 did: unversioned JSON values, items, feed_time and
/// url_index only, no schema version in meta.
fn write_schema_1(path: &Path, items: &[Item]) {
    let db = sled::open(path).unwrap();
    let tree = db.open_tree(keys::ITEMS).unwrap();
    let feed_time = db.open_tree(keys::FEED_TIME).unwrap();
    let url_index = db.open_tree(keys::URL_INDEX).unwrap();
    for i in items {
        tree.insert(i.id.0.as_bytes(), serde_json::to_vec(i).unwrap())
            .unwrap();
        feed_time
            .insert(keys::scoped_time_key(&i.feed.0, i.first_seen, &i.id.0), &[])
            .unwrap();
        if let Some(l) = &i.link {
            url_index.insert(l.as_bytes(), i.id.0.as_bytes()).unwrap();
        }
    }
    db.flush().unwrap();
}

#[test]
fn migrates_schema_1_to_current() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<Item> = (0..600)
        .map(|n| {
            item(
                &format!("{n:04}"),
                "f",
                if n % 2 == 0 { "asylum" } else { "mieux" },
                n,
            )
        })
        .collect();
    write_schema_1(dir.path(), &items);
    // The raw sled handle above lets go of its lock a moment after the drop.
    Store::wait_until_released(dir.path(), std::time::Duration::from_secs(10)).unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let v = store.verify().unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.items, 600);
        assert_eq!(store.item_count(), 600);
        let counts = store.counts_per_label().unwrap();
        assert_eq!(counts.get("asylum"), Some(&300));
        let latest = store.latest(&Scope::All, None, 1).unwrap();
        assert_eq!(latest.items[0].id.0, "0599");
        assert_eq!(
            store.get(&ItemId("0042".into())).unwrap(),
            Some(items[42].clone())
        );
        // Near-duplicate lookup works on migrated fingerprints.
        let mut probe = item("new", "g", "asylum", 1000);
        probe.link = None;
        let known = store.known_for(&[probe]).unwrap();
        assert!(!known[0].near.is_empty());
    }
    // Values are now versioned on disk.
    // Items are under sequence numbers, found through their ids; the old tree is gone.
    let db = sled::open(dir.path()).unwrap();
    assert!(!db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == keys::ITEMS.as_bytes()));
    let seq = db
        .open_tree(keys::ITEM_IDS)
        .unwrap()
        .get(b"0001")
        .unwrap()
        .unwrap();
    let raw = db
        .open_tree(keys::ITEM_LOG)
        .unwrap()
        .get(seq)
        .unwrap()
        .unwrap();
    // Re-encoded as this build writes it: a short value plain, behind its version byte.
    assert_eq!(raw.first(), Some(&keys::VALUE_VERSION));
    let stored: crate::item::Item = keys::decode_value(&raw).unwrap();
    assert_eq!(stored.id.0, "0001");
}

/// Writes `items` into a fresh store at `dir`, lets `age` turn it into an older layout, moves
/// the items into the `items` tree by id (the layout before schema 5), stamps schema
/// `version`, then reopens it (which migrates).
fn reopened_from_schema(
    dir: &Path,
    version: u32,
    items: &[Item],
    write: impl Fn(&Tx<'_>, &Item) -> TxResult<()>,
    age: impl FnOnce(&Store),
) -> Store {
    {
        let store = Store::open(dir).unwrap();
        store
            .transaction(|tx| {
                for i in items {
                    write(tx, i)?;
                }
                Ok(())
            })
            .unwrap();
        age(&store);
        // Before schema 5, items were under their ids in one tree.
        let legacy = store.db.open_tree(keys::ITEMS).unwrap();
        for kv in store.items.iter() {
            let (id, value) = kv.unwrap();
            legacy.insert(id, value).unwrap();
        }
        store.items.ids.clear().unwrap();
        store.items.log.clear().unwrap();
        store
            .meta
            .insert(keys::META_SCHEMA_VERSION, &version.to_be_bytes())
            .unwrap();
        store.flush().unwrap();
    }
    Store::open(dir).unwrap()
}

/// 2 → 3: fingerprints from the earlier function (and their band entries) are replaced by
/// ones recomputed from each item's title and content.
#[test]
fn migrates_schema_2_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let items = numbered_items(300);
    let store = reopened_from_schema(
        dir.path(),
        2,
        &items,
        |tx, i| {
            let mut stale = i.clone();
            stale.fingerprint = 0x1234_5678_9abc_def0;
            tx.write_item(&stale, None)
        },
        |_| {},
    );
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.get(&ItemId("0007".into())).unwrap(),
        Some(items[7].clone())
    );
    let stale = store
        .item_time
        .iter()
        .filter(|kv| {
            kv.as_ref()
                .is_ok_and(|(_, v)| v.as_ref() == 0x1234_5678_9abc_def0u64.to_be_bytes())
        })
        .count();
    assert_eq!(stale, 0, "the old fingerprints are left in item_time");
    assert!(
        !store
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == keys::FINGERPRINTS.as_bytes()),
        "the schema 3 band tree is dropped"
    );
    let v = store.verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    let mut probe = item("new", "g", "asylum", 1000);
    probe.link = None;
    assert!(!store.known_for(&[probe]).unwrap()[0].near.is_empty());
}

/// 3 → 4: the fingerprint moves from the band tree into the `item_time` values, the band
/// tree is dropped, and near-duplicate lookups still find the migrated items.
#[test]
fn migrates_schema_3_band_entries() {
    let dir = tempfile::tempdir().unwrap();
    let items = numbered_items(300);
    let store = reopened_from_schema(
        dir.path(),
        3,
        &items,
        |tx, i| tx.write_item(i, None),
        |store| {
            // Schema 3: empty item_time values, band entries in their own tree.
            for kv in store.item_time.iter() {
                let (k, _) = kv.unwrap();
                store.item_time.insert(k, &[]).unwrap();
            }
            let bands = store.db.open_tree(keys::FINGERPRINTS).unwrap();
            bands.insert(b"band entry", &[1u8; 8]).unwrap();
            assert!(!store.verify().unwrap().problems.is_empty());
        },
    );
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let v = store.verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(!store
        .db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == keys::FINGERPRINTS.as_bytes()));
    assert_eq!(store.near_index_len().unwrap(), 300);
    let mut probe = item("new", "g", "asylum", 1000);
    probe.link = None;
    assert!(!store.known_for(&[probe]).unwrap()[0].near.is_empty());
}

/// Concurrent syncs share flushes, and each returns only after a flush that began after it
/// was called.
#[test]
fn group_sync_covers_every_caller() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let sync = GroupSync::default();
    let flushes = AtomicU64::new(0);
    // Each thread "writes" (bumps `written`), then syncs; a flush records how many writes it
    // covered. After sync returns, the last completed flush must cover the caller's write.
    let written = AtomicU64::new(0);
    let covered = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    let mine = written.fetch_add(1, Ordering::SeqCst) + 1;
                    sync.sync(|| {
                        let upto = written.load(Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        flushes.fetch_add(1, Ordering::SeqCst);
                        covered.fetch_max(upto, Ordering::SeqCst);
                        Ok(())
                    })
                    .unwrap();
                    assert!(covered.load(Ordering::SeqCst) >= mine);
                }
            });
        }
    });
    let n = flushes.load(Ordering::SeqCst);
    assert!(n < 400, "{n} flushes for 400 syncs: none shared");
    assert!(n > 0);
}

#[test]
fn refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree(keys::META)
            .unwrap()
            .insert(
                keys::META_SCHEMA_VERSION,
                &(SCHEMA_VERSION + 1).to_be_bytes(),
            )
            .unwrap();
        db.flush().unwrap();
    }
    Store::wait_until_released(dir.path(), std::time::Duration::from_secs(10)).unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::TooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[test]
fn cursor_round_trips() {
    let c = Cursor {
        first_seen: Utc.timestamp_opt(1_700_000_000, 5000).unwrap(),
        id: ItemId("abc".into()),
    };
    assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
    assert!("x".parse::<Cursor>().is_err());
    assert!("12.".parse::<Cursor>().is_err());
}

/// A caller-flush store: applies are staged, not committed, until a flush or a full batch.
fn staging_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap().with_group_commit();
    (dir, store)
}

fn source(feed: &str, guid: &str) -> Source {
    Source {
        feed: FeedId(feed.into()),
        guid: Some(guid.into()),
        link: None,
    }
}

/// The write path sees its own batch: a later feed of the same batch finds a staged item by
/// id and by link, updates and merges into it, and the one commit writes the final version
/// with consistent indexes.
#[test]
fn staged_batch_is_seen_by_dedup_and_committed_once() {
    let (dir, store) = staging_store();
    let x = item("x1", "a", "asylum", 0);
    let r = store
        .apply(
            &FeedId("a".into()),
            &[Intent::Insert(Box::new(x.clone()))],
            None,
        )
        .unwrap();
    assert_eq!(r.inserted, 1);
    // Not in sled yet, but the write path knows it.
    assert!(store.get(&x.id).unwrap().is_none());
    let mut same_link = item("y1", "b", "asylum", 5);
    same_link.link = x.link.clone();
    let known = store.known_for(&[x.clone(), same_link]).unwrap();
    assert_eq!(
        known[0].by_id.as_ref().map(|m| m.id.clone()),
        Some(x.id.clone())
    );
    assert_eq!(
        known[1].by_link.as_ref().map(|m| m.id.clone()),
        Some(x.id.clone())
    );
    // Inserting it again in the same batch is skipped; an edit updates the staged version;
    // another feed's copy is merged into it.
    let mut edited = x.clone();
    edited.title = "Title x1, edited".into();
    edited.revision = 1;
    let r = store
        .apply(
            &FeedId("a".into()),
            &[
                Intent::Insert(Box::new(x.clone())),
                Intent::Update(Box::new(edited)),
            ],
            None,
        )
        .unwrap();
    assert_eq!((r.inserted, r.updated, r.skipped), (0, 1, 1));
    let r = store
        .apply(
            &FeedId("b".into()),
            &[Intent::MergeSource {
                into: x.id.clone(),
                source: source("b", "y1"),
            }],
            None,
        )
        .unwrap();
    assert_eq!(r.merged, 1);
    store.flush().unwrap();
    let stored = store.get(&x.id).unwrap().unwrap();
    assert_eq!(stored.title, "Title x1, edited");
    assert_eq!(stored.sources.len(), 2);
    assert_eq!(store.item_count(), 1);
    let by_b = store
        .latest(&Scope::Feed(FeedId("b".into())), None, 10)
        .unwrap();
    assert_eq!(by_b.items.len(), 1);
    assert!(store.verify().unwrap().problems.is_empty());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.item_count(), 1);
    assert!(store.verify().unwrap().problems.is_empty());
}

/// An item stored before the batch and updated twice within it reaches sled once, in its
/// last version, and the first version's index entries (label, link) are gone.
#[test]
fn an_item_updated_twice_in_one_batch_keeps_one_set_of_index_entries() {
    let (dir, store) = staging_store();
    let x = item("x1", "a", "asylum", 0);
    store
        .apply(
            &FeedId("a".into()),
            &[Intent::Insert(Box::new(x.clone()))],
            None,
        )
        .unwrap();
    store.flush().unwrap();
    let mut second = item("x1", "a", "borders", 0);
    second.link = Some("https://example.org/x1-moved".into());
    second.revision = 1;
    let mut third = second.clone();
    third.title = "Title x1, edited twice".into();
    third.revision = 2;
    for version in [second, third] {
        let r = store
            .apply(
                &FeedId("a".into()),
                &[Intent::Update(Box::new(version))],
                None,
            )
            .unwrap();
        assert_eq!(r.updated, 1);
    }
    store.flush().unwrap();
    let stored = store.get(&x.id).unwrap().unwrap();
    assert_eq!(stored.title, "Title x1, edited twice");
    let label = |l: &str| {
        store
            .latest(&Scope::Label(l.into()), None, 10)
            .unwrap()
            .items
            .len()
    };
    assert_eq!((label("asylum"), label("borders")), (0, 1));
    assert_eq!(store.latest(&Scope::All, None, 10).unwrap().items.len(), 1);
    let mut old_link = item("y1", "b", "asylum", 9);
    old_link.link = x.link.clone();
    let mut new_link = item("y2", "b", "asylum", 9);
    new_link.link = Some("https://example.org/x1-moved".into());
    let known = store.known_for(&[old_link, new_link]).unwrap();
    assert!(known[0].by_link.is_none());
    assert_eq!(
        known[1].by_link.as_ref().map(|m| m.id.clone()),
        Some(x.id.clone())
    );
    assert!(store.verify().unwrap().problems.is_empty());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.verify().unwrap().problems.is_empty());
}

/// Feed states are staged in order with the batch: a state recorded after an apply wins over
/// the apply's, before and after the commit, and a store dropped unflushed keeps both items
/// and states.
#[test]
fn staged_feed_states_keep_their_order_and_survive_a_drop() {
    let (dir, store) = staging_store();
    let feed = FeedId("a".into());
    let state = |etag: &str| FeedState {
        etag: Some(etag.into()),
        ..Default::default()
    };
    store
        .apply(
            &feed,
            &[Intent::Insert(Box::new(item("x1", "a", "asylum", 0)))],
            Some(&state("first")),
        )
        .unwrap();
    store.put_feed_state(&feed, &state("second")).unwrap();
    let now = |s: &Store| s.feed_state(&feed).unwrap().unwrap().etag;
    assert_eq!(now(&store).as_deref(), Some("second"));
    let all = store.feed_states().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1.etag.as_deref(), Some("second"));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(now(&store).as_deref(), Some("second"));
    assert_eq!(store.item_count(), 1);
}

/// A batch commits itself when full, so a caller that never flushes holds a bounded batch.
#[test]
fn a_full_batch_commits_itself() {
    let (_dir, store) = staging_store();
    for n in 0..staged::MAX_STAGED_DOCUMENTS {
        let id = format!("x{n}");
        let feed = FeedId(format!("f{n}"));
        store
            .apply(
                &feed,
                &[Intent::Insert(Box::new(item(
                    &id, &feed.0, "asylum", n as i64,
                )))],
                None,
            )
            .unwrap();
        let committed = store.get(&ItemId(id)).unwrap().is_some();
        assert_eq!(
            committed,
            n + 1 == staged::MAX_STAGED_DOCUMENTS,
            "after {n}"
        );
    }
    assert!(store.lock_staged().is_empty());
}

/// A batch dropped by a failed commit is reported lost to its writers, and only to them.
#[test]
fn a_failed_batch_is_reported_lost() {
    let mut st = staged::Staged::default();
    let first = st.generation;
    st.push_state("a", vec![1]);
    let (_, taken) = st.take_for_commit();
    assert_eq!(taken, first);
    // Staged meanwhile: the committing batch is still seen, the newer state first.
    let second = st.generation;
    st.push_state("b", vec![2]);
    assert_eq!(st.state("a"), Some(&vec![1]));
    assert!(st.committed(first, false).is_some());
    assert_eq!(st.state("a"), None);
    assert_eq!(st.state("b"), Some(&vec![2]));
    let (_, taken) = st.take_for_commit();
    assert_eq!(taken, second);
    assert!(st.committed(second, true).is_some());
    assert!(st.was_lost(first));
    assert!(!st.was_lost(second));
    // An empty batch dropped lost nothing; a dropped batch with writes is lost.
    let third = st.generation;
    st.drop_batch();
    assert!(!st.was_lost(third));
    let fourth = st.generation;
    st.push_state("c", vec![3]);
    st.drop_batch();
    assert!(st.was_lost(fourth));
    assert_eq!(st.state("c"), None);
}

/// 4 → 5: items move from the `items` tree (by id) to `item_log` under sequence numbers,
/// their values compressed; the old tree is dropped and the store verifies clean.
#[test]
fn migrates_schema_4_items_to_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let items = numbered_items(300);
    let store = reopened_from_schema(
        dir.path(),
        4,
        &items,
        |tx, i| tx.write_item(i, None),
        |_| {},
    );
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.item_count(), 300);
    assert_eq!(
        store.get(&ItemId("0123".into())).unwrap(),
        Some(items[123].clone())
    );
    let v = store.verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(store.legacy_items().unwrap().is_none());
    assert_eq!(store.items.log.len(), 300);
}

/// Sequence numbers are never handed out twice, across reopenings; an edited item keeps
/// its number.
#[test]
fn sequence_numbers_grow_across_reopening_and_edits_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let seq_of = |s: &Store, id: &str| -> u64 {
        let v = s.items.ids.get(id.as_bytes()).unwrap().unwrap();
        items::decode_seq(keys::ITEM_IDS, &v).unwrap()
    };
    let first = {
        let store = Store::open(dir.path()).unwrap();
        let a = item("a", "f", "asylum", 0);
        store
            .apply(&FeedId("f".into()), &[Intent::Insert(Box::new(a))], None)
            .unwrap();
        seq_of(&store, "a")
    };
    let store = Store::open(dir.path()).unwrap();
    let mut edited = item("a", "f", "asylum", 0);
    edited.title = "Edited".into();
    store
        .apply(
            &FeedId("f".into()),
            &[
                Intent::Update(Box::new(edited)),
                Intent::Insert(Box::new(item("b", "f", "asylum", 1))),
            ],
            None,
        )
        .unwrap();
    assert_eq!(seq_of(&store, "a"), first);
    assert!(seq_of(&store, "b") > first);
    assert_eq!(
        store.get(&ItemId("a".into())).unwrap().unwrap().title,
        "Edited"
    );
    assert_eq!(store.items.log.len(), 2);
    assert!(store.verify().unwrap().problems.is_empty());
}

/// A panic while the batch is held drops that batch once (its writer is told), and the store
/// goes on staging and committing afterwards.
#[test]
fn a_panic_while_staging_drops_that_batch_once() {
    let (_dir, store) = staging_store();
    let (_, lost) = store
        .apply_staged(
            &FeedId("a".into()),
            vec![Intent::Insert(Box::new(item("x1", "a", "asylum", 0)))],
            None,
        )
        .unwrap();
    let poisoned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _held = store.staged.lock().unwrap();
        panic!("a writer panics while holding the batch");
    }));
    assert!(poisoned.is_err());
    assert!(store.make_durable(lost).is_err());
    let (_, kept) = store
        .apply_staged(
            &FeedId("a".into()),
            vec![Intent::Insert(Box::new(item("x2", "a", "asylum", 1)))],
            None,
        )
        .unwrap();
    store.flush().unwrap();
    assert!(store.make_durable(kept).is_ok());
    assert!(store.get(&ItemId("x2".into())).unwrap().is_some());
    assert!(store.get(&ItemId("x1".into())).unwrap().is_none());
    // The index was rebuilt from the store: x1 is unknown, x2 known.
    let known = store
        .known_for(&[item("x1", "a", "asylum", 0), item("x2", "a", "asylum", 1)])
        .unwrap();
    assert!(known[0].by_id.is_none());
    assert!(known[1].by_id.is_some());
}

/// Dropping a store returns only once sled has let go of its lock, so the store opens again
/// at once: a reopen right after a drop was refused as in use now and then (sled's flusher
/// and I/O threads hold the database a moment longer), which made tests flaky.
#[test]
fn a_dropped_store_opens_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..40 {
        let store = Store::open(dir.path())
            .unwrap_or_else(|e| panic!("reopening right after a drop, round {round}: {e}"));
        let items: Vec<Intent> = (0..20)
            .map(|n| Intent::Insert(Box::new(item(&format!("{round}-{n}"), "f", "asylum", n))))
            .collect();
        store.apply(&FeedId("f".into()), &items, None).unwrap();
        assert_eq!(store.item_count(), (round + 1) * 20);
    }
}

/// Two trees of one raw sled database in a temporary folder (kept alive by the first
/// value), for the tests of the vendored sled's added methods.
fn two_trees() -> (tempfile::TempDir, sled::Tree, sled::Tree) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
    (dir, a, b)
}

/// The vendored sled's `insert_blind` (docs/design-notes.md, "Vendored sled") stages a write
/// exactly as `insert` does: a later read in the same transaction sees it, it replaces an
/// existing value, and a later `remove` in the same transaction undoes it. The store's
/// commit path writes every item and index entry with it.
#[test]
fn blind_transactional_insert_writes_what_insert_writes() {
    use sled::Transactional;
    let (_dir, a, b) = two_trees();
    a.insert("kept", "old").unwrap();
    a.insert("gone", "old").unwrap();
    let r: Result<(), sled::transaction::TransactionError<()>> = (&a, &b).transaction(|(a, b)| {
        a.insert_blind("kept", "new")?;
        assert_eq!(a.get("kept")?.as_deref(), Some(&b"new"[..]));
        a.insert_blind("gone", "new")?;
        assert_eq!(a.remove("gone")?.as_deref(), Some(&b"new"[..]));
        b.insert_blind(&[1u8; 8], &[])?;
        Ok(())
    });
    r.unwrap();
    assert_eq!(a.get("kept").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(a.get("gone").unwrap(), None);
    assert_eq!(b.get([1u8; 8]).unwrap().as_deref(), Some(&[][..]));
}

/// The vendored sled's `get_unlocked` (docs/design-notes.md, "Vendored sled") does not wait
/// for a transaction that is applying its writes, where `get` does: a feed's dedup reads
/// then go on while another feed's batch commits. The transaction below holds sled's lock
/// until the reader has answered; with `get` in place of `get_unlocked` it times out.
#[test]
fn unlocked_read_does_not_wait_for_a_running_transaction() {
    use sled::Transactional;
    use std::sync::mpsc;
    use std::time::Duration;
    let (_dir, a, b) = two_trees();
    a.insert("k", "before").unwrap();
    let (started, wait_started) = mpsc::channel::<()>();
    let (answered, wait_answer) = mpsc::channel::<Option<sled::IVec>>();
    let reader = {
        let a = a.clone();
        std::thread::spawn(move || {
            wait_started.recv().unwrap();
            answered.send(a.get_unlocked("k").unwrap()).unwrap();
        })
    };
    let seen: Result<Option<sled::IVec>, sled::transaction::TransactionError<()>> = (&a, &b)
        .transaction(|(ta, tb)| {
            ta.insert_blind("k", "after")?;
            tb.insert_blind("other", "x")?;
            let _ = started.send(());
            Ok(wait_answer
                .recv_timeout(Duration::from_secs(10))
                .ok()
                .flatten())
        });
    reader.join().unwrap();
    // The reader answered while the transaction held the lock, with the value from before
    // (the transaction's writes are applied after its closure returns).
    assert_eq!(seen.unwrap().as_deref(), Some(&b"before"[..]));
    assert_eq!(a.get("k").unwrap().as_deref(), Some(&b"after"[..]));
}
