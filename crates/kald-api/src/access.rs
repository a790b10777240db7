//! Access requests (aktindsigt under forvaltningsloven, the right of access under GDPR
//! art. 15): opening one (which holds everything of the citizen and finds it), the review of
//! each item, the deadline and reminders, and the archive for the requester. The deadline
//! rules and the index are `kald_recordings::access` (sans-IO); this is their HTTP edge.

use std::io::Write as _;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::civil::Date;
use jiff::Zoned;
use kald_core::Cpr;
use kald_recordings::access::{
    index_text, AccessRequest, AccessRequestId, Decision, FoundItem, FoundKind, Law, ReminderKind,
    RequestState,
};
use kald_recordings::retention::ItemId;
use kald_recordings::Permission;
use kald_store::{
    AccessItem, AccessItemKind, AccessLaw, AccessState, AuditFilter, HoldTarget, ItemDecision,
    NewAccessRequest, StoredAccessRequest,
};

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::model::ErrorBody;
use crate::records::{measure_wav, rfc3339, store_error, MeasuredWav, RecordsSource};
use crate::records_model::{
    AccessItemView, AccessRequestDetail, AccessRequestView, DecisionBody, ExtendBody,
    NewAccessRequestBody, NewItem,
};
use crate::routes::TAG;
use crate::state::AppState;

/// The sans-IO request of a stored one.
fn model(r: &StoredAccessRequest) -> AccessRequest {
    let law = match r.law {
        AccessLaw::Forvaltningsloven => Law::Forvaltningsloven,
        AccessLaw::Gdpr => Law::Gdpr,
    };
    let mut request = AccessRequest::new(
        AccessRequestId(r.id),
        law,
        r.received,
        r.requester.clone(),
        r.identity_verified_by.clone(),
        r.cpr_hash,
    );
    request.extension =
        r.extension
            .as_ref()
            .map(|(until, reason)| kald_recordings::access::Extension {
                new_deadline: *until,
                reason: reason.clone(),
            });
    request.state = match r.state {
        AccessState::Open => RequestState::Open,
        AccessState::Reviewed => RequestState::Reviewed,
        AccessState::Answered => RequestState::Answered,
        AccessState::Closed => RequestState::Closed,
    };
    request
}

/// The sans-IO decision of a stored one.
fn decision(d: &ItemDecision) -> Decision {
    match d {
        ItemDecision::Release => Decision::Release,
        ItemDecision::Withhold(reason) => Decision::Withhold {
            legal_reason: reason.clone(),
        },
        ItemDecision::ReleaseMuted(ranges) => Decision::ReleaseMuted {
            ranges: ranges
                .iter()
                .map(|&(s, e)| (Duration::from_millis(s), Duration::from_millis(e)))
                .collect(),
        },
    }
}

/// One item with what the review and the index need, and the audio's recording if any.
struct Loaded {
    /// The stored item.
    item: AccessItem,
    /// For the review and the index.
    found: FoundItem,
    /// The recording, for audio items still held.
    recording: Option<kald_store::Recording>,
}

/// Reads each item's details from the store.
async fn load_items(src: &RecordsSource, items: Vec<AccessItem>) -> Result<Vec<Loaded>, ApiError> {
    let tz = (src.clock)().time_zone().clone();
    let zoned = |t: jiff::Timestamp| t.to_zoned(tz.clone());
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        let id = ItemId(i64::try_from(n).unwrap_or(i64::MAX).saturating_add(1));
        let mut recording = None;
        let (kind, at, duration, agent, note) = match item.kind {
            AccessItemKind::Recording | AccessItemKind::Message => {
                let kind = if item.kind == AccessItemKind::Recording {
                    FoundKind::Recording
                } else {
                    FoundKind::Message
                };
                match src
                    .store
                    .recording(&item.item_id)
                    .await
                    .map_err(store_error)?
                {
                    Some(r) => {
                        let out = (
                            kind,
                            zoned(r.started),
                            Some(r.duration.unwrap_or_default()),
                            r.agent.clone(),
                            r.topic.clone().map(|t| format!("Emne (topic): {t}")),
                        );
                        recording = Some(r);
                        out
                    }
                    None => (
                        kind,
                        zoned(src.now()),
                        None,
                        None,
                        Some("slettet efter anmodningen (deleted since)".to_owned()),
                    ),
                }
            }
            AccessItemKind::Call => {
                match src.store.call(&item.item_id).await.map_err(store_error)? {
                    Some(c) => {
                        let mut note = Vec::new();
                        if let Some(caller) = &c.call.caller {
                            note.push(format!("nummer {caller}"));
                        }
                        if let Some(t) = &c.call.topic {
                            note.push(format!("emne {t}"));
                        }
                        if let Some(e) = &c.end {
                            note.push(format!("udfald {}", e.outcome));
                        }
                        match c.call.consent {
                            Some(true) => note.push("samtykke til optagelse: ja".into()),
                            Some(false) => note.push("samtykke til optagelse: nej".into()),
                            None => {}
                        }
                        (
                            FoundKind::CallRecord,
                            zoned(c.call.started),
                            None,
                            c.end.and_then(|e| e.agent),
                            Some(note.join(", ")),
                        )
                    }
                    None => (FoundKind::CallRecord, zoned(src.now()), None, None, None),
                }
            }
            AccessItemKind::Tombstone => {
                match src
                    .store
                    .tombstone(&item.item_id)
                    .await
                    .map_err(store_error)?
                {
                    Some(t) => (
                        FoundKind::Tombstone,
                        zoned(t.started),
                        None,
                        None,
                        Some(format!(
                            "slettet (deleted) {} – {}",
                            zoned(t.deleted).strftime("%Y-%m-%d"),
                            t.reason
                        )),
                    ),
                    None => (FoundKind::Tombstone, zoned(src.now()), None, None, None),
                }
            }
            AccessItemKind::Audit => {
                let row_id: i64 = item.item_id.parse().map_err(|_| ApiError::Internal)?;
                let rows = src
                    .store
                    .audit(&AuditFilter {
                        after_id: Some(row_id - 1),
                        limit: Some(1),
                        ..AuditFilter::default()
                    })
                    .await
                    .map_err(store_error)?;
                match rows.into_iter().next().filter(|r| r.id == row_id) {
                    Some(r) => (
                        FoundKind::AuditEntry,
                        zoned(r.entry.at),
                        None,
                        None,
                        Some(format!(
                            "{} ({}) {} {}{}",
                            r.entry.actor,
                            r.entry.role,
                            r.entry.action,
                            r.entry.target,
                            r.entry
                                .reason
                                .map(|why| format!(": {why}"))
                                .unwrap_or_default()
                        )),
                    ),
                    None => (FoundKind::AuditEntry, zoned(src.now()), None, None, None),
                }
            }
        };
        out.push(Loaded {
            found: FoundItem {
                id,
                kind,
                at,
                duration,
                agent,
                note,
            },
            item,
            recording,
        });
    }
    Ok(out)
}

/// The summary of a request as of today.
fn view(src: &RecordsSource, r: &StoredAccessRequest, items: &[AccessItem]) -> AccessRequestView {
    let request = model(r);
    let today: Date = (src.clock)().date();
    let days = src.deadlines();
    let deadline = request.deadline(&days);
    let left = if today <= deadline {
        i64::from(days.working_days_between(today, deadline))
    } else {
        -i64::from(days.working_days_between(deadline, today))
    };
    let reminder = request
        .reminders(today, &days)
        .first()
        .map(|r| match r.kind {
            ReminderKind::DueSoon { .. } => "due-soon".to_owned(),
            ReminderKind::Overdue { .. } => "overdue".to_owned(),
        });
    AccessRequestView {
        id: r.id,
        law: r.law.as_str().to_owned(),
        received: r.received.to_string(),
        deadline: deadline.to_string(),
        working_days_left: left,
        reminder,
        requester: r.requester.clone(),
        identity_verified_by: r.identity_verified_by.clone(),
        cpr: r.cpr.expose_dashed().to_string(),
        extension_reason: r.extension.as_ref().map(|(_, why)| why.clone()),
        state: r.state.as_str().to_owned(),
        items: items.len(),
        decided: items.iter().filter(|i| i.decision.is_some()).count(),
    }
}

/// The request, or 404.
async fn request(src: &RecordsSource, id: i64) -> Result<StoredAccessRequest, ApiError> {
    src.store
        .access_request(id)
        .await
        .map_err(store_error)?
        .ok_or(ApiError::NotFound)
}

/// The full view of a request.
async fn detail(src: &RecordsSource, id: i64) -> Result<AccessRequestDetail, ApiError> {
    let r = request(src, id).await?;
    let items = src.store.access_items(id).await.map_err(store_error)?;
    let summary = view(src, &r, &items);
    let loaded = load_items(src, items).await?;
    Ok(AccessRequestDetail {
        request: summary,
        items: loaded
            .into_iter()
            .map(|l| {
                let (name, legal_reason, muted) = match &l.item.decision {
                    None => (None, None, Vec::new()),
                    Some(ItemDecision::Release) => (Some("release"), None, Vec::new()),
                    Some(ItemDecision::Withhold(why)) => {
                        (Some("withhold"), Some(why.clone()), Vec::new())
                    }
                    Some(ItemDecision::ReleaseMuted(ranges)) => (
                        Some("release-muted"),
                        None,
                        ranges
                            .iter()
                            .map(|&(s, e)| [s as f64 / 1000.0, e as f64 / 1000.0])
                            .collect(),
                    ),
                };
                AccessItemView {
                    kind: l.item.kind.as_str().to_owned(),
                    id: l.item.item_id,
                    at: Some(rfc3339(l.found.at.timestamp())),
                    duration_s: l.found.duration.map(|d| d.as_secs_f64()),
                    agent: l.found.agent,
                    note: l.found.note,
                    decision: name.map(str::to_owned),
                    legal_reason,
                    muted,
                    decided_by: l.item.decided_by,
                }
            })
            .collect(),
    })
}

/// Opens an access request: holds everything of the citizen at once, then finds their
/// recordings, messages, call records, tombstones and the audit entries about them.
#[utoipa::path(post, path = "/api/access-requests", tag = TAG, request_body = NewAccessRequestBody,
    responses(
        (status = 201, description = "opened (and audited)", body = AccessRequestDetail),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not handle access requests", body = ErrorBody),
        (status = 422, description = "invalid law, date or CPR number, or missing text", body = ErrorBody)))]
pub(crate) async fn open(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewAccessRequestBody>,
) -> Result<(StatusCode, Json<AccessRequestDetail>), ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::AccessRequests)?;
    let law = match body.law.as_str() {
        "forvaltningsloven" => AccessLaw::Forvaltningsloven,
        "gdpr" => AccessLaw::Gdpr,
        _ => return Err(ApiError::Invalid("law is forvaltningsloven or gdpr")),
    };
    let received = match body
        .received
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => s
            .parse::<Date>()
            .map_err(|_| ApiError::Invalid("received is YYYY-MM-DD"))?,
        None => (src.clock)().date(),
    };
    if received > (src.clock)().date() {
        return Err(ApiError::Invalid("received is in the future"));
    }
    let cpr: Cpr = body
        .cpr
        .trim()
        .parse()
        .map_err(|_| ApiError::Invalid("not a valid CPR number"))?;
    let requester = body.requester.trim();
    let verified = body.identity_verified_by.trim();
    if requester.is_empty() || verified.is_empty() {
        return Err(ApiError::Invalid(
            "say who asked and how their identity was verified",
        ));
    }
    let new = NewAccessRequest {
        law,
        received,
        requester: requester.to_owned(),
        identity_verified_by: verified.to_owned(),
        cpr: cpr.clone(),
    };
    // Audited before the request (and its hold and search) exists, like every records
    // action; the entry is found with the request by the citizen's CPR hash.
    src.audit(
        &caller,
        "access-request-open",
        "access-request",
        Some(&format!("{}: {requester}", law.as_str())),
        Some(&cpr),
    )
    .await?;
    let id = src
        .store
        .open_access_request(&new, &caller.login, src.now())
        .await
        .map_err(store_error)?;
    tracing::info!(request = id, "access request opened");
    Ok((StatusCode::CREATED, Json(detail(src, id).await?)))
}

/// The access requests, newest first, with deadlines and reminders as of today.
#[utoipa::path(get, path = "/api/access-requests", tag = TAG,
    responses(
        (status = 200, description = "every request", body = Vec<AccessRequestView>),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not handle access requests", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AccessRequestView>>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::AccessRequests)?;
    let requests = src
        .store
        .access_requests(false)
        .await
        .map_err(store_error)?;
    let mut out = Vec::with_capacity(requests.len());
    for r in &requests {
        let items = src.store.access_items(r.id).await.map_err(store_error)?;
        out.push(view(src, r, &items));
    }
    Ok(Json(out))
}

/// One access request with every item and its decision.
#[utoipa::path(get, path = "/api/access-requests/{id}", tag = TAG,
    params(("id" = i64, Path, description = "the request")),
    responses(
        (status = 200, description = "the request", body = AccessRequestDetail),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not handle access requests", body = ErrorBody),
        (status = 404, description = "no such request", body = ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<AccessRequestDetail>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::AccessRequests)?;
    Ok(Json(detail(src, id).await?))
}

/// Adds an item found by other keys (a relative's call, a mistyped CPR) to the request;
/// it is held with the request.
#[utoipa::path(post, path = "/api/access-requests/{id}/items", tag = TAG, request_body = NewItem,
    params(("id" = i64, Path, description = "the request")),
    responses(
        (status = 200, description = "the request", body = AccessRequestDetail),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not handle access requests", body = ErrorBody),
        (status = 404, description = "no such request, call or recording", body = ErrorBody),
        (status = 409, description = "the request is answered or closed", body = ErrorBody),
        (status = 422, description = "invalid kind", body = ErrorBody)))]
pub(crate) async fn add_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<NewItem>,
) -> Result<Json<AccessRequestDetail>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::AccessRequests)?;
    let r = request(src, id).await?;
    if matches!(r.state, AccessState::Answered | AccessState::Closed) {
        return Err(ApiError::Refused(
            "the request is answered or closed".into(),
        ));
    }
    let (kind, hold) = match body.kind.as_str() {
        "call" => {
            if src
                .store
                .call(&body.id)
                .await
                .map_err(store_error)?
                .is_none()
            {
                return Err(ApiError::NotFound);
            }
            (AccessItemKind::Call, HoldTarget::Call(body.id.clone()))
        }
        "recording" | "message" => {
            let rec = src.recording(&body.id).await?;
            let kind = match rec.kind {
                kald_store::RecordingKind::Call => AccessItemKind::Recording,
                kald_store::RecordingKind::Message => AccessItemKind::Message,
            };
            (kind, HoldTarget::Recording(body.id.clone()))
        }
        _ => return Err(ApiError::Invalid("kind is call, recording or message")),
    };
    src.audit(
        &caller,
        "access-request-add",
        &format!("access-request:{id}"),
        Some(&format!("{} {}", kind.as_str(), body.id)),
        None,
    )
    .await?;
    let added = src
        .store
        .add_access_item(id, kind, &body.id)
        .await
        .map_err(store_error)?;
    if added {
        src.store
            .add_hold(&hold, &item_hold_reason(id), &caller.login, src.now())
            .await
            .map_err(store_error)?;
        // A call's recordings come with it.
        if kind == AccessItemKind::Call {
            for rec in src
                .store
                .recordings_of_call(&body.id)
                .await
                .map_err(store_error)?
            {
                let kind = match rec.kind {
                    kald_store::RecordingKind::Call => AccessItemKind::Recording,
                    kald_store::RecordingKind::Message => AccessItemKind::Message,
                };
                src.store
                    .add_access_item(id, kind, &rec.id)
                    .await
                    .map_err(store_error)?;
            }
        }
    }
    Ok(Json(detail(src, id).await?))
}

/// The reason of the holds on items added to request `id` by hand: they are lifted with it.
fn item_hold_reason(id: i64) -> String {
    format!("access request {id}")
}

/// Records the decision on one item: release, withhold with the legal reason, or release
/// with time ranges muted (e.g. where a third party speaks).
#[utoipa::path(put, path = "/api/access-requests/{id}/items/{kind}/{item}", tag = TAG, request_body = DecisionBody,
    params(("id" = i64, Path, description = "the request"),
           ("kind" = String, Path, description = "the item's kind"),
           ("item" = String, Path, description = "the item's id")),
    responses(
        (status = 200, description = "the request", body = AccessRequestDetail),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not handle access requests", body = ErrorBody),
        (status = 404, description = "no such request or item", body = ErrorBody),
        (status = 409, description = "the request is answered or closed", body = ErrorBody),
        (status = 422, description = "invalid decision: no legal reason, ranges outside the audio or overlapping", body = ErrorBody)))]
pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, kind, item)): Path<(i64, String, String)>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<AccessRequestDetail>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::AccessRequests)?;
    let r = request(src, id).await?;
    if matches!(r.state, AccessState::Answered | AccessState::Closed) {
        return Err(ApiError::Refused(
            "the request is answered or closed".into(),
        ));
    }
    let items = src.store.access_items(id).await.map_err(store_error)?;
    let Some(stored) = items
        .into_iter()
        .find(|i| i.kind.as_str() == kind && i.item_id == item)
    else {
        return Err(ApiError::NotFound);
    };
    let decided = match body.decision.as_str() {
        "release" => ItemDecision::Release,
        "withhold" => ItemDecision::Withhold(
            body.legal_reason
                .as_deref()
                .map(str::trim)
                .unwrap_or_default()
                .to_owned(),
        ),
        "release-muted" => {
            let mut ranges = Vec::with_capacity(body.muted.len());
            for [s, e] in &body.muted {
                if !(s.is_finite() && e.is_finite() && *s >= 0.0 && *e >= 0.0) {
                    return Err(ApiError::Invalid("muted ranges are seconds ≥ 0"));
                }
                ranges.push(((s * 1000.0).round() as u64, (e * 1000.0).round() as u64));
            }
            ItemDecision::ReleaseMuted(ranges)
        }
        _ => {
            return Err(ApiError::Invalid(
                "decision is release, withhold or release-muted",
            ))
        }
    };
    let loaded = load_items(src, vec![stored]).await?;
    let Some(one) = loaded.first() else {
        return Err(ApiError::Internal);
    };
    if let Err(problem) = decision(&decided).validate(&one.found) {
        return Err(ApiError::InvalidText(problem.to_string()));
    }
    let reason = match &decided {
        ItemDecision::Release => "release".to_owned(),
        ItemDecision::Withhold(why) => format!("withhold: {why}"),
        ItemDecision::ReleaseMuted(r) => format!("release-muted: {} ranges", r.len()),
    };
    src.audit(
        &caller,
        "access-request-decision",
        &format!("access-request:{id}/{kind}/{item}"),
        Some(&reason),
        None,
    )
    .await?;
    src.store
        .decide_access_item(id, one.item.kind, &item, &decided, &caller.login, src.now())
        .await
        .map_err(store_error)?;
    Ok(Json(detail(src, id).await?))
}

/// Extends the deadline with the reason told to the requester (forvaltningsloven § 16(2)
/// notice; GDPR art. 12(3): at most two further months).
#[utoipa::path(post, path = "/api/access-requests/{id}/extend", tag = TAG, request_body = ExtendBody,
    params(("id" = i64, Path, description = "the request")),
    responses(
        (status = 200, description = "the request", body = AccessRequestDetail),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not handle access requests", body = ErrorBody),
        (status = 404, description = "no such request", body = ErrorBody),
        (status = 422, description = "not later, beyond the GDPR limit, or no reason", body = ErrorBody)))]
pub(crate) async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Json<AccessRequestDetail>, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::AccessRequests)?;
    let r = request(src, id).await?;
    let until: Date = body
        .until
        .trim()
        .parse()
        .map_err(|_| ApiError::Invalid("until is YYYY-MM-DD"))?;
    let mut m = model(&r);
    m.extend(until, &body.reason, &src.deadlines())
        .map_err(|e| ApiError::InvalidText(e.to_string()))?;
    src.audit(
        &caller,
        "access-request-extend",
        &format!("access-request:{id}"),
        Some(&format!("{until}: {}", body.reason.trim())),
        None,
    )
    .await?;
    src.store
        .extend_access_request(id, until, body.reason.trim())
        .await
        .map_err(store_error)?;
    Ok(Json(detail(src, id).await?))
}

/// Closes a request (answered, withdrawn or merged): its holds are lifted (the citizen's and
/// those of items added by hand), reminders stop.
#[utoipa::path(post, path = "/api/access-requests/{id}/close", tag = TAG,
    params(("id" = i64, Path, description = "the request")),
    responses(
        (status = 204, description = "closed (and audited)"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not handle access requests", body = ErrorBody),
        (status = 404, description = "no such request", body = ErrorBody)))]
pub(crate) async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::AccessRequests)?;
    request(src, id).await?;
    src.audit(
        &caller,
        "access-request-close",
        &format!("access-request:{id}"),
        None,
        None,
    )
    .await?;
    src.store
        .set_access_state(id, AccessState::Closed, &caller.login, src.now())
        .await
        .map_err(store_error)?;
    // The store lifts the request's own hold (the citizen's CPR); the holds on items added
    // by hand (a relative's call) go with it.
    let reason = item_hold_reason(id);
    for hold in src.store.holds(true).await.map_err(store_error)? {
        if hold.reason == reason {
            src.store
                .lift_hold(hold.id, &caller.login, src.now())
                .await
                .map_err(store_error)?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The archive for the requester (a ZIP): `indeks.txt`, the human-readable index of every
/// item and decision, and the released audio as WAV, muted where decided. Only when every
/// item has a valid decision (409 lists what is missing); marks the request answered.
#[utoipa::path(get, path = "/api/access-requests/{id}/archive", tag = TAG,
    params(("id" = i64, Path, description = "the request")),
    responses(
        (status = 200, description = "application/zip", content_type = "application/zip"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role does not handle access requests", body = ErrorBody),
        (status = 404, description = "no such request", body = ErrorBody),
        (status = 409, description = "items without a valid decision", body = ErrorBody)))]
pub(crate) async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let src = state.records()?;
    src.require(&caller, Permission::AccessRequests)?;
    let r = request(src, id).await?;
    let items = src.store.access_items(id).await.map_err(store_error)?;
    let loaded = load_items(src, items).await?;
    let mut m = model(&r);
    let review: Vec<(FoundItem, Option<Decision>)> = loaded
        .iter()
        .map(|l| (l.found.clone(), l.item.decision.as_ref().map(decision)))
        .collect();
    if let Err(missing) = m.ready_to_export(&review) {
        return Err(ApiError::Refused(format!(
            "{} item(s) still need a valid decision (numbers {})",
            missing.len(),
            missing
                .iter()
                .map(|m| m.item.0.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let _ = m.mark_reviewed(&review);
    let mut decided: Vec<(FoundItem, Decision)> = Vec::with_capacity(loaded.len());
    let mut audio: Vec<(String, MeasuredWav)> = Vec::new();
    for l in &loaded {
        let Some(d) = l.item.decision.as_ref().map(decision) else {
            return Err(ApiError::Internal);
        };
        if let (Some(rec), false) = (&l.recording, matches!(d, Decision::Withhold { .. })) {
            let muted = match &d {
                Decision::ReleaseMuted { ranges } => ranges.clone(),
                _ => Vec::new(),
            };
            let wav = measure_wav(src, rec, muted, true).await?;
            let name = format!(
                "lyd/{:02}-{}-{}.wav",
                l.found.id.0,
                l.found
                    .kind
                    .describe()
                    .split(' ')
                    .next()
                    .unwrap_or("emne")
                    .to_lowercase(),
                l.found.at.strftime("%Y%m%d-%H%M")
            );
            audio.push((name, wav));
        }
        decided.push((l.found.clone(), d));
    }
    let index = index_text(&m, &decided, None);
    let mut entries = vec![crate::zipstream::Entry {
        name: "indeks.txt".into(),
        size: index.len() as u64,
        crc: crc32fast::hash(index.as_bytes()),
    }];
    for (name, wav) in &audio {
        entries.push(crate::zipstream::Entry {
            name: name.clone(),
            size: wav.size,
            crc: wav.crc.ok_or(ApiError::Internal)?,
        });
    }
    // Entries dated now, in the centre's local time (as the index is).
    let plan = crate::zipstream::Plan::new(entries, (src.clock)().datetime())
        .map_err(|e| ApiError::Refused(e.to_string()))?;
    let length = plan.len();
    src.audit(
        &caller,
        "access-request-export",
        &format!("access-request:{id}"),
        Some(&format!(
            "{} items, {} audio files",
            decided.len(),
            audio.len()
        )),
        Some(&r.cpr),
    )
    .await?;
    // The request is answered once the whole archive is written out (before its last piece
    // leaves, so a client that has it all sees the new state); a transfer cut short leaves it
    // as it was.
    let answer = (r.state != AccessState::Answered && r.state != AccessState::Closed)
        .then(|| (src.store.clone(), caller.login.clone(), src.now()));
    let runtime = tokio::runtime::Handle::current();
    // Streamed: the WAVs are decrypted again as the archive goes out, one piece at a time.
    let zip = crate::stream::blocking_body("access-request archive", move |out| {
        plan.write(out, |i, w| match i.checked_sub(1) {
            None => w.write_all(index.as_bytes()),
            Some(n) => {
                let wav = &audio.get(n).ok_or(std::io::ErrorKind::InvalidInput)?.1;
                std::io::copy(&mut wav.stream()?, w).map(drop)
            }
        })?;
        if let Some((store, login, at)) = answer {
            runtime
                .block_on(store.set_access_state(id, AccessState::Answered, &login, at))
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    });
    let disposition = format!("attachment; filename=\"aktindsigt-{id}.zip\"");
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/zip")),
            (CONTENT_LENGTH, HeaderValue::from(length)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(|_| ApiError::Internal)?,
            ),
        ],
        zip,
    )
        .into_response())
}

/// Today's reminders: the open requests due soon or overdue (for the records page and the
/// binary's daily log line).
pub fn reminders(
    requests: &[StoredAccessRequest],
    today: Date,
    params: &kald_recordings::access::DeadlineParams,
) -> Vec<kald_recordings::access::Reminder> {
    requests
        .iter()
        .flat_map(|r| model(r).reminders(today, params))
        .collect()
}

/// The records management gauges for `/metrics`: access requests open, due soon and overdue
/// (as of today's reminders), documents waiting for the case system, recordings kept for the
/// journal, active holds. Empty when the store does not answer (logged).
pub(crate) async fn records_metrics(src: &RecordsSource) -> String {
    let requests = match src.store.access_requests(true).await {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(%error, "records metrics: the store failed");
            return String::new();
        }
    };
    let counts = match src.store.records_counts().await {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "records metrics: the store failed");
            return String::new();
        }
    };
    let today = (src.clock)().date();
    let (mut due_soon, mut overdue) = (0u64, 0u64);
    for reminder in reminders(&requests, today, &src.deadlines()) {
        match reminder.kind {
            ReminderKind::DueSoon { .. } => due_soon += 1,
            ReminderKind::Overdue { .. } => overdue += 1,
        }
    }
    let gauges = [
        ("kald_access_requests_open", "Access requests not yet closed.", requests.len() as u64),
        ("kald_access_requests_due_soon", "Open access requests whose deadline is in the reminder days (today's reminders).", due_soon),
        ("kald_access_requests_overdue", "Open access requests past their deadline (on a working day).", overdue),
        ("kald_journal_documents_pending", "Documents for the case system not yet acknowledged.", counts.journal_pending),
        ("kald_journal_documents_failing", "Pending documents that failed at least once.", counts.journal_failing),
        ("kald_recordings_awaiting_journal", "Recordings linked to a case and not yet acknowledged by the case system (kept past their deadline).", counts.recordings_awaiting_journal),
        ("kald_holds_active", "Holds not lifted.", counts.holds_active),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    }
    out
}

/// `Zoned` is used by the clock type in signatures.
#[allow(dead_code)]
type _Zoned = Zoned;
