//! Runs a [`sluice_plan::StreamGraph`] in-process. Tasks are tokio tasks, one per subtask of each
//! chain of operators; they talk over bounded channels carrying [`sluice_common::Message`]s, so a
//! slow sink slows its sources (backpressure). Operators and connectors are small traits.

pub mod checkpoint;
pub mod connector;
pub mod engine;
pub mod exchange;
pub mod metrics;
pub mod operator;
pub mod operators;
pub mod rejects;
pub mod state;
pub mod versions;
pub mod watermark;

pub use checkpoint::{CheckpointStore, Checkpointing, PlanIdentity};
pub use connector::{ConnectorRegistry, Sink, SinkInit, Source, SourceContext, SourceInit, DEFAULT_BATCH_ROWS};
pub use engine::{run_graph, RunOutcome, Shutdown};
pub use metrics::{Metrics, OperatorCounts, OperatorMetrics, StateGauge, TableMetrics};
pub use operator::Operator;
