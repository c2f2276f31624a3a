//! The meshd runtime: one worker per data product.
//!
//! Data flows one way: the Kafka input port ([`kafka`]) hands chunks of records to
//! [`decode`] (JSON or Avro straight into Arrow), [`validate`] rejects rows that break the
//! schema's intent, [`mask`] replaces PII columns, and the [`worker`] appends the batches to
//! Parquet files and commits them to Iceberg exactly once through `meshd-sinks`. [`metrics`]
//! and [`health`] are served over [`http`]. [`process`] runs several products side by side.
#![deny(missing_docs)]
// iceberg::Error makes error values large; they are built only off the hot path.
#![allow(clippy::result_large_err)]

pub mod alerts;
pub mod decode;
pub mod demo;
mod error;
pub mod export;
pub mod governance;
pub mod health;
pub mod http;
pub mod kafka;
pub mod mask;
pub mod metrics;
pub mod process;
pub mod provision;
pub mod registry;
pub mod systemd;
pub mod validate;
pub mod worker;

pub use error::RuntimeError;
