//! Table upkeep: retention (rows older than `policies.retention` removed), compaction (small
//! files of a partition rewritten into target-size files), then snapshot expiry (snapshots older
//! than `maintenance.snapshotMaxAge` and the files only they used). `meshd
//! maintain` runs [`maintain_table`] once; inside `meshd run` it runs every
//! `maintenance.interval` beside ingestion. The catalog's optimistic commit arbitrates with the
//! worker's appends and with other processes: retention that loses a race plans again, expiry
//! that loses is counted as failed and tried at the next interval; nothing is lost either way.

use std::sync::Arc;
use std::time::Duration;

use iceberg::{Catalog, TableIdent};
use meshd_config::{DataProduct, Maintenance, PlatformConfig};
use meshd_sinks::SinkError;
use meshd_sinks::iceberg::commit::MetadataCommitter;
use meshd_sinks::iceberg::compact::{Compaction, compact};
use meshd_sinks::iceberg::expire::{Expiry, expire_snapshots};
use meshd_sinks::iceberg::retention::{RetentionReport, enforce_retention};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::provision;

/// What one upkeep run did to a table (or would do, dry).
#[derive(Debug, Default)]
pub struct Upkeep {
    /// Retention's work, when the product has a retention policy and it succeeded.
    pub retention: Option<RetentionReport>,
    /// Compaction's work, when it succeeded.
    pub compaction: Option<Compaction>,
    /// Expiry's work.
    pub expiry: Expiry,
    /// What failed in retention or compaction: each step runs whatever the others did, so one
    /// failing never stops snapshot expiry.
    pub errors: Vec<SinkError>,
}

/// What upkeep needs to know of one output port's table.
#[derive(Debug, Clone)]
pub struct TableUpkeep {
    /// The table.
    pub ident: TableIdent,
    /// How long rows are kept, and the column that ages them.
    pub retention: Option<(Duration, String)>,
    /// The port's `commit.targetFileSize`: what compaction writes.
    pub target_file_size: u64,
    /// The port's `commit.compression`: what rewritten files are written with.
    pub codec: meshd_config::Codec,
}

impl TableUpkeep {
    /// Output port `port` of `product` on `platform`.
    pub fn of(
        platform: &PlatformConfig,
        product: &DataProduct,
        port: usize,
    ) -> Result<Self, crate::RuntimeError> {
        let spec = provision::table_spec(platform, product, port)?;
        let ident = TableIdent::new(iceberg::NamespaceIdent::new(spec.namespace), spec.name);
        Ok(Self {
            ident,
            retention: product.retention_of(port),
            target_file_size: product.spec.spec.output_ports[port]
                .commit
                .target_file_size
                .0,
            codec: product.spec.spec.output_ports[port].commit.compression,
        })
    }
}

/// One table's upkeep: retention, compaction, then snapshot expiry.
pub async fn maintain_table(
    catalog: &dyn Catalog,
    committer: &MetadataCommitter,
    table: &TableUpkeep,
    maintenance: &Maintenance,
    dry_run: bool,
) -> Result<Upkeep, SinkError> {
    let ident = &table.ident;
    let mut errors = Vec::new();
    let retention = match &table.retention {
        Some((period, column)) => {
            let cut = chrono::Utc::now().timestamp_micros()
                - i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
            enforce_retention(catalog, committer, ident, column, cut, table.codec, dry_run)
                .await
                .map_err(|e| errors.push(e))
                .ok()
        }
        None => None,
    };
    let compaction = compact(
        catalog,
        committer,
        ident,
        (table.target_file_size, table.codec),
        maintenance.max_files_per_partition,
        dry_run,
    )
    .await
    .map_err(|e| errors.push(e))
    .ok();
    // Another process expiring the same table, or an append, can land first: that is losing a
    // race, not an error; plan again on what is there now.
    let mut attempt = 0;
    let expiry = loop {
        attempt += 1;
        let table = meshd_sinks::iceberg::load_table(catalog, ident).await?;
        match expire_snapshots(
            catalog,
            &table,
            maintenance.snapshot_max_age.duration(),
            maintenance.min_snapshots,
            dry_run,
        )
        .await
        {
            Err(SinkError::Table { source, .. })
                if source.kind() == iceberg::ErrorKind::CatalogCommitConflicts && attempt < 5 =>
            {
                tracing::info!(table = %ident, attempt, "Snapshot expiry lost a race with another commit; planning again.");
            }
            other => break other?,
        }
    };
    Ok(Upkeep {
        retention,
        compaction,
        expiry,
        errors,
    })
}

/// Starts the upkeep loop of one product; it ends with `shutdown`.
pub fn spawn(
    product: &DataProduct,
    platform: &PlatformConfig,
    catalog: Arc<dyn Catalog>,
    committer: MetadataCommitter,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let name = product.name().to_string();
    let maintenance = product.spec.spec.maintenance.clone();
    let tables: Vec<TableUpkeep> = (0..product.spec.spec.output_ports.len())
        .filter_map(|port| TableUpkeep::of(platform, product, port).ok())
        .collect();
    // Every series exists from the start, so dashboards and alerts see upkeep before its first
    // run; the last success counts from the start until then.
    let started = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    for table in &tables {
        let port = table.ident.to_string();
        for outcome in ["ok", "failed"] {
            metrics
                .maintenance_runs
                .with_label_values(&[&name, &port, outcome])
                .inc_by(0);
        }
        for counter in [
            &metrics.snapshots_expired,
            &metrics.compacted_files,
            &metrics.retention_rows,
            &metrics.retention_files,
            &metrics.retention_bytes,
        ] {
            counter.with_label_values(&[&name, &port]).inc_by(0);
        }
        metrics
            .last_maintenance_timestamp
            .with_label_values(&[&name, &port])
            .set(started);
    }
    tokio::spawn(async move {
        let every = maintenance.interval.duration();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for table in &tables {
                let port = table.ident.to_string();
                let labels = [name.as_str(), port.as_str()];
                let outcome =
                    maintain_table(catalog.as_ref(), &committer, table, &maintenance, false).await;
                match outcome {
                    Ok(Upkeep {
                        retention,
                        compaction,
                        expiry,
                        errors,
                    }) => {
                        let compaction = compaction.unwrap_or_default();
                        if compaction.files_out > 0 {
                            metrics
                                .compacted_files
                                .with_label_values(&labels)
                                .inc_by(compaction.files_in as u64);
                            tracing::info!(product = %name, table = %port, files_in = compaction.files_in, files_out = compaction.files_out, partitions = compaction.partitions, "Compacted small files.");
                        }
                        if let Some(r) = retention.filter(|r| !r.is_empty()) {
                            metrics
                                .retention_rows
                                .with_label_values(&labels)
                                .inc_by(r.rows);
                            metrics
                                .retention_files
                                .with_label_values(&labels)
                                .inc_by((r.dropped + r.rewritten) as u64);
                            metrics
                                .retention_bytes
                                .with_label_values(&labels)
                                .inc_by(r.bytes);
                            tracing::info!(product = %name, table = %port, rows = r.rows, dropped = r.dropped, rewritten = r.rewritten, "Removed rows older than the retention policy.");
                        }
                        metrics
                            .snapshots_expired
                            .with_label_values(&labels)
                            .inc_by(expiry.expired.len() as u64);
                        for e in &errors {
                            tracing::warn!(product = %name, table = %port, error = %e, "A table upkeep step failed (the others ran); trying again at the next interval.");
                        }
                        let outcome = if errors.is_empty() { "ok" } else { "failed" };
                        metrics
                            .maintenance_runs
                            .with_label_values(&[labels[0], labels[1], outcome])
                            .inc();
                        if errors.is_empty() {
                            metrics
                                .last_maintenance_timestamp
                                .with_label_values(&labels)
                                .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                        }
                        if !expiry.expired.is_empty() {
                            tracing::info!(product = %name, table = %port, expired = expiry.expired.len(), kept = expiry.kept, files_deleted = expiry.files.len(), "Expired old snapshots.");
                        }
                    }
                    Err(e) => {
                        metrics
                            .maintenance_runs
                            .with_label_values(&[labels[0], labels[1], "failed"])
                            .inc();
                        tracing::warn!(product = %name, table = %port, error = %e, "Table upkeep failed; trying again at the next interval.");
                    }
                }
            }
        }
    });
}
