//! `kald flow …`: the operators' tools for IVR flow files.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use kald_ivr::{PromptTexts, Severity, SimOptions};

use crate::clock::Clock;

/// The flow subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum FlowCommand {
    /// Check flow files; every problem is printed as `file:line:col: message`.
    Check {
        /// Flow files; default: every `*.toml` in `--flows`.
        files: Vec<PathBuf>,
        /// The flow directory (prompts are in its `prompts/`).
        #[arg(long, default_value = "ivr-flows")]
        flows: PathBuf,
    },
    /// Run a flow in the terminal at a chosen time, without a phone.
    Simulate {
        /// The flow file.
        file: PathBuf,
        /// Copenhagen time of the call, e.g. `2026-11-23T09:15` [default: now].
        #[arg(long)]
        at: Option<String>,
        /// Keys the caller presses (`,` waits for a timeout); default: read from standard input.
        #[arg(long)]
        digits: Option<String>,
        /// Print the CPR number typed (it is hidden by default).
        #[arg(long)]
        show_cpr: bool,
    },
    /// Print the flow as a diagram for reviews: Mermaid (default) or Graphviz DOT.
    Graph {
        /// The flow file.
        file: PathBuf,
        /// `mermaid` or `dot`.
        #[arg(long, default_value = "mermaid", value_parser = ["mermaid", "dot"])]
        format: String,
    },
}

/// Run a flow subcommand; `Ok(false)` means the check found errors (exit code 1).
pub(crate) fn run(cmd: FlowCommand) -> anyhow::Result<bool> {
    match cmd {
        FlowCommand::Check { files, flows } => {
            let files = if files.is_empty() {
                flow_files(&flows)?
            } else {
                files
            };
            let diagnostics = kald_ivr::check(&files);
            for d in &diagnostics {
                println!("{d}");
            }
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            let warnings = diagnostics.len() - errors;
            println!(
                "{} file(s) checked: {errors} error(s), {warnings} warning(s)",
                files.len()
            );
            Ok(errors == 0)
        }
        FlowCommand::Simulate {
            file,
            at,
            digits,
            show_cpr,
        } => {
            let flow = load(&file)?;
            let start = Clock::new(at.as_deref())?.now();
            let keys = match digits {
                Some(d) => d,
                None => {
                    eprintln!("Type the keys the caller presses (0-9 * #, ',' waits for a timeout), then Ctrl-D:");
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("cannot read keys from standard input")?;
                    s
                }
            };
            let texts = file
                .parent()
                .map(|d| d.join("prompts").join("prompts.tsv"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| PromptTexts::parse_tsv(&t))
                .unwrap_or_default();
            let mut options = SimOptions::default();
            options.show_cpr = show_cpr;
            options.prompt_texts = texts;
            // The simulation runs on its own clock; only differences to this instant matter.
            let transcript = kald_ivr::simulate(flow, Instant::now(), &start, &keys, &options);
            print!("{transcript}");
            Ok(true)
        }
        FlowCommand::Graph { file, format } => {
            let flow = load(&file)?;
            let (mermaid, dot) = kald_ivr::graph(&flow);
            print!("{}", if format == "dot" { dot } else { mermaid });
            Ok(true)
        }
    }
}

fn load(file: &std::path::Path) -> anyhow::Result<Arc<kald_ivr::Flow>> {
    match kald_ivr::load_file(file) {
        Ok(flow) => Ok(Arc::new(flow)),
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            anyhow::bail!("{} has errors; run `kald flow check` on it", file.display())
        }
    }
}

fn flow_files(dir: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read flow directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
