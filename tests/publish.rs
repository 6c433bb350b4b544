//! Integration tests: publish.
//!
//! Every document is parsed back with a real parser (quick-xml for RSS, Atom, OPML and the SVG;
//! serde_json and the official JSON Feed 1.1 schema for JSON Feed; feed-rs for a round trip)
//! and checked against what its specification requires.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use newsrelay::item::{
    ContentHash, Enclosure, FeedId, IdBasis, Item, ItemId, Label, Labels, Source,
};
use newsrelay::publish::{
    feed_url, render_atom, render_chart_svg, render_index, render_json_feed, render_opml,
    render_rss, render_unsubscribe_confirm, render_unsubscribe_done, FeedDescriptor, FeedFormat,
    IndexPage, OpmlEntry, Paging, PublishError, SourceDirectory, SourceFeed, TaxonCount, TaxonKind,
    WeeklyCounts, WeeklySeries,
};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::{BTreeMap, HashSet};

const BASE: &str = "http://127.0.0.1:8080";
const HOSTILE_TITLE: &str =
    "<script>alert('t')</script> & \"quoted\" ]]> <b onmouseover=x>bold</b>\u{1}\u{8}\u{FFFE}end";
const HOSTILE_HTML: &str = "<p onclick=\"steal()\">Intro</p><script>alert(1)</script>\
    <a href=\"javascript:alert(2)\">click</a><a href=\" JaVaScRiPt:alert(3)\">x</a>\
    <img src=\"https://e.org/i.png\" onerror=\"alert(4)\"><iframe src=\"https://evil.example/\"></iframe>\
    <style>body{display:none}</style>]]><![CDATA[x]]>\u{0}\u{1b}<svg onload=alert(5)><p>Tail</p>";

// ---------- fixtures ----------

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
        .single()
        .unwrap_or_default()
}

fn label(id: &str) -> Label {
    Label {
        id: id.to_string(),
        score: 0.9,
        why: vec!["matched phrase".into()],
    }
}

fn item(n: usize) -> Item {
    let programmes = ["asylum", "border-management-visa", "migration-development"];
    let programme = programmes
        .get(n % programmes.len())
        .copied()
        .unwrap_or("asylum");
    Item {
        id: ItemId(format!("{:016x}", 0x5eed_0000_u64 + n as u64)),
        id_basis: IdBasis::Guid,
        feed: FeedId("icmpd-news".into()),
        sources: vec![Source {
            feed: FeedId("icmpd-news".into()),
            guid: Some(format!("https://www.icmpd.org/news/{n}")),
            link: Some(format!("https://www.icmpd.org/news/{n}")),
        }],
        link: Some(format!("https://www.icmpd.org/news/item-{n}?lang=en&ref=feed")),
        title: format!("ICMPD and partners meet on item {n} & regional cooperation"),
        summary_text: format!("Summary of item {n}: officials met in Vienna to discuss cooperation."),
        content_html: format!(
            "<p>Officials met in <a href=\"https://www.icmpd.org/vienna\">Vienna</a> for item {n}.</p><ul><li>one</li><li>two</li></ul>"
        ),
        published: Some(at(1 + (n % 20) as u32, (n % 24) as u32)),
        updated: if n % 3 == 0 { Some(at(21, 10)) } else { None },
        first_seen: at(22, 0),
        authors: vec!["ICMPD Press Office".into()],
        categories: vec!["News".into()],
        enclosures: if n % 4 == 0 {
            vec![Enclosure {
                url: format!("https://www.icmpd.org/files/report-{n}.pdf"),
                mime_type: Some("application/pdf".into()),
                length: Some(12345),
            }]
        } else {
            Vec::new()
        },
        content_hash: ContentHash(n as u64),
        fingerprint: n as u64,
        revision: 0,
        labels: Labels {
            programmes: vec![label(programme)],
            initiatives: if n % 2 == 0 { vec![label("prague-process")] } else { Vec::new() },
            regions: vec![label("western-balkans")],
            taxonomy_version: 1,
        },
    }
}

fn hostile_item() -> Item {
    let mut it = item(999);
    it.id = ItemId("hostile-0001".into());
    it.title = HOSTILE_TITLE.to_string();
    it.summary_text = "Summary with <script>x</script> and ]]> and \u{0}nul".into();
    it.content_html = HOSTILE_HTML.to_string();
    it.link = Some("javascript:alert('link')".into());
    it.authors = vec!["<img src=x onerror=alert(6)>".into()];
    it.categories = vec!["\"><script>alert(7)</script>".into()];
    it.enclosures = vec![Enclosure {
        url: "javascript:alert(8)".into(),
        mime_type: Some("text/html\"><x".into()),
        length: None,
    }];
    it
}

fn items(n: usize) -> Vec<Item> {
    (0..n).map(item).collect()
}

fn sources() -> SourceDirectory {
    [(
        FeedId("icmpd-news".into()),
        SourceFeed {
            title: "ICMPD News Centre".into(),
            url: "https://www.icmpd.org/news-centre/rss/".into(),
        },
    )]
    .into_iter()
    .collect()
}

fn descriptor(format: FeedFormat) -> FeedDescriptor {
    FeedDescriptor {
        id: "asylum".into(),
        kind: TaxonKind::Programme,
        title: "ICMPD news: Asylum".into(),
        description: "Items classified under the asylum programme".into(),
        self_url: format!(
            "{}?region=western-balkans",
            feed_url(BASE, "asylum", format)
        ),
        html_url: format!("{BASE}/"),
        base_url: BASE.into(),
        hub: Some("https://hub.example.org/".into()),
        updated: at(22, 0),
        author: "newsrelay".into(),
        paging: Paging {
            first: Some(feed_url(BASE, "asylum", format)),
            next: Some(format!("{}?before=abc", feed_url(BASE, "asylum", format))),
            ..Paging::default()
        },
        filters: vec![("region".into(), "western-balkans".into())],
        language: Some("en".into()),
    }
}

// ---------- a tiny XML tree built from quick-xml events ----------

#[derive(Debug, Default, Clone)]
struct Node {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<usize>,
}

struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn root(&self) -> &Node {
        &self.nodes[0]
    }
    fn children<'a>(&'a self, node: &'a Node, name: &'a str) -> impl Iterator<Item = &'a Node> {
        node.children
            .iter()
            .map(|i| &self.nodes[*i])
            .filter(move |n| n.name == name)
    }
    fn child<'a>(&'a self, node: &'a Node, name: &'a str) -> &'a Node {
        self.children(node, name)
            .next()
            .unwrap_or_else(|| panic!("<{}> has no <{name}>", node.name))
    }
    fn child_text(&self, node: &Node, name: &str) -> String {
        self.child(node, name).text.clone()
    }
    fn all_names(&self) -> HashSet<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

/// Parses `xml` strictly; panics with the position on any well-formedness error.
fn parse_xml(xml: &str) -> Tree {
    let forbidden = xml.chars().find(|c| {
        (*c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    });
    assert_eq!(forbidden, None, "document holds a character XML forbids");
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut nodes = vec![Node {
        name: "#document".into(),
        ..Node::default()
    }];
    let mut stack = vec![0usize];
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 1_000_000, "runaway document");
        let event = reader.read_event().unwrap_or_else(|e| {
            panic!("not well-formed at byte {}: {e}", reader.buffer_position())
        });
        let top = *stack.last().expect("stack never empty");
        match event {
            Event::Start(e) => {
                let index = push_element(&mut nodes, top, &e);
                stack.push(index);
            }
            Event::Empty(e) => {
                push_element(&mut nodes, top, &e);
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let text = t.decode().unwrap_or_else(|e| panic!("bad text: {e}"));
                nodes[top].text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r.decode().unwrap_or_default();
                        match name.as_ref() {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            other => panic!("undefined entity &{other};"),
                        }
                    }
                    Err(e) => panic!("bad character reference: {e}"),
                };
                nodes[top].text.push_str(&resolved);
            }
            Event::CData(_) => panic!("writers must not emit CDATA"),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let roots = nodes[0].children.len();
    assert_eq!(roots, 1, "exactly one root element");
    Tree { nodes }
}

fn push_element(
    nodes: &mut Vec<Node>,
    parent: usize,
    e: &quick_xml::events::BytesStart<'_>,
) -> usize {
    let mut node = Node {
        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
        ..Node::default()
    };
    for a in e.attributes() {
        let a = a.unwrap_or_else(|err| panic!("bad attribute: {err}"));
        let value = a
            .unescape_value()
            .unwrap_or_else(|err| panic!("bad attribute value: {err}"));
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        assert!(
            node.attrs.insert(key.clone(), value.into_owned()).is_none(),
            "duplicate attribute {key}"
        );
    }
    nodes.push(node);
    let index = nodes.len() - 1;
    nodes[parent].children.push(index);
    index
}

// ---------- shared checks ----------

fn assert_absolute(url: &str) {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url:?} is not absolute: {e}"));
    assert!(
        matches!(parsed.scheme(), "http" | "https"),
        "{url:?} is not http(s)"
    );
}

/// Decoded item HTML must carry nothing that runs.
fn assert_inert_html(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "<script",
        "javascript:",
        "onerror",
        "onclick",
        "onload",
        "onmouseover",
        "<iframe",
        "<style",
        "<svg",
        "<![cdata[",
    ] {
        assert!(!lower.contains(bad), "{bad:?} survived in {html:?}");
    }
}

fn hostile_title_as_text() -> String {
    HOSTILE_TITLE
        .chars()
        .filter(|c| !matches!(c, '\u{1}' | '\u{8}' | '\u{FFFE}'))
        .collect()
}

fn mixed_items() -> Vec<Item> {
    let mut list = items(20);
    list.insert(3, hostile_item());
    list
}

// ---------- RSS 2.0 ----------

#[test]
fn rss_has_required_channel_and_item_elements() {
    let list = mixed_items();
    let xml = render_rss(&descriptor(FeedFormat::Rss), &sources(), &list).expect("renders");
    let tree = parse_xml(&xml);
    let rss = tree.child(tree.root(), "rss");
    assert_eq!(rss.attrs.get("version").map(String::as_str), Some("2.0"));
    let channel = tree.child(rss, "channel");
    assert_eq!(tree.child_text(channel, "title"), "ICMPD news: Asylum");
    assert_absolute(&tree.child_text(channel, "link"));
    assert!(tree
        .child_text(channel, "description")
        .contains("region=western-balkans"));
    DateTime::parse_from_rfc2822(&tree.child_text(channel, "lastBuildDate"))
        .expect("lastBuildDate is RFC 822");
    let links: BTreeMap<String, String> = tree
        .children(channel, "atom:link")
        .map(|l| (l.attrs["rel"].clone(), l.attrs["href"].clone()))
        .collect();
    assert_eq!(
        links.get("self"),
        Some(&descriptor(FeedFormat::Rss).self_url)
    );
    assert_eq!(
        links.get("hub").map(String::as_str),
        Some("https://hub.example.org/")
    );
    assert!(links.contains_key("next") && links.contains_key("first"));
    links.values().for_each(|h| assert_absolute(h));

    let entries: Vec<&Node> = tree.children(channel, "item").collect();
    assert_eq!(entries.len(), list.len());
    let mut guids = HashSet::new();
    for (entry, source) in entries.iter().zip(&list) {
        let guid = tree.child(entry, "guid");
        assert_eq!(
            guid.attrs.get("isPermaLink").map(String::as_str),
            Some("false")
        );
        assert!(
            guid.text.starts_with("urn:newsrelay:item:"),
            "{}",
            guid.text
        );
        assert!(
            guids.insert(guid.text.clone()),
            "duplicate guid {}",
            guid.text
        );
        DateTime::parse_from_rfc2822(&tree.child_text(entry, "pubDate"))
            .expect("pubDate is RFC 822");
        assert_eq!(
            DateTime::parse_from_rfc2822(&tree.child_text(entry, "pubDate"))
                .map(|d| d.with_timezone(&Utc)),
            Ok(source.display_date())
        );
        tree.child(entry, "description");
        assert_inert_html(&tree.child_text(entry, "content:encoded"));
        for link in tree.children(entry, "link") {
            assert_absolute(&link.text);
        }
        for enclosure in tree.children(entry, "enclosure") {
            assert_absolute(&enclosure.attrs["url"]);
            assert!(enclosure.attrs.contains_key("length") && enclosure.attrs.contains_key("type"));
        }
        let domains: HashSet<&str> = tree
            .children(entry, "category")
            .filter_map(|c| c.attrs.get("domain").map(String::as_str))
            .collect();
        assert!(
            domains.contains(format!("{BASE}/programmes").as_str()),
            "{domains:?}"
        );
        assert!(domains.contains(format!("{BASE}/regions").as_str()));
        let src = tree.child(entry, "source");
        assert_eq!(src.attrs["url"], "https://www.icmpd.org/news-centre/rss/");
        assert_eq!(src.text, "ICMPD News Centre");
    }
    // The first ordinary item carries its link, summary, authors and content as given.
    let first = entries[0];
    assert_eq!(
        tree.child_text(first, "link"),
        "https://www.icmpd.org/news/item-0?lang=en&ref=feed"
    );
    assert_eq!(tree.child_text(first, "dc:creator"), "ICMPD Press Office");
    assert!(tree
        .child_text(first, "content:encoded")
        .contains("<a href=\"https://www.icmpd.org/vienna\">Vienna</a>"));
}

#[test]
fn rss_escapes_hostile_item_text() {
    let xml =
        render_rss(&descriptor(FeedFormat::Rss), &sources(), &mixed_items()).expect("renders");
    let tree = parse_xml(&xml);
    let names = tree.all_names();
    for bad in ["script", "b", "img", "iframe", "x"] {
        assert!(
            !names.contains(bad),
            "hostile text became an element <{bad}>"
        );
    }
    let channel = tree.child(tree.child(tree.root(), "rss"), "channel");
    let hostile = tree
        .children(channel, "item")
        .find(|i| tree.child_text(i, "guid").ends_with("hostile-0001"))
        .expect("hostile item present");
    // Title text survives literally (as text), minus the characters XML forbids.
    assert_eq!(tree.child_text(hostile, "title"), hostile_title_as_text());
    assert!(
        tree.children(hostile, "link").next().is_none(),
        "javascript: link dropped"
    );
    assert!(
        tree.children(hostile, "enclosure").next().is_none(),
        "javascript: enclosure dropped"
    );
    let content = tree.child_text(hostile, "content:encoded");
    assert_inert_html(&content);
    assert!(
        content.contains("<p>Intro</p>") && content.contains("<p>Tail</p>"),
        "{content}"
    );
    assert_eq!(
        tree.child_text(hostile, "dc:creator"),
        "<img src=x onerror=alert(6)>"
    );
}

// ---------- Atom 1.0 ----------

#[test]
fn atom_has_required_feed_and_entry_elements() {
    let list = mixed_items();
    let xml = render_atom(&descriptor(FeedFormat::Atom), &sources(), &list).expect("renders");
    let tree = parse_xml(&xml);
    let feed = tree.child(tree.root(), "feed");
    assert_eq!(
        feed.attrs.get("xmlns").map(String::as_str),
        Some("http://www.w3.org/2005/Atom")
    );
    assert_absolute(&tree.child_text(feed, "id"));
    assert_eq!(tree.child_text(feed, "title"), "ICMPD news: Asylum");
    DateTime::parse_from_rfc3339(&tree.child_text(feed, "updated")).expect("updated is RFC 3339");
    assert_eq!(
        tree.child_text(tree.child(feed, "author"), "name"),
        "newsrelay"
    );
    let rels: BTreeMap<String, String> = tree
        .children(feed, "link")
        .map(|l| (l.attrs["rel"].clone(), l.attrs["href"].clone()))
        .collect();
    for rel in ["self", "alternate", "hub", "first", "next"] {
        assert_absolute(rels.get(rel).unwrap_or_else(|| panic!("no rel={rel}")));
    }
    let entries: Vec<&Node> = tree.children(feed, "entry").collect();
    assert_eq!(entries.len(), list.len());
    let mut ids = HashSet::new();
    for (entry, source) in entries.iter().zip(&list) {
        let id = tree.child_text(entry, "id");
        assert!(id.starts_with("urn:newsrelay:item:"));
        assert!(ids.insert(id.clone()), "duplicate id {id}");
        tree.child(entry, "title");
        let updated =
            DateTime::parse_from_rfc3339(&tree.child_text(entry, "updated")).expect("RFC 3339");
        assert!(updated.to_rfc3339().len() >= 20);
        if let Some(published) = source.published {
            let text = tree.child_text(entry, "published");
            assert_eq!(
                DateTime::parse_from_rfc3339(&text).map(|d| d.with_timezone(&Utc)),
                Ok(published)
            );
            assert!(text.ends_with('Z'), "UTC with Z: {text}");
        }
        for link in tree.children(entry, "link") {
            assert_absolute(&link.attrs["href"]);
        }
        assert_eq!(
            tree.child(entry, "summary")
                .attrs
                .get("type")
                .map(String::as_str),
            Some("text")
        );
        let content = tree.child(entry, "content");
        assert_eq!(content.attrs.get("type").map(String::as_str), Some("html"));
        assert_inert_html(&content.text);
        let schemes: HashSet<&str> = tree
            .children(entry, "category")
            .filter_map(|c| c.attrs.get("scheme").map(String::as_str))
            .collect();
        assert!(schemes.contains(format!("{BASE}/programmes").as_str()));
        let src = tree.child(entry, "source");
        assert_eq!(tree.child_text(src, "title"), "ICMPD News Centre");
    }
    let first = entries[0];
    let alternate = tree
        .children(first, "link")
        .find(|l| l.attrs["rel"] == "alternate")
        .expect("alternate");
    assert_eq!(
        alternate.attrs["href"],
        "https://www.icmpd.org/news/item-0?lang=en&ref=feed"
    );
}

#[test]
fn atom_escapes_hostile_item_text() {
    let xml =
        render_atom(&descriptor(FeedFormat::Atom), &sources(), &mixed_items()).expect("renders");
    let tree = parse_xml(&xml);
    let names = tree.all_names();
    for bad in ["script", "b", "img", "iframe", "x"] {
        assert!(
            !names.contains(bad),
            "hostile text became an element <{bad}>"
        );
    }
    let feed = tree.child(tree.root(), "feed");
    let hostile = tree
        .children(feed, "entry")
        .find(|e| tree.child_text(e, "id").ends_with("hostile-0001"))
        .expect("hostile entry");
    assert_eq!(tree.child_text(hostile, "title"), hostile_title_as_text());
    assert!(tree.children(hostile, "link").next().is_none());
    assert_inert_html(&tree.child_text(hostile, "content"));
    let terms: Vec<&str> = tree
        .children(hostile, "category")
        .filter_map(|c| c.attrs.get("term").map(String::as_str))
        .collect();
    assert!(
        terms.contains(&"\"><script>alert(7)</script>"),
        "attribute kept literally: {terms:?}"
    );
}

// ---------- JSON Feed 1.1 ----------

fn json_feed_validator() -> jsonschema::Validator {
    // The shared folder sits beside the checkout, or two levels up from a worktree.
    let candidates = [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/validators/jsonfeed/schema-v1.1.json"
        ),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/validators/jsonfeed/schema-v1.1.json"
        ),
    ];
    let path = candidates
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or_else(|| panic!("JSON Feed schema not found at {candidates:?}"));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}")),
    )
    .expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

#[test]
fn json_feed_validates_against_the_official_schema() {
    let list = mixed_items();
    let text = render_json_feed(&descriptor(FeedFormat::Json), &sources(), &list).expect("renders");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let validator = json_feed_validator();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema errors: {errors:#?}");

    assert_eq!(doc["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(
        doc["feed_url"],
        descriptor(FeedFormat::Json).self_url.as_str()
    );
    assert_eq!(
        doc["next_url"],
        format!("{BASE}/feeds/asylum.json?before=abc").as_str()
    );
    assert_eq!(doc["hubs"][0]["type"], "WebSub");
    let out_items = doc["items"].as_array().expect("items");
    assert_eq!(out_items.len(), list.len());
    let ids: HashSet<&str> = out_items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids.len(), list.len(), "ids unique");
    for (out, source) in out_items.iter().zip(&list) {
        let published = out["date_published"].as_str().expect("date_published");
        assert_eq!(
            DateTime::parse_from_rfc3339(published).map(|d| d.with_timezone(&Utc)),
            Ok(source.display_date())
        );
        assert_inert_html(out["content_html"].as_str().expect("content_html"));
        assert_eq!(out["_newsrelay"]["sources"][0]["feed"], "icmpd-news");
        assert_eq!(
            out["_newsrelay"]["sources"][0]["title"],
            "ICMPD News Centre"
        );
        let programmes = out["_newsrelay"]["labels"]["programmes"]
            .as_array()
            .expect("labels");
        assert_eq!(programmes.len(), source.labels.programmes.len());
        let tags: Vec<&str> = out["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert!(tags.contains(&"western-balkans"));
        assert!(
            source.categories.iter().all(|c| tags.contains(&c.as_str())),
            "{tags:?}"
        );
    }
    let hostile = out_items
        .iter()
        .find(|i| i["_newsrelay"]["item_id"] == "hostile-0001")
        .expect("hostile");
    assert!(hostile.get("url").is_none(), "javascript: url dropped");
    assert!(
        hostile.get("attachments").is_none(),
        "javascript: attachment dropped"
    );
    assert_eq!(
        hostile["title"], HOSTILE_TITLE,
        "JSON strings carry the text as is, escaped by JSON"
    );
}

#[test]
fn json_feed_schema_check_catches_a_broken_document() {
    // The validator really validates: a document without items and with a relative feed_url fails.
    let broken = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "x",
        "feed_url": "not a uri",
        "items": [{"title": "no id"}]
    });
    assert!(!json_feed_validator().is_valid(&broken));
}

// ---------- stable ids, determinism, bad descriptors ----------

fn ids_by_item(xml: &str, item_name: &str, id_name: &str) -> BTreeMap<String, String> {
    let tree = parse_xml(xml);
    let mut out = BTreeMap::new();
    for node in &tree.nodes {
        if node.name == item_name {
            let id = tree.child_text(node, id_name);
            let title = tree.child_text(node, "title");
            out.insert(title, id);
        }
    }
    out
}

#[test]
fn ids_are_stable_across_renders_orders_and_formats() {
    let list = items(30);
    let mut reversed = list.clone();
    reversed.reverse();
    let subset: Vec<Item> = list.iter().step_by(3).cloned().collect();
    let d = descriptor(FeedFormat::Rss);
    let full = render_rss(&d, &sources(), &list).expect("renders");
    assert_eq!(
        full,
        render_rss(&d, &sources(), &list).expect("renders"),
        "byte-identical re-render"
    );
    let a = ids_by_item(&full, "item", "guid");
    let b = ids_by_item(
        &render_rss(&d, &sources(), &reversed).expect("renders"),
        "item",
        "guid",
    );
    let c = ids_by_item(
        &render_rss(&d, &sources(), &subset).expect("renders"),
        "item",
        "guid",
    );
    assert_eq!(a, b);
    assert_eq!(a.len(), 30);
    for (title, id) in &c {
        assert_eq!(a.get(title), Some(id));
    }
    let atom = ids_by_item(
        &render_atom(&descriptor(FeedFormat::Atom), &sources(), &list).expect("renders"),
        "entry",
        "id",
    );
    assert_eq!(a, atom, "RSS guid and Atom id agree");
    let json: serde_json::Value = serde_json::from_str(
        &render_json_feed(&descriptor(FeedFormat::Json), &sources(), &list).expect("renders"),
    )
    .expect("json");
    for it in json["items"].as_array().expect("items") {
        let title = it["title"].as_str().expect("title");
        assert_eq!(a.get(title).map(String::as_str), it["id"].as_str());
    }
}

#[test]
fn relative_descriptor_urls_are_refused_with_the_field_named() {
    let mut d = descriptor(FeedFormat::Rss);
    d.self_url = "/feeds/asylum.rss".into();
    let err = render_rss(&d, &sources(), &items(1)).expect_err("relative self link refused");
    assert_eq!(
        err,
        PublishError::NotAbsolute {
            field: "self_url",
            value: "/feeds/asylum.rss".into()
        }
    );
    assert!(err.to_string().contains("self_url"));
    let mut d = descriptor(FeedFormat::Atom);
    d.paging.next = Some("javascript:x".into());
    assert!(matches!(
        render_atom(&d, &sources(), &[]),
        Err(PublishError::NotAbsolute {
            field: "paging.next",
            ..
        })
    ));
    let mut d = descriptor(FeedFormat::Json);
    d.hub = Some("hub".into());
    assert!(render_json_feed(&d, &sources(), &[]).is_err());
}

#[test]
fn empty_feeds_are_still_valid_documents() {
    let mut d = descriptor(FeedFormat::Rss);
    d.hub = None;
    d.paging = Paging::default();
    let tree = parse_xml(&render_rss(&d, &SourceDirectory::new(), &[]).expect("renders"));
    let channel = tree.child(tree.child(tree.root(), "rss"), "channel");
    assert_eq!(tree.children(channel, "item").count(), 0);
    assert!(tree
        .children(channel, "atom:link")
        .all(|l| l.attrs["rel"] == "self"));
    let tree = parse_xml(
        &render_atom(&descriptor(FeedFormat::Atom), &SourceDirectory::new(), &[]).expect("renders"),
    );
    assert_eq!(
        tree.children(tree.child(tree.root(), "feed"), "entry")
            .count(),
        0
    );
    let doc: serde_json::Value = serde_json::from_str(
        &render_json_feed(&descriptor(FeedFormat::Json), &SourceDirectory::new(), &[])
            .expect("renders"),
    )
    .expect("json");
    assert!(json_feed_validator().is_valid(&doc));
}

// ---------- round trip through an independent parser ----------

#[test]
fn rss_atom_and_json_round_trip_through_feed_rs() {
    let list = items(12);
    for format in FeedFormat::ALL {
        let d = descriptor(format);
        let body = match format {
            FeedFormat::Rss => render_rss(&d, &sources(), &list),
            FeedFormat::Atom => render_atom(&d, &sources(), &list),
            FeedFormat::Json => render_json_feed(&d, &sources(), &list),
        }
        .expect("renders");
        let parsed =
            feed_rs::parser::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(parsed.entries.len(), list.len(), "{format:?}");
        for (entry, source) in parsed.entries.iter().zip(&list) {
            assert_eq!(
                entry.id,
                format!("urn:newsrelay:item:{}", source.id),
                "{format:?}"
            );
            assert_eq!(
                entry.title.as_ref().map(|t| t.content.as_str()),
                Some(source.title.as_str()),
                "{format:?}"
            );
            let hrefs: Vec<&str> = entry.links.iter().map(|l| l.href.as_str()).collect();
            assert!(
                hrefs.contains(&source.link.as_deref().unwrap_or("")),
                "{format:?}: {hrefs:?}"
            );
            assert_eq!(entry.published, Some(source.display_date()), "{format:?}");
        }
    }
}

// ---------- OPML 2.0 ----------

fn taxa() -> Vec<TaxonCount> {
    let mut out = vec![
        TaxonCount {
            id: "asylum".into(),
            title: "Asylum".into(),
            kind: TaxonKind::Programme,
            count: 17,
        },
        TaxonCount {
            id: "border-management-visa".into(),
            title: "Border Management & Visa".into(),
            kind: TaxonKind::Programme,
            count: 4,
        },
        TaxonCount {
            id: "mieux".into(),
            title: "MIEUX+".into(),
            kind: TaxonKind::Initiative,
            count: 9,
        },
        TaxonCount {
            id: "prague-process".into(),
            title: "Prague Process".into(),
            kind: TaxonKind::Initiative,
            count: 0,
        },
        TaxonCount {
            id: "western-balkans".into(),
            title: "Western Balkans".into(),
            kind: TaxonKind::Region,
            count: 23,
        },
    ];
    out.push(TaxonCount {
        id: "silk-routes".into(),
        title: "<script>Silk</script> Routes".into(),
        kind: TaxonKind::Region,
        count: 2,
    });
    out
}

#[test]
fn opml_lists_every_feed_in_every_format() {
    let mut entries = vec![OpmlEntry {
        id: "all".into(),
        title: "All news".into(),
        kind: TaxonKind::All,
    }];
    entries.extend(taxa().into_iter().map(|t| OpmlEntry {
        id: t.id,
        title: t.title,
        kind: t.kind,
    }));
    let xml = render_opml(
        "ICMPD news & <more>",
        BASE,
        at(22, 0),
        &entries,
        &FeedFormat::ALL,
    )
    .expect("renders");
    let tree = parse_xml(&xml);
    let opml = tree.child(tree.root(), "opml");
    assert_eq!(opml.attrs["version"], "2.0");
    let head = tree.child(opml, "head");
    assert_eq!(tree.child_text(head, "title"), "ICMPD news & <more>");
    DateTime::parse_from_rfc2822(&tree.child_text(head, "dateCreated")).expect("RFC 822");
    let body = tree.child(opml, "body");
    let groups: Vec<&Node> = tree.children(body, "outline").collect();
    assert_eq!(groups.len(), 4, "all, programmes, initiatives, regions");
    let feeds: Vec<&Node> = groups
        .iter()
        .flat_map(|g| tree.children(g, "outline"))
        .collect();
    assert_eq!(feeds.len(), entries.len() * 3);
    let mut urls = HashSet::new();
    for f in &feeds {
        assert_eq!(f.attrs["type"], "rss");
        assert!(f.attrs["xmlUrl"].starts_with(&format!("{BASE}/feeds/")));
        assert_absolute(&f.attrs["xmlUrl"]);
        assert_absolute(&f.attrs["htmlUrl"]);
        assert!(!f.attrs["text"].is_empty());
        assert!(urls.insert(f.attrs["xmlUrl"].clone()));
    }
    for e in &entries {
        for format in FeedFormat::ALL {
            assert!(
                urls.contains(&feed_url(BASE, &e.id, format)),
                "{} {format:?}",
                e.id
            );
        }
    }
    assert!(render_opml("x", "relative/", at(22, 0), &entries, &FeedFormat::ALL).is_err());
}

// ---------- the index page ----------

fn weekly() -> WeeklyCounts {
    let first = NaiveDate::from_ymd_opt(2026, 8, 31).unwrap_or_default();
    WeeklyCounts {
        week_starts: (0..12).map(|w| first + Duration::weeks(w)).collect(),
        series: vec![
            WeeklySeries {
                id: "asylum".into(),
                title: "Asylum".into(),
                counts: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            },
            WeeklySeries {
                id: "border-management-visa".into(),
                title: "Border <Management> & Visa".into(),
                counts: vec![0, 0, 3],
            },
            WeeklySeries {
                id: "migration-development".into(),
                title: "Migration & Development".into(),
                counts: vec![4; 14],
            },
        ],
    }
}

fn index_html(latest: &[Item]) -> String {
    let taxa = taxa();
    let chart = weekly();
    let sources = sources();
    render_index(&IndexPage {
        site_title: "ICMPD news",
        base_url: BASE,
        total_items: 42,
        taxa: &taxa,
        latest,
        sources: &sources,
        chart: &chart,
        generated: at(22, 12),
    })
    .expect("renders")
}

/// Every value of `attr="..."` in the page.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(p) = rest.find(&needle) {
        rest = &rest[p + needle.len()..];
        let end = rest.find('"').expect("attribute closed");
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

#[test]
fn index_page_lists_counts_and_subscribe_links_for_every_label() {
    let latest = mixed_items();
    let html = index_html(&latest);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("name=\"viewport\""), "responsive viewport");
    for t in taxa() {
        let escaped = t
            .title
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let row = format!(
            "<th scope=\"row\">{escaped}</th><td class=\"n\">{}</td>",
            t.count
        );
        assert!(html.contains(&row), "missing row {row}");
        for format in FeedFormat::ALL {
            let link = format!("href=\"{}\"", feed_url(BASE, &t.id, format));
            assert!(html.contains(&link), "missing {link}");
        }
    }
    for format in FeedFormat::ALL {
        assert!(html.contains(&format!("href=\"{}\"", feed_url(BASE, "all", format))));
    }
    assert!(html.contains("42 items"));
    // Latest items: linked titles, escaped.
    assert!(html.contains("href=\"https://www.icmpd.org/news/item-0?lang=en&amp;ref=feed\""));
    assert!(html.contains("ICMPD and partners meet on item 0 &amp; regional cooperation"));
}

#[test]
fn index_page_has_no_external_assets_and_inert_item_text() {
    let latest = mixed_items();
    let html = index_html(&latest);
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains("<script"),
        "no script at all (hostile title escaped)"
    );
    assert!(!lower.contains("javascript:"), "hostile link dropped");
    assert!(
        !lower.contains("onerror") || !lower.contains("<img"),
        "no image tags"
    );
    assert!(
        attribute_values(&html, "src").is_empty(),
        "no src attributes"
    );
    assert!(
        !lower.contains("@import") && !lower.contains("url("),
        "no CSS fetches"
    );
    assert!(!lower.contains("<link rel=\"stylesheet\""));
    let item_links: HashSet<&str> = latest.iter().filter_map(|i| i.link.as_deref()).collect();
    for href in attribute_values(&html, "href") {
        let href = href.replace("&amp;", "&");
        if href.starts_with('#') {
            continue;
        }
        assert!(
            href.starts_with(BASE) || item_links.contains(href.as_str()),
            "href {href:?} is neither on the base URL nor an item's article"
        );
    }
    // The <link> elements in the head only point at our own feeds.
    for chunk in html.split("<link ").skip(1) {
        let href = attribute_values(&format!(" {chunk}"), "href")
            .first()
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(href.starts_with(&format!("{BASE}/feeds/")), "{href}");
    }
    assert!(
        html.contains("&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;")
            || html.contains("&lt;script&gt;alert('t')&lt;/script&gt;")
    );
}

#[test]
fn index_chart_is_well_formed_accessible_svg() {
    let html = index_html(&items(3));
    let start = html.find("<svg").expect("svg present");
    let end = html.find("</svg>").expect("svg closed") + "</svg>".len();
    let svg = &html[start..end];
    let tree = parse_xml(svg);
    let root = tree.child(tree.root(), "svg");
    assert_eq!(root.attrs["xmlns"], "http://www.w3.org/2000/svg");
    assert_eq!(root.attrs["role"], "img");
    let labelled: Vec<&str> = root.attrs["aria-labelledby"].split(' ').collect();
    assert_eq!(labelled.len(), 2);
    let title = tree.child(root, "title");
    let desc = tree.child(root, "desc");
    assert!(!title.text.is_empty());
    assert!(
        desc.text.contains("12 weeks") && desc.text.contains("Asylum: 78 items"),
        "{}",
        desc.text
    );
    assert!(
        desc.text.contains("Border <Management> & Visa: 3 items"),
        "{}",
        desc.text
    );
    let lines: Vec<&Node> = tree.nodes.iter().filter(|n| n.name == "polyline").collect();
    assert_eq!(lines.len(), 3, "one line per programme");
    for line in &lines {
        assert_eq!(line.attrs["points"].split_whitespace().count(), 12);
    }
    // The highest point of the asylum line (12) sits at the top of the plot, the zeros at the bottom.
    let ys: Vec<f64> = lines[0].attrs["points"]
        .split_whitespace()
        .filter_map(|p| p.split(',').nth(1)?.parse().ok())
        .collect();
    assert!(
        ys.windows(2).all(|w| w[1] < w[0]),
        "rising counts draw upwards: {ys:?}"
    );
    // Data table with every week and programme.
    assert!(html.contains("<caption>Items per programme per week</caption>"));
    assert_eq!(html.matches("<tr><th scope=\"row\"><time").count(), 12);
    for id in ["id=\"chart-title\"", "id=\"chart-desc\""] {
        assert!(html.contains(id));
    }
}

#[test]
fn chart_handles_empty_and_uneven_input() {
    let empty = render_chart_svg(&WeeklyCounts::default(), "c");
    let tree = parse_xml(&empty);
    assert_eq!(
        tree.child_text(tree.child(tree.root(), "svg"), "desc"),
        "No weeks to show."
    );
    let one_week = WeeklyCounts {
        week_starts: vec![NaiveDate::from_ymd_opt(2026, 11, 16).unwrap_or_default()],
        series: vec![WeeklySeries {
            id: "a".into(),
            title: "A".into(),
            counts: vec![],
        }],
    };
    parse_xml(&render_chart_svg(&one_week, "c"));
}

#[test]
fn unsubscribe_pages_post_back_and_escape_everything() {
    let token = "tok\"><script>alert(1)</script>";
    let html = render_unsubscribe_confirm("ICMPD news", BASE, token, Some("a<b>@example.org"))
        .expect("renders");
    assert!(html.contains("<form method=\"post\" action=\""));
    let actions = attribute_values(&html, "action");
    assert_eq!(actions.len(), 1);
    assert!(
        actions[0].starts_with(&format!("{BASE}/unsubscribe/tok")),
        "{}",
        actions[0]
    );
    assert!(!html.contains("<script"));
    assert!(html.contains("a&lt;b&gt;@example.org"));
    assert!(html.contains("<button type=\"submit\">"));
    let done =
        render_unsubscribe_done("ICMPD <news>", BASE, Some("x@example.org")).expect("renders");
    assert!(done.contains("You are unsubscribed") && done.contains("ICMPD &lt;news&gt;"));
    assert!(render_unsubscribe_done("x", "ftp://x", None).is_err());
}

#[test]
fn every_format_round_trips_through_our_parser() {
    use newsrelay::parse::{parse_feed, FeedFormat as ParsedFormat, FeedInput};
    let mut list = items(6);
    list.push(hostile_item());
    for (format, expected) in [
        (FeedFormat::Rss, ParsedFormat::Rss20),
        (FeedFormat::Atom, ParsedFormat::Atom10),
        (FeedFormat::Json, ParsedFormat::Json11),
    ] {
        let d = descriptor(format);
        let body = match format {
            FeedFormat::Rss => render_rss(&d, &sources(), &list),
            FeedFormat::Atom => render_atom(&d, &sources(), &list),
            FeedFormat::Json => render_json_feed(&d, &sources(), &list),
        }
        .expect("renders");
        let input = FeedInput {
            body: body.as_bytes(),
            url: Some(&d.self_url),
            content_type: Some(format.content_type()),
            ..FeedInput::default()
        };
        let parsed = parse_feed(&input).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert!(!parsed.bozo, "{format:?}: {:?}", parsed.bozo_exception);
        assert_eq!(parsed.format, expected);
        assert_eq!(parsed.items.len(), list.len());
        for (entry, source) in parsed.items.iter().zip(&list) {
            assert_eq!(
                entry.id.as_deref(),
                Some(format!("urn:newsrelay:item:{}", source.id).as_str())
            );
            assert_eq!(
                entry.link.as_deref(),
                source.link.as_deref().filter(|l| l.starts_with("https://"))
            );
            assert_eq!(entry.published, Some(source.display_date()), "{format:?}");
        }
        let hostile = parsed
            .items
            .last()
            .and_then(|e| e.title.clone())
            .unwrap_or_default();
        assert!(
            hostile.contains("<script>alert('t')</script>"),
            "{format:?}: title text kept: {hostile:?}"
        );
    }
}
