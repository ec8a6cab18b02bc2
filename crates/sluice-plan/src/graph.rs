//! The stream graph: nodes (sources, operators, sinks) joined by edges that say how rows move between
//! subtasks. Invariant: nodes are in topological order (inputs have smaller ids).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;
use sluice_common::{SinkCaps, SourceCaps, TableSpec};
use std::sync::Arc;

pub type NodeId = usize;

#[derive(Debug, Clone)]
pub enum Partitioning {
    /// Subtask i feeds subtask i (same parallelism): the runtime chains such nodes into one task.
    Forward,
    /// Rows go to the subtask chosen by the hash of these key expressions.
    Hash(Vec<Arc<dyn PhysicalExpr>>),
    /// Round-robin, used where parallelism changes without keys.
    Rebalance,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub from: NodeId,
    pub partitioning: Partitioning,
}

#[derive(Debug, Clone)]
pub struct AggregateSpec {
    /// GROUP BY expressions over the input.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub key_names: Vec<String>,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// Optional `FILTER (WHERE ...)` per aggregate.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    pub aggregate_names: Vec<String>,
    /// The input carries retractions, so accumulators must retract.
    pub input_updating: bool,
    /// `table.exec.mini-batch.enabled`: fold the rows of one batch per key before emitting.
    pub mini_batch: bool,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Source {
        spec: TableSpec,
        caps: SourceCaps,
        /// Indices of the connector columns the source produces (all when `None`): projection pushdown.
        projection: Option<Vec<usize>>,
    },
    /// Computes one column per expression.
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        display: Vec<String>,
    },
    Filter {
        predicate: Arc<dyn PhysicalExpr>,
        display: String,
    },
    /// Merges its inputs.
    Union,
    /// Non-windowed GROUP BY: an updating result keyed by the group keys.
    GroupAggregate(AggregateSpec),
    Sink {
        spec: TableSpec,
        caps: SinkCaps,
    },
}

impl NodeKind {
    pub fn label(&self) -> &'static str {
        match self {
            NodeKind::Source { .. } => "Source",
            NodeKind::Project { .. } => "Project",
            NodeKind::Filter { .. } => "Filter",
            NodeKind::Union => "Union",
            NodeKind::GroupAggregate(_) => "GroupAggregate",
            NodeKind::Sink { .. } => "Sink",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub kind: NodeKind,
    pub inputs: Vec<Edge>,
    pub parallelism: usize,
    pub schema: SchemaRef,
    /// The output carries `-U`, `+U`, `-D` rows.
    pub updating: bool,
    /// Which INSERT (0-based, file order) the node belongs to.
    pub insert: usize,
}

#[derive(Debug, Clone, Default)]
pub struct StreamGraph {
    pub nodes: Vec<Node>,
}

impl StreamGraph {
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        self.nodes.iter().filter(|n| n.inputs.iter().any(|e| e.from == id)).map(|n| n.id).collect()
    }

    pub fn sinks(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Sink { .. }))
    }
}
