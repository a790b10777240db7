//! RTP packets without allocation: the header is read and written with `rtc-rtp` (the
//! webrtc-rs sans-IO crate), the payload stays a slice of the caller's buffer.

use rtc_rtp::header::Header;
use shared::marshal::{Marshal, MarshalSize, Unmarshal};

/// The parts of a received RTP packet kald uses; `payload` borrows the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    /// Payload type.
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload without padding.
    pub payload: &'a [u8],
}

/// Why a datagram is not an RTP packet kald can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than a header, wrong version, or inconsistent padding/extension lengths.
    #[error("malformed RTP packet")]
    Malformed,
    /// An RTCP packet on the RTP port (RFC 5761 multiplexing), not audio.
    #[error("RTCP packet on the RTP port")]
    Rtcp,
}

impl<'a> RtpView<'a> {
    /// Read a datagram. Allocates only for the rare packet with CSRCs or header extensions.
    pub fn parse(data: &'a [u8]) -> Result<Self, RtpError> {
        if data.len() < 12 || data[0] >> 6 != 2 {
            return Err(RtpError::Malformed);
        }
        // RFC 5761 §4: payload types 64–95 with the marker bit are RTCP (SR=200 … 207).
        if (200..=207).contains(&data[1]) {
            return Err(RtpError::Rtcp);
        }
        let mut buf = data;
        let header = Header::unmarshal(&mut buf).map_err(|_| RtpError::Malformed)?;
        let start = header.marshal_size();
        let mut end = data.len();
        if header.padding {
            let pad = usize::from(*data.last().ok_or(RtpError::Malformed)?);
            if pad == 0 || start + pad > end {
                return Err(RtpError::Malformed);
            }
            end -= pad;
        }
        if start > end {
            return Err(RtpError::Malformed);
        }
        Ok(Self {
            payload_type: header.payload_type,
            marker: header.marker,
            sequence: header.sequence_number,
            timestamp: header.timestamp,
            ssrc: header.ssrc,
            payload: &data[start..end],
        })
    }
}

/// Write a 12-byte RTP header and `payload` into `out`; returns the packet length.
pub fn write_packet(
    out: &mut [u8],
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Option<usize> {
    let header = Header {
        version: 2,
        marker,
        payload_type,
        sequence_number: sequence,
        timestamp,
        ssrc,
        ..Header::default()
    };
    let n = header.marshal_to(out).ok()?;
    let end = n + payload.len();
    out.get_mut(n..end)?.copy_from_slice(payload);
    Some(end)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn write_then_read() {
        let mut buf = [0u8; 200];
        let n = write_packet(
            &mut buf,
            8,
            true,
            65535,
            0xdead_beef,
            0x1234_5678,
            &[0xd5; 160],
        )
        .unwrap();
        assert_eq!(n, 172);
        let v = RtpView::parse(&buf[..n]).unwrap();
        assert_eq!(
            (v.payload_type, v.marker, v.sequence, v.timestamp, v.ssrc),
            (8, true, 65535, 0xdead_beef, 0x1234_5678)
        );
        assert_eq!(v.payload.len(), 160);
    }

    #[test]
    fn padding_and_garbage() {
        let mut buf = [0u8; 200];
        let n = write_packet(&mut buf, 0, false, 1, 2, 3, &[1, 2, 3, 4, 0, 0, 3]).unwrap();
        buf[0] |= 0x20; // padding bit: the last 3 bytes are padding
        assert_eq!(RtpView::parse(&buf[..n]).unwrap().payload, &[1, 2, 3, 4]);
        assert_eq!(RtpView::parse(&[0x80, 200, 0, 1]), Err(RtpError::Malformed));
        assert_eq!(RtpView::parse(&[0x40; 20]), Err(RtpError::Malformed));
        let mut rtcp = [0u8; 28];
        rtcp[0] = 0x80;
        rtcp[1] = 200;
        assert_eq!(RtpView::parse(&rtcp), Err(RtpError::Rtcp));
        // A padding count larger than the packet.
        let n = write_packet(&mut buf, 0, false, 1, 2, 3, &[9]).unwrap();
        buf[0] |= 0x20;
        buf[n - 1] = 200;
        assert_eq!(RtpView::parse(&buf[..n]), Err(RtpError::Malformed));
    }
}
