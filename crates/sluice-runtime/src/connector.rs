//! Source and sink traits, and the registry through which the runtime builds them from a
//! [`TableSpec`]. Connectors live in `sluice-connectors`; the binary hands the registry in.

use crate::exchange::ChainHead;
use crate::metrics::TableMetrics;
use crate::watermark::{Piece, WatermarkGenerator};
use sluice_common::{Barrier, SluiceError, StreamBatch, TableSpec, Watermark};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// What a connector is told when it creates the subtasks of a source.
#[derive(Debug, Clone)]
pub struct SourceInit {
    /// How many subtasks to create.
    pub parallelism: usize,
    /// Indices of the connector columns to produce, in this order (`None`: all).
    pub projection: Option<Vec<usize>>,
    pub settings: BTreeMap<String, String>,
}

/// What a sink subtask is told when it is created.
#[derive(Debug, Clone)]
pub struct SinkInit {
    pub subtask: usize,
    pub parallelism: usize,
    pub settings: BTreeMap<String, String>,
}

/// Builds connector instances. Implemented by `sluice-connectors`.
pub trait ConnectorRegistry: Send + Sync {
    /// One source per subtask (`init.parallelism` of them), created together so the connector can
    /// divide its input once.
    fn create_sources(&self, spec: &TableSpec, init: &SourceInit) -> Result<Vec<Box<dyn Source>>, SluiceError>;
    fn create_sink(&self, spec: &TableSpec, init: &SinkInit) -> Result<Box<dyn Sink>, SluiceError>;
}

/// A source subtask: reads its share of the input and emits batches until it ends or is told to stop.
#[async_trait::async_trait]
pub trait Source: Send {
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), SluiceError>;
}

/// A sink subtask.
#[async_trait::async_trait]
pub trait Sink: Send {
    async fn write_batch(&mut self, batch: StreamBatch) -> Result<(), SluiceError>;

    /// Pre-commit point for two-phase commit (the checkpoint issue gives it meaning).
    async fn on_barrier(&mut self, _barrier: Barrier) -> Result<(), SluiceError> {
        Ok(())
    }

    /// End of input: flush and close.
    async fn finish(&mut self) -> Result<(), SluiceError>;
}

/// Handed to [`Source::run`]: emit batches, count what was read and skipped, watch for shutdown.
pub struct SourceContext {
    pub(crate) head: ChainHead,
    pub(crate) watermarks: Option<WatermarkGenerator>,
    pub metrics: Arc<TableMetrics>,
    pub(crate) stop: watch::Receiver<bool>,
    pub subtask: usize,
    pub parallelism: usize,
}

impl SourceContext {
    /// Sends a batch down the chain. Returns `Err` if the pipeline failed downstream; the source should stop.
    pub async fn emit(&mut self, batch: StreamBatch) -> Result<(), SluiceError> {
        self.metrics.add_read(batch.num_rows());
        let Some(gen) = &mut self.watermarks else {
            return self.head.push(batch).await;
        };
        for piece in gen.process(batch)? {
            match piece {
                Piece::Rows(b) => self.head.push(b).await?,
                Piece::Watermark(w) => self.head.watermark(w).await?,
            }
        }
        Ok(())
    }

    /// Unbounded sources call this while waiting for data: after the table's idle timeout the
    /// subtask is marked idle, so it stops holding back the watermark downstream.
    pub async fn tick(&mut self) -> Result<(), SluiceError> {
        if self.watermarks.as_mut().is_some_and(|g| g.became_idle()) {
            self.head.idle().await?;
        }
        Ok(())
    }

    /// End of this subtask's input: the watermark jumps to the maximum so every window and join
    /// completes (as in Flink for bounded input, and for a drained stop), then end-of-stream.
    pub(crate) async fn finish(&mut self) -> Result<(), SluiceError> {
        self.head.watermark(Watermark::MAX).await?;
        self.head.end().await
    }

    /// True once Ctrl-C/SIGTERM (or a failure elsewhere) asked sources to stop; bounded sources
    /// check it between batches, unbounded ones also select on [`SourceContext::stopped`].
    pub fn should_stop(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when the pipeline is asked to stop.
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|s| *s).await;
    }
}
