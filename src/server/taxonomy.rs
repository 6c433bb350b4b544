//! The names of the published feeds: every programme, initiative and region of the taxonomy.
//!
//! In: the taxonomy file (`config/programmes.toml`, `[[label]]` tables with `id`, `kind`,
//! `name`; every other key is left to the classifier). Out: a [`Taxa`] list in file order that
//! the routes use to accept feed ids, title feeds and lay out the index page and OPML. It must
//! never accept a label with an empty or unsafe id (ids appear in URLs), and never fail on keys
//! that belong to the classifier.

use crate::publish::TaxonKind;
use serde::Deserialize;
use std::path::Path;

use super::ServerError;

/// One published label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taxon {
    pub id: String,
    pub title: String,
    pub kind: TaxonKind,
}

/// Every published label, in taxonomy-file order within each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taxa {
    taxa: Vec<Taxon>,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    #[serde(default)]
    label: Vec<RawLabel>,
}

#[derive(Debug, Deserialize)]
struct RawLabel {
    id: String,
    kind: String,
    name: Option<String>,
}

/// The fixed ids the public interface guarantees, with their names; used when no taxonomy file
/// is configured and by tests.
const FIXED: &[(&str, TaxonKind, &str)] = &[
    (
        "irregular-migration-return",
        TaxonKind::Programme,
        "Irregular Migration & Return",
    ),
    (
        "trafficking-in-human-beings",
        TaxonKind::Programme,
        "Trafficking in Human Beings",
    ),
    (
        "border-management-visa",
        TaxonKind::Programme,
        "Border Management & Visa",
    ),
    ("asylum", TaxonKind::Programme, "Asylum"),
    (
        "migration-development",
        TaxonKind::Programme,
        "Migration & Development",
    ),
    (
        "legal-migration-integration",
        TaxonKind::Programme,
        "Legal Migration & Integration",
    ),
    ("mieux", TaxonKind::Initiative, "MIEUX+"),
    ("prague-process", TaxonKind::Initiative, "Prague Process"),
    ("rabat-process", TaxonKind::Initiative, "Rabat Process"),
    (
        "budapest-process",
        TaxonKind::Initiative,
        "Budapest Process",
    ),
    (
        "khartoum-process",
        TaxonKind::Initiative,
        "Khartoum Process",
    ),
    (
        "euromed-migration",
        TaxonKind::Initiative,
        "EUROMED Migration",
    ),
    ("mc2cm", TaxonKind::Initiative, "MC2CM"),
    ("mtm", TaxonKind::Initiative, "MTM Dialogue"),
    ("eu", TaxonKind::Region, "European Union"),
    ("western-balkans", TaxonKind::Region, "Western Balkans"),
    ("turkey", TaxonKind::Region, "Türkiye"),
    (
        "eastern-europe-central-asia",
        TaxonKind::Region,
        "Eastern Europe and Central Asia",
    ),
    ("silk-routes", TaxonKind::Region, "Silk Routes"),
    ("middle-east", TaxonKind::Region, "Middle East"),
    ("north-africa", TaxonKind::Region, "North Africa"),
    (
        "sub-saharan-africa",
        TaxonKind::Region,
        "Sub-Saharan Africa",
    ),
    (
        "latin-america-caribbean",
        TaxonKind::Region,
        "Latin America and the Caribbean",
    ),
];

/// True for ids that are safe in a URL path segment: lowercase letters, digits and `-`.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Taxa {
    /// The fixed taxonomy of the public interface.
    pub fn fixed() -> Taxa {
        Taxa {
            taxa: FIXED
                .iter()
                .map(|(id, kind, title)| Taxon {
                    id: (*id).to_string(),
                    title: (*title).to_string(),
                    kind: *kind,
                })
                .collect(),
        }
    }

    /// Reads the labels of a taxonomy file.
    pub fn from_file(path: &Path) -> Result<Taxa, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServerError::Taxonomy {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Taxa::from_toml(&text).map_err(|message| ServerError::Taxonomy {
            path: path.display().to_string(),
            message,
        })
    }

    /// Reads the labels of a taxonomy file's text; the error is one line.
    pub fn from_toml(text: &str) -> Result<Taxa, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut taxa: Vec<Taxon> = Vec::with_capacity(raw.label.len());
        for l in raw.label {
            if !is_safe_id(&l.id) || l.id == "all" {
                return Err(format!(
                    "label id {:?} must be lowercase letters, digits and '-' (and not \"all\")",
                    l.id
                ));
            }
            let kind = match l.kind.as_str() {
                "programme" => TaxonKind::Programme,
                "initiative" => TaxonKind::Initiative,
                "region" => TaxonKind::Region,
                other => {
                    return Err(format!(
                        "label {:?}: kind {other:?} is not programme, initiative or region",
                        l.id
                    ))
                }
            };
            if taxa.iter().any(|t| t.id == l.id) {
                return Err(format!("label id {:?} appears twice", l.id));
            }
            let title = l
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| l.id.clone());
            taxa.push(Taxon {
                id: l.id,
                title,
                kind,
            });
        }
        // Programmes first, then initiatives, then regions; file order within a kind.
        taxa.sort_by_key(|t| kind_rank(t.kind));
        Ok(Taxa { taxa })
    }

    pub fn get(&self, id: &str) -> Option<&Taxon> {
        self.taxa.iter().find(|t| t.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Taxon> {
        self.taxa.iter()
    }

    pub fn of_kind(&self, kind: TaxonKind) -> impl Iterator<Item = &Taxon> {
        self.taxa.iter().filter(move |t| t.kind == kind)
    }
}

fn kind_rank(kind: TaxonKind) -> u8 {
    match kind {
        TaxonKind::All => 0,
        TaxonKind::Programme => 1,
        TaxonKind::Initiative => 2,
        TaxonKind::Region => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_and_ignores_classifier_keys() {
        let t = Taxa::from_toml(
            "[classifier]\nalias_weight = 2.0\n[[label]]\nid = \"eu\"\nkind = \"region\"\n\
             name = \"European Union\"\n[label.phrases]\n\"european union\" = 2.0\n\
             [[label]]\nid = \"asylum\"\nkind = \"programme\"\nname = \"Asylum\"\n",
        )
        .unwrap();
        let ids: Vec<&str> = t.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["asylum", "eu"]);
        assert_eq!(t.get("eu").unwrap().title, "European Union");
    }

    #[test]
    fn rejects_unsafe_ids_and_kinds() {
        assert!(Taxa::from_toml("[[label]]\nid = \"a/b\"\nkind = \"region\"\n").is_err());
        assert!(Taxa::from_toml("[[label]]\nid = \"all\"\nkind = \"region\"\n").is_err());
        assert!(Taxa::from_toml("[[label]]\nid = \"x\"\nkind = \"topic\"\n").is_err());
    }

    #[test]
    fn fixed_has_every_interface_id() {
        let t = Taxa::fixed();
        assert_eq!(t.of_kind(TaxonKind::Programme).count(), 6);
        assert_eq!(t.of_kind(TaxonKind::Initiative).count(), 8);
        assert_eq!(t.of_kind(TaxonKind::Region).count(), 9);
    }
}
