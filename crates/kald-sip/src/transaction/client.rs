//! Client transactions: the INVITE client (RFC 3261 §17.1.1 with RFC 6026's `Accepted`) and
//! the non-INVITE client (RFC 3261 §17.1.2).

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::key::{raw_header, top_via_text};
use super::{request_method, Core, Output, State, Timer, TimerConfig, TransactionError};
use crate::error::{ParseError, ParseErrorKind};
use crate::message::{Header, HeaderName, Headers, Message, Method, StartLine};

/// An INVITE client transaction: retransmits the INVITE, ACKs non-2xx finals itself, and
/// hands every 2xx to the TU (RFC 3261 §17.1.1, RFC 6026 §7.2).
pub struct ClientInvite {
    core: Core,
    /// The INVITE as sent, for Timer A retransmissions.
    request: Bytes,
    /// The current Timer A interval: T1, 2·T1, 4·T1, … (no cap for INVITE).
    interval: Duration,
    /// What the ACK for a non-2xx final copies from the INVITE.
    ack: AckTemplate,
    /// The ACK sent for the final response, resent for each retransmission of it.
    sent_ack: Option<Bytes>,
}

shared_api!(ClientInvite);

impl fmt::Debug for ClientInvite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientInvite")
            .field("state", &self.core.state)
            .field("reliable", &self.core.reliable)
            .finish_non_exhaustive()
    }
}

impl ClientInvite {
    /// Start the transaction: `request` is the INVITE, `bytes` it printed; both are sent now.
    ///
    /// `reliable` is true for TCP/TLS: then Timer A is not used and Timer D is zero.
    pub fn new(
        now: Instant,
        request: &Message,
        bytes: Bytes,
        reliable: bool,
        config: TimerConfig,
    ) -> Result<Self, TransactionError> {
        if *request_method(request)? != Method::Invite {
            return Err(TransactionError::WrongMethod);
        }
        let ack = AckTemplate::new(request)?;
        let mut core = Core::new(State::Calling, reliable, config);
        core.transmit(bytes.clone());
        if !reliable {
            core.timers.set_after(Timer::A, now, config.t1);
        }
        core.timers.set_after(Timer::B, now, config.t1x64());
        Ok(Self {
            core,
            request: bytes,
            interval: config.t1,
            ack,
            sent_ack: None,
        })
    }

    /// A response matched to this transaction by [`ClientKey`](super::ClientKey).
    ///
    /// 1xx and the first final go to the TU; a 300–699 final is ACKed here; every 2xx while
    /// `Accepted` goes to the TU; anything else is absorbed. A request is ignored.
    pub fn handle_response(&mut self, now: Instant, response: &Message) {
        let Some(code) = response.status() else {
            return;
        };
        match (self.core.state, code) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.core.timers.stop(Timer::A);
                self.core.timers.stop(Timer::B);
                self.core.state = State::Proceeding;
                self.core.out.push_back(Output::Response(response.clone()));
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.core.timers.stop(Timer::A);
                self.core.timers.stop(Timer::B);
                self.core.state = State::Accepted;
                self.core
                    .timers
                    .set_after(Timer::M, now, self.core.config.t1x64());
                self.core.out.push_back(Output::Response(response.clone()));
            }
            (State::Calling | State::Proceeding, _) => {
                self.core.timers.stop(Timer::A);
                self.core.timers.stop(Timer::B);
                let ack = self.ack.build(response);
                self.core.out.push_back(Output::Response(response.clone()));
                self.core.transmit(ack.clone());
                self.sent_ack = Some(ack);
                let wait = self.core.config.timer_d();
                self.core
                    .wait_then_terminate(State::Completed, Timer::D, now, wait);
            }
            (State::Completed, 300..) => {
                if let Some(ack) = &self.sent_ack {
                    self.core.transmit(ack.clone());
                }
            }
            (State::Accepted, 200..=299) => {
                self.core.out.push_back(Output::Response(response.clone()))
            }
            _ => {}
        }
    }

    /// The clock reached `now`: fire every expired timer (none expired: no-op).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.core.timers.take_expired(Timer::B, now) && self.core.state == State::Calling {
            self.core.time_out();
        }
        if self.core.timers.take_expired(Timer::A, now) && self.core.state == State::Calling {
            self.core.transmit(self.request.clone());
            self.interval = self.interval.saturating_mul(2);
            self.core.timers.set_after(Timer::A, now, self.interval);
        }
        if self.core.timers.take_expired(Timer::D, now) && self.core.state == State::Completed {
            self.core.terminate();
        }
        if self.core.timers.take_expired(Timer::M, now) && self.core.state == State::Accepted {
            self.core.terminate();
        }
    }
}

/// A non-INVITE client transaction (RFC 3261 §17.1.2).
pub struct ClientNonInvite {
    core: Core,
    /// The request as sent, for Timer E retransmissions.
    request: Bytes,
    /// The current Timer E interval: T1 doubling up to T2; T2 once `Proceeding`.
    interval: Duration,
}

shared_api!(ClientNonInvite);

impl fmt::Debug for ClientNonInvite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientNonInvite")
            .field("state", &self.core.state)
            .field("reliable", &self.core.reliable)
            .finish_non_exhaustive()
    }
}

impl ClientNonInvite {
    /// Start the transaction: `request` is any request but INVITE and ACK, `bytes` it printed;
    /// both are sent now.
    ///
    /// `reliable` is true for TCP/TLS: then Timer E is not used and Timer K is zero.
    pub fn new(
        now: Instant,
        request: &Message,
        bytes: Bytes,
        reliable: bool,
        config: TimerConfig,
    ) -> Result<Self, TransactionError> {
        if matches!(request_method(request)?, Method::Invite | Method::Ack) {
            return Err(TransactionError::WrongMethod);
        }
        let mut core = Core::new(State::Trying, reliable, config);
        core.transmit(bytes.clone());
        if !reliable {
            core.timers.set_after(Timer::E, now, config.t1);
        }
        core.timers.set_after(Timer::F, now, config.t1x64());
        Ok(Self {
            core,
            request: bytes,
            interval: config.t1,
        })
    }

    /// A response matched to this transaction by [`ClientKey`](super::ClientKey).
    ///
    /// Provisionals and the final go to the TU; retransmitted finals are absorbed. A request
    /// is ignored.
    pub fn handle_response(&mut self, now: Instant, response: &Message) {
        let Some(code) = response.status() else {
            return;
        };
        match (self.core.state, code) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.core.state = State::Proceeding;
                self.core.out.push_back(Output::Response(response.clone()));
            }
            (State::Trying | State::Proceeding, _) => {
                self.core.timers.stop(Timer::E);
                self.core.timers.stop(Timer::F);
                self.core.out.push_back(Output::Response(response.clone()));
                let wait = self.core.config.t4;
                self.core
                    .wait_then_terminate(State::Completed, Timer::K, now, wait);
            }
            _ => {}
        }
    }

    /// The clock reached `now`: fire every expired timer (none expired: no-op).
    pub fn handle_timeout(&mut self, now: Instant) {
        let waiting = matches!(self.core.state, State::Trying | State::Proceeding);
        if self.core.timers.take_expired(Timer::F, now) && waiting {
            self.core.time_out();
        }
        if self.core.timers.take_expired(Timer::E, now) && waiting {
            let t2 = self.core.config.t2;
            self.interval = if self.core.state == State::Proceeding {
                t2
            } else {
                self.interval.saturating_mul(2).min(t2)
            };
            self.core.transmit(self.request.clone());
            self.core.timers.set_after(Timer::E, now, self.interval);
        }
        if self.core.timers.take_expired(Timer::K, now) && self.core.state == State::Completed {
            self.core.terminate();
        }
    }
}

/// What the ACK for a 300–699 final copies from the INVITE (RFC 3261 §17.1.1.3).
struct AckTemplate {
    /// The INVITE's Request-URI.
    uri: Bytes,
    /// The INVITE's top Via value, the ACK's only Via.
    via: Bytes,
    /// The INVITE's Route header lines, in order.
    routes: Vec<Bytes>,
    from: Bytes,
    /// The INVITE's To, used only when the response has none.
    to: Bytes,
    call_id: Bytes,
    /// `"<INVITE's CSeq number> ACK"`.
    cseq: Bytes,
}

impl AckTemplate {
    fn new(invite: &Message) -> Result<Self, TransactionError> {
        let StartLine::Request { uri, .. } = &invite.start else {
            return Err(TransactionError::NotARequest);
        };
        invite.top_via()?;
        invite.from()?;
        invite.to()?;
        let cseq = invite.cseq()?;
        if cseq.method != Method::Invite {
            return Err(
                ParseError::in_header(ParseErrorKind::CSeqMismatch, HeaderName::CSeq).into(),
            );
        }
        Ok(Self {
            uri: uri.clone(),
            via: Bytes::copy_from_slice(top_via_text(invite)?.as_bytes()),
            routes: invite
                .headers
                .all(&HeaderName::Route)
                .map(|h| h.value.clone())
                .collect(),
            from: raw_header(invite, HeaderName::From)?,
            to: raw_header(invite, HeaderName::To)?,
            call_id: Bytes::copy_from_slice(invite.call_id()?.as_bytes()),
            cseq: Bytes::from(format!("{} ACK", cseq.seq)),
        })
    }

    /// The ACK for `response`: the INVITE's Request-URI, top Via, Route, From, Call-ID and
    /// CSeq number; the response's To (with its tag); Max-Forwards 70; no body.
    fn build(&self, response: &Message) -> Bytes {
        let to = response
            .headers
            .first(&HeaderName::To)
            .map_or_else(|| self.to.clone(), |h| h.value.clone());
        let mut headers = Headers::new();
        headers.push(Header::new(HeaderName::Via, self.via.clone()));
        for route in &self.routes {
            headers.push(Header::new(HeaderName::Route, route.clone()));
        }
        headers.push(Header::new(
            HeaderName::MaxForwards,
            Bytes::from_static(b"70"),
        ));
        headers.push(Header::new(HeaderName::From, self.from.clone()));
        headers.push(Header::new(HeaderName::To, to));
        headers.push(Header::new(HeaderName::CallId, self.call_id.clone()));
        headers.push(Header::new(HeaderName::CSeq, self.cseq.clone()));
        headers.push(Header::new(
            HeaderName::ContentLength,
            Bytes::from_static(b"0"),
        ));
        Message {
            start: StartLine::Request {
                method: Method::Ack,
                uri: self.uri.clone(),
            },
            headers,
            body: Bytes::new(),
        }
        .to_bytes()
    }
}
