//! REFER, NOTIFY and Replaces through the whole endpoint, on the simulated clock.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::super::registrar::tests::{authenticated_invite, config};
use super::super::tests::{confirmed_call, in_dialog, Harness};
use super::*;
use crate::endpoint::Dial;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

fn respond_to(req: &Message, code: u16) -> String {
    String::from_utf8(
        Builder::response_to(&req.headers, code, None)
            .build()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn refer(call_id: &str, tag: &str, cseq: u32, refer_to: &str) -> String {
    in_dialog(
        "REFER",
        call_id,
        tag,
        cseq,
        &format!("ref-{call_id}-{cseq}"),
        &format!("Refer-To: {refer_to}\nReferred-By: <sip:agent7@kald.test>\n"),
        "",
    )
}

#[test]
fn refer_gets_202_an_event_and_notifies_in_order() {
    let mut h = Harness::new();
    let (call, tag) = confirmed_call(&mut h, "r1", "", SDP);
    let (other, other_tag) = confirmed_call(&mut h, "r2", "", SDP);
    h.recv(&refer(
        "r1",
        &tag,
        2,
        &format!("<sip:agent9@kald.test;user=phone?Replaces=r2%3Bto-tag%3D{other_tag}%3Bfrom-tag%3Dcaller-r2>"),
    ));
    let sent = h.take_sent();
    assert_eq!(sent[0].2.status(), Some(202));
    assert_eq!(
        h.take_events(),
        vec![Event::Refer {
            call,
            target: "sip:agent9@kald.test;user=phone".into(),
            replaces: Some(other),
            replaces_unknown: false
        }]
    );
    // The first NOTIFY goes at once: 100 Trying, subscription active.
    let notify = sent[1].2.clone();
    assert_eq!(notify.method(), Some(&Method::Notify));
    assert_eq!(
        notify.request_uri().unwrap().raw,
        "sip:caller@127.0.0.1:5062"
    );
    assert_eq!(notify.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(notify.to().unwrap().tag(), Some("caller-r1"));
    assert_eq!(notify.call_id().unwrap(), "r1");
    assert_eq!(notify.cseq().unwrap().method, Method::Notify);
    assert_eq!(notify.header_str(&HeaderName::Event), Some("refer;id=2"));
    assert_eq!(
        notify.header_str(&HeaderName::SubscriptionState),
        Some("active;expires=60")
    );
    assert_eq!(
        notify.header_str(&HeaderName::ContentType),
        Some("message/sipfrag;version=2.0")
    );
    assert!(notify.headers.contains(&HeaderName::Contact));
    assert_eq!(&notify.body[..], b"SIP/2.0 100 Trying\r\n");
    // The outcome waits for the first NOTIFY's response, then goes.
    h.ep.notify_refer(h.now, call, 200, "OK\r\nX-Injected: 1", true);
    h.drain();
    assert!(h.take_sent().is_empty());
    h.recv(&respond_to(&notify, 200));
    let last = h.take_sent().pop().unwrap().2;
    assert_eq!(last.method(), Some(&Method::Notify));
    assert_eq!(
        last.header_str(&HeaderName::SubscriptionState),
        Some("terminated;reason=noresource")
    );
    assert_eq!(&last.body[..], b"SIP/2.0 200 OKX-Injected: 1\r\n");
    assert_eq!(last.cseq().unwrap().seq, notify.cseq().unwrap().seq + 1);
    h.recv(&respond_to(&last, 200));
    // The subscription is over: nothing more to notify.
    h.ep.notify_refer(h.now, call, 503, "Service Unavailable", true);
    h.drain();
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.call_state(call), Some(CallState::Confirmed));
}

#[test]
fn a_481_to_the_notify_ends_the_subscription_and_an_unanswered_one_does_not_end_the_call() {
    let mut h = Harness::new();
    let (call, tag) = confirmed_call(&mut h, "r3", "", SDP);
    h.recv(&refer("r3", &tag, 2, "<sip:*21@kald.test>"));
    let notify = h.take_sent().pop().unwrap().2;
    h.ep.notify_refer(h.now, call, 180, "Ringing", false);
    h.recv(&respond_to(&notify, 481));
    assert!(h.take_sent().is_empty(), "the waiting NOTIFY is dropped");
    // A new REFER, whose NOTIFY is never answered: Timer F, and the call goes on.
    h.recv(&refer("r3", &tag, 3, "<sip:*21@kald.test>"));
    h.take_events();
    h.run_until(Duration::from_secs(40));
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.call_state(call), Some(CallState::Confirmed));
    assert_eq!(h.ep.transaction_count(), 0);
}

#[test]
fn replaces_is_matched_either_way_round_or_reported_unknown() {
    let mut h = Harness::new();
    let (call, tag) = confirmed_call(&mut h, "r4", "", SDP);
    let (other, other_tag) = confirmed_call(&mut h, "r5", "", SDP);
    // Tags the other way round (from the peer's point of view).
    h.recv(&refer(
        "r4",
        &tag,
        2,
        &format!("<sip:a@b?Replaces=r5%3Bto-tag%3Dcaller-r5%3Bfrom-tag%3D{other_tag}>"),
    ));
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Refer { replaces: Some(c), replaces_unknown: false, .. }] if *c == other
    ));
    for (cseq, refer_to) in [
        (
            3,
            "<sip:a@b?Replaces=nosuch%3Bto-tag%3Dx%3Bfrom-tag%3Dy>".to_owned(),
        ),
        (4, "<sip:a@b?Replaces=garbage>".to_owned()),
    ] {
        h.recv(&refer("r4", &tag, cseq, &refer_to));
        assert_eq!(
            h.take_events(),
            vec![Event::Refer {
                call,
                target: "sip:a@b".into(),
                replaces: None,
                replaces_unknown: true
            }]
        );
    }
    h.recv(&refer("r4", &tag, 5, "sip:7010@kald.test"));
    assert_eq!(
        h.take_events(),
        vec![Event::Refer {
            call,
            target: "sip:7010@kald.test".into(),
            replaces: None,
            replaces_unknown: false
        }]
    );
}

#[test]
fn replaces_names_an_outgoing_leg_by_kalds_tags() {
    let mut h = Harness::new();
    let (trunk_call, tag) = confirmed_call(&mut h, "r6", "", SDP);
    let leg = h.ep.dial(
        h.now,
        Dial {
            flow: Harness::flow("127.0.0.1:5070"),
            target: "sip:agent7@127.0.0.1:5070".into(),
            to: "<sip:agent7@kald.test>".into(),
            display_name: "Sygedagpenge 3:12".into(),
            from_user: "kald".into(),
            sdp: Bytes::from_static(SDP.as_bytes()),
            credentials: None,
        },
    );
    h.drain();
    let inv = h.last_sent().clone();
    let mut ok = String::from_utf8(
        Builder::response_to(&inv.headers, 200, Some("agent-tag"))
            .header(HeaderName::Contact, "<sip:agent7@127.0.0.1:5070>")
            .body("application/sdp", Bytes::from_static(SDP.as_bytes()))
            .build()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    ok = ok.replace("\r\n", "\n");
    h.recv_from("127.0.0.1:5070", &ok);
    h.take_events();
    let kald_tag = inv.from().unwrap().tag().unwrap().to_owned();
    let leg_call_id = inv.call_id().unwrap().to_owned();
    h.recv(&refer(
        "r6",
        &tag,
        2,
        &format!("<sip:a@b?Replaces={leg_call_id}%3Bto-tag%3D{kald_tag}%3Bfrom-tag%3Dagent-tag>"),
    ));
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Refer { call, replaces: Some(c), .. }] if *c == leg && *call == trunk_call
    ));
}

#[test]
fn bad_refers_and_stray_notifies() {
    let mut h = Harness::new();
    let (_, tag) = confirmed_call(&mut h, "r7", "", SDP);
    // No Refer-To.
    h.recv(&in_dialog("REFER", "r7", &tag, 2, "b1", "", ""));
    // Two Refer-To.
    h.recv(&in_dialog(
        "REFER",
        "r7",
        &tag,
        3,
        "b2",
        "Refer-To: <sip:a@b>\nRefer-To: <sip:c@d>\n",
        "",
    ));
    // A list in one header, and a scheme kald cannot transfer to.
    h.recv(&refer("r7", &tag, 4, "<sip:a@b>, <sip:c@d>"));
    h.recv(&refer("r7", &tag, 5, "<http://example.com/>"));
    assert_eq!(h.statuses(), vec![400, 400, 400, 400]);
    assert!(h.take_events().is_empty());
    h.take_sent();
    // An in-dialog NOTIFY (e.g. for a REFER of kald's someday) is acknowledged.
    h.recv(&in_dialog(
        "NOTIFY",
        "r7",
        &tag,
        6,
        "n1",
        "Event: refer\nSubscription-State: active\nContent-Type: message/sipfrag\n",
        "SIP/2.0 100 Trying\r\n",
    ));
    assert_eq!(h.statuses(), vec![200]);
    h.take_sent();
    // Outside a dialog: REFER 403, NOTIFY 481.
    for (method, code) in [("REFER", 403), ("NOTIFY", 481)] {
        h.recv(&format!(
            "{method} sip:kald@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-o{method}\nMax-Forwards: 70\n\
From: <sip:x@127.0.0.1>;tag=1\nTo: <sip:kald@127.0.0.1>\nCall-ID: o{method}\nCSeq: 1 {method}\nRefer-To: <sip:a@b>\nEvent: refer\nContent-Length: 0\n\n"
        ));
        assert_eq!(h.last_sent().status(), Some(code));
    }
    assert!(h.take_events().is_empty());
}

#[test]
fn an_agent_invite_with_replaces_names_the_call_it_takes_over() {
    let mut h = Harness::with(config(Duration::ZERO));
    let (citizen, tag) = {
        h.recv_from(
            "127.0.0.1:5062",
            &super::super::tests::invite("r8", "", SDP),
        );
        let call = match h.take_events().as_slice() {
            [Event::Incoming { call, .. }] => *call,
            other => panic!("{other:?}"),
        };
        h.ep.answer(h.now, call, Bytes::from_static(SDP.as_bytes()));
        h.drain();
        let tag = h.last_sent().to().unwrap().tag().unwrap().to_owned();
        h.recv(&in_dialog("ACK", "r8", &tag, 1, "ack-r8", "", ""));
        h.take_events();
        (call, tag)
    };
    authenticated_invite(
        &mut h,
        "pickup1",
        "agent8",
        &format!("Replaces: r8;to-tag={tag};from-tag=caller-r8\nRequire: replaces\n"),
    );
    let evs = h.take_events();
    assert!(
        matches!(evs.as_slice(), [Event::Incoming { agent: Some(a), replaces: Some(c), entry_point, .. }]
            if a == "agent7" && *c == citizen && entry_point == "agent8"),
        "{evs:?}"
    );
    // early-only for a confirmed call: 486; an unknown dialog: 481; two headers: 400.
    for (id, extra, code) in [
        (
            "pickup2",
            format!("Replaces: r8;to-tag={tag};from-tag=caller-r8;early-only\n"),
            486,
        ),
        (
            "pickup3",
            "Replaces: nosuch;to-tag=a;from-tag=b\n".to_owned(),
            481,
        ),
        (
            "pickup4",
            "Replaces: nosuch;to-tag=a;from-tag=b\nReplaces: x;to-tag=a;from-tag=b\n".to_owned(),
            400,
        ),
    ] {
        authenticated_invite(&mut h, id, "agent8", &extra);
        assert_eq!(h.last_sent().status(), Some(code), "{id}");
        assert!(h.take_events().is_empty());
    }
    // The citizen's call is untouched: kald decides what to do with a Replaces.
    assert_eq!(h.ep.call_state(citizen), Some(CallState::Confirmed));
}
