//! `play` and `menu` nodes: barge-in, choices, invalid keys, timeouts, retries, fallback.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cph, flow, play, secs, Call};
use kald_ivr::{Action, EndedBy, Input};

const PLAY: &str = r#"
start = "hello"
[nodes.hello]
kind = "play"
prompt = ["welcome", "menu"]
barge_in = true
next = "bye"
[nodes.plain]
kind = "play"
prompt = "welcome"
next = "bye"
[nodes.bye]
kind = "hangup"
prompt = "goodbye"
"#;

#[test]
fn play_plays_prompts_in_order_then_continues() {
    let mut call = Call::new(flow(PLAY), cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [play(&["welcome", "menu"], true)]);
    assert_eq!(
        call.ivr.poll_timeout(),
        None,
        "a prompt has no timer; the media says when it ends"
    );
    assert_eq!(call.prompt_done(), [play(&["goodbye"], false)]);
    assert_eq!(call.prompt_done(), [Action::Hangup]);
    assert!(call.ivr.is_finished());
    assert_eq!(call.outcome().path, ["hello", "bye"]);
    assert_eq!(call.outcome().ended_by, Some(EndedBy::Hangup));
}

#[test]
fn a_key_stops_a_barge_in_prompt() {
    let mut call = Call::new(flow(PLAY), cph("2026-11-23T09:15"));
    call.answer();
    assert_eq!(
        call.press("5", secs(1)),
        [Action::StopPlayback, play(&["goodbye"], false)]
    );
    // The final prompt cannot be skipped.
    assert_eq!(call.press("5", secs(1)), []);
    // A late PromptFinished for the stopped playback would be ignored, this one is real.
    assert_eq!(call.prompt_done(), [Action::Hangup]);
}

#[test]
fn keys_do_not_stop_a_prompt_without_barge_in() {
    let text = PLAY.replace("start = \"hello\"", "start = \"plain\"");
    let mut call = Call::new(flow(&text), cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [play(&["welcome"], false)]);
    assert_eq!(call.press("1#", secs(1)), []);
    assert_eq!(call.prompt_done(), [play(&["goodbye"], false)]);
    // PromptFinished when nothing plays is ignored.
    call.prompt_done();
    assert_eq!(call.input(Input::PromptFinished), []);
}

const MENU: &str = r##"
start = "menu"
[nodes.menu]
kind = "menu"
prompt = "menu"
choices = { 1 = "one", 2 = "two", "#" = "two" }
timeout = "6s"
invalid_prompt = "invalid-choice"
no_input_prompt = "welcome"
retries = 2
fallback = "given-up"
[nodes.one]
kind = "hangup"
[nodes.two]
kind = "hangup"
[nodes.given-up]
kind = "hangup"
prompt = "goodbye"
"##;

#[test]
fn menu_choice_goes_to_its_node() {
    let mut call = Call::new(flow(MENU), cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [play(&["menu"], true)]);
    call.prompt_done();
    assert_eq!(call.ivr.poll_timeout(), Some(call.now + secs(6)));
    assert_eq!(call.press("2", secs(2)), [Action::Hangup]);
    assert_eq!(call.outcome().path, ["menu", "two"]);
    assert_eq!(call.outcome().menu_choices, [("menu".to_owned(), '2')]);
    assert_eq!(call.ivr.poll_timeout(), None);
}

#[test]
fn menu_key_during_prompt_barges_in() {
    let mut call = Call::new(flow(MENU), cph("2026-11-23T09:15"));
    call.answer();
    assert_eq!(
        call.press("#", secs(1)),
        [Action::StopPlayback, Action::Hangup]
    );
    assert_eq!(call.outcome().path, ["menu", "two"]);
}

#[test]
fn menu_invalid_key_and_silence_are_retried_then_fall_back() {
    let mut call = Call::new(flow(MENU), cph("2026-11-23T09:15"));
    call.answer();
    call.prompt_done();
    // 1st failure: a wrong key.
    assert_eq!(
        call.press("7", secs(1)),
        [play(&["invalid-choice", "menu"], true)]
    );
    call.prompt_done();
    // 2nd failure: silence for exactly the timeout.
    assert_eq!(call.wait(secs(5)), []);
    assert_eq!(call.wait(secs(1)), [play(&["welcome", "menu"], true)]);
    assert_eq!(call.elapsed(), secs(7));
    call.prompt_done();
    // 3rd failure: retries (2) are used up, so the fallback, without another prompt first.
    assert_eq!(call.press("*", secs(1)), [play(&["goodbye"], false)]);
    assert_eq!(call.outcome().path, ["menu", "given-up"]);
    assert!(call.outcome().menu_choices.is_empty());
}

#[test]
fn a_spurious_timeout_does_nothing() {
    let mut call = Call::new(flow(MENU), cph("2026-11-23T09:15"));
    call.answer();
    call.prompt_done();
    let wall = call.wall.clone();
    call.ivr.handle_timeout(call.now, &wall);
    assert_eq!(call.ivr.poll_action(), None);
    assert_eq!(call.ivr.poll_timeout(), Some(call.now + secs(6)));
}

#[test]
fn keys_outside_the_phone_pad_are_ignored() {
    let mut call = Call::new(flow(MENU), cph("2026-11-23T09:15"));
    call.answer();
    call.prompt_done();
    assert_eq!(call.press("AxD", secs(1)), []);
    assert_eq!(call.press("1", secs(1)), [Action::Hangup]);
}
