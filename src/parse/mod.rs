//! Parsing: feed bytes + document URL + HTTP headers → [`ParsedFeed`].
//!
//! In: raw bytes as served (any encoding), the URL they came from, the Content-Type and other
//! headers. Out: one format-neutral [`ParsedFeed`] (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, JSON Feed
//! 1.0/1.1) with decoded text, absolute URLs, UTC dates and sanitised HTML. Broken input is
//! recovered the way a lenient reader would and marked `bozo`. It must never do I/O, follow a
//! DTD, expand user-defined entities, recurse without bound, or panic on any input.

pub mod date;
mod decode;
pub mod entities;
mod html_allowlists;
#[cfg(test)]
mod html_conformance_tests;
mod html_entity_table;
mod html_name_set;
mod html_tokenizer;
mod json;
pub mod model;
pub mod sanitize;
mod text;
mod xml;

pub use model::*;

use thiserror::Error;

/// Hard limits on one document.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting accepted.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 32 * 1024 * 1024,
            max_depth: 512,
        }
    }
}

/// What the parser was given besides the bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedInput<'a> {
    pub body: &'a [u8],
    /// The document's URL: base for relative links.
    pub url: Option<&'a str>,
    /// The HTTP Content-Type, whose charset outranks the XML declaration.
    pub content_type: Option<&'a str>,
    /// Other HTTP headers (Content-Location, Content-Language ...), names lower-case.
    pub headers: &'a [(String, String)],
    pub limits: Limits,
}

/// Why a document could not be parsed at all.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("document is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("elements nest deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("document declares entities (DTD); refused to avoid entity expansion attacks")]
    EntityExpansion,
    #[error("empty document")]
    Empty,
    #[error("not a feed: {0}")]
    NotAFeed(String),
    #[error("invalid JSON feed: {0}")]
    Json(String),
}

/// Parses one feed document.
///
/// Decodes the bytes once (BOM, HTTP charset, XML declaration, fallbacks), then reads XML
/// feeds in one streaming pass or JSON Feed with serde_json. Recoverable damage sets `bozo`;
/// only input that cannot be a feed at all, or breaks a limit, is an error.
pub fn parse_feed(input: &FeedInput<'_>) -> Result<ParsedFeed, ParseError> {
    if input.body.len() > input.limits.max_bytes {
        return Err(ParseError::TooLarge {
            size: input.body.len(),
            limit: input.limits.max_bytes,
        });
    }
    if input.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let decoded = decode::decode(input.body, input.content_type, !input.headers.is_empty());
    let mut out = ParsedFeed {
        encoding: decoded.encoding,
        ..ParsedFeed::default()
    };
    if let Some(why) = decoded.bozo {
        out.bozo = true;
        out.bozo_exception = Some(why);
    }
    let base = DocumentBase {
        input,
        url: std::cell::OnceCell::new(),
    };
    if let Some(lang) = header(input, "content-language") {
        out.feed.language = Some(lang.trim().to_string());
    }
    let text: &str = &decoded.text;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.trim_start().as_bytes().first().copied();
    let is_json_type = input
        .content_type
        .is_some_and(|ct| decode::split_content_type(ct).0.contains("json"));
    if first == Some(b'{') || (is_json_type && first != Some(b'<')) {
        json::parse_json(text, base.get(), out)
    } else {
        xml::parse_xml(text, &base, input.limits, out)
    }
}

fn header<'a>(input: &'a FeedInput<'_>, name: &str) -> Option<&'a str> {
    input
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The document's base URL, parsed on first use: a feed whose links are all absolute never
/// needs it.
pub(crate) struct DocumentBase<'a> {
    input: &'a FeedInput<'a>,
    url: std::cell::OnceCell<Option<url::Url>>,
}

impl DocumentBase<'_> {
    pub(crate) fn get(&self) -> Option<&url::Url> {
        self.url.get_or_init(|| document_base(self.input)).as_ref()
    }
}

/// The base for relative links: Content-Location resolved against the document URL.
fn document_base(input: &FeedInput<'_>) -> Option<url::Url> {
    let doc = input.url.and_then(|u| url::Url::parse(u.trim()).ok());
    match (header(input, "content-location"), doc) {
        (Some(loc), Some(doc)) => doc.join(loc.trim()).ok().or(Some(doc)),
        (Some(loc), None) => url::Url::parse(loc.trim()).ok(),
        (None, doc) => doc,
    }
}
