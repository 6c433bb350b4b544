//! HTML named character references (`&eacute;` → `é`), for recovering feeds that use HTML
//! entities without declaring them, and for decoding HTML to plain text.
//!
//! In: a reference name without `&` and `;`. Out: the text it stands for, from the full WHATWG
//! HTML5 table (2,125 names, generated into `html_entity_table.rs` by
//! `scripts/gen-entities.py`). Pure lookup by binary search: it never allocates.

use super::html_entity_table::{LEGACY_WITHOUT_SEMICOLON, NAMED};

/// The text a named entity stands for, e.g. `named_entity("eacute") == Some("é")`.
/// Names are case-sensitive, as in HTML (`Eacute` ≠ `eacute`).
pub fn named_entity(name: &str) -> Option<&'static str> {
    // The references feeds use most, before the binary search over 2,125 names.
    let common = match name {
        "amp" => Some("&"),
        "lt" => Some("<"),
        "gt" => Some(">"),
        "quot" => Some("\""),
        "nbsp" => Some("\u{a0}"),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    NAMED
        .binary_search_by(|(candidate, _)| candidate.as_bytes().cmp(name.as_bytes()))
        .ok()
        .and_then(|index| NAMED.get(index))
        .map(|(_, text)| *text)
}

/// Whether HTML5 also recognises `name` without its trailing `;` (`&amp`, `&copy`, ...).
pub fn is_legacy_entity(name: &str) -> bool {
    LEGACY_WITHOUT_SEMICOLON
        .binary_search_by(|candidate| candidate.as_bytes().cmp(name.as_bytes()))
        .is_ok()
}

/// The character a numeric reference stands for, with the HTML5 fix-ups: `0`, surrogates and
/// values past U+10FFFF give U+FFFD, and 0x80–0x9F are read as Windows-1252 (`&#150;` → `–`).
pub fn numeric_reference(value: u32) -> char {
    if (0x80..=0x9F).contains(&value) {
        return windows_1252_c1(value);
    }
    match char::from_u32(value) {
        Some('\0') | None => '\u{FFFD}',
        Some(c) => c,
    }
}

/// Windows-1252 reading of a C1 control code point (0x80–0x9F), as browsers decode `&#NNN;`.
fn windows_1252_c1(value: u32) -> char {
    match value {
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
        other => char::from_u32(other).unwrap_or('\u{FFFD}'),
    }
}

/// A character or entity reference recognised at the start of `s` (which begins with `&`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference<'a> {
    /// Bytes of `s` the reference covers, including `&` and `;` when present.
    pub len: usize,
    /// What it decodes to.
    pub text: ReferenceText<'a>,
}

/// The decoded value of a [`Reference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceText<'a> {
    Char(char),
    Str(&'a str),
}

/// Longest entity name in the HTML5 table (`CounterClockwiseContourIntegral`).
const MAX_NAME_LEN: usize = 32;

/// Recognises a reference at the start of `s` the way HTML5 reads text: `&#NN;`, `&#xHH;`,
/// `&name;`, and the legacy names without `;`. `None` when `s` holds no valid reference (a
/// bare `&`). Looks at no more than a few dozen bytes.
pub fn reference_at(s: &str) -> Option<Reference<'static>> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'&') {
        return None;
    }
    if bytes.get(1) == Some(&b'#') {
        let (hex, start) = match bytes.get(2) {
            Some(b'x') | Some(b'X') => (true, 3),
            _ => (false, 2),
        };
        let mut value: u32 = 0;
        let mut end = start;
        while let Some(&b) = bytes.get(end) {
            let digit = if hex {
                (b as char).to_digit(16)
            } else {
                (b as char).to_digit(10)
            };
            let Some(digit) = digit else { break };
            value = value
                .saturating_mul(if hex { 16 } else { 10 })
                .saturating_add(digit);
            end += 1;
        }
        if end == start {
            return None;
        }
        let len = if bytes.get(end) == Some(&b';') {
            end + 1
        } else {
            end
        };
        return Some(Reference {
            len,
            text: ReferenceText::Char(numeric_reference(value)),
        });
    }
    let mut end = 1;
    while end <= MAX_NAME_LEN {
        match bytes.get(end) {
            Some(b) if b.is_ascii_alphanumeric() => end += 1,
            _ => break,
        }
    }
    let name = s.get(1..end)?;
    if name.is_empty() {
        return None;
    }
    if bytes.get(end) == Some(&b';') {
        if let Some(text) = named_entity(name) {
            return Some(Reference {
                len: end + 1,
                text: ReferenceText::Str(text),
            });
        }
    }
    // Legacy references without ';': the longest known prefix (`&copy2024` → `©2024`).
    let mut prefix_end = name.len();
    while prefix_end > 1 {
        let prefix = name.get(..prefix_end)?;
        if is_legacy_entity(prefix) {
            return named_entity(prefix).map(|text| Reference {
                len: prefix_end + 1,
                text: ReferenceText::Str(text),
            });
        }
        prefix_end -= 1;
    }
    None
}

/// Appends `s` to `out` with every character and entity reference decoded.
pub fn decode_references_into(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(pos) = memchr::memchr(b'&', rest.as_bytes()) {
        let (before, from_amp) = rest.split_at(pos);
        out.push_str(before);
        match reference_at(from_amp) {
            Some(reference) => {
                match reference.text {
                    ReferenceText::Char(c) => out.push(c),
                    ReferenceText::Str(t) => out.push_str(t),
                }
                rest = from_amp.get(reference.len..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = from_amp.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
}

/// `s` as an HTML5 attribute value: like [`decode_references`], except that a named reference
/// without `;` followed by a letter, digit or `=` stays as written, so URLs such as
/// `?a=1&copy=2` keep their query parameters.
pub fn decode_attribute_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = memchr::memchr(b'&', rest.as_bytes()) {
        let (before, from_amp) = rest.split_at(pos);
        out.push_str(before);
        let reference = reference_at(from_amp).filter(|reference| {
            let named_without_semicolon = from_amp.as_bytes().get(1).is_none_or(|&b| b != b'#')
                && from_amp.as_bytes().get(reference.len - 1) != Some(&b';');
            let next = from_amp.as_bytes().get(reference.len).copied();
            !(named_without_semicolon
                && next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'='))
        });
        match reference {
            Some(reference) => {
                match reference.text {
                    ReferenceText::Char(c) => out.push(c),
                    ReferenceText::Str(t) => out.push_str(t),
                }
                rest = from_amp.get(reference.len..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = from_amp.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` with every character and entity reference decoded.
pub fn decode_references(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    decode_references_into(s, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_html4_and_html5_names() {
        assert_eq!(named_entity("eacute"), Some("é"));
        assert_eq!(named_entity("Eacute"), Some("É"));
        assert_eq!(named_entity("hellip"), Some("…"));
        assert_eq!(named_entity("NotEqualTilde"), Some("\u{2242}\u{338}"));
        assert_eq!(named_entity("eacute;"), None);
        assert_eq!(named_entity("nosuchname"), None);
        assert_eq!(named_entity(""), None);
    }

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(NAMED.windows(2).all(|w| match w {
            [a, b] => a.0.as_bytes() < b.0.as_bytes(),
            _ => true,
        }));
        assert!(NAMED.len() > 2000);
    }

    #[test]
    fn every_table_entry_is_found() {
        for (name, text) in NAMED {
            assert_eq!(named_entity(name), Some(*text), "{name}");
        }
    }

    #[test]
    fn decodes_numeric_named_and_legacy_references() {
        assert_eq!(decode_references("a &amp; b"), "a & b");
        assert_eq!(decode_references("&#233;&#xE9;&#XE9"), "ééé");
        assert_eq!(
            decode_references("&#150; &#0; &#99999999999;"),
            "– \u{FFFD} \u{FFFD}"
        );
        assert_eq!(
            decode_references("&copy2024 &notit; &bogus; & &#;"),
            "©2024 ¬it; &bogus; & &#;"
        );
        assert_eq!(decode_references("caf&eacute"), "café");
    }

    #[test]
    fn attribute_values_keep_query_parameters() {
        assert_eq!(decode_attribute_value("?a=1&copy=2&amp;b"), "?a=1&copy=2&b");
        assert_eq!(
            decode_attribute_value("&copy 2024 &copy;x &#106;s"),
            "© 2024 ©x js"
        );
        assert_eq!(decode_attribute_value("&notit"), "&notit");
    }
}
