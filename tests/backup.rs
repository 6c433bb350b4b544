//! Integration tests: backup and restore as docs/operations.md tells an operator to do them:
//! `newsrelay export` of a populated store, `newsrelay import` into a fresh one, and a cold copy
//! of the store folder after the daemon stopped.

use newsrelay::item::{FeedId, Item};
use newsrelay::store::{Scope, Store};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn newsrelay(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A config in `dir` over three bundled feeds (one story arrives through two of them), with
/// the bundled taxonomy beside it.
fn config_in(dir: &Path) -> PathBuf {
    super::bundled_taxonomy_into(dir);
    let cfg = dir.join("newsrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"db\"\n\
             [[feeds]]\nid = \"icmpd\"\nurl = \"file://{ROOT}/fixtures/icmpd/news-centre.rss\"\n\
             [[feeds]]\nid = \"partner\"\nurl = \"file://{ROOT}/fixtures/ingest/partner-news.xml\"\n\
             [[feeds]]\nid = \"archive\"\nurl = \"file://{ROOT}/fixtures/icmpd/news-2021.rss\"\n\
             programmes = [\"asylum\"]\n"
        ),
    )
    .unwrap();
    cfg
}

/// Every item, newest first, walking the whole time index.
fn all_items(store: &Store) -> Vec<Item> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.latest(&Scope::All, cursor.as_ref(), 100).unwrap();
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Everything a restore must bring back, read through the store's public reads.
fn assert_same_store(original: &Store, restored: &Store) {
    let items = all_items(original);
    assert!(
        items.len() >= 10,
        "too few items to mean much: {}",
        items.len()
    );
    assert_eq!(restored.item_count(), original.item_count());
    for item in &items {
        let back = restored
            .get(&item.id)
            .unwrap()
            .unwrap_or_else(|| panic!("item {} missing after restore", item.id));
        assert_eq!(&back, item, "item {} differs after restore", item.id);
    }
    assert_eq!(all_items(restored), items, "time index order differs");
    // Labels: the same items under every taxonomy id, in the same order.
    let labels = original.counts_per_label().unwrap();
    assert!(labels.len() >= 3, "{labels:?}");
    assert_eq!(restored.counts_per_label().unwrap(), labels);
    for label in labels.keys() {
        let scope = Scope::Label(label.clone());
        let ids = |s: &Store| -> Vec<_> {
            s.latest(&scope, None, 1000)
                .unwrap()
                .items
                .into_iter()
                .map(|i| i.id)
                .collect()
        };
        assert_eq!(ids(restored), ids(original), "label {label}");
    }
    assert_eq!(
        restored.items_per_feed().unwrap(),
        original.items_per_feed().unwrap()
    );
    assert_eq!(
        restored.feed_states().unwrap(),
        original.feed_states().unwrap()
    );
    let integrity = restored.verify().unwrap();
    assert!(integrity.problems.is_empty(), "{:?}", integrity.problems);
}

#[test]
fn export_then_import_into_a_fresh_store_restores_everything() {
    let a = tempfile::tempdir().unwrap();
    let cfg_a = config_in(a.path());
    let fetched = newsrelay(&cfg_a, &["fetch"]);
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );

    // Purge one feed's items so the backup also carries tombstones.
    let archived: Vec<Item>;
    {
        let store = Store::open(&a.path().join("db")).unwrap();
        let merged = all_items(&store)
            .into_iter()
            .filter(|i| i.sources.len() > 1)
            .count();
        assert!(merged >= 1, "the partner story should merge with ICMPD's");
        archived = store
            .latest(&Scope::Feed(FeedId("archive".into())), None, 1000)
            .unwrap()
            .items;
        let purged = store
            .purge_expired(
                &FeedId("archive".into()),
                std::time::Duration::from_secs(86_400),
                chrono::Utc::now() + chrono::Duration::days(30),
            )
            .unwrap();
        assert!(purged >= 1 && purged == archived.len(), "{purged}");
        assert!(store.item_count() >= 10);
    }

    let dump = a.path().join("backup.jsonl");
    let exported = newsrelay(&cfg_a, &["export"]);
    assert!(exported.status.success());
    std::fs::write(&dump, &exported.stdout).unwrap();
    let said = String::from_utf8_lossy(&exported.stderr);
    assert!(said.contains("tombstones"), "{said}");

    let b = tempfile::tempdir().unwrap();
    let cfg_b = config_in(b.path());
    let imported = newsrelay(&cfg_b, &["import", dump.to_str().unwrap()]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );

    let original = Store::open(&a.path().join("db")).unwrap();
    let restored = Store::open(&b.path().join("db")).unwrap();
    assert_same_store(&original, &restored);
    for item in &archived {
        assert!(
            restored
                .is_tombstoned(&item.id, item.link.as_deref())
                .unwrap(),
            "tombstone of {} lost",
            item.id
        );
    }
    drop(restored);

    // Purged items stay purged: fetching the archive feed into the restored store adds
    // nothing back.
    let refetch = newsrelay(&cfg_b, &["fetch", "--feed", "archive"]);
    assert!(refetch.status.success());
    let restored = Store::open(&b.path().join("db")).unwrap();
    assert_eq!(restored.item_count(), original.item_count());
    drop(restored);

    // A second import is a no-op (idempotent restore).
    let again = newsrelay(&cfg_b, &["import", dump.to_str().unwrap()]);
    assert!(again.status.success());
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("imported 0 items"), "{said}");

    // Exporting the restored store gives the same records.
    let re_export = newsrelay(&cfg_b, &["export"]);
    let mut first: Vec<&[u8]> = exported.stdout.split(|b| *b == b'\n').collect();
    let mut second: Vec<&[u8]> = re_export.stdout.split(|b| *b == b'\n').collect();
    first.sort();
    second.sort();
    assert_eq!(first, second, "export of the restored store differs");
}

#[test]
fn cold_copy_of_the_stopped_store_folder_opens_with_everything() {
    let a = tempfile::tempdir().unwrap();
    let cfg = config_in(a.path());
    assert!(newsrelay(&cfg, &["fetch"]).status.success());
    // The process that wrote it has exited (as after `systemctl stop newsrelay`): copy the
    // folder as `cp -a` does.
    let b = tempfile::tempdir().unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(a.path().join("db"))
        .arg(b.path().join("db"))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let original = Store::open(&a.path().join("db")).unwrap();
    let copy = Store::open(&b.path().join("db")).unwrap();
    assert_same_store(&original, &copy);
}
