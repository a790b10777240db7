//! Opening hours: weekly hours with named modes, Danish public holidays, operator-added closed
//! days and special hours, all in the calendar's time zone (Europe/Copenhagen by default).
//!
//! The order of precedence on a date is: special hours for that date, then an operator-added
//! closed day, then a public holiday (from [`kald_core::calendar`]), then a customary closing day
//! the operators opted in to (`also_closed`), then the weekly hours.

use core::fmt;
use core::ops::Range;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Zoned;
use kald_core::calendar::{customary_closing_on, holiday_on, CustomaryClosing};
use serde::Deserialize;
use toml::Spanned;

use crate::diag::Report;

/// The time zone used when a calendar names none.
pub(crate) const DEFAULT_TIME_ZONE: &str = "Europe/Copenhagen";
/// The mode of a period that names none.
pub(crate) const DEFAULT_MODE: &str = "open";
/// Branch names an `hours` node may use besides the modes.
pub(crate) const CLOSED: &str = "closed";
/// Branch for public holidays and closed days; falls back to [`CLOSED`] when a node lacks it.
pub(crate) const HOLIDAY: &str = "holiday";

/// Whether the line is open at a given moment, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opening {
    /// No period covers this moment on an ordinary day.
    Closed,
    /// A public holiday, an opted-in customary closing day or an operator-added closed day.
    Holiday {
        /// The day's name (e.g. "Juledag") or the operator's reason.
        name: String,
    },
    /// Open in the named mode (`open` unless the period names another, e.g. `sick-only`).
    Open {
        /// The mode's name from the calendar.
        mode: String,
    },
}

impl Opening {
    /// The branch an `hours` node takes: the mode's name, `closed` or `holiday`.
    pub fn branch(&self) -> &str {
        match self {
            Self::Closed => CLOSED,
            Self::Holiday { .. } => HOLIDAY,
            Self::Open { mode } => mode,
        }
    }
}

impl fmt::Display for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("closed"),
            Self::Holiday { name } => write!(f, "closed for the day ({name})"),
            Self::Open { mode } => write!(f, "open in mode '{mode}'"),
        }
    }
}

/// One opening period of a day, `[start, end)` in minutes after midnight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Period {
    start: u16,
    end: u16,
    pub(crate) mode: String,
}

/// A validated opening-hours calendar.
#[derive(Clone, Debug)]
pub(crate) struct Calendar {
    tz: TimeZone,
    /// Monday first.
    weekly: [Vec<Period>; 7],
    also_closed: Vec<CustomaryClosing>,
    closed: BTreeMap<Date, String>,
    special: BTreeMap<Date, Vec<Period>>,
    /// Every mode some period uses.
    pub(crate) modes: BTreeSet<String>,
}

impl Calendar {
    /// Whether and how the line is open at `wall` (converted to the calendar's time zone).
    pub(crate) fn opening_at(&self, wall: &Zoned) -> Opening {
        let local = wall.with_time_zone(self.tz.clone());
        let date = local.date();
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        let within = |periods: &[Period]| {
            periods
                .iter()
                .find(|p| p.start <= minute && minute < p.end)
                .map_or(Opening::Closed, |p| Opening::Open {
                    mode: p.mode.clone(),
                })
        };
        if let Some(periods) = self.special.get(&date) {
            return within(periods);
        }
        if let Some(reason) = self.closed.get(&date) {
            return Opening::Holiday {
                name: reason.clone(),
            };
        }
        if let Some(h) = holiday_on(date) {
            return Opening::Holiday {
                name: h.danish_name().to_owned(),
            };
        }
        if let Some(c) = customary_closing_on(date).filter(|c| self.also_closed.contains(c)) {
            return Opening::Holiday {
                name: c.danish_name().to_owned(),
            };
        }
        within(&self.weekly[weekday_index(date.weekday())])
    }
}

fn weekday_index(w: Weekday) -> usize {
    usize::try_from(w.to_monday_zero_offset()).unwrap_or(0)
}

/// `[calendar]` as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalendar {
    time_zone: Option<Spanned<String>>,
    monday: Option<Spanned<Vec<Spanned<String>>>>,
    tuesday: Option<Spanned<Vec<Spanned<String>>>>,
    wednesday: Option<Spanned<Vec<Spanned<String>>>>,
    thursday: Option<Spanned<Vec<Spanned<String>>>>,
    friday: Option<Spanned<Vec<Spanned<String>>>>,
    saturday: Option<Spanned<Vec<Spanned<String>>>>,
    sunday: Option<Spanned<Vec<Spanned<String>>>>,
    also_closed: Option<Vec<Spanned<String>>>,
    closed: Option<Vec<Spanned<RawClosedDay>>>,
    special: Option<Vec<Spanned<RawSpecial>>>,
}

/// `[[calendar.closed]]`: a date the operators close the line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClosedDay {
    date: Spanned<toml::Value>,
    reason: Option<String>,
}

/// `[[calendar.special]]`: hours that replace the usual ones on one date.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpecial {
    date: Spanned<toml::Value>,
    hours: Spanned<Vec<Spanned<String>>>,
    #[allow(dead_code)] // Documentation for the reader of the file; kept for symmetry.
    reason: Option<String>,
}

/// Names operators may use in `also_closed`, English and Danish.
const CUSTOMARY_NAMES: [(&str, CustomaryClosing); 6] = [
    ("christmas-eve", CustomaryClosing::ChristmasEve),
    ("new-years-eve", CustomaryClosing::NewYearsEve),
    ("constitution-day", CustomaryClosing::ConstitutionDay),
    ("juleaftensdag", CustomaryClosing::ChristmasEve),
    ("nytaarsaftensdag", CustomaryClosing::NewYearsEve),
    ("grundlovsdag", CustomaryClosing::ConstitutionDay),
];

impl RawCalendar {
    /// Validates the calendar, reporting every mistake; `None` if there was any.
    pub(crate) fn build(self, report: &mut Report<'_>) -> Option<Calendar> {
        let errors_before = report.len();
        let tz = match &self.time_zone {
            None => TimeZone::get(DEFAULT_TIME_ZONE).ok(),
            Some(name) => {
                let tz = TimeZone::get(name.get_ref()).ok();
                if tz.is_none() {
                    report.error(
                        name.span(),
                        format!(
                            "'{}' is not a time zone I know; write e.g. \"{DEFAULT_TIME_ZONE}\"",
                            name.get_ref()
                        ),
                    );
                }
                tz
            }
        };
        let mut modes = BTreeSet::new();
        let days = [
            ("monday", self.monday),
            ("tuesday", self.tuesday),
            ("wednesday", self.wednesday),
            ("thursday", self.thursday),
            ("friday", self.friday),
            ("saturday", self.saturday),
            ("sunday", self.sunday),
        ];
        let mut weekly: [Vec<Period>; 7] = Default::default();
        for (slot, (day, periods)) in weekly.iter_mut().zip(days) {
            if let Some(periods) = periods {
                *slot = parse_day(day, periods.get_ref(), report, &mut modes);
            }
        }

        let mut also_closed = Vec::new();
        for name in self.also_closed.unwrap_or_default() {
            match CUSTOMARY_NAMES.iter().find(|(n, _)| n == name.get_ref()) {
                Some(&(_, c)) => also_closed.push(c),
                None => report.error(
                    name.span(),
                    format!(
                        "'{}' is not a day I know for also_closed; use christmas-eve, \
                         new-years-eve or constitution-day (public holidays are always closed)",
                        name.get_ref()
                    ),
                ),
            }
        }

        let mut closed: BTreeMap<Date, String> = BTreeMap::new();
        let mut closed_spans: BTreeMap<Date, Range<usize>> = BTreeMap::new();
        for day in self.closed.unwrap_or_default() {
            let day = day.into_inner();
            let span = day.date.span();
            let Some(date) = parse_date(&day.date, report) else {
                continue;
            };
            if closed_spans.contains_key(&date) {
                report.error(span, format!("{date} is listed as a closed day twice"));
                continue;
            }
            closed_spans.insert(date, span);
            closed.insert(date, day.reason.unwrap_or_else(|| "closed day".to_owned()));
        }

        let mut special = BTreeMap::new();
        for day in self.special.unwrap_or_default() {
            let day = day.into_inner();
            let span = day.date.span();
            let Some(date) = parse_date(&day.date, report) else {
                continue;
            };
            let what = format!("special hours on {date}");
            let periods = parse_day(&what, day.hours.get_ref(), report, &mut modes);
            match special.entry(date) {
                Entry::Occupied(_) => {
                    report.error(span, format!("{date} has special hours twice"));
                }
                Entry::Vacant(_) if closed.contains_key(&date) => report.error(
                    span,
                    format!("{date} has special hours but is also listed as a closed day"),
                ),
                Entry::Vacant(slot) => {
                    slot.insert(periods);
                }
            }
        }

        if report.has_errors_since(errors_before) {
            return None;
        }
        Some(Calendar {
            tz: tz?,
            weekly,
            also_closed,
            closed,
            special,
            modes,
        })
    }
}

/// Parses one day's periods (`"08:30-16:00"` or `"08:00-08:30 sick-only"`) and checks order
/// and overlaps.
fn parse_day(
    day: &str,
    periods: &[Spanned<String>],
    report: &mut Report<'_>,
    modes: &mut BTreeSet<String>,
) -> Vec<Period> {
    let mut out: Vec<(Period, Range<usize>, &str)> = Vec::new();
    for text in periods {
        match parse_period(text.get_ref()) {
            Ok(p) => {
                if let Some((_, _, other)) = out
                    .iter()
                    .find(|(q, _, _)| p.start < q.end && q.start < p.end)
                {
                    report.error(
                        text.span(),
                        format!(
                            "'{}' overlaps '{other}' on {day}; a moment can only be in one period",
                            text.get_ref()
                        ),
                    );
                    continue;
                }
                modes.insert(p.mode.clone());
                out.push((p, text.span(), text.get_ref()));
            }
            Err(why) => report.error(text.span(), format!("'{}' {why}", text.get_ref())),
        }
    }
    let mut periods: Vec<Period> = out.into_iter().map(|(p, _, _)| p).collect();
    periods.sort_by_key(|p| p.start);
    periods
}

/// Parses `HH:MM-HH:MM [mode]`; the error completes "'<text>' …".
fn parse_period(text: &str) -> Result<Period, String> {
    const FORMAT: &str = "write a period as \"08:30-16:00\" or \"08:00-08:30 sick-only\"";
    let mut words = text.split_whitespace();
    let range = words.next().ok_or_else(|| format!("is empty; {FORMAT}"))?;
    let mode = words.next().unwrap_or(DEFAULT_MODE);
    if words.next().is_some() {
        return Err(format!("has too many words; {FORMAT}"));
    }
    let (from, to) = range
        .split_once('-')
        .ok_or_else(|| format!("is not a period; {FORMAT}"))?;
    let start = parse_clock(from)
        .ok_or_else(|| format!("has '{from}', which is not a time of day (00:00 to 24:00)"))?;
    let end = parse_clock(to)
        .ok_or_else(|| format!("has '{to}', which is not a time of day (00:00 to 24:00)"))?;
    if end <= start {
        return Err(format!("ends before it starts ({to} is not after {from})"));
    }
    if mode == CLOSED || mode == HOLIDAY {
        return Err(format!(
            "uses '{mode}' as a mode, but that word is reserved; leave the time out to close"
        ));
    }
    if !mode
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "has mode '{mode}'; a mode name uses only a-z, 0-9, '-' and '_'"
        ));
    }
    Ok(Period {
        start,
        end,
        mode: mode.to_owned(),
    })
}

/// `HH:MM` in minutes after midnight; `24:00` is allowed as an end.
fn parse_clock(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// A date written as `2026-12-24` (bare TOML date) or `"2026-12-24"`.
fn parse_date(value: &Spanned<toml::Value>, report: &mut Report<'_>) -> Option<Date> {
    let text = match value.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
        other => {
            report.error(
                value.span(),
                format!("{other} is not a date; write dates as 2026-12-24"),
            );
            return None;
        }
    };
    match text.parse::<Date>() {
        Ok(d) => Some(d),
        Err(_) => {
            report.error(
                value.span(),
                format!("'{text}' is not a date that exists; write dates as 2026-12-24"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jiff::civil::date;

    fn calendar(text: &str) -> Result<Calendar, Vec<String>> {
        let raw: RawCalendar = toml::from_str(text).unwrap();
        let mut report = Report::new("t.toml", text);
        let cal = raw.build(&mut report);
        let out: Vec<String> = report.finish().iter().map(ToString::to_string).collect();
        cal.ok_or(out)
    }

    const JOBCENTER: &str = r#"
monday = ["08:00-08:30 sick-only", "08:30-16:00"]
tuesday = ["08:00-08:30 sick-only", "08:30-16:00"]
wednesday = ["08:00-08:30 sick-only", "08:30-15:00"]
thursday = ["08:00-08:30 sick-only", "08:30-16:00"]
friday = ["08:00-08:30 sick-only", "08:30-15:00"]
also_closed = ["christmas-eve", "new-years-eve", "constitution-day"]
[[closed]]
date = 2026-11-27
reason = "Personaledag"
[[special]]
date = "2026-04-06"
hours = ["10:00-12:00"]
"#;

    fn at(cal: &Calendar, s: &str) -> Opening {
        let z: Zoned = s.parse().unwrap();
        cal.opening_at(&z)
    }

    fn open(mode: &str) -> Opening {
        Opening::Open {
            mode: mode.to_owned(),
        }
    }

    #[test]
    fn weekly_hours_and_modes() {
        let cal = calendar(JOBCENTER).unwrap();
        let cph = "[Europe/Copenhagen]";
        assert_eq!(at(&cal, &format!("2026-11-23T07:59{cph}")), Opening::Closed);
        assert_eq!(
            at(&cal, &format!("2026-11-23T08:00{cph}")),
            open("sick-only")
        );
        assert_eq!(
            at(&cal, &format!("2026-11-23T08:29{cph}")),
            open("sick-only")
        );
        assert_eq!(at(&cal, &format!("2026-11-23T08:30{cph}")), open("open"));
        assert_eq!(at(&cal, &format!("2026-11-23T15:59{cph}")), open("open"));
        assert_eq!(at(&cal, &format!("2026-11-23T16:00{cph}")), Opening::Closed);
        // Wednesday closes at 15:00.
        assert_eq!(at(&cal, &format!("2026-11-25T15:00{cph}")), Opening::Closed);
        // Saturday.
        assert_eq!(at(&cal, &format!("2026-11-28T10:00{cph}")), Opening::Closed);
        assert_eq!(cal.modes.iter().collect::<Vec<_>>(), ["open", "sick-only"]);
    }

    #[test]
    fn holidays_closed_days_and_special_hours() {
        let cal = calendar(JOBCENTER).unwrap();
        let holiday = |s: &str| match at(&cal, s) {
            Opening::Holiday { name } => name,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(holiday("2026-12-25T10:00[Europe/Copenhagen]"), "Juledag");
        assert_eq!(
            holiday("2026-12-24T10:00[Europe/Copenhagen]"),
            "Juleaftensdag"
        );
        assert_eq!(
            holiday("2026-06-05T10:00[Europe/Copenhagen]"),
            "Grundlovsdag"
        );
        assert_eq!(
            holiday("2026-11-27T10:00[Europe/Copenhagen]"),
            "Personaledag"
        );
        // Special hours win over the holiday (2. påskedag 2026).
        assert_eq!(
            at(&cal, "2026-04-06T10:30[Europe/Copenhagen]"),
            open("open")
        );
        assert_eq!(
            at(&cal, "2026-04-06T09:00[Europe/Copenhagen]"),
            Opening::Closed
        );
        // Without special hours 2. påskedag 2027 (29 March) is a holiday.
        assert_eq!(
            holiday("2027-03-29T10:00[Europe/Copenhagen]"),
            "2. påskedag"
        );
    }

    #[test]
    fn converts_to_copenhagen_time_across_dst() {
        let cal = calendar(JOBCENTER).unwrap();
        // 07:00 UTC is 09:00 in summer (CEST) and 08:00 in winter (CET).
        assert_eq!(at(&cal, "2026-03-30T07:00:00+00:00[UTC]"), open("open"));
        assert_eq!(
            at(&cal, "2026-03-27T07:00:00+00:00[UTC]"),
            open("sick-only")
        );
    }

    #[test]
    fn calendar_mistakes() {
        let errs = calendar(
            r#"
monday = ["16:00-08:30", "08:00-09:00", "08:30-10:00 sick-only", "25:00-26:00", "8-9"]
tuesday = ["08:00-09:00 closed"]
also_closed = ["easter"]
[[closed]]
date = 2026-02-30
[[closed]]
date = "2026-12-23"
[[closed]]
date = "2026-12-23"
[[special]]
date = "2026-12-23"
hours = []
"#,
        )
        .unwrap_err();
        let expected = [
            "t.toml:2:11: error: '16:00-08:30' ends before it starts (08:30 is not after 16:00)",
            "t.toml:2:41: error: '08:30-10:00 sick-only' overlaps '08:00-09:00' on monday; a moment can only be in one period",
            "t.toml:2:66: error: '25:00-26:00' has '25:00', which is not a time of day (00:00 to 24:00)",
            "t.toml:2:81: error: '8-9' has '8', which is not a time of day (00:00 to 24:00)",
            "t.toml:3:12: error: '08:00-09:00 closed' uses 'closed' as a mode, but that word is reserved; leave the time out to close",
            "t.toml:4:16: error: 'easter' is not a day I know for also_closed; use christmas-eve, new-years-eve or constitution-day (public holidays are always closed)",
            "t.toml:6:8: error: '2026-02-30' is not a date that exists; write dates as 2026-12-24",
            "t.toml:10:8: error: 2026-12-23 is listed as a closed day twice",
            "t.toml:12:8: error: 2026-12-23 has special hours but is also listed as a closed day",
        ];
        assert_eq!(errs, expected);
    }

    #[test]
    fn clock_parsing() {
        assert_eq!(parse_clock("00:00"), Some(0));
        assert_eq!(parse_clock("8:30"), Some(510));
        assert_eq!(parse_clock("24:00"), Some(1440));
        assert_eq!(parse_clock("24:01"), None);
        assert_eq!(parse_clock("12:60"), None);
        assert_eq!(parse_clock("12:5"), None);
        assert_eq!(parse_clock("x:00"), None);
        assert_eq!(date(2026, 3, 30).weekday(), Weekday::Monday);
    }
}
