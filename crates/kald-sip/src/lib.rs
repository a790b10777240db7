//! SIP for kald: a zero-copy message layer, RFC 3261/6026 transactions, dialogs, digest
//! authentication and the endpoint that ties them together.
//!
//! This crate does no I/O and reads no clock: it is a set of state machines that take inputs
//! (a datagram, the current time) and return outputs (datagrams to send, events for the call
//! handling, the next wake-up). The tokio driver lives in the `kald` binary.
//!
//! ```text
//! endpoint.handle_input(now, input);               // feed what happened
//! while let Some(out) = endpoint.poll_output() {}  // do what it asks, until it says nothing
//! endpoint.poll_timeout()                          // when to call handle_timeout(now) next
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod build;
pub mod endpoint;
pub mod error;
pub mod framing;
pub mod message;
pub mod transaction;

pub use error::{ParseError, ParseErrorKind};
pub use message::{Header, HeaderName, Headers, Message, Method, StartLine};
