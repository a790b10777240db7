//! Registrar and agent-authentication tests on the simulated clock: the phone is scripted
//! and answers challenges with the crate's own UAC digest code ([`auth::respond`]).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;

use super::super::tests::Harness;
use super::*;
use crate::endpoint::{Dial, EndpointConfig, Input, NumberRoute, Transport, Trunk};
use crate::message::Message;

pub(in crate::endpoint) const PHONE: &str = "127.0.0.2:5070";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";

/// A trunk on 127.0.0.1 only, agents anywhere in 127/8, two users.
pub(in crate::endpoint) fn config(qualify_every: Duration) -> EndpointConfig {
    EndpointConfig {
        trunks: vec![Trunk {
            name: "carrier".into(),
            networks: vec!["127.0.0.1/32".parse().unwrap()],
            numbers: vec![NumberRoute::new("*", "hovednummer")],
        }],
        registrar: Some(RegistrarConfig {
            realm: "kald.test".into(),
            networks: vec!["127.0.0.0/8".parse().unwrap()],
            users: vec![
                RegistrarUser::new("agent7", "hemmelig"),
                RegistrarUser::new("agent8", "andet"),
            ],
            nonce_key: b"0123456789abcdef0123456789abcdef".to_vec(),
            qualify_every,
            ..RegistrarConfig::default()
        }),
        ..EndpointConfig::default()
    }
}

/// A scripted softphone.
pub(in crate::endpoint) struct Phone {
    pub(in crate::endpoint) addr: &'static str,
    pub(in crate::endpoint) user: &'static str,
    pub(in crate::endpoint) password: &'static str,
    pub(in crate::endpoint) call_id: String,
    pub(in crate::endpoint) cseq: u32,
    pub(in crate::endpoint) transport: &'static str,
}

impl Phone {
    pub(in crate::endpoint) fn new(
        addr: &'static str,
        user: &'static str,
        password: &'static str,
    ) -> Self {
        Self {
            addr,
            user,
            password,
            call_id: format!("reg-{user}-{addr}-{password}"),
            cseq: 0,
            transport: "UDP",
        }
    }

    fn register_text(
        &mut self,
        contacts: &[&str],
        expires: Option<u32>,
        auth: Option<&str>,
    ) -> String {
        self.cseq += 1;
        let mut s = format!(
            "REGISTER sip:kald.test SIP/2.0\nVia: SIP/2.0/{} {};branch=z9hG4bK-r{}-{};rport\nMax-Forwards: 70\n\
From: <sip:{}@kald.test>;tag=ph{}\nTo: <sip:{}@kald.test>\nCall-ID: {}\nCSeq: {} REGISTER\n",
            self.transport, self.addr, self.cseq, self.call_id, self.user, self.cseq, self.user, self.call_id, self.cseq
        );
        for c in contacts {
            s.push_str(&format!("Contact: {c}\n"));
        }
        if let Some(e) = expires {
            s.push_str(&format!("Expires: {e}\n"));
        }
        if let Some(a) = auth {
            s.push_str(&format!("Authorization: {a}\n"));
        }
        s.push_str("Content-Length: 0\n\n");
        s
    }
}

/// The digest answer to the `index`th challenge of `resp` in `header`.
#[allow(clippy::too_many_arguments)]
pub(in crate::endpoint) fn answer(
    resp: &Message,
    header: &HeaderName,
    index: usize,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    nc: u32,
) -> String {
    let v = resp
        .headers
        .all(header)
        .nth(index)
        .unwrap()
        .value_str()
        .unwrap();
    let ch = Challenge::parse(v).unwrap();
    // A fresh cnonce per answer, as phones make (the nonce count protects each one).
    static CNONCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let cnonce = format!(
        "{:08x}",
        CNONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    auth::respond(&ch, method, uri, user, password, &cnonce, nc)
        .unwrap()
        .to_string()
}

fn send(h: &mut Harness, phone: &Phone, text: &str) -> Message {
    if phone.transport == "TCP" {
        let mut flow = Harness::flow(phone.addr);
        flow.transport = Transport::Tcp;
        flow.connection = Some(super::super::ConnectionId(9));
        h.recv_bytes(flow, Bytes::from(text.replace('\n', "\r\n")));
    } else {
        h.recv_from(phone.addr, text);
    }
    h.last_sent().clone()
}

/// REGISTER, answer the 401 with the SHA-256 challenge, return the final response.
fn register(
    h: &mut Harness,
    phone: &mut Phone,
    contacts: &[&str],
    expires: Option<u32>,
) -> Message {
    let text = phone.register_text(contacts, expires, None);
    let r = send(h, phone, &text);
    assert_eq!(r.status(), Some(401));
    let a = answer(
        &r,
        &HeaderName::WwwAuthenticate,
        0,
        "REGISTER",
        "sip:kald.test",
        phone.user,
        phone.password,
        1,
    );
    let text = phone.register_text(contacts, expires, Some(&a));
    send(h, phone, &text)
}

fn contacts_of(m: &Message) -> Vec<String> {
    m.headers
        .all(&HeaderName::Contact)
        .map(|h| h.value_str().unwrap().to_owned())
        .collect()
}

fn respond_to(req: &Message, code: u16) -> String {
    String::from_utf8(
        Builder::response_to(&req.headers, code, Some("ph"))
            .build()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[test]
fn challenge_then_register_then_200_with_the_binding() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    let text = phone.register_text(&["<sip:agent7@127.0.0.2:5070>"], None, None);
    let r = send(&mut h, &phone, &text);
    assert_eq!(r.status(), Some(401));
    let challenges: Vec<Challenge> = r
        .headers
        .all(&HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v.value_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        challenges.iter().map(|c| c.algorithm).collect::<Vec<_>>(),
        vec![Algorithm::Sha256, Algorithm::Md5],
        "RFC 8760 §2.4: one header per algorithm, the preferred first"
    );
    assert!(challenges
        .iter()
        .all(|c| c.realm == "kald.test" && c.qop == vec![Qop::Auth] && !c.stale));
    assert!(h.take_events().is_empty());
    let a = answer(
        &r,
        &HeaderName::WwwAuthenticate,
        0,
        "REGISTER",
        "sip:kald.test",
        "agent7",
        "hemmelig",
        1,
    );
    let text = phone.register_text(&["<sip:agent7@127.0.0.2:5070>"], None, Some(&a));
    let ok = send(&mut h, &phone, &text);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        contacts_of(&ok),
        vec!["<sip:agent7@127.0.0.2:5070>;expires=600"]
    );
    let evs = h.take_events();
    let binding = match evs.as_slice() {
        [Event::Registered {
            user,
            binding,
            contact,
            flow,
        }, Event::Reachability {
            user: u2,
            reachable: true,
        }] => {
            assert_eq!((user.as_str(), u2.as_str()), ("agent7", "agent7"));
            assert_eq!(contact, "sip:agent7@127.0.0.2:5070");
            assert_eq!(flow.remote, PHONE.parse().unwrap());
            *binding
        }
        other => panic!("unexpected events {other:?}"),
    };
    let views = h.ep.bindings("agent7");
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].id, binding);
    assert_eq!(views[0].expires_at, h.now + Duration::from_secs(600));
    assert!(views[0].reachable && h.ep.reachable("agent7"));
    assert!(h.ep.bindings("agent8").is_empty());
    // The Allow header names REGISTER now.
    assert_eq!(h.ep.allow(), crate::endpoint::ALLOW_WITH_REGISTER);
}

#[test]
fn the_md5_challenge_works_too() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent8", "andet");
    let text = phone.register_text(&["<sip:agent8@127.0.0.2:5070>"], Some(120), None);
    let r = send(&mut h, &phone, &text);
    let a = answer(
        &r,
        &HeaderName::WwwAuthenticate,
        1,
        "REGISTER",
        "sip:kald.test",
        "agent8",
        "andet",
        1,
    );
    assert!(a.contains("algorithm=MD5"));
    let text = phone.register_text(&["<sip:agent8@127.0.0.2:5070>"], Some(120), Some(&a));
    let ok = send(&mut h, &phone, &text);
    assert_eq!(
        contacts_of(&ok),
        vec!["<sip:agent8@127.0.0.2:5070>;expires=120"]
    );
}

#[test]
fn a_wrong_password_gets_403_and_another_users_aor_too() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "forkert");
    let r = register(&mut h, &mut phone, &["<sip:agent7@127.0.0.2>"], None);
    assert_eq!(r.status(), Some(403));
    // Right password, but registering agent8's address-of-record.
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    let text = phone
        .register_text(&["<sip:x@127.0.0.2>"], None, None)
        .replace("To: <sip:agent7@", "To: <sip:agent8@");
    let r = send(&mut h, &phone, &text);
    let a = answer(
        &r,
        &HeaderName::WwwAuthenticate,
        0,
        "REGISTER",
        "sip:kald.test",
        "agent7",
        "hemmelig",
        1,
    );
    let text = phone
        .register_text(&["<sip:x@127.0.0.2>"], None, Some(&a))
        .replace("To: <sip:agent7@", "To: <sip:agent8@");
    assert_eq!(send(&mut h, &phone, &text).status(), Some(403));
    // An unknown user.
    let mut phone = Phone::new(PHONE, "nobody", "x");
    assert_eq!(
        register(&mut h, &mut phone, &["<sip:x@127.0.0.2>"], None).status(),
        Some(403)
    );
    assert!(h.take_events().is_empty());
    assert!(h.ep.bindings("agent7").is_empty());
}

#[test]
fn five_failures_block_the_source_for_a_minute() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut bad = Phone::new(PHONE, "agent7", "gaet");
    for _ in 0..5 {
        assert_eq!(
            register(&mut h, &mut bad, &["<sip:a@127.0.0.2>"], None).status(),
            Some(403)
        );
        h.now += Duration::from_secs(5);
    }
    // Blocked: even the right password gets 403, and nobody is challenged.
    let mut good = Phone::new(PHONE, "agent7", "hemmelig");
    let text = good.register_text(&["<sip:a@127.0.0.2>"], None, None);
    assert_eq!(send(&mut h, &good, &text).status(), Some(403));
    // Another source is not affected.
    let mut other = Phone::new("127.0.0.3:5070", "agent7", "hemmelig");
    assert_eq!(
        register(&mut h, &mut other, &["<sip:a@127.0.0.3>"], None).status(),
        Some(200)
    );
    // A minute later the source may try again.
    h.now += Duration::from_secs(61);
    assert_eq!(
        register(&mut h, &mut good, &["<sip:a@127.0.0.2>"], None).status(),
        Some(200)
    );
}

#[test]
fn failures_spread_over_more_than_the_window_do_not_block() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut bad = Phone::new(PHONE, "agent7", "gaet");
    for _ in 0..8 {
        assert_eq!(
            register(&mut h, &mut bad, &["<sip:a@127.0.0.2>"], None).status(),
            Some(403)
        );
        h.now += Duration::from_secs(20);
    }
    let mut good = Phone::new(PHONE, "agent7", "hemmelig");
    assert_eq!(
        register(&mut h, &mut good, &["<sip:a@127.0.0.2>"], None).status(),
        Some(200)
    );
}

#[test]
fn a_stale_nonce_gets_stale_true_and_a_replayed_count_a_new_challenge() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    let text = phone.register_text(&["<sip:a@127.0.0.2>"], Some(3600), None);
    let r = send(&mut h, &phone, &text);
    let a = answer(
        &r,
        &HeaderName::WwwAuthenticate,
        0,
        "REGISTER",
        "sip:kald.test",
        "agent7",
        "hemmelig",
        1,
    );
    let text = phone.register_text(&["<sip:a@127.0.0.2>"], Some(3600), Some(&a));
    assert_eq!(send(&mut h, &phone, &text).status(), Some(200));
    // The same nonce count again is a replay.
    let text = phone.register_text(&["<sip:a@127.0.0.2>"], Some(3600), Some(&a));
    let r = send(&mut h, &phone, &text);
    assert_eq!(r.status(), Some(401));
    // A higher count on the same nonce is fine.
    let a2 = answer(
        &r,
        &HeaderName::WwwAuthenticate,
        0,
        "REGISTER",
        "sip:kald.test",
        "agent7",
        "hemmelig",
        1,
    );
    let text = phone.register_text(&["<sip:a@127.0.0.2>"], Some(3600), Some(&a2));
    assert_eq!(send(&mut h, &phone, &text).status(), Some(200));
    // Past the nonce's lifetime: stale=true.
    h.now += Duration::from_secs(301);
    let a3 = answer(
        &r,
        &HeaderName::WwwAuthenticate,
        0,
        "REGISTER",
        "sip:kald.test",
        "agent7",
        "hemmelig",
        2,
    );
    let text = phone.register_text(&["<sip:a@127.0.0.2>"], Some(3600), Some(&a3));
    let r = send(&mut h, &phone, &text);
    assert_eq!(r.status(), Some(401));
    let ch = Challenge::parse(r.header_str(&HeaderName::WwwAuthenticate).unwrap()).unwrap();
    assert!(ch.stale);
}

#[test]
fn bindings_expire_with_time() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    let ok = register(
        &mut h,
        &mut phone,
        &["<sip:agent7@127.0.0.2:5070>"],
        Some(120),
    );
    assert_eq!(
        contacts_of(&ok),
        vec!["<sip:agent7@127.0.0.2:5070>;expires=120"]
    );
    let id = h.ep.bindings("agent7")[0].id;
    h.take_events();
    h.run_until(Duration::from_secs(119));
    assert!(h.take_events().is_empty());
    h.run_until(Duration::from_secs(121));
    let at: Vec<_> = h.events.drain(..).collect();
    assert_eq!(
        at,
        vec![
            (
                Duration::from_secs(120),
                Event::Unregistered {
                    user: "agent7".into(),
                    binding: id,
                    reason: UnregisterReason::Expired
                }
            ),
            (
                Duration::from_secs(120),
                Event::Reachability {
                    user: "agent7".into(),
                    reachable: false
                }
            ),
        ]
    );
    assert!(h.ep.bindings("agent7").is_empty());
}

#[test]
fn a_refresh_moves_the_expiry_and_a_long_request_is_shortened() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    register(&mut h, &mut phone, &["<sip:a@127.0.0.2>"], Some(100));
    h.run_until(Duration::from_secs(90));
    let ok = register(&mut h, &mut phone, &["<sip:a@127.0.0.2>"], Some(99_999));
    assert_eq!(contacts_of(&ok), vec!["<sip:a@127.0.0.2>;expires=3600"]);
    h.take_events();
    h.run_until(Duration::from_secs(3689));
    assert!(
        h.take_events().is_empty(),
        "the refresh replaced the old expiry"
    );
    h.run_until(Duration::from_secs(3691));
    assert!(matches!(
        h.take_events().as_slice(),
        [
            Event::Unregistered {
                reason: UnregisterReason::Expired,
                ..
            },
            _
        ]
    ));
}

#[test]
fn unregister_one_contact_then_all_with_star() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    let ok = register(
        &mut h,
        &mut phone,
        &[
            "<sip:a@127.0.0.2:5070>",
            "<sip:b@127.0.0.2:5072>;expires=300",
            "<sip:c@127.0.0.2:5074>",
        ],
        None,
    );
    assert_eq!(
        contacts_of(&ok),
        vec![
            "<sip:a@127.0.0.2:5070>;expires=600",
            "<sip:b@127.0.0.2:5072>;expires=300",
            "<sip:c@127.0.0.2:5074>;expires=600"
        ]
    );
    let evs = h.take_events();
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, Event::Registered { .. }))
            .count(),
        3
    );
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, Event::Reachability { .. }))
            .count(),
        1
    );
    // expires=0 removes one.
    let ok = register(
        &mut h,
        &mut phone,
        &["<sip:b@127.0.0.2:5072>;expires=0"],
        None,
    );
    assert_eq!(
        contacts_of(&ok),
        vec![
            "<sip:a@127.0.0.2:5070>;expires=600",
            "<sip:c@127.0.0.2:5074>;expires=600"
        ]
    );
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Unregistered {
            reason: UnregisterReason::Removed,
            ..
        }]
    ));
    // A query (no Contact) lists them.
    let ok = register(&mut h, &mut phone, &[], None);
    assert_eq!(contacts_of(&ok).len(), 2);
    // * with Expires: 0 removes all.
    let ok = register(&mut h, &mut phone, &["*"], Some(0));
    assert_eq!(ok.status(), Some(200));
    assert!(contacts_of(&ok).is_empty());
    let evs = h.take_events();
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert_eq!(
        evs[2],
        Event::Reachability {
            user: "agent7".into(),
            reachable: false
        }
    );
    // * without Expires: 0 is malformed.
    assert_eq!(
        register(&mut h, &mut phone, &["*"], Some(60)).status(),
        Some(400)
    );
}

#[test]
fn too_brief_gets_423_with_min_expires() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    let r = register(&mut h, &mut phone, &["<sip:a@127.0.0.2>"], Some(30));
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header_str(&HeaderName::MinExpires), Some("60"));
    let r = register(
        &mut h,
        &mut phone,
        &["<sip:a@127.0.0.2>;expires=59"],
        Some(600),
    );
    assert_eq!(r.status(), Some(423));
    assert!(h.ep.bindings("agent7").is_empty());
}

#[test]
fn two_phones_of_one_user_and_the_call_id_rule() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut desk = Phone::new(PHONE, "agent7", "hemmelig");
    let mut soft = Phone::new("127.0.0.3:5060", "agent7", "hemmelig");
    register(&mut h, &mut desk, &["<sip:agent7@127.0.0.2:5070>"], None);
    let ok = register(&mut h, &mut soft, &["<sip:agent7@127.0.0.3:5060>"], None);
    assert_eq!(contacts_of(&ok).len(), 2);
    let views = h.ep.bindings("agent7");
    assert_eq!(views.len(), 2);
    assert_eq!(views[1].flow.remote, "127.0.0.3:5060".parse().unwrap());
    // RFC 3261 §10.3 step 7: an older CSeq of the same Call-ID may not change the binding.
    h.run_until(Duration::from_secs(40)); // the old transactions are gone
    desk.cseq = 0;
    let r = register(
        &mut h,
        &mut desk,
        &["<sip:agent7@127.0.0.2:5070>;expires=0"],
        None,
    );
    assert_eq!(r.status(), Some(500));
    assert_eq!(h.ep.bindings("agent7").len(), 2);
    // Another Call-ID may.
    desk.call_id = "another".into();
    let r = register(
        &mut h,
        &mut desk,
        &["<sip:agent7@127.0.0.2:5070>;expires=0"],
        None,
    );
    assert_eq!(r.status(), Some(200));
    assert_eq!(h.ep.bindings("agent7").len(), 1);
    assert!(h.ep.reachable("agent7"));
}

#[test]
fn register_from_outside_the_networks_is_refused() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new("192.0.2.7:5060", "agent7", "hemmelig");
    let text = phone.register_text(&["<sip:a@192.0.2.7>"], None, None);
    let r = send(&mut h, &phone, &text);
    assert_eq!(r.status(), Some(403));
    assert!(!r.headers.contains(&HeaderName::WwwAuthenticate));
    // Without a registrar, REGISTER from a trunk is 405 as before.
    let mut h = Harness::new();
    let mut phone = Phone::new("127.0.0.1:5062", "agent7", "hemmelig");
    let text = phone.register_text(&["<sip:a@127.0.0.1>"], None, None);
    assert_eq!(send(&mut h, &phone, &text).status(), Some(405));
}

#[test]
fn the_binding_flow_is_the_packet_source_not_the_contact() {
    let mut h = Harness::with(config(Duration::ZERO));
    // Behind NAT: the phone thinks it is 10.0.0.5, the packet comes from 127.0.0.1:5099.
    let mut phone = Phone::new("127.0.0.1:5099", "agent7", "hemmelig");
    let ok = register(&mut h, &mut phone, &["<sip:agent7@10.0.0.5:5060>"], None);
    assert_eq!(ok.status(), Some(200));
    let view = h.ep.bindings("agent7").pop().unwrap();
    assert_eq!(view.contact, "sip:agent7@10.0.0.5:5060");
    assert_eq!(view.flow.remote, "127.0.0.1:5099".parse().unwrap());
    h.take_sent();
    h.ep.dial(
        h.now,
        Dial {
            flow: view.flow,
            target: view.contact.clone(),
            to: "<sip:agent7@kald.test>".into(),
            display_name: "Sygedagpenge \"akut\" 3:12".into(),
            from_user: "kald".into(),
            sdp: Bytes::from_static(SDP.as_bytes()),
            credentials: None,
        },
    );
    h.drain();
    let (_, flow, inv) = h.sent.last().unwrap();
    assert_eq!(flow.remote, "127.0.0.1:5099".parse().unwrap());
    assert_eq!(inv.request_uri().unwrap().raw, "sip:agent7@10.0.0.5:5060");
    assert!(inv
        .header_str(&HeaderName::From)
        .unwrap()
        .starts_with(r#""Sygedagpenge \"akut\" 3:12" <sip:kald@"#));
    assert_eq!(
        inv.from().unwrap().display_name,
        Some(r#"Sygedagpenge \"akut\" 3:12"#)
    );
}

#[test]
fn a_tcp_binding_goes_when_its_connection_closes() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    phone.transport = "TCP";
    let ok = register(
        &mut h,
        &mut phone,
        &["<sip:agent7@127.0.0.2:5070;transport=tcp>"],
        None,
    );
    assert_eq!(ok.status(), Some(200));
    let view = h.ep.bindings("agent7").pop().unwrap();
    assert_eq!(view.flow.connection, Some(super::super::ConnectionId(9)));
    h.take_events();
    h.ep.handle_input(
        h.now,
        Input::ConnectionClosed(super::super::ConnectionId(3)),
    );
    h.drain();
    assert!(h.take_events().is_empty(), "another connection");
    h.ep.handle_input(
        h.now,
        Input::ConnectionClosed(super::super::ConnectionId(9)),
    );
    h.drain();
    assert_eq!(
        h.take_events(),
        vec![
            Event::Unregistered {
                user: "agent7".into(),
                binding: view.id,
                reason: UnregisterReason::ConnectionClosed
            },
            Event::Reachability {
                user: "agent7".into(),
                reachable: false
            },
        ]
    );
    assert!(h.ep.bindings("agent7").is_empty());
}

#[test]
fn qualify_sends_options_on_schedule_and_tracks_reachability() {
    let mut h = Harness::with(config(Duration::from_secs(30)));
    let mut phone = Phone::new("127.0.0.1:5099", "agent7", "hemmelig");
    register(
        &mut h,
        &mut phone,
        &["<sip:agent7@10.0.0.5:5060>"],
        Some(3600),
    );
    h.take_events();
    h.take_sent();
    h.run_until(Duration::from_secs(30));
    let (at, flow, opt) = h.sent.last().unwrap().clone();
    assert_eq!(at, Duration::from_secs(30));
    assert_eq!(opt.method(), Some(&Method::Options));
    assert_eq!(flow.remote, "127.0.0.1:5099".parse().unwrap());
    assert_eq!(opt.request_uri().unwrap().raw, "sip:agent7@10.0.0.5:5060");
    // No answer: Timer F (64·T1 = 32 s) makes the agent unreachable at 62 s.
    h.run_until(Duration::from_secs(61));
    assert!(h.take_events().is_empty());
    assert!(h.ep.bindings("agent7")[0].reachable);
    h.run_until(Duration::from_secs(63));
    let at: Vec<_> = h.events.drain(..).collect();
    assert_eq!(
        at,
        vec![(
            Duration::from_secs(62),
            Event::Reachability {
                user: "agent7".into(),
                reachable: false
            }
        )]
    );
    assert!(!h.ep.reachable("agent7"));
    // The tick at 60 s found the OPTIONS in flight and sent none (only its retransmissions
    // went out, Timer E); the one at 90 s sends a new one.
    let mut options: Vec<&str> = h
        .sent
        .iter()
        .filter(|(_, _, m)| m.method() == Some(&Method::Options))
        .map(|(_, _, m)| m.call_id().unwrap())
        .collect();
    options.dedup();
    assert_eq!(options.len(), 1);
    h.take_sent();
    h.run_until(Duration::from_secs(90));
    let opt = h
        .take_sent()
        .into_iter()
        .find(|(_, _, m)| m.method() == Some(&Method::Options))
        .unwrap()
        .2;
    h.recv_from("127.0.0.1:5099", &respond_to(&opt, 200));
    assert_eq!(
        h.take_events(),
        vec![Event::Reachability {
            user: "agent7".into(),
            reachable: true
        }]
    );
    assert!(h.ep.bindings("agent7")[0].reachable);
    // A 404 is an answer too: still reachable, no event.
    h.run_until(Duration::from_secs(120));
    let opt = h.last_sent().clone();
    assert_eq!(opt.method(), Some(&Method::Options));
    h.recv_from("127.0.0.1:5099", &respond_to(&opt, 404));
    assert!(h.take_events().is_empty());
    assert!(h.ep.reachable("agent7"));
}

#[test]
fn removing_a_user_from_the_configuration_removes_its_bindings() {
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new(PHONE, "agent7", "hemmelig");
    register(&mut h, &mut phone, &["<sip:a@127.0.0.2>"], None);
    h.take_events();
    h.ep.set_registrar_users(vec![RegistrarUser::new("agent8", "andet")]);
    h.drain();
    assert!(matches!(
        h.take_events().as_slice(),
        [
            Event::Unregistered {
                reason: UnregisterReason::UserRemoved,
                ..
            },
            Event::Reachability {
                reachable: false,
                ..
            }
        ]
    ));
    assert_eq!(
        register(&mut h, &mut phone, &["<sip:a@127.0.0.2>"], None).status(),
        Some(403)
    );
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let c = config(Duration::ZERO);
    let text = format!("{c:?}");
    assert!(!text.contains("hemmelig"));
    assert!(!text.contains("0123456789abcdef"));
    assert!(text.contains("agent7"));
}

// ---- agents' own calls ----------------------------------------------------------------------

pub(in crate::endpoint) fn agent_invite(
    call_id: &str,
    ruri_user: &str,
    cseq: u32,
    extra: &str,
) -> String {
    format!(
        "INVITE sip:{ruri_user}@kald.test SIP/2.0\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bK-ai{cseq}-{call_id};rport\nMax-Forwards: 70\n\
From: \"Agent 7\" <sip:agent7@kald.test>;tag=ag-{call_id}\nTo: <sip:{ruri_user}@kald.test>\nCall-ID: {call_id}\nCSeq: {cseq} INVITE\n\
Contact: <sip:agent7@127.0.0.2:5070>\n{extra}Content-Type: application/sdp\nContent-Length: {}\n\n{SDP}",
        SDP.len()
    )
}

/// An agent INVITE answered with 407, ACKed, then sent again with credentials.
pub(in crate::endpoint) fn authenticated_invite(
    h: &mut Harness,
    call_id: &str,
    ruri_user: &str,
    extra: &str,
) {
    h.recv_from(PHONE, &agent_invite(call_id, ruri_user, 1, extra));
    let r = h.last_sent().clone();
    assert_eq!(r.status(), Some(407));
    assert_eq!(r.headers.count(&HeaderName::ProxyAuthenticate), 2);
    assert!(h.take_events().is_empty());
    let a = answer(
        &r,
        &HeaderName::ProxyAuthenticate,
        0,
        "INVITE",
        &format!("sip:{ruri_user}@kald.test"),
        "agent7",
        "hemmelig",
        1,
    );
    let extra = format!("{extra}Proxy-Authorization: {a}\n");
    h.recv_from(PHONE, &agent_invite(call_id, ruri_user, 2, &extra));
}

#[test]
fn an_agent_invite_is_challenged_then_offered_with_the_agent() {
    let mut h = Harness::with(config(Duration::ZERO));
    authenticated_invite(&mut h, "ai1", "%2A20", "");
    let evs = h.take_events();
    match evs.as_slice() {
        [Event::Incoming {
            entry_point,
            trunk,
            agent,
            replaces,
            caller,
            offer,
            ..
        }] => {
            assert_eq!(entry_point, "*20");
            assert_eq!(trunk, "");
            assert_eq!(agent.as_deref(), Some("agent7"));
            assert_eq!(*replaces, None);
            assert_eq!(caller.as_deref(), Some("agent7"));
            assert!(offer.is_some());
        }
        other => panic!("expected Incoming, got {other:?}"),
    }
}

#[test]
fn an_agent_invite_with_a_wrong_password_is_refused() {
    let mut h = Harness::with(config(Duration::ZERO));
    h.recv_from(PHONE, &agent_invite("ai2", "agent8", 1, ""));
    let r = h.last_sent().clone();
    let a = answer(
        &r,
        &HeaderName::ProxyAuthenticate,
        0,
        "INVITE",
        "sip:agent8@kald.test",
        "agent7",
        "nej",
        1,
    );
    h.recv_from(
        PHONE,
        &agent_invite("ai2", "agent8", 2, &format!("Proxy-Authorization: {a}\n")),
    );
    assert_eq!(h.last_sent().status(), Some(403));
    assert!(h.take_events().is_empty());
    // A stranger outside both the trunks and the agent networks: 403, no challenge.
    h.recv_from("192.0.2.1:5060", &agent_invite("ai3", "agent8", 1, ""));
    assert_eq!(h.last_sent().status(), Some(403));
    assert!(!h
        .last_sent()
        .headers
        .contains(&HeaderName::ProxyAuthenticate));
}

#[test]
fn trunk_calls_are_not_challenged_and_carry_no_agent() {
    let mut h = Harness::with(config(Duration::ZERO));
    h.recv_from(
        "127.0.0.1:5062",
        &super::super::tests::invite("tr1", "", SDP),
    );
    let evs = h.take_events();
    assert!(
        matches!(evs.as_slice(), [Event::Incoming { agent: None, replaces: None, entry_point, trunk, .. }]
            if entry_point == "hovednummer" && trunk == "carrier"),
        "{evs:?}"
    );
}

#[test]
fn a_registered_phone_inside_a_trunks_network_is_an_agent() {
    // Agents and the carrier on one network (here 127.0.0.1): what comes from a registered
    // phone's address is the agent's, the rest stays the trunk's.
    let mut h = Harness::with(config(Duration::ZERO));
    let mut phone = Phone::new("127.0.0.1:5071", "agent8", "andet");
    let r = register(&mut h, &mut phone, &["<sip:agent8@127.0.0.1:5071>"], None);
    assert_eq!(r.status(), Some(200));
    h.take_events();
    h.recv_from("127.0.0.1:5071", &agent_invite("rp1", "%2A20", 1, ""));
    assert_eq!(
        h.last_sent().status(),
        Some(407),
        "a registered phone's INVITE must be authenticated"
    );
    assert!(h.take_events().is_empty());
    h.recv_from(
        "127.0.0.1:5062",
        &super::super::tests::invite("rp2", "", SDP),
    );
    let evs = h.take_events();
    assert!(
        matches!(evs.as_slice(), [Event::Incoming { agent: None, trunk, .. }] if trunk == "carrier"),
        "{evs:?}"
    );
}

#[test]
fn saved_bindings_are_restored_after_a_restart_and_qualified_first() {
    let mut h = Harness::with(config(Duration::from_secs(30)));
    let mut phone = Phone::new("127.0.0.1:5099", "agent7", "hemmelig");
    register(
        &mut h,
        &mut phone,
        &["<sip:agent7@10.0.0.5:5060>"],
        Some(3600),
    );
    // A TCP phone of agent8: not kept (its connection dies with kald).
    let mut tcp = Phone::new("127.0.0.3:5070", "agent8", "andet");
    tcp.transport = "TCP";
    register(
        &mut h,
        &mut tcp,
        &["<sip:agent8@127.0.0.3:5070;transport=tcp>"],
        None,
    );
    h.run_until(Duration::from_secs(600));
    let saved = h.ep.saved_bindings(h.now);
    assert_eq!(
        saved,
        vec![SavedBinding {
            user: "agent7".into(),
            contact: "sip:agent7@10.0.0.5:5060".into(),
            call_id: phone.call_id.clone(),
            cseq: 2,
            remote: "127.0.0.1:5099".parse().unwrap(),
            local: Harness::flow("127.0.0.1:1").local,
            expires_in: Duration::from_secs(3000),
        }]
    );

    // kald restarts: a new endpoint, agent8 no longer configured for a second saved one.
    let mut h = Harness::with(config(Duration::from_secs(30)));
    let id = h.ep.restore_binding(h.now, &saved[0]).unwrap();
    let mut gone = saved[0].clone();
    gone.user = "agent9".into();
    assert_eq!(h.ep.restore_binding(h.now, &gone), None, "unknown user");
    assert_eq!(
        h.ep.restore_binding(h.now, &saved[0]),
        None,
        "same contact again"
    );
    let mut expired = saved[0].clone();
    expired.contact = "sip:agent7@10.0.0.6".into();
    expired.expires_in = Duration::ZERO;
    assert_eq!(h.ep.restore_binding(h.now, &expired), None, "expired");

    // Registered, but not reachable until the phone answers the OPTIONS sent at once.
    h.drain();
    h.run_until(Duration::ZERO);
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Registered { user, binding, .. }] if user == "agent7" && *binding == id
    ));
    assert!(!h.ep.reachable("agent7"));
    let (at, flow, opt) = h.sent.last().unwrap().clone();
    assert_eq!(at, Duration::ZERO);
    assert_eq!(opt.method(), Some(&Method::Options));
    assert_eq!(flow.remote, "127.0.0.1:5099".parse().unwrap());
    assert_eq!(opt.request_uri().unwrap().raw, "sip:agent7@10.0.0.5:5060");
    h.recv_from("127.0.0.1:5099", &respond_to(&opt, 200));
    assert_eq!(
        h.take_events(),
        vec![Event::Reachability {
            user: "agent7".into(),
            reachable: true
        }]
    );
    // Its expiry carried over; the phone's refresh (same Call-ID, next CSeq) is a refresh.
    assert_eq!(
        h.ep.bindings("agent7")[0].expires_at,
        h.now + Duration::from_secs(3000)
    );
    let r = register(
        &mut h,
        &mut phone,
        &["<sip:agent7@10.0.0.5:5060>"],
        Some(3600),
    );
    assert_eq!(r.status(), Some(200));
    let bindings = h.ep.bindings("agent7");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].expires_at, h.now + Duration::from_secs(3600));
    assert!(h.take_events().is_empty());
}

/// A binding saved before a restart: `user`'s phone at 127.0.0.9, 100 s left.
fn saved_for(user: &str) -> SavedBinding {
    SavedBinding {
        user: user.into(),
        contact: format!("sip:{user}@127.0.0.9:5060"),
        call_id: "old-reg".into(),
        cseq: 7,
        remote: "127.0.0.9:5060".parse().unwrap(),
        local: Harness::flow("127.0.0.1:1").local,
        expires_in: Duration::from_secs(100),
    }
}

#[test]
fn a_restored_binding_whose_phone_is_gone_stays_unreachable() {
    let mut h = Harness::with(config(Duration::from_secs(30)));
    let saved = saved_for("agent7");
    h.ep.restore_binding(h.now, &saved).unwrap();
    // No answer to the OPTIONS: never reachable, no Reachability event; gone at expiry.
    h.run_until(Duration::from_secs(99));
    assert!(!h.ep.reachable("agent7"));
    assert!(h
        .take_events()
        .iter()
        .all(|e| matches!(e, Event::Registered { .. })));
    h.run_until(Duration::from_secs(101));
    assert!(h.ep.bindings("agent7").is_empty());
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Unregistered {
            reason: UnregisterReason::Expired,
            ..
        }]
    ));
}

#[test]
fn without_qualifying_a_restored_binding_is_trusted() {
    let mut h = Harness::with(config(Duration::ZERO));
    let saved = saved_for("agent8");
    h.ep.restore_binding(h.now, &saved).unwrap();
    h.drain();
    h.run_until(Duration::ZERO);
    assert!(h.ep.reachable("agent8"));
    let events = h.take_events();
    assert!(
        matches!(
            events.as_slice(),
            [
                Event::Registered { .. },
                Event::Reachability {
                    reachable: true,
                    ..
                }
            ]
        ),
        "{events:?}"
    );
    assert!(h.sent.is_empty(), "no OPTIONS");
}
