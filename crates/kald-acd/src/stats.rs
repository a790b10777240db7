//! The key figures of the contact centre (issue 7), computed from the queue log.
//!
//! Pure functions: no I/O and no clock. The driver reads the `queue_events` rows of a period
//! into [`LogEvent`]s and calls [`key_figures`]; [`to_csv`] writes the result as CSV, and the
//! output types are [`serde::Serialize`] for JSON.
//!
//! # Definitions (issue 7)
//! - **Offered** = calls that entered a queue (have an `ENTER`). Abandons within
//!   [`StatsParams::short_abandon`] (default 5 s, inclusive: a wait ≤ 5 s) are counted apart
//!   ([`Figures::short_abandons`]) and left out of the rates and of the wait figures.
//! - **Answered** = offered calls an agent answered (an `ANSWER`). A call that reached the
//!   maximum wait fallback (`MAXWAIT`) is unanswered. **Answer rate** (svarprocent) =
//!   answered / (offered − short abandons).
//! - **Wait** = queue entry → answer (or → abandon for abandoned calls, → the fallback for
//!   max-wait calls), taken from the events' `wait_ms`. [`Figures::average_wait`] and
//!   [`Figures::longest_wait`] are over answered, (long) abandoned and max-wait calls: a
//!   max-wait call counts its waiting time like an abandon does. Short abandons and calls with
//!   no outcome in the log are left out.
//! - **Service level** = answered within [`StatsParams::service_level`] (default 25 s,
//!   inclusive: a wait ≤ 25 s) / (offered − short abandons).
//! - **Settled on first contact** (straksafklaring) = answered calls that ended without a
//!   transfer / answered calls.
//! - **Calls answered per day** ([`KeyFigures::by_day`]) and the distribution over the day
//!   ([`KeyFigures::by_hour`], the local hour of the call's `ENTER`) and over topics
//!   ([`KeyFigures::by_topic`], the `ENTER`'s `topic`).
//!
//! # Choices
//! - **One call, counted once.** A call enters again when transferred to a queue or returned
//!   to a queue after a failed transfer; it is still offered once, attributed to its *first*
//!   `ENTER`: its queue, topic, local hour and local day. It is answered if it has any
//!   `ANSWER`; its wait is that of its *first* answer. It is transferred if it has any
//!   `TRANSFER` (to a colleague or to a queue, whether the transfer succeeded or not), and then
//!   not settled on first contact. A call never answered takes the outcome of its *last*
//!   `ABANDON` or `MAXWAIT` (and that event's wait): short abandon, abandon or max wait.
//! - A call with an `ENTER` but no answer, abandon or max wait in the log (still waiting when
//!   the period ends, or a log cut short) is offered and unanswered, and has no wait.
//! - **Order.** Events are taken in time order (a stable sort on `at`; equal times keep the
//!   slice's order), whatever the order of the slice or of the call ids. Events of a call
//!   before its first `ENTER`, of calls with no `ENTER`, and events other than `ENTER`,
//!   `ANSWER`, `ABANDON`, `MAXWAIT` and `TRANSFER` (`RING`, `END`, `AGENTSTATE`, unknown
//!   names, …) are ignored.
//! - A missing or unreadable `wait_ms` falls back to the time since the call's latest `ENTER`.
//!   A missing `topic` or queue is the empty string.
//! - **Rates** are fractions (0.0–1.0), `None` when the denominator is 0. Waits are `None`
//!   when no call has one. Keys with no call are absent from the maps.
//! - **JSON**: durations are seconds as `f64` (`null` when `None`), rates are fractions, days
//!   are `"YYYY-MM-DD"` keys and hours are `"0"`–`"23"` keys.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Serialize, Serializer};

/// One row of the queue log (`queue_events`), as [`key_figures`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// When it happened.
    pub at: Timestamp,
    /// The call id (empty for agent events).
    pub call: String,
    /// The queue, on `ENTER`, `ANSWER`, `ABANDON` and `MAXWAIT`.
    pub queue: Option<String>,
    /// The agent, on agent-related events.
    pub agent: Option<String>,
    /// The event name (`ENTER`, `ANSWER`, …).
    pub event: String,
    /// The event's data; every value is a string (`wait_ms`, `topic`, `to`, …).
    pub data: BTreeMap<String, String>,
}

/// The parameters of the key figures.
#[derive(Debug, Clone)]
pub struct StatsParams {
    /// Abandons with a wait up to this (inclusive) are short abandons (default 5 s).
    pub short_abandon: Duration,
    /// Answers with a wait up to this (inclusive) are within the service level (default 25 s).
    pub service_level: Duration,
    /// The time zone of the hour of day and the day (default Europe/Copenhagen).
    pub time_zone: TimeZone,
}

impl Default for StatsParams {
    /// 5 s, 25 s and Europe/Copenhagen (jiff's bundled database; UTC only if it lacked it).
    fn default() -> Self {
        Self {
            short_abandon: Duration::from_secs(5),
            service_level: Duration::from_secs(25),
            time_zone: TimeZone::get("Europe/Copenhagen").unwrap_or(TimeZone::UTC),
        }
    }
}

/// The key figures of a log: in total and by queue, topic, local hour and local day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyFigures {
    /// Every offered call.
    pub total: Figures,
    /// By the queue of each call's first `ENTER`.
    pub by_queue: BTreeMap<String, Figures>,
    /// By the topic of each call's first `ENTER`.
    pub by_topic: BTreeMap<String, Figures>,
    /// By the local hour (0..=23) of each call's first `ENTER`.
    pub by_hour: BTreeMap<i8, Figures>,
    /// By the local day of each call's first `ENTER` (answered per day: `answered`).
    #[serde(serialize_with = "date_keys")]
    pub by_day: BTreeMap<Date, Figures>,
}

/// The figures of one set of calls (see the module documentation for the definitions).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Calls that entered a queue, short abandons included.
    pub offered: u64,
    /// Calls abandoned within `short_abandon`: left out of the rates.
    pub short_abandons: u64,
    /// Calls abandoned after `short_abandon` (not short).
    pub abandoned: u64,
    /// Calls the maximum wait took out of the queue, unanswered (`MAXWAIT`).
    pub max_wait_reached: u64,
    /// Calls an agent answered.
    pub answered: u64,
    /// Answered calls whose first answer came within `service_level`.
    pub answered_within_service_level: u64,
    /// Calls with a transfer (to a colleague or a queue).
    pub transferred: u64,
    /// Answered calls that ended without a transfer.
    pub settled_first_contact: u64,
    /// Svarprocent: answered / (offered − short abandons); `None` if that is 0.
    pub answer_rate: Option<f64>,
    /// Answered within `service_level` / (offered − short abandons); `None` if that is 0.
    pub service_level: Option<f64>,
    /// Straksafklaring: settled on first contact / answered; `None` if none answered.
    pub settled_first_contact_rate: Option<f64>,
    /// The average wait of answered, abandoned (not short) and max-wait calls; JSON: seconds.
    #[serde(serialize_with = "opt_secs")]
    pub average_wait: Option<Duration>,
    /// The longest wait of answered, abandoned (not short) and max-wait calls; JSON: seconds.
    #[serde(serialize_with = "opt_secs")]
    pub longest_wait: Option<Duration>,
}

/// What became of a call, as far as the key figures go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Answered (its first answer's wait).
    Answered(Duration),
    /// Abandoned (its last abandon's wait).
    Abandoned(Duration),
    /// Taken out by the maximum wait (its wait).
    MaxWait(Duration),
    /// No outcome in the log.
    Open,
}

/// One offered call, folded from its events.
struct Call<'a> {
    /// The call's first `ENTER`.
    first: &'a LogEvent,
    /// The time of its latest `ENTER` (the fallback for a missing `wait_ms`).
    last_enter: Timestamp,
    /// Its outcome so far.
    outcome: Outcome,
    /// Whether it has a `TRANSFER`.
    transferred: bool,
}

/// Computes the key figures of `events` (any order; see the module documentation).
pub fn key_figures(events: &[LogEvent], params: &StatsParams) -> KeyFigures {
    let mut order: Vec<&LogEvent> = events.iter().collect();
    order.sort_by_key(|e| e.at);

    // Calls in order of their first ENTER, so that the result does not depend on hashing.
    let mut calls: Vec<Call<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for e in order {
        if e.event == "ENTER" {
            if let Some(&i) = index.get(e.call.as_str()) {
                calls[i].last_enter = e.at;
            } else {
                index.insert(&e.call, calls.len());
                calls.push(Call {
                    first: e,
                    last_enter: e.at,
                    outcome: Outcome::Open,
                    transferred: false,
                });
            }
            continue;
        }
        let Some(call) = index.get(e.call.as_str()).map(|&i| &mut calls[i]) else {
            continue;
        };
        let answered = matches!(call.outcome, Outcome::Answered(_));
        match e.event.as_str() {
            "TRANSFER" => call.transferred = true,
            // Once answered, the first answer's wait stands and nothing else changes the outcome.
            _ if answered => {}
            "ANSWER" => call.outcome = Outcome::Answered(wait(e, call.last_enter)),
            "ABANDON" => call.outcome = Outcome::Abandoned(wait(e, call.last_enter)),
            "MAXWAIT" => call.outcome = Outcome::MaxWait(wait(e, call.last_enter)),
            _ => {}
        }
    }

    let mut total = Tally::default();
    let mut by_queue: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_topic: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_hour: BTreeMap<i8, Tally> = BTreeMap::new();
    let mut by_day: BTreeMap<Date, Tally> = BTreeMap::new();
    for call in &calls {
        let queue = call.first.queue.clone().unwrap_or_default();
        let topic = call.first.data.get("topic").cloned().unwrap_or_default();
        let local = params.time_zone.to_datetime(call.first.at);
        for tally in [
            &mut total,
            by_queue.entry(queue).or_default(),
            by_topic.entry(topic).or_default(),
            by_hour.entry(local.hour()).or_default(),
            by_day.entry(local.date()).or_default(),
        ] {
            tally.add(call, params);
        }
    }
    KeyFigures {
        total: total.figures(),
        by_queue: finish(by_queue),
        by_topic: finish(by_topic),
        by_hour: finish(by_hour),
        by_day: finish(by_day),
    }
}

/// The wait of an `ANSWER`, `ABANDON` or `MAXWAIT`: its `wait_ms`, or the time since `entered`.
fn wait(e: &LogEvent, entered: Timestamp) -> Duration {
    e.data
        .get("wait_ms")
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or_else(
            || Duration::try_from(e.at.duration_since(entered)).unwrap_or(Duration::ZERO),
            Duration::from_millis,
        )
}

/// The counts of one set of calls, before the rates.
#[derive(Debug, Default)]
struct Tally {
    /// The counts.
    figures: Figures,
    /// The sum of the waits.
    wait_sum: Duration,
    /// How many waits.
    waits: u64,
}

impl Tally {
    /// Counts one call.
    fn add(&mut self, call: &Call<'_>, params: &StatsParams) {
        let f = &mut self.figures;
        f.offered += 1;
        if call.transferred {
            f.transferred += 1;
        }
        let waited = match call.outcome {
            Outcome::Answered(w) => {
                f.answered += 1;
                if w <= params.service_level {
                    f.answered_within_service_level += 1;
                }
                if !call.transferred {
                    f.settled_first_contact += 1;
                }
                Some(w)
            }
            Outcome::Abandoned(w) if w <= params.short_abandon => {
                f.short_abandons += 1;
                None
            }
            Outcome::Abandoned(w) => {
                f.abandoned += 1;
                Some(w)
            }
            Outcome::MaxWait(w) => {
                f.max_wait_reached += 1;
                Some(w)
            }
            Outcome::Open => None,
        };
        if let Some(w) = waited {
            self.wait_sum = self.wait_sum.saturating_add(w);
            self.waits += 1;
            f.longest_wait = f.longest_wait.max(Some(w));
        }
    }

    /// The figures with their rates and average.
    fn figures(self) -> Figures {
        let mut f = self.figures;
        let base = f.offered - f.short_abandons;
        f.answer_rate = ratio(f.answered, base);
        f.service_level = ratio(f.answered_within_service_level, base);
        f.settled_first_contact_rate = ratio(f.settled_first_contact, f.answered);
        f.average_wait = (self.waits > 0).then(|| {
            let nanos = self.wait_sum.as_nanos() / u128::from(self.waits);
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        });
        f
    }
}

/// `n / d`, or `None` if `d` is 0.
#[allow(clippy::cast_precision_loss)] // call counts are far below 2^52
fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The figures of every tally of a map.
fn finish<K: Ord>(tallies: BTreeMap<K, Tally>) -> BTreeMap<K, Figures> {
    tallies.into_iter().map(|(k, t)| (k, t.figures())).collect()
}

/// Serializes an optional duration as seconds (`f64`) or `null`.
fn opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Serializes a map keyed by dates with `"YYYY-MM-DD"` keys.
fn date_keys<S: Serializer>(m: &BTreeMap<Date, Figures>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(d, f)| (d.to_string(), f)))
}

/// The header line of [`to_csv`] (without its newline).
///
/// `dimension` is `total`, `queue`, `topic`, `hour` or `day`; `key` is empty for `total`, the
/// queue or topic name, the local hour `0`–`23`, or the local day `YYYY-MM-DD`. Counts are
/// integers; rates are fractions with 4 decimals (`0.7826`); waits are seconds with 3
/// decimals (`38.391`); a `None` rate or wait is an empty field.
pub const CSV_HEADER: &str = "dimension,key,offered,short_abandons,abandoned,max_wait_reached,\
answered,answered_within_service_level,transferred,settled_first_contact,answer_rate,\
service_level,settled_first_contact_rate,average_wait_s,longest_wait_s";

/// The key figures as CSV: [`CSV_HEADER`], then one row per (dimension, key).
///
/// Rows come in the order total, queues, topics, hours, days, each by key; lines end with
/// `\n`; a key holding a comma, quote or line break is quoted (RFC 4180).
pub fn to_csv(figures: &KeyFigures) -> String {
    let mut out = String::new();
    out.push_str(CSV_HEADER);
    out.push('\n');
    row(&mut out, "total", "", &figures.total);
    for (k, f) in &figures.by_queue {
        row(&mut out, "queue", k, f);
    }
    for (k, f) in &figures.by_topic {
        row(&mut out, "topic", k, f);
    }
    for (k, f) in &figures.by_hour {
        row(&mut out, "hour", &k.to_string(), f);
    }
    for (k, f) in &figures.by_day {
        row(&mut out, "day", &k.to_string(), f);
    }
    out
}

/// Appends one CSV row.
fn row(out: &mut String, dimension: &str, key: &str, f: &Figures) {
    let rate = |r: Option<f64>| r.map(|r| format!("{r:.4}")).unwrap_or_default();
    let secs = |d: Option<Duration>| {
        d.map(|d| format!("{:.3}", d.as_secs_f64()))
            .unwrap_or_default()
    };
    let key = if key.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", key.replace('"', "\"\""))
    } else {
        key.to_owned()
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "{dimension},{key},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        f.offered,
        f.short_abandons,
        f.abandoned,
        f.max_wait_reached,
        f.answered,
        f.answered_within_service_level,
        f.transferred,
        f.settled_first_contact,
        rate(f.answer_rate),
        rate(f.service_level),
        rate(f.settled_first_contact_rate),
        secs(f.average_wait),
        secs(f.longest_wait),
    );
}
