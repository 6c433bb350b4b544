//! JSON Feed 1.0 and 1.1 (serde_json) → the neutral model.
//!
//! In: the document as UTF-8 text and its base URL. Out: a [`ParsedFeed`] with the same field
//! meanings as for XML feeds: `title`, `home_page_url` → link, `feed_url` → id and `self` link,
//! items with `content_html` (sanitised) or `content_text` (kept as text), dates, authors,
//! tags and attachments. Values of the wrong JSON type are skipped, never fatal; only a document
//! that is not a JSON object is an error. serde_json caps nesting at 128 levels.

use super::date::parse_date;
use super::sanitize::sanitize_html;
use super::text::looks_like_html;
use super::xml::resolve_url;
use super::{Category, Enclosure, Entry, FeedFormat, Image, Link, ParseError, ParsedFeed, Person};
use serde_json::{Map, Value};
use std::borrow::Cow;
use url::Url;

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).map(str::trim)
}

/// Text that may be HTML: returns (value, type), sanitised when it looks like HTML.
fn text_or_html(s: &str, base: Option<&Url>) -> (String, Cow<'static, str>) {
    if looks_like_html(s) {
        (sanitize_html(s, base), Cow::Borrowed("text/html"))
    } else {
        (s.to_string(), Cow::Borrowed("text/plain"))
    }
}

fn person(v: &Value) -> Option<Person> {
    let m = v.as_object()?;
    let mut p = Person::default();
    if let Some(n) = str_of(m, "name") {
        p.name = Some(n.to_string());
    }
    if let Some(u) = str_of(m, "url") {
        if let Some(mail) = u.strip_prefix("mailto:") {
            p.email = Some(mail.split('?').next().unwrap_or("").to_string());
        }
        p.uri = Some(u.to_string());
    }
    if p.name.is_none() && p.uri.is_none() {
        None
    } else {
        Some(p)
    }
}

fn authors(m: &Map<String, Value>) -> Vec<Person> {
    if let Some(list) = m.get("authors").and_then(Value::as_array) {
        let v: Vec<Person> = list.iter().filter_map(person).collect();
        if !v.is_empty() {
            return v;
        }
    }
    m.get("author").and_then(person).into_iter().collect()
}

fn scalar_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        Value::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64()?;
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    Some(format!("{f:.1}"))
                } else {
                    Some(f.to_string())
                }
            } else {
                Some(n.to_string())
            }
        }
        _ => None,
    }
}

/// Parses a JSON Feed document.
pub(crate) fn parse_json(
    text: &str,
    base: Option<&Url>,
    mut out: ParsedFeed,
) -> Result<ParsedFeed, ParseError> {
    let data: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    let Some(m) = data.as_object() else {
        return Err(ParseError::Json("top level is not an object".into()));
    };
    out.format = match str_of(m, "version") {
        Some("https://jsonfeed.org/version/1") => FeedFormat::Json1,
        Some("https://jsonfeed.org/version/1.1") => FeedFormat::Json11,
        _ => FeedFormat::Json,
    };
    let f = &mut out.feed;
    if let Some(t) = str_of(m, "title") {
        let (v, ty) = text_or_html(t, base);
        f.title = Some(v);
        f.title_type = Some(ty);
    }
    if let Some(d) = str_of(m, "description") {
        let (v, ty) = text_or_html(d, base);
        f.description = Some(v);
        f.description_type = Some(ty);
    }
    if let Some(u) = str_of(m, "feed_url") {
        f.id = Some(u.to_string());
        f.links.push(Link {
            href: u.to_string(),
            rel: Some("self".into()),
            title: f.title.clone(),
            ..Link::default()
        });
    }
    if let Some(u) = str_of(m, "home_page_url") {
        f.link = Some(u.to_string());
        f.links.push(Link {
            href: u.to_string(),
            rel: Some("alternate".into()),
            ..Link::default()
        });
    }
    if let Some(u) = str_of(m, "icon") {
        f.image = Some(Image {
            url: Some(u.to_string()),
            ..Image::default()
        });
    }
    if let Some(u) = str_of(m, "favicon") {
        f.icon = Some(u.to_string());
    }
    if let Some(u) = str_of(m, "next_url") {
        f.links.push(Link {
            href: u.to_string(),
            rel: Some("next".into()),
            ..Link::default()
        });
    }
    if let Some(l) = str_of(m, "language") {
        f.language = Some(l.to_string());
    }
    if let Some(hub) = m.get("hubs").and_then(Value::as_array).and_then(|h| {
        h.iter()
            .find_map(|x| x.as_object().and_then(|o| str_of(o, "url")))
    }) {
        f.hub = Some(hub.to_string());
    }
    f.authors = authors(m);

    if let Some(items) = m.get("items").and_then(Value::as_array) {
        for it in items {
            let Some(im) = it.as_object() else { continue };
            let mut e = Entry::default();
            if let Some(id) = im.get("id") {
                e.id = scalar_id(id);
            }
            if let Some(t) = str_of(im, "title") {
                e.title = Some(t.to_string());
                e.title_type = Some("text/plain".into());
            }
            if let Some(u) = str_of(im, "url") {
                let u = resolve_url(base, u);
                // JSON Feed readers describe the item URL as the item's own (`self`) link.
                e.links.push(Link {
                    href: u.clone(),
                    rel: Some("self".into()),
                    title: e.title.clone(),
                    ..Link::default()
                });
                e.link = Some(u);
            }
            if let Some(u) = str_of(im, "external_url") {
                e.links.push(Link {
                    href: resolve_url(base, u),
                    rel: Some("related".into()),
                    ..Link::default()
                });
            }
            if let Some(s) = str_of(im, "summary") {
                e.summary_html = Some(s.to_string());
            }
            if let Some(h) = im.get("content_html").and_then(Value::as_str) {
                e.content_html = Some(sanitize_html(h, base));
            } else if let Some(t) = im.get("content_text").and_then(Value::as_str) {
                e.content_html = Some(t.to_string());
            }
            e.published = str_of(im, "date_published").and_then(parse_date);
            e.updated = str_of(im, "date_modified").and_then(parse_date);
            e.authors = authors(im);
            if let Some(tags) = im.get("tags").and_then(Value::as_array) {
                e.categories = tags
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|t| Category {
                        term: Some(t.to_string()),
                        ..Category::default()
                    })
                    .collect();
            }
            if let Some(att) = im.get("attachments").and_then(Value::as_array) {
                for a in att.iter().filter_map(Value::as_object) {
                    let Some(u) = str_of(a, "url") else { continue };
                    let url = resolve_url(base, u);
                    let mime = str_of(a, "mime_type").map(str::to_string);
                    let length = a.get("size_in_bytes").and_then(Value::as_u64);
                    e.links.push(Link {
                        href: url.clone(),
                        rel: Some("enclosure".into()),
                        mime_type: mime.clone().map(Cow::Owned),
                        length: length.map(|l| l.to_string()),
                        ..Link::default()
                    });
                    e.enclosures.push(Enclosure {
                        url,
                        mime_type: mime,
                        length,
                    });
                }
            }
            if e != Entry::default() {
                out.items.push(e);
            }
        }
    }
    Ok(out)
}
