//! `'connector' = 'filesystem'`: reads JSON lines from a file or a directory (bounded), writes JSON
//! lines to a directory in rolling part files. Option names are Flink's.

mod sink;
mod source;

pub use sink::{FileSink, FileSinkConfig};
pub use source::{assign_splits, FileSource, FileSourceConfig, Split};

use crate::format::JsonDecodeOptions;
use sluice_common::{ConnectorError, OptionBag, TableSpec};

/// Metadata keys the source can fill (Flink's filesystem connector names).
pub const METADATA_KEYS: &[&str] = &["file.path", "file.name", "file.size", "file.modification-time"];

/// The options both directions share.
fn path_and_format(bag: &mut OptionBag) -> Result<(String, JsonDecodeOptions), ConnectorError> {
    let path = bag.required_string("path")?;
    let format = bag.required_string("format")?;
    if format != "json" {
        return Err(ConnectorError::at_option(
            "format",
            format!("format '{format}' is not supported by sluice yet (supported: json)"),
        ));
    }
    let json = JsonDecodeOptions::from_options(bag)?;
    Ok((path, json))
}

fn bag(spec: &TableSpec) -> OptionBag {
    let mut bag = OptionBag::new(&spec.connector, spec.options.clone());
    // Read by the planner.
    bag.ignore("scan.parallelism");
    bag.ignore("scan.watermark.idle-timeout");
    bag
}
