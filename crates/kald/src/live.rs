//! What the web side sees and asks: the SIP loop turns its state into a [`Snapshot`] for the
//! API's push channel and pages, executes the API's [`Command`]s, and renders the Prometheus
//! text of `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Instant;

use kald_acd::{AgentState, CallPhase, Input as AcdInput};
use kald_api::{
    AgentStatus, Command, LiveCall, QueueState, Reply, Role as ApiRole, Snapshot, User,
};
use kald_sip::endpoint::Endpoint;

use crate::calls::Calls;
use crate::config::{Centre, Role};

/// The API's users: every agent (with the role of their `[[agent]]` table) and every
/// `[[user]]`.
pub(crate) fn users(centre: &Centre) -> Vec<User> {
    let agents = centre.agents.iter().map(|a| User {
        login: a.login.clone(),
        name: a.name.clone(),
        password: a.password.clone(),
        role: match a.role {
            Role::Agent => ApiRole::Agent,
            Role::TeamLeader => ApiRole::TeamLeader,
            Role::Coach => ApiRole::Coach,
        },
    });
    let others = centre.users.iter().filter_map(|u| {
        let role = match u.role.as_str() {
            "supervisor" => ApiRole::Supervisor,
            "records-officer" => ApiRole::RecordsOfficer,
            "administrator" => ApiRole::Administrator,
            "team-leader" => ApiRole::TeamLeader,
            "coach" => ApiRole::Coach,
            _ => return None,
        };
        Some(User {
            login: u.login.clone(),
            name: u.name.clone(),
            password: u.password.clone(),
            role,
        })
    });
    agents.chain(others).collect()
}

/// The wire name of an agent state.
fn state_name(s: AgentState) -> &'static str {
    match s {
        AgentState::LoggedOut => "logged_out",
        AgentState::Available => "available",
        AgentState::Ringing => "ringing",
        AgentState::Talking => "talking",
        AgentState::WrapUp => "wrap_up",
        AgentState::Paused => "paused",
    }
}

fn secs_since(now: Instant, t: Option<Instant>) -> u64 {
    t.map_or(0, |t| now.saturating_duration_since(t).as_secs())
}

impl Calls {
    /// The live state for the API.
    pub(crate) fn snapshot(&self, now: Instant) -> Snapshot {
        let queues = self
            .acd
            .queues()
            .map(|q| {
                let a = q.agents;
                let agents = BTreeMap::from([
                    ("logged_out".to_owned(), a.logged_out),
                    ("available".to_owned(), a.available),
                    ("ringing".to_owned(), a.ringing),
                    ("talking".to_owned(), a.talking),
                    ("wrap_up".to_owned(), a.wrap_up),
                    ("paused".to_owned(), a.paused),
                ]);
                QueueState {
                    name: q.name.clone(),
                    display: q.display.clone(),
                    waiting: u32::try_from(q.waiting.len()).unwrap_or(u32::MAX),
                    longest_wait_s: secs_since(now, q.longest_waiting_since),
                    agents,
                }
            })
            .collect();
        let agents = self
            .acd
            .agents()
            .map(|a| {
                let role = match self.centre.directory.find(&a.id).map(|d| d.role) {
                    Some(Role::TeamLeader) => ApiRole::TeamLeader,
                    Some(Role::Coach) => ApiRole::Coach,
                    _ => ApiRole::Agent,
                };
                AgentStatus {
                    listeners: self.listeners_of(&a.id),
                    login: a.id.clone(),
                    name: a.display_name.clone(),
                    role,
                    state: state_name(a.state).to_owned(),
                    since_s: secs_since(now, a.since),
                    reason: a.paused_reason.clone(),
                    reachable: a.reachable,
                    call: a
                        .call
                        .filter(|_| matches!(a.state, AgentState::Ringing | AgentState::Talking))
                        .map(|c| c.to_string()),
                }
            })
            .collect();
        let calls = self
            .calls
            .iter()
            .map(|(id, c)| {
                let view = self.acd.call(*id);
                let (phase, agent) = match (&c.agent, view.as_ref().map(|v| &v.phase)) {
                    (Some((_, agent)), _) => ("talking", Some(agent.clone())),
                    (None, Some(CallPhase::Ringing { agent })) => ("ringing", Some(agent.clone())),
                    (None, Some(_)) if c.queued.is_some() => ("waiting", None),
                    _ => ("ivr", None),
                };
                let outcome = c.outcome();
                LiveCall {
                    id: id.to_string(),
                    phase: phase.to_owned(),
                    queue: c.queue_name.clone(),
                    topic: c.topic.clone(),
                    waited_s: c
                        .answered_wait
                        .map(|w| w.as_secs())
                        .unwrap_or_else(|| secs_since(now, view.as_ref().map(|v| v.entered))),
                    agent,
                    consent: outcome.consent.map(|k| k == kald_ivr::Consent::Yes),
                    recording: self.recordings.is_recording(*id),
                    cpr: c.cpr().cloned(),
                }
            })
            .collect();
        Snapshot {
            at: self.clock.now().timestamp(),
            queues,
            agents,
            calls,
        }
    }

    /// Carry out one of the API's commands.
    pub(crate) fn command(&mut self, now: Instant, endpoint: &mut Endpoint, cmd: Command) -> Reply {
        let input = match cmd {
            Command::Login { agent } => AcdInput::Login { agent },
            Command::Logout { agent } => AcdInput::Logout { agent },
            Command::Pause { agent, reason } => AcdInput::Pause { agent, reason },
            Command::Ready { agent } => AcdInput::Unpause { agent },
            Command::EndWrapUp { agent } => AcdInput::EndWrapUp { agent },
            Command::ListenStart { listener, target } => {
                return self.listen_from_api(now, endpoint, &listener, &target);
            }
            Command::ListenStop { listener } => {
                return self.stop_listening(now, endpoint, &listener);
            }
            Command::StopRecording { agent } => {
                let citizen = self
                    .centre
                    .talking
                    .get(&agent)
                    .and_then(|l| self.centre.peers.get(l))
                    .copied()
                    .filter(|c| self.recordings.is_recording(*c));
                let Some(citizen) = citizen else {
                    return Err("no call of yours is being recorded".into());
                };
                self.withdraw_consent(now, endpoint, citizen, &agent);
                return Ok(());
            }
            Command::CorrectCpr { agent, call, cpr } => {
                // The API checked that the call is the agent's and stored the number; the live
                // call takes it for the screen pop and for what is recorded from now on.
                let Some((_, ctx)) = self.calls.iter_mut().find(|(id, _)| id.to_string() == call)
                else {
                    return Err("the call has ended".into());
                };
                ctx.cpr_corrected = Some(cpr);
                tracing::info!(%agent, call = %call, "CPR number corrected on the live call");
                return Ok(());
            }
            _ => return Err("not supported".into()),
        };
        let result = self.acd.handle_input(now, input);
        self.drive_acd(now, endpoint);
        result.map_err(|e| e.to_string())
    }

    /// Prometheus text: calls, queues, agents, SIP messages, RTP.
    pub(crate) fn metrics(&self, now: Instant, endpoint: &Endpoint) -> String {
        let mut m = String::with_capacity(4096);
        let _ = writeln!(
            m,
            "# HELP kald_calls_in_progress Citizens' calls in progress.\n# TYPE kald_calls_in_progress gauge"
        );
        let _ = writeln!(m, "kald_calls_in_progress {}", self.calls.len());
        let _ = writeln!(
            m,
            "# HELP kald_queue_waiting Calls waiting per queue.\n# TYPE kald_queue_waiting gauge"
        );
        let queues: Vec<_> = self.acd.queues().collect();
        for q in &queues {
            let _ = writeln!(
                m,
                "kald_queue_waiting{{queue=\"{}\"}} {}",
                q.name,
                q.waiting.len()
            );
        }
        let _ = writeln!(
            m,
            "# HELP kald_queue_longest_wait_seconds The longest current wait per queue.\n# TYPE kald_queue_longest_wait_seconds gauge"
        );
        for q in &queues {
            let _ = writeln!(
                m,
                "kald_queue_longest_wait_seconds{{queue=\"{}\"}} {}",
                q.name,
                secs_since(now, q.longest_waiting_since)
            );
        }
        let _ = writeln!(
            m,
            "# HELP kald_agents Agents per state.\n# TYPE kald_agents gauge"
        );
        let mut per_state: BTreeMap<&str, u64> = AgentState::ALL
            .iter()
            .map(|s| (state_name(*s), 0))
            .collect();
        for a in self.acd.agents() {
            *per_state.entry(state_name(a.state)).or_default() += 1;
        }
        for (s, n) in per_state {
            let _ = writeln!(m, "kald_agents{{state=\"{s}\"}} {n}");
        }
        let counts = endpoint.message_counts();
        let _ = writeln!(
            m,
            "# HELP kald_sip_requests_total SIP requests by method and direction.\n# TYPE kald_sip_requests_total counter"
        );
        for (dir, map) in [("in", &counts.requests_in), ("out", &counts.requests_out)] {
            for (method, n) in map {
                let _ = writeln!(
                    m,
                    "kald_sip_requests_total{{method=\"{method}\",direction=\"{dir}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            m,
            "# HELP kald_sip_responses_total SIP responses by status code and direction.\n# TYPE kald_sip_responses_total counter"
        );
        for (dir, map) in [("in", &counts.responses_in), ("out", &counts.responses_out)] {
            for (code, n) in map {
                let _ = writeln!(
                    m,
                    "kald_sip_responses_total{{code=\"{code}\",direction=\"{dir}\"}} {n}"
                );
            }
        }
        let media = self.media_stats();
        for (name, help, kind, v) in [
            (
                "kald_media_streams",
                "Open RTP streams.",
                "gauge",
                media.streams.load(Ordering::Relaxed),
            ),
            (
                "kald_rtp_packets_sent_total",
                "RTP packets sent.",
                "counter",
                media.sent.load(Ordering::Relaxed),
            ),
            (
                "kald_rtp_packets_received_total",
                "RTP packets received.",
                "counter",
                media.received.load(Ordering::Relaxed),
            ),
            (
                "kald_rtp_packets_lost_total",
                "RTP packets lost (gaps in sequence numbers).",
                "counter",
                media.lost.load(Ordering::Relaxed),
            ),
            (
                "kald_recordings_written_total",
                "Recordings closed and catalogued.",
                "counter",
                self.recordings_written,
            ),
            (
                "kald_recording_failures_total",
                "Recordings stopped by an error such as a full disk (an alarm).",
                "counter",
                self.recording_failures,
            ),
            (
                "kald_recordings_in_progress",
                "Calls being recorded now.",
                "gauge",
                self.recordings.active_count() as u64,
            ),
        ] {
            let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileAgent, FileUser};

    #[test]
    fn agents_and_users_become_api_users_with_their_roles() {
        let centre = Centre {
            agents: vec![FileAgent {
                login: "anna".into(),
                name: "Anna".into(),
                password: "password1".into(),
                extension: None,
                skills: BTreeMap::new(),
                role: Role::TeamLeader,
            }],
            users: vec![
                FileUser {
                    login: "sofie".into(),
                    name: "Sofie".into(),
                    password: "password2".into(),
                    role: "supervisor".into(),
                },
                FileUser {
                    login: "rikke".into(),
                    name: "Rikke".into(),
                    password: "password3".into(),
                    role: "records-officer".into(),
                },
            ],
            ..Centre::default()
        };
        let roles: Vec<(String, ApiRole)> = users(&centre)
            .into_iter()
            .map(|u| (u.login, u.role))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("anna".into(), ApiRole::TeamLeader),
                ("sofie".into(), ApiRole::Supervisor),
                ("rikke".into(), ApiRole::RecordsOfficer),
            ]
        );
    }
}
