//! The interpreter: one per call, sans-IO. Events in, actions out, timers as instants.

use core::fmt;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Zoned;
use kald_core::Cpr;

use crate::flow::{Flow, Kind, NodeIdx, Validator};
use crate::hours::{Opening, CLOSED, HOLIDAY};

/// How many nodes a call may pass without waiting for the caller before the flow is deemed
/// broken (e.g. `goto`/`branch` nodes that only lead to each other); the call is then hung up.
const MAX_STEPS_WITHOUT_INPUT: usize = 64;

/// Something that happened on the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The call was answered: the flow starts.
    Answered,
    /// The queue connected the caller to an agent; the flow is over (no queue fallback).
    Connected,
    /// The caller pressed a key (`0`-`9`, `*`, `#`; `A`-`D` and others are ignored).
    Digit(char),
    /// The caller hung up.
    Hangup,
    /// The last [`Action::Play`] finished playing (not sent for a playback that was stopped).
    PromptFinished,
}

/// Something the driver must do.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Put the caller in a skill queue (the ACD's job from here; hold music meanwhile).
    Enqueue {
        /// The queue (team) name.
        queue: String,
        /// What the call is about, for the agent's screen and statistics.
        topic: String,
        /// Prompt name of the hold music, if the node names one.
        hold_music: Option<String>,
        /// How long the caller may wait before the flow takes the call back
        /// ([`Action::LeaveQueue`] then follows); `None` = as long as it takes.
        max_wait: Option<Duration>,
        /// How often to announce the caller's position (prompts `queue-position` +
        /// `position-N`), if at all.
        announce_every: Option<Duration>,
        /// Queue priority 0-9 (higher is served first); never depends on consent.
        priority: u8,
    },
    /// End the call.
    Hangup,
    /// Take the caller out of the queue: the maximum wait has passed.
    LeaveQueue,
    /// Play prompts in order, then send [`Input::PromptFinished`]; only sent when nothing plays.
    Play {
        /// Prompt names, in order.
        prompts: Vec<String>,
        /// Whether a key press should stop the playback (the interpreter then sends
        /// [`Action::StopPlayback`] itself).
        barge_in: bool,
        /// The prompts read back digits of a CPR number: do not log them. `Debug` hides them.
        sensitive: bool,
    },
    /// Record a message for a team (kept under the recordings' rules); ends with
    /// [`Action::StopRecording`] or the caller hanging up.
    RecordMessage {
        /// The team that gets the message.
        team: String,
        /// The longest message to record.
        max_len: Duration,
    },
    /// Stop the current playback at once; no [`Input::PromptFinished`] is expected for it.
    StopPlayback,
    /// Stop recording the message (the caller pressed `#` or the time is up).
    StopRecording,
    /// Transfer the call to an allowed target; the flow is over.
    Transfer {
        /// A number or SIP URI from the flow's transfer allowlist.
        target: String,
    },
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Enqueue {
                queue,
                topic,
                hold_music,
                max_wait,
                announce_every,
                priority,
            } => f
                .debug_struct("Enqueue")
                .field("queue", queue)
                .field("topic", topic)
                .field("hold_music", hold_music)
                .field("max_wait", max_wait)
                .field("announce_every", announce_every)
                .field("priority", priority)
                .finish(),
            Self::Hangup => f.write_str("Hangup"),
            Self::LeaveQueue => f.write_str("LeaveQueue"),
            Self::Play {
                prompts,
                barge_in,
                sensitive,
            } => {
                let mut s = f.debug_struct("Play");
                if *sensitive {
                    s.field(
                        "prompts",
                        &format_args!("<{} prompts, redacted>", prompts.len()),
                    );
                } else {
                    s.field("prompts", prompts);
                }
                s.field("barge_in", barge_in)
                    .field("sensitive", sensitive)
                    .finish()
            }
            Self::RecordMessage { team, max_len } => f
                .debug_struct("RecordMessage")
                .field("team", team)
                .field("max_len", max_len)
                .finish(),
            Self::StopPlayback => f.write_str("StopPlayback"),
            Self::StopRecording => f.write_str("StopRecording"),
            Self::Transfer { target } => {
                f.debug_struct("Transfer").field("target", target).finish()
            }
        }
    }
}

/// The caller's answer to the recording question; only [`Consent::Yes`] allows recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Consent {
    /// The caller pressed the "no" key.
    No,
    /// No valid answer (silence or another key): counts as no.
    NoAnswer,
    /// The caller pressed the "yes" key.
    Yes,
}

impl Consent {
    /// Whether the call may be recorded.
    pub fn allows_recording(self) -> bool {
        self == Self::Yes
    }
}

impl fmt::Display for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::No => "no",
            Self::NoAnswer => "no answer (counts as no)",
            Self::Yes => "yes",
        })
    }
}

/// How the call left the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndedBy {
    /// The caller hung up while in the flow (the last visited node is where).
    CallerHangup,
    /// The flow went round without waiting for the caller too often (or hit a missing node);
    /// the call was hung up. A checked flow should never get here.
    FlowError,
    /// A `hangup` node ended the call.
    Hangup,
    /// The call was put in a queue.
    Queue,
    /// The call was transferred.
    Transfer,
}

impl fmt::Display for EndedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CallerHangup => "the caller hung up",
            Self::FlowError => "a flow error (hung up)",
            Self::Hangup => "hangup",
            Self::Queue => "queue",
            Self::Transfer => "transfer",
        })
    }
}

/// What happened in the flow, for the call record. `Debug` never shows the CPR number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// Ids of the nodes visited, in order (a node retried by going back to it appears again).
    pub path: Vec<String>,
    /// What the last `hours` node found (open in which mode, closed, holiday).
    pub opening: Option<Opening>,
    /// The answer to the recording question; `None` if it was not asked.
    pub consent: Option<Consent>,
    /// The CPR number the caller typed, if a `cpr` validator accepted one (redacted `Debug`).
    pub cpr: Option<Cpr>,
    /// How many CPR entries the caller made (valid or not, incl. silent ones).
    pub cpr_attempts: u32,
    /// Keys chosen in menus, as (node id, key), in order.
    pub menu_choices: Vec<(String, char)>,
    /// What the call is about (set by a `set` node on `topic` or by the queue node).
    pub topic: Option<String>,
    /// The queue the call was put in.
    pub queue: Option<String>,
    /// The transfer target.
    pub transfer: Option<String>,
    /// The team a message was recorded for.
    pub message_team: Option<String>,
    /// Call fields set by `set` nodes and `collect` nodes with `field` (never the CPR).
    pub fields: BTreeMap<String, String>,
    /// How the call left the flow; `None` while it is still in it.
    pub ended_by: Option<EndedBy>,
}

/// The timers an interpreter can have running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// No (further) key within the node's timeout or inter-digit timeout.
    Input,
    /// A `collect` node's overall time limit.
    Overall,
    /// A queue's maximum wait.
    Queue,
    /// A message's maximum length.
    Recording,
}

impl Timer {
    const ALL: [Self; 4] = [Self::Input, Self::Overall, Self::Queue, Self::Recording];
}

/// What to do when prompts finish (or a key barges in).
#[derive(Clone, Copy, Debug)]
enum Then {
    Enter(NodeIdx),
    Enqueue(NodeIdx),
    Hangup,
    Record(NodeIdx),
    Transfer(NodeIdx),
}

enum State {
    NotAnswered,
    Playing {
        then: Then,
        barge_in: bool,
    },
    Menu {
        node: NodeIdx,
        failures: u32,
    },
    Consent {
        node: NodeIdx,
        failures: u32,
    },
    Collect {
        node: NodeIdx,
        failures: u32,
        digits: String,
    },
    Queued {
        node: NodeIdx,
    },
    Recording {
        node: NodeIdx,
    },
    Done,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::NotAnswered => "NotAnswered",
            Self::Playing { .. } => "Playing",
            Self::Menu { .. } => "Menu",
            Self::Consent { .. } => "Consent",
            Self::Collect { .. } => "Collect",
            Self::Queued { .. } => "Queued",
            Self::Recording { .. } => "Recording",
            Self::Done => "Done",
        }
    }
}

/// Runs one call through a flow, without I/O or a clock.
///
/// Call order, as for kald's other cores: feed each event with [`handle`](Self::handle) (or
/// [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)'s instant
/// has come), then drain [`poll_action`](Self::poll_action) until it returns `None`, then ask
/// `poll_timeout` again. Time must only move forward; a spurious `handle_timeout` does nothing.
///
/// ```
/// # use std::{sync::Arc, time::Instant};
/// # use kald_ivr::{Action, Input, Interpreter};
/// let flow = kald_ivr::load_str("demo", r#"
///     start = "bye"
///     [nodes.bye]
///     kind = "hangup"
///     prompt = "goodbye"
/// "#).unwrap();
/// let mut call = Interpreter::new(Arc::new(flow));
/// let (now, wall) = (Instant::now(), "2026-11-23T09:15[Europe/Copenhagen]".parse().unwrap());
/// call.handle(now, &wall, Input::Answered);
/// assert!(matches!(call.poll_action(), Some(Action::Play { .. })));
/// call.handle(now, &wall, Input::PromptFinished);
/// assert_eq!(call.poll_action(), Some(Action::Hangup));
/// ```
pub struct Interpreter {
    flow: Arc<Flow>,
    state: State,
    /// A [`Action::Play`] was sent and has neither finished nor been stopped.
    playing: bool,
    timers: [Option<Instant>; Timer::ALL.len()],
    actions: VecDeque<Action>,
    outcome: Outcome,
    /// Until when a `#` is ignored: callers told to end a number with `#` press it after the
    /// last digit, when the entry already ended by reaching its maximum length.
    ignore_hash_until: Option<Instant>,
}

impl fmt::Debug for Interpreter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Typed digits may be a CPR number: only their count is shown.
        let digits = match &self.state {
            State::Collect { digits, .. } => digits.len(),
            _ => 0,
        };
        f.debug_struct("Interpreter")
            .field("flow", &self.flow.name)
            .field("state", &self.state.name())
            .field("node", &self.outcome.path.last())
            .field("digits_typed", &digits)
            .field("playing", &self.playing)
            .field("timers", &self.timers)
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl Interpreter {
    /// A call at the start of `flow`, waiting for [`Input::Answered`].
    pub fn new(flow: Arc<Flow>) -> Self {
        Self {
            flow,
            state: State::NotAnswered,
            playing: false,
            timers: [None; Timer::ALL.len()],
            actions: VecDeque::new(),
            outcome: Outcome::default(),
            ignore_hash_until: None,
        }
    }

    /// The flow this call runs (the version it started with, even after a reload).
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// What has happened so far; final once [`is_finished`](Self::is_finished).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// Whether no input can change anything any more.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether keys pressed now are digits of a CPR number, which the driver must not log.
    pub fn digits_are_sensitive(&self) -> bool {
        match &self.state {
            State::Collect { node, .. } => matches!(
                self.flow.node(*node).map(|n| &n.kind),
                Some(Kind::Collect(c)) if c.validator == Some(Validator::Cpr)
            ),
            _ => false,
        }
    }

    /// Feeds an event. `wall` is the current wall-clock time, used by `hours` nodes.
    pub fn handle(&mut self, now: Instant, wall: &Zoned, input: Input) {
        match input {
            Input::Answered => {
                if matches!(self.state, State::NotAnswered) {
                    self.run(now, wall, self.flow.start);
                }
            }
            Input::Connected => {
                if matches!(self.state, State::Queued { .. }) {
                    self.timers = [None; Timer::ALL.len()];
                    self.state = State::Done;
                }
            }
            Input::Digit(c) => self.digit(now, wall, c),
            Input::Hangup => {
                if !matches!(self.state, State::Done) {
                    if self.outcome.ended_by.is_none() {
                        self.outcome.ended_by = Some(EndedBy::CallerHangup);
                    }
                    self.timers = [None; Timer::ALL.len()];
                    self.playing = false;
                    self.state = State::Done;
                }
            }
            Input::PromptFinished => {
                if self.playing {
                    self.playing = false;
                    self.prompt_finished(now, wall);
                }
            }
        }
    }

    /// Fires every timer due at `now`; does nothing if none is.
    pub fn handle_timeout(&mut self, now: Instant, wall: &Zoned) {
        // Each firing can arm new timers, but only later than `now`; the bound is a safety net.
        for _ in 0..(Timer::ALL.len() * 2) {
            let due = Timer::ALL
                .iter()
                .filter_map(|&t| self.timers[t as usize].map(|at| (at, t)))
                .filter(|&(at, _)| at <= now)
                .min_by_key(|&(at, _)| at);
            let Some((_, timer)) = due else {
                return;
            };
            self.timers[timer as usize] = None;
            self.fire(now, wall, timer);
        }
    }

    /// The next action for the driver, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    fn arm(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.timers[timer as usize] = Some(now.checked_add(after).unwrap_or(now));
    }

    fn disarm(&mut self, timer: Timer) {
        self.timers[timer as usize] = None;
    }

    fn play(&mut self, prompts: Vec<String>, barge_in: bool, sensitive: bool) {
        if self.playing {
            self.actions.push_back(Action::StopPlayback);
        }
        self.playing = true;
        self.actions.push_back(Action::Play {
            prompts,
            barge_in,
            sensitive,
        });
    }

    fn stop_playback(&mut self) {
        if self.playing {
            self.playing = false;
            self.actions.push_back(Action::StopPlayback);
        }
    }

    /// Plays `prompts`, then does `then`; with no prompts does it at once.
    fn play_then(
        &mut self,
        now: Instant,
        wall: &Zoned,
        prompts: Vec<String>,
        barge_in: bool,
        sensitive: bool,
        then: Then,
    ) {
        if prompts.is_empty() {
            self.then(now, wall, then);
        } else {
            self.play(prompts, barge_in, sensitive);
            self.state = State::Playing { then, barge_in };
        }
    }

    fn then(&mut self, now: Instant, wall: &Zoned, then: Then) {
        match then {
            Then::Enter(idx) => self.run(now, wall, idx),
            Then::Enqueue(idx) => self.enqueue(now, idx),
            Then::Hangup => self.end(Action::Hangup, EndedBy::Hangup),
            Then::Record(idx) => self.record(now, idx),
            Then::Transfer(idx) => self.transfer(idx),
        }
    }

    fn end(&mut self, action: Action, ended_by: EndedBy) {
        self.stop_playback();
        self.timers = [None; Timer::ALL.len()];
        self.actions.push_back(action);
        self.outcome.ended_by = Some(ended_by);
        self.state = State::Done;
    }

    /// Enters node `idx` and runs through nodes that need no input, until one waits.
    fn run(&mut self, now: Instant, wall: &Zoned, idx: NodeIdx) {
        let flow = Arc::clone(&self.flow);
        let mut idx = idx;
        for _ in 0..MAX_STEPS_WITHOUT_INPUT {
            let Some(node) = flow.node(idx) else {
                break;
            };
            self.outcome.path.push(node.id.clone());
            match &node.kind {
                Kind::Play {
                    prompts,
                    barge_in,
                    next,
                    ..
                } => {
                    if prompts.is_empty() {
                        idx = *next;
                        continue;
                    }
                    self.play(prompts.clone(), *barge_in, false);
                    self.state = State::Playing {
                        then: Then::Enter(*next),
                        barge_in: *barge_in,
                    };
                    return;
                }
                Kind::Menu(m) => {
                    self.play(m.prompts.clone(), m.barge_in, false);
                    self.state = State::Menu {
                        node: idx,
                        failures: 0,
                    };
                    return;
                }
                Kind::Consent(c) => {
                    self.play(c.prompts.clone(), c.barge_in, false);
                    self.state = State::Consent {
                        node: idx,
                        failures: 0,
                    };
                    return;
                }
                Kind::Collect(c) => {
                    self.play(c.prompts.clone(), c.barge_in, false);
                    self.state = State::Collect {
                        node: idx,
                        failures: 0,
                        digits: String::new(),
                    };
                    return;
                }
                Kind::Hours { when } => {
                    let opening = flow.opening_at(wall).unwrap_or(Opening::Closed);
                    let branch = opening.branch().to_owned();
                    self.outcome.opening = Some(opening);
                    let find = |key: &str| when.iter().find(|(k, _)| k == key).map(|(_, t)| *t);
                    let target = find(&branch)
                        .or_else(|| (branch == HOLIDAY).then(|| find(CLOSED)).flatten());
                    match target {
                        Some(t) => idx = t,
                        None => break,
                    }
                }
                Kind::Queue(q) => {
                    let topic = q
                        .topic
                        .clone()
                        .or_else(|| self.outcome.fields.get("topic").cloned())
                        .unwrap_or_else(|| q.queue.clone());
                    self.outcome
                        .fields
                        .insert("topic".to_owned(), topic.clone());
                    self.outcome.topic = Some(topic);
                    self.outcome.queue = Some(q.queue.clone());
                    self.play_then(
                        now,
                        wall,
                        q.prompts.clone(),
                        false,
                        false,
                        Then::Enqueue(idx),
                    );
                    return;
                }
                Kind::Transfer { prompts, .. } => {
                    self.play_then(
                        now,
                        wall,
                        prompts.clone(),
                        false,
                        false,
                        Then::Transfer(idx),
                    );
                    return;
                }
                Kind::Message { prompts, .. } => {
                    self.play_then(now, wall, prompts.clone(), false, false, Then::Record(idx));
                    return;
                }
                Kind::Hangup { prompts } => {
                    self.play_then(now, wall, prompts.clone(), false, false, Then::Hangup);
                    return;
                }
                Kind::Goto { to } => idx = *to,
                Kind::Set { field, value, next } => {
                    self.outcome.fields.insert(field.clone(), value.clone());
                    if field == "topic" {
                        self.outcome.topic = Some(value.clone());
                    }
                    idx = *next;
                }
                Kind::Branch {
                    field,
                    cases,
                    otherwise,
                } => {
                    let value = self.outcome.fields.get(field);
                    idx = cases
                        .iter()
                        .find(|(v, _)| Some(v) == value)
                        .map_or(*otherwise, |(_, t)| *t);
                }
            }
        }
        self.end(Action::Hangup, EndedBy::FlowError);
    }

    fn prompt_finished(&mut self, now: Instant, wall: &Zoned) {
        let flow = Arc::clone(&self.flow);
        match &self.state {
            State::Playing { then, .. } => {
                let then = *then;
                self.then(now, wall, then);
            }
            State::Menu { node, .. } => {
                if let Some(Kind::Menu(m)) = flow.node(*node).map(|n| &n.kind) {
                    self.arm(Timer::Input, now, m.timeout);
                }
            }
            State::Consent { node, .. } => {
                if let Some(Kind::Consent(c)) = flow.node(*node).map(|n| &n.kind) {
                    self.arm(Timer::Input, now, c.timeout);
                }
            }
            State::Collect { node, digits, .. } => {
                if let Some(Kind::Collect(c)) = flow.node(*node).map(|n| &n.kind) {
                    let wait = if digits.is_empty() {
                        c.timeout
                    } else {
                        c.inter_digit_timeout
                    };
                    self.arm(Timer::Input, now, wait);
                    if let Some(overall) = c.overall_timeout {
                        if self.timers[Timer::Overall as usize].is_none() {
                            self.arm(Timer::Overall, now, overall);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn digit(&mut self, now: Instant, wall: &Zoned, key: char) {
        if !(key.is_ascii_digit() || key == '*' || key == '#') {
            return;
        }
        if let Some(until) = self.ignore_hash_until.take() {
            if key == '#' && now <= until {
                return;
            }
        }
        let flow = Arc::clone(&self.flow);
        match &mut self.state {
            State::Playing { then, barge_in } => {
                if *barge_in {
                    let then = *then;
                    self.stop_playback();
                    self.then(now, wall, then);
                }
            }
            State::Menu { node, failures } => {
                let (idx, failures) = (*node, *failures);
                let Some(Kind::Menu(m)) = flow.node(idx).map(|n| &n.kind) else {
                    return;
                };
                if self.playing && !m.barge_in {
                    return;
                }
                self.stop_playback();
                self.disarm(Timer::Input);
                if let Some(&(_, to)) = m.choices.iter().find(|(k, _)| *k == key) {
                    self.outcome
                        .menu_choices
                        .push((flow.nodes[idx.0].id.clone(), key));
                    self.run(now, wall, to);
                } else {
                    self.menu_failed(now, wall, idx, failures, true);
                }
            }
            State::Consent { node, failures } => {
                let (idx, failures) = (*node, *failures);
                let Some(Kind::Consent(c)) = flow.node(idx).map(|n| &n.kind) else {
                    return;
                };
                if self.playing && !c.barge_in {
                    return;
                }
                self.stop_playback();
                self.disarm(Timer::Input);
                if key == c.yes {
                    self.consent_answered(now, wall, idx, Consent::Yes);
                } else if key == c.no {
                    self.consent_answered(now, wall, idx, Consent::No);
                } else {
                    self.consent_failed(now, wall, idx, failures, true);
                }
            }
            State::Collect { node, digits, .. } => {
                let idx = *node;
                let Some(Kind::Collect(c)) = flow.node(idx).map(|n| &n.kind) else {
                    return;
                };
                if self.playing && !c.barge_in {
                    return;
                }
                match key {
                    '*' => {
                        // Start again: forget what was typed and repeat the question.
                        digits.clear();
                        self.disarm(Timer::Input);
                        self.disarm(Timer::Overall);
                        self.play(c.prompts.clone(), c.barge_in, false);
                    }
                    '#' => {
                        self.stop_playback();
                        self.submit(now, wall);
                    }
                    _ => {
                        digits.push(key);
                        let full = digits.len() >= c.max_digits;
                        self.stop_playback();
                        if full {
                            self.ignore_hash_until = now.checked_add(c.inter_digit_timeout);
                            self.submit(now, wall);
                        } else {
                            self.arm(Timer::Input, now, c.inter_digit_timeout);
                            if let Some(overall) = c.overall_timeout {
                                if self.timers[Timer::Overall as usize].is_none() {
                                    self.arm(Timer::Overall, now, overall);
                                }
                            }
                        }
                    }
                }
            }
            State::Recording { node } => {
                if key == '#' {
                    let idx = *node;
                    self.finish_recording(now, wall, idx);
                }
            }
            State::NotAnswered | State::Queued { .. } | State::Done => {}
        }
    }

    fn fire(&mut self, now: Instant, wall: &Zoned, timer: Timer) {
        match (&self.state, timer) {
            (State::Menu { node, failures }, Timer::Input) => {
                let (idx, failures) = (*node, *failures);
                self.menu_failed(now, wall, idx, failures, false);
            }
            (State::Consent { node, failures }, Timer::Input) => {
                let (idx, failures) = (*node, *failures);
                self.consent_failed(now, wall, idx, failures, false);
            }
            (State::Collect { .. }, Timer::Input | Timer::Overall) => {
                self.stop_playback();
                self.submit(now, wall);
            }
            (State::Queued { node }, Timer::Queue) => {
                let idx = *node;
                let flow = Arc::clone(&self.flow);
                if let Some(Kind::Queue(q)) = flow.node(idx).map(|n| &n.kind) {
                    if let Some(fallback) = q.fallback {
                        self.actions.push_back(Action::LeaveQueue);
                        self.outcome.ended_by = None;
                        self.run(now, wall, fallback);
                    }
                }
            }
            (State::Recording { node }, Timer::Recording) => {
                let idx = *node;
                self.finish_recording(now, wall, idx);
            }
            _ => {}
        }
    }

    fn menu_failed(
        &mut self,
        now: Instant,
        wall: &Zoned,
        idx: NodeIdx,
        failures: u32,
        invalid: bool,
    ) {
        let flow = Arc::clone(&self.flow);
        let Some(Kind::Menu(m)) = flow.node(idx).map(|n| &n.kind) else {
            return;
        };
        let failures = failures + 1;
        if failures > m.retries {
            self.run(now, wall, m.fallback);
            return;
        }
        let first = if invalid {
            &m.invalid_prompts
        } else {
            &m.no_input_prompts
        };
        let prompts = first.iter().chain(&m.prompts).cloned().collect();
        self.play(prompts, m.barge_in, false);
        self.state = State::Menu {
            node: idx,
            failures,
        };
    }

    fn consent_failed(
        &mut self,
        now: Instant,
        wall: &Zoned,
        idx: NodeIdx,
        failures: u32,
        invalid: bool,
    ) {
        let flow = Arc::clone(&self.flow);
        let Some(Kind::Consent(c)) = flow.node(idx).map(|n| &n.kind) else {
            return;
        };
        let failures = failures + 1;
        if failures > c.retries {
            self.consent_answered(now, wall, idx, Consent::NoAnswer);
            return;
        }
        let first: &[String] = if invalid { &c.invalid_prompts } else { &[] };
        let prompts = first.iter().chain(&c.prompts).cloned().collect();
        self.play(prompts, c.barge_in, false);
        self.state = State::Consent {
            node: idx,
            failures,
        };
    }

    fn consent_answered(&mut self, now: Instant, wall: &Zoned, idx: NodeIdx, answer: Consent) {
        let flow = Arc::clone(&self.flow);
        let Some(Kind::Consent(c)) = flow.node(idx).map(|n| &n.kind) else {
            return;
        };
        self.outcome.consent = Some(answer);
        let prompts = if answer == Consent::Yes {
            &c.yes_prompts
        } else {
            &c.no_prompts
        };
        // The same next node whatever the answer: saying no costs the caller nothing.
        self.play_then(
            now,
            wall,
            prompts.clone(),
            false,
            false,
            Then::Enter(c.next),
        );
    }

    /// Ends a `collect` entry: validates what was typed and moves on or asks again.
    fn submit(&mut self, now: Instant, wall: &Zoned) {
        self.disarm(Timer::Input);
        self.disarm(Timer::Overall);
        let State::Collect {
            node,
            failures,
            digits,
        } = &mut self.state
        else {
            return;
        };
        let (idx, failures) = (*node, *failures);
        let digits = std::mem::take(digits);
        let flow = Arc::clone(&self.flow);
        let Some(Kind::Collect(c)) = flow.node(idx).map(|n| &n.kind) else {
            return;
        };
        let sensitive = c.validator == Some(Validator::Cpr);
        if sensitive {
            self.outcome.cpr_attempts = self.outcome.cpr_attempts.saturating_add(1);
        }
        let valid = !digits.is_empty()
            && digits.len() >= c.min_digits
            && match c.validator {
                Some(Validator::Cpr) => match Cpr::parse(&digits) {
                    Ok(cpr) => {
                        self.outcome.cpr = Some(cpr);
                        true
                    }
                    Err(_) => false,
                },
                None => true,
            };
        let read_back = if c.read_back && !digits.is_empty() {
            core::iter::once("you-entered".to_owned())
                .chain(digits.chars().map(|d| format!("digit-{d}")))
                .collect()
        } else {
            Vec::new()
        };
        // Only a read-back of a CPR number needs hiding; the plain prompts do not.
        let sensitive = sensitive && !read_back.is_empty();
        if valid {
            if let (Some(field), None) = (&c.field, c.validator) {
                self.outcome.fields.insert(field.clone(), digits);
            }
            self.play_then(now, wall, read_back, true, sensitive, Then::Enter(c.next));
            return;
        }
        let failures = failures + 1;
        if failures > c.retries {
            self.run(now, wall, c.fallback);
            return;
        }
        let again = if digits.is_empty() {
            &c.no_input_prompts
        } else {
            &c.invalid_prompts
        };
        let prompts = read_back
            .into_iter()
            .chain(again.iter().chain(&c.prompts).cloned())
            .collect();
        self.play(prompts, c.barge_in, sensitive);
        self.state = State::Collect {
            node: idx,
            failures,
            digits: String::new(),
        };
    }

    fn enqueue(&mut self, now: Instant, idx: NodeIdx) {
        let flow = Arc::clone(&self.flow);
        let Some(Kind::Queue(q)) = flow.node(idx).map(|n| &n.kind) else {
            return;
        };
        self.actions.push_back(Action::Enqueue {
            queue: q.queue.clone(),
            topic: self
                .outcome
                .topic
                .clone()
                .unwrap_or_else(|| q.queue.clone()),
            hold_music: q.hold_music.clone(),
            max_wait: q.max_wait,
            announce_every: q.announce_every,
            priority: q.priority,
        });
        self.outcome.ended_by = Some(EndedBy::Queue);
        self.state = State::Queued { node: idx };
        if let (Some(wait), Some(_)) = (q.max_wait, q.fallback) {
            self.arm(Timer::Queue, now, wait);
        }
    }

    fn transfer(&mut self, idx: NodeIdx) {
        let target = match self.flow.node(idx).map(|n| &n.kind) {
            Some(Kind::Transfer { target, .. }) => target.clone(),
            _ => return,
        };
        self.outcome.transfer = Some(target.clone());
        self.end(Action::Transfer { target }, EndedBy::Transfer);
    }

    fn record(&mut self, now: Instant, idx: NodeIdx) {
        let flow = Arc::clone(&self.flow);
        let Some(Kind::Message { team, max_len, .. }) = flow.node(idx).map(|n| &n.kind) else {
            return;
        };
        self.outcome.message_team = Some(team.clone());
        self.actions.push_back(Action::RecordMessage {
            team: team.clone(),
            max_len: *max_len,
        });
        self.arm(Timer::Recording, now, *max_len);
        self.state = State::Recording { node: idx };
    }

    fn finish_recording(&mut self, now: Instant, wall: &Zoned, idx: NodeIdx) {
        self.disarm(Timer::Recording);
        self.actions.push_back(Action::StopRecording);
        let next = match self.flow.node(idx).map(|n| &n.kind) {
            Some(Kind::Message { next, .. }) => *next,
            _ => return,
        };
        self.run(now, wall, next);
    }
}
