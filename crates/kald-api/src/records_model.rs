//! The JSON shapes of the records routes (recordings, links, grants, search, holds, access
//! requests, audit).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A recording as the records routes show it (no CPR number).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RecordingView {
    /// kald's random id.
    pub id: String,
    /// The call recorded.
    pub call_id: String,
    /// `call` or `message`.
    pub kind: String,
    /// When recording began (RFC 3339).
    pub started: String,
    /// The audio's length in seconds, once closed.
    pub duration_s: Option<f64>,
    /// The agent recorded.
    pub agent: Option<String>,
    /// The queue the call came through.
    pub queue: Option<String>,
    /// The caller's menu choice.
    pub topic: Option<String>,
    /// `recording`, `closed` or `truncated`.
    pub state: String,
    /// `none`, `linked` (to a case, not yet with the case system) or `exported`.
    pub journal: String,
    /// When it is due for deletion (RFC 3339), once closed.
    pub retention_until: Option<String>,
}

/// A grant on one recording (what the agent decided for one team leader or coach).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GrantView {
    /// The recording.
    pub recording_id: String,
    /// The team leader or coach.
    pub grantee: String,
    /// `requested`, `granted`, `refused` or `withdrawn`.
    pub state: String,
    /// Why the grantee asked.
    pub reason: Option<String>,
}

/// One use of a recording, from the audit log (who, when, what, why).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AccessView {
    /// The audit row.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who (login).
    pub actor: String,
    /// In which role.
    pub role: String,
    /// What: listen, download, journalise, …
    pub action: String,
    /// On what.
    pub target: String,
    /// Why.
    pub reason: Option<String>,
}

/// An agent's recording with its grants and who accessed it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MyRecording {
    /// The recording.
    pub recording: RecordingView,
    /// The grants asked for or given on it.
    pub grants: Vec<GrantView>,
    /// Who listened to, downloaded or exported it, and why.
    pub accesses: Vec<AccessView>,
}

/// A team leader's or coach's view of an agent's recording: may they listen now?
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TeamRecording {
    /// The recording.
    pub recording: RecordingView,
    /// This caller's grant: `none`, `requested`, `granted`, `refused` or `withdrawn`.
    pub grant: String,
}

/// The agent's answer to a grantee (POST /api/recordings/{id}/grants).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The team leader's or coach's login.
    pub grantee: String,
    /// `true` grants, `false` refuses.
    pub grant: bool,
}

/// A team leader or coach asks the agent for access, saying why.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenAsk {
    /// Why (shown to the agent and logged).
    pub reason: String,
}

/// A link of a call to the citizen's case.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LinkView {
    /// The link's id.
    pub id: i64,
    /// The call.
    pub call_id: String,
    /// The case/journal number.
    pub case_number: String,
    /// The note.
    pub note: Option<String>,
    /// Who linked.
    pub created_by: String,
    /// When (RFC 3339).
    pub created: String,
    /// Whether it was removed since.
    pub removed: bool,
}

/// Links a call to a case (POST /api/calls/{id}/links).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// The case/journal number; must match the configured pattern.
    pub case_number: String,
    /// An optional note.
    #[serde(default)]
    pub note: Option<String>,
}

/// Enters or corrects the CPR number of a call after verifying the caller.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CprCorrection {
    /// The CPR number, `DDMMYYSSSS` or `DDMMYY-SSSS`.
    pub cpr: String,
    /// How the caller's identity was verified (e.g. "kontrolspørgsmål", "MitID").
    pub verified_by: String,
}

/// Sends a linked recording to the case system (POST /api/recordings/{id}/journalise).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JournaliseRequest {
    /// The link (case) to journalise it under.
    pub link_id: i64,
}

/// One delivery of a recording to the case system.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JournalExportView {
    /// The outbox row.
    pub id: i64,
    /// The case number.
    pub case_number: String,
    /// `folder` or `webhook`.
    pub target: String,
    /// `pending`, `acknowledged` or `cancelled`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The last error, while pending.
    pub last_error: Option<String>,
    /// The case system's receipt.
    pub receipt: Option<String>,
}

/// Why (erasure, hold, lift).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why; logged in the audit log.
    pub reason: String,
}

/// A hold to place (POST /api/holds): exactly one of `recording` and `call`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    /// A recording id.
    #[serde(default)]
    pub recording: Option<String>,
    /// A call id (all its recordings).
    #[serde(default)]
    pub call: Option<String>,
    /// Why (a complaint, a case, …).
    pub reason: String,
}

/// A hold.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HoldView {
    /// Its id.
    pub id: i64,
    /// `recording`, `call` or `citizen`.
    pub scope: String,
    /// The recording or call id (none for a citizen's hold).
    pub target: Option<String>,
    /// Why.
    pub reason: String,
    /// Who placed it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created: String,
    /// Whether it is still active.
    pub active: bool,
}

/// A call found by a search, with its recordings and links (CPR shown to records officers).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FoundCall {
    /// The call.
    pub id: String,
    /// When it came in (RFC 3339).
    pub started: String,
    /// When it ended.
    pub ended: Option<String>,
    /// The caller's number.
    pub caller: Option<String>,
    /// The CPR number on the call, `DDMMYY-SSSS`.
    pub cpr: Option<String>,
    /// Whether an agent entered or corrected the CPR number.
    pub cpr_corrected: bool,
    /// The menu choice.
    pub topic: Option<String>,
    /// The queue.
    pub queue: Option<String>,
    /// The agent who took it.
    pub agent: Option<String>,
    /// The consent answer.
    pub consent: Option<bool>,
    /// How it ended.
    pub outcome: Option<String>,
    /// When the CPR number and the caller's number were removed from the call record at the
    /// end of its retention period (RFC 3339); the rest is kept for statistics.
    pub pii_scrubbed: Option<String>,
    /// Its recordings still held.
    pub recordings: Vec<RecordingView>,
    /// Its case links.
    pub links: Vec<LinkView>,
}

/// Opens an access request (POST /api/access-requests).
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequestBody {
    /// `forvaltningsloven` or `gdpr`.
    pub law: String,
    /// The day received, YYYY-MM-DD (default: today).
    #[serde(default)]
    pub received: Option<String>,
    /// Who asked.
    pub requester: String,
    /// How their identity was verified.
    pub identity_verified_by: String,
    /// The citizen's CPR number.
    pub cpr: String,
}

/// An access request's summary.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AccessRequestView {
    /// Its number.
    pub id: i64,
    /// `forvaltningsloven` or `gdpr`.
    pub law: String,
    /// Received, YYYY-MM-DD.
    pub received: String,
    /// The deadline, YYYY-MM-DD (extended, if so).
    pub deadline: String,
    /// Working days left until the deadline (negative: overdue by that many).
    pub working_days_left: i64,
    /// `due-soon`, `overdue` or none, as of today.
    pub reminder: Option<String>,
    /// Who asked.
    pub requester: String,
    /// How their identity was verified.
    pub identity_verified_by: String,
    /// The citizen's CPR number, `DDMMYY-SSSS`.
    pub cpr: String,
    /// The extension's reason, if extended.
    pub extension_reason: Option<String>,
    /// `open`, `reviewed`, `answered` or `closed`.
    pub state: String,
    /// Items found.
    pub items: usize,
    /// Items decided.
    pub decided: usize,
}

/// One item of an access request with the decision on it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AccessItemView {
    /// `recording`, `message`, `call`, `tombstone` or `audit`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// When it happened (RFC 3339).
    pub at: Option<String>,
    /// Audio length in seconds.
    pub duration_s: Option<f64>,
    /// The agent.
    pub agent: Option<String>,
    /// A short description.
    pub note: Option<String>,
    /// `release`, `withhold`, `release-muted`, or none yet.
    pub decision: Option<String>,
    /// A withhold's legal reason.
    pub legal_reason: Option<String>,
    /// Muted ranges in seconds from the audio's start.
    pub muted: Vec<[f64; 2]>,
    /// Who decided.
    pub decided_by: Option<String>,
}

/// An access request with its items.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AccessRequestDetail {
    /// The request.
    pub request: AccessRequestView,
    /// What it found, with decisions.
    pub items: Vec<AccessItemView>,
}

/// A decision on one item (PUT /api/access-requests/{id}/items/{kind}/{item}).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `release`, `withhold` or `release-muted`.
    pub decision: String,
    /// The legal reason for `withhold`.
    #[serde(default)]
    pub legal_reason: Option<String>,
    /// For `release-muted`: `[start_s, end_s]` ranges from the audio's start.
    #[serde(default)]
    pub muted: Vec<[f64; 2]>,
}

/// An item to add to an access request (found by other keys).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// `call`, `recording` or `message`.
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// Extends an access request's deadline.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// The new deadline, YYYY-MM-DD.
    pub until: String,
    /// Why, as told to the requester.
    pub reason: String,
}

/// The audit chain's state (GET /api/audit/verify).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditCheck {
    /// Whether every link holds.
    pub intact: bool,
    /// Rows checked (up to the break).
    pub entries: u64,
    /// Where it breaks, and why.
    pub broken_at: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
    /// The newest row's hash, hex (keep it elsewhere to detect removal of the newest rows).
    pub head: Option<String>,
}
