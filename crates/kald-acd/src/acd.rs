//! The ACD state machine: queues, agents, calls, timers and the routing decisions.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use kald_core::CallId;

use crate::config::{AcdConfig, QueueConfig};
use crate::io::{
    AcdError, AcdEvent, AgentCounts, AgentState, AgentView, CallPhase, Input, Output, QueueView,
    QueuedCallView,
};

/// How long an agent who missed a call is not offered that same call again.
pub const RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// Talk time assumed before a queue has handled any call (wrap-up is added from the queue).
pub const DEFAULT_TALK: Duration = Duration::from_secs(180);

/// Weight of the newest handle time in the moving average (exponential, ≈ the last 10 calls).
const AVERAGE_WEIGHT: f64 = 0.2;

/// The reason given to an agent paused for missing `no_answer_limit` rings in a row.
pub const NO_ANSWER_REASON: &str = "no answer";

/// Orders waiting calls: `group` packs "requeued at head" and the priority, `seq` the entry
/// order (monotonic like the clock, so it orders by entry time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CallKey {
    group: u16,
    seq: u64,
}

impl CallKey {
    fn new(at_head: bool, priority: u8, seq: u64) -> Self {
        let head = if at_head { 0 } else { 256 };
        Self {
            group: head + u16::from(u8::MAX - priority),
            seq,
        }
    }
}

/// One timer in the heap; it is live only while the owner still holds `token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    token: u64,
    kind: TimerKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// The agent's wrap-up ends, or its pause reaches the limit.
    Agent(usize),
    /// The ring of a call times out.
    Ring(CallId),
    /// The call has waited long enough for the next level of agents.
    Escalate(CallId),
    /// An agent's back-off for the call ended: try routing it again.
    Retry(CallId),
}

struct Queue {
    config: QueueConfig,
    configured: bool,
    /// Highest skill level among the configured agents with this skill.
    max_level: u8,
    /// Every waiting call, ringing or not, in service order.
    waiting: BTreeMap<CallKey, CallId>,
    /// Waiting calls that are not ringing anyone.
    routable: BTreeMap<CallKey, CallId>,
    /// Available and reachable agents per level (index level-1), longest idle first.
    idle: Vec<BTreeSet<(u64, usize)>>,
    /// Agents with this skill per state.
    counts: [u32; 6],
    /// Moving average of handle time in seconds.
    handle_avg: Option<f64>,
}

impl Queue {
    fn new(config: QueueConfig) -> Self {
        Self {
            config,
            configured: true,
            max_level: 0,
            waiting: BTreeMap::new(),
            routable: BTreeMap::new(),
            idle: Vec::new(),
            counts: [0; 6],
            handle_avg: None,
        }
    }

    fn logged_in(&self) -> u32 {
        AgentCounts::from_array(self.counts).logged_in()
    }

    fn average_handle(&self) -> Duration {
        self.handle_avg.map_or_else(
            || DEFAULT_TALK.saturating_add(self.config.wrap_up),
            Duration::from_secs_f64,
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    None,
    Logout,
    Pause(String),
}

struct Agent {
    id: String,
    display_name: String,
    /// (queue index, level), one per queue.
    skills: Vec<(usize, u8)>,
    state: AgentState,
    since: Option<Instant>,
    reachable: bool,
    /// On a call the ACD did not route (see [`Input::Busy`]).
    busy: bool,
    /// Sequence number of the moment it last became available (the idle order).
    available_seq: u64,
    idle_since: Option<Instant>,
    /// Whether it is in its queues' idle sets.
    idle: bool,
    call: Option<CallId>,
    call_queue: Option<usize>,
    paused_reason: Option<String>,
    missed_in_row: u32,
    /// Token of the live wrap-up or pause timer (0: none).
    timer_token: u64,
    /// Answer time and queue of the call whose handle time is being measured.
    handle_started: Option<(Instant, usize)>,
    pending: Pending,
    /// Removed from the configuration while talking: dropped when the call ends.
    removed: bool,
}

struct Ring {
    agent: usize,
    started: Instant,
    token: u64,
}

enum CallState {
    Waiting { ring: Option<Ring> },
    Talking { agent: usize, answered: Instant },
    Released,
}

struct Call {
    queue: usize,
    topic: String,
    priority: u8,
    at_head: bool,
    entered: Instant,
    key: CallKey,
    state: CallState,
    escalate_token: u64,
    retry: Option<(Instant, u64)>,
    /// Agents who missed this call and until when they are not offered it again.
    backoff: Vec<(usize, Instant)>,
}

impl Call {
    fn excluded(&self, agent: usize, now: Instant) -> Option<Instant> {
        self.backoff
            .iter()
            .find(|&&(a, until)| a == agent && until > now)
            .map(|&(_, until)| until)
    }

    fn is_routable(&self) -> bool {
        matches!(self.state, CallState::Waiting { ring: None })
    }
}

/// The ACD: skill queues, agent states and routing, as a sans-IO state machine.
///
/// Call order, after every [`handle_input`](Self::handle_input),
/// [`handle_timeout`](Self::handle_timeout) or [`set_config`](Self::set_config): drain
/// [`poll_output`](Self::poll_output), then arm one timer at
/// [`poll_timeout`](Self::poll_timeout). A spurious or early timeout is a no-op. Time never
/// goes backwards inside the ACD: an older `now` than the last one counts as the last one.
pub struct Acd {
    queues: Vec<Queue>,
    queue_ids: HashMap<String, usize>,
    /// Agents by slot; a slot is never reused, so a stale index finds `None`.
    agents: Vec<Option<Agent>>,
    agent_ids: HashMap<String, usize>,
    calls: HashMap<CallId, Call>,
    timers: BinaryHeap<Reverse<Timer>>,
    outputs: VecDeque<Output>,
    no_answer_limit: u32,
    pause_limit: Duration,
    seq: u64,
    last_now: Option<Instant>,
}

impl Acd {
    /// An ACD with every agent logged out and no calls.
    pub fn new(config: AcdConfig) -> Self {
        let mut acd = Self {
            queues: Vec::new(),
            queue_ids: HashMap::new(),
            agents: Vec::new(),
            agent_ids: HashMap::new(),
            calls: HashMap::new(),
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
            no_answer_limit: config.no_answer_limit,
            pause_limit: config.pause_limit,
            seq: 0,
            last_now: None,
        };
        acd.apply_config(None, config);
        acd
    }

    /// Reloads the configuration, keeping the live state of agents and queues that remain.
    ///
    /// New queues and agents appear (agents logged out); a removed queue takes no new calls
    /// but keeps its waiting calls (nobody can take them; the flow's max wait ends them); a
    /// removed agent is logged out (its ring cancelled), or, while talking, when the call ends.
    /// Changed skills and timings apply at once to routing and to wrap-ups and pauses that
    /// start from now on.
    pub fn set_config(&mut self, now: Instant, config: AcdConfig) {
        let now = self.clamp(now);
        self.apply_config(Some(now), config);
        self.reroute_all(now);
        self.purge_timers();
    }

    /// Feeds one input. On `Err` nothing changed (a stale or unknown reference).
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), AcdError> {
        let now = self.clamp(now);
        let result = self.dispatch(now, input);
        self.purge_timers();
        result
    }

    /// The next thing the driver must do or record.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(t)| t.at)
    }

    /// Fires every timer due at `now`: ring timeouts, wrap-up ends, pause limits, the
    /// secondary-level escalation and back-off retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        while let Some(&Reverse(timer)) = self.timers.peek() {
            if timer.at > now {
                break;
            }
            self.timers.pop();
            if self.timer_live(&timer) {
                self.fire(now, timer.kind);
            }
        }
        self.purge_timers();
    }

    /// One agent's state.
    pub fn agent(&self, id: &str) -> Option<AgentView> {
        let slot = *self.agent_ids.get(id)?;
        self.agents.get(slot)?.as_ref().map(|a| self.agent_view(a))
    }

    /// Every agent, in configuration order.
    pub fn agents(&self) -> impl Iterator<Item = AgentView> + '_ {
        self.agents.iter().flatten().map(|a| self.agent_view(a))
    }

    /// One queue's state.
    pub fn queue(&self, name: &str) -> Option<QueueView> {
        let q = *self.queue_ids.get(name)?;
        Some(self.queue_view(&self.queues[q]))
    }

    /// Every configured queue, and removed ones that still hold calls, in configuration order.
    pub fn queues(&self) -> impl Iterator<Item = QueueView> + '_ {
        self.queues
            .iter()
            .filter(|q| q.configured || !q.waiting.is_empty())
            .map(|q| self.queue_view(q))
    }

    /// A waiting call's 1-based position in its queue and the number of calls waiting there.
    ///
    /// O(calls waiting in that queue).
    pub fn position(&self, call: CallId) -> Option<(usize, usize)> {
        let c = self.calls.get(&call)?;
        if !matches!(c.state, CallState::Waiting { .. }) {
            return None;
        }
        let queue = &self.queues[c.queue];
        let pos = queue.waiting.range(..c.key).count() + 1;
        Some((pos, queue.waiting.len()))
    }

    /// Estimated remaining wait of a waiting call.
    ///
    /// It is the number of calls ahead that are not ringing, plus one, times the moving
    /// average of handle time (talk + wrap-up; [`DEFAULT_TALK`] plus the queue's wrap-up before
    /// any data), divided by the agents with the skill who are logged in and not paused. Zero
    /// while ringing; `None` when no such agent exists or the call is not waiting.
    pub fn expected_wait(&self, now: Instant, call: CallId) -> Option<Duration> {
        let c = self.calls.get(&call)?;
        match &c.state {
            CallState::Waiting { ring: Some(_) } => return Some(Duration::ZERO),
            CallState::Waiting { ring: None } => {}
            _ => return None,
        }
        let queue = &self.queues[c.queue];
        let serving = queue.logged_in() - queue.counts[AgentState::Paused.index()];
        if serving == 0 {
            return None;
        }
        // Calls ahead that are ringing an agent are being served already: count the others.
        let pos = queue.routable.range(..c.key).count() + 1;
        let _ = now; // the estimate comes from the queue's state, which already is "now"
        let per_call = queue.average_handle().as_secs_f64() / f64::from(serving);
        Some(Duration::from_secs_f64(per_call * pos as f64))
    }

    /// A call the ACD knows (waiting, ringing, talking or released).
    pub fn call(&self, call: CallId) -> Option<QueuedCallView> {
        let c = self.calls.get(&call)?;
        let name = |slot: usize| {
            self.agents
                .get(slot)
                .and_then(Option::as_ref)
                .map_or_else(String::new, |a| a.id.clone())
        };
        let phase = match &c.state {
            CallState::Waiting { ring: None } => CallPhase::Waiting,
            CallState::Waiting { ring: Some(r) } => CallPhase::Ringing {
                agent: name(r.agent),
            },
            CallState::Talking { agent, .. } => CallPhase::Talking {
                agent: name(*agent),
            },
            CallState::Released => CallPhase::Released,
        };
        Some(QueuedCallView {
            call,
            queue: self.queues[c.queue].config.name.clone(),
            topic: c.topic.clone(),
            entered: c.entered,
            priority: c.priority,
            at_head: c.at_head,
            phase,
        })
    }

    // ---- inputs ----

    fn dispatch(&mut self, now: Instant, input: Input) -> Result<(), AcdError> {
        match input {
            Input::Login { agent } => self.login(now, &agent),
            Input::Logout { agent } => self.logout(now, &agent),
            Input::Pause { agent, reason } => self.pause_input(now, &agent, reason),
            Input::Unpause { agent } => self.unpause(now, &agent),
            Input::EndWrapUp { agent } => {
                let slot = self.slot(&agent)?;
                self.expect_state(slot, AgentState::WrapUp)?;
                self.become_available(now, slot);
                Ok(())
            }
            Input::Reachable { agent, reachable } => self.reachable(now, &agent, reachable),
            Input::Enqueue {
                call,
                queue,
                topic,
                priority,
            } => {
                if self.calls.contains_key(&call) {
                    return Err(AcdError::DuplicateCall { call });
                }
                let q = self.configured_queue(&queue)?;
                let c = Call {
                    queue: q,
                    topic,
                    priority: priority.min(9),
                    at_head: false,
                    entered: now,
                    key: CallKey::new(false, 0, 0),
                    state: CallState::Released,
                    escalate_token: 0,
                    retry: None,
                    backoff: Vec::new(),
                };
                self.calls.insert(call, c);
                self.enter_queue(now, call, q, false);
                Ok(())
            }
            Input::Abandon { call } => self.abandon(now, call, false),
            Input::MaxWait { call } => self.abandon(now, call, true),
            Input::Busy { agent, busy } => {
                let slot = self.slot(&agent)?;
                let a = self.agent_mut(slot);
                if a.busy != busy {
                    a.busy = busy;
                    self.sync_idle(slot);
                    if !busy {
                        self.route_agent(now, slot);
                    }
                }
                Ok(())
            }
            Input::Transferred { call, agent } => self.transferred(now, call, &agent),
            Input::RingAnswered { call, agent } => self.ring_answered(now, call, &agent),
            Input::RingFailed { call, agent } => {
                let slot = self.ringing_slot(call, &agent)?;
                self.missed(now, call, slot, false);
                Ok(())
            }
            Input::Ended { call } => self.ended(now, call),
            Input::Requeue {
                call,
                queue,
                at_head,
            } => self.requeue(now, call, &queue, at_head),
            Input::Released { call } => {
                let c = self
                    .calls
                    .get(&call)
                    .ok_or(AcdError::UnknownCall { call })?;
                let CallState::Talking { agent, answered } = c.state else {
                    return Err(AcdError::NotTalking { call });
                };
                if let Some(c) = self.calls.get_mut(&call) {
                    c.state = CallState::Released;
                }
                self.call_left_agent(now, call, agent, answered);
                Ok(())
            }
        }
    }

    fn login(&mut self, now: Instant, id: &str) -> Result<(), AcdError> {
        let slot = self.slot(id)?;
        let a = self.agent_mut(slot);
        match a.state {
            AgentState::LoggedOut => {
                a.missed_in_row = 0;
                self.become_available(now, slot);
            }
            _ => {
                if a.pending == Pending::Logout {
                    a.pending = Pending::None;
                }
            }
        }
        Ok(())
    }

    fn logout(&mut self, now: Instant, id: &str) -> Result<(), AcdError> {
        let slot = self.slot(id)?;
        match self.agent_mut(slot).state {
            AgentState::LoggedOut => {}
            AgentState::Talking => self.agent_mut(slot).pending = Pending::Logout,
            AgentState::Ringing => {
                let call = self.cancel_agent_ring(now, slot);
                self.set_state(now, slot, AgentState::LoggedOut, None);
                if let Some(call) = call {
                    self.route_call(now, call);
                }
            }
            AgentState::Available | AgentState::WrapUp | AgentState::Paused => {
                self.set_state(now, slot, AgentState::LoggedOut, None);
            }
        }
        Ok(())
    }

    fn pause_input(&mut self, now: Instant, id: &str, reason: String) -> Result<(), AcdError> {
        let slot = self.slot(id)?;
        match self.agent_mut(slot).state {
            AgentState::LoggedOut => return Err(self.wrong_state(slot)),
            AgentState::Talking => self.agent_mut(slot).pending = Pending::Pause(reason),
            AgentState::Ringing => {
                let call = self.cancel_agent_ring(now, slot);
                self.pause(now, slot, reason);
                if let Some(call) = call {
                    self.route_call(now, call);
                }
            }
            AgentState::Available | AgentState::WrapUp => self.pause(now, slot, reason),
            AgentState::Paused => {
                // A new reason; the pause (and its limit) keeps running.
                let a = self.agent_mut(slot);
                if a.paused_reason.as_deref() != Some(reason.as_str()) {
                    a.paused_reason = Some(reason.clone());
                    let agent = a.id.clone();
                    self.event(AcdEvent::AgentState {
                        agent,
                        state: AgentState::Paused,
                        reason: Some(reason),
                    });
                }
            }
        }
        Ok(())
    }

    fn unpause(&mut self, now: Instant, id: &str) -> Result<(), AcdError> {
        let slot = self.slot(id)?;
        let a = self.agent_mut(slot);
        match a.state {
            AgentState::Paused => {
                a.missed_in_row = 0;
                self.become_available(now, slot);
                Ok(())
            }
            AgentState::Talking if matches!(a.pending, Pending::Pause(_)) => {
                a.pending = Pending::None;
                Ok(())
            }
            _ => Err(self.wrong_state(slot)),
        }
    }

    fn reachable(&mut self, now: Instant, id: &str, reachable: bool) -> Result<(), AcdError> {
        let slot = self.slot(id)?;
        let a = self.agent_mut(slot);
        if a.reachable == reachable {
            return Ok(());
        }
        a.reachable = reachable;
        if !reachable && a.state == AgentState::Ringing {
            // The softphone went away mid-ring: cancel; not counted as a miss.
            let call = self.cancel_agent_ring(now, slot);
            self.set_state(now, slot, AgentState::Available, None);
            if let Some(call) = call {
                self.route_call(now, call);
            }
        } else {
            self.sync_idle(slot);
            self.route_agent(now, slot);
        }
        Ok(())
    }

    /// A waiting call leaves its queue unanswered: the caller hung up, or (`max_wait`) the
    /// flow took it back.
    fn abandon(&mut self, now: Instant, call: CallId, max_wait: bool) -> Result<(), AcdError> {
        let c = self
            .calls
            .get(&call)
            .ok_or(AcdError::UnknownCall { call })?;
        match c.state {
            CallState::Talking { .. } => return self.ended(now, call),
            CallState::Released => {
                self.calls.remove(&call);
                return Ok(());
            }
            CallState::Waiting { .. } => {}
        }
        let position = self.position(call).map_or(1, |(p, _)| p);
        let freed = self.stop_ring(call);
        if let Some(slot) = freed {
            self.cancel_ring_output(call, slot);
        }
        let Some(c) = self.calls.remove(&call) else {
            return Ok(());
        };
        let queue = &mut self.queues[c.queue];
        queue.waiting.remove(&c.key);
        queue.routable.remove(&c.key);
        let queue = queue.config.name.clone();
        let wait = now.saturating_duration_since(c.entered);
        if max_wait {
            self.event(AcdEvent::MaxWait { call, queue, wait });
        } else {
            self.event(AcdEvent::Abandoned {
                call,
                queue,
                wait,
                position,
            });
        }
        if let Some(slot) = freed {
            self.set_state(now, slot, AgentState::Available, None);
            self.route_agent(now, slot);
        }
        Ok(())
    }

    fn ring_answered(&mut self, now: Instant, call: CallId, id: &str) -> Result<(), AcdError> {
        let slot = self.ringing_slot(call, id)?;
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(AcdError::UnknownCall { call });
        };
        c.state = CallState::Talking {
            agent: slot,
            answered: now,
        };
        c.backoff.clear();
        c.retry = None;
        c.escalate_token = 0;
        let (q, key, wait) = (c.queue, c.key, now.saturating_duration_since(c.entered));
        let queue = &mut self.queues[q];
        queue.waiting.remove(&key);
        queue.routable.remove(&key);
        let queue = queue.config.name.clone();
        let a = self.agent_mut(slot);
        a.missed_in_row = 0;
        a.handle_started = Some((now, q));
        let agent = a.id.clone();
        self.event(AcdEvent::Answered {
            call,
            agent,
            queue,
            wait,
        });
        self.set_state(now, slot, AgentState::Talking, None);
        Ok(())
    }

    fn ended(&mut self, now: Instant, call: CallId) -> Result<(), AcdError> {
        let c = self
            .calls
            .get(&call)
            .ok_or(AcdError::UnknownCall { call })?;
        match c.state {
            // The caller hung up before an agent answered.
            CallState::Waiting { .. } => self.abandon(now, call, false),
            CallState::Released => {
                self.calls.remove(&call);
                Ok(())
            }
            CallState::Talking { agent, answered } => {
                self.calls.remove(&call);
                self.call_left_agent(now, call, agent, answered);
                Ok(())
            }
        }
    }

    fn transferred(&mut self, now: Instant, call: CallId, id: &str) -> Result<(), AcdError> {
        let to = self.slot(id)?;
        let c = self
            .calls
            .get(&call)
            .ok_or(AcdError::UnknownCall { call })?;
        let q = c.queue;
        if let CallState::Talking { agent, answered } = c.state {
            if agent == to {
                return Ok(());
            }
            if let Some(c) = self.calls.get_mut(&call) {
                c.state = CallState::Released;
            }
            self.call_left_agent(now, call, agent, answered);
        }
        let a = self.agent_mut(to);
        a.busy = false;
        if a.state == AgentState::LoggedOut {
            // Not working the queues: the ACD only keeps the call to know when it ends.
            self.sync_idle(to);
            return Ok(());
        }
        if a.state == AgentState::Ringing {
            let other = self.cancel_agent_ring(now, to);
            if let Some(other) = other {
                self.route_call(now, other);
            }
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = CallState::Talking {
                agent: to,
                answered: now,
            };
        }
        self.set_state(now, to, AgentState::Talking, None);
        let a = self.agent_mut(to);
        a.call = Some(call);
        a.call_queue = Some(q);
        a.handle_started = Some((now, q));
        Ok(())
    }

    fn requeue(
        &mut self,
        now: Instant,
        call: CallId,
        queue: &str,
        at_head: bool,
    ) -> Result<(), AcdError> {
        let c = self
            .calls
            .get(&call)
            .ok_or(AcdError::UnknownCall { call })?;
        let (old, key) = (c.queue, c.key);
        let talking = match c.state {
            CallState::Talking { agent, answered } => Some(Some((agent, answered))),
            CallState::Released => Some(None),
            CallState::Waiting { .. } => None,
        };
        let q = self.configured_queue(queue)?;
        let mut freed = None;
        match talking {
            Some(Some((agent, answered))) => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.state = CallState::Released;
                }
                self.call_left_agent(now, call, agent, answered);
            }
            Some(None) => {}
            None => {
                freed = self.stop_ring(call);
                if let Some(slot) = freed {
                    self.cancel_ring_output(call, slot);
                }
                self.queues[old].waiting.remove(&key);
                self.queues[old].routable.remove(&key);
            }
        }
        self.enter_queue(now, call, q, at_head);
        if let Some(slot) = freed {
            self.set_state(now, slot, AgentState::Available, None);
            self.route_agent(now, slot);
        }
        Ok(())
    }

    // ---- timers ----

    fn timer_live(&self, t: &Timer) -> bool {
        match t.kind {
            TimerKind::Agent(slot) => self
                .agents
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|a| a.timer_token == t.token),
            TimerKind::Ring(call) => self.calls.get(&call).is_some_and(
                |c| matches!(&c.state, CallState::Waiting { ring: Some(r) } if r.token == t.token),
            ),
            TimerKind::Escalate(call) => self
                .calls
                .get(&call)
                .is_some_and(|c| c.escalate_token == t.token),
            TimerKind::Retry(call) => self
                .calls
                .get(&call)
                .is_some_and(|c| c.retry.is_some_and(|(_, tok)| tok == t.token)),
        }
    }

    fn fire(&mut self, now: Instant, kind: TimerKind) {
        match kind {
            TimerKind::Agent(slot) => {
                self.agent_mut(slot).timer_token = 0;
                match self.agent_mut(slot).state {
                    AgentState::WrapUp => self.become_available(now, slot),
                    AgentState::Paused => {
                        let agent = self.agent_mut(slot).id.clone();
                        self.event(AcdEvent::PauseLimitReached { agent });
                        self.set_state(now, slot, AgentState::LoggedOut, None);
                    }
                    _ => {}
                }
            }
            TimerKind::Ring(call) => {
                if let Some(slot) = self.stop_ring(call) {
                    self.cancel_ring_output(call, slot);
                    self.missed(now, call, slot, true);
                }
            }
            TimerKind::Escalate(call) => {
                self.arm_escalation(now, call);
                self.route_call(now, call);
            }
            TimerKind::Retry(call) => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.retry = None;
                    c.backoff.retain(|&(_, until)| until > now);
                }
                self.route_call(now, call);
            }
        }
    }

    fn schedule(&mut self, at: Option<Instant>, kind: TimerKind) -> u64 {
        // A deadline beyond what `Instant` can hold never fires.
        let Some(at) = at else { return 0 };
        let token = self.next_seq();
        self.timers.push(Reverse(Timer { at, token, kind }));
        token
    }

    /// Drops dead timers from the top so that `poll_timeout` names a live one.
    fn purge_timers(&mut self) {
        while let Some(&Reverse(t)) = self.timers.peek() {
            if self.timer_live(&t) {
                break;
            }
            self.timers.pop();
        }
    }

    fn arm_escalation(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let queue = &self.queues[c.queue];
        let step = queue.config.secondary_after;
        let mut at = None;
        if queue.max_level >= 2 && !step.is_zero() && matches!(c.state, CallState::Waiting { .. }) {
            let waited = now.saturating_duration_since(c.entered);
            let next = waited.as_nanos() / step.as_nanos() + 1;
            if next < u128::from(queue.max_level) {
                // `next` < 255 here.
                let k = u32::try_from(next).unwrap_or(u32::MAX);
                at = c.entered.checked_add(step.saturating_mul(k));
            }
        }
        let token = self.schedule(at, TimerKind::Escalate(call));
        if let Some(c) = self.calls.get_mut(&call) {
            c.escalate_token = token;
        }
    }

    fn arm_retry(&mut self, call: CallId, at: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.retry.is_some_and(|(t, _)| t <= at) {
            return;
        }
        let token = self.schedule(Some(at), TimerKind::Retry(call));
        if let Some(c) = self.calls.get_mut(&call) {
            c.retry = Some((at, token));
        }
    }

    // ---- routing ----

    /// Puts a known call into queue `q` (as a new entry) and routes it.
    fn enter_queue(&mut self, now: Instant, call: CallId, q: usize, at_head: bool) {
        let seq = self.next_seq();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.queue = q;
        c.at_head = at_head;
        c.entered = now;
        c.key = CallKey::new(at_head, c.priority, seq);
        c.state = CallState::Waiting { ring: None };
        c.backoff.clear();
        c.retry = None;
        let (key, topic, priority) = (c.key, c.topic.clone(), c.priority);
        let queue = &mut self.queues[q];
        queue.waiting.insert(key, call);
        queue.routable.insert(key, call);
        let name = queue.config.name.clone();
        let nobody = queue.logged_in() == 0;
        self.event(AcdEvent::Entered {
            call,
            queue: name.clone(),
            topic,
            priority,
        });
        if nobody {
            self.event(AcdEvent::NoAgentsLoggedIn { call, queue: name });
        }
        self.arm_escalation(now, call);
        self.route_call(now, call);
    }

    /// Offers a routable call to the best eligible idle agent: lowest level, then longest idle.
    fn route_call(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if !c.is_routable() {
            return;
        }
        let queue = &self.queues[c.queue];
        let allowed = allowed_level(&queue.config, now.saturating_duration_since(c.entered));
        let mut found = None;
        let mut retry: Option<Instant> = None;
        'levels: for set in queue.idle.iter().take(usize::from(allowed)) {
            for &(_, slot) in set {
                if let Some(until) = c.excluded(slot, now) {
                    retry = Some(retry.map_or(until, |r| r.min(until)));
                    continue;
                }
                found = Some(slot);
                break 'levels;
            }
        }
        match (found, retry) {
            (Some(slot), _) => self.ring(now, call, slot),
            (None, Some(at)) => self.arm_retry(call, at),
            (None, None) => {}
        }
    }

    /// Lets an idle agent take the best eligible call across its queues.
    fn route_agent(&mut self, now: Instant, slot: usize) {
        let Some(Some(a)) = self.agents.get(slot) else {
            return;
        };
        if !a.idle {
            return;
        }
        let mut best: Option<(CallKey, CallId)> = None;
        let mut retries = Vec::new();
        for &(q, level) in &a.skills {
            let queue = &self.queues[q];
            let threshold = queue
                .config
                .secondary_after
                .saturating_mul(u32::from(level.saturating_sub(1)));
            let Some(cutoff) = now.checked_sub(threshold) else {
                continue;
            };
            let mut start = CallKey { group: 0, seq: 0 };
            let mut candidate = None;
            'seek: loop {
                for (&key, &call) in queue.routable.range(start..) {
                    if best.is_some_and(|(b, _)| b.group < key.group) {
                        break 'seek; // cannot beat the best call of another queue
                    }
                    let Some(c) = self.calls.get(&call) else {
                        continue;
                    };
                    if c.entered > cutoff {
                        // The rest of this priority group is younger still: skip to the next.
                        match key.group.checked_add(1) {
                            Some(group) => {
                                start = CallKey { group, seq: 0 };
                                continue 'seek;
                            }
                            None => break 'seek,
                        }
                    }
                    if let Some(until) = c.excluded(slot, now) {
                        retries.push((call, until));
                        continue;
                    }
                    candidate = Some((key, call));
                    break 'seek;
                }
                break;
            }
            if let Some((key, call)) = candidate {
                if best.is_none_or(|(b, _)| key < b) {
                    best = Some((key, call));
                }
            }
        }
        for (call, until) in retries {
            self.arm_retry(call, until);
        }
        if let Some((_, call)) = best {
            self.ring(now, call, slot);
        }
    }

    /// After a reload: every idle agent, longest idle first, takes what it may.
    fn reroute_all(&mut self, now: Instant) {
        let mut idle: Vec<(u64, usize)> = self
            .agents
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| {
                a.as_ref()
                    .filter(|a| a.idle)
                    .map(|a| (a.available_seq, slot))
            })
            .collect();
        idle.sort_unstable();
        for (_, slot) in idle {
            self.route_agent(now, slot);
        }
        let calls: Vec<CallId> = self.calls.keys().copied().collect();
        for call in calls {
            if self
                .calls
                .get(&call)
                .is_some_and(|c| matches!(c.state, CallState::Waiting { .. }))
            {
                self.arm_escalation(now, call);
            }
        }
    }

    fn ring(&mut self, now: Instant, call: CallId, slot: usize) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let q = c.queue;
        let timeout = self.queues[q].config.ring_timeout;
        let token = self.schedule(now.checked_add(timeout), TimerKind::Ring(call));
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.state = CallState::Waiting {
            ring: Some(Ring {
                agent: slot,
                started: now,
                token,
            }),
        };
        let (key, wait, topic) = (
            c.key,
            now.saturating_duration_since(c.entered),
            c.topic.clone(),
        );
        let queue = &mut self.queues[q];
        queue.routable.remove(&key);
        let queue = queue.config.name.clone();
        let a = self.agent_mut(slot);
        a.call = Some(call);
        a.call_queue = Some(q);
        let agent = a.id.clone();
        self.outputs.push_back(Output::Ring {
            call,
            agent: agent.clone(),
            queue,
            wait,
            topic,
        });
        self.event(AcdEvent::Ringing { call, agent });
        self.set_state(now, slot, AgentState::Ringing, None);
    }

    /// Takes the ring off a call (which becomes routable again); returns the agent's slot.
    /// The agent keeps its state; the caller decides the next one.
    fn stop_ring(&mut self, call: CallId) -> Option<usize> {
        let c = self.calls.get_mut(&call)?;
        let CallState::Waiting { ring } = &mut c.state else {
            return None;
        };
        let r = ring.take()?;
        let (q, key) = (c.queue, c.key);
        self.queues[q].routable.insert(key, call);
        let a = self.agent_mut(r.agent);
        a.call = None;
        a.call_queue = None;
        Some(r.agent)
    }

    /// Cancels the ring an agent has (if any) and says so to the driver.
    fn cancel_agent_ring(&mut self, _now: Instant, slot: usize) -> Option<CallId> {
        let call = self.agent_mut(slot).call?;
        let freed = self.stop_ring(call)?;
        self.cancel_ring_output(call, freed);
        Some(call)
    }

    fn cancel_ring_output(&mut self, call: CallId, slot: usize) {
        let agent = self.agent_mut(slot).id.clone();
        self.outputs.push_back(Output::CancelRing { call, agent });
    }

    /// A ring ended unanswered (timeout or failed leg); the ring is already stopped when
    /// `stopped`.
    fn missed(&mut self, now: Instant, call: CallId, slot: usize, stopped: bool) {
        let started = match self.calls.get(&call).map(|c| &c.state) {
            Some(CallState::Waiting { ring: Some(r) }) => r.started,
            _ => self
                .agents
                .get(slot)
                .and_then(Option::as_ref)
                .and_then(|a| a.since)
                .unwrap_or(now),
        };
        if !stopped {
            self.stop_ring(call);
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.backoff.retain(|&(_, until)| until > now);
            if let Some(until) = now.checked_add(RETRY_BACKOFF) {
                c.backoff.push((slot, until));
            }
        }
        let limit = self.no_answer_limit;
        let a = self.agent_mut(slot);
        a.missed_in_row = a.missed_in_row.saturating_add(1);
        let paused = limit > 0 && a.missed_in_row >= limit;
        let agent = a.id.clone();
        self.event(AcdEvent::NoAnswer {
            call,
            agent,
            rang: now.saturating_duration_since(started),
        });
        if paused {
            self.pause(now, slot, NO_ANSWER_REASON.to_owned());
        } else {
            self.set_state(now, slot, AgentState::Available, None);
        }
        self.route_call(now, call);
        self.route_agent(now, slot);
    }

    /// The call left its agent after talking (ended, released, requeued).
    fn call_left_agent(&mut self, now: Instant, call: CallId, slot: usize, answered: Instant) {
        let a = self.agent_mut(slot);
        let q = a.call_queue.take();
        a.call = None;
        let agent = a.id.clone();
        let pending = std::mem::replace(&mut a.pending, Pending::None);
        let removed = a.removed;
        self.event(AcdEvent::Ended {
            call,
            agent,
            talk: now.saturating_duration_since(answered),
        });
        if removed {
            self.set_state(now, slot, AgentState::LoggedOut, None);
            self.drop_agent(slot);
            return;
        }
        match pending {
            Pending::Logout => self.set_state(now, slot, AgentState::LoggedOut, None),
            Pending::Pause(reason) => self.pause(now, slot, reason),
            Pending::None => {
                let wrap = q.map_or(Duration::ZERO, |q| self.queues[q].config.wrap_up);
                if wrap.is_zero() {
                    self.become_available(now, slot);
                } else {
                    self.set_state(now, slot, AgentState::WrapUp, None);
                    let a = self.agent_mut(slot);
                    a.call = Some(call);
                    a.call_queue = q;
                    let token = self.schedule(now.checked_add(wrap), TimerKind::Agent(slot));
                    self.agent_mut(slot).timer_token = token;
                }
            }
        }
    }

    // ---- agent state ----

    fn become_available(&mut self, now: Instant, slot: usize) {
        self.set_state(now, slot, AgentState::Available, None);
        self.route_agent(now, slot);
    }

    fn pause(&mut self, now: Instant, slot: usize, reason: String) {
        self.set_state(now, slot, AgentState::Paused, Some(reason));
        let token = self.schedule(now.checked_add(self.pause_limit), TimerKind::Agent(slot));
        self.agent_mut(slot).timer_token = token;
    }

    /// Changes state: counts, the idle sets, timers, handle time, and the event.
    fn set_state(&mut self, now: Instant, slot: usize, state: AgentState, reason: Option<String>) {
        let seq = self.next_seq();
        let Some(Some(a)) = self.agents.get_mut(slot) else {
            return;
        };
        let old = a.state;
        a.state = state;
        a.since = Some(now);
        a.timer_token = 0;
        a.paused_reason = reason.clone();
        if state == AgentState::Available {
            a.available_seq = seq;
            a.idle_since = Some(now);
        }
        if !matches!(
            state,
            AgentState::Ringing | AgentState::Talking | AgentState::WrapUp
        ) {
            a.call = None;
            a.call_queue = None;
        }
        let handled = match state {
            AgentState::Talking | AgentState::WrapUp => None,
            _ => a.handle_started.take(),
        };
        let agent = a.id.clone();
        for &(q, _) in &a.skills {
            let counts = &mut self.queues[q].counts;
            counts[old.index()] = counts[old.index()].saturating_sub(1);
            counts[state.index()] += 1;
        }
        if let Some((started, q)) = handled {
            let secs = now.saturating_duration_since(started).as_secs_f64();
            let avg = &mut self.queues[q].handle_avg;
            *avg = Some(avg.map_or(secs, |v| v + AVERAGE_WEIGHT * (secs - v)));
        }
        self.event(AcdEvent::AgentState {
            agent,
            state,
            reason,
        });
        self.sync_idle(slot);
    }

    /// Puts the agent into or takes it out of its queues' idle sets.
    fn sync_idle(&mut self, slot: usize) {
        let Some(Some(a)) = self.agents.get_mut(slot) else {
            return;
        };
        let should = a.state == AgentState::Available && a.reachable && !a.busy;
        if should == a.idle {
            return;
        }
        a.idle = should;
        let entry = (a.available_seq, slot);
        for &(q, level) in &a.skills {
            let Some(set) = self.queues[q].idle.get_mut(usize::from(level) - 1) else {
                continue;
            };
            if should {
                set.insert(entry);
            } else {
                set.remove(&entry);
            }
        }
    }

    fn drop_agent(&mut self, slot: usize) {
        if let Some(a) = self.agents.get_mut(slot).and_then(Option::take) {
            if self.agent_ids.get(&a.id) == Some(&slot) {
                self.agent_ids.remove(&a.id);
            }
        }
    }

    // ---- configuration ----

    fn apply_config(&mut self, now: Option<Instant>, config: AcdConfig) {
        self.no_answer_limit = config.no_answer_limit;
        self.pause_limit = config.pause_limit;
        for q in &mut self.queues {
            q.configured = false;
        }
        for qc in config.queues {
            match self.queue_ids.get(&qc.name) {
                Some(&q) if self.queues[q].configured => {} // a duplicate: the first wins
                Some(&q) => {
                    self.queues[q].config = qc;
                    self.queues[q].configured = true;
                }
                None => {
                    self.queue_ids.insert(qc.name.clone(), self.queues.len());
                    self.queues.push(Queue::new(qc));
                }
            }
        }
        // Take every agent out of the indexes; they are rebuilt below.
        for q in &mut self.queues {
            q.idle.clear();
            q.counts = [0; 6];
            q.max_level = 0;
        }
        for a in self.agents.iter_mut().flatten() {
            a.idle = false;
        }
        let mut seen = std::collections::HashSet::new();
        for ac in config.agents {
            if !seen.insert(ac.id.clone()) {
                continue;
            }
            let mut skills: Vec<(usize, u8)> = Vec::new();
            for s in &ac.skills {
                let Some(&q) = self.queue_ids.get(&s.queue) else {
                    continue;
                };
                if !self.queues[q].configured {
                    continue;
                }
                let level = s.level.max(1);
                match skills.iter_mut().find(|(sq, _)| *sq == q) {
                    Some(existing) => existing.1 = existing.1.min(level),
                    None => skills.push((q, level)),
                }
            }
            match self.agent_ids.get(&ac.id) {
                Some(&slot) => {
                    if let Some(Some(a)) = self.agents.get_mut(slot) {
                        a.display_name = ac.display_name;
                        a.skills = skills;
                        a.removed = false;
                    }
                }
                None => {
                    self.agent_ids.insert(ac.id.clone(), self.agents.len());
                    self.agents.push(Some(Agent {
                        id: ac.id,
                        display_name: ac.display_name,
                        skills,
                        state: AgentState::LoggedOut,
                        since: None,
                        reachable: true,
                        busy: false,
                        available_seq: 0,
                        idle_since: None,
                        idle: false,
                        call: None,
                        call_queue: None,
                        paused_reason: None,
                        missed_in_row: 0,
                        timer_token: 0,
                        handle_started: None,
                        pending: Pending::None,
                        removed: false,
                    }));
                }
            }
        }
        // Agents no longer configured.
        let gone: Vec<usize> = self
            .agents
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| a.as_ref().filter(|a| !seen.contains(&a.id)).map(|_| slot))
            .collect();
        for slot in gone {
            let a = self.agent_mut(slot);
            a.skills.clear();
            match (a.state, now) {
                (AgentState::Talking, _) => a.removed = true,
                (AgentState::LoggedOut, _) | (_, None) => self.drop_agent(slot),
                (_, Some(now)) => {
                    let call = self.cancel_agent_ring(now, slot);
                    self.set_state(now, slot, AgentState::LoggedOut, None);
                    self.drop_agent(slot);
                    if let Some(call) = call {
                        self.route_call(now, call);
                    }
                }
            }
        }
        // Rebuild counts, levels and idle sets.
        for slot in 0..self.agents.len() {
            let Some(Some(a)) = self.agents.get(slot) else {
                continue;
            };
            let state = a.state;
            for &(q, level) in &a.skills {
                let queue = &mut self.queues[q];
                queue.counts[state.index()] += 1;
                queue.max_level = queue.max_level.max(level);
                if queue.idle.len() < usize::from(level) {
                    queue.idle.resize_with(usize::from(level), BTreeSet::new);
                }
            }
            self.sync_idle(slot);
        }
    }

    // ---- helpers ----

    fn clamp(&mut self, now: Instant) -> Instant {
        let now = match self.last_now {
            Some(last) if last > now => last,
            _ => now,
        };
        self.last_now = Some(now);
        now
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn event(&mut self, event: AcdEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn slot(&self, id: &str) -> Result<usize, AcdError> {
        self.agent_ids
            .get(id)
            .copied()
            .filter(|&s| self.agents.get(s).is_some_and(Option::is_some))
            .ok_or_else(|| AcdError::UnknownAgent {
                agent: id.to_owned(),
            })
    }

    /// The agent in a slot known to be live.
    fn agent_mut(&mut self, slot: usize) -> &mut Agent {
        // Invariant: every slot passed here came from `slot()` or a call/ring/timer that
        // refers to a live agent (removal cancels rings and waits for calls to end).
        #[allow(clippy::expect_used)]
        self.agents
            .get_mut(slot)
            .and_then(Option::as_mut)
            .expect("agent slot is live")
    }

    fn expect_state(&mut self, slot: usize, state: AgentState) -> Result<(), AcdError> {
        if self.agent_mut(slot).state == state {
            Ok(())
        } else {
            Err(self.wrong_state(slot))
        }
    }

    fn wrong_state(&mut self, slot: usize) -> AcdError {
        let a = self.agent_mut(slot);
        AcdError::WrongState {
            agent: a.id.clone(),
            state: a.state,
        }
    }

    fn configured_queue(&self, name: &str) -> Result<usize, AcdError> {
        self.queue_ids
            .get(name)
            .copied()
            .filter(|&q| self.queues[q].configured)
            .ok_or_else(|| AcdError::UnknownQueue {
                queue: name.to_owned(),
            })
    }

    fn ringing_slot(&self, call: CallId, id: &str) -> Result<usize, AcdError> {
        let c = self
            .calls
            .get(&call)
            .ok_or(AcdError::UnknownCall { call })?;
        let slot = self.slot(id)?;
        match &c.state {
            CallState::Waiting { ring: Some(r) } if r.agent == slot => Ok(slot),
            _ => Err(AcdError::NotRinging {
                call,
                agent: id.to_owned(),
            }),
        }
    }

    fn agent_view(&self, a: &Agent) -> AgentView {
        let queues = if a.state == AgentState::LoggedOut {
            Vec::new()
        } else {
            a.skills
                .iter()
                .map(|&(q, _)| self.queues[q].config.name.clone())
                .collect()
        };
        AgentView {
            id: a.id.clone(),
            display_name: a.display_name.clone(),
            state: a.state,
            since: a.since,
            idle_since: a.idle_since,
            reachable: a.reachable,
            call: a.call,
            queue: a.call_queue.map(|q| self.queues[q].config.name.clone()),
            paused_reason: a.paused_reason.clone(),
            missed_in_row: a.missed_in_row,
            queues,
            logout_pending: a.pending == Pending::Logout,
            pause_pending: match &a.pending {
                Pending::Pause(r) => Some(r.clone()),
                _ => None,
            },
        }
    }

    fn queue_view(&self, q: &Queue) -> QueueView {
        QueueView {
            name: q.config.name.clone(),
            display: q.config.display.clone(),
            waiting: q.waiting.values().copied().collect(),
            longest_waiting_since: q
                .waiting
                .values()
                .filter_map(|c| self.calls.get(c).map(|c| c.entered))
                .min(),
            agents: AgentCounts::from_array(q.counts),
            average_handle: q.handle_avg.map(Duration::from_secs_f64),
            configured: q.configured,
        }
    }
}

#[cfg(test)]
impl Acd {
    /// Panics if the indexes disagree with the states, or if an idle agent could take a
    /// routable call it is eligible for (routing must never leave such a pair behind).
    pub(crate) fn assert_invariants(&self, now: Instant) {
        for (slot, a) in self.agents.iter().enumerate() {
            let Some(a) = a else { continue };
            assert_eq!(
                a.idle,
                a.state == AgentState::Available && a.reachable && !a.busy,
                "{}",
                a.id
            );
            for &(q, level) in &a.skills {
                let set = &self.queues[q].idle[usize::from(level) - 1];
                assert_eq!(set.contains(&(a.available_seq, slot)), a.idle, "{}", a.id);
            }
            if a.state == AgentState::Ringing {
                let call = a.call.expect("a ringing agent has a call");
                let c = &self.calls[&call];
                assert!(
                    matches!(&c.state, CallState::Waiting { ring: Some(r) } if r.agent == slot)
                );
            }
        }
        for (q, queue) in self.queues.iter().enumerate() {
            let mut counts = [0u32; 6];
            for a in self.agents.iter().flatten() {
                if a.skills.iter().any(|&(sq, _)| sq == q) {
                    counts[a.state.index()] += 1;
                }
            }
            assert_eq!(counts, queue.counts, "counts of {}", queue.config.name);
            for (key, call) in &queue.routable {
                let c = &self.calls[call];
                assert!(c.is_routable() && c.key == *key && c.queue == q);
                let allowed =
                    allowed_level(&queue.config, now.saturating_duration_since(c.entered));
                for (i, set) in queue.idle.iter().enumerate().take(usize::from(allowed)) {
                    for &(_, slot) in set {
                        assert!(
                            c.excluded(slot, now).is_some(),
                            "{call} waits in {} while level {} agent slot {slot} is idle",
                            queue.config.name,
                            i + 1
                        );
                    }
                }
            }
        }
    }
}

/// The highest skill level that may be offered a call that has waited `waited`:
/// level n once it has waited (n-1) × secondary_after.
fn allowed_level(config: &QueueConfig, waited: Duration) -> u8 {
    let step = config.secondary_after.as_nanos();
    if step == 0 {
        return u8::MAX;
    }
    let steps = (waited.as_nanos() / step).min(254);
    // `steps` ≤ 254, so this fits.
    u8::try_from(steps + 1).unwrap_or(u8::MAX)
}
