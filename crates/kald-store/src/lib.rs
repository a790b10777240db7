//! Storage for kald: agents and their states, queue events, call records and recordings.
//!
//! One [`Store`] type serves two databases with one codebase:
//!
//! - **SQLite** (`sqlite://path/to/kald.db`, or [`Store::open_data_dir`]): the embedded default
//!   for one machine. The file is created when missing and runs in WAL mode with foreign keys
//!   on.
//! - **PostgreSQL** (`postgres://user:password@host/db`): one database shared by several kald
//!   instances.
//!
//! Every query is runtime-checked `sqlx::query` text that both databases accept (`$1`
//! placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING`), so no query is written twice.
//! The schema is written twice, in `migrations/sqlite` and `migrations/postgres`, because the
//! column types differ (`INTEGER`/`BLOB` against `BIGINT`/`BYTEA`, `AUTOINCREMENT` against
//! `GENERATED ALWAYS AS IDENTITY`); the two sets must stay in step, one file per version each.
//! [`Store::open`] runs the pending migrations. Timestamps are stored as microseconds since
//! the Unix epoch (UTC) in both databases (columns ending in `_us`), so comparisons and
//! ordering are the same everywhere; values are stored to the microsecond.
//!
//! # CPR numbers
//!
//! A call's CPR number is stored only as [`CprKeys::seal`] bytes plus the keyed
//! [`CprKeys::lookup_hash`] (indexed, for [`Store::calls_by_cpr`]); it is bound as a parameter,
//! never written into SQL text, and never part of an error. The store holds the [`CprKeys`] it
//! was opened with and opens sealed values when reading.
//!
//! # Recordings
//!
//! The recordings catalogue (`recordings`, `holds`, `tombstones`; see the `recordings` module
//! and [`Store::insert_recording`] onwards) stores a recording's CPR number the same way. A
//! recording is held while an active hold names it, its call or its citizen's CPR hash; the
//! store never deletes a held recording ([`Store::delete_recordings`] checks in the deleting
//! statement). Deletion leaves a [`Tombstone`] with the CPR's look-up hash, never the sealed
//! number; [`Store::withdraw_consent`] deletes a call's recordings without tombstones.
//!
//! # Audit log
//!
//! `audit_log` (see the [`audit`] module for the chain, its encoding and the anchor, [`Store::append_audit`] and [`Store::verify_audit`])
//! is a hash chain of audited actions (who, when, what, why; a citizen by CPR look-up hash
//! only). The store has no method to alter or delete a row, except the retention purge of the
//! oldest rows ([`Store::purge_audit_before`]), which moves the chain's anchor.
//!
//! This crate does I/O (it is the only crate with a database); its methods are `async` and run
//! on tokio.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kald_core::{Cpr, CprKeys, ProtectError};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

#[macro_use]
mod rows;

pub use rows::{
    AgentRow, AgentStateRow, CallEnd, CallRecord, CallRow, HoldRow, HoldTarget, JournalState,
    NewRecording, QueueEventRow, Recording, RecordingFile, RecordingKind, RecordingState,
    StoredQueueEvent, SweepCursor, SweepItem, Tombstone,
};

use rows::{RawAgent, RawAgentState, RawCall, RawQueueEvent, RawSkill};

/// The SQLite schema, embedded at build time.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
/// The PostgreSQL schema, embedded at build time.
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The file name of the SQLite database inside a data directory.
pub const SQLITE_FILE: &str = "kald.db";

/// Which database a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file, embedded in the process.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// Why a store operation failed; names the operation, never personal data or the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:` (the URL is not shown: it may
    /// hold a password).
    #[error("unsupported database URL: expected sqlite://… or postgres://…")]
    UnsupportedUrl,
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Connecting to or creating the database failed.
    #[error("cannot open the {backend} database: {source}")]
    Open {
        /// The database kind.
        backend: Backend,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// Running the schema migrations failed.
    #[error("cannot migrate the {backend} database: {source}")]
    Migrate {
        /// The database kind.
        backend: Backend,
        /// The migrator's error.
        source: MigrateError,
    },
    /// A query failed.
    #[error("database error while trying to {action}: {source}")]
    Query {
        /// What the store was doing, e.g. "insert a call".
        action: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The call to update does not exist.
    #[error("no call with id {id}")]
    NoSuchCall {
        /// kald's opaque call id.
        id: String,
    },
    /// A stored value cannot be what kald wrote (a bad level, timestamp or JSON text).
    #[error("stored {what} is invalid: {reason}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The recording to update or read does not exist.
    #[error("no recording with id {id}")]
    NoSuchRecording {
        /// kald's random recording id.
        id: String,
    },
    /// The recording is no longer being recorded (already closed or truncated).
    #[error("recording {id} is already {state}")]
    NotRecording {
        /// kald's random recording id.
        id: String,
        /// Its state.
        state: RecordingState,
    },
    /// The call's caller withdrew consent: none of its audio may be catalogued.
    #[error("consent to record call {call} was withdrawn")]
    ConsentWithdrawn {
        /// kald's opaque call id.
        call: String,
    },
    /// There is no hold with this id.
    #[error("no hold with id {id}")]
    NoSuchHold {
        /// The hold's id.
        id: i64,
    },
    /// A recording's sealed CPR number cannot be opened (altered, or its key is missing).
    #[error("the stored CPR number of recording {recording} cannot be opened: {source}")]
    RecordingCpr {
        /// kald's random recording id.
        recording: String,
        /// Why opening failed; contains no digits.
        source: ProtectError,
    },
    /// There is no access request with this number.
    #[error("no access request {id}")]
    NoSuchAccessRequest {
        /// The request's number.
        id: i64,
    },
    /// The access request has no such item.
    #[error("access request {id} has no item {item}")]
    NoSuchAccessItem {
        /// The request's number.
        id: i64,
        /// The item's id.
        item: String,
    },
    /// An access request's sealed CPR number cannot be opened.
    #[error("the stored CPR number of access request {id} cannot be opened: {source}")]
    AccessRequestCpr {
        /// The request's number.
        id: i64,
        /// Why opening failed; contains no digits.
        source: ProtectError,
    },
    /// A call's sealed CPR number cannot be opened (altered, or its key is missing).
    #[error("the stored CPR number of call {call} cannot be opened: {source}")]
    Cpr {
        /// kald's opaque call id.
        call: String,
        /// Why opening failed; contains no digits.
        source: ProtectError,
    },
    /// There is no live journal link with this id (unknown, or removed).
    #[error("no live journal link with id {id}")]
    NoSuchJournalLink {
        /// The link's id.
        id: i64,
    },
    /// There is no journal export (outbox row) with this id.
    #[error("no journal export with id {id}")]
    NoSuchJournalExport {
        /// The row's id.
        id: i64,
    },
    /// The recording cannot be journalised under that link.
    #[error("recording {recording} cannot be journalised: {reason}")]
    NotJournalisable {
        /// kald's random recording id.
        recording: String,
        /// Why not (the recording is still being recorded, or is of another call).
        reason: &'static str,
    },
}

/// The connection pool of either backend.
#[derive(Clone, Debug)]
enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the store has: `on_pool!(self, |pool| body)`.
///
/// The body is compiled once per backend, so it may use `pool` with any generic sqlx API.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

pub mod audit;
mod bindings;
mod journal;
mod recordings;
mod records;
mod retention;

pub use audit::{
    AuditEntry, AuditFilter, AuditProblem, AuditRow, AuditVerification, AUDIT_PAGE, GENESIS,
};
pub use bindings::SipBindingRow;
pub use journal::{
    JournalExport, JournalExportState, JournalLink, JournalTarget, UnknownJournalName,
};
pub use recordings::DELETE_BATCH;
pub use records::{
    AccessItem, AccessItemKind, AccessLaw, AccessState, CallSearch, GrantState, ItemDecision,
    ListenGrant, NewAccessRequest, RecordsCounts, StoredAccessRequest, SEARCH_LIMIT,
};
pub use retention::{CallPiiCursor, CallPiiItem};

/// The database of agents, queue events, calls and recordings; cheap to clone (a pool and shared keys).
#[derive(Clone)]
pub struct Store {
    /// The connection pool.
    pool: Pool,
    /// The keys that seal and hash CPR numbers.
    keys: Arc<CprKeys>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The query-error mapper for `action`.
fn query(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { action, source }
}

/// Microseconds since the Unix epoch, as stored.
fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// A stored microsecond count as a timestamp.
fn timestamp(us: i64, what: &'static str) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us).map_err(|_| StoreError::Corrupt {
        what,
        reason: "timestamp out of range",
    })
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// `sqlite://path/to/kald.db` (or `sqlite:path`) opens or creates an SQLite file in WAL
    /// mode with foreign keys on; `postgres://…` or `postgresql://…` connects to PostgreSQL
    /// (the database must exist). `keys` seal and hash CPR numbers.
    pub async fn open(url: &str, keys: CprKeys) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let options =
                SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Open {
                    backend: Backend::Sqlite,
                    source,
                })?;
            Self::open_sqlite(options, keys).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|source| StoreError::Open {
                    backend: Backend::Postgres,
                    source,
                })?;
            POSTGRES_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|source| StoreError::Migrate {
                    backend: Backend::Postgres,
                    source,
                })?;
            Ok(Self {
                pool: Pool::Postgres(pool),
                keys: Arc::new(keys),
            })
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// Opens the embedded default: SQLite at `dir/kald.db`, creating the directory and file.
    pub async fn open_data_dir(dir: &Path, keys: CprKeys) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.into(),
            source,
        })?;
        Self::open_sqlite(
            SqliteConnectOptions::new().filename(dir.join(SQLITE_FILE)),
            keys,
        )
        .await
    }

    /// Opens an SQLite database with kald's settings and migrates it.
    async fn open_sqlite(options: SqliteConnectOptions, keys: CprKeys) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                backend: Backend::Sqlite,
                source,
            })?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: Backend::Sqlite,
                source,
            })?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
            keys: Arc::new(keys),
        })
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection (SQLite checkpoints its write-ahead log); later calls fail.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }

    // --- agents -------------------------------------------------------------------------

    /// Inserts the agent or replaces its name and skills (in one transaction).
    pub async fn upsert_agent(&self, agent: &AgentRow) -> Result<(), StoreError> {
        const ACTION: &str = "save an agent";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            sqlx::query(
                "INSERT INTO agents (id, display_name) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name",
            )
            .bind(&agent.id)
            .bind(&agent.display_name)
            .execute(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            sqlx::query("DELETE FROM agent_skills WHERE agent_id = $1")
                .bind(&agent.id)
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            for (queue, level) in &agent.skills {
                sqlx::query(
                    "INSERT INTO agent_skills (agent_id, queue, level) VALUES ($1, $2, $3)",
                )
                .bind(&agent.id)
                .bind(queue)
                .bind(i64::from(*level))
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            }
            tx.commit().await.map_err(query(ACTION))
        })
    }

    /// Every agent with its skills, ordered by id (skills by queue).
    pub async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        const ACTION: &str = "read the agents";
        let (agents, skills) = on_pool!(self, |pool| {
            let agents: Vec<RawAgent> =
                sqlx::query_as("SELECT id, display_name FROM agents ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .map_err(query(ACTION))?;
            let skills: Vec<RawSkill> = sqlx::query_as(
                "SELECT agent_id, queue, level FROM agent_skills ORDER BY agent_id, queue",
            )
            .fetch_all(pool)
            .await
            .map_err(query(ACTION))?;
            (agents, skills)
        });
        rows::agents_with_skills(agents, skills)
    }

    /// Records the agent's current state (e.g. "available", "paused" with a reason) and since
    /// when, replacing the previous one, so a restart can restore it.
    pub async fn save_agent_state(
        &self,
        agent: &str,
        state: &str,
        reason: Option<&str>,
        since: Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO agent_states (agent_id, state, reason, since_us) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, \
                 reason = excluded.reason, since_us = excluded.since_us",
            )
            .bind(agent)
            .bind(state)
            .bind(reason)
            .bind(micros(since))
            .execute(pool)
            .await
            .map_err(query("save an agent state"))
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The last saved state of every agent, ordered by agent id.
    pub async fn agent_states(&self) -> Result<Vec<AgentStateRow>, StoreError> {
        let raw: Vec<RawAgentState> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT agent_id, state, reason, since_us FROM agent_states ORDER BY agent_id",
            )
            .fetch_all(pool)
            .await
            .map_err(query("read the agent states"))?
        });
        raw.into_iter().map(RawAgentState::into_row).collect()
    }

    // --- queue events -------------------------------------------------------------------

    /// Appends one queue event and returns its id (ids grow in append order).
    pub async fn append_queue_event(&self, event: &QueueEventRow) -> Result<i64, StoreError> {
        const ACTION: &str = "append a queue event";
        let data = event.data.to_string();
        on_pool!(self, |pool| {
            sqlx::query_scalar(INSERT_QUEUE_EVENT)
                .bind(micros(event.at))
                .bind(&event.call_id)
                .bind(&event.queue)
                .bind(&event.agent)
                .bind(&event.event)
                .bind(&data)
                .fetch_one(pool)
                .await
                .map_err(query(ACTION))
        })
    }

    /// Appends a burst of queue events in one transaction (all or none); returns their ids in
    /// order.
    pub async fn append_queue_events(
        &self,
        events: &[QueueEventRow],
    ) -> Result<Vec<i64>, StoreError> {
        const ACTION: &str = "append queue events";
        let mut ids = Vec::with_capacity(events.len());
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            for event in events {
                let id: i64 = sqlx::query_scalar(INSERT_QUEUE_EVENT)
                    .bind(micros(event.at))
                    .bind(&event.call_id)
                    .bind(&event.queue)
                    .bind(&event.agent)
                    .bind(&event.event)
                    .bind(event.data.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(query(ACTION))?;
                ids.push(id);
            }
            tx.commit().await.map_err(query(ACTION))?;
        });
        Ok(ids)
    }

    /// The queue events with `from <= at < to`, ordered by id (append order).
    pub async fn queue_events(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredQueueEvent>, StoreError> {
        let raw: Vec<RawQueueEvent> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at_us, call_id, queue, agent_id, event, data FROM queue_events \
                 WHERE at_us >= $1 AND at_us < $2 ORDER BY id",
            )
            .bind(micros(from))
            .bind(micros(to))
            .fetch_all(pool)
            .await
            .map_err(query("read queue events"))?
        });
        raw.into_iter().map(RawQueueEvent::into_row).collect()
    }

    // --- calls --------------------------------------------------------------------------

    /// Inserts a new call record; its CPR number, if any, is sealed and hashed.
    pub async fn insert_call(&self, call: &CallRow) -> Result<(), StoreError> {
        let (sealed, hash) = self.protect(call.cpr.as_ref());
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO calls (id, started_us, caller, entry_point, flow_version, consent, \
                 consent_at_us, topic, queue, cpr_sealed, cpr_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&call.id)
            .bind(micros(call.started))
            .bind(&call.caller)
            .bind(&call.entry_point)
            .bind(&call.flow_version)
            .bind(call.consent)
            .bind(call.consent_at.map(micros))
            .bind(&call.topic)
            .bind(&call.queue)
            .bind(&sealed)
            .bind(&hash)
            .execute(pool)
            .await
            .map_err(query("insert a call"))
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Stores the CPR number the caller typed in (sealed and hashed), replacing any earlier
    /// unless the agent has corrected it ([`Store::correct_call_cpr`]).
    pub async fn set_call_cpr(&self, id: &str, cpr: &Cpr) -> Result<(), StoreError> {
        let (sealed, hash) = self.protect(Some(cpr));
        let done = on_pool!(self, |pool| {
            // A number the agent corrected after verifying the caller stays.
            sqlx::query(
                "UPDATE calls SET \
                 cpr_sealed = CASE WHEN cpr_corrected_us IS NULL THEN $2 ELSE cpr_sealed END, \
                 cpr_hash = CASE WHEN cpr_corrected_us IS NULL THEN $3 ELSE cpr_hash END \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&sealed)
            .bind(&hash)
            .execute(pool)
            .await
            .map_err(query("store a call's CPR number"))?
            .rows_affected()
        });
        found(done, id)
    }

    /// Records the caller's recording consent (given or withdrawn) and when.
    pub async fn set_call_consent(
        &self,
        id: &str,
        consent: bool,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE calls SET consent = $2, consent_at_us = $3 WHERE id = $1")
                .bind(id)
                .bind(consent)
                .bind(micros(at))
                .execute(pool)
                .await
                .map_err(query("store a call's consent"))?
                .rows_affected()
        });
        found(done, id)
    }

    /// Records the caller's menu choice (topic) and the queue the call went to.
    pub async fn set_call_route(
        &self,
        id: &str,
        topic: Option<&str>,
        queue: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE calls SET topic = $2, queue = $3 WHERE id = $1")
                .bind(id)
                .bind(topic)
                .bind(queue)
                .execute(pool)
                .await
                .map_err(query("store a call's topic and queue"))?
                .rows_affected()
        });
        found(done, id)
    }

    /// Records how the call ended: when, the outcome (e.g. "answered", "abandoned"), the agent
    /// who took it and whether it was transferred.
    pub async fn finish_call(
        &self,
        id: &str,
        ended: Timestamp,
        outcome: &str,
        agent: Option<&str>,
        transferred: bool,
    ) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE calls SET ended_us = $2, outcome = $3, agent_id = $4, transferred = $5 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(micros(ended))
            .bind(outcome)
            .bind(agent)
            .bind(transferred)
            .execute(pool)
            .await
            .map_err(query("finish a call"))?
            .rows_affected()
        });
        found(done, id)
    }

    /// The call with this id, its CPR number opened.
    pub async fn call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let raw: Option<RawCall> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_CALL} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query("read a call"))?
        });
        raw.map(|raw| raw.into_record(&self.keys)).transpose()
    }

    /// Every call of the citizen with this CPR number, oldest first (found by the keyed hash;
    /// for access requests).
    pub async fn calls_by_cpr(&self, cpr: &Cpr) -> Result<Vec<CallRecord>, StoreError> {
        let hash = self.keys.lookup_hash(cpr).to_vec();
        let raw: Vec<RawCall> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_CALL} WHERE cpr_hash = $1 ORDER BY started_us, id"
            ))
            .bind(&hash)
            .fetch_all(pool)
            .await
            .map_err(query("find calls by CPR number"))?
        });
        let mut calls = Vec::with_capacity(raw.len());
        for raw in raw {
            let record = raw.into_record(&self.keys)?;
            // The hash cannot collide in practice; checking the opened number costs nothing.
            if record.call.cpr.as_ref() == Some(cpr) {
                calls.push(record);
            }
        }
        Ok(calls)
    }

    /// The sealed bytes and look-up hash of an optional CPR number, as stored.
    fn protect(&self, cpr: Option<&Cpr>) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        match cpr {
            Some(cpr) => (
                Some(self.keys.seal(cpr)),
                Some(self.keys.lookup_hash(cpr).to_vec()),
            ),
            None => (None, None),
        }
    }
}

/// The insert shared by the single and the batch append.
const INSERT_QUEUE_EVENT: &str = "INSERT INTO queue_events (at_us, call_id, queue, agent_id, \
                                  event, data) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

/// The columns of a call record, in [`RawCall`]'s names.
const SELECT_CALL: &str = "SELECT id, started_us, caller, entry_point, flow_version, consent, \
                           consent_at_us, topic, queue, cpr_sealed, ended_us, outcome, agent_id, \
                           transferred, consent_withdrawn_us, cpr_corrected_us, cpr_corrected_by, \
                           pii_scrubbed_us FROM calls";

/// `Ok` when an update touched the call, else [`StoreError::NoSuchCall`].
fn found(rows_affected: u64, id: &str) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NoSuchCall { id: id.to_owned() })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
