//! Identifiers shared across kald: call ids for tracing and the agent teams (topics).

use core::fmt;
use core::str::FromStr;

/// kald's own opaque id for one call, used in tracing spans and logs instead of the SIP Call-ID.
///
/// The SIP Call-ID is chosen by the remote party and may carry anything (even a phone number),
/// so it never goes into logs; this id does. It is shown as `c-` and lower-case hex without
/// zero padding (e.g. `c-2a`), so small ids hold no long digit runs that could look like a
/// CPR number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(u64);

impl CallId {
    /// Wraps a raw value (e.g. from a counter or random source) as a call id.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value, for storage or as a map key.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c-{:x}", self.0)
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hex here too, so `{:?}` in a span never prints a long decimal number.
        write!(f, "CallId({self})")
    }
}

/// A team of agents and the matching menu choice: what the caller is calling about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Unemployment benefit (dagpenge): payments to insured members of an unemployment fund.
    Dagpenge,
    /// Sickness benefit (sygedagpenge), incl. reporting sick; calls may carry health data.
    Sygedagpenge,
    /// Social assistance (kontanthjælp): means-tested support for those without other income.
    Kontanthjaelp,
}

/// Why a string is not a known [`Topic`]; does not echo the input, which could be anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The string is not one of the ASCII topic names.
    #[error("unknown topic (expected one of: dagpenge, sygedagpenge, kontanthjaelp)")]
    Unknown,
}

impl Topic {
    /// Every topic, in menu order.
    pub const ALL: [Self; 3] = [Self::Dagpenge, Self::Sygedagpenge, Self::Kontanthjaelp];

    /// The stable ASCII name used in configuration, metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dagpenge => "dagpenge",
            Self::Sygedagpenge => "sygedagpenge",
            Self::Kontanthjaelp => "kontanthjaelp",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    /// Parses the exact names returned by [`Topic::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(TopicError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn call_id_display_is_hex() {
        assert_eq!(CallId::new(42).to_string(), "c-2a");
        assert_eq!(CallId::new(u64::MAX).to_string(), "c-ffffffffffffffff");
        assert_eq!(format!("{:?}", CallId::new(42)), "CallId(c-2a)");
        assert_eq!(CallId::new(7).get(), 7);
    }

    #[test]
    fn topic_round_trip() {
        for t in Topic::ALL {
            assert_eq!(t.as_str().parse::<Topic>().unwrap(), t);
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(Topic::Kontanthjaelp.as_str(), "kontanthjaelp");
    }

    #[test]
    fn topic_rejects_unknown_without_echo() {
        for bad in ["", "Dagpenge", "kontanthjælp", " dagpenge", "0707614285"] {
            let err = bad.parse::<Topic>().unwrap_err();
            assert_eq!(err, TopicError::Unknown);
        }
        assert!(!format!("{}", TopicError::Unknown).contains("0707"));
    }
}
