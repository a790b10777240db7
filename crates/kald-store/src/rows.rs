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
        })
    }
}
