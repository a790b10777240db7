//! `consent` nodes: yes, no, no answer, another key; the answer never changes the way on.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cph, flow, play, secs, Call};
use kald_ivr::{Action, Consent};

const CONSENT: &str = r#"
start = "notice"
[nodes.notice]
kind = "play"
prompt = "recording-notice"
notice = "recording"
next = "ask"
[nodes.ask]
kind = "consent"
prompt = "consent-question"
timeout = "8s"
RETRIES
invalid_prompt = "invalid-choice"
yes_prompt = "consent-yes"
no_prompt = "consent-no"
next = "queue"
[nodes.queue]
kind = "queue"
queue = "dagpenge"
"#;

fn asked(retries: u32) -> Call {
    let text = CONSENT.replace("RETRIES", &format!("retries = {retries}"));
    let mut call = Call::new(flow(&text), cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [play(&["recording-notice"], false)]);
    assert_eq!(call.prompt_done(), [play(&["consent-question"], true)]);
    call
}

fn enqueue() -> Action {
    Action::Enqueue {
        queue: "dagpenge".into(),
        topic: "dagpenge".into(),
        hold_music: None,
        max_wait: None,
        announce_every: None,
        priority: 0,
    }
}

#[test]
fn yes() {
    let mut call = asked(0);
    call.prompt_done();
    assert_eq!(call.press("1", secs(2)), [play(&["consent-yes"], false)]);
    assert_eq!(call.prompt_done(), [enqueue()]);
    assert_eq!(call.outcome().consent, Some(Consent::Yes));
    assert!(Consent::Yes.allows_recording());
}

#[test]
fn no_during_the_question() {
    let mut call = asked(0);
    assert_eq!(
        call.press("2", secs(2)),
        [Action::StopPlayback, play(&["consent-no"], false)]
    );
    assert_eq!(call.prompt_done(), [enqueue()]);
    assert_eq!(call.outcome().consent, Some(Consent::No));
}

#[test]
fn silence_is_no_answer_which_counts_as_no() {
    let mut call = asked(0);
    call.prompt_done();
    assert_eq!(call.wait(secs(8)), [play(&["consent-no"], false)]);
    assert_eq!(call.prompt_done(), [enqueue()]);
    assert_eq!(call.outcome().consent, Some(Consent::NoAnswer));
    assert!(!Consent::NoAnswer.allows_recording());
}

#[test]
fn another_key_counts_as_no() {
    let mut call = asked(0);
    call.prompt_done();
    assert_eq!(call.press("5", secs(1)), [play(&["consent-no"], false)]);
    assert_eq!(call.prompt_done(), [enqueue()]);
    assert_eq!(call.outcome().consent, Some(Consent::NoAnswer));
}

#[test]
fn with_a_retry_a_wrong_key_asks_again() {
    let mut call = asked(1);
    call.prompt_done();
    assert_eq!(
        call.press("5", secs(1)),
        [play(&["invalid-choice", "consent-question"], true)]
    );
    call.prompt_done();
    assert_eq!(call.press("1", secs(1)), [play(&["consent-yes"], false)]);
    assert_eq!(call.outcome().consent, Some(Consent::Yes));
}

#[test]
fn every_answer_reaches_the_same_queue_the_same_way() {
    let mut outcomes = Vec::new();
    for keys in ["1", "2", "5", ""] {
        let mut call = asked(0);
        call.prompt_done();
        call.press(keys, secs(1));
        call.wait(secs(8));
        let actions = call.prompt_done();
        assert_eq!(actions, [enqueue()], "{keys:?}");
        outcomes.push(call.outcome().path.clone());
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]));
}
