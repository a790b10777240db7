//! The SIP message layer: framing, the start line, the header tokenizer, typed accessors and
//! the printer. Zero-copy: a parsed [`Message`] holds [`Bytes`] slices of the received
//! buffer; only folded header values are copied (unfolded).
//!
//! Written by hand rather than taken from a crate: `rsip` misreads most of the RFC 4475
//! corpus, rsipstack's parser pulls tokio into the core and drops headers, and ezk-sip-types
//! has no `tel:` URIs and rewrites branches (see `shared/sip-corpus/PARSERS.md`).

mod header;
mod scan;
mod typed;
mod uri;

use std::fmt;

use bytes::{Bytes, BytesMut};

pub use header::{Header, HeaderName, Headers};
pub use typed::{check_date, parse_call_id, parse_number, CSeq, NameAddr, Params, ValueError, Via};
pub use uri::{Host, Scheme, Uri, UriError};

use crate::error::{ParseError, ParseErrorKind as K, Partial};

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1); any token is a method.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `ACK`
    Ack,
    /// `BYE`
    Bye,
    /// `CANCEL`
    Cancel,
    /// `INFO` (RFC 6086)
    Info,
    /// `INVITE`
    Invite,
    /// `MESSAGE` (RFC 3428)
    Message,
    /// `NOTIFY` (RFC 6665)
    Notify,
    /// `OPTIONS`
    Options,
    /// `PRACK` (RFC 3262)
    Prack,
    /// `PUBLISH` (RFC 3903)
    Publish,
    /// `REFER` (RFC 3515)
    Refer,
    /// `REGISTER`
    Register,
    /// `SUBSCRIBE` (RFC 6665)
    Subscribe,
    /// `UPDATE` (RFC 3311)
    Update,
    /// Any other method token, as received.
    Other(Bytes),
}

impl Method {
    /// Recognise a method token (exact case).
    pub fn from_bytes(b: &[u8]) -> Self {
        match b {
            b"ACK" => Self::Ack,
            b"BYE" => Self::Bye,
            b"CANCEL" => Self::Cancel,
            b"INFO" => Self::Info,
            b"INVITE" => Self::Invite,
            b"MESSAGE" => Self::Message,
            b"NOTIFY" => Self::Notify,
            b"OPTIONS" => Self::Options,
            b"PRACK" => Self::Prack,
            b"PUBLISH" => Self::Publish,
            b"REFER" => Self::Refer,
            b"REGISTER" => Self::Register,
            b"SUBSCRIBE" => Self::Subscribe,
            b"UPDATE" => Self::Update,
            other => Self::Other(Bytes::copy_from_slice(other)),
        }
    }

    /// The method as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Ack => b"ACK",
            Self::Bye => b"BYE",
            Self::Cancel => b"CANCEL",
            Self::Info => b"INFO",
            Self::Invite => b"INVITE",
            Self::Message => b"MESSAGE",
            Self::Notify => b"NOTIFY",
            Self::Options => b"OPTIONS",
            Self::Prack => b"PRACK",
            Self::Publish => b"PUBLISH",
            Self::Refer => b"REFER",
            Self::Register => b"REGISTER",
            Self::Subscribe => b"SUBSCRIBE",
            Self::Update => b"UPDATE",
            Self::Other(b) => b,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`
    Request {
        /// The method.
        method: Method,
        /// The Request-URI as received (checked to parse).
        uri: Bytes,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`
    Response {
        /// The status code, 100–699.
        code: u16,
        /// The reason phrase byte for byte (may be empty or UTF-8).
        reason: Bytes,
    },
}

/// How a message arrived, which decides how its body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One UDP datagram: without Content-Length the body is the rest of the datagram, and
    /// octets past Content-Length are discarded (RFC 3261 §18.3).
    Datagram,
    /// A stream (TCP/TLS): Content-Length is mandatory and exact.
    Stream,
}

/// Size limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest header section, in bytes.
    pub max_headers: usize,
    /// Largest body, in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_headers: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// A parsed SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The start line.
    pub start: StartLine,
    /// The headers in order.
    pub headers: Headers,
    /// The body, exactly Content-Length bytes (or the datagram's rest when it has none).
    pub body: Bytes,
}

impl Message {
    /// Parse one message from a datagram; octets after the message are ignored.
    pub fn parse(buf: Bytes) -> Result<Self, ParseError> {
        Self::parse_with(buf, Framing::Datagram, Limits::default()).map(|(m, _)| m)
    }

    /// Parse one message, returning it and the number of bytes it took from `buf`.
    pub fn parse_with(
        buf: Bytes,
        framing: Framing,
        limits: Limits,
    ) -> Result<(Self, usize), ParseError> {
        let mut start = 0;
        while buf[start..].starts_with(b"\r\n") {
            start += 2;
        }
        if start >= buf.len() {
            return Err(ParseError::new(K::Empty));
        }
        let head_end = scan::find_blank_line(&buf[start..]).map(|i| start + i);
        let head_stop = head_end.map_or(buf.len(), |e| e + 2);
        if head_stop - start > limits.max_headers {
            return Err(ParseError::new(K::TooLarge));
        }
        let line_end = scan::find_crlf(&buf[start..head_stop]).map_or(head_stop, |i| start + i);
        let line = &buf[start..line_end];
        let start_line = parse_start_line(&buf, start, line_end);
        let is_request = !line.starts_with(b"SIP/");
        let header_start = (line_end + 2).min(head_stop);
        let headers = tokenize_headers(&buf, header_start, head_stop);

        let fail = |kind: K, header: Option<HeaderName>, headers: Result<Headers, ParseError>| {
            let mut err = ParseError {
                kind,
                header,
                partial: None,
            };
            if is_request {
                if let Ok(headers) = headers {
                    let method = line.split(|&b| b == b' ').next().filter(|m| !m.is_empty());
                    err.partial = Some(Box::new(Partial {
                        method: method.map(Method::from_bytes),
                        headers,
                    }));
                }
            }
            err
        };
        let start_line = match start_line {
            Ok(s) => s,
            Err(kind) => return Err(fail(kind, None, headers)),
        };
        let headers = headers?;
        let Some(head_end) = head_end else {
            return Err(fail(K::UnterminatedHeaders, None, Ok(headers)));
        };
        let body_start = head_end + 4;
        let length = content_length(&headers, limits);
        let available = buf.len() - body_start;
        let cl = Some(HeaderName::ContentLength);
        let body_len = match (length, framing) {
            (Err(kind), _) => return Err(fail(kind, cl, Ok(headers))),
            (Ok(Some(n)), _) if n > available => return Err(fail(K::Truncated, cl, Ok(headers))),
            (Ok(Some(n)), _) => n,
            (Ok(None), Framing::Datagram) if available > limits.max_body => {
                return Err(fail(K::TooLarge, None, Ok(headers)))
            }
            (Ok(None), Framing::Datagram) => available,
            (Ok(None), Framing::Stream) => return Err(fail(K::Missing, cl, Ok(headers))),
        };
        let body = buf.slice(body_start..body_start + body_len);
        Ok((
            Self {
                start: start_line,
                headers,
                body,
            },
            body_start + body_len,
        ))
    }

    /// The method of a request, or `None` for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The Request-URI of a request, parsed.
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        match &self.start {
            StartLine::Request { uri, .. } => std::str::from_utf8(uri)
                .ok()
                .and_then(|u| Uri::parse(u).ok()),
            StartLine::Response { .. } => None,
        }
    }

    /// The first value of a header as text.
    pub fn header_str(&self, name: &HeaderName) -> Option<&str> {
        self.headers.first(name).and_then(Header::value_str)
    }

    /// Every value of a (list) header, split at top-level commas; empty elements are errors.
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = Result<&str, ParseError>> + '_ {
        Values {
            headers: self.headers.iter(),
            name,
            parts: None,
        }
    }

    /// The top Via.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        let first = self
            .values(HeaderName::Via)
            .next()
            .ok_or_else(|| ParseError::in_header(K::Missing, HeaderName::Via))??;
        Via::parse(first).map_err(|e| value_error(e, HeaderName::Via))
    }

    /// Every Via, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> {
        self.values(HeaderName::Via)
            .map(|v| v.and_then(|v| Via::parse(v).map_err(|e| value_error(e, HeaderName::Via))))
    }

    /// The number of Via values.
    pub fn via_count(&self) -> usize {
        self.values(HeaderName::Via).count()
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        self.name_addr(HeaderName::From)
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        self.name_addr(HeaderName::To)
    }

    /// A single-valued name-addr header (From, To, Refer-To, Referred-By).
    pub fn name_addr(&self, name: HeaderName) -> Result<NameAddr<'_>, ParseError> {
        let v = self
            .header_str(&name)
            .ok_or_else(|| ParseError::in_header(K::Missing, name.clone()))?;
        NameAddr::parse(v).map_err(|e| value_error(e, name))
    }

    /// Every Contact value; `Ok(None)` stands for `Contact: *`.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Option<NameAddr<'_>>, ParseError>> {
        self.values(HeaderName::Contact).map(|v| {
            let v = v?;
            if v == "*" {
                return Ok(None);
            }
            NameAddr::parse(v)
                .map(Some)
                .map_err(|e| value_error(e, HeaderName::Contact))
        })
    }

    /// Every Route (or Record-Route) value, in order.
    pub fn routes(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        let n = name.clone();
        self.values(name)
            .map(move |v| v.and_then(|v| NameAddr::parse(v).map_err(|e| value_error(e, n.clone()))))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let v = self
            .header_str(&HeaderName::CallId)
            .ok_or_else(|| ParseError::in_header(K::Missing, HeaderName::CallId))?;
        parse_call_id(v).map_err(|e| value_error(e, HeaderName::CallId))
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        let v = self
            .header_str(&HeaderName::CSeq)
            .ok_or_else(|| ParseError::in_header(K::Missing, HeaderName::CSeq))?;
        CSeq::parse(v).map_err(|e| value_error(e, HeaderName::CSeq))
    }

    /// A numeric header (Max-Forwards, Expires, …) checked against `max`; `Ok(None)` if absent.
    pub fn number(&self, name: HeaderName, max: u64) -> Result<Option<u64>, ParseError> {
        match self.header_str(&name) {
            None if self.headers.contains(&name) => Err(ParseError::in_header(K::Malformed, name)),
            None => Ok(None),
            Some(v) => parse_number(v, max)
                .map(Some)
                .map_err(|e| value_error(e, name)),
        }
    }

    /// Whether a list header (Supported, Require, Allow, …) contains a token (case-insensitive).
    pub fn has_token(&self, name: &HeaderName, token: &str) -> bool {
        self.values(name.clone())
            .any(|v| v.is_ok_and(|v| v.eq_ignore_ascii_case(token)))
    }

    /// The media type of Content-Type without parameters, lower-cased comparison is the caller's.
    pub fn content_type(&self) -> Option<&str> {
        self.header_str(&HeaderName::ContentType)
            .map(|v| scan::trim_ws(v.split(';').next().unwrap_or("")))
    }

    /// Print the message as it goes on the wire, appending to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match &self.start {
            StartLine::Request { method, uri } => {
                out.extend_from_slice(method.as_bytes());
                out.push(b' ');
                out.extend_from_slice(uri);
                out.extend_from_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.extend_from_slice(b"SIP/2.0 ");
                out.extend_from_slice(itoa3(*code).as_slice());
                out.push(b' ');
                out.extend_from_slice(reason);
                out.extend_from_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            out.extend_from_slice(h.name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    /// The message printed into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(512 + self.body.len());
        self.write_to(&mut out);
        out.into()
    }
}

/// The iterator behind [`Message::values`]; it allocates nothing.
struct Values<'a> {
    headers: std::slice::Iter<'a, Header>,
    name: HeaderName,
    /// The parts of the header line being split.
    parts: Option<scan::Split<'a>>,
}

impl<'a> Iterator for Values<'a> {
    type Item = Result<&'a str, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(parts) = &mut self.parts {
                match parts.next() {
                    Some(Ok(p)) if !p.is_empty() => return Some(Ok(p)),
                    Some(_) => {
                        return Some(Err(ParseError::in_header(K::Malformed, self.name.clone())))
                    }
                    None => self.parts = None,
                }
            }
            let name = &self.name;
            let h = self.headers.find(|h| &h.name == name)?;
            match h.value_str() {
                // Most lines hold one value: with no comma and no quote there is nothing to split.
                Some(v) if memchr::memchr2(b',', b'"', v.as_bytes()).is_none() => {
                    let v = scan::trim_ws(v);
                    if v.is_empty() {
                        return Some(Err(ParseError::in_header(K::Malformed, self.name.clone())));
                    }
                    return Some(Ok(v));
                }
                Some(v) => self.parts = Some(scan::split_top(v, b',')),
                None => return Some(Err(ParseError::in_header(K::Malformed, self.name.clone()))),
            }
        }
    }
}

/// The Content-Length, if there is exactly one; more than one is an error (RFC 4475 §3.3.9).
fn content_length(headers: &Headers, limits: Limits) -> Result<Option<usize>, K> {
    let mut lengths = headers.all(&HeaderName::ContentLength);
    match (lengths.next(), lengths.next()) {
        (Some(_), Some(_)) => Err(K::Duplicate),
        (Some(h), None) => {
            let text = std::str::from_utf8(&h.value).map_err(|_| K::Malformed)?;
            match parse_number(text, limits.max_body as u64) {
                Ok(n) => Ok(Some(n as usize)),
                Err(ValueError::OutOfRange) => Err(K::TooLarge),
                Err(ValueError::Malformed) => Err(K::Malformed),
            }
        }
        (None, _) => Ok(None),
    }
}

fn itoa3(code: u16) -> [u8; 3] {
    let c = code.min(999);
    [
        b'0' + (c / 100) as u8,
        b'0' + (c / 10 % 10) as u8,
        b'0' + (c % 10) as u8,
    ]
}

/// Turn a typed-value error into a parse error for `header`.
pub(crate) fn value_error(e: ValueError, header: HeaderName) -> ParseError {
    let kind = match e {
        ValueError::Malformed => K::Malformed,
        ValueError::OutOfRange => K::OutOfRange,
    };
    ParseError::in_header(kind, header)
}

fn parse_start_line(buf: &Bytes, start: usize, end: usize) -> Result<StartLine, K> {
    let line = &buf[start..end];
    if let Some(rest) = line.strip_prefix(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        if !rest.starts_with(b"2.0 ") {
            return Err(K::BadStartLine);
        }
        let rest = &rest[4..];
        let code_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        if code_len != 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
            return Err(K::BadStatusCode);
        }
        let code = u16::from(rest[0] - b'0') * 100
            + u16::from(rest[1] - b'0') * 10
            + u16::from(rest[2] - b'0');
        if !(100..=699).contains(&code) {
            return Err(K::BadStatusCode);
        }
        let reason_start = start + 4 + 4 + 3 + usize::from(rest.len() > 3);
        let reason = buf.slice(reason_start.min(end)..end);
        if reason.iter().any(|&b| b < 0x20 && b != b'\t') {
            return Err(K::BadStartLine);
        }
        return Ok(StartLine::Response { code, reason });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two single spaces.
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(K::BadRequestLine);
    };
    if method.is_empty() || !method.iter().all(|&b| scan::is_token_byte(b)) {
        return Err(K::BadRequestLine);
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(
            if version.len() > 4 && version[..4].eq_ignore_ascii_case(b"SIP/") {
                K::UnsupportedVersion
            } else {
                K::BadRequestLine
            },
        );
    }
    let uri_text = std::str::from_utf8(uri).map_err(|_| K::BadRequestUri)?;
    let parsed = Uri::parse(uri_text).map_err(|_| K::BadRequestUri)?;
    // Headers are not allowed in a Request-URI (RFC 3261 §19.1.5, RFC 4475 §3.1.2.11).
    if parsed.is_sip() && parsed.headers.is_some() {
        return Err(K::BadRequestUri);
    }
    let uri_start = start + method.len() + 1;
    Ok(StartLine::Request {
        method: Method::from_bytes(method),
        uri: buf.slice(uri_start..uri_start + uri.len()),
    })
}

/// Split the header section `[from, to)` into headers, unfolding continuation lines.
fn tokenize_headers(buf: &Bytes, from: usize, to: usize) -> Result<Headers, ParseError> {
    let unterminated = to == buf.len();
    let bad = || ParseError::new(K::BadHeaderLine);
    let mut headers = Headers::new();
    let mut pos = from;
    while pos < to {
        let mut end = line_end(buf, pos, to, unterminated).ok_or_else(bad)?;
        if end == pos {
            break;
        }
        // field-name = token, then optional LWS, then ':' (RFC 3261 §7.3.1).
        let line = &buf[pos..end];
        let name_len = line
            .iter()
            .position(|&b| !scan::is_token_byte(b))
            .unwrap_or(line.len());
        let mut colon = name_len;
        while colon < line.len() && scan::is_ws(line[colon]) {
            colon += 1;
        }
        if name_len == 0 || line.get(colon) != Some(&b':') {
            return Err(bad());
        }
        let name = HeaderName::from_bytes(&line[..name_len]);
        // Continuation lines start with SP or HT.
        let mut folded = false;
        while end + 2 < to && scan::is_ws(buf[end + 2]) {
            folded = true;
            end = line_end(buf, end + 2, to, unterminated).ok_or_else(bad)?;
        }
        let value = if folded {
            unfold(&buf[pos + colon + 1..end])
        } else {
            let v = &buf[pos + colon + 1..end];
            let lead = v.iter().take_while(|&&b| scan::is_ws(b)).count();
            let trail = v[lead..]
                .iter()
                .rev()
                .take_while(|&&b| scan::is_ws(b))
                .count();
            buf.slice(pos + colon + 1 + lead..end - trail)
        };
        headers.push(Header { name, value });
        pos = end + 2;
    }
    Ok(headers)
}

/// Where the line starting at `from` ends: the index of its CRLF, or `to` if it has none.
///
/// `None` if the line holds a CR or LF that is not part of a CRLF pair. No header grammar
/// allows one, and a peer that ends lines at a bare LF would see a header kald does not
/// (header smuggling through a B2BUA). A CR as the last byte of an unterminated section may
/// be half of a CRLF still to come, so it is allowed there.
fn line_end(buf: &[u8], from: usize, to: usize, unterminated: bool) -> Option<usize> {
    let Some(i) = memchr::memchr2(b'\r', b'\n', &buf[from..to]) else {
        return Some(to);
    };
    let i = from + i;
    match (buf[i], buf[..to].get(i + 1)) {
        (b'\r', Some(b'\n')) => Some(i),
        (b'\r', None) if unterminated => Some(i),
        _ => None,
    }
}

/// Replace each CRLF and the white space around it with one SP, and trim.
fn unfold(raw: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(b"\r\n") {
            while out.last().is_some_and(|&b| scan::is_ws(b)) {
                out.truncate(out.len() - 1);
            }
            i += 2;
            while i < raw.len() && scan::is_ws(raw[i]) {
                i += 1;
            }
            if !out.is_empty() {
                out.extend_from_slice(b" ");
            }
        } else {
            out.extend_from_slice(&raw[i..=i]);
            i += 1;
        }
    }
    let lead = out.iter().take_while(|&&b| scan::is_ws(b)).count();
    let trail = out[lead..]
        .iter()
        .rev()
        .take_while(|&&b| scan::is_ws(b))
        .count();
    let frozen = out.freeze();
    let len = frozen.len();
    frozen.slice(lead..len - trail)
}

#[cfg(test)]
mod tests;
