//! OPML 2.0 subscription list of every published feed.
//!
//! In: the deployment's base URL and title, a creation date, the published feeds as
//! [`OpmlEntry`] (id, title, kind) and the formats offered. Out: an OPML 2.0 document whose body
//! groups the feeds by kind (all, programmes, initiatives, regions), one `type="rss"` outline per
//! feed and format with absolute `xmlUrl` and `htmlUrl`. It must never emit a relative URL or a
//! character XML forbids.

use super::escape::{push_attr, push_text};
use super::rss::push_rfc822;
use super::{feed_url, is_absolute_http, FeedFormat, PublishError, TaxonKind};
use chrono::{DateTime, Utc};

/// One published feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpmlEntry {
    /// Taxonomy id or `all`.
    pub id: String,
    pub title: String,
    pub kind: TaxonKind,
}

/// Renders the subscription list. Feeds keep the order given within their kind.
pub fn render_opml(
    title: &str,
    base_url: &str,
    created: DateTime<Utc>,
    entries: &[OpmlEntry],
    formats: &[FeedFormat],
) -> Result<String, PublishError> {
    if !is_absolute_http(base_url) {
        return Err(PublishError::NotAbsolute {
            field: "base_url",
            value: base_url.to_string(),
        });
    }
    let base = base_url.trim_end_matches('/');
    let mut out = String::with_capacity(512 + entries.len() * formats.len() * 200);
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n<head>\n<title>",
    );
    push_text(&mut out, title);
    out.push_str("</title>\n<dateCreated>");
    push_rfc822(&mut out, created);
    out.push_str("</dateCreated>\n<docs>http://opml.org/spec2.opml</docs>\n</head>\n<body>\n");
    for kind in [
        TaxonKind::All,
        TaxonKind::Programme,
        TaxonKind::Initiative,
        TaxonKind::Region,
    ] {
        let mut group = entries.iter().filter(|e| e.kind == kind).peekable();
        if group.peek().is_none() {
            continue;
        }
        out.push_str("<outline text=\"");
        push_attr(&mut out, kind.heading());
        out.push_str("\">\n");
        for entry in group {
            for &format in formats {
                let text = format!("{} ({})", entry.title, format.label());
                out.push_str("<outline type=\"rss\" text=\"");
                push_attr(&mut out, &text);
                out.push_str("\" title=\"");
                push_attr(&mut out, &text);
                out.push_str("\" xmlUrl=\"");
                push_attr(&mut out, &feed_url(base, &entry.id, format));
                out.push_str("\" htmlUrl=\"");
                push_attr(&mut out, base);
                out.push_str("/\"");
                if format == FeedFormat::Rss {
                    out.push_str(" version=\"RSS2\"");
                }
                out.push_str("/>\n");
            }
        }
        out.push_str("</outline>\n");
    }
    out.push_str("</body>\n</opml>\n");
    Ok(out)
}
