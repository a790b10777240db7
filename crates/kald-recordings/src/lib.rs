//! Recordings in kald: the encrypted file format, the operators' policy, and the retention
//! decisions — the legal core of the product (`../shared/domain.md`, "Recordings").
//!
//! - [`keys`]: [`RecordingKeys`], the key file recordings are sealed with (owner-only,
//!   rotation, redacted `Debug`, wiped on drop).
//! - [`format`](mod@format): [`ChunkWriter`] seals stereo PCM (citizen left, agent right) with
//!   XChaCha20-Poly1305 one second at a time, so a crash loses at most the last second;
//!   [`ChunkReader`] authenticates every chunk and tells a complete file from a truncated one;
//!   [`export_wav`] / [`export_wav_muted`] write the standard WAV that is played or released;
//!   [`reencrypt`] retires old keys and repairs crashed files.
//! - [`policy`]: `recordings-policy/policy.toml` — retention periods, the consent and
//!   withdrawal keys, and what each [`Role`] may do — checked with `file:line:col`
//!   [`Diagnostic`]s.
//! - [`access`]: access requests (aktindsigt, GDPR art. 15): deadlines in working days or
//!   months, reminders, review decisions per item ([`access::Decision`]) and the archive's index.
//! - [`journal`]: a linked recording as a document for the case system — the JSON
//!   [`Manifest`], the document's name (no CPR number) and the [`RetrySchedule`] of deliveries.
//! - [`retention`]: [`sweep`] decides, for a pinned time, what to delete, what to keep despite
//!   its deadline (holds, recordings waiting for the journal), and which tombstones to purge.
//!
//! This crate decides; `kald-store` and the `kald` drivers carry the decisions out. It owns no
//! socket, runs no async runtime, and never reads the clock: the current time is an input
//! (`jiff::Zoned` in Europe/Copenhagen). Recording files are read and written only through the
//! `std::io` traits the caller passes, with nonces the caller draws. The exception is
//! [`keys`], which reads and writes the key file and draws new keys from the operating system,
//! as `kald_core::protect` does for CPR keys.
//!
//! # Designed for records management (issue 9)
//!
//! Journal links that block deletion until exported are [`JournalState`] on each
//! [`CatalogueItem`]; access requests place holds ([`CatalogueItem::holds`]) and release audio
//! with parts muted ([`export_wav_muted`]); the policy's permissions name the actions the audit
//! trail records (listen, download, export, hold, erase, CPR search, access requests), and its
//! retention covers the audit log.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod diag;
pub mod format;
pub mod journal;
pub mod keys;
pub mod policy;
pub mod retention;

pub use access::{
    index_text, AccessError, AccessRequest, AccessRequestId, DeadlineParams, DecisionError,
    Extension, FoundItem, FoundKind, Law, MissingDecision, Reminder, ReminderKind, RequestState,
};
pub use diag::{Diagnostic, Severity};
pub use format::{
    export_wav, export_wav_muted, reencrypt, wav_size, ChunkReader, ChunkWriter, Ending,
    ExportInfo, Finished, FormatError, Header, Reencrypted, WavStream,
};
pub use journal::{DocumentFacts, Manifest, RetrySchedule};
pub use keys::{KeyError, RecordingKeys};
pub use policy::{
    Access, CallerKeys, Permission, Policy, Retention, RetentionPeriod, Role, UnknownName,
    DEFAULT_POLICY_TOML,
};
pub use retention::{
    decide, sweep, CatalogueItem, Decision, DeleteReason, ItemId, ItemKind, JournalState,
    KeepReason,
};
