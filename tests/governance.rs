//! `meshd validate` and `meshd policy` as CI runs them: the seed passes, removing `email`'s
//! masking fails with the seed rule's own message (Rego v0 as written, and v1), every output
//! format parses, and `meshd policy test` passes the shipped tests and fails a broken one.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::product::Schema;

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/policies")
}

fn meshd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshd"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A copy of the seed product; with `unmask`, `email` loses its `masking` attribute.
fn seed_copy(unmask: bool) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schema")).unwrap();
    std::fs::copy(
        seed_dir().join("product.yaml"),
        dir.path().join("product.yaml"),
    )
    .unwrap();
    let schema = Schema::load(&seed_dir().join("schema/transactions.avsc"));
    let schema = if unmask {
        schema.without_masking("email")
    } else {
        schema
    };
    schema.write(&dir.path().join("schema/transactions.avsc"));
    let path = dir.path().join("product.yaml").display().to_string();
    (dir, path)
}

/// What the typed fixtures (`tests/support/product.rs`) write for the unchanged reference is
/// what meshd reads from `examples/payments`: the same descriptor, the same columns, and every
/// schema field on its original line (findings such as `transactions.avsc:9` depend on it).
#[test]
fn the_fixtures_write_the_reference_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments");
    let original = meshd_config::DataProduct::load(&examples.join("product.yaml")).unwrap();
    let written =
        meshd_config::DataProduct::load(&support::product::Product::reference().write(dir.path()))
            .unwrap();
    assert_eq!(
        serde_json::to_value(&written.spec).unwrap(),
        serde_json::to_value(&original.spec).unwrap()
    );
    assert_eq!(written.schemas[0].fields, original.schemas[0].fields);

    let text = std::fs::read_to_string(examples.join("schema/transactions.avsc")).unwrap();
    let line_of = |text: &str, name: &str| {
        text.lines()
            .position(|l| l.contains(&format!("\"name\": \"{name}\"")))
    };
    for column in &original.schemas[0].fields {
        assert_eq!(
            line_of(&written.schemas[0].text, &column.name),
            line_of(&text, &column.name),
            "the line of `{}`",
            column.name
        );
    }
    assert!(line_of(&text, "email").is_some());
}

const SEED_MESSAGE: &str = "Column 'email' contains PII but lacks masking configuration.";

#[test]
fn the_seed_rule_passes_the_seed_and_fails_without_masking_in_v0_and_v1() {
    let v0 = seed_dir().join("pii-masking.rego").display().to_string();
    let v1 = fixtures()
        .join("v1/pii-masking-v1.rego")
        .display()
        .to_string();
    for policy in [&v0, &v1] {
        let (_d, good) = seed_copy(false);
        let out = meshd(&["validate", &good, "--policy", policy]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

        let (_d, bad) = seed_copy(true);
        let out = meshd(&["validate", &bad, "--policy", policy, "--no-builtin"]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let text = stdout(&out);
        assert!(text.contains(SEED_MESSAGE), "{text}");
        assert!(
            text.contains("payment-transactions") && text.contains("column email"),
            "{text}"
        );
        assert!(
            text.contains("transactions.avsc:9:"),
            "the finding points at email's line: {text}"
        );
    }
}

/// A copy of the seed product whose schema also nests PII: `customer.{email, phone}` in a
/// record and `items[].note` in an array of records, masked with `masking` or not at all.
fn seed_with_nested_pii(masking: Option<&str>) -> (tempfile::TempDir, String) {
    let (dir, path) = seed_copy(false);
    let pii = |name: &str, method: &str| {
        let mut field = serde_json::json!({"name": name, "type": "string", "tags": ["PII"]});
        if masking.is_some() {
            field["masking"] = method.into();
        }
        field
    };
    let schema_file = dir.path().join("schema/transactions.avsc");
    Schema::load(&schema_file)
        .with_field(serde_json::json!({"name": "customer", "type": {
            "type": "record", "name": "Customer",
            "fields": [pii("email", masking.unwrap_or_default()), pii("phone", "LAST4")]
        }}))
        .with_field(
            serde_json::json!({"name": "items", "type": {"type": "array", "items": {
                "type": "record", "name": "Item",
                "fields": [{"name": "sku", "type": "string"}, pii("note", "REDACT")]
            }}}),
        )
        .write(&schema_file);
    (dir, path)
}

/// `meshd validate` with the seed's rule, unchanged, fails a product whose nested fields are
/// tagged PII without masking (naming them by path where the quote is unambiguous) and passes
/// it once they are masked; its policy input still matches the documented JSON Schema.
#[test]
fn nested_pii_fails_validate_until_masked() {
    let seed_rule = seed_dir().join("pii-masking.rego").display().to_string();
    let (_d, bare) = seed_with_nested_pii(None);
    let out = meshd(&["validate", &bare, "--policy", &seed_rule, "--no-builtin"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    for name in ["email", "phone", "note"] {
        assert!(
            text.contains(&format!(
                "Column '{name}' contains PII but lacks masking configuration."
            )),
            "{text}"
        );
    }
    assert!(
        text.contains("column customer.phone") && text.contains("column items[].note"),
        "{text}"
    );
    let out = meshd(&["validate", &bare]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("Column 'customer.email' of product"));

    let (_d, masked) = seed_with_nested_pii(Some("HMAC-SHA256"));
    let out = meshd(&["validate", &masked, "--policy", &seed_rule]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let out = meshd(&["policy", "input", &masked]);
    assert_eq!(out.status.code(), Some(0));
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let columns = docs[0]["schema"]["columns"].as_array().unwrap();
    let paths: Vec<(&str, Option<&str>)> = columns
        .iter()
        .filter(|c| c["path"].as_str().unwrap().contains(['.', '[']))
        .map(|c| (c["path"].as_str().unwrap(), c["masking"].as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("customer.email", Some("HMAC-SHA256")),
            ("customer.phone", Some("LAST4")),
            ("items[].sku", None),
            ("items[].note", Some("REDACT")),
        ]
    );
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy-input.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&docs[0]));
}

#[test]
fn every_output_format_parses() {
    let (_d, bad) = seed_copy(true);
    let seed_rule = seed_dir().join("pii-masking.rego").display().to_string();
    let args = |format: &'static str| {
        vec![
            "validate".to_string(),
            bad.clone(),
            "--policy".into(),
            seed_rule.clone(),
            "--format".into(),
            format.into(),
        ]
    };
    let run = |format| {
        let a = args(format);
        meshd(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let json = run("json");
    assert_eq!(json.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let findings = doc["descriptors"][0]["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["message"] == SEED_MESSAGE
        && f["column"] == "email"
        && f["severity"] == "deny"));

    let github = stdout(&run("github"));
    let errors: Vec<&str> = github
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert!(!errors.is_empty(), "{github}");
    for line in &errors {
        let (props, message) = line["::error ".len()..].split_once("::").unwrap();
        assert!(
            props
                .split(',')
                .any(|p| p.starts_with("file=") && p.ends_with("transactions.avsc")),
            "{line}"
        );
        assert!(props.split(',').any(|p| p == "line=9"), "{line}");
        assert!(!message.is_empty());
    }
    assert!(github.contains(SEED_MESSAGE));

    let junit = stdout(&run("junit"));
    let xml = roxmltree::Document::parse(&junit).unwrap();
    let cases: Vec<_> = xml
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let builtin_rules = meshd_config::policy::library::RULES.len();
    // The built-in rules, the seed's rule, and `startup` (what `meshd run` refuses at start).
    assert_eq!(
        cases.len(),
        builtin_rules + 2,
        "one test case per rule per port"
    );
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, vec!["governance", "pii_masking"]);
}

#[test]
fn unreadable_descriptors_and_broken_policies_exit_2() {
    let out = meshd(&["validate", "/nonexistent/product.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let bad_policy = dir.path().join("bad.rego");
    std::fs::write(&bad_policy, "package datamesh.x\ndeny contains msg if {").unwrap();
    let (_d, good) = seed_copy(false);
    let out = meshd(&[
        "validate",
        &good,
        "--policy",
        &bad_policy.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.rego"));
}

#[test]
fn policy_test_passes_the_shipped_tests_and_fails_a_broken_one() {
    let out = meshd(&["policy", "test"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("0 failed"));
    let out = meshd(&[
        "policy",
        "test",
        &fixtures().join("broken").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("FAIL test.broken.test_one_is_two"));
}

#[test]
fn policy_input_documents_match_their_json_schema() {
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy-input.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for descriptor in [
        seed_dir().join("product.yaml"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments/product.yaml"),
    ] {
        let out = meshd(&["policy", "input", &descriptor.display().to_string()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(docs.len(), 1);
        let errors: Vec<String> = validator
            .iter_errors(&docs[0])
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{descriptor:?}: {errors:?}");
    }
}

/// What `meshd run` refuses at start is a `validate` finding too (rule `startup`), at
/// file:line:col: a column with two types across output ports always; with `--config`, an
/// HMAC-SHA256 column without a masking key and an avro-confluent port without a registry.
#[test]
fn what_run_refuses_validate_reports() {
    use meshd_config::InputFormat;
    use support::product::Product;
    let dir = tempfile::tempdir().unwrap();
    let clash = Product::reference()
        .add_output_port(
            "clash",
            Schema::reference()
                .without_field("amount")
                .with_field(serde_json::json!({"name": "amount", "type": "string"})),
        )
        .write(&dir.path().join("clash"));
    let out = meshd(&["validate", clash.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[startup]") && text.contains("column `amount` has type"),
        "{text}"
    );
    assert!(
        text.contains("product.yaml:"),
        "the finding has a position: {text}"
    );

    let hmac = Product::reference()
        .input_format(InputFormat::AvroConfluent)
        .with_field(serde_json::json!({
            "name": "phone", "type": ["null", "string"], "default": null,
            "tags": ["PII"], "masking": "HMAC-SHA256"
        }))
        .write(&dir.path().join("hmac"));
    let hmac = hmac.to_str().unwrap();
    let out = meshd(&["validate", hmac]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "without a platform config: {}",
        stdout(&out)
    );
    let config = dir.path().join("meshd.yaml");
    std::fs::write(&config, "warehouse: /tmp/unused\n").unwrap();
    let out = meshd(&["validate", "--config", config.to_str().unwrap(), hmac]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("column `phone` is masked with HMAC-SHA256"),
        "{text}"
    );
    assert!(text.contains("names no schema registry"), "{text}");
    std::fs::write(
        &config,
        "masking:\n  keyEnv: SOME_KEY\nschemaRegistry:\n  url: http://127.0.0.1:1\n",
    )
    .unwrap();
    let out = meshd(&["validate", "--config", config.to_str().unwrap(), hmac]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
