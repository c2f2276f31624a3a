//! One module per `meshd` subcommand, after cargo's `src/bin/cargo/commands/`: each owns its
//! flags (an `Args` struct, or the enum of its own subcommands) and an `exec` that does the
//! work and returns the process exit code. `main` parses the command line and dispatches here;
//! what a command prints and which code it exits with is decided in its module alone.
//!
//! An `Err` from `exec` is a failure the command could not report itself: `main` prints it
//! with its chain and exits 2.

pub mod demo;
pub mod export;
pub mod init;
pub mod maintain;
pub mod orphans;
pub mod plan;
pub mod policy;
pub mod provision;
pub mod run;
pub mod validate;

use std::path::PathBuf;

use meshd_config::{ConfigError, PlatformConfig};

/// The flags of every command that works on products' tables (`run`, `plan`, `provision`,
/// `orphans`): which products, and the platform config that says where their tables are.
#[derive(clap::Args)]
pub struct ProductArgs {
    /// DataProduct descriptors (YAML).
    #[arg(required = true)]
    pub descriptors: Vec<PathBuf>,
    /// Platform config (meshd.yaml); without it, the embedded default under .meshd/.
    #[arg(long, env = "MESHD_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ProductArgs {
    /// The platform config from `--config` (or the embedded default) with `MESHD_*` overrides.
    pub fn platform(&self) -> Result<PlatformConfig, ConfigError> {
        let env = std::env::vars().filter(|(k, _)| k.starts_with("MESHD_"));
        PlatformConfig::load(self.config.as_deref(), env)
    }
}
