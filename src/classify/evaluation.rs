//! Evaluation: precision, recall and F1 against the labelled set, and k-fold cross-validation.
//!
//! In: a classifier or a taxonomy, and labelled items. Out: per-label counts and micro averages,
//! printable as a table. A predicted label counts as correct when `required`, is ignored when
//! only `allowed`, and is a false positive otherwise; a missing `required` label is a miss.
//! In cross-validation the model is never tested on an item it was trained on.

use super::labelled::LabelledItem;
use super::taxonomy::{LabelKind, Taxonomy};
use super::{Classifier, ItemText};
use std::fmt::Write as _;

/// Counts for one label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelCounts {
    pub id: String,
    pub true_positives: u32,
    pub false_positives: u32,
    pub false_negatives: u32,
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        0.0
    } else {
        f64::from(a) / f64::from(b)
    }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

impl LabelCounts {
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
    pub fn f1(&self) -> f64 {
        f1(self.precision(), self.recall())
    }
}

/// Results over a labelled set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// Per label, in taxonomy order, with its kind.
    pub labels: Vec<(LabelKind, LabelCounts)>,
    pub items: usize,
}

impl Evaluation {
    fn empty(taxonomy: &Taxonomy) -> Evaluation {
        Evaluation {
            labels: taxonomy
                .labels
                .iter()
                .map(|l| {
                    (
                        l.kind,
                        LabelCounts {
                            id: l.id.clone(),
                            ..LabelCounts::default()
                        },
                    )
                })
                .collect(),
            items: 0,
        }
    }

    /// Scores one item's predicted ids against its labels.
    fn add(&mut self, predicted: &[&str], item: &LabelledItem) {
        self.items += 1;
        for (_, c) in &mut self.labels {
            let got = predicted.iter().any(|p| *p == c.id);
            let required = item.required.contains(&c.id);
            let allowed = item.allowed.contains(&c.id);
            match (got, required, allowed) {
                (true, true, _) => c.true_positives += 1,
                (true, false, false) => c.false_positives += 1,
                (false, true, _) => c.false_negatives += 1,
                _ => {}
            }
        }
    }

    fn merge(&mut self, other: &Evaluation) {
        self.items += other.items;
        for ((_, a), (_, b)) in self.labels.iter_mut().zip(&other.labels) {
            a.true_positives += b.true_positives;
            a.false_positives += b.false_positives;
            a.false_negatives += b.false_negatives;
        }
    }

    /// Summed counts over the labels of `kind` (all kinds when None).
    pub fn micro(&self, kind: Option<LabelKind>) -> LabelCounts {
        let mut m = LabelCounts {
            id: kind.map_or("all", LabelKind::as_str).to_string(),
            ..LabelCounts::default()
        };
        for (k, c) in &self.labels {
            if kind.is_none_or(|want| want == *k) {
                m.true_positives += c.true_positives;
                m.false_positives += c.false_positives;
                m.false_negatives += c.false_negatives;
            }
        }
        m
    }

    /// Micro-averaged F1 over the six (or more) programmes.
    pub fn programme_micro_f1(&self) -> f64 {
        self.micro(Some(LabelKind::Programme)).f1()
    }

    /// A readable table: one row per label that occurs, then micro averages per kind.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<30} {:>4} {:>4} {:>4} {:>9} {:>7} {:>6}",
            "label", "tp", "fp", "fn", "precision", "recall", "f1"
        );
        let row = |s: &mut String, c: &LabelCounts| {
            let _ = writeln!(
                s,
                "{:<30} {:>4} {:>4} {:>4} {:>9.3} {:>7.3} {:>6.3}",
                c.id,
                c.true_positives,
                c.false_positives,
                c.false_negatives,
                c.precision(),
                c.recall(),
                c.f1()
            );
        };
        for (_, c) in &self.labels {
            if c.true_positives + c.false_positives + c.false_negatives > 0 {
                row(&mut s, c);
            }
        }
        let _ = writeln!(s, "{}", "-".repeat(70));
        for kind in [
            LabelKind::Programme,
            LabelKind::Initiative,
            LabelKind::Region,
        ] {
            let mut m = self.micro(Some(kind));
            m.id = format!("micro {}s", kind.as_str());
            row(&mut s, &m);
        }
        let mut m = self.micro(None);
        m.id = "micro all".into();
        row(&mut s, &m);
        let _ = writeln!(s, "({} items)", self.items);
        s
    }
}

fn text_of(item: &LabelledItem) -> ItemText<'_> {
    ItemText {
        title: &item.title,
        summary: &item.summary,
        content_text: &item.content,
        link: None,
    }
}

/// Classifies every item with `classifier` and scores the result.
pub fn evaluate(classifier: &Classifier, items: &[LabelledItem]) -> Evaluation {
    let mut eval = Evaluation::empty(classifier.taxonomy());
    for item in items {
        let labels = classifier.classify(&text_of(item), &[]);
        let ids: Vec<&str> = labels.all_ids().collect();
        eval.add(&ids, item);
    }
    eval
}

/// The fold of each item: a deterministic shuffle (by title hash), then round robin.
fn folds(items: &[LabelledItem], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| {
        items
            .get(i)
            .map(|it| xxhash_rust::xxh3::xxh3_64(it.title.as_bytes()))
    });
    let mut fold = vec![0; items.len()];
    for (rank, &i) in order.iter().enumerate() {
        if let Some(f) = fold.get_mut(i) {
            *f = rank % k.max(1);
        }
    }
    fold
}

/// k-fold cross-validation with the taxonomy's own combination settings.
pub fn cross_validate(taxonomy: &Taxonomy, items: &[LabelledItem], k: usize) -> Evaluation {
    let k = k.clamp(2, items.len().max(2));
    let fold = folds(items, k);
    let mut total = Evaluation::empty(taxonomy);
    for f in 0..k {
        let train: Vec<LabelledItem> = items
            .iter()
            .zip(&fold)
            .filter(|(_, &g)| g != f)
            .map(|(i, _)| i.clone())
            .collect();
        let test: Vec<LabelledItem> = items
            .iter()
            .zip(&fold)
            .filter(|(_, &g)| g == f)
            .map(|(i, _)| i.clone())
            .collect();
        let c = Classifier::new(taxonomy.clone(), &train);
        total.merge(&evaluate(&c, &test));
    }
    total
}

/// One combination tried by [`tune`].
#[derive(Debug, Clone, PartialEq)]
pub struct TuningPoint {
    pub rule_share: f32,
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
    pub micro_f1: f64,
}

/// Cross-validated programme micro-F1 for each (rule share, threshold) pair. Share 1.0 is the
/// rules alone, 0.0 the model alone. Each fold's model is trained once and reused.
pub fn tune(
    taxonomy: &Taxonomy,
    items: &[LabelledItem],
    k: usize,
    shares: &[f32],
    thresholds: &[f32],
) -> Vec<TuningPoint> {
    let k = k.clamp(2, items.len().max(2));
    let fold = folds(items, k);
    // Per item: its signals from the fold that held it out.
    let mut signals = vec![None; items.len()];
    let mut programme_ids: Vec<String> = Vec::new();
    for f in 0..k {
        let train: Vec<LabelledItem> = items
            .iter()
            .zip(&fold)
            .filter(|(_, &g)| g != f)
            .map(|(i, _)| i.clone())
            .collect();
        let c = Classifier::new(taxonomy.clone(), &train);
        programme_ids = c.programme_ids().map(str::to_string).collect();
        for (i, item) in items.iter().enumerate() {
            if fold.get(i) == Some(&f) {
                if let Some(slot) = signals.get_mut(i) {
                    *slot = Some(c.programme_signals(&text_of(item)));
                }
            }
        }
    }
    let mut out = Vec::new();
    for &share in shares {
        for &threshold in thresholds {
            let mut m = LabelCounts::default();
            for (item, sig) in items.iter().zip(&signals) {
                let Some(sig) = sig else { continue };
                for (c, id) in programme_ids.iter().enumerate() {
                    let rule = sig.rule_confidence.get(c).copied().unwrap_or(0.0);
                    let model = sig
                        .model_probability
                        .as_ref()
                        .and_then(|p| p.get(c).copied())
                        .unwrap_or(0.0);
                    let score = share * rule + (1.0 - share) * model;
                    let got = !sig.suppressed && score >= threshold;
                    let required = item.required.contains(id);
                    let allowed = item.allowed.contains(id);
                    match (got, required, allowed) {
                        (true, true, _) => m.true_positives += 1,
                        (true, false, false) => m.false_positives += 1,
                        (false, true, _) => m.false_negatives += 1,
                        _ => {}
                    }
                }
            }
            out.push(TuningPoint {
                rule_share: share,
                threshold,
                precision: m.precision(),
                recall: m.recall(),
                micro_f1: m.f1(),
            });
        }
    }
    out
}
