//! G.711 µ-law (PCMU) and A-law (PCMA) per ITU-T G.711.
//!
//! Encoding is the classic Sun Microsystems / CCITT reference algorithm (`g711.c`):
//! 16-bit two's-complement linear PCM in, one 8-bit code out, with the standard
//! bit inversions (µ-law codes are complemented, A-law codes have the even bits
//! inverted with `0x55`). Decoding uses 256-entry tables built at compile time by
//! `const fn` from the same reference algorithm, so decoding is one lookup per sample.
//! PCMU⇄PCMA bridging uses two more compile-time 256-entry code-to-code tables
//! (decode with one law, re-encode with the other).
//!
//! Everything here is allocation-free and panic-free: the slice functions write into
//! caller-provided buffers, process `min(input.len(), out.len())` samples and return
//! that count, so a short output buffer shows up as a short count, never a panic.

/// Sample rate of G.711 audio (RFC 3551 payload types 0 and 8), in Hz.
pub const SAMPLE_RATE: u32 = 8000;

/// The two G.711 companding laws; exhaustive by nature (G.711 defines exactly these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, RTP payload type 0 ("PCMU"), used in North America/Japan and by many SIP phones.
    Pcmu,
    /// A-law, RTP payload type 8 ("PCMA"), the European PSTN law (used by Danish carriers).
    Pcma,
}

impl Codec {
    /// Static RTP payload type from RFC 3551 (0 for PCMU, 8 for PCMA), used in SDP and RTP headers.
    pub const fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// Codec for a static RTP payload type (0 or 8), so incoming RTP can be decoded; `None` otherwise.
    pub const fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    /// Encoding name as used in SDP `a=rtpmap` ("PCMU"/"PCMA").
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// Code for linear zero (0xFF for µ-law, 0xD5 for A-law), to fill silent/comfort packets.
    pub const fn silence_byte(self) -> u8 {
        match self {
            Self::Pcmu => 0xFF,
            Self::Pcma => 0xD5,
        }
    }

    /// Encodes one linear sample with this law, for per-sample callers.
    #[inline]
    pub const fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Self::Pcmu => ulaw_encode(sample),
            Self::Pcma => alaw_encode(sample),
        }
    }

    /// Decodes one code with this law, for per-sample callers.
    #[inline]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Self::Pcmu => ulaw_decode(code),
            Self::Pcma => alaw_decode(code),
        }
    }

    /// Encodes `pcm` into `out` and returns the number of samples written (the shorter length).
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> usize {
        match self {
            Self::Pcmu => {
                for (o, &s) in out.iter_mut().zip(pcm) {
                    *o = ulaw_encode(s);
                }
            }
            Self::Pcma => {
                for (o, &s) in out.iter_mut().zip(pcm) {
                    *o = alaw_encode(s);
                }
            }
        }
        pcm.len().min(out.len())
    }

    /// Decodes `payload` into `out` and returns the number of samples written (the shorter length).
    pub fn decode(self, payload: &[u8], out: &mut [i16]) -> usize {
        let table = match self {
            Self::Pcmu => &ULAW_TO_LINEAR,
            Self::Pcma => &ALAW_TO_LINEAR,
        };
        for (o, &b) in out.iter_mut().zip(payload) {
            *o = table[usize::from(b)];
        }
        payload.len().min(out.len())
    }
}

/// Converts a G.711 payload from one law to the other (or copies it) for bridging PCMU⇄PCMA calls.
///
/// Each code is decoded with `from` and re-encoded with `to` via compile-time tables
/// (same law: copied). Returns the number of codes written (the shorter length).
pub fn transcode(from: Codec, to: Codec, input: &[u8], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    let (input, out) = (&input[..n], &mut out[..n]);
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => map_codes(&ULAW_TO_ALAW, input, out),
        (Codec::Pcma, Codec::Pcmu) => map_codes(&ALAW_TO_ULAW, input, out),
        (Codec::Pcmu, Codec::Pcmu) | (Codec::Pcma, Codec::Pcma) => out.copy_from_slice(input),
    }
    n
}

fn map_codes(table: &[u8; 256], input: &[u8], out: &mut [u8]) {
    for (o, &b) in out.iter_mut().zip(input) {
        *o = table[usize::from(b)];
    }
}

// ---------------------------------------------------------------------------
// Reference algorithms (Sun Microsystems g711.c, public domain, after CCITT G.711).
// ---------------------------------------------------------------------------

const SIGN_BIT: u8 = 0x80;
const QUANT_MASK: u8 = 0x0F;
const SEG_SHIFT: u32 = 4;
const SEG_MASK: u8 = 0x70;
/// µ-law bias added to the magnitude before segment search (0x84 on the 16-bit scale).
const ULAW_BIAS: i32 = 0x84;
/// µ-law magnitude clip on the 14-bit scale.
const ULAW_CLIP: i32 = 8159;

/// Segment end points for A-law (13-bit magnitude).
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
/// Segment end points for µ-law (14-bit biased magnitude).
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

/// Index of the first segment whose end point is `>= val`, or 8 if none.
const fn search(val: i32, table: &[i32; 8]) -> u32 {
    let mut i = 0;
    while i < 8 {
        if val <= table[i] {
            return i as u32;
        }
        i += 1;
    }
    8
}

/// Encodes one 16-bit linear sample as a G.711 µ-law code (Sun/CCITT reference algorithm).
pub const fn ulaw_encode(sample: i16) -> u8 {
    // Work on the 14-bit scale, as the reference does.
    let mut pcm = (sample as i32) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS >> 2;
    let seg = search(pcm, &SEG_UEND);
    if seg >= 8 {
        // Unreachable after clipping, kept for fidelity with the reference.
        0x7F ^ mask
    } else {
        let uval = ((seg << 4) as u8) | (((pcm >> (seg + 1)) as u8) & QUANT_MASK);
        uval ^ mask
    }
}

/// Encodes one 16-bit linear sample as a G.711 A-law code (Sun/CCITT reference algorithm).
pub const fn alaw_encode(sample: i16) -> u8 {
    // Work on the 13-bit scale, as the reference does.
    let mut pcm = (sample as i32) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = search(pcm, &SEG_AEND);
    if seg >= 8 {
        0x7F ^ mask
    } else {
        let shift = if seg < 2 { 1 } else { seg };
        let aval = ((seg << SEG_SHIFT) as u8) | (((pcm >> shift) as u8) & QUANT_MASK);
        aval ^ mask
    }
}

/// Reference µ-law decoder; only used at compile time to build the lookup table.
const fn ulaw_decode_ref(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & QUANT_MASK) as i32) << 3) + ULAW_BIAS;
    t <<= ((u & SEG_MASK) >> SEG_SHIFT) as u32;
    let v = if u & SIGN_BIT != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    };
    v as i16
}

/// Reference A-law decoder; only used at compile time to build the lookup table.
const fn alaw_decode_ref(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & QUANT_MASK) as i32) << 4;
    let seg = ((a & SEG_MASK) >> SEG_SHIFT) as u32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    let v = if a & SIGN_BIT != 0 { t } else { -t };
    v as i16
}

const fn build_decode_table(law: Codec) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = match law {
            Codec::Pcmu => ulaw_decode_ref(i as u8),
            Codec::Pcma => alaw_decode_ref(i as u8),
        };
        i += 1;
    }
    table
}

const fn build_transcode_table(from: Codec) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = match from {
            Codec::Pcmu => alaw_encode(ulaw_decode_ref(i as u8)),
            Codec::Pcma => ulaw_encode(alaw_decode_ref(i as u8)),
        };
        i += 1;
    }
    table
}

static ULAW_TO_LINEAR: [i16; 256] = build_decode_table(Codec::Pcmu);
static ALAW_TO_LINEAR: [i16; 256] = build_decode_table(Codec::Pcma);
static ULAW_TO_ALAW: [u8; 256] = build_transcode_table(Codec::Pcmu);
static ALAW_TO_ULAW: [u8; 256] = build_transcode_table(Codec::Pcma);

/// Decodes one G.711 µ-law code to 16-bit linear PCM (compile-time table lookup).
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// Decodes one G.711 A-law code to 16-bit linear PCM (compile-time table lookup).
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Quantisation step (16-bit scale) of the segment a µ-law code lies in.
    fn ulaw_step(code: u8) -> i32 {
        let seg = u32::from(((!code) & SEG_MASK) >> SEG_SHIFT);
        8 << seg
    }

    /// Quantisation step (16-bit scale) of the segment an A-law code lies in.
    fn alaw_step(code: u8) -> i32 {
        let seg = u32::from(((code ^ 0x55) & SEG_MASK) >> SEG_SHIFT);
        16 << seg.saturating_sub(1)
    }

    #[test]
    fn reference_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        // Full-scale codes.
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        // A few mid-range values from the reference implementation.
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_decode(0xCE), 988);
        assert_eq!(alaw_encode(1000), 0xFA);
        assert_eq!(alaw_decode(0xFA), 1008);
        assert_eq!(ulaw_encode(-1000), 0x4E);
        assert_eq!(alaw_encode(-1000), 0x7A);
    }

    #[test]
    fn ulaw_round_trip_error_within_step_for_all_i16() {
        let mut worst = 0.0f64;
        for x in i16::MIN..=i16::MAX {
            let code = ulaw_encode(x);
            let y = ulaw_decode(code);
            let err = (i32::from(x) - i32::from(y)).abs();
            let step = ulaw_step(code);
            assert!(
                err <= step,
                "x={x} code={code:#04x} y={y} err={err} step={step}"
            );
            // Same sign (or zero) after the round trip.
            assert!(
                i32::from(x).signum() * i32::from(y).signum() >= 0,
                "x={x} y={y}"
            );
            if x.unsigned_abs() < 32000 {
                worst = worst.max(f64::from(err) / f64::from(step));
            }
        }
        // Inside the coding range the error is below one step (mid-tread reconstruction).
        assert!(worst < 1.0, "worst in-range error/step = {worst}");
    }

    #[test]
    fn alaw_round_trip_error_within_step_for_all_i16() {
        for x in i16::MIN..=i16::MAX {
            let code = alaw_encode(x);
            let y = alaw_decode(code);
            let err = (i32::from(x) - i32::from(y)).abs();
            let step = alaw_step(code);
            assert!(
                err <= step,
                "x={x} code={code:#04x} y={y} err={err} step={step}"
            );
            if x.unsigned_abs() < 32000 {
                // A-law reconstructs at the interval midpoint: error at most half a step.
                assert!(err <= step / 2, "x={x} y={y} err={err} step={step}");
            }
        }
    }

    #[test]
    fn decode_tables_are_fixed_points() {
        for b in 0..=255u8 {
            let u = ulaw_decode(b);
            assert_eq!(ulaw_decode(ulaw_encode(u)), u, "ulaw code {b:#04x}");
            let a = alaw_decode(b);
            assert_eq!(alaw_decode(alaw_encode(a)), a, "alaw code {b:#04x}");
            // Codes other than µ-law's negative zero (0x7F) re-encode to themselves.
            if b != 0x7F {
                assert_eq!(ulaw_encode(u), b);
            }
            assert_eq!(alaw_encode(a), b);
        }
    }

    #[test]
    fn decode_tables_match_reference_and_are_symmetric() {
        for b in 0..=255u8 {
            assert_eq!(ulaw_decode(b), ulaw_decode_ref(b));
            assert_eq!(alaw_decode(b), alaw_decode_ref(b));
            // Flipping the sign bit negates the value.
            assert_eq!(ulaw_decode(b ^ 0x80), -ulaw_decode(b));
            assert_eq!(alaw_decode(b ^ 0x80), -alaw_decode(b));
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(x));
            let a = alaw_decode(alaw_encode(x));
            assert!(u >= prev_u && a >= prev_a, "x={x}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn codec_metadata() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(18), None);
        assert_eq!(Codec::from_payload_type(101), None);
        assert_eq!(Codec::Pcmu.name(), "PCMU");
        assert_eq!(Codec::Pcma.name(), "PCMA");
        for c in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(
                c.decode_sample(c.silence_byte()),
                if c == Codec::Pcmu { 0 } else { 8 }
            );
            assert_eq!(c.encode_sample(0), c.silence_byte());
            assert_eq!(Codec::from_payload_type(c.payload_type()), Some(c));
        }
    }

    #[test]
    fn slice_encode_decode() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i * 397) % 20000 - 10000) as i16)
            .collect();
        for c in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = [0u8; 200];
            assert_eq!(c.encode(&pcm, &mut enc), 160);
            let mut dec = [0i16; 160];
            assert_eq!(c.decode(&enc[..160], &mut dec), 160);
            for (i, (&x, &y)) in pcm.iter().zip(&dec).enumerate() {
                assert_eq!(enc[i], c.encode_sample(x));
                assert_eq!(y, c.decode_sample(enc[i]));
            }
            // Short output buffers give a short count, never a panic.
            let mut short = [0u8; 10];
            assert_eq!(c.encode(&pcm, &mut short), 10);
            assert_eq!(&short[..], &enc[..10]);
            let mut short = [0i16; 159];
            assert_eq!(c.decode(&enc[..160], &mut short), 159);
            assert_eq!(&short[..], &dec[..159]);
            assert_eq!(c.encode(&[], &mut []), 0);
            assert_eq!(c.decode(&enc[..3], &mut dec), 3);
        }
    }

    #[test]
    fn transcode_between_laws() {
        let all: Vec<u8> = (0..=255).collect();
        let mut a = [0u8; 256];
        let mut u = [0u8; 256];
        assert_eq!(transcode(Codec::Pcmu, Codec::Pcma, &all, &mut a), 256);
        for (&uc, &ac) in all.iter().zip(&a) {
            let lin_u = i32::from(ulaw_decode(uc));
            let lin_a = i32::from(alaw_decode(ac));
            assert!(
                (lin_u - lin_a).abs() <= alaw_step(ac),
                "{uc:#04x}->{ac:#04x}"
            );
        }
        assert_eq!(transcode(Codec::Pcma, Codec::Pcmu, &all, &mut u), 256);
        for (&ac, &uc) in all.iter().zip(&u) {
            let lin_a = i32::from(alaw_decode(ac));
            let lin_u = i32::from(ulaw_decode(uc));
            assert!(
                (lin_u - lin_a).abs() <= ulaw_step(uc),
                "{ac:#04x}->{uc:#04x}"
            );
        }
        // Silence maps to silence.
        let mut out = [0u8; 1];
        transcode(Codec::Pcmu, Codec::Pcma, &[0xFF], &mut out);
        assert_eq!(out[0], 0xD5);
        transcode(Codec::Pcma, Codec::Pcmu, &[0xD5], &mut out);
        assert_eq!(ulaw_decode(out[0]).abs(), 8);
        // Same law copies.
        let mut same = [0u8; 256];
        assert_eq!(transcode(Codec::Pcma, Codec::Pcma, &all, &mut same), 256);
        assert_eq!(&same[..], &all[..]);
        let mut three = [0u8; 3];
        assert_eq!(transcode(Codec::Pcmu, Codec::Pcma, &all, &mut three), 3);
        assert_eq!(&three[..], &a[..3]);
    }

    #[test]
    fn sine_snr_is_toll_quality() {
        // A 1 kHz tone at about -10 dBm0 must survive either law with > 30 dB SNR.
        for c in [Codec::Pcmu, Codec::Pcma] {
            let mut sig = 0.0f64;
            let mut noise = 0.0f64;
            for n in 0..8000 {
                let x =
                    7000.0 * (std::f64::consts::TAU * 1000.0 * f64::from(n) / 8000.0 + 0.3).sin();
                let s = x.round() as i16;
                let y = c.decode_sample(c.encode_sample(s));
                sig += f64::from(s).powi(2);
                noise += (f64::from(s) - f64::from(y)).powi(2);
            }
            let snr = 10.0 * (sig / noise).log10();
            assert!(snr > 30.0, "{c:?} SNR {snr:.1} dB");
        }
    }
}
