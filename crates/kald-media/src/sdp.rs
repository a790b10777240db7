//! SDP offer/answer for G.711 telephony (RFC 4566 syntax, RFC 3264 offer/answer).
//!
//! kald speaks one kind of media: a single G.711 audio stream (PCMA or PCMU, 20 ms
//! packets) plus RFC 4733 telephone-events, over plain RTP (`RTP/AVP`). This module reads
//! what the other side sent, picks that stream and writes kald's side:
//!
//! * [`SessionDescription::parse`] reads an offer or an answer with a *lenient* reader.
//! * [`answer`] / [`reanswer`] answer an offer (an INVITE's or re-INVITE's body).
//! * [`offer`] writes kald's own offer (a delayed-offer INVITE's 200, calls to agents), and
//!   [`accept_answer`] reads the peer's answer to it.
//! * [`Negotiated`] is the result: codec, payload types, where to send RTP, the direction,
//!   [`Negotiated::is_hold`], and [`Negotiated::changes_since`] for re-offers.
//!
//! # Why a reader of kald's own and not `rtc-sdp`
//!
//! The architecture prefers the `rtc-sdp` crate (webrtc-rs, sans-IO) with a lenient
//! reader of kald's own where that crate refuses. `rtc-sdp` 0.21 parses with a strict
//! RFC 4566 state machine: every line type must come in grammar order. Real equipment does
//! not: carrier SBCs put session `a=` lines before `c=`, gateways leave out `t=`, and such
//! offers are refused whole (the test `rtc_sdp_refuses_these` lists the corpus files it
//! refuses). Refusing an offer means a 488 to a citizen's call, so production uses the
//! reader below, which takes lines in any order, LF or CRLF, and ignores what it does not
//! know. `rtc-sdp`'s errors also quote the offending SDP text, which kald keeps out of
//! errors and logs (addresses are personal-ish data). `rtc-sdp` stays a dev-dependency:
//! the tests check that what kald *writes* is accepted by that strict parser.
//!
//! # Errors carry no SDP
//!
//! [`ParseError`] and [`NegotiationError`] say what was wrong, never with bytes, addresses
//! or ports from the description.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

/// The largest description [`SessionDescription::parse`] reads. An SDP for one G.711 call
/// is well under 2 KiB; WebRTC-style offers with many candidates stay under 16 KiB.
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// The most `m=` lines [`SessionDescription::parse`] accepts.
pub const MAX_MEDIA_LINES: usize = 32;

/// The payload type kald uses for telephone-event in its own offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// The packet time kald sends and asks for, in milliseconds.
pub const PTIME_MS: u32 = 20;

/// The events kald announces in `a=fmtp:<te> 0-15`: DTMF digits 0–9, `*`, `#`, A–D.
const TELEPHONE_EVENTS: &str = "0-15";

// ---------------------------------------------------------------------------------------
// Codec and direction
// ---------------------------------------------------------------------------------------

pub use crate::g711::Codec;

/// The codec an `a=rtpmap` names, if kald supports it (8 kHz mono PCMU or PCMA).
fn codec_from_encoding(rtpmap: &RtpMap) -> Option<Codec> {
    if rtpmap.clock_rate != 8000 || rtpmap.channels.is_some_and(|c| c != 1) {
        return None;
    }
    if rtpmap.encoding.eq_ignore_ascii_case("PCMU") {
        Some(Codec::Pcmu)
    } else if rtpmap.encoding.eq_ignore_ascii_case("PCMA") {
        Some(Codec::Pcma)
    } else {
        None
    }
}

/// The codecs kald offers, in its order of preference.
pub const DEFAULT_CODECS: [Codec; 2] = [Codec::Pcma, Codec::Pcmu];

/// The direction of a media stream (RFC 3264 §5.1), from the point of view of the side
/// whose description it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`: sends and receives (the default when nothing is said).
    #[default]
    SendRecv,
    /// `a=sendonly`: sends, does not want to receive.
    SendOnly,
    /// `a=recvonly`: receives, does not send.
    RecvOnly,
    /// `a=inactive`: neither.
    Inactive,
}

impl Direction {
    /// The direction with the given send and receive flags.
    pub const fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    /// Whether this side sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether this side receives media.
    pub const fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The same stream seen from the other end: `sendonly` ↔ `recvonly`.
    pub const fn reversed(self) -> Self {
        Self::from_flags(self.receives(), self.sends())
    }

    /// The attribute name, as in `a=sendrecv`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Self> {
        [
            Self::SendRecv,
            Self::SendOnly,
            Self::RecvOnly,
            Self::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.as_str()))
    }
}

// ---------------------------------------------------------------------------------------
// The parsed description
// ---------------------------------------------------------------------------------------

/// A session description as read by the lenient reader: only what kald's negotiation
/// needs; every other line and attribute is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionDescription {
    /// The `o=` line, if it had at least a username, session id and version.
    pub origin: Option<Origin>,
    /// The session-level `c=` line (the first one), if any.
    pub connection: Option<Connection>,
    /// The session-level direction attribute, if any; a media-level one wins.
    pub direction: Option<Direction>,
    /// A session-level `a=ptime` (not in RFC 4566, but sent by some equipment).
    pub ptime: Option<u32>,
    /// The `m=` sections, in order.
    pub media: Vec<MediaDescription>,
}

/// The `o=` line: who made the description, and which version of it this is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Origin {
    /// The username (`-` when the sender has none).
    pub username: String,
    /// The session id, as written (numeric by RFC 4566, compared as text).
    pub session_id: String,
    /// The session version, if numeric. An unchanged version in a re-offer means an
    /// unchanged description (RFC 3264 §8).
    pub version: Option<u64>,
}

/// The address of a `c=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// An IPv4 or IPv6 address (multicast TTL and count suffixes dropped). `0.0.0.0` is
    /// the old-style hold of RFC 2543.
    Ip(IpAddr),
    /// A line kald cannot use: a host name (which a sans-IO module does not resolve), a
    /// network type other than `IN`, or an unreadable address.
    Unusable,
}

impl Connection {
    /// Whether this is `0.0.0.0` or `::`, which means "send nothing here" (RFC 3264 §8.4).
    pub fn is_unspecified(self) -> bool {
        matches!(self, Self::Ip(ip) if ip.is_unspecified())
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaDescription {
    /// The media type: `audio`, `video`, `image`, `application`…
    pub media: String,
    /// The transport port; 0 means the stream is disabled or rejected.
    pub port: u16,
    /// The number of ports of `<port>/<number>`, if given.
    pub port_count: Option<u16>,
    /// The transport protocol, e.g. `RTP/AVP` or `RTP/SAVP`.
    pub proto: String,
    /// The format list (RTP payload types for RTP), in the sender's order of preference.
    pub formats: Vec<String>,
    /// The media-level `c=` line (the first one), which wins over the session's.
    pub connection: Option<Connection>,
    /// The `a=rtpmap` attributes.
    pub rtpmaps: Vec<RtpMap>,
    /// The `a=fmtp` attributes.
    pub fmtps: Vec<Fmtp>,
    /// `a=ptime`, in milliseconds.
    pub ptime: Option<u32>,
    /// `a=maxptime`, in milliseconds.
    pub maxptime: Option<u32>,
    /// The media-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// `a=rtcp` (RFC 3605): where the sender wants RTCP, when not at RTP port + 1.
    pub rtcp: Option<RtcpAttribute>,
}

/// An `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtpMap {
    /// The payload type (0–127).
    pub payload_type: u8,
    /// The encoding name as written, e.g. `PCMA` or `telephone-event`.
    pub encoding: String,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// The channel count, if given.
    pub channels: Option<u16>,
}

/// An `a=fmtp:<pt> <parameters>` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fmtp {
    /// The payload type (0–127).
    pub payload_type: u8,
    /// The parameters as written, e.g. `0-16` for telephone-event.
    pub parameters: String,
}

/// An `a=rtcp:<port> [IN IP4|IP6 <address>]` attribute (RFC 3605).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtcpAttribute {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, if given; otherwise the stream's `c=` address.
    pub address: Option<Connection>,
}

/// Why bytes could not be read as a session description. Carries none of the input.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input is larger than [`MAX_SDP_LEN`].
    #[error("SDP body is larger than {MAX_SDP_LEN} bytes")]
    TooLarge,
    /// The input has no `v=` line, so it is not a session description at all.
    #[error("body is not SDP (no v= line)")]
    NotSdp,
    /// The input has more than [`MAX_MEDIA_LINES`] `m=` lines.
    #[error("SDP has more than {MAX_MEDIA_LINES} m= lines")]
    TooManyMediaLines,
    /// An `m=` line could not be read (fewer than three fields, a port that is not a
    /// number, or characters that cannot be echoed in an answer). Such a stream cannot be
    /// answered, not even rejected, so the description as a whole is refused.
    #[error("m= line {index} of the SDP is malformed")]
    MalformedMediaLine {
        /// The index of the `m=` line (0 for the first).
        index: usize,
    },
}

impl SessionDescription {
    /// Reads a session description leniently.
    ///
    /// Accepts LF, CRLF or CR line ends and lines in any order within a section; leading
    /// and trailing white space is dropped; unknown and unreadable lines and attributes
    /// (including ones that are not UTF-8) are skipped; a missing `t=`, `s=` or `o=` is
    /// fine. Refuses only input that is too large, has no `v=` line, or has an `m=` line
    /// it cannot echo (see [`ParseError`]).
    pub fn parse(input: &[u8]) -> Result<Self, ParseError> {
        if input.len() > MAX_SDP_LEN {
            return Err(ParseError::TooLarge);
        }
        let mut desc = Self::default();
        let mut saw_version = false;
        for raw in input.split(|&b| b == b'\n' || b == b'\r') {
            let line = raw.trim_ascii();
            let (kind, value) = match line {
                [kind, b'=', value @ ..] => (*kind, value),
                _ => continue,
            };
            if kind == b'm' {
                let index = desc.media.len();
                if index >= MAX_MEDIA_LINES {
                    return Err(ParseError::TooManyMediaLines);
                }
                let media =
                    parse_media_line(value).ok_or(ParseError::MalformedMediaLine { index })?;
                desc.media.push(media);
                continue;
            }
            if kind == b'v' {
                saw_version = true;
                continue;
            }
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            let value = value.trim();
            match (kind, desc.media.last_mut()) {
                (b'o', None) if desc.origin.is_none() => desc.origin = parse_origin(value),
                (b'c', None) if desc.connection.is_none() => {
                    desc.connection = Some(parse_connection(value));
                }
                (b'c', Some(media)) if media.connection.is_none() => {
                    media.connection = Some(parse_connection(value));
                }
                (b'a', None) => {
                    let (name, attr_value) = split_attribute(value);
                    if let Some(direction) = Direction::from_attribute(name) {
                        desc.direction.get_or_insert(direction);
                    } else if name.eq_ignore_ascii_case("ptime") {
                        if let Some(ptime) = parse_ptime(attr_value) {
                            desc.ptime.get_or_insert(ptime);
                        }
                    }
                }
                (b'a', Some(media)) => media.add_attribute(value),
                _ => {}
            }
        }
        if saw_version {
            Ok(desc)
        } else {
            Err(ParseError::NotSdp)
        }
    }

    /// The connection that applies to `media`: its own `c=`, else the session's.
    pub fn connection_for(&self, media: &MediaDescription) -> Option<Connection> {
        media.connection.or(self.connection)
    }

    /// The direction that applies to `media`: its own attribute, else the session's, else
    /// `sendrecv` (RFC 3264 §5.1).
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media.direction.or(self.direction).unwrap_or_default()
    }
}

impl MediaDescription {
    /// Whether the stream is RTP/AVP audio on a non-zero port.
    pub fn is_plain_rtp_audio(&self) -> bool {
        self.port != 0 && self.media.eq_ignore_ascii_case("audio") && is_rtp_avp(&self.proto)
    }

    /// The `a=rtpmap` for a payload type, if the section has one.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The payload types of the format list that are numbers, in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt <= 127)
    }

    /// The first G.711 codec of the format list that is in `supported`, with the payload
    /// type the sender uses for it. A payload type with an `a=rtpmap` is what the rtpmap
    /// says; one without is looked up in the static table (0 = PCMU, 8 = PCMA).
    pub fn first_codec(&self, supported: &[Codec]) -> Option<(Codec, u8)> {
        self.payload_types().find_map(|pt| {
            let codec = match self.rtpmap(pt) {
                Some(map) => codec_from_encoding(map),
                None => Codec::from_payload_type(pt),
            }?;
            supported.contains(&codec).then_some((codec, pt))
        })
    }

    /// The first payload type of the format list mapped to `telephone-event/8000`.
    ///
    /// Any dynamic or unassigned payload type (35–127) is taken, except 72–76, which clash
    /// with RTCP packet types (RFC 5761 §4), and `exclude` (the codec's payload type).
    pub fn telephone_event(&self, exclude: u8) -> Option<u8> {
        self.payload_types().find(|&pt| {
            pt != exclude
                && (35..=127).contains(&pt)
                && !(72..=76).contains(&pt)
                && self.rtpmap(pt).is_some_and(|m| {
                    m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
                })
        })
    }

    fn add_attribute(&mut self, value: &str) {
        let (name, value) = split_attribute(value);
        if let Some(direction) = Direction::from_attribute(name) {
            self.direction.get_or_insert(direction);
        } else if name.eq_ignore_ascii_case("rtpmap") {
            if let Some(map) = parse_rtpmap(value) {
                if self.rtpmap(map.payload_type).is_none() {
                    self.rtpmaps.push(map);
                }
            }
        } else if name.eq_ignore_ascii_case("fmtp") {
            if let Some((pt, parameters)) = split_payload_type(value) {
                self.fmtps.push(Fmtp {
                    payload_type: pt,
                    parameters: parameters.to_owned(),
                });
            }
        } else if name.eq_ignore_ascii_case("ptime") {
            if self.ptime.is_none() {
                self.ptime = parse_ptime(value);
            }
        } else if name.eq_ignore_ascii_case("maxptime") {
            if self.maxptime.is_none() {
                self.maxptime = parse_ptime(value);
            }
        } else if name.eq_ignore_ascii_case("rtcp") && self.rtcp.is_none() {
            self.rtcp = parse_rtcp(value);
        }
    }
}

fn is_rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP")
}

fn parse_media_line(value: &[u8]) -> Option<MediaDescription> {
    let value = std::str::from_utf8(value).ok()?;
    let mut fields = value.split_ascii_whitespace();
    let media = fields.next()?;
    let port_field = fields.next()?;
    let proto = fields.next()?;
    let formats: Vec<&str> = fields.collect();
    let echoable = |t: &str| t.bytes().all(|b| b.is_ascii_graphic());
    if !echoable(media) || !echoable(proto) || !formats.iter().all(|f| echoable(f)) {
        return None;
    }
    let (port, port_count) = match port_field.split_once('/') {
        Some((port, count)) => (port.parse().ok()?, count.parse().ok()),
        None => (port_field.parse().ok()?, None),
    };
    Some(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats: formats.into_iter().map(str::to_owned).collect(),
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        maxptime: None,
        direction: None,
        rtcp: None,
    })
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut fields = value.split_ascii_whitespace();
    let username = fields.next()?;
    let session_id = fields.next()?;
    let version = fields.next()?;
    Some(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        version: version.parse().ok(),
    })
}

/// `IN IP4 <address>[/ttl[/count]]`; the address type is not trusted, the address is.
fn parse_connection(value: &str) -> Connection {
    let mut fields = value.split_ascii_whitespace();
    match (fields.next(), fields.next(), fields.next()) {
        (Some(net), Some(_), Some(address)) if net.eq_ignore_ascii_case("IN") => {
            let address = address.split('/').next().unwrap_or(address);
            address.parse().map_or(Connection::Unusable, Connection::Ip)
        }
        _ => Connection::Unusable,
    }
}

fn split_attribute(value: &str) -> (&str, &str) {
    match value.split_once(':') {
        Some((name, value)) => (name.trim(), value.trim()),
        None => (value.trim(), ""),
    }
}

fn split_payload_type(value: &str) -> Option<(u8, &str)> {
    let (pt, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    let pt: u8 = pt.parse().ok()?;
    (pt <= 127).then_some((pt, rest.trim()))
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = split_payload_type(value)?;
    let mut parts = rest.split('/');
    let encoding = parts.next()?.trim();
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = parts.next().and_then(|c| c.trim().parse().ok());
    if encoding.is_empty() {
        return None;
    }
    Some(RtpMap {
        payload_type: pt,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

/// `20`, also `20.0` as some stacks write it.
fn parse_ptime(value: &str) -> Option<u32> {
    let integer = value.split('.').next().unwrap_or(value).trim();
    integer.parse().ok().filter(|&ms| ms > 0)
}

fn parse_rtcp(value: &str) -> Option<RtcpAttribute> {
    let mut fields = value.split_ascii_whitespace();
    let port = fields.next()?.parse().ok()?;
    let rest: Vec<&str> = fields.collect();
    let address = (!rest.is_empty()).then(|| parse_connection(&rest.join(" ")));
    Some(RtcpAttribute { port, address })
}

// ---------------------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------------------

/// kald's side of the media: where it receives RTP and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// The address kald receives RTP on (and announces in `o=` and `c=`).
    pub ip: IpAddr,
    /// The port kald receives RTP on; RTCP is on the next port.
    pub rtp_port: u16,
    /// The `o=` session id: fixed for the whole call.
    pub session_id: u64,
    /// The `o=` version: must grow whenever kald's description changes (RFC 3264 §8).
    pub version: u64,
    /// The codecs kald accepts, in its order of preference (used for its own offers; in
    /// an answer the caller's preference wins). Default [`DEFAULT_CODECS`].
    pub codecs: Vec<Codec>,
}

impl LocalMedia {
    /// Local media with the default codecs (PCMA, then PCMU).
    pub fn new(ip: IpAddr, rtp_port: u16, session_id: u64, version: u64) -> Self {
        Self {
            ip,
            rtp_port,
            session_id,
            version,
            codecs: DEFAULT_CODECS.to_vec(),
        }
    }
}

/// An SDP kald produced, with the `o=` version written in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalSdp {
    /// The SDP to send, with CRLF line ends.
    pub bytes: Bytes,
    /// The `o=` version written in `bytes`.
    pub version: u64,
}

/// The outcome of an offer/answer exchange: what kald sends and where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// The answer to send ([`answer`], [`reanswer`]); `None` from [`accept_answer`].
    pub answer: Option<LocalSdp>,
    /// The codec: from an offer, the caller's most preferred one kald supports; from an
    /// answer, the first one the peer listed that kald offered.
    pub codec: Codec,
    /// The payload type for `codec` (the peer's number; 0 or 8 unless the peer mapped a
    /// dynamic one to PCMU/PCMA).
    pub payload_type: u8,
    /// The peer's telephone-event/8000 payload type, if it has one.
    pub telephone_event: Option<u8>,
    /// The packet time kald sends, in ms (always [`PTIME_MS`]).
    pub ptime: u32,
    /// The packet time the peer asked for (`a=ptime`), if any; its packets may be this
    /// long.
    pub remote_ptime: Option<u32>,
    /// Where to send RTP: `c=` and `m=` port. `None` when the address is `0.0.0.0`/`::`,
    /// not an IP address, or missing, or the port is 0.
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP: `a=rtcp` if given, else RTP port + 1. `None` when
    /// `remote_rtp` is.
    pub remote_rtcp: Option<SocketAddr>,
    /// kald's direction for the stream.
    pub direction: Direction,
    /// The index of the audio `m=` line in the peer's description.
    pub media_index: usize,
}

impl Negotiated {
    /// Whether the peer has put the call on hold: it wants no media from kald
    /// (`sendonly` or `inactive`, RFC 3264 §8.4, or the old `c=0.0.0.0`).
    pub fn is_hold(&self) -> bool {
        !self.direction.sends()
    }

    /// What changed from `previous` (the last negotiation of the same call), for
    /// re-offers: hold and resume, a new remote address (re-routing, a transferred call),
    /// a new codec or telephone-event payload type.
    pub fn changes_since(&self, previous: &Self) -> Changes {
        let hold = match (previous.is_hold(), self.is_hold()) {
            (false, true) => HoldChange::Held,
            (true, false) => HoldChange::Resumed,
            _ => HoldChange::Unchanged,
        };
        Changes {
            hold,
            remote_rtp: self.remote_rtp != previous.remote_rtp,
            remote_rtcp: self.remote_rtcp != previous.remote_rtcp,
            codec: self.codec != previous.codec || self.payload_type != previous.payload_type,
            telephone_event: self.telephone_event != previous.telephone_event,
            direction: self.direction != previous.direction,
        }
    }
}

/// What a re-negotiation changed; see [`Negotiated::changes_since`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Changes {
    /// Whether the call went on hold or came back.
    pub hold: HoldChange,
    /// Whether the remote RTP address changed (also to or from `None`).
    pub remote_rtp: bool,
    /// Whether the remote RTCP address changed.
    pub remote_rtcp: bool,
    /// Whether the codec or its payload type changed.
    pub codec: bool,
    /// Whether the telephone-event payload type changed (or appeared or went away).
    pub telephone_event: bool,
    /// Whether kald's direction changed.
    pub direction: bool,
}

impl Changes {
    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.hold != HoldChange::Unchanged
            || self.remote_rtp
            || self.remote_rtcp
            || self.codec
            || self.telephone_event
            || self.direction
    }
}

/// A change of hold state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldChange {
    /// Held before and now, or neither.
    Unchanged,
    /// The peer put the call on hold.
    Held,
    /// The peer took the call off hold.
    Resumed,
}

/// Why no media could be agreed. Each is a 488 Not Acceptable Here to an offer, or a BYE
/// after an answer. Carries none of the description.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The offer has no audio stream on a non-zero port.
    #[error("the offer has no audio stream")]
    NoAudio,
    /// The audio streams use a transport kald does not have, such as SRTP (`RTP/SAVP`,
    /// `RTP/SAVPF`, DTLS-SRTP); kald speaks only `RTP/AVP`.
    #[error("the audio stream's transport is not RTP/AVP (SRTP is not supported)")]
    UnsupportedTransport,
    /// No offered (or answered) codec is one kald supports (PCMU or PCMA).
    #[error("no common codec (kald supports PCMU and PCMA)")]
    NoCommonCodec,
    /// The peer's answer rejected kald's audio stream (port 0, or no audio `m=` line
    /// where kald's offer had one).
    #[error("the answer rejected the audio stream")]
    StreamRejected,
}

/// Answers an offer (RFC 3264 §6) with `local.version` in `o=`.
///
/// Takes the first audio `m=` line that is `RTP/AVP` on a non-zero port and has a codec
/// from `local.codecs`; every other `m=` line is answered with port 0, so the answer has
/// as many `m=` lines as the offer, in order. Among the codecs the caller's order wins.
///
/// The direction is the offer's reversed (`sendonly` → `recvonly`, `recvonly` →
/// `sendonly`, `inactive` → `inactive`); with `c=0.0.0.0` kald does not send
/// (`recvonly` or `inactive`, RFC 3264 §8.4).
///
/// For a re-offer within a call, [`reanswer`] picks the version itself.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Negotiated, NegotiationError> {
    let mut negotiated = negotiate_offer(offer, local)?;
    let body = answer_body(offer, local, &negotiated);
    negotiated.answer = Some(assemble(local, local.version, &body));
    Ok(negotiated)
}

/// Answers a re-offer within a call whose last negotiation was `previous`.
///
/// Keeps the `o=` version of `previous`'s answer when the new answer says the same thing
/// (RFC 3264 §8: an unchanged description keeps its version), and otherwise uses that
/// version plus one (or `local.version`, if larger). `local.session_id` must be the
/// call's. Without a previous answer, `local.version` is used.
pub fn reanswer(
    offer: &SessionDescription,
    local: &LocalMedia,
    previous: &Negotiated,
) -> Result<Negotiated, NegotiationError> {
    let mut negotiated = negotiate_offer(offer, local)?;
    let body = answer_body(offer, local, &negotiated);
    let version = match &previous.answer {
        Some(prev) => {
            let unchanged_origin = assemble(local, prev.version, &body);
            if unchanged_origin.bytes == prev.bytes {
                prev.version
            } else {
                prev.version.saturating_add(1).max(local.version)
            }
        }
        None => local.version,
    };
    negotiated.answer = Some(assemble(local, version, &body));
    Ok(negotiated)
}

/// Writes kald's offer: one audio stream with `local.codecs` (PCMA, PCMU when empty) and
/// telephone-event/8000 as payload type [`TELEPHONE_EVENT_PT`], `a=ptime:20`, and
/// `direction`. Used for the 200 to a delayed-offer INVITE and for calls kald places.
pub fn offer(local: &LocalMedia, direction: Direction) -> Bytes {
    let codecs = offer_codecs(&local.codecs);
    let mut body = String::with_capacity(256);
    let _ = write!(body, "m=audio {} RTP/AVP", local.rtp_port);
    for codec in &codecs {
        let _ = write!(body, " {}", codec.payload_type());
    }
    let _ = write!(body, " {TELEPHONE_EVENT_PT}\r\n");
    for codec in &codecs {
        push_rtpmap(&mut body, codec.payload_type(), codec.name());
    }
    push_telephone_event(&mut body, TELEPHONE_EVENT_PT);
    push_ptime_and_direction(&mut body, direction);
    assemble(local, local.version, &body).bytes
}

/// Reads the peer's answer to an offer made by [`offer`] with `our_offer_codecs`.
///
/// kald's offers have one `m=` line, so the answer's first must be audio `RTP/AVP` on a
/// non-zero port; the codec is the first one in the answer's format list that kald
/// offered, and the telephone-event payload type is the answer's own. The direction is
/// the answer's reversed; with `c=0.0.0.0` kald does not send.
pub fn accept_answer(
    our_offer_codecs: &[Codec],
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    let media = answer
        .media
        .first()
        .filter(|m| m.port != 0 && m.media.eq_ignore_ascii_case("audio"))
        .ok_or(NegotiationError::StreamRejected)?;
    if !is_rtp_avp(&media.proto) {
        return Err(NegotiationError::UnsupportedTransport);
    }
    let (codec, payload_type) = media
        .first_codec(&offer_codecs(our_offer_codecs))
        .ok_or(NegotiationError::NoCommonCodec)?;
    Ok(negotiated_for(answer, media, 0, codec, payload_type))
}

/// The codecs kald offers: `codecs` without repeats, or the defaults when empty.
fn offer_codecs(codecs: &[Codec]) -> Vec<Codec> {
    let mut out: Vec<Codec> = Vec::with_capacity(2);
    for &codec in codecs {
        if !out.contains(&codec) {
            out.push(codec);
        }
    }
    if out.is_empty() {
        out.extend(DEFAULT_CODECS);
    }
    out
}

fn negotiate_offer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Negotiated, NegotiationError> {
    let mut saw_audio = false;
    let mut saw_rtp_audio = false;
    for (index, media) in offer.media.iter().enumerate() {
        if media.port == 0 || !media.media.eq_ignore_ascii_case("audio") {
            continue;
        }
        saw_audio = true;
        if !is_rtp_avp(&media.proto) {
            continue;
        }
        saw_rtp_audio = true;
        if let Some((codec, pt)) = media.first_codec(&local.codecs) {
            return Ok(negotiated_for(offer, media, index, codec, pt));
        }
    }
    Err(if saw_rtp_audio {
        NegotiationError::NoCommonCodec
    } else if saw_audio {
        NegotiationError::UnsupportedTransport
    } else {
        NegotiationError::NoAudio
    })
}

/// The negotiation result for the chosen `media` of the peer's description `desc`.
fn negotiated_for(
    desc: &SessionDescription,
    media: &MediaDescription,
    media_index: usize,
    codec: Codec,
    payload_type: u8,
) -> Negotiated {
    let connection = desc.connection_for(media);
    let peer_direction = desc.direction_for(media);
    let mut direction = peer_direction.reversed();
    if connection.is_some_and(Connection::is_unspecified) {
        direction = Direction::from_flags(false, direction.receives());
    }
    let remote_ip = match connection {
        Some(Connection::Ip(ip)) if !ip.is_unspecified() && media.port != 0 => Some(ip),
        _ => None,
    };
    let remote_rtp = remote_ip.map(|ip| SocketAddr::new(ip, media.port));
    let remote_rtcp = remote_ip.and_then(|ip| match media.rtcp {
        Some(RtcpAttribute {
            port,
            address: Some(Connection::Ip(rtcp_ip)),
        }) if !rtcp_ip.is_unspecified() => Some(SocketAddr::new(rtcp_ip, port)),
        Some(RtcpAttribute {
            port,
            address: None,
        }) => Some(SocketAddr::new(ip, port)),
        Some(_) => None,
        None => media
            .port
            .checked_add(1)
            .map(|port| SocketAddr::new(ip, port)),
    });
    Negotiated {
        answer: None,
        codec,
        payload_type,
        telephone_event: media.telephone_event(payload_type),
        ptime: PTIME_MS,
        remote_ptime: media.ptime.or(desc.ptime),
        remote_rtp,
        remote_rtcp,
        direction,
        media_index,
    }
}

/// Everything of the answer after `o=`.
fn answer_body(offer: &SessionDescription, local: &LocalMedia, neg: &Negotiated) -> String {
    let mut body = String::with_capacity(256);
    for (index, media) in offer.media.iter().enumerate() {
        if index == neg.media_index {
            let _ = write!(
                body,
                "m=audio {} RTP/AVP {}",
                local.rtp_port, neg.payload_type
            );
            if let Some(te) = neg.telephone_event {
                let _ = write!(body, " {te}");
            }
            body.push_str("\r\n");
            push_rtpmap(&mut body, neg.payload_type, neg.codec.name());
            if let Some(te) = neg.telephone_event {
                push_telephone_event(&mut body, te);
            }
            push_ptime_and_direction(&mut body, neg.direction);
        } else {
            // RFC 3264 §6: a rejected stream keeps its m= line, with port 0.
            let _ = write!(body, "m={} 0 {}", media.media, media.proto);
            if media.formats.is_empty() {
                body.push_str(" 0");
            }
            for format in &media.formats {
                let _ = write!(body, " {format}");
            }
            body.push_str("\r\n");
        }
    }
    body
}

fn push_rtpmap(body: &mut String, pt: u8, encoding: &str) {
    let _ = write!(body, "a=rtpmap:{pt} {encoding}/8000\r\n");
}

fn push_telephone_event(body: &mut String, pt: u8) {
    let _ = write!(
        body,
        "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} {TELEPHONE_EVENTS}\r\n"
    );
}

fn push_ptime_and_direction(body: &mut String, direction: Direction) {
    let _ = write!(body, "a=ptime:{PTIME_MS}\r\na={}\r\n", direction.as_str());
}

/// `v=`, `o=`, `s=`, `c=`, `t=` and then `media`.
fn assemble(local: &LocalMedia, version: u64, media: &str) -> LocalSdp {
    let ip_type = if local.ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = String::with_capacity(128 + media.len());
    let _ = write!(
        sdp,
        "v=0\r\no=kald {} {version} IN {ip_type} {ip}\r\ns=kald\r\nc=IN {ip_type} {ip}\r\nt=0 0\r\n{media}",
        local.session_id,
        ip = local.ip,
    );
    LocalSdp {
        bytes: Bytes::from(sdp),
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::path::PathBuf;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `tests/corpus/sdp` of the workspace: the first ancestor of the crate that has it
    /// (the workspace root in kald, the crate itself in a stand-alone checkout).
    fn corpus_dir() -> PathBuf {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        manifest
            .ancestors()
            .map(|dir| dir.join("tests/corpus/sdp"))
            .find(|dir| dir.is_dir())
            .expect("tests/corpus/sdp above CARGO_MANIFEST_DIR")
    }

    fn corpus() -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
            .expect("read corpus dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sdp"))
            .map(|p| {
                let name = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("UTF-8 file name")
                    .to_owned();
                let bytes = std::fs::read(&p).expect("read corpus file");
                (name, bytes)
            })
            .collect();
        files.sort();
        files
    }

    fn local() -> LocalMedia {
        LocalMedia::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 200)), 40_000, 77, 1)
    }

    fn parse(text: &str) -> SessionDescription {
        SessionDescription::parse(text.as_bytes()).expect("parse")
    }

    /// What the corpus test expects of one file's negotiation.
    struct Expected {
        codec: Codec,
        te: Option<u8>,
        remote: Option<&'static str>,
        direction: Direction,
        hold: bool,
        media_index: usize,
    }

    const fn ok(
        codec: Codec,
        te: Option<u8>,
        remote: Option<&'static str>,
        direction: Direction,
        hold: bool,
        media_index: usize,
    ) -> Result<Expected, NegotiationError> {
        Ok(Expected {
            codec,
            te,
            remote,
            direction,
            hold,
            media_index,
        })
    }

    use Codec::{Pcma, Pcmu};
    use Direction::{Inactive, RecvOnly, SendOnly, SendRecv};

    #[rustfmt::skip]
    const TABLE: &[(&str, Result<Expected, NegotiationError>)] = &[
        ("asterisk-pjsip.sdp", ok(Pcma, Some(101), Some("198.51.100.10:17232"), SendRecv, false, 0)),
        ("baresip.sdp", ok(Pcmu, Some(101), Some("192.0.2.66:10412"), SendRecv, false, 0)),
        ("best-effort-srtp-two-m-lines.sdp", ok(Pcma, Some(101), Some("192.0.2.52:61912"), SendRecv, false, 1)),
        ("carrier-sbc-g711-only.sdp", ok(Pcma, Some(101), Some("203.0.113.5:30000"), SendRecv, false, 0)),
        ("cisco-cube-hold-0000.sdp", ok(Pcma, Some(101), None, RecvOnly, true, 0)),
        ("fritzbox.sdp", ok(Pcma, Some(101), Some("192.0.2.178:7078"), SendRecv, false, 0)),
        ("freeswitch.sdp", ok(Pcmu, Some(101), Some("198.51.100.20:24576"), SendRecv, false, 0)),
        ("g729-then-pcma.sdp", ok(Pcma, Some(101), Some("203.0.113.9:16500"), SendRecv, false, 0)),
        ("grandstream.sdp", ok(Pcma, Some(101), Some("192.0.2.44:5004"), SendRecv, false, 0)),
        ("inactive.sdp", ok(Pcmu, Some(101), Some("198.51.100.20:24576"), Inactive, true, 0)),
        ("ipv6.sdp", ok(Pcma, Some(101), Some("[2001:db8:10::5]:40000"), SendRecv, false, 0)),
        ("lf-only.sdp", ok(Pcmu, Some(101), Some("192.0.2.140:20000"), SendRecv, false, 0)),
        ("linphone.sdp", ok(Pcmu, Some(100), Some("192.0.2.55:7078"), SendRecv, false, 0)),
        ("microsip.sdp", ok(Pcma, Some(101), Some("192.0.2.88:4002"), SendRecv, false, 0)),
        ("no-ptime.sdp", ok(Pcma, Some(101), Some("192.0.2.120:7078"), SendRecv, false, 0)),
        ("no-t-line.sdp", ok(Pcmu, None, Some("203.0.113.77:8000"), SendRecv, false, 0)),
        ("opus-only.sdp", Err(NegotiationError::NoCommonCodec)),
        ("pjsua.sdp", ok(Pcmu, Some(121), Some("192.0.2.77:4000"), SendRecv, false, 0)),
        ("polycom-vvx.sdp", ok(Pcmu, Some(127), Some("192.0.2.33:2222"), SendRecv, false, 0)),
        ("recvonly.sdp", ok(Pcma, Some(101), Some("198.51.100.10:17232"), SendOnly, false, 0)),
        ("sendonly-hold.sdp", ok(Pcmu, Some(101), Some("192.0.2.21:11800"), RecvOnly, true, 0)),
        ("session-sendonly-media-sendrecv.sdp", ok(Pcma, Some(101), Some("203.0.113.60:6010"), SendRecv, false, 0)),
        ("snom-d785.sdp", ok(Pcma, Some(101), Some("192.0.2.50:61884"), SendRecv, false, 0)),
        ("srtp-only.sdp", Err(NegotiationError::UnsupportedTransport)),
        ("telephone-event-pt96.sdp", ok(Pcmu, Some(96), Some("203.0.113.40:29000"), SendRecv, false, 0)),
        ("video-and-audio.sdp", ok(Pcmu, Some(101), Some("192.0.2.58:11780"), SendRecv, false, 0)),
        ("video-first.sdp", ok(Pcma, Some(101), Some("192.0.2.59:7078"), SendRecv, false, 2)),
        ("yealink-t46.sdp", ok(Pcmu, Some(101), Some("192.0.2.21:11800"), SendRecv, false, 0)),
        ("zoiper.sdp", ok(Pcmu, Some(101), Some("192.0.2.99:52034"), SendRecv, false, 0)),
    ];

    /// The `m=` lines of an SDP, as (media, port).
    fn m_lines(sdp: &[u8]) -> Vec<(String, u16)> {
        let desc = SessionDescription::parse(sdp).expect("parse");
        desc.media
            .iter()
            .map(|m| (m.media.clone(), m.port))
            .collect()
    }

    #[test]
    fn corpus_negotiates_as_expected() {
        let files = corpus();
        let names: BTreeSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let table: BTreeSet<&str> = TABLE.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names, table,
            "every corpus file has a row, every row a file"
        );
        assert!(files.len() >= 15);

        for (name, bytes) in &files {
            let (_, expected) = TABLE.iter().find(|(n, _)| n == name).expect("row for file");
            let offer = SessionDescription::parse(bytes)
                .unwrap_or_else(|e| panic!("{name}: lenient reader refused: {e}"));
            let got = answer(&offer, &local());
            let exp = match (expected, got) {
                (Err(e), got) => {
                    assert_eq!(got.err(), Some(*e), "{name}");
                    continue;
                }
                (Ok(exp), Ok(got)) => (exp, got),
                (Ok(_), Err(e)) => panic!("{name}: expected an answer, got {e}"),
            };
            let (exp, got) = exp;
            assert_eq!(got.codec, exp.codec, "{name}: codec");
            assert_eq!(got.payload_type, exp.codec.payload_type(), "{name}: pt");
            assert_eq!(got.telephone_event, exp.te, "{name}: telephone-event");
            let remote = exp.remote.map(|r| r.parse::<SocketAddr>().expect("addr"));
            assert_eq!(got.remote_rtp, remote, "{name}: remote RTP");
            assert_eq!(got.direction, exp.direction, "{name}: direction");
            assert_eq!(got.is_hold(), exp.hold, "{name}: hold");
            assert_eq!(got.media_index, exp.media_index, "{name}: m= index");
            assert_eq!(got.ptime, 20, "{name}: ptime");

            // The answer: same m= lines in order, only the chosen one with a port.
            let sdp = &got.answer.as_ref().expect("answer").bytes;
            let offered = m_lines(bytes);
            let answered = m_lines(sdp);
            assert_eq!(answered.len(), offered.len(), "{name}: m= count");
            for (i, ((om, _), (am, ap))) in offered.iter().zip(&answered).enumerate() {
                assert_eq!(om, am, "{name}: m= {i} media");
                let want_port = if i == exp.media_index { 40_000 } else { 0 };
                assert_eq!(*ap, want_port, "{name}: m= {i} port");
            }
            let text = std::str::from_utf8(sdp).expect("UTF-8 answer");
            assert!(
                text.split_terminator('\n').all(|l| l.ends_with('\r')),
                "{name}: CRLF"
            );
            assert!(text.contains("a=ptime:20\r\n"), "{name}");
            assert!(text.contains(&format!("a={}\r\n", exp.direction.as_str())));
            assert!(
                rtc_sdp::SessionDescription::unmarshal(&mut std::io::Cursor::new(text)).is_ok(),
                "{name}: rtc-sdp refuses kald's answer"
            );

            // The offerer reading kald's answer agrees on codec and telephone-event.
            let back = accept_answer(
                &[Pcma, Pcmu],
                &SessionDescription::parse(sdp).expect("reparse"),
            );
            if exp.media_index == 0 {
                let back = back.expect("offerer accepts kald's answer");
                assert_eq!(back.codec, exp.codec, "{name}");
                assert_eq!(back.telephone_event, exp.te, "{name}");
            }
        }
    }

    #[test]
    fn corpus_details() {
        let find = |name: &str| {
            let (_, bytes) = corpus()
                .into_iter()
                .find(|(n, _)| n == name)
                .expect("corpus file");
            answer(&SessionDescription::parse(&bytes).expect("parse"), &local()).expect("answer")
        };
        let sock = |s: &str| Some(s.parse::<SocketAddr>().expect("addr"));
        assert_eq!(find("grandstream.sdp").remote_ptime, Some(30));
        assert_eq!(find("no-ptime.sdp").remote_ptime, None);
        assert_eq!(find("pjsua.sdp").remote_rtcp, sock("192.0.2.77:4001"));
        assert_eq!(find("linphone.sdp").remote_rtcp, sock("192.0.2.55:7079"));
        assert_eq!(
            find("asterisk-pjsip.sdp").remote_rtcp,
            sock("198.51.100.10:17233")
        );
        assert_eq!(find("cisco-cube-hold-0000.sdp").remote_rtcp, None);
    }

    /// rtc-sdp 0.21's strict reader against the corpus: the files it refuses. Each of them
    /// is SDP that real equipment sends and kald must answer; this is why production uses
    /// the lenient reader above. If rtc-sdp learns to read them, this test says so.
    #[test]
    fn rtc_sdp_refuses_these() {
        let refused: Vec<String> = corpus()
            .into_iter()
            .filter(|(_, bytes)| {
                rtc_sdp::SessionDescription::unmarshal(&mut std::io::Cursor::new(bytes)).is_err()
            })
            .map(|(name, _)| name)
            .collect();
        assert_eq!(refused, REFUSED_BY_RTC_SDP);
    }

    /// `carrier-sbc-g711-only.sdp`: a session `a=` line before `c=` (its state machine allows
    /// `a=` only after `t=`). `no-t-line.sdp`: no `t=` line (it requires one before `m=`).
    const REFUSED_BY_RTC_SDP: &[&str] = &["carrier-sbc-g711-only.sdp", "no-t-line.sdp"];

    #[test]
    fn answer_is_exact() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 5000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\nm=video 5002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
        );
        let neg = answer(&offer, &local()).expect("answer");
        let sdp = neg.answer.expect("answer").bytes;
        assert_eq!(
            std::str::from_utf8(&sdp).expect("UTF-8"),
            "v=0\r\n\
             o=kald 77 1 IN IP4 198.51.100.200\r\n\
             s=kald\r\n\
             c=IN IP4 198.51.100.200\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 0 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n\
             m=video 0 RTP/AVP 96\r\n"
        );
    }

    #[test]
    fn offer_is_exact_and_round_trips() {
        let local = local();
        let sdp = offer(&local, SendRecv);
        assert_eq!(
            std::str::from_utf8(&sdp).expect("UTF-8"),
            "v=0\r\n\
             o=kald 77 1 IN IP4 198.51.100.200\r\n\
             s=kald\r\n\
             c=IN IP4 198.51.100.200\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 8 0 101\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
        let text = std::str::from_utf8(&sdp).expect("UTF-8");
        assert!(rtc_sdp::SessionDescription::unmarshal(&mut std::io::Cursor::new(text)).is_ok());

        // Another kald answering kald's offer picks PCMA and PT 101.
        let peer = LocalMedia::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 6000, 5, 1);
        let neg = answer(&parse(text), &peer).expect("answer");
        assert_eq!((neg.codec, neg.telephone_event), (Pcma, Some(101)));
        let back = accept_answer(&local.codecs, &parse_bytes(&neg.answer.expect("sdp").bytes))
            .expect("accept");
        assert_eq!(back.codec, Pcma);
        assert_eq!(
            back.remote_rtp,
            Some("192.0.2.9:6000".parse().expect("addr"))
        );
        assert_eq!(back.answer, None);

        // Empty codec list still offers G.711; repeats are dropped; sendonly is written.
        let mut odd = local.clone();
        odd.codecs = vec![Pcmu, Pcmu];
        let text = String::from_utf8(offer(&odd, SendOnly).to_vec()).expect("UTF-8");
        assert!(text.contains("m=audio 40000 RTP/AVP 0 101\r\n"));
        assert!(text.ends_with("a=sendonly\r\n"));
        odd.codecs.clear();
        let text = String::from_utf8(offer(&odd, SendRecv).to_vec()).expect("UTF-8");
        assert!(text.contains("RTP/AVP 8 0 101\r\n"));
    }

    fn parse_bytes(bytes: &[u8]) -> SessionDescription {
        SessionDescription::parse(bytes).expect("parse")
    }

    #[test]
    fn ipv6_local_media() {
        let mut local = local();
        local.ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20));
        let text = String::from_utf8(offer(&local, SendRecv).to_vec()).expect("UTF-8");
        assert!(text.contains("o=kald 77 1 IN IP6 2001:db8::20\r\n"));
        assert!(text.contains("c=IN IP6 2001:db8::20\r\n"));
    }

    #[test]
    fn accept_answer_cases() {
        let base = "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n";
        let ours = [Pcma, Pcmu];
        let with = |m: &str| parse(&format!("{base}{m}"));

        let neg = accept_answer(
            &ours,
            &with("m=audio 7000 RTP/AVP 0 96\r\na=rtpmap:96 telephone-event/8000\r\n"),
        )
        .expect("accept");
        assert_eq!((neg.codec, neg.telephone_event), (Pcmu, Some(96)));
        assert_eq!(neg.direction, SendRecv);

        let neg = accept_answer(&ours, &with("m=audio 7000 RTP/AVP 8\r\na=recvonly\r\n"))
            .expect("accept");
        assert_eq!((neg.direction, neg.is_hold()), (SendOnly, false));

        let neg = accept_answer(
            &ours,
            &parse("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 7000 RTP/AVP 8\r\n"),
        )
        .expect("accept");
        assert_eq!((neg.direction, neg.remote_rtp), (RecvOnly, None));

        let err = |m: &str| accept_answer(&ours, &with(m)).err();
        assert_eq!(
            err("m=audio 0 RTP/AVP 8\r\n"),
            Some(NegotiationError::StreamRejected)
        );
        assert_eq!(err(""), Some(NegotiationError::StreamRejected));
        assert_eq!(
            err("m=video 7000 RTP/AVP 96\r\n"),
            Some(NegotiationError::StreamRejected)
        );
        assert_eq!(
            err("m=audio 7000 RTP/SAVP 8\r\n"),
            Some(NegotiationError::UnsupportedTransport)
        );
        assert_eq!(
            err("m=audio 7000 RTP/AVP 18\r\n"),
            Some(NegotiationError::NoCommonCodec)
        );
        // PCMU answered although kald offered only PCMA.
        assert_eq!(
            accept_answer(&[Pcma], &with("m=audio 7000 RTP/AVP 0\r\n")).err(),
            Some(NegotiationError::NoCommonCodec)
        );
    }

    #[test]
    fn reoffers_hold_resume_and_move() {
        let offer_with = |version: u32, dir: &str, ip: &str| {
            parse(&format!(
                "v=0\r\no=- 9 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
                 m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na={dir}\r\n"
            ))
        };
        let local = local();
        let first = answer(&offer_with(1, "sendrecv", "192.0.2.1"), &local).expect("answer");
        let version = |n: &Negotiated| n.answer.as_ref().expect("sdp").version;
        assert_eq!(version(&first), 1);

        // A session refresh with the same offer: same answer, same version.
        let same =
            reanswer(&offer_with(1, "sendrecv", "192.0.2.1"), &local, &first).expect("answer");
        assert_eq!(version(&same), 1);
        assert_eq!(same.answer, first.answer);
        assert!(!same.changes_since(&first).any());

        // Hold: kald's answer changes to recvonly, so its version grows.
        let held =
            reanswer(&offer_with(2, "sendonly", "192.0.2.1"), &local, &same).expect("answer");
        assert!(held.is_hold());
        assert_eq!(version(&held), 2);
        let changes = held.changes_since(&same);
        assert_eq!(changes.hold, HoldChange::Held);
        assert!(changes.direction && !changes.remote_rtp);

        // Old-style hold while held: same answer (recvonly), version kept.
        let held_again =
            reanswer(&offer_with(3, "sendrecv", "0.0.0.0"), &local, &held).expect("answer");
        assert_eq!(version(&held_again), 2);
        assert_eq!(held_again.changes_since(&held).hold, HoldChange::Unchanged);
        assert!(held_again.changes_since(&held).remote_rtp);

        // Resume from elsewhere (the call was moved): resumed and a new address.
        let resumed = reanswer(
            &offer_with(4, "sendrecv", "192.0.2.99"),
            &local,
            &held_again,
        )
        .expect("answer");
        assert_eq!(version(&resumed), 3);
        let changes = resumed.changes_since(&held_again);
        assert_eq!(changes.hold, HoldChange::Resumed);
        assert!(changes.remote_rtp && changes.any());
        assert_eq!(
            resumed.remote_rtp,
            Some("192.0.2.99:5000".parse().expect("addr"))
        );

        // kald's own address changed: new version even for the same offer.
        let mut moved = local.clone();
        moved.rtp_port = 40_100;
        let again =
            reanswer(&offer_with(4, "sendrecv", "192.0.2.99"), &moved, &resumed).expect("answer");
        assert_eq!(version(&again), 4);
    }

    #[test]
    fn lenient_reader() {
        // CR-only line ends, white space, an unknown line type, non-UTF-8 junk.
        let mut bytes = b"v=0\ro=x 1 2 IN IP4 192.0.2.3\r  s=-  \rq=whatever\r".to_vec();
        bytes.extend_from_slice(
            b"a=tool:\xff\xfe\rm=audio 4000/2 RTP/AVP 8\rc=IN IP4 192.0.2.3/127\r",
        );
        let desc = parse_bytes(&bytes);
        let origin = desc.origin.as_ref().expect("origin");
        assert_eq!((origin.session_id.as_str(), origin.version), ("1", Some(2)));
        assert_eq!(desc.media[0].port_count, Some(2));
        assert_eq!(
            desc.media[0].connection,
            Some(Connection::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))))
        );

        // A dynamic PT mapped to PCMA is used with its own number; a static PT whose
        // rtpmap says something else is not G.711; te on PT 72 (RTCP clash) is ignored.
        let desc = parse(
            "v=0\nc=IN IP4 192.0.2.3\nm=audio 4000 RTP/AVP 8 98 72\na=rtpmap:8 G729/8000\n\
             a=rtpmap:98 pcma/8000\na=rtpmap:72 telephone-event/8000\n",
        );
        let neg = answer(&desc, &local()).expect("answer");
        assert_eq!(
            (neg.codec, neg.payload_type, neg.telephone_event),
            (Pcma, 98, None)
        );

        // Host names are kept as unusable, not guessed; nothing to send to.
        let desc = parse("v=0\nc=IN IP4 sbc.example.invalid\nm=audio 4000 RTP/AVP 0\n");
        assert_eq!(desc.connection, Some(Connection::Unusable));
        let neg = answer(&desc, &local()).expect("answer");
        assert_eq!((neg.remote_rtp, neg.is_hold()), (None, false));

        // Only telephone-event at 8000 Hz counts; a PCMU-less, PCMA-less offer is a 488.
        let desc = parse("v=0\nc=IN IP4 192.0.2.3\nm=audio 4000 RTP/AVP 9 3\n");
        assert_eq!(
            answer(&desc, &local()).err(),
            Some(NegotiationError::NoCommonCodec)
        );
        let desc = parse("v=0\nc=IN IP4 192.0.2.3\nm=video 4000 RTP/AVP 96\nm=audio 0 RTP/AVP 0\n");
        assert_eq!(
            answer(&desc, &local()).err(),
            Some(NegotiationError::NoAudio)
        );
        assert_eq!(
            answer(&parse("v=0\n"), &local()).err(),
            Some(NegotiationError::NoAudio)
        );

        // kald configured for PCMU only answers a PCMA-first offer with PCMU.
        let mut only_pcmu = local();
        only_pcmu.codecs = vec![Pcmu];
        let desc = parse("v=0\nc=IN IP4 192.0.2.3\nm=audio 4000 RTP/AVP 8 0\n");
        assert_eq!(answer(&desc, &only_pcmu).expect("answer").codec, Pcmu);

        // A rejected m= line with no formats is still answered with a well-formed line.
        let desc = parse("v=0\nc=IN IP4 192.0.2.3\nm=audio 4000 RTP/AVP 0\nm=text 5000 RTP/AVP\n");
        let neg = answer(&desc, &local()).expect("answer");
        let sdp = neg.answer.expect("sdp").bytes;
        assert!(std::str::from_utf8(&sdp)
            .expect("UTF-8")
            .ends_with("m=text 0 RTP/AVP 0\r\n"));
    }

    #[test]
    fn parse_errors_carry_no_sdp() {
        assert_eq!(
            SessionDescription::parse(b"").err(),
            Some(ParseError::NotSdp)
        );
        assert_eq!(
            SessionDescription::parse(b"hello\r\nworld").err(),
            Some(ParseError::NotSdp)
        );
        let big = vec![b'a'; MAX_SDP_LEN + 1];
        assert_eq!(
            SessionDescription::parse(&big).err(),
            Some(ParseError::TooLarge)
        );
        let many = format!(
            "v=0\r\n{}",
            "m=audio 0 RTP/AVP 0\r\n".repeat(MAX_MEDIA_LINES + 1)
        );
        assert_eq!(
            SessionDescription::parse(many.as_bytes()).err(),
            Some(ParseError::TooManyMediaLines)
        );
        for bad in [
            "m=audio 192.0.2.44 RTP/AVP 0",
            "m=audio 70000 RTP/AVP 0",
            "m=audio 5004",
            "m=audio 5004 RTP/AVP 0 \u{e6}",
        ] {
            let text = format!("v=0\r\nc=IN IP4 192.0.2.44\r\nm=audio 5004 RTP/AVP 0\r\n{bad}\r\n");
            let err = SessionDescription::parse(text.as_bytes()).err();
            assert_eq!(
                err,
                Some(ParseError::MalformedMediaLine { index: 1 }),
                "{bad}"
            );
        }
        let texts = [
            ParseError::TooLarge.to_string(),
            ParseError::NotSdp.to_string(),
            ParseError::TooManyMediaLines.to_string(),
            ParseError::MalformedMediaLine { index: 1 }.to_string(),
            NegotiationError::NoAudio.to_string(),
            NegotiationError::UnsupportedTransport.to_string(),
            NegotiationError::NoCommonCodec.to_string(),
            NegotiationError::StreamRejected.to_string(),
        ];
        for text in texts {
            assert!(!text.contains("192.0.2"), "{text}");
            assert!(!text.is_empty());
        }
    }

    /// Random bytes, and corpus files mutated byte- and line-wise, never panic the reader
    /// or the negotiation; whatever kald answers is SDP it can read back.
    #[test]
    fn no_panic_on_random_or_mutated_input() {
        let seeds: Vec<Vec<u8>> = corpus().into_iter().map(|(_, b)| b).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(0x6b61_6c64);
        const ALPHABET: &[u8] = b"vocstmab=: /\r\n0123456789.-IPN4AV*";
        let (mut parsed, mut answered) = (0, 0);
        for _ in 0..5_000 {
            let mut input = match rng.random_range(0..10) {
                0 => (0..rng.random_range(0..400))
                    .map(|_| rng.random())
                    .collect(),
                1 => (0..rng.random_range(0..400))
                    .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                    .collect(),
                _ => seeds[rng.random_range(0..seeds.len())].clone(),
            };
            for _ in 0..rng.random_range(0..8) {
                mutate(&mut rng, &mut input, &seeds);
            }
            let Ok(desc) = SessionDescription::parse(&input) else {
                continue;
            };
            parsed += 1;
            let _ = accept_answer(&[Pcma, Pcmu], &desc);
            let mut local = local();
            local.codecs = match rng.random_range(0..3) {
                0 => vec![],
                1 => vec![Pcmu],
                _ => DEFAULT_CODECS.to_vec(),
            };
            if let Ok(neg) = answer(&desc, &local) {
                answered += 1;
                let _ = neg.is_hold();
                let sdp = neg.answer.expect("answer").bytes;
                let back = SessionDescription::parse(&sdp).expect("kald reads its own answer");
                assert_eq!(back.media.len(), desc.media.len());
            }
        }
        // The loop must reach the negotiation, not only the reader's refusals.
        assert!(
            parsed > 2_000 && answered > 1_000,
            "{parsed} parsed, {answered} answered"
        );
    }

    fn mutate(rng: &mut ChaCha8Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let len = input.len();
        match rng.random_range(0..7) {
            0 if len > 0 => input[rng.random_range(0..len)] = rng.random(),
            1 if len > 0 => {
                let at = rng.random_range(0..len);
                let end = (at + rng.random_range(1..40)).min(len);
                input.drain(at..end);
            }
            2 => {
                let at = rng.random_range(0..=len);
                let junk: Vec<u8> = (0..rng.random_range(1..20)).map(|_| rng.random()).collect();
                input.splice(at..at, junk);
            }
            3 => {
                // Splice in a line of another corpus file.
                let other = &seeds[rng.random_range(0..seeds.len())];
                let lines: Vec<&[u8]> = other.split(|&b| b == b'\n').collect();
                let line = lines[rng.random_range(0..lines.len())];
                let at = rng.random_range(0..=len);
                input.splice(at..at, line.iter().copied().chain(*b"\n"));
            }
            4 => {
                // Shuffle lines.
                let mut lines: Vec<Vec<u8>> =
                    input.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                for i in (1..lines.len()).rev() {
                    lines.swap(i, rng.random_range(0..=i));
                }
                *input = lines.join(&b'\n');
            }
            5 if len > 0 => {
                // Replace a digit run with a big or odd number.
                let at = rng.random_range(0..len);
                let numbers: [&[u8]; 6] = [
                    b"0",
                    b"65535",
                    b"65536",
                    b"255",
                    b"18446744073709551616",
                    b"-1",
                ];
                let n = numbers[rng.random_range(0..numbers.len())];
                input.splice(at..at, n.iter().copied());
            }
            _ => {
                if len > 0 {
                    let at = rng.random_range(0..len);
                    input.truncate(at);
                }
            }
        }
    }
}
