//! Operator implementations, one file each, and [`create`] which builds one from a graph node.

mod aggregate;
mod filter;
mod over_aggregate;
mod project;
mod session_window;
mod temporal_join;
mod top_n;
mod window_aggregate;
mod window_assign;

pub use aggregate::GroupAggregate;
pub use filter::Filter;
pub use project::Project;
pub use temporal_join::TemporalJoin;
pub use top_n::TopN;
pub use window_aggregate::WindowAggregate;
pub use window_assign::WindowAssign;

use crate::metrics::Metrics;
use crate::operator::Operator;
use sluice_common::SluiceError;
use sluice_plan::{Node, NodeKind, StreamGraph};

/// The name an operator's counters are reported under, e.g. `WindowAggregate[3]`.
pub fn metrics_name(node: &Node) -> String {
    format!("{}[{}]", node.kind.label(), node.id)
}

/// The operator for a graph node; `None` for sources, sinks and unions (which need none).
pub fn create(graph: &StreamGraph, node: &Node, metrics: &Metrics) -> Result<Option<Box<dyn Operator>>, SluiceError> {
    let input = |i: usize| graph.nodes[node.inputs[i].from].schema.clone();
    let m = || metrics.operator(&metrics_name(node));
    Ok(match &node.kind {
        NodeKind::WindowAssign { window, time, panes } => {
            Some(Box::new(WindowAssign::new(*window, *time, *panes, node.schema.clone(), m())))
        }
        NodeKind::WindowAggregate(spec) if matches!(spec.window.kind, sluice_common::WindowKind::Session { .. }) => {
            Some(Box::new(session_window::SessionWindow::new(spec.clone(), input(0), node.schema.clone(), m())?))
        }
        NodeKind::WindowAggregate(spec) => {
            Some(Box::new(WindowAggregate::new(spec.clone(), input(0), node.schema.clone(), m())?))
        }
        NodeKind::TopN(spec) => Some(Box::new(TopN::new(spec.clone(), input(0), node.schema.clone(), m())?)),
        NodeKind::OverAggregate(spec) => {
            Some(Box::new(over_aggregate::OverAggregate::new(spec.clone(), input(0), node.schema.clone(), m())?))
        }
        NodeKind::TemporalJoin(spec) => {
            Some(Box::new(TemporalJoin::new(spec.clone(), input(0), input(1), node.schema.clone(), m())?))
        }
        NodeKind::Project { exprs, .. } => Some(Box::new(Project::new(exprs.clone(), node.schema.clone()))),
        NodeKind::Filter { predicate, .. } => Some(Box::new(Filter::new(predicate.clone()))),
        NodeKind::GroupAggregate(spec) => Some(Box::new(GroupAggregate::new(spec.clone(), node.schema.clone())?)),
        NodeKind::Source { .. } | NodeKind::Sink { .. } | NodeKind::Union => None,
    })
}
