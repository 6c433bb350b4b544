//! Classify stage throughput in items per second on one core, with the bundled taxonomy and
//! labelled set: phrase rules alone beside rules + model (the shipped classifier), measured in
//! the same run, and the ratio printed.
//!
//! Items are the labelled set's titles and summaries, each given a full text of about 2 KB
//! (other items' summaries), so the rules and the model see news-sized input.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use newsrelay::classify::{load_labelled, Classifier, ItemText, Taxonomy};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Item {
    title: String,
    summary: String,
    content: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn items() -> Vec<Item> {
    let set = load_labelled(&[root().join("fixtures/labelled")]).expect("labelled set");
    let n = set.items.len();
    (0..n)
        .filter_map(|i| {
            let it = set.items.get(i)?;
            let mut content = String::new();
            let mut j = i + 1;
            while content.len() < 2000 {
                if let Some(o) = set.items.get(j % n) {
                    content.push_str(&o.summary);
                    content.push(' ');
                }
                j += 1;
            }
            Some(Item {
                title: it.title.clone(),
                summary: it.summary.clone(),
                content,
            })
        })
        .collect()
}

fn run_all(c: &Classifier, items: &[Item]) -> usize {
    let mut labels = 0;
    for it in items {
        let text = ItemText {
            title: &it.title,
            summary: &it.summary,
            content_text: &it.content,
            link: None,
        };
        labels += black_box(c.classify(black_box(&text), &[]))
            .programmes
            .len();
    }
    labels
}

/// CPU time this thread has spent running, from /proc/thread-self/schedstat (Linux), so the
/// figure means "on one core" even when other processes share the machine.
fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Items per second of CPU time (wall time when CPU time is unavailable), over at least
/// `min` of wall time.
fn items_per_second(c: &Classifier, items: &[Item], min: Duration) -> (f64, &'static str) {
    let start = Instant::now();
    let cpu_start = thread_cpu_time();
    let mut done = 0usize;
    while start.elapsed() < min {
        run_all(c, items);
        done += items.len();
    }
    let wall = start.elapsed();
    match (cpu_start, thread_cpu_time()) {
        (Some(a), Some(b)) if b > a => (done as f64 / (b - a).as_secs_f64(), "CPU"),
        _ => (done as f64 / wall.as_secs_f64(), "wall"),
    }
}

fn bench(cr: &mut Criterion) {
    let items = items();
    let path = root().join("config/programmes.toml");
    let shipped = Classifier::from_taxonomy_file(&path).expect("bundled classifier");
    let rules_only = Classifier::new(Taxonomy::load(&path).expect("taxonomy"), &[]);
    let avg_bytes = items
        .iter()
        .map(|i| i.title.len() + i.summary.len() + i.content.len())
        .sum::<usize>()
        / items.len().max(1);

    let mut g = cr.benchmark_group("classify");
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("rules_only", |b| b.iter(|| run_all(&rules_only, &items)));
    g.bench_function("rules_and_model", |b| b.iter(|| run_all(&shipped, &items)));
    g.finish();

    let train_start = Instant::now();
    let trained = Classifier::from_taxonomy_file(&path).expect("bundled classifier");
    let train_ms = train_start.elapsed().as_secs_f64() * 1000.0;
    black_box(trained);

    let min = Duration::from_secs(3);
    let (rules, clock) = items_per_second(&rules_only, &items, min);
    let (full, _) = items_per_second(&shipped, &items, min);
    println!(
        "classify, one core ({clock} time), {} items of ~{avg_bytes} bytes: rules alone {rules:.0} items/s, rules + model {full:.0} items/s (rules alone {:.2}x faster); start-up (load + train) {train_ms:.1} ms wall",
        items.len(),
        rules / full
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
