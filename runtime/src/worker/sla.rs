//! The SLA ticker: once a second, each output port's freshness and one availability
//! evaluation (good when freshness is within the port's SLO), plus the input's lag and the
//! partitions held. It reads the worker's published state; it never touches the consumer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::freshness::{self, FreshnessState};
use super::status::WorkerStatus;
use crate::kafka::InputStats;
use crate::metrics::Metrics;

/// One port as the ticker sees it.
pub struct PortClock {
    /// The `port` label.
    pub label: String,
    /// The port's freshness.
    pub freshness: Arc<FreshnessState>,
    /// Its SLO.
    pub slo: Duration,
}

/// Starts the ticker; it ends with `shutdown`.
pub fn spawn(
    metrics: Metrics,
    product: String,
    ports: Vec<PortClock>,
    stats: watch::Receiver<InputStats>,
    status: watch::Receiver<WorkerStatus>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let (lag, blind) = {
                let s = stats.borrow();
                (s.lag.clone(), s.blind_since)
            };
            for (topic, lag) in &lag {
                metrics
                    .consumer_lag
                    .with_label_values(&[&product, topic])
                    .set(*lag);
            }
            let held = status.borrow().assigned;
            metrics
                .partitions_assigned
                .with_label_values(&[&product])
                .set(held as i64);
            let total_lag: i64 = lag.values().sum();
            for port in &ports {
                let seconds = port.freshness.seconds(total_lag, blind);
                let labels = [product.as_str(), port.label.as_str()];
                metrics.freshness.with_label_values(&labels).set(seconds);
                metrics.sla_evaluations.with_label_values(&labels).inc();
                if freshness::is_good(seconds, port.slo) {
                    metrics.sla_good.with_label_values(&labels).inc();
                }
            }
        }
    })
}
