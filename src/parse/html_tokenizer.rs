//! Streaming HTML tokenizer shared by the sanitiser and the plain-text converter.
//!
//! In: an HTML fragment as `&str`. Out: a flat sequence of [`Token`]s borrowing from the input
//! (text, start tags with their raw attribute text, end tags), read the lenient way feedparser's
//! SGML reader does: comments, processing instructions and declarations are skipped, a `<` that
//! opens no tag is text, `script`/`style` bodies are raw text. It never builds a tree, never
//! recurses, keeps O(1) state and always advances, so any input is read in one linear pass.

use memchr::{memchr, memchr2, memmem};

/// One piece of an HTML fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// Character data with references still encoded (`a &amp; b`).
    Text(&'a str),
    /// A `<` that opens no tag; to be written as `&lt;`.
    LessThan,
    /// The body of a `script` or `style` element (never markup).
    RawText(&'a str),
    /// `<name attrs>`; `attrs` is the raw text between the name and `>` / `/>`.
    StartTag {
        name: &'a str,
        attrs: &'a str,
        self_closing: bool,
    },
    /// `</name>`.
    EndTag { name: &'a str },
}

/// Elements whose content is raw text up to the matching end tag.
pub(crate) fn is_raw_text_element(name: &str) -> bool {
    name.eq_ignore_ascii_case("script") || name.eq_ignore_ascii_case("style")
}

/// Tokenizer over one fragment; an iterator of [`Token`]s.
pub(crate) struct Tokenizer<'a> {
    input: &'a str,
    pos: usize,
    /// Set after a `script`/`style` start tag: the next token is its raw body.
    raw_text_of: Option<&'a str>,
}

impl<'a> Tokenizer<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Tokenizer {
            input,
            pos: 0,
            raw_text_of: None,
        }
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or("")
    }

    /// Body of a raw-text element up to `</name`, and the position after that end tag's `>`.
    fn raw_text(&mut self, name: &str) -> Token<'a> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let mut search_from = 0;
        while let Some(found) = memmem::find(bytes.get(search_from..).unwrap_or(&[]), b"</") {
            let start = search_from + found;
            let name_start = start + 2;
            let candidate = bytes.get(name_start..name_start + name.len());
            let follows = bytes.get(name_start + name.len()).copied();
            if candidate.is_some_and(|c| c.eq_ignore_ascii_case(name.as_bytes()))
                && !follows.is_some_and(|b| b.is_ascii_alphanumeric())
            {
                let after = memchr(b'>', bytes.get(name_start..).unwrap_or(&[]))
                    .map_or(bytes.len(), |gt| name_start + gt + 1);
                self.pos += after;
                return Token::RawText(rest.get(..start).unwrap_or(""));
            }
            search_from = start + 2;
        }
        self.pos = self.input.len();
        Token::RawText(rest)
    }

    /// Reads markup at `self.pos` (a `<`). Returns `None` when it was skipped (comment,
    /// processing instruction, declaration) so the caller continues.
    fn markup(&mut self) -> Option<Token<'a>> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        match bytes.get(1).copied() {
            Some(b) if b.is_ascii_alphabetic() => Some(self.start_tag(rest)),
            Some(b'/') if bytes.get(2).is_some_and(|b| b.is_ascii_alphabetic()) => {
                let name_len = name_length(bytes.get(2..).unwrap_or(&[]));
                let name = rest.get(2..2 + name_len).unwrap_or("");
                // `</p>`: the usual end tag, with no search.
                if bytes.get(2 + name_len) == Some(&b'>') {
                    self.pos += 3 + name_len;
                    return Some(Token::EndTag { name });
                }
                match memchr2(b'>', b'<', bytes.get(2 + name_len..).unwrap_or(&[])) {
                    Some(off) => {
                        let end = 2 + name_len + off;
                        // `</b<i>`: the tag stops before the next `<`.
                        let consumed = if bytes.get(end) == Some(&b'>') {
                            end + 1
                        } else {
                            end
                        };
                        self.pos += consumed;
                        Some(Token::EndTag { name })
                    }
                    None => {
                        self.pos += 1;
                        Some(Token::LessThan)
                    }
                }
            }
            Some(b'!') => {
                if bytes.starts_with(b"<!--") {
                    self.pos += comment_length(bytes);
                    None
                } else if bytes
                    .get(2..9)
                    .is_some_and(|d| d.eq_ignore_ascii_case(b"doctype"))
                {
                    self.pos += memchr(b'>', bytes).map_or(bytes.len(), |gt| gt + 1);
                    None
                } else {
                    // `<![CDATA[`, `<!foo`: text, as feedparser escapes them.
                    self.pos += 1;
                    Some(Token::LessThan)
                }
            }
            Some(b'?') => {
                self.pos += memchr(b'>', bytes).map_or(bytes.len(), |gt| gt + 1);
                None
            }
            _ => {
                self.pos += 1;
                Some(Token::LessThan)
            }
        }
    }

    fn start_tag(&mut self, rest: &'a str) -> Token<'a> {
        let bytes = rest.as_bytes();
        let name_len = name_length(bytes.get(1..).unwrap_or(&[]));
        let name = rest.get(1..1 + name_len).unwrap_or("");
        let attrs_start = 1 + name_len;
        match tag_end(bytes, attrs_start) {
            Some((attrs_end, consumed)) => {
                let self_closing = attrs_end > attrs_start
                    && bytes.get(attrs_end - 1) == Some(&b'/')
                    && bytes.get(attrs_end) == Some(&b'>');
                let attrs = rest
                    .get(attrs_start..attrs_end - usize::from(self_closing))
                    .unwrap_or("");
                self.pos += consumed;
                if !self_closing && is_raw_text_element(name) {
                    self.raw_text_of = Some(name);
                }
                Token::StartTag {
                    name,
                    attrs,
                    self_closing,
                }
            }
            None => {
                self.pos += 1;
                Token::LessThan
            }
        }
    }
}

impl<'a> Iterator for Tokenizer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        if let Some(name) = self.raw_text_of.take() {
            return Some(self.raw_text(name));
        }
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return None;
            }
            let bytes = rest.as_bytes();
            match find_lt(bytes) {
                Some(0) => {
                    if let Some(token) = self.markup() {
                        return Some(token);
                    }
                }
                Some(lt) => {
                    self.pos += lt;
                    return Some(Token::Text(rest.get(..lt).unwrap_or("")));
                }
                None => {
                    self.pos = self.input.len();
                    return Some(Token::Text(rest));
                }
            }
        }
    }
}

/// The first `<` in `bytes`. Text between tags is mostly a few bytes (a newline, a word), where
/// a plain look at the first bytes answers before memchr's vector setup would.
fn find_lt(bytes: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    match bytes.iter().take(SHORT).position(|&b| b == b'<') {
        Some(found) => Some(found),
        None => memchr(b'<', bytes.get(SHORT..)?).map(|found| found + SHORT),
    }
}

/// Length of a tag name `[A-Za-z][-_.:A-Za-z0-9]*` at the start of `bytes`.
fn name_length(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')))
        .unwrap_or(bytes.len())
}

/// Finds the end of a start tag whose attributes begin at `from`: `(end of attribute text,
/// bytes consumed)`. Quoted values may contain `>`; a `<` outside quotes ends the tag without
/// being consumed. `None` when the input ends first.
fn tag_end(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'>' => return Some((i, i + 1)),
            b'<' => return Some((i, i)),
            b'"' | b'\''
                if bytes
                    .get(i.wrapping_sub(1))
                    .is_some_and(|&p| p == b'=' || p.is_ascii_whitespace()) =>
            {
                match memchr(b, bytes.get(i + 1..).unwrap_or(&[])) {
                    Some(close) => i += close + 2,
                    // Unterminated quote: the value runs to the next `>`.
                    None => {
                        let gt = memchr(b'>', bytes.get(i + 1..).unwrap_or(&[]))?;
                        return Some((i + 1 + gt, i + 2 + gt));
                    }
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Bytes a comment starting at `bytes` (`<!--`) covers. Ends at `--` + optional spaces + `>`,
/// else at the first `--…>`; an unterminated comment swallows the rest, as in feedparser.
fn comment_length(bytes: &[u8]) -> usize {
    let body = bytes.get(4..).unwrap_or(&[]);
    let mut from = 0;
    while let Some(found) = memmem::find(body.get(from..).unwrap_or(&[]), b"--") {
        let after = from + found + 2;
        let spaces = body
            .get(after..)
            .unwrap_or(&[])
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if body.get(after + spaces) == Some(&b'>') {
            return 4 + after + spaces + 1;
        }
        from = from + found + 1;
    }
    if let Some(found) = memmem::find(body, b"--") {
        if let Some(gt) = memchr(b'>', body.get(found + 2..).unwrap_or(&[])) {
            return 4 + found + 2 + gt + 1;
        }
    }
    bytes.len()
}

/// One attribute of a start tag, borrowed from the raw attribute text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawAttribute<'a> {
    pub(crate) name: &'a str,
    /// The value as written (references encoded); `None` for a bare attribute (`checked`).
    pub(crate) value: Option<&'a str>,
}

/// Iterator over the attributes in a start tag's raw attribute text.
pub(crate) struct Attributes<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Attributes<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Attributes { text, pos: 0 }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        let bytes = self.text.as_bytes();
        loop {
            // Skip separators and stray characters that cannot start a name.
            while let Some(&b) = bytes.get(self.pos) {
                if b.is_ascii_whitespace() || matches!(b, b'/' | b'"' | b'\'' | b'=' | b'<' | b'>')
                {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            if self.pos >= bytes.len() {
                return None;
            }
            let name_start = self.pos;
            while let Some(&b) = bytes.get(self.pos) {
                if b.is_ascii_whitespace() || matches!(b, b'=' | b'/' | b'>' | b'"' | b'\'') {
                    break;
                }
                self.pos += 1;
            }
            let name = self.text.get(name_start..self.pos).unwrap_or("");
            let mut look = self.pos;
            while bytes.get(look).is_some_and(|b| b.is_ascii_whitespace()) {
                look += 1;
            }
            if bytes.get(look) != Some(&b'=') {
                if name.is_empty() {
                    self.pos += 1;
                    continue;
                }
                return Some(RawAttribute { name, value: None });
            }
            look += 1;
            while bytes.get(look).is_some_and(|b| b.is_ascii_whitespace()) {
                look += 1;
            }
            let value = match bytes.get(look).copied() {
                Some(q @ (b'"' | b'\'')) => {
                    let start = look + 1;
                    let len = memchr(q, bytes.get(start..).unwrap_or(&[]))
                        .unwrap_or(bytes.len().saturating_sub(start));
                    self.pos = (start + len + 1).min(bytes.len());
                    self.text.get(start..start + len).unwrap_or("")
                }
                _ => {
                    let start = look;
                    let len = bytes
                        .get(start..)
                        .unwrap_or(&[])
                        .iter()
                        .position(|b| b.is_ascii_whitespace())
                        .unwrap_or(bytes.len().saturating_sub(start));
                    self.pos = start + len;
                    self.text.get(start..start + len).unwrap_or("")
                }
            };
            if name.is_empty() {
                continue;
            }
            return Some(RawAttribute {
                name,
                value: Some(value),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_tags_and_skips_comments() {
        let tokens: Vec<_> = Tokenizer::new("a<b class=x>c</b ><!-- no --><?pi?>d<3").collect();
        assert_eq!(
            tokens,
            vec![
                Token::Text("a"),
                Token::StartTag {
                    name: "b",
                    attrs: " class=x",
                    self_closing: false
                },
                Token::Text("c"),
                Token::EndTag { name: "b" },
                Token::Text("d"),
                Token::LessThan,
                Token::Text("3"),
            ]
        );
    }

    #[test]
    fn script_body_is_raw_text() {
        let tokens: Vec<_> = Tokenizer::new("<script>if (a<b) x()</SCRIPT >z").collect();
        assert_eq!(tokens.get(1), Some(&Token::RawText("if (a<b) x()")));
        assert_eq!(tokens.get(2), Some(&Token::Text("z")));
    }

    #[test]
    fn quoted_values_may_hold_angle_brackets() {
        let tokens: Vec<_> = Tokenizer::new(r#"<a title="x>y" href='/z'/>"#).collect();
        assert_eq!(
            tokens,
            vec![Token::StartTag {
                name: "a",
                attrs: r#" title="x>y" href='/z'"#,
                self_closing: true
            }]
        );
        let attrs: Vec<_> = Attributes::new(r#" title="x>y" href='/z' checked b=1"#).collect();
        assert_eq!(attrs.len(), 4);
        assert_eq!(attrs.get(2).map(|a| a.value), Some(None));
        assert_eq!(attrs.get(3).and_then(|a| a.value), Some("1"));
    }

    #[test]
    fn unterminated_markup_is_bounded() {
        assert_eq!(Tokenizer::new("<a href=\"x").count(), 2);
        assert_eq!(Tokenizer::new("x<!-- never closed <b>").count(), 1);
    }
}
