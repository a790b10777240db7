//! Golden tests for `flow check` messages: each `tests/broken/*.toml` has its expected output
//! in `*.expected`. Run with `BLESS=1` to rewrite the expected files after a deliberate change.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use kald_ivr::{check_with, LoadOptions};

fn broken_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::crate_dir().join("tests/broken"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn check_messages_match_the_golden_files() {
    // Relative paths, so the expected output does not depend on where the repository is.
    std::env::set_current_dir(common::crate_dir()).unwrap();
    let options = LoadOptions::with_prompt_dir("../../ivr-flows/prompts");
    let bless = std::env::var_os("BLESS").is_some();
    let files = broken_files();
    assert!(files.len() >= 8, "{files:?}");
    let mut failures = Vec::new();
    for path in files {
        let relative = Path::new("tests/broken").join(path.file_name().unwrap());
        let diags = check_with(std::slice::from_ref(&relative), &options);
        assert!(!diags.is_empty(), "{} has no problem", relative.display());
        let actual: String = diags.iter().map(|d| format!("{d}\n")).collect();
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                relative.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_accepts_the_real_flows() {
    let dir = common::crate_dir().join("../../ivr-flows");
    let diags = kald_ivr::check(&[dir.join("hovednummer.toml")]);
    assert!(diags.is_empty(), "{diags:?}");
}

#[test]
fn check_reports_an_unreadable_file_without_a_position() {
    let diags = kald_ivr::check(&[PathBuf::from("tests/broken/does-not-exist.toml")]);
    assert_eq!(diags.len(), 1);
    assert!(diags[0]
        .to_string()
        .starts_with("tests/broken/does-not-exist.toml: error: cannot read the file"));
}
