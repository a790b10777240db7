//! `GET /api/events`: the push channel (Server-Sent Events).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt as _};
use tokio::time::Instant;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::model::{ErrorBody, LiveView};
use crate::routes::{SEE_QUEUES, TAG};
use crate::state::AppState;
use crate::view;

/// The live state for the caller's role: an `event: snapshot` with a [`LiveView`] at once and
/// after every change (at most one per push interval, 250 ms by default), an `event: records`
/// (data: a change counter, nothing else) when listening grants or requests changed, so a page
/// looks again; keep-alive comments every 15 s; the stream ends when the session ends or kald
/// shuts down.
#[utoipa::path(get, path = "/api/events", tag = TAG,
    responses(
        (status = 200, description = "text/event-stream of `snapshot` events (and `records` when listening grants or requests change)", body = LiveView, content_type = "text/event-stream"),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "the role sees no live state", body = ErrorBody)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(SEE_QUEUES)?;
    let settings = &state.inner.settings;
    let keep_alive = KeepAlive::new().interval(settings.keep_alive);
    let shutdown = state.inner.shutdown.clone();
    let mut rx = state.inner.snapshot.clone();
    rx.mark_changed();
    let records = state.inner.records_changed.subscribe();
    let caller = Arc::new(caller);
    let stream = stream::unfold(
        (rx, records, state, caller, None::<Instant>),
        |(mut rx, mut records, state, caller, last)| async move {
            if let Some(last) = last {
                tokio::time::sleep_until(last + state.inner.settings.push_interval).await;
            }
            let records_first = tokio::select! {
                biased;
                changed = rx.changed() => { changed.ok()?; false }
                changed = records.changed() => { changed.ok()?; true }
            };
            let live = state.inner.sessions.lock().ok()?.is_live(
                &caller.token,
                Instant::now(),
                state.inner.settings.session_idle,
            );
            if !live {
                return None;
            }
            if records_first {
                let count = *records.borrow_and_update();
                let event = Event::default().event("records").data(count.to_string());
                return Some((
                    Ok(event),
                    (rx, records, state, caller, Some(Instant::now())),
                ));
            }
            let snapshot = rx.borrow_and_update().clone();
            let today = if crate::routes::SEE_CALLS.contains(&caller.role) {
                state.today(&snapshot).await
            } else {
                None
            };
            let view = view::live(&snapshot, &caller, today.as_deref());
            let event = match Event::default().event("snapshot").json_data(&view) {
                Ok(event) => event,
                Err(_) => Event::default().comment("unserialisable snapshot"),
            };
            Some((
                Ok(event),
                (rx, records, state, caller, Some(Instant::now())),
            ))
        },
    )
    .take_until(shutdown.cancelled_owned());
    Ok(Sse::new(stream).keep_alive(keep_alive))
}
