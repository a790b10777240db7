//! Log-in, cookies and bearer tokens, log-out, idle expiry on tokio's paused clock, throttling.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine as _;
use common::{fake_with, settings};
use serde_json::json;
use tower::ServiceExt as _;

/// A fake without a store (the paused clock must not time out database calls).
async fn fake() -> common::Fake {
    fake_with(settings(), false).await
}

/// Logs in with a password and returns the answer.
async fn try_login(fake: &common::Fake, login: &str, password: &str) -> common::Answer {
    fake.call(
        Method::POST,
        "/api/login",
        None,
        Some(json!({"login": login, "password": password})),
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn log_in_sets_a_strict_http_only_cookie_that_works_like_the_bearer_token() {
    let fake = fake().await;
    let answer = try_login(&fake, "anna", "pw-anna").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(
        body["me"],
        json!({"login": "anna", "name": "Anna Jensen", "role": "agent"})
    );
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap()
            .len(),
        32
    );
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with(&format!("kald_session={token};")));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"));
    // The cookie alone authenticates.
    let request = Request::builder()
        .uri("/api/me")
        .header(header::COOKIE, format!("theme=dark; kald_session={token}"))
        .body(Body::empty())
        .unwrap();
    let response = fake.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Two logins are two sessions with different tokens.
    let other = fake.login("anna").await;
    assert_ne!(other, token);
}

#[tokio::test(start_paused = true)]
async fn wrong_passwords_and_unknown_users_are_401_without_a_cookie() {
    let fake = fake().await;
    for (login, password) in [("anna", "pw-bo"), ("anna", ""), ("zed", "pw-zed"), ("", "")] {
        let answer = try_login(&fake, login, password).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.json(), json!({"error": "wrong login or password"}));
        assert!(answer.headers.get(header::SET_COOKIE).is_none());
    }
    for token in ["", "nonsense", "a".repeat(43).as_str()] {
        let answer = fake.call(Method::GET, "/api/me", Some(token), None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(start_paused = true)]
async fn log_out_ends_the_session_and_clears_the_cookie() {
    let fake = fake().await;
    let token = fake.login("sara").await;
    let answer = fake
        .call(Method::POST, "/api/logout", Some(&token), None)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        fake.call(Method::GET, "/api/me", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fake.call(Method::POST, "/api/logout", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(start_paused = true)]
async fn sessions_expire_after_8_hours_without_use_and_use_keeps_them() {
    let fake = fake().await;
    let busy = fake.login("anna").await;
    let idle = fake.login("bo").await;
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(4 * 3600)).await;
        assert_eq!(
            fake.call(Method::GET, "/api/me", Some(&busy), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        fake.call(Method::GET, "/api/me", Some(&idle), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::advance(Duration::from_secs(8 * 3600)).await;
    assert_eq!(
        fake.call(Method::GET, "/api/me", Some(&busy), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(start_paused = true)]
async fn a_shorter_idle_time_can_be_configured() {
    let mut settings = settings();
    settings.session_idle = Duration::from_secs(60);
    let fake = fake_with(settings, false).await;
    let token = fake.login("anna").await;
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(
        fake.call(Method::GET, "/api/me", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        fake.call(Method::GET, "/api/me", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(start_paused = true)]
async fn five_failures_a_minute_block_that_login_for_the_minute() {
    let fake = fake().await;
    for _ in 0..5 {
        assert_eq!(
            try_login(&fake, "anna", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Blocked even with the right password; another login is not.
    let answer = try_login(&fake, "anna", "pw-anna").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.json()["error"]
        .as_str()
        .unwrap()
        .contains("try again"));
    assert_eq!(try_login(&fake, "bo", "pw-bo").await.status, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        try_login(&fake, "anna", "pw-anna").await.status,
        StatusCode::OK
    );
    // A success forgets earlier failures.
    for _ in 0..4 {
        try_login(&fake, "anna", "guess").await;
    }
    assert_eq!(
        try_login(&fake, "anna", "pw-anna").await.status,
        StatusCode::OK
    );
    assert_eq!(
        try_login(&fake, "anna", "guess").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        try_login(&fake, "anna", "pw-anna").await.status,
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_take_an_administrators_bearer_token_or_basic_credentials() {
    let fake = fake().await;
    let basic = |login: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
        )
    };
    let get = |auth: String| {
        Request::builder()
            .uri("/metrics")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap()
    };
    let status = |request: Request<Body>| async {
        fake.app.clone().oneshot(request).await.unwrap().status()
    };
    assert_eq!(status(get(basic("adam", "pw-adam"))).await, StatusCode::OK);
    assert_eq!(
        status(get(basic("sara", "pw-sara"))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(get(basic("adam", "wrong"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(get("Basic !!!".into())).await,
        StatusCode::UNAUTHORIZED
    );
    let token = fake.login("adam").await;
    assert_eq!(status(get(format!("Bearer {token}"))).await, StatusCode::OK);
    // Basic failures count towards the same throttle (the log-in above cleared the earlier one).
    for _ in 0..5 {
        status(get(basic("adam", "wrong"))).await;
    }
    assert_eq!(
        status(get(basic("adam", "pw-adam"))).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
