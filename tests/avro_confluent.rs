//! `format: avro-confluent`: records framed by confluent-kafka's real `AvroSerializer` (magic
//! byte, schema id, datum), with writer schemas registered through its real
//! `SchemaRegistryClient` in `tests/registry.py` (a minimal Confluent-compatible registry: no
//! registry server installs here). Two writer versions one compatible step apart, interleaved
//! on one topic, land in one table read back value by value with pyiceberg; bad magic, unknown
//! ids, truncated datums and an unresolvable writer schema are each dead-lettered with their
//! reason; a registry outage of 15 s dead-letters nothing, loses nothing and shows on `/readyz`.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use meshd_config::{InputFormat, Masking};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use support::product::{Product, Schema};
use support::registry::SchemaRegistry;
use support::{Meshd, Tansu, poll, python};

const TOPIC: &str = "payments-confluent";
const PER_VERSION: u64 = 10_000;
const LATE: u64 = 1_000;
const BAD_EACH: u64 = 5;

/// The port's schema with `account_id` narrowed to int and without `card_last4` (version 1).
fn v1() -> Schema {
    Schema::reference()
        .without_field("account_id")
        .with_field(json!({"name": "account_id", "type": "int"}))
        .without_field("card_last4")
}

/// Version 2: `account_id` widened back to long, `card_last4` added with its default, and a
/// field the port does not have.
fn v2() -> Schema {
    Schema::reference()
        .with_field(json!({"name": "channel", "type": ["null", "string"], "default": null}))
}

fn event(n: u64, version: u8) -> Value {
    let pick = |options: [&'static str; 3]| options[(n % 3) as usize];
    let mut e = json!({
        "transaction_id": format!("tx-{n:07}"),
        "account_id": 100_000 + n % 5000,
        "email": format!("user{}@example.com", n % 5000),
        "amount": format!("{}.{:02}", n % 100_000, n % 100),
        "currency": pick(["JPY", "USD", "EUR"]),
        "region": pick(["JP", "US", "DE"]),
        "status": pick(["AUTHORIZED", "SETTLED", "REFUNDED"]),
        "event_time": 1_764_000_000_000u64 + n * 37,
    });
    if version >= 2 {
        e["card_last4"] = if n.is_multiple_of(10) {
            Value::Null
        } else {
            json!(format!("{:04}", n % 10_000))
        };
        e["channel"] = json!("app");
    }
    e
}

/// Frames produced by confluent_frames.py, per batch of the spec.
fn frames(python: &Path, registry: &SchemaRegistry, dir: &Path, spec: &Value) -> Vec<Vec<Vec<u8>>> {
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = dir.join("frames.txt");
    support::run_python(
        python,
        "confluent_frames.py",
        &[
            &registry.url(),
            TOPIC,
            spec_path.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    let mut batches: Vec<Vec<Vec<u8>>> = vec![Vec::new(); spec.as_array().unwrap().len()];
    for line in std::fs::read_to_string(out).unwrap().lines() {
        let (index, frame) = line.split_once(' ').unwrap();
        batches[index.parse::<usize>().unwrap()].push(hex::decode(frame).unwrap());
    }
    batches
}

/// Polls (with a deadline) until `table` holds `n` rows.
async fn until_rows(config: &Path, table: &str, n: usize, meshd: &Meshd) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while support::table_strings(config, table, "transaction_id")
        .await
        .is_none_or(|keys| keys.len() < n)
    {
        assert!(
            Instant::now() < deadline,
            "not all {n} rows after 180 s\n{}",
            meshd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn produce(producer: &FutureProducer, records: &[(String, Vec<u8>)]) {
    let sends: Vec<_> = records
        .iter()
        .map(|(key, value)| {
            producer.send(
                FutureRecord::to(TOPIC).key(key).payload(value),
                Duration::from_secs(30),
            )
        })
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_framed_avro_from_two_writer_versions_lands_exactly_once() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 3).await;
    tansu.create_topic(&format!("{TOPIC}.dlq"), 1).await;
    let mut registry = SchemaRegistry::start(&python, dir.path(), &[]);

    // Version 3 cannot be read as the port's schema: `amount` became a string.
    let v3 = Schema::reference()
        .without_field("amount")
        .with_field(json!({"name": "amount", "type": "string"}));
    // Registered up front, first seen by meshd during the outage: a new id to look up.
    let v2b =
        v2().with_field(json!({"name": "device", "type": ["null", "string"], "default": null}));
    let records = |range: std::ops::Range<u64>, version: u8| -> Vec<Value> {
        range.map(|n| event(n, version)).collect()
    };
    let decimals = json!(["amount"]);
    let spec = json!([
        {"schema": v1().to_text(), "records": records(0..PER_VERSION, 1), "decimals": decimals},
        {"schema": v2().to_text(), "records": records(PER_VERSION..2 * PER_VERSION, 2), "decimals": decimals},
        {"schema": v2b.to_text(), "records": records(2 * PER_VERSION..2 * PER_VERSION + LATE, 2), "decimals": decimals},
        {"schema": v3.to_text(), "records": (0..BAD_EACH).map(|n| {
            let mut e = event(900_000 + n, 2);
            e.as_object_mut().unwrap().remove("channel");
            e
        }).collect::<Vec<_>>()},
    ]);
    let batches = frames(&python, &registry, dir.path(), &spec);
    let key = |frame_batch: usize, i: usize| -> String {
        spec[frame_batch]["records"][i]["transaction_id"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // The two versions interleaved, then the malformed records.
    let mut first: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (v1, v2)) in batches[0].iter().zip(&batches[1]).enumerate() {
        first.push((key(0, i), v1.clone()));
        first.push((key(1, i), v2.clone()));
    }
    let mut expected_letters: BTreeMap<String, &str> = BTreeMap::new();
    for i in 0..BAD_EACH as usize {
        let mut bad_magic = batches[0][i].clone();
        bad_magic[0] = 1;
        let mut unknown = batches[1][i].clone();
        unknown[1..5].copy_from_slice(&999u32.to_be_bytes());
        let truncated = batches[1][i][..batches[1][i].len() - 3].to_vec();
        for (name, reason, frame) in [
            ("bad-magic", "decode", bad_magic),
            ("unknown-id", "schema-id", unknown),
            ("truncated", "decode", truncated),
            ("unresolvable", "schema-resolution", batches[3][i].clone()),
        ] {
            let k = format!("{name}-{i}");
            expected_letters.insert(k.clone(), reason);
            first.push((k, frame));
        }
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &tansu.bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    produce(&producer, &first).await;

    let (config, listen) = support::meshd_config(
        dir.path(),
        "meshd",
        &tansu.bootstrap,
        &[],
        &format!("schemaRegistry:\n  url: {}\n", registry.url()),
    );
    let descriptor = Product::reference()
        .input_topic(TOPIC)
        .input_format(InputFormat::AvroConfluent)
        .commit_interval(Duration::from_secs(1))
        .write(dir.path());
    let meshd = Meshd::start(
        &config,
        &[&descriptor],
        &listen,
        dir.path().join("meshd.log"),
    );
    const TABLE: &str = "payments.payment_transactions";
    let good = 2 * PER_VERSION as usize;
    until_rows(&config, TABLE, good, &meshd).await;
    let letters_before = meshd
        .scrape()
        .unwrap()
        .sum("meshd_records_dead_lettered_total");
    assert_eq!(
        letters_before,
        expected_letters.len() as f64,
        "{}",
        meshd.log_text()
    );

    // The registry goes away; records written with a schema id meshd has not met yet arrive.
    registry.stop();
    let late: Vec<(String, Vec<u8>)> = (0..LATE as usize)
        .map(|i| (key(2, i), batches[2][i].clone()))
        .collect();
    produce(&producer, &late).await;
    let (_, body) = poll(
        "/readyz to report the registry",
        Duration::from_secs(30),
        || meshd.readyz().filter(|(status, _)| *status == 503),
    );
    let reason = body["products"]["payment-transactions"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("schema registry"), "{body}");
    let outage = Instant::now();
    // Observed over the whole outage, not slept through: every second the worker is still not
    // ready and has dead-lettered nothing.
    while outage.elapsed() < Duration::from_secs(15) {
        let (status, _) = meshd.readyz().unwrap();
        assert_eq!(status, 503, "ready while the registry is down");
        let letters = meshd
            .scrape()
            .unwrap()
            .sum("meshd_records_dead_lettered_total");
        assert_eq!(
            letters, letters_before,
            "a record was dead-lettered during the outage"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    registry.resume();
    let everything = good + LATE as usize;
    until_rows(&config, TABLE, everything, &meshd).await;
    poll("/readyz to recover", Duration::from_secs(30), || {
        meshd.readyz().filter(|(status, _)| *status == 200)
    });

    // Every value, read with pyiceberg.
    let out = support::run_python(
        &python,
        "read_table.py",
        &[&support::catalog_spec(&config, None), TABLE],
    );
    let table: Value = serde_json::from_str(&out).unwrap();
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), everything, "rows: each record exactly once");
    let mut seen = std::collections::BTreeSet::new();
    for row in rows {
        let id = row["transaction_id"].as_str().unwrap();
        assert!(seen.insert(id.to_string()), "{id} twice");
        let n: u64 = id.trim_start_matches("tx-").parse().unwrap();
        let version = if n < PER_VERSION { 1 } else { 2 };
        let sent = event(n, version);
        for column in ["account_id", "currency", "region", "status", "event_time"] {
            assert_eq!(row[column], sent[column], "{id}.{column}");
        }
        assert_eq!(
            row["amount"].as_str().unwrap(),
            sent["amount"].as_str().unwrap(),
            "{id}.amount"
        );
        // REDACT keeps nulls null; version 1 has no card_last4: the port's default, null.
        let card = match sent.get("card_last4") {
            Some(Value::String(_)) => json!("[REDACTED]"),
            _ => Value::Null,
        };
        assert_eq!(
            row["card_last4"], card,
            "{id}.card_last4 (v1 has none: the default)"
        );
        let email =
            meshd_runtime::mask::mask_one(sent["email"].as_str().unwrap(), Masking::Sha256, None)
                .unwrap();
        assert_eq!(row["email"].as_str().unwrap(), email, "{id}.email, hashed");
        assert!(
            row.get("channel").is_none(),
            "a writer field the port lacks is dropped"
        );
    }

    let letters = support::read_dead_letters(
        &tansu.bootstrap,
        &[&format!("{TOPIC}.dlq")],
        expected_letters.len(),
        Duration::from_secs(60),
    );
    assert_eq!(letters.len(), expected_letters.len(), "{letters:?}");
    for (key, reason) in &expected_letters {
        let headers = &letters[key];
        assert_eq!(headers["meshd.error.kind"], *reason, "{key}: {headers:?}");
    }
    let resolution = &letters["unresolvable-0"]["meshd.error.message"];
    assert!(resolution.contains("field `amount`"), "{resolution}");
    drop(meshd);

    // Governance in CI: the subject holds four versions; the fourth cannot be read.
    let url = registry.url();
    let descriptor = descriptor.to_str().unwrap();
    let (code, out) = support::meshd_output(&["validate", "--registry", &url, descriptor]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("registry_compatible"), "{out}");
    assert!(
        out.contains("`payments-confluent-value` version 4 (schema id 4)")
            && out.contains("field `amount`: string is written, the port reads decimal(18, 2)"),
        "{out}"
    );
    for readable in 1..=3 {
        assert!(!out.contains(&format!("version {readable} ")), "{out}");
    }
    // `meshd plan` on the platform config (which names the registry) refuses it too.
    let config = config.to_str().unwrap();
    let (code, out) = support::meshd_output(&["plan", "--config", config, descriptor]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("refused by the schema registry") && out.contains("version 4"),
        "{out}"
    );
    registry.stop();
    let (code, out) = support::meshd_output(&["validate", "--registry", &url, descriptor]);
    assert_eq!(
        code,
        Some(2),
        "an unreachable registry cannot vouch for anything: {out}"
    );
    assert!(out.contains("check schemaRegistry.url"), "{out}");
}
