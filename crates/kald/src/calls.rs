//! The call handling (the SIP endpoint's transaction user): each call runs the IVR flow of
//! its entry point.
//!
//! It negotiates SDP, asks the media thread for a stream per call, feeds the flow's
//! interpreter (`kald-ivr`) with answer, digits (RFC 4733, in-band or SIP INFO), prompt ends
//! and timers, and carries out what the flow asks: play prompts, queue (hold music until the
//! ACD takes the call), hang up. The outcome (path, consent, whether a CPR was accepted,
//! topic, queue) is logged when the call ends; the CPR itself and typed digits never are.
//! Above the configured capacity new callers hear "all lines are busy" or get 486/480, and
//! calls already up keep their audio.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kald_core::CallId;
use kald_ivr::{Action, Input, Interpreter};
use kald_media::dtmf::{self, Digit};
use kald_media::engine::StreamParams;
use kald_media::prompt::Prompt;
use kald_media::sdp::{self, Direction, LocalMedia, Negotiated, SessionDescription};
use kald_sip::endpoint::{EndReason, Endpoint, Event};

use crate::clock::Clock;
use crate::flows::Flows;
use crate::media::{Command, LegId, Media, Report};

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

enum Phase {
    /// 180 sent; the 200 (with this SDP) goes at `at` (the configured ring time).
    Ringing {
        at: Instant,
        sdp: Bytes,
        delayed_offer: bool,
    },
    /// 200 sent with kald's offer; waiting for the answer in the ACK.
    AwaitingAnswer,
    /// The flow runs.
    InFlow,
    /// Playing "all lines are busy"; hang up when it ends.
    Closing,
}

struct CallCtx {
    leg: LegId,
    local: LocalMedia,
    negotiated: Option<Negotiated>,
    phase: Phase,
    opened: bool,
    overload: bool,
    sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
    ivr: Interpreter,
    entry_point: String,
}

/// Tracks calls, runs their flows and drives their media.
pub(crate) struct Calls {
    media: Media,
    flows: Flows,
    clock: Clock,
    public_ip: Option<IpAddr>,
    capacity: usize,
    overload: OverloadAction,
    ring: Duration,
    calls: HashMap<CallId, CallCtx>,
    legs: HashMap<LegId, CallId>,
    next_leg: u64,
}

/// Settings of the call handling.
pub(crate) struct CallSettings {
    pub(crate) public_ip: Option<IpAddr>,
    pub(crate) capacity: usize,
    pub(crate) overload: OverloadAction,
    pub(crate) ring: Duration,
}

impl Calls {
    pub(crate) fn new(media: Media, flows: Flows, clock: Clock, settings: CallSettings) -> Self {
        Self {
            media,
            flows,
            clock,
            public_ip: settings.public_ip,
            capacity: settings.capacity,
            overload: settings.overload,
            ring: settings.ring,
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

    /// Pick up changed flow files (calls in progress keep the version they started with).
    pub(crate) fn reload_flows(&mut self) {
        self.flows.reload_if_changed();
    }

    /// When [`Calls::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .filter_map(|c| match c.phase {
                Phase::Ringing { at, .. } => Some(at),
                Phase::InFlow => c.ivr.poll_timeout(),
                _ => None,
            })
            .min()
    }

    /// Ring times that are over, and the flows' timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        let due: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| match c.phase {
                Phase::Ringing { at, .. } => at <= now,
                Phase::InFlow => c.ivr.poll_timeout().is_some_and(|t| t <= now),
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        let wall = self.clock.now();
        for call in due {
            let Some(ctx) = self.calls.get_mut(&call) else {
                continue;
            };
            if matches!(ctx.phase, Phase::Ringing { .. }) {
                self.answer_now(now, endpoint, call);
            } else {
                ctx.ivr.handle_timeout(now, &wall);
                self.run_actions(now, endpoint, call);
            }
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
                self.incoming(now, endpoint, call, &entry_point, offer, local);
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
                        self.start_flow(now, endpoint, call);
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
            Event::Ended { call, reason } => self.ended(now, call, reason),
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
                    Phase::InFlow => {
                        let wall = self.clock.now();
                        ctx.ivr.handle(now, &wall, Input::PromptFinished);
                        self.run_actions(now, endpoint, call);
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
        entry_point: &str,
        offer: Option<Bytes>,
        local: SocketAddr,
    ) {
        let Some(flow) = self.flows.get(entry_point) else {
            tracing::error!(%entry_point, "no flow for this entry point; refusing the call");
            endpoint.reject(now, call, 480);
            return;
        };
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
        let mut ctx = CallCtx {
            leg,
            local: LocalMedia::new(ip, port, leg.0, 1),
            negotiated: None,
            phase: Phase::AwaitingAnswer,
            opened: false,
            overload: overloaded,
            sockets: Some((rtp, rtcp)),
            ivr: Interpreter::new(Arc::clone(&flow)),
            entry_point: entry_point.to_owned(),
        };
        let (sdp_out, delayed_offer) = match offer {
            Some(offer) => {
                let negotiated = SessionDescription::parse(&offer)
                    .map_err(|_| ())
                    .and_then(|o| sdp::answer(&o, &ctx.local).map_err(|_| ()));
                let Some((n, answer)) = negotiated.ok().and_then(|n| {
                    let a = n.answer.as_ref()?.bytes.clone();
                    Some((n, a))
                }) else {
                    tracing::info!("no common codec in the offer; 488");
                    endpoint.reject(now, call, 488);
                    return;
                };
                ctx.negotiated = Some(n);
                (answer, false)
            }
            None => (sdp::offer(&ctx.local, Direction::SendRecv), true),
        };
        self.calls.insert(call, ctx);
        self.legs.insert(leg, call);
        if self.ring.is_zero() {
            self.answer_with(now, endpoint, call, sdp_out, delayed_offer);
        } else {
            endpoint.ring(now, call, None);
            if let Some(ctx) = self.calls.get_mut(&call) {
                ctx.phase = Phase::Ringing {
                    at: now + self.ring,
                    sdp: sdp_out,
                    delayed_offer,
                };
            }
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
        self.answer_with(now, endpoint, call, sdp, delayed_offer);
    }

    fn answer_with(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallId,
        sdp: Bytes,
        delayed_offer: bool,
    ) {
        endpoint.answer(now, call, sdp);
        if delayed_offer {
            return;
        }
        if let Some(n) = self.calls.get_mut(&call).and_then(|c| c.negotiated.take()) {
            self.open(call, n);
        }
        self.start_flow(now, endpoint, call);
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

    fn start_flow(&mut self, now: Instant, endpoint: &mut Endpoint, call: CallId) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        if ctx.overload {
            ctx.phase = Phase::Closing;
            if let Some(busy) = self.flows.prompt("all-lines-busy") {
                self.media.send(Command::Play {
                    leg: ctx.leg,
                    prompt: busy,
                    looped: false,
                });
            } else {
                endpoint.hangup(now, call);
            }
            return;
        }
        ctx.phase = Phase::InFlow;
        let wall = self.clock.now();
        ctx.ivr.handle(now, &wall, Input::Answered);
        self.run_actions(now, endpoint, call);
    }

    /// Carry out everything the call's flow asks for.
    fn run_actions(&mut self, now: Instant, endpoint: &mut Endpoint, call: CallId) {
        // A bounded loop: a play with no audio is finished at once and may lead to more.
        for _ in 0..64 {
            let Some(ctx) = self.calls.get_mut(&call) else {
                return;
            };
            let Some(action) = ctx.ivr.poll_action() else {
                return;
            };
            let leg = ctx.leg;
            match action {
                Action::Play { prompts, .. } => match concat(&self.flows, &prompts) {
                    Some(prompt) => self.media.send(Command::Play {
                        leg,
                        prompt,
                        looped: false,
                    }),
                    None => {
                        let wall = self.clock.now();
                        ctx.ivr.handle(now, &wall, Input::PromptFinished);
                    }
                },
                Action::StopPlayback | Action::LeaveQueue | Action::StopRecording => {
                    self.media.send(Command::Stop { leg });
                }
                Action::Enqueue {
                    queue,
                    topic,
                    hold_music,
                    priority,
                    ..
                } => {
                    tracing::info!(call = %call, %queue, %topic, priority, "call queued (hold music until an agent is free)");
                    let music = hold_music
                        .as_deref()
                        .and_then(|m| self.flows.prompt(m))
                        .or_else(|| self.flows.prompt("hold-music"));
                    if let Some(prompt) = music {
                        self.media.send(Command::Play {
                            leg,
                            prompt,
                            looped: true,
                        });
                    }
                }
                Action::Transfer { .. } => {
                    // Transfers need the outbound legs of the queues issue; until then: end.
                    tracing::warn!(call = %call, "transfer is not available yet; ending the call");
                    endpoint.hangup(now, call);
                }
                Action::RecordMessage { team, .. } => {
                    tracing::warn!(call = %call, %team, "voice messages are not stored yet (recordings issue)");
                }
                Action::Hangup => endpoint.hangup(now, call),
                _ => {}
            }
        }
        tracing::warn!(call = %call, "the flow asked for more than 64 actions at once; stopping here");
    }

    fn digit(&mut self, now: Instant, endpoint: &mut Endpoint, call: CallId, d: Digit) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        if !matches!(ctx.phase, Phase::InFlow) {
            return;
        }
        let wall = self.clock.now();
        ctx.ivr.handle(now, &wall, Input::Digit(d.as_char()));
        self.run_actions(now, endpoint, call);
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

    fn ended(&mut self, now: Instant, call: CallId, reason: EndReason) {
        let Some(mut ctx) = self.calls.remove(&call) else {
            return;
        };
        self.legs.remove(&ctx.leg);
        if ctx.opened {
            self.media.send(Command::Close { leg: ctx.leg });
        }
        if !ctx.ivr.is_finished() {
            let wall = self.clock.now();
            ctx.ivr.handle(now, &wall, Input::Hangup);
        }
        let o = ctx.ivr.outcome();
        // Field values can be anything a caller typed: only their lengths are logged.
        let fields: Vec<String> = o
            .fields
            .iter()
            .map(|(k, v)| format!("{k}:{}", v.chars().count()))
            .collect();
        tracing::info!(
            call = %call,
            ?reason,
            entry_point = %ctx.entry_point,
            path = %o.path.join(">"),
            consent = ?o.consent,
            cpr_accepted = o.cpr.is_some(),
            cpr_attempts = o.cpr_attempts,
            topic = o.topic.as_deref().unwrap_or("-"),
            queue = o.queue.as_deref().unwrap_or("-"),
            ended_by = ?o.ended_by,
            field_lengths = %fields.join(","),
            "call ended"
        );
    }

    /// Stop the media thread.
    pub(crate) fn shutdown(&mut self) {
        self.media.shutdown();
    }
}

/// The prompts of one play action as one prompt; `None` if none of them has audio.
fn concat(flows: &Flows, names: &[String]) -> Option<Prompt> {
    let parts: Vec<Prompt> = names.iter().filter_map(|n| flows.prompt(n)).collect();
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => {
            let samples: Vec<i16> = parts
                .iter()
                .flat_map(|p| p.samples().iter().copied())
                .collect();
            Some(Prompt::from_samples(samples))
        }
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
