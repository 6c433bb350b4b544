//! RSS 2.0 writer.
//!
//! In: a [`FeedDescriptor`], a [`SourceDirectory`] and items. Out: an RSS 2.0 document
//! (UTF-8) with `atom:link` self / hub / RFC 5005 paging links, and per item a title, link,
//! `guid isPermaLink="false"` (the stable item URN), RFC 822 `pubDate`, plain `description`,
//! allow-listed `content:encoded`, one `dc:creator` per author, categories with a `domain` per
//! taxonomy kind, enclosures and a `source` naming the feed it came from. It must never emit a
//! relative or non-`http(s)` URL, a CDATA section, or a character XML forbids.
//!
//! Written by hand rather than with the `rss` crate's `Channel::write_to`: with the features
//! this crate enables, `rss` has no `atom:link` (self, hub and paging need it), it does not drop
//! the control characters XML forbids (one stray `\u{1}` in a title would make the whole feed
//! unreadable), and building its owned `Channel` copies every string once more before writing.
//! The bench in `benches/publish.rs` renders the same items both ways and prints the ratio.

use super::escape::{push_attr, push_text};
use super::safe_html::push_safe_html;
use super::{
    item_link, primary_source, push_item_urn, FeedDescriptor, PublishError, SourceDirectory,
    TaxonKind,
};
use crate::item::{Item, Label};
use chrono::{DateTime, Datelike, Timelike, Utc};
use std::fmt::Write;

/// Renders `items` (in the order given) as an RSS 2.0 document.
pub fn render_rss(
    feed: &FeedDescriptor,
    sources: &SourceDirectory,
    items: &[Item],
) -> Result<String, PublishError> {
    feed.validate()?;
    let mut out = String::with_capacity(1024 + items.len() * 2048);
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" \
         xmlns:atom=\"http://www.w3.org/2005/Atom\" \
         xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n<channel>\n",
    );
    element(&mut out, "title", &feed.title);
    element(&mut out, "link", &feed.html_url);
    element(&mut out, "description", &feed.full_description());
    if let Some(lang) = &feed.language {
        element(&mut out, "language", lang);
    }
    out.push_str("<lastBuildDate>");
    push_rfc822(&mut out, feed.updated);
    out.push_str("</lastBuildDate>\n<generator>newsrelay</generator>\n");
    out.push_str("<docs>https://www.rssboard.org/rss-specification</docs>\n");
    atom_link(
        &mut out,
        "self",
        &feed.self_url,
        Some("application/rss+xml"),
    );
    if let Some(hub) = &feed.hub {
        atom_link(&mut out, "hub", hub, None);
    }
    for (rel, href) in feed.paging.links() {
        atom_link(&mut out, rel, href, Some("application/rss+xml"));
    }
    let base = feed.base();
    for item in items {
        write_item(&mut out, base, sources, item);
    }
    out.push_str("</channel>\n</rss>\n");
    Ok(out)
}

fn write_item(out: &mut String, base: &str, sources: &SourceDirectory, item: &Item) {
    out.push_str("<item>\n");
    let title = if item.title.trim().is_empty() {
        "Untitled"
    } else {
        item.title.as_str()
    };
    element(out, "title", title);
    if let Some(link) = item_link(item) {
        element(out, "link", link);
    }
    out.push_str("<guid isPermaLink=\"false\">");
    push_item_urn(out, &item.id);
    out.push_str("</guid>\n<pubDate>");
    push_rfc822(out, item.display_date());
    out.push_str("</pubDate>\n");
    element(out, "description", &item.summary_text);
    if !item.content_html.is_empty() {
        // The allow-listed HTML, then escaped once more as element text.
        let mut html = String::with_capacity(item.content_html.len());
        push_safe_html(&mut html, &item.content_html);
        element(out, "content:encoded", &html);
    }
    for author in &item.authors {
        element(out, "dc:creator", author);
    }
    labels(out, base, TaxonKind::Programme, &item.labels.programmes);
    labels(out, base, TaxonKind::Initiative, &item.labels.initiatives);
    labels(out, base, TaxonKind::Region, &item.labels.regions);
    for category in &item.categories {
        element(out, "category", category);
    }
    for enclosure in &item.enclosures {
        if super::is_absolute_http(&enclosure.url) {
            out.push_str("<enclosure url=\"");
            push_attr(out, &enclosure.url);
            let _ = write!(
                out,
                "\" length=\"{}\" type=\"",
                enclosure.length.unwrap_or(0)
            );
            push_attr(
                out,
                enclosure
                    .mime_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
            );
            out.push_str("\"/>\n");
        }
    }
    let source = primary_source(item);
    if let Some(url) = sources.url_of(source) {
        out.push_str("<source url=\"");
        push_attr(out, url);
        out.push_str("\">");
        push_text(out, sources.title_of(source));
        out.push_str("</source>\n");
    }
    out.push_str("</item>\n");
}

fn labels(out: &mut String, base: &str, kind: TaxonKind, labels: &[Label]) {
    for label in labels {
        out.push_str("<category domain=\"");
        push_attr(out, base);
        out.push('/');
        out.push_str(kind.scheme_path());
        out.push_str("\">");
        push_text(out, &label.id);
        out.push_str("</category>\n");
    }
}

fn element(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_text(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

fn atom_link(out: &mut String, rel: &str, href: &str, mime: Option<&str>) {
    out.push_str("<atom:link rel=\"");
    out.push_str(rel);
    out.push_str("\" href=\"");
    push_attr(out, href);
    out.push('"');
    if let Some(mime) = mime {
        out.push_str(" type=\"");
        out.push_str(mime);
        out.push('"');
    }
    out.push_str("/>\n");
}

/// Appends `date` in RFC 822 form as RSS 2.0 uses it (four-digit year, `GMT`):
/// `Mon, 23 Nov 2026 09:15:16 GMT`.
pub fn push_rfc822(out: &mut String, date: DateTime<Utc>) {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = DAYS
        .get(date.weekday().num_days_from_monday() as usize)
        .copied()
        .unwrap_or("Mon");
    let month = MONTHS.get(date.month0() as usize).copied().unwrap_or("Jan");
    let _ = write!(
        out,
        "{day}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        date.day(),
        date.year(),
        date.hour(),
        date.minute(),
        date.second()
    );
}

/// `date` in RFC 822 form (see [`push_rfc822`]).
pub fn rfc822(date: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(29);
    push_rfc822(&mut s, date);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rfc822_dates() {
        let d = Utc.with_ymd_and_hms(2026, 11, 23, 9, 5, 7).single();
        assert_eq!(
            d.map(rfc822).as_deref(),
            Some("Mon, 23 Nov 2026 09:05:07 GMT")
        );
    }
}
