//! `meshd validate`: check descriptors, their schemas and the governance policies without
//! Kafka or a catalog, and print the report in the format CI asks for.

use std::path::PathBuf;
use std::process::ExitCode;

use meshd_config::policy::PolicySet;
use meshd_runtime::governance::{self, Format};

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

/// Exit 0 clean (warnings allowed), 1 on policy violations, 2 when the policies do not load
/// or a descriptor could not be evaluated.
pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let set = match args.policies.load() {
        Ok(set) => set,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = governance::validate(&args.descriptors, &set);
    print!("{}", report.render(args.format));
    Ok(ExitCode::from(report.exit_code()))
}
