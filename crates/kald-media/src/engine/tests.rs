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

#[test]
fn a_message_is_recorded_on_the_left_with_silence_on_the_right() {
    let mut sim = Sim::new();
    let citizen = sim.engine.add(sim.now, params(Codec::Pcmu, None), 1, 0, 0);
    let rec = sim.engine.record_one(sim.now, citizen).unwrap();
    let tone: Vec<i16> = sine(700.0, 160);
    for n in 0..100u16 {
        sim.run_until(Duration::from_millis(20 * u64::from(n)));
        sim.feed(
            citizen,
            PEER,
            &audio(Codec::Pcmu, n, 160 * u32::from(n), &tone),
        );
    }
    sim.run_until(Duration::from_millis(2000));
    let rest: Vec<_> = sim.engine.stop_recording(sim.now, rec).unwrap().collect();
    let frames: Vec<_> = sim.frames.iter().chain(rest.iter()).collect();
    assert!(frames.len() >= 95, "about 2 s: {} frames", frames.len());
    let loud = |c: Channel| {
        frames
            .iter()
            .filter(|f| f.channel(c).map(|s| i64::from(s).abs()).sum::<i64>() / 160 > 1000)
            .count()
    };
    assert!(loud(Channel::Citizen) >= 90, "the caller is on the left");
    assert_eq!(loud(Channel::Agent), 0, "the right channel is silent");
}

// ---- Listening in (medlyt) ----

const AGENT: &str = "127.0.0.1:40002";

/// Amplitude of the `freq` component of `pcm` (Goertzel), in linear sample units.
fn tone_level(pcm: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    2.0 * power.sqrt() / pcm.len() as f64
}

/// Packet `n` of a continuous sine of `freq` Hz at amplitude 8000.
fn sine(freq: f64, n: usize) -> Vec<i16> {
    (0..FRAME)
        .map(|i| {
            let t = (n * FRAME + i) as f64 / 8000.0;
            ((2.0 * std::f64::consts::PI * freq * t).sin() * 8000.0) as i16
        })
        .collect()
}

/// The decoded audio of an RTP packet.
fn decoded(bytes: &[u8]) -> Vec<i16> {
    let p = RtpView::parse(bytes).unwrap();
    let codec = Codec::from_payload_type(p.payload_type).unwrap();
    let mut pcm = vec![0i16; p.payload.len()];
    codec.decode(p.payload, &mut pcm);
    pcm
}

/// A citizen (`127.0.0.1:40000`) bridged to an agent (`127.0.0.1:40002`).
fn bridged(sim: &mut Sim, citizen: Codec, agent: Codec) -> (StreamId, StreamId) {
    let c = sim
        .engine
        .add(sim.now, params(citizen, Some(101)), 0x1111, 0, 0);
    let a_params = StreamParams {
        remote: Some(AGENT.parse().unwrap()),
        ..params(agent, Some(96))
    };
    let a = sim.engine.add(sim.now, a_params, 0x2222, 500, 9000);
    sim.engine.bridge(c, a, None);
    (c, a)
}

/// A team leader's softphone at `127.0.0.1:4100i`.
fn listener(sim: &mut Sim, codec: Codec, i: u16) -> StreamId {
    let p = StreamParams {
        remote: Some(SocketAddr::from(([127, 0, 0, 1], 41000 + i))),
        ..params(codec, Some(101))
    };
    sim.engine.add(sim.now, p, 0x3333 + u32::from(i), 0, 0)
}

/// What the bridged legs relayed during [`talk`]: bytes and decoded audio per direction.
#[derive(Default)]
struct Relayed {
    bytes: Vec<Vec<u8>>,
    to_citizen: Vec<i16>,
    to_agent: Vec<i16>,
}

/// Slots `from..to` of 20 ms: at 5 ms into each, the citizen sends 440 Hz, the agent 1 kHz
/// and every listener 2 kHz (each in its own codec).
fn talk(
    sim: &mut Sim,
    (citizen, agent): (StreamId, StreamId),
    listeners: &[StreamId],
    slots: std::ops::Range<u16>,
) -> Relayed {
    let mut r = Relayed::default();
    for n in slots {
        sim.run_until(Duration::from_millis(20 * u64::from(n) + 5));
        let ts = 160 * u32::from(n);
        let codec = |e: &Engine, id| e.stream(id).unwrap().params.codec;
        let (cc, ac) = (codec(&sim.engine, citizen), codec(&sim.engine, agent));
        let c_pkt = audio(cc, n, ts, &sine(440.0, n.into()));
        let (t, b) = sim.feed(citizen, PEER, &c_pkt).expect("relayed to agent");
        assert_eq!(t.stream, agent);
        r.to_agent.extend(decoded(&b));
        r.bytes.push(b);
        let a_pkt = audio(ac, n, 7000 + ts, &sine(1000.0, n.into()));
        let (t, b) = sim.feed(agent, AGENT, &a_pkt).expect("relayed to citizen");
        assert_eq!(t.stream, citizen);
        r.to_citizen.extend(decoded(&b));
        r.bytes.push(b);
        for (i, &l) in listeners.iter().enumerate() {
            let from = format!("127.0.0.1:{}", 41000 + i);
            let pkt = audio(codec(&sim.engine, l), n, ts, &sine(2000.0, n.into()));
            assert!(
                sim.feed(l, &from, &pkt).is_none(),
                "a listener's audio goes nowhere"
            );
        }
    }
    r
}

/// The decoded audio `id` sent between `from` and `to` (simulated time).
fn sent_audio(sim: &Sim, id: StreamId, from: Duration, to: Duration) -> Vec<i16> {
    sim.sent
        .iter()
        .filter(|(t, x, _)| x.stream == id && *t >= from && *t < to)
        .flat_map(|(_, _, b)| decoded(b))
        .collect()
}

fn assert_hears(pcm: &[i16], present: &[f64], absent: &[f64], who: &str) {
    assert!(pcm.len() >= 8000, "{who}: at least 1 s of audio");
    for &f in present {
        let level = tone_level(pcm, f);
        assert!(level > 3000.0, "{who} hears {f} Hz (level {level:.0})");
    }
    for &f in absent {
        let level = tone_level(pcm, f);
        assert!(
            level < 200.0,
            "{who} does not hear {f} Hz (level {level:.0})"
        );
    }
}

#[test]
fn a_bridge_forwards_different_tones_both_ways() {
    let mut sim = Sim::new();
    let call = bridged(&mut sim, Codec::Pcma, Codec::Pcmu);
    let r = talk(&mut sim, call, &[], 0..100);
    assert_hears(&r.to_agent, &[440.0], &[1000.0], "the agent");
    assert_hears(&r.to_citizen, &[1000.0], &[440.0], "the citizen");
}

#[test]
fn a_listener_hears_both_directions_and_nobody_hears_the_listener() {
    // The same call without a listener, for the bytes the legs relay.
    let mut plain = Sim::new();
    let call = bridged(&mut plain, Codec::Pcmu, Codec::Pcmu);
    let _idle = listener(&mut plain, Codec::Pcmu, 0);
    let without = talk(&mut plain, call, &[], 0..100);

    let mut sim = Sim::new();
    let (citizen, agent) = bridged(&mut sim, Codec::Pcmu, Codec::Pcmu);
    let l = listener(&mut sim, Codec::Pcmu, 0);
    assert!(sim.engine.listen(l, agent));
    assert!(sim.engine.is_listening(l));
    let with = talk(&mut sim, (citizen, agent), &[l], 0..100);
    assert_eq!(
        with.bytes, without.bytes,
        "the legs relay exactly the same packets with a listener"
    );
    assert_hears(&with.to_agent, &[440.0], &[1000.0, 2000.0], "the agent");
    assert_hears(&with.to_citizen, &[1000.0], &[440.0, 2000.0], "the citizen");

    // The listener is paced every 20 ms from its start with consecutive numbering.
    let pkts: Vec<_> = sim
        .sent
        .iter()
        .filter(|(_, t, _)| t.stream == l)
        .map(|(at, _, b)| (*at, RtpView::parse(b).unwrap()))
        .collect();
    assert_eq!(pkts.len(), 100, "0 ms to 1980 ms");
    for (i, (at, p)) in pkts.iter().enumerate() {
        assert_eq!(*at, Duration::from_millis(20 * i as u64));
        assert_eq!(p.sequence, 1 + i as u16);
        assert_eq!(p.timestamp, 160 * i as u32);
        assert_eq!((p.payload_type, p.ssrc, p.payload.len()), (0, 0x3333, 160));
    }
    let heard = sent_audio(&sim, l, Duration::from_millis(40), Duration::from_secs(2));
    assert_hears(&heard, &[440.0, 1000.0], &[2000.0], "the listener");
    // Frame by frame: after the first tick every frame carries both parties.
    for (i, frame) in heard.chunks(FRAME).enumerate() {
        assert!(
            tone_level(frame, 440.0) > 2000.0 && tone_level(frame, 1000.0) > 2000.0,
            "frame {i} has both parties"
        );
    }

    // The listener's digits are still reported, and go nowhere.
    let mut tx = Rfc4733Sender::new(Digit::from_char('7').unwrap(), 99_000, 800);
    let mut ev = [0u8; 4];
    let mut seq = 1000;
    while let Some((marker, ts)) = tx.next_packet(&mut ev) {
        let mut buf = [0u8; 64];
        seq += 1;
        let n = write_packet(&mut buf, 101, marker, seq, ts, 9, &ev).unwrap();
        assert!(sim.feed(l, "127.0.0.1:41000", &buf[..n]).is_none());
    }
    assert!(sim.events.iter().any(|(_, e)| *e
        == MediaEvent::Digit {
            stream: l,
            digit: Digit::from_char('7').unwrap()
        }));
}

#[test]
fn two_listeners_on_one_bridge_both_hear_it() {
    let mut sim = Sim::new();
    let (citizen, agent) = bridged(&mut sim, Codec::Pcma, Codec::Pcmu);
    sim.run_until(Duration::from_millis(7)); // the second listener ticks out of phase
    let l1 = listener(&mut sim, Codec::Pcmu, 0);
    let l2 = listener(&mut sim, Codec::Pcma, 1);
    assert!(sim.engine.listen(l1, citizen));
    assert!(sim.engine.listen(l2, agent));
    let r = talk(&mut sim, (citizen, agent), &[l1, l2], 1..101);
    assert_hears(&r.to_agent, &[440.0], &[1000.0, 2000.0], "the agent");
    assert_hears(&r.to_citizen, &[1000.0], &[440.0, 2000.0], "the citizen");
    for l in [l1, l2] {
        let heard = sent_audio(&sim, l, Duration::from_millis(60), Duration::from_secs(2));
        assert_hears(&heard, &[440.0, 1000.0], &[2000.0], "each listener");
    }
}

#[test]
fn a_pcma_listener_on_a_pcmu_bridge_gets_pcma() {
    let mut sim = Sim::new();
    let call = bridged(&mut sim, Codec::Pcmu, Codec::Pcmu);
    let l = listener(&mut sim, Codec::Pcma, 0);
    assert!(sim.engine.listen(l, call.0));
    talk(&mut sim, call, &[l], 0..100);
    assert!(sim
        .sent
        .iter()
        .filter(|(_, t, _)| t.stream == l)
        .all(|(_, _, b)| RtpView::parse(b).unwrap().payload_type == 8));
    let heard = sent_audio(&sim, l, Duration::from_millis(40), Duration::from_secs(2));
    assert_hears(&heard, &[440.0, 1000.0], &[2000.0], "the PCMA listener");
}

#[test]
fn unlisten_stops_the_mix_and_silence_follows() {
    let mut sim = Sim::new();
    let call = bridged(&mut sim, Codec::Pcmu, Codec::Pcma);
    let l = listener(&mut sim, Codec::Pcmu, 0);
    assert!(sim.engine.listen(l, call.1));
    talk(&mut sim, call, &[l], 0..50);
    sim.engine.unlisten(l);
    assert!(!sim.engine.is_listening(l));
    talk(&mut sim, call, &[l], 50..150);
    let after = sent_audio(&sim, l, Duration::from_millis(1020), Duration::from_secs(3));
    assert_eq!(after.len(), 99 * FRAME, "still paced every 20 ms");
    assert!(
        after.iter().all(|&x| x.abs() < 16),
        "silence after unlisten"
    );
    assert!(!sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, MediaEvent::ListenTargetGone { .. })));
}

#[test]
fn when_the_bridge_ends_listeners_are_told_and_hear_silence() {
    let mut sim = Sim::new();
    let call = bridged(&mut sim, Codec::Pcmu, Codec::Pcmu);
    let (l1, l2) = (
        listener(&mut sim, Codec::Pcmu, 0),
        listener(&mut sim, Codec::Pcma, 1),
    );
    // Refused: no bridge, or the listener is a party.
    assert!(!sim.engine.listen(call.0, call.1));
    assert!(!sim.engine.listen(l1, l2));
    assert!(sim.engine.listen(l1, call.0) && sim.engine.listen(l2, call.1));
    talk(&mut sim, call, &[l1, l2], 0..50);
    sim.engine.unbridge(call.1);
    let gone: Vec<_> = sim
        .engine
        .poll_event()
        .into_iter()
        .chain(sim.engine.poll_event())
        .collect();
    assert_eq!(
        gone,
        vec![
            MediaEvent::ListenTargetGone { listener: l1 },
            MediaEvent::ListenTargetGone { listener: l2 }
        ]
    );
    assert!(sim.engine.poll_event().is_none());
    assert!(!sim.engine.is_listening(l1) && !sim.engine.is_listening(l2));
    sim.run_until(Duration::from_secs(2));
    for l in [l1, l2] {
        let after = sent_audio(&sim, l, Duration::from_millis(1020), Duration::from_secs(3));
        assert_eq!(after.len(), 50 * FRAME, "silence, paced every 20 ms");
        assert!(after.iter().all(|&x| x.abs() < 16));
    }

    // A party removed (hang-up), or bridged elsewhere, ends listening too.
    sim.engine.bridge(call.0, call.1, None);
    assert!(sim.engine.listen(l1, call.0));
    sim.engine.remove(call.1);
    assert_eq!(
        sim.engine.poll_event(),
        Some(MediaEvent::ListenTargetGone { listener: l1 })
    );
    let other = listener(&mut sim, Codec::Pcmu, 7);
    let third = listener(&mut sim, Codec::Pcmu, 8);
    sim.engine.bridge(call.0, other, None);
    assert!(sim.engine.listen(l2, other));
    sim.engine.bridge(call.0, third, None);
    assert_eq!(
        sim.engine.poll_event(),
        Some(MediaEvent::ListenTargetGone { listener: l2 })
    );
    assert_eq!(
        sim.engine.stream(other).unwrap().bridge,
        None,
        "the old peer is unbridged"
    );
}

#[test]
fn bursty_packets_reach_the_listener_without_gaps() {
    let mut sim = Sim::new();
    let (citizen, agent) = bridged(&mut sim, Codec::Pcmu, Codec::Pcmu);
    let l = listener(&mut sim, Codec::Pcmu, 0);
    assert!(sim.engine.listen(l, citizen));
    // Packets arrive two at a time every 40 ms (the citizen) and 13 ms late every third
    // time (the agent).
    for n in (0..100u16).step_by(2) {
        for k in [n, n + 1] {
            let late = if k % 3 == 0 { 13 } else { 0 };
            sim.run_until(Duration::from_millis(20 * u64::from(k) + 5 + late));
            let ts = 160 * u32::from(k);
            let pkt = audio(Codec::Pcmu, k, ts, &sine(1000.0, k.into()));
            sim.feed(agent, AGENT, &pkt);
        }
        for k in [n, n + 1] {
            let pkt = audio(Codec::Pcmu, k, 160 * u32::from(k), &sine(440.0, k.into()));
            sim.feed(citizen, PEER, &pkt);
        }
    }
    let heard = sent_audio(&sim, l, Duration::from_millis(80), Duration::from_secs(2));
    for (i, frame) in heard.chunks(FRAME).enumerate() {
        assert!(
            tone_level(frame, 440.0) > 2000.0 && tone_level(frame, 1000.0) > 2000.0,
            "frame {i} has both parties"
        );
    }
    // A party falling silent (lost packets) is mixed as silence, not repeated.
    sim.sent.clear();
    for n in 100..160u16 {
        sim.run_until(Duration::from_millis(20 * u64::from(n) + 5));
        let pkt = audio(Codec::Pcmu, n, 160 * u32::from(n), &sine(1000.0, n.into()));
        sim.feed(agent, AGENT, &pkt);
    }
    let heard = sent_audio(&sim, l, Duration::from_millis(2100), Duration::from_secs(4));
    assert_hears(&heard, &[1000.0], &[440.0], "the listener, citizen silent");
}

#[test]
fn ten_thousand_packets_do_not_grow_any_buffer() {
    // Counting allocations needs a global allocator (unsafe, forbidden in this crate), so
    // this checks every growable buffer the engine owns; the per-packet paths themselves
    // only use stack arrays and the fixed `PcmRing` in each stream.
    let start = Instant::now();
    let mut engine = Engine::new(EngineConfig::default(), 8);
    let c = engine.add(start, params(Codec::Pcma, None), 1, 0, 0);
    let a_params = StreamParams {
        remote: Some(AGENT.parse().unwrap()),
        ..params(Codec::Pcmu, None)
    };
    let a = engine.add(start, a_params, 2, 0, 0);
    let l_params = StreamParams {
        remote: Some("127.0.0.1:41000".parse().unwrap()),
        ..params(Codec::Pcmu, None)
    };
    let l1 = engine.add(start, l_params, 3, 0, 0);
    let l2 = engine.add(start, l_params, 4, 0, 0);
    engine.bridge(c, a, None);
    assert!(engine.listen(l1, c) && engine.listen(l2, a));
    let (peer, agent, lsrc): (SocketAddr, SocketAddr, SocketAddr) = (
        PEER.parse().unwrap(),
        AGENT.parse().unwrap(),
        "127.0.0.1:41000".parse().unwrap(),
    );
    let capacities = |e: &Engine| {
        (
            e.streams.capacity(),
            e.free.capacity(),
            e.schedule.capacity(),
            e.events.capacity(),
            e.recordings.capacity(),
        )
    };
    let before = capacities(&engine);
    let mut out = [0u8; 1500];
    let mut pkt = [0u8; 200];
    let mut payload = [0u8; FRAME];
    let mut pcm = [0i16; FRAME];
    let mut sent = [0u64; 2];
    for n in 0..10_000u32 {
        let now = start + PTIME * n + Duration::from_millis(5);
        while let Some(t) = engine.poll_transmit(now, &mut out) {
            if t.stream == l1 || t.stream == l2 {
                sent[usize::from(t.stream == l2)] += 1;
            }
        }
        for (i, x) in pcm.iter_mut().enumerate() {
            *x = (((n as usize * FRAME + i) % 18) as i16 - 9) * 800;
        }
        for (id, from, codec) in [
            (c, peer, Codec::Pcma),
            (a, agent, Codec::Pcmu),
            (l1, lsrc, Codec::Pcmu),
        ] {
            codec.encode(&pcm, &mut payload);
            let seq = n as u16;
            let len = write_packet(
                &mut pkt,
                codec.payload_type(),
                false,
                seq,
                n * 160,
                9,
                &payload,
            )
            .unwrap();
            let _ = engine.handle_datagram(now, id, from, &pkt[..len], &mut out);
        }
        while engine.poll_event().is_some() {}
    }
    assert_eq!(sent, [10_000, 10_000]);
    assert_eq!(capacities(&engine), before);
}
