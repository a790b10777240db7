//! Shared core types for kald, the SIP/IVR server behind a Danish municipality's main number.
//!
//! - [`cpr`]: validated CPR numbers that redact themselves in `Debug`/`Display`.
//! - [`protect`]: CPR numbers at rest: sealed with XChaCha20-Poly1305 and found by a keyed hash.
//! - [`calendar`]: Danish public holidays and customary closing days.
//! - [`id`]: opaque call ids for tracing and the agent teams ([`Topic`]).
//!
//! This crate does no network I/O and never reads the clock: anything time-dependent takes the
//! current time or date as a parameter, so it is deterministic and easy to test. The one
//! exception to "no OS resources" is [`protect`]: it draws nonces and new keys from the
//! operating system's random source and reads and writes the key file.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod calendar;
pub mod cpr;
pub mod diag;
pub mod id;
pub mod keyfile;
pub mod protect;

pub use calendar::{
    customary_closing_on, customary_closings, easter_sunday, holiday_on, holidays,
    CustomaryClosing, Holiday,
};
pub use cpr::{Cpr, CprError, Sex};
pub use id::{CallId, Topic, TopicError};
pub use protect::{CprKeys, KeyError, ProtectError};
