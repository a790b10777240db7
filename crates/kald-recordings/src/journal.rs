//! Journalising (issue 9): a recording linked to a citizen's case goes to the case system as a
//! **document**, a standard WAV plus a JSON [`Manifest`]. Sans-IO: this module says what the
//! document is called ([`document_name`]), what its manifest holds, and when a failed delivery
//! is tried again ([`RetrySchedule`]); the `kald` journaliser decrypts, writes, posts and
//! records. Nothing here reads the clock: times are inputs.
//!
//! # The manifest
//!
//! One JSON object per document (see [`Manifest`] for the fields), for example:
//!
//! ```json
//! {
//!   "format": "kald-journal/1",
//!   "case_number": "27.12.04-P20-1-26",
//!   "cpr": "0707614285",
//!   "recorded_at": "2026-12-01T10:00:00+01:00",
//!   "ended_at": "2026-12-01T10:05:00+01:00",
//!   "duration_ms": 300000,
//!   "agent": "anna",
//!   "kind": "call",
//!   "sha256": "…64 hex digits of the WAV file…",
//!   "file": "kald-20261201-100000-5f3a…-l7.wav",
//!   "recording_id": "5f3a…",
//!   "call_id": "…",
//!   "link_id": 7,
//!   "note": null,
//!   "journalised_by": "rikke",
//!   "kald_version": "0.1.0"
//! }
//! ```
//!
//! The manifest is the **one place** a CPR number leaves kald in clear: the case system files
//! the document under the citizen. It is never in a file name (names are made of the
//! recording's start time and random id, and the link's id), never in a log line or an error,
//! and the WAV next to the manifest is audio only.
//!
//! # Retries
//!
//! A delivery that fails (a webhook answering anything but 2xx, a timeout, a full disk) is
//! tried again after 10 s, 30 s, 1 min, 5 min and 15 min, then every hour, for as long as it
//! takes: the recording holds itself past its retention deadline until the case system has it
//! (or the link is removed), and the sweeper's alert names it meanwhile.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use kald_core::Cpr;
use serde::{Deserialize, Serialize};

/// The value of [`Manifest::format`]: the manifest's layout and version.
pub const MANIFEST_FORMAT: &str = "kald-journal/1";

/// What a document's manifest says about the recording, as the journaliser knows it.
#[derive(Clone, Debug)]
pub struct DocumentFacts<'a> {
    /// The case/journal number of the link.
    pub case_number: &'a str,
    /// The link's id in kald.
    pub link_id: i64,
    /// The agent's note on the link, if any.
    pub note: Option<&'a str>,
    /// The citizen's CPR number, if the call has one.
    pub cpr: Option<&'a Cpr>,
    /// kald's random recording id.
    pub recording_id: &'a str,
    /// kald's opaque call id.
    pub call_id: &'a str,
    /// `call` or `message`.
    pub kind: &'a str,
    /// When recording began.
    pub started: Timestamp,
    /// When it ended (`None` if unknown: then the start plus the duration).
    pub ended: Option<Timestamp>,
    /// How long the audio is (of the WAV, as exported).
    pub duration: Duration,
    /// The agent recorded (a login).
    pub agent: Option<&'a str>,
    /// Who asked for the export (a login).
    pub journalised_by: &'a str,
    /// SHA-256 of the WAV file's bytes.
    pub wav_sha256: [u8; 32],
    /// The version of kald that wrote the document.
    pub kald_version: &'a str,
}

/// The JSON manifest of a journal document (see the [module documentation](self)).
///
/// `Debug` leaves out the CPR number; serialising (to JSON, for the case system) does not.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The case/journal number the document is filed under.
    pub case_number: String,
    /// The citizen's CPR number as 10 digits, no dash; `null` when the call has none.
    pub cpr: Option<String>,
    /// When recording began: ISO 8601 with the offset, Europe/Copenhagen
    /// (`2026-12-01T10:00:00+01:00`).
    pub recorded_at: String,
    /// When it ended, the same way.
    pub ended_at: String,
    /// Length of the audio in milliseconds.
    pub duration_ms: u64,
    /// The agent's login (`null` for a message the caller left).
    pub agent: Option<String>,
    /// `call` (citizen left, agent right) or `message` (the caller alone, left).
    pub kind: String,
    /// SHA-256 of the WAV file, 64 lowercase hex digits.
    pub sha256: String,
    /// The WAV file's name (as written to the drop folder).
    pub file: String,
    /// kald's random recording id.
    pub recording_id: String,
    /// kald's opaque call id.
    pub call_id: String,
    /// kald's id of the link (call ↔ case).
    pub link_id: i64,
    /// The agent's note on the link.
    pub note: Option<String>,
    /// Who asked for the export (a login).
    pub journalised_by: String,
    /// The version of kald that wrote the document.
    pub kald_version: String,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("case_number", &self.case_number)
            .field("cpr", &self.cpr.as_ref().map(|_| "<redacted>"))
            .field("recording_id", &self.recording_id)
            .field("link_id", &self.link_id)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// The manifest of `facts`, its times in `tz` (Europe/Copenhagen in kald).
    pub fn new(facts: &DocumentFacts<'_>, tz: &TimeZone) -> Self {
        let ended = facts.ended.unwrap_or_else(|| {
            let d = jiff::SignedDuration::try_from(facts.duration)
                .unwrap_or(jiff::SignedDuration::ZERO);
            facts.started.checked_add(d).unwrap_or(facts.started)
        });
        let name = document_name(facts.recording_id, facts.link_id, facts.started, tz);
        Self {
            format: MANIFEST_FORMAT.to_owned(),
            case_number: facts.case_number.to_owned(),
            cpr: facts.cpr.map(|c| c.expose_digits().to_owned()),
            recorded_at: iso_with_offset(facts.started, tz),
            ended_at: iso_with_offset(ended, tz),
            duration_ms: u64::try_from(facts.duration.as_millis()).unwrap_or(u64::MAX),
            agent: facts.agent.map(str::to_owned),
            kind: facts.kind.to_owned(),
            sha256: hex(&facts.wav_sha256),
            file: format!("{name}.wav"),
            recording_id: facts.recording_id.to_owned(),
            call_id: facts.call_id.to_owned(),
            link_id: facts.link_id,
            note: facts.note.map(str::to_owned),
            journalised_by: facts.journalised_by.to_owned(),
            kald_version: facts.kald_version.to_owned(),
        }
    }
}

/// A time as ISO 8601 with its UTC offset in `tz`, to the second: `2026-12-01T10:00:00+01:00`.
pub fn iso_with_offset(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The base name (no extension) of the document of a recording under a link: `kald-`, the
/// recording's start as local date and time, its random id, and the link id, e.g.
/// `kald-20261201-100000-5f3a…-l7`. The WAV is `<name>.wav`, the manifest `<name>.json`.
///
/// No personal data (no CPR number, no case number, which some case systems derive from a
/// CPR number), only characters safe in any file system; unique per recording and link, so the
/// same recording filed under two cases gives two documents.
pub fn document_name(
    recording_id: &str,
    link_id: i64,
    started: Timestamp,
    tz: &TimeZone,
) -> String {
    let local = started
        .to_zoned(tz.clone())
        .strftime("%Y%m%d-%H%M%S")
        .to_string();
    let id: String = recording_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("kald-{local}-{id}-l{link_id}")
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The case system's receipt in a webhook's JSON answer: the first of `document_id`,
/// `receipt` and `id` that is a non-empty string or a number (at most 200 characters, control
/// characters dropped); `None` for anything else (an empty body, not JSON, none of those).
pub fn receipt_from_response(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["document_id", "receipt", "id"].iter().find_map(|key| {
        let text = match value.get(key)? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        let text = mask_long_numbers(&text);
        (!text.is_empty()).then_some(text)
    })
}

/// The receipt is the case system's text, kept in the outbox, logged and audited: a case
/// system that echoes the citizen's CPR number in it must not put the number there. Every
/// run of 10 or more digits (single `-`, space, `.` or `/` between groups still count as one
/// run, as in `DDMMYY-XXXX`) becomes `*`s; shorter document numbers stay readable.
fn mask_long_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A run: digits, with single separators between digit groups.
        let start = i;
        let mut digits = 0;
        let mut end = i;
        while end < chars.len() {
            if chars[end].is_ascii_digit() {
                digits += 1;
                end += 1;
            } else if matches!(chars[end], '-' | ' ' | '.' | '/')
                && chars.get(end + 1).is_some_and(char::is_ascii_digit)
            {
                end += 1;
            } else {
                break;
            }
        }
        if digits >= 10 {
            for c in &mut out[start..end] {
                if c.is_ascii_digit() {
                    *c = '*';
                }
            }
        }
        i = end;
    }
    out.into_iter().collect()
}

/// When a failed delivery is tried again: a fixed list of waits after the 1st, 2nd, … failed
/// attempt, then `then` forever (deliveries are tried until acknowledged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The wait after the n-th failed attempt (n = 1 first).
    pub waits: Vec<Duration>,
    /// The wait after every later failed attempt.
    pub then: Duration,
}

impl Default for RetrySchedule {
    /// 10 s, 30 s, 1 min, 5 min, 15 min, then hourly.
    fn default() -> Self {
        Self {
            waits: [10, 30, 60, 300, 900]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            then: Duration::from_secs(3600),
        }
    }
}

impl RetrySchedule {
    /// The wait after `attempts` attempts have failed (0: none failed yet, no wait).
    pub fn wait(&self, attempts: u32) -> Duration {
        match attempts {
            0 => Duration::ZERO,
            n => usize::try_from(n - 1)
                .ok()
                .and_then(|i| self.waits.get(i))
                .copied()
                .unwrap_or(self.then),
        }
    }

    /// When to try again at `now`, after `attempts` attempts (this one included) have failed.
    pub fn next_attempt(&self, attempts: u32, now: Timestamp) -> Timestamp {
        let wait = jiff::SignedDuration::try_from(self.wait(attempts))
            .unwrap_or(jiff::SignedDuration::from_hours(1));
        now.checked_add(wait).unwrap_or(Timestamp::MAX)
    }
}

/// [`RetrySchedule::next_attempt`] with the default schedule.
pub fn next_attempt(attempts: u32, now: Timestamp) -> Timestamp {
    RetrySchedule::default().next_attempt(attempts, now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cph() -> TimeZone {
        jiff::tz::db().get("Europe/Copenhagen").unwrap()
    }

    fn facts(cpr: Option<&Cpr>) -> DocumentFacts<'_> {
        DocumentFacts {
            case_number: "27.12.04-P20-1-26",
            link_id: 7,
            note: Some("sygemelding, ring tilbage"),
            cpr,
            recording_id: "5f3a9c",
            call_id: "call-1",
            kind: "call",
            // 1 December 2026 10:00 Copenhagen (winter time, +01:00).
            started: "2026-12-01T09:00:00Z".parse().unwrap(),
            ended: Some("2026-12-01T09:05:00.5Z".parse().unwrap()),
            duration: Duration::from_millis(300_500),
            agent: Some("anna"),
            journalised_by: "rikke",
            wav_sha256: std::array::from_fn(|i| i as u8),
            kald_version: "0.1.0",
        }
    }

    #[test]
    fn manifest_fields() {
        let cpr = Cpr::parse("070761-4285").unwrap();
        let m = Manifest::new(&facts(Some(&cpr)), &cph());
        let json: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(json["format"], "kald-journal/1");
        assert_eq!(json["case_number"], "27.12.04-P20-1-26");
        assert_eq!(json["cpr"], "0707614285");
        assert_eq!(json["recorded_at"], "2026-12-01T10:00:00+01:00");
        assert_eq!(json["ended_at"], "2026-12-01T10:05:00+01:00");
        assert_eq!(json["duration_ms"], 300_500);
        assert_eq!(json["agent"], "anna");
        assert_eq!(json["kind"], "call");
        assert_eq!(
            json["sha256"],
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        );
        assert_eq!(json["file"], "kald-20261201-100000-5f3a9c-l7.wav");
        assert_eq!(json["recording_id"], "5f3a9c");
        assert_eq!(json["call_id"], "call-1");
        assert_eq!(json["link_id"], 7);
        assert_eq!(json["note"], "sygemelding, ring tilbage");
        assert_eq!(json["journalised_by"], "rikke");
        assert_eq!(json["kald_version"], "0.1.0");
        // Round trip (the case system's side).
        let back: Manifest = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
        // Debug never shows the number.
        let debug = format!("{m:?}");
        assert!(
            !debug.contains("0707614285") && !debug.contains("070761"),
            "{debug}"
        );
    }

    #[test]
    fn manifest_without_cpr_or_end_and_in_summer() {
        let mut f = facts(None);
        f.started = "2026-06-01T07:00:00Z".parse().unwrap();
        f.ended = None;
        f.agent = None;
        f.kind = "message";
        let m = Manifest::new(&f, &cph());
        assert_eq!(m.cpr, None);
        assert_eq!(m.recorded_at, "2026-06-01T09:00:00+02:00");
        assert_eq!(m.ended_at, "2026-06-01T09:05:00+02:00");
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"cpr\":null"), "{json}");
        assert!(json.contains("\"agent\":null"), "{json}");
    }

    #[test]
    fn document_names_hold_no_personal_data() {
        let started: Timestamp = "2026-12-01T09:00:00Z".parse().unwrap();
        let name = document_name("00ff/../x y", 12, started, &cph());
        assert_eq!(name, "kald-20261201-100000-00ff____x_y-l12");
        assert!(name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        // The same recording under two links: two documents.
        assert_ne!(
            document_name("ab", 1, started, &cph()),
            document_name("ab", 2, started, &cph())
        );
        // The manifest's file is the name; neither holds the CPR or the case number.
        let cpr = Cpr::parse("0707614285").unwrap();
        let m = Manifest::new(&facts(Some(&cpr)), &cph());
        assert!(!m.file.contains("0707614285") && !m.file.contains("27.12.04"));
    }

    #[test]
    fn retries_back_off_then_hourly_forever() {
        let s = RetrySchedule::default();
        let now: Timestamp = "2026-12-01T09:00:00Z".parse().unwrap();
        let waits: Vec<u64> = (0..9).map(|n| s.wait(n).as_secs()).collect();
        assert_eq!(waits, vec![0, 10, 30, 60, 300, 900, 3600, 3600, 3600]);
        assert_eq!(s.wait(u32::MAX), Duration::from_secs(3600));
        assert_eq!(
            next_attempt(1, now),
            "2026-12-01T09:00:10Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            next_attempt(6, now),
            "2026-12-01T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(next_attempt(0, now), now);
        // Deterministic: the same inputs, the same answer.
        assert_eq!(next_attempt(3, now), next_attempt(3, now));
        // Never overflows.
        assert_eq!(next_attempt(9, Timestamp::MAX), Timestamp::MAX);
    }

    #[test]
    fn receipts() {
        assert_eq!(
            receipt_from_response(br#"{"document_id":"DOC-1","id":5}"#).as_deref(),
            Some("DOC-1")
        );
        assert_eq!(
            receipt_from_response(br#"{"receipt":"R\n9"}"#).as_deref(),
            Some("R9")
        );
        assert_eq!(
            receipt_from_response(br#"{"id":42}"#).as_deref(),
            Some("42")
        );
        assert_eq!(receipt_from_response(br#"{"document_id":""}"#), None);
        assert_eq!(receipt_from_response(br#"{"ok":true}"#), None);
        assert_eq!(receipt_from_response(b""), None);
        assert_eq!(receipt_from_response(b"<html>ok</html>"), None);
        let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(500));
        assert_eq!(receipt_from_response(long.as_bytes()).unwrap().len(), 200);
    }
    #[test]
    fn receipts_never_keep_a_cpr_number() {
        let receipt = |body: &str| receipt_from_response(body.as_bytes());
        assert_eq!(
            receipt(r#"{"receipt": "Modtaget for 010190-1235 som DOK-4711"}"#).as_deref(),
            Some("Modtaget for ******-**** som DOK-4711")
        );
        assert_eq!(
            receipt(r#"{"document_id": "0101901235"}"#).as_deref(),
            Some("**********")
        );
        assert_eq!(
            receipt(r#"{"id": 2026000123}"#).as_deref(),
            Some("**********")
        );
        // Case system numbers stay.
        assert_eq!(
            receipt(r#"{"receipt": "27.12.04-P20-1-26 / 2026-11-29"}"#).as_deref(),
            Some("27.12.04-P20-1-26 / 2026-11-29")
        );
    }
}
