//! Log-in, sessions, throttling and the `Caller` extractor.
//!
//! A session is a random 32-byte token from the operating system (base64url), kept in memory
//! as its SHA-256 (a leaked table does not give usable tokens) with the user's login and the
//! time of its last use; it expires after [`crate::Settings::session_idle`] without use. The
//! token travels as the `kald_session` cookie (HttpOnly, SameSite=Strict) or as
//! `Authorization: Bearer <token>`. Time is tokio's clock, so tests pause and advance it.

use std::collections::{HashMap, VecDeque};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::Engine as _;
use rand::TryRngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::model::{Role, User};
use crate::state::AppState;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "kald_session";

/// A user with the password reduced to its SHA-256 (compared in constant time).
pub(crate) struct Account {
    /// The user.
    pub(crate) user: User,
    /// SHA-256 of the password.
    password_hash: [u8; 32],
}

/// The users by login.
pub(crate) struct Accounts {
    /// Accounts by login.
    by_login: HashMap<String, Account>,
    /// Compared against when the login is unknown, so timing does not tell which logins exist.
    dummy: [u8; 32],
}

impl Accounts {
    /// Indexes the users (a later duplicate login replaces an earlier one).
    pub(crate) fn new(users: Vec<User>) -> Self {
        let by_login = users
            .into_iter()
            .map(|user| {
                let password_hash = sha256(user.password.as_bytes());
                (
                    user.login.clone(),
                    Account {
                        user,
                        password_hash,
                    },
                )
            })
            .collect();
        Self {
            by_login,
            dummy: sha256(b"kald: no such user"),
        }
    }

    /// The account of `login`.
    pub(crate) fn get(&self, login: &str) -> Option<&Account> {
        self.by_login.get(login)
    }

    /// The logins of `self` that `new` no longer has, or has with another password or role.
    pub(crate) fn changed_logins(&self, new: &Self) -> Vec<String> {
        let mut changed: Vec<String> = self
            .by_login
            .iter()
            .filter(|(login, old)| {
                new.by_login.get(*login).is_none_or(|account| {
                    account.password_hash != old.password_hash || account.user.role != old.user.role
                })
            })
            .map(|(login, _)| login.clone())
            .collect();
        changed.sort();
        changed
    }

    /// The user whose login and password these are (constant-time password comparison).
    pub(crate) fn verify(&self, login: &str, password: &str) -> Option<&User> {
        let given = sha256(password.as_bytes());
        match self.by_login.get(login) {
            Some(account) => {
                bool::from(account.password_hash.ct_eq(&given)).then_some(&account.user)
            }
            None => {
                let _ = bool::from(self.dummy.ct_eq(&given));
                None
            }
        }
    }
}

/// SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// One session.
struct Session {
    /// Whose.
    login: String,
    /// Last use.
    last_seen: Instant,
}

/// The in-memory session table, keyed by the token's SHA-256.
#[derive(Default)]
pub(crate) struct Sessions {
    /// Sessions by token hash.
    map: HashMap<[u8; 32], Session>,
}

impl Sessions {
    /// Creates a session for `login` and returns its token.
    pub(crate) fn create(
        &mut self,
        login: &str,
        now: Instant,
        idle: std::time::Duration,
    ) -> Result<String, ApiError> {
        self.map
            .retain(|_, s| now.saturating_duration_since(s.last_seen) < idle);
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| ApiError::Internal)?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        self.map.insert(
            sha256(token.as_bytes()),
            Session {
                login: login.to_owned(),
                last_seen: now,
            },
        );
        Ok(token)
    }

    /// The login of the live session with this token, marking it used; expired ones are dropped.
    pub(crate) fn touch(
        &mut self,
        token: &str,
        now: Instant,
        idle: std::time::Duration,
    ) -> Option<String> {
        let key = sha256(token.as_bytes());
        let session = self.map.get_mut(&key)?;
        if now.saturating_duration_since(session.last_seen) >= idle {
            self.map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.login.clone())
    }

    /// Whether the session is still live (without marking it used).
    pub(crate) fn is_live(&self, token: &str, now: Instant, idle: std::time::Duration) -> bool {
        self.map
            .get(&sha256(token.as_bytes()))
            .is_some_and(|s| now.saturating_duration_since(s.last_seen) < idle)
    }

    /// Ends every session of these logins; how many ended.
    pub(crate) fn end_for(&mut self, logins: &[String]) -> usize {
        let before = self.map.len();
        self.map.retain(|_, s| !logins.contains(&s.login));
        before - self.map.len()
    }

    /// Ends the session with this token.
    pub(crate) fn remove(&mut self, token: &str) {
        self.map.remove(&sha256(token.as_bytes()));
    }
}

/// Failed log-ins per login within the last window.
#[derive(Default)]
pub(crate) struct Throttle {
    /// Failure instants by login.
    failures: HashMap<String, VecDeque<Instant>>,
}

impl Throttle {
    /// Whether `login` has used up its failures in the window.
    pub(crate) fn is_blocked(
        &mut self,
        login: &str,
        now: Instant,
        window: std::time::Duration,
        limit: u32,
    ) -> bool {
        let Some(list) = self.failures.get_mut(login) else {
            return false;
        };
        while list
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            list.pop_front();
        }
        if list.is_empty() {
            self.failures.remove(login);
            return false;
        }
        list.len() >= limit as usize
    }

    /// Counts a failure for `login`.
    pub(crate) fn fail(&mut self, login: &str, now: Instant, window: std::time::Duration) {
        if self.failures.len() > 10_000 {
            self.failures.retain(|_, l| {
                l.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
        }
        self.failures
            .entry(login.to_owned())
            .or_default()
            .push_back(now);
    }

    /// Forgets the failures of `login` after a successful log-in.
    pub(crate) fn clear(&mut self, login: &str) {
        self.failures.remove(login);
    }
}

/// The session token of a request: the cookie, else a bearer token.
pub(crate) fn token_of(headers: &HeaderMap) -> Option<String> {
    bearer_of(headers).or_else(|| cookie_of(headers))
}

/// The `Authorization: Bearer` token.
fn bearer_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The `kald_session` cookie.
fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|t| !t.is_empty())
}

/// `Authorization: Basic` credentials (login, password), for Prometheus' `basic_auth`.
pub(crate) fn basic_of(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, password) = text.split_once(':')?;
    Some((login.to_owned(), password.to_owned()))
}

/// The logged-in user making the request (401 without a live session).
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The login.
    pub(crate) login: String,
    /// The name.
    pub(crate) name: String,
    /// The role.
    pub(crate) role: Role,
    /// The session token (to log out, or to end a push stream with the session).
    pub(crate) token: String,
}

impl Caller {
    /// `Forbidden` unless the caller's role is one of `roles`.
    pub(crate) fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state.caller(&parts.headers).ok_or(ApiError::Unauthorized)
    }
}

impl AppState {
    /// The caller of a request with these headers, if its session is live (marks it used).
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let token = token_of(headers)?;
        // First, so a session the new users list ends is not used once more.
        let accounts = self.accounts().ok()?;
        let login = self.inner.sessions.lock().ok()?.touch(
            &token,
            Instant::now(),
            self.inner.settings.session_idle,
        )?;
        let account = accounts.get(&login)?;
        Some(Caller {
            login,
            name: account.user.name.clone(),
            role: account.user.role,
            token,
        })
    }
}
