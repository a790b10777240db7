//! The registrar for agents' softphones (RFC 3261 §10.3) and the digest authentication of
//! requests from agents (RFC 3261 §22, RFC 8760).
//!
//! * Only sources inside [`RegistrarConfig::networks`] may REGISTER; others get 403.
//! * Every REGISTER is authenticated: 401 with one `WWW-Authenticate` per algorithm, SHA-256
//!   first and MD5 second (RFC 8760 §2.4), `qop="auth"`, and a stateless nonce from
//!   [`auth::NonceIssuer`]. A correct answer to an expired nonce gets a new challenge with
//!   `stale=true`; a wrong one gets 403 and counts as a failure of its source address.
//!   [`RegistrarConfig::max_failures`] failures within [`RegistrarConfig::failure_window`]
//!   block the source for [`RegistrarConfig::block_for`]: 403 without a challenge.
//! * The address-of-record is the user part of To; it must be the authenticated user.
//!   The domain is not checked: kald is the only domain it serves, and phones often put an IP.
//! * Each binding remembers the [`Flow`] its REGISTER arrived on (the packet's source address
//!   and port, or the TCP connection). Requests to the agent go over that flow, never to the
//!   Contact's host, so phones behind NAT are reached through the pinhole they opened.
//! * Bindings expire through the endpoint's timer heap; every
//!   [`RegistrarConfig::qualify_every`] kald sends OPTIONS over the binding's flow. Any
//!   response marks the binding reachable, none by Timer F unreachable. A closed TCP
//!   connection removes the bindings on it.
//! * Nonce timestamps count seconds from the first instant the endpoint was given (the core
//!   has no wall clock). With a fresh [`RegistrarConfig::nonce_key`] per start, nonces of an
//!   earlier run are simply unknown, and the phone is challenged again.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ipnet::IpNet;
use rand::RngCore;

use super::call::{host_of, via, Purpose};
use super::{Endpoint, Event, Flow, Output, TimerKey, Transport};
use crate::auth::{self, Algorithm, Challenge, Credentials, NonceIssuer, NonceStatus, Qop};
use crate::build::Builder;
use crate::message::{HeaderName, Message, Method, Scheme};
use crate::transaction::ServerKey;

/// Settings of kald's registrar for agents' softphones.
#[derive(Clone)]
pub struct RegistrarConfig {
    /// The digest realm (e.g. `"kald.aarhus.dk"`).
    pub realm: String,
    /// The networks REGISTER (and agents' out-of-dialog requests) may come from.
    pub networks: Vec<IpNet>,
    /// Who may register, with their passwords.
    pub users: Vec<RegistrarUser>,
    /// Shortest registration accepted, seconds (shorter ones get 423 Interval Too Brief).
    pub min_expires: u32,
    /// Longest registration granted, seconds (longer ones are shortened).
    pub max_expires: u32,
    /// Registration time when the request names none, seconds.
    pub default_expires: u32,
    /// Most contacts one user may have registered at once (more gets 403).
    pub max_bindings_per_user: usize,
    /// How long a nonce is good for; older ones get a `stale=true` challenge.
    pub nonce_ttl: Duration,
    /// Secret key of the nonces (32 random bytes from the OS); empty: derived from `rng_seed`.
    pub nonce_key: Vec<u8>,
    /// Failed authentications from one source address that block it …
    pub max_failures: u32,
    /// … when they happen within this window …
    pub failure_window: Duration,
    /// … for this long (403 without a challenge).
    pub block_for: Duration,
    /// How often each binding is sent OPTIONS; zero turns qualifying off.
    pub qualify_every: Duration,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            realm: "kald".into(),
            networks: Vec::new(),
            users: Vec::new(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            max_bindings_per_user: 10,
            nonce_ttl: Duration::from_secs(300),
            nonce_key: Vec::new(),
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            block_for: Duration::from_secs(60),
            qualify_every: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for RegistrarConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrarConfig")
            .field("realm", &self.realm)
            .field("networks", &self.networks)
            .field("users", &self.users)
            .field("min_expires", &self.min_expires)
            .field("max_expires", &self.max_expires)
            .field("default_expires", &self.default_expires)
            .field("max_bindings_per_user", &self.max_bindings_per_user)
            .field("nonce_ttl", &self.nonce_ttl)
            .field("nonce_key", &"<redacted>")
            .field("max_failures", &self.max_failures)
            .field("failure_window", &self.failure_window)
            .field("block_for", &self.block_for)
            .field("qualify_every", &self.qualify_every)
            .finish()
    }
}

/// An agent login allowed to register.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrarUser {
    /// The login: the user part of the address-of-record and the digest username.
    pub user: String,
    /// The SIP password (kept only as MD5 and SHA-256 HA1s inside the endpoint).
    pub password: String,
}

impl RegistrarUser {
    /// A user with a password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for RegistrarUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrarUser")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// kald's handle for one registered contact of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingId(pub u64);

impl fmt::Display for BindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// Why a binding went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnregisterReason {
    /// Its registration ran out without a refresh.
    Expired,
    /// The phone removed it (expires=0, or `Contact: *`).
    Removed,
    /// The TCP connection it was registered over closed.
    ConnectionClosed,
    /// The user is no longer configured ([`Endpoint::set_registrar_users`]).
    UserRemoved,
}

/// A registered contact, as [`Endpoint::bindings`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingView {
    /// Its id.
    pub id: BindingId,
    /// The Contact URI (use it as the Request-URI when dialling).
    pub contact: String,
    /// The flow it registered over (send requests to the agent here).
    pub flow: Flow,
    /// When it expires unless refreshed.
    pub expires_at: Instant,
    /// Whether the last OPTIONS (or the REGISTER, if none since) got an answer.
    pub reachable: bool,
}

/// A binding as kept across a restart of kald ([`Endpoint::saved_bindings`],
/// [`Endpoint::restore_binding`]): enough to reach the phone again before it refreshes its
/// registration, which may be up to [`RegistrarConfig::max_expires`] away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBinding {
    /// The agent login.
    pub user: String,
    /// The Contact URI.
    pub contact: String,
    /// The REGISTER's Call-ID (a refresh must carry the same one with a higher CSeq).
    pub call_id: String,
    /// The REGISTER's CSeq.
    pub cseq: u32,
    /// The phone's address (the packet source of its REGISTER).
    pub remote: SocketAddr,
    /// kald's address the REGISTER arrived on.
    pub local: SocketAddr,
    /// Time left until it expires, when saved.
    pub expires_in: Duration,
}

/// One binding of an address-of-record to a contact (RFC 3261 §10.3).
#[derive(Debug)]
struct Binding {
    user: String,
    contact: String,
    call_id: String,
    cseq: u32,
    flow: Flow,
    expires_at: Instant,
    reachable: bool,
    next_qualify: Option<Instant>,
    /// An OPTIONS to it is in flight.
    qualifying: bool,
    /// The deadline last put in the timer heap for it.
    armed: Option<Instant>,
}

/// Failed authentications of one source address.
#[derive(Debug, Default)]
struct Failures {
    at: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// The result of checking a request's digest credentials.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    /// Authenticated as this user.
    Authenticated(String),
    /// No usable credentials, or an unknown or stale nonce: challenge.
    Challenge {
        /// `stale=true`: the credentials were right but the nonce too old.
        stale: bool,
    },
    /// Wrong credentials, an unknown user, or a blocked source: 403.
    Forbidden,
    /// The digest `uri` is not the Request-URI: 400.
    UriMismatch,
}

/// HA1s of one user for the two algorithms kald challenges with.
struct Ha1s {
    md5: String,
    sha256: String,
}

/// What one REGISTER changes.
enum Change {
    Add { contact: String, expires: u32 },
    Refresh { id: BindingId, expires: u32 },
    Remove(BindingId),
}

/// Why a REGISTER is refused after authentication.
enum RegisterError {
    /// 400 with this reason.
    Bad(&'static str),
    /// 423 Interval Too Brief.
    TooBrief,
    /// 500: a CSeq not above the binding's (RFC 3261 §10.3 step 7).
    OutOfOrder,
    /// 403: more contacts than allowed.
    TooMany,
}

/// The registrar's state, owned by the endpoint.
pub(crate) struct Registrar {
    pub(crate) config: RegistrarConfig,
    issuer: NonceIssuer,
    secrets: HashMap<String, Ha1s>,
    bindings: HashMap<BindingId, Binding>,
    by_user: HashMap<String, Vec<BindingId>>,
    failures: HashMap<IpAddr, Failures>,
    /// Highest nonce count seen per (user, nonce, cnonce), against replay.
    nonce_counts: HashMap<(String, String, String), u32>,
    /// Those keys in the order they were first seen, with their nonce's timestamp.
    nonce_order: VecDeque<(u64, (String, String, String))>,
    epoch: Option<Instant>,
    next_binding: u64,
}

impl Registrar {
    pub(crate) fn new(config: RegistrarConfig, fallback_key: [u8; 32]) -> Self {
        let key = if config.nonce_key.is_empty() {
            fallback_key.to_vec()
        } else {
            config.nonce_key.clone()
        };
        let issuer = NonceIssuer::new(&key, config.realm.clone());
        let mut r = Self {
            config,
            issuer,
            secrets: HashMap::new(),
            bindings: HashMap::new(),
            by_user: HashMap::new(),
            failures: HashMap::new(),
            nonce_counts: HashMap::new(),
            nonce_order: VecDeque::new(),
            epoch: None,
            next_binding: 1,
        };
        r.set_users(r.config.users.clone());
        r
    }

    fn set_users(&mut self, users: Vec<RegistrarUser>) {
        let realm = &self.config.realm;
        self.secrets = users
            .iter()
            .map(|u| {
                (
                    u.user.clone(),
                    Ha1s {
                        md5: auth::ha1(Algorithm::Md5, &u.user, realm, &u.password),
                        sha256: auth::ha1(Algorithm::Sha256, &u.user, realm, &u.password),
                    },
                )
            })
            .collect();
        self.config.users = users;
    }

    /// Whether `addr` may register.
    /// Whether a registered phone sits at the far end of `flow` (its source address, or its
    /// TCP connection): such requests are an agent's even when a trunk's networks cover the
    /// address too (a PBX trunk and the agents on one LAN, or everything on loopback).
    pub(crate) fn is_registered_flow(&self, flow: &Flow) -> bool {
        // A scan: agents' bindings number in the hundreds, and only out-of-dialog requests
        // ask.
        self.bindings
            .values()
            .any(|b| match (b.flow.connection, flow.connection) {
                (Some(a), Some(c)) => a == c,
                (None, None) => b.flow.remote == flow.remote,
                _ => false,
            })
    }

    pub(crate) fn allows(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.config.networks.iter().any(|n| n.contains(&addr))
    }

    /// Seconds on the nonces' clock.
    fn secs(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_secs()
    }

    /// The challenge header values: SHA-256 first, then MD5 (RFC 8760 §2.4).
    pub(crate) fn challenges(&mut self, now: Instant, stale: bool) -> [String; 2] {
        let secs = self.secs(now);
        let nonce = self.issuer.issue(secs);
        let realm = self.config.realm.clone();
        [Algorithm::Sha256, Algorithm::Md5].map(|alg| {
            Challenge::new(realm.clone(), nonce.clone(), alg)
                .with_stale(stale)
                .to_string()
        })
    }

    fn blocked(&mut self, now: Instant, source: IpAddr) -> bool {
        let Some(f) = self.failures.get_mut(&source) else {
            return false;
        };
        match f.blocked_until {
            Some(t) if now < t => true,
            Some(_) => {
                self.failures.remove(&source);
                false
            }
            None => false,
        }
    }

    fn fail(&mut self, now: Instant, source: IpAddr, user: &str) {
        let window = self.config.failure_window;
        let max = self.config.max_failures.max(1) as usize;
        let block_for = self.config.block_for;
        if self.failures.len() > 4096 {
            // Forget sources whose failures are all outside the window.
            self.failures.retain(|_, f| {
                f.blocked_until.is_some_and(|t| now < t)
                    || f.at
                        .back()
                        .is_some_and(|&t| now.saturating_duration_since(t) < window)
            });
        }
        let f = self.failures.entry(source).or_default();
        while f
            .at
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            f.at.pop_front();
        }
        f.at.push_back(now);
        if f.at.len() >= max {
            f.at.clear();
            f.blocked_until = Some(now + block_for);
            tracing::warn!(
                source = %source,
                user = %user,
                seconds = block_for.as_secs(),
                "too many failed SIP authentications; refusing this source for a while"
            );
        }
    }

    /// Check the digest credentials of `msg` (in `header`) for `method`.
    pub(crate) fn authenticate(
        &mut self,
        now: Instant,
        source: IpAddr,
        msg: &Message,
        header: &HeaderName,
    ) -> AuthOutcome {
        if self.blocked(now, source) {
            return AuthOutcome::Forbidden;
        }
        let realm = self.config.realm.clone();
        let Some(creds) = msg
            .headers
            .all(header)
            .filter_map(|h| h.value_str())
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| c.realm == realm)
        else {
            return AuthOutcome::Challenge { stale: false };
        };
        // Only what kald challenged with: SHA-256 or MD5, qop=auth.
        if !matches!(creds.algorithm, Algorithm::Sha256 | Algorithm::Md5)
            || creds.qop != Some(Qop::Auth)
        {
            return AuthOutcome::Challenge { stale: false };
        }
        let ruri = msg.request_uri().map(|u| u.raw).unwrap_or("");
        if creds.uri.as_deref() != Some(ruri) {
            return AuthOutcome::UriMismatch;
        }
        let secs = self.secs(now);
        let ttl = self.config.nonce_ttl.as_secs();
        let status = self.issuer.check(&creds.nonce, secs, ttl);
        if status == NonceStatus::Invalid {
            return AuthOutcome::Challenge { stale: false };
        }
        let Some(ha1s) = self.secrets.get(&creds.username) else {
            self.fail(now, source, &creds.username);
            return AuthOutcome::Forbidden;
        };
        let ha1 = if creds.algorithm == Algorithm::Sha256 {
            &ha1s.sha256
        } else {
            &ha1s.md5
        };
        let method = msg.method().map(|m| m.to_string()).unwrap_or_default();
        if auth::verify(&creds, &method, auth::Secret::Ha1(ha1), &realm).is_err() {
            self.fail(now, source, &creds.username);
            return AuthOutcome::Forbidden;
        }
        if status == NonceStatus::Stale {
            return AuthOutcome::Challenge { stale: true };
        }
        // Replay: the nonce count must grow for each (user, nonce, cnonce).
        let nc = creds.nc.unwrap_or(0);
        let key = (
            creds.username.clone(),
            creds.nonce.clone(),
            creds.cnonce.clone().unwrap_or_default(),
        );
        self.prune_nonce_counts(secs, ttl);
        match self.nonce_counts.get_mut(&key) {
            Some(last) if nc <= *last => return AuthOutcome::Challenge { stale: true },
            Some(last) => *last = nc,
            None => {
                let issued = creds
                    .nonce
                    .get(..16)
                    .and_then(|t| u64::from_str_radix(t, 16).ok())
                    .unwrap_or(secs);
                self.nonce_counts.insert(key.clone(), nc);
                self.nonce_order.push_back((issued, key));
            }
        }
        self.failures.remove(&source);
        AuthOutcome::Authenticated(creds.username)
    }

    fn prune_nonce_counts(&mut self, secs: u64, ttl: u64) {
        while let Some((issued, _)) = self.nonce_order.front() {
            if issued.saturating_add(ttl) >= secs {
                break;
            }
            if let Some((_, key)) = self.nonce_order.pop_front() {
                self.nonce_counts.remove(&key);
            }
        }
    }

    fn binding_of(&self, user: &str, contact: &str) -> Option<BindingId> {
        self.by_user
            .get(user)?
            .iter()
            .copied()
            .find(|id| self.bindings.get(id).is_some_and(|b| b.contact == contact))
    }

    /// Whether `user` has at least one reachable binding.
    pub(crate) fn reachable(&self, user: &str) -> bool {
        self.by_user.get(user).is_some_and(|ids| {
            ids.iter()
                .any(|id| self.bindings.get(id).is_some_and(|b| b.reachable))
        })
    }

    /// The changes a REGISTER for `user` asks for (RFC 3261 §10.3 steps 6–7), all or nothing.
    fn plan(&self, user: &str, msg: &Message) -> Result<Vec<Change>, RegisterError> {
        let call_id = msg.call_id().unwrap_or("");
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        let header_expires = match msg.number(HeaderName::Expires, u64::from(u32::MAX)) {
            Ok(e) => e.map(|e| u32::try_from(e).unwrap_or(u32::MAX)),
            Err(_) => return Err(RegisterError::Bad("Bad Expires")),
        };
        // Step 7: a binding may be changed only by a newer request of the same Call-ID.
        let may_change = |id: &BindingId| {
            self.bindings
                .get(id)
                .is_some_and(|b| b.call_id != call_id || cseq > b.cseq)
        };
        let mut contacts = Vec::new();
        let mut wildcard = false;
        for c in msg.contacts() {
            match c {
                Ok(None) => wildcard = true,
                Ok(Some(c)) => contacts.push(c),
                Err(_) => return Err(RegisterError::Bad("Bad Contact")),
            }
        }
        if wildcard {
            if !contacts.is_empty() || header_expires != Some(0) {
                return Err(RegisterError::Bad("Contact * needs Expires: 0 alone"));
            }
            let ids = self.by_user.get(user).cloned().unwrap_or_default();
            if !ids.iter().all(may_change) {
                return Err(RegisterError::OutOfOrder);
            }
            return Ok(ids.into_iter().map(Change::Remove).collect());
        }
        let mut changes: Vec<Change> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut count = self.by_user.get(user).map_or(0, Vec::len);
        for c in &contacts {
            if !matches!(c.uri.scheme, Scheme::Sip | Scheme::Sips) || c.uri.host.is_none() {
                return Err(RegisterError::Bad("Contact is no SIP URI"));
            }
            let contact = c.uri.raw;
            if seen.contains(&contact) {
                continue;
            }
            seen.push(contact);
            let expires = match c.params.get("expires") {
                Some(Some(v)) => match v.trim().parse::<u64>() {
                    Ok(e) => u32::try_from(e).unwrap_or(u32::MAX),
                    Err(_) => return Err(RegisterError::Bad("Bad expires parameter")),
                },
                Some(None) => return Err(RegisterError::Bad("Bad expires parameter")),
                None => header_expires.unwrap_or(self.config.default_expires),
            };
            if expires != 0 && expires < self.config.min_expires {
                return Err(RegisterError::TooBrief);
            }
            let expires = expires.min(self.config.max_expires);
            match self.binding_of(user, contact) {
                Some(id) if !may_change(&id) => return Err(RegisterError::OutOfOrder),
                Some(id) if expires == 0 => {
                    changes.push(Change::Remove(id));
                    count = count.saturating_sub(1);
                }
                Some(id) => changes.push(Change::Refresh { id, expires }),
                None if expires == 0 => {}
                None => {
                    count += 1;
                    changes.push(Change::Add {
                        contact: contact.to_owned(),
                        expires,
                    });
                }
            }
        }
        if count > self.config.max_bindings_per_user {
            return Err(RegisterError::TooMany);
        }
        Ok(changes)
    }
}

// ---- the endpoint's registrar handling ------------------------------------------------------

impl Endpoint {
    /// Replace the users allowed to register (after a configuration reload). Bindings of users
    /// no longer listed are removed ([`UnregisterReason::UserRemoved`]).
    pub fn set_registrar_users(&mut self, users: Vec<RegistrarUser>) {
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        reg.set_users(users.clone());
        if let Some(c) = self.config.registrar.as_mut() {
            c.users = users;
        }
        let gone: Vec<BindingId> = reg
            .by_user
            .iter()
            .filter(|(u, _)| !reg.secrets.contains_key(*u))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        for id in gone {
            self.remove_binding(id, UnregisterReason::UserRemoved);
        }
    }

    /// The current bindings of `user` (empty if none or no registrar).
    pub fn bindings(&self, user: &str) -> Vec<BindingView> {
        let Some(reg) = self.registrar.as_ref() else {
            return Vec::new();
        };
        reg.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| reg.bindings.get(id).map(|b| (id, b)))
            .map(|(id, b)| BindingView {
                id: *id,
                contact: b.contact.clone(),
                flow: b.flow,
                expires_at: b.expires_at,
                reachable: b.reachable,
            })
            .collect()
    }

    /// Every binding a restart can keep, in id order: those over UDP (a TCP binding dies with
    /// its connection, so the phone registers again anyway), with the time each has left.
    pub fn saved_bindings(&self, now: Instant) -> Vec<SavedBinding> {
        let Some(reg) = self.registrar.as_ref() else {
            return Vec::new();
        };
        let mut ids: Vec<&BindingId> = reg.bindings.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| reg.bindings.get(id))
            .filter(|b| b.flow.transport == Transport::Udp && b.expires_at > now)
            .map(|b| SavedBinding {
                user: b.user.clone(),
                contact: b.contact.clone(),
                call_id: b.call_id.clone(),
                cseq: b.cseq,
                remote: b.flow.remote,
                local: b.flow.local,
                expires_in: b.expires_at - now,
            })
            .collect()
    }

    /// Restores a binding saved before a restart (UDP, over kald's `local` address), as if its
    /// phone had just registered, but not yet reachable: an OPTIONS goes to it at once (when
    /// qualifying is on) and its answer makes the agent reachable, so a phone that went away
    /// meanwhile gets no calls. Refused (`None`) for a user no longer configured, an expired
    /// binding, a contact the user has bound already or one past the user's limit.
    pub fn restore_binding(&mut self, now: Instant, saved: &SavedBinding) -> Option<BindingId> {
        let reg = self.registrar.as_mut()?;
        let known = reg.secrets.contains_key(&saved.user);
        let bound = reg.by_user.get(&saved.user).map_or(0, Vec::len);
        let duplicate = reg.by_user.get(&saved.user).is_some_and(|ids| {
            ids.iter()
                .filter_map(|id| reg.bindings.get(id))
                .any(|b| b.contact == saved.contact)
        });
        if !known
            || saved.expires_in.is_zero()
            || duplicate
            || bound >= reg.config.max_bindings_per_user
        {
            return None;
        }
        let was_reachable = reg.reachable(&saved.user);
        let id = BindingId(reg.next_binding);
        reg.next_binding += 1;
        let flow = Flow {
            transport: Transport::Udp,
            remote: saved.remote,
            local: saved.local,
            connection: None,
        };
        // Without qualifying nothing would ever check it: trust it as the REGISTER was.
        let qualify = !reg.config.qualify_every.is_zero();
        reg.bindings.insert(
            id,
            Binding {
                user: saved.user.clone(),
                contact: saved.contact.clone(),
                call_id: saved.call_id.clone(),
                cseq: saved.cseq,
                flow,
                expires_at: now + saved.expires_in,
                reachable: !qualify,
                next_qualify: qualify.then_some(now),
                qualifying: false,
                armed: None,
            },
        );
        reg.by_user.entry(saved.user.clone()).or_default().push(id);
        let reachable = reg.reachable(&saved.user);
        tracing::debug!(user = %saved.user, binding = %id, "binding restored");
        self.arm_binding(id);
        self.outputs.push_back(Output::Event(Event::Registered {
            user: saved.user.clone(),
            binding: id,
            contact: saved.contact.clone(),
            flow,
        }));
        if reachable && !was_reachable {
            self.outputs.push_back(Output::Event(Event::Reachability {
                user: saved.user.clone(),
                reachable: true,
            }));
        }
        Some(id)
    }

    /// Whether `user` has at least one reachable binding.
    pub fn reachable(&self, user: &str) -> bool {
        self.registrar.as_ref().is_some_and(|r| r.reachable(user))
    }

    /// The `Allow` value kald sends: with REGISTER when the registrar is on.
    pub(crate) fn allow(&self) -> &'static str {
        super::call::allow_for(&self.config)
    }

    /// Authenticate an agent's request; `None` when it was answered (challenge or refusal).
    pub(crate) fn authenticate_agent(
        &mut self,
        now: Instant,
        flow: Flow,
        key: &ServerKey,
        msg: &Message,
        tag: &str,
        proxy: bool,
    ) -> Option<String> {
        let (challenge_header, answer_header, code) = if proxy {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
                407,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization, 401)
        };
        let reg = self.registrar.as_mut()?;
        let outcome = reg.authenticate(now, flow.remote.ip(), msg, &answer_header);
        let b = match outcome {
            AuthOutcome::Authenticated(user) => return Some(user),
            AuthOutcome::Challenge { stale } => {
                let mut b = Builder::response_to(&msg.headers, code, Some(tag));
                for c in reg.challenges(now, stale) {
                    b.push(challenge_header.clone(), c);
                }
                b
            }
            AuthOutcome::Forbidden => Builder::response_to(&msg.headers, 403, Some(tag)),
            AuthOutcome::UriMismatch => {
                Builder::response_to(&msg.headers, 400, Some(tag)).reason("Digest URI Mismatch")
            }
        };
        self.reply(now, flow, key.clone(), msg, b, None);
        None
    }

    /// A REGISTER (RFC 3261 §10.3); the caller checked that the registrar is on.
    pub(crate) fn receive_register(
        &mut self,
        now: Instant,
        flow: Flow,
        key: ServerKey,
        msg: Message,
    ) {
        let tag = self.tag();
        let allowed = self
            .registrar
            .as_ref()
            .is_some_and(|r| r.allows(flow.remote.ip()));
        if !allowed {
            self.stats.refused_source += 1;
            tracing::info!("refused REGISTER from outside the registrar networks");
            let b = Builder::response_to(&msg.headers, 403, Some(&tag));
            self.reply(now, flow, key, &msg, b, None);
            return;
        }
        let Some(user) = self.authenticate_agent(now, flow, &key, &msg, &tag, false) else {
            return;
        };
        let aor = msg
            .to()
            .ok()
            .and_then(|t| t.uri.user.map(super::refer::percent_decode));
        if aor.as_deref() != Some(user.as_str()) {
            // Step 4: a user registers only their own address-of-record.
            tracing::info!(user = %user, "REGISTER for another address-of-record refused");
            let b = Builder::response_to(&msg.headers, 403, Some(&tag));
            self.reply(now, flow, key, &msg, b, None);
            return;
        }
        let Some(reg) = self.registrar.as_ref() else {
            return;
        };
        let refuse = |code: u16| Builder::response_to(&msg.headers, code, Some(&tag));
        let changes = match reg.plan(&user, &msg) {
            Ok(c) => c,
            Err(e) => {
                let b = match e {
                    RegisterError::Bad(reason) => refuse(400).reason(reason),
                    RegisterError::TooBrief => refuse(423)
                        .header(HeaderName::MinExpires, reg.config.min_expires.to_string()),
                    RegisterError::OutOfOrder => refuse(500).reason("Out of order CSeq"),
                    RegisterError::TooMany => refuse(403).reason("Too Many Contacts"),
                };
                self.reply(now, flow, key, &msg, b, None);
                return;
            }
        };
        let call_id = msg.call_id().unwrap_or("").to_owned();
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        for change in changes {
            match change {
                Change::Remove(id) => self.remove_binding(id, UnregisterReason::Removed),
                Change::Refresh { id, expires } => {
                    self.refresh_binding(now, id, flow, &call_id, cseq, expires);
                }
                Change::Add { contact, expires } => {
                    self.add_binding(now, &user, contact, flow, &call_id, cseq, expires);
                }
            }
        }
        let mut b = refuse(200);
        for v in self.bindings(&user) {
            let secs = v.expires_at.saturating_duration_since(now).as_secs();
            b.push(
                HeaderName::Contact,
                format!("<{}>;expires={secs}", v.contact),
            );
        }
        self.reply(now, flow, key, &msg, b, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn add_binding(
        &mut self,
        now: Instant,
        user: &str,
        contact: String,
        flow: Flow,
        call_id: &str,
        cseq: u32,
        expires: u32,
    ) {
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let was_reachable = reg.reachable(user);
        let id = BindingId(reg.next_binding);
        reg.next_binding += 1;
        let every = reg.config.qualify_every;
        reg.bindings.insert(
            id,
            Binding {
                user: user.to_owned(),
                contact: contact.clone(),
                call_id: call_id.to_owned(),
                cseq,
                flow,
                expires_at: now + Duration::from_secs(u64::from(expires)),
                reachable: true,
                next_qualify: (!every.is_zero()).then(|| now + every),
                qualifying: false,
                armed: None,
            },
        );
        reg.by_user.entry(user.to_owned()).or_default().push(id);
        tracing::debug!(user = %user, binding = %id, transport = flow.transport.as_str(), "registered");
        self.arm_binding(id);
        self.outputs.push_back(Output::Event(Event::Registered {
            user: user.to_owned(),
            binding: id,
            contact,
            flow,
        }));
        if !was_reachable {
            self.outputs.push_back(Output::Event(Event::Reachability {
                user: user.to_owned(),
                reachable: true,
            }));
        }
    }

    fn refresh_binding(
        &mut self,
        now: Instant,
        id: BindingId,
        flow: Flow,
        call_id: &str,
        cseq: u32,
        expires: u32,
    ) {
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let Some(b) = reg.bindings.get(&id) else {
            return;
        };
        let user = b.user.clone();
        let was_reachable = reg.reachable(&user);
        if let Some(b) = reg.bindings.get_mut(&id) {
            b.call_id = call_id.to_owned();
            b.cseq = cseq;
            // The newest REGISTER's flow is the live NAT pinhole.
            b.flow = flow;
            b.expires_at = now + Duration::from_secs(u64::from(expires));
            b.reachable = true;
        }
        self.arm_binding(id);
        if !was_reachable {
            self.outputs.push_back(Output::Event(Event::Reachability {
                user,
                reachable: true,
            }));
        }
    }

    /// Remove a binding and tell the TU.
    pub(crate) fn remove_binding(&mut self, id: BindingId, reason: UnregisterReason) {
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let Some(b) = reg.bindings.remove(&id) else {
            return;
        };
        if let Some(ids) = reg.by_user.get_mut(&b.user) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                reg.by_user.remove(&b.user);
            }
        }
        let now_reachable = reg.reachable(&b.user);
        tracing::debug!(user = %b.user, binding = %id, ?reason, "binding removed");
        self.outputs.push_back(Output::Event(Event::Unregistered {
            user: b.user.clone(),
            binding: id,
            reason,
        }));
        if b.reachable && !now_reachable {
            self.outputs.push_back(Output::Event(Event::Reachability {
                user: b.user,
                reachable: false,
            }));
        }
    }

    /// Remove every binding registered over a TCP connection that closed.
    pub(crate) fn connection_closed_bindings(&mut self, conn: super::ConnectionId) {
        let Some(reg) = self.registrar.as_ref() else {
            return;
        };
        let mut dead: Vec<BindingId> = reg
            .bindings
            .iter()
            .filter(|(_, b)| b.flow.connection == Some(conn))
            .map(|(id, _)| *id)
            .collect();
        dead.sort();
        for id in dead {
            self.remove_binding(id, UnregisterReason::ConnectionClosed);
        }
    }

    /// Put the binding's next deadline (expiry or qualify) in the timer heap if it moved.
    fn arm_binding(&mut self, id: BindingId) {
        let Some(b) = self
            .registrar
            .as_mut()
            .and_then(|r| r.bindings.get_mut(&id))
        else {
            return;
        };
        let next = b.next_qualify.map_or(b.expires_at, |q| q.min(b.expires_at));
        if b.armed != Some(next) {
            b.armed = Some(next);
            self.timers.arm(next, TimerKey::Binding(id));
        }
    }

    /// A binding's timer: expire it, or qualify it.
    pub(crate) fn binding_timeout(&mut self, now: Instant, id: BindingId, at: Instant) {
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let every = reg.config.qualify_every;
        let Some(b) = reg.bindings.get_mut(&id) else {
            return;
        };
        if b.armed != Some(at) {
            return;
        }
        b.armed = None;
        if now >= b.expires_at {
            self.remove_binding(id, UnregisterReason::Expired);
            return;
        }
        let mut send = false;
        if let Some(q) = b.next_qualify {
            if now >= q {
                // On schedule; a tick while the last OPTIONS is in flight sends none.
                let mut next = q + every;
                if next <= now {
                    next = now + every;
                }
                b.next_qualify = Some(next);
                send = !b.qualifying;
                b.qualifying |= send;
            }
        }
        if send {
            self.send_qualify(now, id);
        }
        self.arm_binding(id);
    }

    /// OPTIONS to a binding over its flow (RFC 3261 §11; a client non-INVITE transaction).
    fn send_qualify(&mut self, now: Instant, id: BindingId) {
        let branch = self.branch();
        let tag = self.tag();
        let call_id = format!(
            "{:016x}{:016x}@kald",
            self.rng.next_u64(),
            self.rng.next_u64()
        );
        let Some(reg) = self.registrar.as_ref() else {
            return;
        };
        let Some(b) = reg.bindings.get(&id) else {
            return;
        };
        let flow = b.flow;
        let mut m = Builder::request(Method::Options, Bytes::from(b.contact.clone()))
            .header(HeaderName::Via, via(&flow, &branch))
            .header(HeaderName::MaxForwards, "70");
        m.push(
            HeaderName::From,
            format!("<sip:kald@{}>;tag={tag}", host_of(&flow, &self.config)),
        );
        m.push(
            HeaderName::To,
            format!("<sip:{}@{}>", b.user, reg.config.realm),
        );
        m.push(HeaderName::CallId, call_id);
        m.push(HeaderName::CSeq, "1 OPTIONS");
        m.push(HeaderName::UserAgent, self.config.user_agent.clone());
        let req = m.build();
        self.send_request(now, flow, req, None, Purpose::Qualify(id));
    }

    /// The OPTIONS to a binding got a response (`true`) or none by Timer F (`false`).
    pub(crate) fn qualify_result(&mut self, id: BindingId, reachable: bool) {
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let Some(b) = reg.bindings.get(&id) else {
            return;
        };
        let user = b.user.clone();
        let before = reg.reachable(&user);
        if let Some(b) = reg.bindings.get_mut(&id) {
            b.qualifying = false;
            b.reachable = reachable;
        }
        let after = reg.reachable(&user);
        if before != after {
            tracing::debug!(user = %user, reachable = after, "agent reachability changed");
            self.outputs.push_back(Output::Event(Event::Reachability {
                user,
                reachable: after,
            }));
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
