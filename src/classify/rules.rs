//! Phrase rules: the taxonomy's phrases, negatives and aliases compiled into a word-hash index.
//!
//! In: a [`Taxonomy`] once, then the words of an item's fields. Out: per label, the weighted
//! evidence and the phrases that produced it. Matching is by whole words, case-insensitive
//! except for acronyms; it never allocates per word and costs one hash lookup per word.

use super::taxonomy::Taxonomy;
use super::words::{for_each_word, is_acronym, Word, WordMap};

/// How one phrase word must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needle {
    Exact(u64),
    Norm(u64),
}

impl Needle {
    fn matches(self, w: &Word) -> bool {
        match self {
            Needle::Exact(h) => w.exact == h,
            Needle::Norm(h) => w.norm == h,
        }
    }
}

#[derive(Debug, Clone)]
struct Phrase {
    words: Vec<Needle>,
    label: usize,
    /// Negative for negatives.
    weight: f32,
    text: String,
}

/// Which field of an item a match was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Content,
    Summary,
    Title,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Summary => "summary",
            Field::Content => "text",
        }
    }
}

/// One phrase found in an item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub phrase: usize,
    pub count: u32,
    /// The most important field it was found in, and that field's weight.
    pub field: Field,
    pub field_weight: f32,
}

/// The compiled phrase rules of a taxonomy.
#[derive(Debug, Clone)]
pub struct PhraseRules {
    phrases: Vec<Phrase>,
    by_norm: WordMap<Vec<u32>>,
    by_exact: WordMap<Vec<u32>>,
    label_count: usize,
}

/// A repeated phrase adds a quarter of its weight per repeat, up to twice its weight.
fn repeat_factor(count: u32) -> f32 {
    (1.0 + 0.25 * (count.saturating_sub(1)) as f32).min(2.0)
}

impl PhraseRules {
    /// Compiles the phrases of every label of `taxonomy`.
    pub fn new(taxonomy: &Taxonomy) -> PhraseRules {
        let alias_weight = taxonomy.settings.alias_weight;
        let mut rules = PhraseRules {
            phrases: Vec::new(),
            by_norm: WordMap::default(),
            by_exact: WordMap::default(),
            label_count: taxonomy.labels.len(),
        };
        for (label, def) in taxonomy.labels.iter().enumerate() {
            for p in &def.phrases {
                rules.add(&p.phrase, label, p.weight);
            }
            for p in &def.negatives {
                rules.add(&p.phrase, label, -p.weight);
            }
            for a in &def.aliases {
                rules.add(a, label, alias_weight);
            }
        }
        rules
    }

    /// Compiles free-standing phrases (all for label 0) with weight 1; used for title filters.
    pub fn from_phrases<'a>(phrases: impl IntoIterator<Item = &'a str>) -> PhraseRules {
        let mut rules = PhraseRules {
            phrases: Vec::new(),
            by_norm: WordMap::default(),
            by_exact: WordMap::default(),
            label_count: 1,
        };
        for p in phrases {
            rules.add(p, 0, 1.0);
        }
        rules
    }

    fn add(&mut self, text: &str, label: usize, weight: f32) {
        let mut buf = String::new();
        let mut words = Vec::new();
        for_each_word(text, &mut buf, |raw, _, w| {
            words.push(if is_acronym(raw) {
                Needle::Exact(w.exact)
            } else {
                Needle::Norm(w.norm)
            });
        });
        let Some(first) = words.first().copied() else {
            return;
        };
        // "refugee" and "refugees" compile to the same words; keep the first, so one mention
        // is not counted twice.
        if self
            .phrases
            .iter()
            .any(|p| p.label == label && p.words == words && p.weight.signum() == weight.signum())
        {
            return;
        }
        let index = u32::try_from(self.phrases.len()).unwrap_or(u32::MAX);
        match first {
            Needle::Exact(h) => self.by_exact.entry(h).or_default().push(index),
            Needle::Norm(h) => self.by_norm.entry(h).or_default().push(index),
        }
        self.phrases.push(Phrase {
            words,
            label,
            weight,
            text: text.to_string(),
        });
    }

    /// Finds every phrase in `words`, adding to `hits`.
    pub fn scan(&self, words: &[Word], field: Field, field_weight: f32, hits: &mut Vec<Hit>) {
        for (i, w) in words.iter().enumerate() {
            let rest = words.get(i..).unwrap_or_default();
            for list in [self.by_norm.get(&w.norm), self.by_exact.get(&w.exact)]
                .into_iter()
                .flatten()
            {
                for &p in list {
                    let Some(phrase) = self.phrases.get(p as usize) else {
                        continue;
                    };
                    if phrase.words.len() > rest.len()
                        || !phrase.words.iter().zip(rest).all(|(n, w)| n.matches(w))
                    {
                        continue;
                    }
                    let p = p as usize;
                    match hits.iter_mut().find(|h| h.phrase == p) {
                        Some(h) => {
                            h.count += 1;
                            if field_weight > h.field_weight {
                                h.field_weight = field_weight;
                                h.field = field;
                            }
                        }
                        None => hits.push(Hit {
                            phrase: p,
                            count: 1,
                            field,
                            field_weight,
                        }),
                    }
                }
            }
        }
    }

    /// Weighted evidence per label (never below 0) from `hits`.
    pub fn evidence(&self, hits: &[Hit], out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.label_count, 0.0);
        for h in hits {
            if let Some(p) = self.phrases.get(h.phrase) {
                if let Some(e) = out.get_mut(p.label) {
                    *e += p.weight * h.field_weight * repeat_factor(h.count);
                }
            }
        }
        for e in out.iter_mut() {
            *e = e.max(0.0);
        }
    }

    /// The label a hit counts for.
    pub fn label_of(&self, hit: &Hit) -> Option<usize> {
        self.phrases.get(hit.phrase).map(|p| p.label)
    }

    /// A readable reason for a positive hit, e.g. `"asylum" in title ×2`.
    pub fn reason(&self, hit: &Hit) -> Option<String> {
        let p = self.phrases.get(hit.phrase)?;
        if p.weight <= 0.0 {
            return None;
        }
        Some(if hit.count > 1 {
            format!("\"{}\" ×{}, in {}", p.text, hit.count, hit.field.as_str())
        } else {
            format!("\"{}\" in {}", p.text, hit.field.as_str())
        })
    }

    /// The weight a hit contributes (negative for negatives).
    pub fn contribution(&self, hit: &Hit) -> f32 {
        self.phrases.get(hit.phrase).map_or(0.0, |p| {
            p.weight * hit.field_weight * repeat_factor(hit.count)
        })
    }

    /// True when any phrase occurs in `words`.
    pub fn any_in(&self, words: &[Word]) -> bool {
        let mut hits = Vec::new();
        self.scan(words, Field::Title, 1.0, &mut hits);
        !hits.is_empty()
    }
}
