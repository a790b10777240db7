//! Problems found in flow files: the shared diagnostics of `kald-core`.

pub(crate) use kald_core::diag::{did_you_mean, file_error, Report};
pub use kald_core::diag::{Diagnostic, Severity};
