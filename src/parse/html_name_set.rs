//! Fast membership test for the sanitiser's allow-lists.
//!
//! In: a static list of ASCII names. Out: a set whose `contains` compares names of up to eight
//! bytes as one integer each (most tag and attribute names), falling back to a byte-wise
//! binary search for longer ones. Built once, read-only afterwards; it never allocates on lookup.

/// Names packed for integer comparison, plus the longer ones.
pub(crate) struct NameSet {
    /// Names of at most 8 bytes, packed big-endian and zero-padded, sorted.
    short: Vec<u64>,
    /// Longer names, sorted by bytes.
    long: Vec<&'static str>,
}

/// `name` as a zero-padded big-endian integer, when it fits in eight bytes.
fn pack(name: &str) -> Option<u64> {
    let bytes = name.as_bytes();
    let mut buffer = [0u8; 8];
    buffer.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(u64::from_be_bytes(buffer))
}

impl NameSet {
    pub(crate) fn new(names: &[&'static str]) -> Self {
        let mut short: Vec<u64> = names.iter().filter_map(|name| pack(name)).collect();
        let mut long: Vec<&'static str> = names.iter().copied().filter(|n| n.len() > 8).collect();
        short.sort_unstable();
        short.dedup();
        long.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        NameSet { short, long }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        if name.is_empty() || name.as_bytes().contains(&0) {
            return false;
        }
        match pack(name) {
            Some(packed) => self.short.binary_search(&packed).is_ok(),
            None => self
                .long
                .binary_search_by(|candidate| candidate.as_bytes().cmp(name.as_bytes()))
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NameSet;

    #[test]
    fn finds_exactly_the_listed_names() {
        let set = NameSet::new(&["a", "abbr", "blockquote", "br", "figcaption", "img"]);
        for name in ["a", "abbr", "blockquote", "br", "figcaption", "img"] {
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
        ] {
            assert!(!set.contains(name), "{name:?}");
        }
    }
}
