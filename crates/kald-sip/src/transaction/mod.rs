//! The SIP transaction layer: RFC 3261 §17 as updated by RFC 6026, sans-IO.
//!
//! Four state machines, one per kind of transaction: [`ClientInvite`], [`ClientNonInvite`],
//! [`ServerInvite`] and [`ServerNonInvite`]. They read no clock, draw no random numbers and
//! touch no socket: time arrives as `now: Instant` on every call, datagrams to send leave as
//! [`Output::Transmit`], and the next wake-up is [`poll_timeout`](ClientInvite::poll_timeout).
//! Timers carry the RFCs' names ([`Timer`]) and live in a fixed table; states carry the RFCs'
//! names ([`State`]).
//!
//! # Call order
//!
//! Every machine has the same shape (style rule 2):
//!
//! ```text
//! let mut tx = ClientInvite::new(now, &invite, invite_bytes, reliable, config)?;
//! loop {
//!     while let Some(out) = tx.poll_output() { /* do it */ }   // 1. drain, always first
//!     let wake = tx.poll_timeout();                            // 2. then read the deadline
//!     // 3. wait for a datagram, the TU, or `wake`, then call exactly one of:
//!     tx.handle_timeout(now);                // a deadline passed (early or spurious: no-op)
//!     tx.handle_response(now, &response);    // client: a response matched by ClientKey
//!     tx.handle_request(now, &request);      // server: a retransmission or the ACK
//!     tx.send_response(now, &resp, bytes)?;  // server: the TU answers
//! }
//! ```
//!
//! After the constructor and after every `handle_*` or `send_response`, drain
//! `poll_output` until it returns `None`, then read `poll_timeout`. Time must not go
//! backwards. [`Output::Terminated`] is the last output of a machine: the endpoint then
//! removes it from its table.
//!
//! # What the endpoint does
//!
//! * **Matching.** An incoming request is looked up by [`ServerKey::from_request`]; a response
//!   by [`ClientKey::from_response`]. A request matching nothing creates a server transaction
//!   (never for ACK); a response matching nothing goes to the dialog layer, which drops it
//!   unless it is a 2xx it must ACK (RFC 6026 §7.1).
//! * **ACK.** An ACK whose key finds a [`ServerInvite`] in `Completed` or `Confirmed` is given
//!   to [`ServerInvite::handle_request`]. Any other ACK, including one whose key finds a
//!   `ServerInvite` in `Accepted` (an RFC 2543 peer reusing the INVITE's key), acknowledges a
//!   2xx: the endpoint routes it to the dialog layer, and the transaction ignores it.
//! * **CANCEL** is a server transaction of its own (same branch, method CANCEL);
//!   [`ServerKey::invite_for_cancel`] gives the key of the INVITE it targets.
//! * **2xx retransmission** is the dialog layer's job (RFC 6026): while the `ServerInvite` is
//!   `Accepted` it passes each retransmitted 2xx through [`ServerInvite::send_response`], which
//!   transmits it; the client side hands every 2xx to the TU, whose dialog layer ACKs it.
//! * **Where to send.** [`Output::Transmit`] goes to the transaction's peer: the request's
//!   destination for a client, the response address of RFC 3261 §18.2.2 for a server.
//! * **Transport errors** are not modelled: if a send fails, the endpoint tells the TU and
//!   drops the transaction (RFC 3261 §17.1.4, §17.2.4).
//! * **Ringing.** A client INVITE in `Proceeding` runs no timer (Timer B stops at the first
//!   1xx, RFC 3261 §17.1.1.2): the call layer owns the ringing timeout and sends CANCEL.

/// The getters and outputs every machine shares, forwarded to its `core`.
macro_rules! shared_api {
    ($t:ty) => {
        impl $t {
            /// The current RFC state.
            pub fn state(&self) -> $crate::transaction::State {
                self.core.state
            }

            /// The next thing to do; drain until `None` after every input.
            pub fn poll_output(&mut self) -> Option<$crate::transaction::Output> {
                self.core.poll_output()
            }

            /// When to call `handle_timeout` next; `None` once nothing is pending.
            pub fn poll_timeout(&self) -> Option<std::time::Instant> {
                self.core.poll_timeout()
            }

            /// The deadline of one timer, if it is armed.
            pub fn timer(&self, timer: $crate::transaction::Timer) -> Option<std::time::Instant> {
                self.core.timers.get(timer)
            }
        }
    };
}

mod client;
mod key;
mod server;
mod timer;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use client::{ClientInvite, ClientNonInvite};
pub use key::{matches_invite_for_cancel, ClientKey, ServerKey};
pub use server::{ServerInvite, ServerNonInvite};
pub use timer::Timer;

use crate::error::ParseError;
use crate::message::Message;
use timer::TimerTable;

/// The RFC 3261 timer base values (§17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; the first retransmission interval (default 500 ms).
    pub t1: Duration,
    /// The longest retransmission interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// How long a message may stay in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J (unreliable), L and M.
    fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: "at least 32 s" (RFC 3261 table 4), and never shorter than 64·T1 so that it
    /// covers the server's Timer H window when T1 is raised.
    fn timer_d(&self) -> Duration {
        Duration::from_secs(32).max(self.t1x64())
    }
}

/// The state of a transaction, named as in RFC 3261 §17 and RFC 6026.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// INVITE client: the INVITE is sent, no response yet.
    Calling,
    /// Non-INVITE client: the request is sent; non-INVITE server: no response sent yet.
    Trying,
    /// A provisional response was received (client) or sent (server); new INVITE servers start here.
    Proceeding,
    /// A final response (non-2xx for INVITE) was received or sent; absorbing retransmissions.
    Completed,
    /// INVITE server: the ACK for a non-2xx final arrived; absorbing ACK retransmissions.
    Confirmed,
    /// INVITE (RFC 6026): a 2xx was received or sent; absorbing retransmissions.
    Accepted,
    /// Finished: the endpoint removes the transaction.
    Terminated,
}

/// What a transaction asks the endpoint to do, from [`poll_output`](ClientInvite::poll_output).
#[must_use]
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub enum Output {
    /// Client: deliver this response to the TU (every 1xx while waiting, the final, every 2xx
    /// while `Accepted`); retransmitted non-2xx finals are absorbed.
    Response(Message),
    /// The transaction is over; nothing more will come out of it. Always the last output.
    Terminated,
    /// Tell the TU the transaction failed: Timer B or F (no response), or Timer H (no ACK for a
    /// non-2xx final). [`Output::Terminated`] follows.
    Timeout,
    /// Send these bytes to the transaction's peer.
    Transmit(Bytes),
}

/// Prints no message content: SIP headers hold phone numbers and addresses.
impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Response(m) => match m.status() {
                Some(code) => write!(f, "Response({code})"),
                None => f.write_str("Response(not a response)"),
            },
            Self::Terminated => f.write_str("Terminated"),
            Self::Timeout => f.write_str("Timeout"),
            Self::Transmit(b) => write!(f, "Transmit({} bytes)", b.len()),
        }
    }
}

/// Why a transaction could not be created or could not take a response from the TU.
///
/// Carries no message content.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// A header the transaction layer reads is missing or malformed.
    #[error("transaction needs a header: {0}")]
    Header(#[from] ParseError),
    /// A response was given where a request was expected.
    #[error("expected a request, got a response")]
    NotARequest,
    /// A request was given where a response was expected.
    #[error("expected a response, got a request")]
    NotAResponse,
    /// The request's method does not belong to this kind of transaction.
    #[error("method does not fit this kind of transaction")]
    WrongMethod,
    /// The TU sent a response the transaction's state does not allow; nothing was sent.
    #[error("response not allowed in transaction state {0:?}")]
    WrongState(State),
}

/// What all four machines share: state, timers, the output queue and the transport kind.
#[derive(Debug, Clone)]
struct Core {
    state: State,
    timers: TimerTable,
    out: VecDeque<Output>,
    reliable: bool,
    config: TimerConfig,
}

impl Core {
    fn new(state: State, reliable: bool, config: TimerConfig) -> Self {
        Self {
            state,
            timers: TimerTable::default(),
            out: VecDeque::with_capacity(4),
            reliable,
            config,
        }
    }

    fn transmit(&mut self, bytes: Bytes) {
        self.out.push_back(Output::Transmit(bytes));
    }

    /// Go to `Terminated` once: stop every timer and emit [`Output::Terminated`].
    fn terminate(&mut self) {
        if self.state != State::Terminated {
            self.state = State::Terminated;
            self.timers.stop_all();
            self.out.push_back(Output::Terminated);
        }
    }

    /// Tell the TU the transaction failed, then terminate.
    fn time_out(&mut self) {
        if self.state != State::Terminated {
            self.out.push_back(Output::Timeout);
            self.terminate();
        }
    }

    /// Enter a waiting state (`Completed`/`Confirmed`) whose timer is `wait` on unreliable
    /// transports and zero on reliable ones; a zero wait terminates at once.
    fn wait_then_terminate(&mut self, state: State, timer: Timer, now: Instant, wait: Duration) {
        self.state = state;
        if self.reliable || wait.is_zero() {
            self.terminate();
        } else {
            self.timers.set_after(timer, now, wait);
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }
}

/// The request-side checks every constructor makes: a request, and its method.
fn request_method(request: &Message) -> Result<&crate::message::Method, TransactionError> {
    request.method().ok_or(TransactionError::NotARequest)
}

#[cfg(test)]
mod tests;
