//! The JSON API's handlers, each documented for the OpenAPI document.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::time::Instant;

use crate::auth::{basic_of, Caller, COOKIE_NAME};
use crate::error::{ApiError, ApiJson};
use crate::model::{
    AgentStatus, Command, ErrorBody, Health, ListenRequest, LiveCall, LoginRequest, LoginResponse,
    Me, MyCallResponse, QueueSummary, Role, StateAction, StateChange,
};
use crate::state::AppState;
use crate::view;

/// Roles that see the queues' load (agents without agent details).
pub(crate) const SEE_QUEUES: &[Role] = &[
    Role::Agent,
    Role::TeamLeader,
    Role::Coach,
    Role::Supervisor,
    Role::Administrator,
];
/// Roles that see every agent's status.
pub(crate) const SEE_AGENTS: &[Role] = &[
    Role::TeamLeader,
    Role::Coach,
    Role::Supervisor,
    Role::Administrator,
];
/// Roles that see every live call (without CPR) and the key figures.
pub(crate) const SEE_CALLS: &[Role] = &[Role::TeamLeader, Role::Supervisor, Role::Administrator];
/// Roles that answer calls: their own state and current call.
pub(crate) const TAKE_CALLS: &[Role] = &[Role::Agent, Role::TeamLeader, Role::Coach];
/// Roles that change other agents' states.
pub(crate) const MANAGE_AGENTS: &[Role] = &[Role::TeamLeader, Role::Supervisor];
/// Roles that listen in.
pub(crate) const LISTEN: &[Role] = &[Role::TeamLeader, Role::Coach];
/// Roles that read `/metrics`.
pub(crate) const METRICS: &[Role] = &[Role::Administrator];

/// The OpenAPI tag of the JSON API.
pub(crate) const TAG: &str = "kald";

/// Liveness: always 200 while the server runs (no authentication).
#[utoipa::path(get, path = "/health", tag = TAG, security(()),
    responses((status = 200, description = "kald is running", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Prometheus metrics (an administrator's session or bearer token, or Basic credentials).
#[utoipa::path(get, path = "/metrics", tag = TAG,
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "not an administrator", body = ErrorBody),
        (status = 429, description = "too many failed log-ins", body = ErrorBody)))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let role = if let Some((login, password)) = basic_of(&headers) {
        state.check_password(&login, &password)?.role
    } else {
        state.caller(&headers).ok_or(ApiError::Unauthorized)?.role
    };
    if !METRICS.contains(&role) {
        return Err(ApiError::Forbidden);
    }
    let mut text = (state.inner.metrics)();
    if let Some(src) = state.inner.records.as_ref() {
        text.push_str(&crate::access::records_metrics(src).await);
    }
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// This document (any logged-in user).
#[utoipa::path(get, path = "/api/openapi.json", tag = TAG,
    responses(
        (status = 200, description = "the OpenAPI 3 document", body = Object),
        (status = 401, description = "not logged in", body = ErrorBody)))]
pub(crate) async fn openapi_json(State(state): State<AppState>, _caller: Caller) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        state.inner.openapi_json.clone(),
    )
        .into_response()
}

/// Logs in: sets the `kald_session` cookie (HttpOnly, SameSite=Strict) and returns the token.
#[utoipa::path(post, path = "/api/login", tag = TAG, security(()), request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in", body = LoginResponse),
        (status = 401, description = "wrong login or password", body = ErrorBody),
        (status = 422, description = "invalid body", body = ErrorBody),
        (status = 429, description = "too many failed log-ins for this login (5 a minute)", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let user = state.check_password(&request.login, &request.password)?;
    let settings = &state.inner.settings;
    let token = state
        .inner
        .sessions
        .lock()
        .map_err(|_| ApiError::Internal)?
        .create(&user.login, Instant::now(), settings.session_idle)?;
    // The users list may have changed between the check and the new session (a reload that
    // removed the user or changed the password, and ended their sessions before this one
    // existed): check again against the list in force now.
    if state
        .accounts()?
        .verify(&request.login, &request.password)
        .is_none()
    {
        if let Ok(mut sessions) = state.inner.sessions.lock() {
            sessions.remove(&token);
        }
        return Err(ApiError::BadCredentials);
    }
    tracing::info!(login = %user.login, role = user.role.as_str(), "logged in");
    let cookie = format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        settings.session_idle.as_secs(),
        if settings.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    );
    let body = LoginResponse {
        token,
        me: Me {
            login: user.login,
            name: user.name,
            role: user.role,
        },
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::Internal)?,
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Logs out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/api/logout", tag = TAG,
    responses(
        (status = 204, description = "logged out"),
        (status = 401, description = "not logged in", body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    state
        .inner
        .sessions
        .lock()
        .map_err(|_| ApiError::Internal)?
        .remove(&caller.token);
    let cookie = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::Internal)?,
    );
    Ok(response)
}

/// Who is logged in.
#[utoipa::path(get, path = "/api/me", tag = TAG,
    responses(
        (status = 200, description = "the user", body = Me),
        (status = 401, description = "not logged in", body = ErrorBody)))]
pub(crate) async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        login: caller.login,
        name: caller.name,
        role: caller.role,
    })
}

/// The caller's own current call with the CPR number (agents, team leaders, coaches).
///
/// Only the agent ringing for or talking on the call gets it; everyone else gets 403.
#[utoipa::path(get, path = "/api/me/call", tag = TAG,
    responses(
        (status = 200, description = "the current call, or null", body = MyCallResponse),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role takes no calls", body = ErrorBody)))]
pub(crate) async fn my_call(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<MyCallResponse>, ApiError> {
    caller.require(TAKE_CALLS)?;
    let snapshot = state.snapshot();
    Ok(Json(MyCallResponse {
        call: view::my_call(&snapshot, &caller.login),
    }))
}

/// Changes the caller's own state: log in/out of the queues, pause with a reason, ready, end
/// wrap-up.
#[utoipa::path(post, path = "/api/me/state", tag = TAG, request_body = StateChange,
    responses(
        (status = 204, description = "done"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role takes no calls", body = ErrorBody),
        (status = 409, description = "the phone system refused (its message)", body = ErrorBody),
        (status = 422, description = "invalid body or reason", body = ErrorBody),
        (status = 503, description = "the phone system did not answer within 2 s", body = ErrorBody)))]
pub(crate) async fn my_state(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(change): ApiJson<StateChange>,
) -> Result<StatusCode, ApiError> {
    caller.require(TAKE_CALLS)?;
    let command = state_command(caller.login.clone(), &change)?;
    state.execute(command).await?;
    tracing::info!(login = %caller.login, action = ?change.action, "state change");
    Ok(StatusCode::NO_CONTENT)
}

/// Stops recording the caller's own current call and deletes what was recorded (the citizen
/// withdrew consent by telling the agent).
#[utoipa::path(post, path = "/api/me/recording/stop", tag = TAG,
    responses(
        (status = 204, description = "stopped; the part already recorded is deleted"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role takes no calls", body = ErrorBody),
        (status = 409, description = "no call is being recorded", body = ErrorBody),
        (status = 503, description = "the phone system did not answer within 2 s", body = ErrorBody)))]
pub(crate) async fn stop_recording(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require(TAKE_CALLS)?;
    state
        .execute(Command::StopRecording {
            agent: caller.login.clone(),
        })
        .await?;
    tracing::info!(login = %caller.login, "recording stopped by the agent");
    Ok(StatusCode::NO_CONTENT)
}

/// Changes an agent's state (team leaders, supervisors), e.g. logs out one who forgot.
#[utoipa::path(post, path = "/api/agents/{login}/state", tag = TAG, request_body = StateChange,
    params(("login" = String, Path, description = "the agent's login")),
    responses(
        (status = 204, description = "done"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not change others' states", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 409, description = "the phone system refused (its message)", body = ErrorBody),
        (status = 422, description = "invalid body or reason", body = ErrorBody),
        (status = 503, description = "the phone system did not answer within 2 s", body = ErrorBody)))]
pub(crate) async fn agent_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(login): Path<String>,
    ApiJson(change): ApiJson<StateChange>,
) -> Result<StatusCode, ApiError> {
    caller.require(MANAGE_AGENTS)?;
    if !state.snapshot().agents.iter().any(|a| a.login == login) {
        return Err(ApiError::NotFound);
    }
    let command = state_command(login.clone(), &change)?;
    state.execute(command).await?;
    tracing::info!(by = %caller.login, agent = %login, action = ?change.action, "state change");
    Ok(StatusCode::NO_CONTENT)
}

/// The longest pause reason accepted.
const MAX_REASON: usize = 40;

/// The command for a state change of `agent`.
fn state_command(agent: String, change: &StateChange) -> Result<Command, ApiError> {
    Ok(match change.action {
        StateAction::Login => Command::Login { agent },
        StateAction::Logout => Command::Logout { agent },
        StateAction::Ready => Command::Ready { agent },
        StateAction::EndWrapUp => Command::EndWrapUp { agent },
        StateAction::Pause => {
            let reason = change
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .ok_or(ApiError::Invalid("a pause needs a reason"))?;
            if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
                return Err(ApiError::Invalid(
                    "the reason must be at most 40 plain characters",
                ));
            }
            Command::Pause {
                agent,
                reason: reason.to_owned(),
            }
        }
    })
}

/// Every queue's load; agents get it too (no agent details in it), with today's figures for
/// team leaders, supervisors and administrators.
#[utoipa::path(get, path = "/api/queues", tag = TAG,
    responses(
        (status = 200, description = "the queues", body = Vec<QueueSummary>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role sees no queues", body = ErrorBody)))]
pub(crate) async fn queues(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<QueueSummary>>, ApiError> {
    caller.require(SEE_QUEUES)?;
    let snapshot = state.snapshot();
    let today = if SEE_CALLS.contains(&caller.role) {
        state.today(&snapshot).await
    } else {
        None
    };
    Ok(Json(view::queues(&snapshot, today.as_deref())))
}

/// Every agent's status (team leaders, coaches, supervisors, administrators).
#[utoipa::path(get, path = "/api/agents", tag = TAG,
    responses(
        (status = 200, description = "the agents", body = Vec<AgentStatus>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role sees no agents", body = ErrorBody)))]
pub(crate) async fn agents(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AgentStatus>>, ApiError> {
    caller.require(SEE_AGENTS)?;
    Ok(Json(state.snapshot().agents.clone()))
}

/// Every live call, without CPR numbers (team leaders, supervisors, administrators).
#[utoipa::path(get, path = "/api/calls", tag = TAG,
    responses(
        (status = 200, description = "the calls", body = Vec<LiveCall>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role sees no calls", body = ErrorBody)))]
pub(crate) async fn calls(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<LiveCall>>, ApiError> {
    caller.require(SEE_CALLS)?;
    Ok(Json(state.snapshot().calls.clone()))
}

/// Starts listening in on an agent (team leaders, coaches); the phone system applies the
/// consent policy and says why it refuses.
#[utoipa::path(post, path = "/api/listen", tag = TAG, request_body = ListenRequest,
    responses(
        (status = 204, description = "listening"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not listen in", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 409, description = "the phone system refused (its message)", body = ErrorBody),
        (status = 422, description = "invalid body", body = ErrorBody),
        (status = 503, description = "the phone system did not answer within 2 s", body = ErrorBody)))]
pub(crate) async fn listen_start(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ListenRequest>,
) -> Result<StatusCode, ApiError> {
    caller.require(LISTEN)?;
    if !state
        .snapshot()
        .agents
        .iter()
        .any(|a| a.login == request.target)
    {
        return Err(ApiError::NotFound);
    }
    state
        .execute(Command::ListenStart {
            listener: caller.login.clone(),
            target: request.target.clone(),
        })
        .await?;
    tracing::info!(listener = %caller.login, target = %request.target, "listening in");
    Ok(StatusCode::NO_CONTENT)
}

/// Stops listening in.
#[utoipa::path(delete, path = "/api/listen", tag = TAG,
    responses(
        (status = 204, description = "stopped"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not listen in", body = ErrorBody),
        (status = 409, description = "the phone system refused (its message)", body = ErrorBody),
        (status = 503, description = "the phone system did not answer within 2 s", body = ErrorBody)))]
pub(crate) async fn listen_stop(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require(LISTEN)?;
    state
        .execute(Command::ListenStop {
            listener: caller.login.clone(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

impl AppState {
    /// The user with these credentials, throttling repeated failures per login.
    pub(crate) fn check_password(
        &self,
        login: &str,
        password: &str,
    ) -> Result<crate::model::User, ApiError> {
        let settings = &self.inner.settings;
        let now = Instant::now();
        let mut throttle = self.inner.throttle.lock().map_err(|_| ApiError::Internal)?;
        if throttle.is_blocked(login, now, settings.login_window, settings.login_failures) {
            tracing::warn!("log-in throttled");
            return Err(ApiError::Throttled);
        }
        let accounts = self.accounts()?;
        match accounts.verify(login, password) {
            Some(user) => {
                throttle.clear(login);
                Ok(user.clone())
            }
            None => {
                throttle.fail(login, now, settings.login_window);
                tracing::info!("log-in failed");
                Err(ApiError::BadCredentials)
            }
        }
    }
}
