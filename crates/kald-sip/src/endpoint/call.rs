//! One call leg: its dialog (RFC 3261 §12), its offer/answer state, the 2xx retransmission
//! of a UAS (§13.3.1.4), RFC 4028 session timers, and the TU's actions on it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, RngCore};

use super::refer::ReferSubscription;
use super::registrar::BindingId;
use super::{DialogKey, Endpoint, EndpointConfig, Event, Flow, Output, Transport, SUPPORTED};
use crate::auth;
use crate::build::Builder;
use crate::message::{HeaderName, Message, Method};
use crate::transaction::{ClientKey, ServerKey};
use kald_core::CallId;

/// Which side of the call kald is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// kald answered the call (a citizen calling in).
    Uas,
    /// kald placed the call (ringing an agent).
    Uac,
}

/// Where a call leg is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// UAC: INVITE sent, nothing but 100 heard.
    Calling,
    /// Before the final answer: UAS has the INVITE; UAC has a provisional response.
    Early,
    /// UAC: CANCEL sent, waiting for the INVITE to end.
    Cancelling,
    /// UAS: 2xx sent, retransmitting it until the ACK arrives.
    Answered,
    /// The dialog is confirmed.
    Confirmed,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The caller cancelled before answer.
    Cancelled,
    /// kald's 2xx was never acknowledged (RFC 3261 §13.3.1.4).
    NoAck,
    /// The peer sent BYE.
    RemoteHangup,
    /// The TU hung up (BYE, CANCEL or a final error response).
    LocalHangup,
    /// An outgoing call got a final error response.
    Rejected(u16),
    /// An outgoing call got no final response in time (Timer B), or a request in the dialog
    /// timed out.
    Timeout,
    /// The session timer ran out without a refresh (RFC 4028).
    SessionExpired,
    /// The TCP connection of the dialog closed.
    TransportClosed,
}

/// A call kald places (the B2BUA's leg to an agent).
#[derive(Debug, Clone)]
pub struct Dial {
    /// Where to send it: the agent's registered flow.
    pub flow: Flow,
    /// The Request-URI: the agent's registered contact.
    pub target: String,
    /// The To header value, e.g. `<sip:agent7@kald.example>`.
    pub to: String,
    /// The display name the softphone shows, e.g. `Sygedagpenge 3:12`.
    pub display_name: String,
    /// The user part of From.
    pub from_user: String,
    /// kald's SDP offer.
    pub sdp: Bytes,
    /// Username and password, if the peer challenges (RFC 8760 digest).
    pub credentials: Option<(String, String)>,
}

/// What a client transaction of a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Invite,
    Cancel,
    Bye,
    Reinvite,
    Update,
    Refresh,
    /// A NOTIFY of a REFER subscription.
    Notify,
    /// OPTIONS to a registered binding (no call).
    Qualify(BindingId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresher {
    Uac,
    Uas,
}

/// RFC 4028 state of a dialog.
#[derive(Debug, Clone, Copy)]
struct SessionTimer {
    interval: u32,
    we_refresh: bool,
    due: Instant,
}

/// A 2xx kald retransmits until it is acknowledged.
#[derive(Debug, Clone)]
struct PendingOk {
    data: Bytes,
    cseq: u32,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// One call leg and its dialog.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: CallId,
    pub(crate) role: Role,
    pub(crate) state: CallState,
    pub(crate) flow: Flow,
    call_id: String,
    pub(crate) local_tag: String,
    remote_tag: Option<String>,
    /// Our From (UAC) or To (UAS) header value, with our tag.
    local_header: String,
    /// The peer's header value, with its tag once known.
    remote_header: String,
    local_cseq: u32,
    pub(crate) remote_cseq: Option<u32>,
    remote_target: String,
    route_set: Vec<String>,
    /// UAS: the INVITE being answered. UAC: the INVITE sent.
    invite: Option<Message>,
    invite_server: Option<ServerKey>,
    pub(crate) invite_client: Option<ClientKey>,
    pub(crate) offer_client: Option<ClientKey>,
    pub(crate) pending_offer: Option<(ServerKey, Message)>,
    /// When an unanswered offer from the peer gets 500 (the TU should answer at once).
    pub(crate) offer_deadline: Option<Instant>,
    pending_ok: Option<PendingOk>,
    pub(crate) last_ack: Option<Bytes>,
    local_sdp: Option<Bytes>,
    session: Option<SessionTimer>,
    retry_offer: Option<(Instant, Bytes)>,
    /// UAS: when an unanswered INVITE gets 480. UAC: when ringing is cancelled, or when a
    /// CANCEL that got no final response for the INVITE gives up (RFC 3261 §9.1).
    early_deadline: Option<Instant>,
    pub(crate) bye_after_ack: bool,
    cancel_pending: bool,
    credentials: Option<(String, String)>,
    auth_tried: bool,
    peer_allows_update: bool,
    supports_timer: bool,
    /// The subscription of the peer's last REFER, while it lasts.
    pub(crate) refer: Option<ReferSubscription>,
}

impl Call {
    /// A call for an incoming INVITE; `None` if the INVITE lacks what a dialog needs.
    pub(crate) fn incoming(
        now: Instant,
        id: CallId,
        invite: &Message,
        flow: Flow,
        local_tag: String,
        key: ServerKey,
        config: &EndpointConfig,
    ) -> Option<Self> {
        let from = invite.header_str(&HeaderName::From)?.to_owned();
        let to = invite.header_str(&HeaderName::To)?;
        let remote_tag = invite.from().ok()?.tag().map(str::to_owned);
        let remote_target = match invite.contacts().next() {
            Some(Ok(Some(c))) => c.uri.raw.to_owned(),
            _ => invite.from().ok()?.uri.raw.to_owned(),
        };
        let route_set = invite
            .routes(HeaderName::RecordRoute)
            .filter_map(Result::ok)
            .map(|r| format!("<{}>", r.uri.raw))
            .collect();
        Some(Self {
            id,
            role: Role::Uas,
            state: CallState::Early,
            flow,
            call_id: invite.call_id().ok()?.to_owned(),
            local_header: format!("{to};tag={local_tag}"),
            local_tag,
            remote_tag,
            remote_header: from,
            local_cseq: 0,
            remote_cseq: Some(invite.cseq().ok()?.seq),
            remote_target,
            route_set,
            invite: Some(invite.clone()),
            invite_server: Some(key),
            invite_client: None,
            offer_client: None,
            pending_offer: None,
            offer_deadline: None,
            pending_ok: None,
            last_ack: None,
            local_sdp: None,
            session: None,
            retry_offer: None,
            early_deadline: Some(now + config.max_unanswered),
            bye_after_ack: false,
            cancel_pending: false,
            credentials: None,
            auth_tried: false,
            peer_allows_update: invite.has_token(&HeaderName::Allow, "UPDATE"),
            supports_timer: invite.has_token(&HeaderName::Supported, "timer")
                || invite.has_token(&HeaderName::Require, "timer"),
            refer: None,
        })
    }

    /// The transactions of this call that may still wait for the TU: its INVITE and a pending
    /// re-offer (server side), its INVITE to the peer (client side).
    pub(crate) fn waiting_transactions(&self) -> (Vec<ServerKey>, Option<ClientKey>) {
        let mut server: Vec<ServerKey> = self.invite_server.iter().cloned().collect();
        if let Some((k, _)) = &self.pending_offer {
            server.push(k.clone());
        }
        (server, self.invite_client.clone())
    }

    pub(crate) fn dialog_key(&self) -> Option<DialogKey> {
        Some(DialogKey {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone().unwrap_or_default(),
        })
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let ok = self.pending_ok.as_ref().map(|p| p.next.min(p.give_up));
        let session = self.session.map(|s| s.due);
        let retry = self.retry_offer.as_ref().map(|r| r.0);
        let early = match self.state {
            CallState::Calling | CallState::Early | CallState::Cancelling => self.early_deadline,
            CallState::Answered | CallState::Confirmed => None,
        };
        let offer = self.pending_offer.as_ref().and(self.offer_deadline);
        [ok, session, retry, early, offer]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether kald has a re-INVITE or UPDATE of its own in flight (glare → 491).
    pub(crate) fn offer_outstanding(&self) -> bool {
        self.offer_client.is_some()
    }

    /// Handle the ACK for our 2xx; returns `Some(answer)` when it confirms the dialog.
    pub(crate) fn ack_received(
        &mut self,
        _now: Instant,
        cseq: u32,
        ack: &Message,
    ) -> Option<Option<Bytes>> {
        let pending = self.pending_ok.as_ref()?;
        if pending.cseq != cseq {
            return None;
        }
        self.pending_ok = None;
        let first = self.state == CallState::Answered;
        self.state = CallState::Confirmed;
        let answer = if ack.body.is_empty() {
            None
        } else {
            Some(ack.body.clone())
        };
        if first {
            Some(answer)
        } else {
            // The ACK of a 2xx to a re-INVITE; if our 2xx held the offer, the answer is here.
            answer.map(Some)
        }
    }

    /// A re-INVITE or UPDATE from the peer refreshes the session (RFC 4028 §10).
    pub(crate) fn refresh_from(&mut self, msg: &Message, now: Instant) {
        if let Some((interval, refresher)) = session_expires(msg) {
            let we_refresh = match (self.role, refresher) {
                (Role::Uas, Some(Refresher::Uas)) | (Role::Uac, Some(Refresher::Uac)) => true,
                (_, Some(_)) => false,
                (_, None) => self.session.is_some_and(|s| s.we_refresh),
            };
            self.session = Some(SessionTimer {
                interval,
                we_refresh,
                due: session_due(now, interval, we_refresh),
            });
        } else if let Some(s) = &mut self.session {
            s.due = session_due(now, s.interval, s.we_refresh);
        }
    }

    /// A response inside the dialog, with kald's tag and Contact.
    pub(crate) fn dialog_response(
        &self,
        req: &Message,
        code: u16,
        config: &EndpointConfig,
    ) -> Builder {
        Builder::response_to(&req.headers, code, Some(&self.local_tag))
            .header(HeaderName::Contact, contact(&self.flow, config))
            .header(HeaderName::Allow, allow_for(config))
            .header(HeaderName::Supported, SUPPORTED)
    }

    /// A new request inside the dialog (RFC 3261 §12.2.1.1).
    pub(crate) fn request(
        &mut self,
        method: Method,
        branch: &str,
        config: &EndpointConfig,
    ) -> Builder {
        if method != Method::Ack && method != Method::Cancel {
            self.local_cseq += 1;
        }
        let mut b = Builder::request(method.clone(), Bytes::from(self.remote_target.clone()))
            .header(HeaderName::Via, via(&self.flow, branch))
            .header(HeaderName::MaxForwards, "70");
        let (from, to) = match self.role {
            Role::Uac => (self.local_header.clone(), self.remote_header.clone()),
            Role::Uas => (self.local_header.clone(), self.remote_header.clone()),
        };
        b.push(HeaderName::From, from);
        b.push(HeaderName::To, to);
        b.push(HeaderName::CallId, self.call_id.clone());
        b.push(HeaderName::CSeq, format!("{} {}", self.local_cseq, method));
        for r in &self.route_set {
            b.push(HeaderName::Route, r.clone());
        }
        if matches!(method, Method::Invite | Method::Update | Method::Notify) {
            b.push(HeaderName::Contact, contact(&self.flow, config));
        }
        if matches!(method, Method::Invite | Method::Update) {
            b.push(HeaderName::Allow, allow_for(config));
            b.push(HeaderName::Supported, SUPPORTED);
        }
        b.push(HeaderName::UserAgent, config.user_agent.clone());
        b
    }
}

/// The Session-Expires of a message: interval and refresher, if present and readable.
pub(crate) fn session_expires(msg: &Message) -> Option<(u32, Option<Refresher>)> {
    let v = msg.header_str(&HeaderName::SessionExpires)?;
    let mut parts = v.split(';');
    let interval = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher = parts.find_map(|p| {
        let (n, v) = p.split_once('=')?;
        if !n.trim().eq_ignore_ascii_case("refresher") {
            return None;
        }
        match v.trim().to_ascii_lowercase().as_str() {
            "uac" => Some(Refresher::Uac),
            "uas" => Some(Refresher::Uas),
            _ => None,
        }
    });
    Some((interval, refresher))
}

/// When the refresher sends its refresh (half the interval), or when the other side gives up
/// (RFC 4028 §10: interval minus the lesser of 32 s and a third of it).
fn session_due(now: Instant, interval: u32, we_refresh: bool) -> Instant {
    let secs = if we_refresh {
        u64::from(interval) / 2
    } else {
        u64::from(interval) - u64::from(32.min(interval / 3))
    };
    now + Duration::from_secs(secs.max(1))
}

/// The `Allow` value for this configuration: with REGISTER when the registrar is on.
pub(crate) fn allow_for(config: &EndpointConfig) -> &'static str {
    if config.registrar.is_some() {
        super::ALLOW_WITH_REGISTER
    } else {
        super::ALLOW
    }
}

pub(crate) fn host_of(flow: &Flow, config: &EndpointConfig) -> String {
    let ip = config.public_ip.unwrap_or(flow.local.ip());
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", flow.local.port()),
        v4 => format!("{v4}:{}", flow.local.port()),
    }
}

fn contact(flow: &Flow, config: &EndpointConfig) -> String {
    let t = if flow.transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    format!("<sip:kald@{}{t}>", host_of(flow, config))
}

pub(crate) fn via(flow: &Flow, branch: &str) -> String {
    let host = match flow.local.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", flow.local.port()),
        v4 => format!("{v4}:{}", flow.local.port()),
    };
    format!(
        "SIP/2.0/{} {host};branch={branch};rport",
        flow.transport.as_str()
    )
}

// ---- the TU's actions and the endpoint's call-level handling ------------------------------

impl Endpoint {
    /// Send a provisional response to an incoming call: 180 Ringing, or 183 with early media.
    pub fn ring(&mut self, now: Instant, call: CallId, early_sdp: Option<Bytes>) {
        let code = if early_sdp.is_some() { 183 } else { 180 };
        self.respond_invite(now, call, code, early_sdp, Vec::new());
    }

    /// Answer an incoming call with 200 OK and `sdp` (the answer, or kald's offer when the
    /// INVITE had none).
    pub fn answer(&mut self, now: Instant, id: CallId, sdp: Bytes) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.role != Role::Uas || call.state != CallState::Early {
            return;
        }
        // RFC 4028 §9: negotiate the session timer.
        let invite_se = call.invite.as_ref().and_then(session_expires);
        let (interval, refresher) = match invite_se {
            Some((i, Some(r))) => (i, r),
            Some((i, None)) => (
                i,
                if call.supports_timer {
                    Refresher::Uac
                } else {
                    Refresher::Uas
                },
            ),
            None => (
                self.config.session_expires,
                if call.supports_timer {
                    Refresher::Uac
                } else {
                    Refresher::Uas
                },
            ),
        };
        let we_refresh = refresher == Refresher::Uas;
        call.session = Some(SessionTimer {
            interval,
            we_refresh,
            due: session_due(now, interval, we_refresh),
        });
        let mut extra = vec![(
            HeaderName::SessionExpires,
            format!(
                "{interval};refresher={}",
                if we_refresh { "uas" } else { "uac" }
            ),
        )];
        if call.supports_timer {
            extra.push((HeaderName::Require, "timer".to_owned()));
        }
        call.local_sdp = Some(sdp.clone());
        self.respond_invite(now, id, 200, Some(sdp), extra);
    }

    /// Refuse an incoming call with a final error response (e.g. 486 or 480).
    pub fn reject(&mut self, now: Instant, id: CallId, code: u16) {
        if !(300..700).contains(&code) {
            return;
        }
        let early = self
            .calls
            .get(&id)
            .is_some_and(|c| c.role == Role::Uas && c.state == CallState::Early);
        if early {
            self.respond_invite(now, id, code, None, Vec::new());
            self.end_call(id, EndReason::LocalHangup);
        }
    }

    /// End a call whatever its state: BYE, CANCEL, or an error response to an unanswered INVITE.
    ///
    /// This is also how a ringing outgoing leg is cancelled (RFC 3261 §9.1): CANCEL once a
    /// provisional response came (before that, as soon as one comes), [`Event::Ended`] with
    /// [`EndReason::Cancelled`] when the INVITE ends; a 2xx that crossed the CANCEL is ACKed
    /// and ended with BYE.
    pub fn hangup(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match (call.role, call.state) {
            (Role::Uas, CallState::Early) => self.reject(now, id, 480),
            (Role::Uas, CallState::Answered) => call.bye_after_ack = true,
            (_, CallState::Confirmed) => {
                self.send_bye(now, id);
                self.end_call(id, EndReason::LocalHangup);
            }
            (Role::Uac, CallState::Calling) => call.cancel_pending = true,
            (Role::Uac, CallState::Early) => {
                self.send_cancel(now, id);
                let give_up = now + self.config.timers.t1 * 64;
                if let Some(call) = self.calls.get_mut(&id) {
                    call.early_deadline = Some(give_up);
                }
            }
            _ => {}
        }
    }

    /// Answer the peer's re-INVITE/UPDATE offer with `Some(sdp)`, or refuse it (488) with `None`.
    pub fn answer_offer(&mut self, now: Instant, id: CallId, sdp: Option<Bytes>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some((key, req)) = call.pending_offer.take() else {
            return;
        };
        let is_invite = req.method() == Some(&Method::Invite);
        let b = match &sdp {
            Some(sdp) => {
                call.local_sdp = Some(sdp.clone());
                let mut b = call
                    .dialog_response(&req, 200, &self.config)
                    .body("application/sdp", sdp.clone());
                if let Some(s) = call.session {
                    b.push(
                        HeaderName::SessionExpires,
                        format!(
                            "{};refresher={}",
                            s.interval,
                            match (call.role, s.we_refresh) {
                                (Role::Uas, true) | (Role::Uac, false) => "uas",
                                _ => "uac",
                            }
                        ),
                    );
                }
                b
            }
            None => Builder::response_to(&req.headers, 488, None),
        };
        let resp = b
            .header(HeaderName::Server, self.config.user_agent.clone())
            .build();
        let bytes = resp.to_bytes();
        if is_invite && sdp.is_some() {
            let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
            let t1 = self.config.timers.t1;
            let give_up = now + t1 * 64;
            call.pending_ok = Some(PendingOk {
                data: bytes.clone(),
                cseq,
                next: now + t1,
                interval: t1,
                give_up,
            });
        }
        self.send_through(now, &key, &resp, bytes);
    }

    /// Send a new offer in a re-INVITE (hold, unhold, codec change).
    pub fn offer(&mut self, now: Instant, id: CallId, sdp: Bytes) {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state != CallState::Confirmed
            || call.offer_client.is_some()
            || call.pending_offer.is_some()
        {
            return;
        }
        call.local_sdp = Some(sdp.clone());
        let req = call
            .request(Method::Invite, &branch, &self.config)
            .body("application/sdp", sdp)
            .build();
        let flow = call.flow;
        self.send_request(now, flow, req, Some(id), Purpose::Reinvite);
    }

    /// Place a call (UAC). The caller of this method decides the target: kald only ever
    /// dials registered agents or allowlisted destinations.
    pub fn dial(&mut self, now: Instant, dial: Dial) -> CallId {
        let id = self.new_call_id();
        let local_tag = self.tag();
        let branch = self.branch();
        let call_id = format!(
            "{:016x}{:016x}@kald",
            self.rng.next_u64(),
            self.rng.next_u64()
        );
        let local_header = format!(
            "\"{}\" <sip:{}@{}>;tag={local_tag}",
            escape_quoted(&dial.display_name),
            dial.from_user,
            host_of(&dial.flow, &self.config)
        );
        let mut call = Call {
            id,
            role: Role::Uac,
            state: CallState::Calling,
            flow: dial.flow,
            call_id,
            local_tag,
            remote_tag: None,
            local_header,
            remote_header: dial.to.clone(),
            local_cseq: 0,
            remote_cseq: None,
            remote_target: dial.target.clone(),
            route_set: Vec::new(),
            invite: None,
            invite_server: None,
            invite_client: None,
            offer_client: None,
            pending_offer: None,
            offer_deadline: None,
            pending_ok: None,
            last_ack: None,
            local_sdp: Some(dial.sdp.clone()),
            session: None,
            retry_offer: None,
            early_deadline: Some(now + self.config.max_ringing),
            bye_after_ack: false,
            cancel_pending: false,
            credentials: dial.credentials.clone(),
            auth_tried: false,
            peer_allows_update: false,
            supports_timer: false,
            refer: None,
        };
        let req = call
            .request(Method::Invite, &branch, &self.config)
            .body("application/sdp", dial.sdp)
            .build();
        call.invite = Some(req.clone());
        self.calls.insert(id, call);
        self.send_request(now, dial.flow, req, Some(id), Purpose::Invite);
        id
    }

    /// Send a response to the INVITE of an incoming call through its server transaction.
    pub(crate) fn respond_invite(
        &mut self,
        now: Instant,
        id: CallId,
        code: u16,
        sdp: Option<Bytes>,
        extra: Vec<(HeaderName, String)>,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.role != Role::Uas || call.state != CallState::Early {
            return;
        }
        let Some(invite) = call.invite.as_ref() else {
            return;
        };
        let Some(key) = call.invite_server.clone() else {
            return;
        };
        let mut b = if code < 300 {
            call.dialog_response(invite, code, &self.config)
        } else {
            Builder::response_to(&invite.headers, code, Some(&call.local_tag))
        };
        if (200..300).contains(&code) {
            for r in invite.headers.all(&HeaderName::RecordRoute) {
                b.push(HeaderName::RecordRoute, r.value.clone());
            }
        }
        for (name, value) in extra {
            b.push(name, value);
        }
        if let Some(sdp) = sdp {
            b = b.body("application/sdp", sdp);
        }
        let resp = b
            .header(HeaderName::Server, self.config.user_agent.clone())
            .build();
        let bytes = resp.to_bytes();
        if (200..300).contains(&code) {
            let cseq = invite.cseq().map(|c| c.seq).unwrap_or(0);
            let t1 = self.config.timers.t1;
            call.pending_ok = Some(PendingOk {
                data: bytes.clone(),
                cseq,
                next: now + t1,
                interval: t1,
                give_up: now + t1 * 64,
            });
            call.state = CallState::Answered;
        }
        self.send_through(now, &key, &resp, bytes);
    }

    fn send_bye(&mut self, now: Instant, id: CallId) {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let req = call.request(Method::Bye, &branch, &self.config).build();
        let flow = call.flow;
        self.send_request(now, flow, req, None, Purpose::Bye);
    }

    /// CANCEL an outgoing INVITE (RFC 3261 §9.1): same branch, Request-URI, Call-ID, From,
    /// To and CSeq number as the INVITE.
    fn send_cancel(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(invite) = call.invite.as_ref() else {
            return;
        };
        let crate::message::StartLine::Request { uri, .. } = &invite.start else {
            return;
        };
        let mut b = Builder::request(Method::Cancel, uri.clone());
        for h in &invite.headers {
            match h.name {
                HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::Route => {
                    b.push(h.name.clone(), h.value.clone());
                }
                HeaderName::CSeq => {
                    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
                    b.push(HeaderName::CSeq, format!("{seq} CANCEL"));
                }
                _ => {}
            }
        }
        b.push(HeaderName::MaxForwards, "70");
        call.state = CallState::Cancelling;
        let flow = call.flow;
        self.send_request(now, flow, b.build(), Some(id), Purpose::Cancel);
    }

    /// A response for a call's client transaction.
    pub(crate) fn client_response(
        &mut self,
        now: Instant,
        id: CallId,
        purpose: Purpose,
        resp: Message,
    ) {
        let Some(code) = resp.status() else { return };
        match purpose {
            Purpose::Invite => self.invite_response(now, id, code, resp),
            Purpose::Reinvite | Purpose::Update | Purpose::Refresh => {
                self.offer_response(now, id, purpose, code, resp)
            }
            Purpose::Notify if code >= 200 => self.notify_done(now, id, code),
            Purpose::Cancel | Purpose::Bye | Purpose::Notify | Purpose::Qualify(_) => {}
        }
    }

    fn invite_response(&mut self, now: Instant, id: CallId, code: u16, resp: Message) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if code == 100 {
            return;
        }
        let sdp = if resp.body.is_empty() {
            None
        } else {
            Some(resp.body.clone())
        };
        let to_tag = resp.to().ok().and_then(|t| t.tag().map(str::to_owned));
        if code < 200 {
            if let (Some(tag), None) = (&to_tag, &call.remote_tag) {
                call.remote_tag = Some(tag.clone());
                call.remote_header = resp
                    .header_str(&HeaderName::To)
                    .unwrap_or_default()
                    .to_owned();
                if let Some(k) = call.dialog_key() {
                    self.dialogs.insert(k, id);
                }
            }
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            if call.state == CallState::Calling {
                call.state = CallState::Early;
            }
            if call.cancel_pending {
                call.cancel_pending = false;
                call.early_deadline = Some(now + self.config.timers.t1 * 64);
                self.send_cancel(now, id);
                return;
            }
            self.outputs.push_back(Output::Event(Event::Progress {
                call: id,
                code,
                sdp,
            }));
            return;
        }
        if code < 300 {
            if call.state == CallState::Confirmed {
                // A retransmitted 2xx: ACK it again.
                if let Some(ack) = call.last_ack.clone() {
                    let flow = call.flow;
                    self.transmit(flow, ack);
                }
                return;
            }
            let cancelled = matches!(call.state, CallState::Cancelling) || call.cancel_pending;
            if let Some(tag) = to_tag {
                call.remote_tag = Some(tag);
            }
            call.remote_header = resp
                .header_str(&HeaderName::To)
                .unwrap_or_default()
                .to_owned();
            if let Some(Ok(Some(c))) = resp.contacts().next() {
                call.remote_target = c.uri.raw.to_owned();
            }
            let mut routes: Vec<String> = resp
                .routes(HeaderName::RecordRoute)
                .filter_map(Result::ok)
                .map(|r| format!("<{}>", r.uri.raw))
                .collect();
            routes.reverse();
            call.route_set = routes;
            call.peer_allows_update = resp.has_token(&HeaderName::Allow, "UPDATE");
            if let Some((interval, refresher)) = session_expires(&resp) {
                let we_refresh = refresher == Some(Refresher::Uac);
                call.session = Some(SessionTimer {
                    interval,
                    we_refresh,
                    due: session_due(now, interval, we_refresh),
                });
            }
            let invite_cseq = resp.cseq().map(|c| c.seq).unwrap_or(1);
            call.state = CallState::Confirmed;
            if let Some(k) = call.dialog_key() {
                self.dialogs.insert(k, id);
            }
            self.send_ack(id, invite_cseq);
            if cancelled {
                // RFC 3261 §9.1 / §15: a 2xx that crossed our CANCEL is ACKed, then ended with BYE.
                self.send_bye(now, id);
                self.end_call(id, EndReason::Cancelled);
            } else {
                self.outputs
                    .push_back(Output::Event(Event::Answered { call: id, sdp }));
            }
            return;
        }
        let retry_auth = if (code == 401 || code == 407) && !call.auth_tried {
            call.credentials.clone()
        } else {
            None
        };
        if let Some((user, password)) = retry_auth {
            call.auth_tried = true;
            if self.reinvite_with_auth(now, id, code, &resp, &user, &password) {
                return;
            }
        }
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let reason = if matches!(call.state, CallState::Cancelling) || call.cancel_pending {
            EndReason::Cancelled
        } else {
            EndReason::Rejected(code)
        };
        self.end_call(id, reason);
    }

    /// Answer a digest challenge by sending the INVITE again with credentials (RFC 3261 §22.2).
    fn reinvite_with_auth(
        &mut self,
        now: Instant,
        id: CallId,
        code: u16,
        resp: &Message,
        user: &str,
        password: &str,
    ) -> bool {
        let (challenge_header, answer_header) = if code == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let Some(challenge) = resp
            .header_str(&challenge_header)
            .and_then(|v| auth::Challenge::parse(v).ok())
        else {
            return false;
        };
        let cnonce = format!("{:016x}", self.rng.next_u64());
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(old) = call.invite.clone() else {
            return false;
        };
        let uri = call.remote_target.clone();
        let Ok(credentials) = auth::respond(&challenge, "INVITE", &uri, user, password, &cnonce, 1)
        else {
            return false;
        };
        let mut b = call.request(Method::Invite, &branch, &self.config);
        b.push(answer_header, credentials.to_string());
        let req = b.body("application/sdp", old.body.clone()).build();
        call.invite = Some(req.clone());
        let flow = call.flow;
        self.send_request(now, flow, req, Some(id), Purpose::Invite);
        true
    }

    /// ACK a 2xx to an INVITE (RFC 3261 §13.2.2.4): a new transaction of its own.
    fn send_ack(&mut self, id: CallId, cseq: u32) {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let b = call.request(Method::Ack, &branch, &self.config);
        let mut msg = b.build();
        // The ACK carries the INVITE's CSeq number.
        msg.headers.remove(&HeaderName::CSeq);
        msg.headers.push(crate::message::Header::new(
            HeaderName::CSeq,
            format!("{cseq} ACK"),
        ));
        let data = msg.to_bytes();
        call.last_ack = Some(data.clone());
        let flow = call.flow;
        self.transmit(flow, data);
    }

    fn offer_response(
        &mut self,
        now: Instant,
        id: CallId,
        purpose: Purpose,
        code: u16,
        resp: Message,
    ) {
        if code < 200 {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.offer_client = None;
        let sdp = if resp.body.is_empty() {
            None
        } else {
            Some(resp.body.clone())
        };
        if code < 300 {
            if purpose != Purpose::Update {
                let cseq = resp.cseq().map(|c| c.seq).unwrap_or(0);
                self.send_ack(id, cseq);
            }
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            call.refresh_from(&resp, now);
            if purpose != Purpose::Refresh {
                self.outputs
                    .push_back(Output::Event(Event::OfferAnswered { call: id, sdp }));
            }
            return;
        }
        if code == 491 {
            // RFC 3261 §14.1: try again after a random 2.1–4 s (owner of the Call-ID) or 0–2 s.
            let ms = if call.role == Role::Uac {
                self.rng.random_range(2100..=4000)
            } else {
                self.rng.random_range(0..=2000)
            };
            if let Some(sdp) = call.local_sdp.clone() {
                call.retry_offer = Some((now + Duration::from_millis(ms), sdp));
            }
            return;
        }
        if code == 408 || code == 481 {
            self.send_bye(now, id);
            self.end_call(id, EndReason::Timeout);
            return;
        }
        if purpose != Purpose::Refresh {
            self.outputs
                .push_back(Output::Event(Event::OfferRefused { call: id, code }));
        }
    }

    /// A client transaction of a call timed out.
    pub(crate) fn client_timeout(&mut self, now: Instant, id: CallId, purpose: Purpose) {
        match purpose {
            Purpose::Invite => {
                let cancelled = self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.state == CallState::Cancelling);
                self.end_call(
                    id,
                    if cancelled {
                        EndReason::Cancelled
                    } else {
                        EndReason::Timeout
                    },
                );
            }
            Purpose::Reinvite | Purpose::Update | Purpose::Refresh => {
                self.send_bye(now, id);
                self.end_call(id, EndReason::Timeout);
            }
            Purpose::Notify => self.notify_done(now, id, 0),
            Purpose::Cancel | Purpose::Bye | Purpose::Qualify(_) => {}
        }
    }

    /// A call's own timer fired: 2xx retransmission, session refresh or expiry, 491 retry.
    pub(crate) fn call_timeout(&mut self, now: Instant, id: CallId) {
        let t2 = self.config.timers.t2;
        let t1 = self.config.timers.t1;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.early_deadline.is_some_and(|d| now >= d) {
            match (call.role, call.state) {
                (Role::Uas, CallState::Early) => {
                    call.early_deadline = None;
                    self.respond_invite(now, id, 480, None, Vec::new());
                    self.end_call(id, EndReason::Timeout);
                    return;
                }
                (Role::Uac, CallState::Calling) => {
                    call.cancel_pending = true;
                    call.early_deadline = Some(now + t1 * 64);
                }
                (Role::Uac, CallState::Early) => {
                    self.send_cancel(now, id);
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.early_deadline = Some(now + t1 * 64);
                    }
                    return;
                }
                (Role::Uac, CallState::Cancelling) => {
                    // RFC 3261 §9.1: no final response 64·T1 after the CANCEL: give up.
                    if let Some(key) = call.invite_client.take() {
                        self.client.remove(&key);
                    }
                    self.end_call(id, EndReason::Cancelled);
                    return;
                }
                _ => call.early_deadline = None,
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.pending_offer.is_some() && call.offer_deadline.is_some_and(|d| now >= d) {
            call.offer_deadline = None;
            if let Some((key, req)) = call.pending_offer.take() {
                let resp = Builder::response_to(&req.headers, 500, None)
                    .header(HeaderName::RetryAfter, "1")
                    .build();
                let bytes = resp.to_bytes();
                self.send_through(now, &key, &resp, bytes);
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(p) = call.pending_ok.as_mut() {
            if now >= p.give_up {
                // RFC 3261 §13.3.1.4: no ACK within 64·T1 ends the dialog with BYE.
                call.pending_ok = None;
                call.state = CallState::Confirmed;
                self.send_bye(now, id);
                self.end_call(id, EndReason::NoAck);
                return;
            }
            if now >= p.next {
                let data = p.data.clone();
                p.interval = (p.interval * 2).min(t2);
                p.next = now + p.interval;
                let flow = call.flow;
                self.transmit(flow, data);
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(s) = call.session {
            if now >= s.due && call.state == CallState::Confirmed {
                if s.we_refresh {
                    call.session = Some(SessionTimer {
                        due: session_due(now, s.interval, true),
                        ..s
                    });
                    if call.offer_client.is_none() && call.pending_offer.is_none() {
                        self.send_refresh(now, id);
                    }
                } else {
                    self.send_bye(now, id);
                    self.end_call(id, EndReason::SessionExpired);
                    return;
                }
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.retry_offer.as_ref().is_some_and(|r| now >= r.0) {
            if let Some((_, sdp)) = call.retry_offer.take() {
                self.offer(now, id, sdp);
            }
        }
    }

    /// Refresh the session (RFC 4028 §7.4): UPDATE without a body where the peer allows it,
    /// else a re-INVITE with the unchanged SDP.
    fn send_refresh(&mut self, now: Instant, id: CallId) {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let interval = call
            .session
            .map_or(self.config.session_expires, |s| s.interval);
        let refresher = if call.role == Role::Uas { "uas" } else { "uac" };
        let (method, purpose) = if call.peer_allows_update {
            (Method::Update, Purpose::Refresh)
        } else {
            (Method::Invite, Purpose::Refresh)
        };
        let mut b = call.request(method.clone(), &branch, &self.config);
        b.push(
            HeaderName::SessionExpires,
            format!("{interval};refresher={refresher}"),
        );
        if method == Method::Invite {
            if let Some(sdp) = call.local_sdp.clone() {
                b = b.body("application/sdp", sdp);
            }
        }
        let flow = call.flow;
        self.send_request(now, flow, b.build(), Some(id), purpose);
    }
}

fn escape_quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| {
            if c == '"' || c == '\\' {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}
