//! The HTTP server: axum routes, read-only over the store.
//!
//! In: HTTP requests, the open [`Store`], the [`Metrics`], the server settings, the taxonomy
//! names and the configured source feeds. Out: feeds in RSS 2.0, Atom 1.0 and JSON Feed 1.1 per
//! programme, initiative, region and `all` (filters, RFC 5005 paging, WebSub hub link), OPML, a
//! JSON item API, the index page, health and Prometheus metrics, and the unsubscribe pages.
//! Documents are rendered once per store generation and kept pre-compressed (identity, gzip,
//! brotli) with strong ETags; conditional requests get 304. Public routes never change state:
//! only unsubscribe (through the function the daemon plugs in) and the bearer-token admin
//! routes do. It must never panic on a request, never block the async threads on the store
//! (reads run on the blocking pool), and never answer with an unbounded amount of work.

mod cache;
mod conditional;
mod query;
mod routes;
mod taxonomy;
mod websub;

pub use cache::{Coding, FeedCache, Rendered};
pub use query::{FilterRoute, Filters, DEFAULT_LIMIT, MAX_LIMIT};
pub use taxonomy::{Taxa, Taxon};
pub use websub::{hub_client, ping_hub, HubPingReport};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::publish::{
    feed_url, is_absolute_http, FeedFormat, PublishError, SourceDirectory, SourceFeed,
};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Bytes of rendered documents (all encodings) kept in the cache.
pub const DEFAULT_CACHE_BYTES: usize = 48 * 1024 * 1024;
/// A cached document is re-rendered after this long even without a store change (the index
/// page's week window moves with the clock).
const CACHE_MAX_AGE: Duration = Duration::from_secs(600);

/// Documents rendered at the same time.
const RENDER_CONCURRENCY: usize = 2;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot read taxonomy {path}: {message}")]
    Taxonomy { path: String, message: String },
    #[error("server.base_url {0:?} is not an absolute http(s) URL")]
    BaseUrl(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server stopped: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("cannot encode JSON: {0}")]
    Json(String),
    #[error("render task failed: {0}")]
    Task(String),
}

/// What the daemon plugs in for `GET/POST /unsubscribe/{token}`. Both calls may block (they run
/// on the blocking pool).
pub trait Unsubscribe: Send + Sync + 'static {
    /// The subscriber's email when `token` is a valid unsubscribe token, else None.
    fn subscriber_for_token(&self, token: &str) -> Option<String>;
    /// Records that `email` wants no more digests; the error is one line.
    fn unsubscribe(&self, email: &str) -> Result<(), String>;
}

/// A request from `POST /admin/fetch` for the daemon to run a fetch cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Only this feed, when given (`?feed=ID`).
    pub feed: Option<String>,
}

/// Everything the server is told at start, besides the store and metrics.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Public base URL without a trailing slash.
    pub base_url: String,
    /// Shown as the page title and feed title prefix.
    pub site_title: String,
    /// Bearer token of the admin routes; None disables them.
    pub admin_token: Option<String>,
    /// WebSub hub advertised in feeds.
    pub websub_hub: Option<String>,
    /// Byte budget of the rendered-document cache.
    pub cache_bytes: usize,
}

impl ServerOptions {
    /// Options from the validated `[server]` settings.
    pub fn from_config(config: &Config) -> ServerOptions {
        ServerOptions {
            base_url: config.server.base_url.trim_end_matches('/').to_string(),
            site_title: "newsrelay".to_string(),
            admin_token: config.server.admin_token.clone(),
            websub_hub: config.server.websub_hub.clone(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// What every request shares.
struct Shared {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    options: ServerOptions,
    taxa: Taxa,
    sources: SourceDirectory,
    /// Configured feed ids, accepted by `source=`.
    source_ids: Vec<String>,
    cache: FeedCache,
    /// Bumped by [`ServerState::invalidate`]; cached documents of older generations are stale.
    generation: AtomicU64,
    /// When this server started: the date of documents with no items.
    started: DateTime<Utc>,
    /// Renders running at once: bounds the CPU and memory a burst of misses (or of distinct
    /// queries) can take, and lets a burst on one document render it once.
    renders: tokio::sync::Semaphore,
}

/// The server's state, cheap to clone into every handler.
#[derive(Clone)]
pub struct ServerState {
    shared: Arc<Shared>,
    unsubscribe: Option<Arc<dyn Unsubscribe>>,
    fetch_trigger: Option<mpsc::Sender<FetchRequest>>,
    /// The store's folder, for its size in `GET /api/status`; None disables that route.
    store_path: Option<Arc<std::path::PathBuf>>,
}

impl ServerState {
    /// A state over `store` with the given taxonomy and source feeds.
    pub fn new(
        options: ServerOptions,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        taxa: Taxa,
        sources: Vec<(String, SourceFeed)>,
    ) -> Result<ServerState, ServerError> {
        if !is_absolute_http(&options.base_url) {
            return Err(ServerError::BaseUrl(options.base_url));
        }
        let source_ids = sources.iter().map(|(id, _)| id.clone()).collect();
        let sources = sources
            .into_iter()
            .map(|(id, f)| (crate::item::FeedId(id), f))
            .collect();
        Ok(ServerState {
            shared: Arc::new(Shared {
                store,
                metrics,
                cache: FeedCache::new(options.cache_bytes, CACHE_MAX_AGE),
                options,
                taxa,
                sources,
                source_ids,
                generation: AtomicU64::new(0),
                started: Utc::now(),
                renders: tokio::sync::Semaphore::new(RENDER_CONCURRENCY),
            }),
            unsubscribe: None,
            fetch_trigger: None,
            store_path: None,
        })
    }

    /// A state from the configuration: `[server]` settings, the taxonomy file's labels and the
    /// `[[feeds]]` list.
    pub fn from_config(
        config: &Config,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Result<ServerState, ServerError> {
        let taxa = Taxa::from_file(&config.taxonomy.file)?;
        let sources = config
            .feeds
            .iter()
            .map(|f| {
                (
                    f.id.clone(),
                    SourceFeed {
                        title: f.title.clone().unwrap_or_else(|| f.id.clone()),
                        url: f.url.clone(),
                    },
                )
            })
            .collect();
        Ok(ServerState::new(
            ServerOptions::from_config(config),
            store,
            metrics,
            taxa,
            sources,
        )?
        .with_store_path(&config.store.path))
    }

    /// Enables `GET /api/status` (what `newsrelay status` reads while the daemon holds the
    /// store), reporting the size of the store folder at `path`.
    pub fn with_store_path(mut self, path: &std::path::Path) -> ServerState {
        self.store_path = Some(Arc::new(path.to_path_buf()));
        self
    }

    /// Plugs in the unsubscribe check and action (from digests).
    pub fn with_unsubscribe(mut self, u: Arc<dyn Unsubscribe>) -> ServerState {
        self.unsubscribe = Some(u);
        self
    }

    /// Plugs in the channel `POST /admin/fetch` sends to.
    pub fn with_fetch_trigger(mut self, tx: mpsc::Sender<FetchRequest>) -> ServerState {
        self.fetch_trigger = Some(tx);
        self
    }

    /// Marks every rendered document stale. The daemon calls it after each ingest that stored
    /// or changed items (and after relabelling or purging).
    pub fn invalidate(&self) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        self.shared.cache.clear();
    }

    /// The current store generation.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Documents in the rendered cache now.
    pub fn cached_documents(&self) -> usize {
        self.shared.cache.len()
    }

    /// Public URLs of the feeds (every format) of `label_ids` and of `all`, for a WebSub ping
    /// after an ingest changed items with those labels. Unknown ids are left out.
    pub fn feed_urls_for(&self, label_ids: &[String]) -> Vec<String> {
        let base = &self.shared.options.base_url;
        let mut ids: Vec<&str> = vec!["all"];
        for id in label_ids {
            if self.shared.taxa.get(id).is_some() && !ids.contains(&id.as_str()) {
                ids.push(id);
            }
        }
        ids.iter()
            .flat_map(|id| FeedFormat::ALL.iter().map(move |f| feed_url(base, id, *f)))
            .collect()
    }

    /// The configured WebSub hub, if any.
    pub fn websub_hub(&self) -> Option<&str> {
        self.shared.options.websub_hub.as_deref()
    }
}

/// Binds the listening socket (`server.listen`).
pub async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    state: ServerState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, routes::router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// The router, for embedding or for tests that drive it without a socket.
pub fn router(state: ServerState) -> axum::Router {
    routes::router(state)
}
