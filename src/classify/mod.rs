//! Classification: an item's text → programmes, initiatives and regions, each with a score and
//! the reasons a person can read.
//!
//! In: a [`Taxonomy`] (from `programmes.toml`), the labelled set it names (the model is trained
//! from it when the [`Classifier`] is built, in milliseconds), then per item its title, summary
//! and plain text ([`ItemText`]) and the feed's default labels. Out: [`crate::item::Labels`].
//! Programmes combine phrase rules and a TF-IDF logistic-regression model; initiatives and
//! regions come from phrase rules. [`Classifier::classify`] is pure: it must never do I/O, and
//! it must stay fast because it runs on every ingested item.

pub mod evaluation;
pub mod jsonl;
pub mod labelled;
pub mod model;
pub mod rules;
pub mod taxonomy;
pub mod words;

pub use evaluation::{cross_validate, evaluate, tune, Evaluation, LabelCounts, TuningPoint};
pub use labelled::{check_ids, load_labelled, parse_labelled, LabelledItem, LabelledSet};
pub use taxonomy::{LabelDef, LabelKind, Settings, Taxonomy, WeightedPhrase};

use crate::item::{Label, Labels};
use model::{Example, Model};
use rules::{Field, Hit, PhraseRules};
use std::path::{Path, PathBuf};
use thiserror::Error;
use words::{words_into, Word};

/// Why a taxonomy or labelled set could not be used.
#[derive(Debug, Error)]
pub enum ClassifyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Labelled {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The text of one item, as the classifier sees it (all plain text).
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemText<'a> {
    pub title: &'a str,
    pub summary: &'a str,
    pub content_text: &'a str,
    pub link: Option<&'a str>,
}

/// Rule evidence E becomes a confidence 1 - exp(-E / EVIDENCE_SCALE): one strong phrase in a
/// summary (2.0 × 2.0) gives 0.80, one generic word in the text (0.7) gives 0.24.
const EVIDENCE_SCALE: f32 = 2.5;
/// Reasons kept per label.
const MAX_REASONS: usize = 5;
/// Model terms named per label.
const MODEL_TERMS: usize = 4;
/// The model names its terms for a programme from this probability on.
const MODEL_EXPLAIN_FROM: f32 = 0.5;

/// An item's fields split into words (title, summary, text) and the phrases found in them.
#[derive(Default)]
struct Scanned {
    words: [Vec<Word>; 3],
    hits: Vec<Hit>,
}

fn confidence(evidence: f32) -> f32 {
    1.0 - (-evidence / EVIDENCE_SCALE).exp()
}

/// The raw programme signals of one item, before they are combined (used to tune the
/// combination by cross-validation).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgrammeSignals {
    /// Per programme (in [`Classifier::programme_ids`] order): rule confidence in 0..=1.
    pub rule_confidence: Vec<f32>,
    /// Per programme: model probability, or None without a model.
    pub model_probability: Option<Vec<f32>>,
    /// The title says "no programme" (vacancy, annual report).
    pub suppressed: bool,
}

/// A ready classifier: compiled rules plus the trained model.
#[derive(Debug, Clone)]
pub struct Classifier {
    taxonomy: Taxonomy,
    rules: PhraseRules,
    no_programme: PhraseRules,
    /// Label indices of the programmes, in model class order.
    programmes: Vec<usize>,
    model: Option<Model>,
    rule_share: f32,
    threshold: f32,
    version: u64,
}

impl Classifier {
    /// Loads the taxonomy file and the labelled set it names (`classifier.training`), and
    /// trains the model. This is the start-up path; it reads files, classifying never does.
    pub fn from_taxonomy_file(path: &Path) -> Result<Classifier, ClassifyError> {
        let taxonomy = Taxonomy::load(path)?;
        let training = load_labelled(&taxonomy.settings.training)?;
        check_ids(&taxonomy, &training.items)?;
        let version = taxonomy::nonzero(taxonomy.version() ^ training.digest.rotate_left(1));
        let mut c = Classifier::new(taxonomy, &training.items);
        c.version = version;
        Ok(c)
    }

    /// Builds a classifier from a taxonomy and labelled items (no model when `training` is
    /// empty: rules alone).
    pub fn new(taxonomy: Taxonomy, training: &[LabelledItem]) -> Classifier {
        let rules = PhraseRules::new(&taxonomy);
        let no_programme = PhraseRules::from_phrases(
            taxonomy
                .settings
                .no_programme_titles
                .iter()
                .map(String::as_str),
        );
        let programmes: Vec<usize> = taxonomy
            .labels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.kind == LabelKind::Programme)
            .map(|(i, _)| i)
            .collect();
        let s = &taxonomy.settings;
        let model = (!training.is_empty()).then(|| {
            // Each programme's own name and description is one more positive example: it
            // anchors the model in the taxonomy's wording when the labelled set is small.
            let descriptions = programmes
                .iter()
                .filter_map(|&i| taxonomy.labels.get(i))
                .map(|def| Example {
                    fields: [
                        (def.name.as_str(), s.title_weight),
                        (def.description.as_str(), s.summary_weight),
                        ("", s.content_weight),
                    ],
                    targets: programmes
                        .iter()
                        .filter_map(|&i| taxonomy.labels.get(i))
                        .map(|l| Some(l.id == def.id))
                        .collect(),
                });
            let examples: Vec<Example<'_>> = training
                .iter()
                .map(|item| Example {
                    fields: [
                        (item.title.as_str(), s.title_weight),
                        (item.summary.as_str(), s.summary_weight),
                        (item.content.as_str(), s.content_weight),
                    ],
                    targets: programmes
                        .iter()
                        .filter_map(|&i| taxonomy.labels.get(i))
                        .map(|l| {
                            if item.required.contains(&l.id) {
                                Some(true)
                            } else if item.allowed.contains(&l.id) {
                                None
                            } else {
                                Some(false)
                            }
                        })
                        .collect(),
                })
                .chain(descriptions)
                .collect();
            Model::train(&examples, programmes.len())
        });
        let (rule_share, threshold) = match model {
            Some(_) => (s.rule_share, s.programme_threshold),
            // Without a model the rules decide alone, at the same bar for rule evidence.
            None => (
                1.0,
                rule_only_threshold(s.rule_share, s.programme_threshold),
            ),
        };
        let version = taxonomy.version();
        Classifier {
            taxonomy,
            rules,
            no_programme,
            programmes,
            model,
            rule_share,
            threshold,
            version,
        }
    }

    /// The same classifier with another programme combination (rule share, threshold).
    pub fn with_combination(mut self, rule_share: f32, threshold: f32) -> Classifier {
        self.rule_share = rule_share.clamp(0.0, 1.0);
        self.threshold = threshold.clamp(0.0, 1.0);
        self
    }

    /// Taxonomy version plus training data: the value stored in `Labels::taxonomy_version`.
    /// A stored item whose version differs is due for reclassification.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// True when `labels` came from this taxonomy and training data; false means the item is
    /// due for reclassification (or was never classified).
    pub fn is_current(&self, labels: &Labels) -> bool {
        labels.taxonomy_version == self.version
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// True when a model was trained.
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// Programme ids in the order of [`ProgrammeSignals`].
    pub fn programme_ids(&self) -> impl Iterator<Item = &str> {
        self.programmes
            .iter()
            .filter_map(|&i| self.taxonomy.labels.get(i))
            .map(|l| l.id.as_str())
    }

    fn fields<'a>(&self, text: &ItemText<'a>) -> [(&'a str, f32, Field); 3] {
        let s = &self.taxonomy.settings;
        [
            (text.title, s.title_weight, Field::Title),
            (text.summary, s.summary_weight, Field::Summary),
            (text.content_text, s.content_weight, Field::Content),
        ]
    }

    /// Splits the fields into words once and finds every phrase.
    fn scan(&self, text: &ItemText<'_>) -> Scanned {
        let mut buf = String::new();
        let mut scanned = Scanned::default();
        for ((t, weight, field), words) in self.fields(text).into_iter().zip(&mut scanned.words) {
            words_into(t, &mut buf, words);
            self.rules.scan(words, field, weight, &mut scanned.hits);
        }
        scanned
    }

    fn model_scores(&self, scanned: &Scanned, terms: usize) -> Option<Vec<model::ClassScore>> {
        let model = self.model.as_ref()?;
        let s = &self.taxonomy.settings;
        let [title, summary, content] = &scanned.words;
        let fields = [
            (title.as_slice(), s.title_weight),
            (summary.as_slice(), s.summary_weight),
            (content.as_slice(), s.content_weight),
        ];
        Some(model.predict(&fields, terms, MODEL_EXPLAIN_FROM))
    }

    /// The raw programme signals of one item (for tuning the combination).
    pub fn programme_signals(&self, text: &ItemText<'_>) -> ProgrammeSignals {
        let scanned = self.scan(text);
        let mut evidence = Vec::new();
        self.rules.evidence(&scanned.hits, &mut evidence);
        ProgrammeSignals {
            rule_confidence: self
                .programmes
                .iter()
                .map(|&i| confidence(evidence.get(i).copied().unwrap_or(0.0)))
                .collect(),
            model_probability: self
                .model_scores(&scanned, 0)
                .map(|s| s.into_iter().map(|c| c.probability).collect()),
            suppressed: {
                let [title_words, _, _] = &scanned.words;
                self.no_programme.any_in(title_words)
            },
        }
    }

    /// Classifies one item. `feed_defaults` are the feed's configured label ids; each is given
    /// with score 1 and the reason "feed default".
    pub fn classify(&self, text: &ItemText<'_>, feed_defaults: &[String]) -> Labels {
        let scanned = self.scan(text);
        let hits = &scanned.hits;
        let mut evidence = Vec::new();
        self.rules.evidence(hits, &mut evidence);
        let [title_words, _, _] = &scanned.words;
        let suppressed = self.no_programme.any_in(title_words);
        let model = if suppressed {
            None
        } else {
            self.model_scores(&scanned, MODEL_TERMS)
        };
        let s = &self.taxonomy.settings;
        let mut labels = Labels {
            taxonomy_version: self.version,
            ..Labels::default()
        };
        for (i, def) in self.taxonomy.labels.iter().enumerate() {
            let e = evidence.get(i).copied().unwrap_or(0.0);
            let rule_conf = confidence(e);
            let (score, model_terms) = match def.kind {
                LabelKind::Programme => {
                    if suppressed {
                        continue;
                    }
                    let class = self.programmes.iter().position(|&p| p == i);
                    let m = class.and_then(|c| model.as_ref().and_then(|m| m.get(c)));
                    let p = m.map_or(0.0, |m| m.probability);
                    let score = self.rule_share * rule_conf + (1.0 - self.rule_share) * p;
                    if score < self.threshold {
                        continue;
                    }
                    let terms = m
                        .filter(|m| m.probability >= MODEL_EXPLAIN_FROM && self.rule_share < 1.0)
                        .map(|m| m.top_terms.clone());
                    (score, terms)
                }
                LabelKind::Initiative if e >= s.initiative_min_evidence && e > 0.0 => {
                    (rule_conf, None)
                }
                LabelKind::Region if e >= s.region_min_evidence && e > 0.0 => (rule_conf, None),
                _ => continue,
            };
            let mut own: Vec<&Hit> = hits
                .iter()
                .filter(|h| self.rules.label_of(h) == Some(i))
                .filter(|h| self.rules.contribution(h) > 0.0)
                .collect();
            own.sort_by(|a, b| {
                self.rules
                    .contribution(b)
                    .total_cmp(&self.rules.contribution(a))
            });
            let mut why: Vec<String> = own
                .iter()
                .take(MAX_REASONS)
                .filter_map(|h| self.rules.reason(h))
                .collect();
            if let Some(terms) = model_terms.filter(|t| !t.is_empty()) {
                why.push(format!("model terms: {}", terms.join(", ")));
            }
            let label = Label {
                id: def.id.clone(),
                score: (score * 1000.0).round() / 1000.0,
                why,
            };
            match def.kind {
                LabelKind::Programme => labels.programmes.push(label),
                LabelKind::Initiative => labels.initiatives.push(label),
                LabelKind::Region => labels.regions.push(label),
            }
        }
        for id in feed_defaults {
            let Some(kind) = self.taxonomy.kind_of(id) else {
                continue;
            };
            let list = match kind {
                LabelKind::Programme => &mut labels.programmes,
                LabelKind::Initiative => &mut labels.initiatives,
                LabelKind::Region => &mut labels.regions,
            };
            match list.iter_mut().find(|l| &l.id == id) {
                Some(l) => {
                    l.score = 1.0;
                    l.why.push("feed default".into());
                }
                None => list.push(Label {
                    id: id.clone(),
                    score: 1.0,
                    why: vec!["feed default".into()],
                }),
            }
        }
        for list in [
            &mut labels.programmes,
            &mut labels.initiatives,
            &mut labels.regions,
        ] {
            list.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        }
        labels
    }
}

/// The rule confidence a combined score of `threshold` needs when the model says nothing.
fn rule_only_threshold(rule_share: f32, threshold: f32) -> f32 {
    if rule_share <= 0.0 {
        threshold
    } else {
        (threshold / rule_share).min(1.0)
    }
}
