//! `meshd export`: deployment artifacts generated from descriptors, so what is deployed
//! agrees with what the products declare.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use meshd_config::{ConfigError, DataProduct};
use meshd_runtime::export::trino_opa;

/// What `meshd export` can generate.
#[derive(clap::Subcommand)]
pub enum ExportCommand {
    /// Prometheus alert rules per product, thresholds taken from each descriptor's SLA.
    PrometheusRules {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
    },
    /// An OPA bundle (Rego policy, data.json, .manifest) for Trino's OPA access control: role
    /// members select the products' tables, row filters and PII masks apply at query time.
    ///
    /// Nothing is written when a row filter fails the `access_filter` rule.
    TrinoOpa {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
        /// The bundle folder to write; refused when it exists and is not empty.
        #[arg(short, long)]
        output: PathBuf,
        /// The Trino catalog the products' Iceberg tables are in.
        #[arg(long, default_value = "iceberg")]
        catalog: String,
        /// The Trino group whose members may do everything, unfiltered and unmasked.
        #[arg(long, default_value = "meshd-admin")]
        admin_group: String,
        /// Write into a non-empty folder, overwriting the bundle's files.
        #[arg(long)]
        force: bool,
    },
}

/// Prints the artifact on stdout; exit 0, or an error when a descriptor does not load.
pub fn exec(what: ExportCommand) -> anyhow::Result<ExitCode> {
    match what {
        ExportCommand::PrometheusRules { descriptors } => prometheus_rules(&descriptors),
        ExportCommand::TrinoOpa {
            descriptors,
            output,
            catalog,
            admin_group,
            force,
        } => trino_opa(
            &descriptors,
            &output,
            &trino_opa::Options {
                catalog,
                admin_group,
            },
            force,
        ),
    }
}

/// `meshd export prometheus-rules`: one rule group per product.
fn prometheus_rules(descriptors: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let products = descriptors
        .iter()
        .map(|d| DataProduct::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", meshd_runtime::alerts::prometheus_rules(&products));
    Ok(ExitCode::SUCCESS)
}

/// `meshd export trino-opa`: every descriptor's problems are reported together, and nothing
/// is written unless all of them export.
fn trino_opa(
    descriptors: &[PathBuf],
    output: &Path,
    options: &trino_opa::Options,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let mut products = Vec::new();
    let mut diagnostics = Vec::new();
    for path in descriptors {
        match DataProduct::load(path) {
            Ok(p) => products.push(p),
            Err(ConfigError::Invalid { diagnostics: found }) => diagnostics.extend(found),
            Err(other) => return Err(other.into()),
        }
    }
    if !diagnostics.is_empty() {
        return Err(ConfigError::Invalid { diagnostics }.into());
    }
    let bundle = trino_opa::bundle(&products, options)?;
    trino_opa::write(&bundle, output, force)?;
    println!(
        "wrote an OPA bundle for {} table(s) to {} (policy package `trino`)",
        products
            .iter()
            .map(|p| p.spec.spec.output_ports.len())
            .sum::<usize>(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}
