//! The static pages: log-in, agent page and wallboard (HTML, CSS and JS compiled in).

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::ApiError;
use crate::model::ErrorBody;
use crate::routes::TAG;
use crate::state::AppState;

/// The log-in page.
const LOGIN_HTML: &str = include_str!("../assets/login.html");
/// The agent page.
const AGENT_HTML: &str = include_str!("../assets/agent.html");
/// The records officers' and administrators' page.
const RECORDS_HTML: &str = include_str!("../assets/records.html");
/// The wallboard.
const WALLBOARD_HTML: &str = include_str!("../assets/wallboard.html");

/// The assets under `/assets/`: name, content type, text.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "kald.css",
        "text/css; charset=utf-8",
        include_str!("../assets/kald.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/common.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/login.js"),
    ),
    (
        "agent.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/agent.js"),
    ),
    (
        "recordings.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/recordings.js"),
    ),
    (
        "records.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/records.js"),
    ),
    (
        "wallboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/wallboard.js"),
    ),
];

/// An HTML page that must not be framed or cached.
fn html(text: &'static str) -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        text,
    )
        .into_response()
}

/// The log-in page (no authentication); it sends a logged-in user on by role.
#[utoipa::path(get, path = "/", tag = TAG, security(()),
    responses((status = 200, description = "the log-in page", body = String, content_type = "text/html")))]
pub(crate) async fn index() -> Response {
    html(LOGIN_HTML)
}

/// The agent page (redirects to the log-in page without a session).
#[utoipa::path(get, path = "/agent", tag = TAG,
    responses(
        (status = 200, description = "the agent page", body = String, content_type = "text/html"),
        (status = 303, description = "not logged in: to the log-in page")))]
pub(crate) async fn agent(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, AGENT_HTML)
}

/// The wallboard (redirects to the log-in page without a session).
#[utoipa::path(get, path = "/wallboard", tag = TAG,
    responses(
        (status = 200, description = "the wallboard", body = String, content_type = "text/html"),
        (status = 303, description = "not logged in: to the log-in page")))]
pub(crate) async fn wallboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, WALLBOARD_HTML)
}

/// The records page: search, access requests, holds and journalising for records officers;
/// the audit log for administrators (redirects to the log-in page without a session).
#[utoipa::path(get, path = "/records", tag = TAG,
    responses(
        (status = 200, description = "the records page", body = String, content_type = "text/html"),
        (status = 303, description = "not logged in: to the log-in page")))]
pub(crate) async fn records(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, RECORDS_HTML)
}

/// `text` for a logged-in user, else a redirect to `/`.
fn page(state: &AppState, headers: &HeaderMap, text: &'static str) -> Response {
    if state.caller(headers).is_some() {
        html(text)
    } else {
        Redirect::to("/").into_response()
    }
}

/// The pages' CSS and JavaScript (no authentication: they hold no data).
#[utoipa::path(get, path = "/assets/{file}", tag = TAG, security(()),
    params(("file" = String, Path, description = "kald.css, common.js, login.js, agent.js, recordings.js, records.js or wallboard.js")),
    responses(
        (status = 200, description = "the file", body = String),
        (status = 404, description = "no such file", body = ErrorBody)))]
pub(crate) async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, text) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or(ApiError::NotFound)?;
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        *text,
    )
        .into_response())
}
