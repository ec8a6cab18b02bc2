//! Record formats shared by connectors: JSON lines decoding into Arrow (with Flink's `json.*`
//! options), Flink's JSON encoding of rows, and Flink's `Row.toString` text used by `print`.

pub mod json;
pub mod text;
pub mod values;

pub use json::{JsonDecodeOptions, JsonLineDecoder, TimestampStandard};
