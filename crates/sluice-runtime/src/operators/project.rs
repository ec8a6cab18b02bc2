//! Projection: one output column per expression; row kinds pass through.

use crate::operator::Operator;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;
use sluice_common::{SluiceError, StreamBatch};
use std::sync::Arc;

pub struct Project {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl Project {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Project { exprs, schema }
    }
}

impl Operator for Project {
    fn name(&self) -> &str {
        "Project"
    }

    fn process_batch(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        let n = batch.num_rows();
        let columns = self
            .exprs
            .iter()
            .map(|e| e.evaluate(&batch.data).and_then(|v| v.into_array(n)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SluiceError::user(format!("evaluating projection: {e}")))?;
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .map_err(|e| SluiceError::internal(format!("projection result does not match its schema: {e}")))?;
        out.push(StreamBatch { data, kinds: batch.kinds });
        Ok(())
    }
}
