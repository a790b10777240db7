//! The contact centre part of the call handling: the ACD (`kald-acd`) routes queued
//! citizens to agents, and this module carries its decisions out over SIP and media as a
//! B2BUA. It rings agents' registered softphones (a new INVITE per registered contact, the
//! caller's topic and wait in the display name), bridges the legs on answer, cancels the
//! other contacts and the ringing when the citizen hangs up, and ends both legs when either
//! side hangs up. Agents' own calls to kald are feature codes (`*20` log in, `*21`
//! pause/unpause, `*22` end wrap-up, `*23` log out, `*30<extension>` listen in), calls to a
//! colleague (the first half of an attended transfer), and REFERs (blind and attended
//! transfers).
//!
//! Everything the ACD reports is logged and written to the store's queue log.

use std::collections::HashMap;
use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kald_acd::{AcdEvent, AgentState, Input as AcdInput, Output as AcdOutput};
use kald_core::CallId;
use kald_media::sdp::{self, Direction, LocalMedia, Negotiated, SessionDescription};
use kald_sip::endpoint::{Dial, EndReason, Endpoint};

use crate::calls::{stream_params, Arrival, Calls};
use crate::config::{Centre, FileAgent, Role};
use crate::media::{Command, LegId, Media};
use crate::records::StoreOp;

/// Who works in the contact centre, from the configuration.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    agents: HashMap<String, FileAgent>,
    by_extension: HashMap<String, String>,
    queue_display: HashMap<String, String>,
}

impl Directory {
    /// Index the configured agents and queues.
    pub(crate) fn new(centre: &Centre) -> Self {
        let agents: HashMap<String, FileAgent> = centre
            .agents
            .iter()
            .map(|a| (a.login.clone(), a.clone()))
            .collect();
        let by_extension = centre
            .agents
            .iter()
            .filter_map(|a| Some((a.extension.clone()?, a.login.clone())))
            .collect();
        let queue_display = centre
            .queues
            .iter()
            .map(|q| {
                (
                    q.name.clone(),
                    q.display.clone().unwrap_or_else(|| title_case(&q.name)),
                )
            })
            .collect();
        Self {
            agents,
            by_extension,
            queue_display,
        }
    }

    /// An agent by login or extension.
    pub(crate) fn find(&self, who: &str) -> Option<&FileAgent> {
        self.agents.get(who).or_else(|| {
            self.by_extension
                .get(who)
                .and_then(|login| self.agents.get(login))
        })
    }

    /// Every configured login.
    pub(crate) fn logins(&self) -> impl Iterator<Item = String> + '_ {
        self.agents.keys().cloned()
    }

    fn display(&self, topic_or_queue: &str) -> String {
        self.queue_display
            .get(topic_or_queue)
            .cloned()
            .unwrap_or_else(|| title_case(topic_or_queue))
    }
}

/// `sygedagpenge` → `Sygedagpenge`.
fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A media stream of one SIP leg kald placed or an agent placed to kald.
pub(crate) struct MediaLeg {
    pub(crate) leg: LegId,
    pub(crate) local: LocalMedia,
    pub(crate) opened: bool,
    pub(crate) sockets: Option<(UdpSocket, UdpSocket)>,
    pub(crate) negotiated: Option<Negotiated>,
}

/// Why kald placed a call.
#[derive(Debug, Clone)]
enum OutPurpose {
    /// The ACD rings an agent for a queued citizen.
    Ring { citizen: CallId },
    /// An agent called a colleague through kald (the consult half of an attended transfer).
    Direct { from: CallId },
    /// A blind transfer rings a colleague for the citizen.
    TransferTo { citizen: CallId, from_leg: CallId },
    /// A call out through the carrier (a transfer to an allowlisted number), from an agent's
    /// REFER (`from_leg`) or the flow's transfer node (`None`).
    External {
        citizen: CallId,
        from_leg: Option<CallId>,
    },
    /// A team leader's phone, rung (from the API) to listen in on `target`'s call.
    Listen { target: String },
    /// Not used for signalling decisions: a leg whose purpose is over (being cancelled).
    Done,
}

/// A call kald placed to an agent's softphone.
pub(crate) struct OutLeg {
    media: MediaLeg,
    agent: String,
    purpose: OutPurpose,
    answered: bool,
}

/// What an agent's own call to kald is.
enum AgentCallKind {
    /// A feature code: play the confirmation, then hang up.
    Feature,
    /// A call to a colleague (kald rings them and bridges).
    Consult,
    /// Listening in on a colleague's call.
    Listen { target: String },
}

/// A call an agent's softphone placed to kald.
pub(crate) struct AgentCall {
    media: MediaLeg,
    agent: String,
    kind: AgentCallKind,
}

/// What the contact centre keeps beside the citizens' calls.
#[derive(Default)]
pub(crate) struct CentreState {
    pub(crate) directory: Directory,
    pub(crate) out_legs: HashMap<CallId, OutLeg>,
    pub(crate) agent_calls: HashMap<CallId, AgentCall>,
    /// Pairs of SIP calls whose media is bridged, both ways.
    pub(crate) peers: HashMap<CallId, CallId>,
    /// The agent's SIP leg of the citizen's call each agent is talking on.
    pub(crate) talking: HashMap<String, CallId>,
    /// Media legs of calls in this module, for reports from the media thread.
    pub(crate) legs: HashMap<LegId, CallId>,
}

impl Calls {
    /// Give a new call of this module a media leg with a local description on `ip`.
    fn media_leg(&mut self, ip: IpAddr) -> anyhow::Result<MediaLeg> {
        let (rtp, rtcp, port) = self.media.bind_pair()?;
        let leg = LegId(self.next_leg);
        self.next_leg += 1;
        Ok(MediaLeg {
            leg,
            local: LocalMedia::new(ip, port, leg.0, 1),
            opened: false,
            sockets: Some((rtp, rtcp)),
            negotiated: None,
        })
    }

    fn close_media(&self, m: &MediaLeg) {
        if m.opened {
            self.media.send(Command::Close { leg: m.leg });
        }
    }

    /// The media leg of any SIP call kald has (citizen, agent leg, agent's own call).
    pub(crate) fn leg_of(&self, call: CallId) -> Option<LegId> {
        if let Some(c) = self.calls.get(&call) {
            return Some(c.leg);
        }
        if let Some(o) = self.centre.out_legs.get(&call) {
            return Some(o.media.leg);
        }
        self.centre.agent_calls.get(&call).map(|a| a.media.leg)
    }

    /// Bridge the media of two SIP calls and remember them as peers.
    fn bridge(&mut self, a: CallId, b: CallId) {
        let (Some(la), Some(lb)) = (self.leg_of(a), self.leg_of(b)) else {
            return;
        };
        self.media.send(Command::Bridge {
            a: la,
            b: lb,
            hold_music: self.flows.prompt("hold-music"),
        });
        self.centre.peers.insert(a, b);
        self.centre.peers.insert(b, a);
    }

    fn unpeer(&mut self, a: CallId) -> Option<CallId> {
        let b = self.centre.peers.remove(&a)?;
        self.centre.peers.remove(&b);
        if let Some(l) = self.leg_of(a) {
            self.media.send(Command::Unbridge { leg: l });
        }
        Some(b)
    }

    // ---- the ACD ---------------------------------------------------------------------------

    /// Feed the ACD and carry out what it asks.
    pub(crate) fn acd_input(&mut self, now: Instant, endpoint: &mut Endpoint, input: AcdInput) {
        if let Err(e) = self.acd.handle_input(now, input) {
            tracing::debug!(error = %e, "the ACD refused an input");
        }
        self.drive_acd(now, endpoint);
    }

    /// Carry out the ACD's outputs.
    pub(crate) fn drive_acd(&mut self, now: Instant, endpoint: &mut Endpoint) {
        while let Some(out) = self.acd.poll_output() {
            match out {
                AcdOutput::Ring {
                    call,
                    agent,
                    queue,
                    wait,
                    topic,
                } => self.ring_agent(now, endpoint, call, &agent, &queue, &topic, wait),
                AcdOutput::CancelRing { call, agent } => {
                    let legs: Vec<CallId> = self
                        .centre
                        .out_legs
                        .iter()
                        .filter(|(_, o)| {
                            o.agent == agent
                                && !o.answered
                                && matches!(o.purpose, OutPurpose::Ring { citizen } if citizen == call)
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    for leg in legs {
                        if let Some(o) = self.centre.out_legs.get_mut(&leg) {
                            o.purpose = OutPurpose::Done;
                        }
                        endpoint.hangup(now, leg);
                    }
                }
                AcdOutput::Event(e) => self.acd_event(e),
            }
        }
    }

    fn acd_event(&mut self, e: AcdEvent) {
        let at = self.clock.now().timestamp();
        match &e {
            AcdEvent::AgentState {
                agent,
                state,
                reason,
                ..
            } => {
                tracing::info!(%agent, state = ?state, reason = reason.as_deref().unwrap_or("-"), "agent state");
                self.records.send(StoreOp::AgentState {
                    at,
                    agent: agent.clone(),
                    state: format!("{state:?}"),
                    reason: reason.clone(),
                });
            }
            AcdEvent::NoAgentsLoggedIn { call, queue, .. } => {
                tracing::info!(call = %call, %queue, "no agent is logged in to the queue");
                self.announce(*call, &["no-agents"]);
            }
            other => tracing::info!(event = ?other, "queue"),
        }
        if let Some(row) = crate::records::queue_event(at, &e) {
            self.records.send(StoreOp::QueueEvent(row));
        }
    }

    /// After a restart: agents are unreachable until their phones register again, and
    /// those who were logged in (or paused) are so again.
    pub(crate) fn restore_agents(&mut self, now: Instant, states: &[kald_store::AgentStateRow]) {
        let logins: Vec<String> = self.centre.directory.logins().collect();
        for agent in &logins {
            let _ = self.acd.handle_input(
                now,
                AcdInput::Reachable {
                    agent: agent.clone(),
                    reachable: false,
                },
            );
        }
        for s in states {
            if !logins.contains(&s.agent) || s.state == "LoggedOut" {
                continue;
            }
            let _ = self.acd.handle_input(
                now,
                AcdInput::Login {
                    agent: s.agent.clone(),
                },
            );
            if s.state == "Paused" {
                let _ = self.acd.handle_input(
                    now,
                    AcdInput::Pause {
                        agent: s.agent.clone(),
                        reason: s.reason.clone().unwrap_or_else(|| "pause".into()),
                    },
                );
            }
            tracing::info!(agent = %s.agent, state = %s.state, "agent state restored");
        }
        while let Some(out) = self.acd.poll_output() {
            if let AcdOutput::Event(e) = out {
                self.acd_event(e);
            }
        }
    }

    /// Dial every reachable registered contact of `agent` for a queued citizen.
    #[allow(clippy::too_many_arguments)]
    fn ring_agent(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        citizen: CallId,
        agent: &str,
        queue: &str,
        topic: &str,
        wait: Duration,
    ) {
        let caller = self
            .calls
            .get(&citizen)
            .and_then(|c| c.caller.clone())
            .unwrap_or_else(|| "anonymous".into());
        let secs = wait.as_secs();
        let display = format!(
            "{} {}:{:02}",
            self.centre
                .directory
                .display(if topic.is_empty() { queue } else { topic }),
            secs / 60,
            secs % 60
        );
        let placed = self.dial_agent(
            now,
            endpoint,
            agent,
            &display,
            &caller,
            OutPurpose::Ring { citizen },
        );
        if placed == 0 {
            tracing::info!(call = %citizen, %agent, "agent has no reachable phone; next agent");
            self.acd_input(
                now,
                endpoint,
                AcdInput::RingFailed {
                    call: citizen,
                    agent: agent.to_owned(),
                },
            );
        }
    }

    /// Place a call to every reachable contact of `agent`; returns how many were placed.
    fn dial_agent(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        agent: &str,
        display: &str,
        from_user: &str,
        purpose: OutPurpose,
    ) -> usize {
        let bindings: Vec<_> = endpoint
            .bindings(agent)
            .into_iter()
            .filter(|b| b.reachable)
            .collect();
        let mut placed = 0;
        for b in bindings {
            let ip = self.public_ip.unwrap_or(b.flow.local.ip());
            let media = match self.media_leg(ip) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "no media port for an agent leg");
                    continue;
                }
            };
            let offer = sdp::offer(&media.local, Direction::SendRecv);
            let host = b.flow.local;
            let id = endpoint.dial(
                now,
                Dial {
                    flow: b.flow,
                    target: b.contact.clone(),
                    to: format!("<sip:{agent}@{host}>"),
                    display_name: display.to_owned(),
                    from_user: sanitize_user(from_user),
                    sdp: offer,
                    credentials: None,
                },
            );
            tracing::info!(leg = %id, %agent, "ringing agent");
            self.centre.legs.insert(media.leg, id);
            self.centre.out_legs.insert(
                id,
                OutLeg {
                    media,
                    agent: agent.to_owned(),
                    purpose: purpose.clone(),
                    answered: false,
                },
            );
            placed += 1;
        }
        placed
    }

    // ---- endpoint events of the centre's calls ----------------------------------------------

    /// Whether `call` is one of the centre's own legs (kald's outgoing or an agent's call).
    pub(crate) fn is_centre_call(&self, call: CallId) -> bool {
        self.centre.out_legs.contains_key(&call) || self.centre.agent_calls.contains_key(&call)
    }

    /// An outgoing leg was answered.
    pub(crate) fn out_answered(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        leg: CallId,
        answer: Option<Bytes>,
    ) {
        let Some(mut o) = self.centre.out_legs.remove(&leg) else {
            return;
        };
        let negotiated = answer
            .as_deref()
            .and_then(|a| SessionDescription::parse(a).ok())
            .and_then(|a| sdp::accept_answer(&o.media.local.codecs, &a).ok());
        let Some(n) = negotiated else {
            tracing::info!(leg = %leg, "agent's answer has no usable SDP; hanging up that leg");
            o.purpose = OutPurpose::Done;
            self.centre.out_legs.insert(leg, o);
            endpoint.hangup(now, leg);
            return;
        };
        open_media(&self.media, &mut o.media, &n);
        o.answered = true;
        let purpose = o.purpose.clone();
        let agent = o.agent.clone();
        self.centre.out_legs.insert(leg, o);
        match purpose {
            OutPurpose::Ring { citizen } => {
                let waiting = self
                    .calls
                    .get(&citizen)
                    .is_some_and(|c| c.queued.is_some() && c.agent.is_none());
                if !waiting {
                    self.finish_out(leg);
                    endpoint.hangup(now, leg);
                    return;
                }
                self.cancel_forks(now, endpoint, leg, citizen);
                self.connect_citizen(now, endpoint, citizen, leg, &agent);
                self.acd_input(
                    now,
                    endpoint,
                    AcdInput::RingAnswered {
                        call: citizen,
                        agent,
                    },
                );
            }
            OutPurpose::Direct { from } => {
                if !self.centre.agent_calls.contains_key(&from) {
                    endpoint.hangup(now, leg);
                    return;
                }
                self.cancel_forks(now, endpoint, leg, from);
                if let Some(ac) = self.centre.agent_calls.get(&from) {
                    self.media.send(Command::Stop { leg: ac.media.leg });
                }
                self.bridge(from, leg);
                self.set_busy(now, endpoint, &agent, true);
            }
            OutPurpose::TransferTo { citizen, from_leg } => {
                if !self.calls.contains_key(&citizen) {
                    endpoint.hangup(now, leg);
                    return;
                }
                self.cancel_forks(now, endpoint, leg, citizen);
                endpoint.notify_refer(now, from_leg, 200, "OK", true);
                self.handover(now, endpoint, citizen, from_leg, leg, &agent);
            }
            OutPurpose::External { citizen, from_leg } => {
                if !self.calls.contains_key(&citizen) {
                    endpoint.hangup(now, leg);
                    return;
                }
                let old_agent =
                    from_leg.and_then(|l| self.centre.out_legs.get(&l).map(|o| o.agent.clone()));
                if let Some(from) = from_leg {
                    endpoint.notify_refer(now, from, 200, "OK", true);
                    self.stop_recording(citizen, false);
                    self.unpeer(citizen);
                    if let Some(a) = &old_agent {
                        self.centre.talking.remove(a);
                    }
                    self.finish_out(from);
                    endpoint.hangup(now, from);
                    self.acd_input(now, endpoint, AcdInput::Released { call: citizen });
                }
                if let Some(ctx) = self.calls.get_mut(&citizen) {
                    ctx.agent = None;
                    ctx.transferred = true;
                    self.media.send(Command::Stop { leg: ctx.leg });
                }
                self.bridge(citizen, leg);
                let at = self.clock.now().timestamp();
                self.records
                    .send(StoreOp::QueueEvent(crate::records::transfer_event(
                        at,
                        citizen,
                        old_agent.as_deref(),
                        "external",
                    )));
                tracing::info!(call = %citizen, "transferred out");
            }
            OutPurpose::Listen { target } => {
                let target_leg = self
                    .centre
                    .talking
                    .get(&target)
                    .and_then(|l| self.leg_of(*l));
                let listener_leg = self.centre.out_legs.get(&leg).map(|o| o.media.leg);
                let (Some(target_leg), Some(listener_leg)) = (target_leg, listener_leg) else {
                    endpoint.hangup(now, leg);
                    return;
                };
                self.cancel_forks_listen(now, endpoint, leg, &agent);
                self.media.send(Command::Listen {
                    listener: listener_leg,
                    target: target_leg,
                });
                let at = self.clock.now().timestamp();
                tracing::info!(listener = %agent, %target, "listening in started");
                self.records
                    .send(StoreOp::QueueEvent(crate::records::listen_event(
                        at,
                        leg,
                        &agent,
                        self.role_name(&agent),
                        &target,
                        true,
                    )));
            }
            OutPurpose::Done => endpoint.hangup(now, leg),
        }
    }

    /// Cancel the listener's other contacts still ringing for a listening-in session.
    fn cancel_forks_listen(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        answered: CallId,
        listener: &str,
    ) {
        let others: Vec<CallId> = self
            .centre
            .out_legs
            .iter()
            .filter(|(id, o)| {
                **id != answered
                    && !o.answered
                    && o.agent == listener
                    && matches!(o.purpose, OutPurpose::Listen { .. })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in others {
            self.finish_out(id);
            endpoint.hangup(now, id);
        }
    }

    /// The team leaders and coaches listening in on `agent` now.
    pub(crate) fn listeners_of(&self, agent: &str) -> Vec<String> {
        let by_phone = self
            .centre
            .agent_calls
            .values()
            .filter_map(|a| match &a.kind {
                AgentCallKind::Listen { target } if target == agent => Some(a.agent.clone()),
                _ => None,
            });
        let by_api = self
            .centre
            .out_legs
            .values()
            .filter_map(|o| match &o.purpose {
                OutPurpose::Listen { target } if target == agent && o.answered => {
                    Some(o.agent.clone())
                }
                _ => None,
            });
        by_phone.chain(by_api).collect()
    }

    /// The API asks kald to ring `listener`'s phone and let them hear `target`'s call.
    pub(crate) fn listen_from_api(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        listener: &str,
        target: &str,
    ) -> Result<(), String> {
        if let Err(prompt) = self.listen_target(listener, target) {
            return Err(match prompt {
                "agent-not-allowed" => "not allowed to listen in".into(),
                _ => "that agent is not on a call".into(),
            });
        }
        let target = self
            .centre
            .directory
            .find(target)
            .map(|a| a.login.clone())
            .unwrap_or_default();
        let name = self
            .centre
            .directory
            .find(&target)
            .map(|a| format!("Medlyt {}", a.name))
            .unwrap_or_else(|| "Medlyt".into());
        let placed = self.dial_agent(
            now,
            endpoint,
            listener,
            &name,
            "medlyt",
            OutPurpose::Listen { target },
        );
        if placed == 0 {
            return Err("your phone is not registered".into());
        }
        Ok(())
    }

    /// End `listener`'s listening-in sessions started from the API.
    pub(crate) fn stop_listening(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        listener: &str,
    ) -> Result<(), String> {
        let legs: Vec<CallId> = self
            .centre
            .out_legs
            .iter()
            .filter(|(_, o)| o.agent == listener && matches!(o.purpose, OutPurpose::Listen { .. }))
            .map(|(id, _)| *id)
            .collect();
        if legs.is_empty() {
            return Err("not listening in".into());
        }
        for l in legs {
            endpoint.hangup(now, l);
        }
        Ok(())
    }

    /// Call `target` (an allowlisted number or SIP URI) through the carrier for `citizen`;
    /// `false` if no trunk takes calls out.
    pub(crate) fn dial_external(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        target: &str,
        citizen: CallId,
        from_leg: Option<CallId>,
    ) -> bool {
        let (Some(outbound), Some(ctx)) = (self.outbound, self.calls.get(&citizen)) else {
            tracing::warn!(call = %citizen, "no trunk with an outbound address; cannot transfer out");
            return false;
        };
        let local = ctx.sip_local;
        let from_user = ctx.caller.clone().unwrap_or_else(|| "anonymous".into());
        let ip = self.public_ip.unwrap_or(local.ip());
        let media = match self.media_leg(ip) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "no media port for a call out");
                return false;
            }
        };
        // The Request-URI names the number; the packet goes to the carrier's address (never
        // a host looked up from the target).
        let uri = if target.starts_with("sip:") || target.starts_with("sips:") {
            target.to_owned()
        } else {
            format!("sip:{}@{outbound}", sanitize_user(target))
        };
        let offer = sdp::offer(&media.local, Direction::SendRecv);
        let id = endpoint.dial(
            now,
            Dial {
                flow: kald_sip::endpoint::Flow {
                    transport: kald_sip::endpoint::Transport::Udp,
                    remote: outbound,
                    local,
                    connection: None,
                },
                target: uri.clone(),
                to: format!("<{uri}>"),
                display_name: String::new(),
                from_user: sanitize_user(&from_user),
                sdp: offer,
                credentials: None,
            },
        );
        tracing::info!(call = %citizen, leg = %id, "calling out for a transfer");
        self.centre.legs.insert(media.leg, id);
        self.centre.out_legs.insert(
            id,
            OutLeg {
                media,
                agent: String::new(),
                purpose: OutPurpose::External { citizen, from_leg },
                answered: false,
            },
        );
        true
    }

    /// The flow's transfer did not connect: tell the caller and end the call.
    pub(crate) fn transfer_out_failed(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        citizen: CallId,
    ) {
        tracing::info!(call = %citizen, "transfer out failed");
        let prompt = self.flows.prompt("transfer-failed-goodbye");
        let Some(ctx) = self.calls.get_mut(&citizen) else {
            return;
        };
        match prompt {
            Some(p) => {
                ctx.phase_closing();
                self.media.send(Command::Play {
                    leg: ctx.leg,
                    prompt: p,
                    looped: false,
                });
            }
            None => endpoint.hangup(now, citizen),
        }
    }

    /// The citizen talks to `agent` over `leg` from now on: stop the queue's sounds, bridge.
    fn connect_citizen(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        citizen: CallId,
        leg: CallId,
        agent: &str,
    ) {
        let entered = self.acd.call(citizen).map(|v| v.entered);
        let Some(ctx) = self.calls.get_mut(&citizen) else {
            return;
        };
        ctx.queued = None;
        ctx.agent = Some((leg, agent.to_owned()));
        ctx.answered_wait = entered.map(|e| now.saturating_duration_since(e));
        let cleg = ctx.leg;
        self.media.send(Command::Stop { leg: cleg });
        self.bridge(citizen, leg);
        self.centre.talking.insert(agent.to_owned(), leg);
        tracing::info!(call = %citizen, %agent, "citizen connected to agent");
        self.flow_connected(now, endpoint, citizen);
        self.maybe_record(citizen, leg, agent);
    }

    /// A transfer moved the citizen from `old_leg` to `new_leg` (agent `agent`).
    fn handover(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        citizen: CallId,
        old_leg: CallId,
        new_leg: CallId,
        agent: &str,
    ) {
        let old_agent = self
            .centre
            .out_legs
            .get(&old_leg)
            .map(|o| o.agent.clone())
            .or_else(|| {
                self.calls
                    .get(&citizen)
                    .and_then(|c| c.agent.clone().map(|a| a.1))
            });
        // A call transferred onward is no longer recorded (issue 8).
        self.stop_recording(citizen, false);
        self.unpeer(citizen);
        if let Some(a) = &old_agent {
            self.centre.talking.remove(a);
        }
        if let Some(o) = self.centre.out_legs.get_mut(&old_leg) {
            o.purpose = OutPurpose::Done;
        }
        self.centre.peers.remove(&old_leg);
        endpoint.hangup(now, old_leg);
        if let Some(ctx) = self.calls.get_mut(&citizen) {
            ctx.agent = Some((new_leg, agent.to_owned()));
            ctx.transferred = true;
        }
        self.bridge(citizen, new_leg);
        self.centre.talking.insert(agent.to_owned(), new_leg);
        let at = self.clock.now().timestamp();
        self.records
            .send(StoreOp::QueueEvent(crate::records::transfer_event(
                at,
                citizen,
                old_agent.as_deref(),
                agent,
            )));
        tracing::info!(call = %citizen, to = %agent, "transferred");
        self.acd_input(
            now,
            endpoint,
            AcdInput::Transferred {
                call: citizen,
                agent: agent.to_owned(),
            },
        );
    }

    /// Cancel the other contacts rung for the same purpose as `answered`.
    fn cancel_forks(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        answered: CallId,
        of: CallId,
    ) {
        let others: Vec<CallId> = self
            .centre
            .out_legs
            .iter()
            .filter(|(id, o)| {
                **id != answered
                    && !o.answered
                    && match o.purpose {
                        OutPurpose::Ring { citizen } => citizen == of,
                        OutPurpose::Direct { from } => from == of,
                        OutPurpose::TransferTo { citizen, .. } => citizen == of,
                        OutPurpose::External { .. }
                        | OutPurpose::Listen { .. }
                        | OutPurpose::Done => false,
                    }
            })
            .map(|(id, _)| *id)
            .collect();
        for id in others {
            if let Some(o) = self.centre.out_legs.get_mut(&id) {
                o.purpose = OutPurpose::Done;
            }
            endpoint.hangup(now, id);
        }
    }

    fn finish_out(&mut self, leg: CallId) {
        if let Some(o) = self.centre.out_legs.get_mut(&leg) {
            o.purpose = OutPurpose::Done;
        }
    }

    /// One of the centre's calls ended.
    pub(crate) fn centre_ended(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallId,
        reason: EndReason,
    ) {
        if let Some(o) = self.centre.out_legs.remove(&call) {
            // A recording of this leg's bridge stops before its stream goes.
            if let Some(citizen) = self.centre.peers.get(&call).copied() {
                self.stop_recording(citizen, false);
            }
            self.centre.legs.remove(&o.media.leg);
            self.close_media(&o.media);
            // Only the leg the agent talks on ends listening in and clears `talking` (a late
            // fork or a cancelled contact must not).
            let was_talking = self.centre.talking.get(&o.agent) == Some(&call);
            if was_talking {
                self.stop_listeners_of(now, endpoint, &o.agent, call);
                self.centre.talking.remove(&o.agent);
            }
            let peer = self.unpeer(call);
            tracing::info!(leg = %call, agent = %o.agent, ?reason, answered = o.answered, "agent leg ended");
            match o.purpose {
                OutPurpose::Ring { citizen } if !o.answered => {
                    // Only a miss when no other contact of the agent still rings.
                    let still = self.centre.out_legs.values().any(|x| {
                        x.agent == o.agent
                            && matches!(x.purpose, OutPurpose::Ring { citizen: c } if c == citizen)
                    });
                    if !still {
                        self.acd_input(
                            now,
                            endpoint,
                            AcdInput::RingFailed {
                                call: citizen,
                                agent: o.agent.clone(),
                            },
                        );
                    }
                }
                OutPurpose::TransferTo { citizen, from_leg } if !o.answered => {
                    if !self.any_fork(citizen) {
                        self.transfer_failed(now, endpoint, citizen, from_leg);
                    }
                }
                OutPurpose::Ring { citizen } | OutPurpose::TransferTo { citizen, .. }
                    if self.transfer_pending(citizen, call) =>
                {
                    // The agent hung up right after a REFER (many phones do): the citizen
                    // waits for the transfer with music; the agent goes to wrap-up.
                    self.acd_input(now, endpoint, AcdInput::Released { call: citizen });
                    if let Some(ctx) = self.calls.get_mut(&citizen) {
                        ctx.agent = None;
                    }
                    self.hold_music(citizen);
                    tracing::info!(call = %citizen, "the agent left during the transfer; the caller waits for it");
                }
                OutPurpose::Ring { citizen } | OutPurpose::TransferTo { citizen, .. } => {
                    // The agent hung up (or was lost): the call is over for the ACD (the agent
                    // goes to wrap-up) and the citizen's leg ends too.
                    if self.calls.contains_key(&citizen) {
                        self.acd_input(now, endpoint, AcdInput::Ended { call: citizen });
                        if let Some(ctx) = self.calls.get_mut(&citizen) {
                            ctx.ended_by_agent = true;
                        }
                        endpoint.hangup(now, citizen);
                    }
                }
                OutPurpose::Direct { from } => {
                    self.set_busy(now, endpoint, &o.agent, false);
                    if o.answered || !self.any_fork(from) {
                        if let Some(p) = peer.or(Some(from)) {
                            if self.centre.agent_calls.contains_key(&p) {
                                endpoint.hangup(now, p);
                            }
                        }
                    }
                }
                OutPurpose::External { citizen, .. } if o.answered => {
                    // The ACD kept the released call only to see it end.
                    self.acd_input(now, endpoint, AcdInput::Ended { call: citizen });
                    if self.calls.contains_key(&citizen) {
                        endpoint.hangup(now, citizen);
                    }
                }
                OutPurpose::External { citizen, from_leg } => match from_leg {
                    Some(from) => self.transfer_failed(now, endpoint, citizen, from),
                    None => self.transfer_out_failed(now, endpoint, citizen),
                },
                OutPurpose::Listen { target } => {
                    if o.answered {
                        self.listen_ended(o.media.leg, call, &o.agent, &target);
                    }
                }
                OutPurpose::Done => {}
            }
            return;
        }
        if let Some(a) = self.centre.agent_calls.remove(&call) {
            self.pending_listen.remove(&call);
            self.centre.legs.remove(&a.media.leg);
            if let AgentCallKind::Listen { target } = &a.kind {
                self.listen_ended(a.media.leg, call, &a.agent, target);
            }
            self.close_media(&a.media);
            if let Some(peer) = self.unpeer(call) {
                if self.centre.out_legs.contains_key(&peer) {
                    endpoint.hangup(now, peer);
                }
            }
            // Forks still ringing for this consult call.
            let forks: Vec<CallId> = self
                .centre
                .out_legs
                .iter()
                .filter(|(_, o)| matches!(o.purpose, OutPurpose::Direct { from } if from == call))
                .map(|(id, _)| *id)
                .collect();
            for f in forks {
                self.finish_out(f);
                endpoint.hangup(now, f);
            }
            tracing::info!(call = %call, agent = %a.agent, ?reason, "agent's own call ended");
        }
    }

    /// Whether a transfer that `from_leg`'s REFER started still rings for `citizen`.
    fn transfer_pending(&self, citizen: CallId, from_leg: CallId) -> bool {
        self.centre.out_legs.values().any(|x| {
            !x.answered
                && match x.purpose {
                    OutPurpose::TransferTo {
                        citizen: c,
                        from_leg: f,
                    } => c == citizen && f == from_leg,
                    OutPurpose::External {
                        citizen: c,
                        from_leg: Some(f),
                    } => c == citizen && f == from_leg,
                    _ => false,
                }
        })
    }

    fn any_fork(&self, of: CallId) -> bool {
        self.centre.out_legs.values().any(|o| {
            !o.answered
                && match o.purpose {
                    OutPurpose::Direct { from } => from == of,
                    OutPurpose::TransferTo { citizen, .. }
                    | OutPurpose::External { citizen, .. } => citizen == of,
                    _ => false,
                }
        })
    }

    /// A citizen's call ended (called from the citizen's own end handling).
    /// Bridge a citizen and an agent's leg again (after a withdrawal confirmation).
    pub(crate) fn rebridge(&mut self, citizen: CallId, agent_leg: CallId) {
        if self.centre.peers.get(&citizen) == Some(&agent_leg) {
            if let (Some(a), Some(b)) = (self.leg_of(citizen), self.leg_of(agent_leg)) {
                self.media.send(Command::Bridge {
                    a,
                    b,
                    hold_music: None,
                });
            }
        }
    }

    pub(crate) fn citizen_gone(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallId,
        queued: bool,
    ) {
        self.stop_recording(call, false);
        if let Some(peer) = self.unpeer(call) {
            let agent = self.centre.out_legs.get(&peer).map(|o| o.agent.clone());
            if let Some(o) = self.centre.out_legs.get_mut(&peer) {
                o.purpose = OutPurpose::Done;
            }
            if let Some(a) = &agent {
                self.centre.talking.remove(a);
                self.stop_listeners_of(now, endpoint, a, peer);
            }
            endpoint.hangup(now, peer);
            self.acd_input(now, endpoint, AcdInput::Ended { call });
        } else if queued {
            self.acd_input(now, endpoint, AcdInput::Abandon { call });
        }
        // Contacts still ringing for a blind transfer of this citizen.
        let forks: Vec<CallId> = self
            .centre
            .out_legs
            .iter()
            .filter(|(_, o)| {
                !o.answered
                    && matches!(o.purpose, OutPurpose::Ring { citizen } | OutPurpose::TransferTo { citizen, .. } | OutPurpose::External { citizen, .. } if citizen == call)
            })
            .map(|(id, _)| *id)
            .collect();
        for f in forks {
            self.finish_out(f);
            endpoint.hangup(now, f);
        }
    }

    // ---- agents' own calls ----------------------------------------------------------------------

    /// An authenticated agent's phone called kald.
    pub(crate) fn agent_incoming(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        agent: &str,
        arrival: Arrival,
    ) {
        let Arrival {
            call,
            entry_point,
            offer,
            local,
            replaces,
        } = arrival;
        let dialled = entry_point.as_str();
        let span = tracing::info_span!("agent call", call = %call, agent = %agent);
        let _g = span.enter();
        let Some(offer) = offer else {
            // Feature codes and consult calls need the phone's offer; a delayed offer is rare
            // from softphones.
            endpoint.reject(now, call, 488);
            return;
        };
        let ip = self.public_ip.unwrap_or(local.ip());
        let Ok(mut media) = self.media_leg(ip) else {
            endpoint.reject(now, call, 503);
            return;
        };
        let negotiated = SessionDescription::parse(&offer)
            .ok()
            .and_then(|o| sdp::answer(&o, &media.local).ok());
        let Some(n) = negotiated else {
            endpoint.reject(now, call, 488);
            return;
        };
        let Some(answer) = n.answer.as_ref().map(|a| a.bytes.clone()) else {
            endpoint.reject(now, call, 488);
            return;
        };
        if replaces.is_some() {
            // kald does not take over its own dialogs through INVITE/Replaces; transfers
            // come as REFER.
            endpoint.reject(now, call, 403);
            return;
        }
        let mut feature = |prompt: &str, input: Option<AcdInput>, this: &mut Self| {
            tracing::info!(code = %dialled, "feature code");
            if let Some(i) = input {
                this.acd_input(now, endpoint, i);
            }
            (AgentCallKind::Feature, Some(prompt.to_owned()))
        };
        let state = self.acd.agent(agent).map(|v| v.state);
        let (kind, prompt) = match dialled {
            "*20" => feature(
                "agent-logged-in",
                Some(AcdInput::Login {
                    agent: agent.to_owned(),
                }),
                self,
            ),
            "*23" => feature(
                "agent-logged-out",
                Some(AcdInput::Logout {
                    agent: agent.to_owned(),
                }),
                self,
            ),
            "*21" => {
                if state == Some(AgentState::Paused) {
                    feature(
                        "agent-ready",
                        Some(AcdInput::Unpause {
                            agent: agent.to_owned(),
                        }),
                        self,
                    )
                } else {
                    feature(
                        "agent-paused",
                        Some(AcdInput::Pause {
                            agent: agent.to_owned(),
                            reason: "pause".into(),
                        }),
                        self,
                    )
                }
            }
            "*22" => feature(
                "agent-wrap-up-ended",
                Some(AcdInput::EndWrapUp {
                    agent: agent.to_owned(),
                }),
                self,
            ),
            "*24" => {
                let citizen = self
                    .centre
                    .talking
                    .get(agent)
                    .and_then(|l| self.centre.peers.get(l))
                    .copied()
                    .filter(|c| self.calls.contains_key(c));
                match citizen {
                    Some(c) => {
                        self.withdraw_consent(now, endpoint, c, agent);
                        (AgentCallKind::Feature, Some("recording-stopped".to_owned()))
                    }
                    None => (AgentCallKind::Feature, Some("agent-not-found".to_owned())),
                }
            }
            d if d.starts_with("*30") => {
                let ext = &d[3..];
                match self.listen_target(agent, ext) {
                    Ok((target, leg)) => {
                        // Answered below; the listen starts once the media is open.
                        let at = self.clock.now().timestamp();
                        tracing::info!(listener = %agent, target = %target, "listening in started");
                        self.records
                            .send(StoreOp::QueueEvent(crate::records::listen_event(
                                at,
                                call,
                                agent,
                                self.role_name(agent),
                                &target,
                                true,
                            )));
                        self.pending_listen.insert(call, leg);
                        (
                            AgentCallKind::Listen { target },
                            Some("listen-in-started".to_owned()),
                        )
                    }
                    Err(prompt) => (AgentCallKind::Feature, Some(prompt.to_owned())),
                }
            }
            d => match self.centre.directory.find(d).map(|a| a.login.clone()) {
                Some(colleague) if colleague != agent => {
                    let busy = self.acd.agent(&colleague).is_some_and(|v| {
                        !matches!(
                            v.state,
                            AgentState::Available
                                | AgentState::LoggedOut
                                | AgentState::WrapUp
                                | AgentState::Paused
                        )
                    }) || self.centre.talking.contains_key(&colleague);
                    if busy {
                        endpoint.reject(now, call, 486);
                        return;
                    }
                    (AgentCallKind::Consult, None)
                }
                _ => {
                    // What an agent dialled may be a citizen's number: not logged.
                    tracing::info!(
                        feature = d.starts_with('*'),
                        "unknown feature code or colleague"
                    );
                    endpoint.reject(now, call, 404);
                    return;
                }
            },
        };
        endpoint.answer(now, call, answer);
        open_media(&self.media, &mut media, &n);
        let mleg = media.leg;
        self.centre.legs.insert(mleg, call);
        let consult = matches!(kind, AgentCallKind::Consult);
        self.centre.agent_calls.insert(
            call,
            AgentCall {
                media,
                agent: agent.to_owned(),
                kind,
            },
        );
        match prompt.as_deref().and_then(|p| self.flows.prompt(p)) {
            Some(p) => self.media.send(Command::Play {
                leg: mleg,
                prompt: p,
                looped: false,
            }),
            None => {
                if !consult {
                    self.agent_prompt_done(now, endpoint, call);
                }
            }
        }
        if consult {
            let colleague = self
                .centre
                .directory
                .find(dialled)
                .map(|a| a.login.clone())
                .unwrap_or_default();
            if let Some(p) = self.flows.prompt("hold-music") {
                self.media.send(Command::Play {
                    leg: mleg,
                    prompt: p,
                    looped: true,
                });
            }
            let name = self
                .centre
                .directory
                .find(agent)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| agent.to_owned());
            let placed = self.dial_agent(
                now,
                endpoint,
                &colleague,
                &name,
                agent,
                OutPurpose::Direct { from: call },
            );
            if placed == 0 {
                endpoint.hangup(now, call);
            } else {
                // The colleague is on this call now, not on the queues' (until it ends).
                self.set_busy(now, endpoint, &colleague, true);
            }
        }
    }

    /// A re-INVITE or UPDATE on one of the centre's legs (a softphone's hold, typically).
    pub(crate) fn centre_reoffer(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallId,
        offer: Option<Bytes>,
    ) {
        let m = match self.centre.out_legs.get_mut(&call) {
            Some(o) => &mut o.media,
            None => match self.centre.agent_calls.get_mut(&call) {
                Some(a) => &mut a.media,
                None => {
                    endpoint.answer_offer(now, call, None);
                    return;
                }
            },
        };
        m.local.version += 1;
        let Some(offer) = offer else {
            endpoint.answer_offer(now, call, Some(sdp::offer(&m.local, Direction::SendRecv)));
            return;
        };
        let parsed = SessionDescription::parse(&offer).ok();
        let result = match (&parsed, &m.negotiated) {
            (Some(o), Some(prev)) => sdp::reanswer(o, &m.local, prev).ok(),
            (Some(o), None) => sdp::answer(o, &m.local).ok(),
            (None, _) => None,
        };
        let Some(n) = result else {
            endpoint.answer_offer(now, call, None);
            return;
        };
        let answer = n.answer.as_ref().map(|a| a.bytes.clone());
        tracing::info!(leg = %call, hold = n.is_hold(), "agent's re-offer answered");
        endpoint.answer_offer(now, call, answer);
        open_media(&self.media, m, &n);
    }

    /// A listening-in session ended: stop the mix, log and audit it.
    fn listen_ended(&mut self, listener_leg: LegId, call: CallId, listener: &str, target: &str) {
        self.media.send(Command::Unlisten {
            listener: listener_leg,
        });
        let at = self.clock.now().timestamp();
        tracing::info!(%listener, %target, "listening in ended");
        self.records
            .send(StoreOp::QueueEvent(crate::records::listen_event(
                at,
                call,
                listener,
                self.role_name(listener),
                target,
                false,
            )));
    }

    /// The role of a login, as the audit log names it.
    fn role_name(&self, login: &str) -> &'static str {
        match self.centre.directory.find(login).map(|a| a.role) {
            Some(Role::TeamLeader) => "team-leader",
            Some(Role::Coach) => "coach",
            _ => "agent",
        }
    }

    /// Who `listener` may listen to on extension/login `who`, and that agent's leg.
    fn listen_target(&self, listener: &str, who: &str) -> Result<(String, LegId), &'static str> {
        let role = self
            .centre
            .directory
            .find(listener)
            .map(|a| a.role)
            .unwrap_or_default();
        if !matches!(role, Role::TeamLeader | Role::Coach) {
            tracing::info!(%listener, "listening in refused: not a team leader or coach");
            return Err("agent-not-allowed");
        }
        let policy_role = match role {
            Role::TeamLeader => kald_recordings::Role::TeamLeader,
            Role::Coach => kald_recordings::Role::Coach,
            Role::Agent => kald_recordings::Role::Agent,
        };
        match self
            .recordings
            .policy
            .access(policy_role, kald_recordings::Permission::ListenIn)
        {
            kald_recordings::Access::Allowed => {}
            kald_recordings::Access::WithAgentConsent => {
                // The agent page has no consent button for live listening yet: refuse
                // rather than listen without the consent the policy asks for.
                tracing::info!(%listener, "listening in refused: the policy requires the agent's consent first");
                return Err("agent-not-allowed");
            }
            _ => {
                tracing::info!(%listener, "listening in refused by the policy");
                return Err("agent-not-allowed");
            }
        }
        let Some(target) = self.centre.directory.find(who).map(|a| a.login.clone()) else {
            return Err("agent-not-found");
        };
        let Some(leg) = self
            .centre
            .talking
            .get(&target)
            .and_then(|l| self.leg_of(*l))
        else {
            return Err("agent-not-found");
        };
        Ok((target, leg))
    }

    /// A media report for one of the centre's legs; `true` if it was one.
    pub(crate) fn centre_prompt_finished(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        leg: LegId,
    ) -> bool {
        let Some(&call) = self.centre.legs.get(&leg) else {
            return false;
        };
        self.agent_prompt_done(now, endpoint, call);
        true
    }

    fn agent_prompt_done(&mut self, now: Instant, endpoint: &mut Endpoint, call: CallId) {
        let Some(a) = self.centre.agent_calls.get(&call) else {
            return;
        };
        match a.kind {
            AgentCallKind::Feature => endpoint.hangup(now, call),
            AgentCallKind::Listen { .. } => {
                if let Some(target) = self.pending_listen.remove(&call) {
                    self.media.send(Command::Listen {
                        listener: a.media.leg,
                        target,
                    });
                }
            }
            AgentCallKind::Consult => {}
        }
    }

    /// End the listening-in sessions on `agent`'s call.
    fn stop_listeners_of(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        agent: &str,
        _leg: CallId,
    ) {
        let listeners: Vec<CallId> = self
            .centre
            .agent_calls
            .iter()
            .filter(|(_, a)| matches!(&a.kind, AgentCallKind::Listen { target } if target == agent))
            .map(|(id, _)| *id)
            .collect();
        let api: Vec<CallId> = self
            .centre
            .out_legs
            .iter()
            .filter(|(_, o)| matches!(&o.purpose, OutPurpose::Listen { target } if target == agent))
            .map(|(id, _)| *id)
            .collect();
        for l in listeners.into_iter().chain(api) {
            endpoint.hangup(now, l);
        }
    }

    /// Tell the ACD an agent is on (or off) a call it did not route.
    fn set_busy(&mut self, now: Instant, endpoint: &mut Endpoint, agent: &str, busy: bool) {
        self.acd_input(
            now,
            endpoint,
            AcdInput::Busy {
                agent: agent.to_owned(),
                busy,
            },
        );
    }

    // ---- transfers -------------------------------------------------------------------------------

    /// An agent's phone sent REFER on `call`.
    pub(crate) fn refer(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallId,
        target: &str,
        replaces: Option<CallId>,
    ) {
        // The citizen on the other side of the agent's leg.
        let Some(citizen) = self
            .centre
            .peers
            .get(&call)
            .copied()
            .filter(|p| self.calls.contains_key(p))
        else {
            tracing::info!(leg = %call, "REFER on a leg without a citizen; refused");
            endpoint.notify_refer(now, call, 603, "Declined", true);
            return;
        };
        if let Some(consult) = replaces {
            // Attended: the agent's consult call `consult` is bridged to the colleague's leg.
            let Some(colleague_leg) = self
                .centre
                .peers
                .get(&consult)
                .copied()
                .filter(|l| self.centre.out_legs.contains_key(l))
            else {
                tracing::info!(leg = %call, "attended transfer names no consult call kald knows");
                endpoint.notify_refer(now, call, 481, "Call Does Not Exist", true);
                return;
            };
            let colleague = self
                .centre
                .out_legs
                .get(&colleague_leg)
                .map(|o| o.agent.clone())
                .unwrap_or_default();
            self.unpeer(consult);
            if let Some(o) = self.centre.out_legs.get_mut(&colleague_leg) {
                o.purpose = OutPurpose::TransferTo {
                    citizen,
                    from_leg: call,
                };
            }
            endpoint.notify_refer(now, call, 200, "OK", true);
            endpoint.hangup(now, consult);
            self.handover(now, endpoint, citizen, call, colleague_leg, &colleague);
            return;
        }
        let user = refer_user(target);
        if let Some(queue) = self.queue_named(&user) {
            endpoint.notify_refer(now, call, 200, "OK", true);
            // A call transferred onward is no longer recorded (issue 8).
            self.stop_recording(citizen, false);
            self.unpeer(citizen);
            let old_agent = self.centre.out_legs.get(&call).map(|o| o.agent.clone());
            if let Some(a) = &old_agent {
                self.centre.talking.remove(a);
            }
            self.finish_out(call);
            endpoint.hangup(now, call);
            let music = self.flows.prompt("hold-music");
            if let Some(ctx) = self.calls.get_mut(&citizen) {
                ctx.agent = None;
                ctx.transferred = true;
                ctx.queued = Some(crate::calls::Queued::new(now, None));
                if let Some(p) = music {
                    self.media.send(Command::Play {
                        leg: ctx.leg,
                        prompt: p,
                        looped: true,
                    });
                }
            }
            tracing::info!(call = %citizen, %queue, "blind transfer to a queue");
            let at = self.clock.now().timestamp();
            self.records
                .send(StoreOp::QueueEvent(crate::records::transfer_event(
                    at,
                    citizen,
                    old_agent.as_deref(),
                    &format!("queue:{queue}"),
                )));
            // Requeue releases the agent (wrap-up) and enters the call anew.
            self.acd_input(
                now,
                endpoint,
                AcdInput::Requeue {
                    call: citizen,
                    queue,
                    at_head: false,
                },
            );
            return;
        }
        let Some(colleague) = self.centre.directory.find(&user).map(|a| a.login.clone()) else {
            let allowed = self
                .transfer_allowlist
                .iter()
                .any(|a| a == &user || a == target);
            if allowed {
                endpoint.notify_refer(now, call, 100, "Trying", false);
                if !self.dial_external(now, endpoint, &user, citizen, Some(call)) {
                    endpoint.notify_refer(now, call, 503, "Service Unavailable", true);
                }
                return;
            }
            tracing::info!(leg = %call, "blind transfer to a number kald may not call");
            endpoint.notify_refer(now, call, 403, "Forbidden", true);
            return;
        };
        endpoint.notify_refer(now, call, 100, "Trying", false);
        let display = self
            .calls
            .get(&citizen)
            .and_then(|c| c.topic.clone())
            .map(|t| format!("{} (viderestillet)", self.centre.directory.display(&t)))
            .unwrap_or_else(|| "Viderestillet".into());
        let caller = self
            .calls
            .get(&citizen)
            .and_then(|c| c.caller.clone())
            .unwrap_or_else(|| "anonymous".into());
        let placed = self.dial_agent(
            now,
            endpoint,
            &colleague,
            &display,
            &caller,
            OutPurpose::TransferTo {
                citizen,
                from_leg: call,
            },
        );
        if placed == 0 {
            self.transfer_failed(now, endpoint, citizen, call);
        }
    }

    /// A transfer did not reach its target: the citizen goes back to the agent, or to the
    /// head of the queue if the agent's leg is gone.
    fn transfer_failed(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        citizen: CallId,
        from_leg: CallId,
    ) {
        tracing::info!(call = %citizen, "transfer failed");
        if self.centre.out_legs.contains_key(&from_leg) {
            endpoint.notify_refer(now, from_leg, 480, "Temporarily Unavailable", true);
            // Still bridged: the agent simply has the citizen again.
            return;
        }
        let Some(ctx) = self.calls.get_mut(&citizen) else {
            return;
        };
        let Some(queue) = ctx.queue_name.clone() else {
            endpoint.hangup(now, citizen);
            return;
        };
        ctx.agent = None;
        ctx.queued = Some(crate::calls::Queued::new(now, None));
        let leg = ctx.leg;
        if let Some(p) = self.flows.prompt("transfer-failed") {
            self.media.send(Command::Play {
                leg,
                prompt: p,
                looped: false,
            });
        }
        self.acd_input(
            now,
            endpoint,
            AcdInput::Requeue {
                call: citizen,
                queue,
                at_head: true,
            },
        );
    }

    fn queue_named(&self, name: &str) -> Option<String> {
        self.acd.queue(name).map(|_| name.to_owned())
    }
}

/// Start (or update) the media of a leg with what was negotiated.
fn open_media(media: &Media, m: &mut MediaLeg, n: &Negotiated) {
    let params = stream_params(n);
    m.negotiated = Some(n.clone());
    if m.opened {
        media.send(Command::Update { leg: m.leg, params });
        return;
    }
    if let Some((rtp, rtcp)) = m.sockets.take() {
        m.opened = true;
        media.send(Command::Open {
            leg: m.leg,
            rtp,
            rtcp,
            params,
        });
    }
}

/// The user part of a Refer-To URI (`sip:bo@host` → `bo`), lower-cased for queue names.
fn refer_user(target: &str) -> String {
    let t = target.trim().trim_start_matches('<').trim_end_matches('>');
    let t = t
        .strip_prefix("sip:")
        .or_else(|| t.strip_prefix("sips:"))
        .or_else(|| t.strip_prefix("tel:"))
        .unwrap_or(t);
    let user = t.split(['@', ';', '?']).next().unwrap_or("");
    user.to_owned()
}

/// A From user part made of characters a SIP user part may hold unescaped.
fn sanitize_user(s: &str) -> String {
    let u: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+-_.!~*'()".contains(*c))
        .take(32)
        .collect();
    if u.is_empty() {
        "anonymous".into()
    } else {
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_user_takes_the_user_part() {
        assert_eq!(refer_user("<sip:bo@127.0.0.1:5060;transport=udp>"), "bo");
        assert_eq!(refer_user("sip:sygedagpenge@kald"), "sygedagpenge");
        assert_eq!(refer_user("tel:101"), "101");
    }

    #[test]
    fn from_user_is_never_empty_or_unsafe() {
        assert_eq!(sanitize_user(""), "anonymous");
        assert_eq!(sanitize_user("+45 70 10 10 10"), "+4570101010");
        assert_eq!(sanitize_user("a\"b<c>"), "abc");
    }

    #[test]
    fn queue_names_are_shown_title_cased() {
        assert_eq!(title_case("sygedagpenge"), "Sygedagpenge");
        assert_eq!(title_case(""), "");
    }
}
