//! Flink's DECIMAL arithmetic on top of DataFusion's. Both derive result types the same way
//! (SQL Server's rules), but they differ at the edges and Flink users see the difference in printed
//! scales: Flink widens BIGINT to DECIMAL(19, 0) (DataFusion: 20), and when a result needs more than
//! 38 digits Flink trades scale for integer digits (keeping at least 6) where DataFusion just caps
//! the precision. This pass rewrites an analyzed plan so every decimal `+ - * / %` has Flink's type:
//! the operands get Flink's widening and the result is cast (HALF_UP) to Flink's type. Division is
//! replaced by [`DecimalDivide`], because Arrow's decimal division is not exact to the result scale.

use datafusion::arrow::array::{Array, AsArray, Decimal128Array};
use datafusion::arrow::datatypes::{i256, DataType, Decimal128Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{exec_err, plan_err, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

const MAX_PRECISION: i32 = 38;
const MIN_ADJUSTED_SCALE: i32 = 6;

/// Flink's `LogicalTypeMerging.adjustPrecisionScale`.
fn adjust(precision: i32, scale: i32) -> (u8, i8) {
    if precision <= MAX_PRECISION {
        return (precision.max(1) as u8, scale as i8);
    }
    let digits = precision - scale;
    let min_scale = scale.min(MIN_ADJUSTED_SCALE);
    let scale = (MAX_PRECISION - digits).max(min_scale);
    (MAX_PRECISION as u8, scale as i8)
}

/// Flink's result type of `l op r` for DECIMAL operands, or `None` for other operators.
pub fn flink_decimal_result(op: Operator, (p1, s1): (i32, i32), (p2, s2): (i32, i32)) -> Option<(u8, i8)> {
    Some(match op {
        Operator::Plus | Operator::Minus => {
            let scale = s1.max(s2);
            adjust((p1 - s1).max(p2 - s2) + scale + 1, scale)
        }
        Operator::Multiply => adjust(p1 + p2 + 1, s1 + s2),
        Operator::Divide => {
            let scale = MIN_ADJUSTED_SCALE.max(s1 + p2 + 1);
            adjust(p1 - s1 + s2 + scale, scale)
        }
        Operator::Modulo => {
            let scale = s1.max(s2);
            adjust((p1 - s1).min(p2 - s2) + scale, scale)
        }
        _ => return None,
    })
}

/// The DECIMAL an exact numeric widens to in Flink.
fn flink_decimal_of(t: &DataType) -> Option<(i32, i32)> {
    Some(match t {
        DataType::Int8 => (3, 0),
        DataType::Int16 => (5, 0),
        DataType::Int32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::Decimal128(p, s) => (*p as i32, *s as i32),
        _ => return None,
    })
}

/// An operand after DataFusion's coercion: `CAST(bigint AS DECIMAL(20, 0))` becomes Flink's
/// `DECIMAL(19, 0)`. Returns the operand and its Flink decimal type (`None` if not a decimal).
fn operand(e: Expr, schema: &DFSchema) -> Result<(Expr, Option<(i32, i32)>)> {
    if let Expr::Cast(Cast { expr, field }) = &e {
        if matches!(field.data_type(), DataType::Decimal128(..)) {
            let inner = if literal_int(expr) { DataType::Int32 } else { expr.get_type(schema)? };
            if inner.is_integer() {
                if let Some((p, s)) = flink_decimal_of(&inner) {
                    let e = Expr::Cast(Cast::new(expr.clone(), DataType::Decimal128(p as u8, s as i8)));
                    return Ok((e, Some((p, s))));
                }
            }
        }
    }
    let t = e.get_type(schema)?;
    let d = if matches!(t, DataType::Decimal128(..)) { flink_decimal_of(&t) } else { None };
    Ok((e, d))
}

/// DataFusion types integer literals as BIGINT; Flink types them INT when they fit.
fn literal_int(e: &Expr) -> bool {
    matches!(e, Expr::Literal(ScalarValue::Int64(Some(v)), _) if i32::try_from(*v).is_ok())
}

fn rewrite_expr(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return Ok(Transformed::no(e));
    };
    if !matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo) {
        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })));
    }
    let (l, ld) = operand(*left, schema)?;
    let (r, rd) = operand(*right, schema)?;
    let rebuilt = Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)));
    let (Some(ld), Some(rd)) = (ld, rd) else {
        return Ok(Transformed::no(rebuilt));
    };
    let Some((p, s)) = flink_decimal_result(op, ld, rd) else {
        return Ok(Transformed::no(rebuilt));
    };
    let want = DataType::Decimal128(p, s);
    if op == Operator::Divide {
        // Arrow's decimal division keeps only 4 more digits than the dividend; Flink's is exact to
        // the result scale, rounded HALF_UP.
        let Expr::BinaryExpr(BinaryExpr { left, right, .. }) = rebuilt else { unreachable!("built above") };
        return Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::from(DecimalDivide::new())),
            vec![*left, *right],
        ))));
    }
    if rebuilt.get_type(schema)? == want {
        return Ok(Transformed::yes(rebuilt));
    }
    Ok(Transformed::yes(Expr::Cast(Cast::new(Box::new(rebuilt), want))))
}

/// Applies Flink's decimal result types to every expression of an analyzed plan, keeping names.
pub fn apply(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let mut schema = DFSchema::empty();
        for input in node.inputs() {
            schema.merge(input.schema());
        }
        let preserver = NamePreserver::new(&node);
        let rewritten = node.map_expressions(|e| {
            let name = preserver.save(&e);
            let t = e.transform_up(|e| rewrite_expr(e, &schema))?;
            Ok(if t.transformed { Transformed::yes(name.restore(t.data)) } else { t })
        })?;
        if rewritten.transformed {
            Ok(Transformed::yes(rewritten.data.recompute_schema()?))
        } else {
            Ok(rewritten)
        }
    })
    .map(|t| t.data)
}

/// `DECIMAL / DECIMAL` as Flink computes it: exact to Flink's result scale, HALF_UP; NULL when the
/// result does not fit the result precision; an error on division by zero.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecimalDivide {
    signature: Signature,
}

impl DecimalDivide {
    pub fn new() -> Self {
        DecimalDivide { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl Default for DecimalDivide {
    fn default() -> Self {
        Self::new()
    }
}

fn decimal_parts(t: &DataType) -> Result<(i32, i32)> {
    match t {
        DataType::Decimal128(p, s) => Ok((*p as i32, *s as i32)),
        other => plan_err!("decimal division of {other}"),
    }
}

/// `l / r` for unscaled values with scales `s1`, `s2`, to scale `s` and at most `p` digits.
pub fn divide_half_up(l: i128, s1: i32, r: i128, s2: i32, p: u8, s: i32) -> Result<Option<i128>> {
    if r == 0 {
        return exec_err!("Division by zero");
    }
    let shift = s + s2 - s1;
    let ten = i256::from_i128(10);
    let (num, den) = if shift >= 0 {
        match ten.checked_pow(shift as u32).and_then(|m| i256::from_i128(l).checked_mul(m)) {
            Some(n) => (n, i256::from_i128(r)),
            None => return Ok(None),
        }
    } else {
        match ten.checked_pow((-shift) as u32).and_then(|m| i256::from_i128(r).checked_mul(m)) {
            Some(d) => (i256::from_i128(l), d),
            None => return Ok(None),
        }
    };
    let (Some(q), Some(rem)) = (num.checked_div(den), num.checked_rem(den)) else { return Ok(None) };
    let twice = rem.wrapping_abs().wrapping_mul(i256::from_i128(2));
    let q = if twice >= den.wrapping_abs() { q.wrapping_add(num.signum().wrapping_mul(den.signum())) } else { q };
    let limit = ten.wrapping_pow(p as u32);
    Ok(q.to_i128().filter(|_| q.wrapping_abs() < limit))
}

impl ScalarUDFImpl for DecimalDivide {
    fn name(&self) -> &str {
        "flink_decimal_divide"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let (l, r) = (decimal_parts(&arg_types[0])?, decimal_parts(&arg_types[1])?);
        let (p, s) = flink_decimal_result(Operator::Divide, l, r).expect("division has a result type");
        Ok(DataType::Decimal128(p, s))
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(format!("{} / {}", args[0], args[1]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (_, s1) = decimal_parts(args.arg_fields[0].data_type())?;
        let (_, s2) = decimal_parts(args.arg_fields[1].data_type())?;
        let (p, s) = match args.return_field.data_type() {
            DataType::Decimal128(p, s) => (*p, *s as i32),
            other => return exec_err!("decimal division returns {other}"),
        };
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let l = arrays[0].as_primitive::<Decimal128Type>();
        let r = arrays[1].as_primitive::<Decimal128Type>();
        let mut out = Vec::with_capacity(l.len());
        for i in 0..l.len() {
            if l.is_null(i) || r.is_null(i) {
                out.push(None);
            } else {
                out.push(divide_half_up(l.value(i), s1, r.value(i), s2, p, s)?);
            }
        }
        let array = Decimal128Array::from(out).with_precision_and_scale(p, s as i8)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_is_exact_and_half_up() {
        // 0.001000 / 3 at scale 17 -> 0.00033333333333333
        assert_eq!(divide_half_up(1000, 6, 3, 0, 37, 17).unwrap(), Some(33_333_333_333_333));
        // 2 / 3 at scale 6 -> 0.666667 (HALF_UP); -2 / 3 -> -0.666667
        assert_eq!(divide_half_up(2, 0, 3, 0, 10, 6).unwrap(), Some(666_667));
        assert_eq!(divide_half_up(-2, 0, 3, 0, 10, 6).unwrap(), Some(-666_667));
        assert!(divide_half_up(1, 0, 0, 0, 10, 6).is_err());
        // Does not fit DECIMAL(3, 2): NULL as in Flink.
        assert_eq!(divide_half_up(100, 0, 1, 0, 3, 2).unwrap(), None);
    }

    #[test]
    fn results_match_flink() {
        // BIGINT / 1000.0 -> DECIMAL(26, 6) as in Flink.
        assert_eq!(flink_decimal_result(Operator::Divide, (19, 0), (5, 1)), Some((26, 6)));
        // DECIMAL(26, 6) / INT -> DECIMAL(37, 17); * INT -> 48 digits, adjusted to DECIMAL(38, 7).
        assert_eq!(flink_decimal_result(Operator::Divide, (26, 6), (10, 0)), Some((37, 17)));
        assert_eq!(flink_decimal_result(Operator::Multiply, (37, 17), (10, 0)), Some((38, 7)));
        assert_eq!(flink_decimal_result(Operator::Plus, (10, 2), (5, 3)), Some((12, 3)));
        assert_eq!(flink_decimal_result(Operator::Modulo, (10, 2), (5, 0)), Some((7, 2)));
    }
}
