//! Metadata that travels with the table, read back with pyiceberg: `meshd provision` creates
//! the table with the product's description, owner, domain, SLA, retention, access role and
//! filter, and each PII column's tags and masking as `datamesh.*` properties (the description
//! also as the `comment` engines show). Edited in the descriptor, the changes show in `meshd
//! plan` (set, changed, removed) without being applied, `meshd provision` applies them, and a
//! worker applies them when it starts; properties meshd does not own stay.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::product::Product;
use support::{Meshd, Tansu, catalog_spec, meshd_config, poll, python, run_python};

const TABLE: &str = "payments.payment_transactions";

fn properties(python: &Path, config: &Path) -> serde_json::Map<String, Value> {
    let out = run_python(
        python,
        "read_table.py",
        &[&catalog_spec(config, None), TABLE],
    );
    let table: Value = serde_json::from_str(&out).unwrap();
    table["properties"].as_object().unwrap().clone()
}

fn meshd(command: &str, config: &Path, descriptor: &Path) -> String {
    let args = [
        command.as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        descriptor.as_os_str(),
    ];
    let (code, out) = support::meshd_output::<&std::ffi::OsStr>(&args);
    assert_eq!(code, Some(0), "meshd {command}:\n{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_properties_carry_the_descriptor_and_stay_current() {
    let dir = support::test_dir();
    let Some(python) = python() else { return };
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let (config, listen) = meshd_config(dir.path(), "meshd", &tansu.bootstrap, &[], "");
    let product = Product::reference()
        .input_topic("table-metadata")
        .description("Settled card payments, one row per payment.");
    let descriptor = product.write(dir.path());

    let out = meshd("provision", &config, &descriptor);
    assert!(
        out.contains("property datamesh.access.filter = region = 'JP'"),
        "{out}"
    );
    let props = properties(&python, &config);
    let expect = [
        ("datamesh.product", "payment-transactions"),
        ("datamesh.domain", "payments"),
        ("datamesh.owner", "payment-team@example.com"),
        (
            "datamesh.description",
            "Settled card payments, one row per payment.",
        ),
        ("comment", "Settled card payments, one row per payment."),
        ("datamesh.sla.freshness", "15min"),
        ("datamesh.sla.availability", "99.9%"),
        ("datamesh.retention", "7years"),
        ("datamesh.access.role", "data-analyst"),
        ("datamesh.access.filter", "region = 'JP'"),
        ("datamesh.column.email.tags", "PII"),
        ("datamesh.column.email.masking", "SHA256"),
        ("datamesh.column.card_last4.tags", "PII"),
        ("datamesh.column.card_last4.masking", "REDACT"),
    ];
    for (key, value) in expect {
        assert_eq!(
            props.get(key).and_then(Value::as_str),
            Some(value),
            "{key}: {props:?}"
        );
    }
    assert!(
        !props
            .keys()
            .any(|k| k.starts_with("datamesh.column.region")),
        "untagged columns carry nothing: {props:?}"
    );
    let out = meshd("plan", &config, &descriptor);
    assert!(out.contains("is up to date"), "{out}");

    // The team edits the descriptor: plan shows it, changing nothing.
    let edited = product
        .clone()
        .description("Settled card payments, one row per payment, amounts in minor units.")
        .freshness(Duration::from_secs(600))
        .access_filter("region = 'EU'")
        .without_retention();
    edited.write(dir.path());
    let out = meshd("plan", &config, &descriptor);
    for line in [
        "~ property datamesh.description: \"Settled card payments, one row per payment.\" → \"Settled card payments, one row per payment, amounts in minor units.\"",
        "~ property datamesh.sla.freshness: \"15min\" → \"600s\"",
        "~ property datamesh.access.filter: \"region = 'JP'\" → \"region = 'EU'\"",
        "- property datamesh.retention removed (was \"7years\")",
    ] {
        assert!(out.contains(line), "plan lacks `{line}`:\n{out}");
    }
    assert!(!out.contains("column"), "no column changes: {out}");
    let props = properties(&python, &config);
    assert_eq!(
        props["datamesh.access.filter"], "region = 'JP'",
        "plan applied nothing"
    );

    let out = meshd("provision", &config, &descriptor);
    assert!(out.contains("applied"), "{out}");
    let props = properties(&python, &config);
    assert_eq!(
        props["datamesh.description"],
        "Settled card payments, one row per payment, amounts in minor units."
    );
    assert_eq!(props["comment"], props["datamesh.description"]);
    assert_eq!(props["datamesh.sla.freshness"], "600s");
    assert_eq!(props["datamesh.access.filter"], "region = 'EU'");
    assert!(!props.contains_key("datamesh.retention"), "{props:?}");
    // The table's own settings are not meshd's metadata and stay.
    assert_eq!(props["commit.retry.num-retries"], "0");
    let out = meshd("plan", &config, &descriptor);
    assert!(out.contains("is up to date"), "{out}");

    // A worker brings the table up to date when it starts.
    edited
        .clone()
        .description("Card payments as settled.")
        .write(dir.path());
    let meshd = Meshd::start(
        &config,
        &[&descriptor],
        &listen,
        dir.path().join("meshd.log"),
    );
    poll(
        "the worker to update the table",
        Duration::from_secs(60),
        || {
            meshd
                .log_text()
                .contains("Table metadata updated")
                .then_some(())
        },
    );
    let props = properties(&python, &config);
    assert_eq!(props["datamesh.description"], "Card payments as settled.");
    assert_eq!(props["datamesh.access.filter"], "region = 'EU'");
    let log = meshd.log_text();
    assert!(
        log.contains("Table metadata updated: property datamesh.description"),
        "{log}"
    );
}
