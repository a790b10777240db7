//! Access requests (issue 9, "Search and access requests"): the case a records officer opens
//! when a citizen asks for their recordings, its deadline and reminders, the review decision on
//! each item found, and the human-readable index of the exported archive. Sans-IO: "today" is
//! an input, and nothing here reads the clock or touches the store.
//!
//! # Deadlines and the law
//!
//! - **Forvaltningsloven** (aktindsigt, partsaktindsigt § 9): § 16(1) asks for a decision as
//!   soon as possible; § 16(2) says that a request not granted or refused within **7 working
//!   days** after the competent authority received it obliges the authority to tell the
//!   requester why, and when the decision can be expected. kald models that notice as an
//!   [`Extension`]: a reason and the new (given) deadline; without one the deadline is the
//!   7th working day.
//! - **GDPR** art. 15 (right of access): art. 12(3) asks for an answer without undue delay and
//!   at the latest **one month** after receipt, extendable "by two further months" where
//!   necessary, with the reasons told to the data subject within the first month.
//!
//! ## Counting working days (forvaltningsloven)
//!
//! The day of receipt is day 0 and is never counted, whatever day it is; the deadline is the
//! 7th working day *after* it. This is the usual reading of "7 arbejdsdage efter, at
//! anmodningen er modtaget" (as of the parallel rule in offentlighedsloven § 36(2)). A request
//! received on a Saturday therefore has the same deadline as one received on the Friday
//! before: the Monday after is day 1 either way. The day of receipt is the civil date in
//! Europe/Copenhagen when the request reached the authority (a digital message when it became
//! available to it); the driver converts its timestamp with `Zoned::date`.
//!
//! A working day is Monday to Friday, not a statutory public holiday
//! ([`kald_core::calendar::holiday_on`]), and not a day the office is closed. By default
//! [`DeadlineParams`] also treats Grundlovsdag (5 June), Juleaftensdag (24 December) and
//! Nytårsaftensdag (31 December) as closed: public offices customarily close on them, so no
//! one is there to handle the request, and a count that included them would silently shorten
//! the officers' time. An office that is open on those days should remove them
//! ([`DeadlineParams::customary_closings`]), since then they are working days in the ordinary
//! sense and the law's deadline is a day earlier; extra closures (a move, a strike) can be added
//! ([`DeadlineParams::extra_closed`]).
//!
//! ## One month (GDPR)
//!
//! Calendar-month arithmetic on the date of receipt, with jiff's clamping to the month's end:
//! 15 March → 15 April, 31 January → 28 February (29 February in a leap year), as in Regulation
//! 1182/71 art. 3(2)(c). Art. 3(4) of that regulation moves a period ending on a Saturday,
//! Sunday or holiday to the next working day; kald does **not** by default, because the earlier
//! date is always safe and is the one the officers work to. Operators who want the later legal
//! date set [`DeadlineParams::gdpr_next_working_day`]. Either way the reminders count working
//! days, so a deadline on a Sunday is "due today" on the Friday before.
//!
//! The two further months of art. 12(3) run from the end of the first month: the latest
//! extended deadline is (receipt + 1 month) + 2 months, which is never later than receipt +
//! 3 months (31 January → 28 April, not 30 April); again the safe reading.
//!
//! ## Reminders
//!
//! [`AccessRequest::reminders`] is asked once a day by the driver; it reminds only on working
//! days (an officer reads them at work, and a driver asking every day then reminds once per
//! working day), while the request is neither answered nor closed:
//! - [`ReminderKind::DueSoon`] when the working days left are one of
//!   [`DeadlineParams::reminder_days`] (default 2 and 0: two working days before, so there is
//!   time to review, and on the last day);
//! - [`ReminderKind::Overdue`] every working day after the deadline, with the working days it
//!   is late.
//!
//! # Review and the index
//!
//! Each item found ([`FoundItem`]) gets a [`Decision`] — release, withhold with the legal
//! reason, or release with time ranges muted — checked by [`Decision::validate`];
//! [`AccessRequest::ready_to_export`] lists what is still missing. [`index_text`] writes the
//! index that goes into the archive. The index is released to the requester, who is usually
//! the citizen themself, but may be a representative: so the citizen's CPR number is left out
//! (shown masked) unless the caller passes it, and the request's `cpr_hash` is never shown.

use core::fmt::{self, Write as _};
use core::time::Duration;

use jiff::civil::{Date, Weekday};
use jiff::{ToSpan, Zoned};
use kald_core::calendar::{customary_closing_on, holiday_on, CustomaryClosing};
use kald_core::Cpr;

use crate::retention::ItemId;

/// The working days of forvaltningsloven § 16(2).
const FVL_WORKING_DAYS: u32 = 7;

/// An access request's id, as the store numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessRequestId(pub i64);

/// The law a request is made under; it sets the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// Aktindsigt under forvaltningsloven: 7 working days (§ 16(2)).
    Forvaltningsloven,
    /// The data subject's right of access, GDPR art. 15: one month (art. 12(3)).
    Gdpr,
}

impl Law {
    /// How the index names the law, in Danish with English in parentheses.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Forvaltningsloven => {
                "Aktindsigt efter forvaltningsloven (access to files, Public Administration Act)"
            }
            Self::Gdpr => {
                "Indsigtsret efter databeskyttelsesforordningen art. 15 (right of access, GDPR art. 15)"
            }
        }
    }
}

/// Where an access request stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestState {
    /// Opened; items are being found and reviewed.
    #[default]
    Open,
    /// Every item has a valid decision.
    Reviewed,
    /// The archive was sent to the requester.
    Answered,
    /// Closed (answered, withdrawn or merged); no more reminders.
    Closed,
}

/// A deadline moved with a reason (forvaltningsloven § 16(2) notice; GDPR art. 12(3)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// The new deadline, as told to the requester.
    pub new_deadline: Date,
    /// Why, as told to the requester.
    pub reason: String,
}

/// An access request: who asked, under which law, when, and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRequest {
    /// The request's id.
    pub id: AccessRequestId,
    /// The law it is made under.
    pub law: Law,
    /// The day it was received (civil date in Europe/Copenhagen); day 0 of the count.
    pub received: Date,
    /// Who asked (free text: the citizen or their representative).
    pub requester: String,
    /// How the requester's identity was verified (MitID, in person with ID, …).
    pub identity_verified_by: String,
    /// The keyed hash of the citizen's CPR number, by which their items are found.
    pub cpr_hash: [u8; 32],
    /// The latest extension of the deadline, if any.
    pub extension: Option<Extension>,
    /// Where it stands.
    pub state: RequestState,
}

/// What makes a day a working day for deadlines, and when to remind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadlineParams {
    /// Customary closing days that are not working days (default: all three).
    pub customary_closings: Vec<CustomaryClosing>,
    /// Further days the office is closed.
    pub extra_closed: Vec<Date>,
    /// Move a GDPR deadline on a non-working day to the next working day (default: no).
    pub gdpr_next_working_day: bool,
    /// Working days before the deadline on which to remind (default: 2 and 0).
    pub reminder_days: Vec<u32>,
}

impl Default for DeadlineParams {
    fn default() -> Self {
        Self {
            customary_closings: CustomaryClosing::ALL.to_vec(),
            extra_closed: Vec::new(),
            gdpr_next_working_day: false,
            reminder_days: vec![2, 0],
        }
    }
}

impl DeadlineParams {
    /// Whether `day` is a working day: Monday–Friday, no public holiday, office not closed.
    pub fn is_working_day(&self, day: Date) -> bool {
        !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
            && holiday_on(day).is_none()
            && !customary_closing_on(day).is_some_and(|c| self.customary_closings.contains(&c))
            && !self.extra_closed.contains(&day)
    }

    /// The `n`th working day after `from` (`from` itself is day 0 and never counts).
    pub fn add_working_days(&self, from: Date, n: u32) -> Date {
        let mut day = from;
        let mut counted = 0;
        while counted < n {
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => return Date::MAX,
            }
            if self.is_working_day(day) {
                counted += 1;
            }
        }
        day
    }

    /// The working days `d` with `after < d <= until` (0 if `until <= after`).
    pub fn working_days_between(&self, after: Date, until: Date) -> u32 {
        let mut count = 0;
        let mut day = after;
        while day < until {
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
            if self.is_working_day(day) {
                count += 1;
            }
        }
        count
    }

    /// `day` itself if a working day, else the next working day.
    fn on_or_after(&self, day: Date) -> Date {
        if self.is_working_day(day) {
            day
        } else {
            self.add_working_days(day, 1)
        }
    }
}

/// A reminder about an access request's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reminder {
    /// The request it is about.
    pub request: AccessRequestId,
    /// Its current deadline.
    pub deadline: Date,
    /// Due soon or overdue.
    pub kind: ReminderKind,
}

/// How a deadline stands on the day of a reminder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReminderKind {
    /// Working days left after today up to the deadline (0: today is the last working day).
    DueSoon {
        /// Working days left.
        days_left: u32,
    },
    /// Working days past the deadline, today included.
    Overdue {
        /// Working days late.
        days: u32,
    },
}

/// Why an extension or state change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// An extension needs a reason, which the requester is told.
    #[error("an extension needs a reason")]
    NoReason,
    /// The new deadline is not later than the current one.
    #[error("the new deadline {requested} is not later than the current deadline {current}")]
    NotLater {
        /// The deadline now.
        current: Date,
        /// The deadline asked for.
        requested: Date,
    },
    /// GDPR art. 12(3) allows at most two further months.
    #[error("GDPR art. 12(3) allows extending to {limit} at the latest, not {requested}")]
    BeyondGdprLimit {
        /// The latest allowed deadline.
        limit: Date,
        /// The deadline asked for.
        requested: Date,
    },
    /// The request is already answered or closed.
    #[error("the request is {0:?}")]
    NotOpen(RequestState),
}

impl AccessRequest {
    /// A new open request without extension.
    pub fn new(
        id: AccessRequestId,
        law: Law,
        received: Date,
        requester: impl Into<String>,
        identity_verified_by: impl Into<String>,
        cpr_hash: [u8; 32],
    ) -> Self {
        Self {
            id,
            law,
            received,
            requester: requester.into(),
            identity_verified_by: identity_verified_by.into(),
            cpr_hash,
            extension: None,
            state: RequestState::Open,
        }
    }

    /// The deadline set by law, before any extension.
    pub fn statutory_deadline(&self, params: &DeadlineParams) -> Date {
        match self.law {
            Law::Forvaltningsloven => params.add_working_days(self.received, FVL_WORKING_DAYS),
            Law::Gdpr => {
                let exact = self.gdpr_one_month();
                if params.gdpr_next_working_day {
                    params.on_or_after(exact)
                } else {
                    exact
                }
            }
        }
    }

    /// The deadline now in force: the extension's, else the statutory one.
    pub fn deadline(&self, params: &DeadlineParams) -> Date {
        match &self.extension {
            Some(ext) => ext.new_deadline,
            None => self.statutory_deadline(params),
        }
    }

    /// The latest deadline an extension may set: `None` under forvaltningsloven (no limit).
    pub fn extension_limit(&self) -> Option<Date> {
        match self.law {
            Law::Forvaltningsloven => None,
            Law::Gdpr => Some(self.gdpr_one_month().saturating_add(2.months())),
        }
    }

    /// Receipt + one calendar month, clamped to the month's end.
    fn gdpr_one_month(&self) -> Date {
        self.received.saturating_add(1.months())
    }

    /// Moves the deadline to `new_deadline`, later than the current one, with a reason.
    pub fn extend(
        &mut self,
        new_deadline: Date,
        reason: &str,
        params: &DeadlineParams,
    ) -> Result<(), AccessError> {
        if matches!(self.state, RequestState::Answered | RequestState::Closed) {
            return Err(AccessError::NotOpen(self.state));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AccessError::NoReason);
        }
        let current = self.deadline(params);
        if new_deadline <= current {
            return Err(AccessError::NotLater {
                current,
                requested: new_deadline,
            });
        }
        if let Some(limit) = self.extension_limit() {
            if new_deadline > limit {
                return Err(AccessError::BeyondGdprLimit {
                    limit,
                    requested: new_deadline,
                });
            }
        }
        self.extension = Some(Extension {
            new_deadline,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Today's reminders (at most one); none on non-working days or once answered/closed.
    pub fn reminders(&self, today: Date, params: &DeadlineParams) -> Vec<Reminder> {
        if matches!(self.state, RequestState::Answered | RequestState::Closed)
            || !params.is_working_day(today)
        {
            return Vec::new();
        }
        let deadline = self.deadline(params);
        let kind = if today > deadline {
            ReminderKind::Overdue {
                days: params.working_days_between(deadline, today),
            }
        } else {
            let days_left = params.working_days_between(today, deadline);
            if !params.reminder_days.contains(&days_left) {
                return Vec::new();
            }
            ReminderKind::DueSoon { days_left }
        };
        vec![Reminder {
            request: self.id,
            deadline,
            kind,
        }]
    }

    /// Every item has a valid decision; else the items missing one or with an invalid one.
    pub fn ready_to_export(
        &self,
        items: &[(FoundItem, Option<Decision>)],
    ) -> Result<(), Vec<MissingDecision>> {
        let missing: Vec<_> = items
            .iter()
            .filter_map(|(item, decision)| {
                let problem = match decision {
                    None => None,
                    Some(d) => match d.validate(item) {
                        Ok(()) => return None,
                        Err(e) => Some(e),
                    },
                };
                Some(MissingDecision {
                    item: item.id,
                    problem,
                })
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }

    /// Marks the request reviewed once [`Self::ready_to_export`] passes.
    pub fn mark_reviewed(
        &mut self,
        items: &[(FoundItem, Option<Decision>)],
    ) -> Result<(), Vec<MissingDecision>> {
        self.ready_to_export(items)?;
        if self.state == RequestState::Open {
            self.state = RequestState::Reviewed;
        }
        Ok(())
    }
}

/// What kind of item an access request found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FoundKind {
    /// The audio of a consenting call.
    Recording,
    /// A message the citizen left.
    Message,
    /// A call record (time, number, menu choice, agent).
    CallRecord,
    /// What is left of a deleted recording or message.
    Tombstone,
    /// An audit entry: who accessed the citizen's recordings, and why.
    AuditEntry,
}

impl FoundKind {
    /// How the index names the kind, in Danish with English in parentheses.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Recording => "Optagelse (recording)",
            Self::Message => "Besked (message)",
            Self::CallRecord => "Opkaldsregistrering (call record)",
            Self::Tombstone => "Slettet optagelse (deleted recording)",
            Self::AuditEntry => "Logpost om adgang (audit entry)",
        }
    }
}

/// One item an access request found, as the review and the index need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundItem {
    /// Its catalogue id (the recording id for audio).
    pub id: ItemId,
    /// What it is.
    pub kind: FoundKind,
    /// When it happened (the call's start), in Europe/Copenhagen.
    pub at: Zoned,
    /// The audio's length; `None` for items without audio.
    pub duration: Option<Duration>,
    /// The agent who took the call, if any.
    pub agent: Option<String>,
    /// A short note for the index (e.g. for an audit entry: who listened, and why).
    pub note: Option<String>,
}

/// A records officer's decision on one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Released in full.
    Release,
    /// Not released, with the legal reason (e.g. "forvaltningsloven § 15 b, nr. 1").
    Withhold {
        /// The legal reason, shown in the index.
        legal_reason: String,
    },
    /// Audio released with these ranges muted (e.g. where a third party speaks).
    ReleaseMuted {
        /// Muted `(start, end)` offsets from the audio's start: sorted, non-empty, disjoint.
        ranges: Vec<(Duration, Duration)>,
    },
}

/// Why a decision is invalid for its item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecisionError {
    /// A withhold needs its legal reason.
    #[error("withholding needs a legal reason")]
    NoLegalReason,
    /// Only audio can be muted.
    #[error("the item has no audio to mute")]
    NoAudio,
    /// A muted release needs at least one range (else it is a release).
    #[error("no muted ranges")]
    NoRanges,
    /// A range ends at or before it starts.
    #[error("muted range {index} is empty or reversed")]
    EmptyRange {
        /// The range's index.
        index: usize,
    },
    /// A range ends after the audio.
    #[error("muted range {index} ends after the audio")]
    OutOfBounds {
        /// The range's index.
        index: usize,
    },
    /// A range starts before the previous one ends (overlapping or out of order).
    #[error("muted range {index} overlaps or precedes the one before")]
    Overlap {
        /// The range's index.
        index: usize,
    },
}

impl Decision {
    /// Checks the decision against its item: a reason to withhold, muted ranges within its audio.
    pub fn validate(&self, item: &FoundItem) -> Result<(), DecisionError> {
        match self {
            Self::Release => Ok(()),
            Self::Withhold { legal_reason } if legal_reason.trim().is_empty() => {
                Err(DecisionError::NoLegalReason)
            }
            Self::Withhold { .. } => Ok(()),
            Self::ReleaseMuted { ranges } => {
                let Some(duration) = item.duration else {
                    return Err(DecisionError::NoAudio);
                };
                if ranges.is_empty() {
                    return Err(DecisionError::NoRanges);
                }
                let mut previous_end = Duration::ZERO;
                for (index, &(start, end)) in ranges.iter().enumerate() {
                    if end <= start {
                        return Err(DecisionError::EmptyRange { index });
                    }
                    if end > duration {
                        return Err(DecisionError::OutOfBounds { index });
                    }
                    // Touching ranges (end == next start) are allowed.
                    if index > 0 && start < previous_end {
                        return Err(DecisionError::Overlap { index });
                    }
                    previous_end = end;
                }
                Ok(())
            }
        }
    }

    /// How the index names the decision, in Danish with English in parentheses.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Release => "Udleveres (released)",
            Self::Withhold { .. } => "Undtaget (withheld)",
            Self::ReleaseMuted { .. } => "Udleveres med dele gjort tavse (released, parts muted)",
        }
    }
}

/// An item that cannot be exported yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingDecision {
    /// The item.
    pub item: ItemId,
    /// `None`: no decision yet; else why its decision is invalid.
    pub problem: Option<DecisionError>,
}

/// An offset as `M:SS` (or `H:MM:SS`), with `.mmm` when it is not a whole second.
struct Offset(Duration);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}:{m:02}:{s:02}")?;
        } else {
            write!(f, "{m}:{s:02}")?;
        }
        match self.0.subsec_millis() {
            0 => Ok(()),
            ms => write!(f, ".{ms:03}"),
        }
    }
}

/// The archive's human-readable index: the request, then every item with its decision.
///
/// `cpr` is the citizen's CPR number, shown only when given (the requester may be a
/// representative); otherwise it is masked. The request's `cpr_hash` is never shown.
pub fn index_text(
    request: &AccessRequest,
    items: &[(FoundItem, Decision)],
    cpr: Option<&Cpr>,
) -> String {
    let mut out = String::new();
    // Invariant: writing to a String never fails.
    let mut line = |text: fmt::Arguments<'_>| {
        out.write_fmt(text).expect("writing to a String");
        out.push('\n');
    };
    line(format_args!(
        "Indeks over fundne emner og afgørelser (index of items found and decisions)"
    ));
    line(format_args!(""));
    line(format_args!("Anmodning (request): {}", request.id.0));
    line(format_args!("Lov (law): {}", request.law.describe()));
    line(format_args!("Modtaget (received): {}", request.received));
    line(format_args!("Anmoder (requester): {}", request.requester));
    line(format_args!(
        "Identitet verificeret ved (identity verified by): {}",
        request.identity_verified_by
    ));
    match cpr {
        Some(cpr) => line(format_args!("CPR: {}", cpr.expose_dashed())),
        None => line(format_args!("CPR: ******-**** (udeladt / omitted)")),
    }
    if let Some(ext) = &request.extension {
        line(format_args!(
            "Fristforlængelse (extended deadline): {} ({})",
            ext.new_deadline, ext.reason
        ));
    }
    let count = |f: fn(&Decision) -> bool| items.iter().filter(|(_, d)| f(d)).count();
    line(format_args!(""));
    line(format_args!(
        "Emner (items): {} — udleveret (released) {}, med dele gjort tavse (parts muted) {}, undtaget (withheld) {}",
        items.len(),
        count(|d| matches!(d, Decision::Release)),
        count(|d| matches!(d, Decision::ReleaseMuted { .. })),
        count(|d| matches!(d, Decision::Withhold { .. })),
    ));
    for (n, (item, decision)) in items.iter().enumerate() {
        line(format_args!(""));
        line(format_args!(
            "{}. {} nr. {}",
            n + 1,
            item.kind.describe(),
            item.id.0
        ));
        line(format_args!(
            "   Tidspunkt (time): {}",
            item.at.strftime("%Y-%m-%d %H:%M")
        ));
        if let Some(d) = item.duration {
            line(format_args!("   Varighed (duration): {}", Offset(d)));
        }
        if let Some(agent) = &item.agent {
            line(format_args!("   Medarbejder (agent): {agent}"));
        }
        if let Some(note) = &item.note {
            line(format_args!("   Bemærkning (note): {note}"));
        }
        line(format_args!(
            "   Afgørelse (decision): {}",
            decision.describe()
        ));
        match decision {
            Decision::Release => {}
            Decision::Withhold { legal_reason } => {
                line(format_args!(
                    "   Begrundelse (legal reason): {legal_reason}"
                ));
            }
            Decision::ReleaseMuted { ranges } => {
                let list: Vec<String> = ranges
                    .iter()
                    .map(|&(s, e)| format!("{}–{}", Offset(s), Offset(e)))
                    .collect();
                line(format_args!(
                    "   Tavse tidsrum (muted ranges): {}",
                    list.join(", ")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jiff::civil::date;

    fn fvl(received: Date) -> AccessRequest {
        AccessRequest::new(
            AccessRequestId(1),
            Law::Forvaltningsloven,
            received,
            "Borger",
            "MitID",
            [7; 32],
        )
    }

    fn gdpr(received: Date) -> AccessRequest {
        AccessRequest {
            law: Law::Gdpr,
            ..fvl(received)
        }
    }

    fn p() -> DeadlineParams {
        DeadlineParams::default()
    }

    #[test]
    fn seven_working_days_plain_week() {
        // Monday 1 March 2027: Tue 2 is day 1 … Wed 10 is day 7.
        assert_eq!(fvl(date(2027, 3, 1)).deadline(&p()), date(2027, 3, 10));
    }

    #[test]
    fn seven_working_days_across_easter_2027() {
        // Maundy Thursday 25 March, Good Friday 26, Easter Monday 29 March 2027.
        // Received Mon 22: 23 (1), 24 (2), 30 (3), 31 (4), 1 Apr (5), 2 (6), 5 (7).
        assert_eq!(fvl(date(2027, 3, 22)).deadline(&p()), date(2027, 4, 5));
        // Received on Maundy Thursday itself: 30 (1) … 7 April (7).
        assert_eq!(fvl(date(2027, 3, 25)).deadline(&p()), date(2027, 4, 7));
    }

    #[test]
    fn seven_working_days_across_christmas_and_new_year() {
        // Received Mon 21 Dec 2026: 22 (1), 23 (2), [24 closed, 25–27], 28 (3), 29 (4),
        // 30 (5), [31 closed, 1 Jan holiday, 2–3 weekend], 4 (6), 5 Jan 2027 (7).
        assert_eq!(fvl(date(2026, 12, 21)).deadline(&p()), date(2027, 1, 5));
        // An office open on 24 and 31 December counts them: 31 December.
        let open = DeadlineParams {
            customary_closings: vec![],
            ..p()
        };
        assert_eq!(fvl(date(2026, 12, 21)).deadline(&open), date(2026, 12, 31));
    }

    #[test]
    fn seven_working_days_across_ascension_and_whitsun() {
        // 2027: Ascension Thu 6 May, Whit Monday 17 May.
        // Received Wed 5 May: 7 (1), 10 (2), 11 (3), 12 (4), 13 (5), 14 (6), 18 May (7).
        assert_eq!(fvl(date(2027, 5, 5)).deadline(&p()), date(2027, 5, 18));
        // Received Tue 4 May: 5 (1), 7 (2), 10 … 14 (7).
        assert_eq!(fvl(date(2027, 5, 4)).deadline(&p()), date(2027, 5, 14));
    }

    #[test]
    fn constitution_day_is_closed_by_default() {
        // 5 June 2026 is a Friday. Received Wed 3 June: 4 (1), 8 (2) … 15 June (7).
        assert_eq!(fvl(date(2026, 6, 3)).deadline(&p()), date(2026, 6, 15));
        let open = DeadlineParams {
            customary_closings: vec![CustomaryClosing::ChristmasEve],
            ..p()
        };
        assert_eq!(fvl(date(2026, 6, 3)).deadline(&open), date(2026, 6, 12));
        // Extra closed days push it further.
        let moving = DeadlineParams {
            extra_closed: vec![date(2026, 6, 8)],
            ..p()
        };
        assert_eq!(fvl(date(2026, 6, 3)).deadline(&moving), date(2026, 6, 16));
    }

    #[test]
    fn received_on_a_saturday_counts_from_monday_as_day_one() {
        // Sat 6 March 2027: Mon 8 (1) … Fri 12 (5), Mon 15 (6), Tue 16 (7) —
        // the same deadline as for Friday 5 March, and for Sunday 7 March.
        assert_eq!(fvl(date(2027, 3, 6)).deadline(&p()), date(2027, 3, 16));
        assert_eq!(fvl(date(2027, 3, 5)).deadline(&p()), date(2027, 3, 16));
        assert_eq!(fvl(date(2027, 3, 7)).deadline(&p()), date(2027, 3, 16));
        // Received Monday: a day later.
        assert_eq!(fvl(date(2027, 3, 8)).deadline(&p()), date(2027, 3, 17));
    }

    #[test]
    fn gdpr_one_month() {
        assert_eq!(gdpr(date(2027, 3, 15)).deadline(&p()), date(2027, 4, 15));
        // 31 January: end of February, non-leap and leap year.
        assert_eq!(gdpr(date(2027, 1, 31)).deadline(&p()), date(2027, 2, 28));
        assert_eq!(gdpr(date(2028, 1, 31)).deadline(&p()), date(2028, 2, 29));
        // Across the year end.
        assert_eq!(gdpr(date(2026, 12, 31)).deadline(&p()), date(2027, 1, 31));
    }

    #[test]
    fn gdpr_next_working_day_option() {
        let roll = DeadlineParams {
            gdpr_next_working_day: true,
            ..p()
        };
        // 28 February 2027 is a Sunday: Monday 1 March.
        assert_eq!(gdpr(date(2027, 1, 31)).deadline(&roll), date(2027, 3, 1));
        // 29 February 2028 is a Tuesday: unchanged.
        assert_eq!(gdpr(date(2028, 1, 31)).deadline(&roll), date(2028, 2, 29));
        // 25 Dec 2026 (holiday) → 26 (holiday) → 27 Sunday → Mon 28 Dec.
        assert_eq!(gdpr(date(2026, 11, 25)).deadline(&roll), date(2026, 12, 28));
    }

    #[test]
    fn gdpr_extension_rules() {
        let mut r = gdpr(date(2027, 1, 31));
        // Two further months from 28 February: 28 April, not 30 April.
        assert_eq!(r.extension_limit(), Some(date(2027, 4, 28)));
        assert_eq!(
            r.extend(date(2027, 4, 29), "many recordings", &p()),
            Err(AccessError::BeyondGdprLimit {
                limit: date(2027, 4, 28),
                requested: date(2027, 4, 29)
            })
        );
        assert_eq!(
            r.extend(date(2027, 4, 1), "  ", &p()),
            Err(AccessError::NoReason)
        );
        assert_eq!(
            r.extend(date(2027, 2, 28), "same day", &p()),
            Err(AccessError::NotLater {
                current: date(2027, 2, 28),
                requested: date(2027, 2, 28)
            })
        );
        r.extend(date(2027, 4, 1), " 40 recordings to review ", &p())
            .unwrap();
        assert_eq!(r.deadline(&p()), date(2027, 4, 1));
        assert_eq!(
            r.extension.as_ref().unwrap().reason,
            "40 recordings to review"
        );
        // A second extension must be later still, and within the same limit.
        assert!(matches!(
            r.extend(date(2027, 3, 31), "earlier", &p()),
            Err(AccessError::NotLater { .. })
        ));
        r.extend(date(2027, 4, 28), "third party to hear", &p())
            .unwrap();
        assert_eq!(r.deadline(&p()), date(2027, 4, 28));
        // Leap year: 29 February + 2 months.
        assert_eq!(
            gdpr(date(2028, 1, 31)).extension_limit(),
            Some(date(2028, 4, 29))
        );
    }

    #[test]
    fn fvl_extension_rules() {
        let mut r = fvl(date(2027, 3, 22));
        assert_eq!(r.extension_limit(), None);
        assert!(matches!(
            r.extend(date(2027, 4, 5), "x", &p()),
            Err(AccessError::NotLater { .. })
        ));
        r.extend(date(2027, 6, 30), "Afventer partshøring", &p())
            .unwrap();
        assert_eq!(r.deadline(&p()), date(2027, 6, 30));
        assert_eq!(r.statutory_deadline(&p()), date(2027, 4, 5));
        r.state = RequestState::Answered;
        assert_eq!(
            r.extend(date(2027, 7, 30), "late", &p()),
            Err(AccessError::NotOpen(RequestState::Answered))
        );
    }

    #[test]
    fn reminders_sequence() {
        // Received Mon 22 March 2027, deadline Mon 5 April.
        let r = fvl(date(2027, 3, 22));
        let kinds: Vec<_> = (0..21)
            .map(|i| date(2027, 3, 31).checked_add(i.days()).unwrap())
            .map(|d| (d, r.reminders(d, &p())))
            .filter(|(_, v)| !v.is_empty())
            .map(|(d, v)| {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].deadline, date(2027, 4, 5));
                assert_eq!(v[0].request, AccessRequestId(1));
                (d, v[0].kind)
            })
            .collect();
        let due = |days_left| ReminderKind::DueSoon { days_left };
        let late = |days| ReminderKind::Overdue { days };
        assert_eq!(
            kinds,
            vec![
                (date(2027, 4, 1), due(2)), // Thu: Fri 2 and Mon 5 left
                (date(2027, 4, 5), due(0)), // Mon: the last day
                (date(2027, 4, 6), late(1)),
                (date(2027, 4, 7), late(2)),
                (date(2027, 4, 8), late(3)),
                (date(2027, 4, 9), late(4)),
                // Sat 10, Sun 11: none.
                (date(2027, 4, 12), late(5)),
                (date(2027, 4, 13), late(6)),
                (date(2027, 4, 14), late(7)),
                (date(2027, 4, 15), late(8)),
                (date(2027, 4, 16), late(9)),
                // Sat 17, Sun 18, then Mon 19, Tue 20.
                (date(2027, 4, 19), late(10)),
                (date(2027, 4, 20), late(11)),
            ]
        );
        // Answered or closed: silent.
        for state in [RequestState::Answered, RequestState::Closed] {
            let done = AccessRequest { state, ..r.clone() };
            assert!(done.reminders(date(2027, 4, 6), &p()).is_empty());
        }
    }

    #[test]
    fn reminders_for_a_sunday_deadline() {
        // GDPR, deadline Sunday 28 February 2027: Wed 24 two working days left (Thu, Fri),
        // Fri 26 the last working day.
        let r = gdpr(date(2027, 1, 31));
        let kind = |d| r.reminders(d, &p()).first().map(|x| x.kind);
        assert_eq!(kind(date(2027, 2, 23)), None);
        assert_eq!(
            kind(date(2027, 2, 24)),
            Some(ReminderKind::DueSoon { days_left: 2 })
        );
        assert_eq!(kind(date(2027, 2, 25)), None);
        assert_eq!(
            kind(date(2027, 2, 26)),
            Some(ReminderKind::DueSoon { days_left: 0 })
        );
        assert_eq!(kind(date(2027, 2, 28)), None);
        assert_eq!(
            kind(date(2027, 3, 1)),
            Some(ReminderKind::Overdue { days: 1 })
        );
        // Custom schedule: 5 working days before, too.
        let five = DeadlineParams {
            reminder_days: vec![5, 2, 0],
            ..p()
        };
        assert_eq!(
            r.reminders(date(2027, 2, 19), &five)[0].kind,
            ReminderKind::DueSoon { days_left: 5 }
        );
    }

    fn at(y: i16, m: i8, d: i8, h: i8, min: i8) -> Zoned {
        date(y, m, d)
            .at(h, min, 0, 0)
            .in_tz("Europe/Copenhagen")
            .unwrap()
    }

    fn recording(id: i64, secs: u64) -> FoundItem {
        FoundItem {
            id: ItemId(id),
            kind: FoundKind::Recording,
            at: at(2027, 2, 1, 9, 14),
            duration: Some(Duration::from_secs(secs)),
            agent: Some("Agent 7".into()),
            note: None,
        }
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn decision_validation() {
        let rec = recording(1, 300);
        assert_eq!(Decision::Release.validate(&rec), Ok(()));
        let withhold = |r: &str| Decision::Withhold {
            legal_reason: r.into(),
        };
        assert_eq!(
            withhold(" ").validate(&rec),
            Err(DecisionError::NoLegalReason)
        );
        assert_eq!(withhold("fvl. § 15 b, nr. 1").validate(&rec), Ok(()));
        let muted = |ranges: Vec<(Duration, Duration)>| Decision::ReleaseMuted { ranges };
        assert_eq!(
            muted(vec![(s(10), s(25)), (s(25), s(40)), (s(200), s(300))]).validate(&rec),
            Ok(())
        );
        assert_eq!(muted(vec![]).validate(&rec), Err(DecisionError::NoRanges));
        assert_eq!(
            muted(vec![(s(10), s(10))]).validate(&rec),
            Err(DecisionError::EmptyRange { index: 0 })
        );
        assert_eq!(
            muted(vec![(s(0), s(5)), (s(20), s(10))]).validate(&rec),
            Err(DecisionError::EmptyRange { index: 1 })
        );
        assert_eq!(
            muted(vec![(s(290), s(301))]).validate(&rec),
            Err(DecisionError::OutOfBounds { index: 0 })
        );
        assert_eq!(
            muted(vec![(s(10), s(30)), (s(20), s(40))]).validate(&rec),
            Err(DecisionError::Overlap { index: 1 })
        );
        assert_eq!(
            muted(vec![(s(50), s(60)), (s(10), s(20))]).validate(&rec),
            Err(DecisionError::Overlap { index: 1 })
        );
        let record = FoundItem {
            kind: FoundKind::CallRecord,
            duration: None,
            ..recording(2, 0)
        };
        assert_eq!(
            muted(vec![(s(0), s(1))]).validate(&record),
            Err(DecisionError::NoAudio)
        );
    }

    #[test]
    fn ready_to_export_lists_missing_and_invalid() {
        let mut r = fvl(date(2027, 3, 1));
        let items = vec![
            (recording(1, 60), Some(Decision::Release)),
            (recording(2, 60), None),
            (
                recording(3, 60),
                Some(Decision::Withhold {
                    legal_reason: String::new(),
                }),
            ),
        ];
        assert_eq!(
            r.ready_to_export(&items),
            Err(vec![
                MissingDecision {
                    item: ItemId(2),
                    problem: None
                },
                MissingDecision {
                    item: ItemId(3),
                    problem: Some(DecisionError::NoLegalReason)
                },
            ])
        );
        assert!(r.mark_reviewed(&items).is_err());
        assert_eq!(r.state, RequestState::Open);
        let ok = vec![(recording(1, 60), Some(Decision::Release))];
        assert_eq!(r.ready_to_export(&ok), Ok(()));
        assert_eq!(r.ready_to_export(&[]), Ok(()));
        r.mark_reviewed(&ok).unwrap();
        assert_eq!(r.state, RequestState::Reviewed);
    }

    fn golden_items() -> Vec<(FoundItem, Decision)> {
        vec![
            (recording(101, 272), Decision::Release),
            (
                FoundItem {
                    at: at(2027, 2, 3, 14, 5),
                    ..recording(102, 3725)
                },
                Decision::ReleaseMuted {
                    ranges: vec![(s(10), Duration::from_millis(25_500)), (s(62), s(90))],
                },
            ),
            (
                FoundItem {
                    kind: FoundKind::AuditEntry,
                    at: at(2027, 2, 4, 11, 0),
                    duration: None,
                    agent: None,
                    note: Some("Afspillet af teamleder (played by team leader): coaching".into()),
                    ..recording(103, 0)
                },
                Decision::Withhold {
                    legal_reason: "forvaltningsloven § 15 b, nr. 1".into(),
                },
            ),
        ]
    }

    const GOLDEN: &str = "\
Indeks over fundne emner og afgørelser (index of items found and decisions)

Anmodning (request): 1
Lov (law): Aktindsigt efter forvaltningsloven (access to files, Public Administration Act)
Modtaget (received): 2027-03-22
Anmoder (requester): Borger
Identitet verificeret ved (identity verified by): MitID
CPR: ******-**** (udeladt / omitted)
Fristforlængelse (extended deadline): 2027-04-20 (Mange optagelser (many recordings))

Emner (items): 3 — udleveret (released) 1, med dele gjort tavse (parts muted) 1, undtaget (withheld) 1

1. Optagelse (recording) nr. 101
   Tidspunkt (time): 2027-02-01 09:14
   Varighed (duration): 4:32
   Medarbejder (agent): Agent 7
   Afgørelse (decision): Udleveres (released)

2. Optagelse (recording) nr. 102
   Tidspunkt (time): 2027-02-03 14:05
   Varighed (duration): 1:02:05
   Medarbejder (agent): Agent 7
   Afgørelse (decision): Udleveres med dele gjort tavse (released, parts muted)
   Tavse tidsrum (muted ranges): 0:10–0:25.500, 1:02–1:30

3. Logpost om adgang (audit entry) nr. 103
   Tidspunkt (time): 2027-02-04 11:00
   Bemærkning (note): Afspillet af teamleder (played by team leader): coaching
   Afgørelse (decision): Undtaget (withheld)
   Begrundelse (legal reason): forvaltningsloven § 15 b, nr. 1
";

    #[test]
    fn index_text_golden() {
        let mut r = fvl(date(2027, 3, 22));
        r.extend(
            date(2027, 4, 20),
            "Mange optagelser (many recordings)",
            &p(),
        )
        .unwrap();
        let text = index_text(&r, &golden_items(), None);
        assert_eq!(text, GOLDEN, "\n{text}");
        // The hash is never shown.
        assert!(!text.contains("0707"));
    }

    #[test]
    fn index_text_shows_cpr_only_when_given() {
        let r = gdpr(date(2027, 3, 22));
        let cpr = Cpr::parse("0101901234").unwrap();
        let without = index_text(&r, &[], None);
        assert!(!without.contains("010190"));
        assert!(!without.contains("1234"));
        let with = index_text(&r, &[], Some(&cpr));
        assert!(with.contains("\nCPR: 010190-1234\n"), "{with}");
        assert!(with.contains("Indsigtsret efter databeskyttelsesforordningen art. 15"));
        assert!(with.contains("Emner (items): 0 — "));
    }
}
