//! Shared core types for kald, the SIP/IVR server behind a Danish municipality's main number.
//!
//! - [`cpr`]: validated CPR numbers that redact themselves in `Debug`/`Display`.
//! - [`calendar`]: Danish public holidays and customary closing days.
//! - [`id`]: opaque call ids for tracing and the agent teams ([`Topic`]).
//!
//! This crate does no I/O and never reads the clock: anything time-dependent takes the
//! current time or date as a parameter, so it is deterministic and easy to test.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod calendar;
pub mod cpr;
pub mod id;

pub use calendar::{
    customary_closing_on, customary_closings, easter_sunday, holiday_on, holidays,
    CustomaryClosing, Holiday,
};
pub use cpr::{Cpr, CprError, Sex};
pub use id::{CallId, Topic, TopicError};
