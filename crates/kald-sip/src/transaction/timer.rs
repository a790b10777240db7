//! The transaction timers of RFC 3261 §17 and RFC 6026, and the fixed table of their
//! deadlines (after quinn-proto's `connection/timer.rs`).

use std::time::{Duration, Instant};

/// A transaction timer, named as in RFC 3261 §17 (A–K) and RFC 6026 (L, M).
///
/// Variants are in RFC order; [`Timer::Trying`] is kald's own name for a rule the RFC states
/// without naming a timer.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE client, `Calling`: retransmit the INVITE (T1, doubling without cap; unreliable only).
    A,
    /// INVITE client, `Calling`: no response at all (64·T1); the TU is told [`Timeout`].
    ///
    /// [`Timeout`]: super::Output::Timeout
    B,
    /// INVITE client, `Completed`: absorb final-response retransmissions (max(32 s, 64·T1); 0 reliable).
    D,
    /// Non-INVITE client: retransmit the request (T1 doubling up to T2; T2 in `Proceeding`; unreliable only).
    E,
    /// Non-INVITE client: no final response (64·T1); the TU is told [`Timeout`].
    ///
    /// [`Timeout`]: super::Output::Timeout
    F,
    /// INVITE server, `Completed`: retransmit the non-2xx final (T1 doubling up to T2; unreliable only).
    G,
    /// INVITE server, `Completed`: no ACK for the non-2xx final (64·T1); the TU is told [`Timeout`].
    ///
    /// [`Timeout`]: super::Output::Timeout
    H,
    /// INVITE server, `Confirmed`: absorb ACK retransmissions (T4; 0 reliable).
    I,
    /// Non-INVITE server, `Completed`: absorb request retransmissions (64·T1; 0 reliable).
    J,
    /// Non-INVITE client, `Completed`: absorb response retransmissions (T4; 0 reliable).
    K,
    /// INVITE server, `Accepted` (RFC 6026): absorb INVITE retransmissions after a 2xx (64·T1).
    L,
    /// INVITE client, `Accepted` (RFC 6026): accept further 2xx from forks (64·T1).
    M,
    /// INVITE server, `Proceeding`: kald's name for the RFC 3261 §17.2.1 rule "send 100 Trying
    /// if the TU has sent no provisional response within 200 ms".
    Trying,
}

impl Timer {
    /// How many timers there are; the size of a [`TimerTable`].
    const COUNT: usize = 13;

    fn index(self) -> usize {
        self as usize
    }
}

// `Timer::COUNT` must cover every variant; `Trying` is the last.
const _: () = assert!(Timer::Trying as usize + 1 == Timer::COUNT);

/// The deadline of every [`Timer`] in a fixed array: no heap, `next_timeout` is the minimum.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimerTable {
    data: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arm `timer` to fire at `at`, replacing any earlier deadline.
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer.index()] = Some(at);
    }

    /// Arm `timer` to fire `after` from `now`; a deadline past what `Instant` can hold never fires.
    pub(crate) fn set_after(&mut self, timer: Timer, now: Instant, after: Duration) {
        match now.checked_add(after) {
            Some(at) => self.set(timer, at),
            None => self.stop(timer),
        }
    }

    /// The deadline of `timer`, if it is armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer.index()]
    }

    /// Disarm `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.data[timer.index()] = None;
    }

    /// Disarm every timer.
    pub(crate) fn stop_all(&mut self) {
        self.data = [None; Timer::COUNT];
    }

    /// The earliest armed deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    /// Whether `timer` is armed and its deadline is at or before `now`.
    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.data[timer.index()].is_some_and(|at| at <= now)
    }

    /// If `timer` has expired at `now`, disarm it and return `true` (it fires once).
    pub(crate) fn take_expired(&mut self, timer: Timer, now: Instant) -> bool {
        let expired = self.is_expired(timer, now);
        if expired {
            self.stop(timer);
        }
        expired
    }
}
