//! Reclassification: brings every stored item's labels to the current classifier version.
//!
//! In: the open store, a [`Classifier`] and the configured feeds (their default labels). Out:
//! stored items relabelled in durable, resumable batches ([`Store::relabel_pass`]: each item
//! and its per-label index entries in one transaction with the pass's position), progress after
//! each batch, and a [`RelabelReport`]. The daemon runs passes on a [`Background`] thread, at
//! start and after a reload that changed the taxonomy, so fetch cycles never wait for one.
//! It must never hold a store transaction while classifying, and never do network I/O.

use crate::classify::{Classifier, ItemText};
use crate::config::FeedSettings;
use crate::item::{Item, Labels};
use crate::store::{RelabelReport, RelabelSelection, Store, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, RwLock};

/// Items per durable batch unless told otherwise.
pub const DEFAULT_BATCH: usize = 256;

/// Labels one stored item: its title, summary and the plain text of its content, plus the
/// default labels of `defaults` (its feed's `programmes`).
pub fn label_with_defaults(classifier: &Classifier, defaults: &[String], item: &Item) -> Labels {
    let text = crate::parse::sanitize::html_to_plain_text(&item.content_html);
    classifier.classify(
        &ItemText {
            title: &item.title,
            summary: &item.summary_text,
            content_text: &text,
            link: item.link.as_deref(),
        },
        defaults,
    )
}

/// Labels one stored item with the defaults of the configured feed that first brought it
/// (none when that feed is no longer configured).
pub fn label_item(classifier: &Classifier, feeds: &[FeedSettings], item: &Item) -> Labels {
    let defaults = feeds
        .iter()
        .find(|f| f.id == item.feed.0)
        .map_or(&[][..], |f| f.programmes.as_slice());
    label_with_defaults(classifier, defaults, item)
}

/// One pass over the whole store: every item whose `taxonomy_version` differs from
/// `classifier.version()` is relabelled, `batch` items per durable transaction. A pass that was
/// interrupted (killed, or stopped by `observe` returning false) at the same version resumes
/// after its last durable batch.
pub fn reclassify(
    store: &Store,
    classifier: &Classifier,
    feeds: &[FeedSettings],
    batch: usize,
    observe: &mut dyn FnMut(&RelabelReport) -> bool,
) -> Result<RelabelReport, StoreError> {
    store.relabel_pass(
        &RelabelSelection::All,
        classifier.version(),
        batch,
        &|item| label_item(classifier, feeds, item),
        observe,
    )
}

/// The classifier and feeds the daemon labels with, replaced when a reload changes them.
pub struct Live {
    current: RwLock<Arc<LiveState>>,
}

/// One consistent (classifier, feeds) pair.
pub struct LiveState {
    pub classifier: Classifier,
    pub feeds: Vec<FeedSettings>,
}

impl Live {
    pub fn new(classifier: Classifier, feeds: Vec<FeedSettings>) -> Arc<Live> {
        Arc::new(Live {
            current: RwLock::new(Arc::new(LiveState { classifier, feeds })),
        })
    }

    pub fn current(&self) -> Arc<LiveState> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn version(&self) -> u64 {
        self.current().classifier.version()
    }

    /// Installs a new pair; returns true when the classifier version changed (stored items
    /// are then due for reclassification).
    pub fn replace(&self, classifier: Classifier, feeds: Vec<FeedSettings>) -> bool {
        let changed = classifier.version() != self.version();
        let next = Arc::new(LiveState { classifier, feeds });
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        changed
    }

    /// The ingest labeller over whatever classifier is current when an item is stored.
    pub fn labeler(self: &Arc<Self>) -> crate::fetch_cycle::Labeler {
        let live = self.clone();
        Arc::new(move |feed: &FeedSettings, item: &Item| {
            label_with_defaults(&live.current().classifier, &feed.programmes, item)
        })
    }
}

/// A thread that runs reclassification passes: one at start, one after each [`Background::wake`].
/// A pass in progress stops between batches when the live classifier changes (the next pass
/// starts over at the new version) or on [`Background::stop`] (it resumes on the next start).
pub struct Background {
    wake: std::sync::Mutex<mpsc::Sender<()>>,
    stop: Arc<AtomicBool>,
    handle: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Background {
    /// Starts the thread; `on_pass` is called after every pass that relabelled something
    /// (the server invalidates its rendered feeds there).
    pub fn start(
        store: Arc<Store>,
        live: Arc<Live>,
        batch: usize,
        on_pass: Box<dyn Fn(&RelabelReport) + Send>,
    ) -> std::io::Result<Background> {
        let (tx, rx) = mpsc::channel::<()>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::Builder::new()
            .name("reclassify".into())
            .spawn(move || loop {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let state = live.current();
                let version = state.classifier.version();
                let started = std::time::Instant::now();
                let result =
                    reclassify(&store, &state.classifier, &state.feeds, batch, &mut |_| {
                        !stopping.load(Ordering::SeqCst) && live.version() == version
                    });
                match result {
                    Ok(r) => {
                        tracing::info!(
                            version = %format!("{version:016x}"),
                            checked = r.examined,
                            relabelled = r.changed,
                            labels_changed = r.labels_changed,
                            resumed = r.resumed,
                            stopped = r.stopped,
                            ms = started.elapsed().as_millis() as u64,
                            "reclassification done"
                        );
                        if r.changed > 0 {
                            on_pass(&r);
                        }
                    }
                    Err(e) => tracing::error!(
                        "reclassification failed: {e}; it resumes after the next reload or restart"
                    ),
                }
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if live.version() != version {
                    continue;
                }
                if rx.recv().is_err() {
                    break;
                }
                while rx.try_recv().is_ok() {}
            })?;
        Ok(Background {
            wake: std::sync::Mutex::new(tx),
            stop,
            handle: std::sync::Mutex::new(Some(handle)),
        })
    }

    /// Asks for another pass (after the live classifier changed).
    pub fn wake(&self) {
        if let Ok(tx) = self.wake.lock() {
            let _ = tx.send(());
        }
    }

    /// Stops after the current batch (which is durable) and waits for the thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}
