//! JSON Feed 1.1 writer.
//!
//! In: a [`FeedDescriptor`], a [`SourceDirectory`] and items. Out: a JSON Feed 1.1 document
//! with version, title, description, home_page_url, feed_url, `next_url` (RFC 5005 `next`),
//! WebSub `hubs`, and per item the stable item URN as id, url, title, allow-listed
//! `content_html`, summary, RFC 3339 dates, tags, authors, attachments and a `_newsrelay`
//! extension carrying the sources and labels (with scores). Serialised with serde from borrowed
//! views of the items, so nothing is copied but the allow-listed HTML. It must never emit a
//! relative or non-`http(s)` URL where the schema asks for a URI.

use super::safe_html::safe_html;
use super::{
    is_absolute_http, item_link, item_updated, item_urn, FeedDescriptor, PublishError,
    SourceDirectory,
};
use crate::item::{Item, Label};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

const VERSION: &str = "https://jsonfeed.org/version/1.1";

#[derive(Serialize)]
struct Document<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: &'a str,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    authors: [Author<'a>; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub<'a>>,
    #[serde(rename = "_newsrelay")]
    extension: FeedExtension<'a>,
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct FeedExtension<'a> {
    id: &'a str,
    updated: String,
    filters: Vec<Filter<'a>>,
}

#[derive(Serialize)]
struct Filter<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    title: &'a str,
    content_html: String,
    summary: &'a str,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
    #[serde(rename = "_newsrelay")]
    extension: ItemExtension<'a>,
}

#[derive(Serialize)]
struct Attachment<'a> {
    url: &'a str,
    mime_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_in_bytes: Option<u64>,
}

#[derive(Serialize)]
struct ItemExtension<'a> {
    item_id: &'a str,
    sources: Vec<JsonSource<'a>>,
    labels: JsonLabels<'a>,
    revision: u32,
}

#[derive(Serialize)]
struct JsonSource<'a> {
    feed: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    feed_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guid: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonLabels<'a> {
    programmes: Vec<JsonLabel<'a>>,
    initiatives: Vec<JsonLabel<'a>>,
    regions: Vec<JsonLabel<'a>>,
    taxonomy_version: u64,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    id: &'a str,
    score: f32,
}

fn rfc3339(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn json_labels(labels: &[Label]) -> Vec<JsonLabel<'_>> {
    labels
        .iter()
        .map(|l| JsonLabel {
            id: &l.id,
            // NaN or infinite scores are not JSON; clamp into the documented 0..=1.
            score: if l.score.is_finite() {
                l.score.clamp(0.0, 1.0)
            } else {
                0.0
            },
        })
        .collect()
}

fn json_item<'a>(sources: &'a SourceDirectory, item: &'a Item) -> JsonItem<'a> {
    let mut tags: Vec<&str> = item.labels.all_ids().collect();
    for category in &item.categories {
        if !tags.contains(&category.as_str()) {
            tags.push(category);
        }
    }
    let item_sources = if item.sources.is_empty() {
        vec![JsonSource {
            feed: &item.feed.0,
            title: sources.title_of(&item.feed),
            feed_url: sources.url_of(&item.feed),
            link: None,
            guid: None,
        }]
    } else {
        item.sources
            .iter()
            .map(|s| JsonSource {
                feed: &s.feed.0,
                title: sources.title_of(&s.feed),
                feed_url: sources.url_of(&s.feed),
                link: s.link.as_deref().filter(|l| is_absolute_http(l)),
                guid: s.guid.as_deref(),
            })
            .collect()
    };
    JsonItem {
        id: item_urn(&item.id),
        url: item_link(item),
        title: &item.title,
        content_html: safe_html(&item.content_html),
        summary: &item.summary_text,
        date_published: rfc3339(item.display_date()),
        date_modified: rfc3339(item_updated(item)),
        tags,
        authors: item.authors.iter().map(|a| Author { name: a }).collect(),
        attachments: item
            .enclosures
            .iter()
            .filter(|e| is_absolute_http(&e.url))
            .map(|e| Attachment {
                url: &e.url,
                mime_type: e.mime_type.as_deref().unwrap_or("application/octet-stream"),
                size_in_bytes: e.length,
            })
            .collect(),
        extension: ItemExtension {
            item_id: &item.id.0,
            sources: item_sources,
            labels: JsonLabels {
                programmes: json_labels(&item.labels.programmes),
                initiatives: json_labels(&item.labels.initiatives),
                regions: json_labels(&item.labels.regions),
                taxonomy_version: item.labels.taxonomy_version,
            },
            revision: item.revision,
        },
    }
}

/// Renders `items` (in the order given) as a JSON Feed 1.1 document.
pub fn render_json_feed(
    feed: &FeedDescriptor,
    sources: &SourceDirectory,
    items: &[Item],
) -> Result<String, PublishError> {
    feed.validate()?;
    let document = Document {
        version: VERSION,
        title: &feed.title,
        home_page_url: &feed.html_url,
        feed_url: &feed.self_url,
        description: feed.full_description(),
        next_url: feed.paging.next.as_deref(),
        language: feed.language.as_deref(),
        authors: [Author { name: &feed.author }],
        hubs: feed
            .hub
            .as_deref()
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .into_iter()
            .collect(),
        extension: FeedExtension {
            id: &feed.id,
            updated: rfc3339(feed.updated),
            filters: feed
                .filters
                .iter()
                .map(|(name, value)| Filter { name, value })
                .collect(),
        },
        items: items.iter().map(|item| json_item(sources, item)).collect(),
    };
    serde_json::to_string(&document).map_err(|e| PublishError::Json(e.to_string()))
}
