//! The rows the store reads and writes, and their raw database forms.

use std::fmt;

use jiff::Timestamp;
use kald_core::{Cpr, CprKeys};

use crate::{timestamp, StoreError};

/// An agent: login id, the name shown on wallboards, and skills as (queue, level) pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRow {
    /// The agent's login id (also their SIP user).
    pub id: String,
    /// The name shown to team leaders and on the wallboard.
    pub display_name: String,
    /// The queues the agent serves and how well (higher is better), ordered by queue on read.
    pub skills: Vec<(String, u8)>,
}

/// An agent's last saved state, to restore after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentStateRow {
    /// The agent's login id.
    pub agent: String,
    /// The state, as the ACD names it (e.g. "available", "paused", "logged_out").
    pub state: String,
    /// Why, for states that have a reason (e.g. a pause reason).
    pub reason: Option<String>,
    /// Since when the agent has been in this state.
    pub since: Timestamp,
}

/// One step of a queued call, like a line of Asterisk's `queue_log`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueEventRow {
    /// When it happened (stored to the microsecond).
    pub at: Timestamp,
    /// kald's opaque call id (empty for agent-only events such as LOGIN).
    pub call_id: String,
    /// The queue, when the event belongs to one.
    pub queue: Option<String>,
    /// The agent, when the event involves one.
    pub agent: Option<String>,
    /// The event name: ENTER, RING, RINGNOANSWER, ANSWER, ABANDON, TRANSFER, END, WRAPUP,
    /// WRAPUPEND, PAUSE, UNPAUSE, LOGIN, LOGOUT, MAXWAIT, …
    pub event: String,
    /// Event details as JSON (wait_ms, topic, reason, …); never personal data.
    pub data: serde_json::Value,
}

/// A queue event as stored, with its id (ids grow in append order).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredQueueEvent {
    /// The event's id.
    pub id: i64,
    /// The event.
    pub row: QueueEventRow,
}

/// A call as recorded when it arrives and as the IVR learns about it.
///
/// `Debug` redacts the caller's number; the CPR number redacts itself.
#[derive(Clone, PartialEq, Eq)]
pub struct CallRow {
    /// kald's opaque call id.
    pub id: String,
    /// When the call arrived (stored to the microsecond).
    pub started: Timestamp,
    /// The caller's phone number, when presented (personal data).
    pub caller: Option<String>,
    /// The number or entry the call came in on.
    pub entry_point: String,
    /// The version of the IVR flow that handled the call.
    pub flow_version: Option<String>,
    /// Whether the caller consented to recording (`None`: not asked yet).
    pub consent: Option<bool>,
    /// When consent was last given or withdrawn.
    pub consent_at: Option<Timestamp>,
    /// The caller's menu choice.
    pub topic: Option<String>,
    /// The queue the call was sent to.
    pub queue: Option<String>,
    /// The CPR number the caller typed in; stored sealed, with a keyed look-up hash.
    pub cpr: Option<Cpr>,
}

impl fmt::Debug for CallRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRow")
            .field("id", &self.id)
            .field("started", &self.started)
            .field("caller", &self.caller.as_ref().map(|_| "<redacted>"))
            .field("entry_point", &self.entry_point)
            .field("flow_version", &self.flow_version)
            .field("consent", &self.consent)
            .field("consent_at", &self.consent_at)
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .field("cpr", &self.cpr)
            .finish()
    }
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEnd {
    /// When the call ended (stored to the microsecond).
    pub ended: Timestamp,
    /// The outcome, e.g. "answered", "abandoned", "closed", "message".
    pub outcome: String,
    /// The agent who answered, if any.
    pub agent: Option<String>,
    /// Whether the call was transferred onwards.
    pub transferred: bool,
}

/// A stored call: what was known while it ran, and how it ended once it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The call as inserted and updated.
    pub call: CallRow,
    /// How it ended; `None` while it is still running.
    pub end: Option<CallEnd>,
    /// When the caller withdrew recording consent during the call (the consent answer stays).
    pub consent_withdrawn: Option<Timestamp>,
    /// Who entered or corrected the CPR number after verifying the caller, and when.
    pub cpr_corrected: Option<(String, Timestamp)>,
    /// When the retention sweeper removed the CPR number and the caller's number from this
    /// record (`call_records_with_cpr` ran out); the anonymous rest stays for statistics.
    pub pii_scrubbed: Option<Timestamp>,
}

/// `agents` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawAgent {
    /// See [`AgentRow::id`].
    id: String,
    /// See [`AgentRow::display_name`].
    display_name: String,
}

/// `agent_skills` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawSkill {
    /// The agent's id.
    agent_id: String,
    /// The queue.
    queue: String,
    /// The level, 0..=255 by a CHECK constraint.
    level: i64,
}

/// Joins agents with their skills; both lists are sorted by agent id.
pub(crate) fn agents_with_skills(
    agents: Vec<RawAgent>,
    skills: Vec<RawSkill>,
) -> Result<Vec<AgentRow>, StoreError> {
    let mut skills = skills.into_iter().peekable();
    let mut out = Vec::with_capacity(agents.len());
    for agent in agents {
        let mut row = AgentRow {
            id: agent.id,
            display_name: agent.display_name,
            skills: vec![],
        };
        // Skills of agents sorted before this one cannot exist (foreign key); skip defensively.
        while skills.peek().is_some_and(|s| s.agent_id < row.id) {
            skills.next();
        }
        while let Some(skill) = skills.next_if(|s| s.agent_id == row.id) {
            let level = u8::try_from(skill.level).map_err(|_| StoreError::Corrupt {
                what: "skill level",
                reason: "not in 0..=255",
            })?;
            row.skills.push((skill.queue, level));
        }
        out.push(row);
    }
    Ok(out)
}

/// `agent_states` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawAgentState {
    /// See [`AgentStateRow::agent`].
    agent_id: String,
    /// See [`AgentStateRow::state`].
    state: String,
    /// See [`AgentStateRow::reason`].
    reason: Option<String>,
    /// See [`AgentStateRow::since`].
    since_us: i64,
}

impl RawAgentState {
    /// The public row.
    pub(crate) fn into_row(self) -> Result<AgentStateRow, StoreError> {
        Ok(AgentStateRow {
            agent: self.agent_id,
            state: self.state,
            reason: self.reason,
            since: timestamp(self.since_us, "agent state time")?,
        })
    }
}

/// `queue_events` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawQueueEvent {
    /// See [`StoredQueueEvent::id`].
    id: i64,
    /// See [`QueueEventRow::at`].
    at_us: i64,
    /// See [`QueueEventRow::call_id`].
    call_id: String,
    /// See [`QueueEventRow::queue`].
    queue: Option<String>,
    /// See [`QueueEventRow::agent`].
    agent_id: Option<String>,
    /// See [`QueueEventRow::event`].
    event: String,
    /// See [`QueueEventRow::data`], as JSON text.
    data: String,
}

impl RawQueueEvent {
    /// The public row.
    pub(crate) fn into_row(self) -> Result<StoredQueueEvent, StoreError> {
        let data = serde_json::from_str(&self.data).map_err(|_| StoreError::Corrupt {
            what: "queue event data",
            reason: "not JSON",
        })?;
        Ok(StoredQueueEvent {
            id: self.id,
            row: QueueEventRow {
                at: timestamp(self.at_us, "queue event time")?,
                call_id: self.call_id,
                queue: self.queue,
                agent: self.agent_id,
                event: self.event,
                data,
            },
        })
    }
}

/// `calls` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawCall {
    /// See [`CallRow::id`].
    id: String,
    /// See [`CallRow::started`].
    started_us: i64,
    /// See [`CallRow::caller`].
    caller: Option<String>,
    /// See [`CallRow::entry_point`].
    entry_point: String,
    /// See [`CallRow::flow_version`].
    flow_version: Option<String>,
    /// See [`CallRow::consent`].
    consent: Option<bool>,
    /// See [`CallRow::consent_at`].
    consent_at_us: Option<i64>,
    /// See [`CallRow::topic`].
    topic: Option<String>,
    /// See [`CallRow::queue`].
    queue: Option<String>,
    /// [`CprKeys::seal`] output.
    cpr_sealed: Option<Vec<u8>>,
    /// See [`CallEnd::ended`].
    ended_us: Option<i64>,
    /// See [`CallEnd::outcome`].
    outcome: Option<String>,
    /// See [`CallEnd::agent`].
    agent_id: Option<String>,
    /// See [`CallEnd::transferred`].
    transferred: bool,
    /// See [`CallRecord::consent_withdrawn`].
    consent_withdrawn_us: Option<i64>,
    /// See [`CallRecord::cpr_corrected`].
    cpr_corrected_us: Option<i64>,
    /// See [`CallRecord::cpr_corrected`].
    cpr_corrected_by: Option<String>,
    /// See [`CallRecord::pii_scrubbed`].
    pii_scrubbed_us: Option<i64>,
}

impl RawCall {
    /// The public record, with the CPR number opened.
    pub(crate) fn into_record(self, keys: &CprKeys) -> Result<CallRecord, StoreError> {
        let cpr = match &self.cpr_sealed {
            Some(sealed) => Some(keys.open(sealed).map_err(|source| StoreError::Cpr {
                call: self.id.clone(),
                source,
            })?),
            None => None,
        };
        let end = match (self.ended_us, self.outcome) {
            (Some(ended), Some(outcome)) => Some(CallEnd {
                ended: timestamp(ended, "call end time")?,
                outcome,
                agent: self.agent_id,
                transferred: self.transferred,
            }),
            _ => None,
        };
        Ok(CallRecord {
            call: CallRow {
                id: self.id,
                started: timestamp(self.started_us, "call start time")?,
                caller: self.caller,
                entry_point: self.entry_point,
                flow_version: self.flow_version,
                consent: self.consent,
                consent_at: self
                    .consent_at_us
                    .map(|us| timestamp(us, "consent time"))
                    .transpose()?,
                topic: self.topic,
                queue: self.queue,
                cpr,
            },
            end,
            consent_withdrawn: opt_timestamp(self.consent_withdrawn_us, "consent withdrawal time")?,
            cpr_corrected: match (self.cpr_corrected_us, self.cpr_corrected_by) {
                (Some(at), Some(by)) => Some((by, timestamp(at, "CPR correction time")?)),
                _ => None,
            },
            pii_scrubbed: opt_timestamp(self.pii_scrubbed_us, "personal data scrub time")?,
        })
    }
}

// --- recordings -------------------------------------------------------------------------

/// Defines a closed set of names stored as text, with `as_str` and a checked parse.
macro_rules! stored_names {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),*
        }

        impl $name {
            /// The name as stored.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),*
                }
            }

            /// The value of a stored name.
            pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(StoreError::Corrupt {
                        what: $what,
                        reason: "unknown name",
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_names!(
    /// What a recording is of.
    RecordingKind, "recording kind" {
        /// A consenting call, from the agent's answer until the call ends or leaves the agent.
        Call = "call",
        /// A message the caller chose to leave after its own notice (the flow's `message` node).
        Message = "message",
    }
);

stored_names!(
    /// Where a recording's file stands.
    RecordingState, "recording state" {
        /// Being written.
        Recording = "recording",
        /// Finished normally.
        Closed = "closed",
        /// Repaired after a crash: intact up to its last whole chunk.
        Truncated = "truncated",
    }
);

stored_names!(
    /// Where a recording stands with the citizen's case journal (issue 9).
    JournalState, "journal state" {
        /// Not linked to a case.
        None = "none",
        /// Linked to a case, not yet acknowledged by the case system (holds itself).
        Linked = "linked",
        /// Exported and acknowledged: the case system has its own copy.
        Exported = "exported",
    }
);

/// A recording as catalogued when its file is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecording {
    /// kald's random id; also names the file, so it carries no personal data.
    pub id: String,
    /// kald's opaque id of the call recorded.
    pub call_id: String,
    /// A call or a message.
    pub kind: RecordingKind,
    /// The file's path relative to the recordings directory.
    pub file: String,
    /// The id of the recording key that encrypts the file.
    pub key_id: u32,
    /// When recording began (stored to the microsecond).
    pub started: Timestamp,
    /// The agent recorded with the caller.
    pub agent: Option<String>,
    /// The queue the call came through.
    pub queue: Option<String>,
    /// The caller's menu choice.
    pub topic: Option<String>,
    /// The caller's consent answer (must be `true` for a call recording).
    pub consent: bool,
    /// When consent was given.
    pub consent_at: Option<Timestamp>,
    /// The version of the flow that asked for consent.
    pub flow_version: Option<String>,
    /// The citizen's CPR number; stored sealed, with a keyed look-up hash.
    pub cpr: Option<Cpr>,
}

/// A catalogued recording with everything known about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// kald's random id (names the file).
    pub id: String,
    /// kald's opaque id of the call recorded.
    pub call_id: String,
    /// A call or a message.
    pub kind: RecordingKind,
    /// The file's path relative to the recordings directory.
    pub file: String,
    /// The id of the recording key that encrypts the file.
    pub key_id: u32,
    /// When recording began.
    pub started: Timestamp,
    /// When recording ended (set when closed or truncated).
    pub ended: Option<Timestamp>,
    /// The audio's duration, to the millisecond (set when closed or truncated).
    pub duration: Option<std::time::Duration>,
    /// The agent recorded with the caller.
    pub agent: Option<String>,
    /// The queue the call came through.
    pub queue: Option<String>,
    /// The caller's menu choice.
    pub topic: Option<String>,
    /// The caller's consent answer.
    pub consent: bool,
    /// When consent was given.
    pub consent_at: Option<Timestamp>,
    /// The version of the flow that asked for consent.
    pub flow_version: Option<String>,
    /// The citizen's CPR number, opened with the store's keys.
    pub cpr: Option<Cpr>,
    /// When the recording is due for deletion (set when closed or truncated).
    pub retention_until: Option<Timestamp>,
    /// SHA-256 of the plaintext PCM (set when closed).
    pub sha256: Option<[u8; 32]>,
    /// Being written, closed or truncated.
    pub state: RecordingState,
    /// Where it stands with the case journal.
    pub journal: JournalState,
    /// When the row was written (the store's clock).
    pub created: Timestamp,
}

/// A recording's id, file and state, for reconciling files with the catalogue at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingFile {
    /// kald's random id.
    pub id: String,
    /// The file's path relative to the recordings directory.
    pub file: String,
    /// Being written, closed or truncated.
    pub state: RecordingState,
}

/// Where a page of [`SweepItem`]s ended; pass it to get the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepCursor {
    /// The last item's deadline.
    pub retention_until: Timestamp,
    /// The last item's id.
    pub id: String,
}

/// A recording whose retention deadline has passed, as the sweeper needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepItem {
    /// kald's random id.
    pub id: String,
    /// The call recorded.
    pub call_id: String,
    /// A call or a message.
    pub kind: RecordingKind,
    /// The file's path relative to the recordings directory.
    pub file: String,
    /// When recording ended (its start if the end is unknown).
    pub ended: Timestamp,
    /// When it became due.
    pub retention_until: Timestamp,
    /// Active holds naming it, its call or its citizen's CPR hash.
    pub holds: u32,
    /// Whether any hold is active (`holds > 0`): never delete it then.
    pub held: bool,
    /// Where it stands with the case journal (`Linked` holds itself, issue 9).
    pub journal: JournalState,
}

impl SweepItem {
    /// The cursor for the page after this item.
    pub fn cursor(&self) -> SweepCursor {
        SweepCursor {
            retention_until: self.retention_until,
            id: self.id.clone(),
        }
    }
}

/// What is left of a deleted recording: no file, no sealed CPR number, the CPR's look-up hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    /// The deleted recording's id.
    pub recording_id: String,
    /// The call it recorded.
    pub call_id: String,
    /// A call or a message.
    pub kind: RecordingKind,
    /// When recording began.
    pub started: Timestamp,
    /// When recording ended, if known.
    pub ended: Option<Timestamp>,
    /// When it was deleted.
    pub deleted: Timestamp,
    /// Why: "retention", "erased", …
    pub reason: String,
    /// The keyed look-up hash of the citizen's CPR number, so access requests find it.
    pub cpr_hash: Option<[u8; 32]>,
    /// When the tombstone itself is due for purging.
    pub purge_after: Timestamp,
}

/// What a hold keeps: a recording, a call's recordings, or a citizen's recordings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldTarget {
    /// One recording, by id.
    Recording(String),
    /// Every recording of a call, by call id.
    Call(String),
    /// Every recording of a citizen; stored as its keyed look-up hash (read back as
    /// [`HoldTarget::CprHash`]).
    Cpr(Cpr),
    /// Every recording (and tombstone) with this keyed CPR look-up hash.
    CprHash([u8; 32]),
}

/// A hold as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRow {
    /// The hold's id.
    pub id: i64,
    /// What it keeps (a CPR is read back as [`HoldTarget::CprHash`]).
    pub target: HoldTarget,
    /// Why (a pending access request, a complaint, …).
    pub reason: String,
    /// Who placed it.
    pub created_by: String,
    /// When it was placed.
    pub created: Timestamp,
    /// When it was lifted; `None` while active.
    pub lifted: Option<Timestamp>,
    /// Who lifted it.
    pub lifted_by: Option<String>,
}

/// A SHA-256 digest as stored: 64 lowercase hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored 32-byte value from hex text.
fn digest_from_hex(text: &str, what: &'static str) -> Result<[u8; 32], StoreError> {
    let corrupt = StoreError::Corrupt {
        what,
        reason: "not 64 hex digits",
    };
    if text.len() != 64 || !text.is_ascii() {
        return Err(corrupt);
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte =
            u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| StoreError::Corrupt {
                what,
                reason: "not 64 hex digits",
            })?;
    }
    Ok(out)
}

/// A stored 32-byte hash.
fn hash32(bytes: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Corrupt {
        what,
        reason: "not 32 bytes",
    })
}

/// An optional stored timestamp.
pub(crate) fn opt_timestamp(
    us: Option<i64>,
    what: &'static str,
) -> Result<Option<Timestamp>, StoreError> {
    us.map(|us| timestamp(us, what)).transpose()
}

/// `recordings` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawRecording {
    /// See [`Recording::id`].
    id: String,
    /// See [`Recording::call_id`].
    call_id: String,
    /// See [`Recording::kind`].
    kind: String,
    /// See [`Recording::file`].
    file: String,
    /// See [`Recording::key_id`].
    key_id: i64,
    /// See [`Recording::started`].
    started_us: i64,
    /// See [`Recording::ended`].
    ended_us: Option<i64>,
    /// See [`Recording::duration`].
    duration_ms: Option<i64>,
    /// See [`Recording::agent`].
    agent_id: Option<String>,
    /// See [`Recording::queue`].
    queue: Option<String>,
    /// See [`Recording::topic`].
    topic: Option<String>,
    /// See [`Recording::consent`].
    consent: bool,
    /// See [`Recording::consent_at`].
    consent_at_us: Option<i64>,
    /// See [`Recording::flow_version`].
    flow_version: Option<String>,
    /// [`CprKeys::seal`] output.
    cpr_sealed: Option<Vec<u8>>,
    /// See [`Recording::retention_until`].
    retention_until_us: Option<i64>,
    /// See [`Recording::sha256`], as hex.
    sha256: Option<String>,
    /// See [`Recording::state`].
    state: String,
    /// See [`Recording::journal`].
    journal_state: String,
    /// See [`Recording::created`].
    created_us: i64,
}

impl RawRecording {
    /// The public row, with the CPR number opened.
    pub(crate) fn into_row(self, keys: &CprKeys) -> Result<Recording, StoreError> {
        let cpr = match &self.cpr_sealed {
            Some(sealed) => Some(
                keys.open(sealed)
                    .map_err(|source| StoreError::RecordingCpr {
                        recording: self.id.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let duration = match self.duration_ms {
            Some(ms) => Some(std::time::Duration::from_millis(
                u64::try_from(ms).map_err(|_| StoreError::Corrupt {
                    what: "recording duration",
                    reason: "negative",
                })?,
            )),
            None => None,
        };
        Ok(Recording {
            kind: RecordingKind::parse(&self.kind)?,
            key_id: u32::try_from(self.key_id).map_err(|_| StoreError::Corrupt {
                what: "recording key id",
                reason: "not a u32",
            })?,
            started: timestamp(self.started_us, "recording start time")?,
            ended: opt_timestamp(self.ended_us, "recording end time")?,
            duration,
            consent_at: opt_timestamp(self.consent_at_us, "consent time")?,
            cpr,
            retention_until: opt_timestamp(self.retention_until_us, "retention deadline")?,
            sha256: self
                .sha256
                .as_deref()
                .map(|text| digest_from_hex(text, "recording SHA-256"))
                .transpose()?,
            state: RecordingState::parse(&self.state)?,
            journal: JournalState::parse(&self.journal_state)?,
            created: timestamp(self.created_us, "recording creation time")?,
            id: self.id,
            call_id: self.call_id,
            file: self.file,
            agent: self.agent_id,
            queue: self.queue,
            topic: self.topic,
            consent: self.consent,
            flow_version: self.flow_version,
        })
    }
}

/// A recording's id, file and state as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawRecordingFile {
    /// See [`RecordingFile::id`].
    id: String,
    /// See [`RecordingFile::file`].
    file: String,
    /// See [`RecordingFile::state`].
    state: String,
}

impl RawRecordingFile {
    /// The public row.
    pub(crate) fn into_row(self) -> Result<RecordingFile, StoreError> {
        Ok(RecordingFile {
            state: RecordingState::parse(&self.state)?,
            id: self.id,
            file: self.file,
        })
    }
}

/// A sweep candidate as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawSweepItem {
    /// See [`SweepItem::id`].
    id: String,
    /// See [`SweepItem::call_id`].
    call_id: String,
    /// See [`SweepItem::kind`].
    kind: String,
    /// See [`SweepItem::file`].
    file: String,
    /// See [`SweepItem::ended`].
    ended_us: i64,
    /// See [`SweepItem::retention_until`].
    retention_until_us: i64,
    /// See [`SweepItem::holds`].
    holds: i64,
    /// See [`SweepItem::journal`].
    journal_state: String,
}

impl RawSweepItem {
    /// The public row.
    pub(crate) fn into_row(self) -> Result<SweepItem, StoreError> {
        let holds = u32::try_from(self.holds).map_err(|_| StoreError::Corrupt {
            what: "hold count",
            reason: "out of range",
        })?;
        Ok(SweepItem {
            kind: RecordingKind::parse(&self.kind)?,
            ended: timestamp(self.ended_us, "recording end time")?,
            retention_until: timestamp(self.retention_until_us, "retention deadline")?,
            holds,
            held: holds > 0,
            journal: JournalState::parse(&self.journal_state)?,
            id: self.id,
            call_id: self.call_id,
            file: self.file,
        })
    }
}

/// `tombstones` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawTombstone {
    /// See [`Tombstone::recording_id`].
    recording_id: String,
    /// See [`Tombstone::call_id`].
    call_id: String,
    /// See [`Tombstone::kind`].
    kind: String,
    /// See [`Tombstone::started`].
    started_us: i64,
    /// See [`Tombstone::ended`].
    ended_us: Option<i64>,
    /// See [`Tombstone::deleted`].
    deleted_us: i64,
    /// See [`Tombstone::reason`].
    reason: String,
    /// See [`Tombstone::cpr_hash`].
    cpr_hash: Option<Vec<u8>>,
    /// See [`Tombstone::purge_after`].
    purge_after_us: i64,
}

impl RawTombstone {
    /// The public row.
    pub(crate) fn into_row(self) -> Result<Tombstone, StoreError> {
        Ok(Tombstone {
            kind: RecordingKind::parse(&self.kind)?,
            started: timestamp(self.started_us, "recording start time")?,
            ended: opt_timestamp(self.ended_us, "recording end time")?,
            deleted: timestamp(self.deleted_us, "deletion time")?,
            cpr_hash: self
                .cpr_hash
                .map(|h| hash32(h, "tombstone CPR hash"))
                .transpose()?,
            purge_after: timestamp(self.purge_after_us, "tombstone purge time")?,
            recording_id: self.recording_id,
            call_id: self.call_id,
            reason: self.reason,
        })
    }
}

/// `holds` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct RawHold {
    /// See [`HoldRow::id`].
    id: i64,
    /// 'recording', 'call' or 'cpr'.
    scope: String,
    /// The recording or call id.
    target: Option<String>,
    /// The CPR look-up hash.
    cpr_hash: Option<Vec<u8>>,
    /// See [`HoldRow::reason`].
    reason: String,
    /// See [`HoldRow::created_by`].
    created_by: String,
    /// See [`HoldRow::created`].
    created_us: i64,
    /// See [`HoldRow::lifted`].
    lifted_us: Option<i64>,
    /// See [`HoldRow::lifted_by`].
    lifted_by: Option<String>,
}

impl RawHold {
    /// The public row.
    pub(crate) fn into_row(self) -> Result<HoldRow, StoreError> {
        let corrupt = StoreError::Corrupt {
            what: "hold target",
            reason: "does not match its scope",
        };
        let target = match (self.scope.as_str(), self.target, self.cpr_hash) {
            ("recording", Some(id), None) => HoldTarget::Recording(id),
            ("call", Some(id), None) => HoldTarget::Call(id),
            ("cpr", None, Some(hash)) => HoldTarget::CprHash(hash32(hash, "hold CPR hash")?),
            _ => return Err(corrupt),
        };
        Ok(HoldRow {
            id: self.id,
            target,
            reason: self.reason,
            created_by: self.created_by,
            created: timestamp(self.created_us, "hold time")?,
            lifted: opt_timestamp(self.lifted_us, "hold lift time")?,
            lifted_by: self.lifted_by,
        })
    }
}
