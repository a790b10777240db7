//! The HTTP edge of kald: the JSON API, log-in and roles, the live push channel (Server-Sent
//! Events), the agent page and the wallboard (static assets compiled in), and the OpenAPI
//! document generated from the handlers.
//!
//! This crate does I/O (HTTP on tokio) but decides nothing about calls: the SIP loop in `kald`
//! owns the live state. It publishes a [`Snapshot`] on a `watch` channel after every change and
//! executes the [`Command`]s sent on an `mpsc` channel, answering each with a [`Reply`]. The API
//! only reads snapshots, filters them by role and forwards commands (2 s timeout → 503).
//!
//! ```text
//! let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::default()));
//! let (command_tx, mut command_rx) = mpsc::channel(64);
//! let backend = Backend { snapshot: snapshot_rx, commands: command_tx, users, stats, metrics };
//! tokio::spawn(kald_api::serve(listener, backend, shutdown.clone()));
//! // in the SIP loop: snapshot_tx.send_replace(Arc::new(…)); reply to each (Command, oneshot)
//! ```
//!
//! # Roles
//!
//! | route | none | agent | team-leader | coach | supervisor | records-officer | administrator |
//! |---|---|---|---|---|---|---|---|
//! | `GET /health`, `GET /`, `GET /assets/*`, `POST /api/login` | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `GET /agent`, `GET /wallboard` (else 303 to `/`) | 303 | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `POST /api/logout`, `GET /api/me`, `GET /api/openapi.json` | 401 | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `GET /api/queues` (figures: team-leader, supervisor, administrator), `GET /api/events` | 401 | ✓ | ✓ | ✓ | ✓ | 403 | ✓ |
//! | `GET /api/agents` | 401 | 403 | ✓ | ✓ | ✓ | 403 | ✓ |
//! | `GET /api/calls` (no CPR), `GET /api/stats` | 401 | 403 | ✓ | 403 | ✓ | 403 | ✓ |
//! | `GET /api/me/call` (CPR), `POST /api/me/state`, `POST /api/me/recording/stop` | 401 | ✓ | ✓ | ✓ | 403 | 403 | 403 |
//! | `POST /api/agents/{login}/state` | 401 | 403 | ✓ | 403 | ✓ | 403 | 403 |
//! | `POST`/`DELETE /api/listen` | 401 | 403 | ✓ | ✓ | 403 | 403 | 403 |
//! | `GET /metrics` (also Basic credentials) | 401 | 403 | 403 | 403 | 403 | 403 | ✓ |
//! | `GET /records` (else 303 to `/`) | 303 | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `GET /api/me/recordings` (own, with grants and who accessed them) | 401 | ✓ | ✓ | ✓ | 403 | 403 | 403 |
//! | `POST /api/recordings/{id}/grants`, `DELETE …/grants/{grantee}` (the recording's agent) | 401 | own | own | own | 403 | 403 | 403 |
//! | `GET /api/recordings?agent=`, `POST /api/recordings/{id}/listen-requests` | 401 | 403 | ✓ | ✓ | 403 | 403 | 403 |
//! | `GET /api/recordings/{id}/audio` | 401 | own | own, or granted | own, or granted | 403 | with reason | 403 |
//! | `GET`/`POST /api/calls/{id}/links`, `DELETE /api/links/{id}` | 401 | own call | own call | own call | 403 | ✓ | 403 |
//! | `POST /api/calls/{id}/cpr` | 401 | own call | own call | own call | 403 | 403 | 403 |
//! | journalise, erase, holds, `GET /api/search`, `/api/access-requests…` | 401 | 403 | 403 | 403 | 403 | ✓ | 403 |
//! | `GET /api/audit`, `GET /api/audit/verify` | 401 | 403 | 403 | 403 | 403 | 403 | ✓ |
//!
//! The records rows follow the recordings policy (`recordings-policy/policy.toml`, reloaded
//! live): the table is what the shipped policy gives. "Own call" is the call the user is on
//! or took; "granted" is the agent's grant for that recording to that team leader or coach.
//! Every records action is written to the audit log before it happens (500 if it cannot be).
//!
//! Agents see every queue's load (the domain: "the load in each queue" is on their screen) but
//! no agent details and no figures. The push channel sends each role what its `GET` routes
//! show: agents their own status, their own call (with the CPR number) and the queues; team
//! leaders, coaches, supervisors and administrators the queues and agents, and (not coaches)
//! the calls without CPR numbers and today's figures. The CPR number leaves kald only in
//! `GET /api/me/call` and the agent's own push stream, to the agent ringing for or talking on
//! the call.
//!
//! # Sessions
//!
//! `POST /api/login` sets the `kald_session` cookie (HttpOnly, SameSite=Strict) and returns
//! the same token for `Authorization: Bearer`. Sessions live in memory and expire after 8 h
//! without use; five failed log-ins within a minute block that login for the rest of the
//! minute (429). Passwords are compared in constant time. Errors are `{"error": "…"}`
//! without personal data, and the request log names only the method, the route template and
//! the status.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::SecurityRequirement;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod access;
mod auth;
mod error;
mod events;
mod model;
mod pages;
mod records;
mod records_model;
mod routes;
mod state;
mod stats;
mod stream;
mod view;
mod zipstream;

pub use access::reminders;
pub use model::{
    AgentStatus, Command, ErrorBody, Health, ListenRequest, LiveCall, LiveView, LoginRequest,
    LoginResponse, Me, MetricsFn, MyCall, MyCallResponse, QueueFigures, QueueState, QueueSummary,
    Reply, Role, Snapshot, StateAction, StateChange, UnknownRole, User,
};
pub use records::{ClockFn, PolicyFn, RecordsSource};
pub use records_model::*;
pub use stats::StatsSource;

use error::ApiError;
use state::AppState;

/// What the API needs from the binary: the SIP loop's channels, the users, the store and the
/// metrics.
pub struct Backend {
    /// Live state, replaced by the SIP loop on every change.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Commands to the SIP loop, each with a one-shot channel for its reply.
    pub commands: mpsc::Sender<(Command, oneshot::Sender<Reply>)>,
    /// Who may log in. The binary sends a new list when its configuration is reloaded; the
    /// sessions of users removed or whose password or role changed end then. For a fixed
    /// list: `watch::channel(Arc::new(users)).1`.
    pub users: watch::Receiver<Arc<Vec<User>>>,
    /// Key figures from the store (`None`: `/api/stats` answers 503, no figures on screens).
    pub stats: Option<StatsSource>,
    /// Prometheus text for `/metrics`.
    pub metrics: MetricsFn,
    /// Recordings, case links, access requests and the audit log (`None`: those routes
    /// answer 503).
    pub records: Option<RecordsSource>,
}

/// Timeouts and limits of the API; [`Settings::default`] is what `kald serve` uses.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// A session expires after this long without use (8 h).
    pub session_idle: Duration,
    /// Failed log-ins per login allowed within `login_window` (5) before 429.
    pub login_failures: u32,
    /// The throttling window (1 min).
    pub login_window: Duration,
    /// How long a command may wait for the SIP loop's reply (2 s) before 503.
    pub command_timeout: Duration,
    /// The least time between two push events of one stream (250 ms; changes coalesce).
    pub push_interval: Duration,
    /// How often an idle push stream sends a keep-alive comment (15 s).
    pub keep_alive: Duration,
    /// How long today's figures are cached (5 s).
    pub stats_cache: Duration,
    /// Whether the session cookie is marked `Secure` (behind HTTPS).
    pub secure_cookie: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(8 * 3600),
            login_failures: 5,
            login_window: Duration::from_secs(60),
            command_timeout: Duration::from_secs(2),
            push_interval: Duration::from_millis(250),
            keep_alive: Duration::from_secs(15),
            stats_cache: Duration::from_secs(5),
            secure_cookie: false,
        }
    }
}

/// The OpenAPI document's fixed parts.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kald",
        description = "The contact centre of kald: queues, agents, live calls, key figures, the push channel."
    ),
    components(schemas(Snapshot, QueueState, StateAction)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// Adds the session cookie and bearer schemes, required unless an operation says otherwise.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(auth::COOKIE_NAME))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("session", Vec::<String>::new()),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}

/// Every route, with its OpenAPI operation.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(pages::index))
        .routes(routes!(pages::agent))
        .routes(routes!(pages::wallboard))
        .routes(routes!(pages::records))
        .routes(routes!(pages::asset))
        .routes(routes!(routes::health))
        .routes(routes!(routes::metrics))
        .routes(routes!(routes::openapi_json))
        .routes(routes!(routes::login))
        .routes(routes!(routes::logout))
        .routes(routes!(routes::me))
        .routes(routes!(routes::my_call))
        .routes(routes!(routes::my_state))
        .routes(routes!(routes::stop_recording))
        .routes(routes!(routes::queues))
        .routes(routes!(routes::agents))
        .routes(routes!(routes::agent_state))
        .routes(routes!(routes::calls))
        .routes(routes!(routes::listen_start, routes::listen_stop))
        .routes(routes!(events::events))
        .routes(routes!(stats::stats))
        .routes(routes!(records::my_recordings))
        .routes(routes!(records::team_recordings))
        .routes(routes!(records::grant))
        .routes(routes!(records::withdraw_grant))
        .routes(routes!(records::ask_to_listen))
        .routes(routes!(records::audio))
        .routes(routes!(records::links, records::add_link))
        .routes(routes!(records::remove_link))
        .routes(routes!(records::correct_cpr))
        .routes(routes!(records::journalise))
        .routes(routes!(records::journal_state))
        .routes(routes!(records::erase))
        .routes(routes!(records::holds, records::add_hold))
        .routes(routes!(records::lift_hold))
        .routes(routes!(records::search))
        .routes(routes!(records::audit_log))
        .routes(routes!(records::audit_verify))
        .routes(routes!(access::open, access::list))
        .routes(routes!(access::show))
        .routes(routes!(access::add_item))
        .routes(routes!(access::decide))
        .routes(routes!(access::extend))
        .routes(routes!(access::close))
        .routes(routes!(access::archive))
}

/// The OpenAPI 3 document of every route (also served at `/api/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// The whole HTTP service with default [`Settings`].
pub fn router(backend: Backend) -> axum::Router {
    router_with(backend, Settings::default(), CancellationToken::new())
}

/// The whole HTTP service; cancelling `shutdown` ends the push streams.
pub fn router_with(
    backend: Backend,
    settings: Settings,
    shutdown: CancellationToken,
) -> axum::Router {
    let (router, openapi) = api_router().split_for_parts();
    let openapi_json = openapi.to_json().unwrap_or_else(|_| "{}".to_owned());
    let state = AppState::new(backend, settings, shutdown, openapi_json);
    // A new users list ends the sessions it removes or changes at once, not at the next
    // request (a live-event stream checks only that its session lives).
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let state = state.clone();
        let mut users = state.inner.users.clone();
        runtime.spawn(async move {
            while users.changed().await.is_ok() {
                let _ = state.accounts();
            }
        });
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // The route template only: never the URI (a login or query in it) or a body.
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("-", MatchedPath::as_str);
                tracing::debug_span!("request", method = %request.method(), route)
            }),
        )
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled (push streams end at once,
/// other requests may finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    backend: Backend,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, backend, Settings::default(), shutdown).await
}

/// [`serve`] with explicit [`Settings`].
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    backend: Backend,
    settings: Settings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router_with(backend, settings, shutdown.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
