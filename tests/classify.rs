//! Integration tests: classify. They use the bundled taxonomy and labelled set as shipped, real
//! files in temporary folders, and the real `newsrelay` binary.

use newsrelay::classify::{
    self, Classifier, ClassifyError, ItemText, LabelKind, LabelledItem, Taxonomy,
};
use newsrelay::item::Labels;
use newsrelay::parse::{Entry, ParsedFeed};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn taxonomy_path() -> PathBuf {
    root().join("config/programmes.toml")
}

/// The bundled classifier, built once (taxonomy + labelled set + training).
fn bundled() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::from_taxonomy_file(&taxonomy_path()).expect("bundled taxonomy"))
}

fn text<'a>(title: &'a str, summary: &'a str, content: &'a str) -> ItemText<'a> {
    ItemText {
        title,
        summary,
        content_text: content,
        link: None,
    }
}

fn programmes(l: &Labels) -> Vec<&str> {
    l.programmes.iter().map(|x| x.id.as_str()).collect()
}

fn all_labelled() -> Vec<LabelledItem> {
    let set = classify::load_labelled(&[root().join("fixtures/labelled")]).expect("labelled set");
    set.items
}

// --- taxonomy -------------------------------------------------------------------------------

#[test]
fn bundled_taxonomy_defines_every_fixed_id_with_its_kind() {
    let t = Taxonomy::load(&taxonomy_path()).unwrap();
    for (kind, ids) in [
        (
            LabelKind::Programme,
            &classify::taxonomy::REQUIRED_PROGRAMMES[..],
        ),
        (
            LabelKind::Initiative,
            &classify::taxonomy::REQUIRED_INITIATIVES[..],
        ),
        (LabelKind::Region, &classify::taxonomy::REQUIRED_REGIONS[..]),
    ] {
        for id in ids {
            assert_eq!(t.kind_of(id), Some(kind), "{id}");
            let def = t.label(id).unwrap();
            assert!(!def.description.is_empty(), "{id} has a description");
        }
    }
    assert_eq!(t.ids(LabelKind::Programme).count(), 6);
    // Aliases from the seeds are mapped to their programmes.
    assert!(t
        .label("asylum")
        .unwrap()
        .aliases
        .iter()
        .any(|a| a == "ASCAP"));
    assert!(t
        .label("border-management-visa")
        .unwrap()
        .aliases
        .iter()
        .any(|a| a == "IBM"));
}

#[test]
fn version_is_stable_and_follows_the_text() {
    let text = std::fs::read_to_string(taxonomy_path()).unwrap();
    let a = Taxonomy::from_toml_str(&text, &taxonomy_path()).unwrap();
    let b = Taxonomy::from_toml_str(&text, &taxonomy_path()).unwrap();
    assert_eq!(a.version(), b.version());
    assert_ne!(a.version(), 0);
    let edited = text.replace("\"asylum\" = 2.0", "\"asylum\" = 2.5");
    assert_ne!(edited, text);
    let c = Taxonomy::from_toml_str(&edited, &taxonomy_path()).unwrap();
    assert_ne!(a.version(), c.version());
    // The classifier version also covers the training data and is what labels carry.
    let labels = bundled().classify(&text_item("Asylum news"), &[]);
    assert_eq!(labels.taxonomy_version, bundled().version());
    assert!(bundled().is_current(&labels));
    assert!(!bundled().is_current(&Labels::default()));
    assert_ne!(bundled().version(), a.version());
}

fn text_item(title: &str) -> ItemText<'_> {
    text(title, "", "")
}

/// A taxonomy file with the bundled labels but an edit; errors are checked for key and line.
fn edited_error(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(taxonomy_path()).unwrap();
    assert!(text.contains(from), "fixture text {from:?} not found");
    let edited = text.replacen(from, to, 1);
    let err = Taxonomy::from_toml_str(&edited, Path::new("/etc/newsrelay/programmes.toml"))
        .expect_err("must be rejected");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.starts_with("/etc/newsrelay/programmes.toml:"), "{msg}");
    msg
}

fn line_of(text: &str, needle: &str) -> usize {
    let text_before = &text[..text.find(needle).unwrap()];
    text_before.lines().count() + usize::from(text_before.ends_with('\n'))
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let text = std::fs::read_to_string(taxonomy_path()).unwrap();
    let line = line_of(&text, "kind = \"programme\"");
    let msg = edited_error("kind = \"programme\"", "kind = \"programme\"\nweigth = 2");
    assert!(msg.contains("weigth"), "{msg}");
    assert!(msg.contains(&format!(":{}:", line + 1)), "{msg}");
}

#[test]
fn bad_values_are_named_with_their_line() {
    let text = std::fs::read_to_string(taxonomy_path()).unwrap();
    let line = line_of(&text, "\"international protection\" = 2.0");
    let msg = edited_error(
        "\"international protection\" = 2.0",
        "\"international protection\" = -2.0",
    );
    assert!(msg.contains(&format!(":{line}:")), "{msg}");
    assert!(msg.contains("international protection"), "{msg}");

    let msg = edited_error("rule_share = 0.6", "rule_share = 1.6");
    assert!(msg.contains("classifier.rule_share"), "{msg}");
    let msg = edited_error("kind = \"region\"", "kind = \"continent\"");
    assert!(msg.contains("continent"), "{msg}");
}

#[test]
fn a_missing_fixed_id_is_an_error() {
    let msg = edited_error("id = \"mtm\"", "id = \"mtm-dialogue\"");
    assert!(msg.contains("\"mtm\" is missing"), "{msg}");
    let msg = edited_error("id = \"eu\"", "id = \"asylum\"");
    assert!(msg.contains("defined twice"), "{msg}");
}

#[test]
fn labelled_file_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"title\":\"Asylum\",\"summary\":\"\",\"required\":[\"asylum\"]}\n{\"title\": 3}\n",
    )
    .unwrap();
    let err = classify::load_labelled(std::slice::from_ref(&file)).unwrap_err();
    assert!(
        matches!(err, ClassifyError::Labelled { line: 2, .. }),
        "{err}"
    );
    std::fs::write(
        &file,
        "{\"title\":\"Asylum\",\"summary\":\"\",\"required\":[\"asylum-and-more\"]}\n",
    )
    .unwrap();
    let items = classify::load_labelled(&[file]).unwrap().items;
    let err = classify::check_ids(bundled().taxonomy(), &items).unwrap_err();
    assert!(err.to_string().contains("bad.jsonl:1:"), "{err}");
    assert!(err.to_string().contains("asylum-and-more"), "{err}");
}

// --- classifying ----------------------------------------------------------------------------

#[test]
fn multi_label_with_scores_and_reasons() {
    let labels = bundled().classify(
        &text(
            "Turkey: training on refugee status determination and assisted voluntary return",
            "ICMPD trained case workers of the Presidency of Migration Management on asylum interviews and on return counselling for migrants without a right to stay.",
            "",
        ),
        &[],
    );
    let p = programmes(&labels);
    assert!(p.contains(&"asylum"), "{labels:?}");
    assert!(p.contains(&"irregular-migration-return"), "{labels:?}");
    assert!(labels.has("turkey"), "{labels:?}");
    for l in labels
        .programmes
        .iter()
        .chain(&labels.regions)
        .chain(&labels.initiatives)
    {
        assert!(l.score > 0.0 && l.score <= 1.0, "{l:?}");
        assert!(!l.why.is_empty(), "{l:?}");
    }
    let asylum = labels.programmes.iter().find(|l| l.id == "asylum").unwrap();
    assert!(
        asylum
            .why
            .iter()
            .any(|w| w.contains("refugee status determination")),
        "{asylum:?}"
    );
}

#[test]
fn vacancies_and_reports_get_no_programme() {
    for title in [
        "Vacancy: Project Officer, Anti-Trafficking Programme",
        "ICMPD Annual Report 2022 published",
    ] {
        let labels = bundled().classify(
            &text(
                title,
                "Applications from experts in asylum and border management are welcome.",
                "",
            ),
            &[],
        );
        assert!(labels.programmes.is_empty(), "{title}: {labels:?}");
    }
    let labels = bundled().classify(
        &text(
            "Staff outing to the Vienna woods",
            "Colleagues spent a day hiking.",
            "",
        ),
        &[],
    );
    assert!(labels.programmes.is_empty(), "{labels:?}");
    assert!(
        labels.regions.is_empty() && labels.initiatives.is_empty(),
        "{labels:?}"
    );
}

#[test]
fn negatives_cancel_a_generic_word() {
    let drugs = bundled().classify(
        &text(
            "Police seize cocaine in drug trafficking operation",
            "The drug trafficking ring was dismantled.",
            "",
        ),
        &[],
    );
    assert!(!drugs.has("trafficking-in-human-beings"), "{drugs:?}");
    let people = bundled().classify(
        &text(
            "Police free victims in trafficking operation",
            "The trafficking ring exploited women in bars.",
            "",
        ),
        &[],
    );
    assert!(people.has("trafficking-in-human-beings"), "{people:?}");
    let funded = bundled().classify(
        &text(
            "Border guards trained in Ghana",
            "The project is funded by the European Union.",
            "",
        ),
        &[],
    );
    assert!(!funded.has("eu"), "{funded:?}");
    assert!(funded.has("sub-saharan-africa"), "{funded:?}");
}

#[test]
fn acronyms_match_case_sensitively_and_only_whole_words() {
    let ibm = bundled().classify(&text("IBM strategy adopted", "", ""), &[]);
    assert!(ibm.has("border-management-visa"), "{ibm:?}");
    let lower = bundled().classify(&text("The ibm tip of the day", "", ""), &[]);
    assert!(lower.programmes.is_empty(), "{lower:?}");
    // "Niger" must not match inside "Nigeria", and "Nigeria" is still Sub-Saharan Africa.
    let nigeria = bundled().classify(&text("Nigeria", "", ""), &[]);
    assert!(nigeria.has("sub-saharan-africa"), "{nigeria:?}");
    let why = &nigeria.regions[0].why;
    assert!(why.iter().all(|w| !w.contains("\"Niger\"")), "{why:?}");
    // Initiatives by name and alias.
    let mieux = bundled().classify(
        &text(
            "MIEUX+ supports Ecuador",
            "",
            "The MIgration EU eXpertise Initiative",
        ),
        &[],
    );
    assert!(
        mieux.has("mieux") && mieux.has("latin-america-caribbean"),
        "{mieux:?}"
    );
}

#[test]
fn feed_defaults_are_added_with_their_reason() {
    let labels = bundled().classify(
        &text("Staff outing", "", ""),
        &[
            "asylum".to_string(),
            "turkey".to_string(),
            "no-such-id".to_string(),
        ],
    );
    assert_eq!(programmes(&labels), ["asylum"]);
    assert_eq!(labels.programmes[0].why, ["feed default"]);
    assert_eq!(labels.programmes[0].score, 1.0);
    assert!(labels.has("turkey"));
    assert!(!labels.has("no-such-id"));
    // A label found in the text keeps its reasons and gains the default.
    let both = bundled().classify(
        &text("Asylum seekers in Austria", "", ""),
        &["asylum".to_string()],
    );
    let a = &both.programmes[0];
    assert!(
        a.why.len() >= 2 && a.why.last().unwrap() == "feed default",
        "{a:?}"
    );
}

#[test]
fn long_and_odd_input_is_handled() {
    let long = "asylum border ".repeat(50_000);
    let labels = bundled().classify(&text("", "", &long), &[]);
    assert!(labels.has("asylum") && labels.has("border-management-visa"));
    let odd = bundled().classify(&text("\u{0}\u{feff}<<>>", "İstanbul ǅ", "🙂🙂"), &[]);
    assert!(odd.programmes.is_empty());
}

// --- measured quality -----------------------------------------------------------------------

#[test]
fn cross_validated_programme_micro_f1_is_at_least_0_85() {
    let items = all_labelled();
    assert!(items.len() >= 100, "labelled set has {} items", items.len());
    let taxonomy = Taxonomy::load(&taxonomy_path()).unwrap();
    let eval = classify::cross_validate(&taxonomy, &items, 5);
    assert_eq!(eval.items, items.len());
    let f1 = eval.programme_micro_f1();
    assert!(
        f1 >= 0.85,
        "5-fold programme micro-F1 {f1:.3}\n{}",
        eval.table()
    );
}

#[test]
fn the_model_learns_from_the_labelled_set() {
    // The model alone (rule share 0) must beat chance clearly under cross-validation, and the
    // tuning grid must contain the rules-alone and model-alone ends.
    let items = all_labelled();
    let taxonomy = Taxonomy::load(&taxonomy_path()).unwrap();
    let points = classify::tune(&taxonomy, &items, 5, &[0.0, 1.0], &[0.2, 0.5]);
    assert_eq!(points.len(), 4);
    let model_best = points
        .iter()
        .filter(|p| p.rule_share == 0.0)
        .map(|p| p.micro_f1)
        .fold(0.0, f64::max);
    assert!(model_best > 0.5, "{points:?}");
    // Without training data the classifier still works on rules alone.
    let rules_only = Classifier::new(taxonomy, &[]);
    assert!(!rules_only.has_model());
    let l = rules_only.classify(&text("Asylum seekers in Austria", "", ""), &[]);
    assert!(l.has("asylum"), "{l:?}");
}

// --- command line ---------------------------------------------------------------------------

fn newsrelay(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_newsrelay"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_classifies_json_lines_and_reports_bad_lines() {
    let tax = taxonomy_path();
    let input = concat!(
        "{\"id\":\"a\",\"title\":\"Border guards trained in Moldova\",\"summary\":\"<p>Integrated border management</p>\",\"content_html\":\"\",\"link\":\"https://example.org/a\"}\n",
        "this is not json\n",
        "{\"id\":7,\"title\":\"Vacancy: driver\",\"summary\":\"\",\"content_html\":\"\",\"link\":null}\n",
    );
    let (code, out, err) = newsrelay(
        &["classify", "--taxonomy", tax.to_str().unwrap(), "-"],
        input,
    );
    assert_eq!(code, 1, "a skipped line makes the run fail: {err}");
    assert!(err.contains("<stdin>:2:"), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["programmes"][0]["id"], "border-management-visa");
    assert!(!lines[0]["programmes"][0]["why"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(lines[0]["regions"][0]["id"], "eastern-europe-central-asia");
    assert_eq!(lines[1]["id"], 7);
    assert_eq!(lines[1]["programmes"].as_array().unwrap().len(), 0);
}

#[test]
fn cli_uses_config_taxonomy_and_feed_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("newsrelay.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"db\"\n[[feeds]]\nid = \"asylum-news\"\nurl = \"https://example.org/feed\"\nprogrammes = [\"asylum\"]\n[taxonomy]\nfile = {:?}\n",
            taxonomy_path().display().to_string()
        ),
    )
    .unwrap();
    let input = "{\"id\":1,\"title\":\"Staff outing\",\"summary\":\"\",\"content_html\":\"\",\"link\":null,\"feed\":\"asylum-news\"}\n";
    let (code, out, err) = newsrelay(&["--config", config.to_str().unwrap(), "classify"], input);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["programmes"][0]["id"], "asylum");
    assert_eq!(v["programmes"][0]["why"][0], "feed default");
}

#[test]
fn cli_eval_with_cross_validation_prints_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.jsonl");
    let mut text = String::new();
    for f in std::fs::read_dir(root().join("fixtures/labelled")).unwrap() {
        text.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
    }
    std::fs::write(&all, text).unwrap();
    let tax = taxonomy_path();
    let (code, out, err) = newsrelay(
        &[
            "classify",
            "--taxonomy",
            tax.to_str().unwrap(),
            "--eval",
            "--cv",
            "5",
            all.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("5-fold cross-validation"), "{out}");
    assert!(out.contains("micro programmes"), "{out}");
    for id in classify::taxonomy::REQUIRED_PROGRAMMES {
        assert!(out.contains(id), "{id} row missing:\n{out}");
    }
    let f1: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("programme micro-F1: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(f1 >= 0.85, "{out}");
}

#[test]
fn cli_rejects_a_broken_taxonomy_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let tax = dir.path().join("programmes.toml");
    std::fs::write(&tax, "[classifier]\nrule_share = 3\n").unwrap();
    let (code, _, err) = newsrelay(&["classify", "--taxonomy", tax.to_str().unwrap()], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("programmes.toml:2:"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn feed_entries_are_classified() {
    let feed = ParsedFeed {
        items: vec![
            Entry {
                id: Some("urn:1".into()),
                title: Some("Remittances and diaspora investment in Ghana".into()),
                summary_html: Some("<p>Migration and development</p>".into()),
                ..Entry::default()
            },
            Entry {
                link: Some("https://example.org/2".into()),
                title: Some("Staff outing".into()),
                ..Entry::default()
            },
        ],
        ..ParsedFeed::default()
    };
    let mut out = Vec::new();
    let report = classify::jsonl::classify_feed(bundled(), &feed, &mut out, &[]).unwrap();
    assert_eq!(report.classified, 2);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["id"], "urn:1");
    assert_eq!(lines[0]["programmes"][0]["id"], "migration-development");
    assert_eq!(lines[1]["id"], "https://example.org/2");

    // The command's --feed path: either labels, or one clear error line (never a panic).
    let dir = tempfile::tempdir().unwrap();
    let rss = dir.path().join("feed.xml");
    std::fs::write(&rss, "<rss version=\"2.0\"><channel><title>t</title><item><title>Asylum seekers in Austria</title></item></channel></rss>").unwrap();
    let tax = taxonomy_path();
    let (code, out, err) = newsrelay(
        &[
            "classify",
            "--taxonomy",
            tax.to_str().unwrap(),
            "--feed",
            rss.to_str().unwrap(),
        ],
        "",
    );
    if code == 0 {
        assert!(out.contains("\"asylum\""), "{out}");
    } else {
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("feed.xml"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn check_config_validates_the_taxonomy_and_the_ids_feeds_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("newsrelay.toml");
    let write = |programmes: &str, taxonomy: &Path| {
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"db\"\n[[feeds]]\nid = \"f\"\nurl = \"https://example.org/feed\"\nprogrammes = [{programmes}]\n[taxonomy]\nfile = {:?}\n",
                taxonomy.display().to_string()
            ),
        )
        .unwrap();
    };
    let cfg = config.to_str().unwrap().to_string();
    write("\"asylum\"", &taxonomy_path());
    let (code, out, err) = newsrelay(&["--config", &cfg, "check-config"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("6 programmes, 8 initiatives, 9 regions"),
        "{out}"
    );

    write("\"asylumm\"", &taxonomy_path());
    let (code, _, err) = newsrelay(&["--config", &cfg, "check-config"], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("\"asylumm\"") && err.contains("feed \"f\""),
        "{err}"
    );

    let broken = dir.path().join("programmes.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(taxonomy_path())
            .unwrap()
            .replace("rule_share = 0.6", "rule_share = \"high\""),
    )
    .unwrap();
    write("", &broken);
    let (code, _, err) = newsrelay(&["--config", &cfg, "check-config"], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("programmes.toml:32:") && err.contains("expected f64"),
        "{err}"
    );
}
