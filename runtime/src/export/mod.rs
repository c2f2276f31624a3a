//! Artifacts for the systems that consume data products, generated from their descriptors so
//! what consumers enforce or show agrees with what the products declare: an OPA bundle for
//! Trino ([`trino_opa`]), catalog entries for DataHub ([`datahub`]) and data contracts in the
//! Open Data Contract Standard ([`odcs`]). Each reads loaded
//! [`DataProduct`](meshd_config::DataProduct)s and returns documents; writing them is the
//! caller's.

mod columns;
pub mod datahub;
pub mod odcs;
pub mod trino_opa;
