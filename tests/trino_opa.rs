//! `meshd export trino-opa`, end to end: the exported bundle is loaded into regorus the way
//! OPA serves it (policy + data.json) and asked what Trino's OPA plugin asks, with request
//! documents shaped as the plugin sends them, for a role member, a non-member and an admin;
//! `meshd policy test` runs the bundle's own tests; and a bundle with a row filter that fails
//! the `access_filter` rule, or into a non-empty folder, is never written.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use regorus::{Engine, Value as RegoValue};
use serde_json::{Value, json};

const ANALYST: &[&str] = &["data-analyst"];
const OUTSIDER: &[&str] = &["marketing"];
const ADMIN: &[&str] = &["meshd-admin"];
const PAYMENTS: (&str, &str) = ("payments", "payment_transactions");
const HR: (&str, &str) = ("hr", "employees");

/// The seed product as is, and an HR product whose PII a `hr-privacy` group is cleared for.
fn products(dir: &Path) -> Vec<PathBuf> {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed");
    let hr = dir.join("hr");
    std::fs::create_dir_all(hr.join("schema")).unwrap();
    std::fs::write(
        hr.join("schema/employees.avsc"),
        r#"{"type": "record", "name": "Employee", "fields": [
            {"name": "employee_id", "type": "string"},
            {"name": "Salary", "type": ["null", "long"], "default": null, "tags": ["PII"], "masking": "NULL"},
            {"name": "country", "type": "string"}
        ]}"#,
    )
    .unwrap();
    std::fs::write(hr.join("product.yaml"), hr_descriptor("country = 'DE'")).unwrap();
    vec![seed.join("product.yaml"), hr.join("product.yaml")]
}

fn hr_descriptor(filter: &str) -> String {
    format!(
        r#"apiVersion: datamesh/v1
kind: DataProduct
metadata:
  name: employees
  domain: hr
  owner: hr-team@example.com
spec:
  inputPorts:
    - type: kafka-topic
      source: hr-events
  outputPorts:
    - type: iceberg-table
      location: file:///tmp/hr/employees
      schema: ./schema/employees.avsc
      sla:
        freshness: "15min"
        availability: "99%"
  policies:
    accessControl:
      role: hr-analyst
      filter: "{filter}"
      piiCleared: [hr-privacy]
"#
    )
}

fn export(args: &[&Path], out: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut all: Vec<std::ffi::OsString> = vec!["export".into(), "trino-opa".into()];
    all.extend(args.iter().map(|p| p.as_os_str().to_owned()));
    all.extend(["-o".into(), out.as_os_str().to_owned()]);
    all.extend(extra.iter().map(Into::into));
    support::meshd_output(&all)
}

/// The bundle as OPA serves it: every .rego module and data.json at the data root.
fn load(bundle: &Path) -> Engine {
    let mut engine = Engine::new();
    for name in ["policy.rego", "policy_test.rego"] {
        let text = std::fs::read_to_string(bundle.join(name)).unwrap();
        engine.add_policy(name.into(), text).unwrap();
    }
    let data = std::fs::read_to_string(bundle.join("data.json")).unwrap();
    engine.add_data_json(&data).unwrap();
    engine
}

/// `data.trino.<rule>` for `input`; None when undefined (OPA's `{}` result).
fn ask(engine: &mut Engine, rule: &str, input: &Value) -> Option<Value> {
    engine.set_input_json(&input.to_string()).unwrap();
    let value = engine.eval_rule(format!("data.trino.{rule}")).unwrap();
    if value == RegoValue::Undefined {
        return None;
    }
    Some(serde_json::from_str(&value.to_json_str().unwrap()).unwrap())
}

/// A request as Trino's OPA plugin sends it: `context` and `action`.
fn request(groups: &[&str], action: Value) -> Value {
    json!({
        "context": {
            "identity": {"user": "alice", "groups": groups},
            "softwareStack": {"trinoVersion": "455"},
            "queryId": "20251127_000000_00000_trino"
        },
        "action": action,
    })
}

fn table((schema, table): (&str, &str)) -> Value {
    json!({"catalogName": "iceberg", "schemaName": schema, "tableName": table})
}

fn column(t: (&str, &str), name: &str, ty: &str) -> Value {
    let mut c = table(t);
    c["columnName"] = json!(name);
    c["columnType"] = json!(ty);
    c
}

fn allowed(engine: &mut Engine, groups: &[&str], action: Value) -> bool {
    ask(engine, "allow", &request(groups, action)) == Some(json!(true))
}

fn batch(engine: &mut Engine, groups: &[&str], action: Value) -> Value {
    ask(engine, "batch", &request(groups, action)).unwrap()
}

#[test]
fn exported_bundle_answers_trinos_requests_for_members_outsiders_and_admins() {
    let dir = support::test_dir();
    let descriptors = products(dir.path());
    let out = dir.path().join("bundle");
    let refs: Vec<&Path> = descriptors.iter().map(PathBuf::as_path).collect();
    let (code, text) = export(&refs, &out, &[]);
    assert_eq!(code, Some(0), "{text}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(".manifest")).unwrap()).unwrap();
    assert!(manifest["revision"].as_str().is_some_and(|r| r.len() == 64));
    let e = &mut load(&out);

    // ExecuteQuery: everyone authenticated.
    for groups in [ANALYST, OUTSIDER, ADMIN] {
        assert!(allowed(e, groups, json!({"operation": "ExecuteQuery"})));
    }

    // FilterCatalogs (batch): the products' catalog for members, everything for admins.
    let catalogs = json!({"operation": "FilterCatalogs", "filterResources": [
        {"catalog": {"name": "iceberg"}}, {"catalog": {"name": "tpch"}}
    ]});
    assert_eq!(batch(e, ANALYST, catalogs.clone()), json!([0]));
    assert_eq!(batch(e, OUTSIDER, catalogs.clone()), json!([]));
    assert_eq!(batch(e, ADMIN, catalogs), json!([0, 1]));

    // FilterSchemas (batch): a member sees the product's domain, not the others.
    let schemas = json!({"operation": "FilterSchemas", "filterResources": [
        {"schema": {"catalogName": "iceberg", "schemaName": "payments"}},
        {"schema": {"catalogName": "iceberg", "schemaName": "hr"}},
        {"schema": {"catalogName": "iceberg", "schemaName": "information_schema"}}
    ]});
    assert_eq!(batch(e, ANALYST, schemas.clone()), json!([0, 2]));
    assert_eq!(batch(e, OUTSIDER, schemas.clone()), json!([]));
    assert_eq!(batch(e, ADMIN, schemas), json!([0, 1, 2]));

    // FilterTables (batch).
    let tables = json!({"operation": "FilterTables", "filterResources": [
        {"table": table(PAYMENTS)}, {"table": table(HR)}
    ]});
    assert_eq!(batch(e, ANALYST, tables.clone()), json!([0]));
    assert_eq!(batch(e, &["hr-analyst"], tables.clone()), json!([1]));
    assert_eq!(batch(e, OUTSIDER, tables.clone()), json!([]));
    assert_eq!(batch(e, ADMIN, tables), json!([0, 1]));

    // FilterColumns (batch): one table, the answer indexes its columns.
    let mut with_columns = table(PAYMENTS);
    with_columns["columns"] = json!(["transaction_id", "email", "region"]);
    let columns =
        json!({"operation": "FilterColumns", "filterResources": [{"table": with_columns}]});
    assert_eq!(batch(e, ANALYST, columns.clone()), json!([0, 1, 2]));
    assert_eq!(batch(e, OUTSIDER, columns), json!([]));

    // SelectFromColumns.
    let select = json!({"operation": "SelectFromColumns", "resource": {"table": with_columns}});
    assert!(allowed(e, ANALYST, select.clone()));
    assert!(!allowed(e, OUTSIDER, select.clone()));
    assert!(allowed(e, ADMIN, select));
    let mut other = table(HR);
    other["columns"] = json!(["employee_id"]);
    let select_other = json!({"operation": "SelectFromColumns", "resource": {"table": other}});
    assert!(!allowed(e, ANALYST, select_other));
    // A table of another catalog with the same names is not the product's.
    let mut elsewhere = with_columns.clone();
    elsewhere["catalogName"] = json!("hive");
    let select_elsewhere =
        json!({"operation": "SelectFromColumns", "resource": {"table": elsewhere}});
    assert!(!allowed(e, ANALYST, select_elsewhere));

    // GetRowFilters: the role's filter, for everyone but admins.
    let rows = |t| json!({"operation": "GetRowFilters", "resource": {"table": table(t)}});
    assert_eq!(
        ask(e, "rowFilters", &request(ANALYST, rows(PAYMENTS))),
        Some(json!([{"expression": "region = 'JP'"}]))
    );
    assert_eq!(
        ask(e, "rowFilters", &request(&["hr-analyst"], rows(HR))),
        Some(json!([{"expression": "country = 'DE'"}]))
    );
    assert_eq!(
        ask(e, "rowFilters", &request(ADMIN, rows(PAYMENTS))),
        Some(json!([]))
    );

    // GetColumnMask: PII columns for everyone not cleared; admins see them.
    let mask = |t, name, ty| json!({"operation": "GetColumnMask", "resource": {"column": column(t, name, ty)}});
    let null_varchar = json!({"expression": "CAST(NULL AS varchar)"});
    assert_eq!(
        ask(
            e,
            "columnMask",
            &request(ANALYST, mask(PAYMENTS, "email", "varchar"))
        ),
        Some(null_varchar.clone())
    );
    assert_eq!(
        ask(
            e,
            "columnMask",
            &request(OUTSIDER, mask(PAYMENTS, "card_last4", "varchar"))
        ),
        Some(null_varchar.clone())
    );
    assert_eq!(
        ask(
            e,
            "columnMask",
            &request(ANALYST, mask(PAYMENTS, "region", "varchar"))
        ),
        None
    );
    assert_eq!(
        ask(
            e,
            "columnMask",
            &request(ADMIN, mask(PAYMENTS, "email", "varchar"))
        ),
        None
    );
    // Cleared groups (`piiCleared`) see the column; Trino lower-cases `Salary`.
    assert_eq!(
        ask(
            e,
            "columnMask",
            &request(&["hr-analyst"], mask(HR, "salary", "bigint"))
        ),
        Some(json!({"expression": "CAST(NULL AS bigint)"}))
    );
    assert_eq!(
        ask(
            e,
            "columnMask",
            &request(&["hr-analyst", "hr-privacy"], mask(HR, "salary", "bigint"))
        ),
        None
    );

    // Batch column masks: `filterResources` of columns, answered by index.
    let batch_masks = json!({"operation": "GetColumnMask", "filterResources": [
        {"column": column(PAYMENTS, "email", "varchar")},
        {"column": column(PAYMENTS, "region", "varchar")},
        {"column": column(PAYMENTS, "card_last4", "varchar")}
    ]});
    assert_eq!(
        ask(
            e,
            "batchColumnMasks",
            &request(ANALYST, batch_masks.clone())
        ),
        Some(json!([
            {"index": 0, "viewExpression": {"expression": "CAST(NULL AS varchar)"}},
            {"index": 2, "viewExpression": {"expression": "CAST(NULL AS varchar)"}}
        ]))
    );
    assert_eq!(
        ask(e, "batchColumnMasks", &request(ADMIN, batch_masks)),
        Some(json!([]))
    );

    // The bundle's own tests pass under `meshd policy test`.
    let (code, text) =
        support::meshd_output(&["policy".as_ref(), "test".as_ref(), out.as_os_str()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("PASS trino_test.test_analyst_gets_the_row_filter"),
        "{text}"
    );
    assert!(
        text.contains("PASS trino_test.test_exported_tables_are_readable_by_their_role_only"),
        "{text}"
    );
    assert!(text.contains(" 0 failed"), "{text}");
}

#[test]
fn a_filter_naming_a_missing_column_is_not_exported() {
    let dir = support::test_dir();
    let descriptors = products(dir.path());
    std::fs::write(&descriptors[1], hr_descriptor("region = 'EU'")).unwrap();
    let out = dir.path().join("bundle");
    let (code, text) = export(&[&descriptors[0], &descriptors[1]], &out, &[]);
    assert_ne!(code, Some(0), "{text}");
    // The filter is line 21 of the descriptor, its key at column 7.
    let at = format!("{}:21:7", descriptors[1].display());
    assert!(text.contains(&at), "expected {at} in: {text}");
    assert!(text.contains("'region'"), "{text}");
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn a_filter_calling_an_unsafe_function_is_not_exported() {
    let dir = support::test_dir();
    let descriptors = products(dir.path());
    std::fs::write(&descriptors[1], hr_descriptor("sleep(10) > 0")).unwrap();
    let out = dir.path().join("bundle");
    let (code, text) = export(&[&descriptors[1]], &out, &[]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("sleep()"), "{text}");
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn a_non_empty_output_folder_is_refused_unless_forced() {
    let dir = support::test_dir();
    let descriptors = products(dir.path());
    let out = dir.path().join("bundle");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let (code, text) = export(&[&descriptors[0]], &out, &["--catalog", "lake"]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("--force"), "{text}");
    assert!(!out.join("data.json").exists());
    let (code, text) = export(&[&descriptors[0]], &out, &["--catalog", "lake", "--force"]);
    assert_eq!(code, Some(0), "{text}");
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("data.json")).unwrap()).unwrap();
    assert_eq!(data["meshd"]["trino"]["catalog"], "lake");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}
