//! Fast membership test for the sanitiser's allow-lists.
//!
//! In: a static list of names. Out: a set whose `contains` packs a name of up to 15 bytes and
//! its length into one `u128` and finds it in an open-addressing table (usually one probe, no
//! string comparison), falling back to a binary search for longer names. Built once, read-only
//! afterwards; lookups never allocate and always end (the table is at most a quarter full).

/// Names packed as integers in a hash table, plus the longer ones, each with a byte of flags.
pub(crate) struct NameSet {
    /// Open-addressing table of packed names; 0 marks an empty slot.
    table: Vec<u128>,
    /// Flags of the name in the same slot of `table`.
    flags: Vec<u8>,
    /// `table.len() - 1` (the length is a power of two).
    mask: usize,
    /// log2 of `table.len()`.
    bits: u32,
    /// Names longer than [`MAX_PACKED`] with their flags, sorted by bytes.
    long: Vec<(&'static str, u8)>,
}

/// Longest name packed into an integer.
const MAX_PACKED: usize = 15;

/// `name`'s bytes followed by its length in the last byte, when it fits in fifteen bytes.
///
/// Byte `i` lands at bits `8 * i`, the length in the last byte (what one little-endian load of
/// the bytes padded to sixteen would give). Built in registers from at most four loads: writing
/// the bytes to a buffer and reading it back as one integer stalls on store forwarding, which
/// cost more than the whole probe.
fn pack(name: &str) -> Option<u128> {
    let bytes = name.as_bytes();
    if bytes.len() > MAX_PACKED {
        return None;
    }
    let (low, high) = bytes.split_at(bytes.len().min(8));
    let high = load_le(high) | ((bytes.len() as u64) << 56);
    Some(u128::from(load_le(low)) | (u128::from(high) << 64))
}

/// Up to eight bytes as a little-endian integer (zero-extended), without a byte loop:
/// overlapping loads cover every length, and an overlapping byte lands at its own position in
/// both, so OR-ing them is exact.
fn load_le(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let byte = |i: usize| u64::from(bytes.get(i).copied().unwrap_or(0)) << (8 * i);
    let word = |from: usize| {
        let four = bytes
            .get(from..from + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .unwrap_or([0; 4]);
        u64::from(u32::from_le_bytes(four)) << (8 * from)
    };
    match len {
        0 => 0,
        1..=3 => byte(0) | byte(len / 2) | byte(len - 1),
        4..=7 => word(0) | word(len - 4),
        _ => bytes
            .get(..8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes),
    }
}

fn slot(packed: u128, bits: u32) -> usize {
    let folded = (packed as u64) ^ ((packed >> 64) as u64).rotate_left(29);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

impl NameSet {
    /// A set of `names`, each with flag 1.
    pub(crate) fn new(names: &[&'static str]) -> Self {
        Self::with_flags(&[(names, 1)])
    }

    /// A set of the names of several lists; a name's flags are the union of its lists' flags.
    pub(crate) fn with_flags(lists: &[(&[&'static str], u8)]) -> Self {
        let count: usize = lists.iter().map(|(names, _)| names.len()).sum();
        let mut bits = 4;
        while (1usize << bits) < count * 4 {
            bits += 1;
        }
        let mut set = NameSet {
            table: vec![0; 1 << bits],
            flags: vec![0; 1 << bits],
            mask: (1 << bits) - 1,
            bits,
            long: Vec::new(),
        };
        for &(names, flag) in lists {
            for &name in names {
                set.insert(name, flag);
            }
        }
        set.long
            .sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        set
    }

    fn insert(&mut self, name: &'static str, flag: u8) {
        let Some(packed) = pack(name) else {
            match self.long.iter_mut().find(|(n, _)| *n == name) {
                Some((_, flags)) => *flags |= flag,
                None => self.long.push((name, flag)),
            }
            return;
        };
        let mut index = slot(packed, self.bits);
        for _ in 0..self.table.len() {
            match self.table.get_mut(index) {
                Some(entry) if *entry == 0 || *entry == packed => {
                    *entry = packed;
                    if let Some(flags) = self.flags.get_mut(index) {
                        *flags |= flag;
                    }
                    return;
                }
                _ => index = (index + 1) & self.mask,
            }
        }
    }

    /// The flags of `name`; 0 when it is in no list.
    pub(crate) fn flags(&self, name: &str) -> u8 {
        let Some(packed) = pack(name) else {
            return self
                .long
                .binary_search_by(|(candidate, _)| candidate.as_bytes().cmp(name.as_bytes()))
                .ok()
                .and_then(|index| self.long.get(index))
                .map_or(0, |(_, flags)| *flags);
        };
        let mut index = slot(packed, self.bits);
        // The table is at most a quarter full, so an empty slot ends every probe sequence.
        for _ in 0..self.table.len() {
            match self.table.get(index) {
                Some(&0) | None => return 0,
                Some(&entry) if entry == packed => {
                    return self.flags.get(index).copied().unwrap_or(0)
                }
                Some(_) => index = (index + 1) & self.mask,
            }
        }
        0
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.flags(name) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::NameSet;

    #[test]
    fn finds_exactly_the_listed_names() {
        let listed = [
            "a",
            "abbr",
            "blockquote",
            "br",
            "figcaption",
            "img",
            "accept-charset",
            "a-very-long-attribute-name",
        ];
        let set = NameSet::new(&listed);
        for name in listed {
            assert!(set.contains(name), "{name}");
        }
        for name in [
            "",
            "b",
            "ab",
            "abbrx",
            "blockquot",
            "blockquotes",
            "im",
            "a\0",
            "a\0\0",
            "a-very-long-attribute-nam",
            "a-very-long-attribute-names",
        ] {
            assert!(!set.contains(name), "{name:?}");
        }
    }

    #[test]
    fn packing_matches_a_padded_little_endian_load() {
        let name = "abcdefghijklmnop";
        for len in 0..=15 {
            let part = name.get(..len).unwrap_or("");
            let mut buf = [0u8; 16];
            if let Some(dst) = buf.get_mut(..len) {
                dst.copy_from_slice(part.as_bytes());
            }
            buf[15] = len as u8;
            assert_eq!(super::pack(part), Some(u128::from_le_bytes(buf)), "{len}");
        }
        assert_eq!(super::pack(name), None);
    }

    #[test]
    fn flags_of_several_lists_combine() {
        let set =
            NameSet::with_flags(&[(&["a", "br", "figcaption-long-name"], 1), (&["br", "x"], 2)]);
        assert_eq!(set.flags("a"), 1);
        assert_eq!(set.flags("br"), 3);
        assert_eq!(set.flags("x"), 2);
        assert_eq!(set.flags("figcaption-long-name"), 1);
        assert_eq!(set.flags("y"), 0);
    }

    #[test]
    fn every_allow_list_name_is_found() {
        use super::super::html_allowlists::{ACCEPTABLE_ATTRIBUTES, SVG_ATTRIBUTES};
        for list in [ACCEPTABLE_ATTRIBUTES, SVG_ATTRIBUTES] {
            let set = NameSet::new(list);
            assert!(list.iter().all(|name| set.contains(name)));
            assert!(!set.contains("onclick"));
        }
    }
}
