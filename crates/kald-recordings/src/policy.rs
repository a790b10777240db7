//! The operators' rules for recordings: `recordings-policy/policy.toml`.
//!
//! The file says how long each kind of personal data is kept ([`Retention`]), which keys callers
//! press to consent and to withdraw consent ([`CallerKeys`]), and what each [`Role`] may do
//! ([`Permission`], [`Access`]). [`Policy::load`] checks it like `kald flow check` checks flows,
//! with `file:line:col` diagnostics; [`Policy::default`] is exactly the shipped file
//! ([`DEFAULT_POLICY_TOML`]), which `recordings-policy/README.md` explains for operators.
//!
//! Retention periods are calendar periods ("3 months", "90 days", "2 years", "1 year 6 months")
//! counted in Danish time; see [`RetentionPeriod::deadline`] for the arithmetic.

use core::fmt;
use core::ops::Range;
use core::str::FromStr;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::Deserialize;
use toml::Spanned;

use crate::access::DeadlineParams;
use crate::diag::{did_you_mean, file_error, friendly_message, Diagnostic, Report};
use kald_core::calendar::CustomaryClosing;

/// The policy file shipped in `recordings-policy/policy.toml`; [`Policy::default`] equals it.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../recordings-policy/policy.toml");

/// The longest retention the checker accepts (100 years), in months and in days.
const MAX_MONTHS: u32 = 1200;
/// See [`MAX_MONTHS`].
const MAX_DAYS: u32 = 36_525;

/// A role of a user of kald, as written in the policy and in `kald.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// Takes calls (medarbejder i kontaktcenteret).
    Agent,
    /// Leads a team of agents (teamleder).
    TeamLeader,
    /// Coaches agents (coach).
    Coach,
    /// Runs the floor: queues, agents' states, figures (vagtleder).
    Supervisor,
    /// Handles records: journalising, access requests, holds, erasure (journalmedarbejder).
    RecordsOfficer,
    /// Administers kald and reads the audit log (systemadministrator).
    Administrator,
}

impl Role {
    /// Every role, in the order of the shipped file.
    pub const ALL: [Self; 6] = [
        Self::Agent,
        Self::TeamLeader,
        Self::Coach,
        Self::Supervisor,
        Self::RecordsOfficer,
        Self::Administrator,
    ];

    /// The role's name in the policy file (`"team-leader"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::TeamLeader => "team-leader",
            Self::Coach => "coach",
            Self::Supervisor => "supervisor",
            Self::RecordsOfficer => "records-officer",
            Self::Administrator => "administrator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a role or not a permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}")]
pub struct UnknownName {
    /// "role" or "permission".
    what: &'static str,
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownName { what: "role" })
    }
}

/// Something a role may do with recordings and the data around them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// Listen to recordings of one's own calls.
    ListenOwn,
    /// Listen to recordings of other agents' calls.
    ListenOthers,
    /// Save a recording as a WAV file (only recordings the role may listen to).
    Download,
    /// Listen in on a live call (medlyt).
    ListenIn,
    /// Link a call to the citizen's case (journal number).
    LinkJournal,
    /// Enter or correct the CPR number of a call after checking the caller's identity.
    CorrectCpr,
    /// Journalise: send a recording to the case system.
    Export,
    /// Place and lift holds that stop deletion.
    Hold,
    /// Erase a citizen's recordings on request (GDPR art. 17).
    Erase,
    /// Search recordings and call records by CPR number.
    SearchByCpr,
    /// Open, review and release access requests (aktindsigt, GDPR art. 15).
    AccessRequests,
    /// Read, filter and export the audit log.
    ReadAudit,
}

impl Permission {
    /// Every permission, in the order of the shipped file's list.
    pub const ALL: [Self; 12] = [
        Self::ListenOwn,
        Self::ListenOthers,
        Self::Download,
        Self::ListenIn,
        Self::LinkJournal,
        Self::CorrectCpr,
        Self::Export,
        Self::Hold,
        Self::Erase,
        Self::SearchByCpr,
        Self::AccessRequests,
        Self::ReadAudit,
    ];

    /// The permissions that may depend on the agent's consent (`with_agent_consent`).
    pub const CONSENTABLE: [Self; 2] = [Self::ListenOthers, Self::ListenIn];

    /// The permission's name in the policy file (`"listen-own"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListenOwn => "listen-own",
            Self::ListenOthers => "listen-others",
            Self::Download => "download",
            Self::ListenIn => "listen-in",
            Self::LinkJournal => "link-journal",
            Self::CorrectCpr => "correct-cpr",
            Self::Export => "export",
            Self::Hold => "hold",
            Self::Erase => "erase",
            Self::SearchByCpr => "search-by-cpr",
            Self::AccessRequests => "access-requests",
            Self::ReadAudit => "read-audit",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(UnknownName { what: "permission" })
    }
}

/// Whether a role may do something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Access {
    /// Refused (HTTP 403).
    Denied,
    /// Allowed.
    Allowed,
    /// Allowed only where the agent whose call it is has granted it (per recording, or for
    /// listening in, per listening); refused otherwise.
    WithAgentConsent,
}

/// A calendar period: whole months (years count 12) and then whole days (weeks count 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetentionPeriod {
    months: u32,
    days: u32,
}

impl RetentionPeriod {
    /// A period of `months` months and `days` days; `None` if it is zero or over 100 years.
    pub fn new(months: u32, days: u32) -> Option<Self> {
        let ok = (months > 0 || days > 0) && months <= MAX_MONTHS && days <= MAX_DAYS;
        ok.then_some(Self { months, days })
    }

    /// Whole months of the period (a year counts 12).
    pub fn months(&self) -> u32 {
        self.months
    }

    /// Days of the period after the months (a week counts 7).
    pub fn days(&self) -> u32 {
        self.days
    }

    /// When data whose period starts at `from` is due, with the months and days counted in
    /// the calendar of `tz` (Europe/Copenhagen); `None` past the year 9999.
    ///
    /// The arithmetic is jiff's calendar arithmetic on the local date and time: first the
    /// months are added — a day that does not exist in the target month becomes that month's
    /// last day (31 January + 1 month = 28 or 29 February; 30 November + 3 months = 28/29
    /// February) — then the days (calendar days: 90 days across a DST change is 90 dates
    /// later at the same local time, not 90 × 24 hours). A local time that the clocks skip
    /// (02:00–03:00 on the last Sunday of March) moves forward by the gap (02:30 → 03:30
    /// summer time); a local time that occurs twice (02:00–03:00 on the last Sunday of
    /// October) is the first, summer-time, one. This is `Zoned::checked_add` with jiff's
    /// "compatible" disambiguation.
    pub fn deadline(&self, from: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local: DateTime = tz.to_datetime(from);
        let span = Span::new()
            .try_months(i64::from(self.months))
            .ok()?
            .try_days(i64::from(self.days))
            .ok()?;
        let due = local.checked_add(span).ok()?;
        tz.to_ambiguous_timestamp(due).compatible().ok()
    }

    /// Parses `"3 months"`, `"90 days"`, `"2 years"`, `"1 year 6 months"`, `"6 weeks"`;
    /// the error completes "… is not a usable retention: …".
    fn parse(text: &str) -> Result<Self, String> {
        let example = "write a number and a unit in quotes, e.g. \"3 months\", \"90 days\" or \
                       \"2 years\"";
        let span: Span = text
            .parse()
            .map_err(|_| format!("'{text}' is not a period; {example}"))?;
        if span.is_negative() {
            return Err(format!("'{text}' is negative; {example}"));
        }
        let has_time = span.get_hours() != 0
            || span.get_minutes() != 0
            || span.get_seconds() != 0
            || span.get_milliseconds() != 0
            || span.get_microseconds() != 0
            || span.get_nanoseconds() != 0;
        if has_time {
            return Err(format!(
                "'{text}' has hours, minutes or seconds; retention is counted in days, weeks, \
                 months or years"
            ));
        }
        let months = i64::from(span.get_years()) * 12 + i64::from(span.get_months());
        let days = i64::from(span.get_weeks()) * 7 + i64::from(span.get_days());
        if months == 0 && days == 0 {
            return Err(format!(
                "'{text}' is zero; data must be kept for some time (at least \"1 day\")"
            ));
        }
        let too_long = || format!("'{text}' is longer than 100 years");
        let months = u32::try_from(months).map_err(|_| too_long())?;
        let days = u32::try_from(days).map_err(|_| too_long())?;
        Self::new(months, days).ok_or_else(too_long)
    }
}

impl fmt::Display for RetentionPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit =
            |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        let (years, months) = (self.months / 12, self.months % 12);
        if years > 0 {
            parts.push(unit(years, "year", "years"));
        }
        if months > 0 {
            parts.push(unit(months, "month", "months"));
        }
        if self.days > 0 {
            parts.push(unit(self.days, "day", "days"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// How long each kind of data is kept (`[retention]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Recordings of consenting calls, from the end of the call.
    pub recordings: RetentionPeriod,
    /// Messages left by callers, from the end of the call.
    pub messages: RetentionPeriod,
    /// The personal data of call records with a CPR number (recorded or not), from the end of
    /// the call.
    pub call_records_with_cpr: RetentionPeriod,
    /// Tombstones of deleted recordings and messages, from the deletion.
    pub tombstones: RetentionPeriod,
    /// Audit log entries, from the logged event.
    pub audit_log: RetentionPeriod,
}

/// The keys callers press (`[keys]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallerKeys {
    /// Gives consent to recording (the flow's consent node uses the same key).
    pub consent: char,
    /// Withdraws consent during the call.
    pub withdraw: char,
}

/// What one role may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Grants {
    may: BTreeSet<Permission>,
    with_agent_consent: BTreeSet<Permission>,
}

/// The checked policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// How long data is kept.
    pub retention: Retention,
    /// The consent and withdrawal keys.
    pub keys: CallerKeys,
    /// What each role may do; a role not in the map may do nothing.
    roles: BTreeMap<Role, Grants>,
    /// Which days count as working days for access requests' deadlines, and when to remind
    /// (`[access_requests]`; the defaults when the table is left out).
    pub access_requests: DeadlineParams,
    /// Things in the file that load but look like mistakes (empty for the default policy).
    pub warnings: Vec<Diagnostic>,
}

impl Default for Policy {
    /// The shipped `recordings-policy/policy.toml` (a test checks that they agree).
    fn default() -> Self {
        use Permission::*;
        let months = |m| RetentionPeriod { months: m, days: 0 };
        let grants = |may: &[Permission], with: &[Permission]| Grants {
            may: may.iter().copied().collect(),
            with_agent_consent: with.iter().copied().collect(),
        };
        Self {
            retention: Retention {
                recordings: months(3),
                messages: months(3),
                call_records_with_cpr: months(3),
                tombstones: months(12),
                audit_log: months(24),
            },
            keys: CallerKeys {
                consent: '1',
                withdraw: '9',
            },
            roles: BTreeMap::from([
                (
                    Role::Agent,
                    grants(&[ListenOwn, Download, LinkJournal, CorrectCpr], &[]),
                ),
                (
                    Role::TeamLeader,
                    grants(
                        &[ListenOwn, Download, ListenIn, LinkJournal, CorrectCpr],
                        &[ListenOthers],
                    ),
                ),
                (
                    Role::Coach,
                    grants(
                        &[ListenOwn, ListenIn, LinkJournal, CorrectCpr],
                        &[ListenOthers],
                    ),
                ),
                (Role::Supervisor, grants(&[], &[])),
                (
                    Role::RecordsOfficer,
                    grants(
                        &[
                            ListenOthers,
                            Download,
                            LinkJournal,
                            Export,
                            Hold,
                            Erase,
                            SearchByCpr,
                            AccessRequests,
                        ],
                        &[],
                    ),
                ),
                (Role::Administrator, grants(&[ReadAudit], &[])),
            ]),
            access_requests: DeadlineParams::default(),
            warnings: Vec::new(),
        }
    }
}

impl Policy {
    /// Loads and checks the policy file; on success [`Policy::warnings`] holds any warnings.
    pub fn load(path: &Path) -> Result<Self, Vec<Diagnostic>> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![file_error(&label, format!("cannot read the file: {e}"))])?;
        Self::parse(&label, &text)
    }

    /// Checks policy text; `name` is the file name shown in diagnostics.
    pub fn parse(name: &str, text: &str) -> Result<Self, Vec<Diagnostic>> {
        let mut report = Report::new(name, text);
        let raw: RawPolicy = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                report.error(e.span().unwrap_or(0..0), friendly_message(e.message()));
                return Err(report.finish());
            }
        };
        let retention = raw.retention.into_inner().build(&mut report);
        let keys = raw.keys.into_inner().build(&mut report);
        let access_requests = raw
            .access_requests
            .map_or_else(DeadlineParams::default, |table| {
                table.into_inner().build(&mut report)
            });
        let mut roles = BTreeMap::new();
        for (name, grants) in raw.roles.unwrap_or_default() {
            let span = name.span();
            let Ok(role) = name.get_ref().parse::<Role>() else {
                report.error(
                    span,
                    format!(
                        "'{}' is not a role{}; the roles are {}",
                        name.get_ref(),
                        did_you_mean(name.get_ref(), Role::ALL.map(Role::as_str)),
                        Role::ALL.map(Role::as_str).join(", ")
                    ),
                );
                continue;
            };
            roles.insert(role, grants.into_inner().build(role, &mut report));
        }
        if report.has_errors() {
            return Err(report.finish());
        }
        // Invariant: with no errors, every part was built.
        let (Some(retention), Some(keys)) = (retention, keys) else {
            return Err(report.finish());
        };
        Ok(Self {
            retention,
            keys,
            roles,
            access_requests,
            warnings: report.finish(),
        })
    }

    /// Whether `role` may do `permission` without further condition. A permission that needs
    /// the agent's consent gives `false` here: ask [`access`](Self::access) for those.
    pub fn allows(&self, role: Role, permission: Permission) -> bool {
        self.access(role, permission) == Access::Allowed
    }

    /// Whether `role` may do `permission`: always, only with the agent's consent, or not.
    pub fn access(&self, role: Role, permission: Permission) -> Access {
        let Some(grants) = self.roles.get(&role) else {
            return Access::Denied;
        };
        if grants.may.contains(&permission) {
            Access::Allowed
        } else if grants.with_agent_consent.contains(&permission) {
            Access::WithAgentConsent
        } else {
            Access::Denied
        }
    }

    /// Whether `role` may do `permission`, given whether the agent has consented to it.
    pub fn allows_given(&self, role: Role, permission: Permission, agent_consented: bool) -> bool {
        match self.access(role, permission) {
            Access::Allowed => true,
            Access::WithAgentConsent => agent_consented,
            Access::Denied => false,
        }
    }
}

/// The whole file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    retention: Spanned<RawRetention>,
    keys: Spanned<RawKeys>,
    /// Not wrapped in `Spanned`: toml 0.8 cannot give spans to keys inside a spanned map.
    roles: Option<BTreeMap<Spanned<String>, Spanned<RawRole>>>,
    access_requests: Option<Spanned<RawAccessRequests>>,
}

/// `[access_requests]`, as written; every key may be left out (the default applies).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessRequests {
    closed_customary: Option<Vec<Spanned<String>>>,
    closed_days: Option<Vec<Spanned<toml::Value>>>,
    reminder_days: Option<Vec<Spanned<i64>>>,
    gdpr_next_working_day: Option<bool>,
}

/// The names of the customary closing days in `closed_customary`.
const CUSTOMARY_NAMES: [(&str, CustomaryClosing); 3] = [
    ("grundlovsdag", CustomaryClosing::ConstitutionDay),
    ("juleaftensdag", CustomaryClosing::ChristmasEve),
    ("nytaarsaftensdag", CustomaryClosing::NewYearsEve),
];

/// The most working days ahead a reminder may come.
const MAX_REMINDER_DAYS: i64 = 30;

impl RawAccessRequests {
    fn build(self, report: &mut Report<'_>) -> DeadlineParams {
        let mut params = DeadlineParams::default();
        if let Some(names) = self.closed_customary {
            params.customary_closings.clear();
            for name in names {
                match CUSTOMARY_NAMES.iter().find(|(n, _)| *n == name.get_ref()) {
                    Some((_, day)) if params.customary_closings.contains(day) => report.error(
                        name.span(),
                        format!("closed_customary: '{}' is listed twice", name.get_ref()),
                    ),
                    Some((_, day)) => params.customary_closings.push(*day),
                    None => report.error(
                        name.span(),
                        format!(
                            "closed_customary: '{}' is not a customary closing day{}; they are {}",
                            name.get_ref(),
                            did_you_mean(name.get_ref(), CUSTOMARY_NAMES.map(|(n, _)| n)),
                            CUSTOMARY_NAMES.map(|(n, _)| n).join(", ")
                        ),
                    ),
                }
            }
        }
        for day in self.closed_days.unwrap_or_default() {
            let date = match day.get_ref() {
                toml::Value::String(text) => text.parse::<jiff::civil::Date>().ok(),
                toml::Value::Datetime(dt) => dt.to_string().parse::<jiff::civil::Date>().ok(),
                _ => None,
            };
            match date {
                Some(date) => params.extra_closed.push(date),
                None => report.error(
                    day.span(),
                    "closed_days: write each day as a date, e.g. 2027-05-07",
                ),
            }
        }
        params.extra_closed.sort_unstable();
        params.extra_closed.dedup();
        if let Some(days) = self.reminder_days {
            params.reminder_days.clear();
            for day in days {
                match u32::try_from(*day.get_ref()) {
                    Ok(n) if i64::from(n) <= MAX_REMINDER_DAYS => params.reminder_days.push(n),
                    _ => report.error(
                        day.span(),
                        format!(
                            "reminder_days: {} is not a number of working days from 0 (the \
                             deadline itself) to {MAX_REMINDER_DAYS}",
                            day.get_ref()
                        ),
                    ),
                }
            }
            params.reminder_days.sort_unstable_by(|a, b| b.cmp(a));
            params.reminder_days.dedup();
        }
        if let Some(next) = self.gdpr_next_working_day {
            params.gdpr_next_working_day = next;
        }
        params
    }
}

/// `[retention]`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    recordings: Spanned<toml::Value>,
    messages: Spanned<toml::Value>,
    call_records_with_cpr: Spanned<toml::Value>,
    tombstones: Spanned<toml::Value>,
    audit_log: Spanned<toml::Value>,
}

impl RawRetention {
    fn build(self, report: &mut Report<'_>) -> Option<Retention> {
        let mut period = |key: &str, value: &Spanned<toml::Value>| {
            let result = match value.get_ref() {
                toml::Value::String(text) => RetentionPeriod::parse(text),
                toml::Value::Integer(n) => Err(format!(
                    "{n} has no unit; write e.g. \"{n} months\" or \"{n} days\" in quotes"
                )),
                other => Err(format!(
                    "expected a period in quotes like \"3 months\", found {}",
                    other.type_str()
                )),
            };
            result
                .map_err(|e| report.error(value.span(), format!("{key}: {e}")))
                .ok()
        };
        let retention = Retention {
            recordings: period("recordings", &self.recordings)?,
            messages: period("messages", &self.messages)?,
            call_records_with_cpr: period("call_records_with_cpr", &self.call_records_with_cpr)?,
            tombstones: period("tombstones", &self.tombstones)?,
            audit_log: period("audit_log", &self.audit_log)?,
        };
        let three_months = RetentionPeriod { months: 3, days: 0 };
        if retention.recordings != three_months {
            report.warning(
                self.recordings.span(),
                format!(
                    "recordings are kept {} but the recording notice (prompt \
                     'recording-notice') tells callers three months; re-record it to match",
                    retention.recordings
                ),
            );
        }
        Some(retention)
    }
}

/// `[keys]`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    consent: Spanned<toml::Value>,
    withdraw: Spanned<toml::Value>,
}

impl RawKeys {
    fn build(self, report: &mut Report<'_>) -> Option<CallerKeys> {
        let mut key = |name: &str, value: &Spanned<toml::Value>| {
            let text = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                other => other.type_str().to_owned(),
            };
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
                _ => {
                    report.error(
                        value.span(),
                        format!(
                            "{name}: '{text}' is not a key on the phone; write one of \"0\"–\"9\", \
                             \"*\" or \"#\""
                        ),
                    );
                    None
                }
            }
        };
        let consent = key("consent", &self.consent);
        let withdraw = key("withdraw", &self.withdraw);
        let (consent, withdraw) = (consent?, withdraw?);
        if consent == withdraw {
            report.error(
                self.withdraw.span(),
                "withdraw: the withdrawal key must differ from the consent key",
            );
            return None;
        }
        if consent != '1' {
            report.warning(
                self.consent.span(),
                "consent: the flow's consent node and its prompt ('consent-question': \"tryk 1\") \
                 must use the same key; change them too",
            );
        }
        if withdraw != '9' {
            report.warning(
                self.withdraw.span(),
                "withdraw: the prompt 'consent-yes' tells callers \"tryk 9\"; re-record it to \
                 match",
            );
        }
        Some(CallerKeys { consent, withdraw })
    }
}

/// `[roles.<role>]`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    may: Option<Vec<Spanned<String>>>,
    with_agent_consent: Option<Vec<Spanned<String>>>,
}

impl RawRole {
    fn build(self, role: Role, report: &mut Report<'_>) -> Grants {
        let mut grants = Grants::default();
        let mut seen: BTreeMap<Permission, Range<usize>> = BTreeMap::new();
        let mut parse = |name: &Spanned<String>, report: &mut Report<'_>| {
            let Ok(permission) = name.get_ref().parse::<Permission>() else {
                report.error(
                    name.span(),
                    format!(
                        "'{}' is not a permission{}; the permissions are {}",
                        name.get_ref(),
                        did_you_mean(name.get_ref(), Permission::ALL.map(Permission::as_str)),
                        Permission::ALL.map(Permission::as_str).join(", ")
                    ),
                );
                return None;
            };
            if seen.insert(permission, name.span()).is_some() {
                report.error(
                    name.span(),
                    format!("{role}: '{permission}' is listed twice"),
                );
                return None;
            }
            Some(permission)
        };
        for name in self.may.unwrap_or_default() {
            if let Some(p) = parse(&name, report) {
                grants.may.insert(p);
            }
        }
        for name in self.with_agent_consent.unwrap_or_default() {
            let Some(p) = parse(&name, report) else {
                continue;
            };
            if !Permission::CONSENTABLE.contains(&p) {
                report.error(
                    name.span(),
                    format!(
                        "{role}: only listen-others and listen-in can depend on the agent's \
                         consent; put '{p}' under `may` or leave it out"
                    ),
                );
                continue;
            }
            grants.with_agent_consent.insert(p);
        }
        if let Some(span) = seen.get(&Permission::Download) {
            let can_listen = [Permission::ListenOwn, Permission::ListenOthers]
                .iter()
                .any(|p| seen.contains_key(p));
            if !can_listen {
                report.warning(
                    span.clone(),
                    format!(
                        "{role}: 'download' covers only recordings the role may listen to, and \
                         it may listen to none"
                    ),
                );
            }
        }
        grants
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The errors (not warnings) for `text`.
    fn errors(text: &str) -> Vec<String> {
        Policy::parse("policy.toml", text)
            .unwrap_err()
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect()
    }

    /// The shipped file with `from` replaced by `to` (which must occur once).
    fn edited(from: &str, to: &str) -> String {
        assert_eq!(DEFAULT_POLICY_TOML.matches(from).count(), 1, "{from}");
        DEFAULT_POLICY_TOML.replace(from, to)
    }

    /// The line (1-based) of the only occurrence of `needle` in `text`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn the_shipped_file_loads_and_is_the_default() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recordings-policy/policy.toml");
        let loaded = Policy::load(&path).unwrap();
        assert_eq!(loaded, Policy::default());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(Policy::parse("x", DEFAULT_POLICY_TOML).unwrap(), loaded);
    }

    #[test]
    fn access_request_days_are_read_and_checked() {
        // Left out: the defaults.
        let start = DEFAULT_POLICY_TOML.find("[access_requests]").unwrap();
        let without = &DEFAULT_POLICY_TOML[..start];
        assert_eq!(
            Policy::parse("p", without).unwrap().access_requests,
            DeadlineParams::default()
        );

        let text = edited(
            "closed_customary = [\"grundlovsdag\", \"juleaftensdag\", \"nytaarsaftensdag\"]",
            "closed_customary = [\"juleaftensdag\"]",
        )
        .replace(
            "closed_days = []",
            "closed_days = [2027-05-07, \"2027-05-07\", 2026-12-28]",
        )
        .replace("reminder_days = [2, 0]", "reminder_days = [0, 5, 2]")
        .replace(
            "gdpr_next_working_day = false",
            "gdpr_next_working_day = true",
        );
        let p = Policy::parse("p", &text).unwrap();
        let date = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
        assert_eq!(
            p.access_requests,
            DeadlineParams {
                customary_closings: vec![CustomaryClosing::ChristmasEve],
                extra_closed: vec![date("2026-12-28"), date("2027-05-07")],
                gdpr_next_working_day: true,
                reminder_days: vec![5, 2, 0],
            }
        );
        // The closed Friday is no working day; Grundlovsdag now is (a Saturday in 2027, so
        // 2026's Friday 5 June).
        assert!(!p.access_requests.is_working_day(date("2027-05-07")));
        assert!(p.access_requests.is_working_day(date("2026-06-05")));

        // Mistakes point at the value.
        for (from, to, needle, message) in [
            (
                "closed_customary = [\"grundlovsdag\", \"juleaftensdag\", \"nytaarsaftensdag\"]",
                "closed_customary = [\"grundlovdag\"]",
                "grundlovdag",
                "did you mean 'grundlovsdag'",
            ),
            (
                "closed_days = []",
                "closed_days = [\"7 May\"]",
                "7 May",
                "write each day as a date",
            ),
            (
                "reminder_days = [2, 0]",
                "reminder_days = [2, 31]",
                "31",
                "from 0 (the deadline itself) to 30",
            ),
        ] {
            let text = edited(from, to);
            let errs = errors(&text);
            assert_eq!(errs.len(), 1, "{errs:?}");
            let line = line_of(&text, needle);
            assert!(
                errs[0].starts_with(&format!("policy.toml:{line}:")),
                "{errs:?}"
            );
            assert!(errs[0].contains(message), "{errs:?}");
        }
    }

    #[test]
    fn default_rules() {
        let p = Policy::default();
        assert_eq!(p.retention.recordings.to_string(), "3 months");
        assert_eq!(p.retention.tombstones.to_string(), "1 year");
        assert_eq!(p.retention.audit_log.to_string(), "2 years");
        assert_eq!((p.keys.consent, p.keys.withdraw), ('1', '9'));
        use Permission::*;
        // Agents their own recordings; team leaders and coaches others' only with consent.
        assert!(p.allows(Role::Agent, ListenOwn));
        assert!(!p.allows(Role::Agent, ListenOthers));
        assert_eq!(
            p.access(Role::TeamLeader, ListenOthers),
            Access::WithAgentConsent
        );
        assert!(!p.allows(Role::TeamLeader, ListenOthers));
        assert!(p.allows_given(Role::TeamLeader, ListenOthers, true));
        assert!(!p.allows_given(Role::TeamLeader, ListenOthers, false));
        assert_eq!(
            p.access(Role::Coach, ListenOthers),
            Access::WithAgentConsent
        );
        assert!(!p.allows(Role::Coach, Download));
        // Listening in live needs no per-call consent by default.
        assert!(p.allows(Role::TeamLeader, ListenIn));
        assert!(p.allows(Role::Coach, ListenIn));
        assert!(!p.allows(Role::Agent, ListenIn));
        // Records officers handle records; administrators read the audit log, nothing more.
        for perm in [
            Export,
            Hold,
            Erase,
            SearchByCpr,
            AccessRequests,
            ListenOthers,
        ] {
            assert!(p.allows(Role::RecordsOfficer, perm), "{perm}");
        }
        assert!(!p.allows(Role::RecordsOfficer, ReadAudit));
        assert!(p.allows(Role::Administrator, ReadAudit));
        for perm in Permission::ALL {
            assert!(!p.allows(Role::Supervisor, perm), "{perm}");
            assert_eq!(
                p.allows(Role::Administrator, perm),
                perm == ReadAudit,
                "{perm}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert!("boss".parse::<Role>().is_err());
    }

    #[test]
    fn periods() {
        let p = |t: &str| RetentionPeriod::parse(t).map(|p| (p.months(), p.days()));
        assert_eq!(p("3 months"), Ok((3, 0)));
        assert_eq!(p("90 days"), Ok((0, 90)));
        assert_eq!(p("2 years"), Ok((24, 0)));
        assert_eq!(p("1 year 6 months"), Ok((18, 0)));
        assert_eq!(p("1 year, 2 weeks"), Ok((12, 14)));
        assert_eq!(p("1 month"), Ok((1, 0)));
        assert_eq!(p("3mo"), Ok((3, 0)));
        assert_eq!(p("P3M"), Ok((3, 0)));
        for bad in [
            "3 monts",
            "3",
            "tre måneder",
            "",
            "0 days",
            "0 months 0 days",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(p("1 hour")
            .unwrap_err()
            .contains("days, weeks, months or years"));
        assert!(p("3 months 2 hours").is_err());
        assert!(p("-3 months").unwrap_err().contains("negative"));
        assert!(p("3 months ago").unwrap_err().contains("negative"));
        assert!(p("101 years").unwrap_err().contains("100 years"));
        assert_eq!(
            RetentionPeriod::new(14, 3).unwrap().to_string(),
            "1 year 2 months 3 days"
        );
        assert_eq!(RetentionPeriod::new(0, 0), None);
    }

    #[test]
    fn errors_point_at_the_line_and_column() {
        let text = edited("recordings = \"3 months\"", "recordings = \"3 monts\"");
        let line = line_of(&text, "recordings = \"3 monts\"");
        assert_eq!(
            errors(&text),
            [format!(
                "policy.toml:{line}:14: error: recordings: '3 monts' is not a period; write a \
                 number and a unit in quotes, e.g. \"3 months\", \"90 days\" or \"2 years\""
            )]
        );

        let text = edited("tombstones = \"1 year\"", "tombstones = \"0 days\"");
        let e = errors(&text);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(&format!(
                "policy.toml:{}:14: error: tombstones: '0 days' is zero",
                line_of(&text, "tombstones = ")
            )),
            "{e:?}"
        );

        let text = edited("messages = \"3 months\"", "messages = 90");
        assert!(
            errors(&text)[0].contains("90 has no unit"),
            "{:?}",
            errors(&text)
        );

        let text = edited(
            "audit_log = \"2 years\"",
            "audit_log = \"2 years\"\nforever = true",
        );
        let e = errors(&text);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(&format!(
                "policy.toml:{}:1: error: unknown key 'forever'",
                line_of(&text, "forever")
            )),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_roles_and_permissions() {
        let text = edited("[roles.coach]", "[roles.coatch]");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(&format!(
                "policy.toml:{}:8: error: 'coatch' is not a role (did you mean 'coach'?)",
                line_of(&text, "[roles.coatch]")
            )),
            "{e:?}"
        );

        let text = DEFAULT_POLICY_TOML.replacen("\"listen-own\"", "\"listen-onw\"", 1);
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("'listen-onw' is not a permission (did you mean 'listen-own'?)"),
            "{e:?}"
        );
        let line = line_of(&text, "listen-onw");
        let col = text
            .lines()
            .nth(line - 1)
            .unwrap()
            .find("\"listen-onw\"")
            .unwrap()
            + 1;
        assert!(
            e[0].starts_with(&format!("policy.toml:{line}:{col}:")),
            "{e:?}"
        );

        let text = edited(
            "[roles.administrator]\nmay = [\"read-audit\"]",
            "[roles.administrator]\nmay = [\"read-audit\", \"read-audit\"]\nwith_agent_consent = [\"erase\"]",
        );
        let e = errors(&text);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("'read-audit' is listed twice"), "{e:?}");
        assert!(e[1].contains("only listen-others and listen-in"), "{e:?}");
    }

    #[test]
    fn keys_are_checked() {
        let text = edited("withdraw = \"9\"", "withdraw = \"1\"");
        assert!(errors(&text)[0].contains("must differ from the consent key"));
        let text = edited("withdraw = \"9\"", "withdraw = \"99\"");
        assert!(errors(&text)[0].contains("'99' is not a key on the phone"));
        let text = edited("withdraw = \"9\"", "withdraw = \"x\"");
        assert!(errors(&text)[0].contains("'x' is not a key on the phone"));
        // Another withdrawal key loads, with a warning about the prompt.
        let policy = Policy::parse("p", &edited("withdraw = \"9\"", "withdraw = 8")).unwrap();
        assert_eq!(policy.keys.withdraw, '8');
        assert_eq!(policy.warnings.len(), 1);
        assert!(policy.warnings[0]
            .to_string()
            .contains("warning: withdraw: the prompt 'consent-yes'"));
    }

    #[test]
    fn other_retentions_load_with_a_warning_about_the_notice() {
        let text = edited("recordings = \"3 months\"", "recordings = \"90 days\"");
        let policy = Policy::parse("p", &text).unwrap();
        assert_eq!(
            policy.retention.recordings,
            RetentionPeriod::new(0, 90).unwrap()
        );
        assert_eq!(policy.warnings.len(), 1);
        assert!(policy.warnings[0].message.contains("recording notice"));
    }

    #[test]
    fn a_missing_role_may_do_nothing() {
        let text = edited("[roles.administrator]\nmay = [\"read-audit\"]\n", "");
        let policy = Policy::parse("p", &text).unwrap();
        for perm in Permission::ALL {
            assert_eq!(policy.access(Role::Administrator, perm), Access::Denied);
        }
    }

    #[test]
    fn unreadable_and_broken_files() {
        let e = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
        assert!(e[0]
            .to_string()
            .starts_with("/nonexistent/policy.toml: error: cannot read"));
        let e = errors("[retention\n");
        assert!(e[0].starts_with("policy.toml:1:"), "{e:?}");
        let e = errors("[keys]\nconsent = \"1\"\nwithdraw = \"9\"\n");
        assert!(e[0].contains("missing key 'retention'"), "{e:?}");
    }
}
