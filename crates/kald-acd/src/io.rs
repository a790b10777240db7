//! What goes into the ACD (inputs), what comes out (outputs, events), errors and views.

use std::time::{Duration, Instant};

use kald_core::CallId;

/// What happened, fed to [`crate::Acd::handle_input`] with the current time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The agent logs in to all queues of its skills and becomes available.
    Login {
        /// The agent login.
        agent: String,
    },
    /// The agent logs out (after the current call, if talking).
    Logout {
        /// The agent login.
        agent: String,
    },
    /// The agent pauses (ends a wrap-up; after the current call, if talking).
    Pause {
        /// The agent login.
        agent: String,
        /// Why, as shown on the wallboard (e.g. "break", "sparring").
        reason: String,
    },
    /// The paused agent is available again.
    Unpause {
        /// The agent login.
        agent: String,
    },
    /// The agent ends after-call work early.
    EndWrapUp {
        /// The agent login.
        agent: String,
    },
    /// Whether the agent's softphone has a live, qualified registration.
    Reachable {
        /// The agent login.
        agent: String,
        /// `false`: never offered calls (stays logged in).
        reachable: bool,
    },
    /// A call enters a queue (entry time = `now`).
    Enqueue {
        /// The call.
        call: CallId,
        /// The queue's name (skill id).
        queue: String,
        /// The caller's menu choice, shown to the agent.
        topic: String,
        /// 0–9, higher is served first (above 9 counts as 9).
        priority: u8,
    },
    /// The caller hung up, or the flow took the call back (max wait); cancels a ring.
    Abandon {
        /// The call.
        call: CallId,
    },
    /// The ringing agent answered; the driver bridged the legs.
    RingAnswered {
        /// The call.
        call: CallId,
        /// The agent whose phone rang.
        agent: String,
    },
    /// The agent's leg failed (busy, rejected, unreachable): counts as a no-answer.
    RingFailed {
        /// The call.
        call: CallId,
        /// The agent whose phone rang.
        agent: String,
    },
    /// The bridged call ended; the agent goes to wrap-up.
    Ended {
        /// The call.
        call: CallId,
    },
    /// The call goes (back) to a queue: a transfer to another queue, or a failed transfer.
    Requeue {
        /// The call.
        call: CallId,
        /// The queue's name.
        queue: String,
        /// Put it ahead of every other waiting call.
        at_head: bool,
    },
    /// The call left its agent but lives on (a transfer away); the agent goes to wrap-up.
    Released {
        /// The call.
        call: CallId,
    },
    /// A transfer handed the call to `agent` directly (not through a queue): the agent it
    /// leaves goes to wrap-up, `agent` is talking on it (if logged in).
    Transferred {
        /// The call.
        call: CallId,
        /// The agent who has it now.
        agent: String,
    },
    /// The agent is on a call the ACD did not route (a colleague's consult call): not
    /// offered queue calls while `busy`.
    Busy {
        /// The agent login.
        agent: String,
        /// On such a call.
        busy: bool,
    },
    /// The flow took the waiting call back at its maximum wait (unanswered, not abandoned).
    MaxWait {
        /// The call.
        call: CallId,
    },
}

/// What the driver must do or record, from [`crate::Acd::poll_output`].
///
/// Explicitly exhaustive: a new output is a new duty for the driver, so adding one is a
/// breaking change on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Output {
    /// Dial the agent's softphone for this call.
    Ring {
        /// The call.
        call: CallId,
        /// The agent login.
        agent: String,
        /// The queue the call waits in.
        queue: String,
        /// How long the call has waited in the queue.
        wait: Duration,
        /// The caller's menu choice.
        topic: String,
    },
    /// Cancel the INVITE to the agent (ring timeout, abandon, pause, logout).
    CancelRing {
        /// The call.
        call: CallId,
        /// The agent login.
        agent: String,
    },
    /// A fact for the queue log and the live push; it happened at the `now` of the call that
    /// produced it.
    Event(AcdEvent),
}

/// One fact, for the store's queue log and the live push.
///
/// Events carry no timestamp: each happened at the `now` passed to the `handle_*` call that
/// produced it, and the driver (which drains outputs after every call) stamps it with that.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcdEvent {
    /// A call entered a queue (also after a requeue).
    Entered {
        /// The call.
        call: CallId,
        /// The queue.
        queue: String,
        /// The caller's menu choice.
        topic: String,
        /// 0–9, higher first.
        priority: u8,
    },
    /// An agent's phone started ringing for a call.
    Ringing {
        /// The call.
        call: CallId,
        /// The agent login.
        agent: String,
    },
    /// The agent did not answer (timeout or failed leg).
    NoAnswer {
        /// The call.
        call: CallId,
        /// The agent login.
        agent: String,
        /// How long it rang.
        rang: Duration,
    },
    /// An agent answered a call.
    Answered {
        /// The call.
        call: CallId,
        /// The agent login.
        agent: String,
        /// The queue it waited in.
        queue: String,
        /// How long it waited in that queue.
        wait: Duration,
    },
    /// The call left the queue without being answered.
    Abandoned {
        /// The call.
        call: CallId,
        /// The queue.
        queue: String,
        /// How long it waited.
        wait: Duration,
        /// Its 1-based position when it left.
        position: usize,
    },
    /// A call left its agent (ended, released or requeued).
    Ended {
        /// The call.
        call: CallId,
        /// The agent login.
        agent: String,
        /// From answer to end.
        talk: Duration,
    },
    /// An agent changed state.
    AgentState {
        /// The agent login.
        agent: String,
        /// The new state.
        state: AgentState,
        /// The pause reason when `state` is [`AgentState::Paused`].
        reason: Option<String>,
    },
    /// The agent was paused for longer than the pause limit; it is logged out next.
    PauseLimitReached {
        /// The agent login.
        agent: String,
    },
    /// A call entered a queue in which no agent with the skill is logged in.
    NoAgentsLoggedIn {
        /// The call.
        call: CallId,
        /// The queue.
        queue: String,
    },
    /// The call reached the flow's maximum wait and left the queue unanswered.
    MaxWait {
        /// The call.
        call: CallId,
        /// The queue.
        queue: String,
        /// How long it waited.
        wait: Duration,
    },
}

/// An agent's state; explicitly exhaustive (the six states of the contact centre).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// Not logged in.
    LoggedOut,
    /// Logged in and waiting for a call.
    Available,
    /// A call is ringing on the agent's phone.
    Ringing,
    /// In a call.
    Talking,
    /// After-call work.
    WrapUp,
    /// Paused with a reason.
    Paused,
}

impl AgentState {
    /// Every state, in the order above.
    pub const ALL: [Self; 6] = [
        Self::LoggedOut,
        Self::Available,
        Self::Ringing,
        Self::Talking,
        Self::WrapUp,
        Self::Paused,
    ];

    /// The stable ASCII name for logs and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::Available => "available",
            Self::Ringing => "ringing",
            Self::Talking => "talking",
            Self::WrapUp => "wrap_up",
            Self::Paused => "paused",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Why an input was refused; nothing changed. The driver should release any leg it names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcdError {
    /// No agent with this login is configured.
    #[error("unknown agent `{agent}`")]
    UnknownAgent {
        /// The agent login.
        agent: String,
    },
    /// No queue with this name is configured.
    #[error("unknown queue `{queue}`")]
    UnknownQueue {
        /// The queue name.
        queue: String,
    },
    /// The ACD does not know this call (never enqueued, or already gone).
    #[error("unknown call {call}")]
    UnknownCall {
        /// The call.
        call: CallId,
    },
    /// The call is already in the ACD.
    #[error("call {call} is already queued")]
    DuplicateCall {
        /// The call.
        call: CallId,
    },
    /// The call is not ringing this agent (e.g. the ring timed out first): hang up that leg.
    #[error("call {call} is not ringing agent `{agent}`")]
    NotRinging {
        /// The call.
        call: CallId,
        /// The agent login.
        agent: String,
    },
    /// The call is not with an agent.
    #[error("call {call} is not with an agent")]
    NotTalking {
        /// The call.
        call: CallId,
    },
    /// The input does not apply to the agent's state (e.g. EndWrapUp while available).
    #[error("agent `{agent}` is {}", state.as_str())]
    WrongState {
        /// The agent login.
        agent: String,
        /// The agent's state.
        state: AgentState,
    },
}

/// An agent as the API and the wallboard see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentView {
    /// The login.
    pub id: String,
    /// The display name.
    pub display_name: String,
    /// The state.
    pub state: AgentState,
    /// When the state began (`None` before the first change).
    pub since: Option<Instant>,
    /// When the agent last became available (the longest-idle order).
    pub idle_since: Option<Instant>,
    /// Whether the softphone is registered.
    pub reachable: bool,
    /// The call ringing, talking or in wrap-up.
    pub call: Option<CallId>,
    /// The queue of that call.
    pub queue: Option<String>,
    /// The pause reason when paused.
    pub paused_reason: Option<String>,
    /// Rings missed since the last answer, login or unpause.
    pub missed_in_row: u32,
    /// Queues the agent is logged in to (all its skills' queues unless logged out).
    pub queues: Vec<String>,
    /// A logout requested while talking, applied when the call ends.
    pub logout_pending: bool,
    /// A pause requested while talking (its reason), applied when the call ends.
    pub pause_pending: Option<String>,
}

/// Agents with a queue's skill, counted per state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentCounts {
    /// Logged out.
    pub logged_out: u32,
    /// Available (reachable or not).
    pub available: u32,
    /// Ringing.
    pub ringing: u32,
    /// Talking.
    pub talking: u32,
    /// In wrap-up.
    pub wrap_up: u32,
    /// Paused.
    pub paused: u32,
}

impl AgentCounts {
    /// Agents logged in (every state but logged out).
    pub fn logged_in(&self) -> u32 {
        self.available + self.ringing + self.talking + self.wrap_up + self.paused
    }

    pub(crate) fn from_array(a: [u32; 6]) -> Self {
        Self {
            logged_out: a[AgentState::LoggedOut.index()],
            available: a[AgentState::Available.index()],
            ringing: a[AgentState::Ringing.index()],
            talking: a[AgentState::Talking.index()],
            wrap_up: a[AgentState::WrapUp.index()],
            paused: a[AgentState::Paused.index()],
        }
    }
}

/// A queue as the wallboard sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueView {
    /// The skill id.
    pub name: String,
    /// The display name.
    pub display: String,
    /// Waiting calls (ringing ones included) in the order they will be served.
    pub waiting: Vec<CallId>,
    /// Entry time of the call that has waited longest (wait = now − this).
    pub longest_waiting_since: Option<Instant>,
    /// Agents with the skill per state.
    pub agents: AgentCounts,
    /// Moving average of handle time (talk + wrap-up), once there is data.
    pub average_handle: Option<Duration>,
    /// `false` when removed from the configuration but still holding calls.
    pub configured: bool,
}

/// Where a call is in the ACD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallPhase {
    /// Waiting, no phone ringing.
    Waiting,
    /// Waiting, this agent's phone is ringing.
    Ringing {
        /// The agent login.
        agent: String,
    },
    /// Bridged to this agent.
    Talking {
        /// The agent login.
        agent: String,
    },
    /// Left its agent (transfer away); kept until it ends or is requeued.
    Released,
}

/// A call as the API sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedCallView {
    /// The call.
    pub call: CallId,
    /// Its (last) queue.
    pub queue: String,
    /// The caller's menu choice.
    pub topic: String,
    /// When it entered that queue.
    pub entered: Instant,
    /// 0–9, higher first.
    pub priority: u8,
    /// Whether it was requeued at the head.
    pub at_head: bool,
    /// Where it is.
    pub phase: CallPhase,
}
