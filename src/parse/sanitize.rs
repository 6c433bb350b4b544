//! HTML sanitising: untrusted HTML from a feed → HTML that is safe to republish.
//!
//! In: an HTML fragment and the base URL of the element it came from. Out: the fragment with
//! only allow-listed elements and attributes (feedparser's lists, including MathML and SVG),
//! relative URLs in feedparser's URL attributes made absolute, inline `style` filtered the way
//! feedparser's `sanitize_style` filters it, and no script, style, comments, processing
//! instructions, event handlers or `javascript:`/`vbscript:`/`data:` URLs. It is one streaming
//! pass over the input ([`super::html_tokenizer`]): it never builds a tree, never recurses on
//! input depth, and its output is linear in the input size. [`html_to_plain_text`] gives the
//! plain text of a fragment for summaries and classification.

use std::borrow::Cow;

use super::entities::{decode_references, decode_references_into, reference_at};
use super::html_allowlists::{
    ACCEPTABLE_ATTRIBUTES, ACCEPTABLE_CSS_KEYWORDS, ACCEPTABLE_CSS_PROPERTIES, ACCEPTABLE_ELEMENTS,
    ACCEPTABLE_SVG_PROPERTIES, ACCEPTABLE_URI_SCHEMES, MATHML_ATTRIBUTES, MATHML_ELEMENTS,
    RELATIVE_URI_ATTRIBUTES, SVG_ATTRIBUTES, SVG_ATTRIBUTE_CASE, SVG_ELEMENTS, SVG_ELEMENT_CASE,
    UNACCEPTABLE_ELEMENTS_WITH_END_TAG, VOID_ELEMENTS,
};
use super::html_tokenizer::{is_raw_text_element, Attributes, Token, Tokenizer};

const MATHML_NAMESPACE: &str = "http://www.w3.org/1998/Math/MathML";
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";
const XLINK_NAMESPACE: &str = "http://www.w3.org/1999/xlink";

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

/// The scheme of `url` as a browser (and Python's `urlsplit`) reads it: leading controls and
/// spaces skipped, tabs and newlines ignored, lower-cased. `None` for a relative URL.
fn url_scheme(url: &str) -> Option<String> {
    let mut scheme = String::new();
    let mut chars = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'));
    let first = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    scheme.push(first.to_ascii_lowercase());
    for c in chars {
        match c {
            ':' => return Some(scheme),
            c if c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.') => {
                if scheme.len() > 32 {
                    return None;
                }
                scheme.push(c.to_ascii_lowercase());
            }
            _ => return None,
        }
    }
    None
}

fn scheme_is_safe(url: &str) -> bool {
    url_scheme(url).is_none_or(|scheme| in_list(ACCEPTABLE_URI_SCHEMES, &scheme))
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
            Vocabulary::Html => in_list(ACCEPTABLE_ATTRIBUTES, attribute),
            Vocabulary::MathMl => in_list(MATHML_ATTRIBUTES, attribute),
            Vocabulary::Svg => in_list(SVG_ATTRIBUTES, attribute),
        }
    }
}

/// State of one sanitising pass.
struct Sanitizer<'b> {
    out: String,
    base: Option<&'b url::Url>,
    /// Open elements whose text is dropped (`applet`).
    dropped_depth: u32,
    mathml_depth: u32,
    svg_depth: u32,
    /// Attributes of the current tag, reused across tags.
    attributes: Vec<(Cow<'b, str>, Cow<'b, str>)>,
}

/// Sanitises `html`, resolving relative URLs against `base`.
pub fn sanitize_html(html: &str, base: Option<&url::Url>) -> String {
    let mut sanitizer = Sanitizer {
        out: String::with_capacity(html.len() + html.len() / 8),
        base,
        dropped_depth: 0,
        mathml_depth: 0,
        svg_depth: 0,
        attributes: Vec::new(),
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
                sanitizer.start_tag(&name, attrs, self_closing);
                if self_closing && !in_list(VOID_ELEMENTS, &name) {
                    sanitizer.end_tag(&name);
                }
            }
            Token::EndTag { name } => sanitizer.end_tag(&ascii_lower(name)),
        }
    }
    let mut out = sanitizer.out;
    let trimmed = out.trim();
    if trimmed.len() != out.len() {
        out = trimmed.to_string();
    }
    if out.contains('\r') {
        out = out.replace("\r\n", "\n");
    }
    out
}

impl<'b> Sanitizer<'b> {
    /// Writes text, keeping valid references and escaping bare `&`.
    fn text(&mut self, text: &str) {
        let mut rest = text;
        while let Some(amp) = memchr::memchr(b'&', rest.as_bytes()) {
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

    fn start_tag(&mut self, name: &str, raw_attrs: &str, self_closing: bool) {
        let acceptable = in_list(ACCEPTABLE_ELEMENTS, name);
        self.collect_attributes(raw_attrs);
        let mut vocabulary = Vocabulary::Html;
        let mut written_name = name;
        if !acceptable || self.svg_depth > 0 {
            // script/style bodies never reach here: the tokenizer skips them as raw text.
            if in_list(UNACCEPTABLE_ELEMENTS_WITH_END_TAG, name)
                && !self_closing
                && !is_raw_text_element(name)
            {
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
            if self.mathml_depth > 0 && in_list(MATHML_ELEMENTS, name) {
                vocabulary = Vocabulary::MathMl;
            } else if self.svg_depth > 0 && in_list(SVG_ELEMENTS, name) {
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
        self.attributes.sort_by(|a, b| a.0.cmp(&b.0));
        self.attributes.reverse();
        self.attributes
            .dedup_by(|later, earlier| later.0 == earlier.0);
        self.attributes.reverse();

        self.out.push('<');
        self.out.push_str(written_name);
        let attributes = std::mem::take(&mut self.attributes);
        for (key, value) in &attributes {
            let key: &str = key;
            if key == "style" && vocabulary.allows("style") {
                let clean = sanitize_style(value, self.svg_depth > 0);
                if !clean.is_empty() {
                    self.write_attribute(key, &clean);
                }
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
            }
            self.write_attribute(key, &value);
        }
        self.attributes = attributes;
        self.attributes.clear();
        if in_list(VOID_ELEMENTS, name) {
            self.out.push_str(" />");
        } else {
            self.out.push('>');
        }
    }

    /// Reads the raw attribute text into `self.attributes`: names lower-cased, values decoded,
    /// a bare attribute taking its own name as value (`checked="checked"`), as SGML does.
    fn collect_attributes(&mut self, raw_attrs: &str) {
        self.attributes.clear();
        for attribute in Attributes::new(raw_attrs) {
            let name: Cow<'b, str> = Cow::Owned(attribute.name.to_ascii_lowercase());
            let value = match attribute.value {
                Some(value) if value.contains('&') => Cow::Owned(decode_references(value)),
                Some(value) => Cow::Owned(value.to_string()),
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
        if !scheme_is_safe(&value) {
            return Cow::Borrowed("");
        }
        let resolvable = RELATIVE_URI_ATTRIBUTES
            .binary_search_by(|(e, a)| {
                (e.as_bytes(), a.as_bytes()).cmp(&(element.as_bytes(), attribute.as_bytes()))
            })
            .is_ok();
        if let (true, Some(base)) = (resolvable, self.base) {
            if let Ok(resolved) = base.join(value.trim()) {
                if scheme_is_safe(resolved.as_str()) {
                    return Cow::Owned(String::from(resolved));
                }
            }
        }
        value
    }

    fn write_attribute(&mut self, key: &str, value: &str) {
        self.out.push(' ');
        self.out.push_str(key);
        self.out.push_str("=\"");
        let mut last = 0;
        for (index, byte) in value.bytes().enumerate() {
            let escaped = match byte {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => continue,
            };
            self.out.push_str(value.get(last..index).unwrap_or(""));
            self.out.push_str(escaped);
            last = index + 1;
        }
        self.out.push_str(value.get(last..).unwrap_or(""));
        self.out.push('"');
    }

    fn end_tag(&mut self, name: &str) {
        let mut written_name = name;
        if !in_list(ACCEPTABLE_ELEMENTS, name) {
            if in_list(UNACCEPTABLE_ELEMENTS_WITH_END_TAG, name) && !is_raw_text_element(name) {
                self.dropped_depth = self.dropped_depth.saturating_sub(1);
            }
            if self.mathml_depth > 0 && in_list(MATHML_ELEMENTS, name) {
                if name == "math" {
                    self.mathml_depth -= 1;
                }
            } else if self.svg_depth > 0 && in_list(SVG_ELEMENTS, name) {
                written_name = in_map(SVG_ELEMENT_CASE, name).unwrap_or(name);
                if name == "svg" {
                    self.svg_depth -= 1;
                }
            } else {
                return;
            }
        }
        if !in_list(VOID_ELEMENTS, name) {
            self.out.push_str("</");
            self.out.push_str(written_name);
            self.out.push('>');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// inline style

/// Python's `\w` on one character.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// feedparser's "gauntlet": the whole value must be a sequence of
/// `[:,;#%.\sa-zA-Z0-9!]`, `\w-\w`, `'[\s\w]+'`, `"[\s\w]+"` or `\([\d,\s]+\)`.
/// Checked as a set of reachable positions (no backtracking).
fn passes_style_gauntlet(chars: &[char]) -> bool {
    let n = chars.len();
    let mut reachable = vec![false; n + 1];
    if let Some(first) = reachable.first_mut() {
        *first = true;
    }
    for i in 0..n {
        if !reachable.get(i).copied().unwrap_or(false) {
            continue;
        }
        let Some(&c) = chars.get(i) else { break };
        let mut mark = |end: usize| {
            if let Some(slot) = reachable.get_mut(end) {
                *slot = true;
            }
        };
        if c.is_ascii_alphanumeric() || c.is_whitespace() || ":,;#%.!".contains(c) {
            mark(i + 1);
        }
        if is_word(c)
            && chars.get(i + 1) == Some(&'-')
            && chars.get(i + 2).is_some_and(|&d| is_word(d))
        {
            mark(i + 3);
        }
        if c == '\'' || c == '"' {
            let inner = chars
                .get(i + 1..)
                .unwrap_or(&[])
                .iter()
                .take_while(|&&d| d.is_whitespace() || is_word(d))
                .count();
            if inner > 0 && chars.get(i + 1 + inner) == Some(&c) {
                mark(i + inner + 2);
            }
        }
        if c == '(' {
            let inner = chars
                .get(i + 1..)
                .unwrap_or(&[])
                .iter()
                .take_while(|&&d| d.is_numeric() || d == ',' || d.is_whitespace())
                .count();
            if inner > 0 && chars.get(i + 1 + inner) == Some(&')') {
                mark(i + inner + 2);
            }
        }
    }
    reachable.last().copied().unwrap_or(false)
}

fn is_name_char(c: char) -> bool {
    c == '-' || is_word(c)
}

/// One `prop: value` match inside a style attribute, as char index ranges.
struct Declaration {
    name: (usize, usize),
    value: (usize, usize),
    end: usize,
}

/// Matches `[-\w]+\s*:\s*([^:;]*)` at `i`.
fn declaration_at(chars: &[char], i: usize) -> Option<Declaration> {
    let mut p = i;
    while chars.get(p).is_some_and(|&c| is_name_char(c)) {
        p += 1;
    }
    if p == i {
        return None;
    }
    let name = (i, p);
    while chars.get(p).is_some_and(|c| c.is_whitespace()) {
        p += 1;
    }
    if chars.get(p) != Some(&':') {
        return None;
    }
    p += 1;
    while chars.get(p).is_some_and(|c| c.is_whitespace()) {
        p += 1;
    }
    let value_start = p;
    while chars.get(p).is_some_and(|&c| c != ':' && c != ';') {
        p += 1;
    }
    Some(Declaration {
        name,
        value: (value_start, p),
        end: p,
    })
}

/// feedparser's check that nothing but `prop: value;` declarations remain.
fn is_declaration_list(chars: &[char]) -> bool {
    let mut p = 0;
    while p < chars.len() {
        let mut q = p;
        while chars.get(q).is_some_and(|c| c.is_whitespace()) {
            q += 1;
        }
        match declaration_at(chars, q) {
            Some(Declaration { end, .. }) => {
                p = if chars.get(end) == Some(&';') {
                    end + 1
                } else {
                    end
                };
            }
            None => {
                if !chars.get(p).is_some_and(|c| c.is_whitespace()) {
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
    let lower = style.to_ascii_lowercase();
    if !lower.contains("url") {
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
    let chars: Vec<char> = style.chars().collect();
    if !passes_style_gauntlet(&chars) || !is_declaration_list(&chars) {
        return String::new();
    }
    let mut clean = String::new();
    let mut i = 0;
    while i < chars.len() {
        let Some(Declaration { name, value, end }) = declaration_at(&chars, i) else {
            i += 1;
            continue;
        };
        i = end.max(i + 1);
        let property: String = chars.get(name.0..name.1).unwrap_or(&[]).iter().collect();
        let value: String = chars.get(value.0..value.1).unwrap_or(&[]).iter().collect();
        if value.is_empty() {
            continue;
        }
        let lower = property.to_lowercase();
        let family = lower.split('-').next().unwrap_or("");
        let keep = if in_list(ACCEPTABLE_CSS_PROPERTIES, &lower) {
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
    let mut decoded = String::with_capacity(html.len());
    let mut out = String::with_capacity(html.len());
    // Whether a space / line break is owed before the next visible character.
    let mut pending_space = false;
    let mut pending_newline = false;
    let push_text = |text: &str, out: &mut String, space: &mut bool, newline: &mut bool| {
        for c in text.chars() {
            if c.is_whitespace() {
                *space = true;
                continue;
            }
            if !out.is_empty() {
                if *newline {
                    out.push('\n');
                } else if *space {
                    out.push(' ');
                }
            }
            *space = false;
            *newline = false;
            out.push(c);
        }
    };
    for token in Tokenizer::new(html) {
        match token {
            Token::Text(text) => {
                decoded.clear();
                decode_references_into(text, &mut decoded);
                push_text(&decoded, &mut out, &mut pending_space, &mut pending_newline);
            }
            Token::LessThan => {
                push_text("<", &mut out, &mut pending_space, &mut pending_newline);
            }
            Token::RawText(_) => {}
            Token::StartTag { name, .. } | Token::EndTag { name } => {
                if is_block_element(&ascii_lower(name)) {
                    pending_newline = true;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str) -> String {
        sanitize_html(html, None)
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
