//! Integration tests: the command line as a user meets it (exit codes, one-line errors).

use std::process::Command;

fn newsrelay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_newsrelay"))
}

#[test]
fn bad_config_is_one_line_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[store]\npath = \"db\"\n[fetch]\nconcurrency = 0\n").unwrap();
    let out = newsrelay()
        .args(["--config", cfg.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(":4:") && err.contains("fetch.concurrency"),
        "{err}"
    );
}

#[test]
fn missing_config_says_how_to_fix() {
    let out = newsrelay()
        .args(["--config", "/nonexistent/newsrelay.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--config"), "{err}");
}

#[test]
fn usage_error_exits_2() {
    let out = newsrelay().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn opml_import_appends_new_feeds_once_and_export_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    super::bundled_taxonomy_into(dir.path());
    let cfg = dir.path().join("newsrelay.toml");
    std::fs::write(
        &cfg,
        "[store]\npath = \"db\"\n\n[[feeds]]\nid = \"icmpd-news\"\nurl = \"https://www.icmpd.org/news-centre/rss/\"\n\n[log]\nlevel = \"info\"\n",
    )
    .unwrap();
    let opml = dir.path().join("reader.opml");
    std::fs::write(
        &opml,
        r#"<?xml version="1.0"?><opml version="1.0"><head><title>r</title></head><body>
<outline text="Migration">
  <outline text="ICMPD again" xmlUrl="https://www.icmpd.org/news-centre/rss/"/>
  <outline title="Prague Process &amp; news" xmlUrl="https://www.pragueprocess.eu/en/news?format=rss"/>
  <outline title="Old" xmlUrl="gopher://example.org/feed"/>
</outline></body></opml>"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = newsrelay()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let opml_path = opml.to_str().unwrap();
    let (code, out, err) = run(&["opml", "import", opml_path]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("added prague-process-news https://www.pragueprocess.eu/en/news?format=rss"),
        "{out}"
    );
    assert!(
        out.contains("1 feeds added") && out.contains("1 already configured"),
        "{out}"
    );
    assert!(err.contains("gopher://example.org/feed"), "{err}");
    let (code, out, err) = run(&["check-config"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 feeds"), "{out}");
    // Importing again adds nothing and leaves the file as it was.
    let before = std::fs::read_to_string(&cfg).unwrap();
    let (code, out, _) = run(&["opml", "import", opml_path]);
    assert_eq!(code, Some(0));
    assert!(out.contains("0 feeds added"), "{out}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
    // Export lists both, escaped.
    let (code, out, _) = run(&["opml", "export"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("<opml version=\"2.0\">"), "{out}");
    assert!(
        out.contains("xmlUrl=\"https://www.icmpd.org/news-centre/rss/\""),
        "{out}"
    );
    assert!(out.contains("title=\"Prague Process &amp; news\""), "{out}");
    // A broken OPML file is one line, exit 1, config untouched.
    std::fs::write(&opml, "<opml><body>").unwrap();
    let (code, _, err) = run(&["opml", "import", opml_path]);
    assert_eq!(code, Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
}
