//! Type promotion applied: a product whose schema widens `account_id` from int to long, `amount`
//! from decimal(10,2) to decimal(18,2) and documents `currency` keeps running. `meshd plan`
//! lists the changes, the restarted worker commits them as a new schema (same field ids,
//! through meshd's own metadata commit), and rows written before and after read back with
//! pyiceberg and DuckDB, old values intact and new values beyond the old types' range.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use support::product::{Product, Schema};
use support::{Meshd, Tansu, poll};

const TOPIC: &str = "payments-widening";
const TABLE: &str = "payments.payment_transactions";
const EACH: u64 = 200;
/// Beyond int's range: only a long column holds it.
const BIG_ACCOUNT: i64 = 3_000_000_000;

/// The port's schema before the change: `account_id` an int, `amount` decimal(10,2),
/// `currency` without a doc.
fn narrow() -> Schema {
    Schema::reference()
        .with_attribute("account_id", "type", json!("int"))
        .with_attribute(
            "amount",
            "type",
            json!({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}),
        )
}

/// The reference schema (long, decimal(18,2)) with a doc on `currency`.
fn wide() -> Schema {
    Schema::reference().with_attribute("currency", "doc", json!("ISO 4217 code"))
}

/// Event `n`: the demo's payment; after the change its account and amount need the wide types.
fn event(n: u64, wide: bool) -> (String, Vec<u8>) {
    let (id, payload) = meshd_runtime::demo::payment_event(n, 0);
    if !wide {
        return (id, payload);
    }
    let mut e: Value = serde_json::from_slice(&payload).unwrap();
    e["account_id"] = json!(BIG_ACCOUNT + n as i64);
    e["amount"] = json!(format!("{}.25", 10_000_000_000u64 + n));
    (id, serde_json::to_vec(&e).unwrap())
}

async fn send(tansu: &Tansu, range: std::ops::Range<u64>, wide: bool) {
    let producer: FutureProducer = tansu.client().create().unwrap();
    for n in range {
        let (id, payload) = event(n, wide);
        producer
            .send(
                FutureRecord::to(TOPIC).key(&id).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

async fn until_rows(config: &Path, n: usize, meshd: &Meshd) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while support::table_strings(config, TABLE, "transaction_id")
        .await
        .is_none_or(|keys| keys.len() < n)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not {n} rows after 120 s\n{}",
            meshd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widened_schema_is_committed_and_old_and_new_rows_read_back() {
    let dir = support::test_dir();
    let Some(python) = support::python() else {
        return;
    };
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    tansu.create_topic(TOPIC, 1).await;
    let product = Product::reference()
        .input_topic(TOPIC)
        .commit_interval(Duration::from_secs(1));
    let descriptor = product.clone().schema(narrow()).write(dir.path());
    let (config, listen) = support::meshd_config(dir.path(), "meshd", &tansu.bootstrap, &[], "");

    let mut meshd = Meshd::start(&config, &[&descriptor], &listen, dir.path().join("1.log"));
    send(&tansu, 0..EACH, false).await;
    until_rows(&config, EACH as usize, &meshd).await;
    support::sigterm(&meshd.child);
    poll("meshd to stop", Duration::from_secs(60), || {
        meshd.child.try_wait().unwrap()
    });

    product.schema(wide()).write(dir.path());
    let (code, plan) = support::meshd_output(&[
        "plan".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        descriptor.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{plan}");
    for change in [
        "~ column `account_id`: widen int to long",
        "~ column `amount`: widen decimal(10, 2) to decimal(18, 2)",
        "~ column `currency`: doc changes",
    ] {
        assert!(plan.contains(change), "`{change}` in the plan:\n{plan}");
    }

    let meshd = Meshd::start(&config, &[&descriptor], &listen, dir.path().join("2.log"));
    send(&tansu, EACH..2 * EACH, true).await;
    until_rows(&config, 2 * EACH as usize, &meshd).await;
    assert!(
        meshd.log_text().contains("widen int to long"),
        "the worker says what it changed\n{}",
        meshd.log_text()
    );
    let (code, plan) = support::meshd_output(&[
        "plan".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        descriptor.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{plan}");
    assert!(!plan.contains('~'), "nothing left to change:\n{plan}");

    let out = support::run_python(
        &python,
        "widened_table.py",
        &[&support::catalog_spec(&config, None), TABLE],
    );
    let table: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(table["schemas"], 2, "one new schema: {out}");
    let field = |name: &str| {
        table["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(field("account_id")["type"], "long");
    assert_eq!(field("account_id")["id"], 2, "field ids are kept");
    assert_eq!(field("amount")["type"], "decimal(18, 2)");
    assert_eq!(field("currency")["doc"], "ISO 4217 code");
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2 * EACH as usize, "every row exactly once");
    let mut seen = std::collections::BTreeSet::new();
    for row in rows {
        let id = row["transaction_id"].as_str().unwrap();
        assert!(seen.insert(id.to_string()), "{id} twice");
        let n: u64 = id.trim_start_matches("tx-").parse().unwrap();
        let sent: Value = serde_json::from_slice(&event(n, n >= EACH).1).unwrap();
        assert_eq!(row["account_id"], sent["account_id"], "{id}.account_id");
        assert_eq!(row["amount"], sent["amount"], "{id}.amount");
    }
    let expected_sum: i64 = (0..2 * EACH)
        .map(|n| {
            serde_json::from_slice::<Value>(&event(n, n >= EACH).1).unwrap()["account_id"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(table["duckdb"]["rows"], 2 * EACH, "DuckDB reads every file");
    assert_eq!(table["duckdb"]["account_id_sum"], expected_sum.to_string());
    assert_eq!(
        table["duckdb"]["max_amount"],
        format!("{}.25", 10_000_000_000u64 + 2 * EACH - 1)
    );
}
