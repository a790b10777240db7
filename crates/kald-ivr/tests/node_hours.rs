//! `hours` nodes branch on the calendar: modes, closed, holidays, closed days, special hours.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cph, flow, Call};
use kald_ivr::Opening;

const HOURS: &str = r#"
start = "hours"
[calendar]
monday = ["08:00-08:30 sick-only", "08:30-16:00"]
saturday = ["10:00-12:00"]
[[calendar.closed]]
date = 2026-11-30
reason = "Personaledag"
[[calendar.special]]
date = 2026-12-07
hours = ["12:00-13:00"]
[nodes.hours]
kind = "hours"
when = { open = "open", sick-only = "sick", closed = "closed" }
[nodes.open]
kind = "hangup"
[nodes.sick]
kind = "hangup"
[nodes.closed]
kind = "hangup"
"#;

fn branch(local: &str) -> (String, Opening) {
    let mut call = Call::new(flow(HOURS), cph(local));
    call.answer();
    let o = call.outcome();
    (o.path[1].clone(), o.opening.clone().unwrap())
}

#[test]
fn branches_by_mode() {
    assert_eq!(branch("2026-11-23T08:15").0, "sick");
    assert_eq!(branch("2026-11-23T08:30").0, "open");
    assert_eq!(branch("2026-11-23T16:00").0, "closed");
    assert_eq!(
        branch("2026-11-28T11:00").0,
        "open",
        "Saturday hours from the file"
    );
    assert_eq!(branch("2026-11-29T11:00").0, "closed", "no Sunday hours");
}

#[test]
fn holidays_and_closed_days_use_closed_when_there_is_no_holiday_branch() {
    let (node, opening) = branch("2026-12-26T11:00");
    assert_eq!(
        node, "closed",
        "Boxing Day 2026 is a Saturday with hours, but a holiday"
    );
    assert_eq!(
        opening,
        Opening::Holiday {
            name: "2. juledag".into()
        }
    );
    let (node, opening) = branch("2026-11-30T09:00");
    assert_eq!(node, "closed");
    assert_eq!(
        opening,
        Opening::Holiday {
            name: "Personaledag".into()
        }
    );
}

#[test]
fn special_hours_replace_the_weekly_hours() {
    assert_eq!(branch("2026-12-07T09:00").0, "closed");
    assert_eq!(branch("2026-12-07T12:30").0, "open");
}

#[test]
fn the_flow_answers_opening_questions_directly() {
    let f = flow(HOURS);
    assert_eq!(
        f.opening_at(&cph("2026-11-23T08:15")),
        Some(Opening::Open {
            mode: "sick-only".into()
        })
    );
}
