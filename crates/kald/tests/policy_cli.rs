//! `kald policy check` as operators use it: the shipped policy passes, a broken one is refused
//! with `file:line:col`.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn check(file: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kald"))
        .args(["policy", "check"])
        .arg(file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_shipped_policy_passes_and_a_broken_one_names_file_line_and_column() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../recordings-policy/policy.toml");
    let (ok, text) = check(&shipped);
    assert!(ok, "{text}");
    assert!(text.contains("policy.toml: ok"), "{text}");

    let dir = std::env::temp_dir().join(format!("kald-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("policy.toml");
    let text = std::fs::read_to_string(&shipped).unwrap().replacen(
        "recordings = \"3 months\"",
        "recordings = \"3 fortnights\"",
        1,
    );
    assert!(
        text.contains("3 fortnights"),
        "the shipped file changed shape"
    );
    std::fs::write(&broken, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("3 fortnights"))
        .unwrap()
        + 1;
    let (ok, out) = check(&broken);
    assert!(!ok, "a broken policy passed: {out}");
    assert!(
        out.contains(&format!("policy.toml:{line}:")),
        "no file:line:col for line {line}: {out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
