//! `sluice explain`: the stream graph as an indented tree per INSERT, sink first. Each line names the
//! operator, its keys or expressions, its parallelism and, for edges that are not forward (chained),
//! the exchange. Secret option values are masked.

use crate::graph::{Edge, NodeId, NodeKind, Partitioning, StreamGraph};
use std::fmt::Write;

pub fn explain(graph: &StreamGraph) -> String {
    let mut out = String::new();
    for sink in graph.sinks() {
        let _ = writeln!(out, "INSERT #{}", sink.insert + 1);
        render(graph, sink.id, None, "", &mut out);
        out.push('\n');
    }
    out
}

fn partitioning(e: &Edge) -> String {
    match &e.partitioning {
        Partitioning::Forward => "FORWARD".to_string(),
        Partitioning::Rebalance => "REBALANCE".to_string(),
        Partitioning::Hash(keys) if keys.is_empty() => "SINGLETON".to_string(),
        Partitioning::Hash(keys) => {
            format!("HASH[{}]", keys.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "))
        }
    }
}

fn render(graph: &StreamGraph, id: NodeId, via: Option<&Edge>, indent: &str, out: &mut String) {
    let n = &graph.nodes[id];
    let exchange = match via {
        Some(e) if !matches!(e.partitioning, Partitioning::Forward) => {
            format!("-- {} --> ", partitioning(e))
        }
        _ => String::new(),
    };
    let mode = if n.updating { "updating" } else { "append-only" };
    let detail = match &n.kind {
        NodeKind::Source { spec, caps, projection } => format!(
            "Source: {} [{}] {}{}{}",
            spec.name,
            spec.connector,
            options(spec),
            match projection {
                Some(_) => {
                    let names: Vec<&str> = n.schema.fields().iter().map(|f| f.name().as_str()).collect();
                    format!(" columns=[{}]", names.join(", "))
                }
                None => String::new(),
            },
            if caps.bounded { " bounded" } else { " unbounded" }
        ),
        NodeKind::Sink { spec, caps } => format!(
            "Sink: {} [{}] {} accepts {}",
            spec.name,
            spec.connector,
            options(spec),
            if caps.accepts_updates { "updates" } else { "inserts only" }
        ),
        NodeKind::Project { display, .. } => format!("Project: {}", display.join(", ")),
        NodeKind::Filter { display, .. } => format!("Filter: {display}"),
        NodeKind::Union => "Union".to_string(),
        NodeKind::GroupAggregate(a) => {
            format!(
                "GroupAggregate: groupBy=[{}] aggregates=[{}]",
                a.key_names.join(", "),
                a.aggregate_names.join(", ")
            )
        }
    };
    let _ = writeln!(out, "{indent}{exchange}{detail} (parallelism={}, {mode})", n.parallelism);
    let child_indent = format!("{indent}  ");
    for e in &n.inputs {
        render(graph, e.from, Some(e), &child_indent, out);
    }
}

fn options(spec: &sluice_common::TableSpec) -> String {
    let opts: Vec<String> = spec.display_options().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", opts.join(", "))
}
