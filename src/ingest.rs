//! Ingest: one fetched document end to end (parse → normalize → dedup → classify → store).
//!
//! In: the store, the feed's settings, the fetched body with its URL and Content-Type, the
//! classifier as a function, and the current instant. Out: an [`IngestReport`] (new, updated,
//! merged, skipped, purged, errors). A document's writes are staged whole into the store's
//! write batch (so they commit atomically) and flushed before the report says they are stored;
//! its dedup lookups and staging hold the store's dedup lock, so two feeds bringing one story
//! at once cannot both insert it. A bad feed becomes a report, never a
//! panic, and never stops other feeds. It does no network I/O.

use crate::config::FeedSettings;
use crate::dedup::{self, Intent};
use crate::item::{FeedId, IdBasis, Item, Label, Labels};
use crate::normalize;
use crate::parse::{self, FeedInput, ParsedFeed};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::fmt;

/// What happened to one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub feed: String,
    /// Entries in the document.
    pub entries: usize,
    pub inserted: usize,
    pub updated: usize,
    /// Items recognised as another feed's story and added to it as a source.
    pub merged: usize,
    pub skipped: usize,
    /// Items purged by the feed's retention during this run.
    pub purged: usize,
    /// The id basis used for this document.
    pub id_basis: Option<IdBasis>,
    /// The document was malformed and recovered (why).
    pub bozo: Option<String>,
    /// Why nothing (or not everything) was stored; one line.
    pub error: Option<String>,
}

impl IngestReport {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

impl fmt::Display for IngestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} entries, {} new, {} updated, {} merged, {} unchanged, {} purged",
            self.feed,
            self.entries,
            self.inserted,
            self.updated,
            self.merged,
            self.skipped,
            self.purged
        )?;
        if let Some(b) = &self.bozo {
            write!(f, " (recovered: {b})")?;
        }
        if let Some(e) = &self.error {
            write!(f, "; error: {e}")?;
        }
        Ok(())
    }
}

/// Ingests one fetched document for `feed`. Never panics on bad input: every failure is in
/// the report's `error`.
pub fn ingest_document(
    store: &Store,
    feed: &FeedSettings,
    body: &[u8],
    url: Option<&str>,
    content_type: Option<&str>,
    label: &dyn Fn(&Item) -> Labels,
    now: DateTime<Utc>,
) -> IngestReport {
    let feed_id = FeedId(feed.id.clone());
    let mut report = IngestReport {
        feed: feed.id.clone(),
        ..Default::default()
    };
    let input = FeedInput {
        body,
        url: url.or(Some(feed.url.as_str())),
        content_type,
        headers: &[],
        limits: Default::default(),
    };
    match parse::parse_feed(&input) {
        Ok(parsed) => ingest_parsed(store, feed, &parsed, input.url, label, now),
        Err(e) => {
            report.error = Some(format!(
                "cannot parse {}: {e}",
                input.url.unwrap_or("document")
            ));
            record_failure(store, &feed_id, &report, now);
            report
        }
    }
}

/// Ingests an already parsed document (the rest of [`ingest_document`]): normalise, decide,
/// classify new and changed items, apply atomically, make durable, apply retention.
pub fn ingest_parsed(
    store: &Store,
    feed: &FeedSettings,
    parsed: &ParsedFeed,
    url: Option<&str>,
    label: &dyn Fn(&Item) -> Labels,
    now: DateTime<Utc>,
) -> IngestReport {
    let feed_id = FeedId(feed.id.clone());
    let mut report = IngestReport {
        feed: feed.id.clone(),
        ..Default::default()
    };
    report.entries = parsed.items.len();
    if parsed.bozo {
        report.bozo = Some(
            parsed
                .bozo_exception
                .clone()
                .unwrap_or_else(|| "malformed document".into()),
        );
    }
    let mut state = match store.feed_state(&feed_id) {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            report.error = Some(format!("cannot read feed state: {e}"));
            return report;
        }
    };
    let normalized = normalize::normalize_feed(parsed, &feed_id, url, state.id_basis, now);
    // Classified before the dedup lock (classifying is the costly part): the items whose id
    // is not stored yet, which are nearly all the inserts. An item dedup turns into an update
    // is classified under the lock.
    let mut labels_by_id: std::collections::HashMap<String, Labels> = normalized
        .items
        .iter()
        .filter(|item| !store.has_item(&item.id).unwrap_or(false))
        .map(|item| (item.id.0.clone(), label(item)))
        .collect();
    let dedup_guard = store.dedup_lock();
    let known = match store.known_for(&normalized.items) {
        Ok(k) => k,
        Err(e) => {
            report.error = Some(format!("cannot look up stored items: {e}"));
            return report;
        }
    };
    let decisions = dedup::decide(normalized.items, &known, store.policy());
    let mut id_basis = normalized.id_basis;
    if decisions.guid_flips > 0 && id_basis == IdBasis::Guid {
        // Guids changed while links stayed: the guids are not stable; use links from now on.
        id_basis = IdBasis::Link;
    }
    report.id_basis = Some(id_basis);
    let mut intents = decisions.intents;
    for intent in &mut intents {
        if let Intent::Insert(item) | Intent::Update(item) = intent {
            let mut labels = labels_by_id
                .remove(&item.id.0)
                .unwrap_or_else(|| label(item));
            add_feed_defaults(&mut labels, &feed.programmes);
            item.labels = labels;
        }
    }
    let inserting = intents
        .iter()
        .filter(|i| matches!(i, Intent::Insert(_)))
        .count();
    state.items_total = state.items_total.saturating_add(inserting as u64);
    state.id_basis = Some(id_basis);
    state.last_success = Some(now);
    state.error_count = 0;
    state.last_error = None;
    let applied = store.apply_with(&feed_id, intents, Some(&state), dedup_guard);
    let applied = match applied {
        Ok(a) => a,
        Err(e) => {
            report.error = Some(format!("cannot store items: {e}"));
            return report;
        }
    };
    report.inserted = applied.inserted;
    report.updated = applied.updated;
    report.merged = applied.merged;
    report.skipped = applied.skipped;
    if let Some(retention) = feed.retention {
        match store.purge_expired(&feed_id, retention, now) {
            Ok(n) => report.purged = n,
            Err(e) => report.error = Some(format!("retention purge failed: {e}")),
        }
    }
    report
}

/// The feed's configured programmes, added to every item from it (score 1, reason "feed
/// default") unless the classifier already gave them.
fn add_feed_defaults(labels: &mut Labels, programmes: &[String]) {
    for p in programmes {
        if !labels.programmes.iter().any(|l| &l.id == p) {
            labels.programmes.push(Label {
                id: p.clone(),
                score: 1.0,
                why: vec!["feed default".into()],
            });
        }
    }
}

fn record_failure(store: &Store, feed: &FeedId, report: &IngestReport, now: DateTime<Utc>) {
    if let Ok(state) = store.feed_state(feed) {
        let mut state = state.unwrap_or_default();
        state.error_count = state.error_count.saturating_add(1);
        state.last_error = report.error.clone();
        state.last_fetch = Some(now);
        // A failure to record the failure is not worth more than the failure itself.
        let _ = store.put_feed_state(feed, &state);
    }
}
