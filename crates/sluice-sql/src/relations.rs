//! Flink's table-valued relations, which DataFusion does not know, rewritten before planning:
//!
//! - window TVFs `TABLE(TUMBLE|HOP|CUMULATE|SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), ...))`
//!   become a [`WindowTvfTable`]: the input table plus `window_start`, `window_end`, `window_time`;
//! - the legacy group windows `GROUP BY TUMBLE(ts, INTERVAL ...)` with `TUMBLE_START(...)` and friends
//!   become the same window TVF grouped by `window_start, window_end`;
//! - `JOIN v FOR SYSTEM_TIME AS OF l.ts` becomes a join with a [`TemporalTable`], which the stream
//!   planner turns into an event-time temporal join.
//!
//! Each becomes an internally named table (`__sluice_window_<n>`, `__sluice_temporal_<n>`) registered
//! in the session, keeping the user's alias so column references resolve as written.

use crate::diagnostics::SqlError;
use crate::script::PARTITION_BY_MARKER;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::{
    DateTimeField, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, GroupByExpr,
    Ident, ObjectName, ObjectNamePart, Query, Select, SetExpr, TableAlias, TableFactor, TableVersion, Value,
};
use datafusion::sql::sqlparser::tokenizer::Span;
use sluice_common::{WindowKind, WindowSpec};
use std::sync::Arc;

pub const WINDOW_PREFIX: &str = "__sluice_window_";
pub const TEMPORAL_PREFIX: &str = "__sluice_temporal_";
pub const VIEW_PREFIX: &str = "__sluice_view_";

/// A window TVF over `input`: the input's columns, then `window_start`, `window_end`, `window_time`.
#[derive(Debug)]
pub struct WindowTvfTable {
    /// `SELECT * FROM <table>`, analyzed and optimized.
    pub input: LogicalPlan,
    pub spec: WindowSpec,
    /// The `DESCRIPTOR` column: the input's rowtime.
    pub time_column: String,
    /// SESSION's `PARTITION BY` columns.
    pub partition_by: Vec<String>,
    pub schema: SchemaRef,
}

/// The versioned side of an event-time temporal join.
#[derive(Debug)]
pub struct TemporalTable {
    /// `SELECT * FROM <versioned table or view>`, analyzed and optimized.
    pub input: LogicalPlan,
    /// The table or view name as written.
    pub name: String,
    /// The `FOR SYSTEM_TIME AS OF` column of the probe side, as written (`[qualifier.]column`).
    pub left_time: Vec<String>,
    pub schema: SchemaRef,
}

macro_rules! unscannable {
    ($t:ty, $what:literal) => {
        #[async_trait::async_trait]
        impl TableProvider for $t {
            fn schema(&self) -> SchemaRef {
                self.schema.clone()
            }
            fn table_type(&self) -> TableType {
                TableType::Temporary
            }
            async fn scan(
                &self,
                _state: &dyn Session,
                _projection: Option<&Vec<usize>>,
                _filters: &[DfExpr],
                _limit: Option<usize>,
            ) -> DfResult<Arc<dyn ExecutionPlan>> {
                Err(DataFusionError::Plan(format!("{} is executed by the sluice runtime", $what)))
            }
        }
    };
}
unscannable!(WindowTvfTable, "a window TVF");
unscannable!(TemporalTable, "a temporal join");

/// The output schema of a window TVF over `input`.
pub fn window_schema(input: &Schema, time_column: &str) -> Result<SchemaRef, String> {
    let field = input
        .field_with_name(time_column)
        .map_err(|_| format!("the DESCRIPTOR column '{time_column}' is not a column of the window's input"))?;
    let window_time = match field.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Second, tz) => {
            DataType::Timestamp(TimeUnit::Millisecond, tz.clone())
        }
        other => {
            return Err(format!(
                "the window's time column '{time_column}' must be a time attribute (TIMESTAMP(3) or TIMESTAMP_LTZ(3) with a WATERMARK), but it is {}",
                sluice_common::flink_type_name(other)
            ))
        }
    };
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for name in ["window_start", "window_end", "window_time"] {
        if fields.iter().any(|f| f.name() == name) {
            return Err(format!("the window's input already has a column named '{name}'"));
        }
    }
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    fields.push(Field::new("window_start", ts.clone(), false));
    fields.push(Field::new("window_end", ts, false));
    fields.push(Field::new("window_time", window_time, false));
    Ok(Arc::new(Schema::new(fields)))
}

/// `INTERVAL '10' MINUTE` (and `'10 minutes'`) in milliseconds.
pub fn interval_ms(e: &Expr) -> Result<i64, String> {
    let Expr::Interval(iv) = e else {
        return Err(format!("expected an INTERVAL literal such as INTERVAL '10' MINUTE, found {e}"));
    };
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.trim().to_string(),
            Value::Number(n, _) => n.clone(),
            other => return Err(format!("unsupported interval value {other}")),
        },
        other => return Err(format!("unsupported interval value {other}")),
    };
    let unit_ms = |f: &DateTimeField| -> Result<i64, String> {
        Ok(match f {
            DateTimeField::Millisecond | DateTimeField::Milliseconds => 1,
            DateTimeField::Second | DateTimeField::Seconds => 1_000,
            DateTimeField::Minute | DateTimeField::Minutes => 60_000,
            DateTimeField::Hour | DateTimeField::Hours => 3_600_000,
            DateTimeField::Day | DateTimeField::Days => 86_400_000,
            other => return Err(format!("unsupported interval unit {other} for a window")),
        })
    };
    let number = |s: &str| s.parse::<f64>().map_err(|_| format!("cannot read interval value '{s}'"));
    let ms = match &iv.leading_field {
        Some(f) => number(&text)? * unit_ms(f)? as f64,
        None => {
            let mut parts = text.split_whitespace();
            let n = number(parts.next().unwrap_or_default())?;
            let unit = parts.next().unwrap_or("second").to_ascii_lowercase();
            let per = match unit.trim_end_matches('s') {
                "millisecond" => 1,
                "second" => 1_000,
                "minute" => 60_000,
                "hour" => 3_600_000,
                "day" => 86_400_000,
                _ => return Err(format!("unsupported interval unit '{unit}' for a window")),
            };
            n * per as f64
        }
    };
    Ok(ms.round() as i64)
}

/// A plain table reference to `name` with `alias`.
pub fn table_factor(name: &str, alias: Option<TableAlias>) -> TableFactor {
    TableFactor::Table {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        alias,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

fn function_name(f: &Function) -> String {
    f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_uppercase()).unwrap_or_default()
}

fn name_span(f: &Function) -> Span {
    f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.span).unwrap_or(Span::empty())
}

/// A parsed window TVF call, before its input is planned.
pub struct WindowCall {
    pub table: ObjectName,
    pub time_column: String,
    pub partition_by: Vec<String>,
    pub spec: WindowSpec,
}

const WINDOW_FUNCTIONS: [&str; 4] = ["TUMBLE", "HOP", "CUMULATE", "SESSION"];

pub fn is_window_tvf(f: &Function) -> bool {
    WINDOW_FUNCTIONS.contains(&function_name(f).as_str())
}

/// Reads `TUMBLE(t, DESCRIPTOR(ts), size [, offset])`, `HOP(t, DESCRIPTOR(ts), slide, size [, offset])`,
/// `CUMULATE(t, DESCRIPTOR(ts), step, size [, offset])`, `SESSION(t [PARTITION BY k], DESCRIPTOR(ts), gap)`,
/// positional or with Flink's argument names (`DATA`, `TIMECOL`, `SIZE`, `SLIDE`, `STEP`, `GAP`, `OFFSET`).
pub fn window_call(f: &Function) -> Result<WindowCall, SqlError> {
    let name = function_name(f);
    let span = name_span(f);
    let err = |m: String| SqlError::at(span, m);
    let FunctionArguments::List(FunctionArgumentList { args, .. }) = &f.args else {
        return Err(err(format!("{name} needs arguments: {name}(TABLE t, DESCRIPTOR(ts), ...)")));
    };
    let mut positional: Vec<&Expr> = Vec::new();
    let mut named: Vec<(String, &Expr)> = Vec::new();
    let mut partition_by = Vec::new();
    for a in args {
        let (n, e) = match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (None, e),
            FunctionArg::Named { name, arg: FunctionArgExpr::Expr(e), .. } => {
                (Some(name.value.to_ascii_uppercase()), e)
            }
            other => return Err(err(format!("unsupported argument {other} in {name}"))),
        };
        if let Expr::Function(pf) = e {
            if function_name(pf) == PARTITION_BY_MARKER {
                if let FunctionArguments::List(l) = &pf.args {
                    for pa in &l.args {
                        let FunctionArg::Unnamed(FunctionArgExpr::Expr(pe)) = pa else { continue };
                        match pe {
                            Expr::Tuple(items) => partition_by.extend(items.iter().filter_map(column_name)),
                            Expr::Nested(inner) => partition_by.extend(column_name(inner)),
                            other => partition_by.extend(column_name(other)),
                        }
                    }
                }
                continue;
            }
        }
        match n {
            Some(n) => named.push((n, e)),
            None => positional.push(e),
        }
    }
    let params: &[&str] = match name.as_str() {
        "TUMBLE" => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
        "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
        "CUMULATE" => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
        _ => &["DATA", "TIMECOL", "GAP"],
    };
    if positional.len() > params.len() {
        return Err(err(format!("{name} takes at most {} arguments: {}", params.len(), params.join(", "))));
    }
    let mut values: Vec<Option<&Expr>> = vec![None; params.len()];
    for (i, e) in positional.into_iter().enumerate() {
        values[i] = Some(e);
    }
    for (n, e) in named {
        let Some(i) = params.iter().position(|p| *p == n) else {
            return Err(err(format!("{name} has no argument named {n} (its arguments: {})", params.join(", "))));
        };
        values[i] = Some(e);
    }
    let required = if name == "SESSION" { 3 } else { params.len() - 1 };
    if let Some(missing) = (0..required).find(|&i| values[i].is_none()) {
        return Err(err(format!("{name} is missing its {} argument", params[missing])));
    }
    let table = match values[0].expect("required") {
        Expr::Identifier(i) => ObjectName(vec![ObjectNamePart::Identifier(i.clone())]),
        Expr::CompoundIdentifier(parts) => ObjectName(parts.iter().cloned().map(ObjectNamePart::Identifier).collect()),
        other => return Err(err(format!("{name}'s first argument must be TABLE <name>, found {other}"))),
    };
    let time_column = match values[1].expect("required") {
        Expr::Function(d) if function_name(d) == "DESCRIPTOR" => match &d.args {
            FunctionArguments::List(l) if l.args.len() == 1 => match &l.args[0] {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => column_name(e),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| err(format!("{name}'s time argument must be DESCRIPTOR(<time column>)")))?;
    let ms = |i: usize| -> Result<i64, SqlError> { interval_ms(values[i].expect("checked")).map_err(&err) };
    let offset = match values.get(if name == "SESSION" { 99 } else { params.len() - 1 }).copied().flatten() {
        Some(e) => interval_ms(e).map_err(&err)?,
        None => 0,
    };
    let kind = match name.as_str() {
        "TUMBLE" => WindowKind::Tumble { size: ms(2)? },
        "HOP" => WindowKind::Hop { slide: ms(2)?, size: ms(3)? },
        "CUMULATE" => WindowKind::Cumulate { step: ms(2)?, size: ms(3)? },
        _ => WindowKind::Session { gap: ms(2)? },
    };
    if !partition_by.is_empty() && name != "SESSION" {
        return Err(err(format!("PARTITION BY is only allowed in SESSION windows, not in {name}")));
    }
    let spec = WindowSpec { kind, offset };
    spec.validate().map_err(err)?;
    Ok(WindowCall { table, time_column, partition_by, spec })
}

fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        _ => None,
    }
}

/// The `FOR SYSTEM_TIME AS OF` column of a temporal join, if this factor has one.
pub fn temporal_version(t: &TableFactor) -> Option<Result<Vec<String>, SqlError>> {
    let TableFactor::Table { version: Some(TableVersion::ForSystemTimeAsOf(e)), name, .. } = t else {
        return None;
    };
    Some(match e {
        Expr::Identifier(i) => Ok(vec![i.value.clone()]),
        Expr::CompoundIdentifier(parts) => Ok(parts.iter().map(|i| i.value.clone()).collect()),
        other => Err(SqlError::at(
            name.0.first().and_then(|p| p.as_ident()).map(|i| i.span).unwrap_or(Span::empty()),
            format!(
                "FOR SYSTEM_TIME AS OF needs the probe side's time attribute column (e.g. o.order_time), found {other}"
            ),
        )),
    })
}

/// Legacy group window functions and their auxiliary functions.
const LEGACY_GROUP: [&str; 3] = ["TUMBLE", "HOP", "SESSION"];

fn legacy_aux(name: &str) -> Option<&'static str> {
    let (prefix, suffix) = name.split_once('_')?;
    if !LEGACY_GROUP.contains(&prefix) {
        return None;
    }
    match suffix {
        "START" => Some("window_start"),
        "END" => Some("window_end"),
        "ROWTIME" => Some("window_time"),
        _ => None,
    }
}

/// Rewrites `SELECT ... FROM t GROUP BY k, TUMBLE(ts, INTERVAL '1' HOUR)` into
/// `SELECT ... FROM TABLE(TUMBLE(t, DESCRIPTOR(ts), INTERVAL '1' HOUR)) AS t GROUP BY k, window_start, window_end`,
/// replacing `TUMBLE_START(...)`/`_END`/`_ROWTIME` by the window columns. `derived` names a derived
/// table (`FROM (SELECT ...) x`) as a view so the TVF can take it. Returns `Ok(false)` when the select
/// has no group window.
pub fn rewrite_legacy_group_window(
    select: &mut Select,
    derived: &mut dyn FnMut(Box<Query>) -> Result<ObjectName, SqlError>,
) -> Result<bool, SqlError> {
    let GroupByExpr::Expressions(exprs, _) = &mut select.group_by else { return Ok(false) };
    let Some(idx) =
        exprs.iter().position(|e| matches!(e, Expr::Function(f) if LEGACY_GROUP.contains(&function_name(f).as_str())))
    else {
        return Ok(false);
    };
    let Expr::Function(call) = exprs.remove(idx) else { unreachable!("matched above") };
    let name = function_name(&call);
    let span = name_span(&call);
    exprs.insert(idx, Expr::Identifier(Ident::new("window_end")));
    exprs.insert(idx, Expr::Identifier(Ident::new("window_start")));
    if select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return Err(SqlError::at(
            span,
            format!("a GROUP BY {name}(...) window needs a single table in FROM (no joins)"),
        ));
    }
    let FunctionArguments::List(FunctionArgumentList { args, .. }) = &call.args else {
        return Err(SqlError::at(span, format!("{name} needs arguments")));
    };
    let mut args = args.clone();
    if args.is_empty() {
        return Err(SqlError::at(span, format!("{name} needs a time attribute and interval(s)")));
    }
    let time = args.remove(0);
    let time_col = match &time {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => column_name(e),
        _ => None,
    }
    .ok_or_else(|| SqlError::at(span, format!("{name}'s first argument must be the time attribute column")))?;
    let relation = std::mem::replace(&mut select.from[0].relation, table_factor("", None));
    let (table, alias) = match relation {
        TableFactor::Table { name: t, alias, .. } => {
            let alias = alias.unwrap_or_else(|| TableAlias {
                explicit: true,
                name: t.0.last().and_then(|p| p.as_ident()).cloned().unwrap_or_else(|| Ident::new("w")),
                columns: vec![],
                at: None,
            });
            (t, alias)
        }
        TableFactor::Derived { subquery, alias, .. } => {
            let alias = alias.unwrap_or_else(|| TableAlias {
                explicit: true,
                name: Ident::new("w"),
                columns: vec![],
                at: None,
            });
            (derived(subquery)?, alias)
        }
        other => return Err(SqlError::at(span, format!("a GROUP BY {name}(...) window cannot read from {other}"))),
    };
    let table_arg = FunctionArg::Unnamed(FunctionArgExpr::Expr(match table.0.len() {
        1 => Expr::Identifier(table.0[0].as_ident().cloned().unwrap_or_else(|| Ident::new(""))),
        _ => Expr::CompoundIdentifier(table.0.iter().filter_map(|p| p.as_ident().cloned()).collect()),
    }));
    let descriptor = Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new("DESCRIPTOR"))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(Ident::new(time_col))))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    });
    let mut tvf_args = vec![table_arg, FunctionArg::Unnamed(FunctionArgExpr::Expr(descriptor))];
    tvf_args.extend(args);
    let mut tvf = call.clone();
    tvf.args =
        FunctionArguments::List(FunctionArgumentList { duplicate_treatment: None, args: tvf_args, clauses: vec![] });
    select.from[0].relation = TableFactor::TableFunction { expr: Expr::Function(tvf), alias: Some(alias) };

    // TUMBLE_START(...) and friends become the window columns.
    let replace = |e: &mut Expr| {
        let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(e, |x| {
            if let Expr::Function(f) = x {
                if let Some(col) = legacy_aux(&function_name(f)) {
                    *x = Expr::Identifier(Ident::with_span(name_span(f), col));
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    };
    for item in &mut select.projection {
        match item {
            datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(e) => {
                // Keep Flink's column name for an unnamed TUMBLE_START(...) (EXPR$n) by aliasing first.
                replace(e)
            }
            datafusion::sql::sqlparser::ast::SelectItem::ExprWithAlias { expr, .. } => replace(expr),
            _ => {}
        }
    }
    if let Some(h) = &mut select.having {
        replace(h);
    }
    Ok(true)
}

/// Applies [`rewrite_legacy_group_window`] to every SELECT of a query body.
pub fn for_each_select(
    body: &mut SetExpr,
    f: &mut dyn FnMut(&mut Select) -> Result<(), SqlError>,
) -> Result<(), SqlError> {
    match body {
        SetExpr::Select(s) => f(s),
        SetExpr::Query(q) => for_each_select(&mut q.body, f),
        SetExpr::SetOperation { left, right, .. } => {
            for_each_select(left, f)?;
            for_each_select(right, f)
        }
        _ => Ok(()),
    }
}

/// For each `JOIN t FOR SYSTEM_TIME AS OF l.ts ON cond` of the select, ANDs
/// `__sluice_system_time(l.ts)` into `cond` (see [`crate::functions::SYSTEM_TIME_MARKER`]).
pub fn mark_temporal_joins(select: &mut Select) -> Result<(), SqlError> {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, JoinConstraint, JoinOperator};
    for from in &mut select.from {
        for join in &mut from.joins {
            let TableFactor::Table { version: Some(TableVersion::ForSystemTimeAsOf(time)), name, .. } = &join.relation
            else {
                continue;
            };
            let span = name.0.first().and_then(|p| p.as_ident()).map(|i| i.span).unwrap_or(Span::empty());
            // The marker also names a column of the versioned side (taken from the ON clause), so that
            // the optimizer cannot push it into either input.
            let right_name = match &join.relation {
                TableFactor::Table { alias: Some(a), .. } => a.name.value.clone(),
                _ => name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_default(),
            };
            let mut args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(time.clone()))];
            if let JoinOperator::Join(JoinConstraint::On(on))
            | JoinOperator::Inner(JoinConstraint::On(on))
            | JoinOperator::Left(JoinConstraint::On(on))
            | JoinOperator::LeftOuter(JoinConstraint::On(on)) = &join.join_operator
            {
                let mut found = None;
                let _ = datafusion::sql::sqlparser::ast::visit_expressions(on, |e| {
                    if let Expr::CompoundIdentifier(parts) = e {
                        if parts.len() == 2 && parts[0].value == right_name && found.is_none() {
                            found = Some(e.clone());
                        }
                    }
                    std::ops::ControlFlow::<()>::Continue(())
                });
                if let Some(r) = found {
                    args.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(r)));
                }
            }
            let marker = Expr::Function(Function {
                name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(crate::functions::SYSTEM_TIME_MARKER))]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args,
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            });
            let constraint = match &mut join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                    c
                }
                _ => {
                    return Err(SqlError::at(
                        span,
                        "FOR SYSTEM_TIME AS OF is supported in [INNER] JOIN and LEFT [OUTER] JOIN only (as in Flink)",
                    ))
                }
            };
            match constraint {
                JoinConstraint::On(on) => {
                    let cond = std::mem::replace(on, Expr::Value(Value::Null.into()));
                    *on = Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(cond))),
                        op: BinaryOperator::And,
                        right: Box::new(marker),
                    };
                }
                _ => {
                    return Err(SqlError::at(
                        span,
                        "a temporal join needs an ON clause with an equality on the versioned table's key",
                    ))
                }
            }
        }
    }
    Ok(())
}
