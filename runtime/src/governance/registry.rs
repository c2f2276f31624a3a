//! `meshd validate --registry URL`: governance against what producers really write. For every
//! `avro-confluent` input port, each version registered under its subject (or only the latest)
//! must be readable as the first output port's schema; a version that is not is a `deny`
//! finding naming the version, the schema id and the field, so CI stops the change that would
//! dead-letter a producer's records.

use meshd_config::policy::{Finding, Location, Severity};
use meshd_config::{DataProduct, InputFormat};

use super::Report;
use crate::decode::resolve;
use crate::registry::Registry;

/// The rule name of registry findings (for `--disable` and per-rule reports).
pub const RULE: &str = "registry_compatible";

/// Which registered versions must stay readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Versions {
    /// Every version still registered (a producer may still write any of them).
    All,
    /// Only the latest version.
    Latest,
}

/// Adds a finding to `report` for every registered version a product's port cannot read; a
/// registry that cannot be asked marks the descriptor as not evaluated.
pub async fn check(report: &mut Report, registry: &Registry, versions: Versions) {
    report.rules.push(RULE.to_string());
    for entry in &mut report.descriptors {
        if entry.error.is_some() {
            continue;
        }
        let Ok(product) = DataProduct::load(&entry.descriptor) else {
            continue;
        };
        match findings(&product, registry, versions).await {
            Ok(found) => entry.findings.extend(found),
            Err(e) => entry.error = Some(e.to_string()),
        }
    }
}

/// The registry findings of one product (empty when every registered version is readable).
pub async fn findings(
    product: &DataProduct,
    registry: &Registry,
    versions: Versions,
) -> Result<Vec<Finding>, crate::RuntimeError> {
    let reader = &product.schemas[0];
    let (ns, table) = product.table_ident(0);
    let mut out = Vec::new();
    for (i, input) in product.spec.spec.input_ports.iter().enumerate() {
        if input.format != InputFormat::AvroConfluent {
            continue;
        }
        let subject = input.subject();
        let finding = |message: String, column: Option<String>| Finding {
            severity: Severity::Deny,
            rule: RULE.to_string(),
            package: "meshd.registry".to_string(),
            message,
            product: product.name().to_string(),
            port: format!("{ns}.{table}"),
            column,
            location: Location {
                file: product.path.display().to_string(),
                line: 0,
                column: 0,
            },
        };
        let Some(mut numbers) = registry.versions(&subject).await? else {
            out.push(finding(
                format!(
                    "inputPorts[{i}] reads subject `{subject}`, which the registry does not have (register the producer's schema, or set the port's `subject`)"
                ),
                None,
            ));
            continue;
        };
        if versions == Versions::Latest {
            numbers = numbers.into_iter().max().into_iter().collect();
        }
        for number in numbers {
            let Some(version) = registry.version(&subject, number).await? else {
                continue;
            };
            if let Err(incompatible) = resolve::check(&version.schema, &reader.text) {
                let column = (!incompatible.path.is_empty()).then(|| incompatible.path.clone());
                out.push(finding(
                    format!(
                        "`{subject}` version {number} (schema id {}) cannot be read as {}: {incompatible}; its records would be dead-lettered as schema-resolution",
                        version.id,
                        reader.path.display()
                    ),
                    column,
                ));
            }
        }
    }
    Ok(out)
}
