//! Server transactions: the INVITE server (RFC 3261 §17.2.1 with RFC 6026's `Accepted`) and
//! the non-INVITE server (RFC 3261 §17.2.2).

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{request_method, Core, State, Timer, TimerConfig, TransactionError};
use crate::message::{Header, HeaderName, Headers, Message, Method, StartLine};

/// How long the TU has to send a provisional response before the INVITE server transaction
/// sends `100 Trying` itself (RFC 3261 §17.2.1); see [`Timer::Trying`].
const TRYING_DELAY: Duration = Duration::from_millis(200);

/// An INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1). Starts in `Proceeding`.
///
/// Sends `100 Trying` itself when the TU has sent no provisional response within 200 ms,
/// retransmits non-2xx finals until the ACK, and absorbs INVITE retransmissions after a 2xx:
/// a retransmitted INVITE never reaches the TU, so it never becomes a second call.
pub struct ServerInvite {
    core: Core,
    /// The headers the 100 Trying copies from the INVITE.
    trying: Headers,
    /// The last response sent: the latest provisional in `Proceeding`, the final in `Completed`.
    last: Option<Bytes>,
    /// The current Timer G interval: T1 doubling up to T2.
    interval: Duration,
}

shared_api!(ServerInvite);

impl fmt::Debug for ServerInvite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerInvite")
            .field("state", &self.core.state)
            .field("reliable", &self.core.reliable)
            .finish_non_exhaustive()
    }
}

impl ServerInvite {
    /// Start the transaction for a new INVITE (the endpoint passes the INVITE to the TU).
    ///
    /// `reliable` is true for TCP/TLS: then Timer G is not used and Timer I is zero.
    pub fn new(
        now: Instant,
        request: &Message,
        reliable: bool,
        config: TimerConfig,
    ) -> Result<Self, TransactionError> {
        if *request_method(request)? != Method::Invite {
            return Err(TransactionError::WrongMethod);
        }
        let trying = trying_headers(request)?;
        let mut core = Core::new(State::Proceeding, reliable, config);
        core.timers.set_after(Timer::Trying, now, TRYING_DELAY);
        Ok(Self {
            core,
            trying,
            last: None,
            interval: config.t1,
        })
    }

    /// A request matched to this transaction by [`ServerKey`](super::ServerKey): an INVITE
    /// retransmission gets the last provisional (`Proceeding`) or the final (`Completed`)
    /// again; the ACK for a non-2xx final moves to `Confirmed`. Everything else is absorbed,
    /// including INVITEs and ACKs while `Accepted` (the endpoint routes 2xx ACKs to the dialog).
    pub fn handle_request(&mut self, now: Instant, request: &Message) {
        match (request.method(), self.core.state) {
            (Some(Method::Invite), State::Proceeding | State::Completed) => {
                if let Some(last) = &self.last {
                    self.core.transmit(last.clone());
                }
            }
            (Some(Method::Ack), State::Completed) => {
                self.core.timers.stop(Timer::G);
                self.core.timers.stop(Timer::H);
                let wait = self.core.config.t4;
                self.core
                    .wait_then_terminate(State::Confirmed, Timer::I, now, wait);
            }
            _ => {}
        }
    }

    /// The TU answers: `response` is the response, `bytes` it printed, sent now.
    ///
    /// In `Proceeding` a 1xx stays there, a 2xx moves to `Accepted`, a 300–699 to
    /// `Completed`. In `Accepted` the dialog layer's 2xx retransmissions are sent
    /// (RFC 6026 §7.1). Anything else is refused with [`TransactionError::WrongState`] and
    /// nothing is sent.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: &Message,
        bytes: Bytes,
    ) -> Result<(), TransactionError> {
        let code = response.status().ok_or(TransactionError::NotAResponse)?;
        match (self.core.state, code) {
            (State::Proceeding, 100..=199) => {
                self.core.timers.stop(Timer::Trying);
                self.core.transmit(bytes.clone());
                self.last = Some(bytes);
            }
            (State::Proceeding, 200..=299) => {
                self.core.timers.stop(Timer::Trying);
                self.core.transmit(bytes);
                self.last = None;
                self.core.state = State::Accepted;
                self.core
                    .timers
                    .set_after(Timer::L, now, self.core.config.t1x64());
            }
            (State::Proceeding, _) => {
                self.core.timers.stop(Timer::Trying);
                self.core.transmit(bytes.clone());
                self.last = Some(bytes);
                self.core.state = State::Completed;
                if !self.core.reliable {
                    self.core.timers.set_after(Timer::G, now, self.interval);
                }
                self.core
                    .timers
                    .set_after(Timer::H, now, self.core.config.t1x64());
            }
            (State::Accepted, 200..=299) => self.core.transmit(bytes),
            (state, _) => return Err(TransactionError::WrongState(state)),
        }
        if code >= 200 {
            // No more 100 Trying after a final: drop the copied INVITE headers, which also
            // keep the received datagram alive while the transaction lingers (Timer H/L).
            self.trying = Headers::default();
        }
        Ok(())
    }

    /// The clock reached `now`: fire every expired timer (none expired: no-op).
    pub fn handle_timeout(&mut self, now: Instant) {
        let state = self.core.state;
        if self.core.timers.take_expired(Timer::H, now) && state == State::Completed {
            self.core.time_out();
        }
        if self.core.timers.take_expired(Timer::G, now) && self.core.state == State::Completed {
            if let Some(last) = &self.last {
                self.core.transmit(last.clone());
            }
            self.interval = self.interval.saturating_mul(2).min(self.core.config.t2);
            self.core.timers.set_after(Timer::G, now, self.interval);
        }
        if self.core.timers.take_expired(Timer::Trying, now)
            && self.core.state == State::Proceeding
            && self.last.is_none()
        {
            let trying = self.trying();
            self.core.transmit(trying.clone());
            self.last = Some(trying);
        }
        if self.core.timers.take_expired(Timer::I, now) && self.core.state == State::Confirmed {
            self.core.terminate();
        }
        if self.core.timers.take_expired(Timer::L, now) && self.core.state == State::Accepted {
            self.core.terminate();
        }
    }

    /// `100 Trying` built from the INVITE (RFC 3261 §8.2.6).
    fn trying(&self) -> Bytes {
        Message {
            start: StartLine::Response {
                code: 100,
                reason: Bytes::from_static(b"Trying"),
            },
            headers: self.trying.clone(),
            body: Bytes::new(),
        }
        .to_bytes()
    }
}

/// The headers of the 100 Trying: every Via line, From, To, Call-ID, CSeq (RFC 3261 §8.2.6.2),
/// Timestamp if present (§8.2.6.1), and `Content-Length: 0`.
fn trying_headers(request: &Message) -> Result<Headers, TransactionError> {
    request.top_via()?;
    request.from()?;
    request.to()?;
    request.call_id()?;
    request.cseq()?;
    let timestamp = HeaderName::Other(Bytes::from_static(b"Timestamp"));
    let mut headers = Headers::new();
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        let lines = request.headers.all(&name);
        // Via: every line; the others: the first (they occur once).
        let take = if name == HeaderName::Via {
            usize::MAX
        } else {
            1
        };
        for h in lines.take(take) {
            headers.push(h.clone());
        }
    }
    if let Some(h) = request
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(timestamp.as_str()))
    {
        headers.push(Header::new(timestamp, h.value.clone()));
    }
    headers.push(Header::new(
        HeaderName::ContentLength,
        Bytes::from_static(b"0"),
    ));
    Ok(headers)
}

/// A non-INVITE server transaction (RFC 3261 §17.2.2). Starts in `Trying`.
pub struct ServerNonInvite {
    core: Core,
    /// The last response sent, resent for each request retransmission.
    last: Option<Bytes>,
}

shared_api!(ServerNonInvite);

impl fmt::Debug for ServerNonInvite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerNonInvite")
            .field("state", &self.core.state)
            .field("reliable", &self.core.reliable)
            .finish_non_exhaustive()
    }
}

impl ServerNonInvite {
    /// Start the transaction for a new request other than INVITE and ACK (the endpoint
    /// passes it to the TU). `now` is unused today and kept for a uniform constructor.
    ///
    /// `reliable` is true for TCP/TLS: then Timer J is zero.
    pub fn new(
        now: Instant,
        request: &Message,
        reliable: bool,
        config: TimerConfig,
    ) -> Result<Self, TransactionError> {
        let _ = now;
        if matches!(request_method(request)?, Method::Invite | Method::Ack) {
            return Err(TransactionError::WrongMethod);
        }
        Ok(Self {
            core: Core::new(State::Trying, reliable, config),
            last: None,
        })
    }

    /// A retransmission of the request: absorbed in `Trying`, answered with the last
    /// response in `Proceeding` and `Completed`.
    pub fn handle_request(&mut self, now: Instant, request: &Message) {
        let _ = now;
        if !request.is_request() {
            return;
        }
        if matches!(self.core.state, State::Proceeding | State::Completed) {
            if let Some(last) = &self.last {
                self.core.transmit(last.clone());
            }
        }
    }

    /// The TU answers: a 1xx moves to `Proceeding`, a final to `Completed`; after the final
    /// anything is refused with [`TransactionError::WrongState`] and nothing is sent.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: &Message,
        bytes: Bytes,
    ) -> Result<(), TransactionError> {
        let code = response.status().ok_or(TransactionError::NotAResponse)?;
        match (self.core.state, code) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.core.state = State::Proceeding;
                self.core.transmit(bytes.clone());
                self.last = Some(bytes);
            }
            (State::Trying | State::Proceeding, _) => {
                self.core.transmit(bytes.clone());
                self.last = Some(bytes);
                let wait = self.core.config.t1x64();
                self.core
                    .wait_then_terminate(State::Completed, Timer::J, now, wait);
            }
            (state, _) => return Err(TransactionError::WrongState(state)),
        }
        Ok(())
    }

    /// The clock reached `now`: fire every expired timer (none expired: no-op).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.core.timers.take_expired(Timer::J, now) && self.core.state == State::Completed {
            self.core.terminate();
        }
    }
}
