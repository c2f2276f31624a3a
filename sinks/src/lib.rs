//! meshd's output ports.
//!
//! Data arrives here as Arrow batches already decoded, validated and masked. The
//! [`iceberg`] port writes them into Parquet data files and commits each set as one snapshot
//! whose summary records the Kafka offsets it covers; the [`dead_letter`] port receives the
//! records that could not become rows. Together they account for every consumed record.
#![deny(missing_docs)]

pub mod dead_letter;
mod error;
pub mod iceberg;

pub use error::SinkError;
