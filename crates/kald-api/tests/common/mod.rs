//! A fake SIP loop for the API tests: a snapshot on a watch channel and a task that executes
//! commands against it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use kald_api::{
    AgentStatus, Backend, Command, LiveCall, QueueState, Role, Settings, Snapshot, StatsSource,
    User,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The CPR number of the call Anna is talking on.
pub const ANNA_CPR: &str = "0101901235";
/// The same, dashed.
pub const ANNA_CPR_DASHED: &str = "010190-1235";
/// The CPR number of a caller still waiting (shown to nobody).
pub const WAITING_CPR: &str = "2512871238";

/// Every role the tests log in as, with the user's login; `None` = no session.
pub const CALLERS: [(&str, Option<&str>); 7] = [
    ("none", None),
    ("agent", Some("anna")),
    ("team-leader", Some("tina")),
    ("coach", Some("carl")),
    ("supervisor", Some("sara")),
    ("records-officer", Some("rita")),
    ("administrator", Some("adam")),
];

/// The users (password = "pw-" + login).
pub fn users() -> Vec<User> {
    [
        ("anna", "Anna Jensen", Role::Agent),
        ("bo", "Bo Hansen", Role::Agent),
        ("tina", "Tina Leder", Role::TeamLeader),
        ("carl", "Carl Coach", Role::Coach),
        ("sara", "Sara Supervisor", Role::Supervisor),
        ("rita", "Rita Records", Role::RecordsOfficer),
        ("adam", "Adam Admin", Role::Administrator),
    ]
    .into_iter()
    .map(|(login, name, role)| User {
        login: login.into(),
        name: name.into(),
        password: format!("pw-{login}"),
        role,
    })
    .collect()
}

/// An agent's status.
pub fn agent(login: &str, role: Role, state: &str, call: Option<&str>) -> AgentStatus {
    AgentStatus {
        login: login.into(),
        name: login.to_uppercase(),
        role,
        state: state.into(),
        since_s: 12,
        reason: None,
        reachable: true,
        call: call.map(Into::into),
        listeners: Vec::new(),
    }
}

/// The starting snapshot: Anna talks on c-1 (with a CPR), c-2 waits (with a CPR), Bo is free.
pub fn snapshot() -> Snapshot {
    let mut counts = BTreeMap::new();
    counts.insert("available".to_owned(), 1);
    counts.insert("talking".to_owned(), 1);
    Snapshot {
        at: "2026-11-23T09:15:00+01:00[Europe/Copenhagen]"
            .parse::<jiff::Zoned>()
            .unwrap()
            .timestamp(),
        queues: vec![
            QueueState {
                name: "sygedagpenge".into(),
                display: "Sygedagpenge".into(),
                waiting: 1,
                longest_wait_s: 42,
                agents: counts,
            },
            QueueState {
                name: "dagpenge".into(),
                display: "Dagpenge".into(),
                waiting: 0,
                longest_wait_s: 0,
                agents: BTreeMap::new(),
            },
        ],
        agents: vec![
            agent("anna", Role::Agent, "talking", Some("c-1")),
            agent("bo", Role::Agent, "available", None),
            agent("tina", Role::TeamLeader, "logged_out", None),
            agent("carl", Role::Coach, "logged_out", None),
        ],
        calls: vec![
            LiveCall {
                id: "c-1".into(),
                phase: "talking".into(),
                queue: Some("sygedagpenge".into()),
                topic: Some("Sygemelding".into()),
                waited_s: 31,
                agent: Some("anna".into()),
                consent: Some(true),
                recording: true,
                cpr: Some(ANNA_CPR.parse().unwrap()),
            },
            LiveCall {
                id: "c-2".into(),
                phase: "waiting".into(),
                queue: Some("sygedagpenge".into()),
                topic: Some("Sygemelding".into()),
                waited_s: 42,
                agent: None,
                consent: Some(false),
                recording: false,
                cpr: Some(WAITING_CPR.parse().unwrap()),
            },
        ],
    }
}

/// A running fake: the app, the snapshot sender, the commands received.
pub struct Fake {
    /// The API.
    pub app: Router,
    /// Publishes snapshots.
    pub snapshot: watch::Sender<Arc<Snapshot>>,
    /// Every command the fake SIP loop executed.
    pub commands: Arc<Mutex<Vec<Command>>>,
    /// Ends push streams.
    pub shutdown: CancellationToken,
    /// Keeps the store's directory.
    pub _dir: Option<tempfile::TempDir>,
}

/// Settings for tests: short command timeout and push interval.
pub fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.command_timeout = Duration::from_millis(300);
    settings.push_interval = Duration::from_millis(50);
    settings
}

/// A backend and the fake SIP loop behind it (`stats`: with an SQLite store holding a day).
pub async fn backend(
    stats: bool,
) -> (
    Backend,
    watch::Sender<Arc<Snapshot>>,
    Arc<Mutex<Vec<Command>>>,
    Option<tempfile::TempDir>,
) {
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(snapshot()));
    let (command_tx, mut command_rx) =
        mpsc::channel::<(Command, tokio::sync::oneshot::Sender<kald_api::Reply>)>(16);
    let commands = Arc::new(Mutex::new(Vec::new()));
    let seen = commands.clone();
    let publish = snapshot_tx.clone();
    tokio::spawn(async move {
        while let Some((command, reply)) = command_rx.recv().await {
            seen.lock().unwrap().push(command.clone());
            if matches!(&command, Command::EndWrapUp { agent } if agent == "tina") {
                // Tina's wrap-up never answers: the API must time out.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(reply);
                });
                continue;
            }
            let answer = match &command {
                Command::ListenStart { target, .. } if target == "bo" => {
                    Err("Bo har ikke givet samtykke til medlyt".to_owned())
                }
                Command::Pause { agent, reason } => {
                    let mut next = (**publish.borrow()).clone();
                    if let Some(a) = next.agents.iter_mut().find(|a| &a.login == agent) {
                        a.state = "paused".into();
                        a.reason = Some(reason.clone());
                    }
                    publish.send_replace(Arc::new(next));
                    Ok(())
                }
                _ => Ok(()),
            };
            let _ = reply.send(answer);
        }
    });
    let (stats, dir) = if stats {
        let dir = tempfile::tempdir().unwrap();
        let store =
            kald_store::Store::open_data_dir(dir.path(), kald_core::CprKeys::generate().unwrap())
                .await
                .unwrap();
        fill_store(&store).await;
        (
            Some(StatsSource {
                store,
                params: Default::default(),
            }),
            Some(dir),
        )
    } else {
        (None, None)
    };
    let backend = Backend {
        snapshot: snapshot_rx,
        commands: command_tx,
        users: watch::channel(Arc::new(users())).1,
        stats,
        metrics: Arc::new(|| {
            "# TYPE kald_calls_in_progress gauge\nkald_calls_in_progress 2\n".to_owned()
        }),
        records: None,
    };
    (backend, snapshot_tx, commands, dir)
}

/// Two calls on 2026-11-23 in sygedagpenge: one answered after 20 s, one abandoned after 40 s.
async fn fill_store(store: &kald_store::Store) {
    let at = |t: &str| {
        format!("2026-11-23T{t}+01:00[Europe/Copenhagen]")
            .parse::<jiff::Zoned>()
            .unwrap()
            .timestamp()
    };
    let row = |t: &str, call: &str, event: &str, agent: Option<&str>, data: serde_json::Value| {
        kald_store::QueueEventRow {
            at: at(t),
            call_id: call.into(),
            queue: Some("sygedagpenge".into()),
            agent: agent.map(Into::into),
            event: event.into(),
            data,
        }
    };
    let rows = vec![
        row(
            "08:10:00",
            "c-a",
            "ENTER",
            None,
            serde_json::json!({"topic": "Sygemelding"}),
        ),
        row(
            "08:10:20",
            "c-a",
            "ANSWER",
            Some("anna"),
            serde_json::json!({"wait_ms": 20000}),
        ),
        row(
            "08:12:00",
            "c-a",
            "END",
            Some("anna"),
            serde_json::json!({}),
        ),
        row(
            "08:20:00",
            "c-b",
            "ENTER",
            None,
            serde_json::json!({"topic": "Sygemelding"}),
        ),
        row(
            "08:20:40",
            "c-b",
            "ABANDON",
            None,
            serde_json::json!({"wait_ms": 40000, "position": 1}),
        ),
    ];
    store.append_queue_events(&rows).await.unwrap();
}

/// The fake with statistics.
pub async fn fake() -> Fake {
    fake_records().await
}

/// The fake with these settings.
pub async fn fake_with(settings: Settings, stats: bool) -> Fake {
    let (backend, snapshot, commands, dir) = backend(stats).await;
    let shutdown = CancellationToken::new();
    let app = kald_api::router_with(backend, settings, shutdown.clone());
    Fake {
        app,
        snapshot,
        commands,
        shutdown,
        _dir: dir,
    }
}

/// A fake whose users list the test replaces (as kald does when kald.toml is reloaded).
pub async fn fake_with_users() -> (Fake, watch::Sender<Arc<Vec<User>>>) {
    let (mut backend, snapshot, commands, dir) = backend(false).await;
    let (users_tx, users_rx) = watch::channel(Arc::new(users()));
    backend.users = users_rx;
    let shutdown = CancellationToken::new();
    let fake = Fake {
        app: kald_api::router_with(backend, settings(), shutdown.clone()),
        snapshot,
        commands,
        shutdown,
        _dir: dir,
    };
    (fake, users_tx)
}

/// A response's status, headers and body text.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: axum::http::HeaderMap,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Fake {
    /// Sends a request with an optional bearer token and JSON body; reads the whole body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let response = self
            .app
            .clone()
            .oneshot(request(method, path, token, body))
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Logs in as `login` (password "pw-" + login) and returns the token.
    pub async fn login(&self, login: &str) -> String {
        let answer = self
            .call(
                Method::POST,
                "/api/login",
                None,
                Some(serde_json::json!({"login": login, "password": format!("pw-{login}")})),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "log-in of {login}: {}",
            answer.body
        );
        answer.json()["token"].as_str().unwrap().to_owned()
    }
}

/// A request with an optional bearer token and JSON body.
pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// One route of the role matrix: method, path, JSON body, expected status per [`CALLERS`].
pub struct Row {
    /// The method.
    pub method: Method,
    /// The path (with a concrete parameter and query).
    pub path: &'static str,
    /// The OpenAPI path template it exercises.
    pub template: &'static str,
    /// The JSON body.
    pub body: Option<serde_json::Value>,
    /// The status for: none, agent, team-leader, coach, supervisor, records-officer,
    /// administrator.
    pub expect: [u16; 7],
}

/// Every route of the API × every role.
pub fn matrix() -> Vec<Row> {
    use serde_json::json;
    let row = |method: Method,
               path: &'static str,
               template: &'static str,
               body: Option<serde_json::Value>,
               expect: [u16; 7]| Row {
        method,
        path,
        template,
        body,
        expect,
    };
    vec![
        row(Method::GET, "/", "/", None, [200; 7]),
        row(
            Method::GET,
            "/agent",
            "/agent",
            None,
            [303, 200, 200, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/wallboard",
            "/wallboard",
            None,
            [303, 200, 200, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/records",
            "/records",
            None,
            [303, 200, 200, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/assets/wallboard.js",
            "/assets/{file}",
            None,
            [200; 7],
        ),
        row(Method::GET, "/health", "/health", None, [200; 7]),
        row(
            Method::GET,
            "/metrics",
            "/metrics",
            None,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        row(
            Method::GET,
            "/api/openapi.json",
            "/api/openapi.json",
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/api/login",
            "/api/login",
            Some(json!({"login": "bo", "password": "pw-bo"})),
            [200; 7],
        ),
        row(
            Method::POST,
            "/api/logout",
            "/api/logout",
            None,
            [401, 204, 204, 204, 204, 204, 204],
        ),
        row(
            Method::GET,
            "/api/me",
            "/api/me",
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/api/me/call",
            "/api/me/call",
            None,
            [401, 200, 200, 200, 403, 403, 403],
        ),
        row(
            Method::POST,
            "/api/me/state",
            "/api/me/state",
            Some(json!({"action": "pause", "reason": "Frokost"})),
            [401, 204, 204, 204, 403, 403, 403],
        ),
        row(
            Method::POST,
            "/api/me/recording/stop",
            "/api/me/recording/stop",
            None,
            [401, 204, 204, 204, 403, 403, 403],
        ),
        row(
            Method::GET,
            "/api/queues",
            "/api/queues",
            None,
            [401, 200, 200, 200, 200, 403, 200],
        ),
        row(
            Method::GET,
            "/api/agents",
            "/api/agents",
            None,
            [401, 403, 200, 200, 200, 403, 200],
        ),
        row(
            Method::POST,
            "/api/agents/bo/state",
            "/api/agents/{login}/state",
            Some(json!({"action": "logout"})),
            [401, 403, 204, 403, 204, 403, 403],
        ),
        row(
            Method::GET,
            "/api/calls",
            "/api/calls",
            None,
            [401, 403, 200, 403, 200, 403, 200],
        ),
        row(
            Method::POST,
            "/api/listen",
            "/api/listen",
            Some(json!({"target": "anna"})),
            [401, 403, 204, 204, 403, 403, 403],
        ),
        row(
            Method::DELETE,
            "/api/listen",
            "/api/listen",
            None,
            [401, 403, 204, 204, 403, 403, 403],
        ),
        row(
            Method::GET,
            "/api/events",
            "/api/events",
            None,
            [401, 200, 200, 200, 200, 403, 200],
        ),
        row(
            Method::GET,
            "/api/stats?from=2026-11-23&to=2026-11-23",
            "/api/stats",
            None,
            [401, 403, 200, 403, 200, 403, 200],
        ),
        // Records (issue 9). Rows that would change what later rows read use ids that do
        // not exist (404 for the roles that may), so the order of rows does not matter.
        row(
            Method::GET,
            "/api/me/recordings",
            "/api/me/recordings",
            None,
            [401, 200, 200, 200, 403, 403, 403],
        ),
        row(
            Method::GET,
            "/api/recordings?agent=anna",
            "/api/recordings",
            None,
            [401, 403, 200, 200, 403, 403, 403],
        ),
        row(
            Method::GET,
            "/api/recordings/r-anna/audio?reason=aktindsigt",
            "/api/recordings/{id}/audio",
            None,
            [401, 200, 403, 403, 403, 200, 403],
        ),
        row(
            Method::POST,
            "/api/recordings/r-anna/grants",
            "/api/recordings/{id}/grants",
            Some(json!({"grantee": "tina", "grant": false})),
            [401, 204, 403, 403, 403, 403, 403],
        ),
        row(
            Method::DELETE,
            "/api/recordings/r-anna/grants/tina",
            "/api/recordings/{id}/grants/{grantee}",
            None,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        row(
            Method::POST,
            "/api/recordings/r-anna/listen-requests",
            "/api/recordings/{id}/listen-requests",
            Some(json!({"reason": "coaching"})),
            [401, 403, 204, 204, 403, 403, 403],
        ),
        row(
            Method::GET,
            "/api/calls/c-10/links",
            "/api/calls/{id}/links",
            None,
            [401, 200, 403, 403, 403, 200, 403],
        ),
        row(
            Method::POST,
            "/api/calls/c-10/links",
            "/api/calls/{id}/links",
            Some(json!({"case_number": "27.12.04-P20-1-26"})),
            [401, 201, 403, 403, 403, 201, 403],
        ),
        row(
            Method::DELETE,
            "/api/links/999",
            "/api/links/{id}",
            None,
            [401, 404, 404, 404, 403, 404, 403],
        ),
        row(
            Method::POST,
            "/api/calls/c-10/cpr",
            "/api/calls/{id}/cpr",
            Some(json!({"cpr": ANNA_CPR_DASHED, "verified_by": "kontrolspørgsmål"})),
            [401, 204, 403, 403, 403, 403, 403],
        ),
        row(
            Method::POST,
            "/api/recordings/r-anna/journalise",
            "/api/recordings/{id}/journalise",
            Some(json!({"link_id": 999})),
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::GET,
            "/api/recordings/r-anna/journal",
            "/api/recordings/{id}/journal",
            None,
            [401, 403, 403, 403, 403, 200, 403],
        ),
        row(
            Method::POST,
            "/api/recordings/r-none/erase",
            "/api/recordings/{id}/erase",
            Some(json!({"reason": "samtykke trukket tilbage"})),
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::GET,
            "/api/holds",
            "/api/holds",
            None,
            [401, 403, 403, 403, 403, 200, 403],
        ),
        row(
            Method::POST,
            "/api/holds",
            "/api/holds",
            Some(json!({"call": "c-11", "reason": "klage"})),
            [401, 403, 403, 403, 403, 201, 403],
        ),
        row(
            Method::DELETE,
            "/api/holds/999",
            "/api/holds/{id}",
            None,
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::GET,
            "/api/search?caller=%2B4520000001",
            "/api/search",
            None,
            [401, 403, 403, 403, 403, 200, 403],
        ),
        row(
            Method::GET,
            "/api/access-requests",
            "/api/access-requests",
            None,
            [401, 403, 403, 403, 403, 200, 403],
        ),
        row(
            Method::POST,
            "/api/access-requests",
            "/api/access-requests",
            Some(
                json!({"law": "gdpr", "requester": "Borgeren", "identity_verified_by": "MitID", "cpr": WAITING_CPR}),
            ),
            [401, 403, 403, 403, 403, 201, 403],
        ),
        row(
            Method::GET,
            "/api/access-requests/999",
            "/api/access-requests/{id}",
            None,
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::POST,
            "/api/access-requests/999/items",
            "/api/access-requests/{id}/items",
            Some(json!({"kind": "call", "id": "c-10"})),
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::PUT,
            "/api/access-requests/999/items/call/c-10",
            "/api/access-requests/{id}/items/{kind}/{item}",
            Some(json!({"decision": "release"})),
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::POST,
            "/api/access-requests/999/extend",
            "/api/access-requests/{id}/extend",
            Some(json!({"until": "2026-12-24", "reason": "mange emner"})),
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::POST,
            "/api/access-requests/999/close",
            "/api/access-requests/{id}/close",
            None,
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::GET,
            "/api/access-requests/999/archive",
            "/api/access-requests/{id}/archive",
            None,
            [401, 403, 403, 403, 403, 404, 403],
        ),
        row(
            Method::GET,
            "/api/audit",
            "/api/audit",
            None,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        row(
            Method::GET,
            "/api/audit/verify",
            "/api/audit/verify",
            None,
            [401, 403, 403, 403, 403, 403, 200],
        ),
    ]
}

/// Whether `text` holds any of the test's CPR numbers, plain or dashed.
pub fn has_cpr(text: &str) -> bool {
    [ANNA_CPR, ANNA_CPR_DASHED, WAITING_CPR, "251287-1238"]
        .iter()
        .any(|cpr| text.contains(cpr))
}

/// A citizen's call about sickness benefit into the sygedagpenge queue, consented at
/// `consent_at` (or asked without an answer yet).
fn sick_call(
    id: &str,
    started: jiff::Timestamp,
    caller: &str,
    consent_at: Option<jiff::Timestamp>,
    cpr: &str,
) -> kald_store::CallRow {
    kald_store::CallRow {
        id: id.into(),
        started,
        caller: Some(caller.into()),
        entry_point: "hovednummer".into(),
        flow_version: None,
        consent: Some(true),
        consent_at,
        topic: Some("Sygemelding".into()),
        queue: Some("sygedagpenge".into()),
        cpr: Some(cpr.parse().unwrap()),
    }
}

/// The recordings of the records fixture: Anna's and Bo's calls, 3 s each.
pub const ANNA_RECORDING: &str = "r-anna";
/// Bo's recording.
pub const BO_RECORDING: &str = "r-bo";
/// Seconds of audio in each fixture recording.
pub const RECORDING_SECONDS: usize = 3;

/// A fake with a records source: an SQLite store holding two answered calls with recordings
/// (Anna's c-10 with CPR [`ANNA_CPR`], Bo's c-11 with [`WAITING_CPR`]), each a real
/// encrypted recording of 3 s (citizen 440 Hz left, agent 1000 Hz right), an older call
/// `c-old` (Anna's too) whose CPR and caller's number the retention sweeper removed, the shipped
/// recordings policy, a case-number pattern and a drop-folder journal target.
pub async fn fake_records() -> Fake {
    fake_records_of(RECORDING_SECONDS).await
}

/// [`fake_records`] with recordings of `seconds` each.
pub async fn fake_records_of(seconds: usize) -> Fake {
    let (mut backend, snapshot, commands, dir) = backend(true).await;
    let dir = dir.unwrap();
    let store = backend.stats.as_ref().unwrap().store.clone();
    let rec_dir = dir.path().join("recordings");
    std::fs::create_dir_all(&rec_dir).unwrap();
    let keys = Arc::new(kald_recordings::RecordingKeys::generate().unwrap());
    let t0: jiff::Timestamp = "2026-11-23T08:00:00Z".parse().unwrap();
    for (n, (rec, call, agent, cpr)) in [
        (ANNA_RECORDING, "c-10", "anna", ANNA_CPR),
        (BO_RECORDING, "c-11", "bo", WAITING_CPR),
    ]
    .into_iter()
    .enumerate()
    {
        let started = t0 + jiff::SignedDuration::from_secs(600 * n as i64);
        let caller = format!("+45{}", 20_000_000 + n);
        store
            .insert_call(&sick_call(call, started, &caller, Some(started), cpr))
            .await
            .unwrap();
        store
            .finish_call(
                call,
                started + jiff::SignedDuration::from_secs(60),
                "answered",
                Some(agent),
                false,
            )
            .await
            .unwrap();
        let file = format!("{rec}.kre");
        let mut writer = kald_recordings::ChunkWriter::new(
            std::fs::File::create(rec_dir.join(&file)).unwrap(),
            &keys,
            // Distinct per file, as the format asks; random in kald itself.
            [n as u8 + 1; kald_recordings::format::FILE_NONCE_LEN],
        )
        .unwrap();
        let mut frame = vec![0i16; kald_recordings::format::FRAME_SAMPLES];
        for f in 0..seconds * 50 {
            for (i, pair) in frame.chunks_mut(2).enumerate() {
                let t = (f * 160 + i) as f64 / 8000.0;
                pair[0] = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
                pair[1] = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16;
            }
            writer.push_frame(&frame).unwrap();
        }
        let finished = writer.finish().unwrap();
        store
            .insert_recording(&kald_store::NewRecording {
                id: rec.into(),
                call_id: call.into(),
                kind: kald_store::RecordingKind::Call,
                file,
                key_id: 1,
                started: started + jiff::SignedDuration::from_secs(5),
                agent: Some(agent.into()),
                queue: Some("sygedagpenge".into()),
                topic: Some("Sygemelding".into()),
                consent: true,
                consent_at: Some(started),
                flow_version: None,
                cpr: Some(cpr.parse().unwrap()),
            })
            .await
            .unwrap();
        store
            .close_recording(
                rec,
                started + jiff::SignedDuration::from_secs(50),
                Duration::from_secs(seconds as u64),
                &finished.sha256,
                started + jiff::SignedDuration::from_secs(90 * 86_400),
            )
            .await
            .unwrap();
    }
    // Anna's live call (c-1 in the snapshot) has its record too, as in kald.
    let live = t0 + jiff::SignedDuration::from_secs(3600);
    store
        .insert_call(&sick_call("c-1", live, "+4520009999", None, ANNA_CPR))
        .await
        .unwrap();
    // A call of four months ago whose record's personal data the retention sweeper removed.
    let old = t0 - jiff::SignedDuration::from_hours(24 * 120);
    store
        .insert_call(&sick_call("c-old", old, "+4520001111", None, ANNA_CPR))
        .await
        .unwrap();
    store
        .finish_call(
            "c-old",
            old + jiff::SignedDuration::from_secs(90),
            "answered",
            Some("anna"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        store.scrub_call_pii(&["c-old"], t0).await.unwrap(),
        ["c-old"]
    );
    let policy = Arc::new(
        kald_recordings::Policy::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../recordings-policy/policy.toml"),
        )
        .unwrap(),
    );
    let now: jiff::Zoned = "2026-11-23T10:00:00+01:00[Europe/Copenhagen]"
        .parse()
        .unwrap();
    backend.records = Some(kald_api::RecordsSource {
        store,
        recordings_dir: rec_dir,
        keys,
        policy: Arc::new(move || policy.clone()),
        case_number: Some(
            regex::Regex::new(r"^\d{2}\.\d{2}\.\d{2}-[A-ZÆØÅ]\d{2}-\d+-\d{2}$").unwrap(),
        ),
        journal_targets: vec![kald_store::JournalTarget::Folder],
        journal_nudge: None,
        clock: Arc::new(move || now.clone()),
    });
    let shutdown = CancellationToken::new();
    let app = kald_api::router_with(backend, settings(), shutdown.clone());
    Fake {
        app,
        snapshot,
        commands,
        shutdown,
        _dir: Some(dir),
    }
}
