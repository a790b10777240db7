//! A simulated clock and caller around one [`Interpreter`]: no sleeping, time jumps.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_methods
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Zoned;
use kald_ivr::{Action, Flow, Input, Interpreter, Outcome};

/// The crate's folder, for paths to fixtures and the real flow files.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default flow, loaded and checked like the server does (prompts beside it).
pub fn hovednummer() -> Arc<Flow> {
    let path = crate_dir().join("../../ivr-flows/hovednummer.toml");
    match kald_ivr::load_file(&path) {
        Ok(flow) => Arc::new(flow),
        Err(diags) => panic!(
            "{}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// A flow from text, which must check without errors.
pub fn flow(text: &str) -> Arc<Flow> {
    match kald_ivr::load_str("test", text) {
        Ok(flow) => Arc::new(flow),
        Err(diags) => panic!(
            "{}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Copenhagen wall time from `2026-11-23T09:15`.
pub fn cph(local: &str) -> Zoned {
    format!("{local}[Europe/Copenhagen]").parse().unwrap()
}

/// One call on a simulated clock.
pub struct Call {
    pub ivr: Interpreter,
    pub origin: Instant,
    pub now: Instant,
    pub wall: Zoned,
}

impl Call {
    pub fn new(flow: Arc<Flow>, wall: Zoned) -> Self {
        // One real instant as the simulated clock's origin; only differences matter.
        let origin = Instant::now();
        Self {
            ivr: Interpreter::new(flow),
            origin,
            now: origin,
            wall,
        }
    }

    /// Seconds since the call started, on the simulated clock.
    pub fn elapsed(&self) -> Duration {
        self.now - self.origin
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.ivr.poll_action()).collect()
    }

    pub fn input(&mut self, input: Input) -> Vec<Action> {
        let wall = self.wall.clone();
        self.ivr.handle(self.now, &wall, input);
        self.drain()
    }

    pub fn answer(&mut self) -> Vec<Action> {
        self.input(Input::Answered)
    }

    pub fn prompt_done(&mut self) -> Vec<Action> {
        self.input(Input::PromptFinished)
    }

    /// Advances the clock without firing anything.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall = self
            .wall
            .checked_add(jiff::SignedDuration::try_from(by).unwrap())
            .unwrap();
    }

    /// Presses keys, `gap` apart (the first after `gap`), firing timers that fall due between.
    pub fn press(&mut self, keys: &str, gap: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        for key in keys.chars() {
            out.extend(self.wait(gap));
            out.extend(self.input(Input::Digit(key)));
        }
        out
    }

    /// Lets `by` pass, firing every timer that falls due at its own instant.
    pub fn wait(&mut self, by: Duration) -> Vec<Action> {
        let end = self.now + by;
        let mut out = Vec::new();
        while let Some(at) = self.ivr.poll_timeout().filter(|&at| at <= end) {
            let step = at.saturating_duration_since(self.now);
            self.advance(step);
            let wall = self.wall.clone();
            self.ivr.handle_timeout(self.now, &wall);
            out.extend(self.drain());
        }
        let rest = end.saturating_duration_since(self.now);
        self.advance(rest);
        out
    }

    /// Jumps to the next timer and fires it.
    pub fn fire_next(&mut self) -> Vec<Action> {
        let at = self.ivr.poll_timeout().expect("a timer is running");
        let step = at.saturating_duration_since(self.now);
        self.wait(step)
    }

    pub fn outcome(&self) -> &Outcome {
        self.ivr.outcome()
    }
}

/// Shorthand for a `Play` action.
pub fn play(prompts: &[&str], barge_in: bool) -> Action {
    Action::Play {
        prompts: prompts.iter().map(|p| (*p).to_owned()).collect(),
        barge_in,
        sensitive: false,
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
