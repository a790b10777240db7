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

use crate::centre::{CentreState, Directory};
use crate::clock::Clock;
use crate::flows::Flows;
use crate::media::{Command, LegId, Media, Report};
use crate::records::Records;

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

impl CallCtx {
    /// What the flow learnt so far (consent, CPR, topic …).
    pub(crate) fn outcome(&self) -> &kald_ivr::Outcome {
        self.ivr.outcome()
    }

    /// The citizen's CPR number: as the agent corrected it after verifying the caller, else
    /// as typed in the IVR.
    pub(crate) fn cpr(&self) -> Option<&kald_core::Cpr> {
        self.cpr_corrected
            .as_ref()
            .or(self.ivr.outcome().cpr.as_ref())
    }

    /// The call is ending: hang up when the prompt now playing finishes.
    pub(crate) fn phase_closing(&mut self) {
        self.phase = Phase::Closing;
    }
}

/// A citizen waiting in a queue.
pub(crate) struct Queued {
    /// How often to announce the position, and when next.
    announce: Option<(Duration, Instant)>,
    /// A position announcement is playing (hold music resumes after it).
    announcing: bool,
}

impl Queued {
    /// A call entering `queue` at `now`.
    pub(crate) fn new(now: Instant, announce_every: Option<Duration>) -> Self {
        Self {
            announce: announce_every
                .filter(|d| !d.is_zero())
                .map(|d| (d, now + d)),
            announcing: false,
        }
    }
}

pub(crate) struct CallCtx {
    pub(crate) leg: LegId,
    local: LocalMedia,
    negotiated: Option<Negotiated>,
    phase: Phase,
    opened: bool,
    overload: bool,
    sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
    ivr: Interpreter,
    entry_point: String,
    /// The queue's hold music, if the flow named one.
    hold_music: Option<String>,
    /// The caller's number (personal data: shown to the agent, never logged).
    pub(crate) caller: Option<String>,
    /// Waiting in a queue.
    pub(crate) queued: Option<Queued>,
    /// The queue the call was last put in (for a failed transfer's return).
    pub(crate) queue_name: Option<String>,
    /// The topic the flow gave it.
    pub(crate) topic: Option<String>,
    /// Talking to an agent: the agent's SIP leg and login.
    pub(crate) agent: Option<(CallId, String)>,
    /// The call was transferred (not settled on first contact).
    pub(crate) transferred: bool,
    /// When the call came in (wall clock).
    started: jiff::Timestamp,
    /// kald's SIP address the call arrived on (outgoing legs for it leave from here).
    pub(crate) sip_local: SocketAddr,
    /// How long it waited in the queue before an agent answered.
    pub(crate) answered_wait: Option<Duration>,
    /// The agent's side hung up first.
    pub(crate) ended_by_agent: bool,
    /// When the caller withdrew their recording consent during the call.
    pub(crate) consent_withdrawn: Option<jiff::Timestamp>,
    /// The withdrawal confirmation is playing (the bridge resumes after it).
    pub(crate) confirming_withdrawal: bool,
    /// The CPR number the agent entered or corrected on this call (the store has it too).
    pub(crate) cpr_corrected: Option<kald_core::Cpr>,
}

/// A new incoming call, as the endpoint reported it.
pub(crate) struct Arrival {
    pub(crate) call: CallId,
    /// The dialled entry point (trunk calls) or Request-URI user (agents' calls).
    pub(crate) entry_point: String,
    pub(crate) offer: Option<Bytes>,
    /// kald's address the INVITE arrived on.
    pub(crate) local: SocketAddr,
    /// The call an INVITE/Replaces names.
    pub(crate) replaces: Option<CallId>,
}

/// Tracks calls, runs their flows and drives their media.
pub(crate) struct Calls {
    pub(crate) media: Media,
    pub(crate) flows: Flows,
    pub(crate) clock: Clock,
    pub(crate) public_ip: Option<IpAddr>,
    capacity: usize,
    overload: OverloadAction,
    ring: Duration,
    pub(crate) calls: HashMap<CallId, CallCtx>,
    legs: HashMap<LegId, CallId>,
    pub(crate) next_leg: u64,
    /// The routing core.
    pub(crate) acd: kald_acd::Acd,
    /// Agents' legs, agents' own calls, bridges.
    pub(crate) centre: CentreState,
    /// Listening-in calls waiting for their confirmation prompt to end, and the leg to hear.
    pub(crate) pending_listen: HashMap<CallId, LegId>,
    /// The store writer.
    pub(crate) records: Records,
    /// Where calls out go (the carrier's SBC), if a trunk names one.
    pub(crate) outbound: Option<SocketAddr>,
    /// Queues and agents as configured (the ACD's configuration is built from it).
    centre_config: crate::config::Centre,
    /// Consented recordings.
    pub(crate) recordings: crate::recording::Recordings,
    /// Recordings closed, and stopped by an error, since start (for /metrics).
    pub(crate) recordings_written: u64,
    pub(crate) recording_failures: u64,
    /// Numbers agents may transfer to.
    pub(crate) transfer_allowlist: Vec<String>,
}

/// Settings of the call handling.
pub(crate) struct CallSettings {
    pub(crate) public_ip: Option<IpAddr>,
    pub(crate) capacity: usize,
    pub(crate) overload: OverloadAction,
    pub(crate) ring: Duration,
    pub(crate) centre: crate::config::Centre,
    pub(crate) outbound: Option<SocketAddr>,
    pub(crate) transfer_allowlist: Vec<String>,
    pub(crate) recordings: crate::recording::Recordings,
}

impl Calls {
    pub(crate) fn new(
        media: Media,
        flows: Flows,
        clock: Clock,
        settings: CallSettings,
        records: Records,
    ) -> Self {
        let acd_config = crate::records::acd_config(&settings.centre, &flows_queues(&flows));
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
            acd: kald_acd::Acd::new(acd_config),
            centre: CentreState {
                directory: Directory::new(&settings.centre),
                ..CentreState::default()
            },
            pending_listen: HashMap::new(),
            records,
            outbound: settings.outbound,
            transfer_allowlist: settings.transfer_allowlist,
            recordings: settings.recordings,
            centre_config: settings.centre.clone(),
            recordings_written: 0,
            recording_failures: 0,
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

    /// Applies a reloaded contact centre (queues, agents, web users) and transfer allow-list at
    /// once: the ACD gets the new queues and skills (a removed agent is logged out, or when
    /// their call ends), phones of removed agents lose their registrations and new agents may
    /// register, the directory (extensions, queue names) and the agents' rows in the store
    /// follow.
    pub(crate) fn set_centre(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        centre: crate::config::Centre,
        transfer_allowlist: Vec<String>,
    ) {
        let queues = flows_queues(&self.flows);
        self.acd
            .set_config(now, crate::records::acd_config(&centre, &queues));
        self.centre.directory = Directory::new(&centre);
        endpoint.set_registrar_users(
            centre
                .agents
                .iter()
                .map(|a| {
                    kald_sip::endpoint::RegistrarUser::new(a.login.clone(), a.password.clone())
                })
                .collect(),
        );
        self.records.send(crate::records::StoreOp::Agents(
            centre
                .agents
                .iter()
                .map(|a| kald_store::AgentRow {
                    id: a.login.clone(),
                    display_name: a.name.clone(),
                    skills: a.skills.iter().map(|(q, l)| (q.clone(), *l)).collect(),
                })
                .collect(),
        ));
        self.centre_config = centre;
        self.transfer_allowlist = transfer_allowlist;
        self.drive_acd(now, endpoint);
    }

    /// Pick up changed flow files (calls in progress keep the version they started with); a
    /// queue a new version names is added to the ACD.
    pub(crate) fn reload_flows(&mut self) {
        self.flows.reload_if_changed();
        let queues = flows_queues(&self.flows);
        if queues.iter().any(|q| self.acd.queue(q).is_none()) {
            let config = crate::records::acd_config(&self.centre_config, &queues);
            self.acd.set_config(Instant::now(), config);
            tracing::info!("queues named by the reloaded flows added");
        }
    }

    /// When [`Calls::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.calls.values().filter_map(|c| {
            let own = match c.phase {
                Phase::Ringing { at, .. } => Some(at),
                Phase::InFlow => c.ivr.poll_timeout(),
                _ => None,
            };
            let announce = c.queued.as_ref().and_then(|q| q.announce.map(|(_, at)| at));
            own.into_iter().chain(announce).min()
        });
        calls.chain(self.acd.poll_timeout()).min()
    }

    /// Ring times that are over, and the flows' timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        if self.acd.poll_timeout().is_some_and(|t| t <= now) {
            self.acd.handle_timeout(now);
            self.drive_acd(now, endpoint);
        }
        let announce: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.queued
                    .as_ref()
                    .and_then(|q| q.announce)
                    .is_some_and(|(_, at)| at <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for call in announce {
            self.announce_position(now, call);
        }
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
                offer,
                local,
                agent: Some(agent),
                replaces,
                ..
            } => self.agent_incoming(
                now,
                endpoint,
                &agent,
                Arrival {
                    call,
                    entry_point,
                    offer,
                    local,
                    replaces,
                },
            ),
            Event::Answered { call, sdp } => self.out_answered(now, endpoint, call, sdp),
            Event::Ended { call, reason } if self.is_centre_call(call) => {
                self.centre_ended(now, endpoint, call, reason);
            }
            Event::Offer { call, sdp: offer } if self.is_centre_call(call) => {
                self.centre_reoffer(now, endpoint, call, offer);
            }
            Event::Refer {
                call,
                target,
                replaces,
                ..
            } => self.refer(now, endpoint, call, &target, replaces),
            Event::Reachability { user, reachable } => self.acd_input(
                now,
                endpoint,
                kald_acd::Input::Reachable {
                    agent: user,
                    reachable,
                },
            ),
            Event::Incoming {
                call,
                entry_point,
                trunk,
                offer,
                local,
                caller,
                ..
            } => {
                let span = tracing::info_span!("call", call = %call);
                let _g = span.enter();
                tracing::info!(%entry_point, %trunk, delayed_offer = offer.is_none(), "incoming call");
                self.incoming(
                    now,
                    endpoint,
                    Arrival {
                        call,
                        entry_point,
                        offer,
                        local,
                        replaces: None,
                    },
                    caller,
                );
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
            Event::Ended { call, reason } => self.ended(now, endpoint, call, reason),
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
                if self.centre_prompt_finished(now, endpoint, leg) {
                    return;
                }
                let Some(&call) = self.legs.get(&leg) else {
                    return;
                };
                let Some(ctx) = self.calls.get_mut(&call) else {
                    return;
                };
                if ctx.confirming_withdrawal {
                    self.withdrawal_confirmed(call);
                    return;
                }
                if let Some(q) = ctx.queued.as_mut().filter(|q| q.announcing) {
                    q.announcing = false;
                    self.hold_music(call);
                    return;
                }
                if ctx.agent.is_some() {
                    return;
                }
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
                if let Some(&call) = self.legs.get(&leg).or_else(|| self.centre.legs.get(&leg)) {
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
        arrival: Arrival,
        caller: Option<String>,
    ) {
        let Arrival {
            call,
            entry_point,
            offer,
            local,
            ..
        } = arrival;
        let entry_point = entry_point.as_str();
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
            hold_music: None,
            caller,
            queued: None,
            queue_name: None,
            topic: None,
            agent: None,
            transferred: false,
            started: self.clock.now().timestamp(),
            sip_local: local,
            answered_wait: None,
            ended_by_agent: false,
            consent_withdrawn: None,
            confirming_withdrawal: false,
            cpr_corrected: None,
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
        self.records.send(crate::records::StoreOp::CallStarted {
            id: call,
            started: ctx.started,
            caller: ctx.caller.clone(),
            entry_point: ctx.entry_point.clone(),
        });
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
                Action::StopPlayback => {
                    self.media.send(Command::Stop { leg });
                }
                Action::StopRecording => {
                    self.media.send(Command::Stop { leg });
                    self.stop_recording(call, false);
                }
                Action::LeaveQueue => {
                    self.media.send(Command::Stop { leg });
                    if ctx.queued.take().is_some() {
                        tracing::info!(call = %call, "maximum wait reached; the flow takes the call back");
                        self.acd_input(now, endpoint, kald_acd::Input::MaxWait { call });
                    }
                }
                Action::Enqueue {
                    queue,
                    topic,
                    hold_music,
                    priority,
                    announce_every,
                    ..
                } => {
                    tracing::info!(call = %call, %queue, %topic, priority, "call queued");
                    ctx.queued = Some(Queued::new(now, announce_every));
                    ctx.queue_name = Some(queue.clone());
                    ctx.topic = Some(topic.clone());
                    ctx.hold_music = hold_music;
                    self.hold_music(call);
                    self.acd_input(
                        now,
                        endpoint,
                        kald_acd::Input::Enqueue {
                            call,
                            queue,
                            topic,
                            priority,
                        },
                    );
                }
                Action::Transfer { target } => {
                    self.media.send(Command::Stop { leg });
                    if !self.dial_external(now, endpoint, &target, call, None) {
                        self.transfer_out_failed(now, endpoint, call);
                    }
                }
                Action::RecordMessage { team, .. } => {
                    tracing::info!(call = %call, %team, "recording a message");
                    self.record_message(call, &team);
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
        if ctx.agent.is_some() {
            // Talking to an agent: only the withdrawal key means something.
            if d.as_char() == self.recordings.policy.keys.withdraw {
                self.withdraw_consent(now, endpoint, call, "citizen");
            }
            return;
        }
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

    fn ended(&mut self, now: Instant, endpoint: &mut Endpoint, call: CallId, reason: EndReason) {
        let Some(mut ctx) = self.calls.remove(&call) else {
            return;
        };
        self.citizen_gone(now, endpoint, call, ctx.queued.is_some());
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
            agent = ctx.agent.as_ref().map_or("-", |a| a.1.as_str()),
            transferred = ctx.transferred,
            agent_hung_up = ctx.ended_by_agent,
            field_lengths = %fields.join(","),
            "call ended"
        );
        let cpr_now = ctx.cpr_corrected.clone().or_else(|| o.cpr.clone());
        self.records.send(crate::records::StoreOp::Call(Box::new(
            crate::records::CallLog {
                id: call,
                started: ctx.started,
                ended: self.clock.now().timestamp(),
                caller: ctx.caller.take(),
                entry_point: ctx.entry_point.clone(),
                consent: o.consent.map(|c| c == kald_ivr::Consent::Yes),
                topic: o.topic.clone(),
                queue: o.queue.clone(),
                cpr: cpr_now,
                agent: ctx.agent.as_ref().map(|a| a.1.clone()),
                transferred: ctx.transferred,
                outcome: format!("{reason:?}"),
            },
        )));
    }

    /// Stop the media thread.
    pub(crate) fn shutdown(&mut self) {
        self.media.shutdown();
    }
}

impl Calls {
    /// Play the queue's hold music to a citizen (looped).
    pub(crate) fn hold_music(&mut self, call: CallId) {
        let Some(ctx) = self.calls.get(&call) else {
            return;
        };
        let music = ctx
            .hold_music
            .as_deref()
            .and_then(|m| self.flows.prompt(m))
            .or_else(|| self.flows.prompt("hold-music"));
        if let Some(prompt) = music {
            self.media.send(Command::Play {
                leg: ctx.leg,
                prompt,
                looped: true,
            });
        }
    }

    /// Play prompts to a queued citizen, then the hold music again.
    pub(crate) fn announce(&mut self, call: CallId, prompts: &[&str]) {
        let names: Vec<String> = prompts.iter().map(|p| (*p).to_owned()).collect();
        let Some(prompt) = concat(&self.flows, &names) else {
            return;
        };
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(q) = ctx.queued.as_mut() else {
            return;
        };
        q.announcing = true;
        self.media.send(Command::Play {
            leg: ctx.leg,
            prompt,
            looped: false,
        });
    }

    /// Tell a queued citizen their position and the expected wait ("Du er nummer" + "to i
    /// køen." + "Den forventede ventetid er" + "cirka tre minutter.").
    fn announce_position(&mut self, now: Instant, call: CallId) {
        let position = self.acd.position(call);
        let wait = self.acd.expected_wait(now, call);
        let Some(q) = self.calls.get_mut(&call).and_then(|c| c.queued.as_mut()) else {
            return;
        };
        if let Some((every, _)) = q.announce {
            q.announce = Some((every, now + every));
        }
        if q.announcing {
            return;
        }
        let mut prompts: Vec<String> = Vec::new();
        // Positions past 9 have no prompt: such a caller hears the expected wait only.
        if let Some((pos, _)) = position.filter(|(p, _)| (1..=9).contains(p)) {
            prompts.push("queue-position".into());
            prompts.push(format!("position-{pos}"));
        }
        if let Some(w) = wait.filter(|w| !w.is_zero()) {
            prompts.push("expected-wait".into());
            prompts.push(wait_prompt(w));
        }
        tracing::info!(
            call = %call,
            position = position.map_or(0, |p| p.0),
            expected_wait_s = wait.map_or(0, |w| w.as_secs()),
            "position announced"
        );
        let names: Vec<&str> = prompts.iter().map(String::as_str).collect();
        self.announce(call, &names);
    }

    /// The citizen reached an agent: the flow is over.
    pub(crate) fn flow_connected(&mut self, now: Instant, endpoint: &mut Endpoint, call: CallId) {
        let Some(ctx) = self.calls.get_mut(&call) else {
            return;
        };
        let wall = self.clock.now();
        ctx.ivr.handle(now, &wall, Input::Connected);
        // Whatever the flow asks now (nothing, normally) must not play over the agent.
        while ctx.ivr.poll_action().is_some() {}
        let _ = endpoint;
    }
}

/// The prompt for an expected wait, rounded up to whole minutes (`wait-1` … `wait-10`,
/// `wait-more` beyond ten).
fn wait_prompt(w: Duration) -> String {
    let minutes = w.as_secs().div_ceil(60).max(1);
    if minutes > 10 {
        "wait-more".into()
    } else {
        format!("wait-{minutes}")
    }
}

/// The queue names every loaded flow uses.
fn flows_queues(flows: &Flows) -> Vec<String> {
    flows.queues()
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
pub(crate) fn stream_params(n: &Negotiated) -> StreamParams {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_waits_round_up_to_minutes() {
        assert_eq!(wait_prompt(Duration::from_secs(1)), "wait-1");
        assert_eq!(wait_prompt(Duration::from_secs(60)), "wait-1");
        assert_eq!(wait_prompt(Duration::from_secs(61)), "wait-2");
        assert_eq!(wait_prompt(Duration::from_secs(600)), "wait-10");
        assert_eq!(wait_prompt(Duration::from_secs(601)), "wait-more");
    }
}
