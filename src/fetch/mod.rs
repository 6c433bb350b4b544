//! Fetching: a feed URL and its stored validators → a fetched body, not-modified, or a failure.
//!
//! In: a [`FetchRequest`] (URL, ETag, Last-Modified) and, once per process, the
//! [`FetchSettings`]. Out: a [`FetchOutcome`] holding the decompressed body capped at
//! `max_body` and the [`ResponseMeta`] the parser and the scheduler need (final URL, parser
//! headers, new validators, Cache-Control max-age, a permanent redirect), or a [`FetchError`]
//! that reads as one line naming what failed, which URL and which limit. The pure
//! [`policy`] then folds that result into the feed's state and decides when it is next due.
//! It must never read an unbounded body, wait without a deadline, follow redirects without a
//! limit or in a loop, exceed the global or per-host connection limits, or touch the store.

pub mod http_hints;
pub mod policy;

pub use http_hints::RetryAfter;
pub use policy::{apply_outcome, backoff_delay, FeedHints};

use crate::config::FetchSettings;
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::StatusCode;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// Response headers handed to the parser, by lower-case name.
pub const PARSER_HEADERS: [&str; 3] = ["content-type", "content-location", "content-language"];

/// Body chunks held before they are joined into one buffer.
const CHUNKS_BEFORE_JOIN: usize = 256;

/// Host semaphores are pruned of idle entries once the map holds this many hosts.
const HOST_MAP_PRUNE_AT: usize = 1024;

/// The product token sent in `User-Agent`.
pub fn user_agent(contact_url: Option<&str>) -> String {
    let version = env!("CARGO_PKG_VERSION");
    match contact_url.map(str::trim).filter(|c| !c.is_empty()) {
        Some(contact) => format!("newsrelay/{version} (+{contact})"),
        None => format!("newsrelay/{version}"),
    }
}

/// One fetch to make: where, and the validators stored from the last successful fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchRequest {
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl FetchRequest {
    /// The request for a configured feed: its adopted permanent address if it moved, else the
    /// configured one, with the stored validators.
    pub fn for_feed(configured_url: &str, state: &crate::item::FeedState) -> FetchRequest {
        FetchRequest {
            url: state
                .moved_to
                .clone()
                .unwrap_or_else(|| configured_url.to_string()),
            etag: state.etag.clone(),
            last_modified: state.last_modified.clone(),
        }
    }
}

/// What a fetch produced.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchOutcome {
    /// A new body (status 2xx).
    Modified(FetchedFeed),
    /// The server answered 304: the stored copy is current.
    NotModified(ResponseMeta),
}

impl FetchOutcome {
    /// The response metadata, whichever the outcome.
    pub fn meta(&self) -> &ResponseMeta {
        match self {
            FetchOutcome::Modified(f) => &f.meta,
            FetchOutcome::NotModified(m) => m,
        }
    }
}

/// A fetched body and what came with it.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedFeed {
    /// The body, decompressed, at most `max_body` bytes.
    pub body: Vec<u8>,
    pub meta: ResponseMeta,
}

/// What the response said besides its body.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMeta {
    /// The URL the body came from, after redirects: the parser's base URL.
    pub final_url: String,
    /// The final HTTP status (200 for a file).
    pub status: u16,
    /// `Content-Type` exactly as sent (its charset may be wrong; the parser decides).
    pub content_type: Option<String>,
    /// The [`PARSER_HEADERS`] that were present, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Validators to store for the next conditional GET.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// `Cache-Control: max-age`: the server asks not to be polled sooner.
    pub cache_max_age: Option<Duration>,
    /// Where the chain of permanent redirects (301/308) from the requested URL led, if the
    /// chain started with one. Adopted by the policy only after repeated sightings.
    pub permanent_redirect: Option<String>,
    /// Redirects followed.
    pub redirects: u32,
    /// Time from the first request to the end of the body.
    pub elapsed: Duration,
}

/// Why a fetch failed. Each variant displays as one line naming the URL and the limit.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum FetchError {
    #[error("bad feed URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("no connection to {url} within the {limit:?} connect timeout")]
    ConnectTimeout { url: String, limit: Duration },
    #[error("fetching {url} took longer than the {limit:?} timeout")]
    Timeout { url: String, limit: Duration },
    #[error("body of {url} is over the {limit}-byte limit ({detail})")]
    TooLarge {
        url: String,
        limit: u64,
        /// `Content-Length: N`, `file of N bytes` or `stopped after N bytes`.
        detail: String,
    },
    #[error("{url}: more than {limit} redirects")]
    TooManyRedirects { url: String, limit: usize },
    #[error("{url}: redirect loop back to {target}")]
    RedirectLoop { url: String, target: String },
    #[error("{url}: bad redirect (status {status}): {reason}")]
    BadRedirect {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("{url}: HTTP {status}{}", retry_after.map(|r| format!(" (retry after {r})")).unwrap_or_default())]
    Http {
        url: String,
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    #[error("reading {url} failed: {reason}")]
    Io { url: String, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl FetchError {
    /// The `Retry-After` the server sent with an error status, if any.
    pub fn retry_after(&self) -> Option<RetryAfter> {
        match self {
            FetchError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The HTTP client with its limits. One per process; share it behind an `Arc`.
pub struct Fetcher {
    client: reqwest::Client,
    max_body: u64,
    max_redirects: usize,
    timeout: Duration,
    connect_timeout: Duration,
    global: Arc<Semaphore>,
    concurrency: usize,
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("max_body", &self.max_body)
            .field("max_redirects", &self.max_redirects)
            .field("timeout", &self.timeout)
            .field("per_host", &self.per_host)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Builds the client: rustls, gzip/brotli/deflate, no automatic redirects, the connect
    /// timeout, and the product User-Agent with the operator's contact URL.
    pub fn new(settings: &FetchSettings) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent(settings.contact_url.as_deref()))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| FetchError::Client(one_line(&e)))?;
        Ok(Fetcher {
            client,
            max_body: settings.max_body,
            max_redirects: settings.max_redirects,
            timeout: settings.timeout,
            connect_timeout: settings.connect_timeout,
            global: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            concurrency: settings.concurrency.max(1),
            per_host: settings.per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// Most requests in flight at once (`fetch.concurrency`).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Fetches one feed. `http(s)://` goes over the network (conditional GET, redirects by
    /// hand, size cap while streaming, one deadline for the whole exchange); `file://` reads
    /// from disk under the same size cap, with the file's modification time as Last-Modified.
    pub async fn fetch(&self, req: &FetchRequest) -> Result<FetchOutcome, FetchError> {
        let url = Url::parse(req.url.trim()).map_err(|e| FetchError::BadUrl {
            url: req.url.clone(),
            reason: e.to_string(),
        })?;
        match url.scheme() {
            "http" | "https" => {}
            "file" => {
                return match tokio::time::timeout(self.timeout, self.fetch_file(&url, req)).await {
                    Ok(result) => result,
                    Err(_) => Err(self.timed_out(&req.url)),
                }
            }
            other => {
                return Err(FetchError::BadUrl {
                    url: req.url.clone(),
                    reason: format!("scheme {other:?} is not supported (use http, https or file)"),
                })
            }
        }
        // Waiting in line is not part of the deadline: the host's turn first (so a queue for
        // one busy host does not hold global slots), then a global slot.
        let first_host = self.host_permit(&url).await?;
        let _global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| FetchError::Client("the fetcher was shut down".into()))?;
        let started = Instant::now();
        let exchange = self.fetch_http(url, req, first_host, started);
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(&req.url)),
        };
        match &result {
            Ok(outcome) => tracing::debug!(
                url = %req.url,
                status = outcome.meta().status,
                redirects = outcome.meta().redirects,
                elapsed_ms = outcome.meta().elapsed.as_millis() as u64,
                "fetched"
            ),
            Err(e) => tracing::debug!(url = %req.url, error = %e, "fetch failed"),
        }
        result
    }

    /// How many requests to `url`'s host may start now without waiting (for tests and metrics).
    pub fn host_permits_available(&self, url: &str) -> Option<usize> {
        let key = host_key(&Url::parse(url).ok()?)?;
        let hosts = self.hosts.lock().ok()?;
        Some(
            hosts
                .get(&key)
                .map_or(self.per_host, |s| s.available_permits()),
        )
    }

    async fn fetch_http(
        &self,
        start: Url,
        req: &FetchRequest,
        first_host: OwnedSemaphorePermit,
        started: Instant,
    ) -> Result<FetchOutcome, FetchError> {
        let mut current = start;
        let mut host_permit = Some(first_host);
        let mut visited: HashSet<String> = HashSet::new();
        visited.insert(current.as_str().to_string());
        let mut redirects: u32 = 0;
        // The target of the leading run of permanent redirects, and whether it is still running.
        let mut permanent_redirect: Option<String> = None;
        let mut permanent_run = true;

        loop {
            // Redirect hops wait for their host's turn inside the deadline; the previous hop's
            // permit is released first so two hosts are never held at once.
            let _host = match host_permit.take() {
                Some(permit) => permit,
                None => self.host_permit(&current).await?,
            };
            let response = self
                .client
                .get(current.clone())
                .headers(conditional_headers(req))
                .send()
                .await
                .map_err(|e| self.transport_error(current.as_str(), &e))?;
            let status = response.status();

            if is_redirect(status) {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| FetchError::BadRedirect {
                        url: current.to_string(),
                        status: status.as_u16(),
                        reason: "no readable Location header".into(),
                    })?;
                let next = current
                    .join(location.trim())
                    .map_err(|e| FetchError::BadRedirect {
                        url: current.to_string(),
                        status: status.as_u16(),
                        reason: format!("Location {location:?}: {e}"),
                    })?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(FetchError::BadRedirect {
                        url: current.to_string(),
                        status: status.as_u16(),
                        reason: format!("Location {next} is not http or https"),
                    });
                }
                if !visited.insert(next.as_str().to_string()) {
                    return Err(FetchError::RedirectLoop {
                        url: req.url.clone(),
                        target: next.to_string(),
                    });
                }
                redirects += 1;
                if redirects as usize > self.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: req.url.clone(),
                        limit: self.max_redirects,
                    });
                }
                let permanent = matches!(
                    status,
                    StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
                );
                if permanent && permanent_run {
                    permanent_redirect = Some(next.to_string());
                } else {
                    permanent_run = false;
                }
                current = next;
                continue;
            }

            let mut meta = response_meta(&response, started, redirects, permanent_redirect);
            if status == StatusCode::NOT_MODIFIED {
                return Ok(FetchOutcome::NotModified(meta));
            }
            if !status.is_success() {
                return Err(FetchError::Http {
                    url: current.to_string(),
                    status: status.as_u16(),
                    retry_after: response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(RetryAfter::parse),
                });
            }
            let body = self.read_capped(response, current.as_str()).await?;
            meta.elapsed = started.elapsed();
            return Ok(FetchOutcome::Modified(FetchedFeed { body, meta }));
        }
    }

    /// Streams the (decompressed) body, refusing a declared length over the cap before
    /// reading and stopping as soon as the decompressed bytes would pass it.
    async fn read_capped(
        &self,
        response: reqwest::Response,
        url: &str,
    ) -> Result<Vec<u8>, FetchError> {
        let declared = response.content_length();
        if let Some(len) = declared {
            if len > self.max_body {
                return Err(self.too_large(url, format!("Content-Length {len}")));
            }
        }
        // Chunks are kept as they arrive (no copy) and joined once at the end into an
        // exactly sized buffer. A server dribbling tiny chunks cannot make the chunk list
        // outgrow the body: every CHUNKS_BEFORE_JOIN chunks are joined into `joined`.
        let mut joined: Vec<u8> = Vec::new();
        let mut chunks = Vec::new();
        let mut total: u64 = 0;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.transport_error(url, &e))?;
            total += chunk.len() as u64;
            if total > self.max_body {
                return Err(self.too_large(url, format!("stopped after {total} bytes")));
            }
            if !chunk.is_empty() {
                chunks.push(chunk);
            }
            if chunks.len() >= CHUNKS_BEFORE_JOIN {
                chunks.drain(..).for_each(|c| joined.extend_from_slice(&c));
            }
        }
        // Always a copy: a chunk can be the sole owner of the connection's whole read buffer,
        // and `Vec::from` would keep that buffer's full capacity alive with the body.
        joined.reserve_exact(chunks.iter().map(|c| c.len()).sum());
        chunks.iter().for_each(|c| joined.extend_from_slice(c));
        Ok(joined)
    }

    async fn fetch_file(&self, url: &Url, req: &FetchRequest) -> Result<FetchOutcome, FetchError> {
        let started = Instant::now();
        let io_error = |e: std::io::Error| FetchError::Io {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let path = url.to_file_path().map_err(|_| FetchError::BadUrl {
            url: url.to_string(),
            reason: "not a local file path".into(),
        })?;
        // Only regular files: opening a FIFO blocks and a device may never end.
        let kind = tokio::fs::metadata(&path).await.map_err(io_error)?;
        if !kind.is_file() {
            return Err(FetchError::Io {
                url: url.to_string(),
                reason: "not a regular file".into(),
            });
        }
        let file = tokio::fs::File::open(&path).await.map_err(io_error)?;
        let metadata = file.metadata().await.map_err(io_error)?;
        if metadata.len() > self.max_body {
            return Err(self.too_large(url.as_str(), format!("file of {} bytes", metadata.len())));
        }
        let last_modified = metadata
            .modified()
            .ok()
            .map(|t| http_hints::format_http_date(chrono::DateTime::<chrono::Utc>::from(t)));
        let meta = ResponseMeta {
            final_url: url.to_string(),
            status: 200,
            content_type: None,
            headers: Vec::new(),
            etag: None,
            last_modified: last_modified.clone(),
            cache_max_age: None,
            permanent_redirect: None,
            redirects: 0,
            elapsed: Duration::ZERO,
        };
        if last_modified.is_some() && last_modified == req.last_modified {
            return Ok(FetchOutcome::NotModified(ResponseMeta {
                elapsed: started.elapsed(),
                ..meta
            }));
        }
        // The file may grow after the size check: read at most one byte past the cap.
        let mut body = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
        file.take(self.max_body.saturating_add(1))
            .read_to_end(&mut body)
            .await
            .map_err(io_error)?;
        if body.len() as u64 > self.max_body {
            return Err(self.too_large(url.as_str(), "file grew while reading".into()));
        }
        Ok(FetchOutcome::Modified(FetchedFeed {
            body,
            meta: ResponseMeta {
                elapsed: started.elapsed(),
                ..meta
            },
        }))
    }

    async fn host_permit(&self, url: &Url) -> Result<OwnedSemaphorePermit, FetchError> {
        let key = host_key(url).ok_or_else(|| FetchError::BadUrl {
            url: url.to_string(),
            reason: "no host".into(),
        })?;
        let semaphore = {
            let mut hosts = self
                .hosts
                .lock()
                .map_err(|_| FetchError::Client("host limiter poisoned".into()))?;
            if hosts.len() >= HOST_MAP_PRUNE_AT {
                hosts.retain(|_, s| Arc::strong_count(s) > 1);
            }
            hosts
                .entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        semaphore
            .acquire_owned()
            .await
            .map_err(|_| FetchError::Client("the fetcher was shut down".into()))
    }

    fn timed_out(&self, url: &str) -> FetchError {
        FetchError::Timeout {
            url: url.to_string(),
            limit: self.timeout,
        }
    }

    fn too_large(&self, url: &str, detail: String) -> FetchError {
        FetchError::TooLarge {
            url: url.to_string(),
            limit: self.max_body,
            detail,
        }
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error) -> FetchError {
        if e.is_connect() {
            if e.is_timeout() {
                return FetchError::ConnectTimeout {
                    url: url.to_string(),
                    limit: self.connect_timeout,
                };
            }
            return FetchError::Connect {
                url: url.to_string(),
                reason: one_line(e),
            };
        }
        if e.is_timeout() {
            return self.timed_out(url);
        }
        FetchError::Io {
            url: url.to_string(),
            reason: one_line(e),
        }
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// `host:port`, the unit the per-host limit counts.
fn host_key(url: &Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// If-None-Match / If-Modified-Since from the stored validators. A stored value that is not a
/// valid header value is left out rather than failing the fetch.
fn conditional_headers(req: &FetchRequest) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let pairs = [
        (header::IF_NONE_MATCH, req.etag.as_deref()),
        (header::IF_MODIFIED_SINCE, req.last_modified.as_deref()),
    ];
    for (name, value) in pairs {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v.trim()).ok()) {
            headers.insert(name, v);
        }
    }
    headers
}

fn response_meta(
    response: &reqwest::Response,
    started: Instant,
    redirects: u32,
    permanent_redirect: Option<String>,
) -> ResponseMeta {
    let h = response.headers();
    let text = |name: header::HeaderName| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let headers = PARSER_HEADERS
        .iter()
        .filter_map(|name| {
            h.get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*name).to_string(), v.trim().to_string()))
        })
        .collect();
    ResponseMeta {
        final_url: response.url().to_string(),
        status: response.status().as_u16(),
        content_type: text(header::CONTENT_TYPE),
        headers,
        etag: text(header::ETAG),
        last_modified: text(header::LAST_MODIFIED),
        cache_max_age: h
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(http_hints::cache_max_age)
            .fold(None, |acc, m| match (acc, m) {
                (Some(a), Some(b)) => Some(std::cmp::max(a, b)),
                (a, b) => a.or(b),
            }),
        permanent_redirect,
        redirects,
        elapsed: started.elapsed(),
    }
}

/// An error and its sources as one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text.replace(['\n', '\r'], " ")
}
