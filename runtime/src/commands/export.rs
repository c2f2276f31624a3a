//! `meshd export`: deployment artifacts generated from descriptors, so what is deployed
//! agrees with what the products declare.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use meshd_config::{ConfigError, DataProduct};
use meshd_runtime::export::{datahub, odcs, trino_opa};

/// What `meshd export` can generate.
#[derive(clap::Subcommand)]
pub enum ExportCommand {
    /// Prometheus alert rules per product, thresholds taken from each descriptor's SLA.
    PrometheusRules {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
    },
    /// An OPA bundle (Rego policy, data.json, .manifest) for Trino's OPA access control: role
    /// members select the products' tables, row filters and PII masks apply at query time.
    ///
    /// Nothing is written when a row filter fails the `access_filter` rule.
    TrinoOpa {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
        /// The bundle folder to write; refused when it exists and is not empty.
        #[arg(short, long)]
        output: PathBuf,
        /// The Trino catalog the products' Iceberg tables are in.
        #[arg(long, default_value = "iceberg")]
        catalog: String,
        /// The Trino group whose members may do everything, unfiltered and unmasked.
        #[arg(long, default_value = "meshd-admin")]
        admin_group: String,
        /// Write into a non-empty folder, overwriting the bundle's files.
        #[arg(long)]
        force: bool,
    },
    /// DataHub metadata change proposals (a JSON file for `datahub ingest` / `datahub put`):
    /// one `iceberg` dataset per output port with schema, PII tags, owner, domain, SLA and
    /// lineage from the Kafka topics.
    Datahub {
        /// DataProduct descriptors (YAML).
        #[arg(required = true)]
        descriptors: Vec<PathBuf>,
        /// The file to write; an existing file is refused unless `--force`.
        #[arg(short, long, required_unless_present = "server")]
        output: Option<PathBuf>,
        /// Overwrite `--output` if it exists.
        #[arg(long)]
        force: bool,
        /// Also post each proposal to this DataHub GMS (`http://datahub-gms:8080`) at
        /// `/aspects?action=ingestProposal`, with the token in `DATAHUB_GMS_TOKEN` if set.
        #[arg(long)]
        server: Option<String>,
    },
    /// An Open Data Contract Standard v3 document (YAML) for one product: schema with
    /// classification, SLA, roles, retention and owner.
    Odcs {
        /// A DataProduct descriptor (YAML).
        descriptor: PathBuf,
        /// The file to write (default: standard output); an existing file is refused unless
        /// `--force`.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Overwrite `--output` if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Prints the artifact on stdout; exit 0, or an error when a descriptor does not load.
pub fn exec(what: ExportCommand) -> anyhow::Result<ExitCode> {
    match what {
        ExportCommand::PrometheusRules { descriptors } => prometheus_rules(&descriptors),
        ExportCommand::TrinoOpa {
            descriptors,
            output,
            catalog,
            admin_group,
            force,
        } => trino_opa(
            &descriptors,
            &output,
            &trino_opa::Options {
                catalog,
                admin_group,
            },
            force,
        ),
        ExportCommand::Datahub {
            descriptors,
            output,
            force,
            server,
        } => datahub_file(&descriptors, output.as_deref(), force, server.as_deref()),
        ExportCommand::Odcs {
            descriptor,
            output,
            force,
        } => odcs_file(&descriptor, output.as_deref(), force),
    }
}

/// `meshd export prometheus-rules`: one rule group per product.
fn prometheus_rules(descriptors: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let products = descriptors
        .iter()
        .map(|d| DataProduct::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", meshd_runtime::alerts::prometheus_rules(&products));
    Ok(ExitCode::SUCCESS)
}

/// `meshd export trino-opa`: every descriptor's problems are reported together, and nothing
/// is written unless all of them export.
fn trino_opa(
    descriptors: &[PathBuf],
    output: &Path,
    options: &trino_opa::Options,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let mut products = Vec::new();
    let mut diagnostics = Vec::new();
    for path in descriptors {
        match DataProduct::load(path) {
            Ok(p) => products.push(p),
            Err(ConfigError::Invalid { diagnostics: found }) => diagnostics.extend(found),
            Err(other) => return Err(other.into()),
        }
    }
    if !diagnostics.is_empty() {
        return Err(ConfigError::Invalid { diagnostics }.into());
    }
    let bundle = trino_opa::bundle(&products, options)?;
    trino_opa::write(&bundle, output, force)?;
    println!(
        "wrote an OPA bundle for {} table(s) to {} (policy package `trino`)",
        products
            .iter()
            .map(|p| p.spec.spec.output_ports.len())
            .sum::<usize>(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Every descriptor, or the first that does not load (its error has file:line:col).
fn load_all(descriptors: &[PathBuf]) -> anyhow::Result<Vec<DataProduct>> {
    Ok(descriptors
        .iter()
        .map(|d| DataProduct::load(d))
        .collect::<Result<Vec<_>, _>>()?)
}

/// `meshd export datahub`: every descriptor loads before anything is written or posted.
fn datahub_file(
    descriptors: &[PathBuf],
    output: Option<&Path>,
    force: bool,
    server: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let products = load_all(descriptors)?;
    let proposals = datahub::proposals(&products)?;
    if let Some(path) = output {
        let text = serde_json::to_string_pretty(&proposals)? + "\n";
        write_new(path, &text, force)?;
        eprintln!(
            "wrote {} metadata change proposals to {}",
            proposals.len(),
            path.display()
        );
    }
    if let Some(server) = server {
        // The command runs inside the binary's multi-threaded runtime.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(post_all(server, &proposals))
        })?;
        eprintln!("posted {} proposals to {server}", proposals.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Posts the proposals one by one to GMS's REST endpoint; the first refusal stops the export.
async fn post_all(server: &str, proposals: &[serde_json::Value]) -> anyhow::Result<()> {
    let url = format!(
        "{}/aspects?action=ingestProposal",
        server.trim_end_matches('/')
    );
    let client = reqwest::Client::new();
    let token = std::env::var("DATAHUB_GMS_TOKEN").ok();
    for proposal in proposals {
        let mut request = client
            .post(&url)
            .header("X-RestLi-Protocol-Version", "2.0.0")
            .json(&datahub::ingest_request(proposal));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("posting to DataHub at {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!(
                "DataHub at {url} refused {} of {}: {status} {}",
                proposal["aspectName"],
                proposal["entityUrn"],
                body.chars().take(500).collect::<String>()
            );
        }
    }
    Ok(())
}

/// `meshd export odcs`: to `output`, or standard output.
fn odcs_file(descriptor: &Path, output: Option<&Path>, force: bool) -> anyhow::Result<ExitCode> {
    let product = DataProduct::load(descriptor)?;
    let text = odcs::contract_yaml(&product)?;
    match output {
        Some(path) => {
            write_new(path, &text, force)?;
            eprintln!(
                "wrote the data contract of {} to {}",
                product.name(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path`, refusing an existing file unless `force`.
fn write_new(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists; pass --force to overwrite it", path.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
        }
    })?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
