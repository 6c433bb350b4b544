//! Allow-list pass over item HTML before it is republished.
//!
//! In: an item's `content_html`, which `normalize` already sanitised. Out: the same fragment
//! with only allow-listed elements and attributes, URL attributes limited to `http`, `https`,
//! `mailto` and relative references, stray `<`, `>` and `&` escaped, comments, processing
//! instructions and characters XML forbids removed, and `script`-like elements dropped with
//! their content. It is the publisher's last line of defence, so a record written by an older
//! or buggy sanitiser still goes out inert. It is a single forward scan: no recursion, no DOM,
//! output at most a small constant times the input. It does not balance tags; callers escape
//! the result as text (RSS, Atom) or a JSON string, never paste it into their own markup.

use super::escape::{is_xml_char, push_attr};

/// The fragment with everything outside the allow-list removed.
pub fn safe_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    push_safe_html(&mut out, html);
    out
}

/// Appends the allow-listed form of `html` to `out`.
pub fn push_safe_html(out: &mut String, html: &str) {
    let bytes = html.as_bytes();
    // Without control characters or 0xEF lead bytes only `<`, `>` and `&` need a look, and
    // memchr jumps straight to them.
    let clean = !super::escape::needs_slow_path(bytes);
    let mut i = 0;
    let mut run_start = 0;
    while i < bytes.len() {
        if clean {
            match bytes
                .get(i..)
                .and_then(|rest| memchr::memchr3(b'<', b'>', b'&', rest))
            {
                Some(p) => i += p,
                None => break,
            }
        }
        let b = byte(bytes, i);
        match b {
            b'<' => {
                push_range(out, html, run_start, i);
                i = markup(out, html, i);
                run_start = i;
            }
            b'>' => {
                push_range(out, html, run_start, i);
                out.push_str("&gt;");
                i += 1;
                run_start = i;
            }
            b'&' => {
                push_range(out, html, run_start, i);
                let len = entity_len(bytes, i);
                if len > 0 {
                    push_range(out, html, i, i + len);
                    i += len;
                } else {
                    out.push_str("&amp;");
                    i += 1;
                }
                run_start = i;
            }
            0..=0x1f if !matches!(b, b'\t' | b'\n' | b'\r') => {
                push_range(out, html, run_start, i);
                i += 1;
                run_start = i;
            }
            0xEF if matches!(
                (bytes.get(i + 1), bytes.get(i + 2)),
                (Some(0xBF), Some(0xBE | 0xBF))
            ) =>
            {
                push_range(out, html, run_start, i);
                i += 3;
                run_start = i;
            }
            _ => i += 1,
        }
    }
    push_range(out, html, run_start, bytes.len());
}

fn byte(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

fn push_range(out: &mut String, s: &str, from: usize, to: usize) {
    if from < to {
        if let Some(run) = s.get(from..to) {
            out.push_str(run);
        }
    }
}

/// Length of a well-formed character or entity reference at `i` (`&amp;`, `&#233;`, `&#xE9;`),
/// or 0 when the `&` is a bare ampersand.
fn entity_len(bytes: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    if byte(bytes, j) == b'#' {
        j += 1;
        let hex = matches!(byte(bytes, j), b'x' | b'X');
        if hex {
            j += 1;
        }
        let digits_start = j;
        let mut value: u32 = 0;
        while j < bytes.len() && j - digits_start < 8 {
            let d = byte(bytes, j);
            let digit = if hex {
                (d as char).to_digit(16)
            } else {
                (d as char).to_digit(10)
            };
            match digit {
                Some(v) => value = value * if hex { 16 } else { 10 } + v,
                None => break,
            }
            j += 1;
        }
        let ok = j > digits_start
            && byte(bytes, j) == b';'
            && char::from_u32(value).is_some_and(|c| is_xml_char(c) && c != '\0');
        return if ok { j + 1 - i } else { 0 };
    }
    let name_start = j;
    while j < bytes.len() && j - name_start < 32 && byte(bytes, j).is_ascii_alphanumeric() {
        j += 1;
    }
    if j > name_start && byte(bytes, name_start).is_ascii_alphabetic() && byte(bytes, j) == b';' {
        j + 1 - i
    } else {
        0
    }
}

/// Handles markup starting at `<` (index `i`); returns the index after it.
fn markup(out: &mut String, html: &str, i: usize) -> usize {
    let bytes = html.as_bytes();
    let next = byte(bytes, i + 1);
    if next.is_ascii_alphabetic() {
        return start_tag(out, html, i + 1);
    }
    if next == b'/' && byte(bytes, i + 2).is_ascii_alphabetic() {
        let (name_end, name) = tag_name(bytes, i + 2);
        let end = find_byte(bytes, name_end, b'>').map_or(bytes.len(), |p| p + 1);
        if let Some(name) = allowed_element(name) {
            if !is_void(name) {
                out.push_str("</");
                out.push_str(name);
                out.push('>');
            }
        }
        return end;
    }
    if bytes.get(i..i + 4) == Some(b"<!--") {
        return find_seq(bytes, i + 4, b"-->").map_or(bytes.len(), |p| p + 3);
    }
    if matches!(next, b'!' | b'?') {
        return find_byte(bytes, i + 2, b'>').map_or(bytes.len(), |p| p + 1);
    }
    out.push_str("&lt;");
    i + 1
}

/// Reads a tag name at `from`; returns the index after it and the name's bytes.
fn tag_name(bytes: &[u8], from: usize) -> (usize, &[u8]) {
    let mut j = from;
    while j < bytes.len() && (byte(bytes, j).is_ascii_alphanumeric() || byte(bytes, j) == b'-') {
        j += 1;
    }
    (j, bytes.get(from..j).unwrap_or_default())
}

fn start_tag(out: &mut String, html: &str, name_start: usize) -> usize {
    let bytes = html.as_bytes();
    let (mut j, name) = tag_name(bytes, name_start);
    let element = allowed_element(name);
    if let Some(element) = element {
        out.push('<');
        out.push_str(element);
    }
    // Attributes.
    loop {
        while j < bytes.len() && (byte(bytes, j).is_ascii_whitespace() || byte(bytes, j) == b'/') {
            j += 1;
        }
        if j >= bytes.len() {
            break;
        }
        if byte(bytes, j) == b'>' {
            j += 1;
            break;
        }
        let attr_start = j;
        while j < bytes.len() {
            let c = byte(bytes, j);
            if c.is_ascii_whitespace() || matches!(c, b'=' | b'>' | b'/') {
                break;
            }
            j += 1;
        }
        if j == attr_start {
            // A lone `=`: skip it.
            j += 1;
            continue;
        }
        let attr_name = bytes.get(attr_start..j).unwrap_or_default();
        while j < bytes.len() && byte(bytes, j).is_ascii_whitespace() {
            j += 1;
        }
        let mut value: Option<&str> = None;
        if byte(bytes, j) == b'=' {
            j += 1;
            while j < bytes.len() && byte(bytes, j).is_ascii_whitespace() {
                j += 1;
            }
            let q = byte(bytes, j);
            let (v_start, v_end, after) = if q == b'"' || q == b'\'' {
                let end = find_byte(bytes, j + 1, q).unwrap_or(bytes.len());
                (j + 1, end, (end + 1).min(bytes.len()))
            } else {
                let mut e = j;
                while e < bytes.len()
                    && !byte(bytes, e).is_ascii_whitespace()
                    && byte(bytes, e) != b'>'
                {
                    e += 1;
                }
                (j, e, e)
            };
            value = html.get(v_start..v_end);
            j = after;
        }
        if let Some(element) = element {
            if let Some((attr_name, kind)) = allowed_attribute(element, attr_name) {
                let decoded = decode_entities(value.unwrap_or(""));
                let keep = match kind {
                    AttrKind::Text => true,
                    AttrKind::Url => is_safe_url(&decoded),
                };
                if keep {
                    out.push(' ');
                    out.push_str(attr_name);
                    out.push_str("=\"");
                    push_attr(out, &decoded);
                    out.push('"');
                }
            }
        }
    }
    if element.is_some() {
        out.push('>');
    } else if is_dropped_with_content(name) {
        return skip_to_end_tag(bytes, j, name);
    }
    j
}

/// Index after `</name ...>` (case-insensitive), or the end of input.
fn skip_to_end_tag(bytes: &[u8], from: usize, name: &[u8]) -> usize {
    let mut j = from;
    while let Some(p) = find_seq(bytes, j, b"</") {
        let name_end = p + 2 + name.len();
        let matches_name = bytes
            .get(p + 2..name_end)
            .is_some_and(|n| n.eq_ignore_ascii_case(name));
        let boundary = !byte(bytes, name_end).is_ascii_alphanumeric();
        if matches_name && boundary {
            return find_byte(bytes, name_end, b'>').map_or(bytes.len(), |q| q + 1);
        }
        j = p + 2;
    }
    bytes.len()
}

fn find_byte(bytes: &[u8], from: usize, needle: u8) -> Option<usize> {
    bytes
        .get(from..)
        .and_then(|rest| memchr::memchr(needle, rest))
        .map(|p| p + from)
}

fn find_seq(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)
        .and_then(|rest| memchr::memmem::find(rest, needle))
        .map(|p| p + from)
}

/// The canonical (static) name of an allow-listed element.
fn allowed_element(name: &[u8]) -> Option<&'static str> {
    const ALLOWED: &[&str] = &[
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "time",
        "tr",
        "u",
        "ul",
    ];
    ALLOWED
        .iter()
        .copied()
        .find(|a| a.as_bytes().eq_ignore_ascii_case(name))
}

fn is_void(name: &str) -> bool {
    matches!(name, "br" | "hr" | "img")
}

/// Elements whose content is code or raw text: dropped together with the content. Other
/// unknown elements (`svg`, `math`, `object`, `form` ...) lose only their tags; their content
/// goes through the same allow-list.
fn is_dropped_with_content(name: &[u8]) -> bool {
    const DROPPED: &[&str] = &[
        "script", "style", "iframe", "applet", "noscript", "noembed", "noframes", "template",
        "textarea", "title", "xmp",
    ];
    DROPPED
        .iter()
        .any(|d| d.as_bytes().eq_ignore_ascii_case(name))
}

enum AttrKind {
    Text,
    Url,
}

/// The canonical name and kind of an allow-listed attribute of `element`.
fn allowed_attribute(element: &str, attr: &[u8]) -> Option<(&'static str, AttrKind)> {
    const NAMES: &[&str] = &[
        "title", "lang", "dir", "href", "src", "alt", "width", "height", "cite", "colspan",
        "rowspan", "datetime", "start",
    ];
    let name = NAMES
        .iter()
        .copied()
        .find(|n| n.as_bytes().eq_ignore_ascii_case(attr))?;
    let kind = match (element, name) {
        (_, "title" | "lang" | "dir") => AttrKind::Text,
        ("a", "href") => AttrKind::Url,
        ("img", "src") => AttrKind::Url,
        ("img", "alt" | "width" | "height") => AttrKind::Text,
        ("blockquote" | "q" | "del" | "ins", "cite") => AttrKind::Url,
        ("td" | "th", "colspan" | "rowspan") => AttrKind::Text,
        ("time" | "del" | "ins", "datetime") => AttrKind::Text,
        ("ol", "start") => AttrKind::Text,
        _ => return None,
    };
    Some((name, kind))
}

/// True for `http:`, `https:`, `mailto:` and scheme-less (relative) references, judged the way
/// a browser reads them: whitespace and control characters ignored.
fn is_safe_url(value: &str) -> bool {
    let compact: String = value
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .take(16)
        .collect();
    match compact.find([':', '/', '?', '#']) {
        Some(p) if compact.get(p..p + 1) == Some(":") => {
            let scheme = compact.get(..p).unwrap_or("").to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto")
        }
        _ => true,
    }
}

/// Decodes character references and the common named entities of an attribute value.
fn decode_entities(value: &str) -> String {
    if !value.contains('&') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(p) = rest.find('&') {
        out.push_str(rest.get(..p).unwrap_or(""));
        let after = rest.get(p + 1..).unwrap_or("");
        let end = after.find(';').filter(|e| *e <= 32);
        let decoded = end.and_then(|e| {
            let name = after.get(..e)?;
            let c = if let Some(num) = name.strip_prefix('#') {
                let v = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => num.parse::<u32>().ok()?,
                };
                char::from_u32(v)?
            } else {
                match name {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    "nbsp" => '\u{a0}',
                    "colon" => ':',
                    "Tab" => '\t',
                    "NewLine" => '\n',
                    _ => return None,
                }
            };
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = after.get(e + 1..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_allowed_markup() {
        assert_eq!(
            safe_html("<p class=x>Hi <a href=\"https://a.org/?a=1&amp;b=2\" onclick=\"x()\">there</a></p>"),
            "<p>Hi <a href=\"https://a.org/?a=1&amp;b=2\">there</a></p>"
        );
    }

    #[test]
    fn drops_scripts_handlers_and_bad_urls() {
        let out = safe_html(
            "<script>alert(1)</script><SCRIPT src=x></SCRIPT ><img src=x onerror=alert(1)>\
             <a href=\" jav&#x09;ascript:alert(1)\">x</a><a href=\"&#106;avascript:alert(1)\">y</a>\
             <style>p{}</style><iframe src=https://e.org></iframe><!-- <script> -->ok",
        );
        assert_eq!(out, "<img src=\"x\"><a>x</a><a>y</a>ok");
    }

    #[test]
    fn escapes_stray_characters() {
        assert_eq!(
            safe_html("a < b && c > d ]]> &copy;"),
            "a &lt; b &amp;&amp; c &gt; d ]]&gt; &copy;"
        );
        assert_eq!(safe_html("x\u{0}\u{8}y&#0;"), "xy&amp;#0;");
    }

    #[test]
    fn unterminated_markup_ends_cleanly() {
        assert_eq!(
            safe_html("<p title=\"unterminated"),
            "<p title=\"unterminated\">"
        );
        assert_eq!(safe_html("<script>never closed"), "");
        assert_eq!(safe_html("<!-- open"), "");
        assert_eq!(safe_html("<"), "&lt;");
    }

    #[test]
    fn pathological_input_stays_linear() {
        let patterns = [
            "<a ",
            "</",
            "<script>",
            "<!--",
            "<p title='",
            "&#x",
            "<div><span>",
            "<a href=javascript:x>",
        ];
        for pattern in patterns {
            let input = pattern.repeat(50_000);
            let start = std::time::Instant::now();
            let out = safe_html(&input);
            assert!(out.len() <= input.len() * 8, "{pattern}: output bounded");
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "{pattern}: {:?}",
                start.elapsed()
            );
            assert!(!out.contains("javascript"), "{pattern}");
        }
    }
}
