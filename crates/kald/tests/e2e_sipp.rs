//! End-to-end tests: the real `kald serve` on 127.0.0.1, called by SIPp (Debian package
//! sip-tester) with the scenarios in tests/sipp/. Each test starts its own kald (SIP port
//! chosen by the kernel, a media port range of its own), runs one call, checks that SIPp
//! saw the call succeed and what kald logged about it, then stops kald with SIGTERM and
//! checks that it exits with 0.
//!
//! Most tests run the flow tests/sipp/flows/hovednummer.toml (welcome; digits until # or
//! 5 s of silence; goodbye; kald hangs up), so what a call did shows in kald's `call ended`
//! line: `path`, and `field_lengths` = `digits:N` for N digits (the digits are never
//! logged). `real_flow_reaches_the_queue` runs ivr-flows/hovednummer.toml itself.
//!
//! Everything stays on loopback: kald binds its SIP and RTP sockets to 127.0.0.1, so even
//! the RFC 4475 torture messages that name other hosts cannot make it send elsewhere.
//!
//! Without `sipp` on PATH the SIPp tests fail (they do not skip): run ./tests/run.sh.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{Kald, LogLine, Sipp};

/// How long kald may take to exit after SIGTERM when no call is up.
const EXIT: Duration = Duration::from_secs(5);

/// The welcome (1.8 s) + 5 s without a key + goodbye (2.1 s): a call that ends sooner
/// after it came in was ended by `#` (or by the shutdown), not by silence.
const SILENCE_ENDS_AFTER: Duration = Duration::from_millis(8400);

/// kald's `call ended` line of `call`, with the time from the call's `incoming call` line.
fn ended(kald: &mut Kald, call: &str) -> (LogLine, Duration) {
    let incoming = kald.call_line("incoming call", call);
    let ended = kald.call_line("call ended", call);
    let took = ended.at - incoming.at;
    (ended, took)
}

/// The call went through the test flow: `digits` digits, then `#`, goodbye and kald's BYE.
fn assert_digits_then_pound(kald: &mut Kald, call: &str, digits: usize) {
    let (line, took) = ended(kald, call);
    let want_fields = format!("digits:{digits}");
    assert_eq!(
        (
            line.str("reason"),
            line.str("path"),
            line.str("field_lengths"),
            line.str("ended_by"),
        ),
        (
            Some("LocalHangup"),
            Some("digits>got-digits"),
            Some(want_fields.as_str()),
            Some("Some(Hangup)"),
        ),
        "unexpected end of the call: {}\n{}",
        line.raw,
        kald.dump()
    );
    assert!(
        took < Duration::from_millis(6500),
        "the call took {took:?}: the digits were not ended by #\n{}",
        kald.dump()
    );
}

#[test]
fn rfc4733_digits_are_counted() {
    let mut kald = Kald::start("rfc4733", &[]);
    Sipp::new("rfc4733_digits.xml").run(&kald).assert_ok(&kald);
    let call = kald.the_call();
    assert_digits_then_pound(&mut kald, &call, 3);
    kald.stop(EXIT);
}

#[test]
fn tcp_call() {
    let mut kald = Kald::start("tcp", &[]);
    Sipp::new("rfc4733_digits.xml")
        .tcp()
        .run(&kald)
        .assert_ok(&kald);
    let call = kald.the_call();
    assert_digits_then_pound(&mut kald, &call, 3);
    kald.stop(EXIT);
}

#[test]
fn silence_ends_collection_after_5_seconds() {
    let mut kald = Kald::start("silence", &[]);
    // The scenario checks that kald answers PCMA only.
    let run = Sipp::new("silence_pcma.xml").run(&kald);
    run.assert_ok(&kald);
    let call = kald.the_call();
    let (line, took) = ended(&mut kald, &call);
    assert_eq!(
        (
            line.str("reason"),
            line.str("path"),
            line.str("field_lengths")
        ),
        (Some("LocalHangup"), Some("digits>no-digits"), Some("")),
        "unexpected end of the call: {}\n{}",
        line.raw,
        kald.dump()
    );
    assert!(
        took >= SILENCE_ENDS_AFTER && took < Duration::from_secs(20),
        "the call ended {took:?} after it came in; expected ≈ 8.9 s\n{}",
        kald.dump()
    );
    assert!(
        run.elapsed >= SILENCE_ENDS_AFTER,
        "the call lasted only {:?}",
        run.elapsed
    );
    kald.stop(EXIT);
}

#[test]
fn cancel_before_answer() {
    let mut kald = Kald::start("cancel", &["--ring-ms", "3000"]);
    let run = Sipp::new("cancel.xml").run(&kald);
    run.assert_ok(&kald);
    let call = kald.the_call();
    let (line, _) = ended(&mut kald, &call);
    assert_eq!(
        (line.str("reason"), line.str("path")),
        (Some("Cancelled"), Some("")),
        "a cancelled call must end unanswered, before its flow starts: {}\n{}",
        line.raw,
        kald.dump()
    );
    // The CANCEL came during the 3 s of ringing.
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    kald.stop(EXIT);
}

#[test]
fn sip_info_digits_are_counted() {
    let mut kald = Kald::start("info", &[]);
    Sipp::new("sip_info.xml").run(&kald).assert_ok(&kald);
    let call = kald.the_call();
    assert_digits_then_pound(&mut kald, &call, 2);
    kald.stop(EXIT);
}

#[test]
fn inband_dtmf_is_detected() {
    let mut kald = Kald::start("inband", &[]);
    Sipp::new("inband_dtmf.xml")
        .fixture("dtmf_inband_78pound.wav")
        .run(&kald)
        .assert_ok(&kald);
    let call = kald.the_call();
    assert_digits_then_pound(&mut kald, &call, 2);
    kald.stop(EXIT);
}

#[test]
fn delayed_offer_invite() {
    let mut kald = Kald::start("delayed", &[]);
    // The scenario checks the offer in kald's 200 and answers PCMA + telephone-event.
    Sipp::new("delayed_offer.xml").run(&kald).assert_ok(&kald);
    let call = kald.the_call();
    let incoming = kald.call_line("incoming call", &call);
    assert_eq!(
        incoming.bool("delayed_offer"),
        Some(true),
        "{}",
        incoming.raw
    );
    assert_digits_then_pound(&mut kald, &call, 1);
    kald.stop(EXIT);
}

#[test]
fn reinvite_to_hold_and_back() {
    let mut kald = Kald::start("hold", &[]);
    // The scenario checks a=recvonly in the answer to a=sendonly, then a=sendrecv.
    Sipp::new("reinvite_hold.xml").run(&kald).assert_ok(&kald);
    let call = kald.the_call();
    let incoming = kald.call_line("incoming call", &call);
    assert_eq!(
        incoming.bool("delayed_offer"),
        Some(false),
        "{}",
        incoming.raw
    );
    let holds: Vec<Option<bool>> = kald
        .call_lines("re-offer answered", &call)
        .iter()
        .map(|l| l.bool("hold"))
        .collect();
    assert_eq!(
        holds,
        [Some(true), Some(false)],
        "expected hold, then off hold\n{}",
        kald.dump()
    );
    assert_digits_then_pound(&mut kald, &call, 1);
    kald.stop(EXIT);
}

#[test]
fn real_flow_reaches_the_queue() {
    // Monday 09:15 in Copenhagen: open (the clock runs on from there).
    let mut kald = Kald::start_real("real-flow", &["--now", "2026-11-23T09:15"]);
    let prompt = |name: &str| {
        common::wav_seconds(&common::repo().join(format!("ivr-flows/prompts/{name}.wav")))
    };
    let ms = |s: f64| format!("{:.0}", s * 1000.0);
    // Each key goes well after the prompts that cannot be skipped and well before the
    // next timeout (consent 8 s, CPR 10 s, menu 6 s after their prompts).
    let consent_at = prompt("welcome") + prompt("recording-notice") + 1.5;
    let cpr_at = prompt("consent-yes") + 1.0;
    // The caller sends audio all along (kald hangs up after 30 s without RTP): SIPp echoes
    // kald's own.
    let run = Sipp::new("real_flow.xml")
        .arg("-rtp_echo")
        .set("consent_at", &ms(consent_at))
        .set("cpr_at", &ms(cpr_at))
        .set("menu_at", "1500")
        .set("bye_at", &ms(prompt("queue-wait") + 1.5))
        .run(&kald);
    run.assert_ok(&kald);
    let call = kald.the_call();
    let queued = kald.wait_for("call queued", Duration::from_secs(10), |l| {
        l.call() == Some(call.as_str()) && l.message().is_some_and(|m| m.starts_with("call queued"))
    });
    assert_eq!(
        (queued.str("queue"), queued.str("topic")),
        (Some("sygedagpenge"), Some("sygedagpenge")),
        "{}",
        queued.raw
    );
    let (line, _) = ended(&mut kald, &call);
    let fields = [
        "reason",
        "path",
        "consent",
        "cpr_accepted",
        "cpr_attempts",
        "topic",
        "queue",
    ];
    let got: Vec<String> = fields
        .iter()
        .map(|f| match line.field(f) {
            Some(common::Json::Str(s)) => s.clone(),
            Some(common::Json::Bool(b)) => b.to_string(),
            Some(common::Json::Num(n)) => n.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            "RemoteHangup",
            "opening-hours>welcome>consent>cpr>after-cpr>menu>sygedagpenge-queue",
            "Some(Yes)",
            "true",
            "1",
            "sygedagpenge",
            "sygedagpenge",
        ],
        "fields {fields:?} of {}\n{}",
        line.raw,
        kald.dump()
    );
    // The CPR number typed never reaches the log.
    let leaked: Vec<String> = kald
        .lines()
        .into_iter()
        .filter(|l| l.raw.contains("0101901235") || l.raw.contains("010190-1235"))
        .map(|l| l.raw)
        .collect();
    assert!(leaked.is_empty(), "the CPR number was logged: {leaked:?}");
    kald.stop(EXIT);
}

#[test]
fn graceful_shutdown_ends_calls_with_bye() {
    graceful_shutdown("shutdown", Sipp::new("wait_for_bye.xml"));
}

#[test]
fn graceful_shutdown_over_tcp() {
    // The call's TCP connection must stay open through the grace period for the BYE.
    graceful_shutdown("shutdown-tcp", Sipp::new("wait_for_bye.xml").tcp());
}

/// A call is up when kald gets SIGTERM (1 s of grace): kald ends it with BYE, logs its
/// end, and exits with 0.
fn graceful_shutdown(name: &str, sipp: Sipp) {
    let mut kald = Kald::start(name, &["--grace-seconds", "1"]);
    let sipp = sipp.spawn(&kald);
    let call = kald.the_call();
    // The ACK follows the 200 at once; give it a moment to arrive.
    std::thread::sleep(Duration::from_millis(300));
    let term = Instant::now();
    kald.sigterm();
    let run = sipp.wait();
    run.assert_ok(&kald);
    // Left alone, kald would hang up ≈ 9 s after answering (welcome, 5 s silence,
    // goodbye); the BYE came from the shutdown, 1 s of grace after the signal.
    let bye_after = term.elapsed();
    assert!(
        bye_after < Duration::from_secs(5),
        "the call ended {bye_after:?} after SIGTERM\n{}",
        kald.dump()
    );
    kald.wait_for("the end of the grace period", Duration::from_secs(5), |l| {
        l.is("grace period over; ending calls")
    });
    // The call was still in the digit entry (5 s of silence after the welcome) when the
    // shutdown ended it.
    let (line, _) = ended(&mut kald, &call);
    assert_eq!(
        (line.str("reason"), line.str("path")),
        (Some("LocalHangup"), Some("digits")),
        "{}\n{}",
        line.raw,
        kald.dump()
    );
    kald.assert_exits_cleanly(Duration::from_secs(6));
}

#[test]
fn malformed_sip_never_stops_the_server() {
    // The torture messages include well-formed INVITEs; kald answers them (to this test's
    // socket) and would keep those calls up, so let the shutdown end them after 1 s.
    let mut kald = Kald::start("torture", &["--grace-seconds", "1"]);
    let corpus = common::repo().join("tests/corpus/sip");
    let dat_files = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "dat"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut files = dat_files(&corpus);
    assert!(
        files.len() >= 40,
        "only {} files in {}",
        files.len(),
        corpus.display()
    );
    // Inputs that once crashed the parser under the fuzzer, if any.
    files.extend(dat_files(&corpus.join("fuzz-regressions")));

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = vec![0u8; 65_535];
    let mut replies = 0;
    for f in &files {
        let msg = std::fs::read(f).unwrap();
        sock.send_to(&msg, kald.sip).unwrap();
        while sock.recv_from(&mut buf).is_ok() {
            replies += 1;
        }
        assert!(
            kald.is_running(),
            "kald stopped after {}\n{}",
            f.display(),
            kald.dump()
        );
    }
    // The same over TCP, one connection per message (a bad Content-Length must not
    // hold the next message hostage).
    for f in &files {
        let msg = std::fs::read(f).unwrap();
        let mut tcp = TcpStream::connect(kald.sip).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let _ = tcp.write_all(&msg);
        let mut chunk = [0u8; 4096];
        while let Ok(n) = tcp.read(&mut chunk) {
            if n == 0 {
                break;
            }
            replies += 1;
        }
        drop(tcp);
        assert!(
            kald.is_running(),
            "kald stopped after {} over TCP\n{}",
            f.display(),
            kald.dump()
        );
    }
    eprintln!(
        "{} torture messages sent twice, {replies} replies",
        files.len()
    );

    // kald still answers OPTIONS, on UDP…
    let call_id = format!("e2e-options-{}@127.0.0.1", std::process::id());
    let local = sock.local_addr().unwrap();
    let options = options_request(&kald.sip.to_string(), &local.to_string(), "UDP", &call_id);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answered = None;
    while answered.is_none() && Instant::now() < deadline {
        sock.send_to(options.as_bytes(), kald.sip).unwrap();
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.contains(&call_id) {
                    answered = Some(text);
                    break;
                }
            }
        }
    }
    let answer =
        answered.unwrap_or_else(|| panic!("no answer to OPTIONS over UDP\n{}", kald.dump()));
    assert!(
        answer.starts_with("SIP/2.0 200 "),
        "OPTIONS over UDP: {answer}"
    );

    // …and on TCP.
    let mut tcp = TcpStream::connect(kald.sip).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = tcp.local_addr().unwrap();
    let call_id = format!("e2e-options-tcp-{}@127.0.0.1", std::process::id());
    let options = options_request(&kald.sip.to_string(), &local.to_string(), "TCP", &call_id);
    tcp.write_all(options.as_bytes()).unwrap();
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") && Instant::now() < end {
        let mut chunk = [0u8; 4096];
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&got);
    assert!(
        answer.starts_with("SIP/2.0 200 ") && answer.contains(&call_id),
        "OPTIONS over TCP: {answer:?}\n{}",
        kald.dump()
    );
    drop(tcp);

    // The calls the torture INVITEs opened end with the 1 s of grace.
    kald.stop(Duration::from_secs(10));
}

fn options_request(kald: &str, local: &str, transport: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:{kald} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK-e2e-{call_id_hash};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:e2e@{local}>;tag=e2e\r\n\
         To: <sip:{kald}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        call_id_hash = call_id.len() * 7919 + usize::from(transport == "TCP"),
    )
}
