//! `queue`, `transfer`, `message` and `hangup`: how a call leaves the flow.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cph, flow, play, secs, Call};
use kald_ivr::{Action, EndedBy, Input};

const EXITS: &str = r##"
start = "menu"
transfer_allowlist = ["sip:jobcenter@kommune.example", "+4570000000"]
[nodes.menu]
kind = "menu"
prompt = "menu"
choices = { 1 = "queue", 2 = "transfer", 3 = "message-notice" }
fallback = "bye"
[nodes.queue]
kind = "queue"
queue = "dagpenge"
topic = "dagpenge"
prompt = "queue-wait"
hold_music = "hold-music"
announce_position = "45s"
priority = 3
max_wait = "20m"
fallback = "busy"
[nodes.busy]
kind = "hangup"
prompt = ["all-lines-busy", "goodbye"]
[nodes.transfer]
kind = "transfer"
target = "+4570000000"
[nodes.message-notice]
kind = "play"
prompt = "message-notice"
notice = "message"
next = "message"
[nodes.message]
kind = "message"
team = "sygedagpenge"
max_length = "90s"
next = "bye"
[nodes.bye]
kind = "hangup"
prompt = "goodbye"
"##;

fn choose(key: &str) -> Call {
    let mut call = Call::new(flow(EXITS), cph("2026-11-23T09:15"));
    call.answer();
    call.prompt_done();
    call.press(key, secs(1));
    call
}

#[test]
fn queue_enqueues_with_its_options() {
    let mut call = choose("1");
    assert_eq!(
        call.prompt_done(),
        [Action::Enqueue {
            queue: "dagpenge".into(),
            topic: "dagpenge".into(),
            hold_music: Some("hold-music".into()),
            max_wait: Some(secs(20 * 60)),
            announce_every: Some(secs(45)),
            priority: 3,
        }]
    );
    assert_eq!(call.outcome().ended_by, Some(EndedBy::Queue));
    assert_eq!(call.outcome().queue.as_deref(), Some("dagpenge"));
    // An agent answers: the flow is over, the max-wait timer is gone.
    assert_eq!(call.input(Input::Connected), []);
    assert!(call.ivr.is_finished());
    assert_eq!(call.ivr.poll_timeout(), None);
}

#[test]
fn queue_max_wait_leaves_the_queue_for_the_fallback() {
    let mut call = choose("1");
    call.prompt_done();
    let entered = call.now;
    assert_eq!(call.ivr.poll_timeout(), Some(entered + secs(20 * 60)));
    assert_eq!(
        call.wait(secs(20 * 60)),
        [
            Action::LeaveQueue,
            play(&["all-lines-busy", "goodbye"], false)
        ]
    );
    assert_eq!(call.prompt_done(), [Action::Hangup]);
    assert_eq!(call.outcome().ended_by, Some(EndedBy::Hangup));
    assert_eq!(call.outcome().path.last().map(String::as_str), Some("busy"));
}

#[test]
fn transfer_goes_to_an_allowed_target() {
    let call = &mut choose("2");
    assert_eq!(call.outcome().transfer.as_deref(), Some("+4570000000"));
    assert_eq!(call.outcome().ended_by, Some(EndedBy::Transfer));
    assert!(call.ivr.is_finished());
}

#[test]
fn transfer_action() {
    let mut call = Call::new(flow(EXITS), cph("2026-11-23T09:15"));
    call.answer();
    call.prompt_done();
    assert_eq!(
        call.press("2", secs(1)),
        [Action::Transfer {
            target: "+4570000000".into()
        }]
    );
}

#[test]
fn message_is_recorded_after_its_notice_and_hash_ends_it() {
    let mut call = choose("3");
    assert_eq!(
        call.prompt_done(),
        [Action::RecordMessage {
            team: "sygedagpenge".into(),
            max_len: secs(90)
        }]
    );
    assert_eq!(
        call.press("#", secs(30)),
        [Action::StopRecording, play(&["goodbye"], false)]
    );
    assert_eq!(call.outcome().message_team.as_deref(), Some("sygedagpenge"));
    assert_eq!(
        call.outcome().path,
        ["menu", "message-notice", "message", "bye"]
    );
}

#[test]
fn message_stops_at_its_maximum_length() {
    let mut call = choose("3");
    call.prompt_done();
    assert_eq!(call.wait(secs(89)), []);
    assert_eq!(
        call.wait(secs(1)),
        [Action::StopRecording, play(&["goodbye"], false)]
    );
}

#[test]
fn hangup_without_prompt_hangs_up_at_once() {
    let f = flow("start = \"x\"\n[nodes.x]\nkind = \"hangup\"\n");
    let mut call = Call::new(f, cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [Action::Hangup]);
    assert_eq!(call.outcome().ended_by, Some(EndedBy::Hangup));
}
