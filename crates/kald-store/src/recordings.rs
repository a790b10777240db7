//! The recordings catalogue (issue 8): recordings, holds and tombstones.
//!
//! A recording row names an encrypted file in the recordings directory; the file's name is
//! the row's random id, so it reveals nothing. Its CPR number is stored like a call's: sealed,
//! with the keyed look-up hash. A recording is **held** while any active hold names it, its
//! call or its citizen's CPR hash; held recordings are never deleted by
//! [`Store::delete_recordings`], which checks the holds in the same statement that deletes, so
//! a hold placed after the sweeper listed a recording still wins. The same statement keeps a
//! recording linked to a case and not yet journalised (journal state `linked`), so a link made
//! after the sweeper listed it wins too; only a records officer's erasure
//! ([`Store::erase_recording`]) takes such a recording (holds still win). Deleting leaves a
//! [`Tombstone`] (no file, no sealed CPR, the CPR's look-up hash), purged later by
//! [`Store::purge_tombstones`] unless held too. A withdrawal of consent during the call
//! ([`Store::withdraw_consent`]) deletes the call's recordings without tombstones.

use std::time::Duration;

use jiff::Timestamp;
use kald_core::Cpr;

use crate::audit::{append_audit_in_tx, AuditEntry, AUDIT_LOCK};
use crate::rows::{
    hex, HoldRow, HoldTarget, JournalState, NewRecording, RawHold, RawRecording, RawRecordingFile,
    RawSweepItem, RawTombstone, Recording, RecordingFile, RecordingState, SweepCursor, SweepItem,
    Tombstone,
};
use crate::{micros, query, Backend, Pool, Store, StoreError};

/// What may stop a deletion besides holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    /// Retention (and other deletions by kald): a recording linked to a case and not yet
    /// acknowledged by the case system stays.
    Retention,
    /// A records officer's erasure: the journal link does not stop it.
    Erasure,
}

/// Recordings deleted per transaction by [`Store::delete_recordings`]: big enough to delete
/// 100,000 in seconds, small enough to hold SQLite's write lock only for milliseconds.
pub const DELETE_BATCH: usize = 500;

/// The columns of a recording, in [`RawRecording`]'s names.
pub(crate) const SELECT_RECORDING: &str =
    "SELECT id, call_id, kind, file, key_id, started_us, ended_us, \
                                duration_ms, agent_id, queue, topic, consent, consent_at_us, \
                                flow_version, cpr_sealed, retention_until_us, sha256, state, \
                                journal_state, created_us FROM recordings";

/// The columns of a tombstone, in [`RawTombstone`]'s names.
const SELECT_TOMBSTONE: &str = "SELECT recording_id, call_id, kind, started_us, ended_us, \
                                deleted_us, reason, cpr_hash, purge_after_us FROM tombstones";

/// The columns of a hold, in [`RawHold`]'s names.
const SELECT_HOLD: &str = "SELECT id, scope, target, cpr_hash, reason, created_by, created_us, \
                           lifted_us, lifted_by FROM holds";

/// SQL for the number of active holds on a row of `table` (which has `call_id` and
/// `cpr_hash` columns; `id` names its recording id column): by recording id, by call id and by
/// CPR hash, each an indexed look-up.
fn active_holds(table: &str, id: &str) -> String {
    format!(
        "((SELECT COUNT(*) FROM holds h WHERE h.scope = 'recording' AND h.target = {table}.{id} \
         AND h.lifted_us IS NULL) \
         + (SELECT COUNT(*) FROM holds h WHERE h.scope = 'call' AND h.target = {table}.call_id \
         AND h.lifted_us IS NULL) \
         + (SELECT COUNT(*) FROM holds h WHERE h.scope = 'cpr' AND h.cpr_hash = {table}.cpr_hash \
         AND h.lifted_us IS NULL))"
    )
}

/// `$from, $from+1, …` for `n` parameters.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds as stored.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    // --- recordings -------------------------------------------------------------------

    /// Catalogues a recording as it starts (state `recording`); its CPR number, if any, is
    /// sealed and hashed. A number the agent corrected on the call
    /// ([`Store::correct_call_cpr`]) wins over the one given.
    ///
    /// Fails with [`StoreError::ConsentWithdrawn`] for a call recording of a call whose consent
    /// was withdrawn ([`Store::withdraw_consent`]); the schema refuses a call recording without
    /// consent.
    pub async fn insert_recording(&self, rec: &NewRecording) -> Result<(), StoreError> {
        const ACTION: &str = "insert a recording";
        let (sealed, hash) = self.protect(rec.cpr.as_ref());
        let created = micros(Timestamp::now());
        let inserted = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO recordings (id, call_id, kind, file, key_id, started_us, agent_id, \
                 queue, topic, consent, consent_at_us, flow_version, cpr_sealed, cpr_hash, \
                 created_us) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 COALESCE((SELECT cpr_sealed FROM calls WHERE calls.id = $2 \
                           AND calls.cpr_corrected_us IS NOT NULL), $13), \
                 COALESCE((SELECT cpr_hash FROM calls WHERE calls.id = $2 \
                           AND calls.cpr_corrected_us IS NOT NULL), $14), $15 \
                 WHERE NOT EXISTS (SELECT 1 FROM calls WHERE calls.id = $2 AND $3 = 'call' \
                 AND calls.consent_withdrawn_us IS NOT NULL)",
            )
            .bind(&rec.id)
            .bind(&rec.call_id)
            .bind(rec.kind.as_str())
            .bind(&rec.file)
            .bind(i64::from(rec.key_id))
            .bind(micros(rec.started))
            .bind(&rec.agent)
            .bind(&rec.queue)
            .bind(&rec.topic)
            .bind(rec.consent)
            .bind(rec.consent_at.map(micros))
            .bind(&rec.flow_version)
            .bind(&sealed)
            .bind(&hash)
            .bind(created)
            .execute(pool)
            .await
            .map_err(query(ACTION))?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::ConsentWithdrawn {
                call: rec.call_id.clone(),
            });
        }
        // A call with a live journal link makes its new recordings `linked` (issue 9).
        self.link_new_recording(&rec.id, &rec.call_id).await
    }

    /// Closes a recording that finished normally: its end, duration, the SHA-256 of its
    /// plaintext PCM and its retention deadline; state `closed`.
    ///
    /// Fails with [`StoreError::NoSuchRecording`], or [`StoreError::NotRecording`] when it is
    /// already closed or truncated.
    pub async fn close_recording(
        &self,
        id: &str,
        ended: Timestamp,
        duration: Duration,
        sha256: &[u8; 32],
        retention_until: Timestamp,
    ) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE recordings SET ended_us = $2, duration_ms = $3, sha256 = $4, \
                 retention_until_us = $5, state = 'closed' WHERE id = $1 AND state = 'recording'",
            )
            .bind(id)
            .bind(micros(ended))
            .bind(millis(duration))
            .bind(hex(sha256))
            .bind(micros(retention_until))
            .execute(pool)
            .await
            .map_err(query("close a recording"))?
            .rows_affected()
        });
        self.updated_recording(done, id).await
    }

    /// Closes a recording found unfinished after a crash (state `truncated`): the end and
    /// duration of its intact part, and its retention deadline.
    ///
    /// Fails like [`Store::close_recording`].
    pub async fn mark_truncated(
        &self,
        id: &str,
        ended: Timestamp,
        duration: Duration,
        retention_until: Timestamp,
    ) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE recordings SET ended_us = $2, duration_ms = $3, retention_until_us = $4, \
                 state = 'truncated' WHERE id = $1 AND state = 'recording'",
            )
            .bind(id)
            .bind(micros(ended))
            .bind(millis(duration))
            .bind(micros(retention_until))
            .execute(pool)
            .await
            .map_err(query("mark a recording truncated"))?
            .rows_affected()
        });
        self.updated_recording(done, id).await
    }

    /// `Ok` when a state change touched the recording, else why not.
    async fn updated_recording(&self, rows_affected: u64, id: &str) -> Result<(), StoreError> {
        if rows_affected > 0 {
            return Ok(());
        }
        let state: Option<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT state FROM recordings WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query("read a recording's state"))?
        });
        match state {
            None => Err(StoreError::NoSuchRecording { id: id.to_owned() }),
            Some(state) => Err(StoreError::NotRecording {
                id: id.to_owned(),
                state: RecordingState::parse(&state)?,
            }),
        }
    }

    /// The recording with this id, its CPR number opened.
    pub async fn recording(&self, id: &str) -> Result<Option<Recording>, StoreError> {
        let raw: Option<RawRecording> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_RECORDING} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query("read a recording"))?
        });
        raw.map(|raw| raw.into_row(&self.keys)).transpose()
    }

    /// Every recording of the citizen with this CPR number, oldest first (by the keyed hash;
    /// for access requests).
    pub async fn recordings_by_cpr(&self, cpr: &Cpr) -> Result<Vec<Recording>, StoreError> {
        let hash = self.keys.lookup_hash(cpr).to_vec();
        let raw: Vec<RawRecording> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_RECORDING} WHERE cpr_hash = $1 ORDER BY started_us, id"
            ))
            .bind(&hash)
            .fetch_all(pool)
            .await
            .map_err(query("find recordings by CPR number"))?
        });
        let mut out = Vec::with_capacity(raw.len());
        for raw in raw {
            let rec = raw.into_row(&self.keys)?;
            if rec.cpr.as_ref() == Some(cpr) {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every recording of a call (the call and any message), oldest first.
    pub async fn recordings_of_call(&self, call_id: &str) -> Result<Vec<Recording>, StoreError> {
        let raw: Vec<RawRecording> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_RECORDING} WHERE call_id = $1 ORDER BY started_us, id"
            ))
            .bind(call_id)
            .fetch_all(pool)
            .await
            .map_err(query("read a call's recordings"))?
        });
        raw.into_iter().map(|r| r.into_row(&self.keys)).collect()
    }

    /// The id, file and state of every catalogued recording, ordered by id: for reconciling
    /// the recordings directory with the catalogue at start-up.
    pub async fn all_recordings(&self) -> Result<Vec<RecordingFile>, StoreError> {
        let raw: Vec<RawRecordingFile> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, file, state FROM recordings ORDER BY id")
                .fetch_all(pool)
                .await
                .map_err(query("list the recordings"))?
        });
        raw.into_iter().map(RawRecordingFile::into_row).collect()
    }

    /// Stores the citizen's CPR number on a recording (sealed and hashed), replacing any
    /// earlier one; [`StoreError::NoSuchRecording`] when there is no such recording.
    pub async fn set_recording_cpr(&self, id: &str, cpr: &Cpr) -> Result<(), StoreError> {
        let (sealed, hash) = self.protect(Some(cpr));
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE recordings SET cpr_sealed = $2, cpr_hash = $3 WHERE id = $1")
                .bind(id)
                .bind(&sealed)
                .bind(&hash)
                .execute(pool)
                .await
                .map_err(query("store a recording's CPR number"))?
                .rows_affected()
        });
        recording_found(done, id)
    }

    /// Sets where a recording stands with the case journal (issue 9);
    /// [`StoreError::NoSuchRecording`] when there is no such recording.
    pub async fn set_journal_state(&self, id: &str, state: JournalState) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE recordings SET journal_state = $2 WHERE id = $1")
                .bind(id)
                .bind(state.as_str())
                .execute(pool)
                .await
                .map_err(query("store a recording's journal state"))?
                .rows_affected()
        });
        recording_found(done, id)
    }

    /// The caller withdrew consent during the call: records when on the call (keeping its
    /// consent answer; a repeated withdrawal keeps the first time) and deletes the call's
    /// `call` recordings **without tombstones**, holds or not, returning their files for the
    /// caller to remove. Messages the caller left are kept. One transaction.
    ///
    /// The call row must exist (the caller inserts it first): [`StoreError::NoSuchCall`]
    /// otherwise, and nothing is deleted. Stop the recorder before calling this; afterwards
    /// [`Store::insert_recording`] refuses new call recordings of the call.
    pub async fn withdraw_consent(
        &self,
        call_id: &str,
        at: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        const ACTION: &str = "withdraw recording consent";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            let done = sqlx::query(
                "UPDATE calls SET consent_withdrawn_us = COALESCE(consent_withdrawn_us, $2) \
                 WHERE id = $1",
            )
            .bind(call_id)
            .bind(micros(at))
            .execute(&mut *tx)
            .await
            .map_err(query(ACTION))?
            .rows_affected();
            if done == 0 {
                return Err(StoreError::NoSuchCall {
                    id: call_id.to_owned(),
                });
            }
            let files: Vec<String> = sqlx::query_scalar(
                "DELETE FROM recordings WHERE call_id = $1 AND kind = 'call' RETURNING file",
            )
            .bind(call_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(query(ACTION))?;
            tx.commit().await.map_err(query(ACTION))?;
            Ok(files)
        })
    }

    // --- retention --------------------------------------------------------------------

    /// Up to `limit` recordings due for deletion (`retention_until <= now`), ordered by
    /// deadline then id, starting after `after` (the previous page's last
    /// [`SweepItem::cursor`]), each with its active holds and journal state.
    ///
    /// Held and journal-linked items are listed too (for alerts); page on with the cursor,
    /// since they stay put while the others are deleted.
    pub async fn sweep_candidates(
        &self,
        now: Timestamp,
        after: Option<&SweepCursor>,
        limit: u32,
    ) -> Result<Vec<SweepItem>, StoreError> {
        let (after_us, after_id) = match after {
            Some(c) => (micros(c.retention_until), c.id.as_str()),
            None => (i64::MIN, ""),
        };
        let sql = format!(
            "SELECT id, call_id, kind, file, COALESCE(ended_us, started_us) AS ended_us, \
             retention_until_us, {holds} AS holds, journal_state FROM recordings \
             WHERE retention_until_us <= $1 \
             AND retention_until_us >= $2 AND (retention_until_us > $2 OR id > $3) \
             ORDER BY retention_until_us, id LIMIT $4",
            holds = active_holds("recordings", "id"),
        );
        let raw: Vec<RawSweepItem> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(micros(now))
                .bind(after_us)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(query("list recordings due for deletion"))?
        });
        raw.into_iter().map(RawSweepItem::into_row).collect()
    }

    /// Deletes one recording and writes its tombstone in one transaction; returns its file
    /// for the caller to remove.
    ///
    /// `None` when there is nothing to delete: already deleted (so a repeat is harmless), held,
    /// or linked to a case and not yet acknowledged by the case system (journal state
    /// `linked`; both checked in the deleting statement). `reason` goes to the tombstone
    /// ("retention", …); `purge_after` is when the tombstone is due. A records officer's
    /// erasure, which may take a linked recording, is [`Store::erase_recording`].
    pub async fn delete_recording(
        &self,
        id: &str,
        reason: &str,
        at: Timestamp,
        purge_after: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let mut files = self
            .delete_batch(&[id], reason, at, purge_after, Guard::Retention, None)
            .await?;
        Ok(files.pop())
    }

    /// Erases one recording on request (GDPR art. 17: the citizen withdrew consent after the
    /// call) or because its file is lost, like [`Store::delete_recording`] but also when it is
    /// linked to a case and not yet journalised: the link does not outweigh the erasure
    /// (refusing a journalised one is the caller's business). Holds still win: `None` when
    /// held or already gone. Audit the erasure before calling this.
    pub async fn erase_recording(
        &self,
        id: &str,
        reason: &str,
        at: Timestamp,
        purge_after: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let mut files = self
            .delete_batch(&[id], reason, at, purge_after, Guard::Erasure, None)
            .await?;
        Ok(files.pop())
    }

    /// [`Store::delete_recording`] for many: [`DELETE_BATCH`] recordings per transaction;
    /// returns the files of those deleted (in no particular order), skipping held, linked and
    /// missing ones.
    pub async fn delete_recordings<S: AsRef<str>>(
        &self,
        ids: &[S],
        reason: &str,
        at: Timestamp,
        purge_after: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.delete_many(ids, reason, at, purge_after, None).await
    }

    /// [`Store::delete_recordings`] that also appends one audit entry per recording deleted,
    /// in the same transaction as its deletion (so no deletion goes unaudited, and nothing
    /// held or linked is audited as deleted): `audit` with the recording's id as
    /// [`AuditEntry::target`] and its CPR look-up hash, if it had one, as
    /// [`AuditEntry::cpr_hash`]. The entries of a batch are chained in one multi-row insert
    /// under the audit log's write lock.
    pub async fn delete_recordings_audited<S: AsRef<str>>(
        &self,
        ids: &[S],
        reason: &str,
        at: Timestamp,
        purge_after: Timestamp,
        audit: &AuditEntry,
    ) -> Result<Vec<String>, StoreError> {
        self.delete_many(ids, reason, at, purge_after, Some(audit))
            .await
    }

    /// Deletes in batches of [`DELETE_BATCH`] under the retention guard.
    async fn delete_many<S: AsRef<str>>(
        &self,
        ids: &[S],
        reason: &str,
        at: Timestamp,
        purge_after: Timestamp,
        audit: Option<&AuditEntry>,
    ) -> Result<Vec<String>, StoreError> {
        let mut files = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(DELETE_BATCH) {
            let chunk: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
            files.extend(
                self.delete_batch(&chunk, reason, at, purge_after, Guard::Retention, audit)
                    .await?,
            );
        }
        Ok(files)
    }

    /// Deletes the recordings among `ids` that `guard` lets go and writes their tombstones
    /// (and, with `audit`, their audit entries), in one transaction.
    ///
    /// The tombstones are written first, from the rows, holds and journal states as they are
    /// at that statement; exactly the recordings that got one are then deleted, so a hold or
    /// journal link committed meanwhile by another connection counts as placed after the
    /// deletion.
    async fn delete_batch(
        &self,
        ids: &[&str],
        reason: &str,
        at: Timestamp,
        purge_after: Timestamp,
        guard: Guard,
        audit: Option<&AuditEntry>,
    ) -> Result<Vec<String>, StoreError> {
        const ACTION: &str = "delete recordings";
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let linked = match guard {
            // Linked to a case, not yet acknowledged by the case system: holds itself.
            Guard::Retention => " AND journal_state <> 'linked'",
            Guard::Erasure => "",
        };
        // A tombstone left by an earlier recording with the same id is replaced.
        let tombstones = format!(
            "INSERT INTO tombstones (recording_id, call_id, kind, started_us, ended_us, \
             deleted_us, reason, cpr_hash, purge_after_us) \
             SELECT id, call_id, kind, started_us, ended_us, $1, $2, cpr_hash, $3 \
             FROM recordings WHERE id IN ({}) AND {} = 0{linked} \
             ON CONFLICT (recording_id) DO UPDATE SET call_id = excluded.call_id, \
             kind = excluded.kind, started_us = excluded.started_us, \
             ended_us = excluded.ended_us, deleted_us = excluded.deleted_us, \
             reason = excluded.reason, cpr_hash = excluded.cpr_hash, \
             purge_after_us = excluded.purge_after_us \
             RETURNING recording_id, cpr_hash",
            placeholders(4, ids.len()),
            active_holds("recordings", "id"),
        );
        let postgres = self.backend() == Backend::Postgres;
        on_pool!(self, |pool| {
            // Audited: the audit log's write lock first (as every appender takes it), so the
            // chain cannot fork and no lock order is reversed.
            let mut tx = match audit {
                Some(_) => pool.begin_with(self.audit_begin()).await,
                None => pool.begin().await,
            }
            .map_err(query(ACTION))?;
            if audit.is_some() && postgres {
                sqlx::query(AUDIT_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(query(ACTION))?;
            }
            let mut q = sqlx::query_as::<_, (String, Option<Vec<u8>>)>(&tombstones)
                .bind(micros(at))
                .bind(reason)
                .bind(micros(purge_after));
            for id in ids {
                q = q.bind(*id);
            }
            let doomed = q.fetch_all(&mut *tx).await.map_err(query(ACTION))?;
            let files = if doomed.is_empty() {
                vec![]
            } else {
                let delete = format!(
                    "DELETE FROM recordings WHERE id IN ({}) RETURNING file",
                    placeholders(1, doomed.len())
                );
                let mut q = sqlx::query_scalar::<_, String>(&delete);
                for (id, _) in &doomed {
                    q = q.bind(id);
                }
                q.fetch_all(&mut *tx).await.map_err(query(ACTION))?
            };
            if let Some(template) = audit {
                let entries = doomed
                    .iter()
                    .map(|(id, hash)| {
                        let mut entry = template.clone();
                        entry.target.clone_from(id);
                        entry.cpr_hash = hash.as_deref().and_then(|h| <[u8; 32]>::try_from(h).ok());
                        entry
                    })
                    .collect::<Vec<_>>();
                if !entries.is_empty() {
                    append_audit_in_tx!(tx, &entries, ACTION);
                }
            }
            tx.commit().await.map_err(query(ACTION))?;
            Ok(files)
        })
    }

    /// Deletes the tombstones due by `now` (`purge_after <= now`) that no active hold names
    /// (by recording id, call id or CPR hash); returns how many.
    pub async fn purge_tombstones(&self, now: Timestamp) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM tombstones WHERE purge_after_us <= $1 AND {} = 0",
            active_holds("tombstones", "recording_id")
        );
        let purged = on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(micros(now))
                .execute(pool)
                .await
                .map_err(query("purge tombstones"))?
                .rows_affected()
        });
        Ok(purged)
    }

    /// The tombstone of a deleted recording.
    pub async fn tombstone(&self, recording_id: &str) -> Result<Option<Tombstone>, StoreError> {
        let raw: Option<RawTombstone> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_TOMBSTONE} WHERE recording_id = $1"))
                .bind(recording_id)
                .fetch_optional(pool)
                .await
                .map_err(query("read a tombstone"))?
        });
        raw.map(RawTombstone::into_row).transpose()
    }

    /// The tombstones of the citizen with this CPR number, oldest first (by the keyed hash;
    /// for access requests).
    pub async fn tombstones_by_cpr(&self, cpr: &Cpr) -> Result<Vec<Tombstone>, StoreError> {
        let hash = self.keys.lookup_hash(cpr).to_vec();
        let raw: Vec<RawTombstone> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_TOMBSTONE} WHERE cpr_hash = $1 ORDER BY started_us, recording_id"
            ))
            .bind(&hash)
            .fetch_all(pool)
            .await
            .map_err(query("find tombstones by CPR number"))?
        });
        raw.into_iter().map(RawTombstone::into_row).collect()
    }

    // --- holds ------------------------------------------------------------------------

    /// Places a hold on a recording, a call's recordings or a citizen's recordings (a CPR
    /// number is stored as its keyed look-up hash only); returns its id.
    pub async fn add_hold(
        &self,
        target: &HoldTarget,
        reason: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        let (scope, id, hash): (&str, Option<&str>, Option<Vec<u8>>) = match target {
            HoldTarget::Recording(id) => ("recording", Some(id), None),
            HoldTarget::Call(id) => ("call", Some(id), None),
            HoldTarget::Cpr(cpr) => ("cpr", None, Some(self.keys.lookup_hash(cpr).to_vec())),
            HoldTarget::CprHash(hash) => ("cpr", None, Some(hash.to_vec())),
        };
        on_pool!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO holds (scope, target, cpr_hash, reason, created_by, created_us) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(scope)
            .bind(id)
            .bind(&hash)
            .bind(reason)
            .bind(by)
            .bind(micros(at))
            .fetch_one(pool)
            .await
            .map_err(query("place a hold"))
        })
    }

    /// Lifts a hold: `true` when lifted now, `false` when it was lifted already (the first
    /// lift is kept); [`StoreError::NoSuchHold`] when there is no such hold.
    pub async fn lift_hold(&self, id: i64, by: &str, at: Timestamp) -> Result<bool, StoreError> {
        const ACTION: &str = "lift a hold";
        let (done, exists) = on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE holds SET lifted_us = $2, lifted_by = $3 \
                 WHERE id = $1 AND lifted_us IS NULL",
            )
            .bind(id)
            .bind(micros(at))
            .bind(by)
            .execute(pool)
            .await
            .map_err(query(ACTION))?
            .rows_affected();
            let exists: Option<i64> = if done == 0 {
                sqlx::query_scalar("SELECT id FROM holds WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(query(ACTION))?
            } else {
                Some(id)
            };
            (done, exists)
        });
        match (done, exists) {
            (0, None) => Err(StoreError::NoSuchHold { id }),
            (0, Some(_)) => Ok(false),
            _ => Ok(true),
        }
    }

    /// The holds, ordered by id: only the active ones, or all (lifted ones too).
    pub async fn holds(&self, active_only: bool) -> Result<Vec<HoldRow>, StoreError> {
        let filter = if active_only {
            " WHERE lifted_us IS NULL"
        } else {
            ""
        };
        let raw: Vec<RawHold> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_HOLD}{filter} ORDER BY id"))
                .fetch_all(pool)
                .await
                .map_err(query("read the holds"))?
        });
        raw.into_iter().map(RawHold::into_row).collect()
    }
}

/// `Ok` when an update touched the recording, else [`StoreError::NoSuchRecording`].
fn recording_found(rows_affected: u64, id: &str) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NoSuchRecording { id: id.to_owned() })
    } else {
        Ok(())
    }
}
