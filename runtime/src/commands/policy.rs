//! `meshd policy`: tools for writing governance policies: run their tests, and show the
//! input document a policy sees for a descriptor.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use meshd_config::DataProduct;
use meshd_config::policy::PolicySet;

/// The subcommands of `meshd policy`.
#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Run the `test_*` rules of a policy folder (the built-in library's own tests without one).
    ///
    /// A folder's `data.json` (an OPA bundle's data, e.g. from `meshd export trino-opa`) is
    /// loaded as `data`, as `opa test` does.
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

/// Runs the chosen policy tool.
pub fn exec(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Test { dir } => test(dir.as_deref()),
        PolicyCommand::Input { descriptor } => input(&descriptor),
    }
}

/// `meshd policy test`: a PASS or FAIL line per test and a count; exit 0 all passed, 1 a test
/// failed (or there were none), 2 the policies do not load.
fn test(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let loaded = PolicySet::builtin().and_then(|mut set| {
        match dir {
            Some(dir) => {
                set.add_path(dir)?;
                let data = dir.join("data.json");
                if data.is_file() {
                    let text = std::fs::read_to_string(&data).map_err(|source| {
                        meshd_config::ConfigError::Read {
                            path: data.clone(),
                            source,
                        }
                    })?;
                    set.add_data_json(&data.display().to_string(), &text)?;
                }
            }
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

/// `meshd policy input`: the documents a policy's `input` is, one per output port, as JSON.
fn input(descriptor: &Path) -> anyhow::Result<ExitCode> {
    let product = DataProduct::load(descriptor)?;
    let docs: Vec<_> = (0..product.spec.spec.output_ports.len())
        .map(|port| meshd_config::policy::policy_input(&product, port))
        .collect();
    println!("{}", serde_json::to_string_pretty(&docs)?);
    Ok(ExitCode::SUCCESS)
}
