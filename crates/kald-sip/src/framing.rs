//! Stream framing for SIP over TCP: splits a byte stream into messages by Content-Length and
//! recognises RFC 5626 §4.4.1 CRLF keep-alives.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{ParseError, ParseErrorKind};
use crate::message::Limits;

/// What the framer found in the stream.
#[derive(Debug)]
pub enum Frame {
    /// The bytes of one complete message, framed by its Content-Length (parse it next).
    Message(Bytes),
    /// A double-CRLF keep-alive ping; answer with a single CRLF pong.
    Ping,
    /// A single-CRLF pong (or stray CRLF between messages).
    Pong,
}

/// Splits one TCP connection's bytes into SIP messages.
///
/// Feed bytes with [`StreamFramer::push`], then call [`StreamFramer::next_frame`] until it
/// returns `None`. An `Err` means the stream cannot be resynchronised: close the connection
/// (RFC 3261 §18.3; RFC 4475 §3.1.2.3).
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
}

impl StreamFramer {
    /// A framer with the default size limits.
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A framer with given size limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            buf: BytesMut::with_capacity(4096),
            limits,
        }
    }

    /// Append bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame, ParseError>> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            return Some(Ok(Frame::Ping));
        }
        if self.buf.len() < 4 && b"\r\n\r\n".starts_with(&self.buf[..]) {
            // A keep-alive still arriving (or nothing at all): wait for more.
            return None;
        }
        if self.buf.starts_with(b"\r\n") {
            // A stray CRLF (or a pong) before a message.
            self.buf.advance(2);
            return Some(Ok(Frame::Pong));
        }
        if self.buf.is_empty() {
            return None;
        }
        let Some(head_end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > self.limits.max_headers {
                return Some(Err(ParseError::new(ParseErrorKind::TooLarge)));
            }
            return None;
        };
        let body_len = match content_length(&self.buf[..head_end + 2]) {
            Ok(Some(n)) if n <= self.limits.max_body => n,
            Ok(Some(_)) => return Some(Err(ParseError::new(ParseErrorKind::TooLarge))),
            Ok(None) => return Some(Err(ParseError::new(ParseErrorKind::Missing))),
            Err(kind) => return Some(Err(ParseError::new(kind))),
        };
        let total = head_end + 4 + body_len;
        if self.buf.len() < total {
            return None;
        }
        Some(Ok(Frame::Message(self.buf.split_to(total).freeze())))
    }

    /// Bytes buffered but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Find the one Content-Length (or `l`) in a header section without parsing the rest.
fn content_length(head: &[u8]) -> Result<Option<usize>, ParseErrorKind> {
    let mut found = None;
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            if found.is_some() {
                return Err(ParseErrorKind::Duplicate);
            }
            let value = line[colon + 1..].trim_ascii();
            if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
                return Err(ParseErrorKind::Malformed);
            }
            found = Some(
                value
                    .iter()
                    .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
            );
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OPT: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 3\r\n\r\nabc";

    #[test]
    fn splits_byte_by_byte_and_back_to_back() {
        let mut f = StreamFramer::new();
        let mut stream = OPT.to_vec();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(OPT);
        let mut frames = vec![];
        for b in &stream {
            f.push(std::slice::from_ref(b));
            while let Some(fr) = f.next_frame() {
                frames.push(fr.unwrap());
            }
        }
        assert_eq!(frames.len(), 3);
        assert!(matches!(&frames[0], Frame::Message(m) if m.ends_with(b"\r\n\r\nabc")));
        assert!(matches!(frames[1], Frame::Ping));
        assert!(matches!(&frames[2], Frame::Message(_)));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn negative_content_length_closes_the_stream() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert!(f.next_frame().unwrap().is_err());
    }

    #[test]
    fn endless_header_section_is_refused() {
        let mut f = StreamFramer::new();
        f.push(&vec![b'a'; 20_000]);
        assert!(f.next_frame().unwrap().is_err());
    }
}
