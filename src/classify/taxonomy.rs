//! The taxonomy file (`programmes.toml`): labels, their vocabulary and the classifier settings.
//!
//! In: the TOML text and the path it came from. Out: a validated [`Taxonomy`] whose every
//! error names the file, line and key; and a [`Taxonomy::version`] that changes whenever the
//! text does. It must never classify anything or read files other than the one it is given.

use super::ClassifyError;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The ids every taxonomy must define (INTERFACE.md), by kind.
pub const REQUIRED_PROGRAMMES: [&str; 6] = [
    "irregular-migration-return",
    "trafficking-in-human-beings",
    "border-management-visa",
    "asylum",
    "migration-development",
    "legal-migration-integration",
];
pub const REQUIRED_INITIATIVES: [&str; 8] = [
    "mieux",
    "prague-process",
    "rabat-process",
    "budapest-process",
    "khartoum-process",
    "euromed-migration",
    "mc2cm",
    "mtm",
];
pub const REQUIRED_REGIONS: [&str; 9] = [
    "eu",
    "western-balkans",
    "turkey",
    "eastern-europe-central-asia",
    "silk-routes",
    "middle-east",
    "north-africa",
    "sub-saharan-africa",
    "latin-america-caribbean",
];

/// Which list of [`crate::item::Labels`] a label belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelKind {
    Programme,
    Initiative,
    Region,
}

impl LabelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelKind::Programme => "programme",
            LabelKind::Initiative => "initiative",
            LabelKind::Region => "region",
        }
    }
}

/// One phrase and its weight (always positive; negatives are kept in their own list).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedPhrase {
    pub phrase: String,
    pub weight: f32,
}

/// One programme, initiative or region.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelDef {
    pub id: String,
    pub kind: LabelKind,
    pub name: String,
    pub description: String,
    /// Phrases that signal the label.
    pub phrases: Vec<WeightedPhrase>,
    /// Phrases that count against it.
    pub negatives: Vec<WeightedPhrase>,
    /// Acronyms and project names; each counts [`Settings::alias_weight`].
    pub aliases: Vec<String>,
}

/// The `[classifier]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Labelled JSON lines files or folders, resolved against the taxonomy file's folder.
    pub training: Vec<PathBuf>,
    pub title_weight: f32,
    pub summary_weight: f32,
    pub content_weight: f32,
    pub alias_weight: f32,
    /// Share of rule confidence in a programme's score (the rest is the model's probability).
    pub rule_share: f32,
    pub programme_threshold: f32,
    pub initiative_min_evidence: f32,
    pub region_min_evidence: f32,
    /// Title phrases that mean "no programme" (vacancies, annual reports).
    pub no_programme_titles: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            training: Vec::new(),
            title_weight: 3.0,
            summary_weight: 2.0,
            content_weight: 1.0,
            alias_weight: 2.0,
            rule_share: 0.6,
            programme_threshold: 0.4,
            initiative_min_evidence: 2.0,
            region_min_evidence: 2.0,
            no_programme_titles: Vec::new(),
        }
    }
}

/// A validated taxonomy.
#[derive(Debug, Clone, PartialEq)]
pub struct Taxonomy {
    pub labels: Vec<LabelDef>,
    pub settings: Settings,
    version: u64,
}

// ---------------------------------------------------------------------------------------------
// Raw TOML shape, unknown keys rejected.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxonomy {
    #[serde(default)]
    classifier: Option<RawSettings>,
    #[serde(default)]
    label: Vec<RawLabel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    training: Vec<Spanned<String>>,
    title_weight: Option<Spanned<f64>>,
    summary_weight: Option<Spanned<f64>>,
    content_weight: Option<Spanned<f64>>,
    alias_weight: Option<Spanned<f64>>,
    rule_share: Option<Spanned<f64>>,
    programme_threshold: Option<Spanned<f64>>,
    initiative_min_evidence: Option<Spanned<f64>>,
    region_min_evidence: Option<Spanned<f64>>,
    #[serde(default)]
    no_programme_titles: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    id: Spanned<String>,
    kind: Spanned<String>,
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    phrases: BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    negatives: BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err_at(&self, offset: usize, message: impl Into<String>) -> ClassifyError {
        let (line, column) = line_col(self.text, offset);
        ClassifyError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
    fn err<T>(&self, v: &Spanned<T>, message: impl Into<String>) -> ClassifyError {
        self.err_at(v.span().start, message)
    }
    /// A finite number in `min..=max`.
    fn number(
        &self,
        key: &str,
        v: &Option<Spanned<f64>>,
        min: f64,
        max: f64,
        default: f32,
    ) -> Result<f32, ClassifyError> {
        match v {
            None => Ok(default),
            Some(s) => {
                let n = *s.get_ref();
                if n.is_finite() && n >= min && n <= max {
                    Ok(n as f32)
                } else {
                    Err(self.err(
                        s,
                        format!("{key} must be a number from {min} to {max}, not {n}"),
                    ))
                }
            }
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.as_bytes().get(..offset).unwrap_or_default();
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

/// A phrase must contain at least one letter or digit, or it could never match.
fn has_word(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

impl Taxonomy {
    /// Reads and validates a taxonomy file.
    pub fn load(path: &Path) -> Result<Taxonomy, ClassifyError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClassifyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Taxonomy::from_toml_str(&text, path)
    }

    /// Validates taxonomy text; `path` names it in errors and anchors relative training paths.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Taxonomy, ClassifyError> {
        let cx = Ctx { path, text };
        let raw: RawTaxonomy = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            cx.err_at(offset, e.message().trim().replace('\n', " "))
        })?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let settings = match &raw.classifier {
            None => Settings::default(),
            Some(s) => validate_settings(&cx, s, folder)?,
        };

        let mut labels = Vec::with_capacity(raw.label.len());
        let mut seen = HashSet::new();
        for l in raw.label {
            let id = l.id.get_ref().trim().to_string();
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(cx.err(
                    &l.id,
                    format!("label.id {id:?} must be lower-case letters, digits and '-'"),
                ));
            }
            if !seen.insert(id.clone()) {
                return Err(cx.err(&l.id, format!("label.id {id:?} is defined twice")));
            }
            let kind = match l.kind.get_ref().as_str() {
                "programme" => LabelKind::Programme,
                "initiative" => LabelKind::Initiative,
                "region" => LabelKind::Region,
                other => {
                    return Err(cx.err(
                        &l.kind,
                        format!(
                        "label.kind {other:?} of {id:?} must be programme, initiative or region"
                    ),
                    ))
                }
            };
            if l.name.get_ref().trim().is_empty() {
                return Err(cx.err(&l.name, format!("label.name of {id:?} is empty")));
            }
            let phrases = weighted(&cx, &id, "phrases", &l.phrases)?;
            let negatives = weighted(&cx, &id, "negatives", &l.negatives)?;
            let mut aliases = Vec::with_capacity(l.aliases.len());
            for a in &l.aliases {
                if !has_word(a.get_ref()) {
                    return Err(cx.err(
                        a,
                        format!(
                            "label.aliases of {id:?}: {:?} has no letters or digits",
                            a.get_ref()
                        ),
                    ));
                }
                aliases.push(a.get_ref().trim().to_string());
            }
            if phrases.is_empty() && aliases.is_empty() {
                return Err(cx.err(
                    &l.id,
                    format!("label {id:?} has no phrases and no aliases, so nothing can signal it"),
                ));
            }
            labels.push(LabelDef {
                id,
                kind,
                name: l.name.get_ref().trim().to_string(),
                description: l.description.trim().to_string(),
                phrases,
                negatives,
                aliases,
            });
        }

        for (kind, required) in [
            (LabelKind::Programme, &REQUIRED_PROGRAMMES[..]),
            (LabelKind::Initiative, &REQUIRED_INITIATIVES[..]),
            (LabelKind::Region, &REQUIRED_REGIONS[..]),
        ] {
            for id in required {
                match labels.iter().find(|l| l.id == *id) {
                    None => {
                        return Err(cx.err_at(
                            text.len(),
                            format!("the {} {id:?} is missing: every fixed taxonomy id must be defined ([[label]] id = {id:?})", kind.as_str()),
                        ))
                    }
                    Some(l) if l.kind != kind => {
                        return Err(cx.err_at(
                            0,
                            format!("label {id:?} must have kind = {:?}, not {:?}", kind.as_str(), l.kind.as_str()),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }

        let version = nonzero(xxhash_rust::xxh3::xxh3_64(text.as_bytes()));
        Ok(Taxonomy {
            labels,
            settings,
            version,
        })
    }

    /// Hash of the taxonomy text (never 0, which means "not classified").
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The label with this id.
    pub fn label(&self, id: &str) -> Option<&LabelDef> {
        self.labels.iter().find(|l| l.id == id)
    }

    /// The kind of a label id, or None when the taxonomy does not define it.
    pub fn kind_of(&self, id: &str) -> Option<LabelKind> {
        self.label(id).map(|l| l.kind)
    }

    /// Ids of one kind, in file order.
    pub fn ids(&self, kind: LabelKind) -> impl Iterator<Item = &str> {
        self.labels
            .iter()
            .filter(move |l| l.kind == kind)
            .map(|l| l.id.as_str())
    }
}

pub(crate) fn nonzero(h: u64) -> u64 {
    if h == 0 {
        1
    } else {
        h
    }
}

fn validate_settings(
    cx: &Ctx<'_>,
    s: &RawSettings,
    folder: &Path,
) -> Result<Settings, ClassifyError> {
    let d = Settings::default();
    let mut training = Vec::with_capacity(s.training.len());
    for t in &s.training {
        if t.get_ref().trim().is_empty() {
            return Err(cx.err(t, "classifier.training has an empty path"));
        }
        training.push(folder.join(t.get_ref().trim()));
    }
    let mut no_programme_titles = Vec::with_capacity(s.no_programme_titles.len());
    for p in &s.no_programme_titles {
        if !has_word(p.get_ref()) {
            return Err(cx.err(
                p,
                format!(
                    "classifier.no_programme_titles: {:?} has no letters or digits",
                    p.get_ref()
                ),
            ));
        }
        no_programme_titles.push(p.get_ref().trim().to_string());
    }
    Ok(Settings {
        training,
        title_weight: cx.number(
            "classifier.title_weight",
            &s.title_weight,
            0.0,
            100.0,
            d.title_weight,
        )?,
        summary_weight: cx.number(
            "classifier.summary_weight",
            &s.summary_weight,
            0.0,
            100.0,
            d.summary_weight,
        )?,
        content_weight: cx.number(
            "classifier.content_weight",
            &s.content_weight,
            0.0,
            100.0,
            d.content_weight,
        )?,
        alias_weight: cx.number(
            "classifier.alias_weight",
            &s.alias_weight,
            0.0,
            100.0,
            d.alias_weight,
        )?,
        rule_share: cx.number(
            "classifier.rule_share",
            &s.rule_share,
            0.0,
            1.0,
            d.rule_share,
        )?,
        programme_threshold: cx.number(
            "classifier.programme_threshold",
            &s.programme_threshold,
            0.0,
            1.0,
            d.programme_threshold,
        )?,
        initiative_min_evidence: cx.number(
            "classifier.initiative_min_evidence",
            &s.initiative_min_evidence,
            0.0,
            1000.0,
            d.initiative_min_evidence,
        )?,
        region_min_evidence: cx.number(
            "classifier.region_min_evidence",
            &s.region_min_evidence,
            0.0,
            1000.0,
            d.region_min_evidence,
        )?,
        no_programme_titles,
    })
}

fn weighted(
    cx: &Ctx<'_>,
    id: &str,
    table: &str,
    raw: &BTreeMap<String, Spanned<f64>>,
) -> Result<Vec<WeightedPhrase>, ClassifyError> {
    let mut out = Vec::with_capacity(raw.len());
    for (phrase, w) in raw {
        let n = *w.get_ref();
        if !(n.is_finite() && n > 0.0 && n <= 100.0) {
            return Err(cx.err(
                w,
                format!("label.{table} of {id:?}: weight of {phrase:?} must be above 0 and at most 100, not {n}"),
            ));
        }
        if !has_word(phrase) {
            return Err(cx.err(
                w,
                format!("label.{table} of {id:?}: {phrase:?} has no letters or digits"),
            ));
        }
        out.push(WeightedPhrase {
            phrase: phrase.trim().to_string(),
            weight: n as f32,
        });
    }
    Ok(out)
}
