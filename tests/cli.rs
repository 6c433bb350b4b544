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
