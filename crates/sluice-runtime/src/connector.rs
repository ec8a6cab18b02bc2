//! Source and sink traits, and the registry through which the runtime builds them from a
//! [`TableSpec`]. Connectors live in `sluice-connectors`; the binary hands the registry in.
//!
//! Checkpoints (see [`crate::checkpoint`]): a source reports its position ([`Source::position`]) at
//! the points where it calls [`SourceContext::checkpoint_point`] and gets it back in
//! [`SourceInit::restored`]; a sink pre-commits at each barrier, commits when the checkpoint is
//! complete, and on recovery commits what the restored checkpoint had pre-committed and discards the
//! rest ([`Sink::restore`]): Flink's two-phase-commit sink.

use crate::checkpoint::coordinator::{Event, Release, TaskLink};
use crate::checkpoint::{StatePiece, StateWriter};
use crate::exchange::ChainHead;
use crate::metrics::TableMetrics;
use crate::watermark::{Piece, WatermarkGenerator};
use sluice_common::{Barrier, SluiceError, StreamBatch, TableSpec, Watermark};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Rows per batch sources aim for.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// What a connector is told when it creates the subtasks of a source.
#[derive(Debug, Clone)]
pub struct SourceInit {
    /// How many subtasks to create.
    pub parallelism: usize,
    /// Indices of the connector columns to produce, in this order (`None`: all).
    pub projection: Option<Vec<usize>>,
    pub settings: BTreeMap<String, String>,
    /// When resuming from a checkpoint: each subtask's [`Source::position`] as it was then.
    pub restored: Option<Vec<Vec<u8>>>,
    /// Most rows per emitted batch ([`DEFAULT_BATCH_ROWS`]; tests use tiny batches so that
    /// checkpoints fall between rows).
    pub batch_rows: usize,
}

/// What a sink subtask is told when it is created.
#[derive(Debug, Clone)]
pub struct SinkInit {
    pub subtask: usize,
    pub parallelism: usize,
    pub settings: BTreeMap<String, String>,
    /// Checkpoints are on: make output visible only when a checkpoint completes (two-phase commit).
    pub checkpointing: bool,
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
    /// Reads until the input ends or [`SourceContext::should_stop`]; calls
    /// [`SourceContext::checkpoint_point`] after each emitted batch.
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), SluiceError>;

    /// Where the subtask is: enough to resume right after the last batch it emitted (file offsets,
    /// Kafka offsets, an LSN), handed back through [`SourceInit::restored`].
    fn position(&self) -> Vec<u8>;
}

/// A sink subtask. Without checkpoints only `write_batch` and `finish` are called.
#[async_trait::async_trait]
pub trait Sink: Send {
    async fn write_batch(&mut self, batch: StreamBatch) -> Result<(), SluiceError>;

    /// A checkpoint barrier arrived: make what was written since the last one durable but not yet
    /// visible (pre-commit) and return what recovery needs to commit or abort it.
    async fn pre_commit(&mut self, _checkpoint_id: u64) -> Result<Vec<u8>, SluiceError> {
        Ok(Vec::new())
    }

    /// Checkpoint `checkpoint_id` is complete: make everything pre-committed up to it visible.
    /// Must be idempotent (recovery may repeat it).
    async fn commit(&mut self, _checkpoint_id: u64) -> Result<(), SluiceError> {
        Ok(())
    }

    /// Resuming from a checkpoint: `state` is what [`Sink::pre_commit`] returned for it. Commit
    /// what it pre-committed (the checkpoint is complete) and abort anything written after it.
    async fn restore(&mut self, _state: &[u8]) -> Result<(), SluiceError> {
        Ok(())
    }

    /// End of input: flush and close (and, with checkpoints on, commit what is left).
    async fn finish(&mut self) -> Result<(), SluiceError>;
}

/// A source subtask's side of the checkpoint protocol.
pub(crate) struct SourceCheckpoints {
    pub(crate) link: TaskLink,
    /// The source's index among state-bearing operators.
    pub(crate) op: usize,
    /// The newest checkpoint this subtask took part in.
    pub(crate) taken: u64,
}

/// Handed to [`Source::run`]: emit batches, count what was read and skipped, watch for shutdown.
pub struct SourceContext {
    pub(crate) head: ChainHead,
    pub(crate) watermarks: Option<WatermarkGenerator>,
    pub metrics: Arc<TableMetrics>,
    pub(crate) stop: watch::Receiver<bool>,
    pub subtask: usize,
    pub parallelism: usize,
    pub(crate) checkpoints: Option<SourceCheckpoints>,
    /// Test hook `SLUICE_TEST_STOP_AFTER_BATCHES`: request a stop after this many batches.
    pub(crate) stop_after: Option<(u64, crate::engine::Shutdown)>,
    pub(crate) batches: u64,
    /// Per-split watermark maxima of the restored checkpoint.
    pub(crate) restored_splits: std::collections::HashMap<u32, i64>,
}

impl SourceContext {
    /// Sends a batch down the chain. Returns `Err` if the pipeline failed downstream; the source should stop.
    pub async fn emit(&mut self, batch: StreamBatch) -> Result<(), SluiceError> {
        self.emit_from(batch, None).await
    }

    async fn emit_from(&mut self, batch: StreamBatch, split_of: Option<&[u32]>) -> Result<(), SluiceError> {
        self.metrics.add_read(batch.num_rows());
        self.batches += 1;
        if let Some((n, shutdown)) = &self.stop_after {
            if self.batches >= *n {
                shutdown.trigger();
            }
        }
        let Some(gen) = &mut self.watermarks else {
            return self.head.push(batch).await;
        };
        let pieces = match split_of {
            None => gen.process(batch)?,
            Some(splits) => gen.process_splits(batch, splits)?,
        };
        for piece in pieces {
            match piece {
                Piece::Rows(b) => self.head.push(b).await?,
                Piece::Watermark(w) => self.head.watermark(w).await?,
            }
        }
        Ok(())
    }

    /// As [`SourceContext::emit`] for a source that reads several splits (Kafka partitions):
    /// row `i` came from split `split_of[i]`, and watermarks are generated per split (the
    /// minimum over the splits the source registered with [`SourceContext::add_split`]).
    pub async fn emit_splits(&mut self, batch: StreamBatch, split_of: &[u32]) -> Result<(), SluiceError> {
        self.emit_from(batch, Some(split_of)).await
    }

    /// A split (Kafka partition) this subtask reads from now on: it holds the watermark back
    /// until it has data or is idle for the table's idle timeout.
    pub fn add_split(&mut self, split: u32) {
        if let Some(g) = &mut self.watermarks {
            let restored = self.restored_splits.get(&split).copied();
            g.add_split(split, restored);
        }
    }

    /// A split this subtask no longer reads (a partition revoked in a rebalance).
    pub fn remove_split(&mut self, split: u32) {
        if let Some(g) = &mut self.watermarks {
            g.remove_split(split);
        }
    }

    /// Unbounded sources call this while waiting for data: after the table's idle timeout the
    /// subtask is marked idle, so it stops holding back the watermark downstream.
    pub async fn tick(&mut self) -> Result<(), SluiceError> {
        if self.watermarks.as_mut().is_some_and(|g| g.became_idle()) {
            self.head.idle().await?;
        }
        Ok(())
    }

    /// The subtask has no input at all for now (a Kafka subtask without partitions): idle at
    /// once, so it does not hold back the watermark downstream; data makes it active again.
    pub async fn idle_now(&mut self) -> Result<(), SluiceError> {
        if self.watermarks.as_mut().is_some_and(|g| g.mark_idle()) {
            self.head.idle().await?;
        }
        Ok(())
    }

    /// A point where [`Source::position`] describes exactly the batches emitted so far: takes part
    /// in a checkpoint if one was requested, and commits a chained sink's completed checkpoints.
    /// `position` is only called when a checkpoint is taken.
    pub async fn checkpoint_point(&mut self, position: impl FnOnce() -> Vec<u8>) -> Result<(), SluiceError> {
        let Some(cp) = &self.checkpoints else { return Ok(()) };
        let requested = *cp.link.trigger.borrow();
        if requested > cp.taken {
            self.take_checkpoint(requested, position()).await?;
        }
        self.commit_completed().await
    }

    async fn take_checkpoint(&mut self, id: u64, position: Vec<u8>) -> Result<(), SluiceError> {
        let started = Instant::now();
        let mut w = StateWriter::new();
        match &self.watermarks {
            Some(g) => {
                w.bool(true);
                let (current, emitted) = g.state();
                w.i64(current);
                w.i64(emitted);
                let splits = g.split_state();
                w.len(splits.len());
                for (s, v) in splits {
                    w.u64(s as u64);
                    w.i64(v);
                }
            }
            None => w.bool(false),
        }
        w.bytes(&position);
        let cp = self.checkpoints.as_mut().expect("checked by the caller");
        cp.taken = id;
        let piece = StatePiece { op: cp.op, subtask: self.subtask, bytes: w.finish() };
        self.head.barrier(Barrier { checkpoint_id: id }, vec![piece], started).await
    }

    async fn commit_completed(&mut self) -> Result<(), SluiceError> {
        let Some(cp) = &self.checkpoints else { return Ok(()) };
        let completed = *cp.link.completed.borrow();
        if let Some(id) = self.head.commit(completed).await? {
            let _ = cp.link.events.send(Event::Committed { id });
        }
        Ok(())
    }

    /// End of this subtask's input (or a stop request). Without checkpoints: the watermark jumps to
    /// the maximum so every window and join completes (as in Flink for bounded input, and for a
    /// drained stop), then end-of-stream. With checkpoints: at the end of input the same watermark,
    /// then the subtask waits, answering checkpoints, until the coordinator's last checkpoint is
    /// complete; a stop keeps windows open (they are in the savepoint) and sends nothing more.
    pub(crate) async fn finish(&mut self, source: &mut dyn Source) -> Result<(), SluiceError> {
        let stopped = self.should_stop();
        if self.checkpoints.is_none() {
            self.head.watermark(Watermark::MAX).await?;
            return self.head.end().await;
        }
        if !stopped {
            self.head.watermark(Watermark::MAX).await?;
        }
        let mut link = self.checkpoints.as_ref().expect("checked above").link.clone();
        let _ = link.events.send(Event::SourceDone { stopped });
        loop {
            let release = *link.release.borrow();
            match release {
                Release::End => return self.head.end().await,
                // The run is torn down once every sink committed the savepoint.
                Release::Exit => return std::future::pending().await,
                Release::Hold => {}
            }
            let position = source.position();
            self.checkpoint_point(move || position).await?;
            let gone = tokio::select! {
                r = link.trigger.changed() => r.is_err(),
                r = link.completed.changed() => r.is_err(),
                r = link.release.changed() => r.is_err(),
            };
            // The coordinator is gone: it released the sources first, unless the run is failing.
            if gone && *link.release.borrow() == Release::Hold {
                return Err(SluiceError::internal(crate::exchange::PEER_STOPPED));
            }
        }
    }

    /// The watermark restored with the source's position: sent first, so downstream operators
    /// see the same event time as before the checkpoint.
    pub(crate) async fn resume_watermark(&mut self) -> Result<(), SluiceError> {
        if let Some(emitted) = self.watermarks.as_ref().map(|g| g.state().1).filter(|&e| e > i64::MIN) {
            self.head.watermark(Watermark(emitted)).await?;
        }
        Ok(())
    }

    /// The newest checkpoint this subtask took part in (`None`: checkpointing is off). Sources
    /// that report progress elsewhere (Kafka offset commits) pair it with the position they gave.
    pub fn checkpoint_taken(&self) -> Option<u64> {
        self.checkpoints.as_ref().map(|cp| cp.taken)
    }

    /// The newest complete checkpoint (`None`: checkpointing is off; `Some(0)`: none yet).
    pub fn checkpoint_completed(&self) -> Option<u64> {
        self.checkpoints.as_ref().map(|cp| *cp.link.completed.borrow())
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
