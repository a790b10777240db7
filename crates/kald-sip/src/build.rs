//! Building outgoing messages: responses to requests (RFC 3261 §8.2.6) and new requests.

use bytes::Bytes;

use crate::message::{Header, HeaderName, Headers, Message, Method, NameAddr, StartLine};

/// The reason phrase kald sends with a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// Builds a message header by header; `build` adds a correct Content-Length.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    start: StartLine,
    headers: Headers,
    body: Bytes,
}

impl Builder {
    /// A new request.
    pub fn request(method: Method, uri: impl Into<Bytes>) -> Self {
        Self {
            start: StartLine::Request {
                method,
                uri: uri.into(),
            },
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A new response with kald's reason phrase for `code`.
    pub fn response(code: u16) -> Self {
        Self::response_with_reason(code, reason_phrase(code))
    }

    /// A new response with a given reason phrase (sent byte for byte).
    pub fn response_with_reason(code: u16, reason: impl Into<Bytes>) -> Self {
        Self {
            start: StartLine::Response {
                code,
                reason: reason.into(),
            },
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response to `request` (given by its headers): copies Via, From, To, Call-ID and CSeq,
    /// adding `to_tag` to To unless it already has a tag.
    pub fn response_to(request: &Headers, code: u16, to_tag: Option<&str>) -> Self {
        let mut b = Self::response(code);
        for h in request {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    b.headers.push(h.clone());
                }
                HeaderName::To => {
                    let has_tag = h
                        .value_str()
                        .and_then(|v| NameAddr::parse(v).ok())
                        .is_some_and(|n| n.tag().is_some());
                    match to_tag {
                        Some(tag) if !has_tag => {
                            let mut v = Vec::with_capacity(h.value.len() + tag.len() + 5);
                            v.extend_from_slice(&h.value);
                            v.extend_from_slice(b";tag=");
                            v.extend_from_slice(tag.as_bytes());
                            b.headers.push(Header::new(HeaderName::To, v));
                        }
                        _ => b.headers.push(h.clone()),
                    }
                }
                _ => {}
            }
        }
        b
    }

    /// Replace the reason phrase of a response.
    pub fn reason(mut self, reason: impl Into<Bytes>) -> Self {
        if let StartLine::Response { reason: r, .. } = &mut self.start {
            *r = reason.into();
        }
        self
    }

    /// Append a header.
    pub fn header(mut self, name: HeaderName, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Append a header in place.
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.headers.push(Header::new(name, value));
    }

    /// Set the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: Bytes) -> Self {
        self.headers.remove(&HeaderName::ContentType);
        self.headers.push(Header::new(
            HeaderName::ContentType,
            Bytes::copy_from_slice(content_type.as_bytes()),
        ));
        self.body = body;
        self
    }

    /// The finished message, with a Content-Length that matches the body.
    pub fn build(mut self) -> Message {
        self.headers.remove(&HeaderName::ContentLength);
        self.headers.push(Header::new(
            HeaderName::ContentLength,
            Bytes::from(self.body.len().to_string()),
        ));
        Message {
            start: self.start,
            headers: self.headers,
            body: self.body,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn response_copies_the_dialog_headers_and_tags_to() {
        let req = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP g;branch=z9hG4bK2\r\n\
From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 5 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let resp = Builder::response_to(&req.headers, 200, Some("kt")).build();
        let again = Message::parse(resp.to_bytes()).unwrap();
        assert_eq!(again.status(), Some(200));
        assert_eq!(again.via_count(), 2);
        assert_eq!(again.to().unwrap().tag(), Some("kt"));
        assert_eq!(again.from().unwrap().tag(), Some("1"));
        assert_eq!(again.cseq().unwrap().seq, 5);
        assert!(!again.headers.contains(&HeaderName::MaxForwards));
        assert_eq!(again.header_str(&HeaderName::ContentLength), Some("0"));
    }
}
