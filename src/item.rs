//! Plain data shared by every stage: [`Item`] and its identifiers, hashes and labels.
//!
//! In: nothing (this module only defines types). Out: the types the rest of the pipeline
//! passes around. It must never do I/O or hold behaviour beyond small conversions; an `Item` is
//! built only by `normalize`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The operator-chosen id of a configured feed (`[[feeds]] id`), e.g. `icmpd-news`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeedId(pub String);

/// Deterministic id of an item: a hex digest of the key chosen by `normalize`
/// (trusted guid, else canonical link, else title and date). Never random.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub String);

/// Hash of the fields a reader sees (title, link, summary, content, enclosures). Leaves out
/// anything that changes on every fetch, so an unchanged item hashes the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(pub u64);

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Which key the item id was derived from; recorded so a feed's fallback is visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdBasis {
    Guid,
    Link,
    TitleDate,
}

/// One feed an item arrived through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The configured feed.
    pub feed: FeedId,
    /// The entry's id in that feed (guid / atom:id), if it had one.
    pub guid: Option<String>,
    /// The link as that feed gave it (before canonicalisation).
    pub link: Option<String>,
}

/// An enclosure (podcast audio, attached PDF).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enclosure {
    pub url: String,
    pub mime_type: Option<String>,
    pub length: Option<u64>,
}

/// One label given by the classifier or by feed defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// Taxonomy id, e.g. `asylum`, `mieux`, `western-balkans`.
    pub id: String,
    /// Confidence in 0..=1.
    pub score: f32,
    /// Human-readable reasons: matched phrases, model terms, feed default.
    pub why: Vec<String>,
}

/// Every label of an item, by kind, and the taxonomy version that produced them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    pub programmes: Vec<Label>,
    pub initiatives: Vec<Label>,
    pub regions: Vec<Label>,
    /// Version of the taxonomy these labels came from; 0 means not yet classified.
    pub taxonomy_version: u64,
}

impl Labels {
    /// All label ids of every kind.
    pub fn all_ids(&self) -> impl Iterator<Item = &str> {
        self.programmes
            .iter()
            .chain(&self.initiatives)
            .chain(&self.regions)
            .map(|l| l.id.as_str())
    }
    pub fn has(&self, id: &str) -> bool {
        self.all_ids().any(|x| x == id)
    }
}

/// A normalised news item, as stored and republished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Deterministic id, stable across restarts and re-fetches.
    pub id: ItemId,
    /// What the id was derived from.
    pub id_basis: IdBasis,
    /// The feed that first brought the item.
    pub feed: FeedId,
    /// Every feed the item arrived through (a merged duplicate adds one).
    pub sources: Vec<Source>,
    /// Canonical absolute link to the original article.
    pub link: Option<String>,
    /// Plain-text title (entities decoded, tags removed).
    pub title: String,
    /// Short plain-text summary for digests and listings.
    pub summary_text: String,
    /// Sanitised HTML of the full content (or the summary when there is no content).
    pub content_html: String,
    pub published: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    /// When newsrelay first stored the item; drives digests and paging.
    pub first_seen: DateTime<Utc>,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    pub enclosures: Vec<Enclosure>,
    pub content_hash: ContentHash,
    /// 64-bit SimHash over title and text, for near-duplicate detection across feeds.
    pub fingerprint: u64,
    /// How many times an edit replaced the stored content.
    pub revision: u32,
    pub labels: Labels,
}

impl Item {
    /// The date shown to readers: published, else updated, else first seen.
    pub fn display_date(&self) -> DateTime<Utc> {
        self.published.or(self.updated).unwrap_or(self.first_seen)
    }
}

/// What newsrelay remembers about one configured feed between fetches. Written by the store,
/// decided by fetch and ingest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeedState {
    /// Validators for conditional GET.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_fetch: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// When the feed is next due (interval, ttl, Cache-Control, backoff all folded in).
    pub next_check: Option<DateTime<Utc>>,
    /// Consecutive failures; 0 when healthy.
    pub error_count: u32,
    pub last_error: Option<String>,
    /// A permanent redirect target adopted after it was seen repeatedly.
    pub moved_to: Option<String>,
    /// A permanent redirect target seen but not yet adopted, and how many times in a row.
    pub redirect_candidate: Option<(String, u32)>,
    /// The id basis this feed falls back to when its guids are missing or repeated.
    pub id_basis: Option<IdBasis>,
    /// Items first stored from this feed, all time.
    pub items_total: u64,
    /// The feed's own polling hints from its last parsed document (RSS `ttl` in minutes,
    /// `skipHours`, `skipDays`), kept so a 304 still honours them.
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
    #[serde(default)]
    pub skip_hours: Vec<u8>,
    #[serde(default)]
    pub skip_days: Vec<String>,
}
