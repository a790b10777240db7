//! The checked, immutable flow model that calls run on, and the set of flows by entry point.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Zoned;

use crate::diag::Diagnostic;
use crate::hours::{Calendar, Opening};

/// Index of a node in [`Flow::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeIdx(pub(crate) usize);

/// Stands in for a target that does not exist while a broken file is being checked; a loaded
/// [`Flow`] never contains it, and the interpreter treats it as a flow error, never a panic.
pub(crate) const DANGLING: NodeIdx = NodeIdx(usize::MAX);

/// A checked flow for one entry point; shared by calls as `Arc<Flow>` and never changed.
///
/// Build one with [`crate::load_file`], [`crate::load_str`] or [`crate::load_dir`]; a `Flow`
/// exists only if its file passed every check (warnings allowed).
#[derive(Debug)]
pub struct Flow {
    pub(crate) name: String,
    pub(crate) path: Option<PathBuf>,
    pub(crate) description: Option<String>,
    pub(crate) start: NodeIdx,
    pub(crate) nodes: Vec<Node>,
    pub(crate) calendar: Option<Calendar>,
    pub(crate) allowlist: Vec<String>,
    pub(crate) prompts: BTreeSet<String>,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl Flow {
    /// The entry point's name: the file stem (`hovednummer` for `hovednummer.toml`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the flow was loaded from (`None` for [`crate::load_str`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file's `description`, if it has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Every prompt name the flow can play (incl. digit and queue-position prompts it uses),
    /// so the media layer can load them before the first call.
    pub fn prompts(&self) -> &BTreeSet<String> {
        &self.prompts
    }

    /// Warnings found while checking the file; they did not stop it from loading.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The id of the first node.
    pub fn start(&self) -> &str {
        self.node(self.start).map_or("", |n| n.id.as_str())
    }

    /// Node ids in file order.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.id.as_str())
    }

    /// The queues (skills) the flow's `queue` nodes send calls to.
    pub fn queues(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Queue(q) => Some(q.queue.clone()),
                _ => None,
            })
            .collect()
    }

    /// The transfer targets the operators allow (`transfer_allowlist`).
    pub fn transfer_allowlist(&self) -> &[String] {
        &self.allowlist
    }

    /// Whether and how the line is open at `wall`, by the file's `[calendar]` (if it has one).
    pub fn opening_at(&self, wall: &Zoned) -> Option<Opening> {
        self.calendar.as_ref().map(|c| c.opening_at(wall))
    }

    pub(crate) fn node(&self, idx: NodeIdx) -> Option<&Node> {
        self.nodes.get(idx.0)
    }
}

/// The loaded flows by entry point name (file stem); cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct FlowSet {
    flows: BTreeMap<String, Arc<Flow>>,
}

impl FlowSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The flow for an entry point, to hand to a new call's interpreter.
    pub fn get(&self, entry_point: &str) -> Option<&Arc<Flow>> {
        self.flows.get(entry_point)
    }

    /// Adds or replaces the flow under its [`Flow::name`].
    pub fn insert(&mut self, flow: Arc<Flow>) {
        self.flows.insert(flow.name.clone(), flow);
    }

    /// Entry point names and flows, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Flow>)> {
        self.flows.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entry points.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether there are no flows.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// One node of a checked flow.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) description: Option<String>,
    pub(crate) kind: Kind,
}

/// What a `play` node marked as a notice tells the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Who records, why, for how long, how to withdraw (GDPR art. 13): must precede `consent`.
    Recording,
    /// That a message is recorded and how long it is kept: must precede `message`.
    Message,
}

/// A named check on collected digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Validator {
    /// A CPR number: 10 digits, a real birth date with the century rule, never modulus 11.
    Cpr,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Branch {
        field: String,
        cases: Vec<(String, NodeIdx)>,
        otherwise: NodeIdx,
    },
    Collect(Collect),
    Consent(ConsentNode),
    Goto {
        to: NodeIdx,
    },
    Hangup {
        prompts: Vec<String>,
    },
    Hours {
        when: Vec<(String, NodeIdx)>,
    },
    Menu(Menu),
    Message {
        team: String,
        prompts: Vec<String>,
        max_len: Duration,
        next: NodeIdx,
    },
    Play {
        prompts: Vec<String>,
        barge_in: bool,
        notice: Option<Notice>,
        next: NodeIdx,
    },
    Queue(QueueNode),
    Set {
        field: String,
        value: String,
        next: NodeIdx,
    },
    Transfer {
        target: String,
        prompts: Vec<String>,
    },
}

#[derive(Debug)]
pub(crate) struct Menu {
    pub(crate) prompts: Vec<String>,
    pub(crate) barge_in: bool,
    pub(crate) choices: Vec<(char, NodeIdx)>,
    pub(crate) timeout: Duration,
    pub(crate) invalid_prompts: Vec<String>,
    pub(crate) no_input_prompts: Vec<String>,
    pub(crate) retries: u32,
    pub(crate) fallback: NodeIdx,
}

#[derive(Debug)]
pub(crate) struct Collect {
    pub(crate) prompts: Vec<String>,
    pub(crate) barge_in: bool,
    pub(crate) min_digits: usize,
    pub(crate) max_digits: usize,
    pub(crate) timeout: Duration,
    pub(crate) inter_digit_timeout: Duration,
    pub(crate) overall_timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) validator: Option<Validator>,
    pub(crate) invalid_prompts: Vec<String>,
    pub(crate) no_input_prompts: Vec<String>,
    pub(crate) read_back: bool,
    pub(crate) field: Option<String>,
    pub(crate) next: NodeIdx,
    pub(crate) fallback: NodeIdx,
}

#[derive(Debug)]
pub(crate) struct ConsentNode {
    pub(crate) prompts: Vec<String>,
    pub(crate) barge_in: bool,
    pub(crate) yes: char,
    pub(crate) no: char,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) invalid_prompts: Vec<String>,
    pub(crate) yes_prompts: Vec<String>,
    pub(crate) no_prompts: Vec<String>,
    pub(crate) next: NodeIdx,
}

#[derive(Debug)]
pub(crate) struct QueueNode {
    pub(crate) queue: String,
    pub(crate) topic: Option<String>,
    pub(crate) prompts: Vec<String>,
    pub(crate) hold_music: Option<String>,
    pub(crate) announce_every: Option<Duration>,
    pub(crate) priority: u8,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) fallback: Option<NodeIdx>,
}

/// A way from one node to another, labelled for diagrams.
pub(crate) struct Edge {
    pub(crate) label: String,
    pub(crate) to: NodeIdx,
}

impl Kind {
    /// The word operators write in `kind = "…"`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Branch { .. } => "branch",
            Self::Collect(_) => "collect",
            Self::Consent(_) => "consent",
            Self::Goto { .. } => "goto",
            Self::Hangup { .. } => "hangup",
            Self::Hours { .. } => "hours",
            Self::Menu(_) => "menu",
            Self::Message { .. } => "message",
            Self::Play { .. } => "play",
            Self::Queue(_) => "queue",
            Self::Set { .. } => "set",
            Self::Transfer { .. } => "transfer",
        }
    }

    /// Whether the call leaves the flow here (to a queue, a transfer or a hang-up).
    pub(crate) fn is_exit(&self) -> bool {
        matches!(
            self,
            Self::Queue(_) | Self::Transfer { .. } | Self::Hangup { .. }
        )
    }

    /// Every node this one can lead to.
    pub(crate) fn edges(&self) -> Vec<Edge> {
        let e = |label: &str, to: NodeIdx| Edge {
            label: label.to_owned(),
            to,
        };
        match self {
            Self::Branch {
                cases, otherwise, ..
            } => cases
                .iter()
                .map(|(v, to)| e(v, *to))
                .chain([e("otherwise", *otherwise)])
                .collect(),
            Self::Collect(c) => vec![e("valid", c.next), e("fallback", c.fallback)],
            Self::Consent(c) => vec![e("any answer", c.next)],
            Self::Goto { to } => vec![e("", *to)],
            Self::Hangup { .. } | Self::Transfer { .. } => Vec::new(),
            Self::Hours { when } => when.iter().map(|(m, to)| e(m, *to)).collect(),
            Self::Menu(m) => m
                .choices
                .iter()
                .map(|(d, to)| e(&d.to_string(), *to))
                .chain([e("fallback", m.fallback)])
                .collect(),
            Self::Message { next, .. } | Self::Play { next, .. } | Self::Set { next, .. } => {
                vec![e("", *next)]
            }
            Self::Queue(q) => q.fallback.map(|f| e("max wait", f)).into_iter().collect(),
        }
    }
}
