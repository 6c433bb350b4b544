//! JSON Feed 1.0 and 1.1 (serde_json) → the neutral model.
//!
//! In: the document as UTF-8 text and its base URL. Out: a [`ParsedFeed`] with the same field
//! meanings as for XML feeds: `title`, `home_page_url` → link, `feed_url` → id and `self` link,
//! items with `content_html` (sanitised) or `content_text` (kept as text), dates, authors,
//! tags and attachments. Values of the wrong JSON type are skipped, never fatal; only a document
//! that is not a JSON object is an error. serde_json caps nesting at 128 levels.
//!
//! The document is read straight into the few fields used, strings borrowed from the text where
//! they have no escapes, instead of through a `serde_json::Value` tree. Every value, used or
//! not, is still read with `deserialize_any`, the path a `Value` takes: the same syntax,
//! number-range, string and nesting checks, so the same documents are rejected with the same
//! messages. A repeated key counts with its last value, as in a `Value` map.

use super::date::parse_date;
use super::sanitize::sanitize_html;
use super::text::looks_like_html;
use super::xml::resolve_url;
use super::{Category, Enclosure, Entry, FeedFormat, Image, Link, ParseError, ParsedFeed, Person};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use url::Url;

/// Text that may be HTML: returns (value, type), sanitised when it looks like HTML.
fn text_or_html(s: &str, base: Option<&Url>) -> (String, Cow<'static, str>) {
    if looks_like_html(s) {
        (sanitize_html(s, base), Cow::Borrowed("text/html"))
    } else {
        (s.to_string(), Cow::Borrowed("text/plain"))
    }
}

/// The scalar visits of a visitor that keeps nothing from them: `$value` for each.
macro_rules! other_scalars {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// The array and object visits of a visitor that keeps nothing from them: every element is
/// still read (and checked) as [`Skip`], then `$value`.
macro_rules! other_containers {
    ($value:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<Skip>()?.is_some() {}
            Ok($value)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<Skip, Skip>()?.is_some() {}
            Ok($value)
        }
    };
}

/// Any JSON value, read and checked as for a `serde_json::Value`, then dropped.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    other_scalars!(Skip);
    other_containers!(Skip);
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
            .map(|t| Key(t.0.unwrap_or_default()))
    }
}

/// A string value (`None` for any other type), borrowed when it has no escapes.
#[derive(Default)]
struct Text<'de>(Option<Cow<'de, str>>);

impl<'de> Text<'de> {
    /// The string trimmed, as the reader uses most values.
    fn trimmed(&self) -> Option<&str> {
        self.0.as_deref().map(str::trim)
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    other_scalars!(Text(None));
    other_containers!(Text(None));
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Owned(v))))
    }
}

/// An item `id`: any scalar as text (`null`, `true`, `12`, `1.0` ...), `None` for an array or
/// object.
#[derive(Default)]
struct ScalarId(Option<String>);

impl<'de> Deserialize<'de> for ScalarId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarIdVisitor)
    }
}

struct ScalarIdVisitor;

impl<'de> Visitor<'de> for ScalarIdVisitor {
    type Value = ScalarId;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    other_containers!(ScalarId(None));
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarId, E> {
        Ok(ScalarId(Some(v.to_string())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarId, E> {
        Ok(ScalarId(Some(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarId, E> {
        Ok(ScalarId(Some(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<ScalarId, E> {
        Ok(ScalarId(Some(if f.fract() == 0.0 && f.abs() < 1e16 {
            format!("{f:.1}")
        } else {
            f.to_string()
        })))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ScalarId, E> {
        Ok(ScalarId(Some("null".into())))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarId, E> {
        Ok(ScalarId(Some(v.trim().to_string())))
    }
}

/// A non-negative integer (`None` for a negative or fractional number or any other type).
#[derive(Default)]
struct Size(Option<u64>);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl<'de> Visitor<'de> for SizeVisitor {
    type Value = Size;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    other_containers!(Size(None));
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Size, E> {
        Ok(Size(None))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
        Ok(Size(u64::try_from(v).ok()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
        Ok(Size(Some(v)))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Size, E> {
        Ok(Size(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Size, E> {
        Ok(Size(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Size, E> {
        Ok(Size(None))
    }
}

/// The fields of a JSON object the reader keeps; every other key's value is read as [`Skip`].
trait Fields<'de>: Default {
    /// Reads the value of `key` (a later duplicate replaces an earlier one).
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// `Some` for a JSON object read into `T`, `None` for any other value.
struct Object<T>(Option<T>);

impl<T> Default for Object<T> {
    fn default() -> Self {
        Object(None)
    }
}

impl<'de, T: Fields<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Fields<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    other_scalars!(Object(None));
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Object<T>, E> {
        Ok(Object(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Object<T>, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Object(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<T>, A::Error> {
        let mut fields = T::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            fields.field(&key.0, &mut map)?;
        }
        Ok(Object(Some(fields)))
    }
}

/// `Some` for a JSON array of `T`, `None` for any other value.
struct List<T>(Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<T> List<T> {
    fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flatten()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor(PhantomData))
    }
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = List<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    other_scalars!(List(None));
    fn visit_str<E: de::Error>(self, _: &str) -> Result<List<T>, E> {
        Ok(List(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<T>()? {
            items.push(item);
        }
        Ok(List(Some(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<List<T>, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(List(None))
    }
}

/// Implements [`Fields`] for a struct: each listed key read into its field as its type.
macro_rules! fields {
    ($name:ident { $($key:literal => $field:ident),* $(,)? }) => {
        impl<'de> Fields<'de> for $name<'de> {
            fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
                match key {
                    $($key => self.$field = map.next_value()?,)*
                    _ => {
                        map.next_value::<Skip>()?;
                    }
                }
                Ok(())
            }
        }
    };
}

#[derive(Default)]
struct RawPerson<'de> {
    name: Text<'de>,
    url: Text<'de>,
}
fields!(RawPerson { "name" => name, "url" => url });

#[derive(Default)]
struct RawHub<'de> {
    url: Text<'de>,
}
fields!(RawHub { "url" => url });

#[derive(Default)]
struct RawAttachment<'de> {
    url: Text<'de>,
    mime_type: Text<'de>,
    size_in_bytes: Size,
}
fields!(RawAttachment { "url" => url, "mime_type" => mime_type, "size_in_bytes" => size_in_bytes });

#[derive(Default)]
struct RawItem<'de> {
    id: ScalarId,
    title: Text<'de>,
    url: Text<'de>,
    external_url: Text<'de>,
    summary: Text<'de>,
    content_html: Text<'de>,
    content_text: Text<'de>,
    date_published: Text<'de>,
    date_modified: Text<'de>,
    authors: List<Object<RawPerson<'de>>>,
    author: Object<RawPerson<'de>>,
    tags: List<Text<'de>>,
    attachments: List<Object<RawAttachment<'de>>>,
}
fields!(RawItem {
    "id" => id,
    "title" => title,
    "url" => url,
    "external_url" => external_url,
    "summary" => summary,
    "content_html" => content_html,
    "content_text" => content_text,
    "date_published" => date_published,
    "date_modified" => date_modified,
    "authors" => authors,
    "author" => author,
    "tags" => tags,
    "attachments" => attachments,
});

#[derive(Default)]
struct RawFeed<'de> {
    version: Text<'de>,
    title: Text<'de>,
    description: Text<'de>,
    feed_url: Text<'de>,
    home_page_url: Text<'de>,
    icon: Text<'de>,
    favicon: Text<'de>,
    next_url: Text<'de>,
    language: Text<'de>,
    hubs: List<Object<RawHub<'de>>>,
    authors: List<Object<RawPerson<'de>>>,
    author: Object<RawPerson<'de>>,
    items: List<Object<RawItem<'de>>>,
}
fields!(RawFeed {
    "version" => version,
    "title" => title,
    "description" => description,
    "feed_url" => feed_url,
    "home_page_url" => home_page_url,
    "icon" => icon,
    "favicon" => favicon,
    "next_url" => next_url,
    "language" => language,
    "hubs" => hubs,
    "authors" => authors,
    "author" => author,
    "items" => items,
});

fn person(p: &Object<RawPerson<'_>>) -> Option<Person> {
    let p = p.0.as_ref()?;
    let mut out = Person::default();
    if let Some(n) = p.name.trimmed() {
        out.name = Some(n.to_string());
    }
    if let Some(u) = p.url.trimmed() {
        if let Some(mail) = u.strip_prefix("mailto:") {
            out.email = Some(mail.split('?').next().unwrap_or("").to_string());
        }
        out.uri = Some(u.to_string());
    }
    if out.name.is_none() && out.uri.is_none() {
        None
    } else {
        Some(out)
    }
}

fn authors(list: &List<Object<RawPerson<'_>>>, single: &Object<RawPerson<'_>>) -> Vec<Person> {
    let v: Vec<Person> = list.iter().filter_map(person).collect();
    if !v.is_empty() {
        return v;
    }
    person(single).into_iter().collect()
}

/// Parses a JSON Feed document.
pub(crate) fn parse_json(
    text: &str,
    base: Option<&Url>,
    mut out: ParsedFeed,
) -> Result<ParsedFeed, ParseError> {
    let data: Object<RawFeed<'_>> =
        serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    let Some(m) = data.0 else {
        return Err(ParseError::Json("top level is not an object".into()));
    };
    out.format = match m.version.trimmed() {
        Some("https://jsonfeed.org/version/1") => FeedFormat::Json1,
        Some("https://jsonfeed.org/version/1.1") => FeedFormat::Json11,
        _ => FeedFormat::Json,
    };
    let f = &mut out.feed;
    if let Some(t) = m.title.trimmed() {
        let (v, ty) = text_or_html(t, base);
        f.title = Some(v);
        f.title_type = Some(ty);
    }
    if let Some(d) = m.description.trimmed() {
        let (v, ty) = text_or_html(d, base);
        f.description = Some(v);
        f.description_type = Some(ty);
    }
    if let Some(u) = m.feed_url.trimmed() {
        f.id = Some(u.to_string());
        f.links.push(Link {
            href: u.to_string(),
            rel: Some("self".into()),
            title: f.title.clone(),
            ..Link::default()
        });
    }
    if let Some(u) = m.home_page_url.trimmed() {
        f.link = Some(u.to_string());
        f.links.push(Link {
            href: u.to_string(),
            rel: Some("alternate".into()),
            ..Link::default()
        });
    }
    if let Some(u) = m.icon.trimmed() {
        f.image = Some(Image {
            url: Some(u.to_string()),
            ..Image::default()
        });
    }
    if let Some(u) = m.favicon.trimmed() {
        f.icon = Some(u.to_string());
    }
    if let Some(u) = m.next_url.trimmed() {
        f.links.push(Link {
            href: u.to_string(),
            rel: Some("next".into()),
            ..Link::default()
        });
    }
    if let Some(l) = m.language.trimmed() {
        f.language = Some(l.to_string());
    }
    if let Some(hub) = m
        .hubs
        .iter()
        .find_map(|h| h.0.as_ref().and_then(|h| h.url.trimmed()))
    {
        f.hub = Some(hub.to_string());
    }
    f.authors = authors(&m.authors, &m.author);

    for im in m.items.iter() {
        let Some(im) = im.0.as_ref() else { continue };
        let mut e = Entry {
            id: im.id.0.clone(),
            ..Entry::default()
        };
        if let Some(t) = im.title.trimmed() {
            e.title = Some(t.to_string());
            e.title_type = Some("text/plain".into());
        }
        if let Some(u) = im.url.trimmed() {
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
        if let Some(u) = im.external_url.trimmed() {
            e.links.push(Link {
                href: resolve_url(base, u),
                rel: Some("related".into()),
                ..Link::default()
            });
        }
        if let Some(s) = im.summary.trimmed() {
            e.summary_html = Some(s.to_string());
        }
        if let Some(h) = im.content_html.0.as_deref() {
            e.content_html = Some(sanitize_html(h, base));
        } else if let Some(t) = im.content_text.0.as_deref() {
            e.content_html = Some(t.to_string());
        }
        e.published = im.date_published.trimmed().and_then(parse_date);
        e.updated = im.date_modified.trimmed().and_then(parse_date);
        e.authors = authors(&im.authors, &im.author);
        if im.tags.0.is_some() {
            e.categories = im
                .tags
                .iter()
                .filter_map(|t| t.0.as_deref())
                .map(|t| Category {
                    term: Some(t.to_string()),
                    ..Category::default()
                })
                .collect();
        }
        for a in im.attachments.iter().filter_map(|a| a.0.as_ref()) {
            let Some(u) = a.url.trimmed() else { continue };
            let url = resolve_url(base, u);
            let mime = a.mime_type.trimmed().map(str::to_string);
            let length = a.size_in_bytes.0;
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
        if e != Entry::default() {
            out.items.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ParsedFeed, ParseError> {
        parse_json(text, None, ParsedFeed::default())
    }

    #[test]
    fn a_repeated_key_counts_with_its_last_value() {
        let feed = parse(r#"{"title":"a","title":5,"items":[{"id":1}],"items":[{"id":"b"}]}"#);
        let feed = feed.unwrap_or_default();
        assert_eq!(feed.feed.title, None);
        assert_eq!(feed.items.len(), 1);
        assert_eq!(feed.items.first().and_then(|e| e.id.as_deref()), Some("b"));
    }

    #[test]
    fn scalar_ids_and_wrong_types() {
        let feed = parse(
            r#"{"items":[{"id":null},{"id":1.0},{"id":-3},{"id":[1],"title":" t "},5,
                {"url":"http://x/","attachments":[{"url":"u","size_in_bytes":-1}],"tags":["a",1]}]}"#,
        )
        .unwrap_or_default();
        let ids: Vec<Option<&str>> = feed.items.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(ids, [Some("null"), Some("1.0"), Some("-3"), None, None]);
        let last = feed.items.last().cloned().unwrap_or_default();
        assert_eq!(last.enclosures.first().map(|e| e.length), Some(None));
        assert_eq!(last.categories.len(), 1);
    }

    #[test]
    fn rejected_as_a_value_tree_would_be() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        for text in [
            deep.as_str(),
            r#"{"x":1e999}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"x":1,}"#,
            r#"{"x":1} y"#,
            "[1]",
        ] {
            let expected = match serde_json::from_str::<serde_json::Value>(text) {
                Err(e) => ParseError::Json(e.to_string()),
                Ok(_) => ParseError::Json("top level is not an object".into()),
            };
            assert_eq!(parse(text).err(), Some(expected), "{text}");
        }
    }
}
