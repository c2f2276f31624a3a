//! `meshd provision`: apply the plan (namespace, table with partition spec and properties,
//! compatible schema changes) and create the dead-letter topics. `meshd plan` shares the
//! planning half.

use std::process::ExitCode;
use std::sync::Arc;

use meshd_config::DataProduct;
use meshd_runtime::governance::registry::{self, Versions};
use meshd_runtime::provision;
use meshd_runtime::registry::Registry;
use meshd_sinks::iceberg::OutputTable;
use meshd_sinks::iceberg::commit::MetadataCommitter;

use super::ProductArgs;

/// Applies each product's plan; exit 1 when a product has refused changes, for which nothing
/// is applied.
pub async fn exec(args: ProductArgs) -> anyhow::Result<ExitCode> {
    plan_products(&args, true).await
}

/// `meshd plan` (`apply` false) and `meshd provision` (`apply` true): exit 1 when a product
/// has refused changes, which are never applied.
pub(super) async fn plan_products(args: &ProductArgs, apply: bool) -> anyhow::Result<ExitCode> {
    let platform = args.platform()?;
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await?;
    let committer = MetadataCommitter::open(&platform).await?;
    let mut refused = false;
    let registry = match &platform.schema_registry {
        Some(config) => Some(Registry::new(config)?),
        None => None,
    };
    for path in &args.descriptors {
        let product = DataProduct::load(path)?;
        if let Some(registry) = &registry {
            // What producers registered must stay readable: a version the port cannot read
            // would dead-letter its records after the change.
            for finding in registry::findings(&product, registry, Versions::All).await? {
                println!(
                    "{}: refused by the schema registry: {}",
                    product.name(),
                    finding.message
                );
                refused = true;
            }
        }
        for port in 0..product.spec.spec.output_ports.len() {
            let spec = provision::table_spec(&platform, &product, port)?;
            let plan = provision::plan(catalog.as_ref(), &spec).await?;
            print!("{}", provision::render_plan(product.name(), &plan));
            refused |= plan.refused();
            if !apply {
                continue;
            }
            if plan.refused() {
                println!("  nothing applied for {}: refused changes", product.name());
                continue;
            }
            meshd_sinks::iceberg::probe_location(&platform, &spec.location).await?;
            println!("  {} is writable", spec.location);
            provision::evolve_table(catalog.as_ref(), &committer, &spec).await?;
            OutputTable::open(Arc::clone(&catalog), &spec, product.consumer_group()).await?;
            println!("  applied");
        }
        if apply {
            let topics: Vec<(String, i32)> = product
                .spec
                .spec
                .input_ports
                .iter()
                .map(|i| (i.dead_letter_topic(), 1))
                .collect();
            meshd_runtime::kafka::ensure_topics(&platform, &topics).await?;
            let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
            println!("  dead-letter topics ready: {}", names.join(", "));
        }
    }
    Ok(if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
