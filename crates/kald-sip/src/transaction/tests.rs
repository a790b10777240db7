//! Transaction tests on a simulated clock: a base `Instant` plus offsets, every instant
//! asserted exactly. "Total loss" means no input reaches the machine but its own timers.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::TimerTable;
use super::*;
use crate::message::{HeaderName, Message, Method, StartLine};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// The simulated epoch. The only clock read in these tests: `Instant` has no constructor.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The common surface of the four machines, so one driver runs them all.
trait Machine {
    fn poll_output(&mut self) -> Option<Output>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn state(&self) -> State;
}

macro_rules! machine {
    ($($t:ty),*) => {$(
        impl Machine for $t {
            fn poll_output(&mut self) -> Option<Output> { <$t>::poll_output(self) }
            fn poll_timeout(&self) -> Option<Instant> { <$t>::poll_timeout(self) }
            fn handle_timeout(&mut self, now: Instant) { <$t>::handle_timeout(self, now) }
            fn state(&self) -> State { <$t>::state(self) }
        }
    )*};
}
machine!(ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite);

/// Every output queued now.
fn drain(m: &mut impl Machine) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

/// Drive only the machine's timers (total loss) until the next deadline would pass
/// `t0 + until`, recording each output with its offset from `t0`. Bounded against livelock.
fn run(m: &mut impl Machine, t0: Instant, until: Duration) -> Vec<(Duration, Output)> {
    let mut log = Vec::new();
    for _ in 0..1000 {
        if m.state() == State::Terminated {
            assert_eq!(m.poll_timeout(), None, "no timer after Terminated");
        }
        let Some(at) = m.poll_timeout() else {
            return log;
        };
        if at > t0 + until {
            return log;
        }
        m.handle_timeout(at);
        log.extend(drain(m).into_iter().map(|o| (at - t0, o)));
    }
    panic!("livelock: more than 1000 wake-ups");
}

/// The offsets of every `Transmit` in a log.
fn transmit_times(log: &[(Duration, Output)]) -> Vec<Duration> {
    log.iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(_)))
        .map(|(t, _)| *t)
        .collect()
}

/// The log without `Transmit`s.
fn events(log: &[(Duration, Output)]) -> Vec<(Duration, Output)> {
    log.iter()
        .filter(|(_, o)| !matches!(o, Output::Transmit(_)))
        .cloned()
        .collect()
}

fn parse(text: &str) -> Message {
    Message::parse(Bytes::copy_from_slice(text.as_bytes())).unwrap()
}

fn bytes_of(m: &Message) -> Bytes {
    m.to_bytes()
}

fn status_of(o: &Output) -> Option<u16> {
    match o {
        Output::Response(m) => m.status(),
        _ => None,
    }
}

fn transmitted(o: &Output) -> Message {
    match o {
        Output::Transmit(b) => Message::parse(b.clone()).unwrap(),
        other => panic!("expected Transmit, got {other:?}"),
    }
}

/// A request built from text: `method` with branch `branch`, plus `extra` header lines.
struct Req {
    method: &'static str,
    branch: &'static str,
    transport: &'static str,
    extra: &'static str,
    cseq: u32,
    to_tag: Option<&'static str>,
}

impl Req {
    fn new(method: &'static str) -> Self {
        Self {
            method,
            branch: "z9hG4bK-tx-1",
            transport: "UDP",
            extra: "",
            cseq: 1,
            to_tag: None,
        }
    }

    fn branch(mut self, branch: &'static str) -> Self {
        self.branch = branch;
        self
    }

    fn transport(mut self, t: &'static str) -> Self {
        self.transport = t;
        self
    }

    fn extra(mut self, extra: &'static str) -> Self {
        self.extra = extra;
        self
    }

    fn tag_to(mut self, tag: &'static str) -> Self {
        self.to_tag = Some(tag);
        self
    }

    fn text(&self) -> String {
        let to_tag = self.to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{m} sip:70101010@kald.example SIP/2.0\r\n\
             Via: SIP/2.0/{tp} 192.0.2.10:5060;branch={b}\r\n\
             {extra}\
             Max-Forwards: 70\r\n\
             From: \"Borger\" <sip:+4500000000@carrier.example>;tag=from-1\r\n\
             To: <sip:70101010@kald.example>{to_tag}\r\n\
             Call-ID: call-1@192.0.2.10\r\n\
             CSeq: {n} {m}\r\n\
             Contact: <sip:+4500000000@192.0.2.10:5060>\r\n\
             Content-Length: 0\r\n\r\n",
            m = self.method,
            tp = self.transport,
            b = self.branch,
            extra = self.extra,
            n = self.cseq,
        )
    }

    fn build(&self) -> Message {
        parse(&self.text())
    }
}

/// A response to `req` with `code`; `to_tag` is added to To. Copies every Via, From, To,
/// Call-ID and CSeq line as a UAS would.
fn response(req: &Message, code: u16, to_tag: Option<&str>) -> Message {
    let mut text = format!("SIP/2.0 {code} Reason\r\n");
    for h in &req.headers {
        let keep = matches!(
            h.name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        );
        if keep {
            let value = h.value_str().unwrap();
            let tag = match (&h.name, to_tag) {
                (HeaderName::To, Some(t)) => format!(";tag={t}"),
                _ => String::new(),
            };
            text.push_str(&format!("{}: {value}{tag}\r\n", h.name.as_str()));
        }
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    parse(&text)
}

fn client_invite(t0: Instant, req: &Message, reliable: bool) -> ClientInvite {
    let mut tx =
        ClientInvite::new(t0, req, bytes_of(req), reliable, TimerConfig::default()).unwrap();
    assert_eq!(drain(&mut tx), vec![Output::Transmit(bytes_of(req))]);
    tx
}

fn client_non_invite(t0: Instant, req: &Message, reliable: bool) -> ClientNonInvite {
    let mut tx =
        ClientNonInvite::new(t0, req, bytes_of(req), reliable, TimerConfig::default()).unwrap();
    assert_eq!(drain(&mut tx), vec![Output::Transmit(bytes_of(req))]);
    tx
}

fn server_invite(t0: Instant, req: &Message, reliable: bool) -> ServerInvite {
    let mut tx = ServerInvite::new(t0, req, reliable, TimerConfig::default()).unwrap();
    assert_eq!(drain(&mut tx), vec![]);
    tx
}

fn server_non_invite(t0: Instant, req: &Message, reliable: bool) -> ServerNonInvite {
    let mut tx = ServerNonInvite::new(t0, req, reliable, TimerConfig::default()).unwrap();
    assert_eq!(drain(&mut tx), vec![]);
    tx
}

/// `Transmit` of a response as the TU would print it.
fn sent(m: &Message) -> Output {
    Output::Transmit(bytes_of(m))
}

// ---------------------------------------------------------------------------------------
// Timer table and configuration
// ---------------------------------------------------------------------------------------

#[test]
fn timer_table_minimum_stop_and_expiry() {
    let t0 = epoch();
    let mut table = TimerTable::default();
    assert_eq!(table.next_timeout(), None);
    table.set(Timer::B, t0 + secs(32.0));
    table.set_after(Timer::A, t0, ms(500));
    assert_eq!(table.next_timeout(), Some(t0 + ms(500)));
    assert!(!table.is_expired(Timer::A, t0 + ms(499)));
    assert!(table.is_expired(Timer::A, t0 + ms(500)));
    assert!(table.take_expired(Timer::A, t0 + ms(500)));
    assert!(!table.take_expired(Timer::A, t0 + ms(500)), "fires once");
    assert_eq!(table.next_timeout(), Some(t0 + secs(32.0)));
    table.stop(Timer::B);
    assert_eq!(table.next_timeout(), None);
    table.set(Timer::M, t0);
    table.set(Timer::Trying, t0);
    table.stop_all();
    assert_eq!(table.get(Timer::M), None);
    assert_eq!(table.get(Timer::Trying), None);
}

#[test]
fn default_timer_values_are_rfc_3261_table_4() {
    let c = TimerConfig::default();
    assert_eq!((c.t1, c.t2, c.t4), (ms(500), secs(4.0), secs(5.0)));
    assert_eq!(c.t1x64(), secs(32.0));
    assert_eq!(c.timer_d(), secs(32.0));
    let slow = TimerConfig { t1: secs(1.0), ..c };
    assert_eq!(slow.timer_d(), secs(64.0), "D never shorter than 64·T1");
}

// ---------------------------------------------------------------------------------------
// INVITE client
// ---------------------------------------------------------------------------------------

#[test]
fn client_invite_total_loss_udp_retransmits_at_doubling_intervals_then_timer_b() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = client_invite(t0, &req, false);
    assert_eq!(tx.state(), State::Calling);
    assert_eq!(tx.timer(Timer::A), Some(t0 + ms(500)));
    assert_eq!(tx.timer(Timer::B), Some(t0 + secs(32.0)));
    let log = run(&mut tx, t0, secs(100.0));
    // The first send (0 s) came out of the constructor.
    assert_eq!(
        transmit_times(&log),
        [0.5, 1.5, 3.5, 7.5, 15.5, 31.5].map(secs).to_vec()
    );
    assert!(log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(_)))
        .all(|(_, o)| *o == Output::Transmit(bytes_of(&req))));
    assert_eq!(
        events(&log),
        vec![
            (secs(32.0), Output::Timeout),
            (secs(32.0), Output::Terminated)
        ]
    );
    assert_eq!(tx.state(), State::Terminated);
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn client_invite_total_loss_tcp_sends_once_then_timer_b() {
    let t0 = epoch();
    let req = Req::new("INVITE").transport("TCP").build();
    let mut tx = client_invite(t0, &req, true);
    assert_eq!(tx.timer(Timer::A), None);
    let log = run(&mut tx, t0, secs(100.0));
    assert_eq!(
        log,
        vec![
            (secs(32.0), Output::Timeout),
            (secs(32.0), Output::Terminated)
        ]
    );
}

#[test]
fn client_invite_provisional_stops_retransmissions_and_timer_b() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = client_invite(t0, &req, false);
    run(&mut tx, t0, ms(500)); // one retransmission at 0.5 s
    tx.handle_response(t0 + ms(700), &response(&req, 100, None));
    let out = drain(&mut tx);
    assert_eq!(out.iter().map(status_of).collect::<Vec<_>>(), [Some(100)]);
    assert_eq!(tx.state(), State::Proceeding);
    assert_eq!(tx.poll_timeout(), None, "no timer runs while ringing");
    // Every further provisional goes to the TU (RFC 3261 §17.1.1.2).
    tx.handle_response(t0 + secs(2.0), &response(&req, 180, Some("uas-1")));
    tx.handle_response(t0 + secs(2.1), &response(&req, 180, Some("uas-1")));
    let out = drain(&mut tx);
    assert_eq!(
        out.iter().map(status_of).collect::<Vec<_>>(),
        [Some(180), Some(180)]
    );
    assert_eq!(run(&mut tx, t0, secs(100.0)), vec![]);
}

#[test]
fn client_invite_non_2xx_is_acked_and_timer_d_absorbs_retransmissions() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = client_invite(t0, &req, false);
    tx.handle_response(t0 + ms(100), &response(&req, 180, Some("uas-1")));
    drain(&mut tx);
    let busy = response(&req, 486, Some("uas-1"));
    tx.handle_response(t0 + secs(3.0), &busy);
    let out = drain(&mut tx);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], Output::Response(busy.clone()));
    let ack = transmitted(&out[1]);
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(tx.state(), State::Completed);
    assert_eq!(tx.timer(Timer::D), Some(t0 + secs(35.0)));
    // A retransmitted 486 is ACKed again and not passed up.
    tx.handle_response(t0 + secs(4.0), &busy);
    assert_eq!(drain(&mut tx), vec![out[1].clone()]);
    // 1xx and 2xx in Completed are stray: absorbed.
    tx.handle_response(t0 + secs(4.1), &response(&req, 180, Some("uas-1")));
    tx.handle_response(t0 + secs(4.2), &response(&req, 200, Some("uas-1")));
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(
        run(&mut tx, t0, secs(100.0)),
        vec![(secs(35.0), Output::Terminated)]
    );
    tx.handle_response(t0 + secs(40.0), &busy);
    assert_eq!(drain(&mut tx), vec![], "nothing after Terminated");
}

#[test]
fn client_invite_ack_for_486_has_the_rfc_3261_17_1_1_3_headers() {
    let t0 = epoch();
    let req = Req::new("INVITE")
        .extra(
            "Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK-lower\r\n\
             Route: <sip:edge1.example;lr>\r\n\
             Route: <sip:edge2.example;lr>, <sip:edge3.example;lr>\r\n\
             Content-Type: application/sdp\r\n",
        )
        .build();
    let mut tx = client_invite(t0, &req, false);
    tx.handle_response(t0 + ms(100), &response(&req, 486, Some("uas-tag")));
    let out = drain(&mut tx);
    let ack = transmitted(&out[1]);
    assert_eq!(
        ack.start,
        StartLine::Request {
            method: Method::Ack,
            uri: Bytes::from_static(b"sip:70101010@kald.example")
        }
    );
    assert_eq!(ack.via_count(), 1, "only the INVITE's top Via");
    assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bK-tx-1"));
    assert_eq!(ack.to().unwrap().tag(), Some("uas-tag"));
    assert_eq!(ack.from().unwrap().tag(), Some("from-1"));
    assert_eq!(ack.call_id().unwrap(), "call-1@192.0.2.10");
    let cseq = ack.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Ack));
    let routes: Vec<&str> = ack
        .headers
        .all(&HeaderName::Route)
        .map(|h| h.value_str().unwrap())
        .collect();
    assert_eq!(
        routes,
        [
            "<sip:edge1.example;lr>",
            "<sip:edge2.example;lr>, <sip:edge3.example;lr>"
        ]
    );
    assert_eq!(ack.number(HeaderName::MaxForwards, 255).unwrap(), Some(70));
    assert_eq!(ack.number(HeaderName::ContentLength, 10).unwrap(), Some(0));
    assert!(ack.body.is_empty());
    assert!(!ack.headers.contains(&HeaderName::Contact));
    assert!(!ack.headers.contains(&HeaderName::ContentType));
    assert_eq!(ack.headers.len(), 9);
}

#[test]
fn client_invite_ack_without_to_in_response_falls_back_to_the_invite_to() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = client_invite(t0, &req, false);
    let broken = parse(
        "SIP/2.0 503 Unavailable\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-tx-1\r\n\
         CSeq: 1 INVITE\r\n\r\n",
    );
    tx.handle_response(t0 + ms(10), &broken);
    let out = drain(&mut tx);
    let ack = transmitted(&out[1]);
    assert_eq!(ack.to().unwrap().tag(), None);
    assert_eq!(ack.to().unwrap().uri.raw, "sip:70101010@kald.example");
}

#[test]
fn client_invite_timer_d_is_zero_on_tcp() {
    let t0 = epoch();
    let req = Req::new("INVITE").transport("TCP").build();
    let mut tx = client_invite(t0, &req, true);
    tx.handle_response(t0 + secs(1.0), &response(&req, 603, Some("x")));
    let out = drain(&mut tx);
    assert_eq!(status_of(&out[0]), Some(603));
    assert_eq!(transmitted(&out[1]).method(), Some(&Method::Ack));
    assert_eq!(out[2], Output::Terminated);
    assert_eq!(out.len(), 3);
    assert_eq!(tx.state(), State::Terminated);
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn client_invite_2xx_moves_to_accepted_and_timer_m() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = client_invite(t0, &req, false);
    let ok = response(&req, 200, Some("fork-a"));
    tx.handle_response(t0 + secs(1.0), &ok);
    assert_eq!(drain(&mut tx), vec![Output::Response(ok.clone())]);
    assert_eq!(tx.state(), State::Accepted);
    assert_eq!(tx.timer(Timer::A), None);
    assert_eq!(tx.timer(Timer::B), None);
    assert_eq!(tx.poll_timeout(), Some(t0 + secs(33.0)));
    // Retransmissions and other forks' 2xx go to the TU (the dialog layer ACKs them).
    let other = response(&req, 200, Some("fork-b"));
    tx.handle_response(t0 + secs(1.5), &ok);
    tx.handle_response(t0 + secs(2.0), &other);
    assert_eq!(
        drain(&mut tx),
        vec![Output::Response(ok), Output::Response(other)]
    );
    // Provisionals and non-2xx finals in Accepted are absorbed; no ACK from the transaction.
    tx.handle_response(t0 + secs(2.5), &response(&req, 180, Some("fork-c")));
    tx.handle_response(t0 + secs(2.6), &response(&req, 486, Some("fork-c")));
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(
        run(&mut tx, t0, secs(100.0)),
        vec![(secs(33.0), Output::Terminated)]
    );
}

#[test]
fn client_invite_2xx_on_tcp_still_waits_timer_m() {
    let t0 = epoch();
    let req = Req::new("INVITE").transport("TCP").build();
    let mut tx = client_invite(t0, &req, true);
    tx.handle_response(t0, &response(&req, 200, Some("a")));
    drain(&mut tx);
    assert_eq!(tx.timer(Timer::M), Some(t0 + secs(32.0)));
}

#[test]
fn client_invite_spurious_and_early_timeouts_are_no_ops() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = client_invite(t0, &req, false);
    tx.handle_timeout(t0);
    tx.handle_timeout(t0 + ms(499));
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(tx.poll_timeout(), Some(t0 + ms(500)));
    assert_eq!(tx.state(), State::Calling);
    // A late wake-up fires each expired timer once and re-arms from `now`.
    tx.handle_timeout(t0 + secs(2.0));
    assert_eq!(drain(&mut tx), vec![Output::Transmit(bytes_of(&req))]);
    assert_eq!(tx.timer(Timer::A), Some(t0 + secs(3.0)));
}

#[test]
fn client_invite_ignores_requests_given_as_responses() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = client_invite(t0, &req, false);
    tx.handle_response(t0 + ms(1), &req);
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(tx.state(), State::Calling);
}

#[test]
fn client_constructors_refuse_the_wrong_message() {
    let t0 = epoch();
    let c = TimerConfig::default();
    let options = Req::new("OPTIONS").build();
    let invite = Req::new("INVITE").build();
    let ack = Req::new("ACK").build();
    let resp = response(&invite, 200, None);
    let e = ClientInvite::new(t0, &options, bytes_of(&options), false, c);
    assert!(matches!(e, Err(TransactionError::WrongMethod)));
    let e = ClientInvite::new(t0, &resp, bytes_of(&resp), false, c);
    assert!(matches!(e, Err(TransactionError::NotARequest)));
    let e = ClientNonInvite::new(t0, &invite, bytes_of(&invite), false, c);
    assert!(matches!(e, Err(TransactionError::WrongMethod)));
    let e = ClientNonInvite::new(t0, &ack, bytes_of(&ack), false, c);
    assert!(matches!(e, Err(TransactionError::WrongMethod)));
    // An INVITE without Call-ID cannot be ACKed: refused, no panic.
    let no_call_id = parse(
        "INVITE sip:a@kald.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-x\r\n\
         From: <sip:b@example.net>;tag=1\r\nTo: <sip:a@kald.example>\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    let e = ClientInvite::new(t0, &no_call_id, bytes_of(&no_call_id), false, c);
    let Err(TransactionError::Header(err)) = e else {
        panic!("expected a header error");
    };
    assert_eq!(err.header, Some(HeaderName::CallId));
    let e = e_cseq_mismatch(t0, c);
    assert!(matches!(e, Err(TransactionError::Header(_))));
}

fn e_cseq_mismatch(t0: Instant, c: TimerConfig) -> Result<ClientInvite, TransactionError> {
    let m = parse(
        "INVITE sip:a@kald.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-x\r\n\
         From: <sip:b@example.net>;tag=1\r\nTo: <sip:a@kald.example>\r\n\
         Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    );
    ClientInvite::new(t0, &m, bytes_of(&m), false, c)
}

// ---------------------------------------------------------------------------------------
// Non-INVITE client
// ---------------------------------------------------------------------------------------

#[test]
fn client_non_invite_total_loss_udp_caps_timer_e_at_t2_then_timer_f() {
    let t0 = epoch();
    let req = Req::new("OPTIONS").build();
    let mut tx = client_non_invite(t0, &req, false);
    assert_eq!(tx.state(), State::Trying);
    let log = run(&mut tx, t0, secs(100.0));
    assert_eq!(
        transmit_times(&log),
        [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
            .map(secs)
            .to_vec()
    );
    assert_eq!(
        events(&log),
        vec![
            (secs(32.0), Output::Timeout),
            (secs(32.0), Output::Terminated)
        ]
    );
}

#[test]
fn client_non_invite_proceeding_retransmits_every_t2() {
    let t0 = epoch();
    let req = Req::new("BYE").tag_to("uas-1").build();
    let mut tx = client_non_invite(t0, &req, false);
    let log = run(&mut tx, t0, ms(700));
    assert_eq!(transmit_times(&log), vec![ms(500)]);
    tx.handle_response(t0 + ms(700), &response(&req, 100, None));
    assert_eq!(
        drain(&mut tx).iter().map(status_of).collect::<Vec<_>>(),
        [Some(100)]
    );
    assert_eq!(tx.state(), State::Proceeding);
    // Timer E keeps its running deadline (1.5 s), then every T2.
    let log = run(&mut tx, t0, secs(100.0));
    assert_eq!(
        transmit_times(&log),
        [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
            .map(secs)
            .to_vec()
    );
    assert_eq!(
        events(&log),
        vec![
            (secs(32.0), Output::Timeout),
            (secs(32.0), Output::Terminated)
        ]
    );
}

#[test]
fn client_non_invite_final_then_timer_k_absorbs_retransmissions() {
    let t0 = epoch();
    let req = Req::new("REGISTER").build();
    let mut tx = client_non_invite(t0, &req, false);
    tx.handle_response(t0 + ms(100), &response(&req, 180, None));
    let ok = response(&req, 200, Some("r"));
    tx.handle_response(t0 + ms(200), &ok);
    assert_eq!(
        drain(&mut tx).iter().map(status_of).collect::<Vec<_>>(),
        [Some(180), Some(200)]
    );
    assert_eq!(tx.state(), State::Completed);
    assert_eq!(tx.timer(Timer::E), None);
    assert_eq!(tx.timer(Timer::F), None);
    tx.handle_response(t0 + ms(900), &ok);
    tx.handle_response(t0 + ms(950), &response(&req, 100, None));
    assert_eq!(drain(&mut tx), vec![], "retransmissions are absorbed");
    assert_eq!(
        run(&mut tx, t0, secs(100.0)),
        vec![(ms(5200), Output::Terminated)]
    );
}

#[test]
fn client_non_invite_tcp_has_no_timer_e_and_zero_timer_k() {
    let t0 = epoch();
    let req = Req::new("OPTIONS").transport("TCP").build();
    let mut tx = client_non_invite(t0, &req, true);
    assert_eq!(tx.timer(Timer::E), None);
    let log = run(&mut tx, t0, secs(100.0));
    assert_eq!(
        log,
        vec![
            (secs(32.0), Output::Timeout),
            (secs(32.0), Output::Terminated)
        ]
    );

    let mut tx = client_non_invite(t0, &req, true);
    tx.handle_response(t0 + secs(1.0), &response(&req, 404, Some("x")));
    let out = drain(&mut tx);
    assert_eq!(status_of(&out[0]), Some(404));
    assert_eq!(out[1..], [Output::Terminated]);
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn client_non_invite_spurious_timeout_is_a_no_op() {
    let t0 = epoch();
    let req = Req::new("OPTIONS").build();
    let mut tx = client_non_invite(t0, &req, false);
    tx.handle_timeout(t0 + ms(250));
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(tx.poll_timeout(), Some(t0 + ms(500)));
}

// ---------------------------------------------------------------------------------------
// INVITE server
// ---------------------------------------------------------------------------------------

#[test]
fn server_invite_sends_100_trying_after_200_ms() {
    let t0 = epoch();
    let req = Req::new("INVITE")
        .extra("Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK-lower;received=198.51.100.2\r\nTimestamp: 54\r\n")
        .build();
    let mut tx = server_invite(t0, &req, false);
    assert_eq!(tx.state(), State::Proceeding);
    assert_eq!(tx.poll_timeout(), Some(t0 + ms(200)));
    tx.handle_timeout(t0 + ms(199));
    assert_eq!(drain(&mut tx), vec![]);
    let log = run(&mut tx, t0, secs(100.0));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, ms(200));
    let trying = transmitted(&log[0].1);
    assert_eq!(trying.status(), Some(100));
    let vias: Vec<_> = trying.vias().map(|v| v.unwrap().branch()).collect();
    assert_eq!(vias, [Some("z9hG4bK-tx-1"), Some("z9hG4bK-lower")]);
    assert_eq!(trying.from().unwrap().tag(), Some("from-1"));
    assert_eq!(trying.to().unwrap().tag(), None);
    assert_eq!(trying.call_id().unwrap(), "call-1@192.0.2.10");
    assert_eq!(trying.cseq().unwrap().method, Method::Invite);
    let ts = HeaderName::from_bytes(b"Timestamp");
    assert_eq!(trying.header_str(&ts), Some("54"));
    assert_eq!(
        trying.number(HeaderName::ContentLength, 10).unwrap(),
        Some(0)
    );
    assert!(!trying.headers.contains(&HeaderName::Contact));
    assert!(!trying.headers.contains(&HeaderName::MaxForwards));
    assert_eq!(tx.poll_timeout(), None);
    // A retransmitted INVITE gets the 100 again and is not passed up.
    tx.handle_request(t0 + ms(500), &req);
    assert_eq!(drain(&mut tx), vec![log[0].1.clone()]);
    assert_eq!(tx.state(), State::Proceeding);
}

#[test]
fn server_invite_sends_no_100_when_the_tu_sent_180() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = server_invite(t0, &req, false);
    let ringing = response(&req, 180, Some("kald-1"));
    tx.send_response(t0 + ms(100), &ringing, bytes_of(&ringing))
        .unwrap();
    assert_eq!(drain(&mut tx), vec![sent(&ringing)]);
    assert_eq!(tx.timer(Timer::Trying), None);
    assert_eq!(run(&mut tx, t0, secs(100.0)), vec![]);
    // A retransmitted INVITE gets the latest provisional.
    let progress = response(&req, 183, Some("kald-1"));
    tx.send_response(t0 + ms(300), &progress, bytes_of(&progress))
        .unwrap();
    drain(&mut tx);
    tx.handle_request(t0 + ms(500), &req);
    assert_eq!(drain(&mut tx), vec![sent(&progress)]);
}

#[test]
fn server_invite_retransmission_before_any_provisional_is_absorbed() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = server_invite(t0, &req, false);
    tx.handle_request(t0 + ms(50), &req);
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(tx.poll_timeout(), Some(t0 + ms(200)));
}

#[test]
fn server_invite_non_2xx_udp_timer_g_doubles_to_t2_then_timer_h() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = server_invite(t0, &req, false);
    let busy = response(&req, 486, Some("kald-1"));
    tx.send_response(t0, &busy, bytes_of(&busy)).unwrap();
    assert_eq!(drain(&mut tx), vec![sent(&busy)]);
    assert_eq!(tx.state(), State::Completed);
    assert_eq!(tx.timer(Timer::Trying), None);
    let log = run(&mut tx, t0, secs(100.0));
    assert_eq!(
        transmit_times(&log),
        [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
            .map(secs)
            .to_vec()
    );
    assert!(log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(_)))
        .all(|(_, o)| *o == sent(&busy)));
    assert_eq!(
        events(&log),
        vec![
            (secs(32.0), Output::Timeout),
            (secs(32.0), Output::Terminated)
        ]
    );
}

#[test]
fn server_invite_ack_confirms_and_timer_i_absorbs() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = server_invite(t0, &req, false);
    run(&mut tx, t0, ms(200)); // 100 Trying
    let busy = response(&req, 486, Some("kald-1"));
    tx.send_response(t0 + secs(1.0), &busy, bytes_of(&busy))
        .unwrap();
    drain(&mut tx);
    // A retransmitted INVITE in Completed gets the final again.
    tx.handle_request(t0 + secs(1.2), &req);
    assert_eq!(drain(&mut tx), vec![sent(&busy)]);
    let ack = Req::new("ACK").tag_to("kald-1").build();
    tx.handle_request(t0 + secs(1.3), &ack);
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(tx.state(), State::Confirmed);
    assert_eq!(tx.timer(Timer::G), None);
    assert_eq!(tx.timer(Timer::H), None);
    assert_eq!(tx.poll_timeout(), Some(t0 + secs(6.3)));
    // ACK and INVITE retransmissions in Confirmed are absorbed.
    tx.handle_request(t0 + secs(1.4), &ack);
    tx.handle_request(t0 + secs(1.5), &req);
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(
        run(&mut tx, t0, secs(100.0)),
        vec![(secs(6.3), Output::Terminated)]
    );
}

#[test]
fn server_invite_tcp_has_no_timer_g_and_zero_timer_i_but_keeps_timer_h() {
    let t0 = epoch();
    let req = Req::new("INVITE").transport("TCP").build();
    let busy = response(&req, 480, Some("kald-1"));
    let mut tx = server_invite(t0, &req, true);
    tx.send_response(t0, &busy, bytes_of(&busy)).unwrap();
    drain(&mut tx);
    assert_eq!(tx.timer(Timer::G), None);
    assert_eq!(
        run(&mut tx, t0, secs(100.0)),
        vec![
            (secs(32.0), Output::Timeout),
            (secs(32.0), Output::Terminated)
        ]
    );

    let mut tx = server_invite(t0, &req, true);
    tx.send_response(t0, &busy, bytes_of(&busy)).unwrap();
    drain(&mut tx);
    let ack = Req::new("ACK").transport("TCP").tag_to("kald-1").build();
    tx.handle_request(t0 + secs(1.0), &ack);
    assert_eq!(drain(&mut tx), vec![Output::Terminated]);
    assert_eq!(tx.state(), State::Terminated);
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn server_invite_tcp_still_sends_100_trying() {
    let t0 = epoch();
    let req = Req::new("INVITE").transport("TCP").build();
    let mut tx = server_invite(t0, &req, true);
    let log = run(&mut tx, t0, secs(1.0));
    assert_eq!(transmit_times(&log), vec![ms(200)]);
}

#[test]
fn server_invite_2xx_moves_to_accepted_and_absorbs_retransmitted_invites() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = server_invite(t0, &req, false);
    let ok = response(&req, 200, Some("kald-1"));
    tx.send_response(t0 + secs(2.0), &ok, bytes_of(&ok))
        .unwrap();
    assert_eq!(drain(&mut tx), vec![sent(&ok)]);
    assert_eq!(tx.state(), State::Accepted);
    assert_eq!(tx.poll_timeout(), Some(t0 + secs(34.0)));
    // A retransmitted INVITE produces nothing: no response, no new call.
    tx.handle_request(t0 + secs(2.5), &req);
    assert_eq!(drain(&mut tx), vec![]);
    // The 2xx ACK is the dialog's: ignored here.
    tx.handle_request(t0 + secs(2.6), &Req::new("ACK").tag_to("kald-1").build());
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(tx.state(), State::Accepted);
    // The dialog layer's 2xx retransmissions pass through.
    tx.send_response(t0 + secs(2.5), &ok, bytes_of(&ok))
        .unwrap();
    assert_eq!(drain(&mut tx), vec![sent(&ok)]);
    let late = response(&req, 486, Some("kald-1"));
    assert!(matches!(
        tx.send_response(t0 + secs(3.0), &late, bytes_of(&late)),
        Err(TransactionError::WrongState(State::Accepted))
    ));
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(
        run(&mut tx, t0, secs(100.0)),
        vec![(secs(34.0), Output::Terminated)]
    );
}

#[test]
fn server_invite_timer_l_is_64_t1_on_tcp_too() {
    let t0 = epoch();
    let req = Req::new("INVITE").transport("TCP").build();
    let mut tx = server_invite(t0, &req, true);
    let ok = response(&req, 200, Some("k"));
    tx.send_response(t0, &ok, bytes_of(&ok)).unwrap();
    drain(&mut tx);
    assert_eq!(tx.timer(Timer::L), Some(t0 + secs(32.0)));
}

#[test]
fn server_invite_refuses_responses_out_of_state() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = server_invite(t0, &req, false);
    assert!(matches!(
        tx.send_response(t0, &req, bytes_of(&req)),
        Err(TransactionError::NotAResponse)
    ));
    let busy = response(&req, 486, Some("k"));
    tx.send_response(t0, &busy, bytes_of(&busy)).unwrap();
    drain(&mut tx);
    let ringing = response(&req, 180, Some("k"));
    for r in [&ringing, &busy] {
        assert!(matches!(
            tx.send_response(t0, r, bytes_of(r)),
            Err(TransactionError::WrongState(State::Completed))
        ));
    }
    assert_eq!(drain(&mut tx), vec![]);
    let c = TimerConfig::default();
    let options = Req::new("OPTIONS").build();
    assert!(matches!(
        ServerInvite::new(t0, &options, false, c),
        Err(TransactionError::WrongMethod)
    ));
    assert!(matches!(
        ServerInvite::new(t0, &busy, false, c),
        Err(TransactionError::NotARequest)
    ));
}

#[test]
fn server_invite_spurious_timeout_is_a_no_op() {
    let t0 = epoch();
    let req = Req::new("INVITE").build();
    let mut tx = server_invite(t0, &req, false);
    let busy = response(&req, 500, Some("k"));
    tx.send_response(t0, &busy, bytes_of(&busy)).unwrap();
    drain(&mut tx);
    tx.handle_timeout(t0 + ms(499));
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(tx.poll_timeout(), Some(t0 + ms(500)));
}

// ---------------------------------------------------------------------------------------
// Non-INVITE server
// ---------------------------------------------------------------------------------------

#[test]
fn server_non_invite_trying_proceeding_completed_timer_j() {
    let t0 = epoch();
    let req = Req::new("BYE").tag_to("kald-1").build();
    let mut tx = server_non_invite(t0, &req, false);
    assert_eq!(tx.state(), State::Trying);
    assert_eq!(tx.poll_timeout(), None);
    // Trying: retransmissions are discarded.
    tx.handle_request(t0 + ms(500), &req);
    assert_eq!(drain(&mut tx), vec![]);
    let trying = response(&req, 100, None);
    tx.send_response(t0 + ms(600), &trying, bytes_of(&trying))
        .unwrap();
    assert_eq!(drain(&mut tx), vec![sent(&trying)]);
    assert_eq!(tx.state(), State::Proceeding);
    tx.handle_request(t0 + ms(1500), &req);
    assert_eq!(drain(&mut tx), vec![sent(&trying)]);
    let ok = response(&req, 200, None);
    tx.send_response(t0 + secs(2.0), &ok, bytes_of(&ok))
        .unwrap();
    assert_eq!(drain(&mut tx), vec![sent(&ok)]);
    assert_eq!(tx.state(), State::Completed);
    tx.handle_request(t0 + secs(3.5), &req);
    assert_eq!(drain(&mut tx), vec![sent(&ok)]);
    // Further responses from the TU are refused.
    let err = response(&req, 500, None);
    assert!(matches!(
        tx.send_response(t0 + secs(4.0), &err, bytes_of(&err)),
        Err(TransactionError::WrongState(State::Completed))
    ));
    assert_eq!(drain(&mut tx), vec![]);
    assert_eq!(
        run(&mut tx, t0, secs(100.0)),
        vec![(secs(34.0), Output::Terminated)]
    );
    tx.handle_request(t0 + secs(40.0), &req);
    assert_eq!(drain(&mut tx), vec![]);
}

#[test]
fn server_non_invite_final_from_trying_and_zero_timer_j_on_tcp() {
    let t0 = epoch();
    let req = Req::new("OPTIONS").transport("TCP").build();
    let mut tx = server_non_invite(t0, &req, true);
    let ok = response(&req, 200, Some("k"));
    tx.send_response(t0 + ms(10), &ok, bytes_of(&ok)).unwrap();
    assert_eq!(drain(&mut tx), vec![sent(&ok), Output::Terminated]);
    assert_eq!(tx.poll_timeout(), None);

    let req = Req::new("OPTIONS").build();
    let mut tx = server_non_invite(t0, &req, false);
    tx.send_response(t0 + ms(10), &ok, bytes_of(&ok)).unwrap();
    drain(&mut tx);
    assert_eq!(tx.timer(Timer::J), Some(t0 + ms(32_010)));
    tx.handle_timeout(t0 + ms(32_009));
    assert_eq!(drain(&mut tx), vec![], "early wake-up is a no-op");
}

#[test]
fn server_non_invite_refuses_invite_and_ack() {
    let t0 = epoch();
    let c = TimerConfig::default();
    for m in ["INVITE", "ACK"] {
        let req = Req::new(m).build();
        assert!(matches!(
            ServerNonInvite::new(t0, &req, false, c),
            Err(TransactionError::WrongMethod)
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

#[test]
fn server_key_rfc3261_maps_ack_to_invite_and_keeps_cancel_apart() {
    let invite = Req::new("INVITE").build();
    let retransmission = Req::new("INVITE").build();
    let ack = Req::new("ACK").tag_to("kald-1").build();
    let cancel = Req::new("CANCEL").build();
    let other = Req::new("INVITE").branch("z9hG4bK-tx-2").build();
    let k_invite = ServerKey::from_request(&invite).unwrap();
    assert!(k_invite.is_rfc3261());
    assert_eq!(k_invite.method(), &Method::Invite);
    assert_eq!(k_invite, ServerKey::from_request(&retransmission).unwrap());
    assert_eq!(k_invite, ServerKey::from_request(&ack).unwrap());
    let k_cancel = ServerKey::from_request(&cancel).unwrap();
    assert_ne!(k_invite, k_cancel);
    assert_eq!(matches_invite_for_cancel(&k_cancel), Some(k_invite.clone()));
    assert_eq!(matches_invite_for_cancel(&k_invite), None);
    assert_eq!(k_cancel.invite_for_cancel(), k_invite);
    assert_eq!(k_invite.invite_for_cancel(), k_invite);
    assert_ne!(k_invite, ServerKey::from_request(&other).unwrap());
}

#[test]
fn server_key_sent_by_host_is_case_insensitive_and_port_counts() {
    let a = parse(
        "OPTIONS sip:a@kald.example SIP/2.0\r\nVia: SIP/2.0/UDP PBX.Example.DK:5060;branch=z9hG4bK-9\r\n\
         From: <sip:b@example.net>;tag=1\r\nTo: <sip:a@kald.example>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
    );
    let b = parse(
        "OPTIONS sip:a@kald.example SIP/2.0\r\nVia: SIP/2.0/UDP pbx.example.dk:5060;branch=z9hG4bK-9\r\n\
         From: <sip:b@example.net>;tag=1\r\nTo: <sip:a@kald.example>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
    );
    let c = parse(
        "OPTIONS sip:a@kald.example SIP/2.0\r\nVia: SIP/2.0/UDP pbx.example.dk:5070;branch=z9hG4bK-9\r\n\
         From: <sip:b@example.net>;tag=1\r\nTo: <sip:a@kald.example>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
    );
    let ka = ServerKey::from_request(&a).unwrap();
    assert_eq!(ka, ServerKey::from_request(&b).unwrap());
    assert_ne!(ka, ServerKey::from_request(&c).unwrap());
}

#[test]
fn server_key_rfc2543_fallback() {
    // No magic cookie: match on Request-URI, tags, Call-ID, CSeq number, top Via, method.
    let invite = Req::new("INVITE").branch("old-1").build();
    let k_invite = ServerKey::from_request(&invite).unwrap();
    assert!(!k_invite.is_rfc3261());
    assert_eq!(k_invite, ServerKey::from_request(&invite.clone()).unwrap());
    // The ACK for a non-2xx carries the response's To tag and still matches.
    let ack = Req::new("ACK").branch("old-1").tag_to("kald-1").build();
    assert_eq!(k_invite, ServerKey::from_request(&ack).unwrap());
    // A bare cookie is not an RFC 3261 branch either.
    let bare = Req::new("INVITE").branch("z9hG4bK").build();
    assert!(!ServerKey::from_request(&bare).unwrap().is_rfc3261());
    // CANCEL finds its INVITE.
    let cancel = Req::new("CANCEL").branch("old-1").build();
    let k_cancel = ServerKey::from_request(&cancel).unwrap();
    assert_ne!(k_cancel, k_invite);
    assert_eq!(matches_invite_for_cancel(&k_cancel), Some(k_invite.clone()));
    // Non-INVITE requests keep the To tag in the key.
    let bye1 = Req::new("BYE").branch("old-2").tag_to("t1").build();
    let bye2 = Req::new("BYE").branch("old-2").tag_to("t2").build();
    assert_ne!(
        ServerKey::from_request(&bye1).unwrap(),
        ServerKey::from_request(&bye2).unwrap()
    );
    // A different top Via is a different transaction.
    let moved = Req::new("INVITE").branch("old-9").build();
    assert_ne!(k_invite, ServerKey::from_request(&moved).unwrap());
}

#[test]
fn client_key_of_request_equals_key_of_its_responses() {
    let invite = Req::new("INVITE").build();
    let k = ClientKey::from_request(&invite).unwrap();
    assert_eq!(k.method(), &Method::Invite);
    assert_eq!(
        k,
        ClientKey::from_response(&response(&invite, 180, Some("a"))).unwrap()
    );
    let cancel = Req::new("CANCEL").build();
    let k_cancel = ClientKey::from_request(&cancel).unwrap();
    assert_ne!(k, k_cancel);
    assert_eq!(
        k_cancel,
        ClientKey::from_response(&response(&cancel, 200, None)).unwrap()
    );
    let ack = Req::new("ACK").build();
    assert!(matches!(
        ClientKey::from_request(&ack),
        Err(TransactionError::WrongMethod)
    ));
    assert!(matches!(
        ClientKey::from_response(&invite),
        Err(TransactionError::NotAResponse)
    ));
}

#[test]
fn keys_of_broken_messages_are_errors_not_panics() {
    let no_via = parse(
        "OPTIONS sip:a@kald.example SIP/2.0\r\nFrom: <sip:b@example.net>;tag=1\r\n\
         To: <sip:a@kald.example>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
    );
    let Err(TransactionError::Header(e)) = ServerKey::from_request(&no_via) else {
        panic!("expected a Via error");
    };
    assert_eq!(e.header, Some(HeaderName::Via));
    assert!(ClientKey::from_request(&no_via).is_err());
    let no_branch =
        parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1\r\nCSeq: 1 OPTIONS\r\n\r\n");
    assert!(ClientKey::from_response(&no_branch).is_err());
    let no_cseq = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\r\n");
    assert!(ClientKey::from_response(&no_cseq).is_err());
    // RFC 2543 key without From: an error.
    let old = parse(
        "OPTIONS sip:a@kald.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=1\r\n\
         To: <sip:a@kald.example>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
    );
    assert!(ServerKey::from_request(&old).is_err());
}

// ---------------------------------------------------------------------------------------
// Every input in every state
// ---------------------------------------------------------------------------------------

/// One step of an exhaustive walk: an input, or "advance to the next deadline".
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Client: a response with this code. Server: the TU sends a response with this code.
    Code(u16),
    /// Server: the request again. Client: the request given as a response (ignored).
    Request,
    /// Server: an ACK. Client: nothing.
    Ack,
    /// Jump to `poll_timeout` and handle it.
    Advance,
    /// A spurious wake-up 1 ms after the last input.
    Spurious,
}

const STEPS: [Step; 8] = [
    Step::Code(100),
    Step::Code(180),
    Step::Code(200),
    Step::Code(486),
    Step::Request,
    Step::Ack,
    Step::Advance,
    Step::Spurious,
];

/// Check the invariants of one output batch: `Terminated` comes once, last, with no timer
/// left, and nothing ever follows it.
fn check_batch(out: &[Output], state: State, wake: Option<Instant>, done: &mut bool) {
    for (i, o) in out.iter().enumerate() {
        assert!(!*done, "output after Terminated");
        if *o == Output::Terminated {
            assert_eq!(i + 1, out.len(), "Terminated is last");
            *done = true;
        }
    }
    assert_eq!(*done, state == State::Terminated);
    if *done {
        assert_eq!(wake, None);
    }
}

/// Every sequence of `STEPS` up to `depth` long, depth-first.
fn sequences(depth: usize) -> Vec<Vec<Step>> {
    let mut all = vec![vec![]];
    let mut frontier = vec![vec![]];
    for _ in 0..depth {
        let mut next = Vec::new();
        for seq in &frontier {
            for s in STEPS {
                let mut longer: Vec<Step> = seq.clone();
                longer.push(s);
                next.push(longer);
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

#[test]
fn every_input_sequence_keeps_the_invariants() {
    let t0 = epoch();
    for reliable in [false, true] {
        let invite = Req::new("INVITE").build();
        let bye = Req::new("BYE").tag_to("k").build();
        let ack = Req::new("ACK").tag_to("k").build();
        let c = TimerConfig::default();
        let mut seen = std::collections::HashSet::new();
        for seq in sequences(4) {
            let mut ci = ClientInvite::new(t0, &invite, bytes_of(&invite), reliable, c).unwrap();
            let mut cn = ClientNonInvite::new(t0, &bye, bytes_of(&bye), reliable, c).unwrap();
            let mut si = ServerInvite::new(t0, &invite, reliable, c).unwrap();
            let mut sn = ServerNonInvite::new(t0, &bye, reliable, c).unwrap();
            let mut done = [false; 4];
            let mut now = t0;
            for step in seq {
                let wake = [
                    ci.poll_timeout(),
                    cn.poll_timeout(),
                    si.poll_timeout(),
                    sn.poll_timeout(),
                ];
                match step {
                    Step::Code(code) => {
                        let ri = response(&invite, code, Some("k"));
                        let rn = response(&bye, code, None);
                        ci.handle_response(now, &ri);
                        cn.handle_response(now, &rn);
                        let _ = si.send_response(now, &ri, bytes_of(&ri));
                        let _ = sn.send_response(now, &rn, bytes_of(&rn));
                    }
                    Step::Request => {
                        ci.handle_response(now, &invite);
                        cn.handle_response(now, &bye);
                        si.handle_request(now, &invite);
                        sn.handle_request(now, &bye);
                    }
                    Step::Ack => {
                        si.handle_request(now, &ack);
                        sn.handle_request(now, &ack);
                    }
                    Step::Advance => {
                        if let Some(next) = wake.iter().flatten().min() {
                            now = now.max(*next);
                        }
                        ci.handle_timeout(now);
                        cn.handle_timeout(now);
                        si.handle_timeout(now);
                        sn.handle_timeout(now);
                    }
                    Step::Spurious => {
                        now += ms(1);
                        for (w, i) in wake.iter().zip(0..) {
                            if w.is_some_and(|w| w > now) {
                                match i {
                                    0 => ci.handle_timeout(now),
                                    1 => cn.handle_timeout(now),
                                    2 => si.handle_timeout(now),
                                    _ => sn.handle_timeout(now),
                                }
                            }
                        }
                    }
                }
                check_batch(&drain(&mut ci), ci.state(), ci.poll_timeout(), &mut done[0]);
                check_batch(&drain(&mut cn), cn.state(), cn.poll_timeout(), &mut done[1]);
                check_batch(&drain(&mut si), si.state(), si.poll_timeout(), &mut done[2]);
                check_batch(&drain(&mut sn), sn.state(), sn.poll_timeout(), &mut done[3]);
                seen.extend([
                    ("ci", ci.state()),
                    ("cn", cn.state()),
                    ("si", si.state()),
                    ("sn", sn.state()),
                ]);
            }
        }
        // Every state of every machine was reached.
        let expected: &[(&str, &[State])] = &[
            (
                "ci",
                &[
                    State::Calling,
                    State::Proceeding,
                    State::Completed,
                    State::Accepted,
                ],
            ),
            ("cn", &[State::Trying, State::Proceeding, State::Completed]),
            (
                "si",
                &[State::Proceeding, State::Completed, State::Accepted],
            ),
            ("sn", &[State::Trying, State::Proceeding, State::Completed]),
        ];
        for (m, states) in expected {
            for s in *states {
                let skip = reliable && matches!((*m, s), ("ci" | "cn" | "sn", State::Completed));
                assert!(skip || seen.contains(&(*m, *s)), "{m} never reached {s:?}");
            }
            assert!(
                seen.contains(&(*m, State::Terminated)),
                "{m} never terminated"
            );
        }
        if !reliable {
            assert!(seen.contains(&("si", State::Confirmed)));
        }
    }
}

// ---------------------------------------------------------------------------------------
// No personal data in Debug output
// ---------------------------------------------------------------------------------------

#[test]
fn debug_output_carries_no_message_content() {
    let t0 = epoch();
    let req = Req::new("INVITE").branch("old-1").build();
    let mut tx = client_invite(t0, &req, false);
    tx.handle_response(t0, &response(&req, 486, Some("x")));
    let printed = format!(
        "{:?} {:?} {:?} {:?}",
        drain(&mut tx),
        tx,
        ServerKey::from_request(&req).unwrap(),
        ClientKey::from_request(&Req::new("INVITE").build()).unwrap(),
    );
    for secret in ["4500000000", "192.0.2.10", "call-1", "from-1", "old-1"] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
    assert!(printed.contains("Response(486)"));
}
