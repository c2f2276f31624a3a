//! meshd's configuration model, with no I/O to Kafka or Iceberg.
//!
//! A domain team's YAML descriptor is parsed strictly into a [`Descriptor`]; its output
//! ports' Avro schemas become [`PortSchema`]s (columns with `tags` and `masking`, an Iceberg
//! schema with stable field ids). The platform's own settings are a [`PlatformConfig`].
//! Every error is a [`Diagnostic`] with file:line:col, key path and a hint.
#![deny(missing_docs)]

mod codec;
mod descriptor;
mod error;
mod kafka_metadata;
mod locate;
mod masking;
mod platform;
pub mod policy;
mod retention;
mod schema;
mod startup;
mod units;

pub use codec::Codec;
pub use descriptor::{
    AccessControl, ApiVersion, CommitPolicy, DataProduct, Descriptor, InputFormat, InputPort,
    InputPortKind, Kind, Maintenance, Metadata, OutputPort, OutputPortKind, PartitionField,
    PartitionTransform, Policies, Sla, Spec, is_identifier,
};
pub use error::{ConfigError, Diagnostic, closest};
pub use kafka_metadata::{KAFKA_COLUMN, KafkaMetadata};
pub use locate::locate;
pub use masking::Masking;
pub use platform::{
    CatalogConfig, CatalogKind, GovernanceConfig, MaskingConfig, MetricsConfig, PlatformConfig,
    SchemaRegistryConfig, Sensitive,
};
pub use retention::Retention;
pub use schema::{Column, ColumnType, PortSchema};
pub use startup::startup_checks;
pub use units::{ByteSize, HumanDuration, Ratio};
