//! Moving messages between tasks. A task's [`ChainHead`] runs its chained operators and hands the
//! result to its tail: a sink, or [`Output`]s that route batches to downstream subtasks (forward,
//! round-robin or by key hash) and broadcast watermarks, barriers and end-of-stream. An [`InputGate`]
//! merges a task's input channels, combining watermarks (the minimum over inputs) and counting
//! barriers and ends.

use crate::checkpoint::coordinator::Event;
use crate::checkpoint::StatePiece;
use crate::connector::Sink;
use crate::metrics::TableMetrics;
use crate::operator::Operator;
use datafusion::arrow::array::UInt32Array;
use datafusion::common::hash_utils::create_hashes;
use datafusion::physical_expr::PhysicalExpr;
use sluice_common::{Barrier, Message, SluiceError, StreamBatch, TableSpec, Watermark};
use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::mpsc;

/// Message of the error a task gets when a task it exchanges data with is gone (because that one
/// failed): a consequence, never the error reported to the user when a real one exists.
pub(crate) const PEER_STOPPED: &str = "a connected task stopped";

fn closed() -> SluiceError {
    SluiceError::internal(PEER_STOPPED)
}

pub(crate) enum Route {
    Forward,
    Rebalance { next: usize },
    Hash { keys: Vec<Arc<dyn PhysicalExpr>>, hashes: Vec<u64> },
}

/// One outgoing edge of a subtask.
pub(crate) struct Output {
    pub(crate) senders: Vec<mpsc::Sender<Message>>,
    pub(crate) route: Route,
}

/// Fixed seed: the same key goes to the same subtask in every process (scale-out relies on it).
const HASH_SEED: u64 = 0x005e_ed51;

impl Output {
    async fn send_batch(&mut self, batch: StreamBatch) -> Result<(), SluiceError> {
        match &mut self.route {
            Route::Forward => self.senders[0].send(Message::Batch(batch)).await.map_err(|_| closed()),
            Route::Rebalance { next } => {
                let i = *next % self.senders.len();
                *next = next.wrapping_add(1);
                self.senders[i].send(Message::Batch(batch)).await.map_err(|_| closed())
            }
            Route::Hash { keys, hashes } => {
                let n = self.senders.len();
                if n == 1 {
                    return self.senders[0].send(Message::Batch(batch)).await.map_err(|_| closed());
                }
                let arrays = keys
                    .iter()
                    .map(|k| k.evaluate(&batch.data).and_then(|v| v.into_array(batch.num_rows())))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| SluiceError::internal(format!("evaluating exchange keys: {e}")))?;
                hashes.clear();
                hashes.resize(batch.num_rows(), 0);
                let state = foldhash::fast::FixedState::with_seed(HASH_SEED);
                create_hashes(&arrays, &state, hashes)
                    .map_err(|e| SluiceError::internal(format!("hashing keys: {e}")))?;
                let mut parts: Vec<Vec<u32>> = vec![Vec::new(); n];
                for (row, h) in hashes.iter().enumerate() {
                    parts[(*h % n as u64) as usize].push(row as u32);
                }
                for (p, idx) in parts.into_iter().enumerate() {
                    if idx.is_empty() {
                        continue;
                    }
                    let part = if idx.len() == batch.num_rows() {
                        batch.clone()
                    } else {
                        batch.take(&UInt32Array::from(idx))?
                    };
                    self.senders[p].send(Message::Batch(part)).await.map_err(|_| closed())?;
                }
                Ok(())
            }
        }
    }

    async fn broadcast(&mut self, m: Message) -> Result<(), SluiceError> {
        for s in &self.senders {
            s.send(m.clone()).await.map_err(|_| closed())?;
        }
        Ok(())
    }
}

pub(crate) enum Tail {
    Sink { sink: Box<dyn Sink>, metrics: Arc<TableMetrics>, spec: Arc<TableSpec> },
    Outputs(Vec<Output>),
}

/// The operators of one task, in chain order, and where their output goes.
pub struct ChainHead {
    pub(crate) ops: Vec<Box<dyn Operator>>,
    pub(crate) tail: Tail,
    pub(crate) checkpoint: Option<TaskCheckpoint>,
}

/// A task's part in checkpoints: where its state goes and what it last committed.
pub(crate) struct TaskCheckpoint {
    pub(crate) subtask: usize,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    /// For each operator of the chain, its index among state-bearing operators.
    pub(crate) ops: Vec<Option<usize>>,
    /// The sink's index among state-bearing operators, when the tail is a sink.
    pub(crate) sink: Option<usize>,
    /// The newest checkpoint the sink committed.
    pub(crate) committed: u64,
}

impl ChainHead {
    pub(crate) async fn push(&mut self, batch: StreamBatch) -> Result<(), SluiceError> {
        let out = self.run_from(0, vec![batch])?;
        self.emit(out).await
    }

    /// A batch from input `input` (the edge index) of the chain's first operator.
    pub(crate) async fn push_from(&mut self, input: usize, batch: StreamBatch) -> Result<(), SluiceError> {
        if input == 0 || self.ops.is_empty() {
            return self.push(batch).await;
        }
        let mut out = Vec::new();
        let op = &mut self.ops[0];
        op.process_input(input, batch, &mut out).map_err(|e| e.in_operator(op.name().to_string()))?;
        let out = self.run_from(1, out)?;
        self.emit(out).await
    }

    pub(crate) async fn idle(&mut self) -> Result<(), SluiceError> {
        if let Tail::Outputs(outputs) = &mut self.tail {
            for o in outputs {
                o.broadcast(Message::Idle).await?;
            }
        }
        Ok(())
    }

    fn run_from(&mut self, start: usize, mut batches: Vec<StreamBatch>) -> Result<Vec<StreamBatch>, SluiceError> {
        for op in &mut self.ops[start..] {
            if batches.is_empty() {
                break;
            }
            let mut next = Vec::with_capacity(batches.len());
            for b in batches {
                op.process_batch(b, &mut next).map_err(|e| e.in_operator(op.name().to_string()))?;
            }
            batches = next;
        }
        Ok(batches)
    }

    async fn emit(&mut self, batches: Vec<StreamBatch>) -> Result<(), SluiceError> {
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
            match &mut self.tail {
                Tail::Sink { sink, metrics, spec } => {
                    metrics.add_written(b.num_rows());
                    sink.write_batch(b)
                        .await
                        .map_err(|e| e.redacted(spec).in_operator(format!("sink '{}'", spec.name)))?;
                }
                Tail::Outputs(outputs) => {
                    let n = outputs.len();
                    for (i, o) in outputs.iter_mut().enumerate() {
                        if i + 1 == n {
                            o.send_batch(b).await?;
                            break;
                        }
                        o.send_batch(b.clone()).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs `hook` on each operator in order; what operator i emits flows through operators i+1...
    async fn cascade<F>(&mut self, mut hook: F) -> Result<(), SluiceError>
    where
        F: FnMut(&mut dyn Operator, &mut Vec<StreamBatch>) -> Result<(), SluiceError>,
    {
        for i in 0..self.ops.len() {
            let mut out = Vec::new();
            let op = &mut self.ops[i];
            hook(op.as_mut(), &mut out).map_err(|e| e.in_operator(op.name().to_string()))?;
            let out = self.run_from(i + 1, out)?;
            self.emit(out).await?;
        }
        Ok(())
    }

    pub(crate) async fn watermark(&mut self, wm: Watermark) -> Result<(), SluiceError> {
        self.cascade(|op, out| op.on_watermark(wm, out)).await?;
        if let Tail::Outputs(outputs) = &mut self.tail {
            for o in outputs {
                o.broadcast(Message::Watermark(wm)).await?;
            }
        }
        Ok(())
    }

    /// Checkpoint barrier `b` passed: snapshot every operator, pre-commit the sink (or forward the
    /// barrier), and acknowledge to the coordinator with `pieces` (the source's position, if any).
    pub(crate) async fn barrier(
        &mut self,
        b: Barrier,
        mut pieces: Vec<StatePiece>,
        started: std::time::Instant,
    ) -> Result<(), SluiceError> {
        let Some(cp) = &self.checkpoint else {
            return Err(SluiceError::internal("a checkpoint barrier reached a task without checkpoints"));
        };
        for (op, index) in self.ops.iter_mut().zip(&cp.ops) {
            let state = op.snapshot().map_err(|e| e.in_operator(op.name().to_string()))?;
            match (state, index) {
                (Some(bytes), Some(op)) => pieces.push(StatePiece { op: *op, subtask: cp.subtask, bytes }),
                (None, _) => {}
                (Some(_), None) => {
                    return Err(SluiceError::internal(format!("operator {} has state but no state slot", op.name())))
                }
            }
        }
        let mut sync = started.elapsed();
        match &mut self.tail {
            Tail::Sink { sink, spec, .. } => {
                let handle = sink
                    .pre_commit(b.checkpoint_id)
                    .await
                    .map_err(|e| e.redacted(spec).in_operator(format!("sink '{}'", spec.name)))?;
                sync = started.elapsed();
                if let Some(op) = cp.sink {
                    pieces.push(StatePiece { op, subtask: cp.subtask, bytes: handle });
                }
            }
            Tail::Outputs(outputs) => {
                for o in outputs {
                    o.broadcast(Message::Barrier(b)).await?;
                }
            }
        }
        let _ = cp.events.send(Event::Ack { id: b.checkpoint_id, pieces, sync });
        Ok(())
    }

    /// Commits the sink up to checkpoint `completed` when it has not yet; returns the id committed.
    pub(crate) async fn commit(&mut self, completed: u64) -> Result<Option<u64>, SluiceError> {
        let (Some(cp), Tail::Sink { sink, spec, .. }) = (&mut self.checkpoint, &mut self.tail) else {
            return Ok(None);
        };
        if completed <= cp.committed {
            return Ok(None);
        }
        sink.commit(completed).await.map_err(|e| e.redacted(spec).in_operator(format!("sink '{}'", spec.name)))?;
        cp.committed = completed;
        Ok(Some(completed))
    }

    pub(crate) fn has_sink(&self) -> bool {
        matches!(self.tail, Tail::Sink { .. })
    }

    pub(crate) async fn end(&mut self) -> Result<(), SluiceError> {
        self.cascade(|op, out| op.on_end(out)).await?;
        match &mut self.tail {
            Tail::Sink { sink, spec, .. } => {
                sink.finish().await.map_err(|e| e.redacted(spec).in_operator(format!("sink '{}'", spec.name)))
            }
            Tail::Outputs(outputs) => {
                for o in outputs {
                    o.broadcast(Message::End).await?;
                }
                Ok(())
            }
        }
    }
}

pub(crate) enum GateEvent {
    /// A batch and the index of the edge it came in on.
    Batch(usize, StreamBatch),
    Watermark(Watermark),
    /// Every live input is idle.
    Idle,
    /// Delivered once every live input has passed the barrier; inputs that passed it are not read
    /// until then (aligned checkpoints).
    Barrier(Barrier),
    End,
    /// An input closed without end-of-stream: its task failed. The task must not finish its output.
    UpstreamFailed,
}

/// Merges the input channels of one subtask.
pub(crate) struct InputGate {
    inputs: Vec<Option<mpsc::Receiver<Message>>>,
    /// The edge (operator input) each channel belongs to.
    edges: Vec<usize>,
    watermarks: Vec<i64>,
    idle: Vec<bool>,
    /// The gate told downstream it is idle.
    idle_sent: bool,
    current: i64,
    /// For each checkpoint in flight, the inputs that delivered its barrier.
    barriers: HashMap<u64, HashSet<usize>>,
    /// Inputs not read until the checkpoint in flight is aligned: they delivered its barrier, and
    /// what follows belongs after the snapshot.
    blocked: Vec<bool>,
    next: usize,
}

impl InputGate {
    pub(crate) fn new(inputs: Vec<(usize, mpsc::Receiver<Message>)>) -> Self {
        let n = inputs.len();
        let edges = inputs.iter().map(|(e, _)| *e).collect();
        InputGate {
            inputs: inputs.into_iter().map(|(_, r)| Some(r)).collect(),
            edges,
            watermarks: vec![i64::MIN; n],
            idle: vec![false; n],
            idle_sent: false,
            current: i64::MIN,
            barriers: HashMap::new(),
            blocked: vec![false; n],
            next: 0,
        }
    }

    fn live(&self) -> usize {
        self.inputs.iter().filter(|i| i.is_some()).count()
    }

    /// The next event; `End` once every input has ended.
    pub(crate) async fn next(&mut self) -> GateEvent {
        loop {
            if self.live() == 0 {
                return GateEvent::End;
            }
            let (i, msg) = poll_fn(|cx| {
                let n = self.inputs.len();
                for k in 0..n {
                    let i = (self.next + k) % n;
                    if self.blocked[i] {
                        continue;
                    }
                    if let Some(rx) = &mut self.inputs[i] {
                        if let Poll::Ready(m) = rx.poll_recv(cx) {
                            self.next = (i + 1) % n;
                            return Poll::Ready((i, m));
                        }
                    }
                }
                Poll::Pending
            })
            .await;
            match msg {
                Some(Message::Batch(b)) => {
                    self.idle[i] = false;
                    self.idle_sent = false;
                    return GateEvent::Batch(self.edges[i], b);
                }
                Some(Message::Watermark(w)) => {
                    self.idle[i] = false;
                    self.idle_sent = false;
                    self.watermarks[i] = self.watermarks[i].max(w.0);
                    if let Some(wm) = self.advance() {
                        return GateEvent::Watermark(wm);
                    }
                }
                Some(Message::Idle) => {
                    self.idle[i] = true;
                    if let Some(wm) = self.advance() {
                        return GateEvent::Watermark(wm);
                    }
                    let all_idle = (0..self.inputs.len()).all(|k| self.inputs[k].is_none() || self.idle[k]);
                    if all_idle && !self.idle_sent {
                        self.idle_sent = true;
                        return GateEvent::Idle;
                    }
                }
                Some(Message::Barrier(b)) => {
                    self.barriers.entry(b.checkpoint_id).or_default().insert(i);
                    self.blocked[i] = true;
                    if let Some(b) = self.complete_barrier() {
                        return GateEvent::Barrier(b);
                    }
                }
                Some(Message::End) => {
                    self.inputs[i] = None;
                    self.watermarks[i] = i64::MAX;
                    if self.live() > 0 {
                        if let Some(b) = self.complete_barrier() {
                            return GateEvent::Barrier(b);
                        }
                        if let Some(wm) = self.advance() {
                            return GateEvent::Watermark(wm);
                        }
                    }
                }
                // The sender was dropped without End: the upstream task failed.
                None => return GateEvent::UpstreamFailed,
            }
        }
    }

    /// The oldest checkpoint whose barrier every live input has delivered, if any.
    fn complete_barrier(&mut self) -> Option<Barrier> {
        let live: Vec<usize> = (0..self.inputs.len()).filter(|&i| self.inputs[i].is_some()).collect();
        let id =
            self.barriers.iter().filter(|(_, seen)| live.iter().all(|i| seen.contains(i))).map(|(id, _)| *id).min()?;
        self.barriers.remove(&id);
        for (k, b) in self.blocked.iter_mut().enumerate() {
            // Inputs that delivered a later barrier stay blocked (not expected: one checkpoint at a time).
            *b = self.barriers.values().any(|seen| seen.contains(&k));
        }
        Some(Barrier { checkpoint_id: id })
    }

    /// The combined watermark is the minimum over live, active inputs (ended inputs count as the
    /// maximum); returns it when it moved forward.
    fn advance(&mut self) -> Option<Watermark> {
        let min = (0..self.watermarks.len())
            .filter(|&k| !self.idle[k] || self.inputs[k].is_none())
            .map(|k| self.watermarks[k])
            .min()?;
        if min > self.current {
            self.current = min;
            Some(Watermark(min))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(n: usize) -> (Vec<mpsc::Sender<Message>>, InputGate) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(8)).unzip();
        (txs, InputGate::new(rxs.into_iter().enumerate().collect()))
    }

    #[tokio::test]
    async fn the_watermark_is_the_minimum_and_idle_inputs_do_not_hold_it_back() {
        let (txs, mut g) = gate(2);
        txs[0].send(Message::Watermark(Watermark(100))).await.unwrap();
        txs[1].send(Message::Watermark(Watermark(50))).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Watermark(Watermark(50))));
        // Input 1 goes idle: input 0 alone decides.
        txs[1].send(Message::Idle).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Watermark(Watermark(100))));
        txs[0].send(Message::Watermark(Watermark(200))).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Watermark(Watermark(200))));
        // Data from the idle input makes it count again; the watermark never goes back.
        txs[1].send(Message::Watermark(Watermark(150))).await.unwrap();
        txs[0].send(Message::Watermark(Watermark(300))).await.unwrap();
        txs[1].send(Message::Watermark(Watermark(250))).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Watermark(Watermark(250))));
        // Every input idle: the gate says so downstream once.
        txs[0].send(Message::Idle).await.unwrap();
        txs[1].send(Message::Idle).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Idle));
    }

    #[tokio::test]
    async fn a_barrier_holds_back_its_input_until_every_input_delivered_it() {
        let (txs, mut g) = gate(2);
        let batch = || {
            Message::Batch(StreamBatch::append_only(datafusion::arrow::array::RecordBatch::new_empty(Arc::new(
                datafusion::arrow::datatypes::Schema::empty(),
            ))))
        };
        let barrier = Message::Barrier(Barrier { checkpoint_id: 1 });
        // Input 0: barrier, then a row after it. Input 1: a row before its barrier.
        txs[0].send(barrier.clone()).await.unwrap();
        txs[0].send(batch()).await.unwrap();
        txs[1].send(batch()).await.unwrap();
        txs[1].send(barrier).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Batch(1, _)), "input 1's row comes before the snapshot");
        assert!(matches!(g.next().await, GateEvent::Barrier(Barrier { checkpoint_id: 1 })));
        assert!(matches!(g.next().await, GateEvent::Batch(0, _)), "input 0's row after the barrier comes after it");
        // An input that ends while another holds a barrier completes the alignment.
        txs[1].send(Message::Barrier(Barrier { checkpoint_id: 2 })).await.unwrap();
        txs[0].send(Message::End).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Barrier(Barrier { checkpoint_id: 2 })));
    }

    #[tokio::test]
    async fn an_ended_input_counts_as_the_maximum_and_batches_carry_their_input() {
        let (txs, mut g) = gate(2);
        let batch = StreamBatch::append_only(datafusion::arrow::array::RecordBatch::new_empty(Arc::new(
            datafusion::arrow::datatypes::Schema::empty(),
        )));
        txs[1].send(Message::Batch(batch)).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Batch(1, _)));
        txs[0].send(Message::Watermark(Watermark(7))).await.unwrap();
        txs[1].send(Message::End).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Watermark(Watermark(7))));
        txs[0].send(Message::Watermark(Watermark::MAX)).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::Watermark(Watermark::MAX)));
        txs[0].send(Message::End).await.unwrap();
        assert!(matches!(g.next().await, GateEvent::End));
    }
}
