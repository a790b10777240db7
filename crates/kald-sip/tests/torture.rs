//! Every RFC 4475 / RFC 5118 torture message through the whole endpoint, in-process.
//!
//! The messages name hosts such as 192.0.2.x that no test may send to, so they are fed to the
//! sans-IO endpoint and its outputs inspected; nothing touches a socket. Each message is
//! expected to give exactly the handling `index.tsv` names for a UAS (kald is never a proxy):
//! a response code, a call handed to the call handling, or a silent drop.
#![allow(clippy::disallowed_methods)] // one real instant as the simulated clock's origin
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use kald_sip::endpoint::{
    Endpoint, EndpointConfig, Event, Flow, Input, NumberRoute, Output, Transport, Trunk,
};
use kald_sip::Message;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    Call,
    Dropped,
}
use Outcome::*;

/// What kald does with each message. Where index.tsv allows several handlings, the UAS one;
/// REGISTER gets 405 until the registrar exists (kald is not a registrar for trunks).
const EXPECTED: &[(&str, Outcome)] = &[
    // wsinv parses (folding, LWS, compact forms), but its To carries a tag, so it belongs to a
    // dialog kald does not have: RFC 3261 §12.2.2 says 481.
    ("3.1.1.1-wsinv.dat", Status(481)),
    ("3.1.1.2-intmeth.dat", Status(501)),
    ("3.1.1.3-esc01.dat", Call),
    ("3.1.1.4-escnull.dat", Status(405)),
    ("3.1.1.5-esc02.dat", Status(501)),
    ("3.1.1.6-lwsdisp.dat", Status(200)),
    ("3.1.1.7-longreq.dat", Call),
    ("3.1.1.8-dblreq.dat", Status(405)),
    ("3.1.1.9-semiuri.dat", Status(200)),
    ("3.1.1.10-transports.dat", Status(200)),
    ("3.1.1.11-mpart01.dat", Status(405)),
    ("3.1.1.12-unreason.dat", Dropped),
    ("3.1.1.13-noreason.dat", Dropped),
    ("3.1.2.1-badinv01.dat", Status(400)),
    ("3.1.2.2-clerr.dat", Status(400)),
    ("3.1.2.3-ncl.dat", Status(400)),
    ("3.1.2.4-scalar02.dat", Status(400)),
    ("3.1.2.5-scalarlg.dat", Dropped),
    ("3.1.2.6-quotbal.dat", Status(400)),
    ("3.1.2.7-ltgtruri.dat", Status(400)),
    ("3.1.2.8-lwsruri.dat", Status(400)),
    ("3.1.2.9-lwsstart.dat", Status(400)),
    ("3.1.2.10-trws.dat", Status(400)),
    ("3.1.2.11-escruri.dat", Status(400)),
    ("3.1.2.12-baddate.dat", Status(400)),
    ("3.1.2.13-regbadct.dat", Status(400)),
    ("3.1.2.14-badaspec.dat", Status(400)),
    ("3.1.2.15-baddn.dat", Status(400)),
    ("3.1.2.16-badvers.dat", Status(505)),
    ("3.1.2.17-mismatch01.dat", Status(400)),
    ("3.1.2.18-mismatch02.dat", Status(501)),
    ("3.1.2.19-bigcode.dat", Dropped),
    ("3.2.1-badbranch.dat", Status(200)),
    ("3.3.1-insuf.dat", Status(400)),
    ("3.3.2-unkscm.dat", Status(416)),
    ("3.3.3-novelsc.dat", Status(416)),
    ("3.3.4-unksm2.dat", Status(405)),
    ("3.3.5-bext01.dat", Status(420)),
    ("3.3.6-invut.dat", Status(415)),
    ("3.3.7-regaut01.dat", Status(405)),
    ("3.3.8-multi01.dat", Status(400)),
    ("3.3.9-mcl01.dat", Status(400)),
    ("3.3.10-bcast.dat", Dropped),
    ("3.3.11-zeromf.dat", Status(200)),
    ("3.3.12-cparam01.dat", Status(405)),
    ("3.3.13-cparam02.dat", Status(405)),
    ("3.3.14-regescrt.dat", Status(405)),
    ("3.3.15-sdp01.dat", Status(406)),
    ("3.4.1-inv2543.dat", Call),
    ("5118-4.1-ipv6-good.dat", Status(405)),
    ("5118-4.2-ipv6-bad.dat", Status(400)),
    ("5118-4.3-port-ambiguous.dat", Status(405)),
    ("5118-4.4-port-unambiguous.dat", Status(405)),
    ("5118-4.5-via-received-param-with-delim.dat", Status(481)),
    ("5118-4.5-via-received-param-no-delim.dat", Status(200)),
    ("5118-4.6-ipv6-in-sdp.dat", Call),
    ("5118-4.7-mult-ip-in-header.dat", Status(481)),
    ("5118-4.8-mult-ip-in-sdp.dat", Call),
    ("5118-4.9-ipv4-mapped-ipv6.dat", Call),
    ("5118-4.10-ipv6-bug-abnf-3-colons.dat", Status(200)),
    ("5118-4.10-ipv6-correct-abnf-2-colons.dat", Status(200)),
];

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/sip")
}

/// The flow every torture message arrives on: from a documentation address, fed in-process.
fn sender() -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: "192.0.2.1:5060".parse().unwrap(),
        local: "192.0.2.200:5060".parse().unwrap(),
        connection: None,
    }
}

fn open_endpoint() -> Endpoint {
    let trunk = Trunk {
        name: "torture".into(),
        networks: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
        numbers: vec![NumberRoute::new("*", "hovednummer")],
    };
    Endpoint::new(EndpointConfig {
        trunks: vec![trunk],
        ..EndpointConfig::default()
    })
}

fn run(file: &str) -> (Outcome, Vec<Message>) {
    let data = std::fs::read(corpus().join(file)).unwrap();
    let mut ep = open_endpoint();
    let flow = sender();
    ep.handle_input(
        Instant::now(),
        Input::Receive {
            flow,
            data: Bytes::from(data),
        },
    );
    let mut sent = vec![];
    let mut call = false;
    while let Some(out) = ep.poll_output() {
        match out {
            Output::Transmit(t) => {
                assert_eq!(
                    t.flow.remote, flow.remote,
                    "{file}: replies go to the packet's source"
                );
                sent.push(
                    Message::parse(t.data)
                        .unwrap_or_else(|e| panic!("{file}: kald sent an unparseable reply: {e}")),
                );
            }
            Output::Event(Event::Incoming { .. }) => call = true,
            Output::Event(e) => panic!("{file}: unexpected event {e:?}"),
        }
    }
    let outcome = match (call, sent.first()) {
        (true, None) => Call,
        (true, Some(m)) => panic!("{file}: a call and a reply {:?}", m.status()),
        (false, Some(m)) => Status(m.status().unwrap()),
        (false, None) => Dropped,
    };
    (outcome, sent)
}

#[test]
fn every_torture_message_gets_its_expected_handling() {
    let index = std::fs::read_to_string(corpus().join("index.tsv")).unwrap();
    let files: Vec<&str> = index
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(files.len(), 61);
    assert_eq!(
        EXPECTED.len(),
        files.len(),
        "every corpus file has an expectation"
    );
    let mut wrong = vec![];
    for (file, expected) in EXPECTED {
        assert!(files.contains(file), "{file} is not in index.tsv");
        let (got, sent) = run(file);
        if &got != expected {
            wrong.push(format!("{file}: expected {expected:?}, got {got:?}"));
        }
        for reply in &sent {
            if let Some(code @ (400 | 505)) = reply.status() {
                // A 400 says why, without echoing input.
                let reason = match &reply.start {
                    kald_sip::StartLine::Response { reason, .. } => {
                        String::from_utf8_lossy(reason).into_owned()
                    }
                    kald_sip::StartLine::Request { .. } => unreachable!(),
                };
                assert!(
                    reason != "Bad Request" || code == 505,
                    "{file}: 400 without a specific reason"
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        EXPECTED.len(),
        wrong.join("\n")
    );
}

#[test]
fn valid_invites_reach_the_call_handling_with_their_offer() {
    for file in [
        "3.1.1.3-esc01.dat",
        "3.1.1.7-longreq.dat",
        "5118-4.6-ipv6-in-sdp.dat",
        "3.4.1-inv2543.dat",
    ] {
        let data = std::fs::read(corpus().join(file)).unwrap();
        let body_len = Message::parse(Bytes::from(data.clone()))
            .unwrap()
            .body
            .len();
        let mut ep = open_endpoint();
        let flow = sender();
        ep.handle_input(
            Instant::now(),
            Input::Receive {
                flow,
                data: Bytes::from(data),
            },
        );
        let offer = std::iter::from_fn(|| ep.poll_output()).find_map(|o| match o {
            Output::Event(Event::Incoming {
                offer, entry_point, ..
            }) => {
                assert_eq!(entry_point, "hovednummer");
                offer
            }
            _ => None,
        });
        assert_eq!(offer.map(|o| o.len()), Some(body_len), "{file}");
    }
}

#[test]
fn every_prefix_of_every_message_is_handled_without_panic() {
    let mut ep = open_endpoint();
    let flow = sender();
    let now = Instant::now();
    for (file, _) in EXPECTED {
        let data = std::fs::read(corpus().join(file)).unwrap();
        for n in 0..=data.len() {
            ep.handle_input(
                now,
                Input::Receive {
                    flow,
                    data: Bytes::copy_from_slice(&data[..n]),
                },
            );
            while ep.poll_output().is_some() {}
        }
    }
    assert!(ep.stats().received > 10_000);
}
