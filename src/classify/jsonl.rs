//! The `newsrelay classify` streams: JSON lines of items (or a feed document) in, JSON lines of
//! labels out.
//!
//! In: a reader of `{"id","title","summary","content_html","link"}` lines (optional `"feed"`:
//! a configured feed id whose default labels apply), or a parsed feed. Out: one
//! `{"id","programmes","initiatives","regions","taxonomy_version"}` line per item. A bad line is
//! reported as `NAME:LINE: what` and skipped; the rest goes on. HTML is turned into plain text
//! with the shared sanitiser before classification.

use super::{Classifier, ItemText};
use crate::item::{Label, Labels};
use crate::parse::sanitize::html_to_plain_text;
use crate::parse::ParsedFeed;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// One input line.
#[derive(Debug, Deserialize)]
struct InputItem {
    #[serde(default)]
    id: serde_json::Value,
    #[serde(default)]
    title: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    content_html: String,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    feed: Option<String>,
}

/// One output line.
#[derive(Debug, Serialize)]
pub struct OutputItem<'a> {
    pub id: &'a serde_json::Value,
    pub programmes: &'a [Label],
    pub initiatives: &'a [Label],
    pub regions: &'a [Label],
    pub taxonomy_version: String,
}

/// What a stream run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamReport {
    pub classified: usize,
    /// One line per rejected input line: `NAME:LINE: what`.
    pub errors: Vec<String>,
}

fn write_labels(
    out: &mut impl Write,
    id: &serde_json::Value,
    labels: &Labels,
) -> std::io::Result<()> {
    let line = OutputItem {
        id,
        programmes: &labels.programmes,
        initiatives: &labels.initiatives,
        regions: &labels.regions,
        taxonomy_version: format!("{:016x}", labels.taxonomy_version),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Classifies JSON lines from `input`, writing JSON lines to `out`. `feed_defaults` maps a
/// line's `"feed"` to that feed's default labels. `name` names the input in error lines.
pub fn classify_json_lines<'f>(
    classifier: &Classifier,
    input: impl BufRead,
    out: &mut impl Write,
    name: &str,
    feed_defaults: impl Fn(&str) -> Option<&'f [String]>,
) -> std::io::Result<StreamReport> {
    let mut report = StreamReport::default();
    for (n, line) in input.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                report
                    .errors
                    .push(format!("{name}:{}: not UTF-8 text, skipped", n + 1));
                continue;
            }
            Err(e) => return Err(e),
        };
        if line.trim().is_empty() {
            continue;
        }
        let item: InputItem = match serde_json::from_str(&line) {
            Ok(i) => i,
            Err(e) => {
                report.errors.push(format!(
                    "{name}:{}: not an item object ({e}), skipped",
                    n + 1
                ));
                continue;
            }
        };
        let summary = html_to_plain_text(&item.summary);
        let content = html_to_plain_text(&item.content_html);
        let text = ItemText {
            title: &item.title,
            summary: &summary,
            content_text: &content,
            link: item.link.as_deref(),
        };
        let defaults = item.feed.as_deref().and_then(&feed_defaults).unwrap_or(&[]);
        let labels = classifier.classify(&text, defaults);
        write_labels(out, &item.id, &labels)?;
        report.classified += 1;
    }
    out.flush()?;
    Ok(report)
}

/// Classifies every entry of a parsed feed, writing JSON lines (id = the entry's id, else its
/// link, else its position).
pub fn classify_feed(
    classifier: &Classifier,
    feed: &ParsedFeed,
    out: &mut impl Write,
    feed_defaults: &[String],
) -> std::io::Result<StreamReport> {
    let mut report = StreamReport::default();
    for (i, entry) in feed.items.iter().enumerate() {
        let title = html_to_plain_text(entry.title.as_deref().unwrap_or_default());
        let summary = html_to_plain_text(entry.summary_html.as_deref().unwrap_or_default());
        let content = html_to_plain_text(entry.content_html.as_deref().unwrap_or_default());
        let text = ItemText {
            title: &title,
            summary: &summary,
            content_text: &content,
            link: entry.link.as_deref(),
        };
        let labels = classifier.classify(&text, feed_defaults);
        let id = entry
            .id
            .clone()
            .or_else(|| entry.link.clone())
            .map_or(serde_json::Value::from(i), serde_json::Value::from);
        write_labels(out, &id, &labels)?;
        report.classified += 1;
    }
    out.flush()?;
    Ok(report)
}
