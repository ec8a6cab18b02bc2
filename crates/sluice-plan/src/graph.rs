//! The stream graph: nodes (sources, operators, sinks) joined by edges that say how rows move between
//! subtasks. Invariant: nodes are in topological order (inputs have smaller ids).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::PhysicalSortExpr;
use sluice_common::{SinkCaps, SourceCaps, TableSpec, WindowSpec};
use std::sync::Arc;
use std::time::Duration;

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
    /// `table.exec.state.ttl`: a key untouched this long is forgotten.
    pub state_ttl: Option<Duration>,
}

/// Watermark generation of a source subtask (`WATERMARK FOR col AS expr`), evaluated on each batch
/// the connector emits, before the batch leaves the source.
#[derive(Debug, Clone)]
pub struct SourceWatermark {
    /// The rowtime, over the columns the connector produces.
    pub rowtime: Arc<dyn PhysicalExpr>,
    /// The watermark expression, over the same columns.
    pub watermark: Arc<dyn PhysicalExpr>,
    /// Columns passed on after the watermark is computed (`None`: all); the connector may produce
    /// extra columns only the watermark needs.
    pub keep: Option<Vec<usize>>,
    /// `scan.watermark.idle-timeout` / `table.exec.source.idle-timeout`: a subtask without data this
    /// long stops holding back the watermark.
    pub idle_timeout: Option<Duration>,
    /// `column AS expr` as written, for `explain`.
    pub display: String,
}

/// Where each GROUP BY column of a window aggregation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSlot {
    /// `keys[i]`.
    Key(usize),
    WindowStart,
    WindowEnd,
    WindowTime,
}

#[derive(Debug, Clone)]
pub struct WindowAggSpec {
    pub window: WindowSpec,
    /// Non-window GROUP BY expressions.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Output GROUP BY columns in order.
    pub slots: Vec<GroupSlot>,
    /// Input columns holding the pane bounds (from a `WindowAssign` in pane mode).
    pub pane_end: usize,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    pub key_names: Vec<String>,
    pub aggregate_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TopNSpec {
    pub partition_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub order: Vec<PhysicalSortExpr>,
    /// Rows kept per partition.
    pub limit: usize,
    /// Window Top-N: input columns of `window_start` and `window_end`; rows are ranked once the
    /// watermark passes the window's end and the output is append-only.
    pub window: Option<(usize, usize)>,
    pub input_updating: bool,
    /// `table.exec.state.ttl`: partitions untouched this long are forgotten.
    pub state_ttl: Option<Duration>,
    /// Deduplication keeping the last row by a time column (`ORDER BY ts DESC ... = 1`): a row with
    /// the same time replaces the kept one, as Flink's deduplication does (ranking keeps the earlier).
    pub later_wins_ties: bool,
    pub display: String,
}

/// `agg(...) OVER (PARTITION BY k ORDER BY rowtime ROWS|RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)`.
#[derive(Debug, Clone)]
pub struct OverAggSpec {
    pub partition_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The ORDER BY rowtime column.
    pub time: usize,
    /// `ROWS` (each row sees the rows before it) or `RANGE` (rows with the same time see each other).
    pub rows: bool,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    pub state_ttl: Option<Duration>,
    pub display: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalJoinType {
    Inner,
    Left,
}

#[derive(Debug, Clone)]
pub struct TemporalJoinSpec {
    pub left_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Rowtime columns of the probe (left) and versioned (right) inputs.
    pub left_time: usize,
    pub right_time: usize,
    pub join_type: TemporalJoinType,
    /// The versioned side is a deduplicating view (latest row per key by time) that the join applies
    /// itself: a row older than the key's latest version is ignored, an equal time replaces it.
    pub right_dedup: bool,
    pub display: String,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Source {
        spec: TableSpec,
        caps: SourceCaps,
        /// Indices of the connector columns the source produces (all when `None`): projection pushdown.
        projection: Option<Vec<usize>>,
        watermark: Option<SourceWatermark>,
    },
    /// Adds `window_start`, `window_end`, `window_time` from the rowtime column `time`. With `panes`,
    /// one row per input row carrying its pane (for a window aggregation downstream); otherwise one
    /// row per window the row belongs to.
    WindowAssign {
        window: WindowSpec,
        time: usize,
        panes: bool,
    },
    /// Window aggregation: one append-only row per window and key once the watermark passes its end.
    WindowAggregate(WindowAggSpec),
    /// `ROW_NUMBER() OVER (PARTITION BY .. ORDER BY ..) <= N`: Top-N, window Top-N and deduplication.
    TopN(TopNSpec),
    /// `JOIN v FOR SYSTEM_TIME AS OF l.ts`: input 0 probes, input 1 is the versioned table.
    TemporalJoin(TemporalJoinSpec),
    /// OVER aggregation over event time: each row with its aggregates once the watermark passes it.
    OverAggregate(OverAggSpec),
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
    /// Sources, sinks and the operators that keep state between batches.
    pub fn has_state(&self) -> bool {
        !matches!(
            self,
            NodeKind::Project { .. } | NodeKind::Filter { .. } | NodeKind::Union | NodeKind::WindowAssign { .. }
        )
    }

    pub fn label(&self) -> &'static str {
        match self {
            NodeKind::Source { .. } => "Source",
            NodeKind::Project { .. } => "Project",
            NodeKind::Filter { .. } => "Filter",
            NodeKind::Union => "Union",
            NodeKind::GroupAggregate(_) => "GroupAggregate",
            NodeKind::WindowAssign { .. } => "WindowAssign",
            NodeKind::WindowAggregate(_) => "WindowAggregate",
            NodeKind::TopN(s) if s.window.is_some() => "WindowRank",
            NodeKind::TopN(_) => "Rank",
            NodeKind::TemporalJoin(_) => "TemporalJoin",
            NodeKind::OverAggregate(_) => "OverAggregate",
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
    /// `execution.checkpointing.interval` is set: sinks' delivery guarantees hold across failures.
    pub checkpointing: bool,
}

impl StreamGraph {
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        self.nodes.iter().filter(|n| n.inputs.iter().any(|e| e.from == id)).map(|n| n.id).collect()
    }

    pub fn sinks(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Sink { .. }))
    }

    /// The nodes whose subtasks have checkpointed state (sources: positions; sinks: pending commits;
    /// stateful operators), in graph order, each with the line that identifies it in a checkpoint:
    /// what it does, its parallelism and its input and output columns. A checkpoint can be restored
    /// into a plan with the same lines; stateless nodes (projections, filters) may change freely.
    pub fn state_operators(&self) -> Vec<(NodeId, String)> {
        let columns = |s: &SchemaRef| {
            s.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
        };
        self.nodes
            .iter()
            .filter(|n| n.kind.has_state())
            .map(|n| {
                if let NodeKind::Source { spec, .. } = &n.kind {
                    // A position does not depend on the columns read: a query may read more or fewer.
                    let options: Vec<String> =
                        spec.display_options().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let line = format!(
                        "Source: {} [{}] {{{}}} parallelism={}",
                        spec.name,
                        spec.connector,
                        options.join(", "),
                        n.parallelism
                    );
                    return (n.id, line);
                }
                let inputs: Vec<String> =
                    n.inputs.iter().map(|e| format!("[{}]", columns(&self.nodes[e.from].schema))).collect();
                let line = format!(
                    "{} parallelism={} in={} out=[{}]",
                    crate::explain::describe(self, n.id),
                    n.parallelism,
                    inputs.join(""),
                    columns(&n.schema)
                );
                (n.id, line)
            })
            .collect()
    }
}
