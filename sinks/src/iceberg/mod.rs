//! The Iceberg output port: catalog, table placement, data files and exactly-once commits.

mod catalog;
pub mod commit;
pub mod compact;
pub mod evolution;
pub mod expire;
pub mod object_storage;
pub mod offsets;
pub mod orphans;
pub mod properties;
mod rest;
pub mod retention;
pub mod rewrite;
mod table;
mod writer;

pub use catalog::{
    load_table, open_catalog, probe_location, redact_uri, storage, storage_factory, table_location,
};
pub use offsets::Offsets;
pub use table::{CommitOutcome, OutputTable, RetryPolicy, TableSpec};
pub use writer::{DataFiles, parquet_properties, parquet_properties_for, parquet_properties_with};
