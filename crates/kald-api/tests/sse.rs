//! The push channel: first snapshot at once, changes within a second, filtered by role.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{fake, has_cpr, ANNA_CPR_DASHED};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::ServiceExt as _;

/// An open event stream.
struct Stream {
    /// The response body.
    body: Body,
    /// Text received but not yet split into events.
    buffer: String,
}

impl Stream {
    /// Opens `/api/events` as `login`.
    async fn open(fake: &common::Fake, login: &str) -> Self {
        let token = fake.login(login).await;
        let response = fake
            .app
            .clone()
            .oneshot(common::request(
                Method::GET,
                "/api/events",
                Some(&token),
                None,
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next `snapshot` event's data as JSON and its raw text, within `limit`; `None` if
    /// the stream ended.
    async fn next(&mut self, limit: Duration) -> Option<(serde_json::Value, String)> {
        tokio::time::timeout(limit, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let event: String = self.buffer.drain(..end + 2).collect();
                    if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                        assert!(event.starts_with("event: snapshot\n"), "{event}");
                        return Some((serde_json::from_str(data).unwrap(), event));
                    }
                    continue; // a keep-alive comment
                }
                let frame = self.body.frame().await?.ok()?;
                if let Ok(data) = frame.into_data() {
                    self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
        })
        .await
        .expect("an event within the limit")
    }
}

#[tokio::test]
async fn the_first_snapshot_comes_at_once_and_changes_within_a_second() {
    let fake = fake().await;
    let mut stream = Stream::open(&fake, "sara").await;
    let (first, _) = stream.next(Duration::from_secs(1)).await.unwrap();
    assert_eq!(first["queues"][0]["waiting"], 1);
    assert_eq!(first["queues"][0]["today"]["offered"], 2);
    for waiting in 2..5 {
        let mut next = (**fake.snapshot.borrow()).clone();
        next.queues[0].waiting = waiting;
        fake.snapshot.send_replace(Arc::new(next));
        let started = std::time::Instant::now();
        let (event, _) = stream.next(Duration::from_secs(1)).await.unwrap();
        assert_eq!(event["queues"][0]["waiting"], waiting);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

#[tokio::test]
async fn a_burst_of_changes_coalesces_into_the_latest() {
    let fake = fake().await;
    let mut stream = Stream::open(&fake, "sara").await;
    stream.next(Duration::from_secs(1)).await.unwrap();
    for waiting in 10..60 {
        let mut next = (**fake.snapshot.borrow()).clone();
        next.queues[0].waiting = waiting;
        fake.snapshot.send_replace(Arc::new(next));
    }
    let mut last = 0;
    while last != 59 {
        let (event, _) = stream.next(Duration::from_secs(1)).await.unwrap();
        last = event["queues"][0]["waiting"].as_u64().unwrap();
    }
}

#[tokio::test]
async fn each_role_gets_its_view_and_only_anna_her_callers_cpr() {
    let fake = fake().await;
    let (sara, sara_raw) = Stream::open(&fake, "sara")
        .await
        .next(Duration::from_secs(1))
        .await
        .unwrap();
    assert!(!has_cpr(&sara_raw));
    assert_eq!(sara["calls"][0]["id"], "c-1");
    assert_eq!(sara["agents"][1]["login"], "bo");
    assert_eq!(sara["me"], serde_json::Value::Null);
    assert_eq!(sara["call"], serde_json::Value::Null);

    let (anna, anna_raw) = Stream::open(&fake, "anna")
        .await
        .next(Duration::from_secs(1))
        .await
        .unwrap();
    assert!(anna_raw.contains(ANNA_CPR_DASHED));
    assert!(!anna_raw.contains("251287"), "not the waiting caller's");
    assert_eq!(anna["call"]["cpr"], ANNA_CPR_DASHED);
    assert_eq!(anna["call"]["topic"], "Sygemelding");
    assert_eq!(anna["me"]["state"], "talking");
    assert_eq!(anna["agents"], serde_json::Value::Null);
    assert_eq!(anna["calls"], serde_json::Value::Null);
    assert_eq!(anna["queues"][0]["waiting"], 1);
    assert_eq!(anna["queues"][0]["today"], serde_json::Value::Null);

    for login in ["bo", "tina", "carl", "adam"] {
        let (view, raw) = Stream::open(&fake, login)
            .await
            .next(Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!has_cpr(&raw), "{login}");
        assert_eq!(view["call"], serde_json::Value::Null, "{login}");
    }
    let (carl, _) = Stream::open(&fake, "carl")
        .await
        .next(Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        carl["calls"],
        serde_json::Value::Null,
        "coaches see no calls"
    );
    assert!(carl["agents"].is_array());

    // Later events keep the filter: Anna's next call's CPR reaches only her.
    let mut sara = Stream::open(&fake, "sara").await;
    let mut anna = Stream::open(&fake, "anna").await;
    sara.next(Duration::from_secs(1)).await.unwrap();
    anna.next(Duration::from_secs(1)).await.unwrap();
    let mut next = (**fake.snapshot.borrow()).clone();
    next.calls[0].cpr = Some("3112992347".parse().unwrap());
    fake.snapshot.send_replace(Arc::new(next));
    let (_, raw) = sara.next(Duration::from_secs(1)).await.unwrap();
    assert!(!raw.contains("311299"));
    let (_, raw) = anna.next(Duration::from_secs(1)).await.unwrap();
    assert!(raw.contains("311299-2347"));
}

#[tokio::test]
async fn records_officers_and_strangers_get_no_stream() {
    let fake = fake().await;
    let rita = fake.login("rita").await;
    assert_eq!(
        fake.call(Method::GET, "/api/events", Some(&rita), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fake.call(Method::GET, "/api/events", None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_stream_ends_with_the_session_and_at_shutdown() {
    let fake = fake().await;
    let token = fake.login("sara").await;
    let response = fake
        .app
        .clone()
        .oneshot(common::request(
            Method::GET,
            "/api/events",
            Some(&token),
            None,
        ))
        .await
        .unwrap();
    let mut stream = Stream {
        body: response.into_body(),
        buffer: String::new(),
    };
    stream.next(Duration::from_secs(1)).await.unwrap();
    fake.call(Method::POST, "/api/logout", Some(&token), None)
        .await;
    fake.snapshot.send_modify(|_| {});
    assert!(
        stream.next(Duration::from_secs(1)).await.is_none(),
        "ends after log-out"
    );

    let mut stream = Stream::open(&fake, "sara").await;
    stream.next(Duration::from_secs(1)).await.unwrap();
    fake.shutdown.cancel();
    assert!(
        stream.next(Duration::from_secs(1)).await.is_none(),
        "ends at shutdown"
    );
}

#[tokio::test]
async fn serve_answers_on_a_real_socket_and_stops_on_cancel() {
    let (backend, snapshot, _commands, _dir) = common::backend(false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(kald_api::serve(listener, backend, shutdown.clone()));

    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket
        .write_all(b"GET /health HTTP/1.1\r\nHost: kald\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"status\":\"ok\"}"));

    // Log in over the socket and hold an event stream open.
    let body = r#"{"login":"sara","password":"pw-sara"}"#;
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket
        .write_all(
            format!(
                "POST /api/login HTTP/1.1\r\nHost: kald\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut events = tokio::net::TcpStream::connect(address).await.unwrap();
    events
        .write_all(
            format!("GET /api/events HTTP/1.1\r\nHost: kald\r\nCookie: {cookie}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut buffer = vec![0u8; 65536];
    let mut seen = String::new();
    while !seen.contains("event: snapshot") {
        let n = tokio::time::timeout(Duration::from_secs(1), events.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let mut next = (**snapshot.borrow()).clone();
    next.queues[0].waiting = 7;
    snapshot.send_replace(Arc::new(next));
    seen.clear();
    while !seen.contains("\"waiting\":7") {
        let n = tokio::time::timeout(Duration::from_secs(1), events.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok());
}

/// A reload that removes a user ends their stream, without another request of anyone.
#[tokio::test]
async fn a_removed_users_stream_ends_with_the_reload() {
    let (fake, users_tx) = common::fake_with_users().await;
    let mut bo = Stream::open(&fake, "bo").await;
    let mut sara = Stream::open(&fake, "sara").await;
    bo.next(Duration::from_secs(1)).await.unwrap();
    sara.next(Duration::from_secs(1)).await.unwrap();
    users_tx.send_replace(Arc::new(
        common::users()
            .into_iter()
            .filter(|u| u.login != "bo")
            .collect(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.snapshot.send_modify(|_| {});
    assert!(
        bo.next(Duration::from_secs(1)).await.is_none(),
        "Bo's stream ends"
    );
    assert!(
        sara.next(Duration::from_secs(1)).await.is_some(),
        "Sara's goes on"
    );
}

/// A team leader's listen request reaches the agent's stream as an `event: records` (a
/// counter, nothing personal), and so does the agent's answer the team leader's.
#[tokio::test]
async fn listen_requests_and_grants_are_pushed() {
    let fake = fake().await;
    /// The next event's name and data, skipping keep-alives.
    async fn next_event(stream: &mut Stream) -> Option<(String, String)> {
        tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                if let Some(end) = stream.buffer.find("\n\n") {
                    let event: String = stream.buffer.drain(..end + 2).collect();
                    let name = event.lines().find_map(|l| l.strip_prefix("event: "));
                    let data = event.lines().find_map(|l| l.strip_prefix("data: "));
                    if let (Some(name), Some(data)) = (name, data) {
                        return Some((name.to_owned(), data.to_owned()));
                    }
                    continue;
                }
                let frame = stream.body.frame().await?.ok()?;
                if let Ok(data) = frame.into_data() {
                    stream.buffer.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
        })
        .await
        .expect("an event within a second")
    }
    let mut anna = Stream::open(&fake, "anna").await;
    let mut tina = Stream::open(&fake, "tina").await;
    assert_eq!(next_event(&mut anna).await.unwrap().0, "snapshot");
    assert_eq!(next_event(&mut tina).await.unwrap().0, "snapshot");

    let tina_token = fake.login("tina").await;
    let ask = fake
        .call(
            Method::POST,
            &format!("/api/recordings/{}/listen-requests", common::ANNA_RECORDING),
            Some(&tina_token),
            Some(serde_json::json!({"reason": "opfølgning på klage"})),
        )
        .await;
    assert_eq!(ask.status, StatusCode::NO_CONTENT, "{}", ask.body);
    assert_eq!(
        next_event(&mut anna).await.unwrap(),
        ("records".into(), "1".into())
    );
    assert_eq!(next_event(&mut tina).await.unwrap().0, "records");

    let anna_token = fake.login("anna").await;
    let grant = fake
        .call(
            Method::POST,
            &format!("/api/recordings/{}/grants", common::ANNA_RECORDING),
            Some(&anna_token),
            Some(serde_json::json!({"grantee": "tina", "grant": true})),
        )
        .await;
    assert_eq!(grant.status, StatusCode::NO_CONTENT, "{}", grant.body);
    assert_eq!(
        next_event(&mut tina).await.unwrap(),
        ("records".into(), "2".into())
    );
}
