//! Builds tasks from a [`StreamGraph`] and runs them to the end.
//!
//! Chaining: a node joins its input's task when it has a single forward input of equal parallelism
//! and that input has no other consumer. Every other edge becomes a set of bounded channels, one per
//! (upstream subtask, downstream subtask) pair that the partitioning connects.
//!
//! Ending: bounded sources end by themselves; [`Shutdown::trigger`] (Ctrl-C, SIGTERM) makes every
//! source stop reading, after which end-of-stream flows through and sinks flush: nothing read is lost.
//! A failing task stops the sources and aborts the rest; the first real error is returned.
//!
//! With [`Checkpointing`], a coordinator task takes checkpoints (see [`crate::checkpoint`]), every
//! operator, source and sink is restored from the checkpoint being resumed before it sees a row, and
//! a stop request becomes a stop-with-savepoint.

use crate::checkpoint::coordinator::{Coordinator, Event, Exit};
use crate::checkpoint::{Checkpointing, StateReader};
use crate::connector::{ConnectorRegistry, SinkInit, SourceCheckpoints, SourceContext, SourceInit, DEFAULT_BATCH_ROWS};
use crate::exchange::{ChainHead, GateEvent, InputGate, Output, Route, Tail, TaskCheckpoint, PEER_STOPPED};
use crate::metrics::Metrics;
use crate::operators;
use crate::watermark::WatermarkGenerator;
use sluice_common::{Message, SluiceError};
use sluice_plan::{NodeId, NodeKind, Partitioning, StreamGraph};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// A number from the environment, for test hooks (`SLUICE_TEST_*`, see `docs/checkpoints.md`).
fn test_hook(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).filter(|&n| n > 0)
}

/// A channel into a subtask and the index of the operator input (edge) it feeds.
type GateInput = (usize, mpsc::Receiver<Message>);

/// Capacity of each channel, in messages (batches). Small: backpressure reaches sources quickly.
const CHANNEL_CAPACITY: usize = 8;

/// Asks a running pipeline to stop gracefully.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown { tx: Arc::new(watch::channel(false).0) }
    }
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }
    fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

#[derive(Debug)]
pub struct RunOutcome {
    pub elapsed: Duration,
    /// True when the run ended because of [`Shutdown::trigger`] rather than bounded input ending.
    pub stopped: bool,
    /// With checkpoints, a stop takes a savepoint: where it is.
    pub savepoint: Option<String>,
}

/// A watermark generator's `(current, emitted)` and per-split maxima from a checkpoint.
type GeneratorState = Option<(i64, i64, Vec<(u32, i64)>)>;

/// Splits a restored source state into the watermark generator's part and the connector's position.
fn split_source_state(bytes: &[u8]) -> Result<(GeneratorState, Vec<u8>), SluiceError> {
    let mut r = StateReader::new(bytes);
    let generator = if r.bool()? {
        let (current, emitted) = (r.i64()?, r.i64()?);
        let mut splits = Vec::new();
        for _ in 0..r.len()? {
            splits.push((r.u64()? as u32, r.i64()?));
        }
        Some((current, emitted, splits))
    } else {
        None
    };
    let position = r.bytes()?.to_vec();
    r.finish()?;
    Ok((generator, position))
}

/// Runs the graph until every sink has finished, or the first error.
pub async fn run_graph(
    graph: &StreamGraph,
    registry: Arc<dyn ConnectorRegistry>,
    settings: &BTreeMap<String, String>,
    metrics: &Metrics,
    shutdown: &Shutdown,
    checkpointing: Option<Checkpointing>,
) -> Result<RunOutcome, SluiceError> {
    let started = Instant::now();
    let chains = chains(graph);
    let state_ops: HashMap<NodeId, usize> =
        graph.state_operators().into_iter().enumerate().map(|(i, (id, _))| (id, i)).collect();
    // Checked against the plan by `Checkpointing::new`.
    let restore = checkpointing.as_ref().and_then(|c| c.restore.clone());
    if let Some(r) = &restore {
        tracing::info!(checkpoint = %r.location, "Resuming from a checkpoint");
    }
    let restored_state = |node: NodeId, subtask: usize| -> Option<&[u8]> {
        restore.as_ref().and_then(|r| r.state(*state_ops.get(&node)?, subtask))
    };
    let batch_rows = test_hook("SLUICE_TEST_BATCH_ROWS").map_or(DEFAULT_BATCH_ROWS, |n| n as usize);
    let stop_after = test_hook("SLUICE_TEST_STOP_AFTER_BATCHES");

    // The coordinator, and the link every task gets.
    let mut coordinator = None;
    let mut link = None;
    if let Some(cfg) = checkpointing.clone() {
        let instances = |pred: &dyn Fn(&[NodeId]) -> bool| -> usize {
            chains.iter().filter(|c| pred(c)).map(|c| graph.nodes[c[0]].parallelism).sum()
        };
        let tasks = instances(&|_| true);
        let sources = instances(&|c| matches!(graph.nodes[c[0]].kind, NodeKind::Source { .. }));
        let sink_tasks =
            instances(&|c| matches!(graph.nodes[*c.last().expect("non-empty")].kind, NodeKind::Sink { .. }));
        let last_id = cfg.store.ids().await?.last().copied().unwrap_or(0).max(restore.as_ref().map_or(0, |r| r.id));
        let (c, l) = Coordinator::new(cfg, tasks, sources, sink_tasks, last_id, metrics.checkpoints.clone());
        coordinator = Some(c);
        link = Some(l);
    }

    // Channels for every edge that is not chained.
    let mut outputs: HashMap<(NodeId, usize), Vec<Output>> = HashMap::new();
    let mut gates: HashMap<(NodeId, usize), Vec<GateInput>> = HashMap::new();
    for chain in &chains {
        let head = &graph.nodes[chain[0]];
        if matches!(head.kind, NodeKind::Source { .. }) {
            continue;
        }
        for (edge_index, edge) in head.inputs.iter().enumerate() {
            let up = &graph.nodes[edge.from];
            match &edge.partitioning {
                Partitioning::Forward => {
                    if up.parallelism != head.parallelism {
                        return Err(SluiceError::internal(format!(
                            "forward edge {} -> {} changes parallelism",
                            up.id, head.id
                        )));
                    }
                    for s in 0..up.parallelism {
                        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                        outputs
                            .entry((up.id, s))
                            .or_default()
                            .push(Output { senders: vec![tx], route: Route::Forward });
                        gates.entry((head.id, s)).or_default().push((edge_index, rx));
                    }
                }
                p => {
                    let mut senders: Vec<Vec<mpsc::Sender<Message>>> = vec![Vec::new(); up.parallelism];
                    for d in 0..head.parallelism {
                        for s in senders.iter_mut() {
                            let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                            s.push(tx);
                            gates.entry((head.id, d)).or_default().push((edge_index, rx));
                        }
                    }
                    for (u, senders) in senders.into_iter().enumerate() {
                        let route = match p {
                            Partitioning::Hash(keys) => Route::Hash { keys: keys.clone(), hashes: Vec::new() },
                            _ => Route::Rebalance { next: u },
                        };
                        outputs.entry((up.id, u)).or_default().push(Output { senders, route });
                    }
                }
            }
        }
    }

    let mut tasks = JoinSet::new();
    for chain in &chains {
        let head = &graph.nodes[chain[0]];
        let last = &graph.nodes[*chain.last().expect("chains are not empty")];
        // All subtasks of a source are created in one call so the connector can divide the
        // input once (Flink's split enumerator).
        let mut generators: Vec<GeneratorState> = vec![None; head.parallelism];
        let mut sources = match &head.kind {
            NodeKind::Source { spec, projection, .. } => {
                let restored = match &restore {
                    Some(_) => {
                        let mut positions = Vec::new();
                        for (s, generator) in generators.iter_mut().enumerate() {
                            let bytes = restored_state(head.id, s).ok_or_else(|| {
                                SluiceError::internal(format!(
                                    "the checkpoint has no position for source '{}'",
                                    spec.name
                                ))
                            })?;
                            let (restored_generator, position) = split_source_state(bytes)?;
                            *generator = restored_generator;
                            positions.push(position);
                        }
                        Some(positions)
                    }
                    None => None,
                };
                let init = SourceInit {
                    parallelism: head.parallelism,
                    projection: projection.clone(),
                    settings: settings.clone(),
                    restored,
                    batch_rows,
                };
                let created = registry
                    .create_sources(spec, &init)
                    .map_err(|e| e.redacted(spec).in_operator(format!("source '{}'", spec.name)))?;
                if created.len() != head.parallelism {
                    return Err(SluiceError::internal(format!(
                        "connector '{}' created {} source subtasks, expected {}",
                        spec.connector,
                        created.len(),
                        head.parallelism
                    )));
                }
                created.into_iter().map(Some).collect()
            }
            _ => Vec::new(),
        };
        for subtask in 0..head.parallelism {
            let mut ops = Vec::new();
            let mut op_slots = Vec::new();
            for &id in chain {
                if let Some(mut op) = operators::create(graph, &graph.nodes[id], metrics)? {
                    if let Some(state) = restored_state(id, subtask) {
                        op.restore(state).map_err(|e| e.in_operator(op.name().to_string()))?;
                    }
                    ops.push(op);
                    op_slots.push(state_ops.get(&id).copied());
                }
            }
            let tail = match &last.kind {
                NodeKind::Sink { spec, .. } => {
                    let init = SinkInit {
                        subtask,
                        parallelism: last.parallelism,
                        settings: settings.clone(),
                        checkpointing: link.is_some(),
                    };
                    let in_sink = |e: SluiceError| e.redacted(spec).in_operator(format!("sink '{}'", spec.name));
                    let mut sink = registry.create_sink(spec, &init).map_err(in_sink)?;
                    if let Some(state) = restored_state(last.id, subtask) {
                        sink.restore(state).await.map_err(in_sink)?;
                    }
                    Tail::Sink { sink, metrics: metrics.table(&spec.name), spec: Arc::new(spec.clone()) }
                }
                _ => Tail::Outputs(outputs.remove(&(last.id, subtask)).unwrap_or_default()),
            };
            let checkpoint = link.as_ref().map(|l| TaskCheckpoint {
                subtask,
                events: l.events.clone(),
                ops: op_slots,
                sink: state_ops.get(&last.id).copied().filter(|_| matches!(last.kind, NodeKind::Sink { .. })),
                committed: restore.as_ref().map_or(0, |r| r.id),
            });
            let completed = link.as_ref().filter(|_| checkpoint.is_some()).map(|l| l.completed.clone());
            let events = link.as_ref().map(|l| l.events.clone());
            let chain_head = ChainHead { ops, tail, checkpoint };
            match &head.kind {
                NodeKind::Source { spec, .. } => {
                    let name = format!("source '{}'", spec.name);
                    let mut source = sources.get_mut(subtask).and_then(Option::take).expect("one source per subtask");
                    let mut watermarks = match &head.kind {
                        NodeKind::Source { watermark: Some(w), .. } => Some(WatermarkGenerator::new(w.clone())),
                        _ => None,
                    };
                    let mut restored_splits = HashMap::new();
                    if let (Some(g), Some(Some((current, emitted, splits)))) =
                        (watermarks.as_mut(), generators.get(subtask).cloned())
                    {
                        g.restore(current, emitted);
                        restored_splits = splits.into_iter().collect();
                    }
                    let mut ctx = SourceContext {
                        head: chain_head,
                        watermarks,
                        metrics: metrics.table(&spec.name),
                        stop: shutdown.subscribe(),
                        subtask,
                        parallelism: head.parallelism,
                        checkpoints: link.as_ref().map(|l| SourceCheckpoints {
                            link: l.clone(),
                            op: state_ops[&head.id],
                            taken: restore.as_ref().map_or(0, |r| r.id),
                        }),
                        stop_after: stop_after.filter(|_| subtask == 0).map(|n| (n, shutdown.clone())),
                        batches: 0,
                        restored_splits,
                    };
                    let spec = spec.clone();
                    let resumed = restore.is_some();
                    tasks.spawn(async move {
                        if resumed {
                            ctx.resume_watermark().await?;
                        }
                        source.run(&mut ctx).await.map_err(|e| e.redacted(&spec).in_operator(name.clone()))?;
                        ctx.finish(source.as_mut()).await.map_err(|e| e.redacted(&spec).in_operator(name))
                    });
                }
                _ => {
                    let gate = InputGate::new(gates.remove(&(head.id, subtask)).unwrap_or_default());
                    let completed = completed.filter(|_| chain_head.has_sink());
                    tasks.spawn(run_task(gate, chain_head, completed, events));
                }
            }
        }
    }
    drop(link);
    if restore.is_some() {
        let took = started.elapsed();
        metrics.checkpoints.restore_us.store(took.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(millis = took.as_millis() as u64, "Restored operator, source and sink state");
    }

    let mut coordinator = coordinator.map(|c| tokio::spawn(c.run()));
    let mut first_error: Option<SluiceError> = None;
    let mut savepoint = None;
    let mut last_checkpoint = None;
    let keep = |e: SluiceError, first_error: &mut Option<SluiceError>| {
        let secondary = e.message == PEER_STOPPED;
        if first_error.is_none() || (!secondary && first_error.as_ref().is_some_and(|f| f.message == PEER_STOPPED)) {
            *first_error = Some(e);
        }
        !secondary
    };
    loop {
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let result = match joined {
                    Ok(r) => r,
                    Err(e) if e.is_cancelled() => Ok(()),
                    Err(e) => Err(SluiceError::internal(format!("a task panicked: {e}"))),
                };
                if let Err(e) = result {
                    // Tasks torn down after a savepoint see their peers go: not an error.
                    if savepoint.is_some() && e.message == PEER_STOPPED {
                        continue;
                    }
                    if keep(e, &mut first_error) {
                        shutdown.trigger();
                        tasks.abort_all();
                        if let Some(c) = &coordinator {
                            c.abort();
                        }
                    }
                }
            }
            exit = async { coordinator.as_mut().expect("guarded by the condition").await }, if coordinator.is_some() => {
                coordinator = None;
                match exit {
                    Ok(Ok(Exit::Savepoint { location, .. })) => {
                        tracing::warn!(savepoint = %location, "Stopped with a savepoint; the next run resumes from it");
                        savepoint = Some(location);
                        tasks.abort_all();
                    }
                    Ok(Ok(Exit::Ended { id })) => last_checkpoint = Some(id),
                    Ok(Err(e)) => {
                        keep(e, &mut first_error);
                        shutdown.trigger();
                        tasks.abort_all();
                    }
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => {
                        keep(SluiceError::internal(format!("the checkpoint coordinator panicked: {e}")), &mut first_error);
                        tasks.abort_all();
                    }
                }
            }
        }
    }
    if let (Some(c), None) = (coordinator, &first_error) {
        match c.await {
            Ok(Ok(Exit::Ended { id })) => last_checkpoint = Some(id),
            Ok(Ok(Exit::Savepoint { location, .. })) => savepoint = Some(location),
            Ok(Err(e)) => first_error = Some(e),
            Err(e) => first_error = Some(SluiceError::internal(format!("the checkpoint coordinator failed: {e}"))),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let (Some(id), Some(cfg)) = (last_checkpoint, &checkpointing) {
        cfg.store.mark_finished(id).await?;
    }
    Ok(RunOutcome { elapsed: started.elapsed(), stopped: shutdown.is_triggered(), savepoint })
}

async fn run_task(
    mut gate: InputGate,
    mut head: ChainHead,
    mut completed: Option<watch::Receiver<u64>>,
    events: Option<mpsc::UnboundedSender<Event>>,
) -> Result<(), SluiceError> {
    /// What woke the task: its input, or a completed checkpoint its sink must commit.
    enum Wake {
        Input(GateEvent),
        Completed(Option<u64>),
    }
    loop {
        let wake = match completed.as_mut() {
            Some(rx) => tokio::select! {
                biased;
                r = rx.changed() => Wake::Completed(r.ok().map(|_| *rx.borrow_and_update())),
                ev = gate.next() => Wake::Input(ev),
            },
            None => Wake::Input(gate.next().await),
        };
        let event = match wake {
            Wake::Input(ev) => ev,
            Wake::Completed(None) => {
                // The coordinator is gone: nothing more to commit until end of input.
                completed = None;
                continue;
            }
            Wake::Completed(Some(id)) => {
                if let (Some(id), Some(events)) = (head.commit(id).await?, &events) {
                    let _ = events.send(Event::Committed { id });
                }
                continue;
            }
        };
        match event {
            GateEvent::Batch(input, b) => head.push_from(input, b).await?,
            GateEvent::Watermark(w) => head.watermark(w).await?,
            GateEvent::Idle => head.idle().await?,
            GateEvent::Barrier(b) => head.barrier(b, Vec::new(), Instant::now()).await?,
            GateEvent::End => return head.end().await,
            // Finishing now would commit partial output; the upstream error is what gets reported.
            GateEvent::UpstreamFailed => return Err(SluiceError::internal(PEER_STOPPED)),
        }
    }
}

/// Splits the graph into chains of node ids; each chain runs as one task per subtask.
pub fn chains(graph: &StreamGraph) -> Vec<Vec<NodeId>> {
    let chained_into_input = |id: NodeId| -> bool {
        let n = &graph.nodes[id];
        if n.inputs.len() != 1 || !matches!(n.inputs[0].partitioning, Partitioning::Forward) {
            return false;
        }
        let up = &graph.nodes[n.inputs[0].from];
        up.parallelism == n.parallelism
            && graph.consumers(up.id).len() == 1
            && !matches!(up.kind, NodeKind::Sink { .. })
    };
    let mut out = Vec::new();
    for n in &graph.nodes {
        if chained_into_input(n.id) {
            continue;
        }
        let mut chain = vec![n.id];
        loop {
            let consumers = graph.consumers(*chain.last().expect("non-empty"));
            match consumers.as_slice() {
                [c] if chained_into_input(*c) => chain.push(*c),
                _ => break,
            }
        }
        out.push(chain);
    }
    out
}
