//! The syntax checks a UAS makes on every request before acting on it (RFC 3261 §8.2),
//! and on every response before matching it to a transaction.

use crate::error::{ParseError, ParseErrorKind as K};
use crate::message::{check_date, value_error, HeaderName, Message, Method};

/// Check a parsed request. `Err` means "answer 400" (or 505 for the version, which the
/// parser already reports).
pub(crate) fn check_request(req: &Message) -> Result<(), ParseError> {
    common(req)?;
    let method = req
        .method()
        .ok_or_else(|| ParseError::new(K::BadStartLine))?;
    let cseq = req.cseq()?;
    if &cseq.method != method {
        return Err(ParseError::in_header(K::CSeqMismatch, HeaderName::CSeq));
    }
    req.number(HeaderName::MaxForwards, 255)?;
    for c in req.contacts() {
        c?;
    }
    for name in [HeaderName::Route, HeaderName::RecordRoute] {
        for r in req.routes(name) {
            r?;
        }
    }
    if let Some(v) = req.header_str(&HeaderName::Date) {
        check_date(v).map_err(|e| value_error(e, HeaderName::Date))?;
    }
    Ok(())
}

/// Check a parsed response; `Err` means "drop it".
pub(crate) fn check_response(resp: &Message) -> Result<(), ParseError> {
    common(resp)?;
    resp.cseq()?;
    Ok(())
}

/// The checks shared by requests and responses.
fn common(msg: &Message) -> Result<(), ParseError> {
    for name in [
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::From,
        HeaderName::To,
    ] {
        if !msg.headers.contains(&name) {
            return Err(ParseError::in_header(K::Missing, name));
        }
    }
    for h in &msg.headers {
        if h.name.is_single() && msg.headers.count(&h.name) > 1 {
            return Err(ParseError::in_header(K::Duplicate, h.name.clone()));
        }
    }
    let mut vias = 0;
    for v in msg.vias() {
        v?;
        vias += 1;
    }
    if vias == 0 {
        return Err(ParseError::in_header(K::Missing, HeaderName::Via));
    }
    msg.call_id()?;
    msg.from()?;
    msg.to()?;
    msg.number(HeaderName::Expires, u64::from(u32::MAX))?;
    for name in [HeaderName::SessionExpires, HeaderName::MinSe] {
        if let Some(v) = msg.header_str(&name) {
            let delta = v.split(';').next().unwrap_or("");
            crate::message::parse_number(delta, u64::from(u32::MAX))
                .map_err(|e| value_error(e, name.clone()))?;
        }
    }
    Ok(())
}

/// Whether `method` is one kald knows but does not accept out of a dialog (→ 405).
pub(crate) fn is_known_unsupported(method: &Method) -> bool {
    matches!(
        method,
        Method::Register
            | Method::Subscribe
            | Method::Publish
            | Method::Message
            | Method::Refer
            | Method::Notify
            | Method::Prack
            | Method::Info
            | Method::Update
    )
}
