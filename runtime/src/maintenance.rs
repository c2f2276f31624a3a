//! Table upkeep inside `meshd run`: every `maintenance.interval`, each output port's table has
//! its old snapshots expired (what `meshd maintain` does once), beside ingestion. The catalog's
//! optimistic commit arbitrates with the worker's appends and with other processes: a run that
//! loses a race is counted as failed and tried again at the next interval; nothing is lost
//! either way.

use std::sync::Arc;

use iceberg::{Catalog, TableIdent};
use meshd_config::{DataProduct, PlatformConfig};
use meshd_sinks::iceberg::expire::expire_snapshots;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::provision;

/// Starts the upkeep loop of one product; it ends with `shutdown`.
pub fn spawn(
    product: &DataProduct,
    platform: &PlatformConfig,
    catalog: Arc<dyn Catalog>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let name = product.name().to_string();
    let maintenance = product.spec.spec.maintenance.clone();
    let tables: Vec<TableIdent> = (0..product.spec.spec.output_ports.len())
        .filter_map(|port| {
            let spec = provision::table_spec(platform, product, port).ok()?;
            TableIdent::from_strs([spec.namespace, spec.name]).ok()
        })
        .collect();
    // Every series exists from the start, so dashboards and alerts see upkeep before its first
    // run; the last success counts from the start until then.
    let started = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    for ident in &tables {
        let port = ident.to_string();
        for outcome in ["ok", "failed"] {
            metrics
                .maintenance_runs
                .with_label_values(&[&name, &port, outcome])
                .inc_by(0);
        }
        metrics
            .snapshots_expired
            .with_label_values(&[&name, &port])
            .inc_by(0);
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
            for ident in &tables {
                let port = ident.to_string();
                let labels = [name.as_str(), port.as_str()];
                let outcome = match catalog.load_table(ident).await {
                    Ok(table) => expire_snapshots(
                        catalog.as_ref(),
                        &table,
                        maintenance.snapshot_max_age.duration(),
                        maintenance.min_snapshots,
                        false,
                    )
                    .await
                    .map_err(|e| e.to_string()),
                    // Not created yet (the worker has not started): nothing to keep up.
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(expiry) => {
                        metrics
                            .maintenance_runs
                            .with_label_values(&[labels[0], labels[1], "ok"])
                            .inc();
                        metrics
                            .snapshots_expired
                            .with_label_values(&labels)
                            .inc_by(expiry.expired.len() as u64);
                        metrics
                            .last_maintenance_timestamp
                            .with_label_values(&labels)
                            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
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
