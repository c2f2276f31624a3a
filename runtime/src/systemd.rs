//! systemd's notify protocol for `Type=notify` units: `READY=1` once every product's worker has
//! started (or failed to), `STATUS=` with products and the worst freshness, `WATCHDOG=1` at half
//! the `WatchdogSec=` interval while the process is responsive, and `STOPPING=1` on shutdown.
//! Without `NOTIFY_SOCKET` (not under systemd) every message is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;

/// Runs the notifier until `shutdown`, then says `STOPPING=1`.
pub fn spawn(
    health: Health,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let watchdog = sd_notify::watchdog_enabled();
        let tick = watchdog.map_or(Duration::from_secs(1), |w| {
            (w / 2).min(Duration::from_secs(1))
        });
        let mut ready_sent = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
            }
            let readiness = health.readiness();
            let started = !readiness.products.is_empty()
                && readiness.products.values().all(|p| p.state != "starting");
            let mut states = Vec::new();
            if started && !ready_sent {
                states.push(NotifyState::Ready);
                ready_sent = true;
            }
            let running = readiness
                .products
                .values()
                .filter(|p| p.state == "running")
                .count();
            let failed = readiness
                .products
                .values()
                .filter(|p| p.state == "failed")
                .count();
            let status = format!(
                "{running} product(s) running, {failed} failed; worst freshness {:.0}s",
                metrics.worst_freshness()
            );
            states.push(NotifyState::Status(&status));
            if watchdog.is_some() {
                states.push(NotifyState::Watchdog);
            }
            if let Err(e) = sd_notify::notify(&states) {
                tracing::warn!(error = %e, "Cannot notify systemd.");
            }
        }
        let _ = sd_notify::notify(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: committing buffered data"),
        ]);
    })
}
