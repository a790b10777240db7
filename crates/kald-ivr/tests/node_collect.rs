//! `collect` nodes: digits, `#`, `*`, timeouts, retries, the `cpr` validator and read-back.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cph, flow, play, secs, Call};
use kald_ivr::Action;

const CPR_FLOW: &str = r#"
start = "cpr"
[nodes.cpr]
kind = "collect"
prompt = "enter-cpr"
validator = "cpr"
timeout = "10s"
inter_digit_timeout = "5s"
overall_timeout = "40s"
retries = 2
invalid_prompt = "cpr-invalid"
no_input_prompt = "enter-cpr"
READ_BACK
next = "ok"
fallback = "failed"
[nodes.ok]
kind = "hangup"
prompt = "consent-yes"
[nodes.failed]
kind = "hangup"
prompt = "goodbye"
"#;

fn cpr_call(read_back: bool) -> Call {
    let text = CPR_FLOW.replace("READ_BACK", &format!("read_back = {read_back}"));
    let mut call = Call::new(flow(&text), cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [play(&["enter-cpr"], true)]);
    call.prompt_done();
    call
}

fn accepted(number: &str) -> bool {
    let mut call = cpr_call(false);
    call.press(number, secs(1));
    call.outcome().cpr.is_some()
}

#[test]
fn cpr_validator_accepts_real_dates_and_ignores_modulus_11() {
    // Fails the modulus-11 check, valid date: accepted.
    assert!(accepted("0101901235"));
    // Passes modulus 11: accepted too.
    assert!(accepted("0707614285"));
    // Century rules: 7th digit 0-3 → 19YY; 4/9 → 20YY up to 36; 5-8 → 18YY above 57.
    assert!(
        accepted("2902004001"),
        "29 Feb 2000 (7th digit 4, YY 00 → 2000)"
    );
    assert!(!accepted("2902001001"), "29 Feb 1900 does not exist");
    assert!(accepted("0101588001"), "1858");
    assert!(!accepted("3204901234"), "32 April");
    assert!(!accepted("0013901234"), "month 13");
    assert!(!accepted("0000000000"));
}

#[test]
fn ten_digits_end_the_entry_and_a_trailing_hash_is_ignored() {
    let mut call = cpr_call(false);
    let actions = call.press("0101901235", secs(1));
    assert_eq!(actions, [play(&["consent-yes"], false)]);
    assert_eq!(call.outcome().cpr_attempts, 1);
    // The # the prompt asked for arrives after the entry ended: not taken as anything.
    assert_eq!(call.press("#", secs(1)), []);
    assert_eq!(call.prompt_done(), [Action::Hangup]);
}

#[test]
fn hash_ends_a_short_entry_which_is_invalid() {
    let mut call = cpr_call(false);
    assert_eq!(
        call.press("0101#", secs(1)),
        [play(&["cpr-invalid", "enter-cpr"], true)]
    );
    assert_eq!(call.outcome().cpr_attempts, 1);
}

#[test]
fn star_starts_the_entry_again() {
    let mut call = cpr_call(false);
    let actions = call.press("99*", secs(1));
    assert_eq!(actions, [play(&["enter-cpr"], true)]);
    // A key during the repeated question stops it and starts the new entry.
    let actions = call.press("0101901235", secs(1));
    assert_eq!(actions[0], Action::StopPlayback);
    assert!(call.outcome().cpr.is_some());
    assert_eq!(call.outcome().cpr_attempts, 1, "* is not a failed try");
}

#[test]
fn inter_digit_timeout_ends_the_entry() {
    let mut call = cpr_call(false);
    call.press("01019", secs(1));
    assert_eq!(call.ivr.poll_timeout(), Some(call.now + secs(5)));
    assert_eq!(call.wait(secs(4)), []);
    assert_eq!(
        call.wait(secs(1)),
        [play(&["cpr-invalid", "enter-cpr"], true)]
    );
}

#[test]
fn overall_timeout_ends_a_slow_entry() {
    let mut call = cpr_call(false);
    // A key every 4.5 s never trips the 5 s inter-digit timer; the 40 s limit does, counted
    // from the end of the prompt.
    let actions = call.press("01019012", std::time::Duration::from_millis(4500));
    assert_eq!(actions, []);
    assert_eq!(
        call.wait(secs(4)),
        [play(&["cpr-invalid", "enter-cpr"], true)]
    );
    assert_eq!(call.elapsed(), secs(40));
}

#[test]
fn silence_uses_the_no_input_prompt_and_three_failures_fall_back() {
    let mut call = cpr_call(false);
    assert_eq!(call.fire_next(), [play(&["enter-cpr", "enter-cpr"], true)]);
    assert_eq!(call.elapsed(), secs(10));
    call.prompt_done();
    assert_eq!(
        call.press("2902011111", secs(1)),
        [play(&["cpr-invalid", "enter-cpr"], true)]
    );
    call.prompt_done();
    // Third failure: straight to the fallback.
    assert_eq!(
        call.press("3204901234", secs(1)),
        [play(&["goodbye"], false)]
    );
    assert_eq!(call.outcome().cpr, None);
    assert_eq!(call.outcome().cpr_attempts, 3);
    assert_eq!(call.outcome().path, ["cpr", "failed"]);
}

#[test]
fn read_back_plays_the_typed_digits_marked_sensitive() {
    let mut call = cpr_call(true);
    let actions = call.press("3204901234#", secs(1));
    let expected: Vec<String> = [
        "you-entered",
        "digit-3",
        "digit-2",
        "digit-0",
        "digit-4",
        "digit-9",
        "digit-0",
        "digit-1",
        "digit-2",
        "digit-3",
        "digit-4",
        "cpr-invalid",
        "enter-cpr",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        actions,
        [Action::Play {
            prompts: expected,
            barge_in: true,
            sensitive: true
        }]
    );
    // Debug never shows the read-back prompts.
    let debug = format!("{actions:?}");
    assert!(!debug.contains("digit-"), "{debug}");
    assert!(debug.contains("<13 prompts, redacted>"), "{debug}");
    call.prompt_done();
    assert!(call.ivr.digits_are_sensitive());
    let actions = call.press("0101901235", secs(1));
    assert!(
        matches!(&actions[0], Action::Play { sensitive: true, prompts, .. } if prompts.len() == 11)
    );
}

#[test]
fn collect_without_validator_stores_the_digits_in_a_field() {
    let text = r#"
start = "case"
[nodes.case]
kind = "collect"
prompt = "enter-cpr"
min_digits = 4
max_digits = 6
field = "case-number"
next = "done"
fallback = "done"
[nodes.done]
kind = "hangup"
"#;
    let mut call = Call::new(flow(text), cph("2026-11-23T09:15"));
    call.answer();
    call.prompt_done();
    assert!(!call.ivr.digits_are_sensitive());
    assert_eq!(
        call.press("123#", secs(1)),
        [play(&["enter-cpr"], true)],
        "3 < min 4"
    );
    call.prompt_done();
    assert_eq!(call.press("12345#", secs(1)), [Action::Hangup]);
    assert_eq!(
        call.outcome().fields.get("case-number").map(String::as_str),
        Some("12345")
    );
    assert_eq!(call.outcome().cpr_attempts, 0);
}

#[test]
fn the_interpreter_debug_never_shows_typed_digits() {
    let mut call = cpr_call(false);
    call.press("070761428", secs(1));
    let debug = format!("{:?}", call.ivr);
    assert!(!debug.contains("0707"), "{debug}");
    assert!(debug.contains("digits_typed: 9"), "{debug}");
    call.press("5", secs(1));
    let debug = format!("{:?} {:?}", call.ivr, call.outcome());
    assert!(!debug.contains("0707"), "{debug}");
    assert!(!debug.contains("4285"), "{debug}");
}
