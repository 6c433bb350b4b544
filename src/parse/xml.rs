//! The XML feed reader: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and CDF in one streaming pass.
//!
//! In: the document already decoded to UTF-8, its base URL and limits. Out: a [`ParsedFeed`]
//! filled from quick-xml events read on borrowed bytes (no DOM); elements are recognised by
//! their namespace and lower-cased local name the way lenient readers do, so the same handler
//! serves every format. Unclosed and mismatched tags, bare `&`, HTML entities and syntax errors
//! are recovered and reported as `bozo`. It never expands a user-defined entity, never follows a
//! DTD, and refuses nesting deeper than [`Limits::max_depth`].

use super::date::parse_date;
use super::sanitize::{sanitize_html_cow, LazyBase, StyleCache};
use super::text::{
    escape_attr_into, escape_html_into, looks_like_html, repair_cow, resolve_reference, unescape,
};
use super::{
    Category, DocumentBase, Enclosure, Entry, FeedFormat, Image, Limits, Link, ParseError,
    ParsedFeed, Person,
};
use base64::Engine;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::borrow::Cow;
use url::Url;

/// Namespaces the reader distinguishes. Atom, RSS 1.0/0.9 and no namespace are all `Core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Core,
    Content,
    Dc,
    Dcterms,
    Media,
    Itunes,
    Xhtml,
    Rdf,
    Other,
}

/// Namespace URIs the reader knows, lower-case; matched ignoring ASCII case.
const KNOWN_NAMESPACES: &[(&str, Ns)] = &[
    ("", Ns::Core),
    ("http://www.w3.org/2005/atom", Ns::Core),
    ("http://purl.org/atom/ns#", Ns::Core),
    ("http://purl.org/rss/1.0/", Ns::Core),
    ("http://my.netscape.com/rdf/simple/0.9/", Ns::Core),
    ("http://blogs.law.harvard.edu/tech/rss", Ns::Core),
    ("http://purl.org/rss/1.0/modules/rss091#", Ns::Core),
    ("http://purl.org/echo/", Ns::Core),
    ("http://purl.org/pie/", Ns::Core),
    ("http://example.com/necho", Ns::Core),
    ("http://example.com/newformat#", Ns::Core),
    ("uri/of/echo/namespace#", Ns::Core),
    ("http://purl.org/rss/1.0/modules/content/", Ns::Content),
    ("http://purl.org/dc/elements/1.1/", Ns::Dc),
    ("http://purl.org/dc/terms/", Ns::Dcterms),
    ("http://search.yahoo.com/mrss", Ns::Media),
    ("http://search.yahoo.com/mrss/", Ns::Media),
    ("http://www.itunes.com/dtds/podcast-1.0.dtd", Ns::Itunes),
    ("http://example.com/dtds/podcast-1.0.dtd", Ns::Itunes),
    ("http://www.w3.org/1999/xhtml", Ns::Xhtml),
    ("http://www.w3.org/1999/02/22-rdf-syntax-ns#", Ns::Rdf),
];

/// The namespace of a URI, compared trimmed and ignoring ASCII case (no lower-cased copy).
fn ns_from_uri(uri: &str) -> Ns {
    let u = uri.trim();
    if let Some((_, ns)) = KNOWN_NAMESPACES
        .iter()
        .find(|(known, _)| u.eq_ignore_ascii_case(known))
    {
        return *ns;
    }
    const USERLAND: &[u8] = b"backend.userland.com/rss";
    if u.as_bytes()
        .windows(USERLAND.len())
        .any(|w| w.eq_ignore_ascii_case(USERLAND))
    {
        Ns::Core
    } else {
        Ns::Other
    }
}

fn ns_from_prefix(p: &str) -> Ns {
    match p {
        "" | "atom" | "rss" => Ns::Core,
        "content" => Ns::Content,
        "dc" => Ns::Dc,
        "dcterms" => Ns::Dcterms,
        "media" => Ns::Media,
        "itunes" => Ns::Itunes,
        "xhtml" => Ns::Xhtml,
        "rdf" => Ns::Rdf,
        _ => Ns::Other,
    }
}

/// What a captured element's text becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Subtitle,
    Summary,
    Content,
    Rights,
    Link,
    Id,
    Guid,
    Published,
    Updated,
    Language,
    Generator,
    PersonText,
    Tags,
    PersonName,
    PersonEmail,
    PersonUri,
    Category,
    DcSubject,
    ItunesKeywords,
    Comments,
    ImageUrl,
    ImageTitle,
    ImageLink,
    ImageWidth,
    ImageHeight,
    ImageDescription,
    Icon,
    Logo,
    Ttl,
    SkipHour,
    SkipDay,
}

impl Field {
    /// Fields whose children are markup to keep rather than elements to interpret.
    fn holds_markup(self) -> bool {
        matches!(
            self,
            Field::Title
                | Field::Subtitle
                | Field::Summary
                | Field::Content
                | Field::Rights
                | Field::ImageDescription
                | Field::ImageTitle
        )
    }
}

/// The element whose text is being collected.
struct Capture<'d> {
    field: Field,
    /// Stack depth of the element (its children are deeper).
    depth: usize,
    /// The text so far: a slice of the document while it is one piece of text as written,
    /// owned once a second piece, a reference or markup is added.
    buf: Cow<'d, str>,
    /// Media type of the content (`text/plain`, `text/html`, `application/xhtml+xml` ...).
    ctype: Cow<'static, str>,
    base64: bool,
    /// RSS `category` domain / Atom scheme.
    scheme: Option<String>,
    /// Category label (media:category).
    label: Option<String>,
    /// `rel` of a link given as element text.
    rel: Option<String>,
    /// Byte range of an enclosing `<div>` in xhtml content, while it still wraps everything.
    div: DivWrap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DivWrap {
    /// Nothing at the top level yet.
    Empty,
    /// A top-level `<div>` is open; its content starts at this offset.
    Open(usize),
    /// The top-level `<div>` closed; content is `start..end`.
    Closed(usize, usize),
    /// Something else is at the top level: keep everything.
    No,
}

/// Where the reader is, saved per element so a mismatched end tag restores it exactly.
#[derive(Debug, Clone, Copy, Default)]
struct Scope {
    in_entry: bool,
    in_image: bool,
    /// Inside an element whose children are skipped (textinput, source, contributor ...).
    ignore: bool,
    /// Inside an author-like person construct (name/email/uri children apply to it).
    in_person: bool,
}

struct Open {
    /// Range of the element's qualified name in `Reader::names`.
    name: (usize, usize),
    saved: Scope,
    base_pushed: bool,
    ns_mark: usize,
    /// The element created an entry / person whose end needs finishing.
    closes: Closes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closes {
    Nothing,
    Entry,
    Person,
}

struct FeedReader<'u, 'd> {
    out: ParsedFeed,
    limits: Limits,
    names: String,
    stack: Vec<Open>,
    scope: Scope,
    prefixes: Vec<(String, Ns)>,
    bases: Vec<Url>,
    doc_base: &'u DocumentBase<'u>,
    cap: Option<Capture<'d>>,
    root_seen: bool,
    version_from_doctype_netscape: bool,
    utf8_document: bool,
    /// The person being filled (pushed on the feed or the current entry).
    person_has_parts: bool,
    feed_link_set: bool,
    /// Inline styles already filtered in this document.
    styles: StyleCache,
}

fn set_bozo(out: &mut ParsedFeed, why: impl Into<String>) {
    if !out.bozo {
        out.bozo = true;
        out.bozo_exception = Some(why.into());
    }
}

/// Parses an XML feed document.
pub(crate) fn parse_xml(
    text: &str,
    doc_base: &DocumentBase<'_>,
    limits: Limits,
    mut out: ParsedFeed,
) -> Result<ParsedFeed, ParseError> {
    let utf8_document = out.encoding == "utf-8";
    let cleaned;
    let text = if has_illegal_control(text.as_bytes()) {
        set_bozo(&mut out, "illegal control character in document");
        cleaned = text
            .chars()
            .filter(|&c| c >= ' ' || c == '\t' || c == '\n' || c == '\r')
            .collect::<String>();
        cleaned.as_str()
    } else {
        text
    };
    let mut r = FeedReader {
        out,
        limits,
        names: String::with_capacity(256),
        stack: Vec::with_capacity(16),
        scope: Scope::default(),
        prefixes: Vec::new(),
        bases: Vec::new(),
        doc_base,
        cap: None,
        root_seen: false,
        version_from_doctype_netscape: false,
        utf8_document,
        person_has_parts: false,
        feed_link_set: false,
        styles: StyleCache::default(),
    };
    r.run(text)?;
    if !r.root_seen {
        return Err(ParseError::NotAFeed("no root element".into()));
    }
    if r.out.format == FeedFormat::Unknown
        && r.out.items.is_empty()
        && r.out.feed.title.is_none()
        && r.out.feed.link.is_none()
    {
        return Err(ParseError::NotAFeed(
            "no RSS, RDF, Atom or CDF root element and no feed content".into(),
        ));
    }
    Ok(r.out)
}

impl<'u, 'd> FeedReader<'u, 'd> {
    fn run(&mut self, text: &'d str) -> Result<(), ParseError> {
        let mut reader = Reader::from_str(text);
        {
            let c = reader.config_mut();
            c.check_end_names = false;
            c.allow_dangling_amp = true;
            c.allow_unmatched_ends = true;
            c.check_comments = false;
            c.expand_empty_elements = false;
            c.trim_text(false);
        }
        let mut errors = 0u32;
        let mut last_error_pos = u64::MAX;
        loop {
            let depth = self.stack.len();
            let at_top = self.cap.as_ref().is_some_and(|c| c.depth == depth);
            match reader.read_event() {
                Ok(Event::Start(e)) => self.start(text, &e, false)?,
                Ok(Event::Empty(e)) => self.start(text, &e, true)?,
                Ok(Event::End(e)) => {
                    let name = e.name();
                    let name = doc_str(text, name.as_ref());
                    self.end_named(name);
                }
                Ok(Event::Text(t)) => {
                    if let Some(cap) = self.cap.as_mut() {
                        push_doc_text(cap, text, t.into_inner(), at_top);
                    }
                }
                Ok(Event::CData(t)) => {
                    if let Some(cap) = self.cap.as_mut() {
                        push_doc_text(cap, text, t.into_inner(), at_top);
                    }
                }
                Ok(Event::GeneralRef(r)) => {
                    let name = doc_str(text, &r);
                    let resolved = resolve_reference(name);
                    match &resolved {
                        Some((_, true)) => {}
                        // Only the first problem is kept: no message is formatted after it.
                        _ if self.out.bozo => {}
                        Some((_, false)) => {
                            let why = format!("undeclared entity &{name}; (HTML entity)");
                            set_bozo(&mut self.out, why);
                        }
                        None => {
                            let why = format!("undefined entity &{name};");
                            set_bozo(&mut self.out, why);
                        }
                    }
                    if let Some(cap) = self.cap.as_mut() {
                        match resolved {
                            Some((t, _)) => {
                                let mut utf8 = [0; 4];
                                let t = t.as_str(&mut utf8);
                                match t.as_bytes() {
                                    // `&lt;`, `&amp;` ...: one ASCII character, pushed as such
                                    // (what push_text does with it, without its copy).
                                    &[b] if b != b'\r' && !is_xhtml(&cap.ctype) => {
                                        note_top_text(cap, t, at_top);
                                        cap.buf.to_mut().push(char::from(b));
                                    }
                                    _ => push_text(cap, t, at_top),
                                }
                            }
                            None => {
                                let buf = cap.buf.to_mut();
                                if is_xhtml(&cap.ctype) {
                                    buf.push_str("&amp;");
                                } else {
                                    buf.push('&');
                                }
                                buf.push_str(name);
                                buf.push(';');
                            }
                        }
                    }
                }
                Ok(Event::DocType(d)) => {
                    let d = doc_str(text, &d);
                    if d.contains("<!ENTITY") {
                        return Err(ParseError::EntityExpansion);
                    }
                    if d.to_ascii_lowercase().contains("netscape") {
                        self.version_from_doctype_netscape = true;
                    }
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => {
                    let pos = reader.error_position();
                    set_bozo(&mut self.out, format!("XML error at byte {pos}: {e}"));
                    errors += 1;
                    if pos == last_error_pos || errors > 1000 {
                        break;
                    }
                    last_error_pos = pos;
                }
            }
        }
        if !self.stack.is_empty() {
            set_bozo(&mut self.out, "document ended with unclosed elements");
            while !self.stack.is_empty() {
                self.pop_one();
            }
        }
        if self.version_from_doctype_netscape && self.out.format == FeedFormat::Rss091U {
            self.out.format = FeedFormat::Rss091N;
        }
        Ok(())
    }

    fn current_base(&self) -> Option<&Url> {
        self.bases.last().or_else(|| self.doc_base.get())
    }

    fn resolve(&self, href: &str) -> String {
        resolve_url_with(|| self.current_base(), href)
    }

    fn resolve_with(base: LazyBase<'_, '_>, href: &str) -> String {
        resolve_url_with(base, href)
    }

    fn lookup_prefix(&self, prefix: &str) -> Ns {
        for (p, ns) in self.prefixes.iter().rev() {
            if p == prefix {
                return *ns;
            }
        }
        ns_from_prefix(prefix)
    }

    fn start(&mut self, doc: &str, e: &BytesStart<'_>, empty: bool) -> Result<(), ParseError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(ParseError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        let qname_bytes = e.name();
        let qname = doc_str(doc, qname_bytes.as_ref());
        let ns_mark = self.prefixes.len();

        // Attributes: namespaces, xml:base, and the rest kept for the handlers.
        let mut attrs: Vec<(&str, Cow<'_, str>)> = Vec::new();
        let mut base_pushed = false;
        for a in e.html_attributes().with_checks(false).flatten() {
            let key = doc_str(doc, a.key.into_inner());
            let raw = match a.value {
                Cow::Borrowed(b) => doc_str(doc, b),
                Cow::Owned(_) => "",
            };
            let (value, bozo) = unescape(raw);
            if bozo {
                set_bozo(
                    &mut self.out,
                    format!("bad entity reference in attribute {key}"),
                );
            }
            if let Some(p) = key.strip_prefix("xmlns:") {
                self.prefixes.push((p.to_string(), ns_from_uri(&value)));
                if !self.root_seen {
                    self.note_root_namespace(Some(p), &value);
                }
                if self.cap.is_some() {
                    attrs.push((key, value));
                }
            } else if key == "xmlns" {
                if !self.root_seen {
                    self.note_root_namespace(None, &value);
                }
                if self.cap.is_some() && value.as_ref() != "http://www.w3.org/1999/xhtml" {
                    attrs.push((key, value));
                }
            } else if key == "xml:base" {
                let joined = match self.current_base() {
                    Some(b) => b.join(value.trim()).ok(),
                    None => Url::parse(value.trim()).ok(),
                };
                if let Some(u) = joined {
                    if matches!(u.scheme(), "http" | "https" | "ftp" | "file") {
                        self.bases.push(u);
                        base_pushed = true;
                    }
                }
            } else {
                attrs.push((key, value));
            }
        }

        // Names are short: a byte loop finds the colon faster than a char searcher.
        let (prefix, local) = match qname.bytes().position(|b| b == b':') {
            Some(colon) => (
                qname.get(..colon).unwrap_or(""),
                qname.get(colon + 1..).unwrap_or(""),
            ),
            None => ("", qname),
        };
        let ns = self.lookup_prefix(prefix);
        let mut lower_buf = [0u8; 32];
        let local_lower: &str = if local.len() > lower_buf.len() {
            ""
        } else if !local.bytes().any(|b| b.is_ascii_uppercase()) {
            // Already lower-case (the usual case): no copy, no validation.
            local
        } else {
            let lb = lower_buf.get_mut(..local.len()).unwrap_or(&mut []);
            lb.copy_from_slice(local.as_bytes());
            lb.make_ascii_lowercase();
            std::str::from_utf8(lb).unwrap_or("")
        };

        let name_start = self.names.len();
        self.names.push_str(qname);
        let saved = self.scope;
        self.stack.push(Open {
            name: (name_start, self.names.len()),
            saved,
            base_pushed,
            ns_mark,
            closes: Closes::Nothing,
        });

        if !self.root_seen {
            self.root_seen = true;
            self.note_root(ns, local_lower, &attrs);
        }

        // Inside captured markup: serialise the child element.
        if let Some(cap) = self.cap.as_mut() {
            if cap.field.holds_markup() {
                if !cap.ctype.ends_with("xml") {
                    if local_lower == "div" {
                        if empty {
                            self.discard_top();
                        }
                        return Ok(());
                    }
                    cap.ctype = Cow::Borrowed("application/xhtml+xml");
                }
                let depth = self.stack.len();
                if depth == cap.depth + 1 {
                    cap.div = match (cap.div, local_lower) {
                        (DivWrap::Empty, "div") if !empty => DivWrap::Open(usize::MAX),
                        _ => DivWrap::No,
                    };
                }
                let buf = cap.buf.to_mut();
                buf.push('<');
                buf.push_str(local);
                if !prefix.is_empty() && !attrs.iter().any(|(k, _)| *k == "xmlns") {
                    match local_lower {
                        "svg" => buf.push_str(" xmlns=\"http://www.w3.org/2000/svg\""),
                        "math" => buf.push_str(" xmlns=\"http://www.w3.org/1998/Math/MathML\""),
                        _ => {}
                    }
                }
                for (k, v) in &attrs {
                    buf.push(' ');
                    buf.push_str(k);
                    buf.push_str("=\"");
                    escape_attr_into(v, buf);
                    buf.push('"');
                }
                if empty {
                    if is_void(local_lower) {
                        buf.push_str(" />");
                    } else {
                        buf.push_str("></");
                        buf.push_str(local);
                        buf.push('>');
                    }
                } else {
                    buf.push('>');
                    if cap.div == DivWrap::Open(usize::MAX) {
                        cap.div = DivWrap::Open(buf.len());
                    }
                }
                if empty {
                    self.discard_top();
                }
                return Ok(());
            }
            // A plain-text field with child elements: interpret the children instead.
            self.cap = None;
        }

        if self.scope.ignore {
            if empty {
                self.pop_one();
            }
            return Ok(());
        }

        self.dispatch(ns, local_lower, &attrs, empty);
        if empty {
            self.pop_one();
        }
        Ok(())
    }

    fn note_root_namespace(&mut self, prefix: Option<&str>, uri: &str) {
        if self.out.format != FeedFormat::Unknown {
            return;
        }
        let u = uri.trim();
        if prefix.is_none() && u.eq_ignore_ascii_case("http://my.netscape.com/rdf/simple/0.9/") {
            self.out.format = FeedFormat::Rss090;
        } else if u.eq_ignore_ascii_case("http://purl.org/rss/1.0/") {
            self.out.format = FeedFormat::Rss10;
        } else if u.eq_ignore_ascii_case("http://www.w3.org/2005/atom") {
            self.out.format = FeedFormat::Atom10;
        }
    }

    fn note_root(&mut self, ns: Ns, local: &str, attrs: &[(&str, Cow<'_, str>)]) {
        let attr = |k: &str| find_attr(attrs, k);
        match (ns, local) {
            (Ns::Core, "rss") => {
                // The root element decides; an Atom namespace declared on it does not.
                {
                    let v = attr("version").unwrap_or("").trim();
                    self.out.format = match v {
                        "0.91" => FeedFormat::Rss091U,
                        "0.92" => FeedFormat::Rss092,
                        "0.93" => FeedFormat::Rss093,
                        "0.94" => FeedFormat::Rss094,
                        v if v.starts_with("2.") => FeedFormat::Rss20,
                        _ => FeedFormat::Rss,
                    };
                }
            }
            (Ns::Core, "feed") => {
                let v = attr("version").unwrap_or("").trim();
                self.out.format = match v {
                    "0.1" | "0.01" => FeedFormat::Atom01,
                    "0.2" | "0.02" => FeedFormat::Atom02,
                    "0.3" | "0.03" => FeedFormat::Atom03,
                    _ if self.out.format == FeedFormat::Atom10 => FeedFormat::Atom10,
                    _ => FeedFormat::Atom,
                };
            }
            (Ns::Core, "channel") if self.out.format == FeedFormat::Unknown => {
                self.out.format = FeedFormat::Cdf;
            }
            _ => {}
        }
        for (k, v) in attrs {
            if *k == "xml:lang" || *k == "lang" {
                let v = v.trim();
                if !v.is_empty() && matches!(local, "rss" | "feed" | "rdf") {
                    self.out.feed.language = Some(v.replace('_', "-"));
                }
            }
        }
    }

    fn is_atom(&self) -> bool {
        matches!(
            self.out.format,
            FeedFormat::Atom
                | FeedFormat::Atom01
                | FeedFormat::Atom02
                | FeedFormat::Atom03
                | FeedFormat::Atom10
        )
    }

    fn begin(&mut self, field: Field, default_type: &str, attrs: &[(&str, Cow<'_, str>)]) {
        let attr = |k: &str| find_attr(attrs, k);
        let ctype = map_content_type(attr("type").unwrap_or(default_type));
        let base64 = if attr("mode") == Some("base64") {
            true
        } else if ctype.starts_with("text/") || ctype.ends_with("xml") {
            false
        } else {
            field.holds_markup()
        };
        let scheme = attr("domain")
            .or_else(|| attr("scheme"))
            .map(str::to_string);
        self.cap = Some(Capture {
            field,
            depth: self.stack.len(),
            buf: Cow::Borrowed(""),
            ctype,
            base64,
            scheme,
            label: None,
            rel: attr("rel").map(|r| r.trim().to_string()),
            div: DivWrap::Empty,
        });
    }

    fn entry(&mut self) -> Option<&mut Entry> {
        if self.scope.in_entry {
            self.out.items.last_mut()
        } else {
            None
        }
    }

    fn dispatch(&mut self, ns: Ns, local: &str, attrs: &[(&str, Cow<'_, str>)], empty: bool) {
        let attr = |k: &str| find_attr(attrs, k);
        let in_entry = self.scope.in_entry;
        let in_image = self.scope.in_image;
        if in_image && ns == Ns::Core {
            let f = match local {
                "url" | "href" => Some(Field::ImageUrl),
                "title" => Some(Field::ImageTitle),
                "link" => Some(Field::ImageLink),
                "width" => Some(Field::ImageWidth),
                "height" => Some(Field::ImageHeight),
                "description" => Some(Field::ImageDescription),
                _ => None,
            };
            if let Some(f) = f {
                self.begin(f, "text/plain", attrs);
                return;
            }
        }
        if self.scope.in_person && ns == Ns::Core {
            match local {
                "name" => return self.begin(Field::PersonName, "text/plain", attrs),
                "email" => return self.begin(Field::PersonEmail, "text/plain", attrs),
                "uri" | "url" | "homepage" => {
                    return self.begin(Field::PersonUri, "text/plain", attrs)
                }
                _ => {}
            }
        }
        match (ns, local) {
            (Ns::Core, "item") | (Ns::Core, "entry") => {
                self.out.items.push(Entry::default());
                self.scope.in_entry = true;
                self.scope.in_image = false;
                if let Some(o) = self.stack.last_mut() {
                    o.closes = Closes::Entry;
                }
                // CDF: attributes carry the link and date.
                if let Some(h) = attr("href") {
                    let h = self.resolve(h);
                    if let Some(en) = self.out.items.last_mut() {
                        en.links.push(alternate_link(h.clone()));
                        en.link = Some(h);
                    }
                }
                if let Some(d) = attr("lastmod") {
                    let d = parse_date(d);
                    if let Some(en) = self.out.items.last_mut() {
                        en.updated = d;
                    }
                }
            }
            (Ns::Core, "channel") if self.out.format == FeedFormat::Cdf => {
                if let Some(h) = attr("href") {
                    let h = self.resolve(h);
                    self.out.feed.links.push(alternate_link(h.clone()));
                    self.out.feed.link = Some(h);
                }
                if let Some(d) = attr("lastmod") {
                    self.out.feed.updated = parse_date(d);
                }
            }
            (Ns::Core, "image") if !in_entry => {
                self.scope.in_image = true;
                if self.out.feed.image.is_none() {
                    self.out.feed.image = Some(Image::default());
                }
                if let Some(h) = attr("rdf:resource").or_else(|| attr("href")) {
                    let h = self.resolve(h);
                    if let Some(img) = self.out.feed.image.as_mut() {
                        img.url.get_or_insert(h);
                    }
                }
            }
            (Ns::Core, "textinput") | (Ns::Core, "source") | (Ns::Core, "contributor") => {
                self.scope.ignore = true;
            }
            (Ns::Core, "image") if in_entry => {
                self.scope.ignore = true;
            }
            (Ns::Core, "title") => self.begin(Field::Title, "text/plain", attrs),
            (Ns::Dc, "title") | (Ns::Media, "title") => {
                let has_title = if in_entry {
                    self.out.items.last().is_some_and(|e| e.title.is_some())
                } else {
                    self.out.feed.title.is_some()
                };
                if !has_title {
                    self.begin(Field::Title, "text/plain", attrs)
                }
            }
            (Ns::Itunes, "subtitle") if !in_entry && self.out.feed.description.is_none() => {
                self.begin(Field::Subtitle, "text/plain", attrs)
            }
            (Ns::Itunes, "summary") | (Ns::Media, "description") => {
                if in_entry {
                    if self
                        .out
                        .items
                        .last()
                        .is_some_and(|e| e.summary_html.is_none())
                    {
                        self.begin(Field::Summary, "text/plain", attrs)
                    }
                } else if self.out.feed.description.is_none() {
                    self.begin(Field::Subtitle, "text/plain", attrs)
                }
            }
            (Ns::Media, "category") => {
                let scheme = attr("scheme")
                    .unwrap_or("http://search.yahoo.com/mrss/category_schema")
                    .to_string();
                self.begin(Field::Category, "text/plain", attrs);
                if let Some(c) = self.cap.as_mut() {
                    c.scheme = Some(scheme);
                    c.label = attr("label").map(str::to_string);
                }
            }
            (Ns::Core, "tags") => self.begin(Field::Tags, "text/plain", attrs),
            (Ns::Core, "subtitle") | (Ns::Core, "tagline") if !in_entry => {
                self.begin(Field::Subtitle, "text/plain", attrs)
            }
            (Ns::Core, "description") | (Ns::Core, "abstract") => {
                if in_entry {
                    let f = self.summary_or_content();
                    self.begin(f, "text/html", attrs)
                } else {
                    self.begin(Field::Subtitle, "text/html", attrs)
                }
            }
            (Ns::Core, "summary") => {
                if in_entry {
                    let f = self.summary_or_content();
                    self.begin(f, "text/plain", attrs)
                } else {
                    self.begin(Field::Subtitle, "text/plain", attrs)
                }
            }
            (Ns::Core, "content") if in_entry => self.begin(Field::Content, "text/plain", attrs),
            (Ns::Content, "encoded") if in_entry => self.begin(Field::Content, "text/html", attrs),
            (Ns::Core, "fullitem") if in_entry => self.begin(Field::Content, "text/html", attrs),
            (Ns::Core, "body") | (Ns::Xhtml, "body") if in_entry => {
                self.begin(Field::Content, "application/xhtml+xml", attrs)
            }
            (Ns::Core, "rights") | (Ns::Core, "copyright") | (Ns::Dc, "rights") => {
                self.begin(Field::Rights, "text/plain", attrs)
            }
            (Ns::Core, "link") => self.link_start(attrs, empty),
            (Ns::Core, "id") => self.begin(Field::Id, "text/plain", attrs),
            (Ns::Core, "guid") => {
                let permalink = !attr("isPermaLink")
                    .or_else(|| attr("ispermalink"))
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
                if let Some(en) = self.entry() {
                    en.id_is_permalink = Some(permalink);
                }
                self.begin(Field::Guid, "text/plain", attrs)
            }
            (Ns::Core, "pubdate")
            | (Ns::Core, "published")
            | (Ns::Core, "issued")
            | (Ns::Dcterms, "issued") => self.begin(Field::Published, "text/plain", attrs),
            (Ns::Core, "updated")
            | (Ns::Core, "modified")
            | (Ns::Core, "lastbuilddate")
            | (Ns::Dc, "date")
            | (Ns::Dcterms, "modified") => self.begin(Field::Updated, "text/plain", attrs),
            (Ns::Core, "language") | (Ns::Dc, "language") => {
                self.begin(Field::Language, "text/plain", attrs)
            }
            (Ns::Core, "generator") if !in_entry => {
                let uri = attr("uri").or_else(|| attr("url")).map(|u| self.resolve(u));
                let _ = uri;
                self.begin(Field::Generator, "text/plain", attrs)
            }
            (Ns::Core, "author")
            | (Ns::Core, "managingeditor")
            | (Ns::Dc, "creator")
            | (Ns::Dc, "author")
            | (Ns::Itunes, "author") => {
                self.push_person();
                if let Some(o) = self.stack.last_mut() {
                    o.closes = Closes::Person;
                }
                self.scope.in_person = true;
                self.begin(Field::PersonText, "text/plain", attrs)
            }
            (Ns::Core, "category") => {
                if let Some(term) = attr("term") {
                    let c = Category {
                        term: Some(term.to_string()),
                        scheme: attr("scheme").map(str::to_string),
                        label: attr("label").map(str::to_string),
                    };
                    self.add_category(c);
                } else {
                    self.begin(Field::Category, "text/plain", attrs)
                }
            }
            (Ns::Dc, "subject") => self.begin(Field::DcSubject, "text/plain", attrs),
            (Ns::Itunes, "category") => {
                if let Some(t) = attr("text") {
                    self.add_category(Category {
                        term: Some(t.to_string()),
                        scheme: Some("http://www.itunes.com/".into()),
                        label: None,
                    });
                }
            }
            (Ns::Itunes, "keywords") => self.begin(Field::ItunesKeywords, "text/plain", attrs),
            (Ns::Itunes, "image") => {
                if let Some(h) = attr("href") {
                    let h = self.resolve(h);
                    if !in_entry {
                        let img = self.out.feed.image.get_or_insert_with(Image::default);
                        img.url.get_or_insert(h);
                    }
                }
            }
            (Ns::Core, "enclosure") if in_entry => {
                if let Some(u) = attr("url").or_else(|| attr("href")) {
                    let url = self.resolve(u);
                    let mime = attr("type").map(str::to_string);
                    let length = attr("length").map(str::to_string);
                    let enc = Enclosure {
                        url: url.clone(),
                        mime_type: mime.clone(),
                        length: length.as_deref().and_then(|l| l.trim().parse().ok()),
                    };
                    if let Some(en) = self.entry() {
                        en.links.push(Link {
                            href: url,
                            rel: Some(Cow::Borrowed("enclosure")),
                            mime_type: mime.map(Cow::Owned),
                            length,
                            ..Link::default()
                        });
                        en.enclosures.push(enc);
                    }
                }
            }
            (Ns::Core, "comments") if in_entry => self.begin(Field::Comments, "text/plain", attrs),
            (Ns::Core, "icon") if !in_entry => self.begin(Field::Icon, "text/plain", attrs),
            (Ns::Core, "logo") if !in_entry => self.begin(Field::Logo, "text/plain", attrs),
            (Ns::Core, "ttl") if !in_entry => self.begin(Field::Ttl, "text/plain", attrs),
            (Ns::Core, "hour") if !in_entry => self.begin(Field::SkipHour, "text/plain", attrs),
            (Ns::Core, "day") if !in_entry => self.begin(Field::SkipDay, "text/plain", attrs),
            _ => {}
        }
    }

    /// A second summary-like element in an entry that has no content yet becomes content.
    fn summary_or_content(&self) -> Field {
        match self.out.items.last() {
            Some(e) if e.summary_html.is_some() && e.content_html.is_none() => Field::Content,
            _ => Field::Summary,
        }
    }

    fn add_category(&mut self, c: Category) {
        let list = if self.scope.in_entry {
            match self.out.items.last_mut() {
                Some(e) => &mut e.categories,
                None => return,
            }
        } else {
            &mut self.out.feed.categories
        };
        if !list.contains(&c) {
            list.push(c);
        }
    }

    fn push_person(&mut self) {
        self.person_has_parts = false;
        if self.scope.in_entry {
            if let Some(e) = self.out.items.last_mut() {
                e.authors.push(Person::default());
            }
        } else {
            self.out.feed.authors.push(Person::default());
        }
    }

    fn person(&mut self) -> Option<&mut Person> {
        if self.scope.in_entry {
            self.out.items.last_mut()?.authors.last_mut()
        } else {
            self.out.feed.authors.last_mut()
        }
    }

    fn link_start(&mut self, attrs: &[(&str, Cow<'_, str>)], empty: bool) {
        let attr = |k: &str| find_attr(attrs, k);
        let href = attr("href").or_else(|| attr("url")).or_else(|| attr("uri"));
        let Some(href) = href else {
            if !empty {
                self.begin(Field::Link, "text/plain", attrs);
            }
            return;
        };
        let rel = common_value(attr("rel").unwrap_or("alternate").trim(), COMMON_RELS);
        let mime = match attr("type") {
            Some(t) => common_value(t, COMMON_TYPES),
            None if rel == "self" => Cow::Borrowed("application/atom+xml"),
            None => Cow::Borrowed("text/html"),
        };
        let is_html = is_html_content_type(&mime);
        let href = self.resolve(href);
        let link = Link {
            href: href.clone(),
            rel: Some(rel),
            mime_type: Some(mime),
            hreflang: attr("hreflang").map(str::to_string),
            title: attr("title").map(str::to_string),
            length: attr("length").map(str::to_string),
        };
        let rel = link.rel.as_deref().unwrap_or("");
        if let Some(en) = self.entry() {
            if rel == "enclosure" {
                en.enclosures.push(Enclosure {
                    url: href.clone(),
                    mime_type: link.mime_type.as_deref().map(str::to_string),
                    length: link.length.as_deref().and_then(|l| l.trim().parse().ok()),
                });
            }
            if rel == "alternate" && is_html && en.link.is_none() {
                en.link = Some(href);
            }
            en.links.push(link);
        } else if !self.scope.in_entry {
            if rel == "hub" && self.out.feed.hub.is_none() {
                self.out.feed.hub = Some(href.clone());
            }
            if rel == "alternate" && is_html && !self.feed_link_set {
                self.out.feed.link = Some(href);
                self.feed_link_set = true;
            }
            self.out.feed.links.push(link);
        }
    }

    fn end_named(&mut self, qname: &str) {
        let found = self
            .stack
            .iter()
            .rposition(|o| self.names.get(o.name.0..o.name.1) == Some(qname));
        match found {
            Some(i) => {
                if i + 1 != self.stack.len() {
                    set_bozo(&mut self.out, format!("mismatched end tag </{qname}>"));
                }
                while self.stack.len() > i {
                    self.pop_one();
                }
            }
            None => set_bozo(
                &mut self.out,
                format!("end tag </{qname}> without a start tag"),
            ),
        }
    }

    /// Removes the innermost element without running its end handling (an empty element
    /// already written out in full).
    fn discard_top(&mut self) {
        if let Some(open) = self.stack.pop() {
            self.names.truncate(open.name.0);
            self.prefixes.truncate(open.ns_mark);
            if open.base_pushed {
                self.bases.pop();
            }
            self.scope = open.saved;
        }
    }

    fn pop_one(&mut self) {
        let depth = self.stack.len();
        let Some(open) = self.stack.pop() else {
            return;
        };
        // Markup inside a captured field: close the serialised element.
        let mut finished = None;
        if let Some(cap) = self.cap.as_mut() {
            if depth > cap.depth {
                let qname = self.names.get(open.name.0..open.name.1).unwrap_or("");
                let local = match qname.bytes().rposition(|b| b == b':') {
                    Some(colon) => qname.get(colon + 1..).unwrap_or(""),
                    None => qname,
                };
                let skipped_div = local.eq_ignore_ascii_case("div") && !cap.ctype.ends_with("xml");
                if cap.field.holds_markup() && !skipped_div {
                    if depth == cap.depth + 1 {
                        if let DivWrap::Open(start) = cap.div {
                            cap.div = DivWrap::Closed(start, cap.buf.len());
                        }
                    }
                    let buf = cap.buf.to_mut();
                    buf.push_str("</");
                    buf.push_str(local);
                    buf.push('>');
                }
            } else if depth == cap.depth {
                finished = self.cap.take();
            }
        }
        if let Some(cap) = finished {
            self.finish(cap);
        }
        match open.closes {
            Closes::Entry => self.finish_entry(),
            Closes::Person => self.finish_person(),
            Closes::Nothing => {}
        }
        self.names.truncate(open.name.0);
        self.prefixes.truncate(open.ns_mark);
        if open.base_pushed {
            self.bases.pop();
        }
        self.scope = open.saved;
    }

    fn finish_entry(&mut self) {
        if let Some(en) = self.out.items.last_mut() {
            if en.link.is_none() && en.id_is_permalink == Some(true) {
                if let Some(id) = &en.id {
                    if id.starts_with("http://") || id.starts_with("https://") {
                        en.link = Some(id.clone());
                    }
                }
            }
        }
    }

    fn finish_person(&mut self) {
        // Drop a person construct that ended up empty.
        let empty = self.person().is_some_and(|p| {
            p.name.is_none() && p.email.is_none() && p.uri.is_none() && p.raw.is_none()
        });
        if empty {
            if self.scope.in_entry {
                if let Some(e) = self.out.items.last_mut() {
                    e.authors.pop();
                }
            } else {
                self.out.feed.authors.pop();
            }
        }
    }

    fn finish(&mut self, cap: Capture<'d>) {
        // The base in force is the one the captured element started with: its children's
        // xml:base entries are popped before it ends. Lent out instead of cloned per field.
        let bases = std::mem::take(&mut self.bases);
        let doc_base = self.doc_base;
        self.finish_with(cap, &|| bases.last().or_else(|| doc_base.get()));
        self.bases = bases;
    }

    fn finish_with(&mut self, cap: Capture<'d>, base: LazyBase<'_, '_>) {
        let Capture {
            field,
            buf,
            ctype,
            base64,
            scheme,
            label,
            rel,
            div,
            ..
        } = cap;
        let mut value: Cow<'d, str> = match div {
            DivWrap::Closed(s, e) if self.out.format == FeedFormat::Atom10 && is_xhtml(&ctype) => {
                let before = buf.get(..s).unwrap_or("");
                let after = buf.get(e..).unwrap_or("");
                if after.trim() == "</div>" && before.trim_start().starts_with("<div") {
                    Cow::Owned(buf.get(s..e).unwrap_or("").to_string())
                } else {
                    buf
                }
            }
            _ => buf,
        };
        match &mut value {
            Cow::Borrowed(v) => *v = v.trim(),
            Cow::Owned(v) => trim_in_place(v),
        }
        if field.holds_markup() {
            let mut ctype = ctype;
            if base64 {
                let compact: String = value.split_ascii_whitespace().collect();
                if let Ok(bytes) =
                    base64::engine::general_purpose::STANDARD.decode(compact.as_bytes())
                {
                    if let Ok(s) = String::from_utf8(bytes) {
                        value = Cow::Owned(s);
                    }
                }
            }
            if !self.is_atom() && ctype == "text/plain" && looks_like_html(&value) {
                ctype = Cow::Borrowed("text/html");
            }
            let value = repair_cow(value, self.utf8_document);
            let value = if is_html_type(&ctype) {
                sanitize_html_cow(value, base, &mut self.styles)
            } else {
                value.into_owned()
            };
            self.store_content(field, value, ctype);
            return;
        }
        let value = repair_cow(value, self.utf8_document);
        let in_entry = self.scope.in_entry;
        match field {
            Field::Link => {
                let v = fix_query_entities(&value);
                let href = Self::resolve_with(base, &v);
                let rel = rel.unwrap_or_else(|| "alternate".into());
                if let Some(en) = self.entry() {
                    if rel == "alternate" {
                        en.links.push(alternate_link(href.clone()));
                        en.link = Some(href);
                    } else {
                        en.links.push(Link {
                            href,
                            rel: Some(Cow::Owned(rel)),
                            mime_type: Some(Cow::Borrowed("text/html")),
                            ..Link::default()
                        });
                    }
                } else if !in_entry {
                    self.out.feed.links.push(alternate_link(href.clone()));
                    self.out.feed.link = Some(href);
                    self.feed_link_set = true;
                }
            }
            Field::Id | Field::Guid => {
                let permalink = field == Field::Guid
                    && self
                        .entry()
                        .and_then(|e| e.id_is_permalink)
                        .unwrap_or(false);
                let v = if permalink {
                    Self::resolve_with(base, &value)
                } else {
                    value.into_owned()
                };
                if let Some(en) = self.entry() {
                    en.id = Some(v);
                } else if !in_entry {
                    self.out.feed.id = Some(v);
                }
            }
            Field::Published => {
                let d = parse_date(&value);
                if let Some(en) = self.entry() {
                    en.published = d;
                } else if !in_entry {
                    self.out.feed.published = d;
                }
            }
            Field::Updated => {
                let d = parse_date(&value);
                if let Some(en) = self.entry() {
                    en.updated = d;
                } else if !in_entry {
                    self.out.feed.updated = d;
                }
            }
            Field::Language => {
                if !in_entry && !value.is_empty() {
                    self.out.feed.language = Some(value.into_owned());
                }
            }
            Field::Generator => {
                if !in_entry {
                    self.out.feed.generator = Some(value.into_owned());
                }
            }
            Field::PersonText => {
                if !self.person_has_parts && !value.is_empty() {
                    let parsed = split_person(&value);
                    if let Some(p) = self.person() {
                        p.name = parsed.name;
                        p.email = parsed.email;
                        p.raw = Some(value.into_owned());
                    }
                }
            }
            Field::PersonName | Field::PersonEmail | Field::PersonUri => {
                self.person_has_parts = true;
                let uri = if field == Field::PersonUri {
                    Some(Self::resolve_with(base, &value))
                } else {
                    None
                };
                if let Some(p) = self.person() {
                    match field {
                        Field::PersonName => p.name = Some(value.into_owned()),
                        Field::PersonEmail => p.email = Some(value.into_owned()),
                        _ => p.uri = uri,
                    }
                    p.raw = None;
                }
            }
            Field::Category | Field::DcSubject => {
                if !value.is_empty() || scheme.is_some() {
                    self.add_category(Category {
                        term: if value.is_empty() {
                            None
                        } else {
                            Some(value.into_owned())
                        },
                        scheme,
                        label,
                    });
                }
            }
            Field::Tags => {
                for term in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    self.add_category(Category {
                        term: Some(term.to_string()),
                        scheme: None,
                        label: None,
                    });
                }
            }
            Field::ItunesKeywords => {
                for term in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    self.add_category(Category {
                        term: Some(term.to_string()),
                        scheme: Some("http://www.itunes.com/".into()),
                        label: None,
                    });
                }
            }
            Field::Comments => {
                let v = Self::resolve_with(base, &value);
                if let Some(en) = self.entry() {
                    en.comments = Some(v);
                }
            }
            Field::ImageUrl | Field::ImageLink | Field::ImageWidth | Field::ImageHeight => {
                let resolved = Self::resolve_with(base, &value);
                if let Some(img) = self.out.feed.image.as_mut() {
                    match field {
                        Field::ImageUrl => img.url = Some(resolved),
                        Field::ImageLink => img.link = Some(resolved),
                        Field::ImageWidth => img.width = value.trim().parse().ok(),
                        _ => img.height = value.trim().parse().ok(),
                    }
                }
            }
            Field::Icon => self.out.feed.icon = Some(Self::resolve_with(base, &value)),
            Field::Logo => self.out.feed.logo = Some(Self::resolve_with(base, &value)),
            Field::Ttl => self.out.feed.ttl_minutes = value.trim().parse().ok(),
            Field::SkipHour => {
                if let Ok(h) = value.trim().parse::<u8>() {
                    if h < 24 && !self.out.feed.skip_hours.contains(&h) {
                        self.out.feed.skip_hours.push(h);
                    }
                }
            }
            Field::SkipDay => {
                if !value.is_empty() && !self.out.feed.skip_days.iter().any(|d| *d == value) {
                    self.out.feed.skip_days.push(value.into_owned());
                }
            }
            Field::Title
            | Field::Subtitle
            | Field::Summary
            | Field::Content
            | Field::Rights
            | Field::ImageDescription
            | Field::ImageTitle => {}
        }
    }

    fn store_content(&mut self, field: Field, value: String, ctype: Cow<'static, str>) {
        let in_entry = self.scope.in_entry;
        if self.scope.in_image {
            if let Some(img) = self.out.feed.image.as_mut() {
                match field {
                    Field::ImageTitle | Field::Title => img.title = Some(value),
                    Field::ImageDescription | Field::Subtitle => img.description = Some(value),
                    _ => {}
                }
            }
            return;
        }
        if in_entry {
            let Some(en) = self.out.items.last_mut() else {
                return;
            };
            match field {
                Field::Title => {
                    en.title = Some(value);
                    en.title_type = Some(ctype);
                }
                Field::Summary => en.summary_html = Some(value),
                Field::Rights => en.rights = Some(value),
                Field::Content if en.content_html.is_none() => en.content_html = Some(value),
                _ => {}
            }
        } else {
            let f = &mut self.out.feed;
            match field {
                Field::Title => {
                    f.title = Some(value);
                    f.title_type = Some(ctype);
                }
                Field::Subtitle => {
                    f.description = Some(value);
                    f.description_type = Some(ctype);
                }
                Field::Rights => f.rights = Some(value),
                _ => {}
            }
        }
    }
}

/// True when the document holds a control character XML forbids (anything below 0x20 but tab,
/// newline and carriage return). Written without early exit per block so it vectorises.
fn has_illegal_control(bytes: &[u8]) -> bool {
    bytes.chunks(64).any(|block| {
        block.iter().fold(false, |seen, &b| {
            seen | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r'))
        })
    })
}

/// The text of a slice quick-xml handed out. The reader runs over `doc` (already UTF-8) and
/// cuts only at ASCII delimiters, so its slices are ranges of `doc`: finding the range is O(1)
/// where `from_utf8` would validate every byte again. Anything else is validated as before.
fn doc_str<'d>(doc: &'d str, bytes: &'d [u8]) -> &'d str {
    let start = (bytes.as_ptr() as usize).wrapping_sub(doc.as_ptr() as usize);
    start
        .checked_add(bytes.len())
        .and_then(|end| doc.get(start..end))
        .or_else(|| std::str::from_utf8(bytes).ok())
        .unwrap_or("")
}

/// Appends a text or CDATA event's bytes. While the capture is empty and the text needs no
/// change (no CR, not xhtml), the capture just borrows it from the document: the common
/// single-piece field is then never copied before it is sanitised or stored.
fn push_doc_text<'d>(cap: &mut Capture<'d>, doc: &'d str, bytes: Cow<'d, [u8]>, at_top: bool) {
    match bytes {
        Cow::Borrowed(bytes) => {
            let raw = doc_str(doc, bytes);
            if cap.buf.is_empty() && !raw.is_empty() && !is_xhtml(&cap.ctype) && !has_cr(raw) {
                note_top_text(cap, raw, at_top);
                cap.buf = Cow::Borrowed(raw);
            } else {
                push_text(cap, raw, at_top);
            }
        }
        Cow::Owned(bytes) => push_text(cap, std::str::from_utf8(&bytes).unwrap_or(""), at_top),
    }
}

/// Whether `raw` holds a CR. Most pieces are a few bytes (text between references), where a
/// plain loop beats memchr's setup.
fn has_cr(raw: &str) -> bool {
    if raw.len() < 32 {
        raw.bytes().any(|b| b == b'\r')
    } else {
        memchr::memchr(b'\r', raw.as_bytes()).is_some()
    }
}

/// Non-whitespace text at the top level of xhtml content means no wrapping div.
fn note_top_text(cap: &mut Capture<'_>, raw: &str, at_top: bool) {
    if at_top && matches!(cap.div, DivWrap::Closed(..)) && !raw.trim().is_empty() {
        cap.div = DivWrap::No;
    }
}

fn push_text(cap: &mut Capture<'_>, raw: &str, at_top: bool) {
    if raw.is_empty() {
        return;
    }
    note_top_text(cap, raw, at_top);
    let normalised: Cow<'_, str> = if has_cr(raw) {
        Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(raw)
    };
    if is_xhtml(&cap.ctype) {
        escape_html_into(&normalised, cap.buf.to_mut());
    } else {
        cap.buf.to_mut().push_str(&normalised);
    }
}

fn find_attr<'a>(attrs: &'a [(&str, Cow<'_, str>)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_ref())
}

fn is_xhtml(ctype: &str) -> bool {
    ctype == "application/xhtml+xml"
}

fn is_html_type(ctype: &str) -> bool {
    ctype == "text/html" || ctype == "application/xhtml+xml"
}

fn map_content_type(t: &str) -> Cow<'static, str> {
    const KNOWN: [(&str, &str); 7] = [
        ("text/plain", "text/plain"),
        ("text/html", "text/html"),
        ("application/xhtml+xml", "application/xhtml+xml"),
        ("text", "text/plain"),
        ("plain", "text/plain"),
        ("html", "text/html"),
        ("xhtml", "application/xhtml+xml"),
    ];
    let t = t.trim();
    match KNOWN.iter().find(|(name, _)| t.eq_ignore_ascii_case(name)) {
        Some((_, mapped)) => Cow::Borrowed(mapped),
        None => Cow::Owned(t.to_ascii_lowercase()),
    }
}

/// Whether a link `type` maps (as [`map_content_type`] maps it) to an HTML media type, without
/// allocating: an unknown type is only lower-cased there, and no lower-cased unknown type is
/// `text/html` or `application/xhtml+xml`, or it would have matched a known one.
fn is_html_content_type(t: &str) -> bool {
    let t = t.trim();
    ["text/html", "application/xhtml+xml", "html", "xhtml"]
        .iter()
        .any(|known| t.eq_ignore_ascii_case(known))
}

/// Link relations common enough to be kept borrowed (an exact match only).
const COMMON_RELS: &[&str] = &[
    "alternate",
    "self",
    "enclosure",
    "related",
    "hub",
    "replies",
    "edit",
    "next",
    "previous",
    "via",
    "license",
    "first",
    "last",
    "service.post",
    "service.edit",
    "service.feed",
];

/// Link media types common enough to be kept borrowed (an exact match only).
const COMMON_TYPES: &[&str] = &[
    "text/html",
    "application/atom+xml",
    "application/rss+xml",
    "application/xhtml+xml",
    "text/plain",
    "audio/mpeg",
    "audio/mp3",
    "audio/x-m4a",
    "video/mp4",
    "image/jpeg",
    "image/png",
    "application/pdf",
];

/// `value` borrowed from `common` when it is exactly one of them, else owned: the same text
/// either way.
fn common_value(value: &str, common: &'static [&'static str]) -> Cow<'static, str> {
    match common.iter().find(|c| **c == value) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(value.to_string()),
    }
}

/// Removes leading and trailing whitespace without a new allocation.
fn trim_in_place(s: &mut String) {
    let end = s.trim_end().len();
    s.truncate(end);
    let start = s.len() - s.trim_start().len();
    if start > 0 {
        s.drain(..start);
    }
}

fn is_void(tag: &str) -> bool {
    matches!(
        tag,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
    )
}

fn alternate_link(href: String) -> Link {
    Link {
        href,
        rel: Some(Cow::Borrowed("alternate")),
        mime_type: Some(Cow::Borrowed("text/html")),
        ..Link::default()
    }
}

/// `?a=1&b;=2`-style damage from entity handling in link text: `&name;` → `&name`.
fn fix_query_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(rest.get(..=p).unwrap_or(""));
        let after = rest.get(p + 1..).unwrap_or("");
        let n = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if n > 0 && after.as_bytes().get(n) == Some(&b';') {
            out.push_str(after.get(..n).unwrap_or(""));
            rest = after.get(n + 1..).unwrap_or("");
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Resolves `href` against `base`; absolute http(s) links are taken as they are.
pub(crate) fn resolve_url(base: Option<&Url>, href: &str) -> String {
    resolve_url_with(|| base, href)
}

/// [`resolve_url`] with the base asked for only when `href` is not absolute.
fn resolve_url_with<'b>(base: impl FnOnce() -> Option<&'b Url>, href: &str) -> String {
    let href = href.trim();
    if href.starts_with("http://") || href.starts_with("https://") {
        return href.to_string();
    }
    match base() {
        Some(b) => match b.join(href) {
            Ok(u)
                if matches!(
                    u.scheme(),
                    "http"
                        | "https"
                        | "ftp"
                        | "file"
                        | "mailto"
                        | "magnet"
                        | "feed"
                        | "urn"
                        | "tag"
                ) =>
            {
                u.to_string()
            }
            Ok(_) => String::new(),
            Err(_) => href.to_string(),
        },
        None => href.to_string(),
    }
}

/// Splits `jane@example.org (Jane Doe)` / `Jane Doe <jane@example.org>` into name and email.
fn split_person(s: &str) -> Person {
    let mut email = None;
    let mut name = s.to_string();
    if let Some(at) = s.find('@') {
        let is_mail = |c: char| c.is_ascii_alphanumeric() || "._+-".contains(c);
        let before = s.get(..at).unwrap_or("");
        let after = s.get(at + 1..).unwrap_or("");
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_mail(*c))
            .last()
            .map_or(at, |(i, _)| i);
        let end_rel = after
            .char_indices()
            .take_while(|(_, c)| is_mail(*c))
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = at + 1 + end_rel;
        if start < at && end_rel > 0 {
            let mut e = s.get(start..end).unwrap_or("").to_string();
            while e.ends_with('.') {
                e.pop();
            }
            let rest = format!(
                "{}{}",
                s.get(..start).unwrap_or(""),
                s.get(start + e.len()..).unwrap_or("")
            );
            let rest = rest
                .replace("()", "")
                .replace("<>", "")
                .replace("&lt;&gt;", "");
            let mut r = rest.trim();
            r = r.strip_prefix('(').unwrap_or(r);
            r = r.strip_suffix(')').unwrap_or(r);
            name = r.trim().to_string();
            email = Some(e);
        }
    }
    Person {
        name: if name.is_empty() { None } else { Some(name) },
        email,
        uri: None,
        raw: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_forms() {
        let p = split_person("jane@example.org (Jane Doe)");
        assert_eq!(p.name.as_deref(), Some("Jane Doe"));
        assert_eq!(p.email.as_deref(), Some("jane@example.org"));
        let p = split_person("Jane Doe");
        assert_eq!(p.name.as_deref(), Some("Jane Doe"));
        assert!(p.email.is_none());
    }

    #[test]
    fn control_scan_agrees_with_a_byte_loop() {
        let long = "x".repeat(130);
        let samples = [
            String::new(),
            "tab\tnewline\ncr\r".to_string(),
            "a\u{1}b".to_string(),
            format!("{long}\u{b}"),
            format!("{long}\u{7f}é"),
        ];
        for s in &samples {
            let expected = s
                .bytes()
                .any(|b| b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r');
            assert_eq!(has_illegal_control(s.as_bytes()), expected, "{s:?}");
        }
    }

    #[test]
    fn doc_str_finds_slices_of_the_document_and_validates_others() {
        let doc = "<a>café</a>";
        let inner = doc.as_bytes().get(3..8).unwrap_or(&[]);
        assert_eq!(doc_str(doc, inner), "café");
        let copy = "café".as_bytes().to_vec();
        assert_eq!(doc_str(doc, &copy), "café");
        assert_eq!(doc_str(doc, b"\xff"), "");
        assert_eq!(doc_str(doc, &[]), "");
    }

    #[test]
    fn query_entities_are_repaired() {
        assert_eq!(
            fix_query_entities("http://x/?a=1&b;=2"),
            "http://x/?a=1&b=2"
        );
    }
}
