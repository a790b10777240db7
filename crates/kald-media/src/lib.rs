//! Media for kald: SDP offer/answer, RTP sessions, G.711, DTMF, prompts, bridging and
//! recording. No I/O: sessions take packets and the time, and return packets to send.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod prompt;
pub mod recorder;
pub mod rtp;
pub mod sdp;
