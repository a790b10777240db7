//! No CPR number reaches the logs: every request the API takes, traced at TRACE level.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use common::{fake, has_cpr, matrix, CALLERS};
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

/// A log sink shared with the test.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_cpr_number_in_any_log_line() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = fake().await;
    // Every route as every role.
    for row in matrix() {
        for (_, login) in CALLERS {
            let token = match login {
                Some(login) => Some(fake.login(login).await),
                None => None,
            };
            let response = fake
                .app
                .clone()
                .oneshot(common::request(
                    row.method.clone(),
                    row.path,
                    token.as_deref(),
                    row.body.clone(),
                ))
                .await
                .unwrap();
            if row.template != "/api/events" {
                response.into_body().collect().await.unwrap();
            }
        }
    }
    // Anna's stream carries her caller's CPR; it must not be logged.
    let anna = fake.login("anna").await;
    let response = fake
        .app
        .clone()
        .oneshot(common::request(
            Method::GET,
            "/api/events",
            Some(&anna),
            None,
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(1), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(has_cpr(&String::from_utf8_lossy(frame.data_ref().unwrap())));
    // CPR numbers typed where they do not belong: as a login, a password, a path, a query,
    // a target and in a malformed body.
    let cpr = common::ANNA_CPR;
    fake.call(
        Method::POST,
        "/api/login",
        None,
        Some(json!({"login": cpr, "password": cpr})),
    )
    .await;
    fake.call(
        Method::POST,
        "/api/login",
        None,
        Some(json!({"login": "anna", "password": cpr})),
    )
    .await;
    let sara = fake.login("sara").await;
    let tina = fake.login("tina").await;
    fake.call(
        Method::GET,
        &format!("/api/agents/{cpr}"),
        Some(&sara),
        None,
    )
    .await;
    fake.call(
        Method::POST,
        &format!("/api/agents/{cpr}/state"),
        Some(&sara),
        Some(json!({"action": "logout"})),
    )
    .await;
    fake.call(
        Method::GET,
        &format!("/api/stats?from={cpr}&to={cpr}"),
        Some(&sara),
        None,
    )
    .await;
    fake.call(
        Method::POST,
        "/api/listen",
        Some(&tina),
        Some(json!({"target": cpr})),
    )
    .await;
    fake.call(
        Method::POST,
        "/api/me/state",
        Some(&anna),
        Some(json!({"action": cpr})),
    )
    .await;

    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request"), "the trace layer logged: {logs}");
    assert!(
        logs.contains("/api/agents/{login}/state"),
        "routes are logged as templates"
    );
    for line in logs.lines() {
        assert!(!has_cpr(line), "a CPR number in the log: {line}");
    }
}
