//! A demo of the API, pages and wallboard against a fake SIP loop (no phones needed).
//!
//! `cargo run -p kald-api --example demo -- 127.0.0.1:8080`, then log in as `anna` (agent),
//! `tina` (team leader), `sara` (supervisor) or `adam` (administrator), password `pw-` + login.
//! Calls enter and leave the queues every few seconds; state buttons work.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kald_api::{
    AgentStatus, Backend, Command, LiveCall, QueueState, Role, Snapshot, StatsSource, User,
};
use tokio::sync::{mpsc, watch};

fn agent(login: &str, name: &str, role: Role, state: &str) -> AgentStatus {
    AgentStatus {
        login: login.into(),
        name: name.into(),
        role,
        state: state.into(),
        since_s: 0,
        reason: None,
        reachable: true,
        call: None,
        listeners: Vec::new(),
    }
}

/// Recounts the queues from the agents and calls.
fn recount(snapshot: &mut Snapshot) {
    for queue in &mut snapshot.queues {
        let waiting: Vec<&LiveCall> = snapshot
            .calls
            .iter()
            .filter(|c| c.phase == "waiting" && c.queue.as_deref() == Some(&queue.name))
            .collect();
        queue.waiting = waiting.len() as u32;
        queue.longest_wait_s = waiting.iter().map(|c| c.waited_s).max().unwrap_or(0);
        let mut counts = BTreeMap::new();
        for a in &snapshot.agents {
            *counts.entry(a.state.clone()).or_insert(0) += 1;
        }
        queue.agents = counts;
    }
}

#[tokio::main]
async fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let users: Vec<User> = [
        ("anna", "Anna Jensen", Role::Agent),
        ("bo", "Bo Hansen", Role::Agent),
        ("tina", "Tina Larsen", Role::TeamLeader),
        ("carl", "Carl Nielsen", Role::Coach),
        ("sara", "Sara Holm", Role::Supervisor),
        ("adam", "Adam Berg", Role::Administrator),
    ]
    .into_iter()
    .map(|(login, name, role)| User {
        login: login.into(),
        name: name.into(),
        password: format!("pw-{login}"),
        role,
    })
    .collect();
    let mut snapshot = Snapshot {
        at: jiff::Timestamp::now(),
        queues: [
            "sygedagpenge:Sygedagpenge",
            "dagpenge:Dagpenge",
            "kontanthjaelp:Kontanthjælp",
        ]
        .iter()
        .map(|q| {
            let (name, display) = q.split_once(':').unwrap();
            QueueState {
                name: name.into(),
                display: display.into(),
                ..Default::default()
            }
        })
        .collect(),
        agents: vec![
            agent("anna", "Anna Jensen", Role::Agent, "available"),
            agent("bo", "Bo Hansen", Role::Agent, "available"),
            agent("tina", "Tina Larsen", Role::TeamLeader, "logged_out"),
            agent("carl", "Carl Nielsen", Role::Coach, "logged_out"),
        ],
        calls: Vec::new(),
    };
    recount(&mut snapshot);
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    let (command_tx, mut command_rx) =
        mpsc::channel::<(Command, tokio::sync::oneshot::Sender<kald_api::Reply>)>(16);

    let dir = tempfile::tempdir().unwrap();
    let store =
        kald_store::Store::open_data_dir(dir.path(), kald_core::CprKeys::generate().unwrap())
            .await
            .unwrap();
    let backend = Backend {
        snapshot: rx,
        commands: command_tx,
        users: watch::channel(Arc::new(users)).1,
        stats: Some(StatsSource {
            store: store.clone(),
            params: Default::default(),
        }),
        metrics: Arc::new(|| "kald_demo 1\n".into()),
        records: None,
    };

    // The fake SIP loop: commands and a call every few seconds.
    let loop_tx = tx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n = 0u64;
        loop {
            tokio::select! {
                Some((command, reply)) = command_rx.recv() => {
                    let mut s = (**loop_tx.borrow()).clone();
                    let set = |s: &mut Snapshot, login: &str, state: &str, reason: Option<String>| {
                        if let Some(a) = s.agents.iter_mut().find(|a| a.login == login) {
                            a.state = state.into();
                            a.reason = reason;
                            a.since_s = 0;
                        }
                    };
                    match command {
                        Command::Login { agent } | Command::Ready { agent } | Command::EndWrapUp { agent } => set(&mut s, &agent, "available", None),
                        Command::Logout { agent } => set(&mut s, &agent, "logged_out", None),
                        Command::Pause { agent, reason } => set(&mut s, &agent, "paused", Some(reason)),
                        Command::ListenStart { listener, target } => {
                            if let Some(a) = s.agents.iter_mut().find(|a| a.login == target) {
                                a.listeners.push(listener);
                            }
                        }
                        Command::ListenStop { listener } => {
                            for a in &mut s.agents {
                                a.listeners.retain(|l| *l != listener);
                            }
                        }
                        _ => {}
                    }
                    recount(&mut s);
                    loop_tx.send_replace(Arc::new(s));
                    let _ = reply.send(Ok(()));
                }
                _ = tick.tick() => {
                    n += 1;
                    let mut s = (**loop_tx.borrow()).clone();
                    s.at = jiff::Timestamp::now();
                    for a in &mut s.agents { a.since_s += 1; }
                    for c in &mut s.calls { if c.phase == "waiting" { c.waited_s += 1; } }
                    if n.is_multiple_of(4) {
                        let queue = ["sygedagpenge", "dagpenge", "kontanthjaelp"][(n / 4 % 3) as usize];
                        s.calls.push(LiveCall {
                            id: format!("c-{n:x}"), phase: "waiting".into(), queue: Some(queue.into()),
                            topic: Some("Sygemelding".into()), waited_s: 0, agent: None, consent: Some(n.is_multiple_of(8)),
                            recording: false, cpr: Some("0101901235".parse().unwrap()),
                        });
                        let row = kald_store::QueueEventRow { at: s.at, call_id: format!("c-{n:x}"), queue: Some(queue.into()),
                            agent: None, event: "ENTER".into(), data: serde_json::json!({"topic": "Sygemelding"}) };
                        let _ = store.append_queue_event(&row).await;
                    }
                    // A free agent takes the longest-waiting call.
                    if let Some(free) = s.agents.iter().position(|a| a.state == "available") {
                        if let Some(call) = s.calls.iter_mut().filter(|c| c.phase == "waiting").max_by_key(|c| c.waited_s) {
                            if call.waited_s >= 6 {
                                call.phase = "talking".into();
                                call.agent = Some(s.agents[free].login.clone());
                                call.recording = call.consent == Some(true);
                                s.agents[free].state = "talking".into();
                                s.agents[free].since_s = 0;
                                s.agents[free].call = Some(call.id.clone());
                                let row = kald_store::QueueEventRow { at: s.at, call_id: call.id.clone(), queue: call.queue.clone(),
                                    agent: call.agent.clone(), event: "ANSWER".into(), data: serde_json::json!({"wait_ms": call.waited_s * 1000}) };
                                let _ = store.append_queue_event(&row).await;
                            }
                        }
                    }
                    // Calls end after 20 s of talk; the agent goes to wrap-up.
                    if n.is_multiple_of(20) {
                        if let Some(i) = s.calls.iter().position(|c| c.phase == "talking") {
                            let call = s.calls.remove(i);
                            if let Some(a) = s.agents.iter_mut().find(|a| Some(&a.login) == call.agent.as_ref()) {
                                a.state = "wrap_up".into();
                                a.since_s = 0;
                                a.call = None;
                            }
                        }
                    }
                    recount(&mut s);
                    loop_tx.send_replace(Arc::new(s));
                }
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(&address).await.unwrap();
    println!("kald-api demo on http://{address}/ (anna, tina, sara, adam; password pw-<login>)");
    kald_api::serve(
        listener,
        backend,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
}
