//! Character decoding: feed bytes as served → one UTF-8 string, decoded once up front.
//!
//! In: the raw body, the HTTP Content-Type (media type and charset) and whether HTTP headers
//! were given at all. Out: the text, the charset actually used (lower-case label), and a bozo
//! reason when the declared charset was wrong or the media type is not an XML one. The order of
//! authority follows RFC 3023 as lenient readers apply it: byte order mark, then the HTTP
//! charset, then the XML declaration, then fallbacks (UTF-8, windows-1252). It never fails: the
//! last fallback decodes any byte sequence. Valid UTF-8 input is borrowed, never copied.

use std::borrow::Cow;

/// The decoded document.
pub(crate) struct Decoded<'a> {
    pub text: Cow<'a, str>,
    /// The charset used, as a lower-case label (`utf-8`, `iso-8859-1`, `utf-16le` ...).
    pub encoding: String,
    /// Why the declared encoding or media type could not be trusted, if so.
    pub bozo: Option<String>,
}

const APPLICATION_XML_TYPES: &[&str] = &[
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
];
const TEXT_XML_TYPES: &[&str] = &["text/xml", "text/xml-external-parsed-entity"];

/// Splits a Content-Type into its lower-case media type and its charset parameter.
pub(crate) fn split_content_type(ct: &str) -> (String, Option<String>) {
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mut charset = None;
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("charset") {
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'').trim();
                if !v.is_empty() {
                    charset = Some(v.to_ascii_lowercase());
                }
            }
        }
    }
    (media, charset)
}

/// What the first bytes say: (encoding, length of the byte order mark).
fn sniff(body: &[u8]) -> (Option<&'static str>, usize) {
    match body {
        [0x00, 0x00, 0xFE, 0xFF, ..] => (Some("utf-32be"), 4),
        [0xFF, 0xFE, 0x00, 0x00, ..] => (Some("utf-32le"), 4),
        [0xEF, 0xBB, 0xBF, ..] => (Some("utf-8"), 3),
        [0xFE, 0xFF, ..] => (Some("utf-16be"), 2),
        [0xFF, 0xFE, ..] => (Some("utf-16le"), 2),
        [0x00, 0x00, 0x00, 0x3C, ..] => (Some("utf-32be"), 0),
        [0x3C, 0x00, 0x00, 0x00, ..] => (Some("utf-32le"), 0),
        [0x00, 0x3C, 0x00, 0x3F, ..] => (Some("utf-16be"), 0),
        [0x3C, 0x00, 0x3F, 0x00, ..] => (Some("utf-16le"), 0),
        _ => (None, 0),
    }
}

/// The `encoding="..."` of an ASCII-compatible XML declaration, lower-case.
fn xml_declared_encoding(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(512)];
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = head.get(start..)?;
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = memchr::memmem::find(head, b"?>")?;
    let decl = head.get(..end)?;
    let pos = memchr::memmem::find(decl, b"encoding")?;
    let rest = decl.get(pos + 8..)?;
    let rest = rest.get(rest.iter().position(|b| !b.is_ascii_whitespace())?..)?;
    let rest = rest.strip_prefix(b"=")?;
    let rest = rest.get(rest.iter().position(|b| !b.is_ascii_whitespace())?..)?;
    let quote = *rest.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let rest = rest.get(1..)?;
    let close = memchr::memchr(quote, rest)?;
    let name = std::str::from_utf8(rest.get(..close)?).ok()?.trim();
    if name.is_empty() {
        None
    } else {
        Some(name.to_ascii_lowercase())
    }
}

/// The label reported for a charset: a few aliases are widened the way lenient readers do.
fn canonical_label(label: &str) -> String {
    match label {
        "gb2312" | "gbk" | "x-gbk" => "gb18030".into(),
        "utf8" => "utf-8".into(),
        "latin1" | "latin-1" | "l1" => "iso-8859-1".into(),
        "ascii" => "us-ascii".into(),
        "utf-16" | "utf16" => "utf-16".into(),
        other => other.to_string(),
    }
}

fn decode_utf32(body: &[u8], big_endian: bool) -> Option<String> {
    if body.len() % 4 != 0 {
        return None;
    }
    let mut out = String::with_capacity(body.len() / 4);
    for ch in body.chunks_exact(4) {
        let b = [*ch.first()?, *ch.get(1)?, *ch.get(2)?, *ch.get(3)?];
        let v = if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        out.push(char::from_u32(v)?);
    }
    Some(out)
}

/// `body` as UTF-8 text, borrowed, when it is valid UTF-8. encoding_rs validates with SIMD
/// (several times `std::str::from_utf8` on the corpus) and accepts exactly the same bytes.
fn utf8(body: &[u8]) -> Option<Cow<'_, str>> {
    encoding_rs::UTF_8.decode_without_bom_handling_and_without_replacement(body)
}

/// Decodes strictly with one charset; `None` when the bytes are not valid in it.
fn try_decode<'a>(body: &'a [u8], label: &str) -> Option<Cow<'a, str>> {
    match label {
        "utf-8" => utf8(body),
        "us-ascii" => {
            if body.is_ascii() {
                std::str::from_utf8(body).ok().map(Cow::Borrowed)
            } else {
                None
            }
        }
        "utf-32be" => decode_utf32(body, true).map(Cow::Owned),
        "utf-32le" => decode_utf32(body, false).map(Cow::Owned),
        "utf-32" => decode_utf32(body, true).map(Cow::Owned),
        _ => {
            let enc = encoding_rs::Encoding::for_label(label.as_bytes())?;
            if enc == encoding_rs::UTF_8 {
                return utf8(body);
            }
            if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
                let (text, had_errors) = enc.decode_without_bom_handling(body);
                return if had_errors {
                    None
                } else {
                    Some(Cow::Owned(text.into_owned()))
                };
            }
            enc.decode_without_bom_handling_and_without_replacement(body)
                .map(|c| Cow::Owned(c.into_owned()))
        }
    }
}

/// Decodes `body` to UTF-8 text.
pub(crate) fn decode<'a>(
    body: &'a [u8],
    content_type: Option<&str>,
    has_headers: bool,
) -> Decoded<'a> {
    let (bom_enc, bom_len) = sniff(body);
    let body = body.get(bom_len..).unwrap_or(&[]);
    let declared = if matches!(bom_enc, Some(e) if e.starts_with("utf-16") || e.starts_with("utf-32"))
    {
        None
    } else {
        xml_declared_encoding(body)
    };
    // A UTF-16/32 byte pattern or BOM outranks whatever the declaration claims.
    let xml_encoding: Option<String> = match (bom_enc, declared.as_deref()) {
        (Some(b), _) if bom_len > 0 || b.starts_with("utf-16") || b.starts_with("utf-32") => {
            Some(b.to_string())
        }
        (_, Some("utf-16")) | (_, Some("utf-32")) => None,
        (_, Some(d)) => Some(canonical_label(d)),
        _ => None,
    };

    let mut bozo = None;
    let (media, http_charset) = content_type
        .map(split_content_type)
        .unwrap_or((String::new(), None));
    let http_charset = http_charset.map(|c| canonical_label(&c));
    let proposed: String = if media.is_empty() {
        if has_headers && content_type.is_none() {
            xml_encoding.clone().unwrap_or_else(|| "iso-8859-1".into())
        } else {
            xml_encoding.clone().unwrap_or_else(|| "utf-8".into())
        }
    } else if APPLICATION_XML_TYPES.contains(&media.as_str())
        || (media.starts_with("application/") && media.ends_with("+xml"))
        || media == "application/json"
        || media == "application/feed+json"
    {
        http_charset
            .clone()
            .or_else(|| xml_encoding.clone())
            .unwrap_or_else(|| "utf-8".into())
    } else if TEXT_XML_TYPES.contains(&media.as_str())
        || (media.starts_with("text/") && media.ends_with("+xml"))
    {
        http_charset.clone().unwrap_or_else(|| "us-ascii".into())
    } else if media.starts_with("text/") {
        bozo = Some(format!("served as {media}, not an XML media type"));
        http_charset.clone().unwrap_or_else(|| "us-ascii".into())
    } else {
        xml_encoding.clone().unwrap_or_else(|| "utf-8".into())
    };

    // Most documents are valid in the proposed charset: try it before listing fallbacks.
    if let Some(text) = try_decode(body, &proposed) {
        return Decoded {
            text,
            encoding: proposed,
            bozo,
        };
    }
    let mut candidates: Vec<String> = vec![proposed.clone()];
    for c in [
        xml_encoding.clone(),
        Some("utf-8".into()),
        Some("windows-1252".into()),
    ]
    .into_iter()
    .flatten()
    {
        if !candidates.contains(&c) {
            candidates.push(c);
        }
    }
    for label in candidates.iter().skip(1) {
        if let Some(text) = try_decode(body, label) {
            if *label != proposed && bozo.is_none() {
                bozo = Some(format!(
                    "document declared as {proposed} but is not valid in it; decoded as {label}"
                ));
            }
            return Decoded {
                text,
                encoding: label.clone(),
                bozo,
            };
        }
    }
    // windows-1252 via encoding_rs maps every byte, so this is reached only if it did not.
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(body);
    Decoded {
        text: Cow::Owned(text.into_owned()),
        encoding: "windows-1252".into(),
        bozo: Some(format!(
            "document declared as {proposed} but is not valid in it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_charset_outranks_declaration() {
        let d = decode(
            b"<?xml version='1.0' encoding='iso-8859-1'?><rss/>",
            Some("application/xml; charset=\"us-ascii\""),
            true,
        );
        assert_eq!(d.encoding, "us-ascii");
        assert!(d.bozo.is_none());
    }

    #[test]
    fn text_xml_defaults_to_ascii() {
        let d = decode(
            b"<?xml version='1.0' encoding='iso-8859-1'?><rss/>",
            Some("text/xml"),
            true,
        );
        assert_eq!(d.encoding, "us-ascii");
    }

    #[test]
    fn wrong_declaration_falls_back_and_is_bozo() {
        let d = decode(
            b"<?xml version='1.0' encoding='utf-8'?><rss>caf\xe9</rss>",
            None,
            false,
        );
        assert_eq!(d.encoding, "windows-1252");
        assert!(d.text.contains("café"));
        assert!(d.bozo.is_some());
    }

    #[test]
    fn utf16_is_sniffed() {
        let s: Vec<u8> = "<?xml version='1.0'?><rss/>"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let d = decode(&s, None, false);
        assert_eq!(d.encoding, "utf-16le");
        assert!(d.text.starts_with("<?xml"));
    }
}
