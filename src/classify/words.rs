//! Words: plain text → a sequence of hashed words, the unit both phrase rules and the model use.
//!
//! In: plain text. Out: for every run of letters and digits, a hash of the word exactly as
//! written and a hash of its normal form (lower case, a plural "s" removed). It must never
//! allocate per word beyond one reused buffer, and it treats every input as valid text.

use std::hash::{BuildHasherDefault, Hasher};

/// One word of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    /// Hash of the word as written (for acronyms, which match case-sensitively).
    pub exact: u64,
    /// Hash of the normal form (for everything else).
    pub norm: u64,
    /// The normal form has two or more characters and is not a number: a model feature
    /// (unless it is a stopword).
    pub plain: bool,
}

/// Hash of a string (xxh3); the keys of every word table.
pub fn hash_str(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// Hash of a word pair, for bigram features.
pub fn pair_hash(a: u64, b: u64) -> u64 {
    (a.rotate_left(21) ^ b).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Lower case, then drop a plural ending: "countries" → "country", "borders" → "border".
/// Words ending in "ss", "us" or "is" keep their "s" ("process", "status", "crisis").
fn normalise_into(word: &str, buf: &mut String) {
    buf.clear();
    if word.is_ascii() {
        buf.push_str(word);
        buf.make_ascii_lowercase();
    } else {
        for c in word.chars() {
            buf.extend(c.to_lowercase());
        }
    }
    let len = if buf.is_ascii() {
        buf.len()
    } else {
        buf.chars().count()
    };
    if len > 4 && buf.ends_with("ies") {
        buf.truncate(buf.len() - 3);
        buf.push('y');
    } else if len > 3
        && buf.ends_with('s')
        && !buf.ends_with("ss")
        && !buf.ends_with("us")
        && !buf.ends_with("is")
    {
        buf.pop();
    }
}

/// True when a word is written with two or more capitals ("EU", "IBM", "FReMM"): such words in
/// a phrase match only when written exactly so.
pub fn is_acronym(word: &str) -> bool {
    word.chars().filter(|c| c.is_uppercase()).count() >= 2
}

/// Calls `f(word_as_written, normal_form, hashes)` for every word of `text`, in order.
pub fn for_each_word(text: &str, buf: &mut String, mut f: impl FnMut(&str, &str, Word)) {
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            if start.is_none() {
                start = Some(i);
            }
        } else if let Some(s) = start.take() {
            emit(text.get(s..i).unwrap_or_default(), buf, &mut f);
        }
    }
    if let Some(s) = start {
        emit(text.get(s..).unwrap_or_default(), buf, &mut f);
    }
}

/// True when a normal form can be a model feature: two or more characters, not a number.
pub fn is_plain(norm: &str) -> bool {
    let mut chars = norm.chars();
    chars.next().is_some() && chars.next().is_some() && !norm.bytes().all(|b| b.is_ascii_digit())
}

fn emit(word: &str, buf: &mut String, f: &mut impl FnMut(&str, &str, Word)) {
    normalise_into(word, buf);
    let w = Word {
        exact: hash_str(word),
        norm: hash_str(buf),
        plain: is_plain(buf),
    };
    f(word, buf, w);
}

/// Appends the words of `text` to `out`.
pub fn words_into(text: &str, buf: &mut String, out: &mut Vec<Word>) {
    for_each_word(text, buf, |_, _, w| out.push(w));
}

/// A hasher for keys that already are good 64-bit hashes: it passes them through.
#[derive(Default, Clone, Copy)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only used with u64 keys; fold anything else so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by word hashes.
pub type WordMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<PassThroughHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(text: &str) -> Vec<String> {
        let mut buf = String::new();
        let mut out = Vec::new();
        for_each_word(text, &mut buf, |_, n, _| out.push(n.to_string()));
        out
    }

    #[test]
    fn splits_at_non_word_characters_and_normalises() {
        assert_eq!(
            norms("EU-Turkey: MIEUX+ borders, countries’ process status"),
            ["eu", "turkey", "mieux", "border", "country", "process", "status"]
        );
        assert_eq!(
            norms("Türkiye Côte d'Ivoire"),
            ["türkiye", "côte", "d", "ivoire"]
        );
        assert!(norms("  ,.; ").is_empty());
    }

    #[test]
    fn exact_hash_keeps_case() {
        let mut buf = String::new();
        let mut v = Vec::new();
        words_into("IBM ibm", &mut buf, &mut v);
        assert_eq!(v.len(), 2);
        assert_ne!(v[0].exact, v[1].exact);
        assert_eq!(v[0].norm, v[1].norm);
        assert!(is_acronym("FReMM") && is_acronym("EU") && !is_acronym("Turkey"));
    }
}
