//! Fast membership test for the sanitiser's allow-lists.
//!
//! In: a static list of names. Out: a set whose `contains` packs a name of up to 15 bytes and
//! its length into one `u128` and finds it in an open-addressing table (usually one probe, no
//! string comparison), falling back to a binary search for longer names. Built once, read-only
//! afterwards; lookups never allocate and always end (the table is at most a quarter full).

/// Names packed as integers in a hash table, plus the longer ones.
pub(crate) struct NameSet {
    /// Open-addressing table of packed names; 0 marks an empty slot.
    table: Vec<u128>,
    /// `table.len() - 1` (the length is a power of two).
    mask: usize,
    /// log2 of `table.len()`.
    bits: u32,
    /// Names longer than [`MAX_PACKED`], sorted by bytes.
    long: Vec<&'static str>,
}

/// Longest name packed into an integer.
const MAX_PACKED: usize = 15;

/// `name`'s bytes followed by its length in the last byte, when it fits in fifteen bytes.
fn pack(name: &str) -> Option<u128> {
    let bytes = name.as_bytes();
    let mut buffer = [0u8; 16];
    if bytes.len() > MAX_PACKED {
        return None;
    }
    buffer.get_mut(..bytes.len())?.copy_from_slice(bytes);
    *buffer.last_mut()? = bytes.len() as u8;
    Some(u128::from_le_bytes(buffer))
}

fn slot(packed: u128, bits: u32) -> usize {
    let folded = (packed as u64) ^ ((packed >> 64) as u64).rotate_left(29);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

impl NameSet {
    pub(crate) fn new(names: &[&'static str]) -> Self {
        let mut bits = 4;
        while (1usize << bits) < names.len() * 4 {
            bits += 1;
        }
        let mut set = NameSet {
            table: vec![0; 1 << bits],
            mask: (1 << bits) - 1,
            bits,
            long: names
                .iter()
                .copied()
                .filter(|n| n.len() > MAX_PACKED)
                .collect(),
        };
        set.long
            .sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for packed in names.iter().filter_map(|name| pack(name)) {
            let mut index = slot(packed, bits);
            while let Some(entry) = set.table.get_mut(index) {
                if *entry == 0 || *entry == packed {
                    *entry = packed;
                    break;
                }
                index = (index + 1) & set.mask;
            }
        }
        set
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        let Some(packed) = pack(name) else {
            return self
                .long
                .binary_search_by(|candidate| candidate.as_bytes().cmp(name.as_bytes()))
                .is_ok();
        };
        let mut index = slot(packed, self.bits);
        // The table is at most a quarter full, so an empty slot ends every probe sequence.
        for _ in 0..self.table.len() {
            match self.table.get(index) {
                Some(&0) | None => return false,
                Some(&entry) if entry == packed => return true,
                Some(_) => index = (index + 1) & self.mask,
            }
        }
        false
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
    fn every_allow_list_name_is_found() {
        use super::super::html_allowlists::{ACCEPTABLE_ATTRIBUTES, SVG_ATTRIBUTES};
        for list in [ACCEPTABLE_ATTRIBUTES, SVG_ATTRIBUTES] {
            let set = NameSet::new(list);
            assert!(list.iter().all(|name| set.contains(name)));
            assert!(!set.contains("onclick"));
        }
    }
}
