//! `meshd init <domain>/<name>`: scaffold a product folder a domain team starts from. The
//! files are templates compiled into the binary (`src/init/templates/`) with the domain and
//! name filled in: the descriptor, its Avro schema (with a PII column and its masking), a
//! team policy with its test, a platform config for the embedded default, and a CI workflow.
//! As generated, the folder passes `meshd validate --policy policies product.yaml` and
//! `meshd policy test policies`, and `meshd run --config meshd.yaml product.yaml` runs it.
//!
//! Nothing is ever overwritten: if any file it would write exists, it writes none.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The flags of `meshd init`.
#[derive(clap::Args)]
pub struct Args {
    /// `<domain>/<name>`, each of lowercase letters, digits, `-` and `_` (as descriptors require).
    product: String,
    /// The folder to write into (created if missing); default `./<name>`.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// `(path in the product folder, template)`; `schema/__NAME__.avsc` is named after the product.
const TEMPLATES: [(&str, &str); 7] = [
    (
        "product.yaml",
        include_str!("../init/templates/product.yaml"),
    ),
    (
        "schema/__NAME__.avsc",
        include_str!("../init/templates/schema.avsc"),
    ),
    (
        "policies/columns_documented.rego",
        include_str!("../init/templates/columns_documented.rego"),
    ),
    (
        "policies/columns_documented_test.rego",
        include_str!("../init/templates/columns_documented_test.rego"),
    ),
    ("meshd.yaml", include_str!("../init/templates/meshd.yaml")),
    (".gitignore", include_str!("../init/templates/gitignore")),
    (
        ".github/workflows/data-product.yml",
        include_str!("../init/templates/workflow.yml"),
    ),
];

/// Exit 0 when the folder is written, 1 when a file exists (nothing is written), 2 on a bad
/// `<domain>/<name>`.
pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let (domain, name) = match parse_product(&args.product) {
        Ok(parts) => parts,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(name));
    let files = render(domain, name);
    let existing: Vec<PathBuf> = files
        .iter()
        .map(|(path, _)| dir.join(path))
        .filter(|path| path.exists())
        .collect();
    if !existing.is_empty() {
        for path in &existing {
            eprintln!(
                "error: {} already exists; meshd init never overwrites a file",
                path.display()
            );
        }
        eprintln!(
            "nothing was written: move those files away, or choose another folder with --dir"
        );
        return Ok(ExitCode::from(1));
    }
    for (path, text) in &files {
        write_new(&dir.join(path), text)?;
    }
    println!("Created data product {domain}/{name} in {}:", dir.display());
    for (path, _) in &files {
        println!("  {}", dir.join(path).display());
    }
    println!(
        "Next:\n  cd {}\n  meshd policy test policies\n  meshd validate --policy policies product.yaml\n  meshd run --config meshd.yaml product.yaml    # Kafka on localhost:9092; tables under .meshd/",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Splits and checks `<domain>/<name>`.
fn parse_product(text: &str) -> Result<(&str, &str), String> {
    let Some((domain, name)) = text.split_once('/') else {
        return Err(format!(
            "`{text}` is not `<domain>/<name>`, e.g. `payments/refunds`"
        ));
    };
    for (what, value) in [("domain", domain), ("product name", name)] {
        if !meshd_config::is_identifier(value) {
            return Err(format!(
                "`{value}` is not a valid {what} in `{text}`: use lowercase letters, digits, `-` and `_`"
            ));
        }
    }
    Ok((domain, name))
}

/// Every file with its path in the product folder, templates filled in.
fn render(domain: &str, name: &str) -> Vec<(String, String)> {
    let fill = |text: &str| {
        text.replace("__DOMAIN__", domain)
            .replace("__NAME__", name)
            .replace("__RECORD__", &avro_name(&camel_case(name)))
            .replace("__NAMESPACE__", &avro_name(&domain.replace('-', "_")))
    };
    TEMPLATES
        .iter()
        .map(|(path, text)| (fill(path), fill(text)))
        .collect()
}

/// `refund-requests` → `RefundRequests`.
fn camel_case(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// An Avro name (`[A-Za-z_][A-Za-z0-9_]*`) from an identifier that may start with a digit.
fn avro_name(text: &str) -> String {
    let text = text.replace('-', "_");
    match text.chars().next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => text,
        _ => format!("_{text}"),
    }
}

/// Creates `path` (and its folders) with `text`, failing if it exists.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_argument_is_checked() {
        assert_eq!(
            parse_product("payments/refunds"),
            Ok(("payments", "refunds"))
        );
        for bad in [
            "refunds",
            "Payments/refunds",
            "payments/",
            "/refunds",
            "a/b/c",
            "pay ments/x",
        ] {
            assert!(parse_product(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_become_avro_names() {
        assert_eq!(avro_name(&camel_case("refund-requests")), "RefundRequests");
        assert_eq!(avro_name(&camel_case("7eleven_sales")), "_7elevenSales");
        assert_eq!(avro_name("card-payments"), "card_payments");
        let files = render("card-payments", "refunds");
        assert!(files.iter().any(|(p, _)| p == "schema/refunds.avsc"));
        assert!(files.iter().all(|(_, t)| !t.contains("__")), "{files:?}");
    }
}
