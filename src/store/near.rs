//! The near-duplicate index, held in memory and rebuilt from `item_time` when first needed.
//!
//! In: (id, fingerprint, instant first seen) of every stored item, read once from the
//! `item_time` values, and the hash of every claimed link, read once from the `url_index` keys;
//! then kept current by the store as it stages, commits and purges. Out: the ids of stored
//! items whose fingerprint may be within the dedup threshold of a new one, newest first per
//! probe, whether an id is stored at all, and whether a link is certainly unclaimed (then
//! dedup does not read `url_index` for it). It holds no item text and writes nothing to disk; it must
//! never disagree with the committed store for longer than the call that committed (the store
//! updates it under the same lock it reads it with), and never return an unbounded list.
//!
//! The lookup is the one the `fingerprints` tree of schema 3 answered with 68 sled range
//! scans per new item: the fingerprint cut into [`keys::FINGERPRINT_BANDS`] bands of 16 bits,
//! each band's value and the 16 values one bit away probed. In memory a probe is one hash
//! lookup, and an item costs no sled write for its bands (docs/store.md has the figures).

use super::keys;
use crate::classify::words::PassThroughHasher;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

/// The 64-bit hash a canonical link is known by in [`NearIndex`].
pub(super) fn link_hash(link: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(link)
}

/// One indexed item (its fingerprint is in [`NearIndex::fingerprints`], at the same place).
struct Slot {
    id: Box<str>,
    first_seen: i64,
}

/// Hashes a band key ([`band_key`]) by one multiplication: SipHash, the map's default, was
/// most of a probe's cost, and the keys are not chosen by anyone who could make them collide.
#[derive(Default, Clone, Copy)]
pub(super) struct BandKeyHasher(u64);

impl std::hash::Hasher for BandKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Band key: band number in the high bits, band value below.
fn band_key(band: u8, value: u64) -> u32 {
    (u32::from(band) << 16) | (value as u32 & 0xffff)
}

#[derive(Default)]
pub(super) struct NearIndex {
    loaded: bool,
    slots: Vec<Option<Slot>>,
    /// The fingerprint of each slot, apart from the rest: a probe reads many of them to test
    /// the distance and few ids, and 8 bytes a slot stay in cache where whole slots did not.
    fingerprints: Vec<u64>,
    free: Vec<u32>,
    by_id: HashMap<Box<str>, u32>,
    /// Band key → slots, oldest first seen first.
    bands: HashMap<u32, Vec<u32>, BuildHasherDefault<BandKeyHasher>>,
    /// Hashes of every canonical link claimed in the store or the batch, and of links since
    /// released (a superset: a purged or replaced link's hash stays). A link whose hash is
    /// absent is certainly unclaimed, so dedup does not ask sled about it.
    links: HashSet<u64, BuildHasherDefault<PassThroughHasher>>,
}

impl NearIndex {
    pub(super) fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Marks the index complete (after the caller inserted every stored item).
    pub(super) fn mark_loaded(&mut self) {
        self.loaded = true;
    }

    /// Forgets everything; the next lookup rebuilds from the store.
    pub(super) fn reset(&mut self) {
        *self = NearIndex::default();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether an item with this id is stored (every stored item is here, with or without a
    /// fingerprint): a new item's id is looked up here before sled is asked for it.
    pub(super) fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Whether `link` may be claimed by a stored or staged item (false: certainly not).
    pub(super) fn may_claim(&self, link: &str) -> bool {
        self.links.contains(&link_hash(link.as_bytes()))
    }

    /// Records that the link hashed to `hash` ([`link_hash`]) is claimed.
    pub(super) fn claim_hash(&mut self, hash: u64) {
        self.links.insert(hash);
    }

    /// Adds or replaces the entry of `id`. A zero fingerprint (no text) is kept for
    /// [`NearIndex::contains`] but in no band.
    pub(super) fn upsert(&mut self, id: &str, fingerprint: u64, first_seen: i64) {
        if let Some(&at) = self.by_id.get(id) {
            let same_fingerprint = self.fingerprints.get(at as usize) == Some(&fingerprint);
            match self.slots.get(at as usize).and_then(Option::as_ref) {
                Some(s) if same_fingerprint && s.first_seen == first_seen => return,
                _ => self.remove(id),
            }
        }
        let slot = Slot {
            id: id.into(),
            first_seen,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = Some(slot);
                self.fingerprints[at as usize] = fingerprint;
                at
            }
            None => {
                self.slots.push(Some(slot));
                self.fingerprints.push(fingerprint);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(id.into(), at);
        if fingerprint == 0 {
            return;
        }
        for (band, value) in keys::fingerprint_bands(fingerprint) {
            let list = self.bands.entry(band_key(band, value)).or_default();
            // Keep each list in order of first seen (then id), so a probe reads newest first.
            let pos = list.partition_point(|&other| {
                self.slots
                    .get(other as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|o| (o.first_seen, &*o.id) <= (first_seen, id))
            });
            list.insert(pos, at);
        }
    }

    pub(super) fn remove(&mut self, id: &str) {
        let Some(at) = self.by_id.remove(id) else {
            return;
        };
        if self
            .slots
            .get_mut(at as usize)
            .and_then(Option::take)
            .is_none()
        {
            return;
        }
        self.free.push(at);
        let fingerprint = self.fingerprints.get(at as usize).copied().unwrap_or(0);
        if fingerprint == 0 {
            return;
        }
        for (band, value) in keys::fingerprint_bands(fingerprint) {
            let key = band_key(band, value);
            if let Some(list) = self.bands.get_mut(&key) {
                list.retain(|&s| s != at);
                if list.is_empty() {
                    self.bands.remove(&key);
                }
            }
        }
    }

    /// Ids of items whose fingerprint is within `max_distance` bits of `fingerprint`: every
    /// probe in turn, each band value's entries newest first, at most `per_probe` entries
    /// read per probe, each id once.
    pub(super) fn candidates(
        &self,
        fingerprint: u64,
        max_distance: u32,
        per_probe: usize,
    ) -> Vec<String> {
        let mut found: Vec<u32> = Vec::new();
        for (band, value) in keys::fingerprint_probes(fingerprint) {
            let Some(list) = self.bands.get(&band_key(band, value)) else {
                continue;
            };
            for &at in list.iter().rev().take(per_probe) {
                let Some(&other) = self.fingerprints.get(at as usize) else {
                    continue;
                };
                if (other ^ fingerprint).count_ones() <= max_distance && !found.contains(&at) {
                    found.push(at);
                }
            }
        }
        found
            .into_iter()
            .filter_map(|at| self.slots.get(at as usize).and_then(Option::as_ref))
            .map(|slot| slot.id.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_near_fingerprints_newest_first_and_forgets_removed() {
        let mut ix = NearIndex::default();
        let fp = 0x0123_4567_89ab_cdefu64;
        // Both one bit off in the top band: they share the low bands' values exactly, so the
        // first probe lists them, newest first.
        ix.upsert("old", fp ^ (1 << 63), 10);
        ix.upsert("new", fp ^ (1 << 62), 20);
        ix.upsert("far", fp ^ 0x0003_0003_0003_0003, 30);
        ix.upsert("empty", 0, 40);
        assert_eq!(ix.len(), 4);
        assert!(ix.contains("empty") && ix.contains("old") && !ix.contains("nothing"));
        assert_eq!(ix.candidates(fp, 7, 256), vec!["new", "old"]);
        // A replaced fingerprint moves the entry.
        ix.upsert("far", fp, 50);
        assert_eq!(ix.candidates(fp, 7, 256), vec!["far", "new", "old"]);
        ix.remove("new");
        assert_eq!(ix.candidates(fp, 7, 256), vec!["far", "old"]);
        // The freed slot is reused without confusing the lists.
        ix.upsert("again", fp ^ (1 << 61), 5);
        assert_eq!(ix.candidates(fp, 7, 256), vec!["far", "old", "again"]);
        ix.remove("missing");
        ix.remove("empty");
        assert!(!ix.contains("empty"));
        assert_eq!(ix.len(), 3);
    }

    #[test]
    fn a_link_is_unclaimed_until_claimed_and_stays_claimed() {
        let mut ix = NearIndex::default();
        assert!(!ix.may_claim("https://example.org/a"));
        ix.claim_hash(link_hash(b"https://example.org/a"));
        assert!(ix.may_claim("https://example.org/a"));
        assert!(!ix.may_claim("https://example.org/b"));
        ix.claim_hash(link_hash(b"https://example.org/b"));
        assert!(ix.may_claim("https://example.org/b"));
        ix.reset();
        assert!(!ix.may_claim("https://example.org/a"));
    }

    #[test]
    fn a_probe_reads_at_most_its_limit_newest_first() {
        let mut ix = NearIndex::default();
        let fp = 0x0f0f_0f0f_0f0f_0f0fu64;
        for (n, id) in ["a", "b", "c", "d"].iter().enumerate() {
            ix.upsert(id, fp, n as i64);
        }
        // Every probe that matches lists the same four items: two per probe, newest first.
        assert_eq!(ix.candidates(fp, 7, 2), vec!["d", "c"]);
    }

    #[test]
    fn every_fingerprint_within_the_threshold_is_found() {
        let mut ix = NearIndex::default();
        let fp = 0xdead_beef_f00d_cafeu64;
        // 7 bits apart: two in each of three bands, one in the last.
        ix.upsert("near", fp ^ 0x0001_0003_0003_0003, 1);
        ix.upsert("eight", fp ^ 0x0003_0003_0003_0003, 2);
        assert_eq!(ix.candidates(fp, 7, 256), vec!["near"]);
    }
}
