//! Server hot path: a feed request answered from the rendered cache, beside the same request
//! rendered (store read, RSS render, gzip and brotli) every time, through the real HTTP server
//! on loopback over a real store of 600 ingested items. Criterion measures both; then both run
//! back to back in this process and the ratio is printed.

use chrono::{Duration, Utc};
use criterion::{criterion_group, Criterion};
use newsrelay::config::Config;
use newsrelay::ingest::ingest_document;
use newsrelay::item::{Item, Label, Labels};
use newsrelay::metrics::Metrics;
use newsrelay::server::{self, ServerState};
use newsrelay::store::Store;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const ITEMS: usize = 600;
const PATH: &str = "/feeds/all.rss?limit=200";

fn classify(item: &Item) -> Labels {
    let mut labels = Labels {
        taxonomy_version: 1,
        ..Default::default()
    };
    if item.title.contains("asylum") {
        labels.programmes.push(Label {
            id: "asylum".into(),
            score: 0.9,
            why: vec!["title".into()],
        });
    }
    labels
}

fn rss(n: usize) -> Vec<u8> {
    let now = Utc::now();
    let mut s = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>ICMPD</title>\
         <link>https://www.icmpd.org/</link><description>News</description>",
    );
    for i in 0..n {
        s.push_str(&format!(
            "<item><title>Regional dialogue on asylum and return, round {i}</title>\
             <link>https://www.icmpd.org/news/bench-{i}</link><guid>urn:bench:{i}</guid>\
             <description>&lt;p&gt;Officials met in Vienna to discuss cooperation on asylum, \
             border management and legal pathways. Round {i} of the dialogue.&lt;/p&gt;</description>\
             <pubDate>{}</pubDate></item>",
            (now - Duration::minutes(i as i64 * 17)).format("%a, %d %b %Y %H:%M:%S +0000")
        ));
    }
    s.push_str("</channel></rss>");
    s.into_bytes()
}

struct Bench {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: String,
    state: ServerState,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn get(&self) -> usize {
        self.rt.block_on(async {
            let r = self
                .client
                .get(&self.url)
                .header("accept-encoding", "br")
                .send()
                .await
                .map(|r| r.bytes());
            match r {
                Ok(body) => body.await.map(|b| b.len()).unwrap_or(0),
                Err(_) => 0,
            }
        })
    }
}

fn setup() -> Option<Bench> {
    let dir = tempfile::tempdir().ok()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .ok()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .ok()?;
    let port = listener.local_addr().ok()?.port();
    std::fs::write(
        dir.path().join("programmes.toml"),
        "[[label]]\nid = \"asylum\"\nkind = \"programme\"\nname = \"Asylum\"\n",
    )
    .ok()?;
    let text = format!(
        "[store]\npath = \"db\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n\
         base_url = \"http://127.0.0.1:{port}\"\n[taxonomy]\nfile = \"programmes.toml\"\n\
         [[feeds]]\nid = \"icmpd-news\"\nurl = \"https://www.icmpd.org/news-centre/rss/\"\n"
    );
    let config = Config::from_str_at(&text, &dir.path().join("newsrelay.toml")).ok()?;
    let store = Arc::new(Store::open(&config.store.path).ok()?);
    let report = ingest_document(
        &store,
        config.feeds.first()?,
        &rss(ITEMS),
        None,
        Some("application/rss+xml"),
        &classify,
        Utc::now(),
    );
    if !report.is_ok() {
        eprintln!("bench setup: {report}");
        return None;
    }
    let state = ServerState::from_config(&config, store, Arc::new(Metrics::default())).ok()?;
    rt.spawn(server::serve(
        state.clone(),
        listener,
        std::future::pending::<()>(),
    ));
    Some(Bench {
        rt,
        client: reqwest::Client::builder().no_brotli().build().ok()?,
        url: format!("http://127.0.0.1:{port}{PATH}"),
        state,
        _dir: dir,
    })
}

fn seconds_per_call(mut f: impl FnMut()) -> f64 {
    let mut per_call = Vec::with_capacity(7);
    for _ in 0..7 {
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed().as_secs_f64() < 0.2 && calls < 100_000 {
            f();
            calls += 1;
        }
        per_call.push(start.elapsed().as_secs_f64() / f64::from(calls.max(1)));
    }
    per_call.sort_by(f64::total_cmp);
    per_call.get(3).copied().unwrap_or(f64::NAN)
}

fn benches(c: &mut Criterion) {
    let Some(b) = setup() else {
        eprintln!("server bench: setup failed");
        return;
    };
    let mut g = c.benchmark_group("server");
    g.bench_function("feed_from_cache", |bench| bench.iter(|| black_box(b.get())));
    g.bench_function("feed_rendered_each_time", |bench| {
        bench.iter(|| {
            b.state.invalidate();
            black_box(b.get())
        })
    });
    g.finish();
}

fn print_comparison() {
    let Some(b) = setup() else {
        return;
    };
    let size = b.get();
    let hit = seconds_per_call(|| {
        black_box(b.get());
    });
    let miss = seconds_per_call(|| {
        b.state.invalidate();
        black_box(b.get());
    });
    println!(
        "GET {PATH} (brotli, {size} bytes, {ITEMS} items stored): from cache {:.0} req/s, \
         rendered each time {:.0} req/s; cache is {:.1}x faster",
        1.0 / hit,
        1.0 / miss,
        miss / hit
    );
}

criterion_group!(server_benches, benches);

fn main() {
    server_benches();
    Criterion::default().configure_from_args().final_summary();
    print_comparison();
}
