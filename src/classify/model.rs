//! The statistical model: TF-IDF over words and word pairs, one logistic regression per
//! programme (one-vs-rest), trained from the labelled set.
//!
//! In: labelled items at start-up; then the words of one item. Out: a probability per programme
//! and the terms that pushed it up. Training is deterministic (full-batch gradient descent from
//! zero, fixed steps) and takes milliseconds; prediction allocates one small vector per item.
//! It must never read files: the caller hands it the training items.

use super::words::{for_each_word, hash_str, pair_hash, Word, WordMap};

/// Words too common to carry meaning.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "by", "for", "from", "ha", "has", "have",
    "in", "into", "is", "it", "its", "of", "on", "or", "our", "that", "the", "their", "thi",
    "this", "to", "wa", "was", "were", "which", "will", "with", "who", "also", "well", "such",
    "than", "these", "those", "more", "other", "all", "can", "not", "but", "they", "we", "he",
    "she", "his", "her", "after", "over", "between", "about", "both", "each", "one", "two",
];

/// Gradient-descent settings (fixed so training is reproducible).
const STEPS: usize = 300;
const LEARNING_RATE: f32 = 4.0;
const L2: f32 = 1e-3;
/// Positives are rare; each counts up to this many times a negative.
const MAX_POSITIVE_WEIGHT: f32 = 4.0;

/// One training example: weighted text and, per class, 1 (positive), 0 (negative) or skip.
pub struct Example<'a> {
    pub fields: [(&'a str, f32); 3],
    /// Per class: Some(true) positive, Some(false) negative, None not used for that class.
    pub targets: Vec<Option<bool>>,
}

/// A trained model.
#[derive(Debug, Clone)]
pub struct Model {
    vocab: WordMap<u32>,
    terms: Vec<String>,
    idf: Vec<f32>,
    /// `weights[f * classes + c]`.
    weights: Vec<f32>,
    bias: Vec<f32>,
    classes: usize,
    stop: WordMap<()>,
}

/// What the model says about one class of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    pub probability: f32,
    /// The terms that raised the score most, strongest first.
    pub top_terms: Vec<String>,
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn stop_table() -> WordMap<()> {
    STOPWORDS.iter().map(|w| (hash_str(w), ())).collect()
}

/// Calls `f(feature_hash, readable_term, weight)` for each unigram and bigram of the fields.
fn each_feature(
    stop: &WordMap<()>,
    fields: &[(&str, f32)],
    buf: &mut String,
    mut f: impl FnMut(u64, &dyn Fn() -> String, f32),
) {
    for &(text, fw) in fields {
        if fw <= 0.0 {
            continue;
        }
        let mut prev: Option<u64> = None;
        let mut prev_text = String::new();
        for_each_word(text, buf, |_, norm, w| {
            if !w.plain || stop.contains_key(&w.norm) {
                prev = None;
                return;
            }
            f(w.norm, &|| norm.to_string(), fw);
            if let Some(ph) = prev {
                f(pair_hash(ph, w.norm), &|| format!("{prev_text} {norm}"), fw);
            }
            prev = Some(w.norm);
            prev_text.clear();
            prev_text.push_str(norm);
        });
    }
}

impl Model {
    /// Trains one logistic regression per class.
    pub fn train(examples: &[Example<'_>], classes: usize) -> Model {
        let stop = stop_table();
        let mut buf = String::new();
        // Vocabulary and document frequencies.
        let mut vocab: WordMap<u32> = WordMap::default();
        let mut terms: Vec<String> = Vec::new();
        let mut df: Vec<u32> = Vec::new();
        let mut rows: Vec<Vec<(u32, f32)>> = Vec::with_capacity(examples.len());
        for ex in examples {
            let mut row: Vec<(u32, f32)> = Vec::new();
            each_feature(&stop, &ex.fields, &mut buf, |h, term, fw| {
                let id = *vocab.entry(h).or_insert_with(|| {
                    terms.push(term());
                    df.push(0);
                    u32::try_from(terms.len() - 1).unwrap_or(u32::MAX)
                });
                row.push((id, fw));
            });
            merge(&mut row);
            for &(id, _) in &row {
                if let Some(d) = df.get_mut(id as usize) {
                    *d += 1;
                }
            }
            rows.push(row);
        }
        let n = examples.len().max(1) as f32;
        let idf: Vec<f32> = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        for r in &mut rows {
            tfidf(r, &idf);
        }

        let features = terms.len();
        let mut weights = vec![0.0f32; features * classes];
        let mut bias = vec![0.0f32; classes];
        let mut w = vec![0.0f32; features];
        let mut grad = vec![0.0f32; features];
        for c in 0..classes {
            let used: Vec<(usize, bool)> = examples
                .iter()
                .enumerate()
                .filter_map(|(i, ex)| ex.targets.get(c).copied().flatten().map(|y| (i, y)))
                .collect();
            let pos = used.iter().filter(|(_, y)| *y).count() as f32;
            let neg = used.len() as f32 - pos;
            if used.is_empty() || pos == 0.0 {
                if let Some(b) = bias.get_mut(c) {
                    *b = -4.0;
                }
                continue;
            }
            let pos_weight = (neg / pos).clamp(1.0, MAX_POSITIVE_WEIGHT);
            let total = pos * pos_weight + neg;
            w.iter_mut().for_each(|x| *x = 0.0);
            let mut b = 0.0f32;
            for _ in 0..STEPS {
                grad.iter_mut().for_each(|g| *g = 0.0);
                let mut gb = 0.0f32;
                for &(i, y) in &used {
                    let Some(row) = rows.get(i) else { continue };
                    let z = b + row
                        .iter()
                        .map(|&(f, x)| w.get(f as usize).copied().unwrap_or(0.0) * x)
                        .sum::<f32>();
                    let (target, sw) = if y { (1.0, pos_weight) } else { (0.0, 1.0) };
                    let err = (sigmoid(z) - target) * sw;
                    gb += err;
                    for &(f, x) in row {
                        if let Some(g) = grad.get_mut(f as usize) {
                            *g += err * x;
                        }
                    }
                }
                for (wi, gi) in w.iter_mut().zip(&grad) {
                    *wi -= LEARNING_RATE * (gi / total + L2 * *wi);
                }
                b -= LEARNING_RATE * gb / total;
            }
            for (f, wi) in w.iter().enumerate() {
                if let Some(slot) = weights.get_mut(f * classes + c) {
                    *slot = *wi;
                }
            }
            if let Some(slot) = bias.get_mut(c) {
                *slot = b;
            }
        }
        Model {
            vocab,
            terms,
            idf,
            weights,
            bias,
            classes,
            stop,
        }
    }

    /// The TF-IDF vector of already split fields (feature ids sorted, length 1). Uses exactly
    /// the features training used: plain non-stopwords and pairs of adjacent ones.
    fn vector(&self, fields: &[(&[Word], f32)], row: &mut Vec<(u32, f32)>) {
        row.clear();
        for &(words, fw) in fields {
            if fw <= 0.0 {
                continue;
            }
            let mut prev: Option<u64> = None;
            for w in words {
                if !w.plain || self.stop.contains_key(&w.norm) {
                    prev = None;
                    continue;
                }
                if let Some(&id) = self.vocab.get(&w.norm) {
                    row.push((id, fw));
                }
                if let Some(ph) = prev {
                    if let Some(&id) = self.vocab.get(&pair_hash(ph, w.norm)) {
                        row.push((id, fw));
                    }
                }
                prev = Some(w.norm);
            }
        }
        merge(row);
        tfidf(row, &self.idf);
    }

    /// Probability per class for already split fields; classes whose probability reaches
    /// `explain_from` also get the top `terms` terms that raised them.
    pub fn predict(
        &self,
        fields: &[(&[Word], f32)],
        terms: usize,
        explain_from: f32,
    ) -> Vec<ClassScore> {
        let mut x = Vec::new();
        self.vector(fields, &mut x);
        let mut z: Vec<f32> = self.bias.clone();
        for &(f, v) in &x {
            let base = f as usize * self.classes;
            if let Some(ws) = self.weights.get(base..base + self.classes) {
                for (zc, wc) in z.iter_mut().zip(ws) {
                    *zc += wc * v;
                }
            }
        }
        z.iter()
            .enumerate()
            .map(|(c, &zc)| {
                let probability = sigmoid(zc);
                let top_terms = if terms > 0 && probability >= explain_from {
                    self.top_terms(&x, c, terms)
                } else {
                    Vec::new()
                };
                ClassScore {
                    probability,
                    top_terms,
                }
            })
            .collect()
    }

    fn top_terms(&self, x: &[(u32, f32)], class: usize, terms: usize) -> Vec<String> {
        let mut contrib: Vec<(f32, u32)> = x
            .iter()
            .filter_map(|&(f, v)| {
                let wv = self.weights.get(f as usize * self.classes + class)? * v;
                (wv > 0.0).then_some((wv, f))
            })
            .collect();
        contrib.sort_by(|a, b| b.0.total_cmp(&a.0));
        contrib
            .iter()
            .take(terms)
            .filter_map(|&(_, f)| self.terms.get(f as usize).cloned())
            .collect()
    }

    /// Number of features learned.
    pub fn features(&self) -> usize {
        self.terms.len()
    }
}

/// Sorts by feature id and sums repeated features, in place.
fn merge(row: &mut Vec<(u32, f32)>) {
    row.sort_unstable_by_key(|&(f, _)| f);
    row.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
}

/// (1 + ln tf) · idf, scaled to length 1, in place.
fn tfidf(row: &mut [(u32, f32)], idf: &[f32]) {
    for (f, v) in row.iter_mut() {
        let idf = idf.get(*f as usize).copied().unwrap_or(1.0);
        *v = (1.0 + v.max(1e-6).ln().max(0.0)) * idf;
    }
    let norm = row.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|(_, v)| *v /= norm);
    }
}
