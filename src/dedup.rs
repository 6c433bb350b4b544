//! Deduplication decisions: new items + what the store already knows → intents.
//!
//! In: the normalised items of one feed document and, for each, the stored metadata found for
//! its id, its canonical link and its fingerprint ([`Known`], gathered by the store). Out: one
//! [`Intent`] per item: insert, update (same item, changed content, under a revision cap), skip
//! (unchanged, purged, repeated) or merge into an existing item as another source (same
//! canonical link, or near-duplicate text from another feed). It must never do I/O: the store
//! applies the intents.

use crate::item::{ContentHash, FeedId, IdBasis, Item, ItemId, Source};
use crate::normalize::hamming;
use std::collections::HashSet;

/// Largest SimHash Hamming distance at which two items from different feeds count as the same
/// story. Measured on `fixtures/dedup/pairs.jsonl` (see `docs/dedup.md`): the closest pair of
/// distinct stories is 21 bits apart; 7 merges none of them and catches 106 of 120 same-story
/// pairs (88.3%), and on 2 million pairs of generated long items none is within 7 bits.
pub const NEAR_DUPLICATE_MAX_DISTANCE: u32 = 7;

/// How many content edits an item may receive before further changes are ignored (an item
/// that changes on every fetch would otherwise update forever).
pub const MAX_REVISIONS: u32 = 16;

/// Tunable limits of the decider.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_revisions: u32,
    pub near_duplicate_max_distance: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_revisions: MAX_REVISIONS,
            near_duplicate_max_distance: NEAR_DUPLICATE_MAX_DISTANCE,
        }
    }
}

/// What the store holds about one stored item, as far as decisions need.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMeta {
    pub id: ItemId,
    /// The feed that first brought the item.
    pub feed: FeedId,
    /// Every feed the item arrived through.
    pub source_feeds: Vec<FeedId>,
    /// Each source as (feed, guid or else link): which entries were merged into it.
    pub source_entries: Vec<(FeedId, String)>,
    pub content_hash: ContentHash,
    pub revision: u32,
    pub fingerprint: u64,
    /// The stored headline: a near fingerprint merges only when the headlines agree.
    pub title: String,
}

impl StoredMeta {
    fn has_source(&self, feed: &FeedId) -> bool {
        &self.feed == feed || self.source_feeds.contains(feed)
    }

    /// Whether this very entry (same feed, same guid, else same link) is one of its sources.
    fn holds_entry(&self, item: &Item) -> bool {
        item.sources.iter().any(|s| match entry_key(s) {
            Some(k) => self
                .source_entries
                .iter()
                .any(|(f, e)| f == &s.feed && e == k),
            None => false,
        })
    }
}

/// The key a source entry is recognised by: its guid, else its link.
pub fn entry_key(s: &Source) -> Option<&str> {
    s.guid.as_deref().or(s.link.as_deref())
}

/// The stored metadata found for one new item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    /// The stored item with the same id.
    pub by_id: Option<StoredMeta>,
    /// The stored item with the same canonical link.
    pub by_link: Option<StoredMeta>,
    /// Stored items whose fingerprints may be near (candidates; the decider checks distance).
    pub near: Vec<StoredMeta>,
    /// The id or canonical link was purged and must not come back.
    pub tombstoned: bool,
}

/// Why an item is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Same id, same content hash.
    Unchanged,
    /// The item changed but already reached the revision cap.
    RevisionCap,
    /// Purged by retention; a tombstone keeps it out.
    Tombstoned,
    /// The same id appeared earlier in this document.
    RepeatedInDocument,
    /// This feed is already one of the item's sources.
    AlreadyMerged,
}

/// What to do with one new item.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// A new item.
    Insert(Box<Item>),
    /// New content for a stored item: `item.id` is the stored id and `item.revision` the next
    /// revision; the store keeps the stored `first_seen` and sources.
    Update(Box<Item>),
    Skip {
        id: ItemId,
        reason: SkipReason,
    },
    /// The same story from another feed: add `source` to the stored item `into`.
    MergeSource {
        into: ItemId,
        source: Source,
    },
}

/// The decisions for one document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decisions {
    pub intents: Vec<Intent>,
    /// Items whose guid was new although their link is stored from this feed under another
    /// id: the feed's guids are not stable, and it should fall back to links.
    pub guid_flips: usize,
}

/// Decides one document's items. `known[i]` belongs to `items[i]`; missing entries count as
/// "nothing known".
pub fn decide(items: Vec<Item>, known: &[Known], policy: &Policy) -> Decisions {
    let mut out = Decisions {
        intents: Vec::with_capacity(items.len()),
        guid_flips: 0,
    };
    let mut seen_ids: HashSet<ItemId> = HashSet::new();
    let mut merged_into: HashSet<ItemId> = HashSet::new();
    let nothing = Known::default();
    for (i, mut item) in items.into_iter().enumerate() {
        let k = known.get(i).unwrap_or(&nothing);
        let feed = item.feed.clone();
        if k.tombstoned {
            out.intents.push(Intent::Skip {
                id: item.id,
                reason: SkipReason::Tombstoned,
            });
            continue;
        }
        // The same item of this feed: by id, or by link when its id changed.
        let same_item = k.by_id.as_ref().or_else(|| {
            k.by_link
                .as_ref()
                .filter(|m| m.feed == feed && m.id != item.id)
        });
        if let Some(stored) = same_item {
            if k.by_id.is_none() && item.id_basis == IdBasis::Guid {
                out.guid_flips += 1;
            }
            if !seen_ids.insert(stored.id.clone()) {
                out.intents.push(Intent::Skip {
                    id: stored.id.clone(),
                    reason: SkipReason::RepeatedInDocument,
                });
                continue;
            }
            let reason = if stored.feed != feed {
                Some(SkipReason::AlreadyMerged)
            } else if stored.content_hash == item.content_hash {
                Some(SkipReason::Unchanged)
            } else if stored.revision >= policy.max_revisions {
                Some(SkipReason::RevisionCap)
            } else {
                None
            };
            match reason {
                Some(reason) => out.intents.push(Intent::Skip {
                    id: stored.id.clone(),
                    reason,
                }),
                None => {
                    item.id = stored.id.clone();
                    item.revision = stored.revision.saturating_add(1);
                    out.intents.push(Intent::Update(Box::new(item)));
                }
            }
            continue;
        }
        if !seen_ids.insert(item.id.clone()) {
            out.intents.push(Intent::Skip {
                id: item.id,
                reason: SkipReason::RepeatedInDocument,
            });
            continue;
        }
        // The same story from another feed: canonical link, else near fingerprint.
        let other = k.by_link.as_ref().or_else(|| {
            if item.fingerprint == 0 {
                return None;
            }
            // An item that already has this feed as a source is another story of it, unless
            // it holds this very entry (merged earlier): then it is the candidate, so a
            // re-fetched merged entry is skipped instead of inserted a second time.
            k.near
                .iter()
                .filter(|m| m.fingerprint != 0 && (!m.has_source(&feed) || m.holds_entry(&item)))
                // Close text is not enough: distinct stories can share paragraphs (a
                // boilerplate description of the project, a quoted statement). The same story
                // keeps its headline, give or take a source prefix or case.
                .filter(|m| crate::normalize::headlines_agree(&m.title, &item.title))
                .map(|m| (hamming(m.fingerprint, item.fingerprint), m))
                .filter(|(d, _)| *d <= policy.near_duplicate_max_distance)
                .min_by_key(|(d, _)| *d)
                .map(|(_, m)| m)
        });
        if let Some(target) = other {
            if target.has_source(&feed) || !merged_into.insert(target.id.clone()) {
                out.intents.push(Intent::Skip {
                    id: target.id.clone(),
                    reason: SkipReason::AlreadyMerged,
                });
            } else {
                let source = item.sources.into_iter().next().unwrap_or(Source {
                    feed,
                    guid: None,
                    link: item.link,
                });
                out.intents.push(Intent::MergeSource {
                    into: target.id.clone(),
                    source,
                });
            }
            continue;
        }
        out.intents.push(Intent::Insert(Box::new(item)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Labels;
    use chrono::Utc;

    fn item(feed: &str, id: &str, hash: u64, fp: u64) -> Item {
        Item {
            id: ItemId(id.into()),
            id_basis: IdBasis::Guid,
            feed: FeedId(feed.into()),
            sources: vec![Source {
                feed: FeedId(feed.into()),
                guid: Some(id.into()),
                link: None,
            }],
            link: Some(format!("http://x/{id}")),
            title: "t".into(),
            summary_text: String::new(),
            content_html: String::new(),
            published: None,
            updated: None,
            first_seen: Utc::now(),
            authors: vec![],
            categories: vec![],
            enclosures: vec![],
            content_hash: ContentHash(hash),
            fingerprint: fp,
            revision: 0,
            labels: Labels::default(),
        }
    }

    fn meta(feed: &str, id: &str, hash: u64, revision: u32, fp: u64) -> StoredMeta {
        StoredMeta {
            id: ItemId(id.into()),
            feed: FeedId(feed.into()),
            source_feeds: vec![FeedId(feed.into())],
            source_entries: vec![(FeedId(feed.into()), id.into())],
            content_hash: ContentHash(hash),
            revision,
            fingerprint: fp,
            title: "t".into(),
        }
    }

    #[test]
    fn insert_update_skip_and_cap() {
        let p = Policy::default();
        let known = vec![
            Known::default(),
            Known {
                by_id: Some(meta("a", "2", 7, 0, 0)),
                ..Default::default()
            },
            Known {
                by_id: Some(meta("a", "3", 1, 0, 0)),
                ..Default::default()
            },
            Known {
                by_id: Some(meta("a", "4", 1, p.max_revisions, 0)),
                ..Default::default()
            },
        ];
        let items = vec![
            item("a", "1", 1, 0),
            item("a", "2", 7, 0),
            item("a", "3", 2, 0),
            item("a", "4", 2, 0),
        ];
        let d = decide(items, &known, &p);
        assert!(matches!(d.intents[0], Intent::Insert(_)));
        assert!(matches!(
            d.intents[1],
            Intent::Skip {
                reason: SkipReason::Unchanged,
                ..
            }
        ));
        match &d.intents[2] {
            Intent::Update(i) => assert_eq!(i.revision, 1),
            other => panic!("expected update, got {other:?}"),
        }
        assert!(matches!(
            d.intents[3],
            Intent::Skip {
                reason: SkipReason::RevisionCap,
                ..
            }
        ));
    }

    #[test]
    fn refetched_merged_entry_is_not_inserted_again() {
        let p = Policy::default();
        let fp = 0x1234_5678_9abc_def0;
        // Feed b's entry was merged into a's item earlier; b serves it again.
        let mut merged = meta("a", "x", 1, 0, fp ^ 0b1);
        merged.source_feeds.push(FeedId("b".into()));
        merged.source_entries.push((FeedId("b".into()), "y".into()));
        let known = vec![Known {
            near: vec![merged],
            ..Default::default()
        }];
        let d = decide(vec![item("b", "y", 2, fp)], &known, &p);
        assert!(
            matches!(
                &d.intents[0],
                Intent::Skip {
                    reason: SkipReason::AlreadyMerged,
                    id
                } if id.0 == "x"
            ),
            "{:?}",
            d.intents
        );
        // Another entry of b near the same item is another story of b: a new item.
        let known = vec![Known {
            near: vec![merged_other()],
            ..Default::default()
        }];
        fn merged_other() -> StoredMeta {
            let mut m = meta("a", "x", 1, 0, 0x1234_5678_9abc_def0 ^ 0b1);
            m.source_feeds.push(FeedId("b".into()));
            m.source_entries.push((FeedId("b".into()), "w".into()));
            m
        }
        let d = decide(vec![item("b", "y", 2, fp)], &known, &p);
        assert!(
            matches!(&d.intents[0], Intent::Insert(_)),
            "{:?}",
            d.intents
        );
    }

    #[test]
    fn merge_by_link_and_fingerprint_only_across_feeds() {
        let p = Policy::default();
        let fp = 0xdead_beef_0000_ffff;
        let known = vec![
            Known {
                by_link: Some(meta("a", "x", 1, 0, 0)),
                ..Default::default()
            },
            Known {
                near: vec![meta("a", "y", 1, 0, fp ^ 0b11)],
                ..Default::default()
            },
            Known {
                near: vec![meta("b", "z", 1, 0, fp ^ 0b11)],
                ..Default::default()
            },
            Known {
                near: vec![meta("a", "w", 1, 0, fp ^ 0xffff)],
                ..Default::default()
            },
        ];
        let items = vec![
            item("b", "1", 9, 0),
            item("b", "2", 9, fp),
            item("b", "3", 9, fp),
            item("b", "4", 9, fp),
        ];
        let d = decide(items, &known, &p);
        assert!(matches!(&d.intents[0], Intent::MergeSource { into, .. } if into.0 == "x"));
        assert!(matches!(&d.intents[1], Intent::MergeSource { into, .. } if into.0 == "y"));
        assert!(
            matches!(d.intents[2], Intent::Insert(_)),
            "same feed never merges by fingerprint"
        );
        assert!(
            matches!(d.intents[3], Intent::Insert(_)),
            "far fingerprints stay apart"
        );
    }

    #[test]
    fn near_text_under_another_headline_is_another_story() {
        let p = Policy::default();
        let fp = 0xdead_beef_0000_ffff;
        let mut other = meta("a", "y", 1, 0, fp ^ 0b1);
        other.title = "Prague Process ministerial conference adopts action plan".into();
        let known = vec![
            Known {
                near: vec![other.clone()],
                ..Default::default()
            },
            Known {
                near: vec![other],
                ..Default::default()
            },
        ];
        let mut different = item("b", "1", 9, fp);
        different.title = "MIEUX+ supports labour migration strategy in Ghana".into();
        let mut same = item("b", "2", 9, fp);
        same.title = "ICMPD: PRAGUE PROCESS ministerial conference adopts action plan".into();
        let d = decide(vec![different, same], &known, &p);
        assert!(matches!(d.intents[0], Intent::Insert(_)), "{:?}", d.intents);
        assert!(matches!(&d.intents[1], Intent::MergeSource { into, .. } if into.0 == "y"));
    }

    #[test]
    fn guid_flip_is_detected_and_matched_by_link() {
        let known = vec![Known {
            by_link: Some(meta("a", "old", 1, 0, 0)),
            ..Default::default()
        }];
        let d = decide(vec![item("a", "new", 1, 0)], &known, &Policy::default());
        assert_eq!(d.guid_flips, 1);
        assert!(
            matches!(&d.intents[0], Intent::Skip { id, reason: SkipReason::Unchanged } if id.0 == "old")
        );
    }

    #[test]
    fn tombstones_and_repeats_skip() {
        let known = vec![
            Known {
                tombstoned: true,
                ..Default::default()
            },
            Known::default(),
            Known::default(),
        ];
        let d = decide(
            vec![
                item("a", "1", 1, 0),
                item("a", "2", 1, 0),
                item("a", "2", 1, 0),
            ],
            &known,
            &Policy::default(),
        );
        assert!(matches!(
            d.intents[0],
            Intent::Skip {
                reason: SkipReason::Tombstoned,
                ..
            }
        ));
        assert!(matches!(d.intents[1], Intent::Insert(_)));
        assert!(matches!(
            d.intents[2],
            Intent::Skip {
                reason: SkipReason::RepeatedInDocument,
                ..
            }
        ));
    }
}
