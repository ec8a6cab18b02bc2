//! Filter: keeps rows whose predicate is TRUE (NULL and FALSE are dropped, as in SQL).

use crate::operator::Operator;
use datafusion::arrow::array::AsArray;
use datafusion::physical_expr::PhysicalExpr;
use sluice_common::{SluiceError, StreamBatch};
use std::sync::Arc;

pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        Filter { predicate }
    }
}

impl Operator for Filter {
    fn name(&self) -> &str {
        "Filter"
    }

    fn process_batch(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        let mask = self
            .predicate
            .evaluate(&batch.data)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| SluiceError::user(format!("evaluating filter: {e}")))?;
        let mask = mask.as_boolean_opt().ok_or_else(|| SluiceError::internal("filter predicate is not boolean"))?;
        let kept = mask.true_count();
        if kept == batch.num_rows() {
            out.push(batch);
        } else if kept > 0 {
            out.push(batch.filter(mask)?);
        }
        Ok(())
    }
}
