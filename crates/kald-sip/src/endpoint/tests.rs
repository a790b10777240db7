//! Endpoint tests on a simulated clock: the peer is a script of raw messages (as sipp sends
//! them), and every assertion looks at what the endpoint sent or told the TU, and when.
#![allow(clippy::disallowed_methods)] // one real instant as the simulated clock's origin
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::message::Message;

const PEER: &str = "127.0.0.1:5062";
const LOCAL: &str = "127.0.0.1:5060";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

pub(super) struct Harness {
    pub(super) ep: Endpoint,
    pub(super) start: Instant,
    pub(super) now: Instant,
    pub(super) sent: Vec<(Duration, Flow, Message)>,
    pub(super) events: Vec<(Duration, Event)>,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self::with(EndpointConfig::default())
    }

    pub(super) fn with(config: EndpointConfig) -> Self {
        let start = Instant::now();
        Self {
            ep: Endpoint::new(config),
            start,
            now: start,
            sent: vec![],
            events: vec![],
        }
    }

    pub(super) fn flow(remote: &str) -> Flow {
        Flow {
            transport: Transport::Udp,
            remote: remote.parse::<SocketAddr>().unwrap(),
            local: LOCAL.parse().unwrap(),
            connection: None,
        }
    }

    /// Feed raw text (LF line ends become CRLF) from `remote`.
    pub(super) fn recv_from(&mut self, remote: &str, text: &str) {
        let data = Bytes::from(text.replace("\r\n", "\n").replace('\n', "\r\n"));
        self.recv_bytes(Self::flow(remote), data);
    }

    pub(super) fn recv(&mut self, text: &str) {
        self.recv_from(PEER, text);
    }

    pub(super) fn recv_bytes(&mut self, flow: Flow, data: Bytes) {
        self.ep
            .handle_input(self.now, Input::Receive { flow, data });
        self.drain();
    }

    pub(super) fn drain(&mut self) {
        while let Some(out) = self.ep.poll_output() {
            let at = self.now - self.start;
            match out {
                Output::Transmit(t) => {
                    let msg = Message::parse(t.data.clone())
                        .expect("kald sent something it cannot parse");
                    self.sent.push((at, t.flow, msg));
                }
                Output::Event(e) => self.events.push((at, e)),
            }
        }
    }

    /// Move the clock to `start + at`, firing every timer on the way in order.
    pub(super) fn run_until(&mut self, at: Duration) {
        let target = self.start + at;
        let mut steps = 0;
        while let Some(t) = self.ep.poll_timeout() {
            if t > target {
                break;
            }
            // Like quinn's drive_bounded: a timer that never moves past `now` is a livelock.
            steps += 1;
            assert!(
                steps < 100_000,
                "livelock at {:?}: {:?}",
                t - self.start,
                self.ep.transaction_states()
            );
            self.now = self.now.max(t);
            self.ep.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    pub(super) fn take_sent(&mut self) -> Vec<(Duration, Flow, Message)> {
        std::mem::take(&mut self.sent)
    }

    pub(super) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    pub(super) fn statuses(&self) -> Vec<u16> {
        self.sent
            .iter()
            .filter_map(|(_, _, m)| m.status())
            .collect()
    }

    pub(super) fn last_sent(&self) -> &Message {
        &self.sent.last().expect("nothing sent").2
    }
}

pub(super) fn invite(call_id: &str, extra: &str, body: &str) -> String {
    format!(
        "INVITE sip:70101010@127.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{call_id};rport\n\
Max-Forwards: 70\n\
From: \"Borger\" <sip:+4512345678@127.0.0.1:5062>;tag=caller-{call_id}\n\
To: <sip:70101010@127.0.0.1:5060>\n\
Call-ID: {call_id}\n\
CSeq: 1 INVITE\n\
Contact: <sip:caller@127.0.0.1:5062>\n\
{extra}Content-Type: application/sdp\n\
Content-Length: {}\n\n{body}",
        body.len()
    )
}

/// A request inside the dialog of `call_id` from the caller, with kald's tag.
pub(super) fn in_dialog(
    method: &str,
    call_id: &str,
    to_tag: &str,
    cseq: u32,
    branch: &str,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:kald@127.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{branch}\n\
Max-Forwards: 70\n\
From: \"Borger\" <sip:+4512345678@127.0.0.1:5062>;tag=caller-{call_id}\n\
To: <sip:70101010@127.0.0.1:5060>;tag={to_tag}\n\
Call-ID: {call_id}\n\
CSeq: {cseq} {method}\n\
{extra}Content-Length: {}\n\n{body}",
        body.len()
    )
}

fn incoming(h: &mut Harness) -> (CallId, Option<Bytes>) {
    let evs = h.take_events();
    match evs.as_slice() {
        [Event::Incoming { call, offer, .. }] => (*call, offer.clone()),
        other => panic!("expected one Incoming event, got {other:?}"),
    }
}

fn to_tag(m: &Message) -> String {
    m.to().unwrap().tag().unwrap().to_owned()
}

#[test]
fn options_from_a_trunk_get_200_with_allow() {
    let mut h = Harness::new();
    h.recv(
        "OPTIONS sip:kald@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-o1\nFrom: <sip:x@127.0.0.1>;tag=1\n\
To: <sip:kald@127.0.0.1>\nCall-ID: o1\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n",
    );
    let m = h.last_sent();
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.header_str(&HeaderName::Allow), Some(ALLOW));
    assert!(h.take_events().is_empty());
}

#[test]
fn invite_from_a_source_that_is_no_trunk_is_refused_and_counted() {
    let mut h = Harness::new();
    h.recv_from("192.0.2.7:5060", &invite("stranger", "", SDP));
    assert_eq!(h.statuses(), vec![403]);
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.stats().refused_source, 1);
    assert_eq!(
        h.sent[0].1.remote,
        "192.0.2.7:5060".parse().unwrap(),
        "reply goes to the packet's source"
    );
}

#[test]
fn invite_for_a_number_no_entry_point_owns_gets_404() {
    let trunk = Trunk {
        name: "carrier".into(),
        networks: vec!["127.0.0.0/8".parse().unwrap()],
        numbers: vec![NumberRoute::new("+4570101010", "hovednummer")],
    };
    let mut h = Harness::with(EndpointConfig {
        trunks: vec![trunk],
        ..Default::default()
    });
    h.recv(&invite("nobody", "", SDP));
    assert_eq!(h.statuses(), vec![404]);
    assert_eq!(h.ep.stats().refused_number, 1);
    assert!(h.take_events().is_empty());
}

#[test]
fn allowed_invite_is_handed_to_the_tu_once_with_its_offer() {
    let mut h = Harness::new();
    let text = invite("c1", "", SDP);
    h.recv(&text);
    let (call, offer) = incoming(&mut h);
    assert_eq!(offer.as_deref(), Some(SDP.as_bytes()));
    // The retransmitted INVITE is absorbed: no second call.
    h.run_until(Duration::from_millis(500));
    h.recv(&text);
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.call_count(), 1);
    assert_eq!(h.ep.call_state(call), Some(CallState::Early));
    assert!(h.ep.stats().retransmissions >= 1);
}

#[test]
fn received_and_rport_are_stamped_in_the_response_via() {
    let mut h = Harness::new();
    h.recv(&invite("c2", "", SDP));
    h.run_until(Duration::from_millis(300));
    let trying = h
        .sent
        .iter()
        .find(|(_, _, m)| m.status() == Some(100))
        .expect("100 Trying after 200 ms");
    let via = trying.2.top_via().unwrap();
    assert_eq!(via.params.get("rport"), Some(Some("5062")));
    assert_eq!(via.params.get("received"), Some(Some("127.0.0.1")));
}

#[test]
fn ring_answer_ack_confirms_and_stops_2xx_retransmission() {
    let mut h = Harness::new();
    h.recv(&invite("c3", "", SDP));
    let (call, _) = incoming(&mut h);
    h.ep.ring(h.now, call, None);
    h.drain();
    h.ep.answer(h.now, call, Bytes::from_static(b"v=0\r\n"));
    h.drain();
    let ok = h.last_sent().clone();
    assert_eq!(ok.status(), Some(200));
    let tag = to_tag(&ok);
    assert!(ok
        .header_str(&HeaderName::Contact)
        .unwrap()
        .contains("sip:kald@127.0.0.1:5060"));
    // 2xx retransmitted at T1, 2T1, 4T1 … (RFC 3261 §13.3.1.4) until the ACK.
    h.take_sent();
    h.run_until(Duration::from_millis(1600));
    let times: Vec<_> = h
        .take_sent()
        .into_iter()
        .filter(|(_, _, m)| m.status() == Some(200))
        .map(|(t, _, _)| t)
        .collect();
    assert_eq!(
        times,
        vec![Duration::from_millis(500), Duration::from_millis(1500)]
    );
    h.recv(&in_dialog("ACK", "c3", &tag, 1, "ack3", "", ""));
    assert_eq!(
        h.take_events(),
        vec![Event::Confirmed { call, answer: None }]
    );
    h.run_until(Duration::from_secs(40));
    assert!(
        h.take_sent()
            .iter()
            .all(|(_, _, m)| m.status() != Some(200)),
        "no 2xx after the ACK"
    );
    assert_eq!(h.ep.call_state(call), Some(CallState::Confirmed));
}

#[test]
fn unacknowledged_2xx_ends_the_call_with_bye_after_64_t1() {
    let mut h = Harness::new();
    h.recv(&invite("c4", "", SDP));
    let (call, _) = incoming(&mut h);
    h.ep.answer(h.now, call, Bytes::from_static(b"v=0\r\n"));
    h.drain();
    h.run_until(Duration::from_secs(33));
    let bye = h
        .sent
        .iter()
        .find(|(_, _, m)| m.method() == Some(&Method::Bye))
        .expect("BYE");
    assert_eq!(bye.0, Duration::from_secs(32));
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::NoAck
        }]
    );
}

#[test]
fn cancel_before_answer_gets_200_and_487_and_ends_the_call() {
    let mut h = Harness::new();
    h.recv(&invite("c5", "", SDP));
    let (call, _) = incoming(&mut h);
    h.ep.ring(h.now, call, None);
    h.drain();
    h.take_sent();
    h.recv(
        "CANCEL sip:70101010@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-c5;rport\n\
Max-Forwards: 70\nFrom: \"Borger\" <sip:+4512345678@127.0.0.1:5062>;tag=caller-c5\nTo: <sip:70101010@127.0.0.1:5060>\n\
Call-ID: c5\nCSeq: 1 CANCEL\nContent-Length: 0\n\n",
    );
    let sent = h.take_sent();
    let got: Vec<_> = sent
        .iter()
        .map(|(_, _, m)| (m.status().unwrap(), m.cseq().unwrap().method))
        .collect();
    assert_eq!(got, vec![(200, Method::Cancel), (487, Method::Invite)]);
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::Cancelled
        }]
    );
    // The 487 is retransmitted (Timer G) until the ACK, which the transaction absorbs.
    h.run_until(Duration::from_millis(600));
    assert!(h
        .take_sent()
        .iter()
        .any(|(_, _, m)| m.status() == Some(487)));
    let tag = to_tag(&sent[1].2);
    let ack = format!(
        "ACK sip:70101010@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-c5;rport\nMax-Forwards: 70\n\
From: \"Borger\" <sip:+4512345678@127.0.0.1:5062>;tag=caller-c5\nTo: <sip:70101010@127.0.0.1:5060>;tag={tag}\n\
Call-ID: c5\nCSeq: 1 ACK\nContent-Length: 0\n\n"
    );
    h.recv(&ack);
    h.run_until(Duration::from_secs(40));
    assert!(h.take_sent().is_empty(), "nothing after the ACK");
    assert_eq!(h.ep.transaction_count(), 0);
}

#[test]
fn cancel_for_an_unknown_invite_gets_481() {
    let mut h = Harness::new();
    h.recv(
        "CANCEL sip:70101010@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-zz\nMax-Forwards: 70\n\
From: <sip:a@127.0.0.1>;tag=1\nTo: <sip:b@127.0.0.1>\nCall-ID: zz\nCSeq: 1 CANCEL\nContent-Length: 0\n\n",
    );
    assert_eq!(h.statuses(), vec![481]);
}

pub(super) fn confirmed_call(
    h: &mut Harness,
    id: &str,
    extra: &str,
    body: &str,
) -> (CallId, String) {
    h.recv(&invite(id, extra, body));
    let (call, _) = incoming(h);
    h.ep.answer(
        h.now,
        call,
        Bytes::from_static(b"v=0\r\no=kald 1 1 IN IP4 127.0.0.1\r\n"),
    );
    h.drain();
    let tag = to_tag(h.last_sent());
    h.recv(&in_dialog("ACK", id, &tag, 1, &format!("ack-{id}"), "", ""));
    h.take_events();
    h.take_sent();
    (call, tag)
}

#[test]
fn bye_from_the_caller_is_answered_and_ends_the_call() {
    let mut h = Harness::new();
    let (call, tag) = confirmed_call(&mut h, "c6", "", SDP);
    h.recv(&in_dialog("BYE", "c6", &tag, 2, "bye6", "", ""));
    assert_eq!(h.statuses(), vec![200]);
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::RemoteHangup
        }]
    );
    // A BYE for the ended dialog: 481.
    h.take_sent();
    h.recv(&in_dialog("BYE", "c6", &tag, 3, "bye6b", "", ""));
    assert_eq!(h.statuses(), vec![481]);
}

#[test]
fn local_hangup_sends_a_bye_inside_the_dialog() {
    let mut h = Harness::new();
    let (call, tag) = confirmed_call(&mut h, "c7", "", SDP);
    h.ep.hangup(h.now, call);
    h.drain();
    let bye = h.last_sent().clone();
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(
        bye.request_uri().unwrap().raw,
        "sip:caller@127.0.0.1:5062",
        "to the remote target"
    );
    assert_eq!(bye.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(bye.to().unwrap().tag(), Some("caller-c7"));
    assert_eq!(
        bye.cseq().unwrap(),
        crate::message::CSeq {
            seq: 1,
            method: Method::Bye
        }
    );
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::LocalHangup
        }]
    );
}

#[test]
fn delayed_offer_gets_kald_offer_in_200_and_answer_in_ack() {
    let mut h = Harness::new();
    h.recv(&invite("c8", "", ""));
    let (call, offer) = incoming(&mut h);
    assert_eq!(offer, None);
    h.ep.answer(h.now, call, Bytes::from_static(b"v=0\r\n"));
    h.drain();
    let ok = h.last_sent().clone();
    assert_eq!(&ok.body[..], b"v=0\r\n");
    let tag = to_tag(&ok);
    h.recv(&in_dialog(
        "ACK",
        "c8",
        &tag,
        1,
        "ack8",
        "Content-Type: application/sdp\n",
        SDP,
    ));
    match h.take_events().as_slice() {
        [Event::Confirmed {
            call: c,
            answer: Some(a),
        }] => {
            assert_eq!(*c, call);
            assert!(a.starts_with(b"v=0"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reinvite_to_hold_is_offered_to_the_tu_and_answered() {
    let mut h = Harness::new();
    let (call, tag) = confirmed_call(&mut h, "c9", "", SDP);
    let hold = SDP.replace(
        "m=audio 6000 RTP/AVP 0 101",
        "m=audio 6000 RTP/AVP 0 101\na=sendonly",
    );
    h.recv(&in_dialog(
        "INVITE",
        "c9",
        &tag,
        2,
        "re9",
        "Content-Type: application/sdp\n",
        &hold,
    ));
    match h.take_events().as_slice() {
        [Event::Offer {
            call: c,
            sdp: Some(s),
        }] => {
            assert_eq!(*c, call);
            assert!(String::from_utf8_lossy(s).contains("a=sendonly"));
        }
        other => panic!("{other:?}"),
    }
    h.ep.answer_offer(
        h.now,
        call,
        Some(Bytes::from_static(b"v=0\r\na=recvonly\r\n")),
    );
    h.drain();
    let ok = h.last_sent().clone();
    assert_eq!((ok.status(), ok.cseq().unwrap().seq), (Some(200), 2));
    assert_eq!(&ok.body[..], b"v=0\r\na=recvonly\r\n");
    h.recv(&in_dialog("ACK", "c9", &tag, 2, "ack9", "", ""));
    h.take_sent();
    h.run_until(Duration::from_secs(5));
    assert!(
        h.take_sent().is_empty(),
        "the re-INVITE's 2xx stops after its ACK"
    );
}

#[test]
fn glare_gets_491_and_our_reinvite_is_retried() {
    let mut h = Harness::new();
    let (call, tag) = confirmed_call(&mut h, "c10", "", SDP);
    h.ep.offer(h.now, call, Bytes::from_static(b"v=0\r\na=sendonly\r\n"));
    h.drain();
    let ours = h.last_sent().clone();
    assert_eq!(ours.method(), Some(&Method::Invite));
    h.recv(&in_dialog(
        "INVITE",
        "c10",
        &tag,
        2,
        "re10",
        "Content-Type: application/sdp\n",
        SDP,
    ));
    assert_eq!(h.last_sent().status(), Some(491));
    // The peer answers ours with 491 too; kald tries again after 0–2 s (it is not the Call-ID owner).
    let mut resp = String::from_utf8_lossy(&ours.to_bytes()).into_owned();
    resp = resp.replacen(
        &format!("INVITE {} SIP/2.0", ours.request_uri().unwrap().raw),
        "SIP/2.0 491 Request Pending",
        1,
    );
    h.take_sent();
    h.recv(&resp);
    h.run_until(Duration::from_secs(3));
    let retries: Vec<_> = h
        .take_sent()
        .into_iter()
        .filter(|(_, _, m)| m.method() == Some(&Method::Invite))
        .collect();
    let mut cseqs: Vec<u32> = retries
        .iter()
        .map(|(_, _, m)| m.cseq().unwrap().seq)
        .collect();
    cseqs.dedup();
    assert_eq!(
        cseqs,
        vec![ours.cseq().unwrap().seq + 1],
        "one new re-INVITE (UDP retransmissions aside)"
    );
    assert!(retries[0].0 <= Duration::from_secs(2));
}

#[test]
fn session_timer_refreshed_by_the_caller_or_the_call_ends() {
    let mut h = Harness::new();
    let (call, tag) = confirmed_call(
        &mut h,
        "c11",
        "Supported: timer\nSession-Expires: 90;refresher=uac\n",
        SDP,
    );
    // The 200 told the caller to refresh; without a refresh the call ends at 90 − 30 = 60 s.
    h.run_until(Duration::from_secs(40));
    h.recv(&in_dialog(
        "UPDATE",
        "c11",
        &tag,
        2,
        "up11",
        "Session-Expires: 90;refresher=uac\n",
        "",
    ));
    assert_eq!(h.last_sent().status(), Some(200));
    h.run_until(Duration::from_secs(99));
    assert!(
        h.take_events().is_empty(),
        "refreshed at 40 s, so alive until 100 s"
    );
    h.run_until(Duration::from_secs(101));
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::SessionExpired
        }]
    );
    assert!(h
        .sent
        .iter()
        .any(|(t, _, m)| m.method() == Some(&Method::Bye) && *t == Duration::from_secs(100)));
}

#[test]
fn session_timer_negotiation_in_the_200() {
    let mut h = Harness::new();
    h.recv(&invite(
        "c12",
        "Supported: timer\nSession-Expires: 1800\n",
        SDP,
    ));
    let (call, _) = incoming(&mut h);
    h.ep.answer(h.now, call, Bytes::from_static(b"v=0\r\n"));
    h.drain();
    let ok = h.last_sent();
    assert_eq!(
        ok.header_str(&HeaderName::SessionExpires),
        Some("1800;refresher=uac")
    );
    assert!(ok.has_token(&HeaderName::Require, "timer"));
    // Too small an interval: 422 with Min-SE.
    h.recv(&invite(
        "c13",
        "Supported: timer\nSession-Expires: 30\n",
        SDP,
    ));
    let m = h.last_sent();
    assert_eq!(m.status(), Some(422));
    assert_eq!(m.header_str(&HeaderName::MinSe), Some("90"));
}

#[test]
fn kald_refreshes_when_the_caller_has_no_session_timer_support() {
    let mut h = Harness::new();
    let (_call, _tag) = confirmed_call(
        &mut h,
        "c14",
        "Allow: INVITE, ACK, BYE, CANCEL, UPDATE\n",
        SDP,
    );
    h.run_until(Duration::from_secs(901));
    let refresh = h
        .sent
        .iter()
        .find(|(_, _, m)| m.method() == Some(&Method::Update))
        .expect("UPDATE refresh");
    assert_eq!(
        refresh.0,
        Duration::from_secs(900),
        "half of the default 1800 s"
    );
    assert_eq!(
        refresh.2.header_str(&HeaderName::SessionExpires),
        Some("1800;refresher=uas")
    );
}

#[test]
fn unknown_and_unsupported_methods() {
    let mut h = Harness::new();
    let req = |m: &str, id: &str| {
        format!(
            "{m} sip:kald@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{id}\nFrom: <sip:x@127.0.0.1>;tag=1\n\
To: <sip:kald@127.0.0.1>\nCall-ID: {id}\nCSeq: 1 {m}\nMax-Forwards: 70\nContent-Length: 0\n\n"
        )
    };
    h.recv(&req("FROBNICATE", "u1"));
    h.recv(&req("REGISTER", "u2"));
    assert_eq!(h.statuses(), vec![501, 405]);
    assert!(h
        .sent
        .iter()
        .all(|(_, _, m)| m.header_str(&HeaderName::Allow) == Some(ALLOW)));
}

#[test]
fn require_unknown_option_gets_420_with_unsupported() {
    let mut h = Harness::new();
    h.recv(&invite("c15", "Require: 100rel, foo\n", SDP));
    let m = h.last_sent();
    assert_eq!(m.status(), Some(420));
    assert_eq!(m.header_str(&HeaderName::Unsupported), Some("100rel, foo"));
}

#[test]
fn tcp_replies_use_the_same_connection() {
    let mut h = Harness::new();
    let mut flow = Harness::flow(PEER);
    flow.transport = Transport::Tcp;
    flow.connection = Some(ConnectionId(9));
    let text = invite("c16", "", SDP)
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace('\n', "\r\n");
    h.recv_bytes(flow, Bytes::from(text));
    let (call, _) = incoming(&mut h);
    h.ep.reject(h.now, call, 486);
    h.drain();
    let (_, f, m) = h.sent.last().unwrap();
    assert_eq!(m.status(), Some(486));
    assert_eq!(f.connection, Some(ConnectionId(9)));
    // No retransmission of the 486 on TCP.
    h.run_until(Duration::from_secs(10));
    assert_eq!(h.statuses().iter().filter(|&&s| s == 486).count(), 1);
    // A closed connection ends calls on it.
    h.recv(&invite("c17", "", SDP).replace("SIP/2.0/UDP", "SIP/2.0/TCP"));
}

// ---- UAC: kald rings an agent ----

fn agent_response(
    req: &Message,
    code: u16,
    to_tag: Option<&str>,
    extra: &str,
    body: &str,
) -> String {
    let mut s = format!("SIP/2.0 {code} {}\n", crate::build::reason_phrase(code));
    for h in &req.headers {
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                s.push_str(&format!(
                    "{}: {}\n",
                    h.name.as_str(),
                    String::from_utf8_lossy(&h.value)
                ));
            }
            HeaderName::To => {
                let v = String::from_utf8_lossy(&h.value);
                match to_tag {
                    Some(t) => s.push_str(&format!("To: {v};tag={t}\n")),
                    None => s.push_str(&format!("To: {v}\n")),
                }
            }
            _ => {}
        }
    }
    s.push_str("Contact: <sip:agent7@127.0.0.1:5070>\n");
    s.push_str(extra);
    s.push_str(&format!("Content-Length: {}\n\n{body}", body.len()));
    s
}

fn dial(h: &mut Harness, credentials: Option<(String, String)>) -> (CallId, Message) {
    let call = h.ep.dial(
        h.now,
        Dial {
            flow: Harness::flow("127.0.0.1:5070"),
            target: "sip:agent7@127.0.0.1:5070".into(),
            to: "<sip:agent7@kald.invalid>".into(),
            display_name: "Sygedagpenge 3:12".into(),
            from_user: "kald".into(),
            sdp: Bytes::from_static(b"v=0\r\n"),
            credentials,
        },
    );
    h.drain();
    let inv = h.last_sent().clone();
    assert_eq!(inv.method(), Some(&Method::Invite));
    (call, inv)
}

#[test]
fn dialling_an_agent_rings_answers_and_acks() {
    let mut h = Harness::new();
    let (call, inv) = dial(&mut h, None);
    assert_eq!(inv.from().unwrap().display_name, Some("Sygedagpenge 3:12"));
    assert_eq!(
        h.sent.last().unwrap().1.remote,
        "127.0.0.1:5070".parse().unwrap()
    );
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(&inv, 180, Some("ag1"), "", ""),
    );
    assert_eq!(
        h.take_events(),
        vec![Event::Progress {
            call,
            code: 180,
            sdp: None
        }]
    );
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(
            &inv,
            200,
            Some("ag1"),
            "Content-Type: application/sdp\n",
            SDP,
        ),
    );
    let evs = h.take_events();
    assert!(matches!(evs.as_slice(), [Event::Answered { call: c, sdp: Some(_) }] if *c == call));
    let ack = h.last_sent().clone();
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(
        ack.cseq().unwrap(),
        crate::message::CSeq {
            seq: 1,
            method: Method::Ack
        }
    );
    assert_eq!(ack.request_uri().unwrap().raw, "sip:agent7@127.0.0.1:5070");
    assert_eq!(ack.to().unwrap().tag(), Some("ag1"));
    // A retransmitted 200 gets the same ACK again.
    h.take_sent();
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(
            &inv,
            200,
            Some("ag1"),
            "Content-Type: application/sdp\n",
            SDP,
        ),
    );
    assert_eq!(h.take_sent().len(), 1);
    assert!(h.take_events().is_empty());
    // The agent hangs up.
    let bye = format!(
        "BYE sip:kald@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-agbye\nMax-Forwards: 70\n\
From: <sip:agent7@kald.invalid>;tag=ag1\nTo: {}\nCall-ID: {}\nCSeq: 1 BYE\nContent-Length: 0\n\n",
        inv.header_str(&HeaderName::From).unwrap(),
        inv.call_id().unwrap()
    );
    h.recv_from("127.0.0.1:5070", &bye);
    assert_eq!(h.statuses(), vec![200]);
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::RemoteHangup
        }]
    );
}

#[test]
fn a_2xx_crossing_our_cancel_is_acked_then_ended_with_bye() {
    let mut h = Harness::new();
    let (call, inv) = dial(&mut h, None);
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(&inv, 180, Some("ag2"), "", ""),
    );
    h.take_events();
    h.ep.hangup(h.now, call);
    h.drain();
    let cancel = h.last_sent().clone();
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch(),
        "same branch as the INVITE"
    );
    assert_eq!(cancel.cseq().unwrap().seq, inv.cseq().unwrap().seq);
    h.take_sent();
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(
            &inv,
            200,
            Some("ag2"),
            "Content-Type: application/sdp\n",
            SDP,
        ),
    );
    let methods: Vec<_> = h
        .take_sent()
        .into_iter()
        .filter_map(|(_, _, m)| m.method().cloned())
        .collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::Cancelled
        }]
    );
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let mut h = Harness::new();
    let (call, inv) = dial(&mut h, None);
    h.ep.hangup(h.now, call);
    h.drain();
    assert!(
        h.sent
            .iter()
            .all(|(_, _, m)| m.method() != Some(&Method::Cancel)),
        "no CANCEL before a 1xx"
    );
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(&inv, 180, Some("ag3"), "", ""),
    );
    assert_eq!(h.last_sent().method(), Some(&Method::Cancel));
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(&inv, 487, Some("ag3"), "", ""),
    );
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::Cancelled
        }]
    );
    assert_eq!(
        h.last_sent().method(),
        Some(&Method::Ack),
        "the 487 is ACKed by the transaction"
    );
}

#[test]
fn a_challenged_invite_is_sent_again_with_digest_credentials() {
    let mut h = Harness::new();
    let (call, inv) = dial(&mut h, Some(("kald".into(), "hemmelig".into())));
    let challenge = "WWW-Authenticate: Digest realm=\"agents\", nonce=\"abc123\", algorithm=SHA-256, qop=\"auth\"\n";
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(&inv, 401, Some("x"), challenge, ""),
    );
    let sent = h.take_sent();
    assert!(
        sent.iter()
            .any(|(_, _, m)| m.method() == Some(&Method::Ack)),
        "the 401 is ACKed"
    );
    let again = sent
        .iter()
        .rev()
        .find(|(_, _, m)| m.method() == Some(&Method::Invite))
        .unwrap()
        .2
        .clone();
    assert_eq!(again.method(), Some(&Method::Invite));
    assert_eq!(again.cseq().unwrap().seq, 2);
    let creds =
        crate::auth::Credentials::parse(again.header_str(&HeaderName::Authorization).unwrap())
            .unwrap();
    assert!(crate::auth::verify(
        &creds,
        "INVITE",
        crate::auth::Secret::Password("hemmelig"),
        "agents"
    )
    .is_ok());
    h.recv_from(
        "127.0.0.1:5070",
        &agent_response(
            &again,
            200,
            Some("ag4"),
            "Content-Type: application/sdp\n",
            SDP,
        ),
    );
    assert!(matches!(h.take_events().as_slice(), [Event::Answered { call: c, .. }] if *c == call));
}

#[test]
fn an_unanswered_dial_times_out_at_64_t1() {
    let mut h = Harness::new();
    let (call, _) = dial(&mut h, None);
    h.run_until(Duration::from_secs(33));
    let at: Vec<_> = h.events.iter().map(|(t, e)| (*t, e.clone())).collect();
    assert_eq!(
        at,
        vec![(
            Duration::from_secs(32),
            Event::Ended {
                call,
                reason: EndReason::Timeout
            }
        )]
    );
}

#[test]
fn an_invite_the_tu_never_answers_gets_480_after_max_unanswered() {
    let mut h = Harness::new();
    h.recv(&invite("c30", "", ""));
    let (call, _) = incoming(&mut h);
    h.run_until(Duration::from_secs(301));
    let final_ = h
        .sent
        .iter()
        .find(|(_, _, m)| m.status().is_some_and(|s| s >= 300))
        .expect("a final response");
    assert_eq!(
        (final_.0, final_.2.status()),
        (Duration::from_secs(300), Some(480))
    );
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::Timeout
        }]
    );
    h.run_until(Duration::from_secs(400));
    assert_eq!(h.ep.transaction_count(), 0);
}

#[test]
fn messages_are_counted_by_method_and_code() {
    let mut c = MessageCounts::default();
    c.count(b"INVITE sip:a@b SIP/2.0\r\n", true);
    c.count(b"INVITE sip:a@b SIP/2.0\r\n", true);
    c.count(b"SIP/2.0 180 Ringing\r\n", false);
    c.count(b"SIP/2.0 200 OK\r\n", false);
    c.count(b"SIP/2.0 200 OK\r\n", true);
    c.count(b"\r\n\r\n", true);
    c.count(b"garbage", true);
    c.count(b"SIP/2.0 99x nonsense", true);
    assert_eq!(c.requests_in.get("INVITE"), Some(&2));
    assert_eq!(c.requests_in.len(), 1);
    assert_eq!(c.responses_out.get(&180), Some(&1));
    assert_eq!(c.responses_out.get(&200), Some(&1));
    assert_eq!(c.responses_in.get(&200), Some(&1));
    assert_eq!(c.responses_in.len(), 1);
}
