//! `graph` draws the flow for reviews, as Mermaid and Graphviz DOT.

mod common;

#[test]
fn default_flow_as_mermaid_and_dot() {
    let flow = common::hovednummer();
    let (mermaid, dot) = kald_ivr::graph(&flow);
    println!("{mermaid}\n{dot}");
    assert!(mermaid.starts_with("flowchart TD\n"));
    assert!(mermaid.contains("start --> n0"));
    assert!(mermaid
        .contains("n0{\"opening-hours (hours)<br/>open, sick reports only, closed or holiday?\"}"));
    assert!(mermaid.contains("-->|\"sick-only\"|"));
    assert!(mermaid
        .contains("([\"sygedagpenge-queue (queue)<br/>queue sygedagpenge, topic sygedagpenge\"])"));
    assert!(dot.starts_with("digraph \"hovednummer\" {"));
    assert!(dot.contains("\"menu\" -> \"sygedagpenge-queue\" [label=\"2\"];"));
    assert!(dot.contains("\"after-cpr\" -> \"sygemelding-queue\" [label=\"sygemelding\"];"));
    assert!(dot.contains("start -> \"opening-hours\";"));
    assert!(dot.trim_end().ends_with('}'));
    // Every node is drawn once.
    for id in flow.node_ids() {
        assert!(dot.contains(&format!("  \"{id}\" [label=")), "{id}");
    }
}

#[test]
fn labels_are_escaped() {
    let flow = common::flow(
        r#"
start = "a"
[nodes.a]
kind = "hangup"
description = "say \"bye\" \\ leave"
"#,
    );
    let (mermaid, dot) = kald_ivr::graph(&flow);
    assert!(mermaid.contains("say #quot;bye#quot;"), "{mermaid}");
    assert!(dot.contains("say \\\"bye\\\" \\\\ leave"), "{dot}");
}
