//! Key and value layouts of every tree, in one place.
//!
//! In: ids, instants, label ids, URLs. Out: byte keys whose lexicographic order is the order the
//! queries scan in (instants big-endian with the sign bit flipped), and values that start with a
//! version byte. It must never panic on a malformed key read back from disk: decoders return
//! `None`.

use chrono::{DateTime, TimeZone, Utc};

/// Tree names.
/// Schema 4 and older: items by id. Migrated into `item_log` and `item_ids`, then dropped.
pub const ITEMS: &str = "items";
/// Sequence number (8 bytes, big-endian) → item value (`store::items`).
pub const ITEM_LOG: &str = "item_log";
/// Item id → its sequence number in `item_log`.
pub const ITEM_IDS: &str = "item_ids";
pub const ITEM_TIME: &str = "item_time";
pub const FEED_TIME: &str = "feed_time";
pub const LABEL_TIME: &str = "label_time";
pub const URL_INDEX: &str = "url_index";
/// Schema 3's near-duplicate band entries; dropped by the migration to schema 4.
pub const FINGERPRINTS: &str = "fingerprints";
pub const FEED_STATE: &str = "feed_state";
pub const TOMBSTONES: &str = "tombstones";
pub const DIGEST_LEDGER: &str = "digest_ledger";
pub const META: &str = "meta";

/// `meta` keys.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
pub const META_RELABEL_PROGRESS: &[u8] = b"relabel_progress";

/// First byte of every value this version writes, except items.
pub const VALUE_VERSION: u8 = 1;

/// First byte of an item value: LZ4 block of the JSON, its length (4 bytes, little-endian)
/// first. Items are the large values; sled's cost per insert grows with the bytes of the leaf
/// it rewrites (docs/design-notes.md, "Store write batches").
pub const VALUE_VERSION_LZ4: u8 = 2;

/// Largest decompressed value accepted when reading: a corrupt length must not allocate
/// without bound.
pub const MAX_DECODED_VALUE: usize = 64 * 1024 * 1024;

/// Separates a feed or label id from the instant in composite keys (ids never contain NUL).
pub const SEP: u8 = 0;

/// Number of bands the 64-bit fingerprint is cut into for near-duplicate lookup, each
/// `64 / FINGERPRINT_BANDS` = 16 bits wide. A lookup probes, in every band, the band's own
/// value and the 16 values one bit away ([`fingerprint_probes`]). Two fingerprints at most
/// `2 × FINGERPRINT_BANDS - 1` = 7 bits apart differ in at most one bit in at least one band
/// (pigeonhole), so the probes find every pair within the dedup threshold, while 16-bit band
/// values keep each probe to the few entries that really share it (one item in 65,536).
/// It is the layout of the in-memory near-duplicate index (`store::near`), rebuilt on open.
pub const FINGERPRINT_BANDS: u32 = 4;
const _: () = assert!(2 * FINGERPRINT_BANDS > crate::dedup::NEAR_DUPLICATE_MAX_DISTANCE);

/// An instant as 8 bytes that sort in time order (microseconds, sign bit flipped, big-endian).
pub fn instant(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn decode_instant(b: &[u8]) -> Option<DateTime<Utc>> {
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    let micros = (u64::from_be_bytes(arr) ^ (1 << 63)) as i64;
    Utc.timestamp_micros(micros).single()
}

/// `item_time`: instant ‖ id.
pub fn time_key(t: DateTime<Utc>, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&instant(t));
    k.extend_from_slice(id.as_bytes());
    k
}

/// Splits an `item_time` key (or the tail of a prefixed one) into instant and id.
pub fn split_time_key(k: &[u8]) -> Option<(DateTime<Utc>, String)> {
    let t = decode_instant(k)?;
    let id = std::str::from_utf8(k.get(8..)?).ok()?;
    Some((t, id.to_string()))
}

/// Prefix of `feed_time` / `label_time` keys for one feed or label: name ‖ NUL.
pub fn scoped_prefix(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.extend_from_slice(name.as_bytes());
    k.push(SEP);
    k
}

/// `feed_time` / `label_time`: name ‖ NUL ‖ instant ‖ id.
pub fn scoped_time_key(name: &str, t: DateTime<Utc>, id: &str) -> Vec<u8> {
    let mut k = scoped_prefix(name);
    k.extend_from_slice(&time_key(t, id));
    k
}

/// Splits a scoped key into name, instant and id.
pub fn split_scoped_key(k: &[u8]) -> Option<(&str, DateTime<Utc>, String)> {
    let at = k.iter().position(|b| *b == SEP)?;
    let name = std::str::from_utf8(k.get(..at)?).ok()?;
    let (t, id) = split_time_key(k.get(at + 1..)?)?;
    Some((name, t, id))
}

/// The (band number, band value) pairs of a fingerprint.
pub fn fingerprint_bands(fp: u64) -> impl Iterator<Item = (u8, u64)> {
    let width = 64 / FINGERPRINT_BANDS;
    let mask = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    (0..FINGERPRINT_BANDS).map(move |b| (b as u8, (fp >> (b * width)) & mask))
}

/// The (band, value) prefixes a near-duplicate lookup reads: each band's value and every
/// value one bit away from it (4 × 17 = 68 probes).
pub fn fingerprint_probes(fp: u64) -> impl Iterator<Item = (u8, u64)> {
    let width = 64 / FINGERPRINT_BANDS;
    fingerprint_bands(fp).flat_map(move |(band, value)| {
        std::iter::once((band, value)).chain((0..width).map(move |bit| (band, value ^ (1 << bit))))
    })
}

/// `item_time` value: the item's fingerprint (8 bytes, big-endian).
pub fn encode_fingerprint(fp: u64) -> [u8; 8] {
    fp.to_be_bytes()
}

/// Reads an `item_time` value; an empty or malformed one (schema 3 and older) reads as 0, no
/// fingerprint.
pub fn decode_fingerprint(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// `tombstones`: `i` ‖ id, and `u` ‖ canonical URL.
pub fn tombstone_id_key(id: &str) -> Vec<u8> {
    let mut k = b"i".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn tombstone_url_key(url: &str) -> Vec<u8> {
    let mut k = b"u".to_vec();
    k.extend_from_slice(url.as_bytes());
    k
}

/// A value: version byte ‖ JSON.
pub fn encode_value<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(512);
    out.push(VALUE_VERSION);
    serde_json::to_writer(&mut out, v)?;
    Ok(out)
}

/// JSON shorter than this is stored plain (version 1): LZ4 saves little on a short value,
/// and compressing it was a third of encoding an item.
pub const COMPRESS_FROM: usize = 1024;

/// A value compressed: version 2 byte ‖ JSON length (u32, little-endian) ‖ LZ4 block; or,
/// when the JSON is shorter than [`COMPRESS_FROM`], version 1 byte ‖ JSON.
/// `size_hint`: the JSON's expected length, reserved up front.
pub fn encode_compressed_value<T: serde::Serialize>(
    v: &T,
    size_hint: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut plain = Vec::with_capacity(size_hint + 1);
    plain.push(VALUE_VERSION);
    serde_json::to_writer(&mut plain, v)?;
    let json = &plain[1..];
    if json.len() < COMPRESS_FROM {
        return Ok(plain);
    }
    let len = u32::try_from(json.len())
        .ok()
        .filter(|n| (*n as usize) <= MAX_DECODED_VALUE)
        .ok_or_else(|| invalid(format!("value of {} bytes is too large", json.len())))?;
    let mut out = vec![0; 5 + lz4_flex::block::get_maximum_output_size(json.len())];
    out[0] = VALUE_VERSION_LZ4;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    let n = lz4_flex::block::compress_into(json, &mut out[5..])
        .map_err(|e| invalid(format!("cannot compress: {e}")))?;
    out.truncate(5 + n);
    Ok(out)
}

fn invalid(message: String) -> serde_json::Error {
    serde_json::Error::io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        message,
    ))
}

/// Reads a value written by this version (plain or compressed), or an unversioned JSON value
/// of schema 1.
pub fn decode_value<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, serde_json::Error> {
    match b.first() {
        Some(&VALUE_VERSION) => serde_json::from_slice(b.get(1..).unwrap_or_default()),
        Some(&VALUE_VERSION_LZ4) => {
            let len = b
                .get(1..5)
                .and_then(|l| <[u8; 4]>::try_from(l).ok())
                .map(|l| u32::from_le_bytes(l) as usize)
                .ok_or_else(|| invalid("compressed value without its length".into()))?;
            if len > MAX_DECODED_VALUE {
                return Err(invalid(format!(
                    "compressed value claims {len} bytes, more than {MAX_DECODED_VALUE}"
                )));
            }
            let mut json = vec![0; len];
            let n = lz4_flex::block::decompress_into(b.get(5..).unwrap_or_default(), &mut json)
                .map_err(|e| invalid(format!("cannot decompress: {e}")))?;
            if n != len {
                return Err(invalid(format!(
                    "compressed value holds {n} bytes, its header says {len}"
                )));
            }
            serde_json::from_slice(&json)
        }
        _ => serde_json::from_slice(b),
    }
}

/// Ids usable inside composite keys: non-empty and free of the separator.
pub fn usable_name(name: &str) -> bool {
    !name.is_empty() && !name.as_bytes().contains(&SEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_sort_in_time_order() {
        let a = Utc.with_ymd_and_hms(1969, 1, 1, 0, 0, 0).unwrap();
        let b = Utc.with_ymd_and_hms(2019, 8, 16, 7, 22, 23).unwrap();
        let c = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert!(instant(a) < instant(b) && instant(b) < instant(c));
        assert_eq!(decode_instant(&instant(b)), Some(b));
        let k = scoped_time_key("asylum", b, "abc");
        assert_eq!(split_scoped_key(&k), Some(("asylum", b, "abc".to_string())));
        assert_eq!(split_scoped_key(b"x"), None);
    }

    #[test]
    fn compressed_values_round_trip_and_reject_damage() {
        let v: Vec<String> = (0..50)
            .map(|n| format!("<p>Paragraph {n} of the news</p>"))
            .collect();
        let plain = encode_value(&v).unwrap();
        let packed = encode_compressed_value(&v, 0).unwrap();
        assert_eq!(packed[0], VALUE_VERSION_LZ4);
        assert!(
            packed.len() < plain.len() / 2,
            "{} vs {}",
            packed.len(),
            plain.len()
        );
        assert_eq!(decode_value::<Vec<String>>(&packed).unwrap(), v);
        assert_eq!(decode_value::<Vec<String>>(&plain).unwrap(), v);
        // Truncated, a lying length, a huge length: errors, no panic, no huge allocation.
        assert!(decode_value::<Vec<String>>(&packed[..packed.len() / 2]).is_err());
        let mut lying = packed.clone();
        lying[1..5].copy_from_slice(&7u32.to_le_bytes());
        assert!(decode_value::<Vec<String>>(&lying).is_err());
        let mut huge = packed.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_value::<Vec<String>>(&huge).is_err());
        assert!(decode_value::<Vec<String>>(&[VALUE_VERSION_LZ4, 1]).is_err());
        // A short value is stored plain, and reads back the same.
        let short = vec!["one".to_string(), "two".to_string()];
        let stored = encode_compressed_value(&short, 0).unwrap();
        assert_eq!(stored, encode_value(&short).unwrap());
        assert_eq!(decode_value::<Vec<String>>(&stored).unwrap(), short);
    }

    #[test]
    fn bands_cover_the_fingerprint() {
        let fp = 0x0123_4567_89ab_cdef;
        let rebuilt = fingerprint_bands(fp).fold(0u64, |acc, (b, v)| {
            acc | (v << (u32::from(b) * (64 / FINGERPRINT_BANDS)))
        });
        let covered = 64 / FINGERPRINT_BANDS * FINGERPRINT_BANDS;
        let mask = if covered == 64 {
            u64::MAX
        } else {
            (1u64 << covered) - 1
        };
        assert_eq!(rebuilt, fp & mask);
        // Any fingerprint within the threshold is found by one of the probes: here 7 bits
        // apart, two in each of three bands and one in the last.
        let near = fp ^ 0x0001_0003_0003_0003;
        assert_eq!(
            crate::normalize::hamming(fp, near),
            crate::dedup::NEAR_DUPLICATE_MAX_DISTANCE
        );
        let stored: Vec<(u8, u64)> = fingerprint_bands(near).collect();
        assert!(fingerprint_probes(fp).any(|p| stored.contains(&p)));
        // Two bits off in every band (8 bits): no probe reaches it.
        let far = fp ^ 0x0003_0003_0003_0003;
        let stored: Vec<(u8, u64)> = fingerprint_bands(far).collect();
        assert!(!fingerprint_probes(fp).any(|p| stored.contains(&p)));
        assert_eq!(fingerprint_probes(fp).count(), 68);
    }
}
