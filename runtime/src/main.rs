//! The `meshd` binary: `run` products, `validate` descriptors, or try it all with `demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use meshd_config::{DataProduct, PlatformConfig};
use meshd_runtime::demo::{self, DemoOptions};
use meshd_runtime::process::{Process, Services};
use meshd_runtime::worker::WorkerOptions;

#[derive(Parser)]
#[command(
    name = "meshd",
    version,
    about = "Runs streaming data products: Kafka → validate + mask → Iceberg, exactly once."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one worker per descriptor until SIGTERM or Ctrl-C.
    Run {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
        /// Platform config (meshd.yaml); without it, the embedded default under .meshd/.
        #[arg(long, env = "MESHD_CONFIG")]
        config: Option<PathBuf>,
        /// Seconds a graceful stop may take to commit buffered data.
        #[arg(long, default_value_t = 30)]
        drain_seconds: u64,
    },
    /// Check descriptors and their schemas without touching Kafka or a catalog.
    Validate {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
    },
    /// Run the reference product on an in-process mock Kafka cluster and a local table.
    Demo {
        /// How long to run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Events produced per second.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        /// Where the catalog and warehouse go.
        #[arg(long, default_value = ".meshd")]
        state_dir: PathBuf,
        /// Metrics endpoint.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESHD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { descriptors } => {
            let mut bad = 0;
            for path in descriptors {
                match DataProduct::load(&path) {
                    Ok(p) => println!("{}: ok ({}.{})", path.display(), p.domain(), p.name()),
                    Err(e) => {
                        bad += 1;
                        println!("{e}");
                    }
                }
            }
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Demo {
            seconds,
            rate,
            state_dir,
            listen,
        } => {
            let options = DemoOptions {
                duration: Duration::from_secs(seconds),
                rate,
                state_dir,
                listen,
            };
            let mut stdout = std::io::stdout();
            demo::run(options, &mut stdout)
                .await
                .context("the demo failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            descriptors,
            config,
            drain_seconds,
        } => {
            let env = std::env::vars().filter(|(k, _)| k.starts_with("MESHD_"));
            let platform = Arc::new(PlatformConfig::load(config.as_deref(), env)?);
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
            let process = Process {
                platform,
                descriptors,
                options: WorkerOptions {
                    drain_deadline: Duration::from_secs(drain_seconds),
                    ..WorkerOptions::default()
                },
                metrics,
                health,
            };
            let failed = process.run(shutdown.clone()).await?;
            shutdown.cancel();
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

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
