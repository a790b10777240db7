//! Records management (issue 9): listening to and downloading recordings under the centre's
//! rules, the agents' grants, case links and CPR corrections, journalising, search, holds,
//! erasure and the audit log. Access requests are in `access.rs`.
//!
//! Who may do what comes from the recordings policy (`recordings-policy/policy.toml`, read
//! through [`RecordsSource::policy`] so a reload applies at once), on top of the roles of the
//! API. Every use of a recording and every change is appended to the audit log **before** the
//! response: when the audit log cannot be written the action is refused (500), so nothing
//! happens without its trace.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::{Timestamp, Zoned};
use kald_core::Cpr;
use kald_recordings::access::DeadlineParams;
use kald_recordings::{Access, Permission, Policy, RecordingKeys};
use kald_store::{
    AuditEntry, AuditFilter, AuditVerification, CallRecord, CallSearch, GrantState, HoldTarget,
    JournalTarget, Recording, Store, StoreError,
};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::model::{ErrorBody, Role};
use crate::records_model::{
    AccessView, AuditCheck, CprCorrection, FoundCall, GrantRequest, GrantView, HoldView,
    JournalExportView, JournaliseRequest, LinkView, ListenAsk, MyRecording, NewHold, NewLink,
    Reason, RecordingView, TeamRecording,
};
use crate::routes::TAG;
use crate::state::AppState;

/// The current recordings policy (reloaded by the binary when its file changes).
pub type PolicyFn = Arc<dyn Fn() -> Arc<Policy> + Send + Sync>;
/// The wall clock in Europe/Copenhagen (pinned by `kald serve --now`).
pub type ClockFn = Arc<dyn Fn() -> Zoned + Send + Sync>;

/// What the records routes need from the binary.
#[derive(Clone)]
pub struct RecordsSource {
    /// The catalogue, links, grants, access requests and audit log.
    pub store: Store,
    /// Where the encrypted recordings are.
    pub recordings_dir: PathBuf,
    /// The keys that open them.
    pub keys: Arc<RecordingKeys>,
    /// The recordings policy.
    pub policy: PolicyFn,
    /// What a case/journal number must look like (`None`: any non-empty text).
    pub case_number: Option<regex::Regex>,
    /// Where journalised recordings go (empty: journalising is not configured, 409).
    pub journal_targets: Vec<JournalTarget>,
    /// Wakes the journaliser after a new export is queued.
    pub journal_nudge: Option<Arc<tokio::sync::Notify>>,
    /// The clock.
    pub clock: ClockFn,
}

impl std::fmt::Debug for RecordsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordsSource")
            .field("recordings_dir", &self.recordings_dir)
            .finish_non_exhaustive()
    }
}

/// How many recordings the lists return.
const LIST_LIMIT: u32 = 200;

/// The policy's name for an API role.
pub(crate) fn policy_role(role: Role) -> kald_recordings::Role {
    match role {
        Role::Agent => kald_recordings::Role::Agent,
        Role::TeamLeader => kald_recordings::Role::TeamLeader,
        Role::Coach => kald_recordings::Role::Coach,
        Role::Supervisor => kald_recordings::Role::Supervisor,
        Role::RecordsOfficer => kald_recordings::Role::RecordsOfficer,
        Role::Administrator => kald_recordings::Role::Administrator,
    }
}

impl AppState {
    /// The records source, or 503 when the binary gave none.
    pub(crate) fn records(&self) -> Result<&RecordsSource, ApiError> {
        self.inner.records.as_ref().ok_or(ApiError::NoRecords)
    }
}

impl RecordsSource {
    /// Working days and reminders of access-request deadlines, as the policy says now.
    pub(crate) fn deadlines(&self) -> DeadlineParams {
        (self.policy)().access_requests.clone()
    }

    /// What the policy says about `caller` doing `permission`.
    pub(crate) fn access(&self, caller: &Caller, permission: Permission) -> Access {
        (self.policy)().access(policy_role(caller.role), permission)
    }

    /// `Forbidden` unless the policy allows `permission` outright.
    pub(crate) fn require(&self, caller: &Caller, permission: Permission) -> Result<(), ApiError> {
        match self.access(caller, permission) {
            Access::Allowed => Ok(()),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// Now.
    pub(crate) fn now(&self) -> Timestamp {
        (self.clock)().timestamp()
    }

    /// Appends an audit entry by `caller`; refuses the action (500) when it cannot be written.
    pub(crate) async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        reason: Option<&str>,
        cpr: Option<&Cpr>,
    ) -> Result<(), ApiError> {
        let mut entry = AuditEntry::new(
            self.now(),
            caller.login.clone(),
            caller.role.as_str(),
            action,
            target,
        );
        if let Some(reason) = reason {
            entry = entry.with_reason(reason);
        }
        if let Some(cpr) = cpr {
            entry = entry.with_cpr_hash(self.store.cpr_lookup_hash(cpr));
        }
        self.store.append_audit(&entry).await.map_err(store_error)?;
        Ok(())
    }

    /// The recording, or 404.
    pub(crate) async fn recording(&self, id: &str) -> Result<Recording, ApiError> {
        self.store
            .recording(id)
            .await
            .map_err(store_error)?
            .ok_or(ApiError::NotFound)
    }
}

/// The query string as `T`; no query string gives `T::default()`.
pub(crate) fn query_of<T: serde::de::DeserializeOwned + Default>(
    uri: &Uri,
    what: &'static str,
) -> Result<T, ApiError> {
    if uri.query().is_none_or(str::is_empty) {
        return Ok(T::default());
    }
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|_| ApiError::BadQuery(what))
}

/// The start of a local day given as YYYY-MM-DD (of the day after, for an inclusive end);
/// `None` for no or empty text.
fn day_start(
    tz: &jiff::tz::TimeZone,
    text: Option<&str>,
    day_after: bool,
) -> Result<Option<Timestamp>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut date: jiff::civil::Date = text
        .parse()
        .map_err(|_| ApiError::BadQuery("dates are YYYY-MM-DD"))?;
    if day_after {
        date = date
            .tomorrow()
            .map_err(|_| ApiError::BadQuery("date out of range"))?;
    }
    let start = date
        .to_zoned(tz.clone())
        .map_err(|_| ApiError::BadQuery("date out of range"))?;
    Ok(Some(start.timestamp()))
}

/// A store failure as an API error: "no such …" → 404, the rest logged (the store's errors
/// carry no personal data) → 500.
pub(crate) fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NoSuchCall { .. }
        | StoreError::NoSuchRecording { .. }
        | StoreError::NoSuchHold { .. }
        | StoreError::NoSuchAccessRequest { .. }
        | StoreError::NoSuchAccessItem { .. }
        | StoreError::NoSuchJournalLink { .. } => ApiError::NotFound,
        error => {
            tracing::error!(%error, "records: the store failed");
            ApiError::Internal
        }
    }
}

/// RFC 3339 text of a timestamp.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

/// The view of a recording (no CPR number).
pub(crate) fn recording_view(r: &Recording) -> RecordingView {
    RecordingView {
        id: r.id.clone(),
        call_id: r.call_id.clone(),
        kind: r.kind.as_str().to_owned(),
        started: rfc3339(r.started),
        duration_s: r.duration.map(|d| d.as_secs_f64()),
        agent: r.agent.clone(),
        queue: r.queue.clone(),
        topic: r.topic.clone(),
        state: r.state.as_str().to_owned(),
        journal: r.journal.as_str().to_owned(),
        retention_until: r.retention_until.map(rfc3339),
    }
}

/// The view of a case link.
fn link_view(l: &kald_store::JournalLink) -> LinkView {
    LinkView {
        id: l.id,
        call_id: l.call_id.clone(),
        case_number: l.case_number.clone(),
        note: l.note.clone(),
        created_by: l.created_by.clone(),
        created: rfc3339(l.created),
        removed: l.removed.is_some(),
    }
}

/// Whether the call is the caller's own: the one they are on now, or one they took.
async fn own_call(state: &AppState, src: &RecordsSource, caller: &Caller, call_id: &str) -> bool {
    let live = state
        .snapshot()
        .agents
        .iter()
        .any(|a| a.login == caller.login && a.call.as_deref() == Some(call_id));
    if live {
        return true;
    }
    match src.store.call(call_id).await {
        Ok(Some(record)) => record
            .end
            .as_ref()
            .and_then(|e| e.agent.as_deref())
            .is_some_and(|a| a == caller.login),
        _ => false,
    }
}

/// May `caller` change the case links or the CPR number of the call (`permission`)? Records
/// officers any call; roles that take calls only their own (during the call or after it).
async fn may_edit_call(
    state: &AppState,
    src: &RecordsSource,
    caller: &Caller,
    call_id: &str,
    permission: Permission,
) -> Result<(), ApiError> {
    src.require(caller, permission)?;
    if caller.role == Role::RecordsOfficer || own_call(state, src, caller, call_id).await {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

// --- the agent's own recordings -------------------------------------------------------

/// The caller's own recordings, with the grants on each and who accessed them.
#[utoipa::path(get, path = "/api/me/recordings", tag = TAG,
    responses(
        (status = 200, description = "newest first (at most 200)", body = Vec<MyRecording>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role has no recordings of its own", body = ErrorBody),
        (status = 503, description = "records are not configured", body = ErrorBody)))]
pub(crate) async fn my_recordings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<MyRecording>>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::ListenOwn)?;
    let recordings = src
        .store
        .recordings_of_agent(&caller.login, LIST_LIMIT)
        .await
        .map_err(store_error)?;
    let grants = src
        .store
        .listen_grants(Some(&caller.login), None)
        .await
        .map_err(store_error)?;
    let mut out = Vec::with_capacity(recordings.len());
    for r in &recordings {
        let accesses = src
            .store
            .audit(&AuditFilter {
                target: Some(r.id.clone()),
                ..AuditFilter::default()
            })
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|row| AccessView {
                id: row.id,
                at: rfc3339(row.entry.at),
                actor: row.entry.actor,
                role: row.entry.role,
                action: row.entry.action,
                target: row.entry.target,
                reason: row.entry.reason,
            })
            .collect();
        out.push(MyRecording {
            recording: recording_view(r),
            grants: grants
                .iter()
                .filter(|g| g.recording_id == r.id)
                .map(|g| GrantView {
                    recording_id: g.recording_id.clone(),
                    grantee: g.grantee.clone(),
                    state: g.state.as_str().to_owned(),
                    reason: g.reason.clone(),
                })
                .collect(),
            accesses,
        });
    }
    Ok(Json(out))
}

/// The agent grants or refuses a team leader or coach access to one of their recordings.
#[utoipa::path(post, path = "/api/recordings/{id}/grants", tag = TAG, request_body = GrantRequest,
    params(("id" = String, Path, description = "the recording")),
    responses(
        (status = 204, description = "recorded (and audited)"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "not the caller's recording", body = ErrorBody),
        (status = 404, description = "no such recording", body = ErrorBody),
        (status = 422, description = "the grantee is no team leader or coach", body = ErrorBody)))]
pub(crate) async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GrantRequest>,
) -> Result<StatusCode, ApiError> {
    let src = state.records()?;
    let recording = src.recording(&id).await?;
    if recording.agent.as_deref() != Some(caller.login.as_str()) {
        return Err(ApiError::Forbidden);
    }
    let grantee_ok = state.accounts()?.get(&body.grantee).is_some_and(|a| {
        src.access_for(a.user.role, Permission::ListenOthers) == Access::WithAgentConsent
    });
    if !grantee_ok {
        return Err(ApiError::Invalid(
            "the grantee must be a team leader or coach who needs the agent's consent",
        ));
    }
    let action = if body.grant {
        "consent-grant"
    } else {
        "consent-refuse"
    };
    src.audit(
        &caller,
        action,
        &id,
        Some(&format!("to {}", body.grantee)),
        None,
    )
    .await?;
    src.store
        .decide_listen(&id, &caller.login, &body.grantee, body.grant, src.now())
        .await
        .map_err(store_error)?;
    state.records_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// The agent withdraws a grant: the grantee gets 403 again.
#[utoipa::path(delete, path = "/api/recordings/{id}/grants/{grantee}", tag = TAG,
    params(("id" = String, Path, description = "the recording"),
           ("grantee" = String, Path, description = "the team leader's or coach's login")),
    responses(
        (status = 204, description = "withdrawn (and audited)"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "not the caller's recording", body = ErrorBody),
        (status = 404, description = "no such recording, or nothing granted", body = ErrorBody)))]
pub(crate) async fn withdraw_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, grantee)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let src = state.records()?;
    let recording = src.recording(&id).await?;
    if recording.agent.as_deref() != Some(caller.login.as_str()) {
        return Err(ApiError::Forbidden);
    }
    let granted = src
        .store
        .listen_grant(&id, &grantee)
        .await
        .map_err(store_error)?
        .is_some_and(|g| g.state == GrantState::Granted);
    if !granted {
        return Err(ApiError::NotFound);
    }
    src.audit(
        &caller,
        "consent-withdraw",
        &id,
        Some(&format!("from {grantee}")),
        None,
    )
    .await?;
    src.store
        .withdraw_listen(&id, &grantee, src.now())
        .await
        .map_err(store_error)?;
    state.records_changed();
    Ok(StatusCode::NO_CONTENT)
}

impl RecordsSource {
    /// What the policy says about `role` doing `permission`.
    fn access_for(&self, role: Role, permission: Permission) -> Access {
        (self.policy)().access(policy_role(role), permission)
    }
}

// --- team leaders and coaches ---------------------------------------------------------

/// Query of `GET /api/recordings`.
#[derive(Deserialize, Default)]
pub(crate) struct AgentQuery {
    /// The agent whose recordings to list.
    agent: String,
}

/// An agent's recordings for a team leader or coach, with whether the agent has granted
/// this caller access to each (no CPR numbers, no callers' numbers).
#[utoipa::path(get, path = "/api/recordings", tag = TAG,
    params(("agent" = String, Query, description = "the agent's login")),
    responses(
        (status = 200, description = "newest first (at most 200)", body = Vec<TeamRecording>),
        (status = 400, description = "no agent given", body = ErrorBody),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not listen to others' recordings with consent", body = ErrorBody)))]
pub(crate) async fn team_recordings(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Vec<TeamRecording>>, ApiError> {
    let src = state.records()?;
    if src.access(&caller, Permission::ListenOthers) != Access::WithAgentConsent {
        return Err(ApiError::Forbidden);
    }
    let query: AgentQuery = query_of(&uri, "expected agent=<login>")?;
    if query.agent.is_empty() {
        return Err(ApiError::BadQuery("expected agent=<login>"));
    }
    let recordings = src
        .store
        .recordings_of_agent(&query.agent, LIST_LIMIT)
        .await
        .map_err(store_error)?;
    let grants = src
        .store
        .listen_grants(Some(&query.agent), Some(&caller.login))
        .await
        .map_err(store_error)?;
    Ok(Json(
        recordings
            .iter()
            .map(|r| TeamRecording {
                recording: recording_view(r),
                grant: grants
                    .iter()
                    .find(|g| g.recording_id == r.id)
                    .map_or("none", |g| g.state.as_str())
                    .to_owned(),
            })
            .collect(),
    ))
}

/// A team leader or coach asks the agent for access to a recording, saying why.
#[utoipa::path(post, path = "/api/recordings/{id}/listen-requests", tag = TAG, request_body = ListenAsk,
    params(("id" = String, Path, description = "the recording")),
    responses(
        (status = 204, description = "asked; the agent sees it on the agent page"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not ask agents", body = ErrorBody),
        (status = 404, description = "no such recording", body = ErrorBody),
        (status = 422, description = "no reason", body = ErrorBody)))]
pub(crate) async fn ask_to_listen(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ListenAsk>,
) -> Result<StatusCode, ApiError> {
    let src = state.records()?;
    if src.access(&caller, Permission::ListenOthers) != Access::WithAgentConsent {
        return Err(ApiError::Forbidden);
    }
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::Invalid("a reason is required"));
    }
    let recording = src.recording(&id).await?;
    let Some(agent) = recording.agent.as_deref() else {
        return Err(ApiError::NotFound);
    };
    src.audit(&caller, "listen-request", &id, Some(reason), None)
        .await?;
    src.store
        .request_listen(&id, agent, &caller.login, reason, src.now())
        .await
        .map_err(store_error)?;
    state.records_changed();
    Ok(StatusCode::NO_CONTENT)
}

// --- listening and downloading --------------------------------------------------------

/// Query of `GET /api/recordings/{id}/audio`.
#[derive(Deserialize, Default)]
pub(crate) struct AudioQuery {
    /// Save as a file (download) rather than play.
    #[serde(default)]
    download: bool,
    /// Why (required of records officers; logged).
    #[serde(default)]
    reason: Option<String>,
}

/// A recording as WAV (stereo: citizen left, agent right). Agents their own; team leaders
/// and coaches only while the agent's grant stands; records officers with a reason. Every
/// play and download is audited first.
#[utoipa::path(get, path = "/api/recordings/{id}/audio", tag = TAG,
    params(("id" = String, Path, description = "the recording"),
           ("download" = Option<bool>, Query, description = "as an attachment (needs `download`)"),
           ("reason" = Option<String>, Query, description = "why (required of records officers)")),
    responses(
        (status = 200, description = "audio/wav", content_type = "audio/wav"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "not allowed: not the caller's, no grant from the agent, or the role may not", body = ErrorBody),
        (status = 404, description = "no such recording", body = ErrorBody),
        (status = 409, description = "still being recorded", body = ErrorBody),
        (status = 422, description = "a records officer gave no reason", body = ErrorBody)))]
pub(crate) async fn audio(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let src = state.records()?;
    let query: AudioQuery = query_of(&uri, "expected download=true|false&reason=…")?;
    let recording = src.recording(&id).await?;
    let own = recording.agent.as_deref() == Some(caller.login.as_str());
    let allowed = if own {
        src.access(&caller, Permission::ListenOwn) == Access::Allowed
    } else {
        match src.access(&caller, Permission::ListenOthers) {
            Access::Allowed => true,
            Access::WithAgentConsent => src
                .store
                .listen_grant(&id, &caller.login)
                .await
                .map_err(store_error)?
                .is_some_and(|g| g.state == GrantState::Granted),
            _ => false,
        }
    };
    if !allowed {
        tracing::info!(login = %caller.login, recording = %id, "listening refused");
        return Err(ApiError::Forbidden);
    }
    if query.download && src.access(&caller, Permission::Download) != Access::Allowed {
        return Err(ApiError::Forbidden);
    }
    let reason = query
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if !own && caller.role == Role::RecordsOfficer && reason.is_none() {
        return Err(ApiError::Invalid("say why (reason=…): it is logged"));
    }
    if recording.state == kald_store::RecordingState::Recording {
        return Err(ApiError::Refused(
            "the recording is still being made".into(),
        ));
    }
    let action = if query.download { "download" } else { "listen" };
    src.audit(&caller, action, &id, reason, recording.cpr.as_ref())
        .await?;
    let wav = measure_wav(src, &recording, Vec::new(), false).await?;
    let length = wav.size;
    let body = crate::stream::blocking_body("recording audio", move |out| {
        std::io::copy(&mut wav.stream()?, out).map(drop)
    });
    let mut response = (
        [
            (CONTENT_TYPE, HeaderValue::from_static("audio/wav")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (CONTENT_LENGTH, HeaderValue::from(length)),
        ],
        body,
    )
        .into_response();
    if query.download {
        let value = format!("attachment; filename=\"optagelse-{id}.wav\"");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// A recording measured for streaming as a WAV: decrypted once whole (so a damaged file is a
/// 500 before any byte is sent) and, when asked, its CRC-32 for a ZIP entry.
pub(crate) struct MeasuredWav {
    /// The encrypted file.
    path: PathBuf,
    /// Its keys.
    keys: Arc<RecordingKeys>,
    /// Silenced ranges.
    muted: Vec<(std::time::Duration, std::time::Duration)>,
    /// The WAV's length.
    pub(crate) size: u64,
    /// CRC-32 of the WAV's bytes, if measured.
    pub(crate) crc: Option<u32>,
}

impl MeasuredWav {
    /// The WAV's bytes, read from the file again (blocking).
    pub(crate) fn stream(
        &self,
    ) -> std::io::Result<kald_recordings::WavStream<std::io::BufReader<std::fs::File>>> {
        let reader = open_recording(&self.path, &self.keys)?;
        kald_recordings::WavStream::muted(reader, self.size, &self.muted)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// Opens a recording file for decrypting (blocking).
fn open_recording(
    path: &std::path::Path,
    keys: &RecordingKeys,
) -> std::io::Result<kald_recordings::ChunkReader<std::io::BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path)?;
    kald_recordings::ChunkReader::open(std::io::BufReader::new(file), keys)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// CRC-32 of what is written.
struct CrcWriter(crc32fast::Hasher);

impl std::io::Write for CrcWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Measures the recording's WAV, `muted` ranges silenced, off the async threads; with `crc`,
/// a second pass computes its CRC-32.
pub(crate) async fn measure_wav(
    src: &RecordsSource,
    recording: &Recording,
    muted: Vec<(std::time::Duration, std::time::Duration)>,
    crc: bool,
) -> Result<MeasuredWav, ApiError> {
    let mut wav = MeasuredWav {
        path: src.recordings_dir.join(&recording.file),
        keys: Arc::clone(&src.keys),
        muted,
        size: 0,
        crc: None,
    };
    let id = recording.id.clone();
    tokio::task::spawn_blocking(move || -> Result<MeasuredWav, ApiError> {
        let failed = |error: &dyn std::fmt::Display| {
            tracing::error!(recording = %id, %error, "cannot decrypt a recording");
            ApiError::Internal
        };
        let reader = open_recording(&wav.path, &wav.keys).map_err(|e| failed(&e))?;
        wav.size = kald_recordings::wav_size(reader).map_err(|e| failed(&e))?.0;
        if crc {
            let mut hasher = CrcWriter(crc32fast::Hasher::new());
            std::io::copy(&mut wav.stream().map_err(|e| failed(&e))?, &mut hasher)
                .map_err(|e| failed(&e))?;
            wav.crc = Some(hasher.0.finalize());
        }
        Ok(wav)
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

// --- case links and CPR corrections ---------------------------------------------------

/// The case links of a call.
#[utoipa::path(get, path = "/api/calls/{id}/links", tag = TAG,
    params(("id" = String, Path, description = "the call")),
    responses(
        (status = 200, description = "oldest first, removed ones too", body = Vec<LinkView>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "not the caller's call, or the role may not link", body = ErrorBody)))]
pub(crate) async fn links(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<LinkView>>, ApiError> {
    let src = state.records()?;
    may_edit_call(&state, src, &caller, &id, Permission::LinkJournal).await?;
    let links = src
        .store
        .journal_links_of_call(&id)
        .await
        .map_err(store_error)?;
    Ok(Json(links.iter().map(link_view).collect()))
}

/// Links a call to the citizen's case: during the call or in wrap-up (the agent's own call),
/// or by a records officer. The case number must match the configured pattern.
#[utoipa::path(post, path = "/api/calls/{id}/links", tag = TAG, request_body = NewLink,
    params(("id" = String, Path, description = "the call")),
    responses(
        (status = 201, description = "linked (and audited)", body = LinkView),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "not the caller's call, or the role may not link", body = ErrorBody),
        (status = 404, description = "no such call", body = ErrorBody),
        (status = 422, description = "the case number does not match the pattern", body = ErrorBody)))]
pub(crate) async fn add_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewLink>,
) -> Result<(StatusCode, Json<LinkView>), ApiError> {
    let src = state.records()?;
    may_edit_call(&state, src, &caller, &id, Permission::LinkJournal).await?;
    let case = body.case_number.trim();
    let valid = !case.is_empty()
        && case.len() <= 64
        && src.case_number.as_ref().is_none_or(|re| re.is_match(case));
    if !valid {
        return Err(ApiError::Invalid(
            "the case number does not have the configured form",
        ));
    }
    let note = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.len() > 1000) {
        return Err(ApiError::Invalid("the note is longer than 1000 characters"));
    }
    if src.store.call(&id).await.map_err(store_error)?.is_none() {
        return Err(ApiError::NotFound);
    }
    src.audit(&caller, "link", &id, Some(case), None).await?;
    let link_id = src
        .store
        .add_journal_link(&id, case, note, &caller.login, src.now())
        .await
        .map_err(store_error)?;
    let link = src
        .store
        .journal_link(link_id)
        .await
        .map_err(store_error)?
        .ok_or(ApiError::Internal)?;
    Ok((StatusCode::CREATED, Json(link_view(&link))))
}

/// Removes a case link (pending deliveries under it are cancelled).
#[utoipa::path(delete, path = "/api/links/{id}", tag = TAG,
    params(("id" = i64, Path, description = "the link")),
    responses(
        (status = 204, description = "removed (and audited)"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "not the caller's call, or the role may not link", body = ErrorBody),
        (status = 404, description = "no such live link", body = ErrorBody)))]
pub(crate) async fn remove_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::LinkJournal)?;
    let link = src
        .store
        .journal_link(id)
        .await
        .map_err(store_error)?
        .filter(|l| l.removed.is_none())
        .ok_or(ApiError::NotFound)?;
    may_edit_call(&state, src, &caller, &link.call_id, Permission::LinkJournal).await?;
    src.audit(
        &caller,
        "unlink",
        &link.call_id,
        Some(&link.case_number),
        None,
    )
    .await?;
    if !src
        .store
        .remove_journal_link(id, &caller.login, src.now())
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Enters or corrects the CPR number of a call after verifying the caller's identity (the
/// agent's own call, or a records officer); the call and its recordings are found by the new
/// number from now on.
#[utoipa::path(post, path = "/api/calls/{id}/cpr", tag = TAG, request_body = CprCorrection,
    params(("id" = String, Path, description = "the call")),
    responses(
        (status = 204, description = "stored (and audited)"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "not the caller's call, or the role may not", body = ErrorBody),
        (status = 404, description = "no such call", body = ErrorBody),
        (status = 422, description = "not a valid CPR number, or no verification given", body = ErrorBody)))]
pub(crate) async fn correct_cpr(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CprCorrection>,
) -> Result<StatusCode, ApiError> {
    let src = state.records()?;
    may_edit_call(&state, src, &caller, &id, Permission::CorrectCpr).await?;
    let cpr: Cpr = body
        .cpr
        .trim()
        .parse()
        .map_err(|_| ApiError::Invalid("not a valid CPR number"))?;
    let verified = body.verified_by.trim();
    if verified.is_empty() {
        return Err(ApiError::Invalid(
            "say how the caller's identity was verified",
        ));
    }
    if src.store.call(&id).await.map_err(store_error)?.is_none() {
        return Err(ApiError::NotFound);
    }
    src.audit(&caller, "correct-cpr", &id, Some(verified), Some(&cpr))
        .await?;
    src.store
        .correct_call_cpr(&id, &cpr, &caller.login, src.now())
        .await
        .map_err(store_error)?;
    let live = state
        .snapshot()
        .calls
        .iter()
        .any(|c| c.id == id && c.agent.as_deref() == Some(caller.login.as_str()));
    if live {
        // The screen pop and recordings started later take it too; the store already has it,
        // so a call that just ended is no failure.
        let command = crate::model::Command::CorrectCpr {
            agent: caller.login.clone(),
            call: id.clone(),
            cpr,
        };
        if let Err(error) = state.execute(command).await {
            tracing::info!(call = %id, %error, "the live call did not take the corrected CPR number");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

// --- journalising ---------------------------------------------------------------------

/// Sends a recording to the case system under one of its call's links: to the drop folder
/// and/or the webhook, retried until acknowledged.
#[utoipa::path(post, path = "/api/recordings/{id}/journalise", tag = TAG, request_body = JournaliseRequest,
    params(("id" = String, Path, description = "the recording")),
    responses(
        (status = 202, description = "queued (and audited); see GET …/journal", body = Vec<JournalExportView>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not journalise", body = ErrorBody),
        (status = 404, description = "no such recording or link", body = ErrorBody),
        (status = 409, description = "no case system configured, or the recording cannot be sent yet", body = ErrorBody)))]
pub(crate) async fn journalise(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<JournaliseRequest>,
) -> Result<(StatusCode, Json<Vec<JournalExportView>>), ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::Export)?;
    if src.journal_targets.is_empty() {
        return Err(ApiError::Refused(
            "no case system is configured ([journal] drop_folder or webhook)".into(),
        ));
    }
    let recording = src.recording(&id).await?;
    let link = src
        .store
        .journal_link(body.link_id)
        .await
        .map_err(store_error)?
        .filter(|l| l.removed.is_none() && l.call_id == recording.call_id)
        .ok_or(ApiError::NotFound)?;
    src.audit(
        &caller,
        "journalise-request",
        &id,
        Some(&link.case_number),
        recording.cpr.as_ref(),
    )
    .await?;
    match src
        .store
        .queue_journal_exports(&id, link.id, &src.journal_targets, &caller.login, src.now())
        .await
    {
        Ok(_) => {}
        Err(StoreError::NotJournalisable { reason, .. }) => {
            return Err(ApiError::Refused(format!(
                "the recording cannot be sent: {reason}"
            )))
        }
        Err(e) => return Err(store_error(e)),
    }
    if let Some(nudge) = &src.journal_nudge {
        nudge.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(journal_views(src, &id).await?)))
}

/// Where a recording's deliveries to the case system stand.
#[utoipa::path(get, path = "/api/recordings/{id}/journal", tag = TAG,
    params(("id" = String, Path, description = "the recording")),
    responses(
        (status = 200, description = "every delivery", body = Vec<JournalExportView>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not journalise", body = ErrorBody)))]
pub(crate) async fn journal_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<JournalExportView>>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::Export)?;
    Ok(Json(journal_views(src, &id).await?))
}

/// The deliveries of a recording.
async fn journal_views(src: &RecordsSource, id: &str) -> Result<Vec<JournalExportView>, ApiError> {
    Ok(src
        .store
        .journal_exports_of_recording(id)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|e| JournalExportView {
            id: e.id,
            case_number: e.case_number,
            target: e.target.as_str().to_owned(),
            state: e.state.as_str().to_owned(),
            attempts: e.attempts,
            last_error: e.last_error,
            receipt: e.receipt,
        })
        .collect())
}

// --- erasure and holds ----------------------------------------------------------------

/// Erases a recording at the citizen's request (GDPR art. 17(1)(b), consent withdrawn after
/// the call): file and row go, a tombstone stays. Refused for a journalised recording (the
/// case system's copy is the authority's record) and while a hold stands.
#[utoipa::path(post, path = "/api/recordings/{id}/erase", tag = TAG, request_body = Reason,
    params(("id" = String, Path, description = "the recording")),
    responses(
        (status = 204, description = "erased (and audited)"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not erase", body = ErrorBody),
        (status = 404, description = "no such recording", body = ErrorBody),
        (status = 409, description = "journalised, or on hold", body = ErrorBody),
        (status = 422, description = "no reason", body = ErrorBody)))]
pub(crate) async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Reason>,
) -> Result<StatusCode, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::Erase)?;
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::Invalid("a reason is required"));
    }
    let recording = src.recording(&id).await?;
    if recording.journal == kald_store::JournalState::Exported {
        return Err(ApiError::Refused(
            "journalised: the case system holds the authority's copy; erase it there".into(),
        ));
    }
    if recording.state == kald_store::RecordingState::Recording {
        return Err(ApiError::Refused(
            "the recording is still being made".into(),
        ));
    }
    let now = src.now();
    let purge_after = (src.policy)()
        .retention
        .tombstones
        .deadline(
            now,
            &jiff::tz::TimeZone::get("Europe/Copenhagen").map_err(|_| ApiError::Internal)?,
        )
        .unwrap_or(now);
    src.audit(&caller, "erase", &id, Some(reason), recording.cpr.as_ref())
        .await?;
    let file = src
        .store
        .erase_recording(&id, "erased (GDPR art. 17(1)(b))", now, purge_after)
        .await
        .map_err(store_error)?;
    let Some(file) = file else {
        return Err(ApiError::Refused("the recording is on hold".into()));
    };
    if let Err(error) = std::fs::remove_file(src.recordings_dir.join(&file)) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(recording = %id, %error, "erased from the catalogue but the file could not be removed");
        }
    }
    tracing::info!(recording = %id, "recording erased on request");
    Ok(StatusCode::NO_CONTENT)
}

/// The holds (active and lifted).
#[utoipa::path(get, path = "/api/holds", tag = TAG,
    responses(
        (status = 200, description = "oldest first", body = Vec<HoldView>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not hold", body = ErrorBody)))]
pub(crate) async fn holds(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<HoldView>>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::Hold)?;
    let holds = src.store.holds(false).await.map_err(store_error)?;
    Ok(Json(
        holds
            .into_iter()
            .map(|h| {
                let (scope, target) = match h.target {
                    HoldTarget::Recording(id) => ("recording", Some(id)),
                    HoldTarget::Call(id) => ("call", Some(id)),
                    HoldTarget::Cpr(_) | HoldTarget::CprHash(_) => ("citizen", None),
                };
                HoldView {
                    id: h.id,
                    scope: scope.to_owned(),
                    target,
                    reason: h.reason,
                    created_by: h.created_by,
                    created: rfc3339(h.created),
                    active: h.lifted.is_none(),
                }
            })
            .collect(),
    ))
}

/// Places a hold on a recording or a call's recordings: kept past their deadline until
/// lifted.
#[utoipa::path(post, path = "/api/holds", tag = TAG, request_body = NewHold,
    responses(
        (status = 201, description = "placed (and audited); its id", body = i64),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not hold", body = ErrorBody),
        (status = 422, description = "not exactly one of recording and call, or no reason", body = ErrorBody)))]
pub(crate) async fn add_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewHold>,
) -> Result<(StatusCode, Json<i64>), ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::Hold)?;
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::Invalid("a reason is required"));
    }
    let (target, name) = match (body.recording, body.call) {
        (Some(r), None) => (HoldTarget::Recording(r.clone()), r),
        (None, Some(c)) => (HoldTarget::Call(c.clone()), c),
        _ => return Err(ApiError::Invalid("name exactly one of recording and call")),
    };
    src.audit(&caller, "hold", &name, Some(reason), None)
        .await?;
    let id = src
        .store
        .add_hold(&target, reason, &caller.login, src.now())
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(id)))
}

/// Lifts a hold.
#[utoipa::path(delete, path = "/api/holds/{id}", tag = TAG,
    params(("id" = i64, Path, description = "the hold")),
    responses(
        (status = 204, description = "lifted (and audited)"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not hold", body = ErrorBody),
        (status = 404, description = "no such hold", body = ErrorBody)))]
pub(crate) async fn lift_hold(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::Hold)?;
    src.audit(&caller, "lift-hold", &id.to_string(), None, None)
        .await?;
    src.store
        .lift_hold(id, &caller.login, src.now())
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

// --- search ---------------------------------------------------------------------------

/// Query of `GET /api/search`.
#[derive(Deserialize, Default)]
pub(crate) struct SearchQuery {
    /// CPR number.
    cpr: Option<String>,
    /// Caller's number.
    caller: Option<String>,
    /// First day, YYYY-MM-DD.
    from: Option<String>,
    /// Last day, YYYY-MM-DD (inclusive).
    to: Option<String>,
    /// Case number.
    case: Option<String>,
    /// Agent's login.
    agent: Option<String>,
}

/// Searches calls and their recordings by CPR number (through its keyed hash), caller's
/// number, date range, case number and agent (records officers; a CPR search is audited).
#[utoipa::path(get, path = "/api/search", tag = TAG,
    params(
        ("cpr" = Option<String>, Query, description = "CPR number"),
        ("caller" = Option<String>, Query, description = "the caller's number, as presented"),
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD (inclusive)"),
        ("case" = Option<String>, Query, description = "case number"),
        ("agent" = Option<String>, Query, description = "agent's login")),
    responses(
        (status = 200, description = "newest first (at most 200)", body = Vec<FoundCall>),
        (status = 400, description = "an invalid key, or none", body = ErrorBody),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not search", body = ErrorBody)))]
pub(crate) async fn search(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Vec<FoundCall>>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::SearchByCpr)?;
    let q: SearchQuery = query_of(&uri, "expected cpr, caller, from, to, case or agent")?;
    let text = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let cpr: Option<Cpr> = match text(&q.cpr) {
        Some(c) => Some(
            c.parse()
                .map_err(|_| ApiError::BadQuery("not a valid CPR number"))?,
        ),
        None => None,
    };
    let tz = (src.clock)().time_zone().clone();
    let day = |s: Option<String>, next: bool| day_start(&tz, s.as_deref(), next);
    let search = CallSearch {
        cpr: cpr.clone(),
        caller: text(&q.caller),
        from: day(text(&q.from), false)?,
        to: day(text(&q.to), true)?,
        case_number: text(&q.case),
        agent: text(&q.agent),
        limit: 0,
    };
    if search.cpr.is_none()
        && search.caller.is_none()
        && search.from.is_none()
        && search.to.is_none()
        && search.case_number.is_none()
        && search.agent.is_none()
    {
        return Err(ApiError::BadQuery("give at least one key"));
    }
    if let Some(cpr) = &cpr {
        src.audit(&caller, "search-cpr", "calls", None, Some(cpr))
            .await?;
    } else {
        let what: Vec<&str> = [
            search.caller.as_ref().map(|_| "caller"),
            search.from.or(search.to).map(|_| "dates"),
            search.case_number.as_deref(),
            search.agent.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        src.audit(&caller, "search", "calls", Some(&what.join(", ")), None)
            .await?;
    }
    let calls = src.store.search_calls(&search).await.map_err(store_error)?;
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        out.push(found_call(src, call).await?);
    }
    Ok(Json(out))
}

/// A call with its recordings and links, for a records officer.
pub(crate) async fn found_call(src: &RecordsSource, c: CallRecord) -> Result<FoundCall, ApiError> {
    let recordings = src
        .store
        .recordings_of_call(&c.call.id)
        .await
        .map_err(store_error)?;
    let links = src
        .store
        .journal_links_of_call(&c.call.id)
        .await
        .map_err(store_error)?;
    Ok(FoundCall {
        id: c.call.id.clone(),
        started: rfc3339(c.call.started),
        ended: c.end.as_ref().map(|e| rfc3339(e.ended)),
        caller: c.call.caller.clone(),
        cpr: c.call.cpr.as_ref().map(|p| p.expose_dashed().to_string()),
        cpr_corrected: c.cpr_corrected.is_some(),
        topic: c.call.topic.clone(),
        queue: c.call.queue.clone(),
        agent: c.end.as_ref().and_then(|e| e.agent.clone()),
        consent: c.call.consent,
        outcome: c.end.as_ref().map(|e| e.outcome.clone()),
        pii_scrubbed: c.pii_scrubbed.map(rfc3339),
        recordings: recordings.iter().map(recording_view).collect(),
        links: links.iter().map(link_view).collect(),
    })
}

// --- the audit log --------------------------------------------------------------------

/// Query of `GET /api/audit`.
#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    /// First day, YYYY-MM-DD.
    from: Option<String>,
    /// Last day, YYYY-MM-DD (inclusive).
    to: Option<String>,
    /// Actor's login.
    actor: Option<String>,
    /// Action.
    action: Option<String>,
    /// Target.
    target: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The audit log, filtered (administrators; reading it is audited too). Read-only: there is
/// no route that changes or deletes an entry.
#[utoipa::path(get, path = "/api/audit", tag = TAG,
    params(
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD (inclusive)"),
        ("actor" = Option<String>, Query, description = "who"),
        ("action" = Option<String>, Query, description = "what"),
        ("target" = Option<String>, Query, description = "on what"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
    responses(
        (status = 200, description = "oldest first (at most 10,000)", body = Vec<AccessView>),
        (status = 400, description = "invalid filter", body = ErrorBody),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not read the audit log", body = ErrorBody)))]
pub(crate) async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Response, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::ReadAudit)?;
    let q: AuditQuery = query_of(&uri, "expected from, to, actor, action, target, format")?;
    let tz = (src.clock)().time_zone().clone();
    let day = |s: &Option<String>, next: bool| day_start(&tz, s.as_deref(), next);
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::BadQuery("format is json or csv")),
    };
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let filter = AuditFilter {
        from: day(&q.from, false)?,
        to: day(&q.to, true)?,
        actor: nonempty(&q.actor),
        action: nonempty(&q.action),
        target: nonempty(&q.target),
        limit: Some(10_000),
        ..AuditFilter::default()
    };
    src.audit(&caller, "read-audit", "audit", None, None)
        .await?;
    let rows = src.store.audit(&filter).await.map_err(store_error)?;
    let views: Vec<AccessView> = rows
        .into_iter()
        .map(|row| AccessView {
            id: row.id,
            at: rfc3339(row.entry.at),
            actor: row.entry.actor,
            role: row.entry.role,
            action: row.entry.action,
            target: row.entry.target,
            reason: row.entry.reason,
        })
        .collect();
    if !csv {
        return Ok(Json(views).into_response());
    }
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut text = String::from("id,at,actor,role,action,target,reason\r\n");
    for v in &views {
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            v.id,
            v.at,
            field(&v.actor),
            field(&v.role),
            field(&v.action),
            field(&v.target),
            field(v.reason.as_deref().unwrap_or(""))
        ));
    }
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"kald-audit.csv\""),
            ),
        ],
        text,
    )
        .into_response())
}

/// Checks the audit log's hash chain (administrators).
#[utoipa::path(get, path = "/api/audit/verify", tag = TAG,
    responses(
        (status = 200, description = "the chain's state", body = AuditCheck),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role may not read the audit log", body = ErrorBody)))]
pub(crate) async fn audit_verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AuditCheck>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::ReadAudit)?;
    let check = match src.store.verify_audit().await.map_err(store_error)? {
        AuditVerification::Intact { entries, head, .. } => AuditCheck {
            intact: true,
            entries,
            broken_at: None,
            problem: None,
            head: Some(head.iter().map(|b| format!("{b:02x}")).collect()),
        },
        AuditVerification::Broken {
            id,
            problem,
            intact,
        } => AuditCheck {
            intact: false,
            entries: intact,
            broken_at: Some(id),
            problem: Some(problem.to_string()),
            head: None,
        },
    };
    if !check.intact {
        tracing::error!(broken_at = ?check.broken_at, "ALERT: the audit log's hash chain is broken");
    }
    Ok(Json(check))
}
