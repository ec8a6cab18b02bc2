//! Leaf crate shared by every pipeline stage: the in-band [`Message`] that travels every channel,
//! Flink's changelog [`RowKind`], the `WITH (...)` option bag, the planner/connector contract
//! ([`ConnectorCatalog`]) and the error kinds.
//!
//! Nothing here knows about SQL, tokio or any connector, so a change elsewhere never recompiles it.

pub mod batch;
pub mod connector;
pub mod error;
pub mod options;
pub mod types;
pub mod window;

pub use batch::{Barrier, Message, RowKind, StreamBatch, Watermark};
pub use connector::{ConnectorCatalog, ConnectorError, MetadataColumn, SinkCaps, SourceCaps, TableSpec};
pub use error::{ErrorDomain, SluiceError};
pub use options::{OptionBag, OptionError};
pub use types::flink_type_name;
pub use window::{WindowKind, WindowSpec};
