//! The shared state of the handlers.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::{Accounts, Sessions, Throttle};
use crate::error::ApiError;
use crate::model::{Command, MetricsFn, Snapshot, User};
use crate::stats::StatsCache;
use crate::{Backend, Settings, StatsSource};

/// What every handler shares: the backend's channels, sessions, settings.
#[derive(Clone)]
pub(crate) struct AppState {
    /// Behind one `Arc`, so cloning per request is cheap.
    pub(crate) inner: Arc<Inner>,
}

/// The shared parts.
pub(crate) struct Inner {
    /// The SIP loop's live state.
    pub(crate) snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Commands to the SIP loop.
    pub(crate) commands: mpsc::Sender<(Command, oneshot::Sender<crate::Reply>)>,
    /// Who may log in, as the binary last sent it.
    pub(crate) users: watch::Receiver<Arc<Vec<User>>>,
    /// The accounts built from that list (rebuilt when it changes; see
    /// [`AppState::accounts`]).
    pub(crate) accounts: Mutex<(Arc<Vec<User>>, Arc<Accounts>)>,
    /// Key figures from the store.
    pub(crate) stats: Option<StatsSource>,
    /// Today's figures per queue, cached.
    pub(crate) stats_cache: StatsCache,
    /// Prometheus text.
    pub(crate) metrics: MetricsFn,
    /// Recordings, links, access requests and the audit log.
    pub(crate) records: Option<crate::RecordsSource>,
    /// Counts changes to listening grants and requests, so the live-event streams can tell
    /// the pages to look again (an agent sees a team leader's request at once).
    pub(crate) records_changed: watch::Sender<u64>,
    /// Live sessions (never held across an await).
    pub(crate) sessions: Mutex<Sessions>,
    /// Failed log-ins.
    pub(crate) throttle: Mutex<Throttle>,
    /// Timeouts and limits.
    pub(crate) settings: Settings,
    /// Ends push streams at shutdown.
    pub(crate) shutdown: CancellationToken,
    /// The OpenAPI document as JSON.
    pub(crate) openapi_json: String,
}

impl AppState {
    /// Builds the state from the backend.
    pub(crate) fn new(
        backend: Backend,
        settings: Settings,
        shutdown: CancellationToken,
        openapi_json: String,
    ) -> Self {
        let users = backend.users.borrow().clone();
        Self {
            inner: Arc::new(Inner {
                snapshot: backend.snapshot,
                commands: backend.commands,
                accounts: Mutex::new((
                    Arc::clone(&users),
                    Arc::new(Accounts::new(users.as_ref().clone())),
                )),
                users: backend.users,
                stats: backend.stats,
                stats_cache: StatsCache::default(),
                metrics: backend.metrics,
                records: backend.records,
                records_changed: watch::Sender::new(0),
                sessions: Mutex::new(Sessions::default()),
                throttle: Mutex::new(Throttle::default()),
                settings,
                shutdown,
                openapi_json,
            }),
        }
    }

    /// The accounts of the users the binary last sent. When the list changed since the last
    /// call, the accounts are rebuilt and the sessions of users who were removed or whose
    /// password or role changed end (they must log in again, or cannot).
    pub(crate) fn accounts(&self) -> Result<Arc<Accounts>, ApiError> {
        let current = self.inner.users.borrow().clone();
        let mut cached = self.inner.accounts.lock().map_err(|_| ApiError::Internal)?;
        if !Arc::ptr_eq(&cached.0, &current) {
            let fresh = Arc::new(Accounts::new(current.as_ref().clone()));
            let changed = cached.1.changed_logins(&fresh);
            if !changed.is_empty() {
                let ended = self
                    .inner
                    .sessions
                    .lock()
                    .map_err(|_| ApiError::Internal)?
                    .end_for(&changed);
                tracing::info!(
                    users = changed.len(),
                    sessions = ended,
                    "users removed or changed: their sessions ended"
                );
            }
            *cached = (current, fresh);
        }
        Ok(Arc::clone(&cached.1))
    }

    /// Tells the live-event streams that grants or listen requests changed.
    pub(crate) fn records_changed(&self) {
        self.inner
            .records_changed
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.borrow().clone()
    }

    /// Sends a command to the SIP loop and waits for its reply (at most the command timeout).
    pub(crate) async fn execute(&self, command: Command) -> Result<(), ApiError> {
        let (tx, rx) = oneshot::channel();
        let timeout = self.inner.settings.command_timeout;
        let exchange = async {
            self.inner
                .commands
                .send((command, tx))
                .await
                .map_err(|_| ApiError::Unavailable)?;
            rx.await.map_err(|_| ApiError::Unavailable)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(message))) => Err(ApiError::Refused(message)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ApiError::Unavailable),
        }
    }
}
