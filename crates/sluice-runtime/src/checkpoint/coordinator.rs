//! The checkpoint coordinator: one task per run (Flink's `CheckpointCoordinator`). It triggers
//! checkpoints on the interval, one at a time; collects one acknowledgement per task; writes the
//! state and the manifest; announces completion (sinks commit); prunes old checkpoints.
//!
//! Ending: with checkpoints on, a source subtask that ends or is stopped does not send end-of-stream
//! at once; it reports [`Event::SourceDone`] and keeps answering triggers. When every source is done
//! the coordinator takes a last checkpoint: `Final` after bounded input ended (then the sources are
//! released to send end-of-stream and the sinks finish), or `Savepoint` after a stop request (then,
//! once every sink has committed it, the run exits without flushing operator state, and the next
//! run resumes from it).

use super::store::{CheckpointKind, StatePiece};
use super::{CheckpointMetrics, Checkpointing};
use sluice_common::SluiceError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// What tasks tell the coordinator.
#[derive(Debug)]
pub(crate) enum Event {
    /// A task passed barrier `id`: its state pieces and how long snapshotting took.
    Ack { id: u64, pieces: Vec<StatePiece>, sync: Duration },
    /// A source subtask ended (`stopped`: on request, not at the end of its input).
    SourceDone { stopped: bool },
    /// A sink task committed every checkpoint up to `id`.
    Committed { id: u64 },
}

/// What sources do once every source is done and the last checkpoint is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Keep waiting (and answering triggers).
    Hold,
    /// Send end-of-stream: the pipeline finishes normally.
    End,
    /// Stop-with-savepoint: send nothing; the run is torn down.
    Exit,
}

/// The ends of the coordinator's channels that tasks hold.
#[derive(Debug, Clone)]
pub(crate) struct TaskLink {
    pub(crate) events: mpsc::UnboundedSender<Event>,
    /// The newest checkpoint id requested from sources.
    pub(crate) trigger: watch::Receiver<u64>,
    /// The newest complete checkpoint id.
    pub(crate) completed: watch::Receiver<u64>,
    pub(crate) release: watch::Receiver<Release>,
}

/// How the coordinator ended.
#[derive(Debug)]
pub(crate) enum Exit {
    /// The final checkpoint `id` is complete and sources were released to end.
    Ended { id: u64 },
    /// The savepoint `id` is complete and committed; tear the run down.
    Savepoint { location: String },
}

pub(crate) struct Coordinator {
    cfg: Checkpointing,
    tasks: usize,
    sources: usize,
    sink_tasks: usize,
    events: mpsc::UnboundedReceiver<Event>,
    trigger: watch::Sender<u64>,
    completed: watch::Sender<u64>,
    release: watch::Sender<Release>,
    next_id: u64,
    metrics: Arc<CheckpointMetrics>,
}

struct InFlight {
    id: u64,
    kind: CheckpointKind,
    started: Instant,
    acks: usize,
    pieces: Vec<StatePiece>,
    sync: Duration,
}

impl Coordinator {
    /// A coordinator for `tasks` task instances, of which `sources` are source subtasks and
    /// `sink_tasks` end in a sink; checkpoint ids continue after `last_id`.
    pub(crate) fn new(
        cfg: Checkpointing,
        tasks: usize,
        sources: usize,
        sink_tasks: usize,
        last_id: u64,
        metrics: Arc<CheckpointMetrics>,
    ) -> (Self, TaskLink) {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (trigger, trigger_rx) = watch::channel(0);
        let (completed, completed_rx) = watch::channel(0);
        let (release, release_rx) = watch::channel(Release::Hold);
        let link = TaskLink { events: events_tx, trigger: trigger_rx, completed: completed_rx, release: release_rx };
        let c = Coordinator {
            cfg,
            tasks,
            sources,
            sink_tasks,
            events,
            trigger,
            completed,
            release,
            next_id: last_id + 1,
            metrics,
        };
        (c, link)
    }

    fn start(&mut self, kind: CheckpointKind) -> InFlight {
        let id = self.next_id;
        self.next_id += 1;
        tracing::debug!(checkpoint = id, kind = ?kind, "Triggering a checkpoint");
        self.trigger.send_replace(id);
        InFlight { id, kind, started: Instant::now(), acks: 0, pieces: Vec::new(), sync: Duration::ZERO }
    }

    async fn complete(&mut self, f: InFlight) -> Result<(), SluiceError> {
        let written = self
            .cfg
            .store
            .write(f.id, f.kind, &self.cfg.identity, f.pieces)
            .await
            .map_err(|e| SluiceError { message: format!("checkpoint {} failed: {}", f.id, e.message), ..e })?;
        let took = f.started.elapsed();
        self.completed.send_replace(f.id);
        let m = &self.metrics;
        m.completed.fetch_add(1, Ordering::Relaxed);
        m.last_id.store(f.id, Ordering::Relaxed);
        m.last_duration_us.store(took.as_micros() as u64, Ordering::Relaxed);
        m.max_duration_us.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        m.last_bytes.store(written.bytes, Ordering::Relaxed);
        m.last_sync_us.store(f.sync.as_micros() as u64, Ordering::Relaxed);
        tracing::info!(
            checkpoint = f.id,
            kind = ?f.kind,
            bytes = written.bytes,
            files = written.files,
            millis = took.as_millis() as u64,
            sync_millis = f.sync.as_millis() as u64,
            "Checkpoint complete"
        );
        self.cfg.store.prune(f.id, self.cfg.retained).await?;
        Ok(())
    }

    pub(crate) async fn run(mut self) -> Result<Exit, SluiceError> {
        let period = self.cfg.interval.unwrap_or(Duration::from_secs(3600 * 24 * 365));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inflight: Option<InFlight> = None;
        let (mut done, mut stopped) = (0usize, false);
        // The last checkpoint, once triggered, and whether it is complete.
        let mut last: Option<(u64, bool)> = None;
        let mut commits = 0usize;
        loop {
            if done == self.sources && inflight.is_none() && last.is_none() {
                let kind = if stopped { CheckpointKind::Savepoint } else { CheckpointKind::Final };
                let f = self.start(kind);
                last = Some((f.id, false));
                inflight = Some(f);
            }
            if let Some((id, true)) = last {
                if commits >= self.sink_tasks {
                    if stopped {
                        self.release.send_replace(Release::Exit);
                        let location = self.cfg.store.dir().join(format!("chk-{id}")).display().to_string();
                        return Ok(Exit::Savepoint { location });
                    }
                    self.release.send_replace(Release::End);
                    return Ok(Exit::Ended { id });
                }
            }
            tokio::select! {
                _ = ticker.tick(), if inflight.is_none() && last.is_none() => {
                    inflight = Some(self.start(CheckpointKind::Periodic));
                }
                event = self.events.recv() => {
                    let Some(event) = event else {
                        return Err(SluiceError::internal("every task stopped before the last checkpoint"));
                    };
                    match event {
                        Event::Ack { id, pieces, sync } => {
                            let Some(f) = inflight.as_mut().filter(|f| f.id == id) else { continue };
                            f.acks += 1;
                            f.pieces.extend(pieces);
                            f.sync = f.sync.max(sync);
                            if f.acks == self.tasks {
                                let f = inflight.take().expect("checked above");
                                let id = f.id;
                                self.complete(f).await?;
                                if let Some((last_id, complete)) = last.as_mut() {
                                    *complete |= *last_id == id;
                                }
                            }
                        }
                        Event::SourceDone { stopped: s } => {
                            done += 1;
                            stopped |= s;
                        }
                        Event::Committed { id } => {
                            if last.is_some_and(|(last_id, _)| id >= last_id) {
                                commits += 1;
                            }
                        }
                    }
                }
            }
        }
    }
}
