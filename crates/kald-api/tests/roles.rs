//! Every route × every role, and where the CPR number may appear.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{fake, has_cpr, matrix, ANNA_CPR_DASHED, CALLERS};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

#[tokio::test]
async fn every_route_refuses_the_wrong_role() {
    let fake = fake().await;
    let mut failures = Vec::new();
    for row in matrix() {
        for ((role, login), expect) in CALLERS.iter().zip(row.expect) {
            // A fresh session per request: the log-out row must not end the next one's.
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
            let status = response.status().as_u16();
            if status != expect {
                failures.push(format!(
                    "{} {} as {role}: {status}, expected {expect}",
                    row.method, row.path
                ));
            }
            if !response.status().is_success() && status != 303 {
                let content_type = response.headers().get("content-type").cloned();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if !json["error"].is_string()
                    || content_type.is_none_or(|c| c != "application/json")
                {
                    failures.push(format!(
                        "{} {} as {role}: error body is not JSON {{error}}",
                        row.method, row.path
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_cpr_number_reaches_only_the_agent_on_the_call() {
    let fake = fake().await;
    for row in matrix() {
        if row.template == "/api/events" {
            continue; // streamed: see sse.rs
        }
        for (role, login) in CALLERS {
            let token = match login {
                Some(login) => Some(fake.login(login).await),
                None => None,
            };
            let answer = fake
                .call(
                    row.method.clone(),
                    row.path,
                    token.as_deref(),
                    row.body.clone(),
                )
                .await;
            // Records officers see the CPR numbers of what they search and of access
            // requests (their work); tested in records.rs.
            let records_officer = login == Some("rita")
                && (row.template == "/api/search"
                    || row.template.starts_with("/api/access-requests"));
            if records_officer {
                continue;
            }
            let allowed = row.path == "/api/me/call" && login == Some("anna");
            if allowed {
                assert!(
                    answer.body.contains(ANNA_CPR_DASHED),
                    "anna's screen pop: {}",
                    answer.body
                );
                assert!(!answer.body.contains("251287"), "only her own call's CPR");
            } else {
                assert!(
                    !has_cpr(&answer.body),
                    "{} {} as {role} shows a CPR number",
                    row.method,
                    row.path
                );
            }
            for (name, value) in &answer.headers {
                assert!(
                    !has_cpr(value.to_str().unwrap_or("")),
                    "header {name} of {}",
                    row.path
                );
            }
        }
    }
    // Bob, another agent, sees no call; a supervisor is refused.
    let bo = fake.login("bo").await;
    let answer = fake
        .call(Method::GET, "/api/me/call", Some(&bo), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["call"], serde_json::Value::Null);
    let sara = fake.login("sara").await;
    let answer = fake
        .call(Method::GET, "/api/me/call", Some(&sara), None)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_agent_cannot_change_another_agents_state() {
    let fake = fake().await;
    let anna = fake.login("anna").await;
    for action in ["logout", "ready", "end-wrap-up"] {
        let answer = fake
            .call(
                Method::POST,
                "/api/agents/bo/state",
                Some(&anna),
                Some(serde_json::json!({"action": action})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    assert!(
        fake.commands.lock().unwrap().is_empty(),
        "no command reached the SIP loop"
    );
}
