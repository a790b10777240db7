//! IVR flows for kald: the TOML flow format operators edit, its checker, and the interpreter
//! that runs one call through a flow.
//!
//! This crate does no I/O on calls and reads no clock: the [`Interpreter`] is a sans-IO state
//! machine (events in, actions out, timers as instants) and wall time arrives as a
//! [`jiff::Zoned`] with each event. Only the loaders read files (the flow files and the
//! names of the prompt files).
//!
//! # Flow files
//! One TOML file per entry point (`ivr-flows/hovednummer.toml` is the `hovednummer` entry
//! point): `start` names the first node, `[nodes.<id>]` tables have a `kind` and its options,
//! an optional `[calendar]` holds the opening hours, and `transfer_allowlist` lists the only
//! numbers a `transfer` node may dial. See [`manual`] for every kind and option.
//!
//! # Run loop
//! ```text
//! let mut call = Interpreter::new(Arc::clone(flows.get("hovednummer")?));
//! call.handle(now, &wall, Input::Answered);          // and every later event
//! while let Some(action) = call.poll_action() { … }  // play, enqueue, transfer, hang up
//! call.poll_timeout()                                // then handle_timeout(now, &wall)
//! call.outcome()                                     // path, consent, CPR, topic, queue
//! ```
//!
//! # Personal data
//! A CPR number typed by a caller is only ever held as a [`kald_core::Cpr`] (redacted in
//! `Debug`/`Display`); the digits being typed are hidden from the interpreter's `Debug`, and a
//! read-back of them is a [`Action::Play`] marked `sensitive`, whose `Debug` hides the prompt
//! names. No diagnostic, error or `Debug` output of this crate contains a CPR number.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod diag;
mod flow;
mod graph;
mod hours;
mod interp;
mod load;
pub mod manual;
mod raw;
mod simulate;

pub use diag::{Diagnostic, Severity};
pub use flow::{Flow, FlowSet};
pub use graph::graph;
pub use hours::Opening;
pub use interp::{Action, Consent, EndedBy, Input, Interpreter, Outcome};
pub use load::{
    check, check_with, load_dir, load_dir_with, load_file, load_file_with, load_str, load_str_with,
    LoadOptions, PromptDir, PROMPT_EXTENSIONS,
};
pub use simulate::{simulate, PromptTexts, SimOptions, Transcript};
