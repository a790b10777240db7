//! SIP HTTP Digest authentication: RFC 3261 §22 on top of RFC 2617 / RFC 7616, with the
//! algorithms of RFC 8760 (MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256,
//! SHA-512-256-sess).
//!
//! The module is sans-IO and deterministic: it never reads a clock and never draws random
//! numbers. Nonces, cnonces, nonce counts and the current time are passed in by the caller.
//!
//! * UAC: [`Challenge::parse`] a `WWW-Authenticate` / `Proxy-Authenticate` value, call
//!   [`respond`], and write the resulting [`Credentials`] with `Display` into `Authorization` /
//!   `Proxy-Authorization`.
//! * UAS / registrar: issue nonces with [`NonceIssuer::issue`] and send
//!   [`Challenge::new`]'s `Display`; on the retried request [`Credentials::parse`] the header,
//!   look the user up by [`Credentials::username`], [`NonceIssuer::check`] the nonce, then
//!   [`verify`] with the stored HA1 ([`Secret::Ha1`], see [`ha1`]). A correct response with a
//!   [`NonceStatus::Stale`] nonce is answered with a new challenge carrying `stale=true`.
//!
//! Supported: `qop=auth` and the legacy RFC 2069 form without qop. `qop=auth-int`,
//! `userhash` and `username*` are not supported; auth-int is reported as
//! [`AuthError::UnsupportedQop`], never silently accepted.
//!
//! Left to the caller, because they need state or policy this module does not hold: tracking
//! nonce counts against replay, checking that the digest `uri` matches the Request-URI, and
//! refusing an algorithm (or a missing qop) weaker than the one challenged with.
//!
//! Errors name at most a parameter, never a value from the input: user names are phone
//! numbers (personal data) and errors reach logs. [`Credentials`] and [`Secret`] redact the
//! user name, response and secrets in their `Debug` output for the same reason.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// Why a Digest header could not be read, answered or verified; never holds input values.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The scheme is not `Digest` (e.g. `Basic`, or an unknown one): skip it or answer 401.
    #[error("authentication scheme is not Digest")]
    UnsupportedScheme,
    /// The value does not follow the Digest grammar; the text says which part was wrong.
    #[error("malformed Digest header value: {0}")]
    Malformed(&'static str),
    /// A parameter occurs more than once, which makes the header ambiguous.
    #[error("duplicate Digest parameter `{0}`")]
    DuplicateParam(&'static str),
    /// A parameter that is required here is absent.
    #[error("missing Digest parameter `{0}`")]
    MissingParam(&'static str),
    /// A parameter is present but its value is not valid for it.
    #[error("invalid value for Digest parameter `{0}`")]
    InvalidParam(&'static str),
    /// The `algorithm` token is not one this module implements.
    #[error("unknown or unsupported Digest algorithm")]
    UnknownAlgorithm,
    /// The qop is `auth-int` (unsupported) or the challenge offers no qop that is supported.
    #[error("unsupported Digest qop (only `auth` or no qop is supported)")]
    UnsupportedQop,
    /// The credentials are for another realm than the one this server protects.
    #[error("Digest realm does not match the expected realm")]
    RealmMismatch,
    /// The stored HA1 is not a lowercase/uppercase hex digest of the algorithm's length.
    #[error("stored HA1 is not a hex digest for the Digest algorithm in use")]
    InvalidHa1,
    /// The response does not match: wrong password or altered parameters.
    #[error("Digest response does not match")]
    ResponseMismatch,
}

/// Digest hash algorithm (RFC 7616 §6.1, RFC 8760); the `-sess` variants bind HA1 to the nonce.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// MD5, the default when no `algorithm` is given (RFC 3261 §22.4).
    #[default]
    Md5,
    /// MD5-sess: session variant of MD5.
    Md5Sess,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
    /// SHA-256-sess: session variant of SHA-256.
    Sha256Sess,
    /// SHA-512/256 (RFC 7616, RFC 8760).
    Sha512_256,
    /// SHA-512-256-sess: session variant of SHA-512/256.
    Sha512_256Sess,
}

impl Algorithm {
    /// Reads an `algorithm` token, case-insensitively, so headers from any UA are understood.
    ///
    /// # Errors
    /// [`AuthError::UnknownAlgorithm`] for any other token.
    pub fn parse(token: &str) -> Result<Self, AuthError> {
        const ALL: [Algorithm; 6] = [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ];
        ALL.into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(token))
            .ok_or(AuthError::UnknownAlgorithm)
    }

    /// The canonical token of the algorithm, as written into headers.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether this is a `-sess` variant, whose HA1 also hashes the nonce and cnonce.
    #[must_use]
    pub const fn is_session(self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }

    /// Length in hex characters of this algorithm's digests (HA1, response), to validate them.
    #[must_use]
    pub const fn hex_len(self) -> usize {
        match self {
            Self::Md5 | Self::Md5Sess => 32,
            Self::Sha256 | Self::Sha256Sess | Self::Sha512_256 | Self::Sha512_256Sess => 64,
        }
    }

    /// Hashes the parts joined with `:` and returns lowercase hex, as every Digest step does.
    fn hash_hex(self, parts: &[&str]) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => digest_hex::<Md5>(parts),
            Self::Sha256 | Self::Sha256Sess => digest_hex::<Sha256>(parts),
            Self::Sha512_256 | Self::Sha512_256Sess => digest_hex::<Sha512_256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hashes `parts` joined by `:` with hash `D`, without building the joined string.
fn digest_hex<D: Digest>(parts: &[&str]) -> String {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Quality of protection (RFC 2617 §3.2.1); only `auth` can be answered or verified.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authentication of method and URI.
    Auth,
    /// `auth-int`: also covers the body; recognised so it can be refused, not implemented.
    AuthInt,
}

impl Qop {
    /// Reads a qop token case-insensitively; `None` for tokens this module does not know.
    #[must_use]
    pub fn parse(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("auth") {
            Some(Self::Auth)
        } else if token.eq_ignore_ascii_case("auth-int") {
            Some(Self::AuthInt)
        } else {
            None
        }
    }

    /// The token of the qop, as written into headers.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

/// What a verifier knows about the user: the password, or (better, for registrars) its HA1.
#[derive(Clone, Copy)]
pub enum Secret<'a> {
    /// The plain password.
    Password(&'a str),
    /// `H(username:realm:password)` in hex for the credentials' algorithm (see [`ha1`]).
    Ha1(&'a str),
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(<redacted>)"),
            Self::Ha1(_) => f.write_str("Ha1(<redacted>)"),
        }
    }
}

/// Computes `H(username:realm:password)` for storage, so a registrar need not keep passwords.
///
/// For `-sess` algorithms this is the same value as for their base algorithm; the session
/// part is added at verification time. An HA1 only verifies credentials of an algorithm with
/// the same hash, so store one per hash the registrar offers.
#[must_use]
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash_hex(&[username, realm, password])
}

/// A parsed or built `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space the credentials are for (e.g. the municipality's SIP domain).
    pub realm: String,
    /// Optional `domain` list of URIs, kept verbatim.
    pub domain: Option<String>,
    /// Server nonce to be hashed into the response.
    pub nonce: String,
    /// Opaque server data, echoed back unchanged in the credentials.
    pub opaque: Option<String>,
    /// `stale=true`: the previous nonce expired but the credentials were right; retry silently.
    pub stale: bool,
    /// Hash algorithm; MD5 when the challenge names none.
    pub algorithm: Algorithm,
    /// Offered qop values; empty means the legacy RFC 2069 form without qop.
    pub qop: Vec<Qop>,
    /// Parameters this module does not interpret (lowercased name, unescaped value).
    pub extensions: Vec<(String, String)>,
}

impl Challenge {
    /// Builds a server challenge with `qop="auth"`, no opaque and `stale` unset.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>, algorithm: Algorithm) -> Self {
        Self {
            realm: realm.into(),
            domain: None,
            nonce: nonce.into(),
            opaque: None,
            stale: false,
            algorithm,
            qop: vec![Qop::Auth],
            extensions: Vec::new(),
        }
    }

    /// Sets the `opaque` value the client must echo back.
    #[must_use]
    pub fn with_opaque(mut self, opaque: impl Into<String>) -> Self {
        self.opaque = Some(opaque.into());
        self
    }

    /// Sets `stale`, used when re-challenging a correct response whose nonce had expired.
    #[must_use]
    pub fn with_stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// Parses a challenge header value (the part after `WWW-Authenticate:`).
    ///
    /// A qop list with no supported value (only unknown tokens) is [`AuthError::UnsupportedQop`];
    /// a list with only `auth-int` parses, and [`respond`] refuses it.
    ///
    /// # Errors
    /// [`AuthError::UnsupportedScheme`] for another scheme, otherwise a grammar, duplicate,
    /// missing-parameter (`realm`, `nonce`), algorithm or qop error.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let mut params = parse_digest_params(value)?;
        let realm = take(&mut params, "realm").ok_or(AuthError::MissingParam("realm"))?;
        let nonce = take(&mut params, "nonce").ok_or(AuthError::MissingParam("nonce"))?;
        let algorithm = match take(&mut params, "algorithm") {
            Some(token) => Algorithm::parse(&token)?,
            None => Algorithm::Md5,
        };
        let qop = match take(&mut params, "qop") {
            None => Vec::new(),
            Some(list) => {
                let mut offered = Vec::new();
                for qop in list
                    .split(',')
                    .filter_map(|t| Qop::parse(t.trim_matches(is_lws)))
                {
                    if !offered.contains(&qop) {
                        offered.push(qop);
                    }
                }
                if offered.is_empty() {
                    return Err(AuthError::UnsupportedQop);
                }
                offered
            }
        };
        let stale = take(&mut params, "stale").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Self {
            realm,
            domain: take(&mut params, "domain"),
            nonce,
            opaque: take(&mut params, "opaque"),
            stale,
            algorithm,
            qop,
            extensions: params,
        })
    }
}

/// Writes `Digest realm="…", nonce="…", algorithm=…, qop="auth"`; extensions are not written.
impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest realm={}", Quoted(&self.realm))?;
        if let Some(domain) = &self.domain {
            write!(f, ", domain={}", Quoted(domain))?;
        }
        write!(f, ", nonce={}", Quoted(&self.nonce))?;
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            f.write_str(", qop=\"")?;
            for (i, qop) in self.qop.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(qop.as_str())?;
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}

/// A parsed or computed `Authorization` / `Proxy-Authorization` Digest credentials value.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name (often a phone number: personal data, redacted in `Debug`).
    pub username: String,
    /// Realm of the challenge being answered.
    pub realm: String,
    /// Server nonce being answered.
    pub nonce: String,
    /// Digest URI; required by [`verify`], optional here so its absence is reported there.
    pub uri: Option<String>,
    /// Hex response digest (redacted in `Debug`).
    pub response: String,
    /// Hash algorithm; MD5 when the header names none.
    pub algorithm: Algorithm,
    /// Client nonce; present with a qop and with `-sess` algorithms.
    pub cnonce: Option<String>,
    /// Chosen qop; `None` for the legacy RFC 2069 form.
    pub qop: Option<Qop>,
    /// Nonce count (`nc`), sent as 8 lowercase hex digits; present with a qop.
    pub nc: Option<u32>,
    /// Opaque value echoed from the challenge.
    pub opaque: Option<String>,
    /// Parameters this module does not interpret (lowercased name, unescaped value).
    pub extensions: Vec<(String, String)>,
}

impl Credentials {
    /// Parses a credentials header value (the part after `Authorization:`).
    ///
    /// Requires `username`, `realm`, `nonce` and `response`, plus `cnonce` and `nc` when a
    /// qop is given. `nc` must be exactly 8 lowercase hex digits, because the response hashes
    /// it as sent and it is recomputed from the number.
    ///
    /// # Errors
    /// [`AuthError::UnsupportedScheme`] for another scheme, otherwise a grammar, duplicate,
    /// missing-parameter, algorithm, `qop` or `nc` error.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let mut params = parse_digest_params(value)?;
        let username = take(&mut params, "username").ok_or(AuthError::MissingParam("username"))?;
        let realm = take(&mut params, "realm").ok_or(AuthError::MissingParam("realm"))?;
        let nonce = take(&mut params, "nonce").ok_or(AuthError::MissingParam("nonce"))?;
        let response = take(&mut params, "response").ok_or(AuthError::MissingParam("response"))?;
        let algorithm = match take(&mut params, "algorithm") {
            Some(token) => Algorithm::parse(&token)?,
            None => Algorithm::Md5,
        };
        let qop = match take(&mut params, "qop") {
            Some(token) => {
                Some(Qop::parse(token.trim_matches(is_lws)).ok_or(AuthError::InvalidParam("qop"))?)
            }
            None => None,
        };
        let nc = match take(&mut params, "nc") {
            Some(nc) => Some(parse_nc(&nc)?),
            None => None,
        };
        let cnonce = take(&mut params, "cnonce");
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(AuthError::MissingParam("cnonce"));
            }
            if nc.is_none() {
                return Err(AuthError::MissingParam("nc"));
            }
        }
        Ok(Self {
            username,
            realm,
            nonce,
            uri: take(&mut params, "uri"),
            response,
            algorithm,
            cnonce,
            qop,
            nc,
            opaque: take(&mut params, "opaque"),
            extensions: params,
        })
    }
}

/// Reads an `nc` value: exactly 8 lowercase hex digits (RFC 7616 `8LHEX`).
fn parse_nc(value: &str) -> Result<u32, AuthError> {
    let well_formed = value.len() == 8
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(AuthError::InvalidParam("nc"));
    }
    u32::from_str_radix(value, 16).map_err(|_| AuthError::InvalidParam("nc"))
}

/// Writes `Digest username="…", realm="…", nonce="…", uri="…", response="…", algorithm=…,
/// cnonce="…", qop=auth, nc=00000001, opaque="…"`, omitting absent parameters.
impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce)
        )?;
        if let Some(uri) = &self.uri {
            write!(f, ", uri={}", Quoted(uri))?;
        }
        write!(
            f,
            ", response={}, algorithm={}",
            Quoted(&self.response),
            self.algorithm
        )?;
        if let Some(cnonce) = &self.cnonce {
            write!(f, ", cnonce={}", Quoted(cnonce))?;
        }
        if let Some(qop) = self.qop {
            write!(f, ", qop={}", qop.as_str())?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        Ok(())
    }
}

/// Debug without the user name, response, cnonce or extension values (personal data in logs).
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extension_names: Vec<&str> = self.extensions.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Credentials")
            .field("username", &"<redacted>")
            .field("realm", &self.realm)
            .field("nonce", &self.nonce)
            .field("uri", &self.uri)
            .field("response", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("cnonce", &self.cnonce.as_ref().map(|_| "<redacted>"))
            .field("qop", &self.qop)
            .field("nc", &self.nc)
            .field("opaque", &self.opaque)
            .field("extensions", &extension_names)
            .finish()
    }
}

/// Answers a challenge (UAC side): computes the response for `method` and `digest_uri`.
///
/// Chooses `qop=auth` when offered, and the legacy form when the challenge has no qop. The
/// caller supplies a fresh unpredictable `cnonce` (e.g. hex of 16 random bytes) and the nonce
/// count `nc` (1 for the first use of a nonce, incremented on each reuse). Fails with
/// [`AuthError::UnsupportedQop`] when the challenge offers only `auth-int`.
///
/// # Errors
/// [`AuthError::UnsupportedQop`] as above; [`AuthError::InvalidParam`] for an empty `cnonce`
/// (when one is needed) or `nc == 0` with a qop.
pub fn respond(
    challenge: &Challenge,
    method: &str,
    digest_uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, AuthError> {
    let qop = if challenge.qop.is_empty() {
        None
    } else if challenge.qop.contains(&Qop::Auth) {
        Some(Qop::Auth)
    } else {
        return Err(AuthError::UnsupportedQop);
    };
    let algorithm = challenge.algorithm;
    let uses_cnonce = qop.is_some() || algorithm.is_session();
    if uses_cnonce && cnonce.is_empty() {
        return Err(AuthError::InvalidParam("cnonce"));
    }
    if qop.is_some() && nc == 0 {
        return Err(AuthError::InvalidParam("nc"));
    }
    let cnonce = uses_cnonce.then(|| cnonce.to_owned());
    let nc = qop.map(|_| nc);
    let response = compute_response(&Inputs {
        algorithm,
        secret: Secret::Password(password),
        username,
        realm: &challenge.realm,
        nonce: &challenge.nonce,
        method,
        uri: digest_uri,
        qop,
        nc,
        cnonce: cnonce.as_deref(),
    })?;
    Ok(Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: Some(digest_uri.to_owned()),
        response,
        algorithm,
        cnonce,
        qop,
        nc,
        opaque: challenge.opaque.clone(),
        extensions: Vec::new(),
    })
}

/// Checks credentials (UAS / registrar side) by recomputing the response for `method`.
///
/// Checks that the realm equals `expected_realm` and that `uri` is present, refuses
/// `auth-int`, and compares the response in constant time. It does not check the nonce (use
/// [`NonceIssuer::check`]), nonce-count replay, the `uri` against the Request-URI, or whether
/// the algorithm and qop are those the server challenged with: the caller does those.
///
/// # Errors
/// [`AuthError::RealmMismatch`], [`AuthError::MissingParam`] (`uri`, `cnonce`, `nc`),
/// [`AuthError::UnsupportedQop`] for `auth-int`, [`AuthError::InvalidHa1`] for a stored HA1 of
/// the wrong length, and [`AuthError::ResponseMismatch`] for a wrong password or tampering.
pub fn verify(
    credentials: &Credentials,
    method: &str,
    password_or_ha1: Secret<'_>,
    expected_realm: &str,
) -> Result<(), AuthError> {
    if credentials.realm != expected_realm {
        return Err(AuthError::RealmMismatch);
    }
    let uri = credentials
        .uri
        .as_deref()
        .ok_or(AuthError::MissingParam("uri"))?;
    match credentials.qop {
        None => {}
        Some(Qop::Auth) => {
            if credentials.cnonce.is_none() {
                return Err(AuthError::MissingParam("cnonce"));
            }
            if credentials.nc.is_none() {
                return Err(AuthError::MissingParam("nc"));
            }
        }
        Some(Qop::AuthInt) => return Err(AuthError::UnsupportedQop),
    }
    let expected = compute_response(&Inputs {
        algorithm: credentials.algorithm,
        secret: password_or_ha1,
        username: &credentials.username,
        realm: &credentials.realm,
        nonce: &credentials.nonce,
        method,
        uri,
        qop: credentials.qop,
        nc: credentials.nc,
        cnonce: credentials.cnonce.as_deref(),
    })?;
    let given = credentials.response.to_ascii_lowercase();
    if constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::ResponseMismatch)
    }
}

/// Everything the response digest depends on, gathered for [`compute_response`].
struct Inputs<'a> {
    algorithm: Algorithm,
    secret: Secret<'a>,
    username: &'a str,
    realm: &'a str,
    nonce: &'a str,
    method: &'a str,
    uri: &'a str,
    qop: Option<Qop>,
    nc: Option<u32>,
    cnonce: Option<&'a str>,
}

/// Computes the request-digest of RFC 7616 §3.4.1 (and RFC 2069 when there is no qop).
fn compute_response(i: &Inputs<'_>) -> Result<String, AuthError> {
    let alg = i.algorithm;
    let base_ha1 = match i.secret {
        Secret::Password(password) => alg.hash_hex(&[i.username, i.realm, password]),
        Secret::Ha1(stored) => {
            if stored.len() != alg.hex_len() || !stored.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(AuthError::InvalidHa1);
            }
            stored.to_ascii_lowercase()
        }
    };
    let ha1 = if alg.is_session() {
        let cnonce = i.cnonce.ok_or(AuthError::MissingParam("cnonce"))?;
        alg.hash_hex(&[&base_ha1, i.nonce, cnonce])
    } else {
        base_ha1
    };
    let ha2 = alg.hash_hex(&[i.method, i.uri]);
    match i.qop {
        None => Ok(alg.hash_hex(&[&ha1, i.nonce, &ha2])),
        Some(Qop::Auth) => {
            let nc = format!("{:08x}", i.nc.ok_or(AuthError::MissingParam("nc"))?);
            let cnonce = i.cnonce.ok_or(AuthError::MissingParam("cnonce"))?;
            Ok(alg.hash_hex(&[&ha1, i.nonce, &nc, cnonce, Qop::Auth.as_str(), &ha2]))
        }
        Some(Qop::AuthInt) => Err(AuthError::UnsupportedQop),
    }
}

/// Compares two byte strings in time that does not depend on where they first differ.
///
/// A short-circuiting `==` returns sooner the earlier the first wrong byte is, so by timing
/// many attempts an attacker could learn the expected response (or nonce MAC) byte by byte
/// without knowing the password or key. Lengths are fixed per algorithm and not secret, so a
/// length mismatch may return early. `black_box` keeps the optimiser from adding an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Result of [`NonceIssuer::check`], deciding between accepting, `stale=true` and a plain 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Issued by us for this realm and not older than the allowed age.
    Valid,
    /// Issued by us for this realm but too old: if the response is right, re-challenge with
    /// `stale=true` so the UA retries without asking the user.
    Stale,
    /// Not issued by us (forged, altered, other realm or key, or dated in the future).
    Invalid,
}

/// Hex characters of the timestamp part of a nonce (a big-endian `u64`).
const NONCE_TIME_HEX: usize = 16;
/// Bytes of the HMAC-SHA-256 kept in a nonce (truncated to 128 bits).
const NONCE_MAC_BYTES: usize = 16;

/// Issues and checks stateless nonces `hex(timestamp) || hex(HMAC-SHA-256(key, timestamp || realm))[..128 bits]`.
///
/// Any node holding the same key can check the nonces of another, with no shared state. The
/// key should be at least 32 random bytes, kept secret and shared only between registrar
/// nodes. Nonces issued in the same second for the same realm are equal, so the caller keys
/// nonce-count replay tracking on (nonce, user).
#[derive(Clone)]
pub struct NonceIssuer {
    key: Vec<u8>,
    realm: String,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("key", &"<redacted>")
            .field("realm", &self.realm)
            .finish()
    }
}

impl NonceIssuer {
    /// Creates an issuer for `realm` with secret `key` (random bytes from the caller).
    pub fn new(key: &[u8], realm: impl Into<String>) -> Self {
        Self {
            key: key.to_vec(),
            realm: realm.into(),
        }
    }

    /// Creates a nonce stamped with `now_unix_secs`, to put into a [`Challenge`].
    #[must_use]
    pub fn issue(&self, now_unix_secs: u64) -> String {
        let mac = self.mac(now_unix_secs);
        let mut nonce = format!("{now_unix_secs:016x}");
        nonce.push_str(&hex::encode(&mac[..NONCE_MAC_BYTES]));
        nonce
    }

    /// Tells whether `nonce` was issued by this issuer and is at most `max_age_secs` old.
    #[must_use]
    pub fn check(&self, nonce: &str, now_unix_secs: u64, max_age_secs: u64) -> NonceStatus {
        let lower_hex = nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if nonce.len() != NONCE_TIME_HEX + 2 * NONCE_MAC_BYTES || !lower_hex {
            return NonceStatus::Invalid;
        }
        let (time_hex, mac_hex) = nonce.split_at(NONCE_TIME_HEX);
        let Ok(issued) = u64::from_str_radix(time_hex, 16) else {
            return NonceStatus::Invalid;
        };
        let mut given = [0u8; NONCE_MAC_BYTES];
        if hex::decode_to_slice(mac_hex, &mut given).is_err() {
            return NonceStatus::Invalid;
        }
        let expected = self.mac(issued);
        if !constant_time_eq(&expected[..NONCE_MAC_BYTES], &given) {
            return NonceStatus::Invalid;
        }
        match now_unix_secs.checked_sub(issued) {
            None => NonceStatus::Invalid,
            Some(age) if age > max_age_secs => NonceStatus::Stale,
            Some(_) => NonceStatus::Valid,
        }
    }

    /// The full MAC of a timestamp: HMAC-SHA-256(key, `timestamp_be || realm`).
    fn mac(&self, timestamp: u64) -> [u8; 32] {
        hmac_sha256(
            &self.key,
            &[&timestamp.to_be_bytes(), self.realm.as_bytes()],
        )
    }
}

/// HMAC-SHA-256 (RFC 2104) over the concatenation of `parts`.
///
/// Proper HMAC rather than a bare `SHA-256(key || msg)`, which is open to length extension;
/// written out here because the crate has no HMAC dependency.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block_key.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block_key.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Writes a value as a quoted-string, escaping `"` and `\` and dropping control characters
/// (CR/LF would let a value inject header lines).
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => {
                    f.write_str("\\")?;
                    fmt::Write::write_char(f, c)?;
                }
                '\t' => f.write_str("\t")?,
                c if c.is_control() => {}
                c => fmt::Write::write_char(f, c)?,
            }
        }
        f.write_str("\"")
    }
}

/// Linear whitespace: already unfolded, but stray CR/LF are tolerated like SP and HTAB.
fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// RFC 3261 `token` characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~'
        )
}

/// Maps a parameter name to a static name for errors, so no input text reaches an error.
fn param_label(name: &str) -> &'static str {
    const KNOWN: [&str; 15] = [
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
        "stale",
        "domain",
        "userhash",
        "charset",
        "username*",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == name)
        .unwrap_or("extension parameter")
}

/// Removes and returns the value of parameter `name` (already lowercased).
fn take(params: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let index = params.iter().position(|(n, _)| n == name)?;
    Some(params.remove(index).1)
}

/// Splits `Digest a=b, c="d"` into lowercased names and unescaped values.
///
/// Empty list elements (`a=b,,c=d`, a trailing comma) are skipped as RFC 7230's list rule
/// allows; everything else that does not fit the grammar is [`AuthError::Malformed`].
fn parse_digest_params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let s = value.trim_start_matches(is_lws);
    let scheme_end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    let (scheme, rest) = s.split_at(scheme_end);
    if scheme.is_empty() {
        return Err(AuthError::Malformed("missing authentication scheme"));
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::UnsupportedScheme);
    }
    if !rest.is_empty() && !rest.starts_with(is_lws) {
        return Err(AuthError::Malformed("expected whitespace after the scheme"));
    }

    let mut cursor = Cursor { rest };
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        cursor.skip_lws();
        match cursor.peek() {
            None => break,
            Some(',') => {
                cursor.bump();
                continue;
            }
            Some(_) => {}
        }
        let name = cursor.token();
        if name.is_empty() {
            return Err(AuthError::Malformed("expected a parameter name"));
        }
        let name = name.to_ascii_lowercase();
        cursor.skip_lws();
        if cursor.peek() != Some('=') {
            return Err(AuthError::Malformed("expected '=' after a parameter name"));
        }
        cursor.bump();
        cursor.skip_lws();
        let param_value = if cursor.peek() == Some('"') {
            cursor.bump();
            cursor.quoted_rest()?
        } else {
            let token = cursor.token();
            if token.is_empty() {
                return Err(AuthError::Malformed("expected a parameter value"));
            }
            token.to_owned()
        };
        cursor.skip_lws();
        match cursor.peek() {
            None => {}
            Some(',') => cursor.bump(),
            Some(_) => return Err(AuthError::Malformed("expected ',' between parameters")),
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(AuthError::DuplicateParam(param_label(&name)));
        }
        params.push((name, param_value));
    }
    Ok(params)
}

/// A position in the parameter list being parsed.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// The next character, if any.
    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    /// Skips the next character.
    fn bump(&mut self) {
        let mut chars = self.rest.chars();
        chars.next();
        self.rest = chars.as_str();
    }

    /// Skips linear whitespace.
    fn skip_lws(&mut self) {
        self.rest = self.rest.trim_start_matches(is_lws);
    }

    /// Takes the longest run of token characters (possibly empty).
    fn token(&mut self) -> &'a str {
        let end = self
            .rest
            .find(|c: char| !is_token_char(c))
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        token
    }

    /// Reads the rest of a quoted-string whose opening quote was consumed, unescaping `\x`.
    fn quoted_rest(&mut self) -> Result<String, AuthError> {
        let mut out = String::new();
        let mut chars = self.rest.chars();
        loop {
            match chars.next() {
                None => return Err(AuthError::Malformed("unterminated quoted string")),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some(escaped) => out.push(escaped),
                    None => return Err(AuthError::Malformed("unterminated quoted string")),
                },
                Some(c) => out.push(c),
            }
        }
        self.rest = chars.as_str();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC2617_CHALLENGE: &str = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

    fn rfc7616_challenge(algorithm: &str) -> String {
        format!(
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}""#
        )
    }

    #[test]
    fn rfc2617_section_3_5_example() -> Result<(), AuthError> {
        let challenge = Challenge::parse(RFC2617_CHALLENGE)?;
        assert_eq!(challenge.realm, "testrealm@host.com");
        assert_eq!(challenge.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        let credentials = respond(
            &challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        )?;
        assert_eq!(credentials.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            credentials.to_string(),
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
             cnonce=\"0a4f113b\", qop=auth, nc=00000001, \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
        verify(
            &credentials,
            "GET",
            Secret::Password("Circle Of Life"),
            "testrealm@host.com",
        )?;

        // The Authorization header as published, line breaks and all.
        let published = Credentials::parse(
            "Digest username=\"Mufasa\",\r\n                 realm=\"testrealm@host.com\",\r\n                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n                 uri=\"/dir/index.html\",\r\n                 qop=auth,\r\n                 nc=00000001,\r\n                 cnonce=\"0a4f113b\",\r\n                 response=\"6629fae49393a05397450978507c4ef1\",\r\n                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )?;
        assert_eq!(published, credentials);
        let stored = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        verify(
            &published,
            "GET",
            Secret::Ha1(&stored),
            "testrealm@host.com",
        )?;
        Ok(())
    }

    fn rfc7616_case(algorithm: Algorithm, expected: &str) -> Result<(), AuthError> {
        let challenge = Challenge::parse(&rfc7616_challenge(algorithm.as_str()))?;
        assert_eq!(challenge.algorithm, algorithm);
        assert_eq!(challenge.opaque.as_deref(), Some(RFC7616_OPAQUE));
        let credentials = respond(
            &challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            RFC7616_CNONCE,
            1,
        )?;
        assert_eq!(credentials.response, expected);
        let realm = "http-auth@example.org";
        verify(
            &credentials,
            "GET",
            Secret::Password("Circle of Life"),
            realm,
        )?;
        let stored = ha1(algorithm, "Mufasa", realm, "Circle of Life");
        verify(&credentials, "GET", Secret::Ha1(&stored), realm)?;
        verify(
            &credentials,
            "GET",
            Secret::Ha1(&stored.to_ascii_uppercase()),
            realm,
        )?;

        let published = Credentials::parse(&format!(
            r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm={}, nonce="{RFC7616_NONCE}", nc=00000001, cnonce="{RFC7616_CNONCE}", qop=auth, response="{expected}", opaque="{RFC7616_OPAQUE}""#,
            algorithm.as_str()
        ))?;
        assert_eq!(published, credentials);
        verify(&published, "GET", Secret::Password("Circle of Life"), realm)
    }

    #[test]
    fn rfc7616_section_3_9_1_md5() -> Result<(), AuthError> {
        rfc7616_case(Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec")
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256() -> Result<(), AuthError> {
        rfc7616_case(
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        )
    }

    #[test]
    fn sha512_256_round_trip_through_headers() -> Result<(), AuthError> {
        let issuer = NonceIssuer::new(&[7u8; 32], "kald.example");
        let nonce = issuer.issue(1_700_000_000);
        let challenge = Challenge::new("kald.example", nonce, Algorithm::Sha512_256);
        let challenge = Challenge::parse(&challenge.to_string())?;
        let credentials = respond(
            &challenge,
            "REGISTER",
            "sip:kald.example",
            "4512345678",
            "s3cret pass",
            "0123456789abcdef",
            1,
        )?;
        assert_eq!(credentials.response.len(), 64);
        let received = Credentials::parse(&credentials.to_string())?;
        assert_eq!(received, credentials);
        assert_eq!(
            issuer.check(&received.nonce, 1_700_000_010, 300),
            NonceStatus::Valid
        );
        verify(
            &received,
            "REGISTER",
            Secret::Password("s3cret pass"),
            "kald.example",
        )?;
        let stored = ha1(
            Algorithm::Sha512_256,
            "4512345678",
            "kald.example",
            "s3cret pass",
        );
        verify(&received, "REGISTER", Secret::Ha1(&stored), "kald.example")
    }

    #[test]
    fn every_algorithm_round_trips_with_password_and_ha1() -> Result<(), AuthError> {
        for algorithm in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ] {
            assert_eq!(
                Algorithm::parse(&algorithm.as_str().to_ascii_lowercase())?,
                algorithm
            );
            let challenge = Challenge::new("r", "n0nce", algorithm).with_opaque("op");
            let credentials = respond(&challenge, "INVITE", "sip:bob@r", "alice", "pw", "cn", 3)?;
            assert_eq!(credentials.response.len(), algorithm.hex_len());
            let received = Credentials::parse(&credentials.to_string())?;
            assert_eq!(received.nc, Some(3));
            assert_eq!(received.opaque.as_deref(), Some("op"));
            verify(&received, "INVITE", Secret::Password("pw"), "r")?;
            verify(
                &received,
                "INVITE",
                Secret::Ha1(&ha1(algorithm, "alice", "r", "pw")),
                "r",
            )?;
            assert_eq!(
                verify(&received, "BYE", Secret::Password("pw"), "r"),
                Err(AuthError::ResponseMismatch)
            );
        }
        Ok(())
    }

    #[test]
    fn legacy_rfc2069_without_qop() -> Result<(), AuthError> {
        let challenge = Challenge::parse(r#"Digest realm="testrealm@host.com", nonce="abc""#)?;
        assert!(challenge.qop.is_empty());
        let credentials = respond(&challenge, "GET", "/x", "Mufasa", "pw", "ignored", 1)?;
        assert_eq!(credentials.qop, None);
        assert_eq!(credentials.nc, None);
        assert_eq!(credentials.cnonce, None);
        let text = credentials.to_string();
        assert!(!text.contains("qop") && !text.contains("nc=") && !text.contains("cnonce"));
        // Independent computation: MD5(HA1:nonce:HA2).
        let h = |s: &str| hex::encode(Md5::digest(s.as_bytes()));
        let expected = h(&format!(
            "{}:abc:{}",
            h("Mufasa:testrealm@host.com:pw"),
            h("GET:/x")
        ));
        assert_eq!(credentials.response, expected);
        verify(
            &Credentials::parse(&text)?,
            "GET",
            Secret::Password("pw"),
            "testrealm@host.com",
        )
    }

    #[test]
    fn wrong_password_and_other_verify_failures() -> Result<(), AuthError> {
        let challenge = Challenge::parse(RFC2617_CHALLENGE)?;
        let credentials = respond(
            &challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        )?;
        let realm = "testrealm@host.com";
        assert_eq!(
            verify(
                &credentials,
                "GET",
                Secret::Password("Circle of Life"),
                realm
            ),
            Err(AuthError::ResponseMismatch)
        );
        let wrong_ha1 = ha1(Algorithm::Md5, "Mufasa", realm, "wrong");
        assert_eq!(
            verify(&credentials, "GET", Secret::Ha1(&wrong_ha1), realm),
            Err(AuthError::ResponseMismatch)
        );
        assert_eq!(
            verify(&credentials, "GET", Secret::Ha1("abc"), realm),
            Err(AuthError::InvalidHa1)
        );
        assert_eq!(
            verify(
                &credentials,
                "GET",
                Secret::Password("Circle Of Life"),
                "other"
            ),
            Err(AuthError::RealmMismatch)
        );
        let mut tampered = credentials.clone();
        tampered.nc = Some(2);
        assert_eq!(
            verify(&tampered, "GET", Secret::Password("Circle Of Life"), realm),
            Err(AuthError::ResponseMismatch)
        );
        let mut no_uri = credentials.clone();
        no_uri.uri = None;
        assert_eq!(
            verify(&no_uri, "GET", Secret::Password("Circle Of Life"), realm),
            Err(AuthError::MissingParam("uri"))
        );
        let mut auth_int = credentials;
        auth_int.qop = Some(Qop::AuthInt);
        assert_eq!(
            verify(&auth_int, "GET", Secret::Password("Circle Of Life"), realm),
            Err(AuthError::UnsupportedQop)
        );
        Ok(())
    }

    #[test]
    fn auth_int_is_refused() -> Result<(), AuthError> {
        let challenge = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#)?;
        assert_eq!(
            respond(&challenge, "GET", "/", "u", "p", "c", 1),
            Err(AuthError::UnsupportedQop)
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-conf""#),
            Err(AuthError::UnsupportedQop)
        );
        let credentials = Credentials::parse(
            r#"Digest username="u", realm="r", nonce="n", uri="/", response="00", qop=auth-int, nc=00000001, cnonce="c""#,
        )?;
        assert_eq!(
            verify(&credentials, "GET", Secret::Password("p"), "r"),
            Err(AuthError::UnsupportedQop)
        );
        Ok(())
    }

    #[test]
    fn stale_nonce() {
        let issuer = NonceIssuer::new(b"0123456789abcdef0123456789abcdef", "kald.example");
        let nonce = issuer.issue(1_000);
        assert_eq!(nonce.len(), 48);
        assert!(nonce.starts_with("00000000000003e8"));
        assert_eq!(issuer.check(&nonce, 1_000, 60), NonceStatus::Valid);
        assert_eq!(issuer.check(&nonce, 1_060, 60), NonceStatus::Valid);
        assert_eq!(issuer.check(&nonce, 1_061, 60), NonceStatus::Stale);
        assert_eq!(issuer.check(&nonce, 999, 60), NonceStatus::Invalid);
        // A stale nonce still yields a correct response, which is what earns stale=true.
        let challenge =
            Challenge::new("kald.example", nonce.clone(), Algorithm::Sha256).with_stale(true);
        assert!(challenge.to_string().contains(", stale=true, "));
    }

    #[test]
    fn tampered_nonce() {
        let key = [42u8; 32];
        let issuer = NonceIssuer::new(&key, "kald.example");
        let nonce = issuer.issue(5_000);
        assert_eq!(issuer.check(&nonce, 5_001, 60), NonceStatus::Valid);
        // Move the timestamp forward to dodge expiry: the MAC no longer fits.
        let forged = format!("{:016x}{}", 5_100u64, &nonce[16..]);
        assert_eq!(issuer.check(&forged, 5_101, 60), NonceStatus::Invalid);
        // Flip each character in turn.
        for i in 0..nonce.len() {
            let mut bytes = nonce.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let altered = String::from_utf8(bytes).unwrap_or_default();
            assert_eq!(
                issuer.check(&altered, 5_001, 60),
                NonceStatus::Invalid,
                "index {i}"
            );
        }
        assert_eq!(
            issuer.check(&nonce.to_ascii_uppercase(), 5_001, 60),
            NonceStatus::Invalid
        );
        assert_eq!(issuer.check(&nonce[..47], 5_001, 60), NonceStatus::Invalid);
        assert_eq!(issuer.check("", 5_001, 60), NonceStatus::Invalid);
        assert_eq!(
            issuer.check(&"z".repeat(48), 5_001, 60),
            NonceStatus::Invalid
        );
        let other_realm = NonceIssuer::new(&key, "other.example");
        assert_eq!(other_realm.check(&nonce, 5_001, 60), NonceStatus::Invalid);
        let other_key = NonceIssuer::new(&[43u8; 32], "kald.example");
        assert_eq!(other_key.check(&nonce, 5_001, 60), NonceStatus::Invalid);
    }

    #[test]
    fn hmac_sha256_rfc4231_test_case_1() {
        let mac = hmac_sha256(&[0x0b; 20], &[b"Hi ", b"There"]);
        assert_eq!(
            hex::encode(mac),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn parse_tricky_spacing_and_quoting() -> Result<(), AuthError> {
        let value =
            "  dIgEsT \t USERNAME = \"Mu\\\"fa\\\\sa\" ,realm=\"a, b=c\",\t,nonce=  \"n\\o\"  ,\
                     uri=\"sip:+4512345678@kald.example;user=phone\",response = \"ABCDEF\" , \
                     QOP = auth , nc=0000000a , cnonce=\"\", Foo=bar, x-empty=\"\" , ";
        let credentials = Credentials::parse(value)?;
        assert_eq!(credentials.username, "Mu\"fa\\sa");
        assert_eq!(credentials.realm, "a, b=c");
        assert_eq!(credentials.nonce, "no");
        assert_eq!(
            credentials.uri.as_deref(),
            Some("sip:+4512345678@kald.example;user=phone")
        );
        assert_eq!(credentials.response, "ABCDEF");
        assert_eq!(credentials.qop, Some(Qop::Auth));
        assert_eq!(credentials.nc, Some(10));
        assert_eq!(credentials.cnonce.as_deref(), Some(""));
        assert_eq!(
            credentials.extensions,
            vec![
                ("foo".to_owned(), "bar".to_owned()),
                ("x-empty".to_owned(), String::new())
            ]
        );
        // Escapes survive a Display/parse round trip.
        let again = Credentials::parse(&credentials.to_string())?;
        assert_eq!(again.username, credentials.username);
        assert_eq!(again.realm, credentials.realm);

        let challenge = Challenge::parse(
            "Digest realm=\"kald\",nonce=\"x\",qop=auth,algorithm=sha-256-SESS,stale=TRUE,domain=\"sip:a sip:b\"",
        )?;
        assert_eq!(challenge.qop, vec![Qop::Auth]);
        assert_eq!(challenge.algorithm, Algorithm::Sha256Sess);
        assert!(challenge.stale);
        assert_eq!(challenge.domain.as_deref(), Some("sip:a sip:b"));

        for (bad, err) in [
            ("Digest", AuthError::MissingParam("realm")),
            ("Digest realm=\"r\"", AuthError::MissingParam("nonce")),
            (
                "Digest realm=\"r\", nonce=\"n\", realm=\"s\"",
                AuthError::DuplicateParam("realm"),
            ),
            (
                "Digest realm=\"r\", nonce=\"n\", Foo=1, foo=2",
                AuthError::DuplicateParam("extension parameter"),
            ),
            (
                "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1",
                AuthError::UnknownAlgorithm,
            ),
            (
                "Digest realm=\"r, nonce=n",
                AuthError::Malformed("unterminated quoted string"),
            ),
            (
                "Digest realm=\"r\\",
                AuthError::Malformed("unterminated quoted string"),
            ),
            (
                "Digest realm=\"r, nonce=\"n\"",
                AuthError::Malformed("expected ',' between parameters"),
            ),
            (
                "Digest realm=\"r\" nonce=\"n\"",
                AuthError::Malformed("expected ',' between parameters"),
            ),
            (
                "Digest realm",
                AuthError::Malformed("expected '=' after a parameter name"),
            ),
            (
                "Digest realm=, nonce=\"n\"",
                AuthError::Malformed("expected a parameter value"),
            ),
            (
                "Digest =\"r\"",
                AuthError::Malformed("expected a parameter name"),
            ),
            (
                "Digest,realm=\"r\"",
                AuthError::Malformed("expected whitespace after the scheme"),
            ),
            ("", AuthError::Malformed("missing authentication scheme")),
        ] {
            assert_eq!(Challenge::parse(bad), Err(err), "{bad}");
        }
        let base = r#"Digest username="u", realm="r", nonce="n", uri="/", response="0""#;
        for (extra, err) in [
            (", qop=auth, nc=00000001", AuthError::MissingParam("cnonce")),
            (", qop=auth, cnonce=\"c\"", AuthError::MissingParam("nc")),
            (
                ", qop=auth, cnonce=\"c\", nc=1",
                AuthError::InvalidParam("nc"),
            ),
            (
                ", qop=auth, cnonce=\"c\", nc=0000000A",
                AuthError::InvalidParam("nc"),
            ),
            (
                ", qop=bogus, cnonce=\"c\", nc=00000001",
                AuthError::InvalidParam("qop"),
            ),
        ] {
            assert_eq!(
                Credentials::parse(&format!("{base}{extra}")),
                Err(err),
                "{extra}"
            );
        }
        assert_eq!(
            Credentials::parse(r#"Digest realm="r", nonce="n", response="0""#),
            Err(AuthError::MissingParam("username"))
        );
        Ok(())
    }

    #[test]
    fn unknown_scheme_is_distinct() {
        // RFC 4475 §3.3.7.
        let value = "NoOneKnowsThisScheme opaque-data=here";
        assert_eq!(Challenge::parse(value), Err(AuthError::UnsupportedScheme));
        assert_eq!(Credentials::parse(value), Err(AuthError::UnsupportedScheme));
        assert_eq!(
            Credentials::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Err(AuthError::UnsupportedScheme)
        );
    }

    #[test]
    fn challenge_display() -> Result<(), AuthError> {
        let challenge = Challenge::new("kald.example", "abc123", Algorithm::Sha256);
        assert_eq!(
            challenge.to_string(),
            r#"Digest realm="kald.example", nonce="abc123", algorithm=SHA-256, qop="auth""#
        );
        let full = challenge.clone().with_opaque("o\"p").with_stale(true);
        assert_eq!(
            full.to_string(),
            r#"Digest realm="kald.example", nonce="abc123", opaque="o\"p", stale=true, algorithm=SHA-256, qop="auth""#
        );
        assert_eq!(Challenge::parse(&full.to_string())?, full);
        // Control characters cannot inject header lines.
        let evil = Challenge::new("a\r\nVia: x", "n", Algorithm::Md5);
        assert!(!evil.to_string().contains('\n') && !evil.to_string().contains('\r'));
        Ok(())
    }

    /// Every variant, with a compile error here when one is added and not listed.
    fn all_errors() -> Vec<AuthError> {
        let all = vec![
            AuthError::UnsupportedScheme,
            AuthError::Malformed("unterminated quoted string"),
            AuthError::DuplicateParam("username"),
            AuthError::MissingParam("username"),
            AuthError::InvalidParam("nc"),
            AuthError::UnknownAlgorithm,
            AuthError::UnsupportedQop,
            AuthError::RealmMismatch,
            AuthError::InvalidHa1,
            AuthError::ResponseMismatch,
        ];
        for e in &all {
            match e {
                AuthError::UnsupportedScheme
                | AuthError::Malformed(_)
                | AuthError::DuplicateParam(_)
                | AuthError::MissingParam(_)
                | AuthError::InvalidParam(_)
                | AuthError::UnknownAlgorithm
                | AuthError::UnsupportedQop
                | AuthError::RealmMismatch
                | AuthError::InvalidHa1
                | AuthError::ResponseMismatch => {}
            }
        }
        all
    }

    #[test]
    fn errors_and_debug_leak_no_personal_data() -> Result<(), AuthError> {
        let user = "4587654321";
        let password = "Tr0ub4dor&3";
        let challenge = Challenge::new("kald.example", "n", Algorithm::Sha256);
        let credentials = respond(
            &challenge,
            "REGISTER",
            "sip:kald.example",
            user,
            password,
            "c",
            1,
        )?;
        let response = credentials.response.clone();
        let mut produced = all_errors();
        let failures = [
            verify(
                &credentials,
                "REGISTER",
                Secret::Password("wrong"),
                "kald.example",
            ),
            verify(&credentials, "REGISTER", Secret::Password(password), user),
            verify(
                &credentials,
                "REGISTER",
                Secret::Ha1(password),
                "kald.example",
            ),
            Credentials::parse(&format!("Digest username=\"{user}\", username=\"{user}\""))
                .map(drop),
            Credentials::parse(&format!("Digest username=\"{user}\", realm=\"{password}"))
                .map(drop),
            Credentials::parse(&format!(
                "Digest username=\"{user}\", {user}={password}, {user}=x"
            ))
            .map(drop),
            Credentials::parse(&format!("{user} {password}")).map(drop),
            Challenge::parse(&format!(
                "Digest realm=\"r\", nonce=\"n\", algorithm={password}"
            ))
            .map(drop),
        ];
        for failure in failures {
            match failure {
                Err(e) => produced.push(e),
                Ok(()) => panic!("expected an error"),
            }
        }
        for error in produced {
            for text in [error.to_string(), format!("{error:?}")] {
                assert!(!text.contains(user), "{text}");
                assert!(!text.contains(password), "{text}");
                assert!(!text.contains(&response), "{text}");
            }
        }
        let debug = format!(
            "{credentials:?} {:?} {:?}",
            Secret::Password(password),
            Secret::Ha1(&response)
        );
        assert!(!debug.contains(user) && !debug.contains(password) && !debug.contains(&response));
        let issuer = format!("{:?}", NonceIssuer::new(password.as_bytes(), "r"));
        assert!(!issuer.contains(password));
        Ok(())
    }
}
