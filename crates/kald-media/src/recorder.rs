//! Call recorder: two RTP audio streams (citizen, agent) in, one aligned stereo WAV out.
//!
//! Consented calls are recorded, and a recording is a legal document: it must survive a
//! crash of the process and the two parties must line up in time. The module has two halves:
//!
//! * [`Recorder`] decides and does no I/O. [`Recorder::push`] takes the decoded audio of one
//!   received RTP packet of one [`Channel`] together with the time it arrived;
//!   [`Recorder::poll_frame`] hands out 20 ms stereo [`Frame`]s (8 kHz, 16 bit, interleaved
//!   left = citizen, right = agent) on a 20 ms clock, and [`Recorder::poll_timeout`] says when
//!   the next one is due. Time is always a parameter (`now`).
//! * [`Sink`] / [`WavSink`] write frames through any `Write + Seek` (a file, or a
//!   `Cursor<Vec<u8>>` in tests) and checkpoint the WAV header once per second of audio, so a
//!   crash loses at most the last second. [`repair_wav`] fixes the header of a recording left
//!   behind by a crash, and leaves a correct file untouched.
//!
//! # Timeline and alignment
//!
//! The output timeline starts at the `start` instant given to [`Recorder::new`]; position `p`
//! (in samples) is the wall-clock instant `start + p / 8000 s`. Each channel maps RTP
//! timestamps to positions. The mapping is anchored on the wall clock: the first packet of a
//! channel is placed at the position of the instant it arrived, so a channel that starts 1 s
//! later starts 1 s later in the file, and a channel that has received nothing yet (agent not
//! answered, muted) is silence. Later packets are placed by their timestamp relative to that
//! anchor (wraparound of the 16-bit sequence numbers and 32-bit timestamps is handled), so
//! reordered packets land where they belong and gaps (loss, DTX silence suppression) stay
//! silent.
//!
//! The mapping then follows the wall clock. Per channel the recorder tracks, in windows of
//! 1 s, the lateness of the earliest packet (arrival position minus mapped position; the
//! least-delayed packet is the best measure of the sender's clock against ours):
//!
//! * after a stream's first window the mapping settles on that earliest packet instead of the
//!   first one, which may itself have been delayed by jitter (moves of 1 ms or more);
//! * afterwards, when the minimum is off by more than 10 ms in two windows in a row (sender
//!   clock drift, a lasting change of network delay), or in one window when packets are about
//!   to miss their deadline, the mapping moves by that amount.
//!
//! Each move inserts a few milliseconds of silence or overwrites as much; all are counted in
//! [`ChannelStats`]. This keeps each channel within about 10 ms of the wall clock, hence the
//! two channels within 20 ms of each other, for calls of any length. A one-off delay spike
//! does not move the mapping: packets later than the jitter depth are dropped instead.
//!
//! A new SSRC (or a same-SSRC jump of timestamps and sequence numbers that no reordering
//! explains) re-anchors the mapping at the current write position of that channel: the new
//! stream continues where the channel's audio is now, i.e. its first packet is placed as late
//! as the old stream's packets recently arrived, and settles like any stream after a second.
//! Straggling packets of the old stream still fill in audio before the switch point, never
//! after it; an old SSRC that comes back later is a new anchor again.
//!
//! # Jitter buffer and pacing
//!
//! Frame `n` (0-based) covers positions `160n .. 160n + 160` and is due at
//! `start + (n + 1) · 20 ms + depth`, where `depth` is the jitter depth
//! ([`RecorderConfig::jitter_depth`], default 60 ms): a packet may arrive up to `depth` later
//! than its mapped position and still be recorded; older ones are dropped
//! ([`PushOutcome::Late`]). Each channel's buffer is a ring preallocated at construction;
//! pushing and polling do not allocate. The caller should drain [`Recorder::poll_frame`] until
//! it returns `None` whenever its timer fires (and at least every second).
//!
//! # End of the call
//!
//! [`Recorder::finish`] consumes the recorder and returns a [`Drain`] iterator over the
//! remaining frames, due or not, up to the later of the hang-up instant and the end of the
//! buffered audio; the last frame is padded with silence.
//!
//! # Crash safety
//!
//! [`WavSink`] writes each frame straight through to `W` (hound does no buffering; pass a
//! `File`, or a `BufWriter`, which each checkpoint flushes) and rewrites the RIFF and data
//! sizes of the header (hound's `flush`) every [`WAV_FLUSH_FRAMES`] frames, i.e. every second:
//! a process that dies leaves a file that players read up to its last checkpoint, at most one
//! second short. A sink dropped without [`Sink::finish`] still gets its header updated by
//! hound's destructor. After a failed write the sink refuses further frames
//! ([`RecorderError::SinkFailed`]), because a partial write would swap the channels of
//! everything after it. Power loss is the file system's concern (`File::sync_data`).
//!
//! [`repair_wav`], run at start-up over recordings left behind, extends the data chunk to the
//! end of the file rounded down to whole sample frames, so audio written after the last
//! checkpoint is recovered too; the bytes of a cut sample are left outside the RIFF chunk
//! ([`RepairOutcome::Repaired`] says where to truncate). A file whose header already matches,
//! including one with further chunks after its data chunk, is reported as
//! [`RepairOutcome::AlreadyValid`] and not written to.
//!
//! # Example
//!
//! ```no_run
//! # fn demo(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! use kald_media::recorder::{Channel, Recorder, Sink, WavSink};
//! use std::time::Instant;
//! let now = Instant::now; // the driver's clock: the recorder itself never reads one
//! let mut sink: Box<dyn Sink> = Box::new(WavSink::new(std::fs::File::create(path)?)?);
//! let mut rec = Recorder::new(now());
//! // For each received, decoded RTP packet:
//! let samples = [0i16; 160];
//! rec.push(now(), Channel::Citizen, 0x1234, 1, 160, &samples)?;
//! // Whenever the timer at `rec.poll_timeout()` fires:
//! while let Some(frame) = rec.poll_frame(now()) {
//!     sink.write_frame(&frame)?;
//! }
//! // At hang-up:
//! for frame in rec.finish(now()) {
//!     sink.write_frame(&frame)?;
//! }
//! sink.finish()?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

/// Sample rate of the recording and of the pushed audio, in Hz.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples per channel in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;
/// Interleaved samples (left, right) in one 20 ms stereo frame.
pub const FRAME_LEN: usize = 2 * FRAME_SAMPLES;
/// Duration of one output frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// Fewest samples accepted in one pushed packet (10 ms).
pub const MIN_PACKET_SAMPLES: usize = 80;
/// Most samples accepted in one pushed packet (60 ms).
pub const MAX_PACKET_SAMPLES: usize = 480;
/// Default jitter depth: how late a packet may arrive and still be recorded.
pub const DEFAULT_JITTER_DEPTH: Duration = Duration::from_millis(60);
/// Largest accepted jitter depth.
pub const MAX_JITTER_DEPTH: Duration = Duration::from_secs(1);
/// Frames between two header checkpoints of a [`WavSink`] by default (one second).
pub const WAV_FLUSH_FRAMES: u32 = 50;

/// Nanoseconds per sample at 8 kHz.
const NANOS_PER_SAMPLE: u128 = 125_000;
/// Samples per second, as a position delta.
const SECOND: i64 = SAMPLE_RATE as i64;
/// One frame, as a position delta.
const FRAME: i64 = FRAME_SAMPLES as i64;
/// Length of one lateness window of the wall-clock tracking.
const ADAPT_WINDOW: Duration = Duration::from_secs(1);
/// Fewest packets for a lateness window to count.
const ADAPT_MIN_PACKETS: u32 = 5;
/// Deviation of the earliest packet (in samples, 10 ms) that the mapping tolerates.
const ADAPT_TOLERANCE: i64 = 80;
/// Smallest settling move (in samples, 1 ms) worth a discontinuity.
const SETTLE_THRESHOLD: i64 = 8;
/// How far back (in sequence numbers) a packet counts as reordered rather than a restart.
const MAX_MISORDER: i64 = 100;
/// Samples of slack in the ring beyond what the jitter depth and packet range need.
const RING_SLACK: i64 = 2 * SECOND + 8 * FRAME;
/// Most chunks [`repair_wav`] walks before giving up.
const MAX_CHUNKS: usize = 64;

/// Errors of the recorder and its sinks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The configured jitter depth is larger than [`MAX_JITTER_DEPTH`].
    #[error("jitter depth {0:?} is larger than {MAX_JITTER_DEPTH:?}")]
    InvalidJitterDepth(Duration),
    /// A pushed packet holds too few or too many samples.
    #[error("packet of {len} samples; expected {MIN_PACKET_SAMPLES} to {MAX_PACKET_SAMPLES}")]
    InvalidPacketLength {
        /// Number of samples in the rejected packet.
        len: usize,
    },
    /// Reading or writing the recording failed.
    #[error("recording I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a WAV file that [`repair_wav`] can fix.
    #[error("not a repairable WAV file: {0}")]
    NotWav(&'static str),
    /// An earlier write of this sink failed; it accepts no more frames.
    #[error("an earlier write failed; the recording sink is closed")]
    SinkFailed,
    /// The WAV writer failed.
    #[error("WAV writer: {0}")]
    Wav(#[from] hound::Error),
    /// The WAV file would exceed the 4 GiB limit of the format.
    #[error("WAV file is full (4 GiB limit)")]
    WavFull,
}

/// Which party of the call a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The citizen: left channel.
    Citizen,
    /// The agent: right channel.
    Agent,
}

impl Channel {
    /// Index of the channel in an interleaved frame (0 = left, 1 = right).
    pub const fn index(self) -> usize {
        match self {
            Self::Citizen => 0,
            Self::Agent => 1,
        }
    }
}

/// One 20 ms stereo frame of the recording.
#[derive(Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Frame {
    /// Number of the frame since the start of the recording (0-based).
    pub index: u64,
    /// Interleaved samples: left (citizen), right (agent), left, right, ...
    pub samples: [i16; FRAME_LEN],
}

impl Frame {
    /// The 160 samples of one channel of this frame.
    pub fn channel(&self, channel: Channel) -> impl Iterator<Item = i16> + '_ {
        self.samples
            .iter()
            .copied()
            .skip(channel.index())
            .step_by(2)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Recorder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// How late a packet may arrive and still be recorded; also the output delay.
    pub jitter_depth: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            jitter_depth: DEFAULT_JITTER_DEPTH,
        }
    }
}

impl RecorderConfig {
    /// Returns the configuration with the given jitter depth.
    #[must_use]
    pub const fn with_jitter_depth(mut self, jitter_depth: Duration) -> Self {
        self.jitter_depth = jitter_depth;
        self
    }
}

/// What [`Recorder::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The packet started a stream (first packet, new SSRC or a timestamp jump) and was placed.
    Anchored,
    /// Part of the packet fell outside the writable range and was dropped.
    Clipped {
        /// Number of samples dropped.
        dropped: usize,
    },
    /// The packet is older than what was already written out: dropped.
    Late,
    /// All samples were placed in the jitter buffer.
    Placed,
}

/// Counters of one channel of a [`Recorder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelStats {
    /// Packets pushed (with a valid length).
    pub packets: u64,
    /// Packets dropped whole because they arrived after their audio was written out.
    pub late: u64,
    /// Samples dropped from packets that fell partly outside the writable range.
    pub clipped_samples: u64,
    /// Packets missing according to the sequence numbers (never received so far).
    pub lost: u64,
    /// Times the timestamp mapping was anchored (first packet, SSRC changes, jumps).
    pub anchors: u64,
    /// Times the mapping was moved to follow the wall clock.
    pub clock_adjustments: u64,
    /// Net amount the mapping was moved, in samples (positive: later).
    pub adjusted_samples: i64,
}

/// One RTP stream (SSRC) of a channel and its timestamp-to-position mapping.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// Output position of extended timestamp 0.
    offset: i64,
    /// The stream never writes below this position (its anchor).
    floor: i64,
    /// The stream never writes at or above this position (its successor's anchor).
    ceiling: i64,
    max_seq: u16,
    max_ext_seq: i64,
    min_ext_seq: i64,
    max_ts: u32,
    max_ext_ts: i64,
    received: u64,
    /// Lateness the stream should show once its first window is complete (settling).
    settle_target: Option<i64>,
}

impl Stream {
    fn new(ssrc: u32, seq: u16, ts: u32, anchor: i64, settle_target: i64) -> Self {
        let ext_ts = i64::from(ts);
        Self {
            ssrc,
            offset: anchor - ext_ts,
            floor: anchor,
            ceiling: i64::MAX,
            max_seq: seq,
            max_ext_seq: i64::from(seq),
            min_ext_seq: i64::from(seq),
            max_ts: ts,
            max_ext_ts: ext_ts,
            received: 0,
            settle_target: Some(settle_target),
        }
    }

    /// Extends a sequence number and timestamp relative to the newest seen (wraparound).
    fn extend(&self, seq: u16, ts: u32) -> (i64, i64) {
        let dseq = i64::from(seq.wrapping_sub(self.max_seq) as i16);
        let dts = i64::from(ts.wrapping_sub(self.max_ts) as i32);
        (self.max_ext_seq + dseq, self.max_ext_ts + dts)
    }

    fn commit(&mut self, seq: u16, ts: u32, ext_seq: i64, ext_ts: i64) {
        self.received += 1;
        if ext_seq > self.max_ext_seq {
            self.max_ext_seq = ext_seq;
            self.max_seq = seq;
        }
        self.min_ext_seq = self.min_ext_seq.min(ext_seq);
        if ext_ts > self.max_ext_ts {
            self.max_ext_ts = ext_ts;
            self.max_ts = ts;
        }
    }

    fn position(&self, ext_ts: i64) -> i64 {
        ext_ts + self.offset
    }

    fn lost(&self) -> u64 {
        let expected = u64::try_from(self.max_ext_seq - self.min_ext_seq + 1).unwrap_or(0);
        expected.saturating_sub(self.received)
    }
}

/// Minimum lateness of the packets of one channel over wall-clock windows.
#[derive(Debug, Clone, Copy)]
struct LatenessWindow {
    start: Option<Instant>,
    min: i64,
    count: u32,
    /// Minimum of the last completed window, relative to the current mapping.
    last: Option<i64>,
}

impl LatenessWindow {
    const fn new() -> Self {
        Self {
            start: None,
            min: i64::MAX,
            count: 0,
            last: None,
        }
    }

    fn observe(&mut self, lateness: i64) {
        self.min = self.min.min(lateness);
        self.count += 1;
    }

    /// Best estimate of how late (in samples) packets of this channel arrive; 0 if unknown.
    fn estimate(&self) -> i64 {
        let current = (self.count > 0).then_some(self.min);
        match (current, self.last) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => 0,
        }
    }
}

/// Where a pushed packet goes.
enum Route {
    Current(i64, i64),
    Previous(i64, i64),
    Late,
    Anchor,
}

/// Jitter buffer and mapping state of one channel.
struct ChannelState {
    ring: Vec<i16>,
    current: Option<Stream>,
    previous: Option<Stream>,
    /// End (exclusive) of the newest audio placed.
    head: i64,
    window: LatenessWindow,
    stats: ChannelStats,
    retired_lost: u64,
}

impl ChannelState {
    fn new(capacity: usize) -> Self {
        Self {
            ring: vec![0; capacity],
            current: None,
            previous: None,
            head: 0,
            window: LatenessWindow::new(),
            stats: ChannelStats::default(),
            retired_lost: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        now: Instant,
        pos_now: i64,
        lo: i64,
        depth: i64,
        ssrc: u32,
        seq: u16,
        ts: u32,
        samples: &[i16],
    ) -> PushOutcome {
        self.stats.packets += 1;
        self.roll_window(now, depth);
        let hi = lo + self.ring.len() as i64;
        match self.route(ssrc, seq, ts, pos_now, depth) {
            Route::Current(ext_seq, ext_ts) => {
                self.place_current(seq, ts, ext_seq, ext_ts, pos_now, lo, hi, samples)
            }
            Route::Previous(ext_seq, ext_ts) => {
                let Some(prev) = self.previous.as_mut() else {
                    return PushOutcome::Late;
                };
                prev.commit(seq, ts, ext_seq, ext_ts);
                let (pos, floor, ceiling) = (prev.position(ext_ts), prev.floor, prev.ceiling);
                self.place(pos, samples, lo.max(floor), hi.min(ceiling))
            }
            Route::Late => {
                self.stats.late += 1;
                PushOutcome::Late
            }
            Route::Anchor => {
                self.anchor(now, pos_now, lo, ssrc, seq, ts);
                let ext_ts = i64::from(ts);
                let ext_seq = i64::from(seq);
                match self.place_current(seq, ts, ext_seq, ext_ts, pos_now, lo, hi, samples) {
                    PushOutcome::Placed => PushOutcome::Anchored,
                    other => other,
                }
            }
        }
    }

    fn route(&self, ssrc: u32, seq: u16, ts: u32, pos_now: i64, depth: i64) -> Route {
        let range = depth + SECOND;
        if let Some(cur) = self.current.as_ref().filter(|s| s.ssrc == ssrc) {
            let (ext_seq, ext_ts) = cur.extend(seq, ts);
            if (pos_now - cur.position(ext_ts)).abs() <= range {
                return Route::Current(ext_seq, ext_ts);
            }
            if let Some(route) = self.straggler(ssrc, seq, ts, pos_now, depth) {
                return route;
            }
            if (0..=MAX_MISORDER).contains(&(cur.max_ext_seq - ext_seq)) {
                // An old packet of this stream, far too late to matter.
                return Route::Late;
            }
            return Route::Anchor;
        }
        self.straggler(ssrc, seq, ts, pos_now, depth)
            .unwrap_or(Route::Anchor)
    }

    /// A late packet of the stream before the last re-anchor, if it is one.
    fn straggler(&self, ssrc: u32, seq: u16, ts: u32, pos_now: i64, depth: i64) -> Option<Route> {
        let prev = self.previous.as_ref().filter(|s| s.ssrc == ssrc)?;
        let (ext_seq, ext_ts) = prev.extend(seq, ts);
        let pos = prev.position(ext_ts);
        let plausible =
            (pos_now - pos).abs() <= depth + SECOND && pos < prev.ceiling.saturating_add(depth);
        plausible.then_some(Route::Previous(ext_seq, ext_ts))
    }

    #[allow(clippy::too_many_arguments)]
    fn place_current(
        &mut self,
        seq: u16,
        ts: u32,
        ext_seq: i64,
        ext_ts: i64,
        pos_now: i64,
        lo: i64,
        hi: i64,
        samples: &[i16],
    ) -> PushOutcome {
        let Some(cur) = self.current.as_mut() else {
            return PushOutcome::Late;
        };
        cur.commit(seq, ts, ext_seq, ext_ts);
        let (pos, floor, ceiling) = (cur.position(ext_ts), cur.floor, cur.ceiling);
        self.window.observe(pos_now - pos);
        self.place(pos, samples, lo.max(floor), hi.min(ceiling))
    }

    /// Starts a new stream mapping that continues where this channel's audio is now.
    ///
    /// The first packet is placed as late as the old stream's packets arrived lately (or at
    /// the arrival position for a channel's first stream); after the stream's first window
    /// the mapping settles on its earliest packet rather than on the first one.
    fn anchor(&mut self, now: Instant, pos_now: i64, lo: i64, ssrc: u32, seq: u16, ts: u32) {
        let target = self.window.estimate();
        let anchor = (pos_now - target).max(lo);
        let new = Stream::new(ssrc, seq, ts, anchor, target);
        self.window.start = Some(now);
        self.window.min = i64::MAX;
        self.window.count = 0;
        if let Some(mut old) = self.current.replace(new) {
            old.ceiling = old.ceiling.min(anchor);
            if let Some(retired) = self.previous.replace(old) {
                self.retired_lost += retired.lost();
            }
        }
        self.stats.anchors += 1;
    }

    /// Closes the lateness window once it is a second old and moves the mapping if needed.
    fn roll_window(&mut self, now: Instant, depth: i64) {
        let w = &mut self.window;
        let Some(start) = w.start else {
            w.start = Some(now);
            return;
        };
        if now.saturating_duration_since(start) < ADAPT_WINDOW {
            return;
        }
        let (min, count) = (w.min, w.count);
        w.start = Some(now);
        w.min = i64::MAX;
        w.count = 0;
        if count < ADAPT_MIN_PACKETS {
            return;
        }
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if let Some(target) = cur.settle_target.take() {
            let shift = min - target;
            w.last = Some(target);
            if shift.abs() >= SETTLE_THRESHOLD {
                cur.offset += shift;
                self.stats.clock_adjustments += 1;
                self.stats.adjusted_samples += shift;
            }
            return;
        }
        // Packets are about to miss their deadline: follow at once.
        let urgent = min > ADAPT_TOLERANCE && min > depth - FRAME;
        let agreed = match w.last {
            Some(last) if min.abs() > ADAPT_TOLERANCE && last.abs() > ADAPT_TOLERANCE => {
                (last > 0) == (min > 0)
            }
            _ => false,
        };
        let shift = if urgent {
            min
        } else if agreed {
            let last = w.last.unwrap_or(min);
            if min > 0 {
                min.min(last)
            } else {
                min.max(last)
            }
        } else {
            w.last = Some(min);
            return;
        };
        w.last = Some(min - shift);
        cur.offset += shift;
        self.stats.clock_adjustments += 1;
        self.stats.adjusted_samples += shift;
    }

    /// Writes the part of a packet inside `[lo, hi)` into the ring.
    fn place(&mut self, pos: i64, samples: &[i16], lo: i64, hi: i64) -> PushOutcome {
        let len = samples.len() as i64;
        let start = pos.max(lo);
        let end = (pos + len).min(hi);
        if end <= start {
            if pos + len <= lo {
                self.stats.late += 1;
                return PushOutcome::Late;
            }
            self.stats.clipped_samples += samples.len() as u64;
            return PushOutcome::Clipped {
                dropped: samples.len(),
            };
        }
        let from = usize::try_from(start - pos).unwrap_or(0);
        let to = usize::try_from(end - pos).unwrap_or(0);
        write_ring(&mut self.ring, start, &samples[from..to]);
        self.head = self.head.max(end);
        let dropped = samples.len() - (to - from);
        if dropped == 0 {
            PushOutcome::Placed
        } else {
            self.stats.clipped_samples += dropped as u64;
            PushOutcome::Clipped { dropped }
        }
    }

    /// Moves one frame's worth of samples out of the ring (leaving silence) into `out`.
    fn take_frame(&mut self, base: i64, out: &mut [i16; FRAME_LEN], channel: usize) {
        let cap = self.ring.len() as i64;
        let mut idx = index_in(base, cap);
        for slot in out.iter_mut().skip(channel).step_by(2) {
            *slot = std::mem::take(&mut self.ring[idx]);
            idx += 1;
            if idx == self.ring.len() {
                idx = 0;
            }
        }
    }

    fn stats(&self) -> ChannelStats {
        let lost = self.retired_lost
            + self.current.as_ref().map_or(0, Stream::lost)
            + self.previous.as_ref().map_or(0, Stream::lost);
        ChannelStats { lost, ..self.stats }
    }
}

fn index_in(pos: i64, cap: i64) -> usize {
    usize::try_from(pos.rem_euclid(cap)).unwrap_or(0)
}

/// Copies `src` into the ring at absolute position `pos`, wrapping around.
fn write_ring(ring: &mut [i16], pos: i64, src: &[i16]) {
    let i = index_in(pos, ring.len() as i64);
    let first = (ring.len() - i).min(src.len());
    ring[i..i + first].copy_from_slice(&src[..first]);
    ring[..src.len() - first].copy_from_slice(&src[first..]);
}

/// Records one call: two jitter-buffered channels in, paced aligned stereo frames out.
pub struct Recorder {
    start: Instant,
    depth: Duration,
    depth_samples: i64,
    next_frame: u64,
    channels: [ChannelState; 2],
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("depth", &self.depth)
            .field("next_frame", &self.next_frame)
            .field("citizen", &self.channels[0].stats())
            .field("agent", &self.channels[1].stats())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates a recorder whose timeline starts at `start`, with the default jitter depth.
    pub fn new(start: Instant) -> Self {
        Self::build(start, DEFAULT_JITTER_DEPTH)
    }

    /// Creates a recorder with the given settings; fails if the jitter depth is too large.
    pub fn with_config(start: Instant, config: RecorderConfig) -> Result<Self, RecorderError> {
        if config.jitter_depth > MAX_JITTER_DEPTH {
            return Err(RecorderError::InvalidJitterDepth(config.jitter_depth));
        }
        Ok(Self::build(start, config.jitter_depth))
    }

    fn build(start: Instant, depth: Duration) -> Self {
        let depth_samples = i64::try_from(depth.as_nanos() / NANOS_PER_SAMPLE).unwrap_or(SECOND);
        // Room for: a frame in progress, the jitter depth, packets up to a second (plus the
        // depth) early before the mapping is re-anchored, and a caller polling a bit late.
        let capacity =
            usize::try_from(2 * depth_samples + RING_SLACK).unwrap_or(RING_SLACK as usize);
        Self {
            start,
            depth,
            depth_samples,
            next_frame: 0,
            channels: [ChannelState::new(capacity), ChannelState::new(capacity)],
        }
    }

    /// Position on the output timeline (in samples) of the instant `now`.
    fn position_at(&self, now: Instant) -> i64 {
        let nanos = now.saturating_duration_since(self.start).as_nanos();
        i64::try_from(nanos / NANOS_PER_SAMPLE).unwrap_or(i64::MAX / 4)
    }

    /// First position not yet written out.
    fn written(&self) -> i64 {
        i64::try_from(self.next_frame).map_or(i64::MAX / 4, |n| n * FRAME)
    }

    /// Takes the decoded audio of one RTP packet of `channel`, received at `now`.
    pub fn push(
        &mut self,
        now: Instant,
        channel: Channel,
        ssrc: u32,
        seq: u16,
        rtp_timestamp: u32,
        samples: &[i16],
    ) -> Result<PushOutcome, RecorderError> {
        if !(MIN_PACKET_SAMPLES..=MAX_PACKET_SAMPLES).contains(&samples.len()) {
            return Err(RecorderError::InvalidPacketLength { len: samples.len() });
        }
        let pos_now = self.position_at(now);
        let lo = self.written();
        let depth = self.depth_samples;
        Ok(self.channels[channel.index()].push(
            now,
            pos_now,
            lo,
            depth,
            ssrc,
            seq,
            rtp_timestamp,
            samples,
        ))
    }

    /// When the next frame is due (`start + (n + 1) · 20 ms + depth`); always `Some`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.deadline())
    }

    fn deadline(&self) -> Instant {
        let nanos = self.next_frame.saturating_add(1).saturating_mul(20_000_000);
        self.start + Duration::from_nanos(nanos) + self.depth
    }

    /// Returns the next frame if it is due at `now`; call again until `None`.
    pub fn poll_frame(&mut self, now: Instant) -> Option<Frame> {
        (now >= self.deadline()).then(|| self.emit_frame())
    }

    fn emit_frame(&mut self) -> Frame {
        let mut frame = Frame {
            index: self.next_frame,
            samples: [0; FRAME_LEN],
        };
        let base = self.written();
        for (index, channel) in self.channels.iter_mut().enumerate() {
            channel.take_frame(base, &mut frame.samples, index);
        }
        self.next_frame += 1;
        frame
    }

    /// Number of frames handed out so far.
    pub fn frames_emitted(&self) -> u64 {
        self.next_frame
    }

    /// Counters of one channel.
    pub fn stats(&self, channel: Channel) -> ChannelStats {
        self.channels[channel.index()].stats()
    }

    /// Ends the recording at `now` (hang-up) and returns the remaining frames, last one padded.
    pub fn finish(self, now: Instant) -> Drain {
        let end = self
            .channels
            .iter()
            .map(|c| c.head)
            .fold(self.position_at(now), i64::max);
        let end_frame = u64::try_from((end + FRAME - 1).div_euclid(FRAME)).unwrap_or(0);
        Drain {
            recorder: self,
            end_frame,
        }
    }
}

/// The remaining frames of a finished [`Recorder`], returned by [`Recorder::finish`].
#[derive(Debug)]
pub struct Drain {
    recorder: Recorder,
    end_frame: u64,
}

impl Iterator for Drain {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        (self.recorder.next_frame < self.end_frame).then(|| self.recorder.emit_frame())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end_frame.saturating_sub(self.recorder.next_frame);
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Drain {}

/// Destination of recorded frames.
pub trait Sink {
    /// Appends one frame to the recording.
    fn write_frame(&mut self, frame: &Frame) -> Result<(), RecorderError>;
    /// Completes the recording (final header, flush).
    fn finish(self: Box<Self>) -> Result<(), RecorderError>;
}

/// Writes frames as a stereo 8 kHz 16-bit WAV, checkpointing the header every second.
pub struct WavSink<W: Write + Seek> {
    writer: hound::WavWriter<W>,
    since_flush: u32,
    flush_every: u32,
    failed: bool,
}

impl<W: Write + Seek> fmt::Debug for WavSink<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WavSink")
            .field("frames", &self.frames_written())
            .field("flush_every", &self.flush_every)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Seek> WavSink<W> {
    /// Starts a WAV at the current (zero) offset of `inner`; header checkpoint every second.
    pub fn new(inner: W) -> Result<Self, RecorderError> {
        Self::with_flush_every(inner, WAV_FLUSH_FRAMES)
    }

    /// Like [`WavSink::new`], with a header checkpoint every `frames` frames (1 to 50).
    pub fn with_flush_every(inner: W, frames: u32) -> Result<Self, RecorderError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(Self {
            writer: hound::WavWriter::new(inner, spec)?,
            since_flush: 0,
            flush_every: frames.clamp(1, WAV_FLUSH_FRAMES),
            failed: false,
        })
    }

    /// Number of frames written so far.
    pub fn frames_written(&self) -> u64 {
        u64::from(self.writer.duration()) / FRAME_SAMPLES as u64
    }

    /// Updates the header to cover everything written and flushes `W`.
    pub fn checkpoint(&mut self) -> Result<(), RecorderError> {
        if self.failed {
            return Err(RecorderError::SinkFailed);
        }
        self.writer.flush().inspect_err(|_| self.failed = true)?;
        self.since_flush = 0;
        Ok(())
    }

    fn append(&mut self, frame: &Frame) -> Result<(), RecorderError> {
        // hound keeps sizes in u32; keep the whole RIFF size (header included) within it.
        let bytes = u64::from(self.writer.len()) * 2;
        if bytes + 2 * FRAME_LEN as u64 + 64 > u64::from(u32::MAX) {
            return Err(RecorderError::WavFull);
        }
        let mut samples = self.writer.get_i16_writer(FRAME_LEN as u32);
        for &sample in &frame.samples {
            samples.write_sample(sample);
        }
        samples.flush()?;
        self.since_flush += 1;
        if self.since_flush >= self.flush_every {
            self.checkpoint()?;
        }
        Ok(())
    }
}

impl<W: Write + Seek> Sink for WavSink<W> {
    /// Appends one frame; after any failure the sink refuses further frames (see module docs).
    fn write_frame(&mut self, frame: &Frame) -> Result<(), RecorderError> {
        if self.failed {
            return Err(RecorderError::SinkFailed);
        }
        self.append(frame).inspect_err(|_| self.failed = true)
    }

    fn finish(self: Box<Self>) -> Result<(), RecorderError> {
        self.writer.finalize()?;
        Ok(())
    }
}

/// What [`repair_wav`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairOutcome {
    /// The header matched the file; nothing was written.
    AlreadyValid,
    /// The RIFF and data sizes were rewritten to cover the whole samples in the file.
    Repaired {
        /// Data chunk size the header claimed, in bytes.
        declared_data_len: u32,
        /// Data chunk size written, in bytes.
        data_len: u32,
        /// Where the RIFF chunk now ends; bytes after it (a cut sample) may be truncated.
        riff_end: u64,
    },
}

fn read_at<F: Read + Seek + ?Sized>(
    file: &mut F,
    at: u64,
    buf: &mut [u8],
) -> Result<(), RecorderError> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)?;
    Ok(())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0u8; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

/// Whether whole chunks run from `pos` to exactly `end`.
fn chunks_end_at<F: Read + Seek + ?Sized>(
    file: &mut F,
    mut pos: u64,
    end: u64,
) -> Result<bool, RecorderError> {
    for _ in 0..MAX_CHUNKS {
        if pos == end {
            return Ok(true);
        }
        if pos + 8 > end {
            return Ok(false);
        }
        let mut header = [0u8; 8];
        read_at(file, pos, &mut header)?;
        if !header[..4].iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Ok(false);
        }
        let size = u64::from(u32_at(&header, 4));
        pos += 8 + size + (size & 1);
    }
    Ok(false)
}

/// Fixes the RIFF and data sizes of a WAV cut short by a crash; leaves a valid file untouched.
pub fn repair_wav(file: &mut (impl Read + Write + Seek)) -> Result<RepairOutcome, RecorderError> {
    let file_len = file.seek(SeekFrom::End(0))?;
    if file_len < 12 {
        return Err(RecorderError::NotWav("shorter than a RIFF header"));
    }
    let mut riff = [0u8; 12];
    read_at(file, 0, &mut riff)?;
    if &riff[..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(RecorderError::NotWav("no RIFF/WAVE signature"));
    }
    let riff_end = u64::from(u32_at(&riff, 4)) + 8;
    let mut block_align: Option<u64> = None;
    let mut pos = 12u64;
    for _ in 0..MAX_CHUNKS {
        if pos + 8 > file_len {
            return Err(RecorderError::NotWav("no data chunk"));
        }
        let mut header = [0u8; 8];
        read_at(file, pos, &mut header)?;
        let size = u32_at(&header, 4);
        let body = pos + 8;
        match &header[..4] {
            b"fmt " => {
                if size < 16 || body + 16 > file_len {
                    return Err(RecorderError::NotWav("truncated fmt chunk"));
                }
                let mut fmt = [0u8; 16];
                read_at(file, body, &mut fmt)?;
                let align = u64::from(u16::from_le_bytes([fmt[12], fmt[13]]));
                if align == 0 {
                    return Err(RecorderError::NotWav("block align is zero"));
                }
                block_align = Some(align);
            }
            b"data" => {
                let align =
                    block_align.ok_or(RecorderError::NotWav("data chunk before fmt chunk"))?;
                let declared = u64::from(size);
                let consistent = declared % align == 0
                    && body + declared <= riff_end
                    && riff_end <= file_len
                    && file_len - riff_end < align
                    && chunks_end_at(file, body + declared + (declared & 1), riff_end)?;
                if consistent {
                    return Ok(RepairOutcome::AlreadyValid);
                }
                // The RIFF size (body + data - 8) must fit in a u32.
                let max_data = u64::from(u32::MAX) - (body - 8);
                let mut data_len = (file_len - body).min(max_data);
                data_len -= data_len % align;
                let data_len32 = u32::try_from(data_len).map_err(|_| RecorderError::WavFull)?;
                let riff_size =
                    u32::try_from(body + data_len - 8).map_err(|_| RecorderError::WavFull)?;
                file.seek(SeekFrom::Start(4))?;
                file.write_all(&riff_size.to_le_bytes())?;
                file.seek(SeekFrom::Start(pos + 4))?;
                file.write_all(&data_len32.to_le_bytes())?;
                file.flush()?;
                return Ok(RepairOutcome::Repaired {
                    declared_data_len: size,
                    data_len: data_len32,
                    riff_end: body + data_len,
                });
            }
            _ => {}
        }
        pos = body + u64::from(size) + u64::from(size & 1);
    }
    Err(RecorderError::NotWav(
        "too many chunks before the data chunk",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::io::Cursor;
    use std::ops::Range;

    /// The simulated epoch. The only clock read in these tests: `Instant` has no constructor.
    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    /// One millisecond in nanoseconds.
    const MS: u64 = 1_000_000;
    /// Samples per millisecond.
    const SPMS: i64 = 8;

    /// A distinctive test signal: noise bursts of random length and loudness.
    ///
    /// Burst lengths and levels come from ChaCha; the noise itself from a SplitMix64 stream
    /// seeded by it (cheap enough for 30 minutes of audio in a debug build).
    fn source(seed: u64, len: usize) -> Vec<i16> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut state = rng.next_u64();
        let mut out = Vec::with_capacity(len + 4);
        while out.len() < len {
            let burst = rng.random_range(400..2400usize);
            let amp: i64 = if rng.random_bool(0.2) {
                300
            } else {
                rng.random_range(3000..12000)
            };
            for _ in 0..burst.div_ceil(4) {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                for k in 0..4 {
                    let noise = i64::from((z >> (16 * k)) as u16 as i16);
                    out.push((noise * amp / 32_768) as i16);
                }
            }
        }
        out.truncate(len);
        out
    }

    /// How one channel's sender and network behave.
    #[derive(Clone)]
    struct Plan {
        channel: Channel,
        start_ms: u64,
        len: usize,
        seed: u64,
        loss: f64,
        reorder: f64,
        jitter_ms: u64,
        delay_every: usize,
        first_delay_ms: u64,
        dtx: Option<Range<usize>>,
        ssrc_change_at: Option<usize>,
        seq_base: u16,
        ts_base: u32,
        skew_ppm: f64,
    }

    impl Plan {
        fn clean(channel: Channel, start_ms: u64, len: usize, seed: u64) -> Self {
            Self {
                channel,
                start_ms,
                len,
                seed,
                loss: 0.0,
                reorder: 0.0,
                jitter_ms: 0,
                delay_every: 0,
                first_delay_ms: 0,
                dtx: None,
                ssrc_change_at: None,
                seq_base: 100,
                ts_base: 1000,
                skew_ppm: 0.0,
            }
        }

        fn impaired(mut self) -> Self {
            self.loss = 0.05;
            self.reorder = 0.03;
            self.jitter_ms = 8;
            self.delay_every = 97;
            self
        }

        /// Expected lag of the output against the source near source index `at`.
        fn expected_lag(&self, at: usize) -> i64 {
            let s = self.skew_ppm * 1e-6;
            let k = (at / FRAME_SAMPLES) as f64;
            // The first sample of a packet lands at the position of its arrival time.
            let arrival_ms = self.start_ms as f64 + (k + 1.0) * 20.0 / (1.0 + s) + 5.0;
            (arrival_ms * 8.0).round() as i64 - (k as i64) * FRAME
        }
    }

    #[derive(Debug, Clone, Copy)]
    struct Packet {
        at: u64,
        channel: Channel,
        ssrc: u32,
        seq: u16,
        ts: u32,
        from: usize,
    }

    /// Turns a plan into a signal and the packets that arrive; zeroes DTX stretches.
    fn packetise(plan: &Plan) -> (Vec<i16>, Vec<Packet>) {
        let mut src = source(plan.seed, plan.len);
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ 0x5eed);
        let skew = 1.0 + plan.skew_ppm * 1e-6;
        let (mut ssrc, mut seq, mut ts_base) =
            (0x1000 + plan.seed as u32, plan.seq_base, plan.ts_base);
        let mut first_ts_index = 0usize;
        let mut out = Vec::with_capacity(plan.len / FRAME_SAMPLES);
        for k in 0..plan.len / FRAME_SAMPLES {
            if plan.ssrc_change_at == Some(k) {
                ssrc = rng.random();
                seq = rng.random();
                ts_base = rng.random();
                first_ts_index = k;
            }
            if plan.dtx.as_ref().is_some_and(|r| r.contains(&k)) {
                src[k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES].fill(0);
                continue;
            }
            let this_seq = seq;
            seq = seq.wrapping_add(1);
            if k >= 5 && rng.random_bool(plan.loss) {
                continue;
            }
            let capture_end =
                plan.start_ms as f64 * MS as f64 + (k as f64 + 1.0) * 20.0 * MS as f64 / skew;
            let mut at = capture_end as u64 + 5 * MS + rng.random_range(0..=plan.jitter_ms * MS);
            if plan.delay_every > 0 && k >= 5 && k % plan.delay_every == 0 {
                at += 40 * MS;
            }
            if k < 3 {
                at += plan.first_delay_ms * MS;
            }
            let ts = ts_base.wrapping_add(((k - first_ts_index) * FRAME_SAMPLES) as u32);
            out.push(Packet {
                at,
                channel: plan.channel,
                ssrc,
                seq: this_seq,
                ts,
                from: k * FRAME_SAMPLES,
            });
        }
        // Reordering: now and then a packet arrives just after its successor.
        let mut i = 5;
        while i + 1 < out.len() {
            if rng.random_bool(plan.reorder) {
                out[i].at = out[i + 1].at + MS;
                i += 1;
            }
            i += 1;
        }
        (src, out)
    }

    /// Output of a simulated call, one vector per channel.
    struct Run {
        left: Vec<i16>,
        right: Vec<i16>,
        hangup_samples: i64,
        stats: [ChannelStats; 2],
    }

    fn drain_due(rec: &mut Recorder, now: Instant, out: &mut impl FnMut(&Frame)) {
        while rec.poll_timeout().is_some_and(|t| t <= now) {
            let due = rec
                .poll_timeout()
                .expect("a recorder always has a next frame");
            let frame = rec.poll_frame(due).expect("a frame is due at its deadline");
            out(&frame);
        }
        assert!(rec.poll_frame(now).is_none());
    }

    /// Feeds both channels' packets in arrival order; the timer fires exactly at each deadline.
    fn simulate(
        plans: &[Plan],
        out: &mut impl FnMut(&Frame),
    ) -> (Vec<Vec<i16>>, i64, [ChannelStats; 2]) {
        let base = epoch();
        let mut rec = Recorder::new(base);
        let mut sources = vec![Vec::new(), Vec::new()];
        let mut packets = Vec::new();
        for plan in plans {
            let (src, pkts) = packetise(plan);
            sources[plan.channel.index()] = src;
            packets.extend(pkts);
        }
        packets.sort_by_key(|p| p.at);
        for p in &packets {
            let now = base + Duration::from_nanos(p.at);
            drain_due(&mut rec, now, out);
            let src = &sources[p.channel.index()][p.from..p.from + FRAME_SAMPLES];
            rec.push(now, p.channel, p.ssrc, p.seq, p.ts, src)
                .expect("valid packet length");
        }
        let hangup = packets.last().map_or(0, |p| p.at) + 10 * MS;
        let now = base + Duration::from_nanos(hangup);
        drain_due(&mut rec, now, out);
        let stats = [rec.stats(Channel::Citizen), rec.stats(Channel::Agent)];
        for frame in rec.finish(now) {
            out(&frame);
        }
        (sources, (hangup / 125_000) as i64, stats)
    }

    fn simulate_to_vecs(plans: &[Plan]) -> (Vec<Vec<i16>>, Run) {
        let (mut left, mut right) = (Vec::new(), Vec::new());
        let mut next = 0u64;
        let (sources, hangup_samples, stats) = simulate(plans, &mut |f: &Frame| {
            assert_eq!(f.index, next, "frames come in order without gaps");
            next += 1;
            left.extend(f.channel(Channel::Citizen));
            right.extend(f.channel(Channel::Agent));
        });
        (
            sources,
            Run {
                left,
                right,
                hangup_samples,
                stats,
            },
        )
    }

    /// Lag (out[i + lag] ~ src[i]) with the highest cross-correlation, searched around `expected`.
    fn best_lag(
        out: &[i16],
        src: &[i16],
        from: usize,
        len: usize,
        expected: i64,
        search: i64,
    ) -> i64 {
        let mut best = (i64::MIN, 0);
        for lag in expected - search..=expected + search {
            let Ok(o) = usize::try_from(from as i64 + lag) else {
                continue;
            };
            let Some(window) = out.get(o..o + len) else {
                continue;
            };
            let acc: i64 = window
                .iter()
                .zip(&src[from..from + len])
                .map(|(&a, &b)| i64::from(a) * i64::from(b))
                .sum();
            if acc > best.0 {
                best = (acc, lag);
            }
        }
        best.1
    }

    const WINDOW: usize = 2 * 8000;
    const SEARCH: i64 = 800;

    fn main_plans() -> [Plan; 2] {
        let mut citizen = Plan::clean(Channel::Citizen, 200, 60 * 8000, 1).impaired();
        citizen.dtx = Some(1000..1020);
        citizen.seq_base = 65_000;
        citizen.ts_base = u32::MAX - 80_000;
        let mut agent = Plan::clean(Channel::Agent, 1700, 58_500 * 8, 2).impaired();
        agent.dtx = Some(600..620);
        agent.ssrc_change_at = Some(1500);
        agent.seq_base = 12_345;
        [citizen, agent]
    }

    #[test]
    fn impaired_call_through_wav_is_aligned_at_start_and_end() {
        let plans = main_plans();
        let mut wav = Cursor::new(Vec::new());
        let mut sink = WavSink::new(&mut wav).expect("wav header");
        let mut frames = 0u64;
        let mut write_err = None;
        let (sources, hangup, stats) = simulate(&plans, &mut |f: &Frame| {
            frames += 1;
            if let Err(e) = sink.write_frame(f) {
                write_err = Some(e);
            }
        });
        assert!(write_err.is_none(), "{write_err:?}");
        Box::new(sink).finish().expect("finalize");
        let mut reader =
            hound::WavReader::new(Cursor::new(wav.into_inner())).expect("readable WAV");
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        let all: Vec<i16> = reader
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .expect("samples");
        let left: Vec<i16> = all.iter().copied().step_by(2).collect();
        let right: Vec<i16> = all.iter().copied().skip(1).step_by(2).collect();
        assert_eq!(left.len() as u64, frames * FRAME_SAMPLES as u64);

        let (c, a) = (&plans[0], &plans[1]);
        let lc0 = best_lag(&left, &sources[0], 0, WINDOW, c.expected_lag(0), SEARCH);
        let la0 = best_lag(&right, &sources[1], 0, WINDOW, a.expected_lag(0), SEARCH);
        let ce = c.len - WINDOW;
        let ae = a.len - WINDOW;
        let lc1 = best_lag(&left, &sources[0], ce, WINDOW, c.expected_lag(ce), SEARCH);
        let la1 = best_lag(&right, &sources[1], ae, WINDOW, a.expected_lag(ae), SEARCH);
        println!(
            "citizen lag start {lc0} end {lc1} (expected {}), agent lag start {la0} end {la1} (expected {}), \
             agent-citizen start {} end {} (expected 12000), length {} samples for a {} sample call",
            c.expected_lag(0),
            a.expected_lag(0),
            la0 - lc0,
            la1 - lc1,
            left.len(),
            hangup
        );
        println!("stats {stats:?}");
        for (lag, plan, at) in [(lc0, c, 0), (lc1, c, ce), (la0, a, 0), (la1, a, ae)] {
            assert!(
                (lag - plan.expected_lag(at)).abs() <= FRAME,
                "lag {lag} vs {}",
                plan.expected_lag(at)
            );
        }
        assert!((la0 - lc0 - 1500 * SPMS).abs() <= FRAME);
        assert!((la1 - lc1 - 1500 * SPMS).abs() <= FRAME);
        assert!((left.len() as i64 - hangup).abs() <= 40 * SPMS);
        assert_eq!(
            stats[1].anchors, 2,
            "agent re-anchored once on the SSRC change"
        );
        assert_eq!(stats[0].anchors, 1);
        assert!(stats[0].lost > 0 && stats[1].lost > 0);
        assert_eq!(
            stats[0].late + stats[1].late,
            0,
            "every impairment is within the depth"
        );
        for st in &stats {
            assert!(
                st.adjusted_samples.abs() <= 2 * 8 * SPMS,
                "only jitter-sized settling moves"
            );
        }
    }

    #[test]
    fn thirty_minutes_without_drift() {
        let mut citizen = Plan::clean(Channel::Citizen, 120, 30 * 60 * 8000, 3).impaired();
        citizen.delay_every = 499;
        let mut agent = Plan::clean(Channel::Agent, 1620, 30 * 60 * 8000 - 12_000, 4).impaired();
        agent.delay_every = 331;
        agent.ssrc_change_at = Some(45_000);
        let plans = [citizen, agent];
        let (sources, run) = simulate_to_vecs(&plans);
        let m29 = 29 * 60 * 8000;
        let (c, a) = (&plans[0], &plans[1]);
        // The mapping settles on the earliest packet after its first second: "start" is 0:02.
        let s2 = 2 * 8000;
        let lag = |out: &[i16], ch: usize, plan: &Plan, from: usize| {
            best_lag(
                out,
                &sources[ch],
                from,
                WINDOW,
                plan.expected_lag(0),
                SEARCH,
            )
        };
        let first = lag(&run.left, 0, c, 0);
        let lc0 = lag(&run.left, 0, c, s2);
        let la0 = lag(&run.right, 1, a, s2);
        let lc29 = lag(&run.left, 0, c, m29);
        let la29 = lag(&run.right, 1, a, m29 - 12_000);
        println!(
            "30 min: citizen lag {first} at 0:00, {lc0} at 0:02 -> {lc29} at 29:00, \
             agent lag {la0} -> {la29}, offset {} -> {}; {:?}",
            la0 - lc0,
            la29 - lc29,
            run.stats
        );
        assert!(
            (lc29 - lc0).abs() <= 16 && (la29 - la0).abs() <= 16,
            "no drift"
        );
        assert!((la29 - lc29 - 1500 * SPMS).abs() <= FRAME);
        assert!((run.left.len() as i64 - run.hangup_samples).abs() <= 40 * SPMS);
    }

    #[test]
    fn sender_clock_skew_is_followed() {
        let minutes = 10;
        let mut citizen = Plan::clean(Channel::Citizen, 200, minutes * 60 * 8000, 5).impaired();
        citizen.skew_ppm = -150.0;
        let mut agent =
            Plan::clean(Channel::Agent, 1700, minutes * 60 * 8000 - 12_000, 6).impaired();
        agent.skew_ppm = 150.0;
        let plans = [citizen, agent];
        let (sources, run) = simulate_to_vecs(&plans);
        let (c, a) = (&plans[0], &plans[1]);
        let (ce, ae) = (c.len - WINDOW, a.len - WINDOW);
        let lc = best_lag(
            &run.left,
            &sources[0],
            ce,
            WINDOW,
            c.expected_lag(ce),
            SEARCH,
        );
        let la = best_lag(
            &run.right,
            &sources[1],
            ae,
            WINDOW,
            a.expected_lag(ae),
            SEARCH,
        );
        println!(
            "skew: citizen end lag {lc} (wall clock {}), agent end lag {la} (wall clock {}); {:?}",
            c.expected_lag(ce),
            a.expected_lag(ae),
            run.stats
        );
        assert!((lc - c.expected_lag(ce)).abs() <= FRAME);
        assert!((la - a.expected_lag(ae)).abs() <= FRAME);
        assert!(run.stats[0].clock_adjustments > 0 && run.stats[1].clock_adjustments > 0);
        assert!(run.stats[0].adjusted_samples > 0 && run.stats[1].adjusted_samples < 0);
        let dropped = run.stats[0].late + run.stats[1].late;
        assert!(
            dropped <= 5,
            "a few 40 ms-delayed packets on top of the drift"
        );
    }

    #[test]
    fn delayed_first_packet_is_corrected() {
        let mut citizen = Plan::clean(Channel::Citizen, 200, 10 * 8000, 7);
        citizen.first_delay_ms = 50;
        let (sources, run) = simulate_to_vecs(&[citizen.clone()]);
        let end = citizen.len - WINDOW;
        let l0 = best_lag(
            &run.left,
            &sources[0],
            0,
            8000,
            citizen.expected_lag(0),
            SEARCH,
        );
        let l1 = best_lag(
            &run.left,
            &sources[0],
            end,
            WINDOW,
            citizen.expected_lag(end),
            SEARCH,
        );
        println!(
            "first packets 50 ms late: lag {l0} at start, {l1} at end; {:?}",
            run.stats[0]
        );
        assert_eq!(l0, citizen.expected_lag(0) + 50 * SPMS);
        assert_eq!(run.stats[0].late, 0);
        assert_eq!(l1, citizen.expected_lag(end));
        assert_eq!(run.stats[0].clock_adjustments, 1);
        assert!(run.right.iter().all(|&s| s == 0), "silent agent channel");
    }

    /// Without loss, reordering within the depth, wraparound and an SSRC change are bit-exact.
    #[test]
    fn reordering_wraparound_and_ssrc_change_are_sample_exact() {
        let mut citizen = Plan::clean(Channel::Citizen, 200, 30 * 8000, 8);
        citizen.reorder = 0.1;
        citizen.delay_every = 13;
        citizen.seq_base = 65_400;
        citizen.ts_base = u32::MAX - 5_000;
        let mut agent = Plan::clean(Channel::Agent, 1700, 20 * 8000, 9);
        agent.reorder = 0.1;
        agent.ssrc_change_at = Some(400);
        agent.dtx = Some(200..220);
        let plans = [citizen, agent];
        let (sources, run) = simulate_to_vecs(&plans);
        for (out, src, plan) in [
            (&run.left, &sources[0], &plans[0]),
            (&run.right, &sources[1], &plans[1]),
        ] {
            let lag = usize::try_from(plan.expected_lag(0)).expect("positive lag");
            assert!(
                out[..lag].iter().all(|&s| s == 0),
                "silence before the channel started"
            );
            assert_eq!(&out[lag..lag + src.len()], &src[..], "{:?}", plan.channel);
            assert!(out[lag + src.len()..].iter().all(|&s| s == 0));
        }
        assert_eq!(run.stats[1].anchors, 2);
        assert_eq!(run.stats[0].lost + run.stats[1].lost, 0);
    }

    #[test]
    fn pacing_late_packets_and_silent_channel() {
        let start = epoch();
        let mut rec = Recorder::new(start);
        let t = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(rec.poll_timeout(), Some(t(80)));
        assert!(rec.poll_frame(t(79)).is_none());
        // First citizen packet arrives at 30 ms: it starts at position 240.
        let tone = [1000i16; 160];
        assert_eq!(
            rec.push(t(30), Channel::Citizen, 7, 1, 0, &tone).ok(),
            Some(PushOutcome::Anchored)
        );
        assert_eq!(
            rec.push(t(50), Channel::Citizen, 7, 2, 160, &tone).ok(),
            Some(PushOutcome::Placed)
        );
        let f0 = rec.poll_frame(t(80)).expect("frame 0 due");
        assert_eq!(f0.index, 0);
        assert!(f0.channel(Channel::Citizen).all(|s| s == 0));
        assert!(f0.channel(Channel::Agent).all(|s| s == 0));
        assert!(rec.poll_frame(t(80)).is_none());
        assert_eq!(rec.poll_timeout(), Some(t(100)));
        let f1 = rec.poll_frame(t(100)).expect("frame 1 due");
        let left: Vec<i16> = f1.channel(Channel::Citizen).collect();
        assert!(left[..80].iter().all(|&s| s == 0) && left[80..].iter().all(|&s| s == 1000));
        for ms in [120, 140, 160] {
            assert!(rec.poll_frame(t(ms)).is_some());
        }
        // Packet 3 (positions 560..720) arrives after frames up to 800 were written: dropped.
        assert_eq!(
            rec.push(t(165), Channel::Citizen, 7, 3, 320, &tone).ok(),
            Some(PushOutcome::Late)
        );
        assert_eq!(rec.stats(Channel::Citizen).late, 1);
        // Lengths outside 80..=480 are rejected; the limits are accepted.
        assert!(matches!(
            rec.push(t(170), Channel::Agent, 9, 1, 0, &[0; 79]),
            Err(RecorderError::InvalidPacketLength { len: 79 })
        ));
        assert!(rec
            .push(t(170), Channel::Agent, 9, 1, 0, &[0; 481])
            .is_err());
        assert!(rec.push(t(170), Channel::Agent, 9, 1, 0, &[5; 80]).is_ok());
        assert!(rec
            .push(t(180), Channel::Agent, 9, 2, 80, &[5; 400])
            .is_ok());
        // Finish pads the last frame: agent audio runs 1360..1840, so frames 5 to 11.
        let rest: Vec<Frame> = rec.finish(t(185)).collect();
        assert_eq!(rest.first().map(|f| f.index), Some(5));
        assert_eq!(rest.last().map(|f| f.index), Some(11));
        let last: Vec<i16> = rest[6].channel(Channel::Agent).collect();
        assert!(last[..80].iter().all(|&s| s == 5) && last[80..].iter().all(|&s| s == 0));
    }

    /// Collects frames until `until` (ms after start) into one channel's samples.
    fn collect(
        rec: &mut Recorder,
        start: Instant,
        until: u64,
        channel: Channel,
        out: &mut Vec<i16>,
    ) {
        while let Some(frame) = rec.poll_frame(start + Duration::from_millis(until)) {
            out.extend(frame.channel(channel));
        }
    }

    #[test]
    fn ssrc_switch_places_stragglers_before_it_and_old_stream_can_resume() {
        let start = epoch();
        let mut rec = Recorder::new(start);
        let t = |ms: u64| start + Duration::from_millis(ms);
        let mut out = Vec::new();
        let packet = |k: u16| [k as i16 + 1; 160];
        // Stream A: packets 0..=8 on time (packet k at 25 + 20k ms, position 200 + 160k).
        for k in 0..9u16 {
            let ms = 25 + 20 * u64::from(k);
            collect(&mut rec, start, ms, Channel::Agent, &mut out);
            rec.push(
                t(ms),
                Channel::Agent,
                0xA,
                k,
                160 * u32::from(k),
                &packet(k),
            )
            .expect("valid");
        }
        // Stream B takes over at 225 ms (position 1800); A's packet 9 straggles in after it.
        collect(&mut rec, start, 225, Channel::Agent, &mut out);
        let b = rec.push(t(225), Channel::Agent, 0xB, 40_000, 7_777, &packet(10));
        assert_eq!(b.ok(), Some(PushOutcome::Anchored));
        let a9 = rec.push(t(232), Channel::Agent, 0xA, 9, 1440, &packet(9));
        assert_eq!(a9.ok(), Some(PushOutcome::Placed));
        for k in 11..20u16 {
            let ms = 25 + 20 * u64::from(k);
            collect(&mut rec, start, ms, Channel::Agent, &mut out);
            let ts = 7_777 + 160 * u32::from(k - 10);
            rec.push(t(ms), Channel::Agent, 0xB, 40_000 + k - 10, ts, &packet(k))
                .expect("valid");
        }
        // A returns two seconds later (call transferred back): a new anchor at that time.
        collect(&mut rec, start, 2025, Channel::Agent, &mut out);
        let back = rec.push(t(2025), Channel::Agent, 0xA, 50, 8000, &packet(99));
        assert_eq!(back.ok(), Some(PushOutcome::Anchored));
        assert_eq!(rec.stats(Channel::Agent).anchors, 3);
        out.extend(
            rec.finish(t(2030))
                .flat_map(|f| f.channel(Channel::Agent).collect::<Vec<_>>()),
        );
        assert!(out[..200].iter().all(|&s| s == 0));
        for k in 0..20usize {
            let at = 200 + 160 * k;
            assert!(
                out[at..at + 160].iter().all(|&s| s == k as i16 + 1),
                "packet {k}"
            );
        }
        assert!(
            out[3400..16200].iter().all(|&s| s == 0),
            "silence until A returns"
        );
        assert!(out[16200..16360].iter().all(|&s| s == 100));
    }

    #[test]
    fn same_ssrc_timestamp_jump_reanchors_seamlessly() {
        let start = epoch();
        let mut rec = Recorder::new(start);
        let t = |ms: u64| start + Duration::from_millis(ms);
        let mut out = Vec::new();
        for k in 0..20u16 {
            let ms = 25 + 20 * u64::from(k);
            collect(&mut rec, start, ms, Channel::Citizen, &mut out);
            // The sender restarts its timestamps (and sequence numbers) at packet 10.
            let (seq, ts) = if k < 10 {
                (
                    65_530u16.wrapping_add(k),
                    (u32::MAX - 700).wrapping_add(160 * u32::from(k)),
                )
            } else {
                (30_000 + k, 3_000_000 + 160 * u32::from(k))
            };
            let outcome = rec
                .push(t(ms), Channel::Citizen, 0xC, seq, ts, &[k as i16 + 1; 160])
                .expect("valid");
            let expected = if k == 0 || k == 10 {
                PushOutcome::Anchored
            } else {
                PushOutcome::Placed
            };
            assert_eq!(outcome, expected, "packet {k}");
        }
        assert_eq!(rec.stats(Channel::Citizen).anchors, 2);
        assert_eq!(rec.stats(Channel::Citizen).lost, 0);
        out.extend(
            rec.finish(t(430))
                .flat_map(|f| f.channel(Channel::Citizen).collect::<Vec<_>>()),
        );
        for k in 0..20usize {
            let at = 200 + 160 * k;
            assert!(
                out[at..at + 160].iter().all(|&s| s == k as i16 + 1),
                "packet {k}"
            );
        }
    }

    #[test]
    fn config_limits() {
        let start = epoch();
        let too_deep = RecorderConfig::default().with_jitter_depth(Duration::from_millis(1001));
        assert!(matches!(
            Recorder::with_config(start, too_deep),
            Err(RecorderError::InvalidJitterDepth(_))
        ));
        let rec = Recorder::with_config(
            start,
            RecorderConfig::default().with_jitter_depth(Duration::ZERO),
        )
        .expect("zero depth is allowed");
        assert_eq!(rec.poll_timeout(), Some(start + FRAME_DURATION));
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("kald-recorder-{}-{name}.wav", std::process::id()))
    }

    fn frames_of(seconds_x10: u64) -> impl Iterator<Item = Frame> {
        (0..seconds_x10 * 5).map(|index| {
            let mut samples = [0i16; FRAME_LEN];
            for (i, s) in samples.iter_mut().enumerate() {
                *s = ((index as usize * FRAME_LEN + i) % 30_000) as i16;
            }
            Frame { index, samples }
        })
    }

    fn wav_bytes(seconds_x10: u64) -> Vec<u8> {
        let mut wav = Cursor::new(Vec::new());
        let mut sink = Box::new(WavSink::new(&mut wav).expect("header"));
        for f in frames_of(seconds_x10) {
            sink.write_frame(&f).expect("write");
        }
        sink.finish().expect("finalize");
        wav.into_inner()
    }

    fn duration_of(bytes: Vec<u8>) -> u32 {
        let reader = hound::WavReader::new(Cursor::new(bytes)).expect("hound reads it");
        let duration = reader.duration();
        let read = reader.into_samples::<i16>().filter(Result::is_ok).count();
        assert_eq!(read as u32, 2 * duration, "all samples readable");
        duration
    }

    #[test]
    fn crash_leaves_a_playable_file_and_repair_recovers_the_rest() {
        let path = temp_path("crash");
        let file = std::fs::File::create(&path).expect("temp file");
        let mut sink = WavSink::new(file).expect("header");
        for f in frames_of(35) {
            sink.write_frame(&f).expect("write");
        }
        // Crash: the writer is never finalised (hound would fix the header on drop).
        std::mem::forget(sink);
        let bytes = std::fs::read(&path).expect("read back");
        let before = duration_of(bytes.clone());
        assert!(
            before >= 20_000,
            "at least 2.5 s readable without repair, got {before}"
        );
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("reopen");
        let outcome = repair_wav(&mut file).expect("repairable");
        drop(file);
        let after = duration_of(std::fs::read(&path).expect("read back"));
        println!(
            "crash after 3.5 s: {before} samples readable, {after} after repair ({outcome:?})"
        );
        assert_eq!(after, 28_000);
        assert!(matches!(
            outcome,
            RepairOutcome::Repaired {
                declared_data_len: 96_000,
                data_len: 112_000,
                ..
            }
        ));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("reopen");
        assert_eq!(
            repair_wav(&mut file).ok(),
            Some(RepairOutcome::AlreadyValid)
        );
        drop(file);
        std::fs::remove_file(&path).expect("clean up");
    }

    #[test]
    fn repair_truncated_file_with_zero_sizes() {
        let good = wav_bytes(10);
        let data_start = 44;
        for cut in [1usize, 2, 3] {
            let mut bytes = good[..good.len() - cut].to_vec();
            bytes[4..8].fill(0);
            bytes[40..44].fill(0);
            let mut file = Cursor::new(bytes);
            let outcome = repair_wav(&mut file).expect("repairable");
            let whole = (good.len() - data_start - 4) as u32;
            assert_eq!(
                outcome,
                RepairOutcome::Repaired {
                    declared_data_len: 0,
                    data_len: whole,
                    riff_end: u64::from(whole) + 44
                }
            );
            let bytes = file.into_inner();
            assert_eq!(duration_of(bytes.clone()), 7_999);
            let repaired: Vec<i16> = hound::WavReader::new(Cursor::new(bytes))
                .expect("readable")
                .into_samples::<i16>()
                .collect::<Result<_, _>>()
                .expect("samples");
            let original: Vec<i16> = hound::WavReader::new(Cursor::new(good.clone()))
                .expect("readable")
                .into_samples::<i16>()
                .collect::<Result<_, _>>()
                .expect("samples");
            assert_eq!(repaired[..], original[..repaired.len()]);
        }
        // Header claims more than the file holds (cut after a checkpoint).
        let mut file = Cursor::new(good[..good.len() - 6_401].to_vec());
        assert!(matches!(
            repair_wav(&mut file),
            Ok(RepairOutcome::Repaired { .. })
        ));
        assert_eq!(duration_of(file.into_inner()), 8_000 - 1_601);
        // Crashed before the first checkpoint: only a header with zero sizes.
        let mut file = Cursor::new(good[..44].to_vec());
        file.get_mut()[4..8].fill(0);
        assert!(matches!(
            repair_wav(&mut file),
            Ok(RepairOutcome::Repaired { data_len: 0, .. })
        ));
        assert_eq!(duration_of(file.into_inner()), 0);
    }

    #[test]
    fn valid_files_are_left_untouched() {
        let good = wav_bytes(10);
        let mut file = Cursor::new(good.clone());
        assert_eq!(
            repair_wav(&mut file).ok(),
            Some(RepairOutcome::AlreadyValid)
        );
        assert_eq!(file.into_inner(), good);
        // A valid file with a chunk after the data chunk.
        let mut tagged = good.clone();
        tagged.extend_from_slice(b"LIST");
        tagged.extend_from_slice(&5u32.to_le_bytes());
        tagged.extend_from_slice(b"INFO\0\0");
        let riff = (tagged.len() - 8) as u32;
        tagged[4..8].copy_from_slice(&riff.to_le_bytes());
        let mut file = Cursor::new(tagged.clone());
        assert_eq!(
            repair_wav(&mut file).ok(),
            Some(RepairOutcome::AlreadyValid)
        );
        assert_eq!(file.into_inner(), tagged);
        // Not a WAV at all.
        let mut junk = Cursor::new(b"hello, this is not a wave file at all".to_vec());
        assert!(matches!(
            repair_wav(&mut junk),
            Err(RecorderError::NotWav(_))
        ));
    }

    /// A writer whose bytes can be looked at while a sink still owns it.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Cursor<Vec<u8>>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Shared {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.0.borrow_mut().seek(pos)
        }
    }

    /// A disk that fills up after `limit` bytes.
    struct Limited {
        inner: Cursor<Vec<u8>>,
        limit: u64,
    }

    impl Write for Limited {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let room = self.limit.saturating_sub(self.inner.position());
            if room == 0 {
                return Err(std::io::Error::other("disk full"));
            }
            let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.inner.write(&buf[..n])
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Limited {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn failed_write_closes_the_sink_and_repair_keeps_channels_in_place() {
        let mut disk = Limited {
            inner: Cursor::new(Vec::new()),
            limit: 44 + 10 * 640 + 300,
        };
        let mut sink = WavSink::new(&mut disk).expect("header");
        let mut frames = frames_of(10);
        for f in frames.by_ref().take(10) {
            sink.write_frame(&f).expect("room for ten frames");
        }
        let eleventh = frames.next().expect("frame");
        assert!(matches!(
            sink.write_frame(&eleventh),
            Err(RecorderError::Io(_) | RecorderError::Wav(_))
        ));
        assert!(matches!(
            sink.write_frame(&eleventh),
            Err(RecorderError::SinkFailed)
        ));
        drop(sink);
        let mut file = Cursor::new(disk.inner.into_inner());
        assert!(matches!(
            repair_wav(&mut file),
            Ok(RepairOutcome::AlreadyValid | RepairOutcome::Repaired { .. })
        ));
        let samples: Vec<i16> = hound::WavReader::new(Cursor::new(file.into_inner()))
            .expect("readable")
            .into_samples::<i16>()
            .collect::<Result<_, _>>()
            .expect("samples");
        assert_eq!(samples.len(), 10 * FRAME_LEN + 150);
        let expected: Vec<i16> = frames_of(10)
            .flat_map(|f| f.samples)
            .take(samples.len())
            .collect();
        assert_eq!(samples, expected, "left and right stay in place");
    }

    #[test]
    fn wav_sink_checkpoints_every_second() {
        let shared = Shared::default();
        let mut sink = WavSink::new(shared.clone()).expect("header");
        for f in frames_of(11) {
            sink.write_frame(&f).expect("write");
        }
        // 55 frames written, header checkpointed after 50: a copy taken now reads 1 s.
        let snapshot = shared.0.borrow().get_ref().clone();
        assert_eq!(snapshot.len(), 44 + 55 * 640);
        assert_eq!(duration_of(snapshot), 8_000);
        assert_eq!(sink.frames_written(), 55);
        let boxed: Box<dyn Sink> = Box::new(sink);
        boxed.finish().expect("finalize");
    }
}
