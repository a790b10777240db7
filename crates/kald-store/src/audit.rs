//! The tamper-evident audit log (issue 9): who did what, when and why, as a hash chain.
//!
//! Every audited action is appended with [`Store::append_audit`] as one row of `audit_log`.
//! There is no method to change or delete a row, except [`Store::purge_audit_before`], which
//! removes only the oldest rows (a prefix of the chain) for the log's own retention.
//!
//! # The chain
//!
//! Each row stores the previous row's hash (`prev_hash`; 32 zero bytes, [`GENESIS`], for the
//! very first row) and its own:
//!
//! ```text
//! hash = SHA-256(prev_hash ‖ encoding(id, at_us, actor, role, action, target, reason, cpr_hash))
//! ```
//!
//! The **encoding** (version 1, [`AuditEntry::canonical_bytes`]) is the concatenation of
//!
//! | field      | bytes                                                                 |
//! |------------|-----------------------------------------------------------------------|
//! | tag        | the 13 ASCII bytes `kald-audit-v1`                                    |
//! | `id`       | 8 bytes, two's complement, big-endian                                 |
//! | `at_us`    | 8 bytes, two's complement, big-endian (microseconds since the epoch)  |
//! | `actor`    | `str`                                                                 |
//! | `role`     | `str`                                                                 |
//! | `action`   | `str`                                                                 |
//! | `target`   | `str`                                                                 |
//! | `reason`   | `opt(str)`                                                            |
//! | `cpr_hash` | `opt(bytes)`                                                          |
//!
//! where `str` is the UTF-8 length as 8 bytes big-endian followed by the UTF-8 bytes, `bytes`
//! likewise for raw bytes, and `opt(x)` is the single byte `0x00` when absent or `0x01`
//! followed by `x` when present (so an absent reason differs from an empty one). Every field is
//! fixed-width or length-prefixed, in a fixed order, so two different rows never encode alike.
//! The id is included, so a row cannot be moved; the ids are consecutive (kald assigns the
//! previous id + 1 under the write lock), so a removed row shows as a gap.
//!
//! # Appending
//!
//! [`Store::append_audit`] reads the last row and inserts the next in one transaction that
//! holds the write lock from its start: `BEGIN IMMEDIATE` on SQLite, `LOCK TABLE audit_log IN
//! EXCLUSIVE MODE` on PostgreSQL (which still lets readers read). Concurrent appends, from one
//! process or several kald instances sharing a PostgreSQL database, therefore queue up and
//! never fork the chain. [`Store::append_audit_batch`] appends many entries the same way in one
//! transaction, [`AUDIT_INSERT_ROWS`] rows per statement; the retention sweeper's deletions
//! ([`Store::delete_recordings_audited`]) append theirs inside the deleting transaction, which
//! takes the same lock first.
//!
//! # Verifying
//!
//! [`Store::verify_audit`] walks the chain by id in pages of [`AUDIT_PAGE`] rows inside one
//! read transaction (a consistent snapshot) and reports the first broken link
//! ([`AuditProblem`]: a gap in the ids, a `prev_hash` that is not the previous row's hash, or a
//! `hash` that does not match the row). An edited column shows as a hash mismatch on that row;
//! an edited row whose hash was recomputed as well shows as a `prev_hash` mismatch on the next.
//! What a chain inside the database cannot show is the removal of its newest rows (with the
//! rows, the evidence goes): compare [`AuditVerification::Intact::head`] with a value kept
//! elsewhere (e.g. logged or exported daily) for that.
//!
//! # Retention: the anchor
//!
//! [`Store::purge_audit_before`] deletes the oldest rows and records in the single-row table
//! `audit_anchor` the id and hash of the last row it removed (and the cut-off and when). The
//! chain then starts at the anchor: the first remaining row must have id `last_id + 1` and
//! `prev_hash` = the anchor's hash; without an anchor the first row must be id 1 with
//! [`GENESIS`]. The anchor (rather than trusting whatever the first remaining row says) means
//! removing further old rows by hand shows as a gap. If every row is purged, the next append
//! continues from the anchor.

use jiff::Timestamp;
use kald_core::Cpr;
use sha2::{Digest, Sha256};

use crate::{micros, query, timestamp, Backend, Pool, Store, StoreError};

/// The `prev_hash` of the very first row: 32 zero bytes.
pub const GENESIS: [u8; 32] = [0; 32];

/// Rows read per query by [`Store::verify_audit`].
pub const AUDIT_PAGE: u32 = 1_000;

/// The tag that starts the canonical encoding (its version).
const ENCODING_TAG: &[u8] = b"kald-audit-v1";

/// One audited action, as appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened (stored to the microsecond).
    pub at: Timestamp,
    /// Who: the user's login.
    pub actor: String,
    /// In which role they acted (e.g. "records-officer", "team-leader", "admin", "system").
    pub role: String,
    /// What: listen, download, export, hold, lift-hold, consent-grant, consent-withdraw, link,
    /// unlink, search-cpr, correct-cpr, access-request-decision, delete, erase, …
    pub action: String,
    /// On what: a recording, call or case id; never a CPR number.
    pub target: String,
    /// Why, when the action asks for a reason.
    pub reason: Option<String>,
    /// The keyed look-up hash of the citizen's CPR number ([`Store::cpr_lookup_hash`]) when the
    /// action concerns a citizen; never the number.
    pub cpr_hash: Option<[u8; 32]>,
}

impl AuditEntry {
    /// An entry without reason or citizen.
    pub fn new(
        at: Timestamp,
        actor: impl Into<String>,
        role: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            role: role.into(),
            action: action.into(),
            target: target.into(),
            reason: None,
            cpr_hash: None,
        }
    }

    /// The same entry with a reason.
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The same entry about the citizen with this CPR look-up hash.
    #[must_use]
    pub fn with_cpr_hash(mut self, cpr_hash: [u8; 32]) -> Self {
        self.cpr_hash = Some(cpr_hash);
        self
    }

    /// The canonical encoding of this entry as row `id` (see the [module documentation](self)).
    pub fn canonical_bytes(&self, id: i64) -> Vec<u8> {
        encode(&Fields {
            id,
            at_us: micros(self.at),
            actor: &self.actor,
            role: &self.role,
            action: &self.action,
            target: &self.target,
            reason: self.reason.as_deref(),
            cpr_hash: self.cpr_hash.as_ref().map(|h| h.as_slice()),
        })
    }

    /// The hash of this entry as row `id` following a row whose hash is `prev_hash`.
    pub fn chain_hash(&self, id: i64, prev_hash: &[u8]) -> [u8; 32] {
        chain(prev_hash, &self.canonical_bytes(id))
    }
}

/// A row of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// The row's id (consecutive, in append order).
    pub id: i64,
    /// What was audited.
    pub entry: AuditEntry,
    /// The previous row's hash ([`GENESIS`] for the first row).
    pub prev_hash: [u8; 32],
    /// This row's hash.
    pub hash: [u8; 32],
}

/// Which rows [`Store::audit`] returns: all given conditions hold (`Default` is every row).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// At or after this time.
    pub from: Option<Timestamp>,
    /// Before this time.
    pub to: Option<Timestamp>,
    /// By this actor (login).
    pub actor: Option<String>,
    /// This action.
    pub action: Option<String>,
    /// On this target (recording, call or case id).
    pub target: Option<String>,
    /// About the citizen with this CPR look-up hash.
    pub cpr_hash: Option<[u8; 32]>,
    /// Only rows with a greater id (the last id of the previous page, to page on).
    pub after_id: Option<i64>,
    /// At most this many rows (all when `None`).
    pub limit: Option<u32>,
}

/// The outcome of [`Store::verify_audit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditVerification {
    /// Every link holds.
    Intact {
        /// How many rows were checked.
        entries: u64,
        /// The first row's id, if any.
        first_id: Option<i64>,
        /// The last row's id, if any.
        last_id: Option<i64>,
        /// The last row's hash (the anchor's, or [`GENESIS`], when there are no rows): keep it
        /// elsewhere to detect a later removal of the newest rows.
        head: [u8; 32],
    },
    /// The first broken link.
    Broken {
        /// The id of the row where the chain breaks.
        id: i64,
        /// What is wrong there.
        problem: AuditProblem,
        /// How many rows before it were intact.
        intact: u64,
    },
}

impl AuditVerification {
    /// Whether every link holds.
    pub fn is_intact(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }
}

/// Why the chain breaks at a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditProblem {
    /// The row's id is not the next one: rows before it were removed (or ids changed).
    Gap {
        /// The id the row should have had.
        expected: i64,
    },
    /// The row's `prev_hash` is not the previous row's (or the anchor's) hash: the previous row
    /// was altered and its hash recomputed, or this row's `prev_hash` was changed.
    PrevMismatch,
    /// The row's `hash` does not match its contents: the row was altered.
    HashMismatch,
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gap { expected } => write!(f, "gap: expected id {expected}"),
            Self::PrevMismatch => f.write_str("prev_hash is not the previous entry's hash"),
            Self::HashMismatch => f.write_str("hash does not match the entry"),
        }
    }
}

/// The hashed fields of a row, borrowed (from an entry or as read, possibly altered).
struct Fields<'a> {
    id: i64,
    at_us: i64,
    actor: &'a str,
    role: &'a str,
    action: &'a str,
    target: &'a str,
    reason: Option<&'a str>,
    cpr_hash: Option<&'a [u8]>,
}

/// The canonical encoding (see the module documentation).
fn encode(f: &Fields<'_>) -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    }
    fn opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            None => out.push(0),
            Some(b) => {
                out.push(1);
                bytes(out, b);
            }
        }
    }
    let mut out = Vec::with_capacity(
        ENCODING_TAG.len()
            + 16
            + 6 * 9
            + f.actor.len()
            + f.role.len()
            + f.action.len()
            + f.target.len()
            + f.reason.map_or(0, str::len)
            + f.cpr_hash.map_or(0, <[u8]>::len),
    );
    out.extend_from_slice(ENCODING_TAG);
    out.extend_from_slice(&f.id.to_be_bytes());
    out.extend_from_slice(&f.at_us.to_be_bytes());
    bytes(&mut out, f.actor.as_bytes());
    bytes(&mut out, f.role.as_bytes());
    bytes(&mut out, f.action.as_bytes());
    bytes(&mut out, f.target.as_bytes());
    opt(&mut out, f.reason.map(str::as_bytes));
    opt(&mut out, f.cpr_hash);
    out
}

/// SHA-256(prev ‖ encoded).
fn chain(prev: &[u8], encoded: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(encoded);
    h.finalize().into()
}

/// `audit_log` as read.
#[derive(sqlx::FromRow)]
struct RawAudit {
    id: i64,
    at_us: i64,
    actor: String,
    role: String,
    action: String,
    target: String,
    reason: Option<String>,
    cpr_hash: Option<Vec<u8>>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl RawAudit {
    /// The hashed fields.
    fn fields(&self) -> Fields<'_> {
        Fields {
            id: self.id,
            at_us: self.at_us,
            actor: &self.actor,
            role: &self.role,
            action: &self.action,
            target: &self.target,
            reason: self.reason.as_deref(),
            cpr_hash: self.cpr_hash.as_deref(),
        }
    }

    /// The public row.
    fn into_row(self) -> Result<AuditRow, StoreError> {
        let hash32 = |b: Vec<u8>| {
            <[u8; 32]>::try_from(b).map_err(|_| StoreError::Corrupt {
                what: "audit hash",
                reason: "not 32 bytes",
            })
        };
        Ok(AuditRow {
            id: self.id,
            entry: AuditEntry {
                at: timestamp(self.at_us, "audit time")?,
                actor: self.actor,
                role: self.role,
                action: self.action,
                target: self.target,
                reason: self.reason,
                cpr_hash: self.cpr_hash.map(hash32).transpose()?,
            },
            prev_hash: hash32(self.prev_hash)?,
            hash: hash32(self.hash)?,
        })
    }
}

/// The columns of an audit row, in [`RawAudit`]'s names.
const SELECT_AUDIT: &str = "SELECT id, at_us, actor, role, action, target, reason, cpr_hash, \
                            prev_hash, hash FROM audit_log";

/// The start of the chain: the anchor's last id and hash, or 0 and [`GENESIS`].
#[derive(sqlx::FromRow)]
pub(crate) struct Anchor {
    pub(crate) last_id: i64,
    pub(crate) hash: Vec<u8>,
}

/// Audit rows per multi-row `INSERT` (ten parameters each). Measured on SQLite appending
/// 100,000 rows in transactions of 500: 1 row per statement 6.3 s, 20 rows 2.6–3.5 s, 500 rows
/// 8.3–9.1 s (binding grows faster than linearly with a statement's parameters).
pub const AUDIT_INSERT_ROWS: usize = 20;

/// The `INSERT` of `rows` audit rows.
pub(crate) fn insert_audit_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=10).map(|c| format!("${}", r * 10 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO audit_log (id, at_us, actor, role, action, target, reason, cpr_hash, \
         prev_hash, hash) VALUES {}",
        values.join(", ")
    )
}

/// The ids, previous hashes and hashes of `entries` appended after the row (`prev_id`,
/// `prev_hash`): the chain of the module documentation.
pub(crate) fn chained(
    entries: &[AuditEntry],
    prev_id: i64,
    prev_hash: Vec<u8>,
) -> Vec<(i64, Vec<u8>, [u8; 32])> {
    let mut out = Vec::with_capacity(entries.len());
    let (mut id, mut prev) = (prev_id, prev_hash);
    for entry in entries {
        id += 1;
        let hash = entry.chain_hash(id, &prev);
        out.push((id, std::mem::replace(&mut prev, hash.to_vec()), hash));
    }
    out
}

/// The last row of the chain (none in an empty log: then the anchor, if any).
pub(crate) const AUDIT_LAST_ROW: &str =
    "SELECT id AS last_id, hash FROM audit_log ORDER BY id DESC LIMIT 1";

/// The anchor (see the module documentation).
pub(crate) const AUDIT_ANCHOR: &str = "SELECT last_id, hash FROM audit_anchor";

/// Appends `$entries` (`&[AuditEntry]`) to the chain inside the open transaction `$tx`, which
/// must hold the audit log's write lock already ([`Store::audit_begin`], and [`AUDIT_LOCK`] on
/// PostgreSQL); evaluates to the last id written (`Option<i64>`). `?` on errors, as
/// `$action`. A macro, so the same code serves both backends' transactions.
macro_rules! append_audit_in_tx {
    ($tx:ident, $entries:expr, $action:expr) => {{
        let entries: &[$crate::audit::AuditEntry] = $entries;
        let last: Option<$crate::audit::Anchor> = sqlx::query_as($crate::audit::AUDIT_LAST_ROW)
            .fetch_optional(&mut *$tx)
            .await
            .map_err($crate::query($action))?;
        let last = match last {
            Some(last) => Some(last),
            None => sqlx::query_as($crate::audit::AUDIT_ANCHOR)
                .fetch_optional(&mut *$tx)
                .await
                .map_err($crate::query($action))?,
        };
        let (prev_id, prev_hash) = last.map_or((0, $crate::audit::GENESIS.to_vec()), |a| {
            (a.last_id, a.hash)
        });
        let rows = $crate::audit::chained(entries, prev_id, prev_hash);
        for (chunk, chained) in entries
            .chunks($crate::audit::AUDIT_INSERT_ROWS)
            .zip(rows.chunks($crate::audit::AUDIT_INSERT_ROWS))
        {
            let sql = $crate::audit::insert_audit_sql(chunk.len());
            let mut q = sqlx::query(&sql);
            for (entry, (id, prev, hash)) in chunk.iter().zip(chained) {
                q = q
                    .bind(*id)
                    .bind($crate::micros(entry.at))
                    .bind(&entry.actor)
                    .bind(&entry.role)
                    .bind(&entry.action)
                    .bind(&entry.target)
                    .bind(&entry.reason)
                    .bind(entry.cpr_hash.map(|h| h.to_vec()))
                    .bind(prev)
                    .bind(hash.to_vec());
            }
            q.execute(&mut *$tx).await.map_err($crate::query($action))?;
        }
        rows.last().map(|r| r.0)
    }};
}
pub(crate) use append_audit_in_tx;

impl Store {
    /// The keyed look-up hash of a CPR number, as stored in `cpr_hash` columns (for
    /// [`AuditEntry::cpr_hash`]).
    pub fn cpr_lookup_hash(&self, cpr: &Cpr) -> [u8; 32] {
        self.keys.lookup_hash(cpr)
    }

    /// The statement that begins a transaction holding the audit log's write lock (SQLite
    /// takes it with `BEGIN IMMEDIATE`; PostgreSQL with [`AUDIT_LOCK`] after `BEGIN`).
    pub(crate) fn audit_begin(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Appends an audited action to the chain and returns its id (see the module
    /// documentation): one transaction holding the write lock reads the last row (or the
    /// anchor), hashes and inserts.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        let last = self.append_audit_batch(std::slice::from_ref(entry)).await?;
        last.ok_or(StoreError::Corrupt {
            what: "audit log",
            reason: "an append wrote no row",
        })
    }

    /// Appends several audited actions, in order, in one transaction holding the write lock
    /// (like [`Store::append_audit`]; [`AUDIT_INSERT_ROWS`] rows per statement); returns the
    /// last one's id, `None` for no entries. Each entry is chained to the one before, exactly
    /// as if appended one by one.
    pub async fn append_audit_batch(
        &self,
        entries: &[AuditEntry],
    ) -> Result<Option<i64>, StoreError> {
        const ACTION: &str = "append to the audit log";
        if entries.is_empty() {
            return Ok(None);
        }
        let postgres = self.backend() == Backend::Postgres;
        on_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.audit_begin())
                .await
                .map_err(query(ACTION))?;
            if postgres {
                sqlx::query(AUDIT_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(query(ACTION))?;
            }
            let last = append_audit_in_tx!(tx, entries, ACTION);
            tx.commit().await.map_err(query(ACTION))?;
            Ok(last)
        })
    }

    /// Checks the whole chain (see the module documentation), in pages of [`AUDIT_PAGE`]
    /// rows, and reports the first broken link or that all is intact.
    pub async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        self.verify_audit_paged(AUDIT_PAGE).await
    }

    /// [`Store::verify_audit`] with `page` rows per query.
    pub(crate) async fn verify_audit_paged(
        &self,
        page: u32,
    ) -> Result<AuditVerification, StoreError> {
        const ACTION: &str = "verify the audit log";
        let begin = match self.backend() {
            // A deferred transaction reads one snapshot in WAL mode.
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(begin).await.map_err(query(ACTION))?;
            let anchor: Option<Anchor> = sqlx::query_as("SELECT last_id, hash FROM audit_anchor")
                .fetch_optional(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            let (mut last_id, mut head) =
                anchor.map_or((0, GENESIS.to_vec()), |a| (a.last_id, a.hash));
            let mut entries = 0u64;
            let mut first_id = None;
            loop {
                let rows: Vec<RawAudit> = sqlx::query_as(&format!(
                    "{SELECT_AUDIT} WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(last_id)
                .bind(i64::from(page))
                .fetch_all(&mut *tx)
                .await
                .map_err(query(ACTION))?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let problem = if row.id != last_id + 1 {
                        Some(AuditProblem::Gap {
                            expected: last_id + 1,
                        })
                    } else if row.prev_hash != head {
                        Some(AuditProblem::PrevMismatch)
                    } else if chain(&row.prev_hash, &encode(&row.fields())).as_slice()
                        != row.hash.as_slice()
                    {
                        Some(AuditProblem::HashMismatch)
                    } else {
                        None
                    };
                    if let Some(problem) = problem {
                        tx.rollback().await.map_err(query(ACTION))?;
                        return Ok(AuditVerification::Broken {
                            id: row.id,
                            problem,
                            intact: entries,
                        });
                    }
                    first_id.get_or_insert(row.id);
                    last_id = row.id;
                    head.clone_from(&row.hash);
                    entries += 1;
                }
            }
            tx.rollback().await.map_err(query(ACTION))?;
            let head = <[u8; 32]>::try_from(head).map_err(|_| StoreError::Corrupt {
                what: "audit anchor hash",
                reason: "not 32 bytes",
            })?;
            Ok(AuditVerification::Intact {
                entries,
                first_id,
                last_id: first_id.map(|_| last_id),
                head,
            })
        })
    }

    /// The audit rows that match `filter`, ordered by id (append order); for the
    /// administrator, who pages on with [`AuditFilter::after_id`].
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = |column: &str, op: &str| {
            n += 1;
            conditions.push(format!("{column} {op} ${n}"));
        };
        if filter.from.is_some() {
            next("at_us", ">=");
        }
        if filter.to.is_some() {
            next("at_us", "<");
        }
        if filter.actor.is_some() {
            next("actor", "=");
        }
        if filter.action.is_some() {
            next("action", "=");
        }
        if filter.target.is_some() {
            next("target", "=");
        }
        if filter.cpr_hash.is_some() {
            next("cpr_hash", "=");
        }
        if filter.after_id.is_some() {
            next("id", ">");
        }
        let mut sql = SELECT_AUDIT.to_owned();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY id");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let raw: Vec<RawAudit> = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql);
            if let Some(from) = filter.from {
                q = q.bind(micros(from));
            }
            if let Some(to) = filter.to {
                q = q.bind(micros(to));
            }
            if let Some(actor) = &filter.actor {
                q = q.bind(actor);
            }
            if let Some(action) = &filter.action {
                q = q.bind(action);
            }
            if let Some(target) = &filter.target {
                q = q.bind(target);
            }
            if let Some(hash) = filter.cpr_hash {
                q = q.bind(hash.to_vec());
            }
            if let Some(after) = filter.after_id {
                q = q.bind(after);
            }
            q.fetch_all(pool)
                .await
                .map_err(query("read the audit log"))?
        });
        raw.into_iter().map(RawAudit::into_row).collect()
    }

    /// Every audit row about the citizen with this CPR number (by its keyed look-up hash),
    /// ordered by id; for access requests.
    pub async fn audit_by_cpr(&self, cpr: &Cpr) -> Result<Vec<AuditRow>, StoreError> {
        self.audit(&AuditFilter {
            cpr_hash: Some(self.cpr_lookup_hash(cpr)),
            ..AuditFilter::default()
        })
        .await
    }

    /// Retention: deletes the oldest rows up to (not including) the first row at or after
    /// `before`, so only a prefix of the chain goes even if times are out of id order, and
    /// moves the anchor to the last deleted row (see the module documentation); returns how
    /// many rows were deleted. The anchor also records `before` and when the purge ran.
    pub async fn purge_audit_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        const ACTION: &str = "purge the audit log";
        let postgres = self.backend() == Backend::Postgres;
        on_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.audit_begin())
                .await
                .map_err(query(ACTION))?;
            if postgres {
                sqlx::query(AUDIT_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(query(ACTION))?;
            }
            let kept: Option<i64> =
                sqlx::query_scalar("SELECT MIN(id) FROM audit_log WHERE at_us >= $1")
                    .bind(micros(before))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(query(ACTION))?;
            let last: Option<Anchor> = sqlx::query_as(
                "SELECT id AS last_id, hash FROM audit_log WHERE id < $1 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(kept.unwrap_or(i64::MAX))
            .fetch_optional(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            let Some(last) = last else {
                tx.rollback().await.map_err(query(ACTION))?;
                return Ok(0);
            };
            sqlx::query(
                "INSERT INTO audit_anchor (singleton, last_id, hash, purged_before_us, \
                 purged_at_us) VALUES (1, $1, $2, $3, $4) \
                 ON CONFLICT (singleton) DO UPDATE SET last_id = excluded.last_id, \
                 hash = excluded.hash, purged_before_us = excluded.purged_before_us, \
                 purged_at_us = excluded.purged_at_us",
            )
            .bind(last.last_id)
            .bind(&last.hash)
            .bind(micros(before))
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            let purged = sqlx::query("DELETE FROM audit_log WHERE id <= $1")
                .bind(last.last_id)
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?
                .rows_affected();
            tx.commit().await.map_err(query(ACTION))?;
            Ok(purged)
        })
    }
}

/// PostgreSQL's write lock on the audit log, held to the end of the transaction: it queues
/// appends and purges (also from other kald instances) but lets readers read.
pub(crate) const AUDIT_LOCK: &str = "LOCK TABLE audit_log IN EXCLUSIVE MODE";
