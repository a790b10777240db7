//! The call handling (the SIP endpoint's transaction user) until the IVR flow engine exists:
//! answer, play the Danish welcome, collect digits until `#` or 5 s of silence, log how many
//! digits arrived (never the digits), hang up.
//!
//! It negotiates SDP, asks the media thread for a stream per call, and turns SIP INFO and
//! RTP digits into one count. Above the configured capacity new callers hear "all lines are
//! busy" or get 486/480, and calls already up keep their audio.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kald_core::CallId;
use kald_media::dtmf::{self, Digit};
use kald_media::engine::StreamParams;
use kald_media::prompt::Prompt;
use kald_media::sdp::{self, Direction, LocalMedia, Negotiated, SessionDescription};
use kald_sip::endpoint::{EndReason, Endpoint, Event};

use crate::media::{Command, LegId, Media, Report};

/// How long the caller may stay silent before kald stops collecting digits.
const DIGIT_SILENCE: Duration = Duration::from_secs(5);

/// What a caller above capacity gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OverloadAction {
    /// Answer, play "all lines are busy", hang up.
    Prompt,
    /// 486 Busy Here.
    Busy,
    /// 480 Temporarily Unavailable.
    Unavailable,
}

/// The prompts the minimal call driver plays.
#[derive(Clone)]
pub(crate) struct Prompts {
    pub(crate) welcome: Prompt,
    pub(crate) goodbye: Prompt,
    pub(crate) busy: Prompt,
}

enum Phase {
    /// 180 sent; the 200 (with this SDP) goes at `at` (the configured ring time).
    Ringing {
        at: Instant,
        sdp: Bytes,
        delayed_offer: bool,
    },
    /// 200 sent with kald's offer; waiting for the answer in the ACK.
    AwaitingAnswer,
    /// Playing the welcome and collecting digits.
    Collecting { deadline: Option<Instant> },
    /// Playing "all lines are busy" or goodbye; hang up when it ends.
    Closing,
}

struct CallCtx {
    leg: LegId,
    local: LocalMedia,
    negotiated: Option<Negotiated>,
    phase: Phase,
    digits: usize,
    opened: bool,
    overload: bool,
    sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
}

/// Tracks calls and drives their media.
pub(crate) struct Calls {
    media: Media,
    prompts: Prompts,
    public_ip: Option<IpAddr>,
    capacity: usize,
    overload: OverloadAction,
    ring: Duration,
    calls: HashMap<CallId, CallCtx>,
    legs: HashMap<LegId, CallId>,
    next_leg: u64,
}

impl Calls {
    pub(crate) fn new(
        media: Media,
        prompts: Prompts,
        public_ip: Option<IpAddr>,
        capacity: usize,
        overload: OverloadAction,
        ring: Duration,
    ) -> Self {
        Self {
            media,
            prompts,
            public_ip,
            capacity,
            overload,
            ring,
            calls: HashMap::new(),
            legs: HashMap::new(),
            next_leg: 1,
        }
    }

    /// Figures of the media thread (for the periodic log line and the load benchmark).
    pub(crate) fn media_stats(&self) -> &crate::media::MediaStats {
        &self.media.stats
    }

    /// Number of calls in progress.
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    /// When [`Calls::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .filter_map(|c| match c.phase {
                Phase::Collecting { deadline } => deadline,
                Phase::Ringing { at, .. } => Some(at),
                _ => None,
            })
            .min()
    }

    /// Digit collection that went silent: log the count and hang up.
    pub(crate) fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        let due: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Collecting { deadline: Some(d) } if d <= now))
            .map(|(id, _)| *id)
            .collect();
        for call in due {
            self.finish(now, endpoint, call, "silence");
        }
        let ringing: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Ringing { at, .. } if at <= now))
            .map(|(id, _)| *id)
            .collect();
        for call in ringing {
            self.answer_now(now, endpoint, call);
        }
    }

    /// The ring time is over: send the 200 and start the media.
    fn answer_now(&mut self, now: Instant, endpoint: &mut Endpoint, call: CallId) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        let Phase::Ringing {
            sdp, delayed_offer, ..
        } = std::mem::replace(&mut ctx.phase, Phase::AwaitingAnswer)
        else {
            return;
        };
        endpoint.answer(now, call, sdp);
        if !delayed_offer {
            if let Some(n) = ctx.negotiated.take() {
                self.open(call, n);
            }
            self.start_collecting(call);
        }
    }

    /// React to one endpoint event.
    pub(crate) fn handle_event(&mut self, now: Instant, endpoint: &mut Endpoint, event: Event) {
        match event {
            Event::Incoming {
                call,
                entry_point,
                trunk,
                offer,
                local,
                ..
            } => {
                let span = tracing::info_span!("call", call = %call);
                let _g = span.enter();
                tracing::info!(%entry_point, %trunk, delayed_offer = offer.is_none(), "incoming call");
                self.incoming(now, endpoint, call, offer, local);
            }
            Event::Confirmed { call, answer } => {
                let Some(ctx) = self.calls.get_mut(&call) else {
                    return;
                };
                if !matches!(ctx.phase, Phase::AwaitingAnswer) {
                    return;
                }
                let negotiated = answer
                    .as_deref()
                    .and_then(|a| SessionDescription::parse(a).ok())
                    .and_then(|a| sdp::accept_answer(&ctx.local.codecs, &a).ok());
                match negotiated {
                    Some(n) => {
                        self.open(call, n);
                        self.start_collecting(call);
                    }
                    None => {
                        tracing::info!(call = %call, "no usable SDP answer in the ACK; hanging up");
                        endpoint.hangup(now, call);
                    }
                }
            }
            Event::Offer { call, sdp: offer } => self.reoffer(now, endpoint, call, offer),
            Event::Info {
                call,
                content_type,
                body,
            } => {
                if let Some(d) = dtmf::parse_info(&content_type, &body) {
                    self.digit(now, endpoint, call, d);
                }
            }
            Event::Ended { call, reason } => self.ended(call, reason),
            _ => {}
        }
    }

    /// React to a report of the media thread.
    pub(crate) fn handle_report(&mut self, now: Instant, endpoint: &mut Endpoint, report: Report) {
        match report {
            Report::Digit(leg, d) => {
                if let Some(&call) = self.legs.get(&leg) {
                    self.digit(now, endpoint, call, d);
                }
            }
            Report::PromptFinished(leg) => {
                let Some(&call) = self.legs.get(&leg) else {
                    return;
                };
                let Some(ctx) = self.calls.get_mut(&call) else {
                    return;
                };
                match ctx.phase {
                    Phase::Collecting { deadline: None } => {
                        ctx.phase = Phase::Collecting {
                            deadline: Some(now + DIGIT_SILENCE),
                        };
                    }
                    Phase::Closing => endpoint.hangup(now, call),
                    _ => {}
                }
            }
            Report::Inactive(leg) => {
                if let Some(&call) = self.legs.get(&leg) {
                    tracing::info!(call = %call, "no RTP from the caller; hanging up");
                    endpoint.hangup(now, call);
                }
            }
        }
    }

    fn incoming(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallId,
        offer: Option<Bytes>,
        local: SocketAddr,
    ) {
        let overloaded = self.calls.len() >= self.capacity;
        if overloaded && self.overload != OverloadAction::Prompt {
            let code = if self.overload == OverloadAction::Busy {
                486
            } else {
                480
            };
            tracing::warn!(
                capacity = self.capacity,
                code,
                "over capacity; refusing a new call"
            );
            endpoint.reject(now, call, code);
            return;
        }
        let (rtp, rtcp, port) = match self.media.bind_pair() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "no media port; refusing the call");
                endpoint.reject(now, call, 503);
                return;
            }
        };
        let ip = self.public_ip.unwrap_or(local.ip());
        let leg = LegId(self.next_leg);
        self.next_leg += 1;
        let local_media = LocalMedia::new(ip, port, leg.0, 1);
        let mut ctx = CallCtx {
            leg,
            local: local_media,
            negotiated: None,
            phase: Phase::AwaitingAnswer,
            digits: 0,
            opened: false,
            overload: overloaded,
            sockets: Some((rtp, rtcp)),
        };
        match offer {
            Some(offer) => {
                let negotiated = SessionDescription::parse(&offer)
                    .map_err(|_| ())
                    .and_then(|o| sdp::answer(&o, &ctx.local).map_err(|_| ()));
                let Ok(n) = negotiated else {
                    tracing::info!("no common codec in the offer; 488");
                    endpoint.reject(now, call, 488);
                    return;
                };
                let Some(answer) = n.answer.as_ref().map(|a| a.bytes.clone()) else {
                    endpoint.reject(now, call, 488);
                    return;
                };
                if !self.ring.is_zero() {
                    endpoint.ring(now, call, None);
                    ctx.negotiated = Some(n);
                    ctx.phase = Phase::Ringing {
                        at: now + self.ring,
                        sdp: answer,
                        delayed_offer: false,
                    };
                    self.calls.insert(call, ctx);
                    self.legs.insert(leg, call);
                    return;
                }
                endpoint.answer(now, call, answer);
                self.calls.insert(call, ctx);
                self.legs.insert(leg, call);
                self.open(call, n);
                self.start_collecting(call);
            }
            None => {
                let offer = sdp::offer(&ctx.local, Direction::SendRecv);
                if self.ring.is_zero() {
                    endpoint.answer(now, call, offer);
                    ctx.phase = Phase::AwaitingAnswer;
                } else {
                    endpoint.ring(now, call, None);
                    ctx.phase = Phase::Ringing {
                        at: now + self.ring,
                        sdp: offer,
                        delayed_offer: true,
                    };
                }
                self.calls.insert(call, ctx);
                self.legs.insert(leg, call);
            }
        }
    }

    /// Hand the negotiated stream to the media thread.
    fn open(&mut self, call: CallId, n: Negotiated) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        let params = stream_params(&n);
        ctx.negotiated = Some(n);
        if ctx.opened {
            self.media.send(Command::Update {
                leg: ctx.leg,
                params,
            });
            return;
        }
        if let Some((rtp, rtcp)) = ctx.sockets.take() {
            ctx.opened = true;
            self.media.send(Command::Open {
                leg: ctx.leg,
                rtp,
                rtcp,
                params,
            });
        }
    }

    fn start_collecting(&mut self, call: CallId) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        if ctx.overload {
            ctx.phase = Phase::Closing;
            self.media.send(Command::Play {
                leg: ctx.leg,
                prompt: self.prompts.busy.clone(),
                looped: false,
            });
            return;
        }
        // Digits may come during the welcome (barge-in); silence counts from its end.
        ctx.phase = Phase::Collecting { deadline: None };
        self.media.send(Command::Play {
            leg: ctx.leg,
            prompt: self.prompts.welcome.clone(),
            looped: false,
        });
    }

    fn digit(&mut self, now: Instant, endpoint: &mut Endpoint, call: CallId, d: Digit) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        if !matches!(ctx.phase, Phase::Collecting { .. }) {
            return;
        }
        if d.as_char() == '#' {
            self.finish(now, endpoint, call, "#");
            return;
        }
        ctx.digits += 1;
        ctx.phase = Phase::Collecting {
            deadline: Some(now + DIGIT_SILENCE),
        };
    }

    /// Digit collection is over: log the count (never the digits), say goodbye, hang up.
    fn finish(&mut self, _now: Instant, _endpoint: &mut Endpoint, call: CallId, by: &str) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        tracing::info!(call = %call, digits = ctx.digits, ended_by = by, "digits collected");
        ctx.phase = Phase::Closing;
        self.media.send(Command::Play {
            leg: ctx.leg,
            prompt: self.prompts.goodbye.clone(),
            looped: false,
        });
    }

    fn reoffer(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallId,
        offer: Option<Bytes>,
    ) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            endpoint.answer_offer(now, call, None);
            return;
        };
        ctx.local.version += 1;
        let Some(offer) = offer else {
            // A re-INVITE without SDP: offer the same session again.
            endpoint.answer_offer(now, call, Some(sdp::offer(&ctx.local, Direction::SendRecv)));
            return;
        };
        let parsed = SessionDescription::parse(&offer).ok();
        let result = match (&parsed, &ctx.negotiated) {
            (Some(o), Some(prev)) => sdp::reanswer(o, &ctx.local, prev).ok(),
            (Some(o), None) => sdp::answer(o, &ctx.local).ok(),
            (None, _) => None,
        };
        match result {
            Some(n) => {
                let answer = n.answer.as_ref().map(|a| a.bytes.clone());
                tracing::info!(call = %call, hold = n.is_hold(), "re-offer answered");
                endpoint.answer_offer(now, call, answer);
                self.open(call, n);
            }
            None => endpoint.answer_offer(now, call, None),
        }
    }

    fn ended(&mut self, call: CallId, reason: EndReason) {
        let Some(ctx) = self.calls.remove(&call) else {
            return;
        };
        self.legs.remove(&ctx.leg);
        if ctx.opened {
            self.media.send(Command::Close { leg: ctx.leg });
        }
        tracing::info!(call = %call, ?reason, digits = ctx.digits, "call ended");
    }

    /// Stop the media thread.
    pub(crate) fn shutdown(&mut self) {
        self.media.shutdown();
    }
}

/// The media parameters of a negotiated SDP exchange.
fn stream_params(n: &Negotiated) -> StreamParams {
    let (send, receive) = match n.direction {
        Direction::SendRecv => (true, true),
        Direction::SendOnly => (true, false),
        Direction::RecvOnly => (false, true),
        Direction::Inactive => (false, false),
    };
    StreamParams {
        codec: n.codec,
        telephone_event: n.telephone_event,
        remote: n.remote_rtp,
        send: send && n.remote_rtp.is_some(),
        receive,
    }
}
