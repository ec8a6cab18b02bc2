//! Tables as DataFusion sees them. A [`StreamTable`] is a connector-backed table: it has a schema and a
//! [`TableSpec`] but cannot be scanned by DataFusion (sluice's runtime reads it). Its name in plans is
//! the user's table name; tables with computed columns are wrapped in a view (see the planner).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use sluice_common::TableSpec;
use std::sync::Arc;

#[derive(Debug)]
pub struct StreamTable {
    pub spec: TableSpec,
}

#[async_trait::async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.spec.connector_schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(format!(
            "table '{}' is a streaming table and is read by the sluice runtime, not by DataFusion",
            self.spec.name
        )))
    }
}
