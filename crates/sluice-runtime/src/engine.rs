//! Builds tasks from a [`StreamGraph`] and runs them to the end.
//!
//! Chaining: a node joins its input's task when it has a single forward input of equal parallelism
//! and that input has no other consumer. Every other edge becomes a set of bounded channels, one per
//! (upstream subtask, downstream subtask) pair that the partitioning connects.
//!
//! Ending: bounded sources end by themselves; [`Shutdown::trigger`] (Ctrl-C, SIGTERM) makes every
//! source stop reading, after which end-of-stream flows through and sinks flush: nothing read is lost.
//! A failing task stops the sources and aborts the rest; the first real error is returned.

use crate::connector::{ConnectorRegistry, SinkInit, SourceContext, SourceInit};
use crate::exchange::{ChainHead, GateEvent, InputGate, Output, Route, Tail, PEER_STOPPED};
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
}

/// Runs the graph until every sink has finished, or the first error.
pub async fn run_graph(
    graph: &StreamGraph,
    registry: Arc<dyn ConnectorRegistry>,
    settings: &BTreeMap<String, String>,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<RunOutcome, SluiceError> {
    let started = Instant::now();
    let chains = chains(graph);

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
        let mut sources = match &head.kind {
            NodeKind::Source { spec, projection, .. } => {
                let init = SourceInit {
                    parallelism: head.parallelism,
                    projection: projection.clone(),
                    settings: settings.clone(),
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
            for &id in chain {
                if let Some(op) = operators::create(graph, &graph.nodes[id], metrics)? {
                    ops.push(op);
                }
            }
            let tail = match &last.kind {
                NodeKind::Sink { spec, .. } => {
                    let init = SinkInit { subtask, parallelism: last.parallelism, settings: settings.clone() };
                    let sink = registry
                        .create_sink(spec, &init)
                        .map_err(|e| e.redacted(spec).in_operator(format!("sink '{}'", spec.name)))?;
                    Tail::Sink { sink, metrics: metrics.table(&spec.name), spec: Arc::new(spec.clone()) }
                }
                _ => Tail::Outputs(outputs.remove(&(last.id, subtask)).unwrap_or_default()),
            };
            let chain_head = ChainHead { ops, tail };
            match &head.kind {
                NodeKind::Source { spec, .. } => {
                    let name = format!("source '{}'", spec.name);
                    let mut source = sources.get_mut(subtask).and_then(Option::take).expect("one source per subtask");
                    let watermarks = match &head.kind {
                        NodeKind::Source { watermark: Some(w), .. } => Some(WatermarkGenerator::new(w.clone())),
                        _ => None,
                    };
                    let mut ctx = SourceContext {
                        head: chain_head,
                        watermarks,
                        metrics: metrics.table(&spec.name),
                        stop: shutdown.subscribe(),
                        subtask,
                        parallelism: head.parallelism,
                    };
                    let spec = spec.clone();
                    tasks.spawn(async move {
                        source.run(&mut ctx).await.map_err(|e| e.redacted(&spec).in_operator(name))?;
                        ctx.finish().await
                    });
                }
                _ => {
                    let gate = InputGate::new(gates.remove(&(head.id, subtask)).unwrap_or_default());
                    tasks.spawn(run_task(gate, chain_head));
                }
            }
        }
    }

    let mut first_error: Option<SluiceError> = None;
    while let Some(joined) = tasks.join_next().await {
        let result = match joined {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(SluiceError::internal(format!("a task panicked: {e}"))),
        };
        if let Err(e) = result {
            let secondary = e.message == PEER_STOPPED;
            if first_error.is_none() || (!secondary && first_error.as_ref().is_some_and(|f| f.message == PEER_STOPPED))
            {
                first_error = Some(e);
            }
            if !secondary {
                shutdown.trigger();
                tasks.abort_all();
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(RunOutcome { elapsed: started.elapsed(), stopped: shutdown.is_triggered() }),
    }
}

async fn run_task(mut gate: InputGate, mut head: ChainHead) -> Result<(), SluiceError> {
    loop {
        match gate.next().await {
            GateEvent::Batch(input, b) => head.push_from(input, b).await?,
            GateEvent::Watermark(w) => head.watermark(w).await?,
            GateEvent::Idle => head.idle().await?,
            GateEvent::Barrier(b) => head.barrier(b).await?,
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
