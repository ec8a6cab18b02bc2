//! DataFusion `LogicalPlan` (optimized, one per INSERT) -> [`StreamGraph`] nodes.
//!
//! Supported now: table scans, projections, filters, UNION ALL and non-windowed GROUP BY. Other plan
//! nodes are refused with a message naming them (joins, windows and Top-N come with the event-time work).

mod event_time;

use crate::graph::{AggregateSpec, Edge, Node, NodeId, NodeKind, Partitioning, StreamGraph};
use crate::settings::Settings;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
// The one-call helper is deprecated in favour of a builder; it is still the shortest correct call.
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;
use sluice_common::SinkCaps;
use sluice_sql::{PlannedPipeline, Pos, SqlError, StreamTable, TemporalTable, WindowTvfTable};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub fn build_graph(pipeline: &PlannedPipeline, settings: &Settings) -> Result<StreamGraph, SqlError> {
    let mut b = Builder {
        graph: StreamGraph { nodes: Vec::new(), checkpointing: settings.checkpoint_interval.is_some() },
        props: pipeline.session.execution_props().clone(),
        pipeline,
        settings,
        insert: 0,
        pos: None,
        pane_mode: false,
        scans: BTreeMap::new(),
        sources: BTreeMap::new(),
        dedup_bypass: None,
    };
    for insert in &pipeline.inserts {
        collect_scans(&insert.plan, &mut b.scans);
    }
    for (i, insert) in pipeline.inserts.iter().enumerate() {
        b.insert = i;
        b.pos = insert.pos;
        let input = b.node(&insert.plan)?;
        let table = &pipeline.tables[&insert.sink];
        let caps: SinkCaps = table.sink_caps.expect("planner checked the sink");
        let upstream = &b.graph.nodes[input];
        if upstream.updating && !caps.accepts_updates {
            let producer = b.updating_producer(input);
            return Err(SqlError::new(
                insert.pos,
                format!(
                    "table sink '{}' (connector '{}') doesn't support consuming update changes which is produced by node {producer}; write to a sink that accepts updates (print, blackhole) or make the query append-only",
                    insert.sink, table.spec.connector
                ),
            ));
        }
        let (parallelism, updating, schema) = (upstream.parallelism, upstream.updating, upstream.schema.clone());
        b.add(
            NodeKind::Sink { spec: table.spec.clone(), caps },
            vec![Edge { from: input, partitioning: Partitioning::Forward }],
            parallelism,
            schema,
            updating,
        );
    }
    Ok(b.graph)
}

struct Builder<'a> {
    graph: StreamGraph,
    props: ExecutionProps,
    pipeline: &'a PlannedPipeline,
    settings: &'a Settings,
    insert: usize,
    pos: Option<Pos>,
    /// Set while translating the input of a window aggregation: window TVFs assign panes.
    pane_mode: bool,
    /// For each table, every connector column any scan of it reads: a table read by several scans
    /// (a view joined with its own table, statement sets) is read once (Flink's source reuse).
    scans: BTreeMap<String, BTreeSet<usize>>,
    /// The source node of each table, once created.
    sources: BTreeMap<String, NodeId>,
    dedup_bypass: Option<event_time::DedupBypass>,
}

/// Adds the connector columns each scan in `plan` reads to `out`.
fn collect_scans(plan: &LogicalPlan, out: &mut BTreeMap<String, BTreeSet<usize>>) {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                if let Some(t) = provider.downcast_ref::<StreamTable>() {
                    let n = t.spec.connector_schema.fields().len();
                    let cols = out.entry(t.spec.name.clone()).or_default();
                    match &scan.projection {
                        Some(p) => cols.extend(p.iter().copied()),
                        None => cols.extend(0..n),
                    }
                } else if let Some(w) = provider.downcast_ref::<WindowTvfTable>() {
                    collect_scans(&w.input, out);
                } else if let Some(t) = provider.downcast_ref::<TemporalTable>() {
                    collect_scans(&t.input, out);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

impl Builder<'_> {
    fn add(
        &mut self,
        kind: NodeKind,
        inputs: Vec<Edge>,
        parallelism: usize,
        schema: SchemaRef,
        updating: bool,
    ) -> NodeId {
        let id = self.graph.nodes.len();
        self.graph.nodes.push(Node { id, kind, inputs, parallelism, schema, updating, insert: self.insert });
        id
    }

    fn err(&self, message: impl Into<String>) -> SqlError {
        SqlError::new(self.pos, message)
    }

    fn physical(&self, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>, SqlError> {
        create_physical_expr(e, schema, &self.props, &PhysicalPlanningContext::default())
            .map_err(|e| self.err(format!("cannot plan expression: {e}")))
    }

    /// Forward when parallelism matches, else round-robin.
    fn edge_to(&self, from: NodeId, parallelism: usize) -> Edge {
        let partitioning = if self.graph.nodes[from].parallelism == parallelism {
            Partitioning::Forward
        } else {
            Partitioning::Rebalance
        };
        Edge { from, partitioning }
    }

    fn updating_producer(&self, id: NodeId) -> String {
        let n = &self.graph.nodes[id];
        match &n.kind {
            NodeKind::GroupAggregate(a) => {
                let select: Vec<String> = a.key_names.iter().chain(a.aggregate_names.iter()).cloned().collect();
                format!("GroupAggregate(groupBy=[{}], select=[{}])", a.key_names.join(", "), select.join(", "))
            }
            _ => match n.inputs.iter().find(|e| self.graph.nodes[e.from].updating) {
                Some(e) => self.updating_producer(e.from),
                None => n.kind.label().to_string(),
            },
        }
    }

    /// The source node of a table, producing every column any scan of it reads.
    fn source(&mut self, spec: &sluice_common::TableSpec) -> Result<NodeId, SqlError> {
        let spec = spec.clone();
        let planned = &self.pipeline.tables[&spec.name];
        let caps = planned.source_caps.expect("planner checked every scanned table");
        let parallelism = match spec.options.get("scan.parallelism") {
            Some(p) => p.parse().map_err(|_| {
                self.err(format!(
                    "table '{}': option 'scan.parallelism' must be a positive integer, got '{p}'",
                    spec.name
                ))
            })?,
            None => self.settings.parallelism,
        };
        // The source produces only the columns the queries read (projection pushdown), plus those
        // its watermark needs.
        let full = spec.connector_schema.clone();
        let n = full.fields().len();
        let wanted: Vec<usize> = self.scans[&spec.name].iter().copied().collect();
        let schema = Arc::new(full.project(&wanted).map_err(|e| self.err(e.to_string()))?);
        let (produced, watermark) = match &planned.watermark {
            Some(w) => {
                let (produced, wm) = self.source_watermark(&spec, w, &wanted)?;
                (produced, Some(wm))
            }
            None => (wanted, None),
        };
        let identity = produced.len() == n && produced.iter().enumerate().all(|(i, c)| i == *c);
        let projection = (!identity).then_some(produced);
        let updating = caps.changelog;
        Ok(self.add(NodeKind::Source { spec, caps, projection, watermark }, vec![], parallelism, schema, updating))
    }

    #[allow(clippy::type_complexity)]
    fn aggregates(
        &self,
        a: &datafusion::logical_expr::logical_plan::Aggregate,
        input_updating: bool,
    ) -> Result<(Vec<Arc<AggregateFunctionExpr>>, Vec<Option<Arc<dyn PhysicalExpr>>>), SqlError> {
        let in_schema = a.input.schema();
        let physical_in = Arc::new(in_schema.as_arrow().clone());
        let mut aggregates = Vec::new();
        let mut filters = Vec::new();
        for e in &a.aggr_expr {
            #[allow(deprecated)]
            let (agg, filter, _order) = create_aggregate_expr_and_maybe_filter(e, in_schema, &physical_in, &self.props)
                .map_err(|err| self.err(format!("cannot plan aggregate {}: {err}", display_expr(e))))?;
            if input_updating {
                // As the runtime chooses (sluice_runtime::state::new_accumulator): SUM slides.
                let acc = if !agg.is_distinct() && agg.fun().name() == "sum" {
                    agg.create_sliding_accumulator()
                } else {
                    agg.create_accumulator()
                }
                .map_err(|e| self.err(e.to_string()))?;
                if !acc.supports_retract_batch() {
                    return Err(self.err(format!(
                        "aggregate {} cannot take back rows, so it cannot consume an updating input (another aggregation's result, a changelog source) yet",
                        display_expr(e)
                    )));
                }
            }
            aggregates.push(agg);
            filters.push(filter);
        }
        Ok((aggregates, filters))
    }

    fn node(&mut self, plan: &LogicalPlan) -> Result<NodeId, SqlError> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let provider = source_as_provider(&scan.source).map_err(|e| self.err(e.to_string()))?;
                if let Some(w) = provider.downcast_ref::<WindowTvfTable>() {
                    return self.window_tvf(w, scan.projection.as_ref());
                }
                if provider.downcast_ref::<TemporalTable>().is_some() {
                    return Err(self.err("FOR SYSTEM_TIME AS OF is only supported on the right side of a JOIN"));
                }
                let Some(table) = provider.downcast_ref::<StreamTable>() else {
                    return Err(self.err(format!("table '{}' is not a streaming table", scan.table_name)));
                };
                if !scan.filters.is_empty() {
                    return Err(self.err("internal: filters were pushed into a streaming scan"));
                }
                let full = table.spec.connector_schema.clone();
                let wanted: Vec<usize> = scan.projection.clone().unwrap_or_else(|| (0..full.fields().len()).collect());
                let source = match self.sources.get(&table.spec.name) {
                    Some(id) => *id,
                    None => {
                        let id = self.source(&table.spec)?;
                        self.sources.insert(table.spec.name.clone(), id);
                        id
                    }
                };
                let union: Vec<usize> = self.scans[&table.spec.name].iter().copied().collect();
                let columns: Vec<usize> =
                    wanted.iter().map(|c| union.iter().position(|u| u == c).expect("collected")).collect();
                Ok(self.select_columns(source, &columns))
            }
            LogicalPlan::Projection(p) => {
                let input = self.node(&p.input)?;
                let exprs = p.expr.iter().map(|e| self.physical(e, p.input.schema())).collect::<Result<Vec<_>, _>>()?;
                let display = p.expr.iter().map(display_expr).collect();
                let (par, upd) = (self.graph.nodes[input].parallelism, self.graph.nodes[input].updating);
                let schema = arrow_schema(p.schema.as_ref());
                Ok(self.add(
                    NodeKind::Project { exprs, display },
                    vec![Edge { from: input, partitioning: Partitioning::Forward }],
                    par,
                    schema,
                    upd,
                ))
            }
            LogicalPlan::Filter(f) => {
                if let Some(id) = self.top_n(f)? {
                    return Ok(id);
                }
                let input = self.node(&f.input)?;
                let predicate = self.physical(&f.predicate, f.input.schema())?;
                let n = &self.graph.nodes[input];
                let (par, upd, schema) = (n.parallelism, n.updating, n.schema.clone());
                let display = display_expr(&f.predicate);
                Ok(self.add(
                    NodeKind::Filter { predicate, display },
                    vec![Edge { from: input, partitioning: Partitioning::Forward }],
                    par,
                    schema,
                    upd,
                ))
            }
            LogicalPlan::SubqueryAlias(a) => self.node(&a.input),
            LogicalPlan::Union(u) => {
                let inputs = u.inputs.iter().map(|i| self.node(i)).collect::<Result<Vec<_>, _>>()?;
                let updating = inputs.iter().any(|&i| self.graph.nodes[i].updating);
                // Round-robin would reorder the changes of one key across subtasks: an updating
                // input whose parallelism differs is merged into a single subtask instead.
                let differs = inputs.iter().any(|&i| self.graph.nodes[i].parallelism != self.settings.parallelism);
                let par = if updating && differs { 1 } else { self.settings.parallelism };
                let edges = inputs.iter().map(|&i| self.edge_to(i, par)).collect();
                Ok(self.add(NodeKind::Union, edges, par, arrow_schema(u.schema.as_ref()), updating))
            }
            LogicalPlan::Aggregate(a) => {
                if a.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
                    return Err(self.err("GROUPING SETS, CUBE and ROLLUP are not supported in streaming queries yet"));
                }
                if let Some(id) = self.window_aggregate(a)? {
                    return Ok(id);
                }
                let input = self.node(&a.input)?;
                let input_updating = self.graph.nodes[input].updating;
                let in_schema = a.input.schema();
                let keys = a.group_expr.iter().map(|e| self.physical(e, in_schema)).collect::<Result<Vec<_>, _>>()?;
                let (aggregates, filters) = self.aggregates(a, input_updating)?;
                let parallelism = if keys.is_empty() { 1 } else { self.settings.parallelism };
                let spec = AggregateSpec {
                    key_names: a.group_expr.iter().map(display_expr).collect(),
                    aggregate_names: a.aggr_expr.iter().map(display_expr).collect(),
                    keys: keys.clone(),
                    aggregates,
                    filters,
                    input_updating,
                    mini_batch: self.settings.mini_batch,
                    state_ttl: self.settings.state_ttl,
                };
                let edge = Edge { from: input, partitioning: Partitioning::Hash(keys) };
                Ok(self.add(
                    NodeKind::GroupAggregate(spec),
                    vec![edge],
                    parallelism,
                    arrow_schema(a.schema.as_ref()),
                    true,
                ))
            }
            LogicalPlan::Join(j) => self.temporal_join(j),
            LogicalPlan::Sort(_) => {
                Err(self.err("ORDER BY is not supported on an unbounded stream (use a Top-N query)"))
            }
            LogicalPlan::Limit(_) => Err(self.err("LIMIT is not supported on an unbounded stream yet")),
            LogicalPlan::Window(w) => self.over_aggregate(w),
            LogicalPlan::Distinct(_) => {
                Err(self.err("internal: DISTINCT should have been rewritten into an aggregate"))
            }
            other => Err(self.err(format!("{} is not supported in streaming queries yet", other.display()))),
        }
    }
}

fn arrow_schema(s: &DFSchema) -> SchemaRef {
    Arc::new(Schema::new(s.fields().iter().cloned().collect::<Vec<_>>()))
}

/// An expression as `explain` shows it: in the user's table names (a table with computed columns is
/// planned over an internal source table, whose name must not show).
pub(crate) fn display_expr(e: &Expr) -> String {
    let s = match e {
        Expr::Alias(a) => format!("{} AS {}", a.expr.human_display(), a.name),
        _ => e.human_display().to_string(),
    };
    strip_internal_qualifiers(&s.replace(sluice_sql::SOURCE_PREFIX, ""))
}

/// Drops `__sluice_window_3.` and similar qualifiers of internal tables from a displayed expression.
fn strip_internal_qualifiers(s: &str) -> String {
    use sluice_sql::relations::{TEMPORAL_PREFIX, VIEW_PREFIX, WINDOW_PREFIX};
    let mut out = s.to_string();
    for prefix in [WINDOW_PREFIX, TEMPORAL_PREFIX, VIEW_PREFIX] {
        while let Some(start) = out.find(prefix) {
            let rest = &out[start + prefix.len()..];
            let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            let mut end = start + prefix.len() + digits;
            if out[end..].starts_with('.') {
                end += 1;
            }
            out.replace_range(start..end, "");
        }
    }
    out
}
