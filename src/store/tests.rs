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
    let db = sled::open(dir.path()).unwrap();
    let raw = db
        .open_tree(keys::ITEMS)
        .unwrap()
        .get(b"0001")
        .unwrap()
        .unwrap();
    assert_eq!(raw.first(), Some(&keys::VALUE_VERSION));
}

/// Writes `items` into a fresh store at `dir`, lets `age` turn it into an older layout, stamps
/// schema `version`, then reopens it (which migrates).
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
        store
            .meta
            .insert(keys::META_SCHEMA_VERSION, &version.to_be_bytes())
            .unwrap();
        store.flush().unwrap();
    }
    Store::wait_until_released(dir, std::time::Duration::from_secs(10)).unwrap();
    Store::open(dir).unwrap()
}

/// 2 → 3: fingerprints from the earlier function (and their band entries) are replaced by
/// ones recomputed from each item's title and content.
#[test]
fn migrates_schema_2_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<Item> = (0..300)
        .map(|n| item(&format!("{n:04}"), "f", "asylum", n))
        .collect();
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
    let items: Vec<Item> = (0..300)
        .map(|n| item(&format!("{n:04}"), "f", "asylum", n))
        .collect();
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
