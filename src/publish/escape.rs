//! Escaping text for XML and HTML output.
//!
//! In: arbitrary Unicode text from items and configuration. Out: the same text appended to a
//! document buffer with markup characters replaced by entities and the characters XML 1.0
//! forbids (C0 controls other than tab, line feed and carriage return; U+FFFE; U+FFFF) removed,
//! so any input yields well-formed XML and inert HTML. It must never emit CDATA sections (a
//! `]]>` in the input would end them) or allocate beyond the output it writes.

/// True for characters XML 1.0 allows in a document.
pub fn is_xml_char(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => true,
        c if c < ' ' => false,
        '\u{FFFE}' | '\u{FFFF}' => false,
        _ => true,
    }
}

/// Appends `s` escaped for element content (XML or HTML): `&`, `<`, `>` become entities and
/// forbidden characters are dropped. Escaping `>` keeps `]]>` inert.
pub fn push_text(out: &mut String, s: &str) {
    push_escaped(out, s, false);
}

/// Appends `s` escaped for a double- or single-quoted attribute value: as [`push_text`] plus
/// both quotes, and tab / line feed / carriage return as character references so attribute
/// normalisation keeps them.
pub fn push_attr(out: &mut String, s: &str) {
    push_escaped(out, s, true);
}

/// `s` escaped for element content, as a new string.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_text(&mut out, s);
    out
}

/// `s` escaped for an attribute value, as a new string.
pub fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_attr(&mut out, s);
    out
}

/// `s` with the characters XML forbids removed, nothing else changed (for JSON and for text
/// that is escaped later).
pub fn strip_forbidden(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().all(is_xml_char) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.chars().filter(|c| is_xml_char(*c)).collect())
    }
}

/// True when `bytes` hold a byte that needs more than `&`, `<`, `>` handling in text: a C0
/// control other than tab, line feed and carriage return, or the lead byte 0xEF of U+FFFE /
/// U+FFFF (other characters starting 0xEF take the slow path too, harmlessly). A branch-free
/// loop the compiler vectorises.
pub(crate) fn needs_slow_path(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |acc, &b| {
        acc | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0xEF)
    })
}

fn push_escaped(out: &mut String, s: &str, in_attr: bool) {
    let bytes = s.as_bytes();
    if in_attr || needs_slow_path(bytes) {
        push_escaped_slow(out, s, in_attr);
        return;
    }
    // Fast path: only `&`, `<` and `>` to replace; jump between them with memchr.
    let mut run_start = 0;
    while let Some(p) = bytes
        .get(run_start..)
        .and_then(|rest| memchr::memchr3(b'&', b'<', b'>', rest))
    {
        let at = run_start + p;
        flush(out, s, run_start, at);
        out.push_str(match bytes.get(at) {
            Some(b'&') => "&amp;",
            Some(b'<') => "&lt;",
            _ => "&gt;",
        });
        run_start = at + 1;
    }
    flush(out, s, run_start, bytes.len());
}

fn push_escaped_slow(out: &mut String, s: &str, in_attr: bool) {
    let bytes = s.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        // Only ASCII bytes and the lead byte of U+FFFE / U+FFFF (EF BF BE|BF) need a look.
        let replacement: Option<&str> = match b {
            b'&' => Some("&amp;"),
            b'<' => Some("&lt;"),
            b'>' => Some("&gt;"),
            b'"' if in_attr => Some("&quot;"),
            b'\'' if in_attr => Some("&#39;"),
            b'\t' if in_attr => Some("&#9;"),
            b'\n' if in_attr => Some("&#10;"),
            b'\r' if in_attr => Some("&#13;"),
            b'\t' | b'\n' | b'\r' => None,
            0..=0x1f => Some(""),
            0xEF if matches!(
                (bytes.get(i + 1), bytes.get(i + 2)),
                (Some(0xBF), Some(0xBE | 0xBF))
            ) =>
            {
                // Drop the whole three-byte character.
                flush(out, s, run_start, i);
                i += 3;
                run_start = i;
                continue;
            }
            _ => None,
        };
        if let Some(rep) = replacement {
            flush(out, s, run_start, i);
            out.push_str(rep);
            run_start = i + 1;
        }
        i += 1;
    }
    flush(out, s, run_start, bytes.len());
}

fn flush(out: &mut String, s: &str, from: usize, to: usize) {
    // Boundaries are always at ASCII bytes or whole characters, so `get` never fails; a failure
    // would only drop text, never panic.
    if let Some(run) = s.get(from..to) {
        out.push_str(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_forbidden_characters() {
        assert_eq!(text("a<b>&]]>\u{1}\u{FFFF}é\t"), "a&lt;b&gt;&amp;]]&gt;é\t");
        assert_eq!(attr("x\"y'z\n"), "x&quot;y&#39;z&#10;");
        assert_eq!(text("\u{FFFD}ok\u{FFFE}"), "\u{FFFD}ok");
    }

    #[test]
    fn strip_forbidden_only_touches_forbidden() {
        assert_eq!(strip_forbidden("a\u{0}b<"), "ab<");
    }
}
