//! `meshd run`: one worker per descriptor, metrics and health served over HTTP, until SIGTERM
//! or Ctrl-C asks for a graceful stop.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use meshd_runtime::process::{Process, Services};
use meshd_runtime::worker::WorkerOptions;

use super::ProductArgs;

/// The flags of `meshd run`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    products: ProductArgs,
    /// Seconds a graceful stop may take to commit buffered data.
    #[arg(long, default_value_t = 30)]
    drain_seconds: u64,
}

/// Exit 0 when every product stopped cleanly, 1 when any failed.
pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let platform = Arc::new(args.products.platform()?);
    let Services {
        metrics,
        health,
        shutdown,
        bound,
    } = Services::start(platform.metrics.listen).await?;
    tracing::info!(metrics = %format!("http://{bound}/metrics"), "Serving metrics and health.");
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Stop requested; committing buffered data.");
        signals.cancel();
    });
    let notifier = meshd_runtime::systemd::spawn(health.clone(), metrics.clone(), shutdown.clone());
    let process = Process {
        platform,
        descriptors: args.products.descriptors,
        options: WorkerOptions {
            drain_deadline: Duration::from_secs(args.drain_seconds),
            ..WorkerOptions::default()
        },
        metrics,
        health,
    };
    let failed = process.run(shutdown.clone()).await?;
    shutdown.cancel();
    let _ = notifier.await;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Returns on SIGTERM (how systemd and Kubernetes stop us) or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
