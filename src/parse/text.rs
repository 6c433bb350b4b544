//! Text helpers for the parser: entity references, escaping, and the repairs lenient readers
//! make to decoded text.
//!
//! In: borrowed text slices from the document. Out: owned, decoded strings. Entity references
//! are resolved from a fixed table only (XML's five, numeric references, HTML named entities);
//! a user-defined entity is never expanded, and an unknown one is kept literally.

use super::entities::named_entity;
use std::borrow::Cow;

/// What an entity reference stands for: a fixed string or one character (a numeric
/// reference), so resolving one never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reference {
    Text(&'static str),
    Char(char),
}

impl Reference {
    /// The text, using `buf` for a character.
    pub(crate) fn as_str(self, buf: &mut [u8; 4]) -> &str {
        match self {
            Reference::Text(text) => text,
            Reference::Char(c) => c.encode_utf8(buf),
        }
    }
}

/// The text one entity reference (`amp`, `#233`, `#xE9`, `eacute`) stands for, if known.
/// Returns `(text, is_xml_predefined_or_numeric)`.
pub(crate) fn resolve_reference(name: &str) -> Option<(Reference, bool)> {
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        let c = char::from_u32(code)?;
        if c == '\0' {
            return None;
        }
        return Some((Reference::Char(c), true));
    }
    match name {
        "amp" => Some((Reference::Text("&"), true)),
        "lt" => Some((Reference::Text("<"), true)),
        "gt" => Some((Reference::Text(">"), true)),
        "quot" => Some((Reference::Text("\""), true)),
        "apos" => Some((Reference::Text("'"), true)),
        _ => named_entity(name).map(|s| (Reference::Text(s), false)),
    }
}

/// Appends `raw` to `out` with entity references resolved. Unknown references and bare `&`
/// are kept literally. Returns true when something was not well-formed XML (an HTML-only
/// entity, an unknown entity, a bare `&`).
pub(crate) fn unescape_into(raw: &str, out: &mut String) -> bool {
    let mut bozo = false;
    let mut rest = raw;
    while let Some(pos) = memchr::memchr(b'&', rest.as_bytes()) {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let after = rest.get(pos + 1..).unwrap_or("");
        let end = after
            .as_bytes()
            .iter()
            .take(40)
            .position(|&b| b == b';' || b == b'&' || b == b'<' || b.is_ascii_whitespace());
        match end {
            Some(e) if after.as_bytes().get(e) == Some(&b';') => {
                let name = after.get(..e).unwrap_or("");
                match resolve_reference(name) {
                    Some((t, xml_ok)) => {
                        out.push_str(t.as_str(&mut [0; 4]));
                        bozo |= !xml_ok;
                    }
                    None => {
                        out.push('&');
                        out.push_str(name);
                        out.push(';');
                        bozo = true;
                    }
                }
                rest = after.get(e + 1..).unwrap_or("");
            }
            _ => {
                out.push('&');
                bozo = true;
                rest = after;
            }
        }
    }
    out.push_str(rest);
    bozo
}

/// Decodes entity references in an attribute value; borrows when there are none.
pub(crate) fn unescape(raw: &str) -> (Cow<'_, str>, bool) {
    if memchr::memchr(b'&', raw.as_bytes()).is_none() {
        return (Cow::Borrowed(raw), false);
    }
    let mut out = String::with_capacity(raw.len());
    let bozo = unescape_into(raw, &mut out);
    (Cow::Owned(out), bozo)
}

/// Escapes text for inclusion in HTML element content.
pub(crate) fn escape_html_into(s: &str, out: &mut String) {
    escape_into::<false>(s, out);
}

/// Escapes an attribute value (double-quoted).
pub(crate) fn escape_attr_into(s: &str, out: &mut String) {
    if needs_attribute_escape(s) {
        escape_into::<true>(s, out);
    } else {
        out.push_str(s);
    }
}

/// Whether an attribute value holds `&`, `<`, `>` or `"`. Values are mostly short (a class,
/// a URL), where one plain pass beats two vector searches' setup.
fn needs_attribute_escape(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() <= 64 {
        bytes.iter().fold(false, |found, &b| {
            found | matches!(b, b'&' | b'<' | b'>' | b'"')
        })
    } else {
        memchr::memchr3(b'&', b'<', b'"', bytes).is_some() || memchr::memchr(b'>', bytes).is_some()
    }
}

/// Copies `s` with `&`, `<`, `>` (and `"` when `QUOTE`) as references, in runs between them.
fn escape_into<const QUOTE: bool>(s: &str, out: &mut String) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' if QUOTE => "&quot;",
            _ => continue,
        };
        out.push_str(s.get(last..i).unwrap_or(""));
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(s.get(last..).unwrap_or(""));
}

/// The windows-1252 character for a C1 code point (0x80..=0x9F), which feeds use by mistake.
fn cp1252_char(code: u32) -> Option<char> {
    let c = match code {
        0x80 => '\u{20AC}',
        0x82 => '\u{201A}',
        0x83 => '\u{0192}',
        0x84 => '\u{201E}',
        0x85 => '\u{2026}',
        0x86 => '\u{2020}',
        0x87 => '\u{2021}',
        0x88 => '\u{02C6}',
        0x89 => '\u{2030}',
        0x8A => '\u{0160}',
        0x8B => '\u{2039}',
        0x8C => '\u{0152}',
        0x8E => '\u{017D}',
        0x91 => '\u{2018}',
        0x92 => '\u{2019}',
        0x93 => '\u{201C}',
        0x94 => '\u{201D}',
        0x95 => '\u{2022}',
        0x96 => '\u{2013}',
        0x97 => '\u{2014}',
        0x98 => '\u{02DC}',
        0x99 => '\u{2122}',
        0x9A => '\u{0161}',
        0x9B => '\u{203A}',
        0x9C => '\u{0153}',
        0x9E => '\u{017E}',
        0x9F => '\u{0178}',
        _ => return None,
    };
    Some(c)
}

/// Repairs decoded text the way lenient readers do: UTF-8 that was mistakenly read as
/// latin-1 is re-decoded (only in UTF-8 documents), and C1 control characters become the
/// windows-1252 characters they were meant to be. ASCII text is returned untouched.
pub(crate) fn repair(s: String, utf8_document: bool) -> String {
    if s.is_ascii() {
        return s;
    }
    let mut s = s;
    // Characters below U+0100 are ASCII or two bytes led by 0xC2/0xC3, so a byte of 0xC4 or
    // more means a character beyond latin-1. Latin-1 text that is really UTF-8 has
    // continuation bytes, U+0080..U+00BF, led by 0xC2: without one it cannot re-decode.
    if utf8_document
        && !s.bytes().any(|b| b >= 0xC4)
        && memchr::memchr(0xC2, s.as_bytes()).is_some()
    {
        let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
        if let Ok(t) = String::from_utf8(bytes) {
            s = t;
        }
    }
    // C1 controls (U+0080..U+009F) are 0xC2 followed by 0x80..=0x9F.
    let b = s.as_bytes();
    if memchr::memchr_iter(0xC2, b).any(|i| b.get(i + 1).is_some_and(|&n| n < 0xA0)) {
        s = s
            .chars()
            .map(|c| cp1252_char(c as u32).unwrap_or(c))
            .collect();
    }
    s
}

/// [`repair`] on text that may be borrowed: returned as it is when no repair can apply (ASCII,
/// or no 0xC2 byte, which both repairs need).
pub(crate) fn repair_cow(s: Cow<'_, str>, utf8_document: bool) -> Cow<'_, str> {
    if s.is_ascii() || memchr::memchr(0xC2, s.as_bytes()).is_none() {
        return s;
    }
    Cow::Owned(repair(s.into_owned(), utf8_document))
}

/// True when text declared as plain probably is HTML: it has a closing tag or an entity
/// reference, and every tag is a common HTML element.
pub(crate) fn looks_like_html(s: &str) -> bool {
    let b = s.as_bytes();
    let mut has_close_or_entity = false;
    let mut i = 0;
    while let Some(p) = b.get(i..).and_then(|r| memchr::memchr2(b'<', b'&', r)) {
        let at = i + p;
        let rest = b.get(at + 1..).unwrap_or(&[]);
        if b.get(at) == Some(&b'<') {
            let (closing, name_start) = if rest.first() == Some(&b'/') {
                (true, 1)
            } else {
                (false, 0)
            };
            let name: Vec<u8> = rest
                .get(name_start..)
                .unwrap_or(&[])
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if !name.is_empty() {
                let n = std::str::from_utf8(&name).unwrap_or("");
                if !ACCEPTABLE_ELEMENTS.contains(&n) {
                    return false;
                }
                if closing && rest.get(1 + name.len()) == Some(&b'>') {
                    has_close_or_entity = true;
                }
            }
        } else {
            let name_len = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'#')
                .count();
            if name_len > 0 && rest.get(name_len) == Some(&b';') {
                let name = std::str::from_utf8(rest.get(..name_len).unwrap_or(&[])).unwrap_or("");
                if !name.starts_with('#') && named_entity(name).is_none() {
                    return false;
                }
                has_close_or_entity = true;
            }
        }
        i = at + 1;
    }
    has_close_or_entity
}

const ACCEPTABLE_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "area",
    "article",
    "aside",
    "audio",
    "b",
    "big",
    "blockquote",
    "br",
    "button",
    "canvas",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "command",
    "datagrid",
    "datalist",
    "dd",
    "del",
    "details",
    "dfn",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "em",
    "event-source",
    "fieldset",
    "figcaption",
    "figure",
    "font",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "i",
    "img",
    "input",
    "ins",
    "kbd",
    "keygen",
    "label",
    "legend",
    "li",
    "m",
    "map",
    "menu",
    "meter",
    "multicol",
    "nav",
    "nextid",
    "noscript",
    "ol",
    "optgroup",
    "option",
    "output",
    "p",
    "pre",
    "progress",
    "q",
    "s",
    "samp",
    "section",
    "select",
    "small",
    "sound",
    "source",
    "spacer",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "video",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_keeps_unknown_and_bare_amp() {
        let (s, bozo) = unescape("a & b &nbsp; &bogus; &#233; &lt;");
        assert_eq!(s, "a & b \u{a0} &bogus; é <");
        assert!(bozo);
    }

    #[test]
    fn html_detection() {
        assert!(looks_like_html("<b>bold</b>"));
        assert!(!looks_like_html("a < b"));
        assert!(!looks_like_html("<blink>x</blink>"));
    }

    #[test]
    fn repairs_double_encoded_utf8() {
        assert_eq!(repair("\u{e2}\u{80}\u{a6}".into(), true), "…");
        assert_eq!(repair("\u{85}".into(), false), "…");
        assert_eq!(repair("café déjà".into(), true), "café déjà");
        assert_eq!(
            repair("\u{c3}\u{a9}t\u{e9}".into(), true),
            "\u{c3}\u{a9}t\u{e9}"
        );
        assert_eq!(repair("\u{e9}\u{80}".into(), false), "\u{e9}\u{20ac}");
    }
}
