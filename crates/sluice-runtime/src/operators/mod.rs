//! Operator implementations, one file each, and [`create`] which builds one from a graph node.

mod aggregate;
mod filter;
mod project;

pub use aggregate::GroupAggregate;
pub use filter::Filter;
pub use project::Project;

use crate::operator::Operator;
use sluice_common::SluiceError;
use sluice_plan::{Node, NodeKind};

/// The operator for a graph node; `None` for sources, sinks and unions (which need none).
pub fn create(node: &Node) -> Result<Option<Box<dyn Operator>>, SluiceError> {
    Ok(match &node.kind {
        NodeKind::Project { exprs, .. } => Some(Box::new(Project::new(exprs.clone(), node.schema.clone()))),
        NodeKind::Filter { predicate, .. } => Some(Box::new(Filter::new(predicate.clone()))),
        NodeKind::GroupAggregate(spec) => Some(Box::new(GroupAggregate::new(spec.clone(), node.schema.clone())?)),
        NodeKind::Source { .. } | NodeKind::Sink { .. } | NodeKind::Union => None,
    })
}
