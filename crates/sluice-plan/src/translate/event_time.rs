//! Translation of the event-time parts of a plan: source watermarks, window TVFs, window aggregation,
//! Top-N/deduplication (`ROW_NUMBER() ... <= N`) and event-time temporal joins.

use super::{arrow_schema, display_expr, Builder};
use crate::graph::{
    Edge, GroupSlot, NodeId, NodeKind, Partitioning, SourceWatermark, TemporalJoinSpec, TemporalJoinType, TopNSpec,
    WindowAggSpec,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::logical_plan::{Aggregate, Filter, Join, JoinType};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{create_physical_sort_exprs, PhysicalExpr};
use sluice_common::options::parse_duration;
use sluice_common::{TableSpec, WindowKind, WindowSpec};
use sluice_sql::functions::SYSTEM_TIME_MARKER;
use sluice_sql::{SqlError, TemporalTable, WatermarkSpec, WindowTvfTable};
use std::sync::Arc;

/// Set while translating the versioned side of a temporal join: a deduplication on `keys` keeping
/// the latest row by time is left to the join (`taken`).
pub(super) struct DedupBypass {
    pub(super) keys: Vec<String>,
    pub(super) taken: bool,
}

/// The window TVF a plan reads through projections, filters and aliases only.
fn window_below(plan: &LogicalPlan) -> Option<WindowSpec> {
    match plan {
        LogicalPlan::Projection(p) => window_below(&p.input),
        LogicalPlan::Filter(f) => window_below(&f.input),
        LogicalPlan::SubqueryAlias(a) => window_below(&a.input),
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            provider.downcast_ref::<WindowTvfTable>().map(|w| w.spec)
        }
        _ => None,
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        Expr::Alias(a) => column_name(&a.expr),
        _ => None,
    }
}

fn int_literal(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::Int8(Some(n)) => Some(*n as i64),
            ScalarValue::Int16(Some(n)) => Some(*n as i64),
            ScalarValue::Int32(Some(n)) => Some(*n as i64),
            ScalarValue::Int64(Some(n)) => Some(*n),
            ScalarValue::UInt8(Some(n)) => Some(*n as i64),
            ScalarValue::UInt16(Some(n)) => Some(*n as i64),
            ScalarValue::UInt32(Some(n)) => Some(*n as i64),
            ScalarValue::UInt64(Some(n)) => i64::try_from(*n).ok(),
            _ => None,
        },
        Expr::Cast(c) => int_literal(&c.expr),
        _ => None,
    }
}

impl Builder<'_> {
    fn column_expr(&self, schema: &SchemaRef, idx: usize) -> Arc<dyn PhysicalExpr> {
        Arc::new(PhysicalColumn::new(schema.field(idx).name(), idx))
    }

    /// A projection node choosing `columns` of `input` (for scans with projection pushdown).
    pub(super) fn select_columns(&mut self, input: NodeId, columns: &[usize]) -> NodeId {
        let n = &self.graph.nodes[input];
        let schema = n.schema.clone();
        let (par, upd) = (n.parallelism, n.updating);
        let identity = columns.len() == schema.fields().len() && columns.iter().enumerate().all(|(i, c)| i == *c);
        if identity {
            return input;
        }
        let exprs: Vec<Arc<dyn PhysicalExpr>> = columns.iter().map(|&c| self.column_expr(&schema, c)).collect();
        let display = columns.iter().map(|&c| schema.field(c).name().clone()).collect();
        let out = Arc::new(schema.project(columns).expect("indices come from the schema"));
        self.add(
            NodeKind::Project { exprs, display },
            vec![Edge { from: input, partitioning: Partitioning::Forward }],
            par,
            out,
            upd,
        )
    }

    /// The connector columns a source must produce for the query (`wanted`, in order) and its
    /// watermark, and the watermark generator over them.
    pub(super) fn source_watermark(
        &self,
        spec: &TableSpec,
        w: &WatermarkSpec,
        wanted: &[usize],
    ) -> Result<(Vec<usize>, SourceWatermark), SqlError> {
        let internal = || self.err(format!("internal: unexpected watermark plan for table '{}'", spec.name));
        let LogicalPlan::Projection(p) = &w.plan else { return Err(internal()) };
        let mut input = p.input.as_ref();
        let mut qualifier = None;
        while let LogicalPlan::SubqueryAlias(a) = input {
            qualifier.get_or_insert_with(|| a.alias.clone());
            input = a.input.as_ref();
        }
        let mut exprs = [p.expr[0].clone().unalias(), p.expr[1].clone().unalias()];
        // A computed rowtime used by both expressions stays in a projection of its own (DataFusion
        // does not duplicate the computation when merging projections): inline it.
        if let LogicalPlan::Projection(inner) = input {
            let by_name: std::collections::HashMap<String, datafusion::logical_expr::Expr> = inner
                .schema
                .fields()
                .iter()
                .zip(&inner.expr)
                .map(|(f, e)| (f.name().clone(), e.clone().unalias()))
                .collect();
            for e in exprs.iter_mut() {
                use datafusion::common::tree_node::{Transformed, TreeNode};
                *e = e
                    .clone()
                    .transform_up(|x| match &x {
                        datafusion::logical_expr::Expr::Column(c) => match by_name.get(&c.name) {
                            Some(inlined) => Ok(Transformed::yes(inlined.clone())),
                            None => Ok(Transformed::no(x)),
                        },
                        _ => Ok(Transformed::no(x)),
                    })
                    .map_err(|e| self.err(e.to_string()))?
                    .data;
            }
            input = inner.input.as_ref();
            while let LogicalPlan::SubqueryAlias(a) = input {
                qualifier.get_or_insert_with(|| a.alias.clone());
                input = a.input.as_ref();
            }
        }
        let LogicalPlan::TableScan(scan) = input else { return Err(internal()) };
        let qualifier = qualifier.unwrap_or_else(|| scan.table_name.clone());
        let full = spec.connector_schema.clone();
        let needed: Vec<usize> = scan.projection.clone().unwrap_or_else(|| (0..full.fields().len()).collect());
        let mut produced = wanted.to_vec();
        for c in needed {
            if !produced.contains(&c) {
                produced.push(c);
            }
        }
        let keep = (produced.len() > wanted.len()).then(|| (0..wanted.len()).collect());
        let arrow = full.project(&produced).map_err(|e| self.err(e.to_string()))?;
        let df = DFSchema::try_from_qualified_schema(qualifier, &arrow).map_err(|e| self.err(e.to_string()))?;
        let [rowtime, watermark] = exprs;
        let rowtime = self.physical(&rowtime, &df)?;
        let watermark = self.physical(&watermark, &df)?;
        let idle_timeout = match spec.options.get("scan.watermark.idle-timeout") {
            Some(v) => {
                let d = parse_duration(v).map_err(|m| {
                    self.err(format!("table '{}': option 'scan.watermark.idle-timeout': {m}, got '{v}'", spec.name))
                })?;
                (!d.is_zero()).then_some(d)
            }
            None => self.settings.idle_timeout,
        };
        let display = format!("{} AS {}", w.column, w.text);
        Ok((produced, SourceWatermark { rowtime, watermark, keep, idle_timeout, display }))
    }

    /// A window TVF read directly (not under a window aggregation): one row per window of each row.
    pub(super) fn window_tvf(
        &mut self,
        w: &WindowTvfTable,
        projection: Option<&Vec<usize>>,
    ) -> Result<NodeId, SqlError> {
        if matches!(w.spec.kind, WindowKind::Session { .. }) && !self.pane_mode {
            return Err(self.err(
                "SESSION windows are supported in window aggregations (GROUP BY window_start, window_end, ...) only",
            ));
        }
        let input = self.node(&w.input)?;
        let time = w
            .input
            .schema()
            .index_of_column_by_name(None, &w.time_column)
            .ok_or_else(|| self.err(format!("window time column '{}' not found", w.time_column)))?;
        let n = &self.graph.nodes[input];
        if n.updating {
            return Err(self.err("a window TVF needs an append-only input, but its input is updating"));
        }
        let par = n.parallelism;
        let kind = NodeKind::WindowAssign { window: w.spec, time, panes: self.pane_mode };
        let id = self.add(
            kind,
            vec![Edge { from: input, partitioning: Partitioning::Forward }],
            par,
            w.schema.clone(),
            false,
        );
        Ok(match projection {
            Some(p) => self.select_columns(id, p),
            None => id,
        })
    }

    /// `GROUP BY window_start, window_end, ...` over a window TVF: a window aggregation.
    pub(super) fn window_aggregate(&mut self, a: &Aggregate) -> Result<Option<NodeId>, SqlError> {
        let names: Vec<Option<&str>> = a.group_expr.iter().map(column_name).collect();
        let has = |n: &str| names.contains(&Some(n));
        if !(has("window_start") && has("window_end")) {
            return Ok(None);
        }
        let Some(window) = window_below(&a.input) else { return Ok(None) };
        self.pane_mode = true;
        let input = self.node(&a.input);
        self.pane_mode = false;
        let input = input?;
        if self.graph.nodes[input].updating {
            return Err(self.err("window aggregation needs an append-only input, but its input is updating"));
        }
        let in_schema = a.input.schema();
        let mut keys = Vec::new();
        let mut slots = Vec::new();
        let mut key_names = Vec::new();
        let mut pane_end = None;
        for e in &a.group_expr {
            let slot = match e {
                Expr::Column(c) if c.name == "window_start" => GroupSlot::WindowStart,
                Expr::Column(c) if c.name == "window_end" => {
                    pane_end = Some(in_schema.index_of_column(c).map_err(|e| self.err(e.to_string()))?);
                    GroupSlot::WindowEnd
                }
                Expr::Column(c) if c.name == "window_time" => GroupSlot::WindowTime,
                other => {
                    keys.push(self.physical(other, in_schema)?);
                    GroupSlot::Key(keys.len() - 1)
                }
            };
            key_names.push(display_expr(e));
            slots.push(slot);
        }
        let (aggregates, filters) = self.aggregates(a, false)?;
        let spec = WindowAggSpec {
            window,
            keys: keys.clone(),
            slots,
            pane_end: pane_end.expect("window_end is grouped"),
            aggregates,
            filters,
            key_names,
            aggregate_names: a.aggr_expr.iter().map(display_expr).collect(),
        };
        let parallelism = if keys.is_empty() { 1 } else { self.settings.parallelism };
        let edge = Edge { from: input, partitioning: Partitioning::Hash(keys) };
        Ok(Some(self.add(
            NodeKind::WindowAggregate(spec),
            vec![edge],
            parallelism,
            arrow_schema(a.schema.as_ref()),
            false,
        )))
    }

    /// `WHERE rownum <= N` over `ROW_NUMBER() OVER (PARTITION BY .. ORDER BY ..) AS rownum`.
    pub(super) fn top_n(&mut self, f: &Filter) -> Result<Option<NodeId>, SqlError> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &f.predicate else { return Ok(None) };
        let (Some(tested), Some(n)) = (column_name(left), int_literal(right)) else { return Ok(None) };
        let limit = match op {
            Operator::LtEq => n,
            Operator::Lt => n - 1,
            Operator::Eq if n == 1 => 1,
            _ => return Ok(None),
        };
        let (proj, window) = match f.input.as_ref() {
            LogicalPlan::Projection(p) => match p.input.as_ref() {
                LogicalPlan::Window(w) => (Some(p), w),
                _ => return Ok(None),
            },
            LogicalPlan::Window(w) => (None, w),
            _ => return Ok(None),
        };
        if window.window_expr.len() != 1 {
            return Ok(None);
        }
        let wf = match window.window_expr[0].clone().unalias() {
            Expr::WindowFunction(wf) if wf.fun.name().eq_ignore_ascii_case("row_number") => wf,
            _ => return Ok(None),
        };
        let wname = window.schema.field(window.schema.fields().len() - 1).name().clone();
        let refers = match proj {
            Some(p) => p
                .schema
                .fields()
                .iter()
                .zip(&p.expr)
                .any(|(field, e)| field.name() == tested && column_name(e) == Some(wname.as_str())),
            None => tested == wname,
        };
        if !refers {
            return Ok(None);
        }
        if limit < 1 {
            return Err(self.err("a Top-N condition must keep at least one row (rownum <= N with N >= 1)"));
        }
        if wf.params.order_by.is_empty() {
            return Err(self.err("Top-N needs ORDER BY in ROW_NUMBER() OVER (...)"));
        }
        let input = self.node(&window.input)?;
        let in_schema = window.input.schema();
        let partition_keys =
            wf.params.partition_by.iter().map(|e| self.physical(e, in_schema)).collect::<Result<Vec<_>, _>>()?;
        let order = create_physical_sort_exprs(
            &wf.params.order_by,
            in_schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )
        .map_err(|e| self.err(format!("cannot plan ORDER BY of ROW_NUMBER(): {e}")))?;
        let input_updating = self.graph.nodes[input].updating;
        let in_arrow = Arc::new(in_schema.as_arrow().clone());
        let later_wins_ties = limit == 1
            && order.len() == 1
            && order[0].options.descending
            && order[0]
                .expr
                .data_type(&in_arrow)
                .is_ok_and(|t| matches!(t, datafusion::arrow::datatypes::DataType::Timestamp(..)));
        let col_of = |name: &str| {
            wf.params.partition_by.iter().find(|e| column_name(e) == Some(name)).and_then(|e| match e {
                Expr::Column(c) => in_schema.index_of_column(c).ok(),
                _ => None,
            })
        };
        let window_cols = match (col_of("window_start"), col_of("window_end")) {
            (Some(s), Some(e)) if !input_updating => Some((s, e)),
            _ => None,
        };
        let display = format!(
            "partitionBy=[{}], orderBy=[{}], rankRange=[1..{limit}]",
            wf.params.partition_by.iter().map(display_expr).collect::<Vec<_>>().join(", "),
            wf.params
                .order_by
                .iter()
                .map(|s| format!("{} {}", display_expr(&s.expr), if s.asc { "ASC" } else { "DESC" }))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // The versioned view of a temporal join deduplicates on the join key keeping the latest row
        // by time: the join applies that rule itself, so no separate state is kept for it.
        let partition_names: Vec<&str> = wf.params.partition_by.iter().filter_map(column_name).collect();
        if let Some(bypass) = &mut self.dedup_bypass {
            if later_wins_ties && !input_updating && window_cols.is_none() && bypass.keys == partition_names {
                bypass.taken = true;
                let n = &self.graph.nodes[input];
                let (par, in_schema_arrow) = (n.parallelism, n.schema.clone());
                let mut exprs: Vec<Arc<dyn PhysicalExpr>> =
                    (0..in_schema_arrow.fields().len()).map(|i| self.column_expr(&in_schema_arrow, i)).collect();
                exprs
                    .push(Arc::new(datafusion::physical_expr::expressions::Literal::new(ScalarValue::UInt64(Some(1)))));
                let mut display: Vec<String> = in_schema_arrow.fields().iter().map(|f| f.name().clone()).collect();
                display.push("1 AS rownum (deduplicated by the temporal join)".into());
                let schema = arrow_schema(window.schema.as_ref());
                let edge = Edge { from: input, partitioning: Partitioning::Forward };
                let id = self.add(NodeKind::Project { exprs, display }, vec![edge], par, schema, false);
                let Some(p) = proj else { return Ok(Some(id)) };
                let exprs = p.expr.iter().map(|e| self.physical(e, p.input.schema())).collect::<Result<Vec<_>, _>>()?;
                let display = p.expr.iter().map(display_expr).collect();
                let edge = Edge { from: id, partitioning: Partitioning::Forward };
                return Ok(Some(self.add(
                    NodeKind::Project { exprs, display },
                    vec![edge],
                    par,
                    arrow_schema(p.schema.as_ref()),
                    false,
                )));
            }
        }
        let spec = TopNSpec {
            partition_keys: partition_keys.clone(),
            order,
            limit: limit as usize,
            window: window_cols,
            input_updating,
            state_ttl: self.settings.state_ttl,
            later_wins_ties,
            display,
        };
        let parallelism = if partition_keys.is_empty() { 1 } else { self.settings.parallelism };
        let updating = window_cols.is_none();
        let edge = Edge { from: input, partitioning: Partitioning::Hash(partition_keys) };
        let id =
            self.add(NodeKind::TopN(spec), vec![edge], parallelism, arrow_schema(window.schema.as_ref()), updating);
        let Some(p) = proj else { return Ok(Some(id)) };
        let exprs = p.expr.iter().map(|e| self.physical(e, p.input.schema())).collect::<Result<Vec<_>, _>>()?;
        let display = p.expr.iter().map(display_expr).collect();
        let schema = arrow_schema(p.schema.as_ref());
        let edge = Edge { from: id, partitioning: Partitioning::Forward };
        Ok(Some(self.add(NodeKind::Project { exprs, display }, vec![edge], parallelism, schema, updating)))
    }

    /// `l JOIN v FOR SYSTEM_TIME AS OF l.ts ON l.k = v.k`.
    pub(super) fn temporal_join(&mut self, j: &Join) -> Result<NodeId, SqlError> {
        let mut right = j.right.as_ref();
        while let LogicalPlan::SubqueryAlias(a) = right {
            right = a.input.as_ref();
        }
        let regular = || {
            self.err("regular joins are not supported on streams yet; use an event-time temporal join (JOIN v FOR SYSTEM_TIME AS OF l.rowtime ON ...)")
        };
        let LogicalPlan::TableScan(scan) = right else { return Err(regular()) };
        let provider = source_as_provider(&scan.source).map_err(|e| self.err(e.to_string()))?;
        let Some(t) = provider.downcast_ref::<TemporalTable>() else { return Err(regular()) };
        let join_type = match j.join_type {
            JoinType::Inner => TemporalJoinType::Inner,
            JoinType::Left => TemporalJoinType::Left,
            other => {
                return Err(
                    self.err(format!("{other} temporal joins are not supported (only INNER and LEFT, as in Flink)"))
                )
            }
        };
        // The planner ANDed `__sluice_system_time(l.ts)` into the ON clause; it names the probe time.
        let mut left_time_expr = None;
        if let Some(filter) = &j.filter {
            for conjunct in split_conjunction(filter) {
                match conjunct {
                    Expr::ScalarFunction(f) if f.func.name() == SYSTEM_TIME_MARKER && !f.args.is_empty() => {
                        left_time_expr = Some(f.args[0].clone())
                    }
                    other => {
                        return Err(self.err(format!(
                            "a temporal join's ON clause may only hold equalities between the two sides, found {}",
                            display_expr(other)
                        )))
                    }
                }
            }
        }
        let Some(left_time_expr) = left_time_expr else {
            return Err(self.err("internal: temporal join without its FOR SYSTEM_TIME AS OF marker"));
        };
        if j.on.is_empty() {
            return Err(self.err(format!(
                "a temporal join needs an equality on the versioned table's primary key, e.g. ON l.k = {}.k",
                t.name
            )));
        }
        let left = self.node(&j.left)?;
        if self.graph.nodes[left].updating {
            return Err(self.err("the probe side of a temporal join must be append-only"));
        }
        // The join reads every column of the versioned side (its time attribute may not be selected),
        // and a projection afterwards keeps what the query uses.
        let keys: Vec<String> = j.on.iter().filter_map(|(_, r)| column_name(r).map(str::to_string)).collect();
        self.dedup_bypass = Some(DedupBypass { keys, taken: false });
        let right_node = self.node(&t.input);
        let right_dedup = self.dedup_bypass.take().is_some_and(|b| b.taken);
        let right_node = right_node?;
        let (lschema, rschema) = (j.left.schema(), j.right.schema());
        let right_df = match rschema.qualified_field(0).0 {
            Some(q) => DFSchema::try_from_qualified_schema(q.clone(), &t.schema),
            None => DFSchema::try_from(t.schema.as_ref().clone()),
        }
        .map_err(|e| self.err(e.to_string()))?;
        let left_time = match &left_time_expr {
            Expr::Column(c) => lschema.index_of_column(c).ok(),
            _ => None,
        }
        .ok_or_else(|| {
            self.err(format!(
                "FOR SYSTEM_TIME AS OF needs a time attribute column of the join's left side, found '{}'",
                t.left_time.join(".")
            ))
        })?;
        let right_time_name = self.versioned_time(t)?;
        let right_time = t
            .schema
            .index_of(&right_time_name)
            .map_err(|_| self.err(format!("the versioned table '{}' has no column '{right_time_name}'", t.name)))?;
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        for (l, r) in &j.on {
            left_keys.push(self.physical(l, lschema)?);
            right_keys.push(self.physical(r, &right_df)?);
        }
        let display = format!(
            "{} JOIN {} FOR SYSTEM_TIME AS OF {} ON {}",
            if join_type == TemporalJoinType::Left { "LEFT" } else { "INNER" },
            t.name,
            t.left_time.join("."),
            j.on.iter()
                .map(|(l, r)| format!("{} = {}", display_expr(l), display_expr(r)))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let spec = TemporalJoinSpec {
            left_keys: left_keys.clone(),
            right_keys: right_keys.clone(),
            left_time,
            right_time,
            join_type,
            right_dedup,
            display,
        };
        let edges = vec![
            Edge { from: left, partitioning: Partitioning::Hash(left_keys) },
            Edge { from: right_node, partitioning: Partitioning::Hash(right_keys) },
        ];
        let left_fields = self.graph.nodes[left].schema.fields().clone();
        let nl = left_fields.len();
        let outer = join_type == TemporalJoinType::Left;
        let fields: Vec<_> = left_fields
            .iter()
            .map(|f| f.as_ref().clone())
            .chain(t.schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(f.is_nullable() || outer)))
            .collect();
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        let id = self.add(NodeKind::TemporalJoin(spec), edges, self.settings.parallelism, schema, false);
        let right_cols: Vec<usize> = match &scan.projection {
            Some(p) => p.clone(),
            None => (0..t.schema.fields().len()).collect(),
        };
        let cols: Vec<usize> = (0..nl).chain(right_cols.iter().map(|c| nl + c)).collect();
        Ok(self.select_columns(id, &cols))
    }

    /// The time attribute of a versioned table: the WATERMARK column of a table, or the ORDER BY
    /// column of a deduplicating view (`ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) = 1`).
    fn versioned_time(&self, t: &TemporalTable) -> Result<String, SqlError> {
        if let Some(table) = self.pipeline.tables.get(&t.name) {
            if table.spec.primary_key.is_empty() {
                return Err(self.err(format!(
                    "the versioned table '{}' of a temporal join needs a PRIMARY KEY (as in Flink)",
                    t.name
                )));
            }
            return match &table.watermark {
                Some(w) => Ok(w.column.clone()),
                None => Err(self
                    .err(format!("the versioned table '{}' of an event-time temporal join needs a WATERMARK", t.name))),
            };
        }
        let mut found = None;
        let _ = t.input.apply(|node| {
            if let LogicalPlan::Window(w) = node {
                if let Some(Expr::WindowFunction(wf)) = w.window_expr.first().map(|e| e.clone().unalias()) {
                    if let [sort] = wf.params.order_by.as_slice() {
                        found = column_name(&sort.expr).map(str::to_string);
                    }
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        found.ok_or_else(|| {
            self.err(format!(
                "view '{}' is not a versioned view: it must deduplicate on its key, ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime DESC) = 1",
                t.name
            ))
        })
    }
}

impl Builder<'_> {
    /// `agg(x) OVER (PARTITION BY k ORDER BY rowtime [ROWS|RANGE] BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)`.
    pub(super) fn over_aggregate(
        &mut self,
        w: &datafusion::logical_expr::logical_plan::Window,
    ) -> Result<NodeId, SqlError> {
        use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition};
        use datafusion::physical_expr::aggregate::AggregateExprBuilder;
        let unsupported = |what: String| {
            self.err(format!(
                "{what}; OVER windows are supported as agg(...) OVER (PARTITION BY ... ORDER BY <rowtime> [ROWS|RANGE] BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), and ROW_NUMBER() as Top-N or deduplication"
            ))
        };
        let in_schema = w.input.schema();
        let in_arrow = Arc::new(in_schema.as_arrow().clone());
        let mut first: Option<(Vec<Expr>, Vec<datafusion::logical_expr::SortExpr>, bool)> = None;
        let mut aggregates = Vec::new();
        let mut names = Vec::new();
        for e in &w.window_expr {
            let Expr::WindowFunction(wf) = e.clone().unalias() else {
                return Err(unsupported(format!("unsupported window expression {}", display_expr(e))));
            };
            // FIRST_VALUE and LAST_VALUE plan as window functions; their aggregate twins do the same
            // over an unbounded-preceding frame.
            let udaf = match &wf.fun {
                WindowFunctionDefinition::AggregateUDF(udaf) => udaf.clone(),
                WindowFunctionDefinition::WindowUDF(f) if matches!(f.name(), "first_value" | "last_value") => {
                    match self.pipeline.session.aggregate_functions().get(f.name()) {
                        Some(a) => a.clone(),
                        None => return Err(self.err(format!("internal: no aggregate {}", f.name()))),
                    }
                }
                other => return Err(unsupported(format!("{} is not supported in an OVER window", other.name()))),
            };
            let udaf = &udaf;
            let frame = &wf.params.window_frame;
            let unbounded_start = matches!(&frame.start_bound, WindowFrameBound::Preceding(v) if v.is_null());
            let to_current = matches!(frame.end_bound, WindowFrameBound::CurrentRow);
            let rows = match frame.units {
                WindowFrameUnits::Rows => true,
                WindowFrameUnits::Range => false,
                WindowFrameUnits::Groups => return Err(unsupported("GROUPS frames are not supported".into())),
            };
            if !unbounded_start || !to_current {
                return Err(unsupported(format!("the frame {frame} is not supported yet")));
            }
            let shape = (wf.params.partition_by.clone(), wf.params.order_by.clone(), rows);
            match &first {
                None => first = Some(shape),
                Some(f) if *f == shape => {}
                Some(_) => {
                    return Err(unsupported(
                        "all OVER windows of one SELECT must have the same PARTITION BY, ORDER BY and frame".into(),
                    ))
                }
            }
            let args = wf.params.args.iter().map(|a| self.physical(a, in_schema)).collect::<Result<Vec<_>, _>>()?;
            // Flink's FIRST_VALUE and LAST_VALUE skip NULLs.
            let ignore_nulls = matches!(udaf.name(), "first_value" | "last_value");
            let mut builder = AggregateExprBuilder::new(udaf.clone(), args)
                .schema(in_arrow.clone())
                .alias(display_expr(e))
                .with_ignore_nulls(ignore_nulls);
            if wf.params.distinct {
                builder = builder.distinct();
            }
            let agg = builder.build().map_err(|err| self.err(format!("cannot plan {}: {err}", display_expr(e))))?;
            aggregates.push(Arc::new(agg));
            names.push(display_expr(e));
        }
        let Some((partition_by, order_by, rows)) = first else {
            return Err(self.err("internal: window without expressions"));
        };
        let time = match order_by.as_slice() {
            [s] if s.asc => match &s.expr {
                Expr::Column(c) => in_schema.index_of_column(c).ok(),
                _ => None,
            },
            _ => None,
        }
        .filter(|&i| matches!(in_arrow.field(i).data_type(), datafusion::arrow::datatypes::DataType::Timestamp(..)))
        .ok_or_else(|| {
            unsupported("an OVER window must be ORDER BY a time attribute ascending (as in Flink)".into())
        })?;
        let input = self.node(&w.input)?;
        if self.graph.nodes[input].updating {
            return Err(self.err("OVER aggregation needs an append-only input, but its input is updating"));
        }
        let partition_keys = partition_by.iter().map(|e| self.physical(e, in_schema)).collect::<Result<Vec<_>, _>>()?;
        let display = format!(
            "partitionBy=[{}], orderBy=[{}], {} BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW, select=[{}]",
            partition_by.iter().map(display_expr).collect::<Vec<_>>().join(", "),
            in_arrow.field(time).name(),
            if rows { "ROWS" } else { "RANGE" },
            names.join(", ")
        );
        let spec = crate::graph::OverAggSpec {
            partition_keys: partition_keys.clone(),
            time,
            rows,
            aggregates,
            state_ttl: self.settings.state_ttl,
            display,
        };
        let parallelism = if partition_keys.is_empty() { 1 } else { self.settings.parallelism };
        let edge = Edge { from: input, partitioning: Partitioning::Hash(partition_keys) };
        Ok(self.add(NodeKind::OverAggregate(spec), vec![edge], parallelism, arrow_schema(w.schema.as_ref()), false))
    }
}
