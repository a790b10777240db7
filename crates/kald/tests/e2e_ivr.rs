//! End-to-end tests of the IVR flows: the real `kald serve` on loopback running the real
//! ivr-flows/hovednummer.toml at a chosen time (`--now`), SIPp as a caller whose keys (SIP
//! INFO) and pauses come from the command line (tests/sipp/ivr_keys.xml), timed from the
//! prompts' WAV lengths; and the reload of a changed flow file while kald runs.
//!
//! Each test asserts on kald's JSON `call ended` line (and `call queued`), and that the CPR
//! number typed never appears in anything kald wrote.
//!
//! The calls of the real flow take 40-50 s each (the recording notice alone is 22 s), so the
//! file's wall time depends on the test threads: about 52 s with `-- --test-threads=5`,
//! about 87 s with two (the default on a 2-CPU machine).
//!
//! Without `sipp` on PATH these tests fail (they do not skip): run ./tests/run.sh.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{Json, Kald, LogLine, Sipp};

/// A valid CPR number by date; it fails the old modulus 11 check on purpose (numbers
/// issued since 2007 need not pass it, so kald must accept it).
const CPR_VALID: &str = "0101901235";
/// Day 32: not a date.
const CPR_IMPOSSIBLE: &str = "3201901234";

/// How long kald may take to exit after SIGTERM when no call is up.
const EXIT: Duration = Duration::from_secs(5);

/// The length of a prompt of ivr-flows/prompts in seconds.
fn prompt(name: &str) -> f64 {
    common::wav_seconds(&common::repo().join(format!("ivr-flows/prompts/{name}.wav")))
}

/// When the caller presses keys: each step waits `wait` seconds (after the last key of the
/// step before, or after the ACK), then types `keys` 150 ms apart.
struct Caller {
    steps: Vec<(f64, String)>,
    end: f64,
}

impl Caller {
    fn new() -> Self {
        Self {
            steps: Vec::new(),
            end: 1.0,
        }
    }

    fn keys(mut self, wait: f64, keys: &str) -> Self {
        self.steps.push((wait, keys.to_owned()));
        self
    }

    /// Hang up `wait` seconds after the last key (kald logs `call queued` only once the
    /// queue's wait prompt has played: wait for it).
    fn hang_up_after(mut self, wait: f64) -> Self {
        self.end = wait;
        self
    }

    /// The SIPp run of tests/sipp/ivr_keys.xml for these keys.
    fn sipp(&self) -> Sipp {
        let ms = |s: f64| format!("{:.0}", s * 1000.0);
        // The caller sends audio all along (kald hangs up after 30 s without RTP): SIPp
        // echoes kald's own.
        let mut sipp = Sipp::new("ivr_keys.xml")
            .arg("-rtp_echo")
            .arg("-timeout")
            .arg("80s");
        let mut n = 0;
        for (wait, keys) in &self.steps {
            for (i, k) in keys.chars().enumerate() {
                n += 1;
                let w = if i == 0 { *wait } else { 0.15 };
                sipp = sipp
                    .set(&format!("k{n}"), &k.to_string())
                    .set(&format!("w{n}"), &ms(w));
            }
        }
        assert!(n <= 40, "ivr_keys.xml takes at most 40 keys");
        sipp.set("wend", &ms(self.end))
    }
}

/// The first key of the consent question: after the welcome and the recording notice,
/// which cannot be skipped.
fn consent_at() -> f64 {
    prompt("welcome") + prompt("recording-notice") + 1.5
}

/// The ids of the calls kald took, in order.
fn calls(kald: &Kald) -> Vec<String> {
    let mut ids = Vec::new();
    for l in kald.lines() {
        if l.is("incoming call") {
            if let Some(c) = l.call() {
                if !ids.iter().any(|i| i == c) {
                    ids.push(c.to_owned());
                }
            }
        }
    }
    ids
}

/// A field of a log line as text (strings as they are, others as JSON would print them).
fn text(line: &LogLine, key: &str) -> String {
    match line.field(key) {
        Some(Json::Str(s)) => s.clone(),
        Some(Json::Bool(b)) => b.to_string(),
        Some(Json::Num(n)) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// The outcome fields of a `call ended` line.
const OUTCOME: [&str; 8] = [
    "path",
    "consent",
    "cpr_accepted",
    "cpr_attempts",
    "topic",
    "queue",
    "ended_by",
    "field_lengths",
];

fn outcome(line: &LogLine) -> Vec<String> {
    OUTCOME.iter().map(|f| text(line, f)).collect()
}

/// The `call queued` line of `call`.
fn queued(kald: &mut Kald, call: &str) -> LogLine {
    kald.wait_for("call queued", Duration::from_secs(10), |l| {
        l.call() == Some(call) && l.message().is_some_and(|m| m.starts_with("call queued"))
    })
}

/// Nothing kald wrote (stdout or stderr) holds the CPR number typed.
fn assert_no_cpr(kald: &Kald, cpr: &str) {
    let dump = kald.dump();
    assert!(
        !dump.contains(cpr),
        "the CPR number typed appears in kald's output\n{dump}"
    );
}

#[test]
fn consent_no_reaches_the_same_queue_as_yes() {
    let mut kald = Kald::start_real("ivr-consent", &["--now", "2026-11-23T09:15"]);
    let cpr = format!("{CPR_VALID}#");
    let caller = |consent: &str, thanks: &str| {
        Caller::new()
            .keys(consent_at(), consent)
            .keys(prompt(thanks) + 1.0, &cpr)
            .keys(1.5, "2")
            .hang_up_after(prompt("queue-wait") + 1.0)
            .sipp()
    };
    // Both callers at once: the same kald, the same clock.
    let yes = caller("1", "consent-yes").spawn(&kald);
    let no = caller("2", "consent-no").spawn(&kald);
    let (yes, no) = (yes.wait(), no.wait());
    yes.assert_ok(&kald);
    no.assert_ok(&kald);
    let ids = calls(&kald);
    assert_eq!(ids.len(), 2, "expected two calls\n{}", kald.dump());
    let mut by_consent = std::collections::HashMap::new();
    for id in &ids {
        let ended = kald.call_line("call ended", id);
        let queued = queued(&mut kald, id);
        by_consent.insert(text(&ended, "consent"), (outcome(&ended), queued));
    }
    let (Some((yes, yes_q)), Some((no, no_q))) =
        (by_consent.get("Some(Yes)"), by_consent.get("Some(No)"))
    else {
        panic!(
            "expected one call with consent yes and one with no\n{}",
            kald.dump()
        );
    };
    assert_eq!(
        no,
        &[
            "opening-hours>welcome>consent>cpr>after-cpr>menu>sygedagpenge-queue",
            "Some(No)",
            "true",
            "1",
            "sygedagpenge",
            "sygedagpenge",
            "Some(Queue)",
            "topic:12",
        ],
        "outcome {OUTCOME:?} of the consent-no call\n{}",
        kald.dump()
    );
    // Apart from the answer itself, the same outcome.
    let without_consent = |o: &Vec<String>| {
        let mut o = o.clone();
        o.remove(1);
        o
    };
    assert_eq!(
        without_consent(yes),
        without_consent(no),
        "consent yes and no differ beyond the answer\n{}",
        kald.dump()
    );
    // The same queue, topic and priority.
    let q = |l: &LogLine| (text(l, "queue"), text(l, "topic"), text(l, "priority"));
    assert_eq!(
        q(yes_q),
        q(no_q),
        "queued differently:\n{}\n{}",
        yes_q.raw,
        no_q.raw
    );
    assert_eq!(q(no_q).0, "sygedagpenge");
    assert_no_cpr(&kald, CPR_VALID);
    kald.stop(EXIT);
}

#[test]
fn invalid_cpr_three_times() {
    // As `kald flow simulate ivr-flows/hovednummer.toml --at 2026-11-23T09:15 --digits
    // "1 3201901234 3201901234 3201901234 2"` shows: after the third invalid number the call
    // goes on to the menu without a CPR number (fallback = "after-cpr").
    let mut kald = Kald::start_real("ivr-bad-cpr", &["--now", "2026-11-23T09:15"]);
    let cpr = format!("{CPR_IMPOSSIBLE}#");
    // After an invalid number: "not valid, try again", then the CPR question again.
    let retry = prompt("cpr-invalid") + 1.0;
    let run = Caller::new()
        .keys(consent_at(), "2")
        .keys(prompt("consent-no") + 1.0, &cpr)
        .keys(retry, &cpr)
        .keys(retry, &cpr)
        .keys(1.5, "2")
        .hang_up_after(prompt("queue-wait") + 1.0)
        .sipp()
        .run(&kald);
    run.assert_ok(&kald);
    let call = kald.the_call();
    let ended = kald.call_line("call ended", &call);
    assert_eq!(
        outcome(&ended),
        [
            "opening-hours>welcome>consent>cpr>after-cpr>menu>sygedagpenge-queue",
            "Some(No)",
            "false",
            "3",
            "sygedagpenge",
            "sygedagpenge",
            "Some(Queue)",
            "topic:12",
        ],
        "outcome {OUTCOME:?} of {}\n{}",
        ended.raw,
        kald.dump()
    );
    assert_no_cpr(&kald, CPR_IMPOSSIBLE);
    kald.stop(EXIT);
}

#[test]
fn monday_0810_is_sick_reporting_only() {
    let mut kald = Kald::start_real("ivr-sick-only", &["--now", "2026-11-23T08:10"]);
    // No menu: after the CPR number the call goes straight to the queue.
    let run = Caller::new()
        .keys(consent_at(), "1")
        .keys(prompt("consent-yes") + 1.0, &format!("{CPR_VALID}#"))
        .hang_up_after(prompt("queue-wait") + 1.0)
        .sipp()
        .run(&kald);
    run.assert_ok(&kald);
    let call = kald.the_call();
    let q = queued(&mut kald, &call);
    assert_eq!(
        (q.str("queue"), q.str("topic")),
        (Some("sygedagpenge"), Some("sygemelding")),
        "{}",
        q.raw
    );
    let ended = kald.call_line("call ended", &call);
    assert_eq!(
        outcome(&ended),
        [
            "opening-hours>sick-only>welcome>consent>cpr>after-cpr>sygemelding-queue",
            "Some(Yes)",
            "true",
            "1",
            "sygemelding",
            "sygedagpenge",
            "Some(Queue)",
            "topic:11",
        ],
        "outcome {OUTCOME:?} of {}\n{}",
        ended.raw,
        kald.dump()
    );
    assert_no_cpr(&kald, CPR_VALID);
    kald.stop(EXIT);
}

#[test]
fn christmas_day_is_closed() {
    // Friday 25 December 2026, 10:00: a public holiday.
    let mut kald = Kald::start_real("ivr-christmas", &["--now", "2026-12-25T10:00"]);
    let run = Sipp::new("wait_for_bye.xml").arg("-rtp_echo").run(&kald);
    run.assert_ok(&kald);
    let call = kald.the_call();
    let incoming = kald.call_line("incoming call", &call);
    let ended = kald.call_line("call ended", &call);
    assert_eq!(
        (
            text(&ended, "reason"),
            text(&ended, "path"),
            text(&ended, "consent"),
            text(&ended, "queue"),
            text(&ended, "ended_by"),
        ),
        (
            "LocalHangup".into(),
            "opening-hours>holiday-closed".into(),
            "None".into(),
            "-".into(),
            "Some(Hangup)".into(),
        ),
        "{}\n{}",
        ended.raw,
        kald.dump()
    );
    // The holiday message and goodbye, then kald hangs up: no recording notice.
    let took = (ended.at - incoming.at).as_secs_f64();
    let message = prompt("holiday-closed") + prompt("goodbye");
    assert!(
        took > message - 0.5 && took < message + 3.0,
        "the call took {took:.1} s, the message is {message:.1} s\n{}",
        kald.dump()
    );
    kald.stop(EXIT);
}

/// A small flow: `first` plays `prompt`, then `bye` says goodbye and hangs up.
fn small_flow(version: &str, first: &str, prompt: &str) -> String {
    format!(
        "description = \"e2e reload: {version}\"\nstart = \"{first}\"\ntransfer_allowlist = []\n\n\
         [nodes.{first}]\nkind = \"play\"\nprompt = \"{prompt}\"\nnext = \"bye\"\n\n\
         [nodes.bye]\nkind = \"hangup\"\nprompt = \"goodbye\"\n"
    )
}

/// Replace the flow file at once (write a sibling, rename it over), so kald never reads a
/// half-written file.
fn replace_flow(kald: &Kald, text: &str) {
    let file = kald.flow_file();
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
}

/// One call that waits for kald's BYE; the path kald logged for it.
fn call_path(kald: &mut Kald) -> String {
    let before = calls(kald).len();
    Sipp::new("wait_for_bye.xml").run(kald).assert_ok(kald);
    let ids = calls(kald);
    assert_eq!(
        ids.len(),
        before + 1,
        "expected one more call\n{}",
        kald.dump()
    );
    let ended = kald.call_line("call ended", &ids[before]);
    text(&ended, "path")
}

/// Wait (up to 10 s) until kald has logged `flows reloaded` `n` times.
fn wait_reloads(kald: &mut Kald, n: usize) {
    let end = Instant::now() + Duration::from_secs(10);
    while kald
        .lines()
        .iter()
        .filter(|l| l.is("flows reloaded"))
        .count()
        < n
    {
        assert!(
            Instant::now() < end,
            "kald did not reload the flows within 10 s\n{}",
            kald.dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_changed_flow_is_live_within_seconds() {
    let mut kald = Kald::start_flow("ivr-reload", &[], &small_flow("v1", "hello", "welcome"));
    assert_eq!(call_path(&mut kald), "hello>bye");

    // A new first node: live at the next poll (every 2 s).
    let changed = Instant::now();
    replace_flow(&kald, &small_flow("v2", "hej", "queue-wait"));
    wait_reloads(&mut kald, 1);
    assert!(
        changed.elapsed() < Duration::from_secs(4),
        "the reload took {:?}",
        changed.elapsed()
    );
    assert_eq!(call_path(&mut kald), "hej>bye");

    // A file with a syntax error: reported as file:line:col, and the last good version
    // stays live.
    replace_flow(&kald, "description = \"broken\nstart = \"hej\"\n");
    let error = kald.wait_for(
        "an error about the broken file",
        Duration::from_secs(10),
        |l| {
            l.json
                .as_ref()
                .and_then(|j| j.get("level"))
                .and_then(Json::as_str)
                == Some("ERROR")
                && l.message().is_some_and(|m| m.contains("hovednummer.toml:"))
        },
    );
    let message = error.message().unwrap();
    let after = &message[message.find("hovednummer.toml:").unwrap() + "hovednummer.toml:".len()..];
    let mut parts = after.splitn(3, ':');
    let (line, col) = (parts.next().unwrap(), parts.next().unwrap_or(""));
    assert!(
        !line.is_empty()
            && !col.is_empty()
            && line.chars().all(|c| c.is_ascii_digit())
            && col.chars().all(|c| c.is_ascii_digit()),
        "no file:line:col in {}",
        error.raw
    );
    wait_reloads(&mut kald, 2);
    assert_eq!(call_path(&mut kald), "hej>bye");
    kald.stop(EXIT);
}
