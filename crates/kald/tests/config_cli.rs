//! `kald config check` as operators use it before saving kald.toml over the one kald runs
//! with: a good file is summarised, a broken one is refused with `file:line:col`, a file that
//! parses but cannot work (two agents with one login) names the problem.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn check(file: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kald"))
        .args(["config", "check", "--config"])
        .arg(file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

const GOOD: &str = r#"
sip_listen = "127.0.0.1:5062"

[[queue]]
name = "sygedagpenge"

[[agent]]
login = "anna"
name = "Anna Jensen"
password = "secret-pass-1"
skills = { sygedagpenge = 1 }

[[user]]
login = "sara"
name = "Sara"
password = "secret-pass-2"
role = "supervisor"
"#;

#[test]
fn a_good_file_is_summarised_and_broken_ones_are_refused_with_where() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kald.toml");
    std::fs::write(&file, GOOD).unwrap();
    let (ok, text) = check(&file);
    assert!(ok, "{text}");
    assert!(
        text.contains(": ok: 1 queues, 1 agents, 1 other users, 1 trunks; SIP 127.0.0.1:5062"),
        "{text}"
    );

    // A syntax error: file, line and column.
    let broken = format!("{GOOD}\n[[agent]\n");
    std::fs::write(&file, &broken).unwrap();
    let (ok, text) = check(&file);
    assert!(!ok, "{text}");
    let at = format!("{}:{}:", file.display(), broken.lines().count());
    assert!(text.contains(&at), "{text}");

    // Parses, but two agents share a login.
    let twice = GOOD.replace(
        "[[user]]",
        "[[agent]]\nlogin = \"anna\"\nname = \"Anna 2\"\npassword = \"secret-pass-3\"\n\n[[user]]",
    );
    std::fs::write(&file, twice).unwrap();
    let (ok, text) = check(&file);
    assert!(!ok, "{text}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("anna"), "{text}");
}
