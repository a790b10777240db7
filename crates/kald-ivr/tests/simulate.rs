//! `simulate` prints a readable transcript and never shows the CPR unless asked.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use common::{cph, hovednummer};
use kald_ivr::{simulate, PromptTexts, SimOptions, Transcript};

const CPR: &str = "0101901235";

fn texts() -> PromptTexts {
    let tsv =
        std::fs::read_to_string(common::crate_dir().join("../../ivr-flows/prompts/prompts.tsv"))
            .unwrap();
    PromptTexts::parse_tsv(&tsv)
}

fn run(keys: &str, show_cpr: bool) -> Transcript {
    let mut options = SimOptions::default();
    options.show_cpr = show_cpr;
    options.prompt_texts = texts();
    simulate(
        hovednummer(),
        Instant::now(),
        &cph("2026-11-23T09:15"),
        keys,
        &options,
    )
}

#[test]
fn transcript_of_a_normal_call() {
    let t = run(&format!("1 {CPR}# 2"), false);
    let text = t.to_string();
    println!("{text}");
    assert!(
        text.contains("[09:15:00] node opening-hours (hours): open in mode 'open'"),
        "{text}"
    );
    assert!(
        text.contains("  play welcome: \"Velkommen til Jobcentret.\""),
        "{text}"
    );
    assert!(text.contains("caller presses 1"), "{text}");
    assert!(text.contains("caller presses a digit (hidden)"), "{text}");
    assert!(text.contains("→ queue sygedagpenge (topic sygedagpenge, priority 0, hold music hold-music, position every 1m, max wait 30m)"), "{text}");
    assert!(text.contains("  consent: yes"), "{text}");
    assert!(text.contains("  CPR: accepted (1 try)"), "{text}");
    assert!(text.contains("  ended by: queue"), "{text}");
}

#[test]
fn the_cpr_never_appears_unless_asked() {
    let keys = format!("1 {CPR}# 2");
    let t = run(&keys, false);
    for shown in [
        t.to_string(),
        format!("{t:?}"),
        format!("{:?}", t.outcome),
        format!("{:?}", t.actions),
    ] {
        assert!(!shown.contains(CPR), "{shown}");
        assert!(!shown.contains("010190"), "{shown}");
        assert!(!shown.contains("1235"), "{shown}");
    }
    let shown = run(&keys, true).to_string();
    assert!(
        shown.contains("CPR: accepted: 010190-1235 (1 try)"),
        "{shown}"
    );
}

#[test]
fn timeouts_fire_when_the_keys_run_out() {
    // No keys at all: consent times out (no answer = no), the CPR entry times out three
    // times, the menu three times, and the call ends politely.
    let t = run("", false);
    let text = t.to_string();
    assert!(text.contains("no key for 8s: timeout"), "{text}");
    assert!(
        text.contains("  consent: no answer (counts as no)"),
        "{text}"
    );
    assert!(text.contains("  CPR: rejected (3 tries)"), "{text}");
    assert!(text.contains("→ hang up"), "{text}");
    assert_eq!(t.outcome.path.last().map(String::as_str), Some("no-choice"));
}
