//! The default `ivr-flows/hovednummer.toml` behaves as the job-centre line in `domain.md`.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use common::{cph, hovednummer};
use kald_ivr::{simulate, Action, Consent, EndedBy, Opening, SimOptions, Transcript};

fn run(local: &str, keys: &str) -> Transcript {
    simulate(
        hovednummer(),
        Instant::now(),
        &cph(local),
        keys,
        &SimOptions::default(),
    )
}

fn enqueue(t: &Transcript) -> &Action {
    t.actions
        .iter()
        .find(|a| matches!(a, Action::Enqueue { .. }))
        .unwrap_or_else(|| panic!("no Enqueue:\n{t}"))
}

fn assert_enqueued(t: &Transcript, queue: &str, topic: &str) {
    match enqueue(t) {
        Action::Enqueue {
            queue: q,
            topic: tp,
            priority,
            hold_music,
            max_wait,
            ..
        } => {
            assert_eq!((q.as_str(), tp.as_str()), (queue, topic), "{t}");
            assert_eq!(*priority, 0);
            assert_eq!(hold_music.as_deref(), Some("hold-music"));
            assert_eq!(*max_wait, Some(std::time::Duration::from_secs(30 * 60)));
        }
        _ => unreachable!(),
    }
    assert_eq!(t.outcome.queue.as_deref(), Some(queue));
    assert_eq!(t.outcome.topic.as_deref(), Some(topic));
    assert_eq!(t.outcome.ended_by, Some(EndedBy::Queue));
}

fn assert_closed(t: &Transcript, message: &str) {
    assert_eq!(
        t.actions,
        [common::play(&[message, "goodbye"], false), Action::Hangup],
        "{t}"
    );
    assert_eq!(t.outcome.ended_by, Some(EndedBy::Hangup));
    assert_eq!(
        t.outcome.consent, None,
        "nobody is asked anything when closed"
    );
    assert_eq!(t.outcome.cpr_attempts, 0);
}

#[test]
fn monday_0915_consent_valid_cpr_menu_2_reaches_sygedagpenge() {
    // 0101901235 fails the old modulus-11 check and must still be accepted. The caller ends
    // the number with # as the prompt asks, after the entry already ended at 10 digits.
    let t = run("2026-11-23T09:15", "1 0101901235# 2");
    assert_enqueued(&t, "sygedagpenge", "sygedagpenge");
    assert_eq!(t.outcome.consent, Some(Consent::Yes));
    assert!(t.outcome.cpr.is_some());
    assert_eq!(
        t.outcome.cpr.as_ref().unwrap().expose_digits(),
        "0101901235"
    );
    assert_eq!(t.outcome.cpr_attempts, 1);
    assert_eq!(
        t.outcome.opening,
        Some(Opening::Open {
            mode: "open".into()
        })
    );
    assert_eq!(
        t.outcome.path,
        [
            "opening-hours",
            "welcome",
            "consent",
            "cpr",
            "after-cpr",
            "menu",
            "sygedagpenge-queue"
        ]
    );
    assert_eq!(t.outcome.menu_choices, [("menu".to_owned(), '2')]);
    // The notice came before the consent question, unskippable.
    assert_eq!(
        t.actions[0],
        common::play(&["welcome", "recording-notice"], false)
    );
    assert_eq!(t.actions[1], common::play(&["consent-question"], true));
}

#[test]
fn three_invalid_cprs_go_on_to_the_menu_without_a_cpr() {
    // 32 April, month 34, day 00: three invalid numbers. The default flow then continues to
    // the menu without a CPR (the agent asks for it) and the caller is not hung up on.
    let t = run(
        "2026-11-23T09:15",
        "1 3204901234# 1234567890# 0000000000# 1",
    );
    assert_enqueued(&t, "dagpenge", "dagpenge");
    assert_eq!(t.outcome.cpr, None);
    assert_eq!(t.outcome.cpr_attempts, 3);
    let invalid_prompts = t
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Play { prompts, .. } if prompts[0] == "cpr-invalid"))
        .count();
    assert_eq!(
        invalid_prompts, 2,
        "'try again' after the 1st and 2nd, not the 3rd:\n{t}"
    );
    assert!(t.to_string().contains("CPR: rejected (3 tries)"), "{t}");
}

#[test]
fn monday_0810_is_sick_reporting_only() {
    let t = run("2026-11-23T08:10", "1 0101901235#");
    assert_enqueued(&t, "sygedagpenge", "sygemelding");
    assert!(!t.outcome.path.iter().any(|n| n == "menu"), "{t}");
    assert_eq!(
        t.outcome.opening,
        Some(Opening::Open {
            mode: "sick-only".into()
        })
    );
    // The same notice, consent and CPR steps as at other times.
    assert_eq!(
        t.actions[0],
        common::play(&["welcome", "recording-notice"], false)
    );
    assert_eq!(t.outcome.consent, Some(Consent::Yes));
    assert!(t.outcome.cpr.is_some());
}

#[test]
fn sick_reporting_with_three_bad_cprs_still_reaches_the_sick_queue() {
    let t = run("2026-11-23T08:10", "2 3111901111# 2902011111# 0113901111#");
    assert_enqueued(&t, "sygedagpenge", "sygemelding");
    assert_eq!(t.outcome.consent, Some(Consent::No));
    assert_eq!(t.outcome.cpr, None);
}

#[test]
fn before_0800_and_after_hours_are_closed() {
    assert_closed(&run("2026-11-23T07:59", ""), "closed");
    assert_closed(&run("2026-11-23T16:00", ""), "closed");
    // Wednesday and Friday close at 15:00.
    assert_closed(&run("2026-11-25T15:00", ""), "closed");
    let t = run("2026-11-25T14:59", "1 0101901235 3");
    assert_enqueued(&t, "kontanthjaelp", "kontanthjaelp");
}

#[test]
fn christmas_day_2026_is_closed() {
    assert_closed(&run("2026-12-25T10:00", ""), "holiday-closed");
}

#[test]
fn easter_monday_2026_is_closed() {
    let t = run("2026-04-06T10:00", "");
    assert_closed(&t, "holiday-closed");
    assert_eq!(
        t.outcome.opening,
        Some(Opening::Holiday {
            name: "2. påskedag".into()
        })
    );
}

#[test]
fn customary_closing_days_are_closed() {
    for day in ["2026-12-24", "2026-12-31", "2026-06-05"] {
        assert_closed(&run(&format!("{day}T10:00"), ""), "holiday-closed");
    }
}

#[test]
fn saturday_is_closed() {
    assert_closed(&run("2026-11-28T10:00", ""), "closed");
}

#[test]
fn first_monday_of_summer_time_is_open_at_0900() {
    // Summer time began on Sunday 2026-03-29. 09:00 local is 07:00 UTC, which would be
    // 08:00 (sick reporting only) if the offset were not followed.
    let local = run("2026-03-30T09:00", "1 0101901235 1");
    assert_enqueued(&local, "dagpenge", "dagpenge");
    let utc: jiff::Zoned = "2026-03-30T07:00:00+00:00[UTC]".parse().unwrap();
    let t = simulate(
        hovednummer(),
        Instant::now(),
        &utc,
        "1 0101901235 1",
        &SimOptions::default(),
    );
    assert_enqueued(&t, "dagpenge", "dagpenge");
    assert_eq!(
        t.outcome.opening,
        Some(Opening::Open {
            mode: "open".into()
        })
    );
}

#[test]
fn saying_no_or_nothing_costs_nothing() {
    let yes = run("2026-11-23T09:15", "1 0101901235 2");
    let no = run("2026-11-23T09:15", "2 0101901235 2");
    let silent = run("2026-11-23T09:15", ", 0101901235 2");
    let other_key = run("2026-11-23T09:15", "7 0101901235 2");
    assert_eq!(yes.outcome.consent, Some(Consent::Yes));
    assert_eq!(no.outcome.consent, Some(Consent::No));
    assert_eq!(silent.outcome.consent, Some(Consent::NoAnswer));
    assert_eq!(other_key.outcome.consent, Some(Consent::NoAnswer));
    assert!(!no.outcome.consent.unwrap().allows_recording());
    assert!(!silent.outcome.consent.unwrap().allows_recording());
    for t in [&no, &silent, &other_key] {
        assert_eq!(enqueue(t), enqueue(&yes), "same queue, topic and priority");
        // The same nodes apart from the answer itself.
        assert_eq!(t.outcome.path, yes.outcome.path);
    }
}

#[test]
fn no_menu_choice_hangs_up_politely() {
    let t = run("2026-11-23T09:15", "1 0101901235 9 9 9");
    assert_eq!(t.outcome.ended_by, Some(EndedBy::Hangup));
    assert_eq!(t.outcome.path.last().map(String::as_str), Some("no-choice"));
    assert_eq!(t.actions.last(), Some(&Action::Hangup));
}

#[test]
fn the_default_flow_checks_clean_and_lists_its_prompts() {
    let flow = hovednummer();
    assert_eq!(flow.name(), "hovednummer");
    assert!(flow.warnings().is_empty(), "{:?}", flow.warnings());
    for p in [
        "welcome",
        "recording-notice",
        "consent-question",
        "enter-cpr",
        "menu",
        "hold-music",
        "position-9",
    ] {
        assert!(flow.prompts().contains(p), "{p}");
    }
    let dir = common::crate_dir().join("../../ivr-flows");
    let (set, diags) = kald_ivr::load_dir(&dir);
    assert!(diags.is_empty(), "{diags:?}");
    assert!(set.get("hovednummer").is_some());
}
