//! The encrypted recording file: authenticated encryption in one-second chunks.
//!
//! Recordings hold spoken CPR numbers and health data (sickness benefit), so nothing of the
//! audio reaches the disk in clear. [`ChunkWriter`] seals the stereo PCM (citizen left, agent
//! right, 8 kHz, 16-bit) with XChaCha20-Poly1305 a second at a time; [`ChunkReader`] checks
//! and opens it; [`export_wav`] and [`export_wav_muted`] turn it into the standard WAV that is
//! played or exported; [`reencrypt`] moves a file to the current key (key rotation) and repairs
//! a file cut short by a crash.
//!
//! # Byte layout (version 1)
//!
//! All integers are little-endian.
//!
//! ```text
//! header, 52 bytes
//!   0   8  magic "KALDREC1"
//!   8   1  format version = 1
//!   9   1  key id (1..=255): the RecordingKeys key that sealed the file
//!  10   2  channels = 2 (interleaved: citizen left, agent right)
//!  12   4  sample rate = 8000
//!  16   2  samples per frame = 320 (20 ms, both channels)
//!  18   2  frames per chunk = 50 (1 s)
//!  20  16  file nonce (random, from the caller; never reused under one key)
//!  36  16  header tag: XChaCha20-Poly1305 of the empty message,
//!          nonce = file nonce ‖ FF FF FF FF FF FF FF FF, AAD = bytes 0..36
//! chunk i = 0, 1, 2, …
//!   4      n = length of what follows (ciphertext + 16-byte tag)
//!   n      XChaCha20-Poly1305 of the chunk's PCM (i16 LE, interleaved),
//!          nonce = file nonce ‖ i (u64), AAD = header (52 bytes) ‖ i (u64) ‖ final (1 byte: 0/1)
//! ```
//!
//! Every chunk but the last holds exactly 50 frames (n = 32,016) and has final = 0. The last
//! chunk, written by [`ChunkWriter::finish`], holds the remaining 0–49 frames (n = 16 + 640 ×
//! frames) and has final = 1; nothing may follow it. The tag of each chunk covers its index,
//! its position as last or not, and the whole header (and through the file nonce, the file), so
//! a chunk that is altered, moved, dropped, swapped with another or taken from another file
//! fails authentication. The header tag makes a wrong key or an altered header fail at
//! [`ChunkReader::open`], before any audio is read.
//!
//! # Crash safety
//!
//! A chunk is written with one `write_all` of its length and body and then `flush`ed as soon as
//! its 50th frame arrives, so a crashed process loses at most the last second. The writer buffers
//! nothing beyond that one second itself; the caller's `W` must not either (a `File`, or a
//! `BufWriter` — which `flush` empties each second; for power loss, the caller may call
//! `sync_data` through [`ChunkWriter::get_mut`]).
//!
//! [`ChunkReader`] tells a complete file from one whose process died: a file without its final
//! chunk reads as [`Ending::Truncated`] with the whole seconds that survived; a last chunk cut
//! short by a torn write (its length prefix or its body incomplete at the end of the file) counts
//! as missing. Anything else — a chunk that fails authentication, an impossible length, data
//! after the final chunk — is an error: the reader never skips a damaged chunk. Cutting a file
//! short cannot be told from a crash; the catalogue's SHA-256 (stored when a recording is
//! closed, [`Finished::sha256`]) shows whether a closed recording is still whole.

use core::fmt;
use std::io::{self, Read, Seek, Write};
use std::time::Duration;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::keys::{RecordingKeys, Secret};

/// The first 8 bytes of every recording file.
pub const MAGIC: [u8; 8] = *b"KALDREC1";
/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Samples per second per channel.
pub const SAMPLE_RATE: u32 = 8000;
/// Channels, interleaved: citizen left, agent right.
pub const CHANNELS: u16 = 2;
/// Interleaved samples in one 20 ms frame (160 per channel).
pub const FRAME_SAMPLES: usize = 320;
/// Frames sealed together in one chunk (1 s).
pub const FRAMES_PER_CHUNK: usize = 50;
/// Length of the random file nonce the caller gives [`ChunkWriter::new`].
pub const FILE_NONCE_LEN: usize = 16;
/// Length of the header, its tag included.
pub const HEADER_LEN: usize = HEADER_FIELDS_LEN + TAG_LEN;
/// The largest chunk body (ciphertext and tag of 50 frames).
pub const MAX_CHUNK_LEN: usize = FRAMES_PER_CHUNK * FRAME_BYTES + TAG_LEN;

/// Length of the header before its tag.
const HEADER_FIELDS_LEN: usize = 36;
/// Length of a Poly1305 tag.
const TAG_LEN: usize = 16;
/// Bytes of PCM in one frame.
const FRAME_BYTES: usize = FRAME_SAMPLES * 2;
/// The chunk index whose nonce seals the header (never a real chunk's).
const HEADER_INDEX: u64 = u64::MAX;
/// One sample's duration in nanoseconds (1/8000 s).
const SAMPLE_NANOS: u128 = 125_000;

/// What a recording file's header says (nothing in it is secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// The format version.
    pub version: u8,
    /// The id of the key that sealed the file (see [`RecordingKeys`] on rotation).
    pub key_id: u8,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

/// What [`ChunkWriter::finish`] (and [`reencrypt`]) report about the finished file.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finished {
    /// The length of the recording (frames × 20 ms).
    pub duration: Duration,
    /// The number of 20 ms frames.
    pub frames: u64,
    /// SHA-256 of the plaintext PCM (every sample as i16 little-endian, interleaved).
    pub sha256: [u8; 32],
}

impl fmt::Debug for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finished")
            .field("duration", &self.duration)
            .field("frames", &self.frames)
            .field("sha256", &crate::keys::hex_encode(&self.sha256))
            .finish()
    }
}

/// How a recording file ended, as found by [`ChunkReader`].
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// The final chunk is there: the recording was closed properly.
    Complete {
        /// The length of the recording.
        duration: Duration,
        /// SHA-256 of the plaintext PCM, as [`Finished::sha256`].
        sha256: [u8; 32],
    },
    /// No final chunk: the writing process stopped (a crash); the whole seconds before are
    /// intact.
    Truncated {
        /// The length of what survived (whole seconds).
        duration: Duration,
    },
}

impl Ending {
    /// The length of the audio the file holds.
    pub fn duration(&self) -> Duration {
        match *self {
            Self::Complete { duration, .. } | Self::Truncated { duration } => duration,
        }
    }

    /// Whether the file was closed properly.
    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete { .. })
    }
}

impl fmt::Debug for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Complete { duration, sha256 } => f
                .debug_struct("Complete")
                .field("duration", duration)
                .field("sha256", &crate::keys::hex_encode(sha256))
                .finish(),
            Self::Truncated { duration } => f
                .debug_struct("Truncated")
                .field("duration", duration)
                .finish(),
        }
    }
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportInfo {
    /// How the source recording ended (its length is the WAV's length).
    pub ending: Ending,
    /// How much of the recording was replaced by silence.
    pub muted: Duration,
}

/// What [`reencrypt`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reencrypted {
    /// The key id of the source file.
    pub from_key: u8,
    /// The key id of the new file (the current key).
    pub to_key: u8,
    /// How the source file ended.
    pub input: Ending,
    /// The new file, always complete.
    pub output: Finished,
}

/// Why a recording could not be written, read or exported; never contains audio, personal
/// data or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Reading or writing through the caller's reader or writer failed.
    #[error("reading or writing the recording failed: {0}")]
    Io(#[from] io::Error),
    /// The data does not start with the `KALDREC1` magic.
    #[error("not a kald recording (no KALDREC1 header)")]
    NotARecording,
    /// The data ends inside the header.
    #[error("the recording ends inside its header ({len} of {HEADER_LEN} bytes)")]
    TruncatedHeader {
        /// How many bytes there are.
        len: usize,
    },
    /// The header names a format version this crate does not read.
    #[error("recording format version {version} is not supported (this kald reads version 1)")]
    UnsupportedVersion {
        /// The version in the header.
        version: u8,
    },
    /// The header describes another audio layout than 8 kHz stereo in 1 s chunks.
    #[error("the recording header describes an audio layout this kald does not read")]
    UnsupportedLayout,
    /// The header names a key that is not loaded.
    #[error(
        "the recording was sealed with key {id}, which is not among the loaded recording keys"
    )]
    UnknownKey {
        /// The key id in the header.
        id: u8,
    },
    /// The header's tag does not verify: altered, or sealed by another key with the same id.
    #[error(
        "the recording header failed authentication (altered, or sealed with another key of the \
         same id)"
    )]
    HeaderAuthentication,
    /// A chunk's length prefix is impossible.
    #[error("recording chunk {chunk} at byte {offset} has an impossible length")]
    BadChunkLength {
        /// The chunk's index.
        chunk: u64,
        /// The byte offset of its length prefix.
        offset: u64,
    },
    /// A chunk failed authentication.
    #[error(
        "recording chunk {chunk} at byte {offset} failed authentication (damaged, altered, \
         moved, or from another file)"
    )]
    Authentication {
        /// The chunk's index.
        chunk: u64,
        /// The byte offset of its length prefix.
        offset: u64,
    },
    /// Bytes follow the final chunk.
    #[error("data follows the final chunk of the recording at byte {offset}")]
    TrailingData {
        /// Where the extra bytes start.
        offset: u64,
    },
    /// [`ChunkWriter::push_frame`] was given a frame of another size.
    #[error("a frame has {len} samples; a 20 ms stereo frame has {FRAME_SAMPLES}")]
    FrameLength {
        /// The number of samples given.
        len: usize,
    },
    /// A muted range ends before it starts.
    #[error("a muted range ends before it starts")]
    BadRange,
    /// [`WavStream::new`] was given a size no WAV of a recording has (too small, not whole
    /// stereo samples, or past the 4 GiB a WAV can hold).
    #[error("{size} bytes is not the size of a recording's WAV")]
    BadWavSize {
        /// The size given.
        size: u64,
    },
    /// [`reencrypt`] was given the source file's own nonce.
    #[error("the new file nonce equals the source file's; give fresh random bytes")]
    NonceReuse,
    /// An earlier error stopped this writer or reader; the file is no longer usable with it.
    #[error("an earlier error stopped this recording writer or reader")]
    Failed,
    /// Writing the WAV failed.
    #[error("writing the WAV failed: {0}")]
    Wav(#[source] hound::Error),
}

/// The header fields and tag for a file sealed with `key` (`id`) and `file_nonce`.
fn seal_header(
    cipher: &XChaCha20Poly1305,
    id: u8,
    file_nonce: &[u8; FILE_NONCE_LEN],
) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8] = VERSION;
    header[9] = id;
    header[10..12].copy_from_slice(&CHANNELS.to_le_bytes());
    header[12..16].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    header[16..18].copy_from_slice(&(FRAME_SAMPLES as u16).to_le_bytes());
    header[18..20].copy_from_slice(&(FRAMES_PER_CHUNK as u16).to_le_bytes());
    header[20..36].copy_from_slice(file_nonce);
    let (fields, tag) = header.split_at_mut(HEADER_FIELDS_LEN);
    // Invariant: encryption fails only for messages longer than 256 GiB; this one is empty.
    let sealed = cipher
        .encrypt_in_place_detached(&nonce(file_nonce, HEADER_INDEX), fields, &mut [])
        .expect("XChaCha20-Poly1305 seals an empty message");
    tag.copy_from_slice(&sealed);
    header
}

/// The nonce of chunk `index`: the file nonce and the index.
fn nonce(file_nonce: &[u8; FILE_NONCE_LEN], index: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..FILE_NONCE_LEN].copy_from_slice(file_nonce);
    n[FILE_NONCE_LEN..].copy_from_slice(&index.to_le_bytes());
    n.into()
}

/// The associated data of chunk `index`: the header, the index and the final flag.
fn chunk_aad(header: &[u8; HEADER_LEN], index: u64, last: bool) -> [u8; HEADER_LEN + 9] {
    let mut aad = [0u8; HEADER_LEN + 9];
    aad[..HEADER_LEN].copy_from_slice(header);
    aad[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&index.to_le_bytes());
    aad[HEADER_LEN + 8] = u8::from(last);
    aad
}

/// The cipher for one key.
fn cipher(key: &Secret) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.expose().into())
}

/// The duration of `frames` 20 ms frames.
fn frames_duration(frames: u64) -> Duration {
    Duration::from_millis(frames.saturating_mul(20))
}

/// Writes a recording file: the header at once, then a sealed chunk every second.
///
/// Frames are 20 ms of interleaved stereo, citizen left, agent right ([`FRAME_SAMPLES`]
/// samples). Dropping the writer without [`finish`](Self::finish) leaves a file that reads as
/// [`Ending::Truncated`], like a crash; to discard a recording (withdrawn consent) the caller
/// deletes the file. See the [module docs](self) on crash safety.
pub struct ChunkWriter<W: Write> {
    inner: W,
    cipher: XChaCha20Poly1305,
    header: [u8; HEADER_LEN],
    file_nonce: [u8; FILE_NONCE_LEN],
    /// Index of the chunk being filled.
    chunk: u64,
    /// The plaintext of the chunk being filled (wiped on drop); sealed in place.
    buf: Vec<u8>,
    /// Frames pushed in all.
    frames: u64,
    /// Hash of every plaintext byte sealed so far.
    sha: Sha256,
    /// A write failed: the file is in an unknown state.
    failed: bool,
}

impl<W: Write> ChunkWriter<W> {
    /// Starts a recording sealed with the current key of `keys`, writing the header to `inner`.
    ///
    /// `file_nonce` must be fresh random bytes (e.g. `rand::random()`), never used for another
    /// file: it makes every chunk's nonce unique under the key.
    pub fn new(
        mut inner: W,
        keys: &RecordingKeys,
        file_nonce: [u8; FILE_NONCE_LEN],
    ) -> Result<Self, FormatError> {
        let (id, key) = keys.current_key();
        let cipher = cipher(key);
        let header = seal_header(&cipher, id, &file_nonce);
        inner.write_all(&header)?;
        inner.flush()?;
        Ok(Self {
            inner,
            cipher,
            header,
            file_nonce,
            chunk: 0,
            buf: Vec::with_capacity(MAX_CHUNK_LEN),
            frames: 0,
            sha: Sha256::new(),
            failed: false,
        })
    }

    /// Appends one 20 ms frame ([`FRAME_SAMPLES`] interleaved samples); every 50th frame seals
    /// and writes a chunk.
    pub fn push_frame(&mut self, frame: &[i16]) -> Result<(), FormatError> {
        if self.failed {
            return Err(FormatError::Failed);
        }
        if frame.len() != FRAME_SAMPLES {
            return Err(FormatError::FrameLength { len: frame.len() });
        }
        for sample in frame {
            self.buf.extend_from_slice(&sample.to_le_bytes());
        }
        self.frames += 1;
        if self.buf.len() == FRAMES_PER_CHUNK * FRAME_BYTES {
            self.seal(false)?;
        }
        Ok(())
    }

    /// Seals the remaining frames as the final chunk and reports the recording's length and
    /// the SHA-256 of its plaintext.
    pub fn finish(mut self) -> Result<Finished, FormatError> {
        if self.failed {
            return Err(FormatError::Failed);
        }
        self.seal(true)?;
        Ok(Finished {
            duration: frames_duration(self.frames),
            frames: self.frames,
            sha256: core::mem::take(&mut self.sha).finalize().into(),
        })
    }

    /// The length recorded so far (including frames not yet sealed).
    pub fn duration(&self) -> Duration {
        frames_duration(self.frames)
    }

    /// The caller's writer, e.g. to `sync_data` a file; write nothing through it.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Seals `buf` as the next chunk, writes and flushes it.
    fn seal(&mut self, last: bool) -> Result<(), FormatError> {
        self.sha.update(&self.buf);
        let aad = chunk_aad(&self.header, self.chunk, last);
        let nonce = nonce(&self.file_nonce, self.chunk);
        let sealed = self.cipher.encrypt_in_place(&nonce, &aad, &mut self.buf);
        if sealed.is_err() {
            // Invariant: only messages longer than 256 GiB fail; a chunk is 32 KB.
            self.failed = true;
            self.buf.zeroize();
            return Err(FormatError::Failed);
        }
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        let mut written = self.inner.write_all(&len.to_le_bytes());
        if written.is_ok() {
            written = self.inner.write_all(&self.buf);
        }
        if written.is_ok() {
            written = self.inner.flush();
        }
        self.buf.clear();
        self.chunk += 1;
        written.map_err(|e| {
            self.failed = true;
            FormatError::Io(e)
        })
    }
}

impl<W: Write> Drop for ChunkWriter<W> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl<W: Write> fmt::Debug for ChunkWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkWriter")
            .field("key_id", &self.header[9])
            .field("frames", &self.frames)
            .field("chunks_written", &self.chunk)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Reads a recording file: checks the header at [`open`](Self::open), then yields the
/// plaintext samples a chunk at a time, each authenticated before it is returned.
pub struct ChunkReader<R: Read> {
    inner: R,
    cipher: XChaCha20Poly1305,
    header_bytes: [u8; HEADER_LEN],
    header: Header,
    file_nonce: [u8; FILE_NONCE_LEN],
    /// Index of the next chunk.
    chunk: u64,
    /// Byte offset of the next chunk.
    offset: u64,
    /// Ciphertext, then plaintext of the current chunk (wiped on drop).
    buf: Vec<u8>,
    /// Samples of the current chunk (wiped on drop).
    samples: Vec<i16>,
    /// Frames read so far.
    frames: u64,
    sha: Sha256,
    /// Set when the end is reached.
    ending: Option<Ending>,
    /// An error stopped the reader.
    failed: bool,
}

impl<R: Read> ChunkReader<R> {
    /// Reads and authenticates the header with the key it names.
    pub fn open(mut inner: R, keys: &RecordingKeys) -> Result<Self, FormatError> {
        let mut header_bytes = [0u8; HEADER_LEN];
        let len = read_full(&mut inner, &mut header_bytes)?;
        let magic_len = len.min(MAGIC.len());
        if header_bytes[..magic_len] != MAGIC[..magic_len] {
            return Err(FormatError::NotARecording);
        }
        if len < HEADER_LEN {
            return Err(FormatError::TruncatedHeader { len });
        }
        let version = header_bytes[8];
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion { version });
        }
        let u16_at = |i: usize| u16::from_le_bytes([header_bytes[i], header_bytes[i + 1]]);
        let sample_rate = u32::from_le_bytes([
            header_bytes[12],
            header_bytes[13],
            header_bytes[14],
            header_bytes[15],
        ]);
        if u16_at(10) != CHANNELS
            || sample_rate != SAMPLE_RATE
            || usize::from(u16_at(16)) != FRAME_SAMPLES
            || usize::from(u16_at(18)) != FRAMES_PER_CHUNK
        {
            return Err(FormatError::UnsupportedLayout);
        }
        let key_id = header_bytes[9];
        let key = keys
            .key(key_id)
            .ok_or(FormatError::UnknownKey { id: key_id })?;
        let cipher = cipher(key);
        let mut file_nonce = [0u8; FILE_NONCE_LEN];
        file_nonce.copy_from_slice(&header_bytes[20..HEADER_FIELDS_LEN]);
        let (fields, tag) = header_bytes.split_at(HEADER_FIELDS_LEN);
        cipher
            .decrypt_in_place_detached(
                &nonce(&file_nonce, HEADER_INDEX),
                fields,
                &mut [],
                tag.into(),
            )
            .map_err(|_| FormatError::HeaderAuthentication)?;
        Ok(Self {
            inner,
            cipher,
            header_bytes,
            header: Header {
                version,
                key_id,
                sample_rate,
                channels: CHANNELS,
            },
            file_nonce,
            chunk: 0,
            offset: HEADER_LEN as u64,
            buf: Vec::with_capacity(MAX_CHUNK_LEN),
            samples: Vec::with_capacity(FRAMES_PER_CHUNK * FRAME_SAMPLES),
            frames: 0,
            sha: Sha256::new(),
            ending: None,
            failed: false,
        })
    }

    /// What the header says (e.g. the key id, to find files to re-encrypt).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next chunk's samples (interleaved, up to 1 s), or `None` at the end; then
    /// [`ending`](Self::ending) tells whether the file was complete.
    pub fn next_chunk(&mut self) -> Result<Option<&[i16]>, FormatError> {
        if self.failed {
            return Err(FormatError::Failed);
        }
        if self.ending.is_some() {
            return Ok(None);
        }
        match self.read_chunk() {
            Ok(true) => Ok(Some(&self.samples)),
            Ok(false) => Ok(None),
            Err(e) => {
                self.failed = true;
                self.buf.zeroize();
                self.samples.zeroize();
                Err(e)
            }
        }
    }

    /// How the file ended, once [`next_chunk`](Self::next_chunk) has returned `None`.
    pub fn ending(&self) -> Option<Ending> {
        self.ending
    }

    /// The length read so far.
    pub fn duration(&self) -> Duration {
        frames_duration(self.frames)
    }

    /// Reads the whole recording: every sample and how the file ended.
    pub fn read_all(mut self) -> Result<(Vec<i16>, Ending), FormatError> {
        let mut all = Vec::new();
        while let Some(samples) = self.next_chunk()? {
            all.extend_from_slice(samples);
        }
        let ending = self.ending.ok_or(FormatError::Failed)?;
        Ok((all, ending))
    }

    /// Reads one chunk into `samples`; `false` at the end (`ending` set).
    fn read_chunk(&mut self) -> Result<bool, FormatError> {
        let (chunk, offset) = (self.chunk, self.offset);
        let truncated = |this: &mut Self| {
            this.ending = Some(Ending::Truncated {
                duration: frames_duration(this.frames),
            });
            Ok(false)
        };
        let mut len_bytes = [0u8; 4];
        if read_full(&mut self.inner, &mut len_bytes)? < len_bytes.len() {
            // The end of the file, or a torn length prefix: no final chunk.
            return truncated(self);
        }
        let len = usize::try_from(u32::from_le_bytes(len_bytes)).unwrap_or(usize::MAX);
        let last = len != MAX_CHUNK_LEN;
        if !(TAG_LEN..=MAX_CHUNK_LEN).contains(&len) || !(len - TAG_LEN).is_multiple_of(FRAME_BYTES)
        {
            return Err(FormatError::BadChunkLength { chunk, offset });
        }
        self.buf.resize(len, 0);
        if read_full(&mut self.inner, &mut self.buf)? < len {
            // A torn write of the last chunk.
            return truncated(self);
        }
        let aad = chunk_aad(&self.header_bytes, chunk, last);
        self.cipher
            .decrypt_in_place(&nonce(&self.file_nonce, chunk), &aad, &mut self.buf)
            .map_err(|_| FormatError::Authentication { chunk, offset })?;
        self.sha.update(&self.buf);
        self.samples.clear();
        self.samples.extend(
            self.buf
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        self.buf.zeroize();
        self.frames += (self.samples.len() / FRAME_SAMPLES) as u64;
        self.chunk += 1;
        self.offset += 4 + len as u64;
        if last {
            let mut extra = [0u8; 1];
            if read_full(&mut self.inner, &mut extra)? != 0 {
                return Err(FormatError::TrailingData {
                    offset: self.offset,
                });
            }
            self.ending = Some(Ending::Complete {
                duration: frames_duration(self.frames),
                sha256: core::mem::take(&mut self.sha).finalize().into(),
            });
            return Ok(!self.samples.is_empty());
        }
        Ok(true)
    }
}

impl<R: Read> Drop for ChunkReader<R> {
    fn drop(&mut self) {
        self.buf.zeroize();
        self.samples.zeroize();
    }
}

impl<R: Read> fmt::Debug for ChunkReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkReader")
            .field("header", &self.header)
            .field("frames", &self.frames)
            .field("ending", &self.ending)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes the recording as a standard WAV (stereo, 16-bit, 8 kHz; citizen left, agent right).
///
/// A truncated recording exports what survived ([`ExportInfo::ending`] says so). On an error
/// the WAV is incomplete and must be discarded.
pub fn export_wav<R: Read, W: Write + Seek>(
    reader: ChunkReader<R>,
    writer: W,
) -> Result<ExportInfo, FormatError> {
    export_wav_muted(reader, writer, &[])
}

/// Like [`export_wav`], with silence (both channels exactly zero) in the given time ranges.
///
/// Each range is `(start, end)` from the start of the recording, end exclusive: the sample at
/// time `t` (a multiple of 1/8000 s) is muted when `start ≤ t < end`. Ranges may overlap or
/// reach past the end. Used for access requests released with parts muted (e.g. where a third
/// party speaks).
pub fn export_wav_muted<R: Read, W: Write + Seek>(
    mut reader: ChunkReader<R>,
    writer: W,
    ranges: &[(Duration, Duration)],
) -> Result<ExportInfo, FormatError> {
    let muted_ranges = sample_ranges(ranges)?;
    let spec = hound::WavSpec {
        channels: CHANNELS,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::new(writer, spec).map_err(FormatError::Wav)?;
    let mut index: u128 = 0;
    let mut muted: u128 = 0;
    while let Some(samples) = reader.next_chunk()? {
        for pair in samples.chunks_exact(usize::from(CHANNELS)) {
            let silent = muted_ranges
                .iter()
                .any(|&(first, past)| first <= index && index < past);
            muted += u128::from(silent);
            for &sample in pair {
                wav.write_sample(if silent { 0 } else { sample })
                    .map_err(FormatError::Wav)?;
            }
            index += 1;
        }
    }
    wav.finalize().map_err(FormatError::Wav)?;
    let ending = reader.ending().ok_or(FormatError::Failed)?;
    let muted_nanos = u64::try_from(muted * SAMPLE_NANOS).unwrap_or(u64::MAX);
    Ok(ExportInfo {
        ending,
        muted: Duration::from_nanos(muted_nanos),
    })
}

/// Bytes before the samples in the WAV [`export_wav`] writes: `RIFF`, a 16-byte `fmt ` chunk
/// (PCM) and the `data` chunk's header.
pub const WAV_HEADER_LEN: u64 = 44;

/// The size in bytes of the WAV [`export_wav`] makes of a recording, and how the recording
/// ends, found by decrypting it once and keeping nothing: with it, [`WavStream`] streams the
/// WAV without holding it or seeking (a 1-hour recording is a 115 MB WAV).
pub fn wav_size<R: Read>(mut reader: ChunkReader<R>) -> Result<(u64, Ending), FormatError> {
    let mut samples: u64 = 0;
    while let Some(chunk) = reader.next_chunk()? {
        samples += chunk.len() as u64;
    }
    let ending = reader.ending().ok_or(FormatError::Failed)?;
    Ok((WAV_HEADER_LEN + 2 * samples, ending))
}

/// A recording read as the bytes of a standard WAV, a second at a time: exactly the bytes
/// [`export_wav`] writes, without holding the whole file or needing to seek, e.g. as an HTTP
/// body or while hashing.
///
/// It needs the WAV's size up front ([`wav_size`], a first pass over the same file) for the
/// header; if this pass decrypts to a different length (the file changed in between), reading
/// fails with [`io::ErrorKind::InvalidData`] rather than give a WAV whose header lies.
pub struct WavStream<R: Read> {
    /// The decrypting reader.
    reader: ChunkReader<R>,
    /// The header, then each chunk's samples as little-endian bytes.
    pending: Vec<u8>,
    /// How much of `pending` was read.
    offset: usize,
    /// Sample bytes still to come, by the header.
    data_left: u64,
    /// Half-open ranges of stereo sample indices to silence (see [`export_wav_muted`]).
    muted: Vec<(u128, u128)>,
    /// The index of the next stereo sample.
    index: u128,
}

impl<R: Read> WavStream<R> {
    /// Streams `reader` as a WAV of `size` bytes (from [`wav_size`]).
    pub fn new(reader: ChunkReader<R>, size: u64) -> Result<Self, FormatError> {
        Self::muted(reader, size, &[])
    }

    /// Like [`new`](Self::new), with silence in the given time ranges: the bytes
    /// [`export_wav_muted`] writes.
    pub fn muted(
        reader: ChunkReader<R>,
        size: u64,
        ranges: &[(Duration, Duration)],
    ) -> Result<Self, FormatError> {
        let muted = sample_ranges(ranges)?;
        let data = size
            .checked_sub(WAV_HEADER_LEN)
            .filter(|data| data % 4 == 0)
            .ok_or(FormatError::BadWavSize { size })?;
        let riff = u32::try_from(size - 8).map_err(|_| FormatError::BadWavSize { size })?;
        let data32 = u32::try_from(data).map_err(|_| FormatError::BadWavSize { size })?;
        let block_align = CHANNELS * 2;
        let mut header = Vec::with_capacity(FRAME_SAMPLES * 2 * 50);
        header.extend_from_slice(b"RIFF");
        header.extend_from_slice(&riff.to_le_bytes());
        header.extend_from_slice(b"WAVEfmt ");
        header.extend_from_slice(&16u32.to_le_bytes());
        header.extend_from_slice(&1u16.to_le_bytes()); // PCM
        header.extend_from_slice(&CHANNELS.to_le_bytes());
        header.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
        header.extend_from_slice(&(SAMPLE_RATE * u32::from(block_align)).to_le_bytes());
        header.extend_from_slice(&block_align.to_le_bytes());
        header.extend_from_slice(&16u16.to_le_bytes());
        header.extend_from_slice(b"data");
        header.extend_from_slice(&data32.to_le_bytes());
        Ok(Self {
            reader,
            pending: header,
            offset: 0,
            data_left: data,
            muted,
            index: 0,
        })
    }

    /// Refills `pending` with the next chunk's samples; `false` at the end.
    fn refill(&mut self) -> io::Result<bool> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        self.pending.clear();
        self.offset = 0;
        match self.reader.next_chunk() {
            Ok(Some(samples)) => {
                for pair in samples.chunks_exact(usize::from(CHANNELS)) {
                    let index = self.index;
                    let silent = self
                        .muted
                        .iter()
                        .any(|&(first, past)| first <= index && index < past);
                    for &sample in pair {
                        let sample = if silent { 0 } else { sample };
                        self.pending.extend_from_slice(&sample.to_le_bytes());
                    }
                    self.index += 1;
                }
                let len = self.pending.len() as u64;
                self.data_left = self
                    .data_left
                    .checked_sub(len)
                    .ok_or_else(|| invalid("the recording is longer than on the first pass"))?;
                Ok(true)
            }
            Ok(None) if self.data_left == 0 => Ok(false),
            Ok(None) => Err(invalid("the recording is shorter than on the first pass")),
            Err(FormatError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

impl<R: Read> Read for WavStream<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.pending.len() {
            if out.is_empty() || !self.refill()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.pending.len() - self.offset);
        out[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// Muted time ranges as half-open ranges of stereo sample indices: the sample at time `t` (a
/// multiple of 1/8000 s) is muted when `start ≤ t < end`. Empty ranges are dropped.
fn sample_ranges(ranges: &[(Duration, Duration)]) -> Result<Vec<(u128, u128)>, FormatError> {
    let mut out = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges {
        if end < start {
            return Err(FormatError::BadRange);
        }
        let first = start.as_nanos().div_ceil(SAMPLE_NANOS);
        let past = end.as_nanos().div_ceil(SAMPLE_NANOS);
        if first < past {
            out.push((first, past));
        }
    }
    Ok(out)
}

/// Copies a recording into a new file sealed with the current key of `keys` — to retire an
/// old key (see [`RecordingKeys`] on rotation), or to repair a file a crash cut short (the new
/// file is complete, with the whole seconds that survived).
///
/// `file_nonce` must be fresh random bytes, as for [`ChunkWriter::new`]. The caller writes the
/// new file beside the old one, syncs it, checks [`Reencrypted::output`], and only then
/// replaces the old file.
pub fn reencrypt<R: Read, W: Write>(
    input: R,
    output: W,
    keys: &RecordingKeys,
    file_nonce: [u8; FILE_NONCE_LEN],
) -> Result<Reencrypted, FormatError> {
    let mut reader = ChunkReader::open(input, keys)?;
    if reader.file_nonce == file_nonce {
        return Err(FormatError::NonceReuse);
    }
    let mut writer = ChunkWriter::new(output, keys, file_nonce)?;
    while let Some(samples) = reader.next_chunk()? {
        for frame in samples.chunks_exact(FRAME_SAMPLES) {
            writer.push_frame(frame)?;
        }
    }
    let input = reader.ending().ok_or(FormatError::Failed)?;
    Ok(Reencrypted {
        from_key: reader.header.key_id,
        to_key: keys.current_key_id(),
        input,
        output: writer.finish()?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Cursor;

    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const OTHER: &str = "f00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn keys() -> RecordingKeys {
        RecordingKeys::from_hex(KEY).unwrap()
    }

    /// Deterministic pseudo-random samples (an LCG), `frames` frames of them.
    fn noise(frames: usize, seed: u32) -> Vec<i16> {
        let mut state = seed;
        (0..frames * FRAME_SAMPLES)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 16) as i16
            })
            .collect()
    }

    /// A 440 Hz tone on both channels (the citizen's at full level, the agent's at half).
    fn tone(frames: usize) -> Vec<i16> {
        (0..frames * FRAME_SAMPLES / 2)
            .flat_map(|i| {
                let phase = 2.0 * core::f64::consts::PI * 440.0 * i as f64 / 8000.0;
                let v = (phase.sin() * 12_000.0) as i16;
                [v, v / 2]
            })
            .collect()
    }

    fn record(samples: &[i16], keys: &RecordingKeys, nonce: u8) -> (Vec<u8>, Finished) {
        let mut file = Vec::new();
        let mut writer = ChunkWriter::new(&mut file, keys, [nonce; FILE_NONCE_LEN]).unwrap();
        for frame in samples.chunks(FRAME_SAMPLES) {
            writer.push_frame(frame).unwrap();
        }
        let finished = writer.finish().unwrap();
        (file, finished)
    }

    fn read(file: &[u8], keys: &RecordingKeys) -> Result<(Vec<i16>, Ending), FormatError> {
        ChunkReader::open(file, keys)?.read_all()
    }

    fn pcm_sha(samples: &[i16]) -> [u8; 32] {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        Sha256::digest(&bytes).into()
    }

    /// Offset of chunk `i`'s length prefix in a file whose earlier chunks are all full.
    fn chunk_offset(i: usize) -> usize {
        HEADER_LEN + i * (4 + MAX_CHUNK_LEN)
    }

    #[test]
    fn roundtrip_is_bit_exact() {
        let keys = keys();
        for frames in [0, 1, 49, 50, 51, 100, 175] {
            let samples = noise(frames, 7);
            let (file, finished) = record(&samples, &keys, 1);
            assert_eq!(finished.frames, frames as u64);
            assert_eq!(finished.duration, Duration::from_millis(20 * frames as u64));
            assert_eq!(finished.sha256, pcm_sha(&samples));
            let full = frames / FRAMES_PER_CHUNK;
            let rest = frames % FRAMES_PER_CHUNK;
            assert_eq!(
                file.len(),
                HEADER_LEN + full * (4 + MAX_CHUNK_LEN) + 4 + TAG_LEN + rest * FRAME_BYTES
            );
            let (read_back, ending) = read(&file, &keys).unwrap();
            assert_eq!(read_back, samples, "{frames} frames");
            assert_eq!(
                ending,
                Ending::Complete {
                    duration: finished.duration,
                    sha256: finished.sha256
                }
            );
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let (file, _) = record(&noise(60, 1), &keys(), 0xab);
        assert_eq!(&file[..8], b"KALDREC1");
        assert_eq!(file[8], 1);
        assert_eq!(file[9], 1);
        assert_eq!(&file[10..12], &2u16.to_le_bytes());
        assert_eq!(&file[12..16], &8000u32.to_le_bytes());
        assert_eq!(&file[16..18], &320u16.to_le_bytes());
        assert_eq!(&file[18..20], &50u16.to_le_bytes());
        assert_eq!(&file[20..36], &[0xab; 16]);
        assert_eq!(
            &file[52..56],
            &u32::try_from(MAX_CHUNK_LEN).unwrap().to_le_bytes()
        );
        let second = chunk_offset(1);
        assert_eq!(
            &file[second..second + 4],
            &u32::try_from(16 + 10 * 640).unwrap().to_le_bytes()
        );
        let reader = ChunkReader::open(&file[..], &keys()).unwrap();
        assert_eq!(reader.header().key_id, 1);
        assert_eq!(reader.header().sample_rate, 8000);
        assert_eq!(reader.header().channels, 2);
    }

    /// The largest normalized cross-correlation, over every lag and every phase, of `signal`
    /// with a 1 s sinusoid of `hz` at 8 kHz (the test tone). A sliding single-frequency DFT
    /// gives the dot product with the best-phased sinusoid at each lag in O(1), so every lag
    /// is checked even unoptimised.
    fn max_tone_correlation(signal: &[f64], hz: f64) -> f64 {
        const M: usize = 8000;
        let w = 2.0 * core::f64::consts::PI * hz / 8000.0;
        // Prefix sums of x·e^(iωm) and of x².
        let mut re = vec![0.0; signal.len() + 1];
        let mut im = vec![0.0; signal.len() + 1];
        let mut energy = vec![0.0; signal.len() + 1];
        for (m, &x) in signal.iter().enumerate() {
            let phase = w * m as f64;
            re[m + 1] = re[m] + x * phase.cos();
            im[m + 1] = im[m] + x * phase.sin();
            energy[m + 1] = energy[m] + x * x;
        }
        let reference_energy = M as f64 / 2.0;
        let mut best: f64 = 0.0;
        for k in 0..=signal.len() - M {
            let e = energy[k + M] - energy[k];
            if e == 0.0 {
                continue;
            }
            let (r, i) = (re[k + M] - re[k], im[k + M] - im[k]);
            best = best.max((r * r + i * i).sqrt() / (e * reference_energy).sqrt());
        }
        best
    }

    #[test]
    fn the_file_is_not_audio_without_the_key() {
        let samples = tone(150);
        let (file, _) = record(&samples, &keys(), 3);
        assert!(!file.windows(4).any(|w| w == b"RIFF" || w == b"WAVE"));
        let as_i16 = |bytes: &[u8], step: usize| -> Vec<f64> {
            bytes
                .chunks_exact(2)
                .step_by(step)
                .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])))
                .collect()
        };
        // The control: the plaintext read the same way correlates almost perfectly, and the
        // measure does not see a tone that is not there.
        let plain: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert!(max_tone_correlation(&as_i16(&plain, 2), 440.0) > 0.99);
        assert!(max_tone_correlation(&as_i16(&plain, 2), 1000.0) < 0.1);
        // The file read as i16 — at both byte alignments, as one stream or as either
        // channel — correlates with the tone nowhere.
        for (shift, step) in [(0, 1), (1, 1), (0, 2), (1, 2), (2, 2), (3, 2)] {
            let c = max_tone_correlation(&as_i16(&file[shift..], step), 440.0);
            assert!(c < 0.1, "correlation {c} at shift {shift}, step {step}");
        }
    }

    #[test]
    fn a_wrong_or_unknown_key_is_refused() {
        let (file, _) = record(&noise(60, 2), &keys(), 1);
        let other = RecordingKeys::from_hex(OTHER).unwrap();
        assert!(matches!(
            ChunkReader::open(&file[..], &other),
            Err(FormatError::HeaderAuthentication)
        ));
        let mut rotated = RecordingKeys::from_hex(OTHER).unwrap();
        rotated.rotate().unwrap();
        rotated.rotate().unwrap();
        rotated.retire(1);
        assert!(matches!(
            ChunkReader::open(&file[..], &rotated),
            Err(FormatError::UnknownKey { id: 1 })
        ));
    }

    /// Byte offsets to test in a file of `len` bytes: all of them, or (for unoptimised
    /// builds, where one second of audio takes ~13 ms to open) every offset in the header and
    /// within `near` bytes of a chunk boundary or of the end, and every 997th in between.
    fn offsets(len: usize, all: bool, near: usize) -> Vec<usize> {
        let boundaries: Vec<usize> = (0..4).map(chunk_offset).chain([len]).collect();
        (0..=len)
            .filter(|&i| {
                all || i <= HEADER_LEN
                    || i % 997 == 0
                    || boundaries.iter().any(|&b| i.abs_diff(b) <= near)
            })
            .collect()
    }

    /// Flips one bit at each offset of a 1.4 s file; every change must be an error.
    fn flipped_bytes_are_detected(all: bool) {
        let keys = keys();
        let samples = noise(70, 3);
        let (file, _) = record(&samples, &keys, 1);
        let last_prefix = chunk_offset(1)..chunk_offset(1) + 4;
        let mut tried = 0;
        for i in offsets(file.len() - 1, all, 24) {
            for bit in [0x01, 0x80] {
                let mut bad = file.clone();
                bad[i] ^= bit;
                tried += 1;
                match read(&bad, &keys) {
                    Err(_) => {}
                    // The only change that is not an error: the last chunk's length made to
                    // point past the end of the file reads as a torn write, losing that chunk
                    // (as a crash would); the catalogue's SHA-256 tells it from a whole file.
                    Ok((read_back, Ending::Truncated { duration })) if last_prefix.contains(&i) => {
                        assert_eq!(duration, Duration::from_secs(1));
                        assert_eq!(read_back, samples[..50 * FRAME_SAMPLES]);
                    }
                    Ok((_, ending)) => panic!("byte {i} bit {bit:#x}: {ending:?}"),
                }
            }
        }
        assert!(
            tried >= 2 * if all { file.len() - 1 } else { 150 },
            "{tried}"
        );
    }

    #[test]
    fn flipped_bytes_are_detected_sampled() {
        flipped_bytes_are_detected(false);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "every byte of a 45 KB file takes minutes unoptimised: cargo test --release"
    )]
    fn flipped_bytes_are_detected_everywhere() {
        flipped_bytes_are_detected(true);
    }

    #[test]
    fn swapped_reordered_dropped_and_foreign_chunks_are_errors() {
        let keys = keys();
        let (a, _) = record(&noise(130, 4), &keys, 1);
        let (b, _) = record(&noise(130, 5), &keys, 2);
        let chunk = |file: &[u8], i: usize| file[chunk_offset(i)..chunk_offset(i + 1)].to_vec();
        let head = |file: &[u8]| file[..HEADER_LEN].to_vec();
        let tail = |file: &[u8]| file[chunk_offset(2)..].to_vec();

        let reordered = [head(&a), chunk(&a, 1), chunk(&a, 0), tail(&a)].concat();
        let dropped = [head(&a), chunk(&a, 1), tail(&a)].concat();
        let foreign = [head(&a), chunk(&a, 0), chunk(&b, 1), tail(&a)].concat();
        let other_header = [head(&b), a[HEADER_LEN..].to_vec()].concat();
        let duplicated = [head(&a), chunk(&a, 0), chunk(&a, 0), tail(&a)].concat();
        for (name, file, bad_chunk) in [
            ("reordered", reordered, 0),
            ("dropped", dropped, 0),
            ("foreign", foreign, 1),
            ("other header", other_header, 0),
            ("duplicated", duplicated, 1),
        ] {
            match read(&file, &keys) {
                Err(FormatError::Authentication { chunk, offset }) => {
                    assert_eq!(chunk, bad_chunk, "{name}");
                    assert_eq!(offset, chunk_offset(bad_chunk as usize) as u64, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // A non-final chunk passed off as the last one (the rest cut off, a final chunk of
        // another file appended).
        let fake_end = [head(&a), chunk(&a, 0), tail(&b)].concat();
        assert!(matches!(
            read(&fake_end, &keys),
            Err(FormatError::Authentication { chunk: 1, .. })
        ));
        // Data after the final chunk.
        let mut trailing = a.clone();
        trailing.push(0);
        assert!(matches!(
            read(&trailing, &keys),
            Err(FormatError::TrailingData { offset }) if offset == a.len() as u64
        ));
    }

    /// Cuts a 3 s file at each offset: a header error before the header is whole, then
    /// `Truncated` with the whole seconds before the cut, never a panic.
    fn truncation_reads_whole_seconds(all: bool) {
        let keys = keys();
        let samples = noise(150, 6);
        let (file, finished) = record(&samples, &keys, 1);
        assert_eq!(file.len(), chunk_offset(3) + 4 + TAG_LEN);
        for len in offsets(file.len(), all, 12) {
            let result = read(&file[..len], &keys);
            if len < HEADER_LEN {
                assert!(
                    matches!(result, Err(FormatError::TruncatedHeader { len: l }) if l == len),
                    "{len}: {result:?}"
                );
                continue;
            }
            let (read_back, ending) = result.unwrap();
            if len == file.len() {
                assert_eq!(
                    ending,
                    Ending::Complete {
                        duration: finished.duration,
                        sha256: finished.sha256
                    }
                );
                assert_eq!(read_back, samples);
                continue;
            }
            let seconds = (0..=3).rev().find(|&s| chunk_offset(s) <= len).unwrap_or(0);
            assert_eq!(
                ending,
                Ending::Truncated {
                    duration: Duration::from_secs(seconds as u64)
                },
                "{len}"
            );
            assert_eq!(read_back, samples[..seconds * 50 * FRAME_SAMPLES], "{len}");
        }
    }

    #[test]
    fn truncation_reads_whole_seconds_sampled() {
        truncation_reads_whole_seconds(false);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "every offset of a 3 s file takes minutes unoptimised: cargo test --release"
    )]
    fn truncation_reads_whole_seconds_at_every_offset() {
        truncation_reads_whole_seconds(true);
    }

    #[test]
    fn not_a_recording_and_bad_headers() {
        let keys = keys();
        assert!(matches!(
            read(b"RIFF\0\0\0\0WAVE", &keys),
            Err(FormatError::NotARecording)
        ));
        assert!(matches!(
            read(b"KALD", &keys),
            Err(FormatError::TruncatedHeader { len: 4 })
        ));
        let (file, _) = record(&noise(10, 1), &keys, 1);
        let mut version = file.clone();
        version[8] = 2;
        assert!(matches!(
            read(&version, &keys),
            Err(FormatError::UnsupportedVersion { version: 2 })
        ));
        let mut layout = file.clone();
        layout[12] = 0x80; // 16,000 Hz
        assert!(matches!(
            read(&layout, &keys),
            Err(FormatError::UnsupportedLayout)
        ));
        let mut nonce = file.clone();
        nonce[25] ^= 1;
        assert!(matches!(
            read(&nonce, &keys),
            Err(FormatError::HeaderAuthentication)
        ));
        let mut length = file;
        length[HEADER_LEN] = 17; // not 16 + 640 × frames
        assert!(matches!(
            read(&length, &keys),
            Err(FormatError::BadChunkLength {
                chunk: 0,
                offset: 52
            })
        ));
    }

    #[test]
    fn writer_refuses_bad_frames_and_stops_after_write_errors() {
        let keys = keys();
        let mut file = Vec::new();
        let mut writer = ChunkWriter::new(&mut file, &keys, [1; 16]).unwrap();
        assert!(matches!(
            writer.push_frame(&[0; 160]),
            Err(FormatError::FrameLength { len: 160 })
        ));
        writer.push_frame(&[0; 320]).unwrap();
        assert_eq!(writer.duration(), Duration::from_millis(20));

        /// Accepts the header, then fails.
        struct Failing(usize);
        impl Write for Failing {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 >= HEADER_LEN {
                    return Err(io::Error::other("disk full"));
                }
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut writer = ChunkWriter::new(Failing(0), &keys, [1; 16]).unwrap();
        let frame = [5i16; FRAME_SAMPLES];
        for _ in 0..49 {
            writer.push_frame(&frame).unwrap();
        }
        assert!(matches!(writer.push_frame(&frame), Err(FormatError::Io(_))));
        assert!(matches!(
            writer.push_frame(&frame),
            Err(FormatError::Failed)
        ));
        assert!(matches!(writer.finish(), Err(FormatError::Failed)));
    }

    #[test]
    fn chunks_are_written_as_soon_as_sealed() {
        let keys = keys();
        let mut file = Vec::new();
        let mut writer = ChunkWriter::new(&mut file, &keys, [9; 16]).unwrap();
        let samples = noise(120, 8);
        let mut frames = samples.chunks(FRAME_SAMPLES);
        for frame in frames.by_ref().take(110) {
            writer.push_frame(frame).unwrap();
        }
        // A crash now: the two whole seconds are on "disk", the last 0.2 s is lost.
        drop(writer);
        assert_eq!(file.len(), chunk_offset(2));
        let (read_back, ending) = read(&file, &keys).unwrap();
        assert_eq!(
            ending,
            Ending::Truncated {
                duration: Duration::from_secs(2)
            }
        );
        assert_eq!(read_back, samples[..100 * FRAME_SAMPLES]);
    }

    #[test]
    fn rotation_and_reencryption() {
        let mut keys = keys();
        let samples = noise(120, 9);
        let (old, finished) = record(&samples, &keys, 1);
        assert_eq!(keys.rotate().unwrap(), 2);
        let (new, _) = record(&samples, &keys, 2);
        assert_eq!(
            ChunkReader::open(&new[..], &keys).unwrap().header().key_id,
            2
        );
        // Both open with the rotated keys.
        assert_eq!(read(&old, &keys).unwrap().0, samples);
        assert_eq!(read(&new, &keys).unwrap().0, samples);

        // Retire key 1: re-encrypt the old file, then drop the key.
        let mut moved = Vec::new();
        let report = reencrypt(&old[..], &mut moved, &keys, [3; 16]).unwrap();
        assert_eq!((report.from_key, report.to_key), (1, 2));
        assert_eq!(report.output.sha256, finished.sha256);
        assert_eq!(
            report.input,
            Ending::Complete {
                duration: finished.duration,
                sha256: finished.sha256
            }
        );
        assert!(keys.retire(1));
        assert_eq!(read(&moved, &keys).unwrap().0, samples);
        assert!(matches!(
            read(&old, &keys),
            Err(FormatError::UnknownKey { id: 1 })
        ));

        // The same nonce as the source is refused (it would reuse the key stream).
        assert!(matches!(
            reencrypt(&new[..], Vec::new(), &keys, [2; 16]),
            Err(FormatError::NonceReuse)
        ));
    }

    #[test]
    fn reencrypt_repairs_a_truncated_file() {
        let keys = keys();
        let samples = noise(130, 10);
        let (file, _) = record(&samples, &keys, 1);
        let torn = &file[..chunk_offset(2) + 100];
        let mut repaired = Vec::new();
        let report = reencrypt(torn, &mut repaired, &keys, [4; 16]).unwrap();
        let two_seconds = Duration::from_secs(2);
        assert_eq!(
            report.input,
            Ending::Truncated {
                duration: two_seconds
            }
        );
        assert_eq!(report.output.duration, two_seconds);
        let (read_back, ending) = read(&repaired, &keys).unwrap();
        assert!(ending.is_complete());
        assert_eq!(read_back, samples[..100 * FRAME_SAMPLES]);
        assert_eq!(report.output.sha256, pcm_sha(&read_back));
    }

    fn wav_samples(wav: Vec<u8>) -> (hound::WavSpec, Vec<i16>) {
        let reader = hound::WavReader::new(Cursor::new(wav)).unwrap();
        let spec = reader.spec();
        let samples = reader
            .into_samples::<i16>()
            .collect::<Result<_, _>>()
            .unwrap();
        (spec, samples)
    }

    #[test]
    fn export_writes_a_standard_wav() {
        let keys = keys();
        let samples = tone(80);
        let (file, finished) = record(&samples, &keys, 1);
        let mut wav = Cursor::new(Vec::new());
        let info = export_wav(ChunkReader::open(&file[..], &keys).unwrap(), &mut wav).unwrap();
        assert_eq!(info.ending.duration(), finished.duration);
        assert!(info.ending.is_complete());
        assert_eq!(info.muted, Duration::ZERO);
        let wav = wav.into_inner();
        assert_eq!(&wav[..4], b"RIFF");
        let (spec, exported) = wav_samples(wav);
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert_eq!(exported, samples);
    }

    #[test]
    fn wav_stream_gives_the_bytes_export_wav_writes() {
        let keys = keys();
        let (long, _) = record(&noise(170, 3), &keys, 1);
        let cases = [
            record(&tone(80), &keys, 2).0,
            long.clone(),
            // Cut after two whole seconds, as a crash leaves it.
            long[..chunk_offset(2)].to_vec(),
        ];
        for file in cases {
            let mut expected = Cursor::new(Vec::new());
            let info =
                export_wav(ChunkReader::open(&file[..], &keys).unwrap(), &mut expected).unwrap();
            let expected = expected.into_inner();
            let (size, ending) = wav_size(ChunkReader::open(&file[..], &keys).unwrap()).unwrap();
            assert_eq!(size, expected.len() as u64);
            assert_eq!(ending, info.ending);
            // Read in odd small pieces and in one go: the same bytes.
            for piece in [7, 1 << 20] {
                let mut stream =
                    WavStream::new(ChunkReader::open(&file[..], &keys).unwrap(), size).unwrap();
                let mut got = Vec::new();
                let mut buf = vec![0u8; piece];
                loop {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got.len(), expected.len());
                assert!(got == expected, "piece {piece}");
            }
        }

        // Muted: the bytes export_wav_muted writes.
        let ms = Duration::from_millis;
        let ranges = [
            (ms(500), ms(1000)),
            (Duration::from_micros(2_900_060), ms(9_000)),
        ];
        let mut expected = Cursor::new(Vec::new());
        export_wav_muted(
            ChunkReader::open(&long[..], &keys).unwrap(),
            &mut expected,
            &ranges,
        )
        .unwrap();
        let (size, _) = wav_size(ChunkReader::open(&long[..], &keys).unwrap()).unwrap();
        let mut got = Vec::new();
        WavStream::muted(ChunkReader::open(&long[..], &keys).unwrap(), size, &ranges)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert!(got == expected.into_inner());
        assert!(matches!(
            WavStream::muted(
                ChunkReader::open(&long[..], &keys).unwrap(),
                size,
                &[(ms(2), ms(1))]
            ),
            Err(FormatError::BadRange)
        ));

        // A size that disagrees with the file (it changed between the passes) fails the read;
        // impossible sizes fail at once.
        let (size, _) = wav_size(ChunkReader::open(&long[..], &keys).unwrap()).unwrap();
        for wrong in [size - 4, size + 4] {
            let mut stream =
                WavStream::new(ChunkReader::open(&long[..], &keys).unwrap(), wrong).unwrap();
            let err = io::copy(&mut stream, &mut io::sink()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
        for bad in [0, 43, size + 1, 1 << 33] {
            assert!(matches!(
                WavStream::new(ChunkReader::open(&long[..], &keys).unwrap(), bad),
                Err(FormatError::BadWavSize { .. })
            ));
        }
    }

    #[test]
    fn muted_export_is_silent_inside_the_ranges_only() {
        let keys = keys();
        // No zero samples in the source, so any zero in the export was muted.
        let samples: Vec<i16> = noise(150, 11).into_iter().map(|s| s | 1).collect();
        let (file, _) = record(&samples, &keys, 1);
        let ms = Duration::from_millis;
        let ranges = [
            (ms(500), ms(1000)),
            (ms(2250), ms(2300)),
            (ms(2280), ms(2400)), // overlaps the one before
            (Duration::from_micros(2_900_060), ms(10_000)), // between samples, past the end
            (ms(100), ms(100)),   // empty
        ];
        let mut wav = Cursor::new(Vec::new());
        let info = export_wav_muted(
            ChunkReader::open(&file[..], &keys).unwrap(),
            &mut wav,
            &ranges,
        )
        .unwrap();
        let (_, exported) = wav_samples(wav.into_inner());
        assert_eq!(exported.len(), samples.len());
        let mut muted = 0u64;
        for (i, (pair, original)) in exported.chunks(2).zip(samples.chunks(2)).enumerate() {
            let t = Duration::from_nanos(i as u64 * 125_000);
            let inside = ranges.iter().any(|&(s, e)| s <= t && t < e);
            if inside {
                assert_eq!(pair, [0, 0], "sample {i}");
                muted += 1;
            } else {
                assert_eq!(pair, original, "sample {i}");
            }
        }
        // 500 ms + 150 ms + 99.94 ms (the first muted sample is at 2.900125 s).
        assert_eq!(muted, 4000 + 1200 + 799);
        assert_eq!(info.muted, Duration::from_nanos(muted * 125_000));

        let backwards = [(ms(2000), ms(1000))];
        assert!(matches!(
            export_wav_muted(
                ChunkReader::open(&file[..], &keys).unwrap(),
                Cursor::new(Vec::new()),
                &backwards
            ),
            Err(FormatError::BadRange)
        ));
    }

    #[test]
    fn export_of_a_damaged_file_fails() {
        let keys = keys();
        let (mut file, _) = record(&noise(120, 12), &keys, 1);
        let i = chunk_offset(1) + 200;
        file[i] ^= 0x10;
        let result = export_wav(
            ChunkReader::open(&file[..], &keys).unwrap(),
            Cursor::new(Vec::new()),
        );
        assert!(matches!(
            result,
            Err(FormatError::Authentication { chunk: 1, .. })
        ));
    }

    #[test]
    fn debug_and_errors_show_no_audio_or_keys() {
        let keys = keys();
        let samples = vec![1234i16; FRAME_SAMPLES];
        let mut file = Vec::new();
        let mut writer = ChunkWriter::new(&mut file, &keys, [1; 16]).unwrap();
        writer.push_frame(&samples).unwrap();
        let shown = format!("{writer:?}");
        assert!(!shown.contains("1234") && !shown.contains("buf"), "{shown}");
        writer.finish().unwrap();
        let mut reader = ChunkReader::open(&file[..], &keys).unwrap();
        reader.next_chunk().unwrap();
        let shown = format!("{reader:?}");
        assert!(
            !shown.contains("1234") && !shown.contains("samples"),
            "{shown}"
        );
        let err = FormatError::Authentication {
            chunk: 3,
            offset: 9,
        }
        .to_string();
        assert!(!err.contains(&KEY[..8]));
    }
}
