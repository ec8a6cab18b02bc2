//! Logical plans -> the physical stream graph that the runtime executes, plus its `explain` text.
//! Pure: no tokio, no I/O. Every operator is described here with DataFusion physical expressions;
//! `sluice-runtime` instantiates them.

pub mod explain;
pub mod graph;
pub mod settings;
mod translate;

pub use graph::{
    AggregateSpec, Edge, GroupSlot, Node, NodeId, NodeKind, OverAggSpec, Partitioning, SourceWatermark, StreamGraph,
    TemporalJoinSpec, TemporalJoinType, TopNSpec, WindowAggSpec,
};
pub use settings::Settings;
pub use translate::build_graph;
