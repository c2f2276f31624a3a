//! `meshd demo`: the reference product on an in-process mock Kafka cluster and a local
//! table, to try meshd without any infrastructure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use meshd_config::InputFormat;
use meshd_runtime::demo::{self, DemoOptions};

/// The flags of `meshd demo`.
#[derive(clap::Args)]
pub struct Args {
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
    /// How events are encoded: `json`, or `avro-confluent` (Confluent's wire format, with a
    /// schema registry served in-process).
    #[arg(long, value_enum, default_value = "json")]
    format: DemoFormat,
}

/// The encodings the demo can produce.
#[derive(Clone, Copy, clap::ValueEnum)]
enum DemoFormat {
    /// One JSON object per event.
    Json,
    /// Confluent's wire format: magic byte, schema id, Avro datum.
    AvroConfluent,
}

/// Runs for `--seconds`, printing progress each second; exit 0, or an error when the demo
/// could not run.
pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let options = DemoOptions {
        duration: Duration::from_secs(args.seconds),
        rate: args.rate,
        state_dir: args.state_dir,
        listen: args.listen,
        format: match args.format {
            DemoFormat::Json => InputFormat::Json,
            DemoFormat::AvroConfluent => InputFormat::AvroConfluent,
        },
    };
    let mut stdout = std::io::stdout();
    demo::run(options, &mut stdout)
        .await
        .context("the demo failed")?;
    Ok(ExitCode::SUCCESS)
}
