//! The media driver: one dedicated thread with its own clock runs the sans-IO
//! [`Engine`] for every call, with one non-blocking RTP/RTCP socket pair per leg polled by
//! `mio` (epoll). No thread per call, no allocation per packet.
//!
//! Pacing needs finer timing than epoll's millisecond timeout or a 1 ms timer wheel: the
//! thread polls until just before the next packet is due, then sleeps the remainder with
//! `nanosleep`, and measures how late each paced packet leaves ([`MediaStats`]).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use kald_media::dtmf::Digit;
use kald_media::engine::{Engine, EngineConfig, MediaEvent, RecordingId, StreamId, StreamParams};
use kald_media::prompt::Prompt;

use crate::recorder::{RecCmd, RecKey, Recorder, SECOND_SAMPLES};

/// kald's handle for one call leg's media, chosen by the call handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LegId(pub(crate) u64);

/// What the call handling asks the media thread to do.
// Stop, Bridge, Unbridge and SendDigit are wired for the queues (agents' legs), which come next.
#[allow(dead_code)]
pub(crate) enum Command {
    Open {
        leg: LegId,
        rtp: StdUdpSocket,
        rtcp: StdUdpSocket,
        params: StreamParams,
    },
    Update {
        leg: LegId,
        params: StreamParams,
    },
    Play {
        leg: LegId,
        prompt: Prompt,
        looped: bool,
    },
    Stop {
        leg: LegId,
    },
    Bridge {
        a: LegId,
        b: LegId,
        hold_music: Option<Prompt>,
    },
    Unbridge {
        leg: LegId,
    },
    SendDigit {
        leg: LegId,
        digit: Digit,
    },
    /// `listener` hears both sides of the bridge `target` is in, unheard itself.
    Listen {
        listener: LegId,
        target: LegId,
    },
    /// `listener` stops listening.
    Unlisten {
        listener: LegId,
    },
    /// Record the bridge of `citizen` and `agent` (citizen left, agent right) into `path`.
    Record {
        rec: RecKey,
        citizen: LegId,
        /// `None`: the caller alone (a message; the right channel stays silent).
        agent: Option<LegId>,
        path: std::path::PathBuf,
    },
    /// Stop a recording: close it, or (`discard`, consent withdrawn) delete it.
    StopRecording {
        rec: RecKey,
        discard: bool,
    },
    Close {
        leg: LegId,
    },
    Shutdown,
}

/// What the media thread reports back.
#[derive(Debug)]
pub(crate) enum Report {
    Digit(LegId, Digit),
    PromptFinished(LegId),
    Inactive(LegId),
}

/// Live figures of the media thread, readable from anywhere.
#[derive(Debug)]
pub(crate) struct MediaStats {
    pub(crate) streams: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    /// RTP packets that never arrived (gaps in sequence numbers).
    pub(crate) lost: AtomicU64,
    /// Recordings started.
    pub(crate) recordings: AtomicU64,
    /// How late paced packets left, in 50 µs buckets (the last bucket is ≥ 10 ms).
    lateness: [AtomicU64; 200],
}

impl Default for MediaStats {
    fn default() -> Self {
        Self {
            streams: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            recordings: AtomicU64::new(0),
            lateness: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl MediaStats {
    fn record_lateness(&self, late: Duration) {
        let bucket = usize::try_from(late.as_micros() / 50)
            .unwrap_or(usize::MAX)
            .min(199);
        self.lateness[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The lateness percentile `p` (0–100) of paced packets, in microseconds (bucket upper bound).
    pub(crate) fn lateness_percentile(&self, p: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .lateness
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = ((p / 100.0) * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some((i as u64 + 1) * 50);
            }
        }
        Some(10_000)
    }
}

/// The call handling's side of the media thread.
pub(crate) struct Media {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
    ports: PortPool,
    pub(crate) stats: Arc<MediaStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Media {
    /// Start the media thread. Reports go to `reports`.
    pub(crate) fn start(
        ports: (u16, u16),
        bind_ip: IpAddr,
        reports: tokio::sync::mpsc::UnboundedSender<Report>,
        recorder: Option<Recorder>,
    ) -> anyhow::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(MediaStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("kald-media".into())
            .spawn(move || run(poll, rx, reports, thread_stats, recorder))?;
        Ok(Self {
            commands: tx,
            waker,
            ports: PortPool::new(ports, bind_ip),
            stats,
            thread: Some(thread),
        })
    }

    /// Reserve an RTP/RTCP port pair; returns the sockets and the RTP port.
    pub(crate) fn bind_pair(&mut self) -> anyhow::Result<(StdUdpSocket, StdUdpSocket, u16)> {
        self.ports.bind()
    }

    /// Ask the media thread to do something.
    pub(crate) fn send(&self, cmd: Command) {
        if self.commands.send(cmd).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Stop the thread and wait for it.
    pub(crate) fn shutdown(&mut self) {
        self.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        self.shutdown();
    }
}

const WAKER: Token = Token(usize::MAX);
const RTCP_BIT: usize = 1 << 30;

struct Leg {
    stream: StreamId,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The highest RTP sequence number seen, for counting lost packets.
    last_seq: std::cell::Cell<Option<u16>>,
}

/// Count packets lost before this one from the gap in RTP sequence numbers (reordered and
/// duplicate packets count nothing; a jump of more than 1,000 is a new stream, not a loss).
fn count_loss(last: &std::cell::Cell<Option<u16>>, packet: &[u8], stats: &MediaStats) {
    if packet.len() < 12 || packet[0] >> 6 != 2 || (72..=79).contains(&(packet[1] & 0x7f)) {
        return;
    }
    let seq = u16::from_be_bytes([packet[2], packet[3]]);
    if let Some(prev) = last.get() {
        let gap = seq.wrapping_sub(prev);
        match gap {
            // A duplicate, or a late packet (already counted as lost when the gap opened).
            0 => return,
            g if g > u16::MAX - 100 => return,
            1..=1000 => {
                stats.lost.fetch_add(u64::from(gap - 1), Ordering::Relaxed);
            }
            // A jump: the sender started a new stream; follow it without counting.
            _ => {}
        }
    }
    last.set(Some(seq));
}

/// Recordings in progress: the engine's handle → kald's key and the second being collected.
type Recs = HashMap<RecordingId, (RecKey, Vec<i16>)>;

fn run(
    mut poll: Poll,
    commands: mpsc::Receiver<Command>,
    reports: tokio::sync::mpsc::UnboundedSender<Report>,
    stats: Arc<MediaStats>,
    recorder: Option<Recorder>,
) {
    let mut recs: Recs = HashMap::new();
    raise_priority();
    let mut engine = Engine::new(EngineConfig::default(), 2048);
    let mut events = Events::with_capacity(1024);
    let mut legs: HashMap<LegId, Leg> = HashMap::with_capacity(2048);
    let mut by_stream: Vec<Option<LegId>> = Vec::with_capacity(2048);
    let mut buf = [0u8; 2048];
    let mut out = [0u8; 2048];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    loop {
        // Wake up just before the next paced packet, then sleep the rest precisely.
        let now = Instant::now();
        let due = engine.poll_timeout();
        let timeout = due.map(|d| {
            d.saturating_duration_since(now)
                .saturating_sub(Duration::from_millis(1))
        });
        let timeout = timeout.map(|t| {
            if t < Duration::from_millis(1) {
                Duration::ZERO
            } else {
                t
            }
        });
        if poll.poll(&mut events, timeout).is_err() {
            continue;
        }
        for event in &events {
            let token = event.token();
            if token == WAKER {
                while let Ok(cmd) = commands.try_recv() {
                    if matches!(cmd, Command::Shutdown) {
                        return;
                    }
                    let now = Instant::now();
                    if let Some(rec) = recording_command(
                        &mut engine,
                        &legs,
                        &mut recs,
                        recorder.as_ref(),
                        &cmd,
                        now,
                    ) {
                        if rec {
                            stats.recordings.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    command(
                        &mut engine,
                        &mut poll,
                        &mut legs,
                        &mut by_stream,
                        cmd,
                        now,
                        &mut seed,
                    );
                    stats.streams.store(engine.len() as u64, Ordering::Relaxed);
                }
                continue;
            }
            let index = token.0 & !RTCP_BIT;
            let Some(leg_id) = by_stream.get(index).copied().flatten() else {
                continue;
            };
            let Some(leg) = legs.get(&leg_id) else {
                continue;
            };
            if token.0 & RTCP_BIT != 0 {
                // RTCP is read and discarded for now; it must not fill the socket buffer.
                while leg.rtcp.recv_from(&mut buf).is_ok() {}
                continue;
            }
            loop {
                match leg.rtp.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        count_loss(&leg.last_seq, &buf[..n], &stats);
                        let now = Instant::now();
                        if let Some(t) =
                            engine.handle_datagram(now, leg.stream, from, &buf[..n], &mut out)
                        {
                            if let Some(peer) = by_stream
                                .get(t.stream.index())
                                .copied()
                                .flatten()
                                .and_then(|l| legs.get(&l))
                            {
                                let _ = peer.rtp.send_to(&out[..t.len], t.to);
                                stats.sent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
        // Send every paced packet that is due.
        if let Some(due) = engine.poll_timeout() {
            let now = Instant::now();
            if due > now && due - now < Duration::from_millis(2) {
                std::thread::sleep(due - now);
            }
        }
        let now = Instant::now();
        while let Some(t) = engine.poll_transmit(now, &mut out) {
            if let Some(due) = t.scheduled {
                stats.record_lateness(now.saturating_duration_since(due));
            }
            if let Some(leg) = by_stream
                .get(t.stream.index())
                .copied()
                .flatten()
                .and_then(|l| legs.get(&l))
            {
                let _ = leg.rtp.send_to(&out[..t.len], t.to);
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Recording frames: collected a second at a time for the writer thread.
        while let Some((id, frame)) = engine.poll_recording(now) {
            let (Some((key, buf)), Some(r)) = (recs.get_mut(&id), recorder.as_ref()) else {
                continue;
            };
            buf.extend_from_slice(&frame.samples);
            if buf.len() >= SECOND_SAMPLES {
                let full = std::mem::replace(buf, r.buffer());
                r.send(RecCmd::Frames {
                    key: *key,
                    samples: full,
                });
            }
        }
        while let Some(ev) = engine.poll_event() {
            let (stream, report): (StreamId, fn(LegId) -> Report) = match ev {
                MediaEvent::PromptFinished { stream } => (stream, Report::PromptFinished),
                MediaEvent::Inactive { stream } => (stream, Report::Inactive),
                MediaEvent::Digit { stream, digit } => {
                    if let Some(leg) = by_stream.get(stream.index()).copied().flatten() {
                        let _ = reports.send(Report::Digit(leg, digit));
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(leg) = by_stream.get(stream.index()).copied().flatten() {
                let _ = reports.send(report(leg));
            }
        }
    }
}

/// Recording commands (`Some`: handled; `Some(true)`: a recording started).
fn recording_command(
    engine: &mut Engine,
    legs: &HashMap<LegId, Leg>,
    recs: &mut Recs,
    recorder: Option<&Recorder>,
    cmd: &Command,
    now: Instant,
) -> Option<bool> {
    match cmd {
        Command::Record {
            rec,
            citizen,
            agent,
            path,
        } => {
            let r = recorder?;
            let Some(c) = legs.get(citizen) else {
                tracing::warn!("recording not started: the caller's leg is gone");
                return Some(false);
            };
            let id = match agent {
                Some(agent) => {
                    let Some(a) = legs.get(agent) else {
                        tracing::warn!("recording not started: the agent's leg is gone");
                        return Some(false);
                    };
                    engine.record(now, c.stream, a.stream)
                }
                None => engine.record_one(now, c.stream),
            };
            let Some(id) = id else {
                return Some(false);
            };
            r.send(RecCmd::Start {
                key: *rec,
                path: path.clone(),
            });
            recs.insert(id, (*rec, r.buffer()));
            Some(true)
        }
        Command::StopRecording { rec, discard } => {
            let r = recorder?;
            let id = recs
                .iter()
                .find(|(_, (k, _))| k == rec)
                .map(|(id, _)| *id)?;
            let (key, mut buf) = recs.remove(&id)?;
            if let Some(drain) = engine.stop_recording(now, id) {
                for frame in drain {
                    buf.extend_from_slice(&frame.samples);
                    if buf.len() >= SECOND_SAMPLES {
                        let full = std::mem::replace(&mut buf, r.buffer());
                        r.send(RecCmd::Frames { key, samples: full });
                    }
                }
            }
            if *discard {
                r.send(RecCmd::Discard { key });
            } else {
                if !buf.is_empty() {
                    r.send(RecCmd::Frames { key, samples: buf });
                }
                r.send(RecCmd::Finish { key });
            }
            Some(false)
        }
        _ => None,
    }
}

fn command(
    engine: &mut Engine,
    poll: &mut Poll,
    legs: &mut HashMap<LegId, Leg>,
    by_stream: &mut Vec<Option<LegId>>,
    cmd: Command,
    now: Instant,
    seed: &mut u64,
) {
    let stream = |legs: &HashMap<LegId, Leg>, leg: LegId| legs.get(&leg).map(|l| l.stream);
    match cmd {
        Command::Open {
            leg,
            rtp,
            rtcp,
            params,
        } => {
            if rtp.set_nonblocking(true).is_err() || rtcp.set_nonblocking(true).is_err() {
                return;
            }
            let mut rtp = UdpSocket::from_std(rtp);
            let mut rtcp = UdpSocket::from_std(rtcp);
            // SSRC, sequence and timestamp start at random values (RFC 3550 §5.1).
            let r = splitmix(seed);
            let id = engine.add(now, params, r as u32, (r >> 32) as u16, (r >> 16) as u32);
            let index = id.index();
            if poll
                .registry()
                .register(&mut rtp, Token(index), Interest::READABLE)
                .is_err()
                || poll
                    .registry()
                    .register(&mut rtcp, Token(index | RTCP_BIT), Interest::READABLE)
                    .is_err()
            {
                engine.remove(id);
                return;
            }
            if by_stream.len() <= index {
                by_stream.resize(index + 1, None);
            }
            by_stream[index] = Some(leg);
            legs.insert(
                leg,
                Leg {
                    stream: id,
                    rtp,
                    rtcp,
                    last_seq: std::cell::Cell::new(None),
                },
            );
        }
        Command::Update { leg, params } => {
            if let Some(s) = stream(legs, leg) {
                engine.update(now, s, params);
            }
        }
        Command::Play {
            leg,
            prompt,
            looped,
        } => {
            if let Some(s) = stream(legs, leg) {
                engine.play(s, prompt, looped);
            }
        }
        Command::Stop { leg } => {
            if let Some(s) = stream(legs, leg) {
                engine.stop(s);
            }
        }
        Command::Bridge { a, b, hold_music } => {
            if let (Some(a), Some(b)) = (stream(legs, a), stream(legs, b)) {
                engine.bridge(a, b, hold_music);
            }
        }
        Command::Unbridge { leg } => {
            if let Some(s) = stream(legs, leg) {
                engine.unbridge(s);
            }
        }
        // Handled by `recording_command` before this.
        Command::Record { .. } | Command::StopRecording { .. } => {}
        Command::Listen { listener, target } => {
            if let (Some(l), Some(t)) = (stream(legs, listener), stream(legs, target)) {
                if !engine.listen(l, t) {
                    tracing::info!("listening in: the target leg is not bridged");
                }
            }
        }
        Command::Unlisten { listener } => {
            if let Some(l) = stream(legs, listener) {
                engine.unlisten(l);
            }
        }
        Command::SendDigit { leg, digit } => {
            if let Some(s) = stream(legs, leg) {
                engine.send_digit(s, digit);
            }
        }
        Command::Close { leg } => {
            if let Some(mut l) = legs.remove(&leg) {
                let _ = poll.registry().deregister(&mut l.rtp);
                let _ = poll.registry().deregister(&mut l.rtcp);
                if let Some(slot) = by_stream.get_mut(l.stream.index()) {
                    *slot = None;
                }
                engine.remove(l.stream);
            }
        }
        Command::Shutdown => {}
    }
}

/// Run the media thread under SCHED_FIFO so the SIP loop and other processes on a busy machine
/// cannot delay paced packets (the thread sleeps between packets, so it never hogs a core).
/// It needs CAP_SYS_NICE (root, or `AmbientCapabilities=CAP_SYS_NICE` under systemd); without
/// it the thread keeps the normal policy and says so once.
fn raise_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let result = ThreadPriorityValue::try_from(40u8)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Crossplatform(v),
                ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
            )
            .map_err(|e| format!("{e:?}"))
        });
    match result {
        Ok(()) => tracing::info!("media thread runs with real-time priority (SCHED_FIFO)"),
        Err(e) => {
            tracing::warn!(error = %e, "media thread keeps normal priority; jitter may grow on a busy machine")
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hands out even RTP ports (RTCP on the next odd one) from the configured range, skipping
/// ports another program holds.
struct PortPool {
    low: u16,
    high: u16,
    next: u16,
    ip: IpAddr,
}

impl PortPool {
    fn new((low, high): (u16, u16), ip: IpAddr) -> Self {
        Self {
            low,
            high,
            next: low,
            ip,
        }
    }

    fn bind(&mut self) -> anyhow::Result<(StdUdpSocket, StdUdpSocket, u16)> {
        let pairs = (self.high - self.low).div_ceil(2);
        for _ in 0..pairs {
            let port = self.next;
            self.next = if port + 3 > self.high {
                self.low
            } else {
                port + 2
            };
            let Ok(rtp) = StdUdpSocket::bind(SocketAddr::new(self.ip, port)) else {
                continue;
            };
            let Ok(rtcp) = StdUdpSocket::bind(SocketAddr::new(self.ip, port + 1)) else {
                continue;
            };
            return Ok((rtp, rtcp, port));
        }
        anyhow::bail!("no free RTP port pair in {}-{}", self.low, self.high)
    }
}

#[cfg(test)]
mod loss_tests {
    use super::*;

    fn packet(seq: u16) -> [u8; 12] {
        let mut p = [0u8; 12];
        p[0] = 0x80;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p
    }

    #[test]
    fn gaps_count_as_lost_and_reordering_does_not() {
        let stats = MediaStats::default();
        let last = std::cell::Cell::new(None);
        for seq in [10u16, 11, 14, 13, 15, 15, 30000, 30001, 30002] {
            count_loss(&last, &packet(seq), &stats);
        }
        // 12 and 13 missing after 14 (13 arrives late: already counted); 15 twice counts once;
        // 15 → 30000 is a new stream (followed, not a loss).
        assert_eq!(stats.lost.load(Ordering::Relaxed), 2);
        assert_eq!(last.get(), Some(30002));
        let last = std::cell::Cell::new(None);
        for seq in [65534u16, 1] {
            count_loss(&last, &packet(seq), &stats);
        }
        assert_eq!(
            stats.lost.load(Ordering::Relaxed),
            4,
            "65535 and 0 lost across the wrap"
        );
    }
}
