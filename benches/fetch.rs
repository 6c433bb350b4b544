//! Fetch stage bench: what the fetcher's limits cost over a bare reqwest GET.
//!
//! A loopback axum server serves one ~300 KB RSS document, plain and gzip. Each case fetches it
//! with `newsrelay::fetch::Fetcher` (per-host and global permits, redirects by hand, conditional
//! headers, streaming size cap, deadline) and with a plain `reqwest::Client` reading
//! `.bytes()` with none of those limits, on the same runtime and server. Criterion reports each;
//! then an interleaved run in the same process prints the fetcher/reqwest time ratio.

use axum::http::header;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, Criterion};
use newsrelay::config::FetchSettings;
use newsrelay::fetch::{FetchOutcome, FetchRequest, Fetcher};
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

fn feed_document() -> Vec<u8> {
    let mut doc = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>News centre</title><link>https://example.org/news</link>\n",
    );
    for i in 0..400 {
        doc.push_str(&format!(
            "<item><title>Migration dialogue round {i}</title>\
             <link>https://example.org/news/{i}</link><guid>https://example.org/news/{i}</guid>\
             <pubDate>Tue, 10 Mar 2026 08:{:02}:00 GMT</pubDate>\
             <description>&lt;p&gt;Partners met to discuss legal pathways, return and \
             reintegration, border management and the protection of migrants in item {i}. \
             The meeting closed with joint recommendations for the region.&lt;/p&gt;\
             </description></item>\n",
            i % 60
        ));
    }
    doc.push_str("</channel></rss>\n");
    doc.into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

struct Bench {
    rt: tokio::runtime::Runtime,
    fetcher: Fetcher,
    plain: reqwest::Client,
    base: String,
    size: usize,
}

fn setup() -> Bench {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = feed_document();
    let size = body.len();
    let compressed = gzip(&body);
    let base = rt.block_on(async move {
        let app = Router::new()
            .route(
                "/feed",
                get(move || {
                    let body = body.clone();
                    async move { ([(header::CONTENT_TYPE, "application/rss+xml")], body) }
                }),
            )
            .route(
                "/feed.gz",
                get(move || {
                    let body = compressed.clone();
                    async move {
                        (
                            [
                                (header::CONTENT_TYPE, "application/rss+xml"),
                                (header::CONTENT_ENCODING, "gzip"),
                            ],
                            body,
                        )
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    });
    let settings = FetchSettings {
        interval: Duration::from_secs(1800),
        concurrency: 16,
        per_host: 2,
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        max_body: 10_000_000,
        max_redirects: 5,
        contact_url: Some("https://ops.example.org/newsrelay".into()),
    };
    let fetcher = Fetcher::new(&settings).expect("fetcher");
    let plain = reqwest::Client::builder().build().expect("client");
    Bench {
        rt,
        fetcher,
        plain,
        base,
        size,
    }
}

impl Bench {
    fn with_fetcher(&self, path: &str) -> usize {
        let req = FetchRequest {
            url: format!("{}{path}", self.base),
            ..FetchRequest::default()
        };
        match self.rt.block_on(self.fetcher.fetch(&req)) {
            Ok(FetchOutcome::Modified(f)) => f.body.len(),
            other => panic!("fetch failed: {other:?}"),
        }
    }

    fn with_reqwest(&self, path: &str) -> usize {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let r = self.plain.get(url).send().await.expect("send");
            r.bytes().await.expect("body").len()
        })
    }
}

fn fetch_vs_reqwest(c: &mut Criterion) {
    let b = setup();
    assert_eq!(b.with_fetcher("/feed"), b.size);
    assert_eq!(b.with_reqwest("/feed.gz"), b.size);
    let mut group = c.benchmark_group("fetch");
    group.throughput(criterion::Throughput::Bytes(b.size as u64));
    for path in ["/feed", "/feed.gz"] {
        group.bench_function(format!("newsrelay{path}"), |bn| {
            bn.iter(|| black_box(b.with_fetcher(path)))
        });
        group.bench_function(format!("reqwest{path}"), |bn| {
            bn.iter(|| black_box(b.with_reqwest(path)))
        });
    }
    group.finish();
}

/// Interleaved rounds, alternating which client goes first, so both see the same machine load;
/// prints the median time of each and the ratio of the medians.
fn print_ratio() {
    let b = setup();
    for path in ["/feed", "/feed.gz"] {
        let rounds = 400;
        let (mut ours, mut theirs) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        for round in 0..rounds {
            let mut time_ours = || {
                let t = Instant::now();
                black_box(b.with_fetcher(path));
                ours.push(t.elapsed());
            };
            let mut time_theirs = || {
                let t = Instant::now();
                black_box(b.with_reqwest(path));
                theirs.push(t.elapsed());
            };
            if round % 2 == 0 {
                time_ours();
                time_theirs();
            } else {
                time_theirs();
                time_ours();
            }
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v.get(v.len() / 2).copied().unwrap_or_default()
        };
        let (m_ours, m_theirs) = (median(&mut ours), median(&mut theirs));
        println!(
            "fetch {path} ({} bytes decoded), median of {rounds}: newsrelay {:.0} µs, \
             bare reqwest {:.0} µs, ratio {:.2}x",
            b.size,
            m_ours.as_secs_f64() * 1e6,
            m_theirs.as_secs_f64() * 1e6,
            m_ours.as_secs_f64() / m_theirs.as_secs_f64()
        );
    }
}

criterion_group!(benches, fetch_vs_reqwest);

fn main() {
    benches();
    print_ratio();
    Criterion::default().configure_from_args().final_summary();
}
