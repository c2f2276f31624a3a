//! The `meshd` binary: `run` products, `validate` descriptors, or try it all with `demo`.
//!
//! This file is the command line: the tree of subcommands with what each is for, and a
//! dispatch table. Each subcommand's flags and body live in its own module under
//! [`commands`].

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::export::ExportCommand;
use commands::policy::PolicyCommand;

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
    Run(commands::run::Args),
    /// Check descriptors, their schemas and the governance policies, without Kafka or a catalog.
    ///
    /// Exit code: 0 clean (warnings allowed), 1 policy violations, 2 could not evaluate.
    Validate(commands::validate::Args),
    /// Show what `provision` (or `run`) would do to the catalog: tables to create, schema and
    /// table property changes to apply, and changes refused because they would break readers
    /// (exit 1).
    Plan(commands::ProductArgs),
    /// Apply the plan: namespace, table with partition spec and properties, compatible schema
    /// changes, property updates, and the dead-letter topics. Refused changes apply nothing
    /// (exit 1).
    Provision(commands::ProductArgs),
    /// List data files under each product's table that no snapshot references (left by crashes,
    /// revocations or failed commits), and optionally delete them.
    ///
    /// Files younger than `--older-than` are listed but never deleted: a running worker's
    /// commit in progress references them a moment later.
    Orphans(commands::orphans::Args),
    /// Table upkeep once: expire snapshots older than each product's
    /// `maintenance.snapshotMaxAge` and delete the files only they used.
    Maintain(commands::maintain::Args),
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
    Demo(commands::demo::Args),
    /// Scaffold a product folder: descriptor, schema, a policy with its test, a platform config
    /// for the embedded default and a CI workflow. Never overwrites a file.
    Init(commands::init::Args),
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

/// Runs the chosen subcommand; its exit code, or an error `main` reports with exit 2.
async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => commands::run::exec(args).await,
        Command::Validate(args) => commands::validate::exec(args).await,
        Command::Plan(args) => commands::plan::exec(args).await,
        Command::Provision(args) => commands::provision::exec(args).await,
        Command::Orphans(args) => commands::orphans::exec(args).await,
        Command::Maintain(args) => commands::maintain::exec(args).await,
        Command::Export { what } => commands::export::exec(what),
        Command::Policy { command } => commands::policy::exec(command),
        Command::Demo(args) => commands::demo::exec(args).await,
        Command::Init(args) => commands::init::exec(args),
    }
}
