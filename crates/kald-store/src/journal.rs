//! Journal links and journalising (issue 9): calls linked to citizens' cases, and the outbox of
//! documents for the case system.
//!
//! # Links
//!
//! An agent links a call to a case by its case/journal number (checked against the configured
//! pattern before it gets here) with an optional note: [`Store::add_journal_link`]. A call may
//! have several links; a link is removed, never deleted ([`Store::remove_journal_link`], with
//! who and when), so the history stays.
//!
//! # The journal state of a recording
//!
//! `recordings.journal_state` says where each recording stands, and the retention sweeper reads
//! it: a `linked` recording holds itself past its deadline until the case system has it.
//!
//! - `none`: no live link on its call and nothing acknowledged;
//! - `linked`: its call has a live link and no link's document is acknowledged yet;
//! - `exported`: for some link, every target row that was not cancelled is acknowledged (the
//!   case system has its own copy; kald's is deleted at its deadline as usual).
//!
//! Adding a link makes the call's `none` recordings `linked` (and a recording that starts on a
//! call with a live link starts `linked`: [`Store::insert_recording`]); removing one, or an
//! acknowledgement, recomputes the state of the call's recordings from the rows by the rules
//! above, in the same transaction.
//!
//! # The outbox
//!
//! Journalising a recording for a link queues one `journal_exports` row per target
//! ([`JournalTarget`]: the drop folder, the webhook) with [`Store::queue_journal_exports`]
//! (idempotent per recording, link and target). The journaliser claims the due rows
//! ([`Store::claim_journal_exports`], a lease and a token of the claimer, so two kald
//! instances on one database never deliver the same document at once, and a late failure under
//! an old claim does not undo a newer one; migration 0007), delivers, and records the outcome:
//! [`Store::journal_export_acknowledged`] (with the case system's receipt, if any) or
//! [`Store::journal_export_failed`] (the error, with no personal data, and when to try again).
//! Removing the link cancels its pending rows. Every attempt, failed or acknowledged, counts in
//! [`JournalExport::attempts`].

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;

use crate::rows::RecordingState;
use crate::{micros, query, timestamp, Pool, Store, StoreError};

/// Where a journal document goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JournalTarget {
    /// The configured drop folder: the WAV and its JSON manifest as files.
    Folder,
    /// The configured webhook: an HTTP POST.
    Webhook,
}

impl JournalTarget {
    /// The name as stored (and in the API): `folder` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Folder => "folder",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for JournalTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`JournalTarget`] or [`JournalExportState`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}: expected {expected}")]
pub struct UnknownJournalName {
    /// What was parsed.
    pub what: &'static str,
    /// The names accepted.
    pub expected: &'static str,
}

impl FromStr for JournalTarget {
    type Err = UnknownJournalName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "folder" => Ok(Self::Folder),
            "webhook" => Ok(Self::Webhook),
            _ => Err(UnknownJournalName {
                what: "journal target",
                expected: "folder or webhook",
            }),
        }
    }
}

/// Where one document of the outbox stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JournalExportState {
    /// Not delivered yet: tried at [`JournalExport::next_attempt`].
    Pending,
    /// Delivered and acknowledged by the case system (a folder write counts as acknowledged).
    Acknowledged,
    /// Given up because the link was removed (or the recording was erased) before delivery.
    Cancelled,
}

impl JournalExportState {
    /// The name as stored: `pending`, `acknowledged` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Acknowledged => "acknowledged",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JournalExportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JournalExportState {
    type Err = UnknownJournalName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "acknowledged" => Ok(Self::Acknowledged),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(UnknownJournalName {
                what: "journal export state",
                expected: "pending, acknowledged or cancelled",
            }),
        }
    }
}

/// A call linked to a citizen's case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalLink {
    /// The link's id.
    pub id: i64,
    /// kald's opaque call id.
    pub call_id: String,
    /// The case/journal number in the case system.
    pub case_number: String,
    /// The agent's note, if any.
    pub note: Option<String>,
    /// Who linked (a login).
    pub created_by: String,
    /// When.
    pub created: Timestamp,
    /// Who removed the link and when; `None` while it is live.
    pub removed: Option<(String, Timestamp)>,
}

impl JournalLink {
    /// Whether the link is live (not removed).
    pub fn is_live(&self) -> bool {
        self.removed.is_none()
    }
}

/// One document of the outbox: a recording for one link, to one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalExport {
    /// The row's id.
    pub id: i64,
    /// kald's random recording id.
    pub recording_id: String,
    /// The link the document is journalised under.
    pub link_id: i64,
    /// That link's case number.
    pub case_number: String,
    /// Where it goes.
    pub target: JournalTarget,
    /// Where it stands.
    pub state: JournalExportState,
    /// Delivery attempts made so far (failed and successful).
    pub attempts: u32,
    /// When to try (again), while pending.
    pub next_attempt: Timestamp,
    /// Why the last attempt failed (no personal data).
    pub last_error: Option<String>,
    /// What the case system answered on acknowledgement (its document id), if anything.
    pub receipt: Option<String>,
    /// Who asked for the export (a login).
    pub requested_by: String,
    /// When.
    pub requested: Timestamp,
    /// When the target acknowledged.
    pub acknowledged: Option<Timestamp>,
}

/// `journal_links` as read.
#[derive(sqlx::FromRow)]
struct RawLink {
    id: i64,
    call_id: String,
    case_number: String,
    note: Option<String>,
    created_by: String,
    created_us: i64,
    removed_by: Option<String>,
    removed_us: Option<i64>,
}

impl RawLink {
    fn into_row(self) -> Result<JournalLink, StoreError> {
        let removed = match (self.removed_by, self.removed_us) {
            (Some(by), Some(us)) => Some((by, timestamp(us, "journal link removal time")?)),
            (None, None) => None,
            _ => {
                return Err(StoreError::Corrupt {
                    what: "journal link",
                    reason: "removed by without removal time, or the reverse",
                })
            }
        };
        Ok(JournalLink {
            id: self.id,
            call_id: self.call_id,
            case_number: self.case_number,
            note: self.note,
            created_by: self.created_by,
            created: timestamp(self.created_us, "journal link time")?,
            removed,
        })
    }
}

/// `journal_exports` joined with its link's case number, as read.
#[derive(sqlx::FromRow)]
struct RawExport {
    id: i64,
    recording_id: String,
    link_id: i64,
    case_number: String,
    target: String,
    state: String,
    attempts: i64,
    next_attempt_us: i64,
    last_error: Option<String>,
    receipt: Option<String>,
    requested_by: String,
    requested_us: i64,
    acknowledged_us: Option<i64>,
}

impl RawExport {
    fn into_row(self) -> Result<JournalExport, StoreError> {
        Ok(JournalExport {
            id: self.id,
            recording_id: self.recording_id,
            link_id: self.link_id,
            case_number: self.case_number,
            target: self.target.parse().map_err(|_| StoreError::Corrupt {
                what: "journal export target",
                reason: "unknown name",
            })?,
            state: self.state.parse().map_err(|_| StoreError::Corrupt {
                what: "journal export state",
                reason: "unknown name",
            })?,
            attempts: u32::try_from(self.attempts).map_err(|_| StoreError::Corrupt {
                what: "journal export attempts",
                reason: "out of range",
            })?,
            next_attempt: timestamp(self.next_attempt_us, "journal export next attempt")?,
            last_error: self.last_error,
            receipt: self.receipt,
            requested_by: self.requested_by,
            requested: timestamp(self.requested_us, "journal export request time")?,
            acknowledged: self
                .acknowledged_us
                .map(|us| timestamp(us, "journal export acknowledgement time"))
                .transpose()?,
        })
    }
}

/// The columns of a link, in [`RawLink`]'s names.
const SELECT_LINK: &str = "SELECT id, call_id, case_number, note, created_by, created_us, \
                           removed_by, removed_us FROM journal_links";

/// The columns of an outbox row with its case number, in [`RawExport`]'s names.
const SELECT_EXPORT: &str = "SELECT e.id, e.recording_id, e.link_id, l.case_number, e.target, \
                             e.state, e.attempts, e.next_attempt_us, e.last_error, e.receipt, \
                             e.requested_by, e.requested_us, e.acknowledged_us \
                             FROM journal_exports e JOIN journal_links l ON l.id = e.link_id";

/// The journal state of each recording selected by `filter` (a condition on `recordings`),
/// recomputed from the links and the outbox (see the module documentation).
fn recompute_state(filter: &str) -> String {
    format!(
        "UPDATE recordings SET journal_state = CASE \
         WHEN EXISTS (SELECT 1 FROM journal_exports e WHERE e.recording_id = recordings.id \
           AND e.state = 'acknowledged' AND NOT EXISTS (SELECT 1 FROM journal_exports p \
           WHERE p.recording_id = e.recording_id AND p.link_id = e.link_id \
           AND p.state = 'pending')) THEN 'exported' \
         WHEN EXISTS (SELECT 1 FROM journal_links l WHERE l.call_id = recordings.call_id \
           AND l.removed_us IS NULL) THEN 'linked' \
         ELSE 'none' END \
         WHERE {filter}"
    )
}

impl Store {
    // --- links ------------------------------------------------------------------------

    /// Links a call to a case (the number is checked by the caller against the configured
    /// pattern); returns the link's id. The call's recordings that were `none` become
    /// `linked`, in the same transaction.
    ///
    /// The call need not be in the store yet (an agent may link while the call's record is
    /// still being written).
    pub async fn add_journal_link(
        &self,
        call_id: &str,
        case_number: &str,
        note: Option<&str>,
        by: &str,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        const ACTION: &str = "link a call to a case";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO journal_links (call_id, case_number, note, created_by, created_us) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(call_id)
            .bind(case_number)
            .bind(note)
            .bind(by)
            .bind(micros(at))
            .fetch_one(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            sqlx::query(
                "UPDATE recordings SET journal_state = 'linked' \
                 WHERE call_id = $1 AND journal_state = 'none'",
            )
            .bind(call_id)
            .execute(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            tx.commit().await.map_err(query(ACTION))?;
            Ok(id)
        })
    }

    /// Removes a link (keeping the row with who and when): `false` when there is no such link
    /// or it was removed already (the first removal is kept). Cancels the link's pending
    /// exports and recomputes the journal state of the call's recordings, in one transaction.
    pub async fn remove_journal_link(
        &self,
        link_id: i64,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        const ACTION: &str = "remove a journal link";
        let recompute = recompute_state("call_id = $1");
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            let call: Option<String> = sqlx::query_scalar(
                "UPDATE journal_links SET removed_by = $2, removed_us = $3 \
                 WHERE id = $1 AND removed_us IS NULL RETURNING call_id",
            )
            .bind(link_id)
            .bind(by)
            .bind(micros(at))
            .fetch_optional(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            let Some(call) = call else {
                return Ok(false);
            };
            sqlx::query(
                "UPDATE journal_exports SET state = 'cancelled' \
                 WHERE link_id = $1 AND state = 'pending'",
            )
            .bind(link_id)
            .execute(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            sqlx::query(&recompute)
                .bind(&call)
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            tx.commit().await.map_err(query(ACTION))?;
            Ok(true)
        })
    }

    /// Marks a just-catalogued recording `linked` when its call has a live link (called by
    /// [`Store::insert_recording`]; a link added later does it in [`Store::add_journal_link`]).
    pub(crate) async fn link_new_recording(
        &self,
        recording_id: &str,
        call_id: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE recordings SET journal_state = 'linked' \
                 WHERE id = $1 AND journal_state = 'none' AND EXISTS (SELECT 1 FROM journal_links \
                 l WHERE l.call_id = $2 AND l.removed_us IS NULL)",
            )
            .bind(recording_id)
            .bind(call_id)
            .execute(pool)
            .await
            .map_err(query("mark a new recording linked"))?;
        });
        Ok(())
    }

    /// The link with this id (live or removed).
    pub async fn journal_link(&self, id: i64) -> Result<Option<JournalLink>, StoreError> {
        let raw: Option<RawLink> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_LINK} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query("read a journal link"))?
        });
        raw.map(RawLink::into_row).transpose()
    }

    /// Every link of a call, removed ones included, oldest first.
    pub async fn journal_links_of_call(
        &self,
        call_id: &str,
    ) -> Result<Vec<JournalLink>, StoreError> {
        let raw: Vec<RawLink> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_LINK} WHERE call_id = $1 ORDER BY created_us, id"
            ))
            .bind(call_id)
            .fetch_all(pool)
            .await
            .map_err(query("read a call's journal links"))?
        });
        raw.into_iter().map(RawLink::into_row).collect()
    }

    /// The calls with a live link to this case number, in the order they were first linked.
    pub async fn calls_by_case_number(&self, case_number: &str) -> Result<Vec<String>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT call_id FROM journal_links \
                 WHERE case_number = $1 AND removed_us IS NULL \
                 GROUP BY call_id ORDER BY MIN(created_us), MIN(id)",
            )
            .bind(case_number)
            .fetch_all(pool)
            .await
            .map_err(query("find calls by case number"))
        })
    }

    // --- the outbox -------------------------------------------------------------------

    /// Queues a recording for the case system under a link, one row per target, due at `at`;
    /// returns the rows' ids in the order of `targets`. Idempotent: a (recording, link,
    /// target) already queued keeps its row (and its state), whose id is returned.
    ///
    /// Fails with [`StoreError::NoSuchRecording`], [`StoreError::NoSuchJournalLink`] (unknown
    /// or removed link), or [`StoreError::NotJournalisable`] when the recording is still being
    /// recorded or is not of the link's call.
    pub async fn queue_journal_exports(
        &self,
        recording_id: &str,
        link_id: i64,
        targets: &[JournalTarget],
        by: &str,
        at: Timestamp,
    ) -> Result<Vec<i64>, StoreError> {
        const ACTION: &str = "queue a recording for the case system";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            let rec: Option<(String, String)> =
                sqlx::query_as("SELECT call_id, state FROM recordings WHERE id = $1")
                    .bind(recording_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(query(ACTION))?;
            let Some((rec_call, rec_state)) = rec else {
                return Err(StoreError::NoSuchRecording {
                    id: recording_id.to_owned(),
                });
            };
            let link_call: Option<String> = sqlx::query_scalar(
                "SELECT call_id FROM journal_links WHERE id = $1 AND removed_us IS NULL",
            )
            .bind(link_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            let Some(link_call) = link_call else {
                return Err(StoreError::NoSuchJournalLink { id: link_id });
            };
            if link_call != rec_call {
                return Err(StoreError::NotJournalisable {
                    recording: recording_id.to_owned(),
                    reason: "it is not a recording of the linked call",
                });
            }
            if RecordingState::parse(&rec_state)? == RecordingState::Recording {
                return Err(StoreError::NotJournalisable {
                    recording: recording_id.to_owned(),
                    reason: "it is still being recorded",
                });
            }
            let mut ids = Vec::with_capacity(targets.len());
            for target in targets {
                sqlx::query(
                    "INSERT INTO journal_exports (recording_id, link_id, target, next_attempt_us, \
                     requested_by, requested_us) VALUES ($1, $2, $3, $4, $5, $4) \
                     ON CONFLICT (recording_id, link_id, target) DO NOTHING",
                )
                .bind(recording_id)
                .bind(link_id)
                .bind(target.as_str())
                .bind(micros(at))
                .bind(by)
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?;
                let id: i64 = sqlx::query_scalar(
                    "SELECT id FROM journal_exports \
                     WHERE recording_id = $1 AND link_id = $2 AND target = $3",
                )
                .bind(recording_id)
                .bind(link_id)
                .bind(target.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(query(ACTION))?;
                ids.push(id);
            }
            tx.commit().await.map_err(query(ACTION))?;
            Ok(ids)
        })
    }

    /// Up to `limit` pending rows due by `now` (`next_attempt <= now`), the longest due first.
    pub async fn due_journal_exports(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<JournalExport>, StoreError> {
        let raw: Vec<RawExport> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_EXPORT} WHERE e.state = 'pending' AND e.next_attempt_us <= $1 \
                 ORDER BY e.next_attempt_us, e.id LIMIT $2"
            ))
            .bind(micros(now))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(query("list the journal exports due"))?
        });
        raw.into_iter().map(RawExport::into_row).collect()
    }

    /// Claims up to `limit` rows due by `now` for delivery by this instance: each one's next
    /// attempt moves to `lease_until`, so another kald on the same database (or this one, in
    /// its next round) does not take it while it is on its way. The delivery's outcome
    /// ([`journal_export_acknowledged`](Self::journal_export_acknowledged) or
    /// [`journal_export_failed`](Self::journal_export_failed)) then sets the row's real state;
    /// if the instance dies first, the row is due again once the lease runs out. Returns the
    /// claimed rows as they were before the claim (`next_attempt` is when each fell due), the
    /// longest due first.
    ///
    /// Safe under concurrency on both databases: each row's claiming `UPDATE` checks again that
    /// it is still pending and due, which PostgreSQL re-evaluates against the row version
    /// another transaction's claim left (it waits for that transaction first); a row someone
    /// else claimed is skipped. SQLite runs one writer at a time.
    ///
    /// `claim` is the claimer's token for this batch: a failure is recorded only under it
    /// ([`journal_export_failed`](Self::journal_export_failed)).
    pub async fn claim_journal_exports(
        &self,
        claim: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<JournalExport>, StoreError> {
        const ACTION: &str = "claim the journal exports due";
        let select = format!(
            "{SELECT_EXPORT} WHERE e.state = 'pending' AND e.next_attempt_us <= $1 \
             ORDER BY e.next_attempt_us, e.id LIMIT $2"
        );
        let update = "UPDATE journal_exports SET next_attempt_us = $3, claim = $4 \
             WHERE id = $1 AND state = 'pending' AND next_attempt_us <= $2";
        on_pool!(self, |pool| {
            // Writing from the start (BEGIN IMMEDIATE on SQLite): a read transaction that later
            // writes could fail with SQLITE_BUSY when another connection wrote in between.
            let mut tx = pool
                .begin_with(self.audit_begin())
                .await
                .map_err(query(ACTION))?;
            let due: Vec<RawExport> = sqlx::query_as(&select)
                .bind(micros(now))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            let mut claimed = Vec::with_capacity(due.len());
            for raw in due {
                let row = raw.into_row()?;
                let won = sqlx::query(update)
                    .bind(row.id)
                    .bind(micros(now))
                    .bind(micros(lease_until))
                    .bind(claim)
                    .execute(&mut *tx)
                    .await
                    .map_err(query(ACTION))?
                    .rows_affected();
                if won == 1 {
                    claimed.push(row);
                }
            }
            tx.commit().await.map_err(query(ACTION))?;
            Ok(claimed)
        })
    }

    /// The target acknowledged a document (with its receipt, e.g. the case system's document
    /// id): the row becomes `acknowledged` (one more attempt counted), and once every row of
    /// that recording and link that is not cancelled is acknowledged, the recording is
    /// `exported`. One transaction.
    ///
    /// A row acknowledged already is left as it was. A row cancelled meanwhile (the link was
    /// removed while the document was on its way) is recorded as acknowledged: the case
    /// system has the document. [`StoreError::NoSuchJournalExport`] for an unknown id.
    pub async fn journal_export_acknowledged(
        &self,
        id: i64,
        receipt: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        const ACTION: &str = "record a journal acknowledgement";
        let recompute = recompute_state("id = $1");
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            let recording: Option<String> = sqlx::query_scalar(
                "UPDATE journal_exports SET state = 'acknowledged', receipt = $2, \
                 acknowledged_us = $3, attempts = attempts + 1, last_error = NULL \
                 WHERE id = $1 AND state <> 'acknowledged' RETURNING recording_id",
            )
            .bind(id)
            .bind(receipt)
            .bind(micros(at))
            .fetch_optional(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            match recording {
                Some(recording) => {
                    sqlx::query(&recompute)
                        .bind(&recording)
                        .execute(&mut *tx)
                        .await
                        .map_err(query(ACTION))?;
                }
                None => {
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM journal_exports WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(query(ACTION))?;
                    if exists.is_none() {
                        return Err(StoreError::NoSuchJournalExport { id });
                    }
                }
            }
            tx.commit().await.map_err(query(ACTION))?;
            Ok(())
        })
    }

    /// A delivery attempt failed: counts it, keeps `error` (which must hold no personal data)
    /// and sets when to try again. A row no longer pending (acknowledged or cancelled
    /// meanwhile), or claimed by someone else since `claim` (when given: the token it was
    /// claimed under), is left as it was; [`StoreError::NoSuchJournalExport`] for an unknown
    /// id.
    pub async fn journal_export_failed(
        &self,
        id: i64,
        claim: Option<&str>,
        error: &str,
        next_attempt: Timestamp,
    ) -> Result<(), StoreError> {
        const ACTION: &str = "record a failed journal delivery";
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE journal_exports SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_us = $3 WHERE id = $1 AND state = 'pending' \
                 AND ($4 IS NULL OR claim = $4)",
            )
            .bind(id)
            .bind(error)
            .bind(micros(next_attempt))
            .bind(claim)
            .execute(pool)
            .await
            .map_err(query(ACTION))?
            .rows_affected();
            if done == 0 {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM journal_exports WHERE id = $1")
                        .bind(id)
                        .fetch_optional(pool)
                        .await
                        .map_err(query(ACTION))?;
                if exists.is_none() {
                    return Err(StoreError::NoSuchJournalExport { id });
                }
            }
            Ok(())
        })
    }

    /// Gives up a pending row that can never be delivered (its recording is gone: erased, or
    /// deleted while held by nothing else), keeping `reason` (no personal data) as its last
    /// error; `false` when it was not pending. The recording's journal state is recomputed.
    pub async fn cancel_journal_export(&self, id: i64, reason: &str) -> Result<bool, StoreError> {
        const ACTION: &str = "cancel a journal export";
        let recompute = recompute_state("id = $1");
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            let recording: Option<String> = sqlx::query_scalar(
                "UPDATE journal_exports SET state = 'cancelled', last_error = $2 \
                 WHERE id = $1 AND state = 'pending' RETURNING recording_id",
            )
            .bind(id)
            .bind(reason)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            let Some(recording) = recording else {
                return Ok(false);
            };
            sqlx::query(&recompute)
                .bind(&recording)
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            tx.commit().await.map_err(query(ACTION))?;
            Ok(true)
        })
    }

    /// The outbox row with this id.
    pub async fn journal_export(&self, id: i64) -> Result<Option<JournalExport>, StoreError> {
        let raw: Option<RawExport> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_EXPORT} WHERE e.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query("read a journal export"))?
        });
        raw.map(RawExport::into_row).transpose()
    }

    /// Every outbox row of a recording (all links, targets and states), in the order queued.
    pub async fn journal_exports_of_recording(
        &self,
        recording_id: &str,
    ) -> Result<Vec<JournalExport>, StoreError> {
        let raw: Vec<RawExport> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_EXPORT} WHERE e.recording_id = $1 ORDER BY e.id"
            ))
            .bind(recording_id)
            .fetch_all(pool)
            .await
            .map_err(query("read a recording's journal exports"))?
        });
        raw.into_iter().map(RawExport::into_row).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in [JournalTarget::Folder, JournalTarget::Webhook] {
            assert_eq!(t.as_str().parse::<JournalTarget>().unwrap(), t);
            assert_eq!(t.to_string(), t.as_str());
        }
        for s in [
            JournalExportState::Pending,
            JournalExportState::Acknowledged,
            JournalExportState::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<JournalExportState>().unwrap(), s);
        }
        assert!("mail".parse::<JournalTarget>().is_err());
        assert!("Folder".parse::<JournalTarget>().is_err());
    }
}
