//! The parsed feed: one format-neutral model for RSS, RDF, Atom and JSON Feed.
//!
//! It serialises directly to the neutral JSON that `newsrelay parse` prints (schema:
//! `../shared/conformance/neutral.py`). Dates are UTC; URLs are absolute where a base was known;
//! HTML fields are already sanitised.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use std::borrow::Cow;

/// The feed format, as a feedparser-style version id (`rss20`, `atom10`, `json11`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedFormat {
    Rss090,
    Rss091U,
    Rss091N,
    Rss092,
    Rss093,
    Rss094,
    Rss20,
    /// An RSS document with no usable version attribute.
    Rss,
    Rss10,
    Atom01,
    Atom02,
    Atom03,
    Atom10,
    /// An Atom document with no known version.
    Atom,
    Cdf,
    /// A JSON document with no known JSON Feed version.
    Json,
    Json1,
    Json11,
    #[default]
    Unknown,
}

impl FeedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedFormat::Rss090 => "rss090",
            FeedFormat::Rss091U => "rss091u",
            FeedFormat::Rss091N => "rss091n",
            FeedFormat::Rss092 => "rss092",
            FeedFormat::Rss093 => "rss093",
            FeedFormat::Rss094 => "rss094",
            FeedFormat::Rss20 => "rss20",
            FeedFormat::Rss => "rss",
            FeedFormat::Rss10 => "rss10",
            FeedFormat::Atom01 => "atom01",
            FeedFormat::Atom02 => "atom02",
            FeedFormat::Atom03 => "atom03",
            FeedFormat::Atom10 => "atom10",
            FeedFormat::Atom => "atom",
            FeedFormat::Cdf => "cdf",
            FeedFormat::Json => "json",
            FeedFormat::Json1 => "json1",
            FeedFormat::Json11 => "json11",
            FeedFormat::Unknown => "",
        }
    }
}

impl Serialize for FeedFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Serialises an optional instant as RFC 3339 UTC with seconds (`2019-08-16T07:22:23Z`).
pub fn ser_date<S: Serializer>(d: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&d.to_rfc3339_opts(SecondsFormat::Secs, true)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Link {
    pub href: String,
    /// Usually one of a few fixed values (`alternate`, `enclosure`, `self` ...): borrowed
    /// then, so the common link costs no allocation beyond its `href`.
    pub rel: Option<Cow<'static, str>>,
    #[serde(rename = "type")]
    pub mime_type: Option<Cow<'static, str>>,
    pub hreflang: Option<String>,
    pub title: Option<String>,
    pub length: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Person {
    pub name: Option<String>,
    pub email: Option<String>,
    pub uri: Option<String>,
    /// The text as the feed gave it (e.g. `jane@example.org (Jane)`), when it was one string.
    pub raw: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Category {
    pub term: Option<String>,
    pub scheme: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Image {
    pub url: Option<String>,
    pub title: Option<String>,
    pub link: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Enclosure {
    pub url: String,
    #[serde(rename = "type")]
    pub mime_type: Option<String>,
    pub length: Option<u64>,
}

/// Channel-level metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeedMeta {
    pub title: Option<String>,
    pub title_type: Option<Cow<'static, str>>,
    pub link: Option<String>,
    pub links: Vec<Link>,
    pub description: Option<String>,
    pub description_type: Option<Cow<'static, str>>,
    pub language: Option<String>,
    pub id: Option<String>,
    #[serde(serialize_with = "ser_date")]
    pub updated: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_date")]
    pub published: Option<DateTime<Utc>>,
    pub rights: Option<String>,
    pub authors: Vec<Person>,
    pub categories: Vec<Category>,
    pub image: Option<Image>,
    pub icon: Option<String>,
    pub logo: Option<String>,
    pub generator: Option<String>,
    /// RSS `ttl` in minutes (a polling hint for the fetcher).
    #[serde(skip)]
    pub ttl_minutes: Option<u32>,
    /// RSS `skipHours` (0..=23, UTC).
    #[serde(skip)]
    pub skip_hours: Vec<u8>,
    /// RSS `skipDays` (`Monday`, ...).
    #[serde(skip)]
    pub skip_days: Vec<String>,
    /// WebSub hub advertised by the feed (`<link rel="hub">`).
    #[serde(skip)]
    pub hub: Option<String>,
}

/// One entry of the feed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Entry {
    pub id: Option<String>,
    pub title: Option<String>,
    pub title_type: Option<Cow<'static, str>>,
    pub link: Option<String>,
    pub links: Vec<Link>,
    pub summary_html: Option<String>,
    pub content_html: Option<String>,
    #[serde(serialize_with = "ser_date")]
    pub published: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_date")]
    pub updated: Option<DateTime<Utc>>,
    pub authors: Vec<Person>,
    pub categories: Vec<Category>,
    pub enclosures: Vec<Enclosure>,
    pub comments: Option<String>,
    /// Entry-level rights / copyright statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rights: Option<String>,
    /// RSS `guid isPermaLink="false"` seen: the id is not a link.
    #[serde(skip)]
    pub id_is_permalink: Option<bool>,
}

/// A whole parsed document.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedFeed {
    /// True when the input was not well-formed and had to be recovered.
    pub bozo: bool,
    /// Why the input was bozo (first problem seen), for logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bozo_exception: Option<String>,
    pub format: FeedFormat,
    /// The charset actually used to decode, lower-case.
    pub encoding: String,
    pub feed: FeedMeta,
    pub items: Vec<Entry>,
}
