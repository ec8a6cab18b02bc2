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
    let mut detail = describe(graph, id);
    if let NodeKind::Sink { caps, .. } = &n.kind {
        detail.push_str(match (graph.checkpointing, caps.exactly_once) {
            (true, true) => " delivery=exactly-once",
            (true, false) => " delivery=at-least-once",
            (false, _) => " delivery=none (checkpointing is off)",
        });
    }
    let _ = writeln!(out, "{indent}{exchange}{detail} (parallelism={}, {mode})", n.parallelism);
    let child_indent = format!("{indent}  ");
    for e in &n.inputs {
        render(graph, e.from, Some(e), &child_indent, out);
    }
}

/// One line describing what node `id` does (no parallelism, no exchange).
pub fn describe(graph: &StreamGraph, id: NodeId) -> String {
    let n = &graph.nodes[id];
    match &n.kind {
        NodeKind::Source { spec, caps, projection, watermark } => format!(
            "Source: {} [{}] {}{}{}{}",
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
            match watermark {
                Some(w) => format!(" watermark=[{}]", w.display),
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
        NodeKind::WindowAssign { window, panes, .. } => {
            format!("WindowAssign: {}{}", window_text(window), if *panes { " (panes)" } else { "" })
        }
        NodeKind::WindowAggregate(a) => format!(
            "WindowAggregate: window={} groupBy=[{}] aggregates=[{}]",
            window_text(&a.window),
            a.key_names.join(", "),
            a.aggregate_names.join(", ")
        ),
        NodeKind::TopN(t) => format!("{}: {}", n.kind.label(), t.display),
        NodeKind::TemporalJoin(j) => format!("TemporalJoin: {}", j.display),
        NodeKind::OverAggregate(o) => format!("OverAggregate: {}", o.display),
        NodeKind::GroupAggregate(a) => {
            format!(
                "GroupAggregate: groupBy=[{}] aggregates=[{}]",
                a.key_names.join(", "),
                a.aggregate_names.join(", ")
            )
        }
    }
}

fn window_text(w: &sluice_common::WindowSpec) -> String {
    use sluice_common::WindowKind;
    let d = |ms: i64| format!("{ms}ms");
    let offset = if w.offset != 0 { format!(", offset={}", d(w.offset)) } else { String::new() };
    match w.kind {
        WindowKind::Tumble { size } => format!("TUMBLE(size={}{offset})", d(size)),
        WindowKind::Hop { slide, size } => format!("HOP(slide={}, size={}{offset})", d(slide), d(size)),
        WindowKind::Cumulate { step, size } => format!("CUMULATE(step={}, size={}{offset})", d(step), d(size)),
        WindowKind::Session { gap } => format!("SESSION(gap={})", d(gap)),
    }
}

fn options(spec: &sluice_common::TableSpec) -> String {
    let opts: Vec<String> = spec.display_options().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", opts.join(", "))
}
