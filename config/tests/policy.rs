//! Governance as code: the seed's Rego rule runs verbatim (v0) and rewritten in v1, the
//! built-in library's own tests pass, and findings name the product, port, column and the
//! position of the column in the schema file.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use meshd_config::DataProduct;
use meshd_config::policy::{PolicySet, Severity, library};

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/policies")
}

/// The seed product, with the `masking` attribute removed from `email` when `unmask` is set.
fn seed_product(unmask: bool) -> (tempfile::TempDir, DataProduct) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schema")).unwrap();
    let product = std::fs::read_to_string(seed_dir().join("product.yaml")).unwrap();
    let mut schema = std::fs::read_to_string(seed_dir().join("schema/transactions.avsc")).unwrap();
    if unmask {
        let before = schema.len();
        schema = schema.replace(r#", "masking": "SHA256""#, "");
        assert!(
            schema.len() < before,
            "the seed schema masks email with SHA256"
        );
    }
    std::fs::write(dir.path().join("product.yaml"), product).unwrap();
    std::fs::write(dir.path().join("schema/transactions.avsc"), schema).unwrap();
    let loaded = DataProduct::load(&dir.path().join("product.yaml")).unwrap();
    (dir, loaded)
}

fn seed_rule_only(extra: &Path) -> PolicySet {
    let mut set = PolicySet::empty();
    set.add_path(extra).unwrap();
    set
}

#[test]
fn the_seed_rule_passes_the_seed_and_names_email_when_masking_is_removed() {
    for policy in [
        seed_dir().join("pii-masking.rego"),
        fixtures().join("v1/pii-masking-v1.rego"),
    ] {
        let set = seed_rule_only(&policy);
        let (_d, good) = seed_product(false);
        let findings = set.evaluate(&good).unwrap();
        assert!(
            findings.iter().all(|f| f.severity != Severity::Deny),
            "{policy:?}: {findings:?}"
        );

        let (_d, bad) = seed_product(true);
        let findings = set.evaluate(&bad).unwrap();
        assert_eq!(findings.len(), 1, "{policy:?}: {findings:?}");
        let f = &findings[0];
        assert_eq!(f.severity, Severity::Deny);
        assert_eq!(
            f.message,
            "Column 'email' contains PII but lacks masking configuration."
        );
        assert_eq!(f.column.as_deref(), Some("email"));
        assert_eq!(f.product, "payment-transactions");
        assert_eq!(f.port, "payments.payment_transactions");
        assert!(
            f.location.file.ends_with("transactions.avsc"),
            "{:?}",
            f.location
        );
        let line = std::fs::read_to_string(&f.location.file)
            .unwrap()
            .lines()
            .nth(f.location.line - 1)
            .unwrap()
            .to_string();
        assert!(
            line.contains(r#""name": "email""#),
            "line {} is {line}",
            f.location.line
        );
    }
}

#[test]
fn the_builtin_library_passes_the_seed_with_a_warning_and_denies_unmasked_pii() {
    let set = PolicySet::builtin().unwrap();
    let (_d, good) = seed_product(false);
    let findings = set.evaluate(&good).unwrap();
    assert!(
        findings.iter().all(|f| f.severity == Severity::Warn),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.rule == "unkeyed_sha256" && f.column.as_deref() == Some("email"))
    );

    let (_d, bad) = seed_product(true);
    let denied: Vec<_> = set
        .evaluate(&bad)
        .unwrap()
        .into_iter()
        .filter(|f| f.severity == Severity::Deny)
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].rule, "pii_masking");

    let mut without = PolicySet::builtin().unwrap();
    without.disable("pii_masking");
    assert!(
        without
            .evaluate(&bad)
            .unwrap()
            .iter()
            .all(|f| f.rule != "pii_masking")
    );
}

/// The seed product whose schema also nests PII: `customer.email` in a record,
/// `items[].note` in an array of records and `contacts{}.phone` in a map of records, each
/// with the masking given (none when `None`).
fn seed_with_nested_pii(masking: Option<&str>) -> (tempfile::TempDir, DataProduct) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schema")).unwrap();
    std::fs::copy(
        seed_dir().join("product.yaml"),
        dir.path().join("product.yaml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(seed_dir().join("schema/transactions.avsc")).unwrap();
    let mut schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pii = |name: &str| {
        let mut field = serde_json::json!({"name": name, "type": "string", "tags": ["PII"]});
        if let Some(m) = masking {
            field["masking"] = m.into();
        }
        field
    };
    let record = |name: &str, fields: Vec<serde_json::Value>| serde_json::json!({"type": "record", "name": name, "fields": fields});
    let fields = schema["fields"].as_array_mut().unwrap();
    fields.push(
        serde_json::json!({"name": "customer", "type": record("Customer", vec![
            serde_json::json!({"name": "name", "type": "string"}),
            pii("email"),
        ])}),
    );
    fields.push(
        serde_json::json!({"name": "items", "type": {"type": "array", "items": record("Item", vec![
            serde_json::json!({"name": "sku", "type": "string"}),
            pii("note"),
        ])}}),
    );
    fields.push(serde_json::json!({"name": "contacts", "type": {"type": "map", "values": record("Contact", vec![
        pii("phone"),
    ])}}));
    std::fs::write(
        dir.path().join("schema/transactions.avsc"),
        serde_json::to_string_pretty(&schema).unwrap(),
    )
    .unwrap();
    let loaded = DataProduct::load(&dir.path().join("product.yaml")).unwrap();
    (dir, loaded)
}

/// Nested columns reach policies at their path, with their tags and masking; the seed's
/// rule, as written, then denies nested PII without masking. Its message quotes the field's
/// own name: 'note' and 'phone' point at their nested line in the `.avsc`, while 'email'
/// could be the seed's top-level `email` too, so that finding names no column.
#[test]
fn the_seed_rule_denies_nested_pii_without_masking() {
    let (_d, masked) = seed_with_nested_pii(Some("HMAC-SHA256"));
    let input = meshd_config::policy::policy_input(&masked, 0);
    let columns = input["schema"]["columns"].as_array().unwrap();
    let column = |path: &str| {
        columns
            .iter()
            .find(|c| c["path"] == path)
            .unwrap_or_else(|| panic!("no column {path} in {columns:?}"))
    };
    for (path, name) in [
        ("customer.email", "email"),
        ("items[].note", "note"),
        ("contacts{}.phone", "phone"),
    ] {
        assert_eq!(column(path)["name"], name);
        assert_eq!(column(path)["tags"], serde_json::json!(["PII"]));
        assert_eq!(column(path)["masking"], "HMAC-SHA256");
    }
    assert_eq!(column("items")["type"], "list<struct>");
    assert_eq!(column("contacts")["type"], "map<string,struct>");
    assert!(column("customer.name").get("masking").is_none());

    for policy in [
        seed_dir().join("pii-masking.rego"),
        fixtures().join("v1/pii-masking-v1.rego"),
    ] {
        let set = seed_rule_only(&policy);
        let findings = set.evaluate(&masked).unwrap();
        assert!(findings.is_empty(), "{policy:?}: {findings:?}");

        let (_d, bare) = seed_with_nested_pii(None);
        let mut findings = set.evaluate(&bare).unwrap();
        findings.sort_by(|a, b| a.message.cmp(&b.message));
        let got: Vec<(&str, Option<&str>)> = findings
            .iter()
            .map(|f| (f.message.as_str(), f.column.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "Column 'email' contains PII but lacks masking configuration.",
                    None
                ),
                (
                    "Column 'note' contains PII but lacks masking configuration.",
                    Some("items[].note")
                ),
                (
                    "Column 'phone' contains PII but lacks masking configuration.",
                    Some("contacts{}.phone")
                ),
            ],
            "{policy:?}"
        );
        assert!(findings.iter().all(|f| f.severity == Severity::Deny));
        assert!(findings[0].location.file.ends_with("product.yaml"));
        let text = std::fs::read_to_string(&findings[1].location.file).unwrap();
        for (f, name) in findings[1..].iter().zip(["note", "phone"]) {
            let line = text.lines().nth(f.location.line.max(1) - 1).unwrap();
            assert!(
                line.contains(&format!(r#""name": "{name}""#)),
                "{name} at line {}: {line}",
                f.location.line
            );
        }
    }

    // The built-in rule quotes the path itself.
    let (_d, bare) = seed_with_nested_pii(None);
    let mut denied: Vec<Option<String>> = PolicySet::builtin()
        .unwrap()
        .evaluate(&bare)
        .unwrap()
        .into_iter()
        .filter(|f| f.severity == Severity::Deny)
        .map(|f| f.column)
        .collect();
    denied.sort();
    assert_eq!(
        denied,
        ["contacts{}.phone", "customer.email", "items[].note"].map(|c| Some(c.to_string()))
    );
}

#[test]
fn the_builtin_library_tests_pass_and_cover_every_rule() {
    let mut set = PolicySet::builtin().unwrap();
    for (name, text) in library::TESTS {
        set.add_source(format!("builtin:{name}"), (*text).to_string())
            .unwrap();
    }
    let outcomes = set.run_tests().unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
    assert!(failed.is_empty(), "{failed:?}");
    for (rule, _) in library::RULES {
        let tests: Vec<_> = outcomes.iter().filter(|o| o.name.contains(rule)).collect();
        assert!(
            tests.len() >= 2,
            "rule {rule} needs a failing and a passing fixture; has {tests:?}"
        );
    }
}

#[test]
fn a_broken_policy_test_fails() {
    let mut set = PolicySet::empty();
    set.add_path(&fixtures().join("broken")).unwrap();
    let outcomes = set.run_tests().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .any(|o| o.name == "test_one_is_two" && !o.passed)
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.name == "test_true_passes" && o.passed)
    );
}

#[test]
fn a_policy_that_does_not_parse_is_an_error_naming_the_file() {
    let mut set = PolicySet::empty();
    let err = set
        .add_source(
            "bad.rego".into(),
            "package datamesh.x\n deny contains msg if {".into(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("bad.rego"), "{err}");
}
