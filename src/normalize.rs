//! Normalisation: one parsed entry → one [`crate::item::Item`].
//!
//! In: a [`crate::parse::Entry`] and its feed's context (feed id, document URL, the id basis
//! the feed uses, the current instant). Out: an `Item` with a canonical absolute link, UTC
//! dates, a plain-text title and short summary, a deterministic id namespaced by feed, a
//! content hash over what a reader sees and a 64-bit SimHash fingerprint. This is the only place
//! an `Item` is built. It must never do I/O, never invent a random id, and never let the size of
//! its input drive unbounded work (text used for hashing is capped).

use crate::item::{ContentHash, Enclosure, FeedId, IdBasis, Item, ItemId, Labels, Source};
use crate::parse::sanitize::html_to_plain_text;
use crate::parse::{Entry, ParsedFeed};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3};

/// Longest plain-text summary kept, in characters (an ellipsis is added when cut).
pub const SUMMARY_CHARS: usize = 280;
/// At most this many words of an item feed its SimHash (bounds the work per item).
pub const FINGERPRINT_MAX_TOKENS: usize = 1500;
/// Items with fewer words than this get fingerprint 0, meaning "too short to compare".
pub const FINGERPRINT_MIN_TOKENS: usize = 8;

/// Query parameters that only track the reader and never change what a link points to.
const TRACKING_PARAMS: &[&str] = &[
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "yclid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "_gl",
    "igshid",
    "mkt_tok",
    "_hsenc",
    "_hsmi",
    "vero_id",
    "vero_conv",
    "oly_anon_id",
    "oly_enc_id",
    "rb_clickid",
    "s_cid",
    "wt_mc",
    "ncid",
    "cmpid",
    "at_medium",
    "at_campaign",
];

/// Everything about the feed an entry came from that normalisation needs.
#[derive(Debug, Clone)]
pub struct FeedContext<'a> {
    /// The configured feed.
    pub feed: &'a FeedId,
    /// The document's URL: base for relative links.
    pub base: Option<&'a url::Url>,
    /// Which key ids are derived from (chosen per document by [`choose_id_basis`]).
    pub id_basis: IdBasis,
    /// When the document was fetched; becomes `first_seen` of new items.
    pub now: DateTime<Utc>,
}

/// A whole document normalised: its items and the id basis that was used for them.
#[derive(Debug, Clone)]
pub struct NormalizedFeed {
    pub items: Vec<Item>,
    pub id_basis: IdBasis,
}

/// Canonical form of a link: absolute (resolved against `base`), scheme and host lower-case,
/// default port dropped, `//` runs in the path collapsed, tracking parameters and the fragment
/// removed. Returns None for text that is not a URL even relative to `base`.
pub fn canonical_url(raw: &str, base: Option<&url::Url>) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let mut url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => base?.join(raw).ok()?,
        Err(_) => return None,
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some(url.to_string());
    }
    url.set_fragment(None);
    if url.path().contains("//") {
        let mut path = String::with_capacity(url.path().len());
        let mut previous_slash = false;
        for c in url.path().chars() {
            if c == '/' && previous_slash {
                continue;
            }
            previous_slash = c == '/';
            path.push(c);
        }
        url.set_path(&path);
    }
    if let Some(query) = url.query() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or("");
                !(pair.is_empty() || is_tracking_param(key))
            })
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            let joined = kept.join("&");
            url.set_query(Some(&joined));
        }
    }
    Some(url.to_string())
}

fn is_tracking_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with("utm_") || TRACKING_PARAMS.contains(&key.as_str())
}

/// The id basis for one document: guids when every entry has one and none repeats, else links
/// under the same rule, else title and date. A feed never moves back up from a fallback it
/// already recorded (`previous`), so its ids stay stable between fetches.
pub fn choose_id_basis(entries: &[Entry], previous: Option<IdBasis>) -> IdBasis {
    let guids_ok = all_present_and_unique(entries.iter().map(|e| e.id.as_deref()));
    let links_ok = all_present_and_unique(entries.iter().map(|e| e.link.as_deref()));
    let from_document = if guids_ok {
        IdBasis::Guid
    } else if links_ok {
        IdBasis::Link
    } else {
        IdBasis::TitleDate
    };
    match previous {
        Some(p) if basis_rank(p) > basis_rank(from_document) => p,
        _ => from_document,
    }
}

fn basis_rank(b: IdBasis) -> u8 {
    match b {
        IdBasis::Guid => 0,
        IdBasis::Link => 1,
        IdBasis::TitleDate => 2,
    }
}

fn all_present_and_unique<'a>(values: impl Iterator<Item = Option<&'a str>>) -> bool {
    let mut seen = HashSet::new();
    for v in values {
        match v.map(str::trim) {
            Some(v) if !v.is_empty() => {
                if !seen.insert(v) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Normalises every entry of a parsed document for one feed.
pub fn normalize_feed(
    parsed: &ParsedFeed,
    feed: &FeedId,
    document_url: Option<&str>,
    previous_basis: Option<IdBasis>,
    now: DateTime<Utc>,
) -> NormalizedFeed {
    let base = document_url.and_then(|u| url::Url::parse(u).ok());
    let id_basis = choose_id_basis(&parsed.items, previous_basis);
    let cx = FeedContext {
        feed,
        base: base.as_ref(),
        id_basis,
        now,
    };
    NormalizedFeed {
        items: parsed
            .items
            .iter()
            .map(|e| normalize_entry(e, &cx))
            .collect(),
        id_basis,
    }
}

/// Normalises one entry. The id basis in `cx` is a per-feed choice; an entry lacking the key
/// it names falls back to the next basis on its own (recorded in `Item.id_basis`).
pub fn normalize_entry(entry: &Entry, cx: &FeedContext<'_>) -> Item {
    let link = entry
        .link
        .as_deref()
        .and_then(|l| canonical_url(l, cx.base))
        .or_else(|| {
            entry
                .links
                .iter()
                .find(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
                .and_then(|l| canonical_url(&l.href, cx.base))
        });
    let title = plain_title(entry);
    let content_source = entry
        .content_html
        .as_deref()
        .or(entry.summary_html.as_deref())
        .unwrap_or("");
    let summary_source = entry
        .summary_html
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .or(entry.content_html.as_deref())
        .unwrap_or("");
    let summary_plain = html_to_plain_text(summary_source);
    // The fingerprint reads the content's plain text: most entries have one body, already
    // made plain for the summary.
    let content_plain = if std::ptr::eq(content_source, summary_source) {
        None
    } else {
        Some(html_to_plain_text(content_source))
    };
    let content_html = content_source.to_string();
    let summary_text = truncate_words(&summary_plain, SUMMARY_CHARS);
    let title = if title.is_empty() {
        truncate_words(&summary_plain, 80)
    } else {
        title
    };
    let guid = entry.id.as_deref().map(str::trim).filter(|g| !g.is_empty());
    let (id, id_basis) = item_id(cx.feed, cx.id_basis, guid, link.as_deref(), &title, entry);
    let enclosures: Vec<Enclosure> = entry
        .enclosures
        .iter()
        .filter_map(|e| {
            Some(Enclosure {
                url: canonical_url(&e.url, cx.base)?,
                mime_type: e.mime_type.clone(),
                length: e.length,
            })
        })
        .collect();
    let content_hash = content_hash(
        &title,
        link.as_deref(),
        &summary_text,
        &content_html,
        &enclosures,
    );
    let fingerprint = simhash(&title, content_plain.as_deref().unwrap_or(&summary_plain));
    let authors = entry
        .authors
        .iter()
        .filter_map(|p| {
            p.name
                .clone()
                .or_else(|| p.raw.clone())
                .or_else(|| p.email.clone())
        })
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    let categories = entry
        .categories
        .iter()
        .filter_map(|c| c.label.clone().or_else(|| c.term.clone()))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    Item {
        id,
        id_basis,
        feed: cx.feed.clone(),
        sources: vec![Source {
            feed: cx.feed.clone(),
            guid: guid.map(str::to_string),
            link: entry.link.clone(),
        }],
        link,
        title,
        summary_text,
        content_html,
        published: entry.published,
        updated: entry.updated,
        first_seen: cx.now,
        authors,
        categories,
        enclosures,
        content_hash,
        fingerprint,
        revision: 0,
        labels: Labels::default(),
    }
}

fn plain_title(entry: &Entry) -> String {
    let raw = entry.title.as_deref().unwrap_or("");
    let is_markup = matches!(entry.title_type.as_deref(), Some("html" | "xhtml"))
        || (raw.contains('<') && raw.contains('>'));
    if is_markup {
        html_to_plain_text(raw)
    } else {
        raw.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Cuts `text` to at most `max` characters at a word boundary, adding `…` when it cut.
pub fn truncate_words(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", at_word.trim_end())
}

fn item_id(
    feed: &FeedId,
    basis: IdBasis,
    guid: Option<&str>,
    link: Option<&str>,
    title: &str,
    entry: &Entry,
) -> (ItemId, IdBasis) {
    let (used, key) = match (basis, guid, link) {
        (IdBasis::Guid, Some(g), _) => (IdBasis::Guid, g.to_string()),
        (IdBasis::Guid | IdBasis::Link, _, Some(l)) => (IdBasis::Link, l.to_string()),
        _ => {
            let date = entry
                .published
                .or(entry.updated)
                .map(|d| d.timestamp().to_string())
                .unwrap_or_default();
            (IdBasis::TitleDate, format!("{title}\u{1f}{date}"))
        }
    };
    (make_id(feed, used, &key), used)
}

/// The id for `key` of kind `basis` in `feed`: 32 hex digits of a 128-bit hash, namespaced by
/// feed so that two feeds' identical guids never collide.
pub fn make_id(feed: &FeedId, basis: IdBasis, key: &str) -> ItemId {
    let tag = match basis {
        IdBasis::Guid => "g",
        IdBasis::Link => "l",
        IdBasis::TitleDate => "t",
    };
    let mut buf = Vec::with_capacity(feed.0.len() + key.len() + 4);
    buf.extend_from_slice(feed.0.as_bytes());
    buf.push(0);
    buf.extend_from_slice(tag.as_bytes());
    buf.push(0);
    buf.extend_from_slice(key.as_bytes());
    ItemId(format!("{:032x}", xxh3_128(&buf)))
}

/// Hash of what a reader sees: title, link, summary, content and enclosures.
pub fn content_hash(
    title: &str,
    link: Option<&str>,
    summary_text: &str,
    content_html: &str,
    enclosures: &[Enclosure],
) -> ContentHash {
    let mut h = Xxh3::new();
    for part in [title, link.unwrap_or(""), summary_text, content_html] {
        h.update(part.as_bytes());
        h.update(&[0xff]);
    }
    for e in enclosures {
        h.update(e.url.as_bytes());
        h.update(&[0xfe]);
    }
    ContentHash(h.digest())
}

/// The near-duplicate fingerprint of an item from what it stores: its title and the plain text
/// of its content (the content, else the summary). The store recomputes it with this same
/// function when the fingerprint changes (schema migration, import).
pub fn fingerprint_of(title: &str, content_html: &str) -> u64 {
    simhash(title, &html_to_plain_text(content_html))
}

/// 64-bit SimHash over the distinct word pairs (bigrams) of `title` and `text`, lower-cased;
/// a pair from the title weighs 2, one from the text 1, and each distinct pair counts once
/// however often it occurs. Counting every occurrence of every single word, as a first version
/// did, lets the common words ("the", "of", "migration") outweigh what a story says, so long
/// texts on one subject converge and distinct stories merged (docs/dedup.md). Returns 0 when
/// there are fewer than [`FINGERPRINT_MIN_TOKENS`] words: too little text to call two items
/// the same story. At most [`FINGERPRINT_MAX_TOKENS`] words are read.
pub fn simhash(title: &str, text: &str) -> u64 {
    let (features, tokens) = word_pair_features(title, text);
    fingerprint_of_features(features, tokens)
}

/// The weighted word pairs of `title` (weight 2) and `text` (weight 1), in reading order, and
/// the number of words read (at most [`FINGERPRINT_MAX_TOKENS`]).
fn word_pair_features(title: &str, text: &str) -> (Vec<(u64, i32)>, usize) {
    // (feature hash, weight); sorted and deduplicated by `fingerprint_of_features`.
    let mut features: Vec<(u64, i32)> = Vec::with_capacity(256);
    let mut tokens = 0usize;
    let mut word: Vec<u8> = Vec::with_capacity(32);
    'parts: for (source, weight) in [(title, 2), (text, 1)] {
        // Each part's pairs start afresh: no pair spans the title and the text.
        let mut previous: Option<u64> = None;
        let bytes = source.as_bytes();
        let mut at = 0;
        // One past the end: the word still open there ends.
        while at <= bytes.len() {
            // ASCII by the byte (most text); other characters decoded one at a time.
            let ends_word = match bytes.get(at) {
                Some(&b) if b.is_ascii() => {
                    at += 1;
                    if b.is_ascii_alphanumeric() {
                        word.push(b.to_ascii_lowercase());
                        continue;
                    }
                    true
                }
                Some(_) => match source.get(at..).and_then(|rest| rest.chars().next()) {
                    Some(c) => {
                        at += c.len_utf8();
                        if c.is_alphanumeric() {
                            for lower in c.to_lowercase() {
                                let mut buf = [0u8; 4];
                                word.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
                            }
                            continue;
                        }
                        true
                    }
                    // Not at a character boundary: cannot happen in a `str` read this way.
                    None => break,
                },
                None => {
                    at += 1;
                    true
                }
            };
            if ends_word && !word.is_empty() {
                if tokens == FINGERPRINT_MAX_TOKENS {
                    // Nothing after this adds a feature.
                    break 'parts;
                }
                let h = xxh3_64(&word);
                if let Some(p) = previous {
                    features.push((word_pair_hash(p, h), weight));
                }
                previous = Some(h);
                tokens += 1;
                word.clear();
            }
        }
        word.clear();
    }
    (features, tokens)
}

/// The feature of two words read one after the other, from their hashes. Order matters:
/// "border management" is not "management border".
fn word_pair_hash(previous: u64, word: u64) -> u64 {
    let mut pair = [0u8; 16];
    pair[..8].copy_from_slice(&previous.to_le_bytes());
    pair[8..].copy_from_slice(&word.to_le_bytes());
    xxh3_64(&pair)
}

/// SimHash of weighted features; 0 when fewer than [`FINGERPRINT_MIN_TOKENS`] words were read.
fn fingerprint_of_features(mut features: Vec<(u64, i32)>, tokens: usize) -> u64 {
    if tokens < FINGERPRINT_MIN_TOKENS {
        return 0;
    }
    // Higher weight first within a hash, so dedup keeps it.
    features.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    features.dedup_by_key(|f| f.0);
    // Per bit, the weight of the features that set it, against the total: a bit is in the
    // fingerprint when the features setting it outweigh those that do not. Branch-free, so
    // the compiler vectorises the per-bit loop (it was a tenth of the first cycle's normalise).
    let mut set = [0i32; 64];
    let mut total = 0i32;
    for (h, weight) in features {
        total += weight;
        for (bit, slot) in set.iter_mut().enumerate() {
            *slot += ((h >> bit) & 1) as i32 * weight;
        }
    }
    set.iter().enumerate().fold(0u64, |acc, (bit, w)| {
        if 2 * *w > total {
            acc | (1 << bit)
        } else {
            acc
        }
    })
}

/// Share of the shorter headline's distinct words that the two headlines must have in common
/// to be one story's (with the text's fingerprint close as well).
pub const HEADLINE_MIN_OVERLAP: f64 = 0.6;

/// Whether two headlines can be the same story's: at least [`HEADLINE_MIN_OVERLAP`] of the
/// shorter one's distinct lower-cased words appear in the other. A source prefix ("ICMPD:"),
/// case and punctuation do not matter; a different headline does.
pub fn headlines_agree(a: &str, b: &str) -> bool {
    let words = |s: &str| -> HashSet<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (a, b) = (words(a), words(b));
    let (small, large) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if small.is_empty() {
        // No headline to compare: the text alone decides.
        return true;
    }
    let shared = small.iter().filter(|w| large.contains(*w)).count();
    shared as f64 >= HEADLINE_MIN_OVERLAP * small.len() as f64
}

/// Number of differing bits between two fingerprints.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_urls() {
        let c = |s| canonical_url(s, None);
        assert_eq!(
            c("HTTPS://WWW.ICMPD.org:443//news-centre//x/?utm_source=rss&id=3&fbclid=z#top"),
            Some("https://www.icmpd.org/news-centre/x/?id=3".into())
        );
        assert_eq!(
            c("http://a.org:80/p?utm_medium=x"),
            Some("http://a.org/p".into())
        );
        assert_eq!(c("http://a.org:8080/p"), Some("http://a.org:8080/p".into()));
        assert_eq!(c("not a url"), None);
        let base = url::Url::parse("https://www.icmpd.org/news-centre/rss/").unwrap();
        assert_eq!(
            canonical_url("../item-1", Some(&base)),
            Some("https://www.icmpd.org/news-centre/item-1".into())
        );
    }

    fn entry(id: Option<&str>, link: Option<&str>, title: &str) -> Entry {
        Entry {
            id: id.map(str::to_string),
            link: link.map(str::to_string),
            title: Some(title.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn id_basis_falls_back_and_is_sticky() {
        let good = vec![
            entry(Some("a"), Some("http://x/1"), "A"),
            entry(Some("b"), Some("http://x/2"), "B"),
        ];
        assert_eq!(choose_id_basis(&good, None), IdBasis::Guid);
        assert_eq!(choose_id_basis(&good, Some(IdBasis::Link)), IdBasis::Link);
        let repeated = vec![
            entry(Some("a"), Some("http://x/1"), "A"),
            entry(Some("a"), Some("http://x/2"), "B"),
        ];
        assert_eq!(choose_id_basis(&repeated, None), IdBasis::Link);
        let neither = vec![entry(None, None, "A"), entry(None, Some("http://x/2"), "B")];
        assert_eq!(choose_id_basis(&neither, None), IdBasis::TitleDate);
    }

    #[test]
    fn ids_are_deterministic_and_namespaced() {
        let a = FeedId("a".into());
        let b = FeedId("b".into());
        let now = Utc::now();
        let e = entry(Some("same-guid"), None, "T");
        let cx = |f| FeedContext {
            feed: f,
            base: None,
            id_basis: IdBasis::Guid,
            now,
        };
        let ia = normalize_entry(&e, &cx(&a));
        assert_eq!(ia.id, normalize_entry(&e, &cx(&a)).id);
        assert_ne!(ia.id, normalize_entry(&e, &cx(&b)).id);
        assert_eq!(ia.id.0.len(), 32);
    }

    #[test]
    fn content_hash_ignores_fetch_time() {
        let f = FeedId("a".into());
        let e = entry(Some("g"), Some("http://x/1"), "Title");
        let cx1 = FeedContext {
            feed: &f,
            base: None,
            id_basis: IdBasis::Guid,
            now: Utc::now(),
        };
        let mut cx2 = cx1.clone();
        cx2.now = cx1.now + chrono::Duration::hours(5);
        assert_eq!(
            normalize_entry(&e, &cx1).content_hash,
            normalize_entry(&e, &cx2).content_hash
        );
        let mut edited = e.clone();
        edited.title = Some("Title, corrected".into());
        assert_ne!(
            normalize_entry(&e, &cx1).content_hash,
            normalize_entry(&edited, &cx1).content_hash
        );
    }

    /// The word pairs as the fingerprint first read them, one `char` at a time: the byte-wise
    /// loop of [`word_pair_features`] must read the same pairs from every text (stored
    /// fingerprints stay valid).
    fn word_pair_features_by_chars(title: &str, text: &str) -> (Vec<(u64, i32)>, usize) {
        let mut features: Vec<(u64, i32)> = Vec::new();
        let mut tokens = 0usize;
        let mut word = String::new();
        for (source, weight) in [(title, 2), (text, 1)] {
            let mut previous: Option<u64> = None;
            for c in source.chars().chain(std::iter::once(' ')) {
                if c.is_alphanumeric() {
                    word.extend(c.to_lowercase());
                    continue;
                }
                if !word.is_empty() {
                    if tokens < FINGERPRINT_MAX_TOKENS {
                        let h = xxh3_64(word.as_bytes());
                        if let Some(p) = previous {
                            features.push((word_pair_hash(p, h), weight));
                        }
                        previous = Some(h);
                        tokens += 1;
                    }
                    word.clear();
                }
            }
        }
        (features, tokens)
    }

    #[test]
    fn simhash_bytewise_matches_the_char_loop() {
        let pieces = [
            "Migration",
            "policy",
            "ICMPD",
            "Prague",
            "Process",
            "Ünïcödé",
            "ŞEHİR",
            "Straße",
            "İstanbul",
            "MIEUX+",
            "2019",
            "dialogue",
            "Ελλάδα",
            "Україна",
            "مرحبا",
            "日本語",
            "e\u{301}",
            "Ǆ",
            "ﬁne",
            "—",
            "…",
            ", ",
            ". ",
            "\n",
            "  ",
            "-",
            "'s",
            "&amp;",
            "<b>",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..400 {
            let mut make = |n: u64| {
                let mut t = String::new();
                for _ in 0..n {
                    t.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                    if next() % 3 > 0 {
                        t.push(' ');
                    }
                }
                t
            };
            let title = make(3 + round % 12);
            let text = make(if round % 50 == 0 { 2000 } else { round % 90 });
            let by_chars = word_pair_features_by_chars(&title, &text);
            assert_eq!(
                word_pair_features(&title, &text),
                by_chars,
                "{title:?} / {text:?}"
            );
            assert_eq!(
                simhash(&title, &text),
                fingerprint_of_features(by_chars.0, by_chars.1)
            );
        }
        let long = "word ".repeat(3000);
        assert_eq!(
            word_pair_features("a b c", &long),
            word_pair_features_by_chars("a b c", &long)
        );
    }

    #[test]
    fn simhash_near_and_far() {
        let a = simhash("ICMPD opens office in Skopje", "The International Centre for Migration Policy Development opened a new office in Skopje to support border management in the Western Balkans.");
        let b = simhash("ICMPD opens office in Skopje", "The International Centre for Migration Policy Development opened a new office in Skopje to support border management in the Western Balkans region.");
        let c = simhash("Rabat Process ministerial meeting", "Ministers of the Rabat Process met in Cadiz to adopt a new action plan on migration and development between Europe and Africa.");
        assert!(
            hamming(a, b) < hamming(a, c),
            "{} vs {}",
            hamming(a, b),
            hamming(a, c)
        );
        assert_eq!(simhash("short", "too few words"), 0);
    }

    #[test]
    fn headlines_agree_across_prefix_and_case_only() {
        let h = "Project News: Enhancing Integrated Border Management in the Silk Routes Region";
        assert!(headlines_agree(h, &format!("ICMPD: {}", h.to_uppercase())));
        assert!(headlines_agree(h, h));
        assert!(!headlines_agree(
            h,
            "Project News: Sfax municipality hosts MC2CM peer-learning event"
        ));
        assert!(headlines_agree("", h));
    }

    #[test]
    fn truncation_is_bounded() {
        let long = "word ".repeat(200);
        let t = truncate_words(&long, 50);
        assert!(t.chars().count() <= 51);
        assert!(t.ends_with('…'));
    }
}
