//! Request filters: the query string of `/feeds/{id}.{ext}` and `/api/items`, parsed and checked.
//!
//! In: the raw query string and what is known (taxonomy, configured feeds). Out: a [`Filters`]
//! value with a canonical form used as the cache key and in self and paging links, and a
//! matcher over stored items. Bad input is a one-line reason naming the parameter (the route
//! answers 400). It must never accept an unknown parameter, an unbounded value or a repeated one.

use super::taxonomy::Taxa;
use crate::item::Item;
use crate::publish::TaxonKind;
use crate::store::Cursor;
use chrono::{DateTime, Utc};

/// Items per response unless `limit=` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest `limit=`.
pub const MAX_LIMIT: usize = 500;
/// Longest `q=` in characters.
const MAX_Q: usize = 200;
/// Longest query string looked at.
const MAX_QUERY: usize = 2048;

/// Which route the filters are for: `since=` belongs to the API only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterRoute {
    Feed,
    Api,
}

/// Validated filters; all present ones must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub initiative: Option<String>,
    pub region: Option<String>,
    pub source: Option<String>,
    /// Lowercased search text.
    pub q: Option<String>,
    pub limit: usize,
    pub before: Option<Cursor>,
    pub since: Option<DateTime<Utc>>,
}

impl Filters {
    /// Parses `query` (without the `?`).
    pub fn parse(
        query: Option<&str>,
        route: FilterRoute,
        taxa: &Taxa,
        is_source: &dyn Fn(&str) -> bool,
    ) -> Result<Filters, String> {
        let mut f = Filters {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        };
        let query = query.unwrap_or("");
        if query.len() > MAX_QUERY {
            return Err(format!("query string longer than {MAX_QUERY} bytes"));
        }
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if seen.iter().any(|k| *k == key) {
                return Err(format!("parameter {key}= given twice"));
            }
            seen.push(key.to_string());
            let value = value.trim();
            match key.as_ref() {
                "initiative" => {
                    f.initiative = Some(known_label(
                        taxa,
                        "initiative",
                        value,
                        TaxonKind::Initiative,
                    )?)
                }
                "region" => f.region = Some(known_label(taxa, "region", value, TaxonKind::Region)?),
                "source" => {
                    if !is_safe_source(value) || !is_source(value) {
                        return Err(format!("source={value:?} is not a configured feed id"));
                    }
                    f.source = Some(value.to_string());
                }
                "q" => {
                    if value.is_empty() {
                        return Err("q= is empty".into());
                    }
                    if value.chars().count() > MAX_Q {
                        return Err(format!("q= is longer than {MAX_Q} characters"));
                    }
                    f.q = Some(value.to_lowercase());
                }
                "limit" => {
                    let n: usize = value
                        .parse()
                        .map_err(|_| format!("limit={value:?} is not a whole number"))?;
                    if n == 0 || n > MAX_LIMIT {
                        return Err(format!("limit={n} must be between 1 and {MAX_LIMIT}"));
                    }
                    f.limit = n;
                }
                "before" => {
                    f.before = Some(
                        value
                            .parse::<Cursor>()
                            .map_err(|e| format!("before=: {e}"))?,
                    )
                }
                "since" if route == FilterRoute::Api => {
                    f.since = Some(
                        DateTime::parse_from_rfc3339(value)
                            .map_err(|e| format!("since={value:?} is not an RFC 3339 date ({e})"))?
                            .with_timezone(&Utc),
                    )
                }
                other => {
                    let allowed = match route {
                        FilterRoute::Feed => "initiative, region, source, q, limit, before",
                        FilterRoute::Api => "initiative, region, source, q, limit, before, since",
                    };
                    return Err(format!("unknown parameter {other:?} (allowed: {allowed})"));
                }
            }
        }
        Ok(f)
    }

    /// Whether an item passes every filter except the route's own label.
    pub fn matches(&self, item: &Item) -> bool {
        if let Some(i) = &self.initiative {
            if !item.labels.initiatives.iter().any(|l| &l.id == i) {
                return false;
            }
        }
        if let Some(r) = &self.region {
            if !item.labels.regions.iter().any(|l| &l.id == r) {
                return false;
            }
        }
        if let Some(s) = &self.source {
            if item.feed.0 != *s && !item.sources.iter().any(|src| src.feed.0 == *s) {
                return false;
            }
        }
        if let Some(q) = &self.q {
            if !contains_lowercase(&item.title, q) && !contains_lowercase(&item.summary_text, q) {
                return false;
            }
        }
        if let Some(since) = self.since {
            if item.first_seen <= since {
                return false;
            }
        }
        true
    }

    /// Filters besides the id and paging, as `(name, value)`, for the feed's description.
    pub fn described(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in [
            ("initiative", &self.initiative),
            ("region", &self.region),
            ("source", &self.source),
            ("q", &self.q),
        ] {
            if let Some(v) = v {
                out.push((k.to_string(), v.clone()));
            }
        }
        out
    }

    /// The canonical query string (fixed order, `limit` only when not the default), optionally
    /// with a different `before`. Used for cache keys and links.
    pub fn canonical(&self, before: Option<&Cursor>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.described() {
            s.append_pair(&k, &v);
        }
        if let Some(since) = self.since {
            s.append_pair(
                "since",
                &since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        if self.limit != DEFAULT_LIMIT {
            s.append_pair("limit", &self.limit.to_string());
        }
        if let Some(c) = before {
            s.append_pair("before", &c.to_string());
        }
        s.finish()
    }
}

fn known_label(taxa: &Taxa, name: &str, value: &str, kind: TaxonKind) -> Result<String, String> {
    match taxa.get(value) {
        Some(t) if t.kind == kind => Ok(t.id.clone()),
        _ => Err(format!("{name}={value:?} is not a known {name} id")),
    }
}

fn is_safe_source(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Case-insensitive substring test; `needle` is already lowercase.
fn contains_lowercase(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        let n = needle.as_bytes();
        return haystack
            .as_bytes()
            .windows(n.len().max(1))
            .any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str, route: FilterRoute) -> Result<Filters, String> {
        Filters::parse(Some(q), route, &Taxa::fixed(), &|s| s == "icmpd-news")
    }

    #[test]
    fn parses_and_canonicalises() {
        let f = parse(
            "region=western-balkans&q=Border&limit=10&initiative=mieux",
            FilterRoute::Feed,
        )
        .unwrap();
        assert_eq!(f.limit, 10);
        assert_eq!(f.q.as_deref(), Some("border"));
        assert_eq!(
            f.canonical(None),
            "initiative=mieux&region=western-balkans&q=border&limit=10"
        );
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        for (q, word) in [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=abc", "limit"),
            ("region=asylum", "region"),
            ("initiative=nope", "initiative"),
            ("source=other", "source"),
            ("since=2026-01-01T00:00:00Z", "unknown parameter"),
            ("before=xyz", "before"),
            ("q=a&q=b", "twice"),
            ("colour=red", "unknown parameter"),
        ] {
            let e = parse(q, FilterRoute::Feed).unwrap_err();
            assert!(e.contains(word), "{q}: {e}");
            assert!(!e.contains('\n'));
        }
        assert!(parse("since=2026-01-01T00:00:00Z", FilterRoute::Api).is_ok());
        assert!(parse("since=yesterday", FilterRoute::Api).is_err());
    }

    #[test]
    fn substring_search_ignores_case() {
        assert!(contains_lowercase("Border Management", "border m"));
        assert!(contains_lowercase("Türkiye ASYLUM", "türkiye"));
        assert!(!contains_lowercase("asylum", "visa"));
    }
}
