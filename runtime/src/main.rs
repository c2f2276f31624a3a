//! The `meshd` binary: `run` products, `validate` descriptors, or try it all with `demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use meshd_config::policy::PolicySet;
use meshd_config::{DataProduct, PlatformConfig};
use meshd_runtime::demo::{self, DemoOptions};
use meshd_runtime::governance::{self, Format};
use meshd_runtime::process::{Process, Services};
use meshd_runtime::provision;
use meshd_runtime::worker::WorkerOptions;
use meshd_sinks::iceberg::OutputTable;

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
enum ExportCommand {
    /// Prometheus alert rules per product, thresholds taken from each descriptor's SLA.
    PrometheusRules {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run the `test_*` rules of a policy folder (the built-in library's own tests without one).
    ///
    /// Exit code: 0 all passed, 1 a test failed, 2 the policies do not load.
    Test {
        /// A .rego file or a folder of them; the built-in library is loaded too.
        dir: Option<PathBuf>,
    },
    /// Print the policy input documents of a descriptor (one per output port), as JSON.
    Input {
        /// A DataProduct descriptor.
        descriptor: PathBuf,
    },
}

/// Which policies apply.
#[derive(clap::Args)]
struct PolicyArgs {
    /// A .rego file or a folder of them, in addition to the built-in library (repeatable).
    #[arg(long = "policy", value_name = "DIR|FILE")]
    paths: Vec<PathBuf>,
    /// Turn off a rule by name, e.g. `unkeyed_sha256` (repeatable).
    #[arg(long = "disable", value_name = "RULE")]
    disabled: Vec<String>,
    /// Leave the built-in library out.
    #[arg(long)]
    no_builtin: bool,
}

impl PolicyArgs {
    fn load(&self) -> Result<PolicySet, meshd_config::ConfigError> {
        PolicySet::from_config(&meshd_config::GovernanceConfig {
            builtin: !self.no_builtin,
            policies: self.paths.clone(),
            disable: self.disabled.clone(),
        })
    }
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
    /// Check descriptors, their schemas and the governance policies, without Kafka or a catalog.
    ///
    /// Exit code: 0 clean (warnings allowed), 1 policy violations, 2 could not evaluate.
    Validate {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
        #[command(flatten)]
        policies: PolicyArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Show what `provision` (or `run`) would do to the catalog: tables to create, schema changes
    /// to apply, and changes refused because they would break readers (exit 1).
    Plan {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
        /// Platform config (meshd.yaml); without it, the embedded default under .meshd/.
        #[arg(long, env = "MESHD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Apply the plan: namespace, table with partition spec and properties, compatible schema
    /// changes, and the dead-letter topics. Refused changes apply nothing (exit 1).
    Provision {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
        /// Platform config (meshd.yaml); without it, the embedded default under .meshd/.
        #[arg(long, env = "MESHD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List data files under each product's table that no snapshot references (left by crashes,
    /// revocations or failed commits), and optionally delete them.
    ///
    /// Files younger than `--older-than` are listed but never deleted: a running worker's
    /// commit in progress references them a moment later.
    Orphans {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
        /// Platform config (meshd.yaml); without it, the embedded default under .meshd/.
        #[arg(long, env = "MESHD_CONFIG")]
        config: Option<PathBuf>,
        /// Delete the orphans older than `--older-than`.
        #[arg(long)]
        delete: bool,
        /// Minimum age of a file to delete, e.g. `1h`, `30min`.
        #[arg(long, default_value = "1h", value_parser = meshd_config::HumanDuration::parse)]
        older_than: meshd_config::HumanDuration,
    },
    /// Generate deployment artifacts from descriptors.
    Export {
        #[command(subcommand)]
        what: ExportCommand,
    },
    /// Governance policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
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
        Command::Validate {
            descriptors,
            policies,
            format,
        } => {
            let set = match policies.load() {
                Ok(set) => set,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let report = governance::validate(&descriptors, &set);
            print!("{}", report.render(format));
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Plan {
            descriptors,
            config,
        } => provision_products(&descriptors, config.as_deref(), false).await,
        Command::Provision {
            descriptors,
            config,
        } => provision_products(&descriptors, config.as_deref(), true).await,
        Command::Orphans {
            descriptors,
            config,
            delete,
            older_than,
        } => {
            orphans(
                &descriptors,
                config.as_deref(),
                delete,
                older_than.duration(),
            )
            .await
        }
        Command::Export {
            what: ExportCommand::PrometheusRules { descriptors },
        } => {
            let products = descriptors
                .iter()
                .map(|d| DataProduct::load(d))
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", meshd_runtime::alerts::prometheus_rules(&products));
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy {
            command: PolicyCommand::Input { descriptor },
        } => {
            let product = DataProduct::load(&descriptor)?;
            let docs: Vec<_> = (0..product.spec.spec.output_ports.len())
                .map(|port| meshd_config::policy::policy_input(&product, port))
                .collect();
            println!("{}", serde_json::to_string_pretty(&docs)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy {
            command: PolicyCommand::Test { dir },
        } => {
            let loaded = PolicySet::builtin().and_then(|mut set| {
                match &dir {
                    Some(dir) => set.add_path(dir)?,
                    None => {
                        for (name, text) in meshd_config::policy::library::TESTS {
                            set.add_source(format!("builtin:{name}"), (*text).to_string())?;
                        }
                    }
                }
                Ok(set)
            });
            let outcomes = match loaded.and_then(|set| set.run_tests()) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            for o in &outcomes {
                match &o.reason {
                    None => println!("PASS {}.{} ({})", o.package, o.name, o.file),
                    Some(why) => println!("FAIL {}.{} ({}): {why}", o.package, o.name, o.file),
                }
            }
            let failed = outcomes.iter().filter(|o| !o.passed).count();
            println!(
                "{} test(s): {} passed, {failed} failed",
                outcomes.len(),
                outcomes.len() - failed
            );
            Ok(if failed > 0 || outcomes.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
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
            let platform = Arc::new(load_platform(config.as_deref())?);
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
            let notifier =
                meshd_runtime::systemd::spawn(health.clone(), metrics.clone(), shutdown.clone());
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
            let _ = notifier.await;
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// `meshd plan` (`apply` false) and `meshd provision` (`apply` true): exit 1 when a product
/// has refused changes, which are never applied.
async fn orphans(
    descriptors: &[PathBuf],
    config: Option<&std::path::Path>,
    delete: bool,
    older_than: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let platform = load_platform(config)?;
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await?;
    let storage = meshd_sinks::iceberg::storage(&platform)?;
    for path in descriptors {
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
                let action = if delete && old {
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
            if delete {
                println!("  deleted {deleted} file(s)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn provision_products(
    descriptors: &[PathBuf],
    config: Option<&std::path::Path>,
    apply: bool,
) -> anyhow::Result<ExitCode> {
    let platform = load_platform(config)?;
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await?;
    let mut refused = false;
    for path in descriptors {
        let product = DataProduct::load(path)?;
        for port in 0..product.spec.spec.output_ports.len() {
            let spec = provision::table_spec(&platform, &product, port)?;
            let plan = provision::plan(catalog.as_ref(), &spec).await?;
            print!("{}", provision::render_plan(product.name(), &plan));
            refused |= plan.refused();
            if !apply {
                continue;
            }
            if plan.refused() {
                println!("  nothing applied for {}: refused changes", product.name());
                continue;
            }
            meshd_sinks::iceberg::probe_location(&platform, &spec.location).await?;
            println!("  {} is writable", spec.location);
            provision::evolve_schema(catalog.as_ref(), &spec).await?;
            OutputTable::open(Arc::clone(&catalog), &spec, product.consumer_group()).await?;
            println!("  applied");
        }
        if apply {
            let topics: Vec<(String, i32)> = product
                .spec
                .spec
                .input_ports
                .iter()
                .map(|i| (i.dead_letter_topic(), 1))
                .collect();
            meshd_runtime::kafka::ensure_topics(&platform, &topics).await?;
            let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
            println!("  dead-letter topics ready: {}", names.join(", "));
        }
    }
    Ok(if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The platform config from `--config` (or the embedded default) with `MESHD_*` overrides.
fn load_platform(
    config: Option<&std::path::Path>,
) -> Result<PlatformConfig, meshd_config::ConfigError> {
    let env = std::env::vars().filter(|(k, _)| k.starts_with("MESHD_"));
    PlatformConfig::load(config, env)
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
