//! The labelled set: JSON lines of items with the labels they must get and may get.
//!
//! In: `*.jsonl` files (or folders of them), one `{"title","summary","required":[..],
//! "allowed":[..]}` per line (`content` optional). Out: [`LabelledItem`]s that name their file
//! and line, and a digest of the bytes read (part of the classifier version). A bad line is an
//! error naming file, line and what is wrong; it never panics on input.

use super::taxonomy::Taxonomy;
use super::ClassifyError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One labelled item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledItem {
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub content: String,
    /// Labels it must get.
    #[serde(default)]
    pub required: Vec<String>,
    /// Labels it may also get without penalty.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// `file:line` it came from.
    #[serde(skip)]
    pub origin: String,
}

/// Labelled items and a digest of the bytes they were read from.
#[derive(Debug, Clone, Default)]
pub struct LabelledSet {
    pub items: Vec<LabelledItem>,
    pub digest: u64,
}

/// The `*.jsonl` files a path stands for: the file itself, or a folder's files, sorted.
fn files_of(path: &Path) -> Result<Vec<PathBuf>, ClassifyError> {
    let read_err = |source| ClassifyError::Read {
        path: path.to_path_buf(),
        source,
    };
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let p = entry.map_err(read_err)?.path();
        if p.extension().is_some_and(|e| e == "jsonl") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads labelled items from files or folders.
pub fn load_labelled(paths: &[PathBuf]) -> Result<LabelledSet, ClassifyError> {
    let mut set = LabelledSet::default();
    let mut digest = xxhash_rust::xxh3::Xxh3::new();
    for path in paths {
        for file in files_of(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| ClassifyError::Read {
                path: file.clone(),
                source,
            })?;
            digest.update(text.as_bytes());
            set.items.extend(parse_labelled(&text, &file)?);
        }
    }
    set.digest = digest.digest();
    Ok(set)
}

/// Parses labelled JSON lines; `file` names them in errors.
pub fn parse_labelled(text: &str, file: &Path) -> Result<Vec<LabelledItem>, ClassifyError> {
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut item: LabelledItem =
            serde_json::from_str(line).map_err(|e| ClassifyError::Labelled {
                path: file.to_path_buf(),
                line: line_no,
                message: e.to_string(),
            })?;
        if item.title.trim().is_empty() && item.summary.trim().is_empty() {
            return Err(ClassifyError::Labelled {
                path: file.to_path_buf(),
                line: line_no,
                message: "title and summary are both empty".into(),
            });
        }
        item.origin = format!("{}:{line_no}", file.display());
        items.push(item);
    }
    Ok(items)
}

/// Checks that every label a labelled item names exists in the taxonomy.
pub fn check_ids(taxonomy: &Taxonomy, items: &[LabelledItem]) -> Result<(), ClassifyError> {
    for item in items {
        for id in item.required.iter().chain(&item.allowed) {
            if taxonomy.label(id).is_none() {
                let (path, line) = split_origin(&item.origin);
                return Err(ClassifyError::Labelled {
                    path,
                    line,
                    message: format!("label {id:?} is not in the taxonomy"),
                });
            }
        }
    }
    Ok(())
}

fn split_origin(origin: &str) -> (PathBuf, usize) {
    match origin.rsplit_once(':') {
        Some((p, l)) => (PathBuf::from(p), l.parse().unwrap_or(0)),
        None => (PathBuf::from(origin), 0),
    }
}
