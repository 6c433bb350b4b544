//! Atom 1.0 (RFC 4287) writer.
//!
//! In: a [`FeedDescriptor`], a [`SourceDirectory`] and items. Out: an Atom feed document
//! (UTF-8) with id, title, subtitle, updated, author, generator, `self` / `alternate` / `hub`
//! and RFC 5005 paging links, and per item an `entry` with the stable item URN as id, title,
//! updated, published, an `alternate` link to the original article, a text summary,
//! allow-listed `content type="html"`, authors, categories with a `scheme` per taxonomy kind and
//! a `source` naming the feed it came from. Dates are RFC 3339 UTC. It must never emit a
//! relative or non-`http(s)` URL, a CDATA section, or a character XML forbids.

use super::escape::{push_attr, push_text};
use super::safe_html::push_safe_html;
use super::{
    item_link, item_updated, primary_source, push_item_urn, FeedDescriptor, PublishError,
    SourceDirectory, TaxonKind,
};
use crate::item::{Item, Label};
use chrono::{DateTime, SecondsFormat, Utc};

/// Renders `items` (in the order given) as an Atom 1.0 feed document.
pub fn render_atom(
    feed: &FeedDescriptor,
    sources: &SourceDirectory,
    items: &[Item],
) -> Result<String, PublishError> {
    feed.validate()?;
    let mut out = String::with_capacity(1024 + items.len() * 2304);
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\"",
    );
    if let Some(lang) = &feed.language {
        out.push_str(" xml:lang=\"");
        push_attr(&mut out, lang);
        out.push('"');
    }
    out.push_str(">\n");
    // The feed id is its self URL: stable for the same feed and filters.
    element(&mut out, "id", &feed.self_url);
    element(&mut out, "title", &feed.title);
    element(&mut out, "subtitle", &feed.full_description());
    date_element(&mut out, "updated", feed.updated);
    out.push_str("<author><name>");
    push_text(&mut out, &feed.author);
    out.push_str("</name></author>\n<generator>newsrelay</generator>\n");
    link(
        &mut out,
        "self",
        &feed.self_url,
        Some("application/atom+xml"),
    );
    link(&mut out, "alternate", &feed.html_url, Some("text/html"));
    if let Some(hub) = &feed.hub {
        link(&mut out, "hub", hub, None);
    }
    for (rel, href) in feed.paging.links() {
        link(&mut out, rel, href, Some("application/atom+xml"));
    }
    let base = feed.base();
    for item in items {
        write_entry(&mut out, base, sources, item);
    }
    out.push_str("</feed>\n");
    Ok(out)
}

fn write_entry(out: &mut String, base: &str, sources: &SourceDirectory, item: &Item) {
    out.push_str("<entry>\n<id>");
    push_item_urn(out, &item.id);
    out.push_str("</id>\n");
    let title = if item.title.trim().is_empty() {
        "Untitled"
    } else {
        item.title.as_str()
    };
    element(out, "title", title);
    date_element(out, "updated", item_updated(item));
    if let Some(published) = item.published {
        date_element(out, "published", published);
    }
    if let Some(href) = item_link(item) {
        link(out, "alternate", href, Some("text/html"));
    }
    for enclosure in &item.enclosures {
        if super::is_absolute_http(&enclosure.url) {
            out.push_str("<link rel=\"enclosure\" href=\"");
            push_attr(out, &enclosure.url);
            out.push('"');
            if let Some(mime) = &enclosure.mime_type {
                out.push_str(" type=\"");
                push_attr(out, mime);
                out.push('"');
            }
            if let Some(length) = enclosure.length {
                out.push_str(" length=\"");
                out.push_str(&length.to_string());
                out.push('"');
            }
            out.push_str("/>\n");
        }
    }
    for author in &item.authors {
        out.push_str("<author><name>");
        push_text(out, author);
        out.push_str("</name></author>\n");
    }
    out.push_str("<summary type=\"text\">");
    push_text(out, &item.summary_text);
    out.push_str("</summary>\n<content type=\"html\">");
    let mut html = String::with_capacity(item.content_html.len());
    push_safe_html(&mut html, &item.content_html);
    push_text(out, &html);
    out.push_str("</content>\n");
    labels(out, base, TaxonKind::Programme, &item.labels.programmes);
    labels(out, base, TaxonKind::Initiative, &item.labels.initiatives);
    labels(out, base, TaxonKind::Region, &item.labels.regions);
    for category in &item.categories {
        out.push_str("<category term=\"");
        push_attr(out, category);
        out.push_str("\"/>\n");
    }
    let source = primary_source(item);
    if let Some(url) = sources.url_of(source) {
        out.push_str("<source>\n");
        element(out, "id", url);
        element(out, "title", sources.title_of(source));
        link(out, "self", url, None);
        out.push_str("</source>\n");
    }
    out.push_str("</entry>\n");
}

fn labels(out: &mut String, base: &str, kind: TaxonKind, labels: &[Label]) {
    for label in labels {
        out.push_str("<category term=\"");
        push_attr(out, &label.id);
        out.push_str("\" scheme=\"");
        push_attr(out, base);
        out.push('/');
        out.push_str(kind.scheme_path());
        out.push_str("\"/>\n");
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

fn date_element(out: &mut String, name: &str, date: DateTime<Utc>) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&date.to_rfc3339_opts(SecondsFormat::Secs, true));
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

fn link(out: &mut String, rel: &str, href: &str, mime: Option<&str>) {
    out.push_str("<link rel=\"");
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
