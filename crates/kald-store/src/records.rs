//! Records management (issue 9): CPR corrections, the agents' listening grants, search, and
//! access requests with the items they found and the decisions on each.
//!
//! Journal links and the journalising outbox live in `journal.rs`; the audit log in
//! [`crate::audit`]. Nothing here writes an audit entry: the caller knows who acts and why,
//! and appends one ([`Store::append_audit`]) after the change.

use std::fmt;

use jiff::civil::Date;
use jiff::Timestamp;
use kald_core::Cpr;

use crate::rows::{opt_timestamp, HoldTarget, RawCall};
use crate::{micros, query, timestamp, CallRecord, Pool, Store, StoreError};

stored_names!(
    /// Where a team leader's or coach's access to one of an agent's recordings stands.
    GrantState, "listen grant state" {
        /// Asked for, with a reason; the agent has not answered.
        Requested = "requested",
        /// Granted by the agent: the grantee may listen and download.
        Granted = "granted",
        /// Refused by the agent.
        Refused = "refused",
        /// Granted once, withdrawn by the agent since.
        Withdrawn = "withdrawn",
    }
);

stored_names!(
    /// The law an access request is made under.
    AccessLaw, "access request law" {
        /// Aktindsigt under forvaltningsloven (7 working days, § 16(2)).
        Forvaltningsloven = "forvaltningsloven",
        /// The right of access, GDPR art. 15 (one month, art. 12(3)).
        Gdpr = "gdpr",
    }
);

stored_names!(
    /// Where an access request stands.
    AccessState, "access request state" {
        /// Opened; items found, being reviewed.
        Open = "open",
        /// Every item has a decision.
        Reviewed = "reviewed",
        /// The archive was exported for the requester.
        Answered = "answered",
        /// Closed; its hold is lifted.
        Closed = "closed",
    }
);

stored_names!(
    /// What an access request found.
    AccessItemKind, "access item kind" {
        /// A recording of a call.
        Recording = "recording",
        /// A message the citizen left.
        Message = "message",
        /// A call record.
        Call = "call",
        /// What is left of a deleted recording.
        Tombstone = "tombstone",
        /// An audit entry about the citizen's recordings.
        Audit = "audit",
    }
);

/// A listening grant as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenGrant {
    /// The recording.
    pub recording_id: String,
    /// The agent whose recording it is (who decides).
    pub agent: String,
    /// The team leader or coach it concerns.
    pub grantee: String,
    /// Where it stands.
    pub state: GrantState,
    /// Why the grantee asked, if they did.
    pub reason: Option<String>,
    /// When they asked.
    pub requested: Option<Timestamp>,
    /// When the agent last decided.
    pub decided: Option<Timestamp>,
}

/// What a records officer writes down when an access request comes in.
#[derive(Clone, Debug)]
pub struct NewAccessRequest {
    /// The law it is made under.
    pub law: AccessLaw,
    /// The day it was received (Europe/Copenhagen).
    pub received: Date,
    /// Who asked (the citizen, or their representative).
    pub requester: String,
    /// How the requester's identity was verified.
    pub identity_verified_by: String,
    /// The citizen's CPR number: stored sealed, found by its keyed hash.
    pub cpr: Cpr,
}

/// An access request as stored, its CPR number opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAccessRequest {
    /// The request's number.
    pub id: i64,
    /// The law it is made under.
    pub law: AccessLaw,
    /// The day it was received.
    pub received: Date,
    /// Who asked.
    pub requester: String,
    /// How the requester's identity was verified.
    pub identity_verified_by: String,
    /// The citizen's CPR number.
    pub cpr: Cpr,
    /// The keyed look-up hash of the CPR number.
    pub cpr_hash: [u8; 32],
    /// An extended deadline and its reason.
    pub extension: Option<(Date, String)>,
    /// Where it stands.
    pub state: AccessState,
    /// The hold it placed on everything of the citizen (lifted when closed).
    pub hold_id: Option<i64>,
    /// The records officer who opened it.
    pub created_by: String,
    /// When it was opened.
    pub created: Timestamp,
    /// When its archive was exported.
    pub answered: Option<Timestamp>,
}

/// A records officer's decision on one item, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemDecision {
    /// Released in full.
    Release,
    /// Withheld, with the legal reason.
    Withhold(String),
    /// Released with these `(start_ms, end_ms)` ranges from the audio's start muted.
    ReleaseMuted(Vec<(u64, u64)>),
}

/// One item an access request found, and the decision on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessItem {
    /// What it is.
    pub kind: AccessItemKind,
    /// Its id (recording, call, tombstone's recording or audit row).
    pub item_id: String,
    /// The decision, once reviewed.
    pub decision: Option<ItemDecision>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided: Option<Timestamp>,
}

/// What to search calls by; every given key must match. A CPR number is matched through its
/// keyed hash only.
#[derive(Clone, Debug, Default)]
pub struct CallSearch {
    /// The citizen's CPR number (as typed in the IVR or corrected by the agent).
    pub cpr: Option<Cpr>,
    /// The caller's number, exactly as presented.
    pub caller: Option<String>,
    /// Calls that started at or after this.
    pub from: Option<Timestamp>,
    /// Calls that started before this.
    pub to: Option<Timestamp>,
    /// A case number the call is (still) linked to.
    pub case_number: Option<String>,
    /// The agent who took the call.
    pub agent: Option<String>,
    /// At most this many calls, newest first (0: the default of 200).
    pub limit: u32,
}

/// The most calls one search returns.
pub const SEARCH_LIMIT: u32 = 200;

/// The columns of an access request, in [`RawAccessRequest`]'s names.
const SELECT_ACCESS_REQUEST: &str = "SELECT id, law, received, requester, identity_verified_by, \
     cpr_sealed, cpr_hash, extended_until, extension_reason, state, hold_id, created_by, \
     created_us, answered_us FROM access_requests";

/// The columns of a listening grant, in [`RawGrant`]'s names.
const SELECT_GRANT: &str = "SELECT recording_id, agent_id, grantee, state, reason, requested_us, \
     decided_us FROM listen_grants";

impl Store {
    // --- CPR corrections ----------------------------------------------------------------

    /// The agent, having verified the caller's identity, enters or corrects the CPR number of
    /// a call: the call and its recordings carry the new number (sealed and hashed) from now
    /// on, and the number typed in the IVR no longer overwrites it. One transaction.
    pub async fn correct_call_cpr(
        &self,
        call_id: &str,
        cpr: &Cpr,
        by: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        const ACTION: &str = "correct a call's CPR number";
        let (sealed, hash) = (self.keys.seal(cpr), self.keys.lookup_hash(cpr).to_vec());
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            let done = sqlx::query(
                "UPDATE calls SET cpr_sealed = $2, cpr_hash = $3, cpr_corrected_us = $4, \
                 cpr_corrected_by = $5 WHERE id = $1",
            )
            .bind(call_id)
            .bind(&sealed)
            .bind(&hash)
            .bind(micros(at))
            .bind(by)
            .execute(&mut *tx)
            .await
            .map_err(query(ACTION))?
            .rows_affected();
            if done == 0 {
                return Err(StoreError::NoSuchCall {
                    id: call_id.to_owned(),
                });
            }
            sqlx::query("UPDATE recordings SET cpr_sealed = $2, cpr_hash = $3 WHERE call_id = $1")
                .bind(call_id)
                .bind(&sealed)
                .bind(&hash)
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            tx.commit().await.map_err(query(ACTION))
        })
    }

    // --- listening grants ---------------------------------------------------------------

    /// A team leader or coach asks to listen to an agent's recording, saying why. A grant
    /// already given stays given; a refusal or withdrawal becomes a new request.
    pub async fn request_listen(
        &self,
        recording_id: &str,
        agent: &str,
        grantee: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<GrantState, StoreError> {
        const ACTION: &str = "ask to listen to a recording";
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO listen_grants (recording_id, agent_id, grantee, state, reason, \
                 requested_us) VALUES ($1, $2, $3, 'requested', $4, $5) \
                 ON CONFLICT (recording_id, grantee) DO UPDATE SET \
                 state = CASE WHEN listen_grants.state = 'granted' THEN 'granted' \
                 ELSE 'requested' END, reason = excluded.reason, \
                 requested_us = excluded.requested_us",
            )
            .bind(recording_id)
            .bind(agent)
            .bind(grantee)
            .bind(reason)
            .bind(micros(at))
            .execute(pool)
            .await
            .map_err(query(ACTION))?;
        });
        let grant = self.listen_grant(recording_id, grantee).await?;
        Ok(grant.map_or(GrantState::Requested, |g| g.state))
    }

    /// The agent grants (`true`) or refuses (`false`) a grantee access to one of their
    /// recordings, asked for or not.
    pub async fn decide_listen(
        &self,
        recording_id: &str,
        agent: &str,
        grantee: &str,
        grant: bool,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let state = if grant {
            GrantState::Granted
        } else {
            GrantState::Refused
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO listen_grants (recording_id, agent_id, grantee, state, decided_us) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (recording_id, grantee) DO UPDATE SET state = excluded.state, \
                 decided_us = excluded.decided_us",
            )
            .bind(recording_id)
            .bind(agent)
            .bind(grantee)
            .bind(state.as_str())
            .bind(micros(at))
            .execute(pool)
            .await
            .map_err(query("decide on listening to a recording"))?;
        });
        Ok(())
    }

    /// The agent withdraws a grant: `true` when one was given and is now withdrawn.
    pub async fn withdraw_listen(
        &self,
        recording_id: &str,
        grantee: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE listen_grants SET state = 'withdrawn', decided_us = $3 \
                 WHERE recording_id = $1 AND grantee = $2 AND state = 'granted'",
            )
            .bind(recording_id)
            .bind(grantee)
            .bind(micros(at))
            .execute(pool)
            .await
            .map_err(query("withdraw a listening grant"))?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// The grant of one recording to one grantee, if any was asked for or given.
    pub async fn listen_grant(
        &self,
        recording_id: &str,
        grantee: &str,
    ) -> Result<Option<ListenGrant>, StoreError> {
        let raw: Option<RawGrant> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_GRANT} WHERE recording_id = $1 AND grantee = $2"
            ))
            .bind(recording_id)
            .bind(grantee)
            .fetch_optional(pool)
            .await
            .map_err(query("read a listening grant"))?
        });
        raw.map(RawGrant::into_row).transpose()
    }

    /// The grants on an agent's recordings (`agent`), or asked for by a grantee (`grantee`),
    /// newest first.
    pub async fn listen_grants(
        &self,
        agent: Option<&str>,
        grantee: Option<&str>,
    ) -> Result<Vec<ListenGrant>, StoreError> {
        let raw: Vec<RawGrant> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_GRANT} WHERE ($1 IS NULL OR agent_id = $1) \
                 AND ($2 IS NULL OR grantee = $2) \
                 ORDER BY COALESCE(decided_us, requested_us) DESC, id DESC"
            ))
            .bind(agent)
            .bind(grantee)
            .fetch_all(pool)
            .await
            .map_err(query("read listening grants"))?
        });
        raw.into_iter().map(RawGrant::into_row).collect()
    }

    // --- search -------------------------------------------------------------------------

    /// The calls matching every key of `search`, newest first, at most
    /// [`CallSearch::limit`] (default and most [`SEARCH_LIMIT`]).
    pub async fn search_calls(&self, search: &CallSearch) -> Result<Vec<CallRecord>, StoreError> {
        let hash = search
            .cpr
            .as_ref()
            .map(|c| self.keys.lookup_hash(c).to_vec());
        let limit = match search.limit {
            0 => SEARCH_LIMIT,
            n => n.min(SEARCH_LIMIT),
        };
        let sql = format!(
            "{} WHERE ($1 IS NULL OR cpr_hash = $1) AND ($2 IS NULL OR caller = $2) \
             AND ($3 IS NULL OR started_us >= $3) AND ($4 IS NULL OR started_us < $4) \
             AND ($5 IS NULL OR id IN (SELECT call_id FROM journal_links \
                  WHERE case_number = $5 AND removed_us IS NULL)) \
             AND ($6 IS NULL OR agent_id = $6) \
             ORDER BY started_us DESC, id DESC LIMIT $7",
            crate::SELECT_CALL
        );
        let raw: Vec<RawCall> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&hash)
                .bind(&search.caller)
                .bind(search.from.map(micros))
                .bind(search.to.map(micros))
                .bind(&search.case_number)
                .bind(&search.agent)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(query("search calls"))?
        });
        raw.into_iter().map(|r| r.into_record(&self.keys)).collect()
    }

    // --- access requests ----------------------------------------------------------------

    /// Opens an access request: places a hold on everything of the citizen (by the CPR
    /// number's keyed hash) first, then stores the request and every item found: the
    /// citizen's recordings and messages, call records, tombstones, and the audit entries
    /// about them. Returns the request's number.
    pub async fn open_access_request(
        &self,
        request: &NewAccessRequest,
        by: &str,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        let hash = self.keys.lookup_hash(&request.cpr);
        let hold = self
            .add_hold(&HoldTarget::CprHash(hash), "access request", by, at)
            .await?;
        let sealed = self.keys.seal(&request.cpr);
        let id: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO access_requests (law, received, requester, identity_verified_by, \
                 cpr_sealed, cpr_hash, state, hold_id, created_by, created_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9) RETURNING id",
            )
            .bind(request.law.as_str())
            .bind(request.received.to_string())
            .bind(&request.requester)
            .bind(&request.identity_verified_by)
            .bind(&sealed)
            .bind(hash.to_vec())
            .bind(hold)
            .bind(by)
            .bind(micros(at))
            .fetch_one(pool)
            .await
            .map_err(query("open an access request"))?
        });
        self.find_access_items(id).await?;
        Ok(id)
    }

    /// Finds (again) everything of the request's citizen and adds what is new to its items;
    /// returns how many were added. Decisions already made stay.
    pub async fn find_access_items(&self, id: i64) -> Result<usize, StoreError> {
        let request = self
            .access_request(id)
            .await?
            .ok_or(StoreError::NoSuchAccessRequest { id })?;
        let cpr = &request.cpr;
        let mut found: Vec<(AccessItemKind, String)> = Vec::new();
        let mut recording_ids = Vec::new();
        for rec in self.recordings_by_cpr(cpr).await? {
            let kind = match rec.kind {
                crate::RecordingKind::Call => AccessItemKind::Recording,
                crate::RecordingKind::Message => AccessItemKind::Message,
            };
            recording_ids.push(rec.id.clone());
            found.push((kind, rec.id));
        }
        for call in self.calls_by_cpr(cpr).await? {
            found.push((AccessItemKind::Call, call.call.id));
        }
        for tomb in self.tombstones_by_cpr(cpr).await? {
            recording_ids.push(tomb.recording_id.clone());
            found.push((AccessItemKind::Tombstone, tomb.recording_id));
        }
        let mut audit_ids: Vec<i64> = self
            .audit_by_cpr(cpr)
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
        for rec in &recording_ids {
            let rows = self
                .audit(&crate::AuditFilter {
                    target: Some(rec.clone()),
                    ..crate::AuditFilter::default()
                })
                .await?;
            audit_ids.extend(rows.into_iter().map(|row| row.id));
        }
        audit_ids.sort_unstable();
        audit_ids.dedup();
        found.extend(
            audit_ids
                .into_iter()
                .map(|a| (AccessItemKind::Audit, a.to_string())),
        );
        let mut added = 0;
        for (kind, item) in found {
            if self.add_access_item(id, kind, &item).await? {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Adds one item to an access request (e.g. a call a relative made, found by the
    /// caller's number); `false` when it was there already. A call or recording added this
    /// way is held too, for as long as the request's hold.
    pub async fn add_access_item(
        &self,
        id: i64,
        kind: AccessItemKind,
        item_id: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO access_items (request_id, kind, item_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (request_id, kind, item_id) DO NOTHING",
            )
            .bind(id)
            .bind(kind.as_str())
            .bind(item_id)
            .execute(pool)
            .await
            .map_err(query("add an item to an access request"))?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// The access request with this number, its CPR number opened.
    pub async fn access_request(&self, id: i64) -> Result<Option<StoredAccessRequest>, StoreError> {
        let raw: Option<RawAccessRequest> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_ACCESS_REQUEST} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query("read an access request"))?
        });
        raw.map(|r| r.into_row(self)).transpose()
    }

    /// Every access request, newest first; only those not closed when `open_only`.
    pub async fn access_requests(
        &self,
        open_only: bool,
    ) -> Result<Vec<StoredAccessRequest>, StoreError> {
        let filter = if open_only {
            " WHERE state <> 'closed'"
        } else {
            ""
        };
        let raw: Vec<RawAccessRequest> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_ACCESS_REQUEST}{filter} ORDER BY id DESC"))
                .fetch_all(pool)
                .await
                .map_err(query("list access requests"))?
        });
        raw.into_iter().map(|r| r.into_row(self)).collect()
    }

    /// The items of an access request in the order found, with their decisions.
    pub async fn access_items(&self, id: i64) -> Result<Vec<AccessItem>, StoreError> {
        let raw: Vec<RawAccessItem> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, item_id, decision, legal_reason, muted_ranges, decided_by, \
                 decided_us FROM access_items WHERE request_id = $1 ORDER BY kind, item_id",
            )
            .bind(id)
            .fetch_all(pool)
            .await
            .map_err(query("read an access request's items"))?
        });
        raw.into_iter().map(RawAccessItem::into_row).collect()
    }

    /// Records a decision on one item (a later decision replaces an earlier one);
    /// [`StoreError::NoSuchAccessItem`] when the request has no such item.
    pub async fn decide_access_item(
        &self,
        id: i64,
        kind: AccessItemKind,
        item_id: &str,
        decision: &ItemDecision,
        by: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let (name, reason, ranges) = match decision {
            ItemDecision::Release => ("release", None, None),
            ItemDecision::Withhold(reason) => ("withhold", Some(reason.clone()), None),
            ItemDecision::ReleaseMuted(ranges) => (
                "release-muted",
                None,
                Some(
                    serde_json::to_string(ranges).map_err(|_| StoreError::Corrupt {
                        what: "muted ranges",
                        reason: "cannot be written as JSON",
                    })?,
                ),
            ),
        };
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE access_items SET decision = $4, legal_reason = $5, muted_ranges = $6, \
                 decided_by = $7, decided_us = $8 \
                 WHERE request_id = $1 AND kind = $2 AND item_id = $3",
            )
            .bind(id)
            .bind(kind.as_str())
            .bind(item_id)
            .bind(name)
            .bind(&reason)
            .bind(&ranges)
            .bind(by)
            .bind(micros(at))
            .execute(pool)
            .await
            .map_err(query("decide on an access request's item"))?
            .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NoSuchAccessItem {
                id,
                item: item_id.to_owned(),
            });
        }
        Ok(())
    }

    /// Extends an access request's deadline with the reason told to the requester.
    pub async fn extend_access_request(
        &self,
        id: i64,
        until: Date,
        reason: &str,
    ) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE access_requests SET extended_until = $2, extension_reason = $3 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(until.to_string())
            .bind(reason)
            .execute(pool)
            .await
            .map_err(query("extend an access request"))?
            .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NoSuchAccessRequest { id });
        }
        Ok(())
    }

    /// Moves an access request to `state`; `Answered` records when, `Closed` lifts its hold.
    pub async fn set_access_state(
        &self,
        id: i64,
        state: AccessState,
        by: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let request = self
            .access_request(id)
            .await?
            .ok_or(StoreError::NoSuchAccessRequest { id })?;
        let answered = match state {
            AccessState::Answered => Some(micros(at)),
            _ => request.answered.map(micros),
        };
        on_pool!(self, |pool| {
            sqlx::query("UPDATE access_requests SET state = $2, answered_us = $3 WHERE id = $1")
                .bind(id)
                .bind(state.as_str())
                .bind(answered)
                .execute(pool)
                .await
                .map_err(query("change an access request's state"))?;
        });
        if state == AccessState::Closed {
            if let Some(hold) = request.hold_id {
                self.lift_hold(hold, by, at).await?;
            }
        }
        Ok(())
    }
}

/// `listen_grants` as read.
#[derive(sqlx::FromRow)]
struct RawGrant {
    /// See [`ListenGrant::recording_id`].
    recording_id: String,
    /// See [`ListenGrant::agent`].
    agent_id: String,
    /// See [`ListenGrant::grantee`].
    grantee: String,
    /// See [`ListenGrant::state`].
    state: String,
    /// See [`ListenGrant::reason`].
    reason: Option<String>,
    /// See [`ListenGrant::requested`].
    requested_us: Option<i64>,
    /// See [`ListenGrant::decided`].
    decided_us: Option<i64>,
}

impl RawGrant {
    /// The public row.
    fn into_row(self) -> Result<ListenGrant, StoreError> {
        Ok(ListenGrant {
            recording_id: self.recording_id,
            agent: self.agent_id,
            grantee: self.grantee,
            state: GrantState::parse(&self.state)?,
            reason: self.reason,
            requested: opt_timestamp(self.requested_us, "listen request time")?,
            decided: opt_timestamp(self.decided_us, "listen decision time")?,
        })
    }
}

/// `access_requests` as read.
#[derive(sqlx::FromRow)]
struct RawAccessRequest {
    /// See [`StoredAccessRequest::id`].
    id: i64,
    /// See [`StoredAccessRequest::law`].
    law: String,
    /// See [`StoredAccessRequest::received`].
    received: String,
    /// See [`StoredAccessRequest::requester`].
    requester: String,
    /// See [`StoredAccessRequest::identity_verified_by`].
    identity_verified_by: String,
    /// The sealed CPR number.
    cpr_sealed: Vec<u8>,
    /// See [`StoredAccessRequest::cpr_hash`].
    cpr_hash: Vec<u8>,
    /// The extended deadline.
    extended_until: Option<String>,
    /// Why it was extended.
    extension_reason: Option<String>,
    /// See [`StoredAccessRequest::state`].
    state: String,
    /// See [`StoredAccessRequest::hold_id`].
    hold_id: Option<i64>,
    /// See [`StoredAccessRequest::created_by`].
    created_by: String,
    /// See [`StoredAccessRequest::created`].
    created_us: i64,
    /// See [`StoredAccessRequest::answered`].
    answered_us: Option<i64>,
}

/// A stored civil date.
fn date(text: &str) -> Result<Date, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        what: "date",
        reason: "not YYYY-MM-DD",
    })
}

impl RawAccessRequest {
    /// The public row, its CPR number opened.
    fn into_row(self, store: &Store) -> Result<StoredAccessRequest, StoreError> {
        let cpr =
            store
                .keys
                .open(&self.cpr_sealed)
                .map_err(|source| StoreError::AccessRequestCpr {
                    id: self.id,
                    source,
                })?;
        let cpr_hash: [u8; 32] =
            self.cpr_hash
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt {
                    what: "access request CPR hash",
                    reason: "not 32 bytes",
                })?;
        let extension = match (self.extended_until, self.extension_reason) {
            (Some(until), Some(reason)) => Some((date(&until)?, reason)),
            _ => None,
        };
        Ok(StoredAccessRequest {
            id: self.id,
            law: AccessLaw::parse(&self.law)?,
            received: date(&self.received)?,
            requester: self.requester,
            identity_verified_by: self.identity_verified_by,
            cpr,
            cpr_hash,
            extension,
            state: AccessState::parse(&self.state)?,
            hold_id: self.hold_id,
            created_by: self.created_by,
            created: timestamp(self.created_us, "access request time")?,
            answered: opt_timestamp(self.answered_us, "access request answer time")?,
        })
    }
}

/// `access_items` as read.
#[derive(sqlx::FromRow)]
struct RawAccessItem {
    /// See [`AccessItem::kind`].
    kind: String,
    /// See [`AccessItem::item_id`].
    item_id: String,
    /// The decision's name.
    decision: Option<String>,
    /// A withhold's legal reason.
    legal_reason: Option<String>,
    /// A muted release's ranges, JSON.
    muted_ranges: Option<String>,
    /// See [`AccessItem::decided_by`].
    decided_by: Option<String>,
    /// See [`AccessItem::decided`].
    decided_us: Option<i64>,
}

impl RawAccessItem {
    /// The public row.
    fn into_row(self) -> Result<AccessItem, StoreError> {
        let corrupt = |reason| StoreError::Corrupt {
            what: "access item decision",
            reason,
        };
        let decision = match self.decision.as_deref() {
            None => None,
            Some("release") => Some(ItemDecision::Release),
            Some("withhold") => Some(ItemDecision::Withhold(
                self.legal_reason
                    .ok_or_else(|| corrupt("withheld without a reason"))?,
            )),
            Some("release-muted") => Some(ItemDecision::ReleaseMuted(
                serde_json::from_str(self.muted_ranges.as_deref().unwrap_or(""))
                    .map_err(|_| corrupt("muted ranges are not JSON pairs"))?,
            )),
            Some(_) => return Err(corrupt("unknown decision")),
        };
        Ok(AccessItem {
            kind: AccessItemKind::parse(&self.kind)?,
            item_id: self.item_id,
            decision,
            decided_by: self.decided_by,
            decided: opt_timestamp(self.decided_us, "access item decision time")?,
        })
    }
}

impl Store {
    /// The recordings an agent took part in, newest first, at most `limit` (for the agent's
    /// "my recordings" and a team leader's list).
    pub async fn recordings_of_agent(
        &self,
        agent: &str,
        limit: u32,
    ) -> Result<Vec<crate::Recording>, StoreError> {
        let raw: Vec<crate::rows::RawRecording> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{} WHERE agent_id = $1 ORDER BY started_us DESC, id DESC LIMIT $2",
                crate::recordings::SELECT_RECORDING
            ))
            .bind(agent)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(query("read an agent's recordings"))?
        });
        raw.into_iter().map(|r| r.into_row(&self.keys)).collect()
    }
}

/// Counts for monitoring records management (`/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordsCounts {
    /// Documents for the case system not yet acknowledged.
    pub journal_pending: u64,
    /// Of those, the ones that failed at least once (the case system is not taking them).
    pub journal_failing: u64,
    /// Recordings linked to a case and not yet acknowledged (kept past their deadline).
    pub recordings_awaiting_journal: u64,
    /// Holds not lifted.
    pub holds_active: u64,
}

impl Store {
    /// The records management counts (a few indexed counts).
    pub async fn records_counts(&self) -> Result<RecordsCounts, StoreError> {
        const ACTION: &str = "count records for monitoring";
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let (pending, failing, linked, holds): (i64, i64, i64, i64) = on_pool!(self, |pool| {
            let pending =
                sqlx::query_scalar("SELECT COUNT(*) FROM journal_exports WHERE state = 'pending'")
                    .fetch_one(pool)
                    .await
                    .map_err(query(ACTION))?;
            let failing = sqlx::query_scalar(
                "SELECT COUNT(*) FROM journal_exports WHERE state = 'pending' AND attempts > 0",
            )
            .fetch_one(pool)
            .await
            .map_err(query(ACTION))?;
            let linked = sqlx::query_scalar(
                "SELECT COUNT(*) FROM recordings WHERE journal_state = 'linked'",
            )
            .fetch_one(pool)
            .await
            .map_err(query(ACTION))?;
            let holds = sqlx::query_scalar("SELECT COUNT(*) FROM holds WHERE lifted_us IS NULL")
                .fetch_one(pool)
                .await
                .map_err(query(ACTION))?;
            (pending, failing, linked, holds)
        });
        Ok(RecordsCounts {
            journal_pending: count(pending),
            journal_failing: count(failing),
            recordings_awaiting_journal: count(linked),
            holds_active: count(holds),
        })
    }
}
