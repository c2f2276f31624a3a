//! Every metric meshd exports, registered in one place. Names follow Prometheus conventions
//! (base units, `_total` on counters); labels are bounded: `product`, `port` (an input topic
//! or an output table) and `reason` for dead letters, `outcome` for commits.

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The metric set of one meshd process.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Records read from an input port.
    pub records_consumed: IntCounterVec,
    /// Bytes of record values read from an input port.
    pub bytes_consumed: IntCounterVec,
    /// Rows made visible in an output table.
    pub records_committed: IntCounterVec,
    /// Records sent to the dead-letter topic, by reason.
    pub records_dead_lettered: IntCounterVec,
    /// Commit attempts by outcome (`committed`, `already_committed`, `failed`, `fenced`).
    pub commits: IntCounterVec,
    /// Time from closing data files to a visible snapshot.
    pub commit_duration: HistogramVec,
    /// Unix time of the last successful commit.
    pub last_commit_timestamp: GaugeVec,
    /// Records in the input topic not yet consumed.
    pub consumer_lag: IntGaugeVec,
    /// Age of the oldest consumed record not yet visible in the table.
    pub freshness: GaugeVec,
    /// The freshness SLO from the descriptor.
    pub freshness_slo: GaugeVec,
    /// The availability target from the descriptor.
    pub availability_target: GaugeVec,
    /// Once-a-second SLA evaluations.
    pub sla_evaluations: IntCounterVec,
    /// Evaluations where freshness was within the SLO.
    pub sla_good: IntCounterVec,
    /// 1 while a product's worker runs, 0 when it failed or stopped.
    pub worker_up: IntGaugeVec,
    /// 1 while the product is ready (the `/readyz` verdict), 0 otherwise.
    pub worker_ready: IntGaugeVec,
    /// Input partitions this process holds: summed per product, 0 while workers run means
    /// nobody consumes (a group stuck after a broker fault), which no single `/readyz` shows.
    pub partitions_assigned: IntGaugeVec,
    /// Table upkeep runs by outcome (`ok`, `failed`).
    pub maintenance_runs: IntCounterVec,
    /// Snapshots expired by upkeep.
    pub snapshots_expired: IntCounterVec,
    /// Small files replaced by compaction.
    pub compacted_files: IntCounterVec,
    /// Rows removed by retention: the policy at work, visible.
    pub retention_rows: IntCounterVec,
    /// Data files taken out of the table by retention (dropped or rewritten).
    pub retention_files: IntCounterVec,
    /// Bytes of those files.
    pub retention_bytes: IntCounterVec,
    /// Unix time of the last successful upkeep run: alerting on its age catches upkeep that
    /// keeps failing before planning slows down.
    pub last_maintenance_timestamp: GaugeVec,
}

/// Every metric name with its help text, for the README and the compliance test.
pub const DOCUMENTED: &[(&str, &str)] = &[
    (
        "meshd_records_consumed_total",
        "Records read from an input port (labels: product, port = topic).",
    ),
    (
        "meshd_bytes_consumed_total",
        "Bytes of record values read from an input port (labels: product, port = topic).",
    ),
    (
        "meshd_records_committed_total",
        "Rows made visible in the output table (labels: product, port = table).",
    ),
    (
        "meshd_records_dead_lettered_total",
        "Records sent to the dead-letter topic (labels: product, port = topic, reason).",
    ),
    (
        "meshd_commits_total",
        "Commit attempts by outcome: committed, already_committed, failed, fenced (labels: product, port, outcome).",
    ),
    (
        "meshd_commit_duration_seconds",
        "Time from closing data files to a visible snapshot (histogram; labels: product, port).",
    ),
    (
        "meshd_last_commit_timestamp_seconds",
        "Unix time of the last successful commit (labels: product, port).",
    ),
    (
        "meshd_consumer_lag_records",
        "Records in the input topic not yet consumed, from librdkafka statistics (labels: product, port = topic).",
    ),
    (
        "meshd_freshness_seconds",
        "Age of the oldest record consumed but not yet visible in the table; 0 when all is committed and lag is 0 (labels: product, port).",
    ),
    (
        "meshd_sla_freshness_slo_seconds",
        "The freshness SLO from the descriptor (labels: product, port).",
    ),
    (
        "meshd_sla_availability_target_ratio",
        "The availability target from the descriptor, e.g. 0.999 (labels: product, port).",
    ),
    (
        "meshd_sla_evaluations_total",
        "SLA evaluations, one per second (labels: product, port).",
    ),
    (
        "meshd_sla_good_total",
        "Evaluations with freshness within the SLO; good/evaluations is the availability (labels: product, port).",
    ),
    (
        "meshd_worker_up",
        "1 while the product's worker runs, 0 when it failed or stopped (labels: product).",
    ),
    (
        "meshd_worker_ready",
        "1 while the product is ready as /readyz says (partitions assigned, commits succeeding), 0 otherwise (labels: product).",
    ),
    (
        "meshd_partitions_assigned",
        "Input partitions this process's worker holds; summed by product, 0 while workers run means nobody consumes (labels: product).",
    ),
    (
        "meshd_maintenance_runs_total",
        "Table upkeep runs (retention, compaction, snapshot expiry) by outcome: ok, failed (labels: product, port, outcome).",
    ),
    (
        "meshd_snapshots_expired_total",
        "Snapshots expired by table upkeep (labels: product, port).",
    ),
    (
        "meshd_compacted_files_total",
        "Small data files compaction replaced with target-size files (labels: product, port).",
    ),
    (
        "meshd_retention_rows_removed_total",
        "Rows older than the retention policy removed from the table (labels: product, port).",
    ),
    (
        "meshd_retention_files_removed_total",
        "Data files taken out of the table by retention, dropped or rewritten (labels: product, port).",
    ),
    (
        "meshd_retention_bytes_removed_total",
        "Bytes of the data files retention took out of the table (labels: product, port).",
    ),
    (
        "meshd_last_maintenance_timestamp_seconds",
        "Unix time of the last successful table upkeep run (labels: product, port).",
    ),
];

fn help(name: &str) -> String {
    DOCUMENTED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| (*h).to_string())
        .unwrap_or_else(|| name.to_string())
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let pp = &["product", "port"];
        let counter = |name: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help(name)), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, labels: &[&str]| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help(name)), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let int_gauge = |name: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(name, help(name)), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let commit_duration = HistogramVec::new(
            HistogramOpts::new(
                "meshd_commit_duration_seconds",
                help("meshd_commit_duration_seconds"),
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            pp,
        )?;
        registry.register(Box::new(commit_duration.clone()))?;
        Ok(Self {
            records_consumed: counter("meshd_records_consumed_total", pp)?,
            bytes_consumed: counter("meshd_bytes_consumed_total", pp)?,
            records_committed: counter("meshd_records_committed_total", pp)?,
            records_dead_lettered: counter(
                "meshd_records_dead_lettered_total",
                &["product", "port", "reason"],
            )?,
            commits: counter("meshd_commits_total", &["product", "port", "outcome"])?,
            commit_duration,
            last_commit_timestamp: gauge("meshd_last_commit_timestamp_seconds", pp)?,
            consumer_lag: int_gauge("meshd_consumer_lag_records", pp)?,
            freshness: gauge("meshd_freshness_seconds", pp)?,
            freshness_slo: gauge("meshd_sla_freshness_slo_seconds", pp)?,
            availability_target: gauge("meshd_sla_availability_target_ratio", pp)?,
            sla_evaluations: counter("meshd_sla_evaluations_total", pp)?,
            sla_good: counter("meshd_sla_good_total", pp)?,
            worker_up: int_gauge("meshd_worker_up", &["product"])?,
            worker_ready: int_gauge("meshd_worker_ready", &["product"])?,
            partitions_assigned: int_gauge("meshd_partitions_assigned", &["product"])?,
            maintenance_runs: counter(
                "meshd_maintenance_runs_total",
                &["product", "port", "outcome"],
            )?,
            snapshots_expired: counter("meshd_snapshots_expired_total", pp)?,
            compacted_files: counter("meshd_compacted_files_total", pp)?,
            retention_rows: counter("meshd_retention_rows_removed_total", pp)?,
            retention_files: counter("meshd_retention_files_removed_total", pp)?,
            retention_bytes: counter("meshd_retention_bytes_removed_total", pp)?,
            last_maintenance_timestamp: gauge("meshd_last_maintenance_timestamp_seconds", pp)?,
            registry,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The largest `meshd_freshness_seconds` of any product and port, read from the gauges
    /// themselves (the systemd status line); 0 while no worker has set one.
    pub fn worst_freshness(&self) -> f64 {
        self.freshness
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|metric| metric.get_gauge().get_value())
            .fold(0.0, f64::max)
    }
}

/// The values of every sample of metric `name` in Prometheus text (for the demo's progress
/// lines, which read our own registry's rendering).
pub fn sample_values<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = f64> + 'a {
    text.lines()
        .filter(move |l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_freshness_is_the_largest_gauge_of_any_product_and_port() {
        let metrics = Metrics::new().unwrap();
        assert_eq!(metrics.worst_freshness(), 0.0);
        for (product, port, seconds) in [("a", "a.t", 3.5), ("b", "b.t", 42.0), ("b", "b.u", 7.0)] {
            metrics
                .freshness
                .with_label_values(&[product, port])
                .set(seconds);
        }
        assert_eq!(metrics.worst_freshness(), 42.0);
        metrics.freshness.with_label_values(&["b", "b.t"]).set(0.0);
        assert_eq!(metrics.worst_freshness(), 7.0);
        // Other gauges do not count.
        metrics
            .freshness_slo
            .with_label_values(&["a", "a.t"])
            .set(900.0);
        assert_eq!(metrics.worst_freshness(), 7.0);
    }

    #[test]
    fn every_documented_metric_is_in_the_readme() {
        let readme = include_str!("../../README.md");
        for (name, _) in DOCUMENTED {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README's metrics table lacks {name}"
            );
        }
    }
}
