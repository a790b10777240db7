//! The Danish public-holiday calendar, used by the opening-hours engine to close the lines.
//!
//! [`Holiday`] lists the statutory public holidays (helligdage); [`CustomaryClosing`] lists the
//! days that are not holidays but on which public offices customarily close, so operators can
//! opt in to them. All dates are in the proleptic Gregorian calendar.
//!
//! The functions taking a year accept any year jiff can represent (-9999..=9999) and panic
//! outside that range; a year taken from a [`Date`] is always in range.

use core::fmt;

use jiff::civil::Date;
use jiff::ToSpan;

/// The first year without Store bededag (abolished by law from 2024).
const GREAT_PRAYER_DAY_ABOLISHED: i16 = 2024;

/// Builds a date that is valid in every year jiff supports (fixed month/day pairs).
///
/// # Panics
/// If `year` is outside jiff's range -9999..=9999.
fn fixed(year: i16, month: i8, day: i8) -> Date {
    // Invariant: callers pass month/day pairs that exist in every year; only the year can fail.
    Date::new(year, month, day).expect("year within jiff's supported range -9999..=9999")
}

/// Easter Sunday of `year`, by the anonymous Gregorian algorithm; the movable feasts hang on it.
///
/// # Panics
/// If `year` is outside jiff's range -9999..=9999.
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let month = (h + l - 7 * m + 114).div_euclid(31);
    let day = (h + l - 7 * m + 114).rem_euclid(31) + 1;
    // Invariant: the algorithm yields March 22 ..= April 25, so both fit in i8.
    let month = i8::try_from(month).expect("Easter month is 3 or 4");
    let day = i8::try_from(day).expect("Easter day is 1..=31");
    fixed(year, month, day)
}

/// Adds `days` to Easter Sunday; the offsets used here stay within the same year.
fn easter_plus(year: i16, days: i32) -> Date {
    // Invariant: Easter is March 22 ..= April 25 and offsets are -3 ..= 50, so the result lies
    // within the same (representable) year.
    easter_sunday(year)
        .checked_add(days.days())
        .expect("Easter offset stays within the year")
}

/// A Danish statutory public holiday, on which the lines are closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Holiday {
    /// 1 January.
    NewYearsDay,
    /// Thursday before Easter (Easter − 3 days).
    MaundyThursday,
    /// Friday before Easter (Easter − 2 days).
    GoodFriday,
    /// Easter Sunday itself.
    EasterSunday,
    /// Monday after Easter (Easter + 1 day).
    EasterMonday,
    /// The 4th Friday after Easter (Easter + 26 days); only years before 2024, when it was abolished.
    GreatPrayerDay,
    /// Ascension Day (Easter + 39 days).
    AscensionDay,
    /// Whit Sunday / Pentecost (Easter + 49 days).
    WhitSunday,
    /// Whit Monday (Easter + 50 days).
    WhitMonday,
    /// 25 December.
    ChristmasDay,
    /// 26 December.
    BoxingDay,
}

impl Holiday {
    /// Every holiday, in the order they fall within a year.
    pub const ALL: [Self; 11] = [
        Self::NewYearsDay,
        Self::MaundyThursday,
        Self::GoodFriday,
        Self::EasterSunday,
        Self::EasterMonday,
        Self::GreatPrayerDay,
        Self::AscensionDay,
        Self::WhitSunday,
        Self::WhitMonday,
        Self::ChristmasDay,
        Self::BoxingDay,
    ];

    /// The Danish name, as callers and operators know the day (e.g. "2. påskedag").
    pub fn danish_name(self) -> &'static str {
        match self {
            Self::NewYearsDay => "Nytårsdag",
            Self::MaundyThursday => "Skærtorsdag",
            Self::GoodFriday => "Langfredag",
            Self::EasterSunday => "Påskedag",
            Self::EasterMonday => "2. påskedag",
            Self::GreatPrayerDay => "Store bededag",
            Self::AscensionDay => "Kristi himmelfartsdag",
            Self::WhitSunday => "Pinsedag",
            Self::WhitMonday => "2. pinsedag",
            Self::ChristmasDay => "Juledag",
            Self::BoxingDay => "2. juledag",
        }
    }

    /// The date of this holiday in `year`, or `None` if it is not a holiday that year.
    ///
    /// # Panics
    /// If `year` is outside jiff's range -9999..=9999.
    pub fn date_in(self, year: i16) -> Option<Date> {
        Some(match self {
            Self::NewYearsDay => fixed(year, 1, 1),
            Self::MaundyThursday => easter_plus(year, -3),
            Self::GoodFriday => easter_plus(year, -2),
            Self::EasterSunday => easter_sunday(year),
            Self::EasterMonday => easter_plus(year, 1),
            Self::GreatPrayerDay if year >= GREAT_PRAYER_DAY_ABOLISHED => return None,
            Self::GreatPrayerDay => easter_plus(year, 26),
            Self::AscensionDay => easter_plus(year, 39),
            Self::WhitSunday => easter_plus(year, 49),
            Self::WhitMonday => easter_plus(year, 50),
            Self::ChristmasDay => fixed(year, 12, 25),
            Self::BoxingDay => fixed(year, 12, 26),
        })
    }
}

impl fmt::Display for Holiday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.danish_name())
    }
}

/// All statutory public holidays of `year`, in date order; the lines are closed on each.
///
/// # Panics
/// If `year` is outside jiff's range -9999..=9999.
pub fn holidays(year: i16) -> Vec<(Date, Holiday)> {
    Holiday::ALL
        .iter()
        .filter_map(|&h| h.date_in(year).map(|d| (d, h)))
        .collect()
}

/// The statutory public holiday falling on `date`, if any.
pub fn holiday_on(date: Date) -> Option<Holiday> {
    Holiday::ALL
        .iter()
        .copied()
        .find(|h| h.date_in(date.year()) == Some(date))
}

/// A day that is not a statutory holiday but on which public offices customarily close;
/// operators choose which of these close the lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CustomaryClosing {
    /// Constitution Day, 5 June (offices often close at noon or all day).
    ConstitutionDay,
    /// Christmas Eve, 24 December.
    ChristmasEve,
    /// New Year's Eve, 31 December.
    NewYearsEve,
}

impl CustomaryClosing {
    /// Every customary closing day, in the order they fall within a year.
    pub const ALL: [Self; 3] = [Self::ConstitutionDay, Self::ChristmasEve, Self::NewYearsEve];

    /// The Danish name, as operators know the day (e.g. "Grundlovsdag").
    pub fn danish_name(self) -> &'static str {
        match self {
            Self::ConstitutionDay => "Grundlovsdag",
            Self::ChristmasEve => "Juleaftensdag",
            Self::NewYearsEve => "Nytårsaftensdag",
        }
    }

    /// The date of this day in `year` (they are all fixed dates).
    ///
    /// # Panics
    /// If `year` is outside jiff's range -9999..=9999.
    pub fn date_in(self, year: i16) -> Date {
        match self {
            Self::ConstitutionDay => fixed(year, 6, 5),
            Self::ChristmasEve => fixed(year, 12, 24),
            Self::NewYearsEve => fixed(year, 12, 31),
        }
    }
}

impl fmt::Display for CustomaryClosing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.danish_name())
    }
}

/// All customary closing days of `year`, in date order, for operators to opt in to.
///
/// # Panics
/// If `year` is outside jiff's range -9999..=9999.
pub fn customary_closings(year: i16) -> Vec<(Date, CustomaryClosing)> {
    CustomaryClosing::ALL
        .iter()
        .map(|&c| (c.date_in(year), c))
        .collect()
}

/// The customary closing day falling on `date`, if any.
pub fn customary_closing_on(date: Date) -> Option<CustomaryClosing> {
    CustomaryClosing::ALL
        .iter()
        .copied()
        .find(|c| c.date_in(date.year()) == date)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jiff::civil::{date, Weekday};

    #[test]
    fn easter_known_years() {
        assert_eq!(easter_sunday(2024), date(2024, 3, 31));
        assert_eq!(easter_sunday(2025), date(2025, 4, 20));
        assert_eq!(easter_sunday(2026), date(2026, 4, 5));
        assert_eq!(easter_sunday(2027), date(2027, 3, 28));
        assert_eq!(easter_sunday(2030), date(2030, 4, 21));
        // Extremes of the range (earliest 22 March, latest 25 April).
        assert_eq!(easter_sunday(2285), date(2285, 3, 22));
        assert_eq!(easter_sunday(2038), date(2038, 4, 25));
    }

    #[test]
    fn easter_is_a_sunday_in_every_year() {
        for year in 1583..=2600 {
            let e = easter_sunday(year);
            assert_eq!(e.weekday(), Weekday::Sunday, "{year}");
            assert!(e >= date(year, 3, 22) && e <= date(year, 4, 25), "{year}");
        }
    }

    #[test]
    fn easter_at_range_edges_does_not_panic() {
        let _ = holidays(-9999);
        let _ = holidays(9999);
        let _ = customary_closings(9999);
    }

    #[test]
    fn holidays_2026() {
        assert_eq!(
            holidays(2026),
            vec![
                (date(2026, 1, 1), Holiday::NewYearsDay),
                (date(2026, 4, 2), Holiday::MaundyThursday),
                (date(2026, 4, 3), Holiday::GoodFriday),
                (date(2026, 4, 5), Holiday::EasterSunday),
                (date(2026, 4, 6), Holiday::EasterMonday),
                (date(2026, 5, 14), Holiday::AscensionDay),
                (date(2026, 5, 24), Holiday::WhitSunday),
                (date(2026, 5, 25), Holiday::WhitMonday),
                (date(2026, 12, 25), Holiday::ChristmasDay),
                (date(2026, 12, 26), Holiday::BoxingDay),
            ]
        );
    }

    #[test]
    fn great_prayer_day_until_2023() {
        let h2023 = holidays(2023);
        assert!(h2023.contains(&(date(2023, 5, 5), Holiday::GreatPrayerDay)));
        assert_eq!(h2023.len(), 11);
        assert_eq!(date(2023, 5, 5).weekday(), Weekday::Friday);
        assert_eq!(holiday_on(date(2023, 5, 5)), Some(Holiday::GreatPrayerDay));

        let h2024 = holidays(2024);
        assert!(h2024.iter().all(|&(_, h)| h != Holiday::GreatPrayerDay));
        assert_eq!(h2024.len(), 10);
        // Easter 2024 + 26 days = 26 April 2024, an ordinary Friday now.
        assert_eq!(holiday_on(date(2024, 4, 26)), None);
        assert_eq!(Holiday::GreatPrayerDay.date_in(2024), None);
    }

    #[test]
    fn holidays_are_sorted_and_weekdays_right() {
        for year in [1999, 2023, 2024, 2025, 2026, 2038, 2285] {
            let list = holidays(year);
            assert!(list.windows(2).all(|w| w[0].0 < w[1].0), "{year}");
            for (d, h) in list {
                let expect = match h {
                    Holiday::MaundyThursday | Holiday::AscensionDay => Some(Weekday::Thursday),
                    Holiday::GoodFriday | Holiday::GreatPrayerDay => Some(Weekday::Friday),
                    Holiday::EasterSunday | Holiday::WhitSunday => Some(Weekday::Sunday),
                    Holiday::EasterMonday | Holiday::WhitMonday => Some(Weekday::Monday),
                    _ => None,
                };
                if let Some(w) = expect {
                    assert_eq!(d.weekday(), w, "{year} {h:?}");
                }
            }
        }
    }

    #[test]
    fn holiday_on_dates() {
        assert_eq!(holiday_on(date(2026, 1, 1)), Some(Holiday::NewYearsDay));
        assert_eq!(holiday_on(date(2026, 4, 6)), Some(Holiday::EasterMonday));
        assert_eq!(holiday_on(date(2026, 12, 26)), Some(Holiday::BoxingDay));
        assert_eq!(holiday_on(date(2026, 12, 24)), None);
        assert_eq!(holiday_on(date(2026, 6, 5)), None);
        assert_eq!(holiday_on(date(2026, 4, 7)), None);
    }

    #[test]
    fn danish_names() {
        let names: Vec<_> = Holiday::ALL.iter().map(|h| h.danish_name()).collect();
        assert_eq!(
            names,
            [
                "Nytårsdag",
                "Skærtorsdag",
                "Langfredag",
                "Påskedag",
                "2. påskedag",
                "Store bededag",
                "Kristi himmelfartsdag",
                "Pinsedag",
                "2. pinsedag",
                "Juledag",
                "2. juledag",
            ]
        );
        assert_eq!(Holiday::WhitMonday.to_string(), "2. pinsedag");
        assert_eq!(
            CustomaryClosing::ConstitutionDay.to_string(),
            "Grundlovsdag"
        );
    }

    #[test]
    fn customary_closings_2026() {
        assert_eq!(
            customary_closings(2026),
            vec![
                (date(2026, 6, 5), CustomaryClosing::ConstitutionDay),
                (date(2026, 12, 24), CustomaryClosing::ChristmasEve),
                (date(2026, 12, 31), CustomaryClosing::NewYearsEve),
            ]
        );
        assert_eq!(
            customary_closing_on(date(2026, 12, 24)),
            Some(CustomaryClosing::ChristmasEve)
        );
        assert_eq!(customary_closing_on(date(2026, 12, 25)), None);
        // None of them is a statutory holiday.
        for (d, _) in customary_closings(2026) {
            assert_eq!(holiday_on(d), None);
        }
    }
}
