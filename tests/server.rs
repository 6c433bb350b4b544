//! Integration tests: the real server on 127.0.0.1:0 over a real sled store in a temporary
//! folder, filled by ingesting real RSS documents through `ingest` (the parser, normalize,
//! dedup, store), checked over HTTP with reqwest: every route and format, filters, paging, 304 paths,
//! gzip and brotli, HEAD, errors, the cache and its invalidation, escaping, unsubscribe, admin,
//! WebSub and, when chromium is installed, the index page as a browser renders it.

use chrono::{DateTime, Duration, Utc};
use newsrelay::config::{Config, FeedSettings};
use newsrelay::dedup::Intent;
use newsrelay::ingest::ingest_document;
use newsrelay::item::{FeedId, Item, Label, Labels};
use newsrelay::metrics::Metrics;
use newsrelay::server::{self, FetchRequest, ServerState, Unsubscribe};
use newsrelay::store::{Scope, Store};
use quick_xml::events::Event;
use quick_xml::Reader;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const HOSTILE_TITLE: &str = "<script>alert('pwned')</script> Asylum & \"quotes\" <b>bold</b>";

/// Labels the test taxonomy declares: a subset of the fixed ids, every kind present.
const TAXA: &[(&str, &str, &str)] = &[
    ("asylum", "programme", "Asylum"),
    (
        "border-management-visa",
        "programme",
        "Border Management & Visa",
    ),
    (
        "legal-migration-integration",
        "programme",
        "Legal Migration & Integration",
    ),
    ("mieux", "initiative", "MIEUX+"),
    ("budapest-process", "initiative", "Budapest Process"),
    ("western-balkans", "region", "Western Balkans"),
    ("turkey", "region", "Türkiye"),
];

/// Story templates; the words in the titles drive the stand-in classifier.
const STORIES: &[&str] = &[
    "Asylum capacities strengthened in Turkey",
    "Border police training centre opens in the Western Balkans",
    "MIEUX+ supports labour migration policy",
    "Budapest Process ministers meet on asylum and return",
    "Legal pathways: skills partnerships in the Western Balkans",
    "Border and asylum cooperation with Turkey",
];

/// Stand-in classifier: labels by words in the title, as the real one does by phrases.
fn classify(item: &Item) -> Labels {
    let t = item.title.to_lowercase();
    let label = |id: &str| Label {
        id: id.into(),
        score: 0.9,
        why: vec!["title".into()],
    };
    let mut labels = Labels {
        taxonomy_version: 1,
        ..Default::default()
    };
    for (word, id) in [
        ("asylum", "asylum"),
        ("border", "border-management-visa"),
        ("legal", "legal-migration-integration"),
        ("labour", "legal-migration-integration"),
    ] {
        if t.contains(word) && !labels.has(id) {
            labels.programmes.push(label(id));
        }
    }
    for (word, id) in [("mieux", "mieux"), ("budapest", "budapest-process")] {
        if t.contains(word) {
            labels.initiatives.push(label(id));
        }
    }
    for (word, id) in [("balkans", "western-balkans"), ("turkey", "turkey")] {
        if t.contains(word) {
            labels.regions.push(label(id));
        }
    }
    labels
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An RSS 2.0 document with stories `range` (and the hostile story when asked), newest first.
fn rss_document(range: std::ops::Range<usize>, hostile: bool, published: DateTime<Utc>) -> Vec<u8> {
    let mut entries: Vec<(String, String)> = range
        .map(|n| {
            (
                format!("{} (story {n})", STORIES[n % STORIES.len()]),
                format!("story-{n}"),
            )
        })
        .collect();
    if hostile {
        entries.push((
            "Hostile story placeholder".to_string(),
            "hostile".to_string(),
        ));
    }
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>ICMPD news</title><link>https://www.icmpd.org/news-centre</link>\
         <description>News</description>\n",
    );
    for (i, (title, slug)) in entries.iter().enumerate() {
        let date = published - Duration::minutes(i as i64);
        s.push_str(&format!(
            "<item><title>{}</title><link>https://www.icmpd.org/news/{slug}</link>\
             <guid isPermaLink=\"false\">urn:icmpd:{slug}</guid>\
             <description>{}</description><pubDate>{}</pubDate></item>\n",
            xml_escape(title),
            xml_escape(&format!(
                "<p>Summary of {}. <img src=x onerror=alert(1)> Details follow.</p>",
                xml_escape(title)
            )),
            date.format("%a, %d %b %Y %H:%M:%S +0000"),
        ));
    }
    s.push_str("</channel></rss>\n");
    s.into_bytes()
}

/// A running server over a temporary store.
struct Running {
    base: String,
    state: ServerState,
    store: Arc<Store>,
    feed: FeedSettings,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServerError>>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Ingests stories `range` now-ish, as the daemon would, and invalidates the cache.
    fn ingest(&self, range: std::ops::Range<usize>, hostile: bool, at: DateTime<Utc>) {
        let body = rss_document(range, hostile, at);
        let r = ingest_document(
            &self.store,
            &self.feed,
            &body,
            Some(&self.feed.url),
            Some("application/rss+xml; charset=utf-8"),
            &classify,
            at,
        );
        assert!(r.is_ok(), "{r}");
        if hostile {
            self.make_hostile();
        }
        self.state.invalidate();
    }

    /// Gives the hostile story text full of markup characters, as an item whose decoded text
    /// legitimately holds them would have, through the store's update path.
    fn make_hostile(&self) {
        let mut item = stored(&self.store)
            .into_iter()
            .find(|i| i.link.as_deref() == Some("https://www.icmpd.org/news/hostile"))
            .expect("hostile story stored");
        item.title = HOSTILE_TITLE.to_string();
        item.summary_text = "Summary <img src=x onerror=alert(2)> & ]]> \"done\"".to_string();
        item.content_html =
            "<p>ok</p><script>alert(3)</script><img src=x onerror=alert(4)><a href=\"javascript:alert(5)\">x</a>"
                .to_string();
        item.revision += 1;
        self.store
            .apply(&item.feed.clone(), &[Intent::Update(Box::new(item))], None)
            .expect("update applies");
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let r = tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("server stops within 10 s");
            r.expect("server task").expect("server ends cleanly");
        }
    }
}

fn taxonomy_toml() -> String {
    let mut s = String::from("[classifier]\ntitle_weight = 3.0\n");
    for (id, kind, name) in TAXA {
        s.push_str(&format!(
            "\n[[label]]\nid = \"{id}\"\nkind = \"{kind}\"\nname = \"{name}\"\n\
             [label.phrases]\n\"{id}\" = 2.0\n"
        ));
    }
    s
}

#[derive(Default)]
struct Setup {
    hub: Option<String>,
    unsubscribe: Option<Arc<dyn Unsubscribe>>,
    fetch_trigger: Option<mpsc::Sender<FetchRequest>>,
}

/// Starts the server with stories 0..`stories` (and the hostile one) ingested over several
/// weeks, from a config file and taxonomy file on disk.
async fn start(stories: usize, setup: Setup) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let base = format!("http://127.0.0.1:{port}");
    std::fs::write(dir.path().join("programmes.toml"), taxonomy_toml()).unwrap();
    std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
    let hub = setup
        .hub
        .map(|h| format!("websub_hub = \"{h}\"\n"))
        .unwrap_or_default();
    let config_text = format!(
        "[store]\npath = \"db\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"{base}\"\n\
         admin_token_file = \"admin.token\"\n{hub}\n[taxonomy]\nfile = \"programmes.toml\"\n\n\
         [[feeds]]\nid = \"icmpd-news\"\nurl = \"https://www.icmpd.org/news-centre/rss/\"\n\
         title = \"ICMPD news centre\"\n"
    );
    let config_path = dir.path().join("newsrelay.toml");
    std::fs::write(&config_path, &config_text).unwrap();
    let config = Config::load(&config_path).expect("config is valid");
    let store = Arc::new(Store::open(&config.store.path).expect("store opens"));
    let metrics = Arc::new(Metrics::default());
    let mut state =
        ServerState::from_config(&config, store.clone(), metrics).expect("server state");
    if let Some(u) = setup.unsubscribe {
        state = state.with_unsubscribe(u);
    }
    if let Some(tx) = setup.fetch_trigger {
        state = state.with_fetch_trigger(tx);
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(state.clone(), listener, async move {
        let _ = stop_rx.await;
    }));
    let running = Running {
        base,
        state,
        store,
        feed: config.feeds[0].clone(),
        dir,
        stop: Some(stop_tx),
        task: Some(task),
    };
    // Spread the stories over the last weeks: 4 batches, 10 days apart, newest last.
    let now = Utc::now();
    let batches = 4usize;
    let per = stories.div_ceil(batches).max(1);
    for b in 0..batches {
        let from = b * per;
        let to = ((b + 1) * per).min(stories);
        let at = now - Duration::days(10 * (batches - 1 - b) as i64) - Duration::hours(1);
        if from < to || b == batches - 1 {
            running.ingest(from..to, b == batches - 1, at);
        }
    }
    running
}

/// A client that leaves bodies as sent (no automatic decompression).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn get(url: &str, headers: &[(&'static str, &str)]) -> reqwest::Response {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    client()
        .get(url)
        .headers(h)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

async fn get_text(url: &str) -> (StatusCode, HeaderMap, String) {
    let r = get(url, &[]).await;
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// Checks well-formedness with a strict XML reader; returns the root element's name and the
/// number of elements named `item_name`.
fn check_xml(xml: &str, item_name: &str) -> (String, usize) {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut root = None;
    let mut count = 0;
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if root.is_none() {
                    root = Some(name.clone());
                }
                if name == item_name {
                    count += 1;
                }
                depth += 1;
            }
            Ok(Event::Empty(e)) => {
                if root.is_none() {
                    root = Some(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                }
            }
            Ok(Event::End(_)) => depth = depth.checked_sub(1).expect("balanced"),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "not well-formed at {}: {e}\n{xml}",
                reader.buffer_position()
            ),
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    (root.expect("a root element"), count)
}

fn json_feed_validator() -> jsonschema::Validator {
    let candidates = [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/validators/jsonfeed/schema-v1.1.json"
        ),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/validators/jsonfeed/schema-v1.1.json"
        ),
    ];
    let path = candidates
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or_else(|| panic!("JSON Feed schema not found at {candidates:?}"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

/// Every stored item, newest first, straight from the store.
fn stored(store: &Store) -> Vec<Item> {
    store
        .latest(&Scope::All, None, 1000)
        .expect("store reads")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_feed_in_every_format_is_served_and_valid() {
    let s = start(24, Setup::default()).await;
    let all = stored(&s.store);
    assert_eq!(all.len(), 25);
    let validator = json_feed_validator();
    for id in ["all", "asylum", "mieux", "western-balkans", "turkey"] {
        let expected = all
            .iter()
            .filter(|i| id == "all" || i.labels.has(id))
            .count();
        assert!(expected > 0, "{id} has items in the fixture");
        for (ext, ctype, root, item_name) in [
            ("rss", "application/rss+xml", "rss", "item"),
            ("atom", "application/atom+xml", "feed", "entry"),
        ] {
            let (status, headers, body) = get_text(&s.url(&format!("/feeds/{id}.{ext}"))).await;
            assert_eq!(status, StatusCode::OK, "{id}.{ext}: {body}");
            assert!(headers["content-type"].to_str().unwrap().starts_with(ctype));
            let (r, n) = check_xml(&body, item_name);
            assert_eq!(r, root);
            assert_eq!(n, expected, "{id}.{ext} item count");
        }
        let (status, headers, body) = get_text(&s.url(&format!("/feeds/{id}.json"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/feed+json"));
        let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{id}.json: {errors:?}");
        assert_eq!(doc["items"].as_array().unwrap().len(), expected);
        assert_eq!(
            doc["feed_url"].as_str().unwrap(),
            s.url(&format!("/feeds/{id}.json"))
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_404_and_bad_queries_400_with_one_line() {
    let s = start(6, Setup::default()).await;
    for path in [
        "/feeds/nope.rss",
        "/feeds/asylum.xml",
        "/feeds/asylum",
        "/feeds/..rss",
        "/nothing-here",
    ] {
        let (status, _, body) = get_text(&s.url(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body.trim_end().lines().count(), 1, "{path}: {body:?}");
    }
    for (query, word) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("region=asylum", "region"),
        ("initiative=unknown", "initiative"),
        ("source=elsewhere", "source"),
        ("since=2026-01-01T00:00:00Z", "since"),
        ("before=garbage", "before"),
        ("colour=blue", "colour"),
        ("q=a&q=b", "twice"),
    ] {
        let (status, _, body) = get_text(&s.url(&format!("/feeds/asylum.rss?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.contains(word), "{query}: {body}");
        assert_eq!(body.trim_end().lines().count(), 1);
    }
    let (status, _, body) = get_text(&s.url("/api/items?since=last-week")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, _) = get_text(&s.url("/api/items?programme=mieux")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "mieux is an initiative");
    s.stop().await;
}

/// Ids of the items an API response lists.
fn api_ids(doc: &serde_json::Value) -> Vec<String> {
    doc["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_combine_with_and_and_limit_pages_through_everything() {
    let s = start(30, Setup::default()).await;
    let all = stored(&s.store);

    // asylum AND region=turkey, in the feed and in the API.
    let expected: Vec<String> = all
        .iter()
        .filter(|i| i.labels.has("asylum") && i.labels.regions.iter().any(|l| l.id == "turkey"))
        .map(|i| i.id.0.clone())
        .collect();
    assert!(!expected.is_empty() && expected.len() < all.len());
    let (_, _, body) =
        get_text(&s.url("/api/items?programme=asylum&region=turkey&limit=500")).await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api_ids(&doc), expected);
    let (_, _, rss) = get_text(&s.url("/feeds/asylum.rss?region=turkey")).await;
    assert_eq!(check_xml(&rss, "item").1, expected.len());

    // initiative AND q (case-insensitive) AND source.
    let expected_q: Vec<String> = all
        .iter()
        .filter(|i| {
            i.labels
                .initiatives
                .iter()
                .any(|l| l.id == "budapest-process")
                && i.title.to_lowercase().contains("ministers")
        })
        .map(|i| i.id.0.clone())
        .collect();
    assert!(!expected_q.is_empty());
    let (_, _, body) = get_text(
        &s.url("/api/items?initiative=budapest-process&q=MINISTERS&source=icmpd-news&limit=500"),
    )
    .await;
    assert_eq!(api_ids(&serde_json::from_str(&body).unwrap()), expected_q);
    let (_, _, body) = get_text(&s.url("/api/items?q=no-such-words-anywhere")).await;
    assert!(api_ids(&serde_json::from_str(&body).unwrap()).is_empty());

    // since= keeps items first stored after the instant.
    let since = all[all.len() / 2]
        .first_seen
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cut = DateTime::parse_from_rfc3339(&since).unwrap();
    let expected_since: Vec<String> = all
        .iter()
        .filter(|i| i.first_seen > cut)
        .map(|i| i.id.0.clone())
        .collect();
    let (status, _, body) = get_text(&s.url(&format!(
        "/api/items?limit=500&since={}",
        since.replace('+', "%2B")
    )))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!expected_since.is_empty() && expected_since.len() < all.len());
    assert_eq!(
        api_ids(&serde_json::from_str(&body).unwrap()),
        expected_since
    );

    // limit=4 pages through every item exactly once, newest first.
    let mut seen = Vec::new();
    let mut url = s.url("/api/items?limit=4");
    for _ in 0..20 {
        let (status, _, body) = get_text(&url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let ids = api_ids(&doc);
        assert!(ids.len() <= 4);
        seen.extend(ids);
        match doc["next_url"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    let want: Vec<String> = all.iter().map(|i| i.id.0.clone()).collect();
    assert_eq!(seen, want);

    // The feed carries RFC 5005 links: next (with before=) and first.
    let (_, _, atom) = get_text(&s.url("/feeds/all.atom?limit=5")).await;
    assert_eq!(check_xml(&atom, "entry").1, 5);
    let next = atom
        .split("<link ")
        .find(|l| l.contains("rel=\"next\""))
        .expect("rel=next link");
    let href = next
        .split("href=\"")
        .nth(1)
        .and_then(|h| h.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert!(href.contains("before="), "{href}");
    let (status, _, older) = get_text(&href).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check_xml(&older, "entry").1, 5);
    assert!(older.contains("rel=\"first\""));
    let page_one = item_urns(&atom);
    let page_two = item_urns(&older);
    assert_eq!((page_one.len(), page_two.len()), (5, 5));
    assert!(page_one.is_disjoint(&page_two), "page two repeats an item");
    s.stop().await;
}

/// The item URNs a feed document mentions.
fn item_urns(doc: &str) -> BTreeSet<String> {
    doc.split("urn:newsrelay:item:")
        .skip(1)
        .filter_map(|rest| rest.split(['<', '"']).next())
        .map(str::to_string)
        .collect()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_304_compression_and_head() {
    let s = start(40, Setup::default()).await;
    let url = s.url("/feeds/all.rss");

    let plain = get(&url, &[]).await;
    assert_eq!(plain.status(), StatusCode::OK);
    let h = plain.headers().clone();
    let etag = h["etag"].to_str().unwrap().to_string();
    let last_modified = h["last-modified"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    assert_eq!(h["vary"], "Accept-Encoding");
    assert!(h["cache-control"].to_str().unwrap().contains("max-age"));
    assert!(h.get("content-encoding").is_none());
    let identity = plain.bytes().await.unwrap().to_vec();

    let gz = get(&url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz_etag = gz.headers()["etag"].to_str().unwrap().to_string();
    let gz_body = gz.bytes().await.unwrap();
    assert!(gz_body.len() < identity.len() / 2);
    assert_eq!(gunzip(&gz_body), identity);

    let br = get(&url, &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!(br.headers()["content-encoding"], "br");
    let br_etag = br.headers()["etag"].to_str().unwrap().to_string();
    let br_body = br.bytes().await.unwrap();
    assert_eq!(unbrotli(&br_body), identity);
    let distinct: BTreeSet<&str> = [etag.as_str(), gz_etag.as_str(), br_etag.as_str()].into();
    assert_eq!(distinct.len(), 3, "one ETag per encoding");

    // If-None-Match: 304 with validators and no body; another encoding's tag does not match.
    let r = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get(
        &url,
        &[("if-none-match", &br_etag), ("accept-encoding", "br")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = get(&url, &[("if-none-match", &gz_etag)]).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "identity request with the gzip tag"
    );
    let r = get(&url, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(r.status(), StatusCode::OK);

    // If-Modified-Since: 304 at or after Last-Modified, 200 before it.
    let r = get(&url, &[("if-modified-since", &last_modified)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let lm = DateTime::parse_from_rfc2822(&last_modified).unwrap();
    let earlier = (lm - Duration::seconds(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let r = get(&url, &[("if-modified-since", &earlier)]).await;
    assert_eq!(r.status(), StatusCode::OK);

    // HEAD: same headers, no body.
    for enc in ["identity", "br"] {
        let r = client()
            .head(&url)
            .header("accept-encoding", enc)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let want = if enc == "br" { &br_etag } else { &etag };
        assert_eq!(r.headers()["etag"].to_str().unwrap(), want);
        let want_len = if enc == "br" {
            br_body.len()
        } else {
            identity.len()
        };
        assert_eq!(
            r.headers()["content-length"].to_str().unwrap(),
            want_len.to_string()
        );
        assert!(r.bytes().await.unwrap().is_empty());
    }
    // The index page and OPML use the same validators.
    for path in ["/", "/opml", "/api/items"] {
        let r = get(&s.url(path), &[]).await;
        let tag = r.headers()["etag"].to_str().unwrap().to_string();
        let r = get(&s.url(path), &[("if-none-match", &tag)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    s.stop().await;
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_hit_the_cache_and_a_new_item_invalidates_it() {
    let s = start(10, Setup::default()).await;
    let url = s.url("/feeds/asylum.atom");
    let m = s.state.metrics().clone();
    let first = get(&url, &[]).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let first_body = first.text().await.unwrap();
    let hits_before = m.cache_hits.load(Ordering::Relaxed);
    let misses_before = m.cache_misses.load(Ordering::Relaxed);
    for _ in 0..5 {
        let r = get(&url, &[]).await;
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    }
    assert_eq!(m.cache_hits.load(Ordering::Relaxed), hits_before + 5);
    assert_eq!(m.cache_misses.load(Ordering::Relaxed), misses_before);
    // The hit counter is visible in /metrics, as are per-route counts.
    let (_, _, text) = get_text(&s.url("/metrics")).await;
    assert!(metric(&text, "newsrelay_feed_cache_hits_total") >= 5);
    assert!(
        metric(
            &text,
            "newsrelay_http_requests_total{route=\"/feeds/{file}\"}"
        ) >= 6
    );

    // A new asylum story arrives; the daemon invalidates; the feed shows it with a new ETag.
    let generation = s.state.generation();
    s.ingest(102..103, false, Utc::now());
    assert_eq!(s.state.generation(), generation + 1);
    assert_eq!(s.state.cached_documents(), 0);
    let r = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), StatusCode::OK, "old ETag no longer matches");
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    let body = r.text().await.unwrap();
    assert!(body.contains("(story 102)"), "new item is published");
    assert!(!first_body.contains("(story 102)"));
    assert_eq!(
        check_xml(&body, "entry").1,
        check_xml(&first_body, "entry").1 + 1
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_a_cold_document_renders_it_at_most_twice() {
    let s = start(60, Setup::default()).await;
    let m = s.state.metrics().clone();
    let misses_before = m.cache_misses.load(Ordering::Relaxed);
    let url = s.url("/feeds/all.json?limit=200");
    let c = client();
    let requests = (0..32).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move { c.get(&url).send().await.unwrap().bytes().await.unwrap() }
    });
    let bodies = futures_util::future::join_all(requests).await;
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every response is the same document"
    );
    let misses = m.cache_misses.load(Ordering::Relaxed) - misses_before;
    assert!(
        (1..=2).contains(&misses),
        "{misses} renders for one document"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_item_text_is_escaped_on_the_page_and_in_feeds() {
    let s = start(4, Setup::default()).await;
    let (status, headers, page) = get_text(&s.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(
        page.contains("&lt;script&gt;alert("),
        "title shown as text:\n{page}"
    );
    assert!(!page.contains("<script>alert("));
    assert!(!page.contains("<img"));
    for ext in ["rss", "atom"] {
        let (_, _, xml) = get_text(&s.url(&format!("/feeds/all.{ext}"))).await;
        check_xml(&xml, "item");
        assert!(!xml.contains("<script>"), "{ext}");
        // Text with markup characters is escaped text; item HTML loses what the allow-list
        // does not keep (the script, the handler, the javascript: link).
        for (i, _) in xml.match_indices("onerror") {
            let before = &xml[i.saturating_sub(20)..i];
            assert!(
                before.contains("&lt;img"),
                "{ext}: live handler near {before}onerror"
            );
        }
        assert!(!xml.contains("alert(3)"), "{ext}: script content dropped");
        assert!(!xml.contains("alert(4)"), "{ext}: img handler dropped");
        assert!(!xml.contains("javascript:"), "{ext}");
        assert!(xml.contains("&lt;script&gt;alert("), "{ext}: title escaped");
    }
    let (_, _, json) = get_text(&s.url("/feeds/all.json")).await;
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let titles: Vec<&str> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["title"].as_str())
        .collect();
    let stored_title = stored(&s.store)
        .into_iter()
        .find(|i| i.title.contains("pwned"))
        .expect("hostile item stored")
        .title;
    assert_eq!(stored_title, HOSTILE_TITLE);
    assert!(
        titles.contains(&HOSTILE_TITLE),
        "JSON keeps the text as text"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_opml_health_and_metrics() {
    let s = start(12, Setup::default()).await;
    let all = stored(&s.store);
    // The fetch stage records each fetch in the feed's state; health reports the newest.
    let fetched_at = Utc::now() - Duration::minutes(3);
    let mut state = s
        .store
        .feed_state(&FeedId("icmpd-news".into()))
        .unwrap()
        .unwrap_or_default();
    state.last_fetch = Some(fetched_at);
    state.last_success = Some(fetched_at);
    s.store
        .put_feed_state(&FeedId("icmpd-news".into()), &state)
        .unwrap();
    let (status, _, page) = get_text(&s.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<svg"), "chart");
    for (id, _, _) in TAXA {
        for ext in ["rss", "atom", "json"] {
            let link = s.url(&format!("/feeds/{id}.{ext}"));
            assert!(page.contains(&link), "subscribe link {link}");
        }
    }
    assert!(page.contains(&all.len().to_string()));

    let (status, headers, opml) = get_text(&s.url("/opml")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().contains("opml"));
    let (root, outlines) = check_xml(&opml, "outline");
    assert_eq!(root, "opml");
    let feeds = opml.matches("xmlUrl=\"").count();
    assert_eq!(feeds, (TAXA.len() + 1) * 3, "every feed in every format");
    assert!(outlines >= 1);
    assert!(opml.contains(&s.url("/feeds/all.json")));

    let (status, headers, health) = get_text(&s.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let h: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(h["store_open"], true);
    assert_eq!(h["items"].as_u64().unwrap(), all.len() as u64);
    let cycle = DateTime::parse_from_rfc3339(h["last_fetch_cycle"].as_str().expect("a date"))
        .expect("RFC 3339");
    assert_eq!(cycle, fetched_at, "{h}");
    assert_eq!(h["failing_feeds"].as_array().unwrap().len(), 0);
    assert_eq!(h["status"], "ok");

    // A feed whose fetch failed shows up as failing.
    let r = ingest_document(
        &s.store,
        &FeedSettings {
            id: "broken".into(),
            url: "https://broken.example.org/rss".into(),
            title: None,
            interval: std::time::Duration::from_secs(60),
            programmes: vec![],
            retention: None,
        },
        b"this is not a feed",
        None,
        Some("text/html"),
        &classify,
        Utc::now(),
    );
    assert!(!r.is_ok());
    let (_, _, health) = get_text(&s.url("/healthz")).await;
    let h: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["failing_feeds"][0]["feed"], "broken");

    let (status, headers, text) = get_text(&s.url("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(metric(&text, "newsrelay_http_requests_total{route=\"/healthz\"}") >= 2);
    assert!(metric(&text, "newsrelay_http_requests_total{route=\"/opml\"}") >= 1);
    assert!(metric(&text, "newsrelay_http_responses_total{status=\"2xx\"}") >= 4);
    s.stop().await;
}

/// Test double for the digest module's token check and subscriber state.
#[derive(Default)]
struct Subscribers {
    tokens: HashMap<String, String>,
    unsubscribed: Mutex<Vec<String>>,
}

impl Unsubscribe for Subscribers {
    fn subscriber_for_token(&self, token: &str) -> Option<String> {
        self.tokens.get(token).cloned()
    }
    fn unsubscribe(&self, email: &str) -> Result<(), String> {
        self.unsubscribed
            .lock()
            .map_err(|e| e.to_string())?
            .push(email.to_string());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_confirms_on_get_and_acts_on_post() {
    let subs = Arc::new(Subscribers {
        tokens: [("tok-valid-123".to_string(), "staff@example.org".to_string())].into(),
        ..Default::default()
    });
    let s = start(
        2,
        Setup {
            unsubscribe: Some(subs.clone()),
            ..Default::default()
        },
    )
    .await;
    let (status, _, page) = get_text(&s.url("/unsubscribe/tok-valid-123")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("staff@example.org"));
    assert!(page.contains("method=\"post\""));
    assert!(
        subs.unsubscribed.lock().unwrap().is_empty(),
        "GET changes nothing"
    );
    let (status, _, _) = get_text(&s.url("/unsubscribe/forged")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let r = client()
        .post(s.url("/unsubscribe/tok-valid-123"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("unsubscribed"));
    assert_eq!(*subs.unsubscribed.lock().unwrap(), ["staff@example.org"]);
    let r = client()
        .post(s.url("/unsubscribe/forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(subs.unsubscribed.lock().unwrap().len(), 1);
    s.stop().await;

    // Without digests wired in, the route says so.
    let s = start(1, Setup::default()).await;
    let (status, _, body) = get_text(&s.url("/unsubscribe/tok-valid-123")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("not enabled"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_fetch_needs_the_token_and_reaches_the_daemon_channel() {
    let (tx, mut rx) = mpsc::channel(1);
    let s = start(
        1,
        Setup {
            fetch_trigger: Some(tx),
            ..Default::default()
        },
    )
    .await;
    let url = s.url("/admin/fetch");
    let r = client().post(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = client()
        .post(&url)
        .bearer_auth("wrong-token-0123456789abcd")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(rx.try_recv().is_err(), "nothing sent without the token");
    let r = client()
        .post(format!("{url}?feed=icmpd-news"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        rx.recv().await,
        Some(FetchRequest {
            feed: Some("icmpd-news".into())
        })
    );
    // GET is not a way in, and public routes refuse POST.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = client().post(s.url("/feeds/all.rss")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websub_hub_is_advertised_and_pinged() {
    // A loopback server playing the hub, recording each form body.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = seen.clone();
    let hub_app = axum::Router::new().route(
        "/hub",
        axum::routing::post(move |body: String| {
            let recorder = recorder.clone();
            async move {
                recorder.lock().unwrap().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let hub_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_url = format!("http://{}/hub", hub_listener.local_addr().unwrap());
    let hub_task = tokio::spawn(async move { axum::serve(hub_listener, hub_app).await });

    let s = start(
        3,
        Setup {
            hub: Some(hub_url.clone()),
            ..Default::default()
        },
    )
    .await;
    for ext in ["rss", "atom"] {
        let (_, _, xml) = get_text(&s.url(&format!("/feeds/asylum.{ext}"))).await;
        assert!(
            xml.contains(&format!("rel=\"hub\" href=\"{hub_url}\""))
                || xml.contains(&format!("href=\"{hub_url}\" rel=\"hub\"")),
            "{ext} advertises the hub:\n{xml}"
        );
    }
    let urls = s
        .state
        .feed_urls_for(&["asylum".to_string(), "unknown".to_string()]);
    assert_eq!(
        urls.len(),
        6,
        "all and asylum, three formats each: {urls:?}"
    );
    let client = server::hub_client().unwrap();
    let report = server::ping_hub(&client, s.state.websub_hub().unwrap(), &urls).await;
    assert_eq!(report.accepted.len(), 6, "{report:?}");
    assert!(report.failed.is_empty());
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 6);
    let expected = format!(
        "hub.mode=publish&hub.url={}",
        url::form_urlencoded::byte_serialize(s.url("/feeds/asylum.rss").as_bytes())
            .collect::<String>()
    );
    assert!(bodies.contains(&expected), "{bodies:?}");

    // A hub that refuses is reported per URL, and the rest are still tried.
    let report = server::ping_hub(&client, &format!("{hub_url}-missing"), &urls[..2]).await;
    assert_eq!(report.failed.len(), 2);
    assert!(report.failed[0].1.contains("404"), "{report:?}");
    hub_task.abort();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_and_releases_the_port() {
    let s = start(2, Setup::default()).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let (status, _, _) = get_text(&s.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
    // The port is free again once serve has returned.
    let again = tokio::net::TcpListener::bind(&addr).await;
    assert!(again.is_ok(), "port {addr} still held");
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_renders_the_index_page() {
    let Some(browser) = chromium() else {
        // CI installs chromium, so there a missing browser is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed; .ci/run installs it (apt-get install chromium)"
        );
        eprintln!("SKIPPED a_real_browser_renders_the_index_page: chromium is not installed (apt-get install chromium)");
        return;
    };
    let s = start(16, Setup::default()).await;
    let all = stored(&s.store);
    let profile = s.dir.path().join("chromium-profile");
    let url = s.url("/");
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--virtual-time-budget=3000",
        &format!("--user-data-dir={}", profile.display()),
        "--dump-dom",
        &url,
    ])
    .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<svg"),
        "rendered DOM has the chart; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains(&s.url("/feeds/asylum.rss")));
    assert!(dom.contains(&s.url("/feeds/western-balkans.json")));
    let asylum = all.iter().filter(|i| i.labels.has("asylum")).count();
    assert!(dom.contains(&asylum.to_string()));
    assert!(
        !dom.contains("<script>alert("),
        "hostile title is text in the DOM"
    );
    // The browser fetched the page over HTTP: it was counted.
    let m = s.state.metrics().render();
    assert!(metric(&m, "newsrelay_http_requests_total{route=\"/\"}") >= 1);
    s.stop().await;
}
