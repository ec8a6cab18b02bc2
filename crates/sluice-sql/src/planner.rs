//! SQL file -> validated logical plans. Tables become [`StreamTable`]s in a DataFusion session
//! configured for Flink (case-sensitive identifiers, `1.5` as DECIMAL, spans on errors); each INSERT's
//! query is planned, cast to the sink's columns and optimized. Connector options are checked through the
//! [`ConnectorCatalog`] the caller hands in, only for tables that are actually read or written.

use crate::catalog::StreamTable;
use crate::ddl::{ColumnKind, TableDef};
use crate::diagnostics::{Pos, SqlError};
use crate::dialect::FlinkDialect;
use crate::errors::df_error;
use crate::relations;
use crate::script::{parse_script, InsertDef, Statement};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::{source_as_provider, ViewTable};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{cast, col, lit, Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as AstExpr, Ident, ObjectName, Query, SelectItem, SetExpr, Statement as AstStatement, TableAlias, TableFactor,
};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Span;
use sluice_common::{flink_type_name, ConnectorCatalog, MetadataColumn, SinkCaps, SourceCaps, TableSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A planned `.sql` file.
#[derive(Debug)]
pub struct PlannedPipeline {
    /// `SET` statements in file order, then `--set` overrides.
    pub settings: BTreeMap<String, String>,
    pub tables: BTreeMap<String, PlannedTable>,
    pub inserts: Vec<PlannedInsert>,
    /// The DataFusion session the plans were made in (functions, execution props).
    pub session: SessionState,
}

#[derive(Debug, Clone)]
pub struct PlannedTable {
    pub spec: TableSpec,
    /// Every column as the user sees it, computed columns included, in declaration order.
    pub schema: SchemaRef,
    pub watermark: Option<WatermarkSpec>,
    pub source_caps: Option<SourceCaps>,
    pub sink_caps: Option<SinkCaps>,
    pub pos: Option<Pos>,
}

/// `WATERMARK FOR column AS expr`, planned against the table's columns (executed by the event-time issue).
#[derive(Debug, Clone)]
pub struct WatermarkSpec {
    pub column: String,
    /// `SELECT column AS __sluice_rowtime, expr AS __sluice_watermark FROM table`, optimized: a
    /// projection over the connector's scan, which the source evaluates on every batch it reads.
    pub plan: LogicalPlan,
    /// The expression as written, for `explain`.
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct PlannedInsert {
    pub sink: String,
    /// Optimized plan whose output columns are the sink's written columns, in order and type.
    pub plan: LogicalPlan,
    pub pos: Option<Pos>,
}

/// Reads `${VAR}` values; the binary passes the process environment, tests pass a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Prefix of the internal name under which a table with computed columns registers its connector
/// columns; the user-facing name is a view over it.
pub const SOURCE_PREFIX: &str = "__sluice_source__";

pub fn plan_script(
    sql: &str,
    catalog: &dyn ConnectorCatalog,
    overrides: &[(String, String)],
    env: EnvLookup<'_>,
) -> Result<PlannedPipeline, Vec<SqlError>> {
    let (statements, mut errors) = parse_script(sql);
    let mut planner = Planner::new(catalog, env);
    for s in statements {
        if let Err(e) = planner.statement(s) {
            errors.extend(e);
        }
    }
    for (k, v) in overrides {
        planner.settings.insert(k.clone(), v.clone());
    }
    if errors.is_empty() && planner.inserts.is_empty() {
        errors.push(SqlError::new(None, "the file has no INSERT INTO statement: there is nothing to run"));
    }
    errors.sort_by_key(|e| e.pos);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PlannedPipeline {
        settings: planner.settings,
        tables: planner.tables,
        inserts: planner.inserts,
        session: planner.state,
    })
}

pub fn new_session() -> SessionState {
    let mut config = SessionConfig::new();
    {
        let opts = config.options_mut();
        opts.sql_parser.enable_ident_normalization = false;
        opts.sql_parser.parse_float_as_decimal = true;
        opts.sql_parser.collect_spans = true;
        opts.sql_parser.map_string_types_to_utf8view = false;
        opts.execution.target_partitions = 1;
    }
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_type_planner(Arc::new(crate::functions::FlinkTypePlanner))
        .build();
    // Splitting COUNT(DISTINCT x) into two aggregations suits batch execution; on a stream it would
    // double the state and turn one window aggregation into an updating one.
    let rules: Vec<_> =
        state.optimizers().iter().filter(|r| r.name() != "single_distinct_aggregation_to_group_by").cloned().collect();
    let mut state = SessionStateBuilder::new_from_existing(state).with_optimizer_rules(rules).build();
    crate::functions::register(&mut state);
    state
}

struct Planner<'a> {
    catalog: &'a dyn ConnectorCatalog,
    env: EnvLookup<'a>,
    state: SessionState,
    settings: BTreeMap<String, String>,
    tables: BTreeMap<String, PlannedTable>,
    defs: BTreeMap<String, TableDef>,
    views: BTreeSet<String>,
    inserts: Vec<PlannedInsert>,
    /// (table, role) pairs whose connector options were already checked (reported at most once).
    checked: BTreeSet<(String, Role)>,
    /// Counter for internal table names (window TVFs, temporal tables, derived views).
    internal_names: std::cell::Cell<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Source,
    Sink,
}

type Errors = Vec<SqlError>;

fn one(e: SqlError) -> Errors {
    vec![e]
}

fn object_name(n: &ObjectName) -> (String, Span) {
    let idents: Vec<&Ident> = n.0.iter().filter_map(|p| p.as_ident()).collect();
    let name = idents.last().map(|i| i.value.clone()).unwrap_or_default();
    let span = idents.first().map(|i| i.span).unwrap_or(Span::empty());
    (name, span)
}

impl<'a> Planner<'a> {
    fn new(catalog: &'a dyn ConnectorCatalog, env: EnvLookup<'a>) -> Self {
        Planner {
            catalog,
            env,
            state: new_session(),
            settings: BTreeMap::new(),
            tables: BTreeMap::new(),
            defs: BTreeMap::new(),
            views: BTreeSet::new(),
            inserts: Vec::new(),
            checked: BTreeSet::new(),
            internal_names: std::cell::Cell::new(0),
        }
    }

    fn statement(&mut self, s: Statement) -> Result<(), Errors> {
        match s {
            Statement::Set { key, value, .. } => {
                self.settings.insert(key, value);
                Ok(())
            }
            Statement::CreateTable(def) => self.create_table(*def),
            Statement::CreateView { name, columns, query, .. } => self.create_view(&name, &columns, query),
            Statement::Insert(insert) => self.insert(insert),
            Statement::StatementSet(inserts) => {
                let errors: Errors = inserts.into_iter().filter_map(|i| self.insert(i).err()).flatten().collect();
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(errors)
                }
            }
        }
    }

    fn name_taken(&self, name: &str, span: Span) -> Result<(), SqlError> {
        if self.tables.contains_key(name) || self.views.contains(name) {
            return Err(SqlError::at(span, format!("table or view '{name}' is already defined")));
        }
        Ok(())
    }

    fn create_table(&mut self, def: TableDef) -> Result<(), Errors> {
        let (name, name_span) = object_name(&def.name);
        if def.if_not_exists && self.tables.contains_key(&name) {
            return Ok(());
        }
        self.name_taken(&name, name_span).map_err(one)?;
        // Option errors are reported but do not stop the table from being defined, so that the
        // statements using it are still checked (and do not report it as unknown).
        let mut option_errors = Vec::new();

        // Options, with ${VAR} from the environment.
        let mut options = BTreeMap::new();
        let mut written = BTreeMap::new();
        for o in &def.options {
            match substitute_env(&o.value, self.env) {
                Ok((value, substituted)) => {
                    if substituted {
                        written.insert(o.key.clone(), o.value.clone());
                    }
                    options.insert(o.key.clone(), value);
                }
                Err(var) => {
                    // Keep the raw text so the option is not also reported as missing.
                    options.insert(o.key.clone(), o.value.clone());
                    option_errors.push(SqlError::at(
                        o.value_span,
                        format!(
                            "environment variable '{var}' is not set (used in option '{}' of table '{name}')",
                            o.key
                        ),
                    ));
                }
            }
        }
        let connector = match options.remove("connector") {
            Some(c) => c,
            None => {
                option_errors.push(SqlError::at(
                    name_span,
                    format!(
                        "table '{name}' has no 'connector' option (known connectors: {})",
                        self.catalog.connectors().join(", ")
                    ),
                ));
                String::new()
            }
        };
        if !connector.is_empty() && !self.catalog.connectors().contains(&connector.as_str()) {
            // Reported here once; the connector checks of later statements skip this table.
            self.checked.insert((name.clone(), Role::Source));
            self.checked.insert((name.clone(), Role::Sink));
            let span = def.options.iter().find(|o| o.key == "connector").map(|o| o.value_span).unwrap_or(name_span);
            option_errors.push(SqlError::at(span, {
                let known = self.catalog.connectors();
                let close = known
                    .iter()
                    .filter(|k| strsim::levenshtein(k, &connector) <= 2)
                    .min_by_key(|k| strsim::levenshtein(k, &connector));
                let hint = close.map(|c| format!("did you mean '{c}'? ")).unwrap_or_default();
                format!("unknown connector '{connector}' ({hint}known: {})", known.join(", "))
            }));
        }

        // Columns: connector columns first (physical + metadata), computed ones planned afterwards.
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        let mut connector_fields = Vec::new();
        let mut metadata = Vec::new();
        for c in &def.columns {
            if !seen.insert(c.name.value.clone()) {
                errors.push(SqlError::at(c.name.span, format!("column '{}' is defined twice", c.name.value)));
            }
            match &c.kind {
                ColumnKind::Physical(t) => {
                    connector_fields.push(Field::new(&c.name.value, t.data_type.clone(), t.nullable))
                }
                ColumnKind::Metadata { ty, key, is_virtual } => {
                    connector_fields.push(Field::new(&c.name.value, ty.data_type.clone(), true));
                    metadata.push(MetadataColumn {
                        column: c.name.value.clone(),
                        key: key.clone().unwrap_or_else(|| c.name.value.clone()),
                        is_virtual: *is_virtual,
                    });
                }
                ColumnKind::Computed(_) => {}
            }
        }
        for k in &def.primary_key {
            if !seen.contains(&k.value) {
                errors.push(SqlError::at(
                    k.span,
                    format!("primary key column '{}' is not a column of '{name}'", k.value),
                ));
            }
        }
        if !errors.is_empty() {
            errors.extend(option_errors);
            return Err(errors);
        }
        let connector_schema = Arc::new(Schema::new(connector_fields));
        let spec = TableSpec {
            name: name.clone(),
            connector,
            options,
            written,
            connector_schema: connector_schema.clone(),
            metadata,
            primary_key: def.primary_key.iter().map(|k| k.value.clone()).collect(),
        };
        let provider = Arc::new(StreamTable { spec: spec.clone() });
        let computed: Vec<_> = def.columns.iter().filter(|c| matches!(c.kind, ColumnKind::Computed(_))).collect();
        let schema = if computed.is_empty() {
            self.register(&name, provider)?;
            connector_schema
        } else {
            // `name` is a view: SELECT <each column in order, computed ones as expressions> FROM source.
            let internal = format!("{SOURCE_PREFIX}{name}");
            self.register(&internal, provider)?;
            let items = def
                .columns
                .iter()
                .map(|c| {
                    let e = match &c.kind {
                        ColumnKind::Computed(e) => e.as_ref().clone(),
                        _ => datafusion::sql::sqlparser::ast::Expr::Identifier(c.name.clone()),
                    };
                    SelectItem::ExprWithAlias { expr: e, alias: c.name.clone() }
                })
                .collect();
            let query = select_from(items, &internal, &name);
            let plan = self.plan_query(query, Pos::from_location(name_span.start)).map_err(one)?;
            let schema = Arc::new(plan.schema().as_arrow().clone());
            self.register(&name, Arc::new(ViewTable::new(plan, None)))?;
            schema
        };
        self.defs.insert(name.clone(), def.clone());

        let watermark = match &def.watermark {
            None => None,
            Some(w) => Some(self.plan_watermark(&name, &schema, w).map_err(one)?),
        };
        self.tables.insert(
            name,
            PlannedTable {
                spec,
                schema,
                watermark,
                source_caps: None,
                sink_caps: None,
                pos: Pos::from_location(name_span.start),
            },
        );
        if option_errors.is_empty() {
            Ok(())
        } else {
            Err(option_errors)
        }
    }

    fn plan_watermark(
        &self,
        table: &str,
        schema: &SchemaRef,
        w: &crate::ddl::WatermarkDef,
    ) -> Result<WatermarkSpec, SqlError> {
        let field = schema.field_with_name(&w.column.value).map_err(|_| {
            SqlError::at(w.column.span, format!("watermark column '{}' is not a column of '{table}'", w.column.value))
        })?;
        // As in Flink: a rowtime is TIMESTAMP(p) or TIMESTAMP_LTZ(p) with p at most 3.
        let rowtime = matches!(field.data_type(), DataType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, _));
        if !rowtime {
            return Err(SqlError::at(
                w.column.span,
                format!(
                    "watermark column '{}' must be TIMESTAMP(p) or TIMESTAMP_LTZ(p) with p from 0 to 3, but it is {}",
                    w.column.value,
                    flink_type_name(field.data_type())
                ),
            ));
        }
        let items = vec![
            SelectItem::ExprWithAlias {
                expr: AstExpr::Identifier(w.column.clone()),
                alias: Ident::new("__sluice_rowtime"),
            },
            SelectItem::ExprWithAlias { expr: w.expr.clone(), alias: Ident::new("__sluice_watermark") },
        ];
        let pos = Pos::from_location(w.column.span.start);
        let plan = self.plan_query(select_from(items, table, table), pos)?;
        let out = plan.schema().field(1).data_type().clone();
        if !matches!(out, DataType::Timestamp(..)) {
            return Err(SqlError::at(
                w.column.span,
                format!("watermark expression must return a timestamp, but it returns {}", flink_type_name(&out)),
            ));
        }
        let plan = self.analyze(plan, pos)?;
        let plan = self.state.optimize(&plan).map_err(|e| df_error(e, pos))?;
        Ok(WatermarkSpec { column: w.column.value.clone(), plan, text: w.expr.to_string() })
    }

    fn register(&mut self, name: &str, provider: Arc<dyn datafusion::catalog::TableProvider>) -> Result<(), Errors> {
        self.state
            .schema_for_ref(name)
            .and_then(|s| s.register_table(name.to_string(), provider))
            .map(|_| ())
            .map_err(|e| one(SqlError::new(None, format!("internal: cannot register '{name}': {e}"))))
    }

    fn create_view(&mut self, name: &ObjectName, columns: &[Ident], query: Box<Query>) -> Result<(), Errors> {
        let (name, span) = object_name(name);
        self.name_taken(&name, span).map_err(one)?;
        let mut plan = self.plan_query(query, Pos::from_location(span.start)).map_err(one)?;
        if !columns.is_empty() {
            if columns.len() != plan.schema().fields().len() {
                return Err(one(SqlError::at(
                    span,
                    format!(
                        "view '{name}' names {} columns but its query returns {}",
                        columns.len(),
                        plan.schema().fields().len()
                    ),
                )));
            }
            let exprs: Vec<Expr> = plan
                .schema()
                .columns()
                .into_iter()
                .zip(columns)
                .map(|(c, n)| Expr::Column(c).alias(n.value.clone()))
                .collect();
            plan = LogicalPlanBuilder::from(plan)
                .project(exprs)
                .and_then(|b| b.build())
                .map_err(|e| one(df_error(e, None)))?;
        }
        self.register(&name, Arc::new(ViewTable::new(plan, None)))?;
        self.views.insert(name);
        Ok(())
    }

    fn plan_query(&self, mut query: Box<Query>, fallback: Option<Pos>) -> Result<LogicalPlan, SqlError> {
        crate::rewrite::name_expressions(&mut query);
        self.rewrite_relations(&mut query, fallback)?;
        let stmt = DfStatement::Statement(Box::new(AstStatement::Query(query)));
        futures::executor::block_on(self.state.statement_to_plan(stmt)).map_err(|e| df_error(e, fallback))
    }

    /// Window TVFs, legacy group windows and `FOR SYSTEM_TIME AS OF` become internal tables (see
    /// [`crate::relations`]) before DataFusion plans the query.
    fn rewrite_relations(&self, query: &mut Query, pos: Option<Pos>) -> Result<(), SqlError> {
        use datafusion::sql::sqlparser::ast::{VisitMut, VisitorMut};
        use std::ops::ControlFlow;
        struct V<'p, 'a> {
            planner: &'p Planner<'a>,
            pos: Option<Pos>,
        }
        impl VisitorMut for V<'_, '_> {
            type Break = SqlError;
            fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<SqlError> {
                let planner = self.planner;
                let pos = self.pos;
                let mut derived = |q: Box<Query>| planner.internal_view(q, pos);
                let r = relations::for_each_select(&mut query.body, &mut |select| {
                    relations::rewrite_legacy_group_window(select, &mut derived)?;
                    relations::mark_temporal_joins(select)
                });
                match r {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => ControlFlow::Break(e),
                }
            }
            fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<SqlError> {
                let r = match t {
                    TableFactor::TableFunction { expr: AstExpr::Function(f), alias } if relations::is_window_tvf(f) => {
                        let alias = alias.take();
                        match relations::window_call(f).and_then(|call| self.planner.window_table(call, self.pos)) {
                            Ok(name) => {
                                *t = relations::table_factor(&name, alias);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                    TableFactor::Table { .. } => match relations::temporal_version(t) {
                        None => Ok(()),
                        Some(Err(e)) => Err(e),
                        Some(Ok(left_time)) => {
                            let TableFactor::Table { name, alias, .. } = t else { unreachable!("matched") };
                            let (table, span) = object_name(name);
                            let alias = alias.take().unwrap_or_else(|| TableAlias {
                                explicit: true,
                                name: Ident::new(table.clone()),
                                columns: vec![],
                                at: None,
                            });
                            self.planner.temporal_table(&table, span, left_time, self.pos).map(|name| {
                                *t = relations::table_factor(&name, Some(alias));
                            })
                        }
                    },
                    _ => Ok(()),
                };
                match r {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => ControlFlow::Break(e),
                }
            }
        }
        match query.visit(&mut V { planner: self, pos }) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(e) => Err(e),
        }
    }

    fn next_internal(&self, prefix: &str) -> String {
        let n = self.internal_names.get();
        self.internal_names.set(n + 1);
        format!("{prefix}{n}")
    }

    /// `SELECT * FROM name`, analyzed and optimized: the input of a window TVF or temporal join.
    fn plan_input(&self, table: &str, pos: Option<Pos>) -> Result<LogicalPlan, SqlError> {
        let wildcard = SelectItem::Wildcard(datafusion::sql::sqlparser::ast::WildcardAdditionalOptions::default());
        let plan = self.plan_query(select_from(vec![wildcard], table, table), pos)?;
        let plan = self.analyze(plan, pos)?;
        self.state.optimize(&plan).map_err(|e| df_error(e, pos))
    }

    fn internal_view(&self, query: Box<Query>, pos: Option<Pos>) -> Result<ObjectName, SqlError> {
        let plan = self.plan_query(query, pos)?;
        let name = self.next_internal(relations::VIEW_PREFIX);
        self.register_shared(&name, Arc::new(ViewTable::new(plan, None)))?;
        Ok(ObjectName::from(vec![Ident::new(name)]))
    }

    fn window_table(&self, call: relations::WindowCall, pos: Option<Pos>) -> Result<String, SqlError> {
        let (table, span) = object_name(&call.table);
        let at = |m: String| SqlError::at(span, m);
        if !self.tables.contains_key(&table)
            && !self.views.contains(&table)
            && !table.starts_with(relations::VIEW_PREFIX)
        {
            return Err(at(format!("unknown table '{table}' in window function")));
        }
        if let Some(t) = self.tables.get(&table) {
            match &t.watermark {
                Some(w) if w.column == call.time_column => {}
                _ => {
                    return Err(at(format!(
                        "the window's time column '{}' is not a time attribute of '{table}': declare WATERMARK FOR {} AS ... in its CREATE TABLE",
                        call.time_column, call.time_column
                    )))
                }
            }
        }
        let input = self.plan_input(&table, pos)?;
        let schema = relations::window_schema(input.schema().as_arrow(), &call.time_column).map_err(at)?;
        for k in &call.partition_by {
            if schema.field_with_name(k).is_err() {
                return Err(at(format!("PARTITION BY column '{k}' is not a column of '{table}'")));
            }
        }
        let name = self.next_internal(relations::WINDOW_PREFIX);
        let provider = relations::WindowTvfTable {
            input,
            spec: call.spec,
            time_column: call.time_column,
            partition_by: call.partition_by,
            schema,
        };
        self.register_shared(&name, Arc::new(provider))?;
        Ok(name)
    }

    fn temporal_table(
        &self,
        table: &str,
        span: Span,
        left_time: Vec<String>,
        pos: Option<Pos>,
    ) -> Result<String, SqlError> {
        if !self.tables.contains_key(table) && !self.views.contains(table) {
            return Err(SqlError::at(span, format!("unknown table '{table}' in FOR SYSTEM_TIME AS OF")));
        }
        if let Some(t) = self.tables.get(table) {
            if t.spec.primary_key.is_empty() {
                return Err(SqlError::at(
                    span,
                    format!("the versioned table '{table}' of a temporal join needs a PRIMARY KEY (as in Flink)"),
                ));
            }
            if t.watermark.is_none() {
                return Err(SqlError::at(
                    span,
                    format!("the versioned table '{table}' of an event-time temporal join needs a WATERMARK"),
                ));
            }
        }
        let input = self.plan_input(table, pos)?;
        let schema = Arc::new(input.schema().as_arrow().clone());
        let name = self.next_internal(relations::TEMPORAL_PREFIX);
        let provider = relations::TemporalTable { input, name: table.to_string(), left_time, schema };
        self.register_shared(&name, Arc::new(provider))?;
        Ok(name)
    }

    fn register_shared(
        &self,
        name: &str,
        provider: Arc<dyn datafusion::catalog::TableProvider>,
    ) -> Result<(), SqlError> {
        self.state
            .schema_for_ref(name)
            .and_then(|s| s.register_table(name.to_string(), provider))
            .map(|_| ())
            .map_err(|e| SqlError::new(None, format!("internal: cannot register '{name}': {e}")))
    }

    /// DataFusion's analysis (views inlined, types coerced), then Flink's decimal result types.
    fn analyze(&self, plan: LogicalPlan, pos: Option<Pos>) -> Result<LogicalPlan, SqlError> {
        let analyzed = self
            .state
            .analyzer()
            .execute_and_check(plan, self.state.config_options(), |_, _| {})
            .map_err(|e| df_error(e, pos))?;
        crate::flink_types::apply(analyzed).map_err(|e| df_error(e, pos))
    }

    /// Plans one INSERT. The sink's options and the query are checked independently so that both
    /// kinds of error are reported at once.
    fn insert(&mut self, insert: InsertDef) -> Result<(), Errors> {
        let pos = Pos::from_location(insert.span.start);
        let (sink_name, sink_span) = object_name(&insert.table);
        let Some(sink) = self.tables.get(&sink_name) else {
            let hint = if self.views.contains(&sink_name) { " (it is a view; INSERT needs a table)" } else { "" };
            return Err(one(SqlError::at(sink_span, format!("unknown table '{sink_name}'{hint}"))));
        };
        let sink_spec = sink.spec.clone();
        let mut errors = Vec::new();
        if self.checked.insert((sink_name.clone(), Role::Sink)) {
            match self.catalog.check_sink(&sink_spec) {
                Ok(caps) => self.tables.get_mut(&sink_name).expect("looked up above").sink_caps = Some(caps),
                Err(e) => errors.push(self.connector_error(&sink_name, e)),
            }
        }
        let plan = self
            .plan_query(insert.query, pos)
            .and_then(|plan| self.analyze(plan, pos))
            .and_then(|plan| self.cast_to_sink(plan, &sink_spec, &insert.columns, sink_span))
            .and_then(|plan| self.state.optimize(&plan).map_err(|e| df_error(e, pos)));
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                return Err(errors);
            }
        };
        for source in scanned_tables(&plan) {
            if !self.checked.insert((source.clone(), Role::Source)) {
                continue;
            }
            let spec = &self.tables[&source].spec;
            match self.catalog.check_source(spec) {
                Ok(caps) => self.tables.get_mut(&source).expect("scanned table exists").source_caps = Some(caps),
                Err(e) => errors.push(self.connector_error(&source, e)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.inserts.push(PlannedInsert { sink: sink_name, plan, pos });
        Ok(())
    }

    fn connector_error(&self, table: &str, e: sluice_common::ConnectorError) -> SqlError {
        let def = &self.defs[table];
        let span = e
            .option
            .as_ref()
            .and_then(|k| def.options.iter().find(|o| &o.key == k))
            .map(|o| o.key_span)
            .unwrap_or(def.with_span);
        let spec = &self.tables[table].spec;
        SqlError::at(span, format!("table '{table}': {}", spec.redact(&e.message)))
    }

    /// Projects the query onto the sink's written columns (named, ordered, cast), as Flink does.
    fn cast_to_sink(
        &self,
        plan: LogicalPlan,
        sink: &TableSpec,
        columns: &[Ident],
        span: Span,
    ) -> Result<LogicalPlan, SqlError> {
        let written: Vec<&Field> = sink
            .connector_schema
            .fields()
            .iter()
            .filter(|f| sink.metadata_for(f.name()).is_none_or(|m| !m.is_virtual))
            .map(|f| f.as_ref())
            .collect();
        let query_cols = plan.schema().columns();
        let targets: Vec<&Field> = if columns.is_empty() {
            written.clone()
        } else {
            columns
                .iter()
                .map(|c| {
                    written.iter().copied().find(|f| f.name() == &c.value).ok_or_else(|| {
                        SqlError::at(c.span, format!("unknown column '{}' in sink '{}'", c.value, sink.name))
                    })
                })
                .collect::<Result<_, _>>()?
        };
        if query_cols.len() != targets.len() {
            return Err(SqlError::at(
                span,
                format!(
                    "column count mismatch: the query returns {} columns but sink '{}' has {} ({})",
                    query_cols.len(),
                    sink.name,
                    targets.len(),
                    targets.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut exprs = Vec::with_capacity(written.len());
        for target in &written {
            let expr = match targets.iter().position(|t| t.name() == target.name()) {
                Some(i) => {
                    let from = plan.schema().field(i).data_type();
                    if !sink_cast_allowed(from, target.data_type()) {
                        return Err(SqlError::at(
                            span,
                            format!(
                                "type mismatch for column '{}' of sink '{}': the query gives {} but the sink expects {}",
                                target.name(),
                                sink.name,
                                flink_type_name(from),
                                flink_type_name(target.data_type())
                            ),
                        ));
                    }
                    let c = col(query_cols[i].clone());
                    if from == target.data_type() {
                        c
                    } else {
                        cast(c, target.data_type().clone())
                    }
                }
                None => cast(lit(datafusion::common::ScalarValue::Null), target.data_type().clone()),
            };
            exprs.push(expr.alias(target.name()));
        }
        LogicalPlanBuilder::from(plan).project(exprs).and_then(|b| b.build()).map_err(|e| df_error(e, None))
    }
}

/// Implicit casts Flink applies when writing to a sink: same family (numeric to numeric, string to
/// string, timestamp to timestamp) or NULL.
fn sink_cast_allowed(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to || from.is_null() {
        return true;
    }
    let numeric = |t: &DataType| t.is_numeric();
    let string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let binary = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView | FixedSizeBinary(_));
    match (from, to) {
        (f, t) if numeric(f) && numeric(t) => true,
        (f, t) if string(f) && string(t) => true,
        (f, t) if binary(f) && binary(t) => true,
        (Timestamp(..), Timestamp(..)) | (Date32, Timestamp(..)) => true,
        (Struct(a), Struct(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| sink_cast_allowed(x.data_type(), y.data_type()))
        }
        (List(a), List(b)) => sink_cast_allowed(a.data_type(), b.data_type()),
        (Map(..), Map(..)) => true,
        _ => false,
    }
}

/// Names of the connector tables read by a plan (views are inlined by the analyzer by now), including
/// the inputs of window TVFs and temporal joins.
pub fn scanned_tables(plan: &LogicalPlan) -> Vec<String> {
    let mut out = Vec::new();
    collect_scanned(plan, &mut out);
    out
}

fn collect_scanned(plan: &LogicalPlan, out: &mut Vec<String>) {
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                if let Some(t) = provider.downcast_ref::<StreamTable>() {
                    if !out.contains(&t.spec.name) {
                        out.push(t.spec.name.clone());
                    }
                } else if let Some(w) = provider.downcast_ref::<relations::WindowTvfTable>() {
                    collect_scanned(&w.input, out);
                } else if let Some(t) = provider.downcast_ref::<relations::TemporalTable>() {
                    collect_scanned(&t.input, out);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

/// `SELECT items FROM table AS alias`, built on a parsed skeleton so the expressions keep their spans.
fn select_from(items: Vec<SelectItem>, table: &str, alias: &str) -> Box<Query> {
    let mut q = Parser::new(&FlinkDialect)
        .try_with_sql("SELECT 1 FROM `t` AS `a`")
        .and_then(|mut p| p.parse_query())
        .expect("static SQL parses");
    if let SetExpr::Select(sel) = q.body.as_mut() {
        sel.projection = items;
        if let TableFactor::Table { name, alias: a, .. } = &mut sel.from[0].relation {
            *name = ObjectName::from(vec![Ident::with_quote('`', table)]);
            if let Some(a) = a {
                a.name = Ident::with_quote('`', alias);
            }
        }
    }
    q
}

/// Replaces each `${NAME}` with the variable's value. Returns the value and whether anything was
/// replaced (such values are secrets), or the name of the first missing variable.
pub fn substitute_env(value: &str, env: EnvLookup<'_>) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut substituted = false;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        let v = env(name).ok_or_else(|| name.to_string())?;
        out.push_str(&rest[..start]);
        out.push_str(&v);
        substituted = true;
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok((out, substituted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_substitution_marks_secrets_and_names_missing_vars() {
        let env = |k: &str| (k == "PW").then(|| "hunter2".to_string());
        assert_eq!(substitute_env("plain", &env).unwrap(), ("plain".to_string(), false));
        assert_eq!(substitute_env("user:${PW}@h", &env).unwrap(), ("user:hunter2@h".to_string(), true));
        assert_eq!(substitute_env("${NOPE}", &env).unwrap_err(), "NOPE");
    }
}
