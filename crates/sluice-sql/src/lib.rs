//! SQL text -> validated logical plans. Flink's dialect on upstream sqlparser (own `CREATE TABLE`
//! parsing, statement splitting) and DataFusion for planning queries; errors carry `LINE:COL`.

mod aggregates;
pub mod catalog;
pub mod ddl;
pub mod diagnostics;
pub mod dialect;
mod errors;
pub mod flink_types;
pub mod functions;
pub mod planner;
pub mod relations;
mod rewrite;
pub mod script;
pub mod types;

pub use catalog::StreamTable;
pub use diagnostics::{Diagnostics, Pos, SqlError};
pub use planner::{
    new_session, plan_script, scanned_tables, PlannedInsert, PlannedPipeline, PlannedTable, WatermarkSpec,
    SOURCE_PREFIX,
};
pub use relations::{TemporalTable, WindowTvfTable};
