//! `goto`, `set` and `branch`; a caller hanging up; the guard against flows that spin.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cph, flow, play, secs, Call};
use kald_ivr::{Action, EndedBy, Input};

const LOGIC: &str = r#"
start = "mark"
[nodes.mark]
kind = "set"
field = "topic"
value = "sygemelding"
next = "jump"
[nodes.jump]
kind = "goto"
to = "route"
[nodes.route]
kind = "branch"
field = "topic"
cases = { sygemelding = "sick", dagpenge = "other" }
otherwise = "other"
[nodes.sick]
kind = "queue"
queue = "sygedagpenge"
[nodes.other]
kind = "hangup"
"#;

#[test]
fn set_goto_and_branch_route_the_call() {
    let mut call = Call::new(flow(LOGIC), cph("2026-11-23T09:15"));
    let actions = call.answer();
    assert_eq!(
        actions,
        [Action::Enqueue {
            queue: "sygedagpenge".into(),
            topic: "sygemelding".into(),
            hold_music: None,
            max_wait: None,
            announce_every: None,
            priority: 0,
        }]
    );
    let o = call.outcome();
    assert_eq!(o.path, ["mark", "jump", "route", "sick"]);
    assert_eq!(o.topic.as_deref(), Some("sygemelding"));
    assert_eq!(
        o.fields.get("topic").map(String::as_str),
        Some("sygemelding")
    );
}

#[test]
fn branch_takes_otherwise_for_other_values() {
    let text = LOGIC.replace("value = \"sygemelding\"", "value = \"x\"");
    let mut call = Call::new(flow(&text), cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [Action::Hangup]);
    assert_eq!(
        call.outcome().path.last().map(String::as_str),
        Some("other")
    );
}

#[test]
fn caller_hangup_ends_the_flow_where_it_was() {
    let text = r#"
start = "menu"
[nodes.menu]
kind = "menu"
prompt = "menu"
choices = { 1 = "bye" }
fallback = "bye"
[nodes.bye]
kind = "hangup"
"#;
    let mut call = Call::new(flow(text), cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [play(&["menu"], true)]);
    call.prompt_done();
    assert_eq!(call.input(Input::Hangup), []);
    assert!(call.ivr.is_finished());
    assert_eq!(call.ivr.poll_timeout(), None);
    assert_eq!(call.outcome().ended_by, Some(EndedBy::CallerHangup));
    assert_eq!(call.outcome().path, ["menu"]);
    // Nothing happens after the end.
    assert_eq!(call.press("1", secs(1)), []);
    assert_eq!(call.input(Input::Answered), []);
}

#[test]
fn inputs_before_answer_are_ignored() {
    let mut call = Call::new(flow(LOGIC), cph("2026-11-23T09:15"));
    assert_eq!(call.press("1", secs(1)), []);
    assert_eq!(call.input(Input::PromptFinished), []);
    assert!(call.outcome().path.is_empty());
}

#[test]
fn a_flow_that_spins_without_waiting_is_hung_up() {
    // Passes the check (the branch could reach the queue) but never sets the field, so the
    // goto/branch pair spins; the check warns about it, and at run time the guard ends it.
    let text = r#"
start = "route"
[nodes.route]
kind = "branch"
field = "never-set"
cases = { yes = "queue" }
otherwise = "again"
[nodes.again]
kind = "goto"
to = "route"
[nodes.queue]
kind = "queue"
queue = "dagpenge"
"#;
    let f = flow(text);
    assert_eq!(f.warnings().len(), 1, "{:?}", f.warnings());
    let mut call = Call::new(f, cph("2026-11-23T09:15"));
    assert_eq!(call.answer(), [Action::Hangup]);
    assert_eq!(call.outcome().ended_by, Some(EndedBy::FlowError));
}
