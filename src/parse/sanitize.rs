//! HTML sanitising: untrusted HTML from a feed → HTML that is safe to republish.
//!
//! In: an HTML fragment and the base URL of the element it came from. Out: the fragment with
//! only allow-listed elements and attributes (feedparser's lists, including MathML and SVG),
//! relative URLs in feedparser's URL attributes made absolute, inline `style` filtered the way
//! feedparser's `sanitize_style` filters it, and no script, style, comments, processing
//! instructions, event handlers or `javascript:`/`vbscript:`/`data:` URLs. It is one streaming
//! pass over the input (`super::html_tokenizer`): it never builds a tree, never recurses on
//! input depth, and its output is linear in the input size. [`html_to_plain_text`] gives the
//! plain text of a fragment for summaries and classification.
//!
//! Where it knowingly differs from feedparser (all in the safe direction):
//! - `script`/`style` bodies are raw text up to their end tag, so no part of them ever comes
//!   out as text (feedparser's SGML reader can leak script text; its "crazy" cases expect that).
//! - every URL attribute (`src`, `cite`, `action`, `background`, `xlink:href` ...) loses a
//!   forbidden scheme, not only `href`; SVG animation values (`to`, `from`, `values`, `by`) too.
//! - attribute values are decoded by the HTML5 attribute rules (`?a=1&copy=2` stays as is).
//! - absolute URLs are kept as written; relative ones are resolved by the WHATWG rules of the
//!   `url` crate, which percent-encodes where Python's `urljoin` leaves characters alone.
//! - the output is not re-balanced, as in feedparser: unclosed tags stay open and stray end
//!   tags of allowed elements pass.

use std::borrow::Cow;
use std::sync::LazyLock;

use super::entities::{decode_attribute_value, decode_references_into, reference_at};
use super::html_allowlists::{
    ACCEPTABLE_ATTRIBUTES, ACCEPTABLE_CSS_KEYWORDS, ACCEPTABLE_CSS_PROPERTIES, ACCEPTABLE_ELEMENTS,
    ACCEPTABLE_SVG_PROPERTIES, ACCEPTABLE_URI_SCHEMES, MATHML_ATTRIBUTES, MATHML_ELEMENTS,
    RELATIVE_URI_ATTRIBUTES, SVG_ATTRIBUTES, SVG_ATTRIBUTE_CASE, SVG_ELEMENTS, SVG_ELEMENT_CASE,
    UNACCEPTABLE_ELEMENTS_WITH_END_TAG, VOID_ELEMENTS,
};
use super::html_name_set::NameSet;
use super::html_tokenizer::{is_raw_text_element, Attributes, Token, Tokenizer};
use super::text::escape_attr_into;

const MATHML_NAMESPACE: &str = "http://www.w3.org/1998/Math/MathML";
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";
const XLINK_NAMESPACE: &str = "http://www.w3.org/1999/xlink";

macro_rules! name_sets {
    ($($set:ident = $list:ident;)*) => {
        $(static $set: LazyLock<NameSet> = LazyLock::new(|| NameSet::new($list));)*
    };
}

name_sets! {
    ATTRIBUTES = ACCEPTABLE_ATTRIBUTES;
    MATHML_ATTRS = MATHML_ATTRIBUTES;
    SVG_ATTRS = SVG_ATTRIBUTES;
    SCHEMES = ACCEPTABLE_URI_SCHEMES;
    CSS_PROPERTIES = ACCEPTABLE_CSS_PROPERTIES;
}

/// What the allow-lists say about an element name, as flags of [`ELEMENT_CLASS`].
const ACCEPTABLE: u8 = 1;
const VOID: u8 = 2;
const DROPPED_WITH_CONTENT: u8 = 4;
const MATHML: u8 = 8;
const SVG: u8 = 16;

/// Every listed element name with its flags: one lookup per tag.
static ELEMENT_CLASS: LazyLock<NameSet> = LazyLock::new(|| {
    NameSet::with_flags(&[
        (ACCEPTABLE_ELEMENTS, ACCEPTABLE),
        (VOID_ELEMENTS, VOID),
        (UNACCEPTABLE_ELEMENTS_WITH_END_TAG, DROPPED_WITH_CONTENT),
        (MATHML_ELEMENTS, MATHML),
        (SVG_ELEMENTS, SVG),
    ])
});

fn in_list(list: &[&str], name: &str) -> bool {
    list.binary_search_by(|candidate| candidate.as_bytes().cmp(name.as_bytes()))
        .is_ok()
}

fn in_map(map: &'static [(&'static str, &'static str)], name: &str) -> Option<&'static str> {
    map.binary_search_by(|(candidate, _)| candidate.as_bytes().cmp(name.as_bytes()))
        .ok()
        .and_then(|index| map.get(index))
        .map(|(_, mapped)| *mapped)
}

/// `s` lower-cased, borrowed when it already is.
fn ascii_lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Attributes whose value is a URL: their scheme is checked even where feedparser only checks
/// `href`, so no `javascript:` or `data:` URL survives in any of them.
fn is_url_attribute(name: &str) -> bool {
    matches!(
        name,
        "href"
            | "src"
            | "cite"
            | "action"
            | "background"
            | "longdesc"
            | "usemap"
            | "poster"
            | "dynsrc"
            | "lowsrc"
            | "xlink:href"
            | "codebase"
            | "data"
            | "classid"
            | "profile"
            | "formaction"
            | "datasrc"
    )
}

/// Longest scheme considered; longer prefixes are not schemes.
const MAX_SCHEME_LEN: usize = 32;

/// How a URL's scheme stands with the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// No scheme: a relative reference.
    Relative,
    Allowed,
    Forbidden,
}

/// Classifies `url`'s scheme, read as a browser (and Python's `urlsplit`) reads it: leading
/// controls and spaces skipped, tabs and newlines ignored, case folded.
fn classify_scheme(url: &str) -> Scheme {
    // The usual absolute link: the loop below would read the same allowed scheme.
    if url.starts_with("https:") || url.starts_with("http:") {
        return Scheme::Allowed;
    }
    let mut scheme = [0u8; MAX_SCHEME_LEN];
    let mut len = 0;
    let bytes = url
        .trim_start_matches(|c: char| c <= ' ')
        .bytes()
        .filter(|b| !matches!(b, b'\t' | b'\n' | b'\r'));
    for byte in bytes {
        match byte {
            b':' if len > 0 => {
                let scheme = std::str::from_utf8(scheme.get(..len).unwrap_or(&[])).unwrap_or("");
                return if SCHEMES.contains(scheme) {
                    Scheme::Allowed
                } else {
                    Scheme::Forbidden
                };
            }
            b if len == 0 && !b.is_ascii_alphabetic() => return Scheme::Relative,
            b if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') => {
                match scheme.get_mut(len) {
                    Some(slot) => *slot = b.to_ascii_lowercase(),
                    None => return Scheme::Relative,
                }
                len += 1;
            }
            _ => return Scheme::Relative,
        }
    }
    Scheme::Relative
}

/// Whether `url` is relative or has an allowed scheme.
fn scheme_is_safe(url: &str) -> bool {
    classify_scheme(url) != Scheme::Forbidden
}

/// Schemes whose URLs relative references resolve against (Python's `uses_relative`).
const HIERARCHICAL_SCHEMES: &[&str] = &[
    "file", "ftp", "gopher", "http", "https", "imap", "mms", "nntp", "prospero", "rtsp", "rtspu",
    "sftp", "shttp", "svn", "svn+ssh", "wais", "ws", "wss",
];

/// Resolves a relative reference against `base` by RFC 3986 as Python's `urljoin` does it:
/// characters are kept as written (no percent-encoding), an empty fragment is dropped, `..`
/// never climbs above the root. `None` when the base is not hierarchical.
fn resolve_reference(base: &url::Url, reference: &str) -> Option<String> {
    if !HIERARCHICAL_SCHEMES.contains(&base.scheme()) || base.cannot_be_a_base() {
        return None;
    }
    if reference.is_empty() {
        return Some(base.as_str().to_string());
    }
    if let Some(network_path) = reference.strip_prefix("//") {
        return Some(format!("{}://{network_path}", base.scheme()));
    }
    let (rest, fragment) = match reference.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (reference, None),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    // `scheme://authority`: the serialisation without path, query and fragment.
    let serialised = base.as_str();
    let tail = base.path().len()
        + base.query().map_or(0, |q| q.len() + 1)
        + base.fragment().map_or(0, |f| f.len() + 1);
    let prefix = serialised.get(..serialised.len().checked_sub(tail)?)?;
    let mut out = String::with_capacity(prefix.len() + base.path().len() + reference.len());
    out.push_str(prefix);
    if path.is_empty() {
        out.push_str(base.path());
        if let Some(query) = query.filter(|q| !q.is_empty()).or(base.query()) {
            out.push('?');
            out.push_str(query);
        }
    } else {
        let mut segments: Vec<&str> = Vec::new();
        if !path.starts_with('/') {
            let base_path = base.path();
            let directory = base_path.rsplit_once('/').map_or("", |(dir, _)| dir);
            segments.extend(directory.split('/'));
        }
        let relative: Vec<&str> = path.split('/').collect();
        let last = relative.last().copied().unwrap_or("");
        let count = segments.len() + relative.len();
        // Empty segments inside the path vanish, as in urljoin.
        let combined = segments
            .into_iter()
            .chain(relative)
            .enumerate()
            .filter(|(index, seg)| *index == 0 || *index + 1 == count || !seg.is_empty());
        let mut resolved: Vec<&str> = Vec::new();
        for (_, segment) in combined {
            match segment {
                ".." => {
                    resolved.pop();
                }
                "." => {}
                other => resolved.push(other),
            }
        }
        if matches!(last, "." | "..") {
            resolved.push("");
        }
        let joined = resolved.join("/");
        if joined.is_empty() {
            out.push('/');
        } else {
            if !joined.starts_with('/') {
                out.push('/');
            }
            out.push_str(&joined);
        }
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            out.push('?');
            out.push_str(query);
        }
    }
    if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
        out.push('#');
        out.push_str(fragment);
    }
    Some(out)
}

/// Which attribute list applies to the element being written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Vocabulary {
    Html,
    MathMl,
    Svg,
}

impl Vocabulary {
    fn allows(self, attribute: &str) -> bool {
        match self {
            Vocabulary::Html => ATTRIBUTES.contains(attribute),
            Vocabulary::MathMl => MATHML_ATTRS.contains(attribute),
            Vocabulary::Svg => SVG_ATTRS.contains(attribute),
        }
    }
}

/// The base URL of a fragment, asked for only when a relative URL needs it.
pub(crate) type LazyBase<'f, 'b> = &'f dyn Fn() -> Option<&'b url::Url>;

/// State of one sanitising pass.
struct Sanitizer<'h, 'f, 'b, 'c> {
    out: String,
    base: LazyBase<'f, 'b>,
    /// Open elements whose text is dropped (`applet`).
    dropped_depth: u32,
    mathml_depth: u32,
    svg_depth: u32,
    /// Attributes of the current tag, reused across tags.
    attributes: Vec<(Cow<'h, str>, Cow<'h, str>)>,
    styles: &'c mut StyleCache,
}

/// Recent `style` values with their [`sanitize_style`] result: content written by a tool
/// repeats the same few inline styles, from item to item of a feed, and the filter is a pure
/// function of the value and `inside_svg`. One cache serves all the fragments of a document.
#[derive(Default)]
pub(crate) struct StyleCache {
    entries: Vec<(String, bool, String)>,
}

/// Entries kept in a [`StyleCache`], and the longest value cached.
const STYLE_CACHE_ENTRIES: usize = 16;
const STYLE_CACHE_MAX_LEN: usize = 1024;

/// Sanitises `html`, resolving relative URLs against `base`.
pub fn sanitize_html(html: &str, base: Option<&url::Url>) -> String {
    sanitize_html_with(html, &|| base)
}

/// [`sanitize_html`] with the base URL computed only if a relative URL needs it.
pub(crate) fn sanitize_html_with(html: &str, base: LazyBase<'_, '_>) -> String {
    sanitize_html_cached(html, base, &mut StyleCache::default())
}

/// [`sanitize_html_with`] remembering inline styles in `styles` (see [`StyleCache`]).
fn sanitize_html_cached(html: &str, base: LazyBase<'_, '_>, styles: &mut StyleCache) -> String {
    if memchr::memchr2(b'<', b'&', html.as_bytes()).is_none() {
        // No tag and no reference: the output is the text itself, trimmed, with CRLF as LF
        // (what the loop below would write, without tokenising).
        let text = html.trim();
        return if memchr::memchr(b'\r', text.as_bytes()).is_some() {
            text.replace("\r\n", "\n")
        } else {
            text.to_string()
        };
    }
    let mut sanitizer = Sanitizer {
        out: String::with_capacity(html.len() + html.len() / 8),
        base,
        dropped_depth: 0,
        mathml_depth: 0,
        svg_depth: 0,
        attributes: Vec::new(),
        styles,
    };
    for token in Tokenizer::new(html) {
        match token {
            Token::Text(text) => {
                if sanitizer.dropped_depth == 0 {
                    sanitizer.text(text);
                }
            }
            Token::LessThan => {
                if sanitizer.dropped_depth == 0 {
                    sanitizer.out.push_str("&lt;");
                }
            }
            Token::RawText(_) => {}
            Token::StartTag {
                name,
                attrs,
                self_closing,
            } => {
                let name = ascii_lower(name);
                let class = ELEMENT_CLASS.flags(&name);
                sanitizer.start_tag(&name, class, attrs, self_closing);
                if self_closing && class & VOID == 0 {
                    sanitizer.end_tag(&name, class);
                }
            }
            Token::EndTag { name } => {
                let name = ascii_lower(name);
                sanitizer.end_tag(&name, ELEMENT_CLASS.flags(&name));
            }
        }
    }
    let mut out = sanitizer.out;
    let end = out.trim_end().len();
    out.truncate(end);
    let start = out.len() - out.trim_start().len();
    if start > 0 {
        out.drain(..start);
    }
    // memchr's vector search: `str::contains` reads a word at a time.
    if memchr::memchr(b'\r', out.as_bytes()).is_some() {
        out = out.replace("\r\n", "\n");
    }
    out
}

/// Whether sanitising `html` would return it as it is: no tag, no reference, no CR, no
/// surrounding whitespace.
fn unchanged_by_sanitising(html: &str) -> bool {
    memchr::memchr3(b'<', b'&', b'\r', html.as_bytes()).is_none() && html.trim().len() == html.len()
}

/// [`sanitize_html`] on an owned string, which is returned as it is when it has nothing to
/// change (no tag, no reference, no surrounding whitespace, no CR).
pub(crate) fn sanitize_html_owned(
    html: String,
    base: LazyBase<'_, '_>,
    styles: &mut StyleCache,
) -> String {
    if unchanged_by_sanitising(&html) {
        return html;
    }
    sanitize_html_cached(&html, base, styles)
}

/// [`sanitize_html_owned`] on text that may be borrowed: copied only when it has nothing to
/// change.
pub(crate) fn sanitize_html_cow(
    html: Cow<'_, str>,
    base: LazyBase<'_, '_>,
    styles: &mut StyleCache,
) -> String {
    match html {
        Cow::Owned(html) => sanitize_html_owned(html, base, styles),
        Cow::Borrowed(html) => {
            if unchanged_by_sanitising(html) {
                return html.to_string();
            }
            sanitize_html_cached(html, base, styles)
        }
    }
}

impl<'h> Sanitizer<'h, '_, '_, '_> {
    /// Writes text, keeping valid references and escaping bare `&`.
    fn text(&mut self, text: &str) {
        // Leading whitespace of the fragment is trimmed, as feedparser trims its output.
        let mut rest = if self.out.is_empty() {
            text.trim_start()
        } else {
            text
        };
        while let Some(amp) = find_amp(rest.as_bytes()) {
            let (before, from_amp) = rest.split_at(amp);
            self.out.push_str(before);
            match reference_at(from_amp) {
                Some(reference) => {
                    self.out
                        .push_str(from_amp.get(..reference.len).unwrap_or(""));
                    rest = from_amp.get(reference.len..).unwrap_or("");
                }
                None => {
                    self.out.push_str("&amp;");
                    rest = from_amp.get(1..).unwrap_or("");
                }
            }
        }
        self.out.push_str(rest);
    }

    fn start_tag(&mut self, name: &str, class: u8, raw_attrs: &'h str, self_closing: bool) {
        let acceptable = class & ACCEPTABLE != 0;
        self.collect_attributes(raw_attrs);
        let mut vocabulary = Vocabulary::Html;
        let mut written_name = name;
        if !acceptable || self.svg_depth > 0 {
            // script/style bodies never reach here: the tokenizer skips them as raw text.
            if class & DROPPED_WITH_CONTENT != 0 && !self_closing && !is_raw_text_element(name) {
                self.dropped_depth = self.dropped_depth.saturating_add(1);
            }
            // Inline HTML5 svg/math get their implicit namespace.
            if !self.attribute_is("xmlns", |v| !v.is_empty()) {
                if name == "svg" {
                    self.attributes
                        .push((Cow::Borrowed("xmlns"), Cow::Borrowed(SVG_NAMESPACE)));
                } else if name == "math" {
                    self.attributes
                        .push((Cow::Borrowed("xmlns"), Cow::Borrowed(MATHML_NAMESPACE)));
                }
            }
            if name == "math" && self.attribute_is("xmlns", |v| v == MATHML_NAMESPACE) {
                self.mathml_depth = self.mathml_depth.saturating_add(1);
            }
            if name == "svg" && self.attribute_is("xmlns", |v| v == SVG_NAMESPACE) {
                self.svg_depth = self.svg_depth.saturating_add(1);
            }
            if self.mathml_depth > 0 && class & MATHML != 0 {
                vocabulary = Vocabulary::MathMl;
            } else if self.svg_depth > 0 && class & SVG != 0 {
                vocabulary = Vocabulary::Svg;
                written_name = in_map(SVG_ELEMENT_CASE, name).unwrap_or(name);
            } else if !acceptable {
                return;
            }
        }
        if (self.mathml_depth > 0 || self.svg_depth > 0)
            && self.attributes.iter().any(|(k, _)| k.starts_with("xlink:"))
            && !self.attribute_is("xmlns:xlink", |v| v == XLINK_NAMESPACE)
        {
            self.attributes
                .push((Cow::Borrowed("xmlns:xlink"), Cow::Borrowed(XLINK_NAMESPACE)));
        }
        // feedparser's normalize_attrs: one value per name (the last), sorted by name.
        if self.attributes.len() > 1 {
            self.attributes.sort_by(|a, b| a.0.cmp(&b.0));
            self.attributes.dedup_by(|later, kept| {
                let duplicate = later.0 == kept.0;
                if duplicate {
                    std::mem::swap(later, kept);
                }
                duplicate
            });
        }

        self.out.push('<');
        self.out.push_str(written_name);
        let attributes = std::mem::take(&mut self.attributes);
        for (key, value) in &attributes {
            let key: &str = key;
            if key == "style" && vocabulary.allows("style") {
                self.write_style(value, self.svg_depth > 0);
                continue;
            }
            if !vocabulary.allows(key) {
                continue;
            }
            let key = if vocabulary == Vocabulary::Svg {
                in_map(SVG_ATTRIBUTE_CASE, key).unwrap_or(key)
            } else {
                key
            };
            let mut value: Cow<'_, str> = if matches!(key, "rel" | "type") {
                ascii_lower(value)
            } else {
                Cow::Borrowed(value)
            };
            if is_url_attribute(key) {
                value = self.safe_url(name, key, value);
            } else if vocabulary == Vocabulary::Svg
                && matches!(key, "to" | "from" | "values" | "by")
                && !value.split(';').all(scheme_is_safe)
            {
                // SVG animation can set `href` to any of these values.
                value = Cow::Borrowed("");
            }
            self.write_attribute(key, &value);
        }
        self.attributes = attributes;
        self.attributes.clear();
        if class & VOID != 0 {
            self.out.push_str(" />");
        } else {
            self.out.push('>');
        }
    }

    /// Writes the `style` attribute: [`sanitize_style`] of `style`, remembered for the values
    /// the document repeats; nothing when no declaration is kept.
    fn write_style(&mut self, style: &str, inside_svg: bool) {
        if let Some((_, _, clean)) = self
            .styles
            .entries
            .iter()
            .find(|(value, svg, _)| *svg == inside_svg && value == style)
        {
            if !clean.is_empty() {
                write_attribute(&mut self.out, "style", clean);
            }
            return;
        }
        let clean = sanitize_style(style, inside_svg);
        if !clean.is_empty() {
            write_attribute(&mut self.out, "style", &clean);
        }
        if style.len() <= STYLE_CACHE_MAX_LEN {
            let entries = &mut self.styles.entries;
            if entries.len() >= STYLE_CACHE_ENTRIES {
                entries.remove(0);
            }
            entries.push((style.to_string(), inside_svg, clean));
        }
    }

    /// Reads the raw attribute text into `self.attributes`: names lower-cased, values decoded,
    /// a bare attribute taking its own name as value (`checked="checked"`), as SGML does.
    fn collect_attributes(&mut self, raw_attrs: &'h str) {
        self.attributes.clear();
        for attribute in Attributes::new(raw_attrs) {
            let name = ascii_lower(attribute.name);
            // Event handlers are in no allow-list; skip them before any work.
            if name.starts_with("on") {
                continue;
            }
            let value = match attribute.value {
                Some(value) if find_amp(value.as_bytes()).is_some() => {
                    Cow::Owned(decode_attribute_value(value))
                }
                Some(value) => Cow::Borrowed(value),
                None => name.clone(),
            };
            self.attributes.push((name, value));
        }
    }

    fn attribute_is(&self, name: &str, test: impl Fn(&str) -> bool) -> bool {
        self.attributes
            .iter()
            .any(|(key, value)| key == name && test(value))
    }

    /// Resolves a URL attribute against the base where feedparser does, and empties it when its
    /// scheme is not an allowed one.
    fn safe_url<'v>(&self, element: &str, attribute: &str, value: Cow<'v, str>) -> Cow<'v, str> {
        match classify_scheme(&value) {
            Scheme::Forbidden => return Cow::Borrowed(""),
            // Absolute URLs are kept as written (no normalisation), as urljoin keeps them.
            Scheme::Allowed => return value,
            Scheme::Relative => {}
        }
        let resolvable = RELATIVE_URI_ATTRIBUTES
            .binary_search_by(|(e, a)| {
                (e.as_bytes(), a.as_bytes()).cmp(&(element.as_bytes(), attribute.as_bytes()))
            })
            .is_ok();
        if let Some(base) = resolvable.then(self.base).flatten() {
            if let Some(resolved) = resolve_reference(base, value.trim()) {
                if scheme_is_safe(&resolved) {
                    return Cow::Owned(resolved);
                }
            }
        }
        value
    }

    fn write_attribute(&mut self, key: &str, value: &str) {
        write_attribute(&mut self.out, key, value);
    }

    fn end_tag(&mut self, name: &str, class: u8) {
        let mut written_name = name;
        if class & ACCEPTABLE == 0 {
            if class & DROPPED_WITH_CONTENT != 0 && !is_raw_text_element(name) {
                self.dropped_depth = self.dropped_depth.saturating_sub(1);
            }
            if self.mathml_depth > 0 && class & MATHML != 0 {
                if name == "math" {
                    self.mathml_depth -= 1;
                }
            } else if self.svg_depth > 0 && class & SVG != 0 {
                written_name = in_map(SVG_ELEMENT_CASE, name).unwrap_or(name);
                if name == "svg" {
                    self.svg_depth -= 1;
                }
            } else {
                return;
            }
        }
        if class & VOID == 0 {
            self.out.push_str("</");
            self.out.push_str(written_name);
            self.out.push('>');
        }
    }
}

/// Writes ` key="value"` with the value escaped for a double-quoted attribute.
fn write_attribute(out: &mut String, key: &str, value: &str) {
    out.push(' ');
    out.push_str(key);
    out.push_str("=\"");
    escape_attr_into(value, out);
    out.push('"');
}

/// The first `&` in a piece of text. Most text between tags is a few bytes (a newline, a
/// word), where a plain look answers before memchr's vector setup would.
fn find_amp(bytes: &[u8]) -> Option<usize> {
    if bytes.len() <= 16 {
        bytes.iter().position(|&b| b == b'&')
    } else {
        memchr::memchr(b'&', bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// inline style

/// Python's `\w` on one character.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The character at `i` of a style held as bytes (ASCII) or chars.
fn at<C: Copy + Into<char>>(units: &[C], i: usize) -> Option<char> {
    units.get(i).map(|&unit| unit.into())
}

/// feedparser's "gauntlet": the whole value must be a sequence of
/// `[:,;#%.\sa-zA-Z0-9!]`, `\w-\w`, `'[\s\w]+'`, `"[\s\w]+"` or `\([\d,\s]+\)`.
/// Checked as a set of reachable positions (no backtracking).
fn passes_style_gauntlet<C: Copy + Into<char>>(units: &[C]) -> bool {
    let n = units.len();
    let mut reachable = vec![false; n + 1];
    if let Some(first) = reachable.first_mut() {
        *first = true;
    }
    let run = |from: usize, accept: fn(char) -> bool| {
        let mut p = from;
        while at(units, p).is_some_and(accept) {
            p += 1;
        }
        p - from
    };
    for i in 0..n {
        if !reachable.get(i).copied().unwrap_or(false) {
            continue;
        }
        let Some(c) = at(units, i) else { break };
        let mut mark = |end: usize| {
            if let Some(slot) = reachable.get_mut(end) {
                *slot = true;
            }
        };
        if c.is_ascii_alphanumeric() || c.is_whitespace() || ":,;#%.!".contains(c) {
            mark(i + 1);
        }
        if is_word(c) && at(units, i + 1) == Some('-') && at(units, i + 2).is_some_and(is_word) {
            mark(i + 3);
        }
        if c == '\'' || c == '"' {
            let inner = run(i + 1, |d| d.is_whitespace() || is_word(d));
            if inner > 0 && at(units, i + 1 + inner) == Some(c) {
                mark(i + inner + 2);
            }
        }
        if c == '(' {
            let inner = run(i + 1, |d| d.is_numeric() || d == ',' || d.is_whitespace());
            if inner > 0 && at(units, i + 1 + inner) == Some(')') {
                mark(i + inner + 2);
            }
        }
    }
    reachable.last().copied().unwrap_or(false)
}

fn is_name_char(c: char) -> bool {
    c == '-' || is_word(c)
}

/// One `prop: value` match inside a style attribute, as unit index ranges.
struct Declaration {
    name: (usize, usize),
    value: (usize, usize),
    end: usize,
}

/// Matches `[-\w]+\s*:\s*([^:;]*)` at `i`.
fn declaration_at<C: Copy + Into<char>>(units: &[C], i: usize) -> Option<Declaration> {
    let mut p = i;
    while at(units, p).is_some_and(is_name_char) {
        p += 1;
    }
    if p == i {
        return None;
    }
    let name = (i, p);
    while at(units, p).is_some_and(char::is_whitespace) {
        p += 1;
    }
    if at(units, p) != Some(':') {
        return None;
    }
    p += 1;
    while at(units, p).is_some_and(char::is_whitespace) {
        p += 1;
    }
    let value_start = p;
    while at(units, p).is_some_and(|c| c != ':' && c != ';') {
        p += 1;
    }
    Some(Declaration {
        name,
        value: (value_start, p),
        end: p,
    })
}

/// feedparser's check that nothing but `prop: value;` declarations remain.
fn is_declaration_list<C: Copy + Into<char>>(units: &[C]) -> bool {
    let mut p = 0;
    while p < units.len() {
        let mut q = p;
        while at(units, q).is_some_and(char::is_whitespace) {
            q += 1;
        }
        match declaration_at(units, q) {
            Some(Declaration { end, .. }) => {
                p = if at(units, end) == Some(';') {
                    end + 1
                } else {
                    end
                };
            }
            None => {
                if !at(units, p).is_some_and(char::is_whitespace) {
                    return false;
                }
                p += 1;
            }
        }
    }
    true
}

/// feedparser's `valid_css_values`: hex colours, `rgb(...)`, and short sizes.
fn is_valid_css_value(keyword: &str) -> bool {
    let bytes = keyword.as_bytes();
    if let Some(hex) = keyword.strip_prefix('#') {
        return !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    }
    if let Some(rgb) = keyword.strip_prefix("rgb(") {
        // \d+%?,\d*%?,?\d*%?\)?
        let b = rgb.as_bytes();
        let mut p = 0;
        let digits = |p: &mut usize| {
            let start = *p;
            while b.get(*p).is_some_and(u8::is_ascii_digit) {
                *p += 1;
            }
            *p - start
        };
        let optional = |p: &mut usize, c: u8| {
            if b.get(*p) == Some(&c) {
                *p += 1;
            }
        };
        if digits(&mut p) == 0 {
            return false;
        }
        optional(&mut p, b'%');
        if b.get(p) != Some(&b',') {
            return false;
        }
        p += 1;
        digits(&mut p);
        optional(&mut p, b'%');
        optional(&mut p, b',');
        digits(&mut p);
        optional(&mut p, b'%');
        optional(&mut p, b')');
        return p == b.len();
    }
    // \d{0,2}\.?\d{0,2}(cm|em|ex|in|mm|pc|pt|px|%|,|\))?
    let mut p = 0;
    let mut count = 0;
    while count < 2 && bytes.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
        count += 1;
    }
    if bytes.get(p) == Some(&b'.') {
        p += 1;
    }
    count = 0;
    while count < 2 && bytes.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
        count += 1;
    }
    let unit = bytes.get(p..).unwrap_or(&[]);
    matches!(
        unit,
        b"" | b"cm" | b"em" | b"ex" | b"in" | b"mm" | b"pc" | b"pt" | b"px" | b"%" | b"," | b")"
    )
}

/// Removes `url(...)` (and the spaces after it) the way feedparser does, replacing each with a
/// space.
fn strip_css_urls(style: &str) -> Cow<'_, str> {
    // feedparser's pattern is case-sensitive; `URL(` fails the gauntlet later instead.
    if !style.contains("url") {
        return Cow::Borrowed(style);
    }
    let chars: Vec<char> = style.chars().collect();
    let mut out = String::with_capacity(style.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(end) = css_url_at(&chars, i) {
            out.push(' ');
            i = end;
        } else if let Some(&c) = chars.get(i) {
            out.push(c);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Matches `url\s*\(\s*[^\s)]+?\s*\)\s*` at `i` and returns its end.
fn css_url_at(chars: &[char], i: usize) -> Option<usize> {
    let is = |p: usize, c: char| chars.get(p) == Some(&c);
    if !(is(i, 'u') && is(i + 1, 'r') && is(i + 2, 'l')) {
        return None;
    }
    let mut p = i + 3;
    let skip_ws = |p: &mut usize| {
        while chars.get(*p).is_some_and(|c| c.is_whitespace()) {
            *p += 1;
        }
    };
    skip_ws(&mut p);
    if !is(p, '(') {
        return None;
    }
    p += 1;
    skip_ws(&mut p);
    let start = p;
    while chars
        .get(p)
        .is_some_and(|&c| !c.is_whitespace() && c != ')')
    {
        p += 1;
    }
    if p == start {
        return None;
    }
    skip_ws(&mut p);
    if !is(p, ')') {
        return None;
    }
    p += 1;
    skip_ws(&mut p);
    Some(p)
}

/// Filters an inline `style` value the way feedparser's `sanitize_style` does: `url()` removed,
/// anything beyond plain declarations rejected whole, and only allow-listed properties (or
/// background/border/margin/padding with allow-listed keywords) kept, as `prop: value;` joined
/// by spaces. Empty when nothing is kept.
pub fn sanitize_style(style: &str, inside_svg: bool) -> String {
    let style = strip_css_urls(style);
    if style.is_ascii() {
        // Bytes are characters here: no decoding and slices of `style` itself.
        clean_declarations(style.as_bytes(), inside_svg, |(start, end)| {
            Cow::Borrowed(style.get(start..end).unwrap_or(""))
        })
    } else {
        let chars: Vec<char> = style.chars().collect();
        clean_declarations(&chars, inside_svg, |(start, end)| {
            Cow::Owned(chars.get(start..end).unwrap_or(&[]).iter().collect())
        })
    }
}

/// The kept declarations of a style held as units (bytes or chars); `text` gives the text of
/// a unit range.
fn clean_declarations<'s, C: Copy + Into<char>>(
    units: &[C],
    inside_svg: bool,
    text: impl Fn((usize, usize)) -> Cow<'s, str>,
) -> String {
    if !passes_style_gauntlet(units) || !is_declaration_list(units) {
        return String::new();
    }
    let mut clean = String::new();
    let mut i = 0;
    while i < units.len() {
        let Some(Declaration { name, value, end }) = declaration_at(units, i) else {
            i += 1;
            continue;
        };
        i = end.max(i + 1);
        if value.0 == value.1 {
            continue;
        }
        let property = text(name);
        let value = text(value);
        let lower = property.to_lowercase();
        let family = lower.split('-').next().unwrap_or("");
        let keep = if CSS_PROPERTIES.contains(&lower) {
            true
        } else if matches!(family, "background" | "border" | "margin" | "padding") {
            value.split_whitespace().all(|keyword| {
                in_list(ACCEPTABLE_CSS_KEYWORDS, keyword) || is_valid_css_value(keyword)
            })
        } else {
            inside_svg && in_list(ACCEPTABLE_SVG_PROPERTIES, &lower)
        };
        if keep {
            if !clean.is_empty() {
                clean.push(' ');
            }
            clean.push_str(&property);
            clean.push_str(": ");
            clean.push_str(&value);
            clean.push(';');
        }
    }
    clean
}

// ---------------------------------------------------------------------------------------------
// plain text

/// Elements that start a new line in plain text.
fn is_block_element(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "br"
            | "caption"
            | "dd"
            | "details"
            | "dialog"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hr"
            | "li"
            | "main"
            | "nav"
            | "ol"
            | "p"
            | "pre"
            | "section"
            | "summary"
            | "table"
            | "td"
            | "th"
            | "tr"
            | "ul"
    )
}

/// Plain text of an HTML fragment: tags stripped, script/style bodies and comments dropped,
/// references decoded, block elements turned into line breaks, runs of spaces collapsed to
/// one, blank lines removed. One linear pass; the output is never longer than the input plus
/// one byte per tag.
pub fn html_to_plain_text(html: &str) -> String {
    let mut writer = PlainTextWriter {
        out: String::with_capacity(html.len()),
        pending_space: false,
        pending_newline: false,
    };
    let mut decoded = String::new();
    for token in Tokenizer::new(html) {
        match token {
            Token::Text(text) if text.contains('&') => {
                decoded.clear();
                decode_references_into(text, &mut decoded);
                writer.text(&decoded);
            }
            Token::Text(text) => writer.text(text),
            Token::LessThan => writer.text("<"),
            Token::RawText(_) => {}
            Token::StartTag { name, .. } | Token::EndTag { name } => {
                if is_block_element(&ascii_lower(name)) {
                    writer.pending_newline = true;
                }
            }
        }
    }
    writer.out
}

/// Collapses whitespace while writing plain text.
struct PlainTextWriter {
    out: String,
    /// A space is owed before the next word.
    pending_space: bool,
    /// A line break is owed before the next word (outranks the space).
    pending_newline: bool,
}

impl PlainTextWriter {
    fn text(&mut self, text: &str) {
        let mut words = text.split(char::is_whitespace).peekable();
        let mut first = true;
        while let Some(word) = words.next() {
            if !first {
                self.pending_space = true;
            }
            first = false;
            if word.is_empty() {
                continue;
            }
            if !self.out.is_empty() {
                if self.pending_newline {
                    self.out.push('\n');
                } else if self.pending_space {
                    self.out.push(' ');
                }
            }
            self.pending_space = false;
            self.pending_newline = false;
            self.out.push_str(word);
            if words.peek().is_none() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str) -> String {
        sanitize_html(html, None)
    }

    #[test]
    fn markup_free_text_is_trimmed_and_kept() {
        assert_eq!(clean("  a > b\r\n c \n"), "a > b\n c");
        assert_eq!(clean(""), "");
        let text = "plain".to_string();
        let styles = &mut StyleCache::default();
        assert_eq!(sanitize_html_owned(text, &|| None, styles), "plain");
        assert_eq!(
            sanitize_html_owned(" x &amp; y ".into(), &|| None, styles),
            "x &amp; y"
        );
    }

    #[test]
    fn keeps_allowed_markup() {
        assert_eq!(
            clean("<p>Hello <b>world</b></p>"),
            "<p>Hello <b>world</b></p>"
        );
        assert_eq!(clean("<hr></hr>"), "<hr />");
        assert_eq!(clean("<BR>"), "<br />");
        assert_eq!(clean("<span/>"), "<span></span>");
    }

    #[test]
    fn drops_script_and_style_with_content() {
        assert_eq!(
            clean("safe<script>alert(1)</script> description"),
            "safe description"
        );
        assert_eq!(clean("a<style>p{x:expression(alert(1))}</style>b"), "ab");
        assert_eq!(clean("a<script>never closed"), "a");
        assert_eq!(clean("a<applet>x</applet>b"), "ab");
    }

    #[test]
    fn drops_event_handlers_and_bad_urls() {
        assert_eq!(
            clean(r#"<img src="http://x/i.jpg" onerror="alert(1)">"#),
            r#"<img src="http://x/i.jpg" />"#
        );
        assert_eq!(
            clean(r#"<a href="javascript:alert(1)">x</a>"#),
            r#"<a href="">x</a>"#
        );
        assert_eq!(
            clean("<a href=\" jav&#x61;\tscript:alert(1)\">x</a>"),
            r#"<a href="">x</a>"#
        );
        assert_eq!(
            clean(r#"<img src="data:image/png;base64,AAA">"#),
            r#"<img src="" />"#
        );
        assert_eq!(
            clean(r#"<a href="VBScript:x">x</a>"#),
            r#"<a href="">x</a>"#
        );
    }

    #[test]
    fn resolves_relative_urls() {
        let base = url::Url::parse("http://example.com/feed/").ok();
        assert_eq!(
            sanitize_html(r#"<a href="/x">x</a><img src="i.png">"#, base.as_ref()),
            r#"<a href="http://example.com/x">x</a><img src="http://example.com/feed/i.png" />"#
        );
    }

    #[test]
    fn filters_style() {
        assert_eq!(
            sanitize_style("font-size: 10pt;", false),
            "font-size: 10pt;"
        );
        assert_eq!(sanitize_style("mso-tab-count: 3;", false), "");
        assert_eq!(
            sanitize_style("font-family: 'Ärial'; color: #fff", false),
            "font-family: 'Ärial'; color: #fff;"
        );
        assert_eq!(sanitize_style("a-b-c: 1", false), "");
        assert_eq!(sanitize_style("width: expression(alert(1))", false), "");
        assert_eq!(
            sanitize_style("display:block; position:absolute; background-image:url(http://x/i.jpg); background-x:center", false),
            "display: block; background-x: center;"
        );
    }

    #[test]
    fn comments_and_processing_instructions_vanish() {
        assert_eq!(clean("a<!-- <script>x</script> -->b<?php x ?>c"), "abc");
        assert_eq!(clean("a<!-- unclosed <b>"), "a");
    }

    #[test]
    fn deep_nesting_is_linear() {
        let depth = 100_000;
        let html = "<div>".repeat(depth) + &"</div>".repeat(depth);
        let out = clean(&html);
        assert_eq!(out.len(), html.len());
    }

    #[test]
    fn plain_text() {
        assert_eq!(
            html_to_plain_text(
                "<p>Caf&eacute;  <b>au</b>\n lait</p><p>Next&nbsp;line<script>x</script></p>"
            ),
            "Café au lait\nNext line"
        );
        assert_eq!(
            html_to_plain_text("a<br>b &lt;c&gt; 1 < 2"),
            "a\nb <c> 1 < 2"
        );
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::sanitize_html;

    fn clean(html: &str) -> String {
        sanitize_html(html, None)
    }

    fn assert_inert(html: &str) {
        let out = clean(html).to_ascii_lowercase();
        for needle in [
            "<script",
            "javascript:",
            "vbscript:",
            " onerror",
            " onload",
            " onclick",
            "expression(",
            "<style",
            "<iframe",
            "<object",
            "<embed",
            "data:",
        ] {
            assert!(
                !out.contains(needle),
                "{html:?} gave {out:?}, which holds {needle:?}"
            );
        }
    }

    #[test]
    fn script_tricks() {
        for html in [
            "<scr<script>ipt>alert(1)</script>",
            "<<script>script>alert(1)</script>",
            "<SCRIPT SRC=//x.example/x.js></SCRIPT>",
            "<script>alert(1)",
            "<script",
            "<img \"\"\"><script>alert(1)</script>\">",
            "<!--[if IE]><script>alert(1)</script><![endif]-->",
            "<![CDATA[<script>alert(1)</script>]]>",
            "<iframe src=\"javascript:alert(1)\"></iframe>",
            "<object data=\"data:text/html;base64,PHNjcmlwdD4=\"></object>",
            "<embed src=\"x.swf\">",
        ] {
            assert_inert(html);
        }
        assert_eq!(
            clean("<![CDATA[<b>x</b>]]>"),
            "&lt;![CDATA[<b>x</b>]]&gt;".replace("&gt;", ">")
        );
    }

    #[test]
    fn url_tricks() {
        for html in [
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a href=\" \u{1}javascript:alert(1)\">x</a>",
            "<a href=\"jav\tascript:alert(1)\">x</a>",
            "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
            "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
            "<a href=\"&#0000106avascript:alert(1)\">x</a>",
            "<a href=\"javascript&colon;alert(1)\">x</a>",
            "<a href=javascript:alert(1)>x</a>",
            "<img src=\"vbscript:msgbox(1)\">",
            "<img src=\"data:image/svg+xml;base64,PHN2Zz4=\">",
            "<img dynsrc=\"javascript:alert(1)\" lowsrc=\"javascript:alert(1)\">",
            "<table background=\"javascript:alert(1)\">",
            "<blockquote cite=\"javascript:alert(1)\">q</blockquote>",
            "<form action=\"javascript:alert(1)\"><button>b</button></form>",
            "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
            "<svg><a><animate attributeName=\"href\" values=\"0;javascript:alert(1)\"/><text>x</text></a></svg>",
            "<math><maction actiontype=\"statusline\" xlink:href=\"javascript:alert(1)\">x</maction></math>",
        ] {
            assert_inert(html);
        }
    }

    #[test]
    fn http_fast_path_agrees_with_the_scheme_list() {
        use super::{classify_scheme, Scheme, SCHEMES};
        assert!(SCHEMES.contains("http") && SCHEMES.contains("https"));
        for url in [
            "http://x/",
            "https://x/",
            "http:x",
            "https:",
            "HTTP://x/",
            " http://x",
        ] {
            assert_eq!(classify_scheme(url), Scheme::Allowed, "{url}");
        }
        assert_eq!(classify_scheme("httpx://x/"), Scheme::Forbidden);
        assert_eq!(classify_scheme("/http://x"), Scheme::Relative);
    }

    #[test]
    fn handler_and_style_tricks() {
        for html in [
            "<img src=x onerror=alert(1)>",
            "<img src=x ONERROR=\"alert(1)\">",
            "<img/src=x/onerror=alert(1)>",
            "<body onload=alert(1)>",
            "<svg onload=alert(1)>",
            "<div style=\"width: expression(alert(1))\">x</div>",
            "<div style=\"background:url(javascript:alert(1))\">x</div>",
            "<div style=\"background-image: url('javascript:alert(1)')\">x</div>",
            "<div style=\"behavior: url(x.htc)\">x</div>",
            "<div style=\"-moz-binding: url(x.xml#xss)\">x</div>",
            "<style>@import 'x.css';</style>",
            "<div style=\"color: red; x: expression\\28 alert(1)\\29\">x</div>",
        ] {
            assert_inert(html);
        }
        assert_eq!(
            clean("<p style=\"color: red; width: expression(alert(1))\">x</p>"),
            "<p>x</p>"
        );
    }

    #[test]
    fn unclosed_and_malformed() {
        assert_eq!(clean("<b>bold <i>both"), "<b>bold <i>both");
        assert_eq!(
            clean("<a href=\"http://x.example/\">never closed"),
            "<a href=\"http://x.example/\">never closed"
        );
        assert_eq!(clean("a < b && c > d"), "a &lt; b &amp;&amp; c > d");
        // Stray end tags of allowed elements pass, as in feedparser.
        assert_eq!(clean("<p>x</p></div></p>"), "<p>x</p></div></p>");
        assert_eq!(clean("<a href=\"x>y\">z</a>"), "<a href=\"x&gt;y\">z</a>");
        let out = clean("<div title='a");
        assert!(!out.contains("<div"), "{out}");
    }

    #[test]
    fn output_is_linear_in_input() {
        let inputs = [
            "\"".repeat(10_000),
            "<b title=\"".to_string() + &"\"".repeat(10_000) + "\">",
            "<p style=\"".to_string() + &"a:b;".repeat(5_000) + "\">",
            "&".repeat(10_000),
            "<".repeat(10_000),
            "<!--".repeat(10_000),
        ];
        for input in inputs {
            let out = clean(&input);
            assert!(
                out.len() <= input.len() * 6 + 16,
                "{} → {}",
                input.len(),
                out.len()
            );
        }
    }
}

#[cfg(test)]
mod attribute_tests {
    use super::{resolve_reference, sanitize_html};

    #[test]
    fn resolves_references_like_urljoin() {
        // RFC 3986 section 5.4 examples, as Python's urljoin answers them.
        let base = url::Url::parse("http://a/b/c/d;p?q").ok();
        let Some(base) = base.as_ref() else {
            panic!("base URL")
        };
        for (reference, expected) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("#", "http://a/b/c/d;p?q"),
            ("café au lait", "http://a/b/c/café au lait"),
        ] {
            assert_eq!(
                resolve_reference(base, reference).as_deref(),
                Some(expected),
                "{reference:?}"
            );
        }
    }

    #[test]
    fn duplicate_attributes_keep_the_last_value_and_sort() {
        assert_eq!(
            sanitize_html(
                r#"<img title="1" alt="a" TITLE="2" src="http://x.example/i">"#,
                None
            ),
            r#"<img alt="a" src="http://x.example/i" title="2" />"#
        );
    }

    #[test]
    fn leading_and_trailing_space_is_trimmed() {
        assert_eq!(sanitize_html("\n  <p> x </p>\r\n ", None), "<p> x </p>");
        assert_eq!(sanitize_html("a\r\nb", None), "a\nb");
    }
}

#[cfg(test)]
mod generated_input_tests {
    use super::{html_to_plain_text, sanitize_html};
    use crate::parse::html_tokenizer::{Attributes, Token, Tokenizer};

    /// Deterministic xorshift generator: the same inputs on every run.
    struct Generator(u64);

    impl Generator {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a>(&mut self, pieces: &[&'a str]) -> &'a str {
            let index = (self.next() % pieces.len() as u64) as usize;
            pieces.get(index).copied().unwrap_or("")
        }
    }

    const PIECES: &[&str] = &[
        "<",
        ">",
        "</",
        "/>",
        "<!--",
        "-->",
        "<?",
        "<!",
        "&",
        ";",
        "#",
        "x",
        "=",
        "\"",
        "'",
        " ",
        "\n",
        "a",
        "b",
        "p",
        "div",
        "img",
        "script",
        "style",
        "svg",
        "math",
        "href",
        "src",
        "style",
        "onclick",
        "javascript:",
        "data:",
        "http://x.example/",
        "/rel",
        "&amp;",
        "&lt;",
        "&#60;",
        "&#x3c;",
        "&quot;",
        "color: red",
        "url(",
        ")",
        "é",
        "€",
        "<a ",
        "<img ",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<svg>",
        "</svg>",
        "<math>",
        "<![CDATA[",
        "]]>",
        "expression(",
        "\u{0}",
        "\t",
    ];

    #[test]
    fn random_markup_is_handled_and_output_is_safe_and_stable() {
        let mut generator = Generator(0x9E37_79B9_7F4A_7C15);
        for _ in 0..10_000 {
            let length = 1 + generator.next() % 40;
            let input: String = (0..length).map(|_| generator.pick(PIECES)).collect();
            let once = sanitize_html(&input, None);
            let _ = html_to_plain_text(&input);
            assert!(once.len() <= input.len() * 8 + 64, "{input:?}");
            for token in Tokenizer::new(&once) {
                match token {
                    Token::StartTag { name, attrs, .. } => {
                        assert!(!name.eq_ignore_ascii_case("script"), "{input:?} → {once:?}");
                        assert!(!name.eq_ignore_ascii_case("style"), "{input:?} → {once:?}");
                        for attribute in Attributes::new(attrs) {
                            assert!(
                                !attribute.name.to_ascii_lowercase().starts_with("on"),
                                "{input:?} → {once:?}"
                            );
                            let value: String = crate::parse::entities::decode_references(
                                attribute.value.unwrap_or(""),
                            )
                            .to_ascii_lowercase()
                            .chars()
                            .filter(|&c| c > ' ')
                            .collect();
                            let is_url = super::is_url_attribute(attribute.name);
                            assert!(
                                !(is_url
                                    && ["javascript:", "vbscript:", "data:"]
                                        .iter()
                                        .any(|scheme| value.starts_with(scheme))),
                                "{input:?} → {once:?}"
                            );
                        }
                    }
                    Token::RawText(_) => panic!("{input:?} → {once:?} holds raw text"),
                    _ => {}
                }
            }
            let twice = sanitize_html(&once, None);
            assert_eq!(twice, once, "not stable for {input:?}");
        }
    }
}
