//! `meshd maintain`: table upkeep once, for every output port of the given products: rows older
//! than `policies.retention` are removed, snapshots older than
//! `spec.maintenance.snapshotMaxAge` are expired (keeping `minSnapshots`), the files only they
//! used are deleted, and so are orphaned data files older than a day (left by crashes and
//! revocations; younger ones may belong to a commit in progress). `--dry-run` says what would be
//! done.

use std::process::ExitCode;

use meshd_config::DataProduct;
use meshd_runtime::maintenance::{TableUpkeep, Upkeep, maintain_table};
use meshd_sinks::iceberg::commit::MetadataCommitter;
use meshd_sinks::iceberg::orphans::orphan_files;

/// Orphaned data files younger than this are kept: a running worker's commit in progress
/// references them a moment later.
const ORPHAN_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(86_400);

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

/// One line per table and step with what was (or would be) done; exit 0, or 1 when a step failed
/// (the others ran), or an error naming the table.
pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let platform = args.products.platform()?;
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await?;
    let committer = MetadataCommitter::open(&platform).await?;
    let storage = meshd_sinks::iceberg::storage(&platform)?;
    // A failed step is reported and the other steps and tables still run; the exit code says so.
    let mut failed = false;
    for path in &args.products.descriptors {
        let product = DataProduct::load(path)?;
        let maintenance = &product.spec.spec.maintenance;
        for port in 0..product.spec.spec.output_ports.len() {
            let upkeep = TableUpkeep::of(&platform, &product, port)?;
            let ident = upkeep.ident.clone();
            if !catalog.table_exists(&ident).await? {
                println!("{ident}: no table yet (nothing committed); nothing to maintain");
                continue;
            }
            let Upkeep {
                retention: removed,
                compaction,
                expiry,
                errors,
            } = maintain_table(
                catalog.as_ref(),
                &committer,
                &upkeep,
                maintenance,
                args.dry_run,
            )
            .await?;
            if let (Some(report), Some((_, column))) = (removed, &upkeep.retention) {
                let period = product
                    .spec
                    .spec
                    .policies
                    .as_ref()
                    .and_then(|p| p.retention.as_ref())
                    .map(|r| r.period.as_str().to_string())
                    .unwrap_or_default();
                let verb = if args.dry_run {
                    "would remove"
                } else {
                    "removed"
                };
                let rows = if args.dry_run && report.rewritten > 0 {
                    format!("{}+", report.rows)
                } else {
                    report.rows.to_string()
                };
                println!(
                    "{ident}: retention {period} by {column}: {verb} {rows} row(s): {} file(s) dropped, {} rewritten",
                    report.dropped, report.rewritten
                );
            }
            match compaction {
                Some(c) if c.gave_up => println!(
                    "{ident}: compaction gave up: another run removed one of its {} files first; nothing changed",
                    c.files_in
                ),
                Some(c) => {
                    let verb = if args.dry_run {
                        "would compact"
                    } else {
                        "compacted"
                    };
                    println!(
                        "{ident}: {verb} {} small file(s) in {} partition(s) into {} file(s)",
                        c.files_in, c.partitions, c.files_out
                    );
                    if c.manifests_merged > 0 {
                        let verb = if args.dry_run {
                            "would merge"
                        } else {
                            "merged"
                        };
                        println!(
                            "{ident}: {verb} {} data manifests into one per partition spec",
                            c.manifests_merged
                        );
                    }
                }
                None => {}
            }
            for e in &errors {
                println!("{ident}: FAILED: {e}");
            }
            failed |= !errors.is_empty();
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
            let table = catalog.load_table(&ident).await?;
            let old: Vec<_> = orphan_files(&table, &storage)
                .await?
                .into_iter()
                .filter(|o| o.age >= ORPHAN_MIN_AGE)
                .collect();
            if !args.dry_run {
                for orphan in &old {
                    table
                        .file_io()
                        .delete(&orphan.location)
                        .await
                        .map_err(|e| anyhow::anyhow!("deleting orphan {}: {e}", orphan.location))?;
                }
            }
            println!(
                "{ident}: {files} {} orphaned data file(s) older than a day",
                old.len()
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
