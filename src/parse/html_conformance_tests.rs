//! Conformance of the sanitiser with the feedparser cases on sanitising and relative URIs.
//!
//! In: `fixtures/sanitize_conformance.jsonl` (the raw HTML and base URL of each HTML-compared
//! check in `conformance/cases/feedparser.jsonl` under `wellformed/sanitize/` and
//! `wellformed/base/`, extracted by `scripts/gen-sanitize-fixtures.py`) and the case file itself,
//! whose `nvalue` is the expectation. Out: a pass rate, compared the way the conformance
//! harness compares HTML (`html_canon` in `conformance/neutral.py`, ported below). Test-only.

use std::path::PathBuf;

use serde_json::Value;

use super::entities::decode_references;
use super::sanitize::sanitize_html;

/// The shared directory: `$NEWSRELAY_SHARED_DIR`, else `shared/` beside the repository or
/// beside the worktree folder.
fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEWSRELAY_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared"))
        .find(|dir| dir.join("conformance/cases/feedparser.jsonl").is_file())
        .unwrap_or_else(|| manifest.join("../shared"))
}

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// One event of `html_canon`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Canon {
    Start(String, Vec<(String, String)>),
    End(String),
    Text(String),
}

/// Port of `html_canon`: Python's `html.parser` events with tags lower-cased, attributes
/// sorted, `<x/>` = `<x></x>`, void end tags dropped, references decoded, whitespace collapsed.
pub(crate) fn html_canon(s: &str) -> Vec<Canon> {
    let mut out: Vec<Canon> = Vec::new();
    let mut data = String::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut raw_until: Option<String> = None;
    let flush = |data: &mut String, out: &mut Vec<Canon>, raw: bool| {
        let decoded = if raw {
            data.clone()
        } else {
            decode_references(data)
        };
        data.clear();
        let text = decoded.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return;
        }
        if let Some(Canon::Text(previous)) = out.last_mut() {
            previous.push(' ');
            previous.push_str(&text);
        } else {
            out.push(Canon::Text(text));
        }
    };
    while i < bytes.len() {
        if let Some(name) = raw_until.clone() {
            let close = format!("</{name}");
            let lower = s.get(i..).unwrap_or("").to_ascii_lowercase();
            let end = lower.find(&close).unwrap_or(lower.len());
            data.push_str(s.get(i..i + end).unwrap_or(""));
            flush(&mut data, &mut out, true);
            i += end;
            raw_until = None;
            continue;
        }
        let rest = s.get(i..).unwrap_or("");
        let next = bytes.get(i + 1).copied();
        if bytes.get(i) != Some(&b'<') {
            let lt = rest.find('<').unwrap_or(rest.len());
            data.push_str(rest.get(..lt).unwrap_or(""));
            i += lt.max(1);
            continue;
        }
        if rest.starts_with("<!--") {
            flush(&mut data, &mut out, false);
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
        } else if matches!(next, Some(b'!') | Some(b'?')) {
            flush(&mut data, &mut out, false);
            i += rest.find('>').map_or(rest.len(), |e| e + 1);
        } else if next == Some(b'/') && bytes.get(i + 2).is_some_and(u8::is_ascii_alphabetic) {
            flush(&mut data, &mut out, false);
            let end = rest.find('>').unwrap_or(rest.len());
            let name: String = rest
                .get(2..end)
                .unwrap_or("")
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if !VOID.contains(&name.as_str()) {
                out.push(Canon::End(name));
            }
            i += (end + 1).min(rest.len());
        } else if next.is_some_and(|b| b.is_ascii_alphabetic()) {
            let Some((name, attrs, self_closing, len)) = parse_start_tag(rest) else {
                data.push_str(rest);
                break;
            };
            flush(&mut data, &mut out, false);
            out.push(Canon::Start(name.clone(), attrs));
            if self_closing && !VOID.contains(&name.as_str()) {
                out.push(Canon::End(name.clone()));
            } else if !self_closing && (name == "script" || name == "style") {
                raw_until = Some(name);
            }
            i += len;
        } else {
            data.push('<');
            i += 1;
        }
    }
    flush(&mut data, &mut out, false);
    out
}

type StartTag = (String, Vec<(String, String)>, bool, usize);

/// `<name attr=value ...>` at the start of `s`: name, sorted attributes, `/>`, length.
fn parse_start_tag(s: &str) -> Option<StartTag> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut p = 1;
    let at = |p: usize| chars.get(p).map(|&(_, c)| c);
    let mut name = String::new();
    while let Some(c) = at(p) {
        if c.is_whitespace() || c == '/' || c == '>' {
            break;
        }
        name.push(c.to_ascii_lowercase());
        p += 1;
    }
    let mut attrs = Vec::new();
    loop {
        while at(p).is_some_and(|c| c.is_whitespace() || c == '/') {
            if at(p) == Some('/') && at(p + 1) == Some('>') {
                attrs.sort();
                return Some((name, attrs, true, chars.get(p + 1)?.0 + 1));
            }
            p += 1;
        }
        match at(p)? {
            '>' => {
                attrs.sort();
                return Some((name, attrs, false, chars.get(p)?.0 + 1));
            }
            _ => {
                let mut key = String::new();
                while let Some(c) = at(p) {
                    if c.is_whitespace() || c == '/' || c == '>' || (c == '=' && !key.is_empty()) {
                        break;
                    }
                    key.push(c.to_ascii_lowercase());
                    p += 1;
                }
                let mut look = p;
                while at(look).is_some_and(char::is_whitespace) {
                    look += 1;
                }
                let mut value = String::new();
                if at(look) == Some('=') {
                    p = look + 1;
                    while at(p).is_some_and(char::is_whitespace) {
                        p += 1;
                    }
                    match at(p) {
                        Some(q @ ('"' | '\'')) => {
                            p += 1;
                            while let Some(c) = at(p) {
                                p += 1;
                                if c == q {
                                    break;
                                }
                                value.push(c);
                            }
                        }
                        _ => {
                            while let Some(c) = at(p) {
                                if c.is_whitespace() || c == '>' {
                                    break;
                                }
                                value.push(c);
                                p += 1;
                            }
                        }
                    }
                }
                attrs.push((key, decode_references(&value)));
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ConformanceReport {
    pub(crate) total: usize,
    pub(crate) passed: usize,
    pub(crate) failures: Vec<String>,
}

/// Runs every fixture through `sanitize_html` and compares with the case's expectation.
pub(crate) fn run_sanitize_conformance() -> ConformanceReport {
    let shared = shared_dir();
    let cases_path = shared.join("conformance/cases/feedparser.jsonl");
    let cases = std::fs::read_to_string(&cases_path)
        .unwrap_or_else(|e| panic!("conformance cases at {}: {e}", cases_path.display()));
    let mut expectations = std::collections::HashMap::new();
    for line in cases.lines() {
        let case: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        if let Some(path) = case.get("path").and_then(Value::as_str) {
            expectations.insert(path.to_string(), case);
        }
    }
    let fixtures_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sanitize_conformance.jsonl");
    let fixtures = std::fs::read_to_string(&fixtures_path)
        .unwrap_or_else(|e| panic!("fixtures at {}: {e}", fixtures_path.display()));
    let mut report = ConformanceReport::default();
    for line in fixtures.lines() {
        let fixture: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let path = fixture.get("path").and_then(Value::as_str).unwrap_or("");
        let check_index = fixture.get("check").and_then(Value::as_u64).unwrap_or(0);
        let html = fixture.get("html").and_then(Value::as_str).unwrap_or("");
        let base = fixture
            .get("base")
            .and_then(Value::as_str)
            .and_then(|b| url::Url::parse(b).ok());
        let expected = expectations
            .get(path)
            .and_then(|case| case.pointer(&format!("/translation/checks/{check_index}/nvalue")))
            .and_then(Value::as_str);
        let Some(expected) = expected else {
            report
                .failures
                .push(format!("{path}: no expectation in the case file"));
            report.total += 1;
            continue;
        };
        let actual = sanitize_html(html, base.as_ref());
        report.total += 1;
        if actual == expected || html_canon(&actual) == html_canon(expected) {
            report.passed += 1;
        } else {
            report.failures.push(format!(
                "{path}\n    input:    {html:?}\n    expected: {expected:?}\n    actual:   {actual:?}"
            ));
        }
    }
    report
}

#[test]
fn canon_ignores_serialisation_details() {
    assert_eq!(
        html_canon("<IMG SRC='x' alt=\"y\"/>"),
        html_canon(r#"<img alt="y" src="x">"#)
    );
    assert_eq!(
        html_canon("a  &amp;\n b"),
        vec![Canon::Text("a & b".into())]
    );
    assert_ne!(html_canon("<b>x</b>"), html_canon("<i>x</i>"));
    assert_ne!(html_canon(r#"<a href="x">"#), html_canon(r#"<a href="y">"#));
}

#[test]
fn sanitiser_matches_feedparser_conformance_cases() {
    let report = run_sanitize_conformance();
    for failure in &report.failures {
        eprintln!("FAIL {failure}");
    }
    let rate = report.passed as f64 * 100.0 / report.total.max(1) as f64;
    eprintln!(
        "sanitize conformance: {} of {} checks pass ({rate:.1}%)",
        report.passed, report.total
    );
    assert!(report.total >= 500, "only {} fixtures", report.total);
    assert!(rate >= 90.0, "pass rate {rate:.1}% below 90%");
}
