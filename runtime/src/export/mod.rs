//! Artifacts for the products' consumers, generated from descriptors so what consumers
//! enforce or show agrees with what the products declare. Each exporter turns loaded
//! [`DataProduct`](meshd_config::DataProduct)s into files; `meshd export` writes them.

pub mod trino_opa;
