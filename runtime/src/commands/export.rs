//! `meshd export`: deployment artifacts generated from descriptors, so what is deployed
//! agrees with what the products declare.

use std::path::PathBuf;
use std::process::ExitCode;

use meshd_config::DataProduct;

/// What `meshd export` can generate.
#[derive(clap::Subcommand)]
pub enum ExportCommand {
    /// Prometheus alert rules per product, thresholds taken from each descriptor's SLA.
    PrometheusRules {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
    },
}

/// Prints the artifact on stdout; exit 0, or an error when a descriptor does not load.
pub fn exec(what: ExportCommand) -> anyhow::Result<ExitCode> {
    match what {
        ExportCommand::PrometheusRules { descriptors } => prometheus_rules(&descriptors),
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
