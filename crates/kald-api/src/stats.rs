//! Key figures from the store's queue log: `/api/stats` and today's figures per queue.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::civil::Date;
use kald_acd::stats::{key_figures, to_csv, Figures, KeyFigures, LogEvent, StatsParams};
use kald_store::StoredQueueEvent;
use serde::Deserialize;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::model::{ErrorBody, QueueFigures, Snapshot};
use crate::routes::{SEE_CALLS, TAG};
use crate::state::AppState;

/// Where key figures come from: the store's queue log and the figures' parameters.
#[derive(Clone, Debug)]
pub struct StatsSource {
    /// The store whose `queue_events` are read.
    pub store: kald_store::Store,
    /// Short abandon, service-level time and the time zone of days and hours.
    pub params: StatsParams,
}

/// The longest range `/api/stats` computes, in days.
const MAX_DAYS: i32 = 366;

/// Key figures by queue name.
pub(crate) type ByQueue = Arc<BTreeMap<String, QueueFigures>>;

/// Today's figures per queue, cached for [`crate::Settings::stats_cache`].
#[derive(Default)]
pub(crate) struct StatsCache {
    /// When computed, for which day, the figures by queue.
    entry: tokio::sync::Mutex<Option<(Instant, Date, ByQueue)>>,
}

impl From<&Figures> for QueueFigures {
    fn from(f: &Figures) -> Self {
        Self {
            offered: f.offered,
            answered: f.answered,
            abandoned: f.abandoned + f.short_abandons,
            answer_rate: f.answer_rate,
            service_level: f.service_level,
            average_wait_s: f.average_wait.map(|d| d.as_secs_f64()),
            settled_first_contact: f.settled_first_contact_rate,
        }
    }
}

impl AppState {
    /// Today's figures per queue (the snapshot's day in the figures' time zone), if
    /// statistics are configured and the store answers; cached a few seconds.
    pub(crate) async fn today(&self, snapshot: &Snapshot) -> Option<ByQueue> {
        let source = self.inner.stats.as_ref()?;
        let day = snapshot.at.to_zoned(source.params.time_zone.clone()).date();
        let mut entry = self.inner.stats_cache.entry.lock().await;
        if let Some((at, cached_day, figures)) = entry.as_ref() {
            if *cached_day == day && at.elapsed() < self.inner.settings.stats_cache {
                return Some(figures.clone());
            }
        }
        let figures = compute(source, day, day).await.ok()?;
        let by_queue: ByQueue = Arc::new(
            figures
                .by_queue
                .iter()
                .map(|(queue, f)| (queue.clone(), QueueFigures::from(f)))
                .collect(),
        );
        *entry = Some((Instant::now(), day, by_queue.clone()));
        Some(by_queue)
    }
}

/// The key figures of the days `from..=to` (local days of the figures' time zone).
async fn compute(source: &StatsSource, from: Date, to: Date) -> Result<KeyFigures, ApiError> {
    let tz = &source.params.time_zone;
    let start = from
        .to_zoned(tz.clone())
        .map_err(|_| ApiError::BadQuery("date out of range"))?
        .timestamp();
    let end = to
        .tomorrow()
        .and_then(|d| d.to_zoned(tz.clone()))
        .map_err(|_| ApiError::BadQuery("date out of range"))?
        .timestamp();
    let rows = source
        .store
        .queue_events(start, end)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "reading the queue log for statistics failed");
            ApiError::NoStats
        })?;
    let events: Vec<LogEvent> = rows.into_iter().map(log_event).collect();
    let params = source.params.clone();
    tokio::task::spawn_blocking(move || key_figures(&events, &params))
        .await
        .map_err(|_| ApiError::Internal)
}

/// A stored queue event as the key figures read it (JSON data values as strings).
fn log_event(stored: StoredQueueEvent) -> LogEvent {
    let row = stored.row;
    let data = match row.data {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter_map(|(key, value)| {
                let text = match value {
                    serde_json::Value::Null => return None,
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                Some((key, text))
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    LogEvent {
        at: row.at,
        call: row.call_id,
        queue: row.queue,
        agent: row.agent,
        event: row.event,
        data,
    }
}

/// The query of `/api/stats`.
#[derive(Deserialize)]
struct StatsQuery {
    /// First day.
    from: String,
    /// Last day (inclusive).
    to: String,
    /// `json` or `csv`.
    format: Option<String>,
}

/// Key figures for a date range (team leaders, supervisors, administrators), JSON or CSV:
/// in total and by queue, topic, local hour and local day (see `kald_acd::stats`).
#[utoipa::path(get, path = "/api/stats", tag = TAG,
    params(
        ("from" = String, Query, description = "first day, YYYY-MM-DD (Copenhagen)"),
        ("to" = String, Query, description = "last day, YYYY-MM-DD (inclusive; at most 366 days)"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
    responses(
        (status = 200, description = "the key figures (JSON object, or text/csv)", body = Object),
        (status = 400, description = "invalid dates or format", body = ErrorBody),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role sees no figures", body = ErrorBody),
        (status = 503, description = "no statistics source, or the store failed", body = ErrorBody)))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Response, ApiError> {
    caller.require(SEE_CALLS)?;
    let Query(query) = Query::<StatsQuery>::try_from_uri(&uri)
        .map_err(|_| ApiError::BadQuery("expected from=YYYY-MM-DD&to=YYYY-MM-DD"))?;
    let parse = |s: &str| {
        s.parse::<Date>()
            .map_err(|_| ApiError::BadQuery("from and to must be dates, YYYY-MM-DD"))
    };
    let (from, to) = (parse(&query.from)?, parse(&query.to)?);
    if to < from {
        return Err(ApiError::BadQuery("to is before from"));
    }
    if from
        .until(to)
        .map_or(true, |span| span.get_days() >= MAX_DAYS)
    {
        return Err(ApiError::BadQuery("at most 366 days"));
    }
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::BadQuery("format is json or csv")),
    };
    let source = state.inner.stats.as_ref().ok_or(ApiError::NoStats)?;
    let figures = compute(source, from, to).await?;
    if !csv {
        return Ok(Json(figures).into_response());
    }
    let disposition = format!("attachment; filename=\"kald-stats-{from}-{to}.csv\"");
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(|_| ApiError::Internal)?,
            ),
        ],
        to_csv(&figures),
    )
        .into_response())
}
