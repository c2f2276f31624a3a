//! `meshd maintain`: table upkeep once, for every output port of the given products: snapshots
//! older than `spec.maintenance.snapshotMaxAge` are expired (keeping `minSnapshots`) and the
//! files only they used are deleted. `--dry-run` says what would be done.

use std::process::ExitCode;

use meshd_config::DataProduct;
use meshd_runtime::provision;
use meshd_sinks::iceberg::expire::expire_snapshots;

use super::ProductArgs;

/// The flags of `meshd maintain`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    products: ProductArgs,
    /// Print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// One line per table with what was (or would be) done; exit 0, or an error naming the table.
pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let platform = args.products.platform()?;
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await?;
    for path in &args.products.descriptors {
        let product = DataProduct::load(path)?;
        let maintenance = &product.spec.spec.maintenance;
        for port in 0..product.spec.spec.output_ports.len() {
            let spec = provision::table_spec(&platform, &product, port)?;
            let ident = iceberg::TableIdent::from_strs([&spec.namespace, &spec.name])?;
            if !catalog.table_exists(&ident).await? {
                println!("{ident}: no table yet (nothing committed); nothing to maintain");
                continue;
            }
            let table = catalog.load_table(&ident).await?;
            let expiry = expire_snapshots(
                catalog.as_ref(),
                &table,
                maintenance.snapshot_max_age.duration(),
                maintenance.min_snapshots,
                args.dry_run,
            )
            .await?;
            let (verb, files) = if args.dry_run {
                ("would expire", "would delete")
            } else {
                ("expired", "deleted")
            };
            println!(
                "{ident}: {verb} {} snapshot(s) older than {}, {} kept; {files} {} file(s) only they used",
                expiry.expired.len(),
                maintenance.snapshot_max_age.as_str(),
                expiry.kept,
                expiry.files.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
