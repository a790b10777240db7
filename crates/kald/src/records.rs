//! What the call handling writes to the store: queue events (like Asterisk's `queue_log`),
//! agents' states and call records. The SIP loop never waits for the database: it hands
//! each row to a writer task over a channel, and the writer retries a failed write once
//! before logging it (without personal data) and going on.

use std::time::Duration;

use jiff::Timestamp;
use kald_acd::{AcdConfig, AcdEvent, AgentConfig, QueueConfig, Skill};
use kald_core::CallId;
use tokio::sync::mpsc;

use crate::config::Centre;

/// One queue-log row before it reaches the store.
#[derive(Debug, Clone)]
pub(crate) struct QueueLog {
    pub(crate) at: Timestamp,
    pub(crate) call: String,
    pub(crate) queue: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) event: &'static str,
    pub(crate) data: Vec<(&'static str, String)>,
}

/// A write for the store.
#[derive(Debug)]
pub(crate) enum StoreOp {
    /// Append to the queue log.
    QueueEvent(QueueLog),
    /// An agent's state changed (so a restart restores it).
    AgentState {
        at: Timestamp,
        agent: String,
        state: String,
        reason: Option<String>,
    },
    /// A citizen's call came in: its record starts (so a withdrawal during it has a row).
    CallStarted {
        id: CallId,
        started: Timestamp,
        caller: Option<String>,
        entry_point: String,
    },
    /// A citizen's call ended: its record.
    Call(Box<CallLog>),
    /// A consented recording started.
    RecordingStarted(Box<RecordingLog>),
    /// A recording closed properly.
    RecordingClosed {
        id: String,
        ended: Timestamp,
        duration: Duration,
        sha256: [u8; 32],
        retention_until: Timestamp,
    },
    /// A recording stopped on an error; the file holds `duration` of audio.
    RecordingTruncated {
        id: String,
        ended: Timestamp,
        duration: Duration,
        retention_until: Timestamp,
    },
    /// The caller withdrew consent during the call: what was recorded is gone. `by` is
    /// "citizen" or the agent's login.
    ConsentWithdrawn {
        call: CallId,
        at: Timestamp,
        by: String,
    },
    /// The registrar's bindings changed: the snapshot replaces the saved one.
    SipBindings {
        /// The kald they belong to (its SIP address).
        instance: String,
        /// Every binding.
        rows: Vec<kald_store::SipBindingRow>,
    },
    /// The configured agents after a reload (their names and skills).
    Agents(Vec<kald_store::AgentRow>),
}

/// A recording's catalogue entry when it starts.
#[derive(Debug)]
pub(crate) struct RecordingLog {
    pub(crate) id: String,
    pub(crate) call: CallId,
    pub(crate) file: String,
    pub(crate) started: Timestamp,
    pub(crate) agent: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) topic: Option<String>,
    pub(crate) consent: bool,
    /// A caller's message (not a call with an agent).
    pub(crate) message: bool,
    pub(crate) cpr: Option<kald_core::Cpr>,
    /// The recordings key that seals the file.
    pub(crate) key_id: u8,
}

/// The record of a citizen's call, written when it ends.
#[derive(Debug)]
pub(crate) struct CallLog {
    pub(crate) id: CallId,
    pub(crate) started: Timestamp,
    pub(crate) ended: Timestamp,
    pub(crate) caller: Option<String>,
    pub(crate) entry_point: String,
    pub(crate) consent: Option<bool>,
    pub(crate) topic: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) cpr: Option<kald_core::Cpr>,
    pub(crate) agent: Option<String>,
    pub(crate) transferred: bool,
    pub(crate) outcome: String,
}

/// The sending side of the store writer; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub(crate) struct Records {
    tx: Option<mpsc::UnboundedSender<StoreOp>>,
}

impl Records {
    /// A writer that drops everything (no store configured, or tests of the call handling).
    #[allow(dead_code)]
    pub(crate) fn none() -> Self {
        Self { tx: None }
    }

    /// A writer feeding `tx`.
    pub(crate) fn new(tx: mpsc::UnboundedSender<StoreOp>) -> Self {
        Self { tx: Some(tx) }
    }

    /// Queue a write.
    pub(crate) fn send(&self, op: StoreOp) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(op);
        }
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// The queue-log row of an ACD event, if it has one.
pub(crate) fn queue_event(at: Timestamp, e: &AcdEvent) -> Option<QueueLog> {
    let row = |call: String, queue: Option<&str>, agent: Option<&str>, event, data| QueueLog {
        at,
        call,
        queue: queue.map(str::to_owned),
        agent: agent.map(str::to_owned),
        event,
        data,
    };
    Some(match e {
        AcdEvent::Entered {
            call,
            queue,
            topic,
            priority,
            ..
        } => row(
            call.to_string(),
            Some(queue),
            None,
            "ENTER",
            vec![("topic", topic.clone()), ("priority", priority.to_string())],
        ),
        AcdEvent::Ringing { call, agent, .. } => {
            row(call.to_string(), None, Some(agent), "RING", vec![])
        }
        AcdEvent::NoAnswer {
            call, agent, rang, ..
        } => row(
            call.to_string(),
            None,
            Some(agent),
            "RINGNOANSWER",
            vec![("rang_ms", ms(*rang))],
        ),
        AcdEvent::Answered {
            call,
            agent,
            queue,
            wait,
            ..
        } => row(
            call.to_string(),
            Some(queue),
            Some(agent),
            "ANSWER",
            vec![("wait_ms", ms(*wait))],
        ),
        AcdEvent::Abandoned {
            call,
            queue,
            wait,
            position,
            ..
        } => row(
            call.to_string(),
            Some(queue),
            None,
            "ABANDON",
            vec![("wait_ms", ms(*wait)), ("position", position.to_string())],
        ),
        AcdEvent::MaxWait {
            call, queue, wait, ..
        } => row(
            call.to_string(),
            Some(queue),
            None,
            "MAXWAIT",
            vec![("wait_ms", ms(*wait))],
        ),
        AcdEvent::Ended {
            call, agent, talk, ..
        } => row(
            call.to_string(),
            None,
            Some(agent),
            "END",
            vec![("talk_ms", ms(*talk))],
        ),
        AcdEvent::AgentState {
            agent,
            state,
            reason,
            ..
        } => row(
            String::new(),
            None,
            Some(agent),
            "AGENTSTATE",
            vec![
                ("state", format!("{state:?}")),
                ("reason", reason.clone().unwrap_or_default()),
            ],
        ),
        AcdEvent::PauseLimitReached { agent, .. } => {
            row(String::new(), None, Some(agent), "PAUSELIMIT", vec![])
        }
        _ => return None,
    })
}

/// The queue-log row of a transfer.
pub(crate) fn transfer_event(
    at: Timestamp,
    call: CallId,
    from: Option<&str>,
    to: &str,
) -> QueueLog {
    QueueLog {
        at,
        call: call.to_string(),
        queue: None,
        agent: from.map(str::to_owned),
        event: "TRANSFER",
        data: vec![("to", to.to_owned())],
    }
}

/// The queue-log row of a listening-in session starting or ending (the audit of medlyt).
pub(crate) fn listen_event(
    at: Timestamp,
    call: CallId,
    listener: &str,
    role: &str,
    target: &str,
    start: bool,
) -> QueueLog {
    QueueLog {
        at,
        call: call.to_string(),
        queue: None,
        agent: Some(target.to_owned()),
        event: if start { "LISTENSTART" } else { "LISTENEND" },
        data: vec![("listener", listener.to_owned()), ("role", role.to_owned())],
    }
}

/// The ACD's configuration from kald's: every configured queue, plus every queue a flow
/// names (with defaults), and the agents with their skills.
pub(crate) fn acd_config(centre: &Centre, flow_queues: &[String]) -> AcdConfig {
    let defaults = QueueConfig::default();
    let mut queues: Vec<QueueConfig> = centre
        .queues
        .iter()
        .map(|q| QueueConfig {
            name: q.name.clone(),
            display: q.display.clone().unwrap_or_else(|| q.name.clone()),
            wrap_up: q
                .wrap_up_seconds
                .map_or(defaults.wrap_up, Duration::from_secs),
            ring_timeout: q
                .ring_seconds
                .map_or(defaults.ring_timeout, Duration::from_secs),
            secondary_after: q
                .secondary_after_seconds
                .map_or(defaults.secondary_after, Duration::from_secs),
        })
        .collect();
    for name in flow_queues {
        if !queues.iter().any(|q| &q.name == name) {
            queues.push(QueueConfig {
                name: name.clone(),
                display: name.clone(),
                ..QueueConfig::default()
            });
        }
    }
    let agents = centre
        .agents
        .iter()
        .map(|a| AgentConfig {
            id: a.login.clone(),
            display_name: a.name.clone(),
            skills: a
                .skills
                .iter()
                .map(|(q, l)| Skill {
                    queue: q.clone(),
                    level: *l,
                })
                .collect(),
        })
        .collect();
    AcdConfig {
        queues,
        agents,
        ..AcdConfig::default()
    }
}

/// Open the store (SQLite under the data dir unless a URL is configured) with the CPR keys
/// (created on first start, owner-only, outside the data dir), write the configured agents,
/// and read the agents' last states so a restart restores who was logged in or paused.
pub(crate) async fn open_store(
    config: &crate::config::Config,
) -> anyhow::Result<(kald_store::Store, Vec<kald_store::AgentStateRow>)> {
    use anyhow::Context;
    let key_path = config.keys_dir.join("cpr.key");
    if let Some(parent) = key_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the keys directory {}", parent.display()))?;
    }
    let (keys, created) = kald_core::CprKeys::load_or_create(&key_path)
        .with_context(|| format!("cannot load the CPR key file {}", key_path.display()))?;
    if created {
        tracing::warn!(
            path = %key_path.display(),
            "created a new CPR key file. BACK IT UP, away from the data dir: without it no stored CPR number can be read"
        );
    }
    // The data dir holds personal data (call records, recordings): owner-only.
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
        std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| {
                format!(
                    "cannot make the data dir {} owner-only",
                    config.data_dir.display()
                )
            })?;
    }
    let store = match &config.database {
        Some(url) => kald_store::Store::open(url, keys).await,
        None => kald_store::Store::open_data_dir(&config.data_dir, keys).await,
    }
    .context("cannot open the database")?;
    tracing::info!(backend = ?store.backend(), "database open");
    for a in &config.centre.agents {
        let row = kald_store::AgentRow {
            id: a.login.clone(),
            display_name: a.name.clone(),
            skills: a.skills.iter().map(|(q, l)| (q.clone(), *l)).collect(),
        };
        store
            .upsert_agent(&row)
            .await
            .with_context(|| format!("cannot store agent {}", a.login))?;
    }
    let states = store
        .agent_states()
        .await
        .context("cannot read the agents' states")?;
    Ok((store, states))
}

/// The store writer: one task, writes in arrival order, never blocks the SIP loop.
pub(crate) async fn write(
    store: kald_store::Store,
    mut rx: mpsc::UnboundedReceiver<StoreOp>,
    recordings_dir: std::path::PathBuf,
) {
    while let Some(op) = rx.recv().await {
        let mut tries = 0;
        loop {
            tries += 1;
            let result = write_one(&store, &op, &recordings_dir).await;
            match result {
                Ok(()) => break,
                Err(e) if tries < 2 => {
                    tracing::warn!(error = %e, "store write failed; retrying once");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, what = op.kind(), "store write failed; the row is lost");
                    break;
                }
            }
        }
    }
    store.close().await;
}

impl StoreOp {
    fn kind(&self) -> &'static str {
        match self {
            Self::QueueEvent(_) => "queue event",
            Self::AgentState { .. } => "agent state",
            Self::Call(_) | Self::CallStarted { .. } => "call record",
            Self::RecordingStarted(_)
            | Self::RecordingClosed { .. }
            | Self::RecordingTruncated { .. } => "recording",
            Self::ConsentWithdrawn { .. } => "consent withdrawal",
            Self::SipBindings { .. } => "SIP registrations",
            Self::Agents(_) => "agents",
        }
    }
}

async fn append_queue_event(
    store: &kald_store::Store,
    q: &QueueLog,
) -> Result<(), kald_store::StoreError> {
    let data: serde_json::Map<String, serde_json::Value> = q
        .data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
        .collect();
    store
        .append_queue_event(&kald_store::QueueEventRow {
            at: q.at,
            call_id: q.call.clone(),
            queue: q.queue.clone(),
            agent: q.agent.clone(),
            event: q.event.to_owned(),
            data: serde_json::Value::Object(data),
        })
        .await
        .map(|_| ())
}

async fn write_one(
    store: &kald_store::Store,
    op: &StoreOp,
    recordings_dir: &std::path::Path,
) -> Result<(), kald_store::StoreError> {
    match op {
        StoreOp::QueueEvent(q) if q.event.starts_with("LISTEN") => {
            append_queue_event(store, q).await?;
            // Listening in is a use of a citizen's call: audited with who listened to whom.
            let get = |k: &str| {
                q.data
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.as_str())
            };
            let action = if q.event == "LISTENSTART" {
                "listen-in-start"
            } else {
                "listen-in-end"
            };
            store
                .append_audit(&kald_store::AuditEntry::new(
                    q.at,
                    get("listener").unwrap_or("-"),
                    get("role").unwrap_or("-"),
                    action,
                    q.agent.clone().unwrap_or_default(),
                ))
                .await
                .map(|_| ())
        }
        StoreOp::QueueEvent(q) => append_queue_event(store, q).await,
        StoreOp::SipBindings { instance, rows } => store.replace_sip_bindings(instance, rows).await,
        StoreOp::Agents(rows) => {
            for row in rows {
                store.upsert_agent(row).await?;
            }
            Ok(())
        }
        StoreOp::AgentState {
            at,
            agent,
            state,
            reason,
        } => {
            store
                .save_agent_state(agent, state, reason.as_deref(), *at)
                .await
        }
        StoreOp::CallStarted {
            id,
            started,
            caller,
            entry_point,
        } => {
            store
                .insert_call(&kald_store::CallRow {
                    id: id.to_string(),
                    started: *started,
                    caller: caller.clone(),
                    entry_point: entry_point.clone(),
                    flow_version: None,
                    consent: None,
                    consent_at: None,
                    topic: None,
                    queue: None,
                    cpr: None,
                })
                .await
        }
        StoreOp::RecordingStarted(r) => {
            store
                .insert_recording(&kald_store::NewRecording {
                    id: r.id.clone(),
                    call_id: r.call.to_string(),
                    kind: if r.message {
                        kald_store::RecordingKind::Message
                    } else {
                        kald_store::RecordingKind::Call
                    },
                    file: r.file.clone(),
                    key_id: u32::from(r.key_id),
                    started: r.started,
                    agent: r.agent.clone(),
                    queue: r.queue.clone(),
                    topic: r.topic.clone(),
                    consent: r.consent,
                    consent_at: None,
                    flow_version: None,
                    cpr: r.cpr.clone(),
                })
                .await
        }
        StoreOp::RecordingClosed {
            id,
            ended,
            duration,
            sha256,
            retention_until,
        } => {
            store
                .close_recording(id, *ended, *duration, sha256, *retention_until)
                .await
        }
        StoreOp::RecordingTruncated {
            id,
            ended,
            duration,
            retention_until,
        } => {
            store
                .mark_truncated(id, *ended, *duration, *retention_until)
                .await
        }
        StoreOp::ConsentWithdrawn { call, at, by } => {
            let files = store.withdraw_consent(&call.to_string(), *at).await?;
            let role = if by == "citizen" { "citizen" } else { "agent" };
            store
                .append_audit(
                    &kald_store::AuditEntry::new(
                        *at,
                        by.as_str(),
                        role,
                        "consent-withdraw",
                        call.to_string(),
                    )
                    .with_reason("withdrawn during the call; the recording was deleted"),
                )
                .await?;
            // The writer thread deleted the file of the recording it was writing; any other
            // file of the call goes too (nothing of a withdrawn recording may remain).
            for f in files {
                match std::fs::remove_file(recordings_dir.join(&f)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::error!(error = %e, "a withdrawn recording's file could not be deleted");
                    }
                }
            }
            Ok(())
        }
        StoreOp::Call(c) => {
            let id = c.id.to_string();
            if let Some(consent) = c.consent {
                store.set_call_consent(&id, consent, c.ended).await?;
            }
            store
                .set_call_route(&id, c.topic.as_deref(), c.queue.as_deref())
                .await?;
            if let Some(cpr) = &c.cpr {
                store.set_call_cpr(&id, cpr).await?;
            }
            if store.call(&id).await?.is_none() {
                store
                    .insert_call(&kald_store::CallRow {
                        id: id.clone(),
                        started: c.started,
                        caller: c.caller.clone(),
                        entry_point: c.entry_point.clone(),
                        flow_version: None,
                        consent: c.consent,
                        consent_at: None,
                        topic: c.topic.clone(),
                        queue: c.queue.clone(),
                        cpr: c.cpr.clone(),
                    })
                    .await?;
            }
            store
                .finish_call(&id, c.ended, &c.outcome, c.agent.as_deref(), c.transferred)
                .await
        }
    }
}
