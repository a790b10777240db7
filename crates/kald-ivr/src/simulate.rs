//! `kald flow simulate`: runs a flow on a simulated clock with scripted keys and returns the
//! lines to print. Prompts finish at once (their length is unknown here); when the keys run
//! out, or at a `,` in the script, the flow's next timeout fires.

use core::fmt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Zoned;

use crate::flow::Flow;
use crate::interp::{Action, Input, Interpreter, Outcome};

/// How long the simulated caller takes for each key press.
const KEY_INTERVAL: Duration = Duration::from_secs(1);
/// A bound on simulation steps, so a broken flow cannot hang the terminal.
const MAX_STEPS: usize = 10_000;

/// Prompt texts by name, from `prompts.tsv` (`name<TAB>text`, `#` comments).
#[derive(Clone, Debug, Default)]
pub struct PromptTexts(BTreeMap<String, String>);

impl PromptTexts {
    /// Parses `prompts.tsv`; lines without a tab, blank lines and `#` lines are skipped.
    pub fn parse_tsv(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| l.split_once('\t'))
                .map(|(name, text)| (name.trim().to_owned(), text.trim().to_owned()))
                .collect(),
        )
    }

    /// The text of a prompt, if known.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Options for [`simulate`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SimOptions {
    /// Print the CPR number and the keys typed for it (`--show-cpr`); otherwise they are hidden
    /// and the CPR is only "accepted" or "rejected".
    pub show_cpr: bool,
    /// Texts to print beside prompt names.
    pub prompt_texts: PromptTexts,
}

/// What a simulation printed and how the call ended.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Transcript {
    /// The lines to print, in order, outcome last.
    pub lines: Vec<String>,
    /// The outcome (its `Debug` redacts the CPR).
    pub outcome: Outcome,
    /// Every action the interpreter asked for, in order.
    pub actions: Vec<Action>,
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Runs `flow` as a call answered at `start`, pressing `keys` (`0`-`9`, `*`, `#`; `,` waits for
/// the next timeout; spaces and `-` are ignored). `origin` is any instant (the CLI passes
/// `Instant::now()`); only the differences to it matter. The simulation ends when the call
/// reaches a queue, is transferred or hung up.
pub fn simulate(
    flow: Arc<Flow>,
    origin: Instant,
    start: &Zoned,
    keys: &str,
    options: &SimOptions,
) -> Transcript {
    let mut sim = Sim {
        call: Interpreter::new(flow),
        now: origin,
        wall: start.clone(),
        lines: Vec::new(),
        actions: Vec::new(),
        printed_nodes: 0,
        options,
    };
    let mut keys = keys.chars().filter(|c| !c.is_whitespace() && *c != '-');
    sim.call.handle(sim.now, &sim.wall.clone(), Input::Answered);
    let mut prompt_pending = false;
    let mut ended = false;
    for _ in 0..MAX_STEPS {
        sim.print_nodes();
        while let Some(action) = sim.call.poll_action() {
            match &action {
                Action::Play { .. } => prompt_pending = true,
                Action::StopPlayback => prompt_pending = false,
                Action::Enqueue { .. } | Action::Hangup | Action::Transfer { .. } => ended = true,
                _ => {}
            }
            sim.print_action(&action);
            sim.actions.push(action);
        }
        if ended || sim.call.is_finished() {
            break;
        }
        if prompt_pending {
            prompt_pending = false;
            sim.call
                .handle(sim.now, &sim.wall.clone(), Input::PromptFinished);
            continue;
        }
        match keys.next() {
            Some(',') | None => {}
            Some(key) => {
                sim.advance(KEY_INTERVAL);
                let shown =
                    if sim.call.digits_are_sensitive() && !options.show_cpr && key.is_ascii_digit()
                    {
                        "a digit (hidden)".to_owned()
                    } else {
                        key.to_string()
                    };
                sim.line(format!("caller presses {shown}"));
                sim.call
                    .handle(sim.now, &sim.wall.clone(), Input::Digit(key));
                continue;
            }
        }
        let Some(at) = sim.call.poll_timeout() else {
            sim.line("the flow waits for nothing more".to_owned());
            break;
        };
        let waited = at.saturating_duration_since(sim.now);
        sim.advance(waited);
        sim.line(format!("no key for {}: timeout", seconds(waited)));
        sim.call.handle_timeout(sim.now, &sim.wall.clone());
    }
    sim.print_nodes();
    let outcome = sim.call.outcome().clone();
    sim.print_outcome(&outcome);
    Transcript {
        lines: sim.lines,
        outcome,
        actions: sim.actions,
    }
}

struct Sim<'o> {
    call: Interpreter,
    now: Instant,
    wall: Zoned,
    lines: Vec<String>,
    actions: Vec<Action>,
    printed_nodes: usize,
    options: &'o SimOptions,
}

impl Sim<'_> {
    fn advance(&mut self, by: Duration) {
        self.now = self.now.checked_add(by).unwrap_or(self.now);
        if let Ok(span) = jiff::SignedDuration::try_from(by) {
            if let Ok(w) = self.wall.checked_add(span) {
                self.wall = w;
            }
        }
    }

    fn line(&mut self, text: String) {
        let clock = self.wall.strftime("%H:%M:%S");
        self.lines.push(format!("[{clock}] {text}"));
    }

    fn print_nodes(&mut self) {
        let path = self.call.outcome().path.clone();
        let flow = Arc::clone(self.call.flow());
        for id in path.iter().skip(self.printed_nodes) {
            let kind = flow
                .nodes
                .iter()
                .find(|n| &n.id == id)
                .map_or("?", |n| n.kind.name());
            let extra = match (kind, &self.call.outcome().opening) {
                ("hours", Some(opening)) => format!(": {opening}"),
                _ => String::new(),
            };
            self.line(format!("node {id} ({kind}){extra}"));
        }
        self.printed_nodes = path.len();
    }

    fn print_action(&mut self, action: &Action) {
        match action {
            Action::Play {
                prompts, sensitive, ..
            } => {
                if *sensitive && !self.options.show_cpr {
                    self.line(format!(
                        "  play read-back of the typed number and {} more prompt(s) (hidden)",
                        prompts.iter().filter(|p| !is_digit_prompt(p)).count()
                    ));
                    return;
                }
                for p in prompts {
                    let text = match self.options.prompt_texts.get(p) {
                        Some(t) => format!("  play {p}: \"{t}\""),
                        None => format!("  play {p}"),
                    };
                    self.line(text);
                }
            }
            Action::StopPlayback => self.line("  (playback stopped by a key)".to_owned()),
            Action::Enqueue {
                queue,
                topic,
                hold_music,
                max_wait,
                announce_every,
                priority,
            } => {
                let mut text = format!("→ queue {queue} (topic {topic}, priority {priority}");
                if let Some(h) = hold_music {
                    text.push_str(&format!(", hold music {h}"));
                }
                if let Some(a) = announce_every {
                    text.push_str(&format!(", position every {}", seconds(*a)));
                }
                if let Some(m) = max_wait {
                    text.push_str(&format!(", max wait {}", seconds(*m)));
                }
                text.push(')');
                self.line(text);
            }
            Action::Hangup => self.line("→ hang up".to_owned()),
            Action::LeaveQueue => self.line("→ leaves the queue (waited too long)".to_owned()),
            Action::RecordMessage { team, max_len } => self.line(format!(
                "→ records a message for {team} (up to {}; # ends)",
                seconds(*max_len)
            )),
            Action::StopRecording => self.line("→ message recording stopped".to_owned()),
            Action::Transfer { target } => self.line(format!("→ transfer to {target}")),
        }
    }

    fn print_outcome(&mut self, o: &Outcome) {
        let none = || "-".to_owned();
        self.lines.push("outcome:".to_owned());
        self.lines.push(format!("  path: {}", o.path.join(" → ")));
        self.lines.push(format!(
            "  opening hours: {}",
            o.opening.as_ref().map_or_else(none, ToString::to_string)
        ));
        self.lines.push(format!(
            "  consent: {}",
            o.consent
                .map_or_else(|| "not asked".to_owned(), |c| c.to_string())
        ));
        let tries = |n: u32| {
            if n == 1 {
                "1 try".to_owned()
            } else {
                format!("{n} tries")
            }
        };
        let cpr = match (&o.cpr, o.cpr_attempts) {
            (_, 0) => "not asked".to_owned(),
            (Some(cpr), n) if self.options.show_cpr => {
                format!("accepted: {} ({})", cpr.expose_dashed(), tries(n))
            }
            (Some(_), n) => format!("accepted ({})", tries(n)),
            (None, n) => format!("rejected ({})", tries(n)),
        };
        self.lines.push(format!("  CPR: {cpr}"));
        let choices: Vec<String> = o
            .menu_choices
            .iter()
            .map(|(node, key)| format!("{key} in {node}"))
            .collect();
        if !choices.is_empty() {
            self.lines.push(format!("  menu: {}", choices.join(", ")));
        }
        self.lines
            .push(format!("  topic: {}", o.topic.clone().unwrap_or_else(none)));
        self.lines
            .push(format!("  queue: {}", o.queue.clone().unwrap_or_else(none)));
        if let Some(t) = &o.transfer {
            self.lines.push(format!("  transfer: {t}"));
        }
        if let Some(t) = &o.message_team {
            self.lines.push(format!("  message for: {t}"));
        }
        self.lines.push(format!(
            "  ended by: {}",
            o.ended_by
                .map_or_else(|| "still in the flow".to_owned(), |e| e.to_string())
        ));
    }
}

fn is_digit_prompt(name: &str) -> bool {
    name == "you-entered" || name.starts_with("digit-")
}

/// `8s`, `1m 30s`, `500ms`.
fn seconds(d: Duration) -> String {
    jiff::SignedDuration::try_from(d)
        .map(|s| format!("{s:#}"))
        .unwrap_or_else(|_| format!("{d:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_texts_from_tsv() {
        let t = PromptTexts::parse_tsv("# c\nwelcome\tVelkommen.\n\nbad line\nmenu\tTryk 1.\n");
        assert_eq!(t.get("welcome"), Some("Velkommen."));
        assert_eq!(t.get("menu"), Some("Tryk 1."));
        assert_eq!(t.get("bad line"), None);
    }

    #[test]
    fn durations_print_friendly() {
        assert_eq!(seconds(Duration::from_secs(8)), "8s");
        assert_eq!(seconds(Duration::from_secs(90)), "1m 30s");
    }
}
