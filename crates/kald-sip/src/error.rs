//! Errors of the message layer, kept small and free of raw input.
//!
//! A [`ParseError`] names *what* was wrong (which header, which kind of fault) and never
//! carries bytes from the message: SIP headers hold phone numbers and names, and errors reach
//! logs. What the server needs to answer a broken request (Via, From, To, Call-ID, CSeq) is
//! kept apart in [`ParseError::partial`], which has no `Display`.

use std::fmt;

use crate::message::{HeaderName, Headers, Method};

/// Why a SIP message could not be read, without any of its bytes.
#[derive(Debug)]
pub struct ParseError {
    /// What kind of fault it is.
    pub kind: ParseErrorKind,
    /// The header the fault was found in, if any.
    pub header: Option<HeaderName>,
    /// What was read before the fault, so a request can still be answered (400/505/…).
    pub partial: Option<Box<Partial>>,
}

/// The part of a broken request that was read, enough to build an error response.
#[derive(Debug, Clone)]
pub struct Partial {
    /// The method of the request line, if the request line was read.
    pub method: Option<Method>,
    /// Every header that was tokenised before the fault.
    pub headers: Headers,
}

/// The kinds of fault a message can have; each maps to a reply (or to dropping it).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The input is empty or holds only line breaks.
    Empty,
    /// The header section has no terminating empty line.
    UnterminatedHeaders,
    /// The header section or body is larger than the configured limit.
    TooLarge,
    /// The start line is neither a request line nor a status line.
    BadStartLine,
    /// The request line has extra, missing or misplaced spaces.
    BadRequestLine,
    /// The Request-URI is malformed (spaces, `<>`, escaped headers…).
    BadRequestUri,
    /// The SIP version is not SIP/2.0.
    UnsupportedVersion,
    /// The status code is not a three-digit number from 100 to 699.
    BadStatusCode,
    /// A header line has no name or no colon.
    BadHeaderLine,
    /// A header required in every request is missing.
    Missing,
    /// A header that may occur once occurs more than once.
    Duplicate,
    /// A header's value does not follow its grammar.
    Malformed,
    /// A number is out of its legal range (CSeq ≥ 2³¹, Max-Forwards > 255, …).
    OutOfRange,
    /// Content-Length promises more bytes than the message has.
    Truncated,
    /// The CSeq method differs from the request method.
    CSeqMismatch,
}

impl ParseError {
    /// A fault with no header and nothing read.
    pub fn new(kind: ParseErrorKind) -> Self {
        Self {
            kind,
            header: None,
            partial: None,
        }
    }

    /// A fault in the named header.
    pub fn in_header(kind: ParseErrorKind, header: HeaderName) -> Self {
        Self {
            kind,
            header: Some(header),
            partial: None,
        }
    }

    /// The reason phrase kald sends with the 400 (or 505) for this fault; no input bytes.
    pub fn reason_phrase(&self) -> String {
        match &self.header {
            Some(h) if h.is_known() => format!("{} ({})", self.kind.reason(), h.as_str()),
            _ => self.kind.reason().to_owned(),
        }
    }
}

impl ParseErrorKind {
    /// A short English description, used in reason phrases and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Empty => "Empty message",
            Self::UnterminatedHeaders => "Unterminated header section",
            Self::TooLarge => "Message too large",
            Self::BadStartLine => "Malformed start line",
            Self::BadRequestLine => "Malformed Request-Line",
            Self::BadRequestUri => "Malformed Request-URI",
            Self::UnsupportedVersion => "Version Not Supported",
            Self::BadStatusCode => "Bad status code",
            Self::BadHeaderLine => "Malformed header line",
            Self::Missing => "Missing header",
            Self::Duplicate => "Header repeated",
            Self::Malformed => "Malformed header",
            Self::OutOfRange => "Value out of range",
            Self::Truncated => "Content-Length larger than message",
            Self::CSeqMismatch => "CSeq method does not match",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.header {
            Some(h) if h.is_known() => write!(f, "{} in {}", self.kind.reason(), h.as_str()),
            Some(_) => write!(f, "{} in an extension header", self.kind.reason()),
            None => f.write_str(self.kind.reason()),
        }
    }
}

impl std::error::Error for ParseError {}
