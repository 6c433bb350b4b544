//! Parse throughput over the shared corpus, single thread, full parse including sanitising.
//!
//! Runs, in the same process and over the same bytes: newsrelay's `parse_feed`, feed-rs
//! (`feed_rs::parser::parse`), and a bare quick-xml tokenising pass (the floor). Prints MB/s of
//! each and the ratios, for every file in MANIFEST.tsv and for the `large` subset.
//! `cargo bench --bench parse` (set `NEWSRELAY_CORPUS` to use another corpus folder).

use newsrelay::parse::{parse_feed, FeedInput};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn corpus_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("NEWSRELAY_CORPUS") {
        return PathBuf::from(p);
    }
    let beside = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"));
    if beside.exists() {
        beside
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
    }
}

fn ours(body: &[u8]) -> usize {
    let input = FeedInput {
        body,
        url: Some("http://example.org/feed"),
        ..FeedInput::default()
    };
    match parse_feed(&input) {
        Ok(f) => f.items.len(),
        Err(_) => 0,
    }
}

fn feed_rs(body: &[u8]) -> usize {
    // feed-rs panics on a few corpus files; a panic counts as a failed parse.
    std::panic::catch_unwind(|| feed_rs::parser::parse(body).map_or(0, |f| f.entries.len()))
        .unwrap_or(0)
}

fn tokenise(body: &[u8]) -> usize {
    let mut r = Reader::from_reader(body);
    r.config_mut().check_end_names = false;
    r.config_mut().allow_dangling_amp = true;
    let mut n = 0usize;
    loop {
        match r.read_event() {
            Ok(Event::Eof) => break,
            Ok(_) => n += 1,
            Err(_) => {
                if n > 10_000_000 {
                    break;
                }
                n += 1;
                if r.error_position() >= body.len() as u64 {
                    break;
                }
            }
        }
    }
    n
}

/// Runs `f` over all files repeatedly for at least `min` and returns MB/s.
fn throughput(files: &[Vec<u8>], f: fn(&[u8]) -> usize, min: Duration) -> f64 {
    let bytes: usize = files.iter().map(Vec::len).sum();
    let start = Instant::now();
    let mut rounds = 0u32;
    loop {
        for b in files {
            black_box(f(black_box(b)));
        }
        rounds += 1;
        if start.elapsed() >= min || rounds >= 50 {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    (bytes as f64 * f64::from(rounds)) / secs / 1e6
}

fn report(name: &str, files: &[Vec<u8>]) {
    let bytes: usize = files.iter().map(Vec::len).sum();
    let min = Duration::from_secs(3);
    // Warm-up pass so page cache and allocator state are the same for all three.
    for b in files {
        black_box(ours(b));
    }
    let ours_mbs = throughput(files, ours, min);
    let feed_rs_mbs = throughput(files, feed_rs, min);
    let tok_mbs = throughput(files, tokenise, min);
    println!(
        "{name}: {} files, {:.1} MB\n  newsrelay parse_feed : {ours_mbs:8.1} MB/s\n  feed-rs              : {feed_rs_mbs:8.1} MB/s\n  quick-xml tokenise   : {tok_mbs:8.1} MB/s\n  newsrelay / feed-rs  : {:.2}x\n  tokenise / newsrelay : {:.2}x (target <= 5x)",
        files.len(),
        bytes as f64 / 1e6,
        ours_mbs / feed_rs_mbs,
        tok_mbs / ours_mbs,
    );
}

/// User + system CPU time of this thread in clock ticks (1/100 s on Linux), 0 elsewhere.
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    field(14) + field(15)
}

fn main() {
    let dir = corpus_dir();
    let Ok(manifest) = std::fs::read_to_string(dir.join("MANIFEST.tsv")) else {
        eprintln!("no corpus at {}: nothing to measure", dir.display());
        return;
    };
    // feed-rs panics print a message each; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));
    let mut all = Vec::new();
    let mut large = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(file), Some(class)) = (cols.first(), cols.get(7)) else {
            continue;
        };
        let Ok(body) = std::fs::read(dir.join(file)) else {
            continue;
        };
        if *class == "large" {
            large.push(body.clone());
        }
        all.push(body);
    }
    // `PARSE_BENCH_ONLY=ours|feed-rs|tokenise [PARSE_BENCH_SUBSET=large|rest] [PARSE_BENCH_ROUNDS=n]`:
    // one function over the files a fixed number of rounds, for `perf stat` instruction and
    // cycle counts, which a busy machine disturbs far less than wall time.
    if let Ok(only) = std::env::var("PARSE_BENCH_ONLY") {
        let f: fn(&[u8]) -> usize = match only.as_str() {
            "feed-rs" => feed_rs,
            "tokenise" => tokenise,
            _ => ours,
        };
        let rest: Vec<Vec<u8>> = all.iter().filter(|b| !large.contains(b)).cloned().collect();
        let files = match std::env::var("PARSE_BENCH_SUBSET").as_deref() {
            Ok("large") => &large,
            Ok("rest") => &rest,
            _ => &all,
        };
        let rounds: u32 = std::env::var("PARSE_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(10);
        let start = Instant::now();
        let cpu_start = thread_cpu_ticks();
        for _ in 0..rounds {
            for b in files {
                black_box(f(black_box(b)));
            }
        }
        let bytes = files.iter().map(Vec::len).sum::<usize>() as f64 * f64::from(rounds);
        let secs = start.elapsed().as_secs_f64();
        let cpu_secs = thread_cpu_ticks().saturating_sub(cpu_start) as f64 / 100.0;
        println!(
            "{only}: {rounds} rounds, {:.1} MB/s wall, {:.1} MB/s cpu",
            bytes / secs / 1e6,
            bytes / cpu_secs / 1e6
        );
        return;
    }
    report("whole corpus", &all);
    report("large subset", &large);
}
