//! Checkpoints: consistent snapshots of every operator's state, every source's position and every
//! sink's pending commits, taken while the pipeline runs (aligned barriers, as Flink's), and the
//! two-phase commit of sinks on top of them. `docs/checkpoints.md` describes the protocol and the
//! on-disk format.
//!
//! The [`coordinator`] asks every source subtask for checkpoint `n` (a `watch`); each source, at a
//! point where its position describes exactly the rows it emitted, snapshots that position and sends
//! `Barrier(n)` down its outputs. A task with several input channels blocks each channel at its
//! barrier until all live channels delivered it, then snapshots its operators (a synchronous copy
//! into bytes), lets its sink pre-commit, forwards the barrier and acknowledges with its state. When
//! every task acknowledged, the coordinator writes the state files and then the manifest (off the
//! processing tasks, so processing goes on while it writes) and announces the checkpoint complete;
//! sinks then commit what they pre-committed for it.

pub mod codec;
pub(crate) mod coordinator;
pub mod store;

pub use codec::{ScalarColumns, StateReader, StateWriter};
pub use store::{CheckpointKind, CheckpointStore, PlanIdentity, Restored, StatePiece};

use sluice_common::SluiceError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a run takes and restores checkpoints.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    pub store: CheckpointStore,
    /// `execution.checkpointing.interval`; `None` restores (when `restore` is set) but takes none.
    pub interval: Option<Duration>,
    /// `execution.checkpointing.num-retained`: complete checkpoints kept.
    pub retained: usize,
    pub(crate) identity: PlanIdentity,
    /// The checkpoint to resume from, checked against `identity` by [`Checkpointing::new`].
    pub(crate) restore: Option<Restored>,
}

impl Checkpointing {
    /// Checkpoints of the plan `identity`, resuming from `restore` when given. A checkpoint of
    /// another plan is refused here, with the operator that changed, before anything runs.
    pub fn new(
        store: CheckpointStore,
        interval: Option<Duration>,
        retained: usize,
        identity: PlanIdentity,
        restore: Option<Restored>,
    ) -> Result<Self, SluiceError> {
        if let Some(r) = &restore {
            if let Some(why) = identity.incompatibility(&r.identity) {
                return Err(SluiceError::user(format!(
                    "cannot resume from {}: the pipeline changed since: {why}",
                    r.location
                )));
            }
        }
        Ok(Checkpointing { store, interval, retained, identity, restore })
    }

    /// The checkpoint the run resumes from.
    pub fn restore(&self) -> Option<&Restored> {
        self.restore.as_ref()
    }
}

/// Counters of the checkpoints of a run, for the summary and benchmarks.
#[derive(Debug, Default)]
pub struct CheckpointMetrics {
    pub completed: AtomicU64,
    pub last_id: AtomicU64,
    /// Trigger to manifest written, of the last checkpoint.
    pub last_duration_us: AtomicU64,
    pub last_bytes: AtomicU64,
    /// The longest time a task spent snapshotting (the synchronous part) in the last checkpoint.
    pub last_sync_us: AtomicU64,
    pub max_duration_us: AtomicU64,
    /// Time to put the restored state back into operators, sources and sinks.
    pub restore_us: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckpointCounts {
    pub completed: u64,
    pub last_id: u64,
    pub last_duration: Duration,
    pub last_bytes: u64,
    pub last_sync: Duration,
    pub max_duration: Duration,
    pub restore: Duration,
}

impl CheckpointMetrics {
    pub fn snapshot(&self) -> CheckpointCounts {
        let us = |a: &AtomicU64| Duration::from_micros(a.load(Ordering::Relaxed));
        CheckpointCounts {
            completed: self.completed.load(Ordering::Relaxed),
            last_id: self.last_id.load(Ordering::Relaxed),
            last_duration: us(&self.last_duration_us),
            last_bytes: self.last_bytes.load(Ordering::Relaxed),
            last_sync: us(&self.last_sync_us),
            max_duration: us(&self.max_duration_us),
            restore: us(&self.restore_us),
        }
    }
}
