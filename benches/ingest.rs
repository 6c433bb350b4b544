//! Ingest throughput over the shared corpus, in items per second, on one thread.
//!
//! Every corpus file is one feed. Measured in the same process, on the same documents:
//! - `parse+normalize`: parse and normalise only (no store): the comparison baseline;
//! - `ingest (flush per feed)`: parse → normalise → dedup → store into a fresh sled store, one
//!   transaction and one flush per feed, exactly what `ingest_document` does;
//! - `ingest (one flush total)`: the same into a group-commit store, flushed once at the end
//!   (a fetch cycle that reports after one flush), to show the per-feed fsync's share;
//! - `ingest (flush per 32 feeds)`: flushed after every 32 documents, as the daemon's group
//!   commit shares one flush among the feeds of its window stored at the same time;
//! - `re-ingest (unchanged)`: the same documents again into the filled store (every item is
//!   looked up and skipped), the steady state of a fetch cycle.
//!
//! Before those, `write path only`: the store's writes alone for the same items (item, time,
//! feed, URL index, feed state), one transaction per document, in schema 3's layout (four
//! fingerprint band entries per item in a ninth tree) and schema 4's (the fingerprint in the
//! `item_time` value, the near-duplicate index in memory).
//!
//! Each timed store run starts after `sync(2)` has written out the machine's dirty pages; the
//! one-flush and per-32-feeds lines are the best of 5, the others of 3.
//!
//! Prints items/s for each and the ratios, then runs the criterion groups.
//! `cargo bench --bench ingest`

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use newsrelay::config::FeedSettings;
use newsrelay::ingest::ingest_document;
use newsrelay::item::{FeedId, Labels};
use newsrelay::normalize::normalize_feed;
use newsrelay::parse::{parse_feed, FeedInput};
use newsrelay::store::Store;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

/// The corpus folder: `$NEWSRELAY_CORPUS`, else `../shared/corpus` beside the checkout, else
/// `../../shared/corpus` (a worktree one level deeper).
fn corpus_root() -> PathBuf {
    if let Some(p) = std::env::var_os("NEWSRELAY_CORPUS") {
        return PathBuf::from(p);
    }
    let beside = PathBuf::from(CORPUS);
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
}

struct Doc {
    feed: FeedSettings,
    body: Vec<u8>,
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(root, &p, out);
        } else if p.parent() != Some(root) {
            out.push(p);
        }
    }
}

fn corpus() -> Vec<Doc> {
    let root = corpus_root();
    let mut paths = Vec::new();
    collect(&root, &root, &mut paths);
    assert!(
        !paths.is_empty(),
        "no corpus files under {}",
        root.display()
    );
    paths
        .iter()
        .enumerate()
        .filter_map(|(n, p)| {
            let body = std::fs::read(p).ok()?;
            Some(Doc {
                feed: FeedSettings {
                    id: format!("corpus-{n}"),
                    url: format!("http://corpus.example.org/{n}/feed.xml"),
                    title: None,
                    interval: Duration::from_secs(1800),
                    programmes: vec![],
                    retention: None,
                },
                body,
            })
        })
        .collect()
}

/// CPU time of the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Writes out every dirty page of the machine before a timed run, so that the writeback of
/// the runs before it (the per-feed line alone makes thousands of flushes) is not charged to
/// this one's final flush: without it, the one-flush line measured after the per-feed line
/// ranged 13,000–20,000 items/s on the same build.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Feeds per flush in the group-commit line: a fetch cycle's window of feeds in flight
/// (twice the default concurrency of 16) shares its flushes the same way.
const GROUP: usize = 32;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn no_labels(_: &newsrelay::item::Item) -> Labels {
    Labels::default()
}

/// Parse and normalise every document; returns the number of items.
fn parse_normalize(docs: &[Doc]) -> usize {
    let mut items = 0;
    for d in docs {
        let input = FeedInput {
            body: &d.body,
            url: Some(&d.feed.url),
            content_type: None,
            headers: &[],
            limits: Default::default(),
        };
        if let Ok(parsed) = parse_feed(&input) {
            let n = normalize_feed(
                &parsed,
                &FeedId(d.feed.id.clone()),
                Some(&d.feed.url),
                None,
                now(),
            );
            items += black_box(n.items).len();
        }
    }
    items
}

/// The whole pipeline into `store`; returns (entries, inserted).
fn ingest_all(store: &Store, docs: &[Doc]) -> (usize, usize) {
    let (mut entries, mut inserted) = (0, 0);
    for d in docs {
        let r = ingest_document(store, &d.feed, &d.body, None, None, &no_labels, now());
        entries += r.entries;
        inserted += r.inserted + r.merged;
    }
    (entries, inserted)
}

fn per_second(items: usize, t: Duration) -> f64 {
    items as f64 / t.as_secs_f64()
}

/// Best of `reps` timings of `f` (less noise on a shared machine).
fn best_of<T>(reps: usize, mut f: impl FnMut() -> (T, Duration)) -> (T, Duration) {
    let mut best: Option<(T, Duration)> = None;
    for _ in 0..reps {
        let (v, t) = f();
        if best.as_ref().is_none_or(|(_, b)| t < *b) {
            best = Some((v, t));
        }
    }
    best.expect("reps > 0")
}

fn report(docs: &[Doc]) {
    let bytes: usize = docs.iter().map(|d| d.body.len()).sum();
    let (items, t_parse) = best_of(3, || {
        let s = Instant::now();
        let n = parse_normalize(docs);
        (n, s.elapsed())
    });
    let ((entries, inserted, t_reingest), t_ingest) = best_of(3, || {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store opens");
        settle();
        let s = Instant::now();
        let (_, inserted) = ingest_all(&store, docs);
        let t = s.elapsed();
        settle();
        let s = Instant::now();
        let (entries, _) = ingest_all(&store, docs);
        ((entries, inserted, s.elapsed()), t)
    });
    let (_, t_group) = best_of(5, || {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path())
            .expect("store opens")
            .with_group_commit();
        settle();
        let s = Instant::now();
        let r = ingest_all(&store, docs);
        store.flush().expect("flush");
        (r, s.elapsed())
    });
    let (_, t_batch) = best_of(5, || {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path())
            .expect("store opens")
            .with_group_commit();
        settle();
        let s = Instant::now();
        let mut r = (0, 0);
        for chunk in docs.chunks(GROUP) {
            let (e, i) = ingest_all(&store, chunk);
            store.flush().expect("flush");
            r = (r.0 + e, r.1 + i);
        }
        (r, s.elapsed())
    });
    println!(
        "corpus: {} documents, {:.1} MB, {entries} entries ({items} normalised), {inserted} stored as new or merged",
        docs.len(),
        bytes as f64 / 1e6
    );
    let base = per_second(items, t_parse);
    let full = per_second(entries, t_ingest);
    let again = per_second(entries, t_reingest);
    println!("parse+normalize           {t_parse:>10.2?}  {base:>10.0} items/s");
    println!(
        "ingest (flush per feed)   {t_ingest:>10.2?}  {full:>10.0} items/s  ({:.2}x the parse+normalize time; store share {:.0}%)",
        t_ingest.as_secs_f64() / t_parse.as_secs_f64(),
        100.0 * (1.0 - t_parse.as_secs_f64() / t_ingest.as_secs_f64())
    );
    println!(
        "ingest (one flush total)  {t_group:>10.2?}  {:>10.0} items/s  ({:.2}x the parse+normalize time; fsync share of per-feed ingest {:.0}%)",
        per_second(entries, t_group),
        t_group.as_secs_f64() / t_parse.as_secs_f64(),
        100.0 * (1.0 - t_group.as_secs_f64() / t_ingest.as_secs_f64())
    );
    println!(
        "ingest (flush per {GROUP} feeds)  {t_batch:>10.2?}  {:>10.0} items/s  ({:.2}x the parse+normalize time; the daemon's group commit)",
        per_second(entries, t_batch),
        t_batch.as_secs_f64() / t_parse.as_secs_f64(),
    );
    println!(
        "re-ingest (unchanged)     {t_reingest:>10.2?}  {again:>10.0} items/s  ({:.2}x the parse+normalize time)",
        t_reingest.as_secs_f64() / t_parse.as_secs_f64()
    );
}

/// The items of every document, normalised once (input of the write micro-benchmark).
fn normalised(docs: &[Doc]) -> Vec<(String, Vec<newsrelay::item::Item>)> {
    docs.iter()
        .filter_map(|d| {
            let input = FeedInput {
                body: &d.body,
                url: Some(&d.feed.url),
                content_type: None,
                headers: &[],
                limits: Default::default(),
            };
            let parsed = parse_feed(&input).ok()?;
            let n = normalize_feed(
                &parsed,
                &FeedId(d.feed.id.clone()),
                Some(&d.feed.url),
                None,
                now(),
            );
            Some((d.feed.id.clone(), n.items))
        })
        .collect()
}

/// One write: key space (tree number), key, value.
type Write = (usize, Vec<u8>, Vec<u8>);

/// The write pattern of one item: (key space, key, value) for the item and its index entries.
/// `band_entries`: schema 3's four fingerprint band entries in their own tree (with an empty
/// `item_time` value); otherwise schema 4's fingerprint in the `item_time` value.
/// `seq`: schema 5's layout, the item under the next sequence number (in key space 0) found
/// through an id → number entry (key space 5, written first).
fn item_writes(
    feed: &str,
    item: &newsrelay::item::Item,
    band_entries: bool,
    compressed: bool,
    seq: Option<&mut u64>,
) -> Vec<Write> {
    use newsrelay::store::keys;
    let id = item.id.0.as_str();
    let fp = item.fingerprint.to_be_bytes().to_vec();
    let value = if compressed {
        keys::encode_compressed_value(item, 4096)
    } else {
        keys::encode_value(item)
    };
    let mut w = match seq {
        Some(seq) => {
            *seq += 1;
            let n = seq.to_be_bytes().to_vec();
            vec![
                (5, id.as_bytes().to_vec(), n.clone()),
                (0, n, value.expect("encodes")),
            ]
        }
        None => vec![(0, id.as_bytes().to_vec(), value.expect("encodes"))],
    };
    w.extend([
        (
            1,
            keys::time_key(item.first_seen, id),
            if band_entries { vec![] } else { fp.clone() },
        ),
        (2, keys::scoped_time_key(feed, item.first_seen, id), vec![]),
    ]);
    if let Some(l) = &item.link {
        w.push((4, l.as_bytes().to_vec(), id.as_bytes().to_vec()));
    }
    if band_entries {
        for (band, value) in keys::fingerprint_bands(item.fingerprint) {
            let mut k = vec![band];
            k.extend_from_slice(&value.to_be_bytes());
            k.extend_from_slice(&keys::time_key(item.first_seen, id));
            w.push((5, k, fp.clone()));
        }
    }
    w
}

/// The writes of every document, one sled transaction per `per_tx` documents over the trees,
/// one flush at the end; returns the time taken.
/// `first`: the key space of each item's first write.
fn transaction_per_document(
    writes: &[Vec<Write>],
    trees: usize,
    per_tx: usize,
    first: usize,
) -> Duration {
    use sled::Transactional;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::open(dir.path()).expect("sled opens");
    let t: Vec<sled::Tree> = (0..9)
        .map(|t| db.open_tree(format!("t{t}")).expect("tree"))
        .collect();
    let s = Instant::now();
    for docs in writes.chunks(per_tx) {
        let run = |tx: &[&sled::transaction::TransactionalTree]| {
            let mut skip = false;
            for (space, k, v) in docs.iter().flatten() {
                // An item's first write (key space `first`) says whether it is stored
                // already; its other writes follow it. The feed state (6) is always written.
                if *space == first {
                    skip = tx[*space].get(k)?.is_some();
                } else if *space == 6 {
                    skip = false;
                }
                if skip {
                    continue;
                }
                // Schema 4 has no tree 5: its transaction spans 8 trees.
                let at = if trees == 8 && *space > 5 {
                    *space - 1
                } else {
                    *space
                };
                tx[at].insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
        };
        if trees == 9 {
            (
                &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], &t[7], &t[8],
            )
                .transaction(|(a, b, c, d, e, f, g, h, i)| run(&[a, b, c, d, e, f, g, h, i]))
                .expect("transaction");
        } else {
            (&t[0], &t[1], &t[2], &t[3], &t[4], &t[6], &t[7], &t[8])
                .transaction(|(a, b, c, d, e, g, h, i)| run(&[a, b, c, d, e, g, h, i]))
                .expect("transaction");
        }
    }
    db.flush().expect("flush");
    s.elapsed()
}

/// Micro-benchmark of the store's write path alone, same items, one flush at the end, one
/// transaction per feed document: schema 3 (four fingerprint band entries per item in a ninth
/// tree) against schema 4 (the fingerprint in the `item_time` value, eight trees).
fn write_paths(docs: &[Doc]) {
    let feeds = normalised(docs);
    let layout = |band_entries: bool, compressed: bool, seq: bool| -> Vec<Vec<Write>> {
        let mut n = 0u64;
        feeds
            .iter()
            .map(|(f, items)| {
                let mut w: Vec<_> = items
                    .iter()
                    .flat_map(|i| {
                        item_writes(f, i, band_entries, compressed, seq.then_some(&mut n))
                    })
                    .collect();
                w.push((6, f.as_bytes().to_vec(), b"state".to_vec()));
                w
            })
            .collect()
    };
    let (schema3, schema4, packed, schema5) = (
        layout(true, false, false),
        layout(false, false, false),
        layout(false, true, false),
        layout(false, true, true),
    );
    let bytes = |l: &[Vec<Write>]| -> usize {
        l.iter()
            .flatten()
            .filter(|w| w.0 == 0)
            .map(|w| w.2.len())
            .sum()
    };
    let n: usize = feeds.iter().map(|(_, i)| i.len()).sum();
    let (_, t3) = best_of(3, || ((), transaction_per_document(&schema3, 9, 1, 0)));
    let (_, t4) = best_of(3, || ((), transaction_per_document(&schema4, 8, 1, 0)));
    let (_, t4b) = best_of(3, || ((), transaction_per_document(&schema4, 8, BATCH, 0)));
    let (_, t4c) = best_of(3, || ((), transaction_per_document(&packed, 8, BATCH, 0)));
    let (_, t5) = best_of(3, || ((), transaction_per_document(&schema5, 9, BATCH, 5)));
    println!(
        "write path only ({n} items, {} documents, one transaction each, one flush at the end):",
        feeds.len()
    );
    println!(
        "  schema 3 (band entries, 9 trees)  {t3:>10.2?}  {:>10.0} items/s",
        per_second(n, t3)
    );
    println!(
        "  schema 4 (fingerprint in item_time, 8 trees) {t4:>10.2?}  {:>10.0} items/s  ({:.2}x schema 3)",
        per_second(n, t4),
        t3.as_secs_f64() / t4.as_secs_f64()
    );
    println!(
        "  schema 4, one transaction per {BATCH} documents (the store's write batch) {t4b:>10.2?}  {:>10.0} items/s  ({:.2}x one per document)",
        per_second(n, t4b),
        t4.as_secs_f64() / t4b.as_secs_f64()
    );
    println!(
        "  the same, item values LZ4-compressed ({:.1} MB, JSON {:.1} MB) {t4c:>10.2?}  {:>10.0} items/s  ({:.2}x uncompressed, {:.2}x schema 4 one per document)",
        bytes(&packed) as f64 / 1e6,
        bytes(&schema4) as f64 / 1e6,
        per_second(n, t4c),
        t4b.as_secs_f64() / t4c.as_secs_f64(),
        t4.as_secs_f64() / t4c.as_secs_f64()
    );
    println!(
        "  schema 5: the same, items under sequence numbers found through an id index {t5:>10.2?}  {:>10.0} items/s  ({:.2}x id-keyed, {:.2}x schema 4 one per document)",
        per_second(n, t5),
        t4c.as_secs_f64() / t5.as_secs_f64(),
        t4.as_secs_f64() / t5.as_secs_f64()
    );
}

/// Documents per transaction in the write-path lines: the store's batch size.
const BATCH: usize = 256;

fn benches(c: &mut Criterion) {
    let docs = corpus();
    // INGEST_PROFILE=1: only the one-flush ingest, ten times over (for perf);
    // INGEST_PROFILE_ROUNDS=N: N times (callgrind).
    if std::env::var_os("INGEST_PROFILE").is_some() {
        let rounds = std::env::var("INGEST_PROFILE_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(10);
        for _ in 0..rounds {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::open(dir.path())
                .expect("store opens")
                .with_group_commit();
            settle();
            let s = Instant::now();
            let cpu = thread_cpu_time();
            let (entries, _) = ingest_all(&store, &docs);
            let staged = s.elapsed();
            let staged_cpu = thread_cpu_time() - cpu;
            store.flush().expect("flush");
            println!(
                "one flush total: {:.0} items/s (staging {:.1?} with {:.1?} of this thread's CPU, the last commit and flush {:.1?}; {:.1} MB on disk)",
                per_second(entries, s.elapsed()),
                staged,
                staged_cpu,
                s.elapsed() - staged,
                newsrelay::store::disk_size(dir.path()) as f64 / 1e6
            );
        }
        return;
    }
    write_paths(&docs);
    report(&docs);
    let items = parse_normalize(&docs) as u64;
    let mut g = c.benchmark_group("ingest-corpus");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(items));
    g.bench_function("parse+normalize", |b| b.iter(|| parse_normalize(&docs)));
    g.bench_function("ingest (flush per feed)", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = Store::open(dir.path()).expect("store opens");
                (dir, store)
            },
            |(dir, store)| {
                ingest_all(&store, &docs);
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(ingest_benches, benches);

fn main() {
    ingest_benches();
    Criterion::default().configure_from_args().final_summary();
}
