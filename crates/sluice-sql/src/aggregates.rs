//! Flink's aggregate semantics where DataFusion's differ: `AVG` of an integer column is an integer
//! (the sum divided by the count, truncated toward zero, as Flink's integer AVG does), and `AVG` of a
//! `DECIMAL(p, s)` is a `DECIMAL(38, max(6, s))` rounded HALF_UP; floating-point arguments use
//! DataFusion's `AVG`.

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};
use std::sync::Arc;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkAvg {
    signature: Signature,
    inner: Arc<AggregateUDF>,
}

impl FlinkAvg {
    pub fn new() -> Self {
        FlinkAvg { signature: Signature::user_defined(Volatility::Immutable), inner: avg_udaf() }
    }
}

impl Default for FlinkAvg {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for FlinkAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Integers stay integers (Flink's integer AVG); decimals and durations go to DataFusion's AVG
    /// as they are; other numbers as DOUBLE.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = arg_types else {
            return plan_err!("AVG takes one argument, got {}", arg_types.len());
        };
        Ok(vec![match t {
            t if t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Duration(_)) => t.clone(),
            t if t.is_numeric() || t.is_null() => DataType::Float64,
            t => return plan_err!("AVG expects a number, got {}", sluice_common::flink_type_name(t)),
        }])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) if t.is_integer() => Ok(t.clone()),
            Some(DataType::Decimal128(_, s)) => Ok(DataType::Decimal128(38, (*s).max(6))),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let exact = |input: &DataType| {
            Ok(Box::new(ExactAvg { sum: 0, count: 0, input: input.clone(), out: args.return_type().clone() }) as _)
        };
        match args.expr_fields.first().map(|f| f.data_type()) {
            Some(t) if t.is_integer() && !args.is_distinct => exact(t),
            Some(t @ DataType::Decimal128(..)) if !args.is_distinct => exact(t),
            _ => self.inner.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        match args.input_fields.first().map(|f| f.data_type()) {
            Some(t) if t.is_integer() || matches!(t, DataType::Decimal128(..)) => Ok(vec![
                Arc::new(Field::new(format!("{}[sum]", args.name), DataType::Int64, true)),
                Arc::new(Field::new(format!("{}[count]", args.name), DataType::Int64, true)),
            ]),
            _ => self.inner.state_fields(args),
        }
    }
}

/// Sum and count of the non-NULL values (unscaled for decimals); the mean in Flink's result type.
#[derive(Debug)]
struct ExactAvg {
    sum: i128,
    count: i64,
    input: DataType,
    out: DataType,
}

impl ExactAvg {
    fn fold(&mut self, values: &ArrayRef, sign: i128) -> Result<()> {
        if let DataType::Decimal128(..) = values.data_type() {
            for x in values.as_primitive::<Decimal128Type>().iter().flatten() {
                self.sum += sign * x;
                self.count += sign as i64;
            }
            return Ok(());
        }
        let v = cast(values, &DataType::Int64)?;
        for x in v.as_primitive::<Int64Type>().iter().flatten() {
            self.sum += sign * x as i128;
            self.count += sign as i64;
        }
        Ok(())
    }
}

impl Accumulator for ExactAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.fold(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.fold(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count == 0 {
            return ScalarValue::try_from(&self.out);
        }
        match (&self.input, &self.out) {
            (DataType::Decimal128(_, s_in), DataType::Decimal128(p, s)) => {
                let v =
                    crate::flink_types::divide_half_up(self.sum, *s_in as i32, self.count as i128, 0, *p, *s as i32)?;
                Ok(ScalarValue::Decimal128(v, *p, *s))
            }
            // i128 division truncates toward zero, like Java's long division.
            _ => ScalarValue::Int64(Some((self.sum / self.count as i128) as i64)).cast_to(&self.out),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.sum as i64)), ScalarValue::Int64(Some(self.count))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let sums = states[0].as_primitive::<Int64Type>();
        let counts = states[1].as_primitive::<Int64Type>();
        for (s, c) in sums.iter().zip(counts.iter()) {
            self.sum += s.unwrap_or(0) as i128;
            self.count += c.unwrap_or(0);
        }
        Ok(())
    }
}
