//! Prompts: recorded audio that kald plays to callers.
//!
//! A [`Prompt`] holds 8 kHz mono signed 16-bit samples behind an [`Arc`], so one
//! loaded prompt is shared by every call that plays it. The media engine reads it
//! one 20 ms frame (160 samples) at a time by index with [`Prompt::frame`]; nothing
//! is copied or converted per packet beyond that frame.
//!
//! [`decode`] turns the bytes of an audio file into a `Prompt`: WAV (integer PCM of
//! 8, 16, 24 or 32 bits, 32/64-bit float, µ-law and A-law), FLAC, MP3 and
//! Ogg/Vorbis, at any sample rate and with any number of channels. It decodes with
//! symphonia, mixes the channels down to mono, resamples once to 8 kHz with
//! rubato's FFT resampler (band-limited, so no aliasing) and converts to `i16`
//! with clipping. All of that happens once, when the prompt is loaded. `decode`
//! does no file I/O; [`load`] is the convenience that reads a file first.

use std::io::{self, Cursor};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::{fmt, fs};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// Sample rate of every [`Prompt`], in Hz (narrowband telephony).
pub const SAMPLE_RATE: u32 = 8000;

/// Samples in one 20 ms frame at [`SAMPLE_RATE`], the packet size of G.711 RTP.
pub const FRAME_SAMPLES: usize = 160;

/// Longest audio [`decode`] accepts; longer input is refused with
/// [`PromptError::TooLong`] rather than filling memory.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 60);

/// Lowest source sample rate [`decode`] accepts, in Hz.
pub const MIN_SOURCE_RATE: u32 = 1_000;

/// Highest source sample rate [`decode`] accepts, in Hz.
pub const MAX_SOURCE_RATE: u32 = 768_000;

/// Output length of one FFT block of the resampler. Longer blocks give a steeper
/// anti-aliasing filter: at 2048 the pass band reaches about 3.97 kHz.
const RESAMPLER_BLOCK_OUT: usize = 2048;

/// Audio ready to be played to a caller: 8 kHz, mono, signed 16-bit.
///
/// Cloning is cheap (a reference count), so one decoded prompt can be handed to
/// any number of calls.
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt {
    samples: Arc<[i16]>,
}

impl Prompt {
    /// Wraps samples that are already 8 kHz mono signed 16-bit, such as a tone
    /// made in code.
    #[must_use]
    pub fn from_samples(samples: impl Into<Arc<[i16]>>) -> Self {
        Self {
            samples: samples.into(),
        }
    }

    /// All samples, 8 kHz mono.
    #[must_use]
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Playing time: one sample is 125 µs.
    #[must_use]
    pub fn duration(&self) -> Duration {
        let micros = 1_000_000 / u64::from(SAMPLE_RATE);
        Duration::from_micros(micros.saturating_mul(self.samples.len() as u64))
    }

    /// Number of 20 ms frames; the last one may be partial (see [`Prompt::frame`]).
    #[must_use]
    pub fn frames_20ms(&self) -> usize {
        self.samples.len().div_ceil(FRAME_SAMPLES)
    }

    /// Copies frame `index` (samples `index * 160 ..`) into `out`.
    ///
    /// A partial last frame is padded with silence (zeros). Returns `false`, with
    /// `out` all silence, when `index` is at or past [`Prompt::frames_20ms`].
    pub fn frame(&self, index: usize, out: &mut [i16; FRAME_SAMPLES]) -> bool {
        let start = index.saturating_mul(FRAME_SAMPLES);
        let rest = self.samples.get(start..).unwrap_or_default();
        let n = rest.len().min(FRAME_SAMPLES);
        out[..n].copy_from_slice(&rest[..n]);
        out[n..].fill(0);
        n > 0
    }
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("samples", &self.samples.len())
            .field("duration", &self.duration())
            .finish()
    }
}

/// Why audio could not be turned into a [`Prompt`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The bytes are in no container format this build reads (WAV, FLAC, MP3, Ogg).
    #[error("unsupported or unrecognised audio format ({0})")]
    UnsupportedFormat(String),
    /// The container holds no audio track.
    #[error("the file has no audio track")]
    NoAudioTrack,
    /// The audio track uses a codec this build cannot decode.
    #[error("unsupported audio codec ({0})")]
    UnsupportedCodec(String),
    /// The data is malformed: a corrupt header, or no packet could be decoded.
    #[error("cannot decode the audio: {0}")]
    Decode(String),
    /// The file decoded to no samples at all.
    #[error("the file contains no audio samples")]
    NoAudio,
    /// The source sample rate is outside [`MIN_SOURCE_RATE`]..=[`MAX_SOURCE_RATE`].
    #[error(
        "unsupported sample rate {0} Hz (accepted: {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz)"
    )]
    UnsupportedSampleRate(u32),
    /// The audio is longer than [`MAX_DURATION`].
    #[error("the audio is longer than the limit of {} seconds", MAX_DURATION.as_secs())]
    TooLong,
    /// Resampling to 8 kHz failed.
    #[error("cannot resample to 8 kHz: {0}")]
    Resample(String),
    /// A decoder library failed unexpectedly (it panicked); the input is almost
    /// certainly malformed.
    #[error("the {0} failed unexpectedly; the file is probably malformed")]
    Internal(&'static str),
    /// [`load`] could not read the file.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that was to be read.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// [`load`] read the file, but it is not usable audio.
    #[error("{}: {source}", path.display())]
    File {
        /// The file that was read.
        path: PathBuf,
        /// Why its content was refused.
        #[source]
        source: Box<Self>,
    },
}

/// Reads the audio file at `path` and decodes it with [`decode`], using the file
/// extension as the format hint.
///
/// # Errors
///
/// [`PromptError::Io`] if the file cannot be read, and [`PromptError::File`]
/// (naming the file, wrapping the [`decode`] error) if its content is refused.
pub fn load(path: &Path) -> Result<Prompt, PromptError> {
    let bytes = fs::read(path).map_err(|source| PromptError::Io {
        path: path.to_owned(),
        source,
    })?;
    let extension = path.extension().and_then(|e| e.to_str());
    decode(&bytes, extension).map_err(|source| PromptError::File {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Decodes an audio file held in memory into an 8 kHz mono [`Prompt`].
///
/// `extension_hint` is the file name extension ("wav", "flac", "mp3", "ogg"; a
/// leading dot is ignored) and only speeds up format detection: the content
/// decides. Channels are averaged to mono, the result is resampled to 8 kHz with
/// an anti-aliasing filter, and converted to `i16` with clipping.
///
/// A file cut short decodes to the audio before the cut. Packets that fail to
/// decode are skipped; if none decodes, the error says why.
///
/// # Errors
///
/// A [`PromptError`] saying what is wrong: the format or codec is not supported,
/// there is no audio track or no audio, the data is malformed, the sample rate is
/// out of range, or the audio is longer than [`MAX_DURATION`]. Malformed input
/// never panics, not even when a decoder library does internally
/// ([`PromptError::Internal`]).
pub fn decode(bytes: &[u8], extension_hint: Option<&str>) -> Result<Prompt, PromptError> {
    let (rate, mono) = guarded("audio decoder", || decode_mono(bytes, extension_hint))?;
    if mono.is_empty() {
        return Err(PromptError::NoAudio);
    }
    let resampled = if rate == SAMPLE_RATE {
        mono
    } else {
        guarded("resampler", || resample(&mono, rate))?
    };
    let samples: Arc<[i16]> = resampled.iter().map(|&x| to_i16(x)).collect();
    Ok(Prompt { samples })
}

/// Runs `f`, turning a panic inside a third-party decoder into an error, so that
/// one bad file cannot take down the server that loads it.
fn guarded<T>(
    stage: &'static str,
    f: impl FnOnce() -> Result<T, PromptError>,
) -> Result<T, PromptError> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(PromptError::Internal(stage)))
}

/// Demuxes and decodes the default audio track to mono `f32` at its own rate.
fn decode_mono(bytes: &[u8], extension_hint: Option<&str>) -> Result<(u32, Vec<f32>), PromptError> {
    let mut hint = Hint::new();
    if let Some(ext) = extension_hint {
        let ext = ext.trim_start_matches('.').to_ascii_lowercase();
        if !ext.is_empty() {
            hint.with_extension(&ext);
        }
    }
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut reader = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::Unsupported(what) => PromptError::UnsupportedFormat(what.to_owned()),
            other => demux_error(&other),
        })?;

    let track = reader
        .default_track(TrackType::Audio)
        .ok_or(PromptError::NoAudioTrack)?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or(PromptError::NoAudioTrack)?;
    if let Some(rate) = params.sample_rate {
        check_rate(rate)?;
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(what) => PromptError::UnsupportedCodec(what.to_owned()),
            other => PromptError::Decode(other.to_string()),
        })?;

    let mut rate: Option<u32> = None;
    let mut mono: Vec<f32> = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut last_error: Option<String> = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A file cut short: keep what was decoded before the cut.
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            // A new logical stream (chained Ogg): play the first one only.
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(demux_error(&e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            // One corrupt packet: skip it, like a player would.
            Err(SymphoniaError::DecodeError(what)) => {
                last_error = Some(what.to_owned());
                continue;
            }
            Err(SymphoniaError::IoError(e)) => {
                last_error = Some(e.to_string());
                continue;
            }
            Err(e) => return Err(PromptError::Decode(e.to_string())),
        };
        let channels = buffer.spec().channels().count();
        let buffer_rate = buffer.spec().rate();
        if buffer.frames() == 0 || channels == 0 {
            continue;
        }
        match rate {
            None => {
                check_rate(buffer_rate)?;
                rate = Some(buffer_rate);
            }
            Some(r) if r != buffer_rate => {
                return Err(PromptError::Decode(format!(
                    "the sample rate changes from {r} to {buffer_rate} Hz within the file"
                )));
            }
            Some(_) => {}
        }
        let limit = MAX_DURATION
            .as_secs()
            .saturating_mul(u64::from(buffer_rate));
        if (mono.len() + buffer.frames()) as u64 > limit {
            return Err(PromptError::TooLong);
        }
        buffer.copy_to_vec_interleaved(&mut interleaved);
        let scale = 1.0 / channels as f32;
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
    }
    match rate {
        Some(rate) => Ok((rate, mono)),
        None => match last_error {
            Some(what) => Err(PromptError::Decode(what)),
            None => Err(PromptError::NoAudio),
        },
    }
}

/// Maps a demuxer error (probe or packet reading) to a [`PromptError`].
fn demux_error(e: &SymphoniaError) -> PromptError {
    match e {
        SymphoniaError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            PromptError::Decode("unexpected end of file (truncated?)".to_owned())
        }
        SymphoniaError::Unsupported(what) => PromptError::UnsupportedCodec((*what).to_owned()),
        other => PromptError::Decode(other.to_string()),
    }
}

fn check_rate(rate: u32) -> Result<(), PromptError> {
    if (MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(PromptError::UnsupportedSampleRate(rate))
    }
}

/// Resamples mono `f32` audio from `rate_in` to [`SAMPLE_RATE`] with rubato's
/// synchronous FFT resampler. The output is aligned with the input (the filter
/// delay is trimmed) and has `ceil(len * 8000 / rate_in)` samples.
fn resample(input: &[f32], rate_in: u32) -> Result<Vec<f32>, PromptError> {
    let err = |e: &dyn fmt::Display| PromptError::Resample(e.to_string());
    let rate_in = rate_in as usize;
    let rate_out = SAMPLE_RATE as usize;
    let chunk_in = (RESAMPLER_BLOCK_OUT * rate_in).div_ceil(rate_out);
    let mut resampler = Fft::<f32>::new_custom(
        rate_in,
        rate_out,
        chunk_in,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Both,
    )
    .map_err(|e| err(&e))?;
    let adapter = InterleavedSlice::new(input, 1, input.len()).map_err(|e| err(&e))?;
    let output = resampler
        .process_all(&adapter, input.len(), None)
        .map_err(|e| err(&e))?;
    Ok(output.take_data())
}

/// Converts a sample in -1.0..1.0 to `i16`, clipping what lies outside.
fn to_i16(x: f32) -> i16 {
    // `as` saturates, and maps NaN to 0.
    (x * 32768.0).round() as i16
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // ---- test signals -------------------------------------------------------

    /// Interleaved i16 sine, the same tone in every channel unless `per_channel`.
    fn sine(freqs: &[f64], rate: u32, secs: f64, amplitude: f64) -> Vec<i16> {
        let frames = (secs * f64::from(rate)).round() as usize;
        let mut out = Vec::with_capacity(frames * freqs.len());
        for n in 0..frames {
            let t = n as f64 / f64::from(rate);
            for &f in freqs {
                let v = amplitude * (2.0 * std::f64::consts::PI * f * t).sin();
                out.push((v * 32767.0).round() as i16);
            }
        }
        out
    }

    fn wav_i16(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cursor = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    /// Writes `samples` (in -1.0..1.0) with the given integer bit depth or as f32.
    fn wav_format(samples: &[f32], rate: u32, bits: u16, float: bool) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut cursor = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &s in samples {
            if float {
                w.write_sample(s).unwrap();
            } else {
                let max = ((1i64 << (bits - 1)) - 1) as f32;
                let v = (s * max).round() as i32;
                match bits {
                    8 => w.write_sample(v as i8).unwrap(),
                    16 => w.write_sample(v as i16).unwrap(),
                    _ => w.write_sample(v).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    /// Power of `freq` in `x` (Goertzel), normalised so a full-scale sine gives ~0.25.
    fn goertzel(x: &[i16], freq: f64, rate: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / rate;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = f64::from(v) / 32768.0 + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        power / (x.len() as f64 * x.len() as f64)
    }

    fn rms(x: &[i16]) -> f64 {
        let sum: f64 = x.iter().map(|&v| (f64::from(v) / 32768.0).powi(2)).sum();
        (sum / x.len() as f64).sqrt()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    /// The middle of the signal, away from start/end transients.
    fn middle(x: &[i16]) -> &[i16] {
        &x[x.len() / 10..x.len() * 9 / 10]
    }

    fn zero_crossings(x: &[i16]) -> usize {
        x.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
    }

    fn assert_tone(p: &Prompt, freq: f64, secs: f64) {
        let expected = (secs * 8000.0).round() as i64;
        let len = p.samples().len() as i64;
        assert!(
            (len - expected).abs() <= 4,
            "length {len}, expected {expected}"
        );
        let mid = middle(p.samples());
        let on = goertzel(mid, freq, 8000.0);
        for other in [freq * 0.5, freq * 1.5, freq * 2.0, 3000.0] {
            let off = goertzel(mid, other, 8000.0);
            assert!(on > 100.0 * off, "{freq} Hz {on} vs {other} Hz {off}");
        }
        let crossings = zero_crossings(mid) as f64;
        let expected_crossings = 2.0 * freq * mid.len() as f64 / 8000.0;
        assert!(
            (crossings - expected_crossings).abs() <= expected_crossings * 0.02 + 2.0,
            "{crossings} zero crossings, expected {expected_crossings}"
        );
    }

    // ---- Prompt -----------------------------------------------------------

    #[test]
    fn frames_and_padding() {
        let p = Prompt::from_samples((1..=400).map(|v| v as i16).collect::<Vec<_>>());
        assert_eq!(p.frames_20ms(), 3);
        assert_eq!(p.duration(), Duration::from_millis(50));
        let mut out = [7i16; FRAME_SAMPLES];
        assert!(p.frame(0, &mut out));
        assert_eq!(out[0], 1);
        assert_eq!(out[159], 160);
        assert!(p.frame(2, &mut out));
        assert_eq!(out[0], 321);
        assert_eq!(out[79], 400);
        assert!(out[80..].iter().all(|&s| s == 0));
        out = [7; FRAME_SAMPLES];
        assert!(!p.frame(3, &mut out));
        assert!(out.iter().all(|&s| s == 0));
        assert!(!p.frame(usize::MAX, &mut out));

        let clone = p.clone();
        assert!(std::ptr::eq(clone.samples(), p.samples()));
        let empty = Prompt::from_samples(Vec::new());
        assert_eq!(empty.frames_20ms(), 0);
        assert!(!empty.frame(0, &mut out));
        assert!(format!("{p:?}").contains("400"));
    }

    #[test]
    fn to_i16_clips() {
        assert_eq!(to_i16(0.0), 0);
        assert_eq!(to_i16(0.5), 16384);
        assert_eq!(to_i16(1.5), i16::MAX);
        assert_eq!(to_i16(-1.5), i16::MIN);
        assert_eq!(to_i16(f32::NAN), 0);
    }

    // ---- WAV made in code ----------------------------------------------------

    #[test]
    fn stereo_44k1_440hz() {
        let wav = wav_i16(&sine(&[440.0, 440.0], 44_100, 1.5, 0.5), 44_100, 2);
        let p = decode(&wav, Some("wav")).unwrap();
        assert_tone(&p, 440.0, 1.5);
        let level = rms(middle(p.samples()));
        assert!((db(level / (0.5 / 2f64.sqrt()))).abs() < 0.5, "{level}");
    }

    #[test]
    fn stereo_44k1_1khz_no_hint() {
        let wav = wav_i16(&sine(&[1000.0, 1000.0], 44_100, 1.0, 0.5), 44_100, 2);
        assert_tone(&decode(&wav, None).unwrap(), 1000.0, 1.0);
    }

    #[test]
    fn mono_16k_440hz_and_1khz() {
        for f in [440.0, 1000.0] {
            let wav = wav_i16(&sine(&[f], 16_000, 2.0, 0.5), 16_000, 1);
            assert_tone(&decode(&wav, Some(".WAV")).unwrap(), f, 2.0);
        }
    }

    #[test]
    fn downmix_averages_channels() {
        // 440 Hz left, 1 kHz right: both survive, each at half amplitude.
        let wav = wav_i16(&sine(&[440.0, 1000.0], 48_000, 1.0, 0.8), 48_000, 2);
        let p = decode(&wav, Some("wav")).unwrap();
        let mid = middle(p.samples());
        let a = goertzel(mid, 440.0, 8000.0);
        let b = goertzel(mid, 1000.0, 8000.0);
        assert!((db((a / b).sqrt())).abs() < 0.5);
        let expected = 0.4 * 0.4 / 4.0;
        assert!((a / expected - 1.0).abs() < 0.1, "{a} vs {expected}");
    }

    #[test]
    fn passthrough_at_8k_is_exact() {
        let samples = sine(&[1000.0], 8000, 0.5, 0.9);
        let p = decode(&wav_i16(&samples, 8000, 1), Some("wav")).unwrap();
        assert_eq!(p.samples(), &samples[..]);
    }

    #[test]
    fn anti_aliasing_16k() {
        let reference = sine(&[1000.0], 16_000, 2.0, 0.5);
        let ref_level = rms(middle(&reference));
        // 3.9 kHz is below the 4 kHz Nyquist frequency of 8 kHz: it must pass.
        let pass = decode(
            &wav_i16(&sine(&[3900.0], 16_000, 2.0, 0.5), 16_000, 1),
            None,
        )
        .unwrap();
        let pass_db = db(rms(middle(pass.samples())) / ref_level);
        assert!(pass_db > -1.0, "3.9 kHz at {pass_db:.1} dB");
        assert_tone(&pass, 3900.0, 2.0);
        // 6 kHz would alias to 2 kHz: it must be filtered out.
        let stop = decode(
            &wav_i16(&sine(&[6000.0], 16_000, 2.0, 0.5), 16_000, 1),
            None,
        )
        .unwrap();
        let stop_db = db(rms(middle(stop.samples())) / ref_level);
        assert!(stop_db < -30.0, "6 kHz at {stop_db:.1} dB");
        assert_eq!(stop.samples().len(), 16_000);
    }

    #[test]
    fn anti_aliasing_44k1() {
        // 5 kHz and 12 kHz at 44.1 kHz would alias to 3 kHz and 4 kHz.
        for f in [5000.0, 12_000.0] {
            let wav = wav_i16(&sine(&[f, f], 44_100, 1.0, 0.5), 44_100, 2);
            let p = decode(&wav, None).unwrap();
            let level = db(rms(middle(p.samples())) / (0.5 / 2f64.sqrt()));
            assert!(level < -30.0, "{f} Hz at {level:.1} dB");
        }
    }

    #[test]
    fn bit_depths_and_float() {
        let signal: Vec<f32> = sine(&[1000.0], 22_050, 1.0, 0.5)
            .iter()
            .map(|&s| f32::from(s) / 32768.0)
            .collect();
        for (bits, float) in [
            (8, false),
            (16, false),
            (24, false),
            (32, false),
            (32, true),
        ] {
            let p = decode(&wav_format(&signal, 22_050, bits, float), Some("wav")).unwrap();
            assert_tone(&p, 1000.0, 1.0);
        }
    }

    #[test]
    fn odd_rates_and_many_channels() {
        for (rate, channels) in [
            (11_025, 1),
            (32_000, 6),
            (96_000, 2),
            (44_101, 1),
            (7_000, 1),
        ] {
            let tone = sine(&vec![800.0; channels], rate, 1.0, 0.5);
            let p = decode(&wav_i16(&tone, rate, channels as u16), None).unwrap();
            assert_tone(&p, 800.0, 1.0);
        }
    }

    #[test]
    fn float_over_full_scale_clips() {
        let p = decode(&wav_format(&[1.5, -1.5, 0.25], 8000, 32, true), None).unwrap();
        assert_eq!(p.samples(), &[i16::MAX, i16::MIN, 8192]);
    }

    #[test]
    fn empty_wav_is_no_audio() {
        let wav = wav_i16(&[], 16_000, 1);
        assert!(matches!(decode(&wav, None), Err(PromptError::NoAudio)));
    }

    #[test]
    fn bad_sample_rate() {
        let wav = wav_i16(&[0; 100], 200, 1);
        let err = decode(&wav, None).unwrap_err();
        assert!(
            matches!(err, PromptError::UnsupportedSampleRate(200)),
            "{err}"
        );
        assert!(err.to_string().contains("200 Hz"));
    }

    #[test]
    fn garbage_is_unsupported_format() {
        for bytes in [&b""[..], b"hello world, this is not audio", &[0u8; 4096]] {
            let err = decode(bytes, Some("wav")).unwrap_err();
            assert!(matches!(err, PromptError::UnsupportedFormat(_)), "{err:?}");
            assert!(err.to_string().contains("unsupported"), "{err}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let missing = Path::new("/nonexistent/kald/velkommen.wav");
        let err = load(missing).unwrap_err();
        assert!(matches!(err, PromptError::Io { .. }));
        assert!(err.to_string().contains("velkommen.wav"), "{err}");

        let dir = std::env::temp_dir().join(format!("kald-prompt-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("ikke-lyd.wav");
        fs::write(&bad, b"not audio at all").unwrap();
        let err = load(&bad).unwrap_err();
        assert!(err.to_string().contains("ikke-lyd.wav"), "{err}");
        assert!(matches!(err, PromptError::File { ref source, .. }
            if matches!(**source, PromptError::UnsupportedFormat(_))));
        let good = dir.join("tone.wav");
        fs::write(&good, wav_i16(&sine(&[440.0], 16_000, 0.5, 0.5), 16_000, 1)).unwrap();
        assert_eq!(load(&good).unwrap().samples().len(), 4000);
        fs::remove_dir_all(&dir).unwrap();
    }

    // ---- fixtures made with sox (tests/fixtures/README.md) -------------------

    macro_rules! fixture {
        ($name:literal, $secs:literal) => {
            (
                $name,
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/",
                    $name
                )) as &[u8],
                $secs,
            )
        };
    }

    /// Every fixture is a 1 kHz tone at half scale; the number is its length in seconds.
    const FIXTURES: [(&str, &[u8], f64); 5] = [
        fixture!("tone-1k-44k1-stereo.flac", 0.5),
        fixture!("tone-1k-22k05-mono.mp3", 1.0),
        fixture!("tone-1k-44k1-stereo.ogg", 1.0),
        fixture!("tone-1k-8k-ulaw.wav", 1.0),
        fixture!("tone-1k-8k-alaw.wav", 1.0),
    ];

    #[test]
    fn fixtures_decode() {
        for (name, bytes, secs) in FIXTURES {
            let ext = name.rsplit('.').next();
            for hint in [ext, None] {
                let p = decode(bytes, hint).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_tone(&p, 1000.0, secs);
                let level = db(rms(middle(p.samples())) / (0.5 / 2f64.sqrt()));
                assert!(level.abs() < 1.0, "{name}: level {level:.1} dB");
            }
        }
    }

    // ---- malformed input -----------------------------------------------------

    /// xorshift64*: deterministic bytes without a dependency.
    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    /// Decoding must return a result, never unwind into the caller. (A panic inside
    /// a decoder library is caught and comes back as `PromptError::Internal`.)
    fn survives(bytes: &[u8], hint: Option<&str>, what: &str) {
        let result = panic::catch_unwind(|| decode(bytes, hint));
        assert!(result.is_ok(), "{what}: decode panicked");
    }

    #[test]
    fn decoder_panic_becomes_an_error() {
        // A PCM WAV claiming 65535 channels: symphonia 0.6.1 overflows a u16 while
        // checking the block alignment, which panics in debug builds.
        let mut wav = wav_i16(&[0; 64], 8000, 1);
        wav[22..24].copy_from_slice(&u16::MAX.to_le_bytes());
        let err = decode(&wav, Some("wav")).unwrap_err();
        assert!(!err.to_string().is_empty());
    }

    #[test]
    fn random_bytes_never_panic() {
        for seed in 0..200u64 {
            let bytes = random_bytes(seed, 16 + (seed as usize * 97) % 6000);
            for hint in [None, Some("wav"), Some("mp3"), Some("flac"), Some("ogg")] {
                survives(&bytes, hint, &format!("seed {seed} hint {hint:?}"));
            }
        }
    }

    #[test]
    fn random_bytes_after_real_headers_never_panic() {
        let wav = wav_i16(&sine(&[440.0], 16_000, 0.2, 0.5), 16_000, 1);
        let mut headers: Vec<(&str, Vec<u8>)> = vec![("wav", wav)];
        headers.extend(FIXTURES.iter().map(|(n, b, _)| (*n, b.to_vec())));
        for (name, original) in headers {
            for seed in 0..40u64 {
                let mut bytes = original.clone();
                let noise = random_bytes(seed, bytes.len());
                // Keep the first bytes (the magic) and corrupt the rest in spots.
                for (i, b) in bytes.iter_mut().enumerate().skip(4) {
                    if noise[i] < 8 + seed as u8 {
                        *b ^= noise[(i * 7) % noise.len()] | 1;
                    }
                }
                survives(&bytes, None, &format!("{name} corrupted, seed {seed}"));
            }
        }
    }

    #[test]
    fn truncated_files_never_panic() {
        let wav = wav_i16(&sine(&[440.0, 440.0], 44_100, 0.3, 0.5), 44_100, 2);
        let mut files: Vec<(&str, &[u8])> = vec![("wav", &wav)];
        files.extend(FIXTURES.iter().map(|(n, b, _)| (*n, *b)));
        for (name, bytes) in files {
            // Every few bytes through the headers, then a dozen cuts through the audio.
            let header_cuts = (0..bytes.len().min(200)).step_by(7);
            let audio_cuts = (0..bytes.len()).step_by(bytes.len() / 12 + 1);
            for cut in header_cuts.chain(audio_cuts) {
                survives(&bytes[..cut], None, &format!("{name} cut at {cut}"));
            }
            // A file cut in the middle of the audio keeps the audio before the cut,
            // except Ogg, which symphonia refuses to open when its end is missing.
            match decode(&bytes[..bytes.len() / 2], None) {
                Ok(half) => assert!(!half.samples().is_empty(), "{name}"),
                Err(e) => assert!(name.ends_with(".ogg"), "{name}: {e}"),
            }
        }
    }
}
