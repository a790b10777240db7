//! The call handling (the SIP endpoint's transaction user).
//!
//! Until the media engine and the IVR exist, an incoming call is refused with
//! 480 Temporarily Unavailable after it was routed to its entry point, so a carrier retries or
//! fails over rather than hearing silence.

use std::time::Instant;

use kald_sip::endpoint::{Endpoint, Event};

/// Tracks the calls the endpoint hands over.
pub(crate) struct Calls {
    offered: u64,
}

impl Calls {
    pub(crate) fn new() -> Self {
        Self { offered: 0 }
    }

    /// React to one endpoint event.
    pub(crate) fn handle(&mut self, now: Instant, endpoint: &mut Endpoint, event: Event) {
        match event {
            Event::Incoming {
                call,
                entry_point,
                trunk,
                ..
            } => {
                self.offered += 1;
                let span = tracing::info_span!("call", call = %call);
                let _g = span.enter();
                tracing::info!(%entry_point, %trunk, "incoming call; no media engine yet, refusing with 480");
                endpoint.reject(now, call, 480);
            }
            Event::Ended { call, reason } => {
                tracing::info!(call = %call, ?reason, "call ended");
            }
            other => tracing::debug!(event = ?std::mem::discriminant(&other), "call event"),
        }
    }
}
