//! Transfers: REFER inside a dialog (RFC 3515) with its implicit `refer` subscription and
//! NOTIFYs of `message/sipfrag` progress, and the `Replaces` header (RFC 3891).
//!
//! kald is a B2BUA: it never follows a REFER itself. It answers 202, sends the first NOTIFY
//! (`SIP/2.0 100 Trying`) at once as RFC 6665 §4.2.1 asks, and hands the TU an
//! [`Event::Refer`]; the TU places or bridges the calls it decides on and reports the outcome
//! with [`Endpoint::notify_refer`]. A REFER outside a dialog gets 403 (kald holds no
//! subscription state for strangers), a NOTIFY outside a dialog 481.
//!
//! Replaces tags are read from kald's point of view: `to-tag` is kald's own (local) tag of the
//! dialog, `from-tag` the peer's, as RFC 3891 §3 matches them at the UA receiving the INVITE.
//! A Replaces written the other way round (some phones do) is matched as well; tags are
//! random, so the two readings cannot name different dialogs.

use std::time::Instant;

use bytes::Bytes;

use super::call::{CallState, Purpose, Role};
use super::{DialogKey, Endpoint, Event, Flow, Output};
use crate::build::Builder;
use crate::message::{HeaderName, Message, Method, NameAddr, Scheme};
use crate::transaction::ServerKey;
use kald_core::CallId;

/// The implicit subscription a REFER created (RFC 3515 §2.4.4).
#[derive(Debug, Clone)]
pub(crate) struct ReferSubscription {
    /// The CSeq of the REFER, the `id` of its `Event: refer`.
    id: u32,
    /// A NOTIFY of it is in flight; the next one waits (one at a time keeps them in order).
    in_flight: bool,
    /// The state to send once the in-flight NOTIFY is done (the newest wins).
    queued: Option<(u16, String, bool)>,
    /// The in-flight NOTIFY ends the subscription.
    terminating: bool,
}

/// A parsed `Replaces` value: Call-ID, to-tag, from-tag, early-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplacesValue {
    call_id: String,
    to_tag: String,
    from_tag: String,
    early_only: bool,
}

/// Undo %-escapes (RFC 3261 §25.1); invalid escapes are kept as written.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `call-id;to-tag=…;from-tag=…[;early-only]` (RFC 3891 §6.1).
pub(crate) fn parse_replaces(v: &str) -> Option<ReplacesValue> {
    let mut parts = v.split(';');
    let call_id = parts.next()?.trim();
    if call_id.is_empty() || call_id.bytes().any(|b| b <= b' ') {
        return None;
    }
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for p in parts {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if name.eq_ignore_ascii_case("to-tag") {
            if to_tag.replace(value?).is_some() {
                return None;
            }
        } else if name.eq_ignore_ascii_case("from-tag") {
            if from_tag.replace(value?).is_some() {
                return None;
            }
        } else if name.eq_ignore_ascii_case("early-only") {
            early_only = true;
        }
    }
    Some(ReplacesValue {
        call_id: call_id.to_owned(),
        to_tag: to_tag.filter(|t| !t.is_empty())?.to_owned(),
        from_tag: from_tag.filter(|t| !t.is_empty())?.to_owned(),
        early_only,
    })
}

/// The Refer-To URI without its `?headers`, and the decoded Replaces header in them, if any.
/// `Err(())` for a Refer-To kald cannot use.
fn parse_refer_to(v: &str) -> Result<(String, Option<Option<ReplacesValue>>), ()> {
    let na = NameAddr::parse(v).map_err(|_| ())?;
    if !matches!(na.uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel) {
        return Err(());
    }
    let raw = na.uri.raw;
    let target = raw.split_once('?').map_or(raw, |(t, _)| t).to_owned();
    let replaces = na.uri.headers.and_then(|h| {
        h.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.eq_ignore_ascii_case("replaces")
                .then(|| parse_replaces(&percent_decode(v)))
        })
    });
    Ok((target, replaces))
}

impl Endpoint {
    /// kald's call for the dialog a Replaces names (either tag orientation), if any.
    pub(crate) fn dialog_named(&self, r: &ReplacesValue) -> Option<CallId> {
        let key = |local: &str, remote: &str| DialogKey {
            call_id: r.call_id.clone(),
            local_tag: local.to_owned(),
            remote_tag: remote.to_owned(),
        };
        self.dialogs
            .get(&key(&r.to_tag, &r.from_tag))
            .or_else(|| self.dialogs.get(&key(&r.from_tag, &r.to_tag)))
            .copied()
            .filter(|id| self.calls.contains_key(id))
    }

    /// The call an INVITE's `Replaces` header names (RFC 3891 §3), or the status to refuse
    /// the INVITE with: 400 (malformed or several), 481 (no such dialog, or an early dialog
    /// kald did not start), 486 (`early-only` and the dialog is confirmed).
    pub(crate) fn invite_replaces(&self, msg: &Message) -> Result<Option<CallId>, u16> {
        let mut values = msg.headers.all(&HeaderName::Replaces);
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(400);
        }
        let r = first.value_str().and_then(parse_replaces).ok_or(400u16)?;
        let id = self.dialog_named(&r).ok_or(481u16)?;
        let call = self.calls.get(&id).ok_or(481u16)?;
        match call.state {
            CallState::Confirmed | CallState::Answered if r.early_only => Err(486),
            CallState::Early if call.role == Role::Uas => Err(481),
            CallState::Cancelling => Err(481),
            _ => Ok(Some(id)),
        }
    }

    /// A REFER inside the dialog of `id` (RFC 3515 §2.4.2).
    pub(crate) fn receive_refer(
        &mut self,
        now: Instant,
        flow: Flow,
        key: ServerKey,
        msg: Message,
        id: CallId,
    ) {
        let refer_to = match msg.headers.count(&HeaderName::ReferTo) {
            1 => msg
                .header_str(&HeaderName::ReferTo)
                .ok_or(())
                .and_then(parse_refer_to),
            _ => Err(()),
        };
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Ok((target, replaces)) = refer_to else {
            let b = Builder::response_to(&msg.headers, 400, None).reason("Bad Refer-To");
            self.reply(now, flow, key, &msg, b, Some(id));
            return;
        };
        if !matches!(call.state, CallState::Confirmed | CallState::Answered) {
            let b = Builder::response_to(&msg.headers, 403, None).reason("Call Not Established");
            self.reply(now, flow, key, &msg, b, Some(id));
            return;
        }
        let b = call.dialog_response(&msg, 202, &self.config);
        self.reply(now, flow, key, &msg, b, Some(id));
        let (replaces, replaces_unknown) = match replaces {
            None => (None, false),
            Some(None) => (None, true),
            Some(Some(r)) => match self.dialog_named(&r) {
                Some(c) => (Some(c), false),
                None => (None, true),
            },
        };
        let refer_id = msg.cseq().map(|c| c.seq).unwrap_or(0);
        if let Some(call) = self.calls.get_mut(&id) {
            call.refer = Some(ReferSubscription {
                id: refer_id,
                in_flight: false,
                queued: None,
                terminating: false,
            });
        }
        self.outputs.push_back(Output::Event(Event::Refer {
            call: id,
            target,
            replaces,
            replaces_unknown,
        }));
        self.notify_refer(now, id, 100, "Trying", false);
    }

    /// Report the progress of a transfer the peer asked for with REFER: an in-dialog NOTIFY
    /// (`Event: refer`, `message/sipfrag` body `SIP/2.0 <code> <reason>`), `terminated`
    /// ending the subscription (RFC 3515 §2.4.5). NOTIFYs go one at a time; one asked for
    /// while another is in flight is sent after it (only the newest waiting one). Does
    /// nothing when the call has no REFER subscription.
    pub fn notify_refer(
        &mut self,
        now: Instant,
        id: CallId,
        code: u16,
        reason: &str,
        terminated: bool,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(sub) = call.refer.as_mut() else {
            return;
        };
        let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
        if sub.in_flight {
            sub.queued = Some((code, reason, terminated));
            return;
        }
        sub.in_flight = true;
        sub.terminating = terminated;
        let refer_id = sub.id;
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let state = if terminated {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        let mut b = call.request(Method::Notify, &branch, &self.config);
        b.push(HeaderName::Event, format!("refer;id={refer_id}"));
        b.push(HeaderName::SubscriptionState, state);
        let body = Bytes::from(format!("SIP/2.0 {code} {reason}\r\n"));
        let req = b.body("message/sipfrag;version=2.0", body).build();
        let flow = call.flow;
        self.send_request(now, flow, req, Some(id), Purpose::Notify);
    }

    /// A NOTIFY of ours is done (`code` 0: no response by Timer F): send the next, if any.
    pub(crate) fn notify_done(&mut self, now: Instant, id: CallId, code: u16) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(sub) = call.refer.as_mut() else {
            return;
        };
        sub.in_flight = false;
        if code == 481 || sub.terminating {
            // The subscription is gone (RFC 6665 §4.2.2) or ended by us.
            call.refer = None;
            return;
        }
        if let Some((code, reason, terminated)) = sub.queued.take() {
            self.notify_refer(now, id, code, &reason, terminated);
        }
    }
}

#[cfg(test)]
mod endpoint_tests;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2A20"), "*20");
        assert_eq!(percent_decode("a%3Bb%3db"), "a;b=b");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
    }

    #[test]
    fn replaces_values() {
        let r = parse_replaces("abc@h;to-tag=1;from-tag=2;early-only").unwrap();
        assert_eq!(
            r,
            ReplacesValue {
                call_id: "abc@h".into(),
                to_tag: "1".into(),
                from_tag: "2".into(),
                early_only: true
            }
        );
        assert!(parse_replaces("abc;to-tag=1").is_none());
        assert!(parse_replaces(";to-tag=1;from-tag=2").is_none());
        assert!(parse_replaces("abc;to-tag=1;to-tag=3;from-tag=2").is_none());
    }

    #[test]
    fn refer_to_with_replaces() {
        let (t, r) = parse_refer_to(
            "<sip:agent9@kald.example;user=phone?Replaces=xyz%40h%3Bto-tag%3Dk1%3Bfrom-tag%3Dp1&Require=replaces>",
        )
        .unwrap();
        assert_eq!(t, "sip:agent9@kald.example;user=phone");
        let r = r.unwrap().unwrap();
        assert_eq!((r.call_id.as_str(), r.to_tag.as_str()), ("xyz@h", "k1"));
        let (t, r) = parse_refer_to("sip:*21@kald.example").unwrap();
        assert_eq!((t.as_str(), r), ("sip:*21@kald.example", None));
        assert!(matches!(
            parse_refer_to("<sip:a@b?Replaces=garbage>"),
            Ok((_, Some(None)))
        ));
        assert!(parse_refer_to("<http://example.com>").is_err());
        assert!(parse_refer_to("<sip:a@b>, <sip:c@d>").is_err());
    }
}
