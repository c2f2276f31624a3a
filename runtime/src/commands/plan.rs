//! `meshd plan`: what `provision` (or `run`) would do to the catalog, changing nothing.

use std::process::ExitCode;

use super::{ProductArgs, provision};

/// Prints each port's plan; exit 1 when a product has changes refused because they would
/// break readers.
pub async fn exec(args: ProductArgs) -> anyhow::Result<ExitCode> {
    provision::plan_products(&args, false).await
}
