//! Agents' SIP registrations kept across a restart (migration 0006).
//!
//! A phone registers for up to an hour, so after a restart kald would not know where to ring
//! an agent until the phone refreshes. kald saves its UDP bindings now and then as a snapshot
//! ([`Store::replace_sip_bindings`]) and restores the unexpired ones at start
//! ([`Store::sip_bindings`]). Each kald saves under its own `instance` name (its SIP address),
//! so several on one database do not overwrite each other's.

use std::net::SocketAddr;

use jiff::Timestamp;

use crate::{micros, query, timestamp, Pool, Store, StoreError};

/// A saved SIP binding: an agent's registered contact and where its phone is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipBindingRow {
    /// The agent login.
    pub agent: String,
    /// The Contact URI.
    pub contact: String,
    /// The REGISTER's Call-ID.
    pub call_id: String,
    /// The REGISTER's CSeq.
    pub cseq: u32,
    /// The phone's address (the REGISTER's packet source).
    pub remote: SocketAddr,
    /// kald's address the REGISTER arrived on.
    pub local: SocketAddr,
    /// When the registration runs out unless refreshed.
    pub expires: Timestamp,
}

/// `sip_bindings` as read.
#[derive(sqlx::FromRow)]
struct RawBinding {
    agent_id: String,
    contact: String,
    call_id: String,
    cseq: i64,
    remote: String,
    local: String,
    expires_us: i64,
}

impl RawBinding {
    fn into_row(self) -> Result<SipBindingRow, StoreError> {
        let corrupt = |reason| StoreError::Corrupt {
            what: "SIP binding",
            reason,
        };
        Ok(SipBindingRow {
            agent: self.agent_id,
            contact: self.contact,
            call_id: self.call_id,
            cseq: u32::try_from(self.cseq).map_err(|_| corrupt("CSeq out of range"))?,
            remote: self
                .remote
                .parse()
                .map_err(|_| corrupt("remote is not ip:port"))?,
            local: self
                .local
                .parse()
                .map_err(|_| corrupt("local is not ip:port"))?,
            expires: timestamp(self.expires_us, "SIP binding expiry")?,
        })
    }
}

impl Store {
    /// Replaces the bindings saved by `instance` with `rows`, in one transaction (a snapshot
    /// of its registrar; two rows of one agent and contact keep the later).
    pub async fn replace_sip_bindings(
        &self,
        instance: &str,
        rows: &[SipBindingRow],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "save the SIP bindings";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(query(ACTION))?;
            sqlx::query("DELETE FROM sip_bindings WHERE instance = $1")
                .bind(instance)
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            for row in rows {
                sqlx::query(
                    "INSERT INTO sip_bindings \
                     (agent_id, contact, call_id, cseq, remote, local, expires_us, instance) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (instance, agent_id, contact) DO UPDATE SET \
                     call_id = excluded.call_id, \
                     cseq = excluded.cseq, remote = excluded.remote, local = excluded.local, \
                     expires_us = excluded.expires_us",
                )
                .bind(&row.agent)
                .bind(&row.contact)
                .bind(&row.call_id)
                .bind(i64::from(row.cseq))
                .bind(row.remote.to_string())
                .bind(row.local.to_string())
                .bind(micros(row.expires))
                .bind(instance)
                .execute(&mut *tx)
                .await
                .map_err(query(ACTION))?;
            }
            tx.commit().await.map_err(query(ACTION))
        })
    }

    /// The bindings `instance` saved that are still valid at `now`, by agent and contact. A
    /// row that cannot be read is left out (this is a cache: the phone registers again).
    pub async fn sip_bindings(
        &self,
        instance: &str,
        now: Timestamp,
    ) -> Result<Vec<SipBindingRow>, StoreError> {
        let raw: Vec<RawBinding> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT agent_id, contact, call_id, cseq, remote, local, expires_us \
                 FROM sip_bindings WHERE instance = $1 AND expires_us > $2 \
                 ORDER BY agent_id, contact",
            )
            .bind(instance)
            .bind(micros(now))
            .fetch_all(pool)
            .await
            .map_err(query("read the SIP bindings"))?
        });
        Ok(raw
            .into_iter()
            .filter_map(|raw| raw.into_row().ok())
            .collect())
    }
}
