//! Export and import of the whole store as JSON lines.
//!
//! In: the open store (export) or JSON lines (import). Out: one JSON object per line — a header,
//! then items, feed states and tombstones — or the same records written back. Import is
//! idempotent (an item already stored is left alone), writes in batches, each one transaction
//! followed by a flush, and reports progress only after a batch is durable. A bad line is
//! reported with its number and skipped; it never stops the rest.

use super::{decode, encode, keys, Store, StoreError, Tombstone, BATCH};
use crate::item::{FeedId, FeedState, Item};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

const FORMAT: &str = "newsrelay-export";

/// Most bad-line messages kept in a report.
const MAX_REPORTED_ERRORS: usize = 50;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Header {
        format: String,
        schema: u32,
    },
    Item {
        item: Box<Item>,
    },
    FeedState {
        feed: FeedId,
        state: Box<FeedState>,
    },
    Tombstone {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        purged_at: DateTime<Utc>,
    },
}

/// Progress after a durable import batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// Every line up to and including this one (1-based) is durably stored.
    pub durable_through_line: u64,
    /// Items newly stored so far.
    pub items_added: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub lines: u64,
    pub items_added: u64,
    /// Items whose id was already stored (left unchanged).
    pub items_present: u64,
    pub feed_states: u64,
    pub tombstones: u64,
    /// `line N: what was wrong`, at most 50.
    pub errors: Vec<String>,
    pub bad_lines: u64,
}

/// Counts of an export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub items: u64,
    pub feed_states: u64,
    pub tombstones: u64,
}

impl Store {
    /// Writes the whole store to `out` as JSON lines.
    pub fn export(&self, out: &mut dyn Write) -> Result<ExportReport, StoreError> {
        let mut r = ExportReport::default();
        let line = |out: &mut dyn Write, rec: &Record| -> Result<(), StoreError> {
            serde_json::to_writer(&mut *out, rec).map_err(|e| StoreError::Encode(e.to_string()))?;
            out.write_all(b"\n")?;
            Ok(())
        };
        line(
            out,
            &Record::Header {
                format: FORMAT.into(),
                schema: super::SCHEMA_VERSION,
            },
        )?;
        for kv in self.items.iter() {
            let (k, v) = kv?;
            let item: Item = decode(keys::ITEMS, &k, &v)?;
            line(
                out,
                &Record::Item {
                    item: Box::new(item),
                },
            )?;
            r.items += 1;
        }
        for (feed, state) in self.feed_states()? {
            line(
                out,
                &Record::FeedState {
                    feed,
                    state: Box::new(state),
                },
            )?;
            r.feed_states += 1;
        }
        for kv in self.tombstones.iter() {
            let (k, v) = kv?;
            let t: Tombstone = decode(keys::TOMBSTONES, &k, &v)?;
            let text = String::from_utf8_lossy(k.get(1..).unwrap_or_default()).into_owned();
            let (id, url) = match k.first() {
                Some(b'i') => (Some(text), None),
                Some(b'u') => (None, Some(text)),
                _ => continue,
            };
            line(
                out,
                &Record::Tombstone {
                    id,
                    url,
                    purged_at: t.purged_at,
                },
            )?;
            r.tombstones += 1;
        }
        out.flush()?;
        Ok(r)
    }

    /// Reads JSON lines written by [`Store::export`] (or generated in that shape). Calls
    /// `on_durable` after every batch once it is flushed.
    pub fn import(
        &self,
        input: &mut dyn BufRead,
        on_durable: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport, StoreError> {
        let mut r = ImportReport::default();
        let mut pending: Vec<Record> = Vec::with_capacity(BATCH);
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = input.read_line(&mut buf)?;
            if n > 0 {
                r.lines += 1;
                let text = buf.trim();
                if !text.is_empty() {
                    match serde_json::from_str::<Record>(text) {
                        Ok(Record::Header { format, schema }) => {
                            if format != FORMAT || schema > super::SCHEMA_VERSION {
                                r.bad_lines += 1;
                                if r.errors.len() < MAX_REPORTED_ERRORS {
                                    r.errors.push(format!(
                                        "line {}: header {format:?} schema {schema} is not one this build reads",
                                        r.lines
                                    ));
                                }
                            }
                        }
                        Ok(rec) => pending.push(rec),
                        Err(e) => {
                            r.bad_lines += 1;
                            if r.errors.len() < MAX_REPORTED_ERRORS {
                                r.errors.push(format!("line {}: {e}", r.lines));
                            }
                        }
                    }
                }
            }
            if pending.len() >= BATCH || (n == 0 && !pending.is_empty()) {
                self.import_batch(&pending, &mut r)?;
                pending.clear();
                on_durable(ImportProgress {
                    durable_through_line: r.lines,
                    items_added: r.items_added,
                });
            }
            if n == 0 {
                break;
            }
        }
        Ok(r)
    }

    fn import_batch(&self, batch: &[Record], r: &mut ImportReport) -> Result<(), StoreError> {
        let mut encoded_states = Vec::new();
        for rec in batch {
            if let Record::FeedState { feed, state } = rec {
                encoded_states.push((feed.0.as_bytes(), encode(state.as_ref())?));
            }
        }
        let tomb_values: Vec<(Vec<u8>, Vec<u8>)> = batch
            .iter()
            .filter_map(|rec| match rec {
                Record::Tombstone { id, url, purged_at } => {
                    let key = match (id, url) {
                        (Some(id), _) => keys::tombstone_id_key(id),
                        (None, Some(u)) => keys::tombstone_url_key(u),
                        (None, None) => return None,
                    };
                    Some(
                        encode(&Tombstone {
                            purged_at: *purged_at,
                        })
                        .map(|v| (key, v)),
                    )
                }
                _ => None,
            })
            .collect::<Result<_, _>>()?;
        if !tomb_values.is_empty() {
            self.tombstones_written();
        }
        let (added, present, written) = self.exclusive(|| {
            self.transaction(|tx| {
                let (mut added, mut present) = (0u64, 0u64);
                let mut written = Vec::new();
                for rec in batch {
                    if let Record::Item { item } = rec {
                        if tx.items.contains(item.id.0.as_bytes())? {
                            present += 1;
                        } else {
                            // The fingerprint is derived data: recompute it, so an export from a
                            // build with another fingerprint function merges like fresh items.
                            let mut item = item.clone();
                            item.fingerprint =
                                crate::normalize::fingerprint_of(&item.title, &item.content_html);
                            tx.write_item(&item, None)?;
                            written.push(super::Written::of(&item));
                            added += 1;
                        }
                    }
                }
                for (k, v) in &encoded_states {
                    tx.feed_state.insert_blind(*k, v.as_slice())?;
                }
                for (k, v) in &tomb_values {
                    tx.tombstones.insert_blind(k.as_slice(), v.as_slice())?;
                }
                Ok((added, present, written))
            })
        })?;
        self.near_written(&written);
        self.flush()?;
        r.items_added += added;
        r.items_present += present;
        r.feed_states += encoded_states.len() as u64;
        r.tombstones += tomb_values.len() as u64;
        Ok(())
    }
}
