//! The server's wall clock: Europe/Copenhagen, real or pinned with `--now` for tests and
//! demos (from the pinned instant, time then runs on).

use std::time::Instant;

use anyhow::Context;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// Wall time for decisions such as opening hours.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    tz: TimeZone,
    pinned: Option<(Timestamp, Instant)>,
}

impl Clock {
    /// The real clock, or one pinned to `now` (`2026-11-23T09:15`, `2026-11-23T09:15:00+01:00`
    /// or any RFC 9557 timestamp such as `2026-11-23T09:15[Europe/Copenhagen]`).
    pub(crate) fn new(now: Option<&str>) -> anyhow::Result<Self> {
        let tz = jiff::tz::db()
            .get("Europe/Copenhagen")
            .context("no Europe/Copenhagen time zone")?;
        let pinned = match now {
            None => None,
            Some(text) => Some((parse(text, &tz)?, Instant::now())),
        };
        Ok(Self { tz, pinned })
    }

    /// The current wall time in Copenhagen.
    pub(crate) fn now(&self) -> Zoned {
        let ts = match self.pinned {
            None => Timestamp::now(),
            Some((start, at)) => {
                let elapsed = jiff::SignedDuration::try_from(at.elapsed())
                    .unwrap_or(jiff::SignedDuration::ZERO);
                start.checked_add(elapsed).unwrap_or(start)
            }
        };
        ts.to_zoned(self.tz.clone())
    }

    /// Whether the clock is pinned (for the start-up log).
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }
}

fn parse(text: &str, tz: &TimeZone) -> anyhow::Result<Timestamp> {
    if let Ok(z) = text.parse::<Zoned>() {
        return Ok(z.timestamp());
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let dt: DateTime = text.parse().with_context(|| {
        format!("--now {text}: expected e.g. 2026-11-23T09:15 or 2026-11-23T09:15:00+01:00")
    })?;
    Ok(dt.to_zoned(tz.clone())?.timestamp())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pinned_forms_agree_and_run_on() {
        for text in [
            "2026-11-23T09:15",
            "2026-11-23T09:15:00+01:00",
            "2026-11-23T08:15:00Z",
            "2026-11-23T09:15[Europe/Copenhagen]",
        ] {
            let c = Clock::new(Some(text)).unwrap();
            let z = c.now();
            assert_eq!((z.hour(), z.minute()), (9, 15), "{text}");
            assert_eq!(z.time_zone().iana_name(), Some("Europe/Copenhagen"));
        }
        // Summer time: 09:00 local is 07:00 UTC.
        let c = Clock::new(Some("2026-06-01T09:00")).unwrap();
        assert_eq!(c.now().timestamp().to_string().get(11..13), Some("07"));
        assert!(Clock::new(Some("yesterday")).is_err());
    }
}
