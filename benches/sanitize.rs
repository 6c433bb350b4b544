//! Throughput of the HTML sanitiser and the plain-text converter on the HTML bodies of the
//! shared feed corpus (RSS `description` / `content:encoded`, Atom `content` / `summary`),
//! each beside a DOM-building equivalent in the same process: ammonia for sanitising,
//! html2text for plain text. Prints MB/s of both and the ratio, then runs criterion.
//!
//! Corpus: `$NEWSRELAY_SHARED_DIR/corpus`, else `shared/corpus` beside the repository.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use newsrelay::parse::entities::decode_references;
use newsrelay::parse::sanitize::{html_to_plain_text, sanitize_html};

fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEWSRELAY_SHARED_DIR") {
        return PathBuf::from(dir).join("corpus");
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/corpus"))
        .find(|dir| dir.join("MANIFEST.tsv").is_file())
        .unwrap_or_else(|| manifest.join("../shared/corpus"))
}

/// Text content of every `<name ...>…</name>` in `xml`, CDATA unwrapped and XML-escaped
/// markup decoded: the HTML a feed parser would hand to the sanitiser.
fn element_bodies(xml: &str, name: &str, out: &mut Vec<String>) {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after_name = rest.get(start + open.len()..).unwrap_or("");
        if !after_name.starts_with(['>', ' ', '\t', '\n', '\r']) {
            rest = after_name;
            continue;
        }
        let Some(gt) = after_name.find('>') else {
            break;
        };
        let body_and_rest = after_name.get(gt + 1..).unwrap_or("");
        let Some(end) = body_and_rest.find(&close) else {
            break;
        };
        let body = body_and_rest.get(..end).unwrap_or("").trim();
        let html = match body.strip_prefix("<![CDATA[") {
            Some(cdata) => cdata.strip_suffix("]]>").unwrap_or(cdata).to_string(),
            None => decode_references(body),
        };
        if html.contains('<') {
            out.push(html);
        }
        rest = body_and_rest.get(end + close.len()..).unwrap_or("");
    }
}

/// HTML bodies of the XML feeds in the corpus.
fn corpus_html() -> Vec<String> {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap_or_else(|e| panic!("corpus manifest in {}: {e}", dir.display()));
    let mut bodies = Vec::new();
    for line in manifest.lines().skip(1) {
        let mut columns = line.split('\t');
        let (Some(file), Some(format)) = (columns.next(), columns.nth(4)) else {
            continue;
        };
        if format.starts_with("json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(dir.join(file)) else {
            continue;
        };
        let xml = String::from_utf8_lossy(&bytes);
        for name in ["description", "content:encoded", "content", "summary"] {
            element_bodies(&xml, name, &mut bodies);
        }
    }
    bodies
}

/// MB/s of `f` over all `bodies`, repeated for at least `min_time`.
fn throughput(bodies: &[String], min_time: Duration, mut f: impl FnMut(&str) -> usize) -> f64 {
    let bytes: usize = bodies.iter().map(String::len).sum();
    let start = Instant::now();
    let mut rounds = 0usize;
    while rounds == 0 || start.elapsed() < min_time {
        for body in bodies {
            black_box(f(black_box(body)));
        }
        rounds += 1;
    }
    (bytes * rounds) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn compare_in_process(bodies: &[String]) {
    let bytes: usize = bodies.iter().map(String::len).sum();
    println!(
        "corpus HTML: {} bodies, {:.2} MB",
        bodies.len(),
        bytes as f64 / 1e6
    );
    let min_time = Duration::from_secs(2);
    let ours = throughput(bodies, min_time, |h| sanitize_html(h, None).len());
    let ammonia = throughput(bodies, min_time, |h| ammonia::clean(h).len());
    println!(
        "sanitize_html: {ours:.1} MB/s; ammonia::clean: {ammonia:.1} MB/s; ratio {:.1}x",
        ours / ammonia
    );
    if let Ok(base) = url::Url::parse("https://www.icmpd.org/news/") {
        let ours = throughput(bodies, min_time, |h| sanitize_html(h, Some(&base)).len());
        let mut cleaner = ammonia::Builder::default();
        cleaner.url_relative(ammonia::UrlRelative::RewriteWithBase(base.clone()));
        let ammonia = throughput(bodies, min_time, |h| cleaner.clean(h).to_string().len());
        println!(
            "with base URL: sanitize_html: {ours:.1} MB/s; ammonia (RewriteWithBase): {ammonia:.1} MB/s; ratio {:.1}x",
            ours / ammonia
        );
    }
    let ours_text = throughput(bodies, min_time, |h| html_to_plain_text(h).len());
    let html2text = throughput(bodies, min_time, |h| {
        html2text::from_read(h.as_bytes(), usize::MAX >> 2)
            .map(|t| t.len())
            .unwrap_or(0)
    });
    println!(
        "html_to_plain_text: {ours_text:.1} MB/s; html2text::from_read: {html2text:.1} MB/s; ratio {:.1}x",
        ours_text / html2text
    );

    // Deep nesting: html5ever's tree builder scans its open-element stack per tag, so the
    // DOM sanitiser is measured at a tenth of the depth the streaming one gets.
    for (depth, with_ammonia) in [(10_000, true), (100_000, false)] {
        let nested = "<div>".repeat(depth) + "x" + &"</div>".repeat(depth);
        let start = Instant::now();
        black_box(sanitize_html(&nested, None));
        let ours = start.elapsed().as_secs_f64() * 1e3;
        if with_ammonia {
            let start = Instant::now();
            black_box(ammonia::clean(&nested));
            let theirs = start.elapsed().as_secs_f64() * 1e3;
            println!(
                "{depth} nested <div>: sanitize_html {ours:.2} ms; ammonia::clean {theirs:.2} ms"
            );
        } else {
            println!("{depth} nested <div>: sanitize_html {ours:.2} ms");
        }
    }
}

fn bench(c: &mut Criterion) {
    let bodies = corpus_html();
    // `cargo test --all-targets` runs this binary without `--bench`: skip the timed comparison.
    if std::env::args().any(|arg| arg == "--bench") {
        compare_in_process(&bodies);
    }
    let bytes: usize = bodies.iter().map(String::len).sum();
    let mut group = c.benchmark_group("sanitize_corpus_html");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    group.bench_function("sanitize_html", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(sanitize_html(black_box(body), None));
            }
        })
    });
    group.bench_function("ammonia_clean", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(ammonia::clean(black_box(body)));
            }
        })
    });
    group.bench_function("html_to_plain_text", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(html_to_plain_text(black_box(body)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
