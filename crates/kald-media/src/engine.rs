//! The media engine: every RTP stream of every call, paced on a 20 ms clock per stream.
//!
//! One [`Engine`] serves all calls. It owns no socket and reads no clock: the driver (a
//! dedicated media thread in `kald`) feeds each received datagram with
//! [`Engine::handle_datagram`], sends what [`Engine::poll_transmit`] writes into its buffer,
//! and wakes up at [`Engine::poll_timeout`]. Events (digits, prompt finished, a dead stream)
//! come out of [`Engine::poll_event`].
//!
//! Per stream the engine does what a telephony media server must:
//! - **Pacing**: one packet every 20 ms from the stream's start, by schedule, not by sleep
//!   deltas, so minutes of playback do not drift; sequence numbers and timestamps advance by
//!   one packet and 160 samples; the marker bit starts each talk spurt (RFC 3551 §4.1).
//! - **Symmetric RTP, safely**: after each offer/answer the first packet's source is
//!   latched and then only that source is accepted (the "RTP bleed" attack, Asterisk
//!   AST-2017-008, came from latching without limits).
//! - **DTMF in**: RFC 4733 events with de-duplication, or in-band tones (Goertzel) when no
//!   telephone-event was negotiated. SIP INFO digits arrive through the SIP layer.
//! - **Bridging**: two legs relay each other's audio, transcoding PCMU⇄PCMA when they differ
//!   and passing RFC 4733 events through; a leg on hold makes the other hear hold music.
//! - **Inactivity**: no packet for the configured time (not while on hold) ends the stream.
//! - **Listening in** (medlyt): a third stream hears the mix of both directions of a bridge
//!   ([`Engine::listen`]); what it sends reaches nobody, its digits are still reported.
//!
//! Nothing here allocates per packet: buffers are the caller's or fixed-size.
//!
//! # Listening in
//!
//! Every bridged leg keeps the last [`RING`] samples it received, decoded, in a fixed ring
//! (written as packets arrive, in arrival order; RTP timestamps are not used). A listener is
//! paced on its own 20 ms clock like any other stream; at each tick it reads the next 160
//! samples after its own cursor in each party's ring, sums them with saturation and encodes
//! the sum with its own codec. A party with nothing new since the last tick (lost packet,
//! silence suppression, hold) contributes silence for that tick, so a party is heard at most
//! once per frame and never repeated. Packets arriving in bursts are absorbed: a cursor may
//! fall behind by up to [`LISTEN_MAX_LAG`] samples (60 ms) before it skips ahead to the
//! newest frame, which also bounds the delay when a party's clock runs fast. Each listener
//! has its own cursors, so any number can listen to one bridge. The bridged legs' relay
//! path is untouched: their packets are byte-for-byte what they would be without listeners.
//!
//! [`Engine::listen`] takes either party as target; it is refused (returns `false`) when the
//! target is not bridged or the listener is missing, bridged, or a party itself. A listener
//! already listening elsewhere moves to the new bridge. While listening the mix replaces any
//! prompt; DTMF sent with [`Engine::send_digit`] still goes out. Bridging a listener ends its
//! listening (no event). [`Engine::unlisten`] stops it (no event); silence follows.
//!
//! When the bridge ends ([`Engine::unbridge`], [`Engine::remove`] of a party, or a party
//! bridged elsewhere) each listener gets [`MediaEvent::ListenTargetGone`] and goes on
//! sending silence every 20 ms, as any unbridged stream does, until the caller removes it or
//! points it at another bridge.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dtmf::{Digit, InbandDetector, Rfc4733Receiver, Rfc4733Sender};
use crate::g711::Codec;
use crate::prompt::Prompt;
use crate::recorder::{Channel, Drain, Frame, Recorder};
use crate::rtp::{write_packet, RtpView};

/// Samples per 20 ms packet at 8 kHz.
pub const FRAME: usize = 160;
/// The packet interval.
pub const PTIME: Duration = Duration::from_millis(20);
/// Received samples kept per stream for listeners (160 ms).
pub const RING: usize = FRAME * 8;
/// How far (in samples) a listener may fall behind a party before it skips ahead.
pub const LISTEN_MAX_LAG: usize = FRAME * 3;

/// A stream's handle, valid until [`Engine::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(u32);

impl StreamId {
    /// The index, for the driver's socket table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What was agreed in SDP for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    /// The audio codec.
    pub codec: Codec,
    /// The telephone-event payload type, if negotiated.
    pub telephone_event: Option<u8>,
    /// Where to send, from SDP (`None` while on hold with `c=0.0.0.0` or port 0).
    pub remote: Option<SocketAddr>,
    /// Whether kald sends audio (the peer's direction allows receiving).
    pub send: bool,
    /// Whether the peer sends audio (not on hold).
    pub receive: bool,
}

/// Settings shared by all streams.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// A stream that receives nothing for this long (while not on hold) is reported dead.
    pub inactivity: Duration,
    /// How many packets after an offer/answer may set the latched source.
    pub latch_packets: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            inactivity: Duration::from_secs(30),
            latch_packets: 4,
        }
    }
}

/// Something the call handling must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A DTMF digit arrived (RFC 4733 or in-band).
    Digit {
        /// The stream.
        stream: StreamId,
        /// The digit.
        digit: Digit,
    },
    /// A prompt that does not loop has been sent completely.
    PromptFinished {
        /// The stream.
        stream: StreamId,
    },
    /// No RTP for [`EngineConfig::inactivity`] while the peer should be sending.
    Inactive {
        /// The stream.
        stream: StreamId,
    },
    /// The bridge a listener listened to has ended; the listener now sends silence.
    ListenTargetGone {
        /// The listening stream.
        listener: StreamId,
    },
}

/// A packet for the driver to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// From which stream's socket.
    pub stream: StreamId,
    /// To where.
    pub to: SocketAddr,
    /// Its length in the caller's buffer.
    pub len: usize,
    /// When a paced packet was due (the driver measures its lateness); `None` when relayed.
    pub scheduled: Option<Instant>,
}

/// A recording's handle, valid until [`Engine::stop_recording`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordingId(u32);

/// What a stream sends when it is not relaying a bridged peer.
#[derive(Debug, Clone)]
enum Source {
    Silence,
    Prompt {
        prompt: Prompt,
        frame: usize,
        looped: bool,
    },
}

/// The decoded audio a stream received most recently, for listeners (fixed size).
#[derive(Debug)]
struct PcmRing {
    buf: [i16; RING],
    /// Samples written since the stream started; the write position is `written % RING`.
    written: u64,
}

impl PcmRing {
    fn new() -> Self {
        Self {
            buf: [0; RING],
            written: 0,
        }
    }

    fn write(&mut self, pcm: &[i16]) {
        for &x in pcm {
            if let Some(slot) = self.buf.get_mut((self.written % RING as u64) as usize) {
                *slot = x;
            }
            self.written += 1;
        }
    }

    /// Add the next frame after `cursor` into `mix` (silence past what was received) and
    /// advance `cursor`; a cursor too far behind skips ahead to the newest frame first.
    fn mix_into(&self, cursor: &mut u64, mix: &mut [i16; FRAME]) {
        if self.written.saturating_sub(*cursor) > LISTEN_MAX_LAG as u64 || *cursor > self.written {
            *cursor = self.written.saturating_sub(FRAME as u64);
        }
        for m in mix.iter_mut() {
            if *cursor >= self.written {
                break;
            }
            let x = self.buf.get((*cursor % RING as u64) as usize).copied();
            *m = m.saturating_add(x.unwrap_or(0));
            *cursor += 1;
        }
    }
}

/// What a listening stream listens to: both parties of a bridge and where it is in each.
#[derive(Debug, Clone, Copy)]
struct Listen {
    parties: [StreamId; 2],
    cursors: [u64; 2],
}

/// Counters of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Packets received and accepted.
    pub received: u64,
    /// Packets sent.
    pub sent: u64,
    /// Packets dropped because they came from another source than the latched one.
    pub foreign: u64,
    /// Packets dropped as malformed or of an unknown payload type.
    pub malformed: u64,
}

#[derive(Debug)]
struct Stream {
    params: StreamParams,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    marker: bool,
    /// Start of this stream's schedule and the count of packets sent on it.
    epoch: Instant,
    ticks: u64,
    source: Source,
    bridge: Option<StreamId>,
    hold_music: Option<Prompt>,
    latched: Option<SocketAddr>,
    latch_left: u32,
    last_rx: Instant,
    dtmf_rx: Rfc4733Receiver,
    inband: Option<InbandDetector>,
    dtmf_tx: Option<Rfc4733Sender>,
    /// Peer timestamp → our timestamp offset while relaying, per peer SSRC.
    relay: Option<(u32, u32)>,
    inactive_reported: bool,
    stats: StreamStats,
    generation: u32,
    /// The recording this stream's received audio goes to, and as which channel.
    recording: Option<(u32, Channel)>,
    /// The bridge this stream listens to (it then sends the mix of both directions).
    listen: Option<Listen>,
    /// What this stream received lately, decoded, while bridged (for listeners).
    rx: PcmRing,
}

/// The media engine. See the module documentation for the run loop.
pub struct Engine {
    config: EngineConfig,
    streams: Vec<Option<Stream>>,
    free: Vec<u32>,
    /// (due, stream, generation) — stale entries are skipped when popped.
    schedule: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    events: VecDeque<MediaEvent>,
    generation: u32,
    recordings: Vec<Option<Recorder>>,
}

impl Engine {
    /// An engine with room for `capacity` streams before it allocates.
    pub fn new(config: EngineConfig, capacity: usize) -> Self {
        Self {
            config,
            streams: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            schedule: BinaryHeap::with_capacity(capacity * 2),
            events: VecDeque::with_capacity(capacity.max(16)),
            generation: 0,
            recordings: Vec::new(),
        }
    }

    /// Start a stream at `now`. `ssrc`, `seq` and `timestamp` are random starting values
    /// (RFC 3550 §5.1), chosen by the caller so the engine stays deterministic.
    pub fn add(
        &mut self,
        now: Instant,
        params: StreamParams,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
    ) -> StreamId {
        self.generation = self.generation.wrapping_add(1);
        let stream = Stream {
            params,
            ssrc,
            seq,
            timestamp,
            marker: true,
            epoch: now,
            ticks: 0,
            source: Source::Silence,
            bridge: None,
            hold_music: None,
            latched: None,
            latch_left: self.config.latch_packets,
            last_rx: now,
            dtmf_rx: Rfc4733Receiver::new(),
            inband: params.telephone_event.is_none().then(InbandDetector::new),
            dtmf_tx: None,
            relay: None,
            inactive_reported: false,
            stats: StreamStats::default(),
            generation: self.generation,
            recording: None,
            listen: None,
            rx: PcmRing::new(),
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.streams[i as usize] = Some(stream);
                i
            }
            None => {
                self.streams.push(Some(stream));
                (self.streams.len() - 1) as u32
            }
        };
        self.schedule.push(Reverse((now, id, self.generation)));
        StreamId(id)
    }

    /// Stop a stream; its id may be reused.
    pub fn remove(&mut self, id: StreamId) {
        if let Some(peer) = self.stream(id).and_then(|s| s.bridge) {
            self.unbridge_one(peer);
        }
        if let Some(slot) = self.streams.get_mut(id.index()) {
            if slot.take().is_some() {
                self.free.push(id.0);
            }
        }
    }

    /// Number of live streams.
    pub fn len(&self) -> usize {
        self.streams.len() - self.free.len()
    }

    /// Whether there are no live streams.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A stream's counters.
    pub fn stats(&self, id: StreamId) -> Option<StreamStats> {
        self.stream(id).map(|s| s.stats)
    }

    /// The source kald accepts packets from (after latching), if known.
    pub fn peer(&self, id: StreamId) -> Option<SocketAddr> {
        self.stream(id).and_then(|s| s.latched.or(s.params.remote))
    }

    /// A new offer/answer: new parameters, and the latch opens again for a few packets.
    pub fn update(&mut self, now: Instant, id: StreamId, params: StreamParams) {
        let latch = self.config.latch_packets;
        let Some(s) = self.stream_mut(id) else { return };
        if s.params.codec != params.codec {
            s.marker = true;
        }
        if s.params.telephone_event.is_none() != params.telephone_event.is_none() {
            s.inband = params.telephone_event.is_none().then(InbandDetector::new);
        }
        s.params = params;
        s.latched = None;
        s.latch_left = latch;
        s.last_rx = now;
        s.inactive_reported = false;
        let peer = s.bridge;
        if let Some(peer) = peer {
            self.apply_hold_music(peer);
        }
    }

    /// Play a prompt from its start; `looped` repeats it (hold music).
    pub fn play(&mut self, id: StreamId, prompt: Prompt, looped: bool) {
        if let Some(s) = self.stream_mut(id) {
            s.source = Source::Prompt {
                prompt,
                frame: 0,
                looped,
            };
            s.marker = true;
        }
    }

    /// Stop playing; the stream sends silence.
    pub fn stop(&mut self, id: StreamId) {
        if let Some(s) = self.stream_mut(id) {
            s.source = Source::Silence;
        }
    }

    /// Send a DTMF digit as RFC 4733 events (when negotiated).
    pub fn send_digit(&mut self, id: StreamId, digit: Digit) {
        if let Some(s) = self.stream_mut(id) {
            if s.params.telephone_event.is_some() {
                s.dtmf_tx = Some(Rfc4733Sender::new(digit, s.timestamp, 160 * 5));
            }
        }
    }

    /// Bridge two streams: each relays what the other receives. `hold_music` is what a leg
    /// hears while the other holds. An old peer is unbridged; a listening leg stops listening.
    pub fn bridge(&mut self, a: StreamId, b: StreamId, hold_music: Option<Prompt>) {
        if a == b || self.stream(a).is_none() || self.stream(b).is_none() {
            return;
        }
        for (x, y) in [(a, b), (b, a)] {
            if self
                .stream(x)
                .and_then(|s| s.bridge)
                .is_some_and(|p| p != y)
            {
                self.unbridge(x);
            }
        }
        for (x, y) in [(a, b), (b, a)] {
            if let Some(s) = self.stream_mut(x) {
                s.bridge = Some(y);
                s.relay = None;
                s.source = Source::Silence;
                s.hold_music = hold_music.clone();
                s.listen = None;
            }
        }
        self.apply_hold_music(a);
        self.apply_hold_music(b);
    }

    /// Undo a bridge; both streams send silence.
    pub fn unbridge(&mut self, a: StreamId) {
        if let Some(b) = self.stream(a).and_then(|s| s.bridge) {
            self.unbridge_one(b);
        }
        self.unbridge_one(a);
    }

    fn unbridge_one(&mut self, id: StreamId) {
        let Some(s) = self.stream_mut(id) else { return };
        let was_bridged = s.bridge.take().is_some();
        s.relay = None;
        s.source = Source::Silence;
        if was_bridged {
            self.end_listeners(id);
        }
    }

    /// Listen in on `target`'s bridge (see the module docs); `false`, and no change, if refused.
    pub fn listen(&mut self, listener: StreamId, target: StreamId) -> bool {
        let Some(peer) = self.stream(target).and_then(|s| s.bridge) else {
            return false;
        };
        if listener == target || listener == peer {
            return false;
        }
        if self.stream(listener).is_none_or(|s| s.bridge.is_some()) {
            return false;
        }
        let parties = [target, peer];
        let cursors = parties.map(|p| self.stream(p).map_or(0, |s| s.rx.written));
        let Some(s) = self.stream_mut(listener) else {
            return false;
        };
        s.listen = Some(Listen { parties, cursors });
        s.source = Source::Silence;
        s.marker = true;
        true
    }

    /// Stop listening in; the stream sends silence. No event is raised.
    pub fn unlisten(&mut self, listener: StreamId) {
        if let Some(s) = self.stream_mut(listener) {
            s.listen = None;
        }
    }

    /// Whether `listener` is listening in on a bridge.
    pub fn is_listening(&self, listener: StreamId) -> bool {
        self.stream(listener).is_some_and(|s| s.listen.is_some())
    }

    /// The bridge with party `party` has ended: its listeners stop and are told.
    fn end_listeners(&mut self, party: StreamId) {
        for (i, slot) in self.streams.iter_mut().enumerate() {
            let Some(s) = slot.as_mut() else { continue };
            if s.listen.is_some_and(|l| l.parties.contains(&party)) {
                s.listen = None;
                self.events.push_back(MediaEvent::ListenTargetGone {
                    listener: StreamId(i as u32),
                });
            }
        }
    }

    /// Hold music for `id` while its bridged peer does not send (RFC 3264 hold).
    fn apply_hold_music(&mut self, id: StreamId) {
        let Some(peer) = self.stream(id).and_then(|s| s.bridge) else {
            return;
        };
        let peer_holds = self.stream(peer).is_some_and(|p| !p.params.receive);
        let Some(s) = self.stream_mut(id) else { return };
        match (&s.source, peer_holds, s.hold_music.clone()) {
            (Source::Silence, true, Some(music)) => {
                s.source = Source::Prompt {
                    prompt: music,
                    frame: 0,
                    looped: true,
                };
                s.marker = true;
            }
            (Source::Prompt { looped: true, .. }, false, _) => s.source = Source::Silence,
            _ => {}
        }
    }

    /// Record two streams as one stereo call: what `citizen` receives on the left channel,
    /// what `agent` receives on the right, from `now` on. Frames come out of
    /// [`Engine::poll_recording`].
    pub fn record(
        &mut self,
        now: Instant,
        citizen: StreamId,
        agent: StreamId,
    ) -> Option<RecordingId> {
        if self.stream(citizen).is_none() || self.stream(agent).is_none() {
            return None;
        }
        let index = match self.recordings.iter().position(Option::is_none) {
            Some(i) => {
                self.recordings[i] = Some(Recorder::new(now));
                i
            }
            None => {
                self.recordings.push(Some(Recorder::new(now)));
                self.recordings.len() - 1
            }
        };
        let index = u32::try_from(index).ok()?;
        for (id, channel) in [(citizen, Channel::Citizen), (agent, Channel::Agent)] {
            if let Some(s) = self.stream_mut(id) {
                s.recording = Some((index, channel));
            }
        }
        Some(RecordingId(index))
    }

    /// Record one stream alone (a caller's spoken message): what it receives on the left
    /// (citizen) channel, silence on the right, from `now` on.
    pub fn record_one(&mut self, now: Instant, citizen: StreamId) -> Option<RecordingId> {
        self.stream(citizen)?;
        let index = match self.recordings.iter().position(Option::is_none) {
            Some(i) => {
                self.recordings[i] = Some(Recorder::new(now));
                i
            }
            None => {
                self.recordings.push(Some(Recorder::new(now)));
                self.recordings.len() - 1
            }
        };
        let index = u32::try_from(index).ok()?;
        if let Some(s) = self.stream_mut(citizen) {
            s.recording = Some((index, Channel::Citizen));
        }
        Some(RecordingId(index))
    }

    /// The next finished 20 ms stereo frame of any recording, if one is due at `now`.
    pub fn poll_recording(&mut self, now: Instant) -> Option<(RecordingId, Frame)> {
        self.recordings.iter_mut().enumerate().find_map(|(i, r)| {
            r.as_mut()?
                .poll_frame(now)
                .map(|f| (RecordingId(i as u32), f))
        })
    }

    /// Stop a recording at `now` (hang-up or consent withdrawn); the rest of its frames follow.
    pub fn stop_recording(&mut self, now: Instant, id: RecordingId) -> Option<Drain> {
        for s in self.streams.iter_mut().flatten() {
            if s.recording.is_some_and(|(r, _)| r == id.0) {
                s.recording = None;
            }
        }
        let r = self.recordings.get_mut(id.0 as usize)?.take()?;
        Some(r.finish(now))
    }

    /// A datagram arrived on stream `id`'s socket from `from`. Returns a packet to relay to
    /// the bridged peer, written into `out`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        id: StreamId,
        from: SocketAddr,
        data: &[u8],
        out: &mut [u8],
    ) -> Option<Transmit> {
        let s = self.stream_mut(id)?;
        let Ok(pkt) = RtpView::parse(data) else {
            s.stats.malformed += 1;
            return None;
        };
        // Symmetric RTP with a bounded latch window (AST-2017-008).
        match s.latched {
            Some(addr) if addr != from => {
                s.stats.foreign += 1;
                return None;
            }
            Some(_) => {}
            None if s.latch_left > 0 => {
                s.latch_left -= 1;
                s.latched = Some(from);
            }
            None => {
                if s.params.remote != Some(from) {
                    s.stats.foreign += 1;
                    return None;
                }
                s.latched = Some(from);
            }
        }
        let is_event = s.params.telephone_event == Some(pkt.payload_type);
        let is_audio = Codec::from_payload_type(pkt.payload_type) == Some(s.params.codec);
        if !is_event && !is_audio {
            s.stats.malformed += 1;
            return None;
        }
        s.stats.received += 1;
        s.last_rx = now;
        s.inactive_reported = false;
        let mut digit = None;
        let recording = s.recording;
        let bridged = s.bridge.is_some();
        if is_event {
            digit = s.dtmf_rx.handle(pkt.timestamp, pkt.marker, pkt.payload);
        } else if s.inband.is_some() || recording.is_some() || bridged {
            let mut pcm = [0i16; 480];
            let n = pkt.payload.len().min(pcm.len());
            s.params.codec.decode(&pkt.payload[..n], &mut pcm[..n]);
            if let Some(det) = s.inband.as_mut() {
                digit = det.push(&pcm[..n]);
            }
            if bridged {
                s.rx.write(&pcm[..n]);
            }
            if let Some((rec, channel)) = recording {
                if let Some(Some(r)) = self.recordings.get_mut(rec as usize) {
                    // A packet the recorder refuses (odd length) is only lost from the file.
                    let _ = r.push(
                        now,
                        channel,
                        pkt.ssrc,
                        pkt.sequence,
                        pkt.timestamp,
                        &pcm[..n],
                    );
                }
            }
        }
        if let Some(digit) = digit {
            self.events
                .push_back(MediaEvent::Digit { stream: id, digit });
        }
        self.relay(id, &pkt, is_event, out)
    }

    /// Relay a received packet to the bridged peer, re-stamped with the peer stream's SSRC,
    /// sequence and timestamp base.
    fn relay(
        &mut self,
        from_id: StreamId,
        pkt: &RtpView<'_>,
        is_event: bool,
        out: &mut [u8],
    ) -> Option<Transmit> {
        let from_codec = self.stream(from_id)?.params.codec;
        let to_id = self.stream(from_id)?.bridge?;
        let to = self.stream_mut(to_id)?;
        if !to.params.send {
            return None;
        }
        let dest = to.latched.or(to.params.remote)?;
        let (pt, payload_len) = if is_event {
            let pt = to.params.telephone_event?;
            let n = pkt.payload.len().min(out.len().saturating_sub(12));
            out.get_mut(12..12 + n)?.copy_from_slice(&pkt.payload[..n]);
            (pt, n)
        } else {
            let n = pkt.payload.len().min(out.len().saturating_sub(12)).min(480);
            let body = out.get_mut(12..12 + n)?;
            if from_codec == to.params.codec {
                body.copy_from_slice(&pkt.payload[..n]);
            } else {
                crate::g711::transcode(from_codec, to.params.codec, &pkt.payload[..n], body);
            }
            (to.params.codec.payload_type(), n)
        };
        // Keep the peer's timing: map its timestamps onto ours with a fixed offset per SSRC.
        let offset = match to.relay {
            Some((ssrc, off)) if ssrc == pkt.ssrc => off,
            _ => {
                let off = to.timestamp.wrapping_sub(pkt.timestamp);
                to.relay = Some((pkt.ssrc, off));
                to.marker = true;
                off
            }
        };
        let ts = pkt.timestamp.wrapping_add(offset);
        let marker = pkt.marker || std::mem::take(&mut to.marker);
        to.seq = to.seq.wrapping_add(1);
        if !is_event {
            to.timestamp = ts.wrapping_add(payload_len as u32);
        }
        let mut payload = [0u8; 480];
        let p = out.get(12..12 + payload_len)?;
        payload[..payload_len].copy_from_slice(p);
        let len = write_packet(
            out,
            pt,
            marker,
            to.seq,
            ts,
            to.ssrc,
            &payload[..payload_len],
        )?;
        to.stats.sent += 1;
        Some(Transmit {
            stream: to_id,
            to: dest,
            len,
            scheduled: None,
        })
    }

    /// The next paced packet due at `now`, written into `out`. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        loop {
            let Reverse((due, idx, generation)) = *self.schedule.peek()?;
            if due > now {
                return None;
            }
            self.schedule.pop();
            let id = StreamId(idx);
            let inactivity = self.config.inactivity;
            let Some(s) = self.stream_mut(id).filter(|s| s.generation == generation) else {
                continue;
            };
            s.ticks += 1;
            let next = s.epoch + PTIME * u32::try_from(s.ticks).unwrap_or(u32::MAX);
            let generation = s.generation;
            // Inactivity is checked on the same clock.
            if s.params.receive
                && !s.inactive_reported
                && now.duration_since(s.last_rx) >= inactivity
            {
                s.inactive_reported = true;
                self.events.push_back(MediaEvent::Inactive { stream: id });
            }
            self.schedule.push(Reverse((next, idx, generation)));
            if let Some(t) = self.tick(id, out) {
                return Some(Transmit {
                    scheduled: Some(due),
                    ..t
                });
            }
        }
    }

    /// Produce this stream's packet for one 20 ms tick, if it sends one.
    fn tick(&mut self, id: StreamId, out: &mut [u8]) -> Option<Transmit> {
        let s = self.stream_mut(id)?;
        let bridged = s.bridge.is_some();
        let dest = s.latched.or(s.params.remote);
        // DTMF out takes precedence over audio for its duration.
        if let Some(tx) = s.dtmf_tx.as_mut() {
            let mut ev = [0u8; 4];
            match tx.next_packet(&mut ev) {
                Some((marker, ts)) => {
                    let pt = s.params.telephone_event?;
                    s.seq = s.seq.wrapping_add(1);
                    let len = write_packet(out, pt, marker, s.seq, ts, s.ssrc, &ev)?;
                    s.stats.sent += 1;
                    return Some(Transmit {
                        stream: id,
                        to: dest?,
                        len,
                        scheduled: None,
                    });
                }
                None => s.dtmf_tx = None,
            }
        }
        let playing = matches!(s.source, Source::Prompt { .. });
        if bridged && !playing {
            // The peer's packets are relayed as they arrive; nothing to pace.
            return None;
        }
        let mut pcm = [0i16; FRAME];
        if let Some(mut listen) = s.listen {
            // Listening in: the mix of both parties replaces any prompt.
            for (party, cursor) in listen.parties.iter().zip(listen.cursors.iter_mut()) {
                if let Some(p) = self.stream(*party) {
                    p.rx.mix_into(cursor, &mut pcm);
                }
            }
            if let Some(s) = self.stream_mut(id) {
                s.listen = Some(listen);
            }
        } else {
            let mut finished = false;
            if let Source::Prompt {
                prompt,
                frame,
                looped,
            } = &mut s.source
            {
                if *frame >= prompt.frames_20ms() && *looped {
                    *frame = 0;
                }
                if *frame < prompt.frames_20ms() {
                    prompt.frame(*frame, &mut pcm);
                    *frame += 1;
                }
                finished = *frame >= prompt.frames_20ms() && !*looped;
            }
            if finished {
                s.source = Source::Silence;
                self.events
                    .push_back(MediaEvent::PromptFinished { stream: id });
            }
        }
        let s = self.stream_mut(id)?;
        s.timestamp = s.timestamp.wrapping_add(FRAME as u32);
        if !s.params.send {
            return None;
        }
        let dest = dest?;
        let mut payload = [0u8; FRAME];
        s.params.codec.encode(&pcm, &mut payload);
        s.seq = s.seq.wrapping_add(1);
        let marker = std::mem::take(&mut s.marker);
        let len = write_packet(
            out,
            s.params.codec.payload_type(),
            marker,
            s.seq,
            s.timestamp.wrapping_sub(FRAME as u32),
            s.ssrc,
            &payload,
        )?;
        s.stats.sent += 1;
        Some(Transmit {
            stream: id,
            to: dest,
            len,
            scheduled: None,
        })
    }

    /// When to call [`Engine::poll_transmit`] (or [`Engine::poll_recording`]) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let paced = self.schedule.peek().map(|Reverse((t, _, _))| *t);
        let recorded = self
            .recordings
            .iter()
            .flatten()
            .filter_map(Recorder::poll_timeout)
            .min();
        paced.into_iter().chain(recorded).min()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    fn stream(&self, id: StreamId) -> Option<&Stream> {
        self.streams.get(id.index()).and_then(Option::as_ref)
    }

    fn stream_mut(&mut self, id: StreamId) -> Option<&mut Stream> {
        self.streams.get_mut(id.index()).and_then(Option::as_mut)
    }
}

#[cfg(test)]
mod tests;
