//! AST rewrites that make DataFusion plan a query the way Flink names it: an unnamed select
//! expression is called `EXPR$<position>` (Flink/Calcite's name), which also lets a query select
//! the same expression twice, as Flink allows.

use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, TableFactor};

pub fn name_expressions(query: &mut Query) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            name_expressions(&mut cte.query);
        }
    }
    set_expr(&mut query.body);
}

fn set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for (i, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(e) = item {
                    if !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                        let expr =
                            std::mem::replace(e, Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into()));
                        *item = SelectItem::ExprWithAlias { expr, alias: Ident::new(format!("EXPR${i}")) };
                    }
                }
            }
            for from in &mut select.from {
                table_factor(&mut from.relation);
                for join in &mut from.joins {
                    table_factor(&mut join.relation);
                }
            }
        }
        SetExpr::Query(q) => name_expressions(q),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(left);
            set_expr(right);
        }
        _ => {}
    }
}

fn table_factor(t: &mut TableFactor) {
    match t {
        TableFactor::Derived { subquery, .. } => name_expressions(subquery),
        TableFactor::NestedJoin { table_with_joins, .. } => {
            table_factor(&mut table_with_joins.relation);
            for j in &mut table_with_joins.joins {
                table_factor(&mut j.relation);
            }
        }
        _ => {}
    }
}
