//! `meshd validate`: check descriptors, their schemas and the governance policies without
//! Kafka or a catalog, and print the report in the format CI asks for.

use std::path::PathBuf;
use std::process::ExitCode;

use meshd_config::policy::PolicySet;
use meshd_config::{PlatformConfig, SchemaRegistryConfig};
use meshd_runtime::governance::registry::{self, Versions};
use meshd_runtime::governance::{self, Format};
use meshd_runtime::registry::Registry;

/// The flags of `meshd validate`.
#[derive(clap::Args)]
pub struct Args {
    /// DataProduct descriptors (YAML).
    #[arg(required = true)]
    descriptors: Vec<PathBuf>,
    #[command(flatten)]
    policies: PolicyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The platform config `meshd run` will use: also check what depends on it (a masking key
    /// for HMAC-SHA256 columns, a schema registry for avro-confluent ports).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also check that every avro-confluent input port can read what its registry subject
    /// holds (credentials from MESHD_SCHEMA_REGISTRY_USERNAME/PASSWORD or _TOKEN).
    #[arg(long, value_name = "URL", env = "MESHD_SCHEMA_REGISTRY_URL")]
    registry: Option<String>,
    /// Which registered versions must stay readable.
    #[arg(long, value_enum, default_value = "all", requires = "registry")]
    registry_versions: Versions,
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

/// Exit 0 clean (warnings allowed), 1 on policy violations (or a registered writer schema a
/// port cannot read), 2 when the policies do not load or a descriptor could not be evaluated
/// (the registry did not answer).
pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let set = match args.policies.load() {
        Ok(set) => set,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let platform = match &args.config {
        Some(path) => match PlatformConfig::load(Some(path), std::env::vars()) {
            Ok(platform) => Some(platform),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let mut report = governance::validate(&args.descriptors, &set, platform.as_ref());
    if let Some(url) = &args.registry {
        let env = std::iter::once(("MESHD_SCHEMA_REGISTRY_URL".to_string(), url.clone()))
            .chain(std::env::vars().filter(|(k, _)| k != "MESHD_SCHEMA_REGISTRY_URL"));
        let mut config = PlatformConfig::load(None, env)?
            .schema_registry
            .unwrap_or_else(|| SchemaRegistryConfig::new(url.clone()));
        config.url = url.clone();
        let registry = match Registry::new(&config) {
            Ok(registry) => registry,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        };
        registry::check(&mut report, &registry, args.registry_versions).await;
    }
    print!("{}", report.render(args.format));
    Ok(ExitCode::from(report.exit_code()))
}
