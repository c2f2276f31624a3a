//! Artifacts for the systems that consume data products, generated from their descriptors:
//! catalog entries for DataHub ([`datahub`]) and data contracts in the Open Data Contract
//! Standard ([`odcs`]). Each reads a loaded [`meshd_config::DataProduct`] and the Iceberg
//! schema of the table it publishes, and returns a document; writing it is the caller's.

mod columns;
pub mod datahub;
pub mod odcs;
