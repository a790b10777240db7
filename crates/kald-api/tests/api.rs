//! Behaviour of the JSON routes beyond roles: bodies, errors, commands, figures.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{fake, fake_with, settings};
use kald_api::Command;
use serde_json::json;

#[tokio::test]
async fn an_agents_screen_pop_has_the_topic_wait_consent_recording_and_cpr() {
    let fake = fake().await;
    let anna = fake.login("anna").await;
    let answer = fake
        .call(Method::GET, "/api/me/call", Some(&anna), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"call": {"id": "c-1", "phase": "talking", "queue": "sygedagpenge", "topic": "Sygemelding",
            "waited_s": 31, "consent": true, "recording": true, "cpr": "010190-1235"}})
    );
}

#[tokio::test]
async fn supervisors_see_calls_and_agents_without_cpr_and_queues_with_todays_figures() {
    let fake = fake().await;
    let sara = fake.login("sara").await;
    let calls = fake
        .call(Method::GET, "/api/calls", Some(&sara), None)
        .await
        .json();
    assert_eq!(calls[0]["id"], "c-1");
    assert!(calls[0].get("cpr").is_none());
    let agents = fake
        .call(Method::GET, "/api/agents", Some(&sara), None)
        .await
        .json();
    assert_eq!(agents[0]["login"], "anna");
    assert_eq!(agents[0]["role"], "agent");
    let queues = fake
        .call(Method::GET, "/api/queues", Some(&sara), None)
        .await
        .json();
    let today = &queues[0]["today"];
    assert_eq!(queues[0]["name"], "sygedagpenge");
    assert_eq!(today["offered"], 2);
    assert_eq!(today["answered"], 1);
    assert_eq!(today["abandoned"], 1);
    assert_eq!(today["answer_rate"], 0.5);
    assert_eq!(today["service_level"], 0.5);
    assert_eq!(today["average_wait_s"], 30.0);
    assert_eq!(today["settled_first_contact"], 1.0);
    assert_eq!(queues[1]["today"]["offered"], 0);
    // Agents get the load of the queues, without figures.
    let anna = fake.login("anna").await;
    let queues = fake
        .call(Method::GET, "/api/queues", Some(&anna), None)
        .await
        .json();
    assert_eq!(queues[0]["waiting"], 1);
    assert_eq!(queues[0]["today"], serde_json::Value::Null);
}

#[tokio::test]
async fn state_changes_reach_the_sip_loop() {
    let fake = fake().await;
    let anna = fake.login("anna").await;
    let sara = fake.login("sara").await;
    let ok = |body: serde_json::Value| Some(body);
    assert_eq!(
        fake.call(
            Method::POST,
            "/api/me/state",
            Some(&anna),
            ok(json!({"action": "pause", "reason": " Møde "}))
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    for action in ["ready", "end-wrap-up", "logout", "login"] {
        let answer = fake
            .call(
                Method::POST,
                "/api/me/state",
                Some(&anna),
                ok(json!({"action": action})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{action}");
    }
    let answer = fake
        .call(
            Method::POST,
            "/api/agents/bo/state",
            Some(&sara),
            ok(json!({"action": "logout"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let anna_login = || "anna".to_owned();
    assert_eq!(
        *fake.commands.lock().unwrap(),
        vec![
            Command::Pause {
                agent: anna_login(),
                reason: "Møde".into()
            },
            Command::Ready {
                agent: anna_login()
            },
            Command::EndWrapUp {
                agent: anna_login()
            },
            Command::Logout {
                agent: anna_login()
            },
            Command::Login {
                agent: anna_login()
            },
            Command::Logout { agent: "bo".into() },
        ]
    );
    // The pause shows in the API at once (the fake publishes a new snapshot).
    let agents = fake
        .call(Method::GET, "/api/agents", Some(&sara), None)
        .await
        .json();
    assert_eq!(agents[0]["state"], "paused");
    assert_eq!(agents[0]["reason"], "Møde");
}

#[tokio::test]
async fn bad_bodies_are_422_without_echoing_the_input() {
    let fake = fake().await;
    let anna = fake.login("anna").await;
    for body in [
        json!({"action": "dance 0101901235"}),
        json!({"action": "pause"}),
        json!({"action": "pause", "reason": "   "}),
        json!({"action": "pause", "reason": "x".repeat(41)}),
        json!({"action": "pause", "reason": "a\nb"}),
        json!({"reason": "Frokost"}),
    ] {
        let answer = fake
            .call(
                Method::POST,
                "/api/me/state",
                Some(&anna),
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(answer.json()["error"].is_string());
        assert!(!answer.body.contains("0101901235") && !answer.body.contains("dance"));
    }
    // Not JSON at all.
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/login")
        .body(axum::body::Body::from("login=anna"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(fake.app.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(fake.commands.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_routes_methods_and_agents_are_json_errors() {
    let fake = fake().await;
    let sara = fake.login("sara").await;
    let answer = fake
        .call(Method::GET, "/api/nothing", Some(&sara), None)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json(), json!({"error": "not found"}));
    let answer = fake.call(Method::PUT, "/api/me", Some(&sara), None).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json(), json!({"error": "method not allowed"}));
    let answer = fake
        .call(
            Method::POST,
            "/api/agents/zed/state",
            Some(&sara),
            Some(json!({"action": "logout"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = fake
        .call(Method::GET, "/assets/secret.txt", None, None)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sip_loops_refusal_is_409_with_its_message_and_silence_is_503() {
    let fake = fake().await;
    let tina = fake.login("tina").await;
    let answer = fake
        .call(
            Method::POST,
            "/api/listen",
            Some(&tina),
            Some(json!({"target": "bo"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(
        answer.json(),
        json!({"error": "Bo har ikke givet samtykke til medlyt"})
    );
    let answer = fake
        .call(
            Method::POST,
            "/api/listen",
            Some(&tina),
            Some(json!({"target": "zed"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let started = std::time::Instant::now();
    let answer = fake
        .call(
            Method::POST,
            "/api/me/state",
            Some(&tina),
            Some(json!({"action": "end-wrap-up"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(
        fake.commands.lock().unwrap()[0],
        Command::ListenStart {
            listener: "tina".into(),
            target: "bo".into()
        }
    );
}

#[tokio::test]
async fn a_gone_sip_loop_is_503() {
    let (mut backend, _snapshot, _commands, _dir) = common::backend(false).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    backend.commands = tx;
    let app = kald_api::router(backend);
    let login = common::request(
        Method::POST,
        "/api/login",
        None,
        Some(json!({"login": "anna", "password": "pw-anna"})),
    );
    let response = tower::ServiceExt::oneshot(app.clone(), login)
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let token = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = common::request(
        Method::POST,
        "/api/me/state",
        Some(&token),
        Some(json!({"action": "ready"})),
    );
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn key_figures_for_a_range_as_json_and_csv() {
    let fake = fake().await;
    let sara = fake.login("sara").await;
    let answer = fake
        .call(
            Method::GET,
            "/api/stats?from=2026-11-23&to=2026-11-23",
            Some(&sara),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let figures = answer.json();
    assert_eq!(figures["total"]["offered"], 2);
    assert_eq!(figures["total"]["answered"], 1);
    assert_eq!(figures["by_queue"]["sygedagpenge"]["answered"], 1);
    assert_eq!(figures["by_topic"]["Sygemelding"]["offered"], 2);
    // The day before has nothing.
    let answer = fake
        .call(
            Method::GET,
            "/api/stats?from=2026-11-22&to=2026-11-22",
            Some(&sara),
            None,
        )
        .await;
    assert_eq!(answer.json()["total"]["offered"], 0);
    let answer = fake
        .call(
            Method::GET,
            "/api/stats?from=2026-11-01&to=2026-11-30&format=csv",
            Some(&sara),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "text/csv; charset=utf-8");
    assert!(answer.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("kald-stats-2026-11-01-2026-11-30.csv"));
    assert!(answer
        .body
        .starts_with(kald_acd::stats::CSV_HEADER.trim_end()));
    for bad in [
        "/api/stats",
        "/api/stats?from=2026-11-23",
        "/api/stats?from=23-11-2026&to=2026-11-23",
        "/api/stats?from=2026-11-24&to=2026-11-23",
        "/api/stats?from=2024-01-01&to=2026-11-23",
        "/api/stats?from=2026-11-23&to=2026-11-23&format=xml",
    ] {
        let answer = fake.call(Method::GET, bad, Some(&sara), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer.json()["error"].is_string());
    }
    // Without a statistics source: 503, and no figures on the queues.
    let fake = fake_with(settings(), false).await;
    let sara = fake.login("sara").await;
    let answer = fake
        .call(
            Method::GET,
            "/api/stats?from=2026-11-23&to=2026-11-23",
            Some(&sara),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let queues = fake
        .call(Method::GET, "/api/queues", Some(&sara), None)
        .await
        .json();
    assert_eq!(queues[0]["today"], serde_json::Value::Null);
}

#[tokio::test]
async fn health_and_metrics() {
    let fake = fake().await;
    let answer = fake.call(Method::GET, "/health", None, None).await;
    assert_eq!(answer.json(), json!({"status": "ok"}));
    let adam = fake.login("adam").await;
    let answer = fake.call(Method::GET, "/metrics", Some(&adam), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(answer.body.contains("kald_calls_in_progress 2"));
}

/// The binary reloads its configuration: a new user may log in at once, a removed user's
/// session ends, a changed password ends that user's sessions (the new one works), and the
/// unchanged users' sessions go on.
#[tokio::test]
async fn a_reloaded_users_list_takes_effect_at_once() {
    use std::sync::Arc;
    let (fake, users_tx) = common::fake_with_users().await;
    let me = |token: String| {
        let fake = &fake;
        async move {
            fake.call(Method::GET, "/api/me", Some(&token), None)
                .await
                .status
        }
    };
    let log_in = |login: &'static str, password: &'static str| {
        let fake = &fake;
        async move {
            fake.call(
                Method::POST,
                "/api/login",
                None,
                Some(json!({"login": login, "password": password})),
            )
            .await
            .status
        }
    };
    let anna = fake.login("anna").await;
    let bo = fake.login("bo").await;
    let sara = fake.login("sara").await;
    assert_eq!(log_in("dora", "pw-dora").await, StatusCode::UNAUTHORIZED);

    // Dora joins, Bo leaves, Sara's password changes; Anna is as before.
    let mut users: Vec<kald_api::User> = common::users()
        .into_iter()
        .filter(|u| u.login != "bo")
        .collect();
    for u in &mut users {
        if u.login == "sara" {
            u.password = "new-pw-sara".into();
        }
    }
    users.push(kald_api::User {
        login: "dora".into(),
        name: "Dora Dam".into(),
        password: "pw-dora".into(),
        role: kald_api::Role::Agent,
    });
    users_tx.send_replace(Arc::new(users));

    assert_eq!(me(anna).await, StatusCode::OK);
    assert_eq!(me(bo).await, StatusCode::UNAUTHORIZED);
    assert_eq!(log_in("bo", "pw-bo").await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(sara).await, StatusCode::UNAUTHORIZED);
    assert_eq!(log_in("sara", "pw-sara").await, StatusCode::UNAUTHORIZED);
    assert_eq!(log_in("sara", "new-pw-sara").await, StatusCode::OK);
    let dora = fake.login("dora").await;
    assert_eq!(me(dora).await, StatusCode::OK);
}
