//! Route handlers: each turns a request into a store read, a render and a response.
//!
//! In: the request (path, query, headers) and the [`ServerState`]. Out: responses with the
//! caching headers of [`super::conditional`] for documents, one-line plain-text errors (404 for
//! unknown ids, 400 for bad queries, 401 for a missing admin token), and one count per response
//! in the metrics under the route's template. Store reads and renders run on the blocking pool.
//! It must never write to the store outside unsubscribe and admin routes, and never scan more
//! than [`MAX_SCAN`] items for one response.

use super::cache::Rendered;
use super::conditional::respond;
use super::query::{FilterRoute, Filters};
use super::{FetchRequest, ServerError, ServerState, Shared};
use crate::item::{FeedId, Item};
use crate::publish::{
    self, feed_url, FeedDescriptor, FeedFormat, IndexPage, OpmlEntry, Paging, TaxonCount,
    TaxonKind, WeeklyCounts, WeeklySeries,
};
use crate::store::{Cursor, Scope, Store, StoreError};
use axum::body::Body;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most stored items one response looks at while filtering.
pub const MAX_SCAN: usize = 20_000;
/// Items read from the store per step while filtering.
const SCAN_STEP: usize = 250;
/// Latest items on the index page.
const INDEX_LATEST: usize = 20;
/// Weeks in the index chart.
const CHART_WEEKS: u32 = 12;
/// Longest unsubscribe token accepted.
const MAX_TOKEN: usize = 256;

const FEED_CACHE_CONTROL: &str = "public, max-age=300";
const PAGE_CACHE_CONTROL: &str = "public, max-age=60";
const HTML: &str = "text/html; charset=utf-8";
const HTML_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                        base-uri 'none'; frame-ancestors 'none'";

/// Route templates as counted in metrics.
const ROUTES: [&str; 10] = [
    "/",
    "/feeds/{file}",
    "/opml",
    "/api/items",
    "/api/status",
    "/healthz",
    "/metrics",
    "/unsubscribe/{token}",
    "/admin/fetch",
    "/favicon.ico",
];

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/feeds/{file}", get(feed))
        .route("/opml", get(opml))
        .route("/api/items", get(api_items))
        .route("/api/status", get(api_status))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe_post),
        )
        .route("/admin/fetch", post(admin_fetch))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_and_harden,
        ))
        .with_state(state)
}

/// Counts every response by route template and status, and adds `nosniff`.
async fn count_and_harden(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().find(|r| **r == m.as_str()).copied())
        .unwrap_or("unmatched");
    let mut response = next.run(req).await;
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    state
        .shared
        .metrics
        .record_response(route, response.status().as_u16());
    response
}

/// A one-line plain-text error.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut line: String = message.into().replace(['\r', '\n'], " ");
    line.push('\n');
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        line,
    )
        .into_response()
}

fn internal(e: &ServerError) -> Response {
    tracing::error!(error = %e, "request failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

impl ServerState {
    fn is_source(&self, id: &str) -> bool {
        self.shared.source_ids.iter().any(|s| s == id)
    }

    /// The cached document for `key`, or renders it on the blocking pool and caches it.
    async fn cached_or_render<F>(&self, key: String, headers: &HeaderMap, render: F) -> Response
    where
        F: FnOnce(&Shared, u64) -> Result<Rendered, ServerError> + Send + 'static,
    {
        let generation = self.generation();
        if let Some(doc) = self.shared.cache.get(&key, generation) {
            self.shared
                .metrics
                .cache_hits
                .fetch_add(1, Ordering::Relaxed);
            return with_html_policy(respond(headers, &doc));
        }
        // Wait for a render slot, then look again: a request for the same document that held
        // the slot before us has usually rendered it.
        let Ok(_permit) = self.shared.renders.acquire().await else {
            return internal(&ServerError::Task("render slots closed".into()));
        };
        let generation = self.generation();
        if let Some(doc) = self.shared.cache.get(&key, generation) {
            self.shared
                .metrics
                .cache_hits
                .fetch_add(1, Ordering::Relaxed);
            return with_html_policy(respond(headers, &doc));
        }
        self.shared
            .metrics
            .cache_misses
            .fetch_add(1, Ordering::Relaxed);
        let shared = self.shared.clone();
        let rendered =
            tokio::task::spawn_blocking(move || render(&shared, generation).map(Arc::new)).await;
        match rendered {
            Ok(Ok(doc)) => {
                self.shared.cache.put(key, doc.clone(), self.generation());
                with_html_policy(respond(headers, &doc))
            }
            Ok(Err(e)) => internal(&e),
            Err(e) => internal(&ServerError::Task(e.to_string())),
        }
    }
}

/// Adds the content security policy to HTML responses.
fn with_html_policy(mut r: Response) -> Response {
    let is_html = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html {
        r.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(HTML_CSP),
        );
    }
    r
}

/// Newest-first items of `scope` that pass `filters`, at most `filters.limit`, and the cursor of
/// the next page when there may be more.
fn collect(
    store: &Store,
    scope: &Scope,
    filters: &Filters,
) -> Result<(Vec<Item>, Option<Cursor>), StoreError> {
    let mut out: Vec<Item> = Vec::with_capacity(filters.limit.min(64));
    let mut position = filters.before.clone();
    let mut scanned = 0usize;
    // The first page asks for just enough for an unfiltered answer (and one more, to know
    // whether there is a next page); later pages, needed only when filters drop items, are
    // larger. Every item read is decoded, so reading 250 for a 50-item feed was 5x the work.
    let mut step = filters.limit.saturating_add(1).clamp(1, SCAN_STEP);
    loop {
        let page = store.latest(scope, position.as_ref(), step)?;
        step = SCAN_STEP;
        let exhausted = page.next.is_none();
        for item in page.items {
            if filters.since.is_some_and(|s| item.first_seen <= s) {
                return Ok((out, None));
            }
            let here = Cursor {
                first_seen: item.first_seen,
                id: item.id.clone(),
            };
            if filters.matches(&item) {
                if out.len() >= filters.limit {
                    let next = out.last().map(|i| Cursor {
                        first_seen: i.first_seen,
                        id: i.id.clone(),
                    });
                    return Ok((out, next));
                }
                out.push(item);
            }
            position = Some(here);
            scanned += 1;
            if scanned >= MAX_SCAN {
                return Ok((out, position));
            }
        }
        if exhausted {
            return Ok((out, None));
        }
    }
}

/// The newest date a reader could see change in `items`, never in the future; `fallback` when
/// there are none.
fn last_modified(items: &[Item], fallback: DateTime<Utc>) -> DateTime<Utc> {
    let now = Utc::now();
    items
        .iter()
        .map(|i| publish::item_updated(i).max(i.first_seen).min(now))
        .max()
        .unwrap_or(fallback)
}

fn with_query(url: String, query: &str) -> String {
    if query.is_empty() {
        url
    } else {
        format!("{url}?{query}")
    }
}

// ---------------------------------------------------------------------------------------------
// Feeds

async fn feed(
    State(state): State<ServerState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some((id, ext)) = file.rsplit_once('.') else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no feed {file:?}: use /feeds/ID.rss, .atom or .json"),
        );
    };
    let format = match ext {
        "rss" => FeedFormat::Rss,
        "atom" => FeedFormat::Atom,
        "json" => FeedFormat::Json,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no feed format {ext:?}: use .rss, .atom or .json"),
            )
        }
    };
    let (kind, title) = if id == "all" {
        (TaxonKind::All, "all news".to_string())
    } else {
        match state.shared.taxa.get(id) {
            Some(t) => (t.kind, t.title.clone()),
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no feed for {id:?}: not a programme, initiative or region id"),
                )
            }
        }
    };
    let filters = match Filters::parse(
        query.as_deref(),
        FilterRoute::Feed,
        &state.shared.taxa,
        &|s| state.is_source(s),
    ) {
        Ok(f) => f,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let id = id.to_string();
    let key = format!(
        "feed {id}.{ext}?{}",
        filters.canonical(filters.before.as_ref())
    );
    state
        .cached_or_render(key, &headers, move |shared, generation| {
            render_feed(shared, generation, &id, kind, &title, format, &filters)
        })
        .await
}

fn render_feed(
    shared: &Shared,
    generation: u64,
    id: &str,
    kind: TaxonKind,
    title: &str,
    format: FeedFormat,
    filters: &Filters,
) -> Result<Rendered, ServerError> {
    let scope = match kind {
        TaxonKind::All => Scope::All,
        _ => Scope::Label(id.to_string()),
    };
    let (items, next) = collect(&shared.store, &scope, filters)?;
    let base = &shared.options.base_url;
    let url = feed_url(base, id, format);
    let mut paging = Paging::default();
    if filters.before.is_some() || next.is_some() {
        paging.first = Some(with_query(url.clone(), &filters.canonical(None)));
    }
    if let Some(c) = &next {
        paging.next = Some(with_query(url.clone(), &filters.canonical(Some(c))));
    }
    let site = &shared.options.site_title;
    let updated = publish::latest_update(&items).unwrap_or(shared.started);
    let descriptor = FeedDescriptor {
        id: id.to_string(),
        kind,
        title: format!("{site}: {title}"),
        description: match kind {
            TaxonKind::All => format!("Every news item collected by {site}"),
            _ => format!("News items about {title}, collected by {site}"),
        },
        self_url: with_query(url, &filters.canonical(filters.before.as_ref())),
        html_url: format!("{base}/"),
        base_url: base.clone(),
        hub: shared.options.websub_hub.clone(),
        updated,
        author: site.clone(),
        paging,
        filters: filters.described(),
        language: None,
    };
    let body = match format {
        FeedFormat::Rss => publish::render_rss(&descriptor, &shared.sources, &items)?,
        FeedFormat::Atom => publish::render_atom(&descriptor, &shared.sources, &items)?,
        FeedFormat::Json => publish::render_json_feed(&descriptor, &shared.sources, &items)?,
    };
    Ok(Rendered::new(
        body.into_bytes(),
        format.content_type(),
        FEED_CACHE_CONTROL,
        last_modified(&items, shared.started),
        generation,
    ))
}

// ---------------------------------------------------------------------------------------------
// OPML, index page, API

async fn opml(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    state
        .cached_or_render("opml".into(), &headers, |shared, generation| {
            let mut entries = vec![OpmlEntry {
                id: "all".into(),
                title: "All news".into(),
                kind: TaxonKind::All,
            }];
            entries.extend(shared.taxa.iter().map(|t| OpmlEntry {
                id: t.id.clone(),
                title: t.title.clone(),
                kind: t.kind,
            }));
            let body = publish::render_opml(
                &shared.options.site_title,
                &shared.options.base_url,
                shared.started,
                &entries,
                &FeedFormat::ALL,
            )?;
            Ok(Rendered::new(
                body.into_bytes(),
                "text/x-opml; charset=utf-8",
                PAGE_CACHE_CONTROL,
                shared.started,
                generation,
            ))
        })
        .await
}

async fn index(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    state
        .cached_or_render("index".into(), &headers, render_index)
        .await
}

fn render_index(shared: &Shared, generation: u64) -> Result<Rendered, ServerError> {
    let now = Utc::now();
    let counts = shared.store.counts_per_label()?;
    let taxa: Vec<TaxonCount> = shared
        .taxa
        .iter()
        .map(|t| TaxonCount {
            id: t.id.clone(),
            title: t.title.clone(),
            kind: t.kind,
            count: counts.get(&t.id).copied().unwrap_or(0),
        })
        .collect();
    let latest = shared.store.latest(&Scope::All, None, INDEX_LATEST)?.items;
    let mut chart = WeeklyCounts::default();
    for t in shared.taxa.of_kind(TaxonKind::Programme) {
        let weeks = shared.store.weekly_counts(&t.id, CHART_WEEKS, now)?;
        if chart.week_starts.is_empty() {
            chart.week_starts = weeks.iter().map(|w| w.week_start.date_naive()).collect();
        }
        chart.series.push(WeeklySeries {
            id: t.id.clone(),
            title: t.title.clone(),
            counts: weeks
                .iter()
                .map(|w| u32::try_from(w.count).unwrap_or(u32::MAX))
                .collect(),
        });
    }
    let page = IndexPage {
        site_title: &shared.options.site_title,
        base_url: &shared.options.base_url,
        total_items: shared.store.item_count() as u64,
        taxa: &taxa,
        latest: &latest,
        sources: &shared.sources,
        chart: &chart,
        generated: now,
    };
    let body = publish::render_index(&page)?;
    Ok(Rendered::new(
        body.into_bytes(),
        HTML,
        PAGE_CACHE_CONTROL,
        last_modified(&latest, shared.started),
        generation,
    ))
}

#[derive(serde::Serialize)]
struct ApiPage<'a> {
    count: usize,
    items: &'a [Item],
    /// Cursor for `before=`, None on the last page.
    next_before: Option<String>,
    /// The URL of the next page.
    next_url: Option<String>,
}

async fn api_items(
    State(state): State<ServerState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    // `programme=` narrows the walk to one label's index; the rest are shared with feeds.
    let (programme, rest) = match split_programme(query.as_deref()) {
        Ok(v) => v,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    if let Some(p) = &programme {
        if state.shared.taxa.get(p).map(|t| t.kind) != Some(TaxonKind::Programme) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("programme={p:?} is not a known programme id"),
            );
        }
    }
    let filters = match Filters::parse(
        rest.as_deref(),
        FilterRoute::Api,
        &state.shared.taxa,
        &|s| state.is_source(s),
    ) {
        Ok(f) => f,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let key = format!(
        "api {}?{}",
        programme.as_deref().unwrap_or("all"),
        filters.canonical(filters.before.as_ref())
    );
    state
        .cached_or_render(key, &headers, move |shared, generation| {
            let scope = programme.clone().map_or(Scope::All, Scope::Label);
            let (items, next) = collect(&shared.store, &scope, &filters)?;
            let next_url = next.as_ref().map(|c| {
                let mut q = filters.canonical(Some(c));
                if let Some(p) = &programme {
                    let enc: String = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("programme", p)
                        .finish();
                    q = format!("{enc}&{q}");
                }
                format!("{}/api/items?{q}", shared.options.base_url)
            });
            let page = ApiPage {
                count: items.len(),
                items: &items,
                next_before: next.as_ref().map(|c| c.to_string()),
                next_url,
            };
            let body = serde_json::to_vec(&page).map_err(|e| ServerError::Json(e.to_string()))?;
            Ok(Rendered::new(
                body,
                "application/json",
                PAGE_CACHE_CONTROL,
                last_modified(&items, shared.started),
                generation,
            ))
        })
        .await
}

/// Takes `programme=` out of an API query string.
fn split_programme(query: Option<&str>) -> Result<(Option<String>, Option<String>), String> {
    let Some(q) = query else {
        return Ok((None, None));
    };
    let mut programme = None;
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()).take(64) {
        if k == "programme" {
            if programme.is_some() {
                return Err("parameter programme= given twice".into());
            }
            programme = Some(v.trim().to_string());
        } else {
            rest.append_pair(&k, &v);
        }
    }
    Ok((programme, Some(rest.finish())))
}

// ---------------------------------------------------------------------------------------------
// Health and metrics

#[derive(serde::Serialize)]
struct FailingFeed {
    feed: String,
    consecutive_errors: u32,
    last_error: Option<String>,
    last_success: Option<DateTime<Utc>>,
}

#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    store_open: bool,
    items: u64,
    /// The newest fetch of any feed: when the last fetch cycle ran.
    last_fetch_cycle: Option<DateTime<Utc>>,
    failing_feeds: Vec<FailingFeed>,
}

async fn healthz(State(state): State<ServerState>) -> Response {
    let shared = state.shared.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<Health, StoreError> {
        let states = shared.store.feed_states()?;
        let last_fetch_cycle = states.iter().filter_map(|(_, s)| s.last_fetch).max();
        let failing_feeds: Vec<FailingFeed> = states
            .into_iter()
            .filter(|(_, s)| s.error_count > 0)
            .map(|(FeedId(feed), s)| FailingFeed {
                feed,
                consecutive_errors: s.error_count,
                last_error: s.last_error,
                last_success: s.last_success,
            })
            .collect();
        Ok(Health {
            status: if failing_feeds.is_empty() {
                "ok"
            } else {
                "degraded"
            },
            store_open: true,
            items: shared.store.item_count() as u64,
            last_fetch_cycle,
            failing_feeds,
        })
    })
    .await;
    let (status, health) = match read {
        Ok(Ok(h)) => (StatusCode::OK, h),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check cannot read the store");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Health {
                    status: "error",
                    store_open: false,
                    items: 0,
                    last_fetch_cycle: None,
                    failing_feeds: Vec::new(),
                },
            )
        }
        Err(e) => return internal(&ServerError::Task(e.to_string())),
    };
    let body = serde_json::to_string(&health).unwrap_or_else(|_| "{}".into());
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/status`: every feed's stored state and item count, the item total and the store's
/// size on disk (what `newsrelay status` shows while the daemon holds the store).
async fn api_status(State(state): State<ServerState>) -> Response {
    let Some(path) = state.store_path.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "status is not enabled on this server",
        );
    };
    let shared = state.shared.clone();
    let read = tokio::task::spawn_blocking(move || {
        crate::status::StoreSnapshot::read(&shared.store, &path, Utc::now())
    })
    .await;
    let snapshot = match read {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return internal(&ServerError::Store(e)),
        Err(e) => return internal(&ServerError::Task(e.to_string())),
    };
    match serde_json::to_string(&snapshot) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => internal(&ServerError::Json(e.to_string())),
    }
}

async fn metrics(State(state): State<ServerState>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.shared.metrics.render(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Unsubscribe (RFC 8058) and admin

fn html_page(status: StatusCode, body: String) -> Response {
    with_html_policy(
        (
            status,
            [
                (header::CONTENT_TYPE, HTML),
                (header::CACHE_CONTROL, "no-store"),
            ],
            Body::from(body),
        )
            .into_response(),
    )
}

/// Checks the token and returns the subscriber's email, or the response to send instead.
async fn subscriber_for(state: &ServerState, token: String) -> Result<String, Response> {
    let Some(u) = state.unsubscribe.clone() else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "digests are not enabled on this server",
        ));
    };
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "malformed unsubscribe token",
        ));
    }
    match tokio::task::spawn_blocking(move || u.subscriber_for_token(&token)).await {
        Ok(Some(email)) => Ok(email),
        Ok(None) => Err(error(
            StatusCode::NOT_FOUND,
            "this unsubscribe link is not valid (it may be for a removed subscription)",
        )),
        Err(e) => Err(internal(&ServerError::Task(e.to_string()))),
    }
}

async fn unsubscribe_page(State(state): State<ServerState>, Path(token): Path<String>) -> Response {
    let email = match subscriber_for(&state, token.clone()).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let o = &state.shared.options;
    match publish::render_unsubscribe_confirm(&o.site_title, &o.base_url, &token, Some(&email)) {
        Ok(page) => html_page(StatusCode::OK, page),
        Err(e) => internal(&e.into()),
    }
}

async fn unsubscribe_post(State(state): State<ServerState>, Path(token): Path<String>) -> Response {
    let email = match subscriber_for(&state, token).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let Some(u) = state.unsubscribe.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "digests are not enabled on this server",
        );
    };
    let who = email.clone();
    match tokio::task::spawn_blocking(move || u.unsubscribe(&who)).await {
        Ok(Ok(())) => {
            tracing::info!(subscriber = %email, "unsubscribed");
            let o = &state.shared.options;
            match publish::render_unsubscribe_done(&o.site_title, &o.base_url, Some(&email)) {
                Ok(page) => html_page(StatusCode::OK, page),
                Err(e) => internal(&e.into()),
            }
        }
        Ok(Err(reason)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot unsubscribe: {reason}"),
        ),
        Err(e) => internal(&ServerError::Task(e.to_string())),
    }
}

/// Constant-time comparison of the presented bearer token.
fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// None when the request carries the admin token, else the response to send.
fn require_admin(state: &ServerState, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = state.shared.options.admin_token.as_deref() else {
        return Some(error(
            StatusCode::NOT_FOUND,
            "admin routes are disabled (no server.admin_token_file)",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if token_matches(p.as_bytes(), expected.as_bytes()) => None,
        _ => {
            let mut r = error(StatusCode::UNAUTHORIZED, "admin token required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"newsrelay admin\""),
            );
            Some(r)
        }
    }
}

async fn admin_fetch(
    State(state): State<ServerState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = require_admin(&state, &headers) {
        return denied;
    }
    let mut feed = None;
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).take(8) {
        match k.as_ref() {
            "feed" if state.is_source(&v) => feed = Some(v.to_string()),
            "feed" => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("feed={v:?} is not a configured feed id"),
                )
            }
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?} (allowed: feed)"),
                )
            }
        }
    }
    let Some(tx) = &state.fetch_trigger else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no fetch scheduler in this process (run `newsrelay run`)",
        );
    };
    match tx.try_send(FetchRequest { feed }) {
        Ok(()) => (StatusCode::ACCEPTED, "fetch cycle requested\n").into_response(),
        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "a fetch cycle is already queued",
        ),
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the fetch scheduler has stopped",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_comparison() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret1", b"secret"));
    }

    #[test]
    fn programme_is_split_from_the_api_query() {
        let (p, rest) = split_programme(Some("programme=asylum&limit=5")).unwrap();
        assert_eq!(p.as_deref(), Some("asylum"));
        assert_eq!(rest.as_deref(), Some("limit=5"));
        assert!(split_programme(Some("programme=a&programme=b")).is_err());
    }
}
