//! `meshd orphans`: list data files under each product's table that no snapshot references
//! (left by crashes, revocations or failed commits), and optionally delete the old ones.

use std::process::ExitCode;

use meshd_config::{DataProduct, HumanDuration};
use meshd_runtime::provision;

use super::ProductArgs;

/// The flags of `meshd orphans`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    products: ProductArgs,
    /// Delete the orphans older than `--older-than`.
    #[arg(long)]
    delete: bool,
    /// Minimum age of a file to delete, e.g. `1h`, `30min`.
    #[arg(long, default_value = "1h", value_parser = HumanDuration::parse)]
    older_than: HumanDuration,
}

/// Prints every orphan with its size, age and what was done with it. Files younger than
/// `--older-than` are never deleted: a running worker's commit in progress references them a
/// moment later.
pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let older_than = args.older_than.duration();
    let platform = args.products.platform()?;
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await?;
    let storage = meshd_sinks::iceberg::storage(&platform)?;
    for path in &args.products.descriptors {
        let product = DataProduct::load(path)?;
        for port in 0..product.spec.spec.output_ports.len() {
            let spec = provision::table_spec(&platform, &product, port)?;
            let ident = iceberg::TableIdent::from_strs([&spec.namespace, &spec.name])?;
            let table = catalog.load_table(&ident).await?;
            let found = meshd_sinks::iceberg::orphans::orphan_files(&table, &storage).await?;
            let bytes: u64 = found.iter().map(|o| o.bytes).sum();
            println!(
                "{ident}: {} orphan data file(s), {bytes} bytes",
                found.len()
            );
            let mut deleted = 0;
            for orphan in &found {
                let old = orphan.age >= older_than;
                let action = if args.delete && old {
                    table
                        .file_io()
                        .delete(&orphan.location)
                        .await
                        .map_err(|e| anyhow::anyhow!("deleting {}: {e}", orphan.location))?;
                    deleted += 1;
                    "deleted"
                } else if old {
                    "orphan"
                } else {
                    "recent (may be a commit in progress; kept)"
                };
                println!(
                    "  {} {} bytes, {}s old: {action}",
                    orphan.location,
                    orphan.bytes,
                    orphan.age.as_secs()
                );
            }
            if args.delete {
                println!("  deleted {deleted} file(s)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
