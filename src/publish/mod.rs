//! Publishing: stored items → RSS 2.0, Atom 1.0, JSON Feed 1.1, OPML 2.0 and HTML bytes.
//!
//! In: a slice of [`Item`]s, a [`FeedDescriptor`] naming the published feed (taxonomy id or
//! `all`, title, absolute URLs, hub, paging links, filters) and a [`SourceDirectory`] naming the
//! configured source feeds. Out: one complete document as a `String`, well-formed and valid
//! against its specification, with every piece of item text escaped, characters that XML
//! forbids removed, item HTML passed through an allow-list ([`safe_html`]) and only absolute
//! `http(s)` links emitted. Ids are derived from [`ItemId`] alone, so they are the same on every
//! render. It must never do I/O, read the clock, or panic on any item content: a bad item link
//! is left out, a bad descriptor URL is a [`PublishError`] naming the field.

pub mod atom;
pub mod chart;
pub mod escape;
pub mod json_feed;
pub mod opml;
pub mod page;
pub mod rss;
pub mod safe_html;

pub use atom::render_atom;
pub use chart::{render_chart_svg, WeeklyCounts, WeeklySeries};
pub use json_feed::render_json_feed;
pub use opml::{render_opml, OpmlEntry};
pub use page::{
    render_index, render_unsubscribe_confirm, render_unsubscribe_done, IndexPage, TaxonCount,
};
pub use rss::render_rss;

use crate::item::{FeedId, Item, ItemId};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use thiserror::Error;

/// Why a document could not be rendered.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// A URL the document must carry is not an absolute `http(s)` URL.
    #[error("publish: {field} {value:?} is not an absolute http(s) URL")]
    NotAbsolute { field: &'static str, value: String },
    /// The JSON serialiser failed (it cannot for these types; kept so no path panics).
    #[error("publish: JSON Feed serialisation failed: {0}")]
    Json(String),
}

/// The three document formats a feed is published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedFormat {
    Rss,
    Atom,
    Json,
}

impl FeedFormat {
    /// Every format, in the order subscribe links are shown.
    pub const ALL: [FeedFormat; 3] = [FeedFormat::Rss, FeedFormat::Atom, FeedFormat::Json];

    /// File extension used in `/feeds/{id}.{ext}`.
    pub fn extension(self) -> &'static str {
        match self {
            FeedFormat::Rss => "rss",
            FeedFormat::Atom => "atom",
            FeedFormat::Json => "json",
        }
    }

    /// The media type the server should send.
    pub fn content_type(self) -> &'static str {
        match self {
            FeedFormat::Rss => "application/rss+xml; charset=utf-8",
            FeedFormat::Atom => "application/atom+xml; charset=utf-8",
            FeedFormat::Json => "application/feed+json; charset=utf-8",
        }
    }

    /// Short name shown to readers.
    pub fn label(self) -> &'static str {
        match self {
            FeedFormat::Rss => "RSS",
            FeedFormat::Atom => "Atom",
            FeedFormat::Json => "JSON",
        }
    }
}

/// Which kind of taxonomy label a published feed or a count is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxonKind {
    /// The feed of every item (`all`).
    All,
    Programme,
    Initiative,
    Region,
}

impl TaxonKind {
    /// Path segment under the base URL that names the label scheme
    /// (category `domain` in RSS, `scheme` in Atom).
    pub fn scheme_path(self) -> &'static str {
        match self {
            TaxonKind::All => "feeds",
            TaxonKind::Programme => "programmes",
            TaxonKind::Initiative => "initiatives",
            TaxonKind::Region => "regions",
        }
    }

    /// Plural heading shown to readers.
    pub fn heading(self) -> &'static str {
        match self {
            TaxonKind::All => "All news",
            TaxonKind::Programme => "Programmes",
            TaxonKind::Initiative => "Initiatives",
            TaxonKind::Region => "Regions",
        }
    }
}

/// URL of one published feed: `{base_url}/feeds/{id}.{ext}`.
pub fn feed_url(base_url: &str, id: &str, format: FeedFormat) -> String {
    format!(
        "{}/feeds/{}.{}",
        base_url.trim_end_matches('/'),
        id,
        format.extension()
    )
}

/// Paging links of a feed document (RFC 5005). A server pages a long filtered feed with
/// `first`/`previous`/`next`/`last` (section 3, paged feeds); `current`, `prev_archive` and
/// `next_archive` (section 4, archived feeds) are only for documents that never change once
/// archived. Each link present is written as `atom:link` (RSS, Atom) and `next` also as the
/// JSON Feed `next_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    pub first: Option<String>,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub last: Option<String>,
    pub current: Option<String>,
    pub prev_archive: Option<String>,
    pub next_archive: Option<String>,
}

impl Paging {
    /// `(rel, href)` for every link present, in a fixed order.
    pub fn links(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("first", &self.first),
            ("previous", &self.previous),
            ("next", &self.next),
            ("last", &self.last),
            ("current", &self.current),
            ("prev-archive", &self.prev_archive),
            ("next-archive", &self.next_archive),
        ]
        .into_iter()
        .filter_map(|(rel, href)| href.as_deref().map(|h| (rel, h)))
    }
}

/// Everything a feed document says about itself. Built by the server for each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedDescriptor {
    /// Taxonomy id (`asylum`, `mieux`, `western-balkans`) or `all`.
    pub id: String,
    /// What kind of label `id` is; decides the feed's own category.
    pub kind: TaxonKind,
    /// Feed title shown by readers, e.g. `ICMPD news: Asylum`.
    pub title: String,
    /// One-line plain-text description.
    pub description: String,
    /// Absolute URL of this very document (with its query), the `rel=self` link.
    pub self_url: String,
    /// Absolute URL of the HTML page the feed belongs to (the index page).
    pub html_url: String,
    /// Public base URL of this deployment, without a trailing slash; category schemes hang off it.
    pub base_url: String,
    /// WebSub hub advertised as `rel=hub`, when one is configured.
    pub hub: Option<String>,
    /// When the feed content last changed (usually the newest item's date).
    pub updated: DateTime<Utc>,
    /// Name given as the feed's author (Atom requires one).
    pub author: String,
    /// RFC 5005 paging links.
    pub paging: Paging,
    /// Filters applied besides the id, as `(name, value)` (`region`, `western-balkans`); shown
    /// in the description and carried in the JSON Feed extension.
    pub filters: Vec<(String, String)>,
    /// Language tag of the feed, e.g. `en`.
    pub language: Option<String>,
}

impl FeedDescriptor {
    /// Checks that every URL the document carries is absolute `http(s)`.
    pub fn validate(&self) -> Result<(), PublishError> {
        require_absolute("self_url", &self.self_url)?;
        require_absolute("html_url", &self.html_url)?;
        require_absolute("base_url", &self.base_url)?;
        if let Some(hub) = &self.hub {
            require_absolute("hub", hub)?;
        }
        for (rel, href) in self.paging.links() {
            if !is_absolute_http(href) {
                return Err(PublishError::NotAbsolute {
                    field: paging_field(rel),
                    value: href.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// The description with the filters appended, as readers see it.
    pub fn full_description(&self) -> String {
        if self.filters.is_empty() {
            return self.description.clone();
        }
        let filters: Vec<String> = self
            .filters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} (filters: {})", self.description, filters.join(", "))
    }
}

fn paging_field(rel: &str) -> &'static str {
    match rel {
        "first" => "paging.first",
        "previous" => "paging.previous",
        "next" => "paging.next",
        "last" => "paging.last",
        "current" => "paging.current",
        "prev-archive" => "paging.prev_archive",
        _ => "paging.next_archive",
    }
}

fn require_absolute(field: &'static str, value: &str) -> Result<(), PublishError> {
    if is_absolute_http(value) {
        Ok(())
    } else {
        Err(PublishError::NotAbsolute {
            field,
            value: value.to_string(),
        })
    }
}

/// True when `s` is an absolute `http://` or `https://` URL with a host and no characters that
/// could break out of an attribute or be read as whitespace-separated tokens. Cheap enough to
/// run on every item link of every render.
pub fn is_absolute_http(s: &str) -> bool {
    let rest = if starts_with_ignore_case(s, "https://") {
        s.get(8..)
    } else if starts_with_ignore_case(s, "http://") {
        s.get(7..)
    } else {
        None
    };
    match rest {
        Some(rest) => {
            let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            host_end > 0
                && s.bytes()
                    .all(|b| b > b' ' && b != 0x7f && b != b'"' && b != b'<' && b != b'>')
        }
        None => false,
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.as_bytes()
            .iter()
            .zip(prefix.as_bytes())
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// The item's link when it is safe to publish (absolute `http(s)`), else `None`.
pub fn item_link(item: &Item) -> Option<&str> {
    item.link.as_deref().filter(|l| is_absolute_http(l))
}

/// Stable public id of an item, the same in every format and on every render:
/// `urn:newsrelay:item:{ItemId}`.
pub fn item_urn(id: &ItemId) -> String {
    let mut s = String::with_capacity(ITEM_URN_PREFIX.len() + id.0.len());
    push_item_urn(&mut s, id);
    s
}

const ITEM_URN_PREFIX: &str = "urn:newsrelay:item:";

/// Appends [`item_urn`] to `out`, keeping only URN-safe characters of the id.
pub fn push_item_urn(out: &mut String, id: &ItemId) {
    out.push_str(ITEM_URN_PREFIX);
    for c in id.0.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
            out.push(c);
        } else {
            out.push('_');
        }
    }
}

/// The date an entry was last modified, for Atom `updated` and JSON `date_modified`.
pub fn item_updated(item: &Item) -> DateTime<Utc> {
    item.updated.or(item.published).unwrap_or(item.first_seen)
}

/// The newest [`item_updated`] of a list, for a descriptor's `updated`.
pub fn latest_update(items: &[Item]) -> Option<DateTime<Utc>> {
    items.iter().map(item_updated).max()
}

/// Names and URLs of the configured source feeds, so published items can name where they came
/// from.
#[derive(Debug, Clone, Default)]
pub struct SourceDirectory {
    feeds: HashMap<FeedId, SourceFeed>,
}

/// One configured source feed as readers should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFeed {
    pub title: String,
    /// The feed's URL; left out of documents unless absolute `http(s)`.
    pub url: String,
}

impl SourceDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, id: FeedId, feed: SourceFeed) {
        self.feeds.insert(id, feed);
    }

    pub fn get(&self, id: &FeedId) -> Option<&SourceFeed> {
        self.feeds.get(id)
    }

    /// Title of a feed, or its id when it is not (or no longer) configured.
    pub fn title_of<'a>(&'a self, id: &'a FeedId) -> &'a str {
        self.feeds
            .get(id)
            .map_or(id.0.as_str(), |f| f.title.as_str())
    }

    /// URL of a feed when it is known and publishable.
    pub fn url_of(&self, id: &FeedId) -> Option<&str> {
        self.feeds
            .get(id)
            .map(|f| f.url.as_str())
            .filter(|u| is_absolute_http(u))
    }
}

impl FromIterator<(FeedId, SourceFeed)> for SourceDirectory {
    fn from_iter<T: IntoIterator<Item = (FeedId, SourceFeed)>>(iter: T) -> Self {
        SourceDirectory {
            feeds: iter.into_iter().collect(),
        }
    }
}

/// The first source of an item, falling back to the feed that first brought it.
pub(crate) fn primary_source(item: &Item) -> &FeedId {
    item.sources.first().map_or(&item.feed, |s| &s.feed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_http_check() {
        assert!(is_absolute_http("https://www.icmpd.org/news/1"));
        assert!(is_absolute_http("HTTP://x.org"));
        assert!(!is_absolute_http("javascript:alert(1)"));
        assert!(!is_absolute_http("/relative"));
        assert!(!is_absolute_http("https:///nohost"));
        assert!(!is_absolute_http("https://x.org/\"onload=x"));
        assert!(!is_absolute_http("https://x.org/a b"));
    }

    #[test]
    fn urn_keeps_only_safe_characters() {
        assert_eq!(
            item_urn(&ItemId("ab12<x>".into())),
            "urn:newsrelay:item:ab12_x_"
        );
    }

    #[test]
    fn feed_urls() {
        assert_eq!(
            feed_url("http://h:8080/", "asylum", FeedFormat::Atom),
            "http://h:8080/feeds/asylum.atom"
        );
    }
}
