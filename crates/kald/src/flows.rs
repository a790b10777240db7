//! The IVR flows a running server uses: loaded from the flow directory with their prompts,
//! reloaded when a file changes. A file that fails the check is not loaded; the previous
//! version stays live and the problem is logged as `file:line:col: message`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use kald_ivr::{Flow, FlowSet, LoadOptions, Severity};
use kald_media::prompt::Prompt;

/// Prompts every call may need besides those its flow names.
const BUILT_IN_PROMPTS: &[&str] = &["all-lines-busy", "goodbye", "hold-music"];
/// Prompts of the contact centre (feature codes, queue announcements); a missing one is
/// logged and its step goes on in silence.
const CENTRE_PROMPTS: &[&str] = &[
    "agent-logged-in",
    "agent-logged-out",
    "agent-paused",
    "agent-ready",
    "agent-wrap-up-ended",
    "agent-not-allowed",
    "agent-not-found",
    "listen-in-started",
    "no-agents",
    "transfer-failed",
    "transfer-failed-goodbye",
    "recording-withdrawn",
    "recording-stopped",
    "queue-position",
    "position-1",
    "position-2",
    "position-3",
    "position-4",
    "position-5",
    "position-6",
    "position-7",
    "position-8",
    "position-9",
    "expected-wait",
    "wait-1",
    "wait-2",
    "wait-3",
    "wait-4",
    "wait-5",
    "wait-6",
    "wait-7",
    "wait-8",
    "wait-9",
    "wait-10",
    "wait-more",
];

/// Flows by entry point, and every prompt they name, decoded.
pub(crate) struct Flows {
    dir: PathBuf,
    options: LoadOptions,
    set: FlowSet,
    prompts: HashMap<String, Prompt>,
    stamp: Vec<(PathBuf, Option<SystemTime>)>,
}

impl Flows {
    /// Load every flow in `dir` (prompts in `dir/prompts`). Files with errors are logged and
    /// left out; a missing built-in prompt is an error.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Self> {
        let options = LoadOptions::with_prompt_dir(dir.join("prompts"));
        let (set, diagnostics) = kald_ivr::load_dir_with(dir, &options);
        log_diagnostics(&diagnostics);
        let mut flows = Self {
            dir: dir.to_owned(),
            options,
            set,
            prompts: HashMap::new(),
            stamp: stamp(dir),
        };
        for name in BUILT_IN_PROMPTS {
            flows.load_prompt(name)?;
        }
        for name in CENTRE_PROMPTS {
            if let Err(e) = flows.load_prompt(name) {
                tracing::warn!(error = %format!("{e:#}"), "contact-centre prompt not loaded; that step stays silent");
            }
        }
        flows.load_flow_prompts();
        for (entry, flow) in flows.set.iter() {
            tracing::info!(
                entry_point = entry,
                nodes = flow.node_ids().count(),
                prompts = flow.prompts().len(),
                "flow loaded"
            );
        }
        if flows.set.is_empty() {
            tracing::warn!(dir = %dir.display(), "no flow loaded: every call will be refused");
        }
        Ok(flows)
    }

    /// The flow of an entry point.
    pub(crate) fn get(&self, entry_point: &str) -> Option<Arc<Flow>> {
        self.set.get(entry_point).cloned()
    }

    /// The queues (skills) the loaded flows send calls to.
    pub(crate) fn queues(&self) -> Vec<String> {
        let mut q: Vec<String> = self.set.iter().flat_map(|(_, f)| f.queues()).collect();
        q.sort();
        q.dedup();
        q
    }

    /// A decoded prompt by name.
    pub(crate) fn prompt(&self, name: &str) -> Option<Prompt> {
        self.prompts.get(name).cloned()
    }

    /// Reload if a flow file changed since the last look; calls in progress keep their version.
    pub(crate) fn reload_if_changed(&mut self) {
        let now = stamp(&self.dir);
        if now == self.stamp {
            return;
        }
        self.stamp = now;
        let (set, diagnostics) = self.set.reload(&self.dir, &self.options);
        log_diagnostics(&diagnostics);
        self.set = set;
        self.load_flow_prompts();
        tracing::info!(flows = self.set.len(), "flows reloaded");
    }

    fn load_flow_prompts(&mut self) {
        let names: Vec<String> = self
            .set
            .iter()
            .flat_map(|(_, f)| f.prompts().iter().cloned())
            .collect();
        for name in names {
            if !self.prompts.contains_key(&name) {
                if let Err(e) = self.load_prompt(&name) {
                    tracing::error!(error = %format!("{e:#}"), "prompt not loaded");
                }
            }
        }
    }

    fn load_prompt(&mut self, name: &str) -> anyhow::Result<()> {
        let dir = self.dir.join("prompts");
        let path = ["wav", "flac", "mp3", "ogg"]
            .iter()
            .map(|ext| dir.join(format!("{name}.{ext}")))
            .find(|p| p.exists())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "prompt '{name}': no {name}.wav/.flac/.mp3/.ogg in {}",
                    dir.display()
                )
            })?;
        let prompt = kald_media::prompt::load(&path)
            .map_err(|e| anyhow::anyhow!("cannot load prompt {}: {e}", path.display()))?;
        self.prompts.insert(name.to_owned(), prompt);
        Ok(())
    }
}

fn log_diagnostics(diagnostics: &[kald_ivr::Diagnostic]) {
    for d in diagnostics {
        match d.severity {
            Severity::Error => tracing::error!("{d}"),
            _ => tracing::warn!("{d}"),
        }
    }
}

/// The flow files of `dir` with their modification times.
fn stamp(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mut v: Vec<(PathBuf, Option<SystemTime>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(|p| {
                    let t = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
                    (p, t)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
