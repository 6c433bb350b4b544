//! Integration tests: ingest into the real sled store in temporary folders (dedup across
//! fetches and feeds, guid fallbacks, retention and tombstones, reopening, relabelling,
//! export/import) and a crash-safety harness that SIGKILLs the `newsrelay` binary mid-write.

use chrono::{DateTime, Duration, TimeZone, Utc};
use newsrelay::config::FeedSettings;
use newsrelay::ingest::{ingest_document, ingest_parsed, IngestReport};
use newsrelay::item::{FeedId, IdBasis, Item, ItemId, Label, Labels};
use newsrelay::parse::{Entry, ParsedFeed};
use newsrelay::store::{LabelFilter, RelabelSelection, Scope, Store};
use std::io::{BufRead, Write};

const STORIES: &[(&str, &str)] = &[
    (
        "ICMPD supports asylum capacities in Turkey",
        "The ASCAP project supports the institutional capacity of DGMM in the area of asylum, with training on refugee status determination, country of origin information and an interpreters' pool.",
    ),
    (
        "Budapest Process ministers meet in Istanbul",
        "Ministers and senior officials of the Budapest Process adopted a declaration on migration partnerships along the Silk Routes, with a call for action on return and reintegration.",
    ),
    (
        "New border management training centre opens in Skopje",
        "A training centre for border police opened in Skopje with support from ICMPD and the European Union, strengthening integrated border management in the Western Balkans.",
    ),
    (
        "MIEUX+ supports labour migration policy in Ghana",
        "Through the MIEUX+ initiative, peer-to-peer experts from EU Member States helped Ghanaian institutions draft a national labour migration policy and a diaspora engagement plan.",
    ),
    (
        "Rabat Process thematic meeting on legal pathways",
        "Partners of the Rabat Process met in Dakar to exchange practices on legal pathways, skills partnerships and the recognition of qualifications between Europe and West Africa.",
    ),
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn feed(id: &str) -> FeedSettings {
    FeedSettings {
        id: id.into(),
        url: format!("https://{id}.example.org/rss/"),
        title: None,
        interval: std::time::Duration::from_secs(1800),
        programmes: vec![],
        retention: None,
    }
}

fn entry(n: usize, guid: Option<String>, link_host: &str) -> Entry {
    let (title, text) = STORIES[n % STORIES.len()];
    Entry {
        id: guid,
        title: Some(title.into()),
        link: Some(format!(
            "https://{link_host}//news-centre/story-{n}/?utm_source=rss&utm_medium=feed"
        )),
        summary_html: Some(format!("<p>{text}</p>")),
        published: Some(t0() - Duration::hours(n as i64)),
        ..Default::default()
    }
}

fn document(entries: Vec<Entry>) -> ParsedFeed {
    ParsedFeed {
        items: entries,
        ..Default::default()
    }
}

fn guid_feed(count: usize) -> ParsedFeed {
    document(
        (0..count)
            .map(|n| entry(n, Some(format!("urn:icmpd:{n}")), "www.icmpd.org"))
            .collect(),
    )
}

/// A stand-in classifier: labels by words in the title, as the real one will by phrases.
fn classify(item: &Item) -> Labels {
    let mut labels = Labels {
        taxonomy_version: 1,
        ..Default::default()
    };
    let t = item.title.to_lowercase();
    for (word, id) in [
        ("asylum", "asylum"),
        ("border", "border-management-visa"),
        ("labour", "legal-migration-integration"),
        ("legal", "legal-migration-integration"),
    ] {
        if t.contains(word) && !labels.has(id) {
            labels.programmes.push(Label {
                id: id.into(),
                score: 0.9,
                why: vec![word.into()],
            });
        }
    }
    for (word, id) in [
        ("budapest", "budapest-process"),
        ("mieux", "mieux"),
        ("rabat", "rabat-process"),
    ] {
        if t.contains(word) {
            labels.initiatives.push(Label {
                id: id.into(),
                score: 0.9,
                why: vec![word.into()],
            });
        }
    }
    labels
}

fn ingest(store: &Store, f: &FeedSettings, doc: &ParsedFeed, now: DateTime<Utc>) -> IngestReport {
    let r = ingest_parsed(store, f, doc, Some(&f.url), &classify, now);
    assert!(r.is_ok(), "{r}");
    r
}

#[test]
fn same_feed_twice_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let f = feed("icmpd-news");
    let first = ingest(&store, &f, &guid_feed(5), t0());
    assert_eq!((first.inserted, first.skipped), (5, 0));
    let second = ingest(&store, &f, &guid_feed(5), t0() + Duration::minutes(30));
    assert_eq!(
        (
            second.inserted,
            second.updated,
            second.merged,
            second.skipped
        ),
        (0, 0, 0, 5)
    );
    assert_eq!(store.item_count(), 5);
    let state = store
        .feed_state(&FeedId("icmpd-news".into()))
        .unwrap()
        .unwrap();
    assert_eq!(state.items_total, 5);
    assert_eq!(state.id_basis, Some(IdBasis::Guid));
    // Links were canonicalised on the way in.
    let page = store.latest(&Scope::All, None, 10).unwrap();
    assert!(page
        .items
        .iter()
        .all(|i| i.link.as_deref().is_some_and(|l| l
            .starts_with("https://www.icmpd.org/news-centre/story-")
            && !l.contains("utm_"))));
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn editing_one_item_gives_one_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let f = feed("icmpd-news");
    ingest(&store, &f, &guid_feed(5), t0());
    let mut edited = guid_feed(5);
    edited.items[2].title =
        Some("New border management training centre opens in Skopje and Tirana".into());
    let r = ingest(&store, &f, &edited, t0() + Duration::hours(1));
    assert_eq!((r.inserted, r.updated, r.skipped), (0, 1, 4));
    assert_eq!(store.item_count(), 5);
    let page = store
        .latest(&Scope::Feed(FeedId("icmpd-news".into())), None, 10)
        .unwrap();
    let changed: Vec<&Item> = page.items.iter().filter(|i| i.revision == 1).collect();
    assert_eq!(changed.len(), 1);
    assert!(changed[0].title.ends_with("and Tirana"));
    assert_eq!(changed[0].first_seen, t0(), "an update keeps first_seen");
    // The same edit again is unchanged.
    let again = ingest(&store, &f, &edited, t0() + Duration::hours(2));
    assert_eq!((again.updated, again.skipped), (0, 5));
}

#[test]
fn items_that_change_on_every_fetch_stop_at_the_revision_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let f = feed("noisy");
    let mut updates = 0;
    for round in 0..40 {
        let mut doc = guid_feed(1);
        doc.items[0].summary_html = Some(format!("<p>Visitor counter: {round}</p>"));
        let r = ingest(&store, &f, &doc, t0() + Duration::minutes(round));
        updates += r.updated;
    }
    assert_eq!(updates as u32, newsrelay::dedup::MAX_REVISIONS);
    assert_eq!(store.item_count(), 1);
}

#[test]
fn one_story_in_two_feeds_is_one_item_with_two_sources() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = feed("icmpd-news");
    let b = feed("partner-news");
    ingest(&store, &a, &guid_feed(3), t0());
    // Same links (different tracking parameters), different guids.
    let mut same_links = guid_feed(3);
    for (n, e) in same_links.items.iter_mut().enumerate() {
        e.id = Some(format!("partner-{n}"));
        e.link = Some(format!(
            "HTTPS://WWW.ICMPD.ORG/news-centre/story-{n}/?fbclid=abc"
        ));
    }
    let r = ingest(&store, &b, &same_links, t0() + Duration::hours(1));
    assert_eq!((r.inserted, r.merged), (0, 3));
    // Same story, its own link and guid, text lightly edited: caught by the fingerprint.
    let mut near = document(vec![entry(
        3,
        Some("partner-x".into()),
        "partner.example.org",
    )]);
    let own = document(vec![entry(3, Some("urn:icmpd:3".into()), "www.icmpd.org")]);
    ingest(&store, &a, &own, t0());
    near.items[0].summary_html = Some(format!("<div>{}</div>", STORIES[3].1));
    let r = ingest(&store, &b, &near, t0() + Duration::hours(1));
    assert_eq!((r.inserted, r.merged), (0, 1), "{r}");
    assert_eq!(store.item_count(), 4);
    let by_b = store
        .latest(&Scope::Feed(FeedId("partner-news".into())), None, 10)
        .unwrap();
    assert_eq!(
        by_b.items.len(),
        4,
        "merged items are listed under the second feed too"
    );
    for item in &by_b.items {
        let feeds: Vec<&str> = item.sources.iter().map(|s| s.feed.0.as_str()).collect();
        assert_eq!(feeds, ["icmpd-news", "partner-news"]);
    }
    // A different story in the second feed stays separate.
    let other = document(vec![entry(
        4,
        Some("partner-y".into()),
        "partner.example.org",
    )]);
    let r = ingest(&store, &b, &other, t0() + Duration::hours(2));
    assert_eq!((r.inserted, r.merged), (1, 0));
    // Re-fetching the second feed adds nothing.
    let r = ingest(&store, &b, &same_links, t0() + Duration::hours(3));
    assert_eq!((r.inserted, r.merged, r.updated), (0, 0, 0));
    assert!(store.verify().unwrap().problems.is_empty());
}

/// The same, with the two feeds ingested at the same moment from two threads (as the fetch
/// cycle's two parse-and-store slots do): dedup and staging of one feed must not interleave
/// with the other's, or both insert the story. Repeated on fresh stores to meet the race.
#[test]
fn one_story_in_two_feeds_ingested_at_once_is_one_item() {
    let a = feed("icmpd-news");
    let b = feed("partner-news");
    let first = guid_feed(20);
    let mut same_links = guid_feed(20);
    for (n, e) in same_links.items.iter_mut().enumerate() {
        e.id = Some(format!("partner-{n}"));
        e.link = Some(format!(
            "HTTPS://WWW.ICMPD.ORG/news-centre/story-{n}/?fbclid=abc"
        ));
    }
    for round in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let reports = std::thread::scope(|scope| {
            let one = scope.spawn(|| ingest(&store, &a, &first, t0()));
            let two = scope.spawn(|| ingest(&store, &b, &same_links, t0()));
            [one.join().unwrap(), two.join().unwrap()]
        });
        let inserted: usize = reports.iter().map(|r| r.inserted).sum();
        let merged: usize = reports.iter().map(|r| r.merged).sum();
        assert_eq!((inserted, merged), (20, 20), "round {round}: {reports:?}");
        assert_eq!(store.item_count(), 20, "round {round}");
    }
}

#[test]
fn a_feed_that_flips_guids_falls_back_to_links() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let f = feed("flipper");
    let fetch = |round: usize| {
        document(
            (0..4)
                .map(|n| entry(n, Some(format!("session-{round}-{n}")), "www.icmpd.org"))
                .collect(),
        )
    };
    let first = ingest(&store, &f, &fetch(0), t0());
    assert_eq!(first.inserted, 4);
    for round in 1..4 {
        let r = ingest(
            &store,
            &f,
            &fetch(round),
            t0() + Duration::hours(round as i64),
        );
        assert_eq!((r.inserted, r.updated), (0, 0), "round {round}: {r}");
        assert_eq!(r.id_basis, Some(IdBasis::Link));
    }
    let state = store
        .feed_state(&FeedId("flipper".into()))
        .unwrap()
        .unwrap();
    assert_eq!(state.id_basis, Some(IdBasis::Link));
    assert_eq!(store.item_count(), 4);
    // A genuinely new item afterwards is stored under a link-based id.
    let mut more = fetch(9);
    more.items
        .push(entry(7, Some("session-9-7".into()), "www.icmpd.org"));
    let r = ingest(&store, &f, &more, t0() + Duration::hours(9));
    assert_eq!(r.inserted, 1);
    let newest = store.latest(&Scope::All, None, 1).unwrap();
    assert_eq!(newest.items[0].id_basis, IdBasis::Link);
}

#[test]
fn repeated_or_missing_guids_fall_back_per_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let repeated = document(
        (0..3)
            .map(|n| entry(n, Some("same".into()), "www.icmpd.org"))
            .collect(),
    );
    let r = ingest(&store, &feed("repeats"), &repeated, t0());
    assert_eq!((r.inserted, r.id_basis), (3, Some(IdBasis::Link)));
    let mut bare = document((0..3).map(|n| entry(n, None, "x.org")).collect());
    for e in &mut bare.items {
        e.link = None;
        // Other words than the first feed's stories, so nothing merges across feeds.
        e.summary_html = Some(format!(
            "<p>Bulletin without links or guids, edition {}.</p>",
            e.title.as_deref().unwrap_or("")
        ));
    }
    let r = ingest(&store, &feed("bare"), &bare, t0());
    assert_eq!((r.inserted, r.id_basis), (3, Some(IdBasis::TitleDate)));
    let r = ingest(&store, &feed("bare"), &bare, t0() + Duration::hours(1));
    assert_eq!((r.inserted, r.skipped), (0, 3), "title+date ids are stable");
    assert_eq!(
        store
            .feed_state(&FeedId("bare".into()))
            .unwrap()
            .unwrap()
            .id_basis,
        Some(IdBasis::TitleDate)
    );
}

#[test]
fn retention_purges_and_tombstones_keep_items_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut f = feed("icmpd-news");
    ingest(&store, &f, &guid_feed(3), t0());
    let later_doc = document(vec![entry(4, Some("urn:icmpd:4".into()), "www.icmpd.org")]);
    ingest(&store, &f, &later_doc, t0() + Duration::days(20));
    f.retention = Some(std::time::Duration::from_secs(14 * 86400));
    let mut both = guid_feed(3);
    both.items.extend(later_doc.items.clone());
    let r = ingest(&store, &f, &both, t0() + Duration::days(21));
    assert_eq!(r.purged, 3, "{r}");
    assert_eq!(r.inserted, 0, "tombstoned items must not come back: {r}");
    assert_eq!(store.item_count(), 1);
    // Still out on the next fetch, and by link from another feed too.
    let r = ingest(&store, &f, &both, t0() + Duration::days(22));
    assert_eq!((r.inserted, r.purged), (0, 0));
    let mut relay = guid_feed(1);
    relay.items[0].id = Some("elsewhere".into());
    let r = ingest(&store, &feed("relay"), &relay, t0() + Duration::days(22));
    assert_eq!(r.inserted, 0, "{r}");
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let expected: Vec<Item>;
    {
        let store = Store::open(dir.path()).unwrap();
        ingest(&store, &feed("icmpd-news"), &guid_feed(5), t0());
        expected = store.latest(&Scope::All, None, 100).unwrap().items;
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.latest(&Scope::All, None, 100).unwrap().items,
        expected
    );
    let r = ingest(
        &store,
        &feed("icmpd-news"),
        &guid_feed(5),
        t0() + Duration::hours(1),
    );
    assert_eq!(r.inserted, 0);
}

#[test]
fn group_commit_store_keeps_everything_after_one_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap().with_group_commit();
        ingest(&store, &feed("a"), &guid_feed(4), t0());
        ingest(
            &store,
            &feed("b"),
            &document(vec![entry(4, Some("b4".into()), "b.org")]),
            t0(),
        );
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.item_count(), 5);
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn queries_page_filter_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let f = feed("icmpd-news");
    for n in 0..25 {
        let doc = document(vec![entry(n, Some(format!("g{n}")), "www.icmpd.org")]);
        ingest(&store, &f, &doc, t0() + Duration::days(n as i64));
    }
    // Paging newest first without gaps or repeats.
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = store.latest(&Scope::All, cursor.as_ref(), 7).unwrap();
        seen.extend(page.items.iter().map(|i| i.first_seen));
        match page.next {
            Some(c) => cursor = Some(c.to_string().parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
    let counts = store.counts_per_label().unwrap();
    assert_eq!(counts.get("asylum"), Some(&5));
    assert_eq!(counts.get("budapest-process"), Some(&5));
    let asylum = store
        .latest(&Scope::Label("asylum".into()), None, 100)
        .unwrap();
    assert_eq!(asylum.items.len(), 5);
    assert!(asylum.items.iter().all(|i| i.labels.has("asylum")));
    let filter = LabelFilter {
        programmes: vec!["legal-migration-integration".into()],
        initiatives: vec!["rabat-process".into()],
        ..Default::default()
    };
    let since = store
        .stored_since(t0() + Duration::days(10), &filter, 100)
        .unwrap();
    assert!(!since.is_empty());
    assert!(since
        .iter()
        .all(|i| i.first_seen > t0() + Duration::days(10) && i.labels.has("rabat-process")));
    let weeks = store
        .weekly_counts("asylum", 5, t0() + Duration::days(24))
        .unwrap();
    assert_eq!(weeks.len(), 5);
    assert_eq!(weeks.iter().map(|w| w.count).sum::<u64>(), 5);
    let one = &asylum.items[0];
    assert_eq!(store.get(&one.id).unwrap().as_ref(), Some(one));
    assert_eq!(store.get(&ItemId("nope".into())).unwrap(), None);
}

#[test]
fn relabel_updates_the_index_and_resumes_after_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let f = feed("icmpd-news");
    for chunk in 0..4 {
        let doc = document(
            (0..150)
                .map(|n| entry(n, Some(format!("c{chunk}-{n}")), &format!("h{chunk}.org")))
                .collect(),
        );
        ingest(&store, &f, &doc, t0() + Duration::minutes(chunk));
    }
    assert_eq!(store.item_count(), 600);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let everything_asylum = |_: &Item| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 300 {
            panic!("classifier failure mid-pass");
        }
        Labels {
            programmes: vec![Label {
                id: "asylum".into(),
                score: 1.0,
                why: vec![],
            }],
            ..Default::default()
        }
    };
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.relabel(&RelabelSelection::All, 2, &everything_asylum)
    }));
    assert!(interrupted.is_err());
    let r = store
        .relabel(&RelabelSelection::All, 2, &everything_asylum)
        .unwrap();
    assert!(r.resumed);
    assert!(
        r.examined < 600,
        "resumed pass re-read {} items",
        r.examined
    );
    assert_eq!(store.counts_per_label().unwrap().get("asylum"), Some(&600));
    assert_eq!(
        store.counts_per_label().unwrap().get("budapest-process"),
        None
    );
    // A finished pass at the same version changes nothing.
    let again = store
        .relabel(&RelabelSelection::All, 2, &everything_asylum)
        .unwrap();
    assert_eq!(again.changed, 0);
    let first = store.latest(&Scope::All, None, 1).unwrap().items.remove(0);
    let r = store
        .relabel(&RelabelSelection::Ids(vec![first.id.clone()]), 3, &|_| {
            Labels::default()
        })
        .unwrap();
    assert_eq!(r.changed, 1);
    assert_eq!(store.counts_per_label().unwrap().get("asylum"), Some(&599));
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn export_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(&dir.path().join("a")).unwrap();
    let mut f = feed("icmpd-news");
    ingest(&a, &f, &guid_feed(5), t0());
    ingest(
        &a,
        &feed("partner"),
        &guid_feed(2),
        t0() + Duration::hours(1),
    );
    f.retention = Some(std::time::Duration::from_secs(86400));
    ingest(&a, &f, &document(vec![]), t0() + Duration::days(3));
    ingest(
        &a,
        &feed("later"),
        &document(vec![entry(9, Some("z".into()), "z.org")]),
        t0() + Duration::days(3),
    );
    let mut first = Vec::new();
    let exported = a.export(&mut first).unwrap();
    assert_eq!(exported.items, 1);
    assert!(exported.tombstones >= 5);
    let b = Store::open(&dir.path().join("b")).unwrap();
    let mut progress = Vec::new();
    let r = b
        .import(&mut first.as_slice(), &mut |p| progress.push(p))
        .unwrap();
    assert_eq!(r.items_added, 1);
    assert_eq!(r.bad_lines, 0);
    assert!(!progress.is_empty());
    let mut second = Vec::new();
    b.export(&mut second).unwrap();
    assert_eq!(
        String::from_utf8(first.clone()).unwrap(),
        String::from_utf8(second).unwrap()
    );
    // Importing twice adds nothing; a bad line is reported with its number and skipped.
    let mut with_bad = first.clone();
    with_bad.extend_from_slice(b"{not json\n");
    let r = b.import(&mut with_bad.as_slice(), &mut |_| {}).unwrap();
    assert_eq!((r.items_added, r.items_present, r.bad_lines), (0, 1, 1));
    assert!(
        r.errors[0].starts_with(&format!("line {}:", r.lines)),
        "{:?}",
        r.errors
    );
    // Tombstones came along: the purged story stays out of the restored store.
    let r = ingest(
        &b,
        &feed("icmpd-news"),
        &guid_feed(5),
        t0() + Duration::days(4),
    );
    assert_eq!(r.inserted, 0);
}

#[test]
fn a_bad_document_becomes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let f = feed("broken");
    let r = ingest_document(
        &store,
        &f,
        b"\x00\x01 this is not a feed",
        None,
        None,
        &classify,
        t0(),
    );
    assert!(r.error.is_some());
    assert_eq!(r.inserted, 0);
    let state = store.feed_state(&FeedId("broken".into())).unwrap().unwrap();
    assert_eq!(state.error_count, 1);
    assert!(state.last_error.is_some());
}

// ---------------------------------------------------------------------------------------------
// Crash safety

/// Runs a writer process `rounds` times, killing it with SIGKILL at a bounded random point,
/// and after every kill calls `check` with the highest position any run reported durable.
/// `durable` reads such a position from one stdout line. Even rounds kill after a random delay
/// from spawn (startup and first batch included); odd rounds first wait (at most 60 s) for the
/// run's first durable line, then kill after a random delay, so progress is made however slow
/// the machine is. Any command that prints durable progress can drive it. Returns the highest
/// durable position seen.
fn kill_restart_harness(
    rounds: usize,
    max_delay: std::time::Duration,
    spawn: &dyn Fn() -> std::process::Command,
    durable: &(dyn Fn(&str) -> Option<u64> + Sync),
    check: &dyn Fn(u64, usize),
) -> u64 {
    let mut best = 0;
    let first = |l: &str| durable(l).is_some();
    kill_restart_rounds(
        rounds,
        max_delay,
        spawn,
        Stream::Stdout,
        Wait::FirstLine(&first),
        &mut |round| {
            if let Some(p) = round.lines.iter().filter_map(|l| durable(l)).max() {
                best = best.max(p);
            }
            check(best, round.index);
        },
    );
    best
}

/// Which output stream of the killed process the harness reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// What one killed run printed and when it was killed.
pub(crate) struct Round {
    pub index: usize,
    /// Every line the run printed on the chosen stream before it died.
    pub lines: Vec<String>,
    /// Milliseconds from spawn (or from the first durable line, on waiting rounds) to the kill.
    pub delay_ms: u64,
    /// The run had already exited by itself when the kill came.
    pub finished: bool,
}

/// When a round's random delay starts.
#[derive(Clone, Copy)]
pub(crate) enum Wait<'a> {
    /// At spawn.
    Spawn,
    /// Even rounds at spawn; odd rounds at the first line this accepts (at most 60 s).
    FirstLine(&'a (dyn Fn(&str) -> bool + Sync)),
    /// When this returns true for the round's index (polled every 0.2 ms, at most 60 s), so
    /// a kill can be aimed at a phase visible from outside (a file appearing).
    Until(&'a dyn Fn(usize) -> bool),
}

/// The general form of [`kill_restart_harness`]: reads `stream`, and hands every round's
/// lines to `check`; `wait` says when each round's random delay starts.
pub(crate) fn kill_restart_rounds(
    rounds: usize,
    max_delay: std::time::Duration,
    spawn: &dyn Fn() -> std::process::Command,
    stream: Stream,
    wait: Wait<'_>,
    check: &mut dyn FnMut(&Round),
) {
    let first_durable = match wait {
        Wait::FirstLine(f) => Some(f),
        _ => None,
    };
    use std::hash::BuildHasher;
    use std::process::Stdio;
    let random = std::collections::hash_map::RandomState::new();
    for round in 0..rounds {
        let mut command = spawn();
        match stream {
            Stream::Stdout => command.stdout(Stdio::piped()).stderr(Stdio::null()),
            Stream::Stderr => command.stdout(Stdio::null()).stderr(Stdio::piped()),
        };
        let mut child = command.spawn().expect("writer starts");
        let out: Box<dyn std::io::Read + Send> = match stream {
            Stream::Stdout => Box::new(child.stdout.take().expect("piped stdout")),
            Stream::Stderr => Box::new(child.stderr.take().expect("piped stderr")),
        };
        let (first_tx, got_first) = std::sync::mpsc::channel::<()>();
        let (lines, delay_ms, finished) = std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut lines = Vec::new();
                let mut signalled = false;
                for line in std::io::BufReader::new(out)
                    .lines()
                    .map_while(Result::ok)
                    .take(1_000_000)
                {
                    if !signalled && first_durable.is_some_and(|f| f(&line)) {
                        let _ = first_tx.send(());
                        signalled = true;
                    }
                    lines.push(line);
                }
                lines
            });
            match wait {
                Wait::FirstLine(_) if round % 2 == 1 => {
                    let _ = got_first.recv_timeout(std::time::Duration::from_secs(60));
                }
                Wait::Until(ready) => {
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                    while !ready(round)
                        && std::time::Instant::now() < deadline
                        && matches!(child.try_wait(), Ok(None))
                    {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                }
                _ => {}
            }
            let delay_us = random.hash_one(round) % (max_delay.as_micros() as u64).max(1);
            std::thread::sleep(std::time::Duration::from_micros(delay_us));
            let delay_ms = delay_us / 1000;
            let finished = matches!(child.try_wait(), Ok(Some(_)));
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
            (reader.join().expect("reader thread"), delay_ms, finished)
        });
        check(&Round {
            index: round,
            lines,
            delay_ms,
            finished,
        });
    }
}

pub(crate) fn generated_item(n: u64) -> Item {
    let (title, text) = STORIES[(n as usize) % STORIES.len()];
    let first_seen = t0() + Duration::seconds(n as i64);
    let mut labels = Labels {
        taxonomy_version: 1,
        ..Default::default()
    };
    labels.programmes.push(Label {
        id: [
            "asylum",
            "border-management-visa",
            "legal-migration-integration",
        ][(n % 3) as usize]
            .into(),
        score: 0.8,
        why: vec![],
    });
    Item {
        id: ItemId(format!("{n:032x}")),
        id_basis: IdBasis::Guid,
        feed: FeedId(format!("feed-{}", n % 7)),
        sources: vec![newsrelay::item::Source {
            feed: FeedId(format!("feed-{}", n % 7)),
            guid: Some(format!("g{n}")),
            link: None,
        }],
        link: Some(format!("https://www.icmpd.org/news-centre/generated-{n}")),
        title: format!("{title} ({n})"),
        summary_text: text.into(),
        content_html: format!("<p>{text}</p><p>{}</p>", "More context. ".repeat(20)),
        published: Some(first_seen),
        updated: None,
        first_seen,
        authors: vec![],
        categories: vec![],
        enclosures: vec![],
        content_hash: newsrelay::item::ContentHash(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        fingerprint: n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        revision: 0,
        labels,
    }
}

#[test]
fn crash_safety_sigkill_during_import() {
    const ITEMS: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("newsrelay.toml");
    std::fs::write(&config, "[store]\npath = \"db\"\n").unwrap();
    let data = dir.path().join("items.jsonl");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&data).unwrap());
        writeln!(
            w,
            r#"{{"kind":"header","format":"newsrelay-export","schema":2}}"#
        )
        .unwrap();
        for n in 0..ITEMS {
            let line = serde_json::json!({"kind": "item", "item": generated_item(n)});
            writeln!(w, "{line}").unwrap();
        }
    }
    let db = dir.path().join("db");
    let spawn = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_newsrelay"));
        c.arg("--config").arg(&config).arg("import").arg(&data);
        c
    };
    // "durable through line L, N items added": line 1 is the header, item n is on line n + 2.
    let durable = |line: &str| -> Option<u64> {
        line.strip_prefix("durable through line ")?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let check = |through_line: u64, round: usize| {
        let store =
            Store::open(&db).unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        let integrity = store.verify().unwrap();
        assert!(
            integrity.problems.is_empty(),
            "round {round}: {:?}",
            integrity.problems
        );
        for n in 0..through_line.saturating_sub(1).min(ITEMS) {
            assert!(
                store.get(&ItemId(format!("{n:032x}"))).unwrap().is_some(),
                "round {round}: item {n} was reported durable (through line {through_line}) but is missing"
            );
        }
    };
    let best = kill_restart_harness(
        24,
        std::time::Duration::from_millis(900),
        &spawn,
        &durable,
        &check,
    );
    assert!(
        best > 1,
        "no run reported any durable batch; the kill delays are too short"
    );
    // Finally let one run finish: everything is there exactly once.
    let out = spawn().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(&db).unwrap();
    assert_eq!(store.item_count() as u64, ITEMS);
    assert!(store.verify().unwrap().problems.is_empty());
    let mut exported = Vec::new();
    store.export(&mut exported).unwrap();
    let mut ids = std::collections::HashSet::new();
    for line in exported
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(br#"{"kind":"item""#))
    {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert!(
            ids.insert(v["item"]["id"].as_str().unwrap().to_string()),
            "duplicate item in export"
        );
    }
    assert_eq!(ids.len() as u64, ITEMS);
}

// ---------------------------------------------------------------------------------------------
// Near-duplicate threshold

#[derive(serde::Deserialize)]
struct Side {
    title: String,
    text: String,
}

#[derive(serde::Deserialize)]
struct Pair {
    kind: String,
    how: String,
    a: Side,
    b: Side,
}

/// Distances of every fixture pair: (kind, how, distance, headlines agree).
fn fixture_distances() -> Vec<(String, String, u32, bool)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/dedup/pairs.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let p: Pair = serde_json::from_str(l).unwrap();
            let d = newsrelay::normalize::hamming(
                newsrelay::normalize::simhash(&p.a.title, &p.a.text),
                newsrelay::normalize::simhash(&p.b.title, &p.b.text),
            );
            let agree = newsrelay::normalize::headlines_agree(&p.a.title, &p.b.title);
            (p.kind, p.how, d, agree)
        })
        .collect()
}

/// The threshold in `dedup` merges no distinct stories of the fixtures; prints the figures
/// recorded in docs/dedup.md (`cargo test --test tests threshold -- --nocapture`).
#[test]
fn near_duplicate_threshold_on_fixture_pairs() {
    let all = fixture_distances();
    let threshold = newsrelay::dedup::NEAR_DUPLICATE_MAX_DISTANCE;
    let min_different = all
        .iter()
        .filter(|p| p.0 == "different")
        .map(|p| p.2)
        .min()
        .unwrap();
    let mut hows: Vec<&str> = all.iter().map(|p| p.1.as_str()).collect();
    hows.sort();
    hows.dedup();
    for how in hows {
        let mut d: Vec<u32> = all.iter().filter(|p| p.1 == how).map(|p| p.2).collect();
        d.sort();
        let caught = d.iter().filter(|x| **x <= threshold).count();
        eprintln!(
            "{how:28} n={:3} min={:2} median={:2} max={:2} within threshold {threshold}: {caught}",
            d.len(),
            d[0],
            d[d.len() / 2],
            d[d.len() - 1]
        );
    }
    let same: Vec<u32> = all.iter().filter(|p| p.0 == "same").map(|p| p.2).collect();
    let different = all.len() - same.len();
    for t in 0..=10u32 {
        let caught = same.iter().filter(|d| **d <= t).count();
        let wrong = all
            .iter()
            .filter(|p| p.0 == "different" && p.2 <= t)
            .count();
        eprintln!("threshold {t:2}: same-story pairs merged {caught}/{} ({:.1}%), distinct pairs merged {wrong}/{different}", same.len(), caught as f64 * 100.0 / same.len() as f64);
    }
    let recall = same.iter().filter(|d| **d <= threshold).count() as f64 / same.len() as f64;
    // The headline rule keeps every same-story pair (a prefix or case change only).
    let same_headlines = all.iter().filter(|p| p.0 == "same" && p.3).count();
    let distinct_headlines = all.iter().filter(|p| p.0 == "different" && p.3).count();
    eprintln!(
        "headlines agree: {same_headlines}/{} same-story pairs, {distinct_headlines}/{different} distinct pairs",
        same.len()
    );
    assert_eq!(
        same_headlines,
        same.len(),
        "the headline rule would split a same-story pair"
    );
    eprintln!(
        "closest different-story pair: {min_different}; same-story recall at {threshold}: {:.1}%",
        recall * 100.0
    );
    // No distinct story merged, with at least 8 bits to spare: the fixtures are a few hundred
    // pairs, a store holds millions, so the closest distinct pair must sit well clear.
    assert!(
        min_different > threshold + 8,
        "a distinct-story pair is {min_different} bits apart, too close to {threshold}"
    );
    // The fixture paragraphs are short (~40 words), where a footer or a cut weighs most.
    assert!(
        recall >= 0.85,
        "threshold {threshold} catches only {:.0}% of same-story pairs",
        recall * 100.0
    );
}

// ---------------------------------------------------------------------------------------------
// Real documents through the real parser

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/fixtures/ingest/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn icmpd_feed_without_guids_ingests_by_canonical_link() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let icmpd = FeedSettings {
        url: "https://www.icmpd.org/news-centre/rss/".into(),
        programmes: vec!["migration-development".into()],
        ..feed("icmpd-news")
    };
    let body = fixture("icmpd-news.xml");
    let r = ingest_document(
        &store,
        &icmpd,
        &body,
        None,
        Some("application/rss+xml"),
        &classify,
        t0(),
    );
    assert!(r.is_ok(), "{r}");
    assert_eq!(
        (r.entries, r.inserted, r.id_basis),
        (3, 3, Some(IdBasis::Link))
    );
    let items = store
        .latest(&Scope::Feed(FeedId("icmpd-news".into())), None, 10)
        .unwrap()
        .items;
    for i in &items {
        let link = i.link.as_deref().unwrap();
        assert!(
            link.starts_with("https://www.icmpd.org/news-centre/news-detail/"),
            "{link}"
        );
        assert!(
            i.labels.has("migration-development"),
            "feed default programme"
        );
        assert!(!i.title.is_empty() && !i.summary_text.contains('<'));
    }
    let again = ingest_document(
        &store,
        &icmpd,
        &body,
        None,
        Some("application/rss+xml"),
        &classify,
        t0() + Duration::hours(1),
    );
    assert_eq!(
        (again.inserted, again.updated, again.skipped),
        (0, 0, 3),
        "{again}"
    );
    // A partner's Atom feed republishing one story with tracking parameters merges into it.
    let partner = feed("partner-news");
    let r = ingest_document(
        &store,
        &partner,
        &fixture("partner-news.xml"),
        None,
        None,
        &classify,
        t0() + Duration::hours(2),
    );
    assert_eq!((r.entries, r.inserted, r.merged), (2, 1, 1), "{r}");
    assert_eq!(store.item_count(), 4);
    assert!(store.verify().unwrap().problems.is_empty());
}
