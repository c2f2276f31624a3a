//! meshd's output ports.
//!
//! Data arrives here as Arrow batches already decoded, validated and masked. The
//! [`iceberg`] port writes them into Parquet data files and commits each set as one snapshot
//! whose summary records the Kafka offsets it covers; the [`dead_letter`] port receives the
//! records that could not become rows. Together they account for every consumed record.
#![deny(missing_docs)]
// iceberg::Error makes error values large; they are built only off the hot path, where
// boxing every source would cost more in noise than it saves.
#![allow(clippy::result_large_err)]

pub mod dead_letter;
mod error;
pub mod iceberg;

pub use error::SinkError;
