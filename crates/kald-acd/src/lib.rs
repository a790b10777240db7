//! The ACD (automatic call distribution) of kald: skill queues, agent states and routing.
//!
//! This crate does no I/O and reads no clock. [`Acd`] is a sans-IO state machine in the
//! shape of `quinn-proto` and `str0m`: inputs (agent actions, call events) and the current
//! time go in; outputs (ring this agent, cancel that ring, queue-log events) come out; timers
//! (ring timeouts, wrap-ups, pause limits, the secondary-level escalation) are instants the
//! driver arms.
//!
//! # Run loop
//! ```text
//! let mut acd = Acd::new(config);
//! acd.handle_input(now, Input::Login { agent: "anna".into() })?;   // or handle_timeout(now)
//! while let Some(out) = acd.poll_output() { … }   // Ring, CancelRing, Event(AcdEvent)
//! acd.poll_timeout()                              // arm one timer; then handle_timeout(now)
//! ```
//!
//! # Rules and the choices made
//! - **One queue per skill.** Calls are served by priority (0–9, higher first), then entry
//!   time. `Requeue { at_head: true }` puts a call ahead of every other call (head calls among
//!   themselves: priority, then requeue time). A requeued call starts a new wait in its queue
//!   (its `entered` is the requeue time), and [`AcdEvent::Entered`] is emitted again.
//! - **Levels.** A level 1 agent is offered a call at once; a level n agent once the call has
//!   waited (n-1) × `secondary_after` (level 2 after 30 s, level 3 after 60 s by default).
//!   Among eligible agents: lower level first, then longest idle — the order in which agents
//!   last became [`AgentState::Available`] (after login, unpause, wrap-up, *or a missed ring*).
//!   An agent becoming available takes the best call it may across all its queues (priority,
//!   then longest wait, with the level rule).
//! - **Eligibility.** Only available and reachable agents are offered calls; one ring per call.
//!   Agents are reachable until the driver says otherwise with [`Input::Reachable`]. Going
//!   unreachable mid-ring cancels the ring without counting a miss.
//! - **Missed rings.** After the queue's `ring_timeout` (or on [`Input::RingFailed`]) the call
//!   goes to the next agent, and the agent who missed it is not offered *that call* again for
//!   [`RETRY_BACKOFF`] (5 s, like Asterisk's `retry`); after it, the call is retried. An agent
//!   who misses `no_answer_limit` rings in a row is paused with reason [`NO_ANSWER_REASON`].
//!   Answering, login and unpause reset the counter.
//! - **Wrap-up** is per agent, as long as the `wrap_up` of the queue its call came from;
//!   [`Input::EndWrapUp`] ends it early. [`Input::Ended`] (the bridged call ended),
//!   [`Input::Released`] (the call left the agent but lives on, e.g. a transfer away) and
//!   [`Input::Requeue`] of a bridged call (a transfer to a queue) all end the agent's part
//!   with [`AcdEvent::Ended`] and a wrap-up. A released call is kept until it ends, is
//!   abandoned or is requeued (a failed transfer coming back: `Requeue { at_head: true }`).
//! - **Pause** with a reason; after `pause_limit` the agent gets
//!   [`AcdEvent::PauseLimitReached`] and is logged out. Pausing during wrap-up ends the
//!   wrap-up; pausing while ringing cancels the ring (not a miss); pausing while talking, like
//!   logging out while talking, takes effect when the call ends (instead of the wrap-up).
//!   Re-pausing with a new reason keeps the pause's start and limit.
//! - **No agents.** A call entering a queue where nobody with the skill is logged in still
//!   waits, and [`AcdEvent::NoAgentsLoggedIn`] is emitted once for that entry.
//! - **Events carry no timestamp:** each happened at the `now` of the `handle_*` call that
//!   produced it; the driver drains outputs after every call and stamps them.
//! - **Abandon / Ended** on a call still waiting both mean the caller left: one
//!   [`AcdEvent::Abandoned`] with its position; on a bridged call both end it.
//! - **Errors.** [`Acd::handle_input`] returns [`AcdError`] for unknown or stale references
//!   (e.g. `RingAnswered` after the ring timed out: the driver must hang up that leg); on an
//!   error nothing changed.
//! - **Timers** live in a binary heap with tokens (lazy deletion): a cancelled timer stays in
//!   the heap until it reaches the top, where it is dropped, so `poll_timeout` is O(1) and
//!   every input is O(log n) plus the agents' skill count.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod acd;
mod config;
mod io;
pub mod stats;

pub use acd::{Acd, DEFAULT_TALK, NO_ANSWER_REASON, RETRY_BACKOFF};
pub use config::{AcdConfig, AgentConfig, ConfigError, QueueConfig, Skill};
pub use io::{
    AcdError, AcdEvent, AgentCounts, AgentState, AgentView, CallPhase, Input, Output, QueueView,
    QueuedCallView,
};

#[cfg(test)]
mod tests;
