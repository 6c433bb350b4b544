//! The feed list as OPML: export the configured feeds, import another reader's subscriptions.
//!
//! In: configured feeds (export) or OPML bytes plus the current config text (import). Out: an
//! OPML 2.0 document, or the config text with one `[[feeds]]` table appended per new feed
//! (ids derived from titles, made unique; feeds already configured by URL are skipped, URLs
//! that are not http or https are rejected). It must never write a config that does not
//! validate; the caller writes the file only after validation, atomically.

use crate::config::FeedSettings;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use std::collections::HashSet;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FeedListError {
    #[error("OPML is not well-formed at byte {position}: {message}")]
    Xml { position: u64, message: String },
    #[error("OPML has no outline with an xmlUrl")]
    Empty,
}

/// One subscription found in an OPML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub title: Option<String>,
    pub url: String,
}

/// Renders the configured feeds as OPML 2.0.
pub fn export_opml(feeds: &[FeedSettings]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n<head>\n<title>newsrelay feeds</title>\n</head>\n<body>\n",
    );
    for f in feeds {
        let title = f.title.as_deref().unwrap_or(&f.id);
        out.push_str(&format!(
            "<outline type=\"rss\" text=\"{}\" title=\"{}\" xmlUrl=\"{}\"/>\n",
            escape(title),
            escape(title),
            escape(f.url.as_str())
        ));
    }
    out.push_str("</body>\n</opml>\n");
    out
}

/// Reads every `<outline xmlUrl=...>` of an OPML document (nested folders included).
pub fn read_opml(bytes: &[u8]) -> Result<Vec<Subscription>, FeedListError> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut subs = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| FeedListError::Xml {
                position: reader.buffer_position(),
                message: e.to_string(),
            })?;
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"outline" => {
                let mut url = None;
                let mut title = None;
                let mut text = None;
                for attr in e.attributes().flatten() {
                    let value = attr
                        .decode_and_unescape_value(reader.decoder())
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default();
                    if value.is_empty() {
                        continue;
                    }
                    match attr.key.local_name().as_ref() {
                        b"xmlUrl" | b"xmlurl" => url = Some(value),
                        b"title" => title = Some(value),
                        b"text" => text = Some(value),
                        _ => {}
                    }
                }
                if let Some(url) = url {
                    subs.push(Subscription {
                        title: title.or(text),
                        url,
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if subs.is_empty() {
        return Err(FeedListError::Empty);
    }
    Ok(subs)
}

/// A feed id from a title or URL: lower-case letters, digits and '-', unique among `taken`.
pub fn feed_id_for(sub: &Subscription, taken: &HashSet<String>) -> String {
    let source = sub.title.as_deref().unwrap_or(&sub.url);
    let mut id = String::new();
    for c in source.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
        if id.len() >= 40 {
            break;
        }
    }
    let base = id.trim_matches('-').to_string();
    let base = if base.is_empty() {
        "feed".to_string()
    } else {
        base
    };
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    candidate
}

/// What an import did: the new config text and, per subscription, what became of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    pub text: String,
    /// (id, url) of each feed table appended.
    pub added: Vec<(String, String)>,
    /// URLs already configured (or repeated in the OPML), left alone.
    pub present: Vec<String>,
    /// (url, reason) of outlines that cannot be a feed (not an http or https URL).
    pub rejected: Vec<(String, String)>,
}

/// The config text with a `[[feeds]]` table appended for each subscription whose URL is not
/// configured yet. Only http and https URLs are taken; others are listed as rejected.
pub fn append_feeds(
    config_text: &str,
    existing: &[FeedSettings],
    subs: &[Subscription],
) -> Appended {
    let mut taken: HashSet<String> = existing.iter().map(|f| f.id.clone()).collect();
    let mut urls: HashSet<String> = existing.iter().map(|f| f.url.clone()).collect();
    let mut r = Appended {
        text: config_text.to_string(),
        ..Default::default()
    };
    if !r.text.ends_with('\n') && !r.text.is_empty() {
        r.text.push('\n');
    }
    for sub in subs {
        let normalized = match url::Url::parse(&sub.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u.to_string(),
            Ok(u) => {
                let reason = format!("scheme {:?} is not http or https", u.scheme());
                r.rejected.push((sub.url.clone(), reason));
                continue;
            }
            Err(e) => {
                r.rejected
                    .push((sub.url.clone(), format!("not a URL: {e}")));
                continue;
            }
        };
        if !urls.insert(normalized.clone()) {
            r.present.push(normalized);
            continue;
        }
        let id = feed_id_for(sub, &taken);
        taken.insert(id.clone());
        r.text.push_str("\n[[feeds]]\n");
        r.text.push_str(&format!("id = {}\n", toml_string(&id)));
        r.text
            .push_str(&format!("url = {}\n", toml_string(&normalized)));
        if let Some(t) = &sub.title {
            r.text.push_str(&format!("title = {}\n", toml_string(t)));
        }
        r.added.push((id, normalized));
    }
    r
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    const OPML: &str = r#"<?xml version="1.0"?><opml version="1.0"><head><title>x</title></head><body>
      <outline text="Migration">
        <outline text="ICMPD News &amp; Events" type="rss" xmlUrl="https://www.icmpd.org/news-centre/rss/"/>
        <outline title="Prague Process" xmlUrl="https://www.pragueprocess.eu/en/news?format=rss"/>
      </outline>
      <outline text="no url"/>
    </body></opml>"#;

    #[test]
    fn reads_nested_outlines() {
        let subs = read_opml(OPML.as_bytes()).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].title.as_deref(), Some("ICMPD News & Events"));
        assert_eq!(
            subs[1].url,
            "https://www.pragueprocess.eu/en/news?format=rss"
        );
    }

    #[test]
    fn broken_opml_is_a_clear_error() {
        let e = read_opml(b"<opml><body><outline xmlUrl='x'></body>").unwrap_err();
        assert!(e.to_string().contains("byte"), "{e}");
        assert!(matches!(read_opml(b"<opml/>"), Err(FeedListError::Empty)));
    }

    #[test]
    fn import_appends_valid_unique_feeds_and_skips_known_urls() {
        let base = "[store]\npath = \"db\"\n[[feeds]]\nid = \"icmpd-news-events\"\nurl = \"https://example.org/other\"\n[log]\nlevel = \"info\"";
        let path = Path::new("/tmp/x/newsrelay.toml");
        let cfg = Config::from_str_at(base, path).unwrap();
        let subs = read_opml(OPML.as_bytes()).unwrap();
        let r = append_feeds(base, &cfg.feeds, &subs);
        assert_eq!(r.added.len(), 2);
        let text = r.text;
        let cfg2 = Config::from_str_at(&text, path).unwrap();
        let ids: Vec<_> = cfg2.feeds.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            ["icmpd-news-events", "icmpd-news-events-2", "prague-process"]
        );
        // A second import adds nothing.
        let again = append_feeds(&text, &cfg2.feeds, &subs);
        assert!(again.added.is_empty());
        assert_eq!(again.present.len(), 2);
        // Export round-trips through import.
        let back = read_opml(export_opml(&cfg2.feeds).as_bytes()).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(
            back[2].url,
            "https://www.pragueprocess.eu/en/news?format=rss"
        );
    }

    #[test]
    fn import_rejects_what_cannot_be_a_feed() {
        let subs = vec![
            Subscription {
                title: None,
                url: "javascript:alert(1)".into(),
            },
            Subscription {
                title: None,
                url: "not a url".into(),
            },
            Subscription {
                title: Some("Ok".into()),
                url: "HTTP://Example.org".into(),
            },
        ];
        let r = append_feeds("", &[], &subs);
        assert_eq!(r.rejected.len(), 2, "{r:?}");
        assert_eq!(
            r.added,
            [("ok".to_string(), "http://example.org/".to_string())]
        );
    }
}
