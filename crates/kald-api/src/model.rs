//! The live state the SIP loop publishes, the commands it executes, users and roles, and the
//! role-filtered views the API returns.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Live state, published by the SIP loop on every change (at most every ~200 ms) through a
/// `tokio::sync::watch` channel.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Snapshot {
    /// When the SIP loop took this snapshot (its wall clock, which `--now` may pin).
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// Every queue.
    pub queues: Vec<QueueState>,
    /// Every configured agent (logged in or not).
    pub agents: Vec<AgentStatus>,
    /// Every call in progress (IVR, waiting, ringing, talking).
    pub calls: Vec<LiveCall>,
}

/// One queue's live load.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct QueueState {
    /// The queue's name (the skill id).
    pub name: String,
    /// The name shown on screens.
    pub display: String,
    /// Calls waiting now.
    pub waiting: u32,
    /// Seconds the longest-waiting call has waited (0 when none waits).
    pub longest_wait_s: u64,
    /// Agents with this skill per state: `logged_out`, `available`, `ringing`, `talking`,
    /// `wrap_up`, `paused`.
    pub agents: BTreeMap<String, u32>,
}

/// One agent's live status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AgentStatus {
    /// The agent's login (also the SIP user of their softphone).
    pub login: String,
    /// The agent's name.
    pub name: String,
    /// The agent's role.
    pub role: Role,
    /// `logged_out`, `available`, `ringing`, `talking`, `wrap_up` or `paused`.
    pub state: String,
    /// Seconds in this state.
    pub since_s: u64,
    /// Why (the pause reason), for states that have one.
    pub reason: Option<String>,
    /// Whether the agent's softphone is registered and answers.
    pub reachable: bool,
    /// The id of the call the agent is ringing for or talking on.
    pub call: Option<String>,
    /// Logins of the team leaders or coaches listening in on this agent.
    pub listeners: Vec<String>,
}

/// One call in progress, as supervisors see it (never with the CPR number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LiveCall {
    /// kald's opaque call id (e.g. `c-1f`).
    pub id: String,
    /// `ivr`, `waiting`, `ringing` or `talking`.
    pub phase: String,
    /// The queue the call waits in or came from.
    pub queue: Option<String>,
    /// The caller's menu choice.
    pub topic: Option<String>,
    /// Seconds waited in the queue (until answered).
    pub waited_s: u64,
    /// The agent ringing or talking.
    pub agent: Option<String>,
    /// The caller's recording consent, once asked.
    pub consent: Option<bool>,
    /// Whether the call is being recorded now.
    pub recording: bool,
    /// The CPR number the caller typed; never serialised, shown only to the agent handling
    /// the call through [`MyCall`].
    #[serde(skip)]
    pub cpr: Option<kald_core::Cpr>,
}

/// What the API asks the SIP loop to do; the reply says whether it could.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Log the agent in to the queues of their skills.
    Login {
        /// The agent's login.
        agent: String,
    },
    /// Log the agent out of the queues.
    Logout {
        /// The agent's login.
        agent: String,
    },
    /// Pause the agent with a reason.
    Pause {
        /// The agent's login.
        agent: String,
        /// Why (e.g. "Frokost"); never personal data.
        reason: String,
    },
    /// Make the paused agent available again.
    Ready {
        /// The agent's login.
        agent: String,
    },
    /// End the agent's after-call work early.
    EndWrapUp {
        /// The agent's login.
        agent: String,
    },
    /// Start listening in (medlyt) on an agent's calls.
    ListenStart {
        /// The team leader or coach who listens.
        listener: String,
        /// The agent listened to.
        target: String,
    },
    /// Stop listening in.
    ListenStop {
        /// The team leader or coach who listens.
        listener: String,
    },
    /// Stop recording the agent's current call and delete what was recorded (the caller
    /// withdrew consent, said to the agent).
    StopRecording {
        /// The agent on the call.
        agent: String,
    },
    /// The agent verified the caller and entered or corrected the CPR number of their call
    /// (already stored): the live call shows and records it from now on.
    CorrectCpr {
        /// The agent on the call.
        agent: String,
        /// The call's id.
        call: String,
        /// The CPR number (redacted in `Debug`).
        cpr: kald_core::Cpr,
    },
}

/// The SIP loop's answer to a [`Command`]: `Err` holds a short human message without
/// personal data, shown to the user as is.
pub type Reply = Result<(), String>;

/// A person who may log in to the API.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The login (for agents, the same as the ACD's agent login).
    pub login: String,
    /// The name shown on pages.
    pub name: String,
    /// The password (compared in constant time; never logged).
    pub password: String,
    /// What the user may see and do.
    pub role: Role,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("login", &self.login)
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What a user may see and do (see the crate doc for the matrix).
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Answers calls; sees their own state and call (with the CPR) and the queues' load.
    Agent,
    /// Leads a team: sees queues, agents, calls and figures, changes agents' states, listens in.
    TeamLeader,
    /// Coaches agents: sees queues and agents, listens in.
    Coach,
    /// Runs the floor: sees queues, agents, calls and figures, changes agents' states.
    Supervisor,
    /// Handles recordings and access requests (no live view).
    RecordsOfficer,
    /// Runs kald: sees queues, agents, calls, figures and metrics.
    Administrator,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Agent,
        Self::TeamLeader,
        Self::Coach,
        Self::Supervisor,
        Self::RecordsOfficer,
        Self::Administrator,
    ];

    /// The role's wire name (`team-leader`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::TeamLeader => "team-leader",
            Self::Coach => "coach",
            Self::Supervisor => "supervisor",
            Self::RecordsOfficer => "records-officer",
            Self::Administrator => "administrator",
        }
    }

    /// Whether the role answers calls (has an agent state, a current call, may log in to queues).
    pub fn takes_calls(self) -> bool {
        matches!(self, Self::Agent | Self::TeamLeader | Self::Coach)
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownRole)
    }
}

/// A role name that is none of [`Role::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown role (expected agent, team-leader, coach, supervisor, records-officer or administrator)")]
pub struct UnknownRole;

/// Prometheus text for `/metrics`, produced on demand by the binary.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Today's key figures of one queue, as the wallboard shows them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct QueueFigures {
    /// Calls that entered the queue today.
    pub offered: u64,
    /// Offered calls an agent answered.
    pub answered: u64,
    /// Calls abandoned (short abandons included).
    pub abandoned: u64,
    /// Answered / (offered − short abandons), 0–1; `null` without calls.
    pub answer_rate: Option<f64>,
    /// Answered within the service-level time / (offered − short abandons), 0–1.
    pub service_level: Option<f64>,
    /// Average wait in seconds (queue entry → answer or abandon).
    pub average_wait_s: Option<f64>,
    /// Answered calls that ended without a transfer / answered calls, 0–1 (straksafklaring).
    pub settled_first_contact: Option<f64>,
}

/// One queue as the API shows it: the live load plus, for roles that see figures, today's.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct QueueSummary {
    /// The queue's name (the skill id).
    pub name: String,
    /// The name shown on screens.
    pub display: String,
    /// Calls waiting now.
    pub waiting: u32,
    /// Seconds the longest-waiting call has waited.
    pub longest_wait_s: u64,
    /// Agents with this skill per state.
    pub agents: BTreeMap<String, u32>,
    /// Today's key figures (team leaders, supervisors, administrators; when available).
    pub today: Option<QueueFigures>,
}

/// The current call of the agent asking, with the caller's CPR number (screen pop).
#[derive(Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MyCall {
    /// kald's call id.
    pub id: String,
    /// `ringing` or `talking`.
    pub phase: String,
    /// The queue the call came from.
    pub queue: Option<String>,
    /// The caller's menu choice.
    pub topic: Option<String>,
    /// Seconds the caller waited in the queue.
    pub waited_s: u64,
    /// The caller's recording consent.
    pub consent: Option<bool>,
    /// Whether the call is being recorded now.
    pub recording: bool,
    /// The CPR number the caller typed, `DDMMYY-SSSS`.
    pub cpr: Option<String>,
}

impl std::fmt::Debug for MyCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MyCall")
            .field("id", &self.id)
            .field("phase", &self.phase)
            .field("cpr", &self.cpr.as_ref().map(|_| "******-****"))
            .finish_non_exhaustive()
    }
}

/// The answer of `GET /api/me/call`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MyCallResponse {
    /// The call the agent is ringing for or talking on, if any.
    pub call: Option<MyCall>,
}

/// The logged-in user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Me {
    /// The login.
    pub login: String,
    /// The name.
    pub name: String,
    /// The role.
    pub role: Role,
}

/// One push-channel event (`event: snapshot`): the snapshot filtered for the user's role.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LiveView {
    /// When the SIP loop took the snapshot.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// The user's own agent status (roles that take calls).
    pub me: Option<AgentStatus>,
    /// The user's own current call, with the CPR number (roles that take calls).
    pub call: Option<MyCall>,
    /// Every queue's load.
    pub queues: Vec<QueueSummary>,
    /// Every agent (team leaders, coaches, supervisors, administrators).
    pub agents: Option<Vec<AgentStatus>>,
    /// Every live call without CPR numbers (team leaders, supervisors, administrators).
    pub calls: Option<Vec<LiveCall>>,
}

/// Log-in credentials.
#[derive(Clone, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The login.
    pub login: String,
    /// The password.
    pub password: String,
}

/// A successful log-in: the session token (also set as the `kald_session` cookie).
#[derive(Clone, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>` from scripts.
    pub token: String,
    /// The user.
    pub me: Me,
}

/// What to do with an agent's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StateAction {
    /// Log in to the queues.
    Login,
    /// Log out of the queues.
    Logout,
    /// Pause (needs a reason).
    Pause,
    /// Back from pause.
    Ready,
    /// End after-call work early.
    EndWrapUp,
}

/// A state change request.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct StateChange {
    /// What to do.
    pub action: StateAction,
    /// Why, for `pause` (1–40 characters, e.g. Pause, Frokost, Møde, Efteruddannelse).
    pub reason: Option<String>,
}

/// Start listening in on an agent.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ListenRequest {
    /// The agent's login.
    pub target: String,
}

/// Every error: a short message without personal data.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// The health check's answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}
