//! No personal data in traces: a tracing layer records every event and span field the SIP
//! endpoint emits (at TRACE level) while calls with phone numbers and CPR-like digits run,
//! malformed messages carry them, and errors are answered; none of those strings may appear.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kald_sip::endpoint::{Endpoint, EndpointConfig, Event, Flow, Input, Output, Transport};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Strings that must never reach a trace: the caller's number (plain and E.164) and a CPR
/// number (plain and dashed) carried in headers and bodies.
const SECRETS: &[&str] = &["4512345678", "12345678", "0101901235", "010190-1235"];

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<String>>);

struct Collect<'a>(&'a mut String);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut line = String::new();
        event.record(&mut Collect(&mut line));
        self.0.lock().unwrap().push_str(&line);
        self.0.lock().unwrap().push('\n');
    }
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let mut line = String::new();
        attrs.record(&mut Collect(&mut line));
        self.0.lock().unwrap().push_str(&line);
    }
}

fn call_messages() -> Vec<String> {
    let invite = "INVITE sip:+4512345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-p1\r\n\
From: \"0101901235\" <sip:+4512345678@127.0.0.1>;tag=a\r\nTo: <sip:+4512345678@127.0.0.1>\r\nCall-ID: 010190-1235@x\r\n\
CSeq: 1 INVITE\r\nContact: <sip:12345678@127.0.0.1:5062>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    vec![
        invite.to_owned(),
        // The same with faults in every header that holds personal data.
        invite.replace("From: \"0101901235\"", "From: \"0101901235"),
        invite.replace("CSeq: 1 INVITE", "CSeq: 0101901235 INVITE"),
        invite.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia"),
        invite.replace("INVITE sip", "X0101901235 sip"),
        invite.replace("Call-ID: 010190-1235@x\r\n", ""),
        "INFO sip:kald@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-p2\r\nFrom: <sip:+4512345678@127.0.0.1>;tag=a\r\n\
To: <sip:x@127.0.0.1>;tag=nosuch\r\nCall-ID: 010190-1235@x\r\nCSeq: 2 INFO\r\nContent-Type: application/dtmf-relay\r\n\
Content-Length: 24\r\n\r\nSignal=0101901235\r\nx=1\r\n"
            .to_owned(),
    ]
}

#[test]
fn no_phone_number_or_cpr_in_any_trace() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(
        recorder
            .clone()
            .with_filter(tracing::level_filters::LevelFilter::TRACE),
    );
    tracing::subscriber::with_default(subscriber, || {
        let mut ep = Endpoint::new(EndpointConfig::default());
        let mut now = Instant::now();
        let local = "127.0.0.1:5060".parse().unwrap();
        for (i, m) in call_messages().iter().enumerate() {
            // Loopback is a trunk; 192.0.2.1 is not (refusals are logged too).
            let remote = if i % 2 == 0 {
                "127.0.0.1:5062"
            } else {
                "192.0.2.1:5060"
            }
            .parse()
            .unwrap();
            let flow = Flow {
                transport: Transport::Udp,
                remote,
                local,
                connection: None,
            };
            ep.handle_input(
                now,
                Input::Receive {
                    flow,
                    data: Bytes::from(m.clone()),
                },
            );
            while let Some(out) = ep.poll_output() {
                if let Output::Event(Event::Incoming { call, .. }) = out {
                    ep.answer(now, call, Bytes::from_static(b"v=0\r\n"));
                }
            }
        }
        for _ in 0..100 {
            now += Duration::from_secs(1);
            ep.handle_timeout(now);
            while ep.poll_output().is_some() {}
        }
    });
    let traces = recorder.0.lock().unwrap().clone();
    assert!(
        !traces.is_empty(),
        "the endpoint traced nothing, so this test would prove nothing"
    );
    for s in SECRETS {
        assert!(!traces.contains(s), "a trace holds {s}:\n{traces}");
    }
}
