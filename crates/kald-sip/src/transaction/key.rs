//! Transaction keys: how a request finds its server transaction (RFC 3261 §17.2.3) and a
//! response its client transaction (§17.1.3).
//!
//! Keys own small copies of the fields they compare, so they can sit in a `HashMap` while
//! the message they came from is gone. Their `Debug` prints only the method: branches,
//! sent-by addresses, tags and Call-IDs stay out of logs.

use std::fmt;

use bytes::Bytes;

use super::TransactionError;
use crate::error::{ParseError, ParseErrorKind};
use crate::message::{HeaderName, Message, Method, StartLine};

/// The key of a server transaction, computed from a request (RFC 3261 §17.2.3).
///
/// With an RFC 3261 branch (`z9hG4bK…`) it is (branch, sent-by, method) where ACK counts as
/// INVITE and CANCEL keeps its own method. Otherwise it falls back to RFC 2543 matching:
/// (Request-URI, From tag, To tag, Call-ID, CSeq number, top Via, method) with the To tag
/// left out for INVITE and ACK, because the ACK for a non-2xx carries the tag of the
/// response, which the INVITE did not have.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServerKey(Inner);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Inner {
    Rfc3261 {
        branch: Box<str>,
        /// sent-by host, lower-cased (IPv6 in its canonical bracketed form).
        host: Box<str>,
        port: Option<u16>,
        method: Method,
    },
    Rfc2543 {
        request_uri: Bytes,
        from_tag: Option<Box<str>>,
        to_tag: Option<Box<str>>,
        call_id: Box<str>,
        cseq: u32,
        /// The top Via value as received.
        top_via: Box<str>,
        method: Method,
    },
}

impl ServerKey {
    /// The key of the transaction `request` belongs to (or would create).
    pub fn from_request(request: &Message) -> Result<Self, TransactionError> {
        let StartLine::Request { method, uri } = &request.start else {
            return Err(TransactionError::NotARequest);
        };
        let method = match method {
            Method::Ack => Method::Invite,
            other => other.clone(),
        };
        let via = request.top_via()?;
        if let Some(branch) = via.rfc3261_branch() {
            return Ok(Self(Inner::Rfc3261 {
                branch: branch.into(),
                host: via.host.to_string().to_ascii_lowercase().into(),
                port: via.port,
                method,
            }));
        }
        let to_tag = if method == Method::Invite {
            None
        } else {
            request.to()?.tag().map(Into::into)
        };
        Ok(Self(Inner::Rfc2543 {
            request_uri: uri.clone(),
            from_tag: request.from()?.tag().map(Into::into),
            to_tag,
            call_id: request.call_id()?.into(),
            cseq: request.cseq()?.seq,
            top_via: top_via_text(request)?.into(),
            method,
        }))
    }

    /// The method part of the key (INVITE for an ACK).
    pub fn method(&self) -> &Method {
        match &self.0 {
            Inner::Rfc3261 { method, .. } | Inner::Rfc2543 { method, .. } => method,
        }
    }

    /// This key with method INVITE: for a CANCEL's key, the key of the INVITE it targets
    /// (RFC 3261 §9.2). RFC 2543 keys also drop the To tag, as INVITE keys have none.
    pub fn invite_for_cancel(&self) -> Self {
        let mut key = self.clone();
        match &mut key.0 {
            Inner::Rfc3261 { method, .. } => *method = Method::Invite,
            Inner::Rfc2543 { method, to_tag, .. } => {
                *method = Method::Invite;
                *to_tag = None;
            }
        }
        key
    }

    /// Whether the key came from an RFC 3261 branch rather than the RFC 2543 fallback.
    pub fn is_rfc3261(&self) -> bool {
        matches!(self.0, Inner::Rfc3261 { .. })
    }
}

/// Prints only the kind of key and its method.
impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_rfc3261() {
            "rfc3261"
        } else {
            "rfc2543"
        };
        write!(f, "ServerKey({kind}, {})", self.method())
    }
}

/// The key of the INVITE server transaction a CANCEL targets (RFC 3261 §9.2), or `None` if
/// `cancel` is not the key of a CANCEL. See [`ServerKey::invite_for_cancel`].
pub fn matches_invite_for_cancel(cancel: &ServerKey) -> Option<ServerKey> {
    (*cancel.method() == Method::Cancel).then(|| cancel.invite_for_cancel())
}

/// The key of a client transaction: the top Via branch kald put in the request, and the
/// method (RFC 3261 §17.1.3).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: Box<str>,
    method: Method,
}

impl ClientKey {
    /// The key of a request kald sends (any method but ACK, which has no transaction).
    pub fn from_request(request: &Message) -> Result<Self, TransactionError> {
        let method = request.method().ok_or(TransactionError::NotARequest)?;
        if *method == Method::Ack {
            return Err(TransactionError::WrongMethod);
        }
        Ok(Self {
            branch: branch(request)?.into(),
            method: method.clone(),
        })
    }

    /// The key a response is matched by: its top Via branch and its CSeq method.
    pub fn from_response(response: &Message) -> Result<Self, TransactionError> {
        if response.is_request() {
            return Err(TransactionError::NotAResponse);
        }
        Ok(Self {
            branch: branch(response)?.into(),
            method: response.cseq()?.method,
        })
    }

    /// The method part of the key.
    pub fn method(&self) -> &Method {
        &self.method
    }
}

/// Prints only the method.
impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey({})", self.method)
    }
}

/// The branch of the top Via; a missing one is a malformed Via.
fn branch(message: &Message) -> Result<&str, ParseError> {
    message
        .top_via()?
        .branch()
        .ok_or_else(|| ParseError::in_header(ParseErrorKind::Malformed, HeaderName::Via))
}

/// The first Via value as written (the first element of the first Via line).
pub(super) fn top_via_text(message: &Message) -> Result<&str, ParseError> {
    message.values(HeaderName::Via).next().unwrap_or_else(|| {
        Err(ParseError::in_header(
            ParseErrorKind::Missing,
            HeaderName::Via,
        ))
    })
}

/// The raw value of the first header line called `name`.
pub(super) fn raw_header(message: &Message, name: HeaderName) -> Result<Bytes, ParseError> {
    match message.headers.first(&name) {
        Some(h) => Ok(h.value.clone()),
        None => Err(ParseError::in_header(ParseErrorKind::Missing, name)),
    }
}
