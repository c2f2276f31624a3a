//! `meshd export trino-opa`: an OPA bundle that makes Trino enforce the products' access
//! policies at query time, through Trino's OPA access-control plugin.
//!
//! Data flows in three steps: each product's output ports become table entries
//! ([`TableEntry`]: role, row filter, PII columns, cleared groups) after the built-in
//! `access_filter` rule has passed every row filter; [`bundle`] puts them into `data.json`
//! beside the generic Rego policy (`trino_opa/policy.rego`, the same text for every product)
//! and its tests, with a `.manifest`; [`write`] puts the files into a folder. Nothing is
//! written unless every product exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshd_config::policy::{PolicySet, Severity};
use meshd_config::{Column, ConfigError, DataProduct, Diagnostic};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::RuntimeError;

/// The generic policy: package `trino`, the endpoints Trino's plugin calls.
pub const POLICY: &str = include_str!("trino_opa/policy.rego");

/// The policy's own tests (package `trino_test`), on a fixture product.
pub const POLICY_TEST: &str = include_str!("trino_opa/policy_test.rego");

/// The built-in rule a row filter must pass to be exported.
const FILTER_RULE: &str = "access_filter";

/// Where the products live in Trino, and who administers them.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Trino catalog the products' Iceberg tables are in (`iceberg`).
    pub catalog: String,
    /// The Trino group whose members may do everything (`meshd-admin`).
    pub admin_group: String,
}

/// One product table as the policy sees it, under `data.meshd.trino.tables.<schema>.<table>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableEntry {
    /// `metadata.name` of the product.
    pub product: String,
    /// The descriptor it came from, for people reading data.json.
    pub descriptor: String,
    /// The Trino group that may read the table; none: admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The SQL condition rows must meet for everyone but admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    /// Top-level columns (lower-case, as Trino names them) that are or hold a PII field.
    pub pii_columns: Vec<String>,
    /// Groups that see PII columns unmasked.
    pub pii_cleared: Vec<String>,
}

/// The bundle's files, by path relative to the bundle root.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// `(relative path, content)`, in writing order.
    pub files: Vec<(&'static str, String)>,
}

/// Builds the bundle for `products`. Every row filter must pass the built-in
/// `access_filter` rule, and no two products may claim one table; all refusals are reported
/// together, positioned in their descriptors.
pub fn bundle(products: &[DataProduct], options: &Options) -> Result<Bundle, RuntimeError> {
    let mut diagnostics = filter_refusals(products)?;
    let mut tables: BTreeMap<String, BTreeMap<String, TableEntry>> = BTreeMap::new();
    let mut owners: BTreeMap<(String, String), String> = BTreeMap::new();
    for product in products {
        for port in 0..product.spec.spec.output_ports.len() {
            let (schema, table) = product.table_ident(port);
            let key = (schema.clone(), table.clone());
            if let Some(first) = owners.get(&key) {
                diagnostics.push(descriptor_diagnostic(
                    product,
                    &format!("spec.outputPorts[{port}]"),
                    format!("table `{schema}.{table}` is already exported for {first}"),
                    Some("each table belongs to one product: rename the port or the product"),
                ));
                continue;
            }
            owners.insert(key, product.path.display().to_string());
            tables
                .entry(schema)
                .or_default()
                .insert(table, table_entry(product, port));
        }
    }
    if !diagnostics.is_empty() {
        return Err(ConfigError::Invalid { diagnostics }.into());
    }
    let data = json!({"meshd": {"trino": {
        "catalog": options.catalog,
        "adminGroup": options.admin_group,
        "tables": tables,
    }}});
    let data = format!(
        "{}\n",
        serde_json::to_string_pretty(&data).unwrap_or_default()
    );
    let mut digest = Sha256::new();
    for part in [POLICY, POLICY_TEST, data.as_str()] {
        digest.update(part.as_bytes());
    }
    let manifest = json!({
        "revision": hex::encode(digest.finalize()),
        "roots": ["trino", "trino_test", "meshd/trino"],
    });
    let manifest = format!(
        "{}\n",
        serde_json::to_string_pretty(&manifest).unwrap_or_default()
    );
    Ok(Bundle {
        files: vec![
            ("policy.rego", POLICY.to_string()),
            ("policy_test.rego", POLICY_TEST.to_string()),
            ("data.json", data),
            (".manifest", manifest),
        ],
    })
}

/// Writes `bundle` into `dir`, creating it. A folder that exists and holds anything is
/// refused unless `force`, which overwrites the bundle's files and leaves others alone.
pub fn write(bundle: &Bundle, dir: &Path, force: bool) -> Result<(), RuntimeError> {
    let target = |message: String| RuntimeError::ExportTarget {
        path: dir.to_path_buf(),
        message,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                return Err(target(
                    "the output folder is not empty; choose another, or pass --force to overwrite the bundle's files".into(),
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory || dir.is_file() => {
            return Err(target("is a file; the bundle is a folder".into()));
        }
        Err(source) => {
            return Err(RuntimeError::ExportWrite {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    let io = |path: PathBuf| move |source| RuntimeError::ExportWrite { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    for (name, text) in &bundle.files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(path.clone()))?;
    }
    Ok(())
}

/// The table entry of output port `port`.
pub fn table_entry(product: &DataProduct, port: usize) -> TableEntry {
    let access = product
        .spec
        .spec
        .policies
        .as_ref()
        .and_then(|p| p.access_control.as_ref());
    TableEntry {
        product: product.name().to_string(),
        descriptor: product.path.display().to_string(),
        role: access.map(|a| a.role.clone()),
        row_filter: access.and_then(|a| a.filter.clone()),
        pii_columns: product.schemas[port]
            .fields
            .iter()
            .filter(|c| holds_pii(c))
            .map(|c| c.name.to_lowercase())
            .collect(),
        pii_cleared: access.map(|a| a.pii_cleared.clone()).unwrap_or_default(),
    }
}

/// Whether a column is tagged PII or has a field (at any depth) that is: Trino masks whole
/// top-level columns.
fn holds_pii(column: &Column) -> bool {
    column.tags.iter().any(|t| t.eq_ignore_ascii_case("PII"))
        || column
            .ty
            .record_fields()
            .is_some_and(|fields| fields.iter().any(holds_pii))
}

/// The `access_filter` findings (deny) of every product, as diagnostics at the filter.
fn filter_refusals(products: &[DataProduct]) -> Result<Vec<Diagnostic>, RuntimeError> {
    let policies = PolicySet::builtin()?;
    let mut out = Vec::new();
    for product in products {
        for finding in policies.evaluate(product)? {
            if finding.rule == FILTER_RULE && finding.severity == Severity::Deny {
                out.push(Diagnostic {
                    file: PathBuf::from(&finding.location.file),
                    line: finding.location.line,
                    column: finding.location.column,
                    path: "spec.policies.accessControl.filter".into(),
                    message: format!("{} Not exported.", finding.message),
                    hint: None,
                });
            }
        }
    }
    Ok(out)
}

fn descriptor_diagnostic(
    product: &DataProduct,
    path: &str,
    message: String,
    hint: Option<&str>,
) -> Diagnostic {
    let text = std::fs::read_to_string(&product.path).unwrap_or_default();
    let (line, column) = meshd_config::locate(&text, path);
    Diagnostic {
        file: product.path.clone(),
        line,
        column,
        path: path.to_string(),
        message,
        hint: hint.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use meshd_config::DataProduct;

    use super::{Options, bundle, table_entry, write};

    fn seed() -> DataProduct {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed");
        DataProduct::load(&dir.join("product.yaml")).expect("the seed loads")
    }

    fn options() -> Options {
        Options {
            catalog: "iceberg".into(),
            admin_group: "meshd-admin".into(),
        }
    }

    #[test]
    fn the_seed_becomes_one_table_with_its_role_filter_and_pii_columns() {
        let entry = table_entry(&seed(), 0);
        assert_eq!(entry.role.as_deref(), Some("data-analyst"));
        assert_eq!(entry.row_filter.as_deref(), Some("region = 'JP'"));
        assert_eq!(entry.pii_columns, ["email", "card_last4"]);
        assert!(entry.pii_cleared.is_empty());
    }

    #[test]
    fn data_json_nests_tables_by_schema() {
        let b = bundle(&[seed()], &options()).expect("exports");
        let data = &b
            .files
            .iter()
            .find(|(n, _)| *n == "data.json")
            .expect("data")
            .1;
        let v: serde_json::Value = serde_json::from_str(data).expect("json");
        let t = &v["meshd"]["trino"];
        assert_eq!(t["catalog"], "iceberg");
        assert_eq!(t["adminGroup"], "meshd-admin");
        assert_eq!(
            t["tables"]["payments"]["payment_transactions"]["rowFilter"],
            "region = 'JP'"
        );
    }

    #[test]
    fn a_product_exported_twice_is_refused() {
        let err = bundle(&[seed(), seed()], &options()).expect_err("one table, two products");
        assert!(err.to_string().contains("already exported"), "{err}");
    }

    #[test]
    fn a_non_empty_folder_needs_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("keep"), "x").expect("write");
        let b = bundle(&[seed()], &options()).expect("exports");
        let err = write(&b, dir.path(), false).expect_err("refused");
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(!dir.path().join("data.json").exists());
        write(&b, dir.path(), true).expect("forced");
        assert!(dir.path().join(".manifest").exists());
        assert!(dir.path().join("keep").exists());
    }
}
