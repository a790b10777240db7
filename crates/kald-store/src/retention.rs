//! Retention of call records' personal data (issue 9): the policy's `call_records_with_cpr`.
//!
//! A call record that holds a CPR number also holds the caller's number; after the policy's
//! period both go ([`Store::scrub_call_pii`]): the sealed CPR number, its look-up hash and the
//! caller's number become NULL and `pii_scrubbed_us` notes when, while the anonymous columns
//! for statistics (times, entry point, topic, queue, outcome, agent, consent answer) stay.
//! Not while an active hold covers the call (by call id or by the citizen's CPR hash), nor
//! while the call still has recordings: an access request by CPR must find the call with its
//! recordings, so the call record waits until they are gone. Both are checked in the scrubbing
//! statement, so a hold placed after the sweeper listed the call still wins.

use jiff::Timestamp;

use crate::recordings::{placeholders, DELETE_BATCH};
use crate::{micros, query, timestamp, Pool, Store, StoreError};

/// SQL for the number of active holds on a row of `calls`: by call id and by CPR hash.
const CALL_HOLDS: &str = "((SELECT COUNT(*) FROM holds h WHERE h.scope = 'call' \
                          AND h.target = calls.id AND h.lifted_us IS NULL) \
                          + (SELECT COUNT(*) FROM holds h WHERE h.scope = 'cpr' \
                          AND h.cpr_hash = calls.cpr_hash AND h.lifted_us IS NULL))";

/// SQL for the number of recordings (and messages) a row of `calls` still has.
const CALL_RECORDINGS: &str = "(SELECT COUNT(*) FROM recordings r WHERE r.call_id = calls.id)";

/// When a call record's retention starts: its end, or its start if it never ended.
const CALL_ENDED: &str = "COALESCE(ended_us, started_us)";

/// A call record that still holds a CPR number and whose period may have ended, as the
/// sweeper needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPiiItem {
    /// The call's id.
    pub id: String,
    /// When the call ended (its start if it never ended): the period starts here.
    pub ended: Timestamp,
    /// Active holds on the call, by call id or CPR hash.
    pub holds: u32,
    /// Recordings and messages of the call still catalogued.
    pub recordings: u32,
}

impl CallPiiItem {
    /// The cursor for the page after this item.
    pub fn cursor(&self) -> CallPiiCursor {
        CallPiiCursor {
            ended: self.ended,
            id: self.id.clone(),
        }
    }
}

/// Where a page of [`CallPiiItem`]s ended; pass it to get the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPiiCursor {
    /// The last item's end.
    pub ended: Timestamp,
    /// The last item's id.
    pub id: String,
}

/// A row of the candidates' query.
#[derive(sqlx::FromRow)]
struct RawCallPiiItem {
    id: String,
    ended_us: i64,
    holds: i64,
    recordings: i64,
}

impl RawCallPiiItem {
    fn into_row(self) -> Result<CallPiiItem, StoreError> {
        let count = |n: i64, what| {
            u32::try_from(n).map_err(|_| StoreError::Corrupt {
                what,
                reason: "out of range",
            })
        };
        Ok(CallPiiItem {
            ended: timestamp(self.ended_us, "call end time")?,
            holds: count(self.holds, "hold count")?,
            recordings: count(self.recordings, "recording count")?,
            id: self.id,
        })
    }
}

impl Store {
    /// Up to `limit` call records that still hold a CPR number and ended (or, never ended,
    /// started) at or before `ended_by`, ordered by that time then id, starting after `after`
    /// (the previous page's last [`CallPiiItem::cursor`]), each with its active holds and
    /// recordings. The caller decides which are due by the policy; held ones and ones with
    /// recordings are listed too, so page on with the cursor.
    pub async fn call_pii_candidates(
        &self,
        ended_by: Timestamp,
        after: Option<&CallPiiCursor>,
        limit: u32,
    ) -> Result<Vec<CallPiiItem>, StoreError> {
        let (after_us, after_id) = match after {
            Some(c) => (micros(c.ended), c.id.as_str()),
            None => (i64::MIN, ""),
        };
        let sql = format!(
            "SELECT id, {CALL_ENDED} AS ended_us, {CALL_HOLDS} AS holds, \
             {CALL_RECORDINGS} AS recordings FROM calls \
             WHERE cpr_hash IS NOT NULL AND {CALL_ENDED} <= $1 \
             AND {CALL_ENDED} >= $2 AND ({CALL_ENDED} > $2 OR id > $3) \
             ORDER BY {CALL_ENDED}, id LIMIT $4"
        );
        let raw: Vec<RawCallPiiItem> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(micros(ended_by))
                .bind(after_us)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(query("list call records due for scrubbing"))?
        });
        raw.into_iter().map(RawCallPiiItem::into_row).collect()
    }

    /// Removes the personal data of the call records among `ids` (see the module
    /// documentation): the sealed CPR number, its hash and the caller's number, noting `at`;
    /// skips calls without a CPR number, held ones and ones that still have recordings
    /// (checked in the statement). [`DELETE_BATCH`] calls per statement; returns the ids
    /// scrubbed.
    pub async fn scrub_call_pii<S: AsRef<str>>(
        &self,
        ids: &[S],
        at: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let mut scrubbed = Vec::new();
        for chunk in ids.chunks(DELETE_BATCH) {
            let sql = format!(
                "UPDATE calls SET cpr_sealed = NULL, cpr_hash = NULL, caller = NULL, \
                 pii_scrubbed_us = $1 \
                 WHERE id IN ({}) AND cpr_hash IS NOT NULL AND {CALL_HOLDS} = 0 \
                 AND {CALL_RECORDINGS} = 0 RETURNING id",
                placeholders(2, chunk.len())
            );
            let done: Vec<String> = on_pool!(self, |pool| {
                let mut q = sqlx::query_scalar::<_, String>(&sql).bind(micros(at));
                for id in chunk {
                    q = q.bind(id.as_ref());
                }
                q.fetch_all(pool)
                    .await
                    .map_err(query("scrub call records' personal data"))?
            });
            scrubbed.extend(done);
        }
        Ok(scrubbed)
    }

    /// When the call record's personal data was removed ([`Store::scrub_call_pii`]); `None`
    /// while it is kept, or for no such call.
    pub async fn call_pii_scrubbed(&self, id: &str) -> Result<Option<Timestamp>, StoreError> {
        let us: Option<Option<i64>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT pii_scrubbed_us FROM calls WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query("read when a call record was scrubbed"))?
        });
        us.flatten()
            .map(|us| timestamp(us, "scrub time"))
            .transpose()
    }
}
