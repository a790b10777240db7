//! `kald flow graph`: the flow as a Mermaid flowchart and a Graphviz DOT graph, for reviews.

use std::fmt::Write as _;

use crate::flow::{Flow, Kind, Node};

/// The flow as `(mermaid, dot)` text. Decisions (hours, menu, branch) are diamonds, places
/// where the call leaves the flow (queue, transfer, hangup) are rounded.
pub fn graph(flow: &Flow) -> (String, String) {
    (mermaid(flow), dot(flow))
}

/// What a node does, in a few words for its box.
fn detail(node: &Node) -> String {
    let list = |p: &[String]| p.join(", ");
    match &node.kind {
        Kind::Branch { field, .. } => format!("on {field}"),
        Kind::Collect(c) => {
            let what = if c.validator.is_some() {
                "CPR"
            } else {
                "digits"
            };
            format!("{what}, {} tries", c.retries + 1)
        }
        Kind::Consent(c) => format!("{} = yes, {} = no", c.yes, c.no),
        Kind::Goto { .. } => String::new(),
        Kind::Hangup { prompts } => list(prompts),
        Kind::Hours { .. } => "opening hours".to_owned(),
        Kind::Menu(m) => list(&m.prompts),
        Kind::Message { team, .. } => format!("message for {team}"),
        Kind::Play {
            prompts, notice, ..
        } => match notice {
            Some(_) => format!("{} (notice)", list(prompts)),
            None => list(prompts),
        },
        Kind::Queue(q) => format!(
            "queue {}{}",
            q.queue,
            q.topic
                .as_ref()
                .map(|t| format!(", topic {t}"))
                .unwrap_or_default()
        ),
        Kind::Set { field, value, .. } => format!("{field} = {value}"),
        Kind::Transfer { target, .. } => format!("to {target}"),
    }
}

fn label(node: &Node) -> (String, String) {
    let detail = node.description.clone().unwrap_or_else(|| detail(node));
    let head = format!("{} ({})", node.id, node.kind.name());
    (head, detail)
}

fn is_decision(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Hours { .. } | Kind::Menu(_) | Kind::Branch { .. }
    )
}

fn mermaid(flow: &Flow) -> String {
    let esc = |s: &str| s.replace('"', "#quot;");
    let mut out = String::from("flowchart TD\n");
    out.push_str("  start((start))\n");
    for (i, node) in flow.nodes.iter().enumerate() {
        let (head, detail) = label(node);
        let text = if detail.is_empty() {
            esc(&head)
        } else {
            format!("{}<br/>{}", esc(&head), esc(&detail))
        };
        let (open, close) = if node.kind.is_exit() {
            ("([\"", "\"])")
        } else if is_decision(&node.kind) {
            ("{\"", "\"}")
        } else {
            ("[\"", "\"]")
        };
        let _ = writeln!(out, "  n{i}{open}{text}{close}");
    }
    let _ = writeln!(out, "  start --> n{}", flow.start.0);
    for (i, node) in flow.nodes.iter().enumerate() {
        for e in node.kind.edges() {
            if e.label.is_empty() {
                let _ = writeln!(out, "  n{i} --> n{}", e.to.0);
            } else {
                let _ = writeln!(out, "  n{i} -->|\"{}\"| n{}", esc(&e.label), e.to.0);
            }
        }
    }
    out
}

fn dot(flow: &Flow) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!("digraph \"{}\" {{\n", esc(&flow.name));
    out.push_str("  rankdir=TB;\n  node [shape=box, fontname=\"sans-serif\"];\n");
    out.push_str("  start [shape=circle, label=\"start\"];\n");
    for node in &flow.nodes {
        let (head, detail) = label(node);
        let text = if detail.is_empty() {
            esc(&head)
        } else {
            format!("{}\\n{}", esc(&head), esc(&detail))
        };
        let shape = if node.kind.is_exit() {
            ", shape=box, style=rounded"
        } else if is_decision(&node.kind) {
            ", shape=diamond"
        } else {
            ""
        };
        let _ = writeln!(out, "  \"{}\" [label=\"{text}\"{shape}];", esc(&node.id));
    }
    let _ = writeln!(out, "  start -> \"{}\";", esc(flow.start()));
    for node in &flow.nodes {
        for e in node.kind.edges() {
            let Some(to) = flow.node(e.to) else { continue };
            let label = if e.label.is_empty() {
                String::new()
            } else {
                format!(" [label=\"{}\"]", esc(&e.label))
            };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\"{label};",
                esc(&node.id),
                esc(&to.id)
            );
        }
    }
    out.push_str("}\n");
    out
}
