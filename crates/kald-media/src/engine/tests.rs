//! Engine tests on a simulated clock: packets are fed and polled at exact instants.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::dtmf::{tone, Digit, Rfc4733Sender};
use crate::g711::Codec;
use crate::rtp::{write_packet, RtpView};

const PEER: &str = "127.0.0.1:40000";

fn params(codec: Codec, te: Option<u8>) -> StreamParams {
    StreamParams {
        codec,
        telephone_event: te,
        remote: Some(PEER.parse().unwrap()),
        send: true,
        receive: true,
    }
}

fn prompt(frames: usize) -> Prompt {
    let samples: Vec<i16> = (0..frames * FRAME)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    Prompt::from_samples(samples)
}

struct Sim {
    engine: Engine,
    start: Instant,
    now: Instant,
    sent: Vec<(Duration, Transmit, Vec<u8>)>,
    events: Vec<(Duration, MediaEvent)>,
    frames: Vec<Frame>,
}

impl Sim {
    fn new() -> Self {
        let start = Instant::now();
        Self {
            engine: Engine::new(EngineConfig::default(), 8),
            start,
            now: start,
            sent: vec![],
            events: vec![],
            frames: vec![],
        }
    }

    /// Advance to `start + at`, sending every packet exactly when due.
    fn run_until(&mut self, at: Duration) {
        let target = self.start + at;
        let mut buf = [0u8; 1500];
        while let Some(due) = self.engine.poll_timeout() {
            if due > target {
                break;
            }
            self.now = self.now.max(due);
            while let Some(t) = self.engine.poll_transmit(self.now, &mut buf) {
                self.sent
                    .push((self.now - self.start, t, buf[..t.len].to_vec()));
            }
            while let Some(e) = self.engine.poll_event() {
                self.events.push((self.now - self.start, e));
            }
            while let Some((_, f)) = self.engine.poll_recording(self.now) {
                self.frames.push(f);
            }
        }
        self.now = target;
    }

    fn feed(&mut self, id: StreamId, from: &str, pkt: &[u8]) -> Option<(Transmit, Vec<u8>)> {
        let mut out = [0u8; 1500];
        let r = self.engine.handle_datagram(
            self.now,
            id,
            from.parse::<SocketAddr>().unwrap(),
            pkt,
            &mut out,
        );
        while let Some(e) = self.engine.poll_event() {
            self.events.push((self.now - self.start, e));
        }
        r.map(|t| (t, out[..t.len].to_vec()))
    }
}

fn audio(codec: Codec, seq: u16, ts: u32, pcm: &[i16]) -> Vec<u8> {
    let mut payload = vec![0u8; pcm.len()];
    codec.encode(pcm, &mut payload);
    let mut buf = [0u8; 1500];
    let n = write_packet(
        &mut buf,
        codec.payload_type(),
        false,
        seq,
        ts,
        0xabcd,
        &payload,
    )
    .unwrap();
    buf[..n].to_vec()
}

#[test]
fn prompt_is_paced_at_20_ms_with_consecutive_seq_and_timestamps() {
    let mut sim = Sim::new();
    let id = sim.engine.add(
        sim.now,
        params(Codec::Pcma, Some(101)),
        7,
        65530,
        u32::MAX - 200,
    );
    sim.engine.play(id, prompt(50), false);
    sim.run_until(Duration::from_millis(1500));
    let pkts: Vec<_> = sim
        .sent
        .iter()
        .map(|(t, _, b)| (*t, RtpView::parse(b).unwrap()))
        .collect();
    assert_eq!(pkts.len(), 76, "one packet per 20 ms from 0 to 1500 ms");
    for (i, (t, p)) in pkts.iter().enumerate() {
        assert_eq!(*t, Duration::from_millis(20 * i as u64));
        assert_eq!(p.sequence, 65530u16.wrapping_add(1 + i as u16));
        assert_eq!(p.timestamp, (u32::MAX - 200).wrapping_add(160 * i as u32));
        assert_eq!(
            p.marker,
            i == 0,
            "marker only on the first packet of the talk spurt"
        );
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.payload.len(), 160);
    }
    let finished: Vec<_> = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, MediaEvent::PromptFinished { .. }))
        .collect();
    assert_eq!(finished.len(), 1);
    assert_eq!(
        finished[0].0,
        Duration::from_millis(20 * 49),
        "after the 50th frame"
    );
}

#[test]
fn ten_minutes_of_looped_playback_do_not_drift() {
    let mut sim = Sim::new();
    let id = sim.engine.add(sim.now, params(Codec::Pcmu, None), 1, 0, 0);
    sim.engine.play(id, prompt(7), true);
    sim.run_until(Duration::from_secs(600));
    assert_eq!(sim.sent.len(), 30_001);
    let last = RtpView::parse(&sim.sent.last().unwrap().2).unwrap();
    assert_eq!(last.timestamp, 160 * 30_000);
    assert_eq!(sim.sent.last().unwrap().0, Duration::from_secs(600));
    assert!(
        !sim.events
            .iter()
            .any(|(_, e)| matches!(e, MediaEvent::PromptFinished { .. })),
        "a loop never finishes"
    );
}

#[test]
fn latches_the_first_source_then_ignores_others_until_a_new_offer() {
    let mut sim = Sim::new();
    let id = sim.engine.add(sim.now, params(Codec::Pcmu, None), 1, 0, 0);
    let pkt = audio(Codec::Pcmu, 1, 160, &[0; 160]);
    sim.feed(id, "10.9.9.9:5000", &pkt); // the NATed phone's real address
    assert_eq!(sim.engine.peer(id), Some("10.9.9.9:5000".parse().unwrap()));
    for i in 0..10 {
        sim.feed(
            id,
            "127.0.0.66:6666",
            &audio(Codec::Pcmu, 2 + i, 320, &[0; 160]),
        ); // an attacker
    }
    let stats = sim.engine.stats(id).unwrap();
    assert_eq!((stats.received, stats.foreign), (1, 10));
    // Our packets go to the latched address.
    sim.run_until(Duration::from_millis(0));
    assert_eq!(sim.sent[0].1.to, "10.9.9.9:5000".parse().unwrap());
    // A re-offer opens the latch again for the first packets only.
    sim.engine.update(sim.now, id, params(Codec::Pcmu, None));
    sim.feed(id, "10.9.9.10:5002", &pkt);
    assert_eq!(sim.engine.peer(id), Some("10.9.9.10:5002".parse().unwrap()));
}

#[test]
fn rfc4733_digits_are_reported_once() {
    let mut sim = Sim::new();
    let id = sim
        .engine
        .add(sim.now, params(Codec::Pcmu, Some(96)), 1, 0, 0);
    for (n, d) in ['1', '#'].into_iter().enumerate() {
        let mut tx = Rfc4733Sender::new(Digit::from_char(d).unwrap(), 8000 * (n as u32 + 1), 800);
        let mut ev = [0u8; 4];
        let mut seq = 100 * n as u16;
        while let Some((marker, ts)) = tx.next_packet(&mut ev) {
            let mut buf = [0u8; 64];
            seq += 1;
            let len = write_packet(&mut buf, 96, marker, seq, ts, 5, &ev).unwrap();
            sim.feed(id, PEER, &buf[..len]);
        }
    }
    let digits: Vec<char> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            MediaEvent::Digit { digit, .. } => Some(digit.as_char()),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec!['1', '#']);
}

#[test]
fn inband_digits_are_heard_when_no_telephone_event_was_negotiated() {
    let mut sim = Sim::new();
    let id = sim.engine.add(sim.now, params(Codec::Pcma, None), 1, 0, 0);
    let mut seq = 0u16;
    let mut ts = 0u32;
    for d in ['4', '2'] {
        let mut samples = vec![0i16; 160 * 4];
        tone(Digit::from_char(d).unwrap(), 8000, 6000, &mut samples, 0);
        samples.extend(std::iter::repeat_n(0, 160 * 4));
        for chunk in samples.chunks(160) {
            seq += 1;
            ts += 160;
            sim.feed(id, PEER, &audio(Codec::Pcma, seq, ts, chunk));
        }
    }
    let digits: Vec<char> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            MediaEvent::Digit { digit, .. } => Some(digit.as_char()),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec!['4', '2']);
}

#[test]
fn bridged_legs_relay_with_transcoding_and_their_own_ssrc() {
    let mut sim = Sim::new();
    let citizen = sim
        .engine
        .add(sim.now, params(Codec::Pcma, Some(101)), 0x1111, 0, 0);
    let agent_params = StreamParams {
        remote: Some("127.0.0.1:40002".parse().unwrap()),
        ..params(Codec::Pcmu, Some(96))
    };
    let agent = sim.engine.add(sim.now, agent_params, 0x2222, 500, 9000);
    sim.engine.bridge(citizen, agent, Some(prompt(10)));
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i as f32 * 0.2).sin() * 10000.0) as i16)
        .collect();
    let (t, bytes) = sim
        .feed(citizen, PEER, &audio(Codec::Pcma, 1, 160, &pcm))
        .expect("relayed");
    assert_eq!(
        (t.stream, t.to),
        (agent, "127.0.0.1:40002".parse().unwrap())
    );
    let p = RtpView::parse(&bytes).unwrap();
    assert_eq!((p.payload_type, p.ssrc), (0, 0x2222));
    let mut back = [0i16; 160];
    Codec::Pcmu.decode(p.payload, &mut back);
    let err: i64 = pcm
        .iter()
        .zip(back.iter())
        .map(|(a, b)| i64::from((a - b).abs()))
        .max()
        .unwrap();
    assert!(
        err < 700,
        "PCMA→PCMU transcoding keeps the signal (max error {err})"
    );
    // DTMF passes through with the other leg's payload type.
    let mut ev = [0u8; 4];
    let mut tx = Rfc4733Sender::new(Digit::from_char('5').unwrap(), 320, 800);
    let (marker, ts) = tx.next_packet(&mut ev).unwrap();
    let mut buf = [0u8; 64];
    let n = write_packet(&mut buf, 101, marker, 2, ts, 0xabcd, &ev).unwrap();
    let (_, bytes) = sim.feed(citizen, PEER, &buf[..n]).expect("event relayed");
    assert_eq!(RtpView::parse(&bytes).unwrap().payload_type, 96);
    // While bridged and both talking, nothing is paced.
    sim.run_until(Duration::from_millis(100));
    assert!(sim.sent.is_empty());
}

#[test]
fn a_leg_on_hold_makes_the_other_hear_hold_music() {
    let mut sim = Sim::new();
    let citizen = sim.engine.add(sim.now, params(Codec::Pcma, None), 1, 0, 0);
    let agent = sim.engine.add(sim.now, params(Codec::Pcma, None), 2, 0, 0);
    sim.engine.bridge(citizen, agent, Some(prompt(5)));
    sim.engine.update(
        sim.now,
        agent,
        StreamParams {
            receive: false,
            ..params(Codec::Pcma, None)
        },
    );
    sim.run_until(Duration::from_millis(400));
    let to_citizen = sim
        .sent
        .iter()
        .filter(|(_, t, _)| t.stream == citizen)
        .count();
    assert_eq!(
        to_citizen, 21,
        "hold music paced to the citizen every 20 ms"
    );
    sim.engine.update(sim.now, agent, params(Codec::Pcma, None));
    sim.sent.clear();
    sim.run_until(Duration::from_millis(800));
    assert!(
        sim.sent.iter().all(|(_, t, _)| t.stream != citizen),
        "music stops when the hold ends"
    );
}

#[test]
fn a_silent_stream_is_reported_inactive_but_not_on_hold() {
    let mut sim = Sim::new();
    let live = sim.engine.add(sim.now, params(Codec::Pcma, None), 1, 0, 0);
    let held = sim.engine.add(
        sim.now,
        StreamParams {
            receive: false,
            ..params(Codec::Pcma, None)
        },
        2,
        0,
        0,
    );
    sim.run_until(Duration::from_secs(31));
    let inactive: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            MediaEvent::Inactive { stream } => Some((*t, *stream)),
            _ => None,
        })
        .collect();
    assert_eq!(inactive, vec![(Duration::from_secs(30), live)]);
    let _ = held;
}

#[test]
fn garbage_never_panics_and_is_counted() {
    let mut sim = Sim::new();
    let id = sim
        .engine
        .add(sim.now, params(Codec::Pcma, Some(101)), 1, 0, 0);
    let mut seed = 1u64;
    for len in 0..400 {
        let pkt: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        sim.feed(id, PEER, &pkt);
    }
    assert!(sim.engine.stats(id).unwrap().malformed > 300);
}

#[test]
fn a_bridged_call_is_recorded_citizen_left_agent_right_in_time() {
    let mut sim = Sim::new();
    let citizen = sim.engine.add(sim.now, params(Codec::Pcma, None), 1, 0, 0);
    let agent_params = StreamParams {
        remote: Some("127.0.0.1:40002".parse().unwrap()),
        ..params(Codec::Pcmu, None)
    };
    let agent = sim.engine.add(sim.now, agent_params, 2, 0, 0);
    sim.engine.bridge(citizen, agent, None);
    let rec = sim.engine.record(sim.now, citizen, agent).unwrap();
    // The citizen talks (a 500 Hz tone) from 0 s; the agent (1 kHz) from 1 s; 3 s in all,
    // with every 7th citizen packet lost.
    let tone_at = |f: f32, n: usize| -> Vec<i16> {
        (0..160)
            .map(|i| {
                ((2.0 * std::f32::consts::PI * f * (n * 160 + i) as f32 / 8000.0).sin() * 8000.0)
                    as i16
            })
            .collect()
    };
    for n in 0..150u16 {
        sim.run_until(Duration::from_millis(20 * u64::from(n)));
        if n % 7 != 3 {
            sim.feed(
                citizen,
                PEER,
                &audio(
                    Codec::Pcma,
                    n,
                    160 * u32::from(n),
                    &tone_at(500.0, usize::from(n)),
                ),
            );
        }
        if n >= 50 {
            sim.feed(
                agent,
                "127.0.0.1:40002",
                &audio(
                    Codec::Pcmu,
                    n,
                    7000 + 160 * u32::from(n),
                    &tone_at(1000.0, usize::from(n)),
                ),
            );
        }
    }
    sim.run_until(Duration::from_millis(3000));
    let rest: Vec<_> = sim.engine.stop_recording(sim.now, rec).unwrap().collect();
    let frames: Vec<_> = sim.frames.iter().chain(rest.iter()).collect();
    let energy =
        |f: &Frame, c: Channel| f.channel(c).map(|s| i64::from(s).abs()).sum::<i64>() / 160;
    let first_loud = |c: Channel| frames.iter().position(|f| energy(f, c) > 1000).unwrap();
    let (left, right) = (first_loud(Channel::Citizen), first_loud(Channel::Agent));
    assert!(
        left <= 4,
        "the citizen is heard from the start (frame {left})"
    );
    assert!(
        (right as i64 - left as i64 - 50).abs() <= 1,
        "the agent starts 1 s (50 frames) later: {left} vs {right}"
    );
    assert!(
        frames.len() >= 149 && frames.len() <= 156,
        "about 3 s of audio: {} frames",
        frames.len()
    );
    assert!(sim.engine.poll_recording(sim.now).is_none());
}
