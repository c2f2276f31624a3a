//! Kafka metadata in the table: a port with `kafka: [key, partition, offset, timestamp,
//! headers]` gets a `_kafka` struct column holding, per row, what its record carried on the
//! broker, read back value by value with pyiceberg.
//!
//! Records with known keys (text, binary, none), explicit timestamps and headers (a key sent
//! twice, a null value, none at all) go to a two-partition topic; every fifth is malformed and
//! dead-lettered, at decoding or at validation, so rows and records do not line up one to one.
//! The table already exists from a run without metadata: the restarted worker adds the column
//! by schema evolution, and the rows written before read null. A third run, whose schema also
//! gains a column (which moves the ids meshd would give the nested fields of `_kafka` away from
//! those the table gave them), still starts and fills the column.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meshd_config::KafkaMetadata;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use support::product::Product;
use support::{Meshd, Tansu, poll, python, run_python};

const TOPIC: &str = "kafka-metadata";
const TABLE: &str = "payments.payment_transactions";
const BAD_EVERY: u64 = 5;
/// Record `n` is sent with timestamp `BASE_MS + n` seconds: 2023-11-14T22:13:20Z onwards.
const BASE_MS: i64 = 1_700_000_000_000;

fn key(n: u64, id: &str) -> Option<Vec<u8>> {
    match n % 3 {
        0 => Some(id.as_bytes().to_vec()),
        1 => None,
        _ => Some(vec![0xff, 0x00, n as u8]),
    }
}

fn headers(n: u64) -> Vec<(String, Option<Vec<u8>>)> {
    let h = |k: &str, v: Option<&[u8]>| (k.to_string(), v.map(<[u8]>::to_vec));
    match n % 4 {
        0 => Vec::new(),
        1 => vec![
            h("trace", Some(format!("a-{n}").as_bytes())),
            h("trace", Some(format!("b-{n}").as_bytes())),
            h("empty", None),
        ],
        2 => vec![h("bin", Some(&[0, 1, 0xfe, n as u8]))],
        _ => vec![h("source", Some(b"")), h("trace", Some(b"only"))],
    }
}

/// Produces records `range` and returns, by transaction id, the `_kafka` value each good one
/// must have (as the reader script prints it: bytes in hex, the timestamp in milliseconds).
async fn produce(bootstrap: &str, range: std::ops::Range<u64>) -> BTreeMap<String, Value> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut expected = BTreeMap::new();
    for n in range {
        let (id, payload) = meshd_runtime::demo::payment_event(n, BAD_EVERY);
        let key = key(n, &id);
        let headers = headers(n);
        let timestamp = BASE_MS + n as i64 * 1000;
        let mut owned = OwnedHeaders::new();
        for (k, v) in &headers {
            owned = owned.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(TOPIC)
            .payload(&payload)
            .partition((n % 2) as i32)
            .timestamp(timestamp)
            .headers(owned);
        if let Some(k) = &key {
            record = record.key(k);
        }
        let delivery = producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        if n % BAD_EVERY == BAD_EVERY - 1 {
            continue;
        }
        let hex = |bytes: &[u8]| hex::encode(bytes);
        expected.insert(
            id,
            json!({
                "key": key.as_deref().map(hex),
                "partition": delivery.partition,
                "offset": delivery.offset,
                "timestamp": timestamp,
                "headers": headers
                    .iter()
                    .map(|(k, v)| json!([k, v.as_deref().map(hex)]))
                    .collect::<Vec<_>>(),
            }),
        );
    }
    expected
}

/// Runs meshd on `descriptor` until it has committed `rows`, then stops it with SIGTERM.
fn run_until_committed(config: &Path, descriptor: &Path, listen: &str, log: &Path, rows: usize) {
    let mut meshd = Meshd::start(config, &[descriptor], listen, log.to_path_buf());
    poll(
        &format!("meshd to commit {rows} rows"),
        Duration::from_secs(120),
        || {
            let committed = meshd.scrape()?.sum("meshd_records_committed_total");
            (committed >= rows as f64).then_some(())
        },
    );
    support::sigterm(&meshd.child);
    poll("meshd to stop", Duration::from_secs(60), || {
        meshd.child.try_wait().unwrap()
    });
}

/// `_kafka` of every row, by transaction id, and the column's Iceberg type.
fn read_table(python: &Path, config: &Path) -> (String, BTreeMap<String, Value>) {
    let out = run_python(
        python,
        "kafka_metadata.py",
        &[&support::catalog_spec(config, None), TABLE],
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    let mut rows = BTreeMap::new();
    for row in doc["rows"].as_array().unwrap() {
        let id = row["transaction_id"].as_str().unwrap().to_string();
        assert!(
            rows.insert(id.clone(), row["kafka"].clone()).is_none(),
            "{id} is in the table twice"
        );
    }
    (doc["type"].as_str().unwrap().to_string(), rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_lands_in_the_table_value_by_value() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 2).await;
    let (config, listen) = support::meshd_config(
        dir.path(),
        "meshd",
        &tansu.bootstrap,
        &[
            "session.timeout.ms: \"3000\"",
            "heartbeat.interval.ms: \"500\"",
        ],
        "",
    );
    let product = || {
        Product::reference()
            .input_topic(TOPIC)
            .commit_interval(Duration::from_secs(1))
            .without_policies()
    };
    let log = |run: &str| dir.path().join(format!("meshd-{run}.log"));

    // A table without the column.
    let before = produce(&tansu.bootstrap, 0..20).await;
    let plain = product().write(&dir.path().join("plain"));
    run_until_committed(&config, &plain, &listen, &log("plain"), before.len());

    // The port now keeps every piece of metadata: the column is added, then filled.
    let during = produce(&tansu.bootstrap, 20..60).await;
    let kept = product()
        .kafka_metadata(&[
            KafkaMetadata::Headers,
            KafkaMetadata::Key,
            KafkaMetadata::Partition,
            KafkaMetadata::Offset,
            KafkaMetadata::Timestamp,
        ])
        .write(&dir.path().join("kept"));
    run_until_committed(&config, &kept, &listen, &log("kept"), during.len());
    let text = std::fs::read_to_string(log("kept")).unwrap();
    assert!(
        text.contains("add optional column `_kafka`"),
        "the existing table gains the column by evolution:\n{text}"
    );
    let (ty, rows) = read_table(&python, &config);
    for part in [
        "key: optional binary",
        "partition: optional int",
        "offset: optional long",
        "timestamp: optional timestamptz",
        "key: required string",
        "value: optional binary",
    ] {
        assert!(ty.contains(part), "`_kafka` is {ty}");
    }
    assert_eq!(rows.len(), before.len() + during.len());
    for id in before.keys() {
        assert_eq!(rows[id], Value::Null, "{id} was written before the column");
    }
    for (id, want) in &during {
        assert_eq!(&rows[id], want, "{id}");
    }

    // The schema gains a column: meshd's ids for `_kafka` move, the table's stay, and the
    // worker still starts and fills it.
    let after = produce(&tansu.bootstrap, 60..80).await;
    let grown = product()
        .kafka_metadata(&KafkaMetadata::ALL)
        .with_field(json!({"name": "note", "type": ["null", "string"], "default": null}))
        .write(&dir.path().join("grown"));
    run_until_committed(&config, &grown, &listen, &log("grown"), after.len());
    let (_, rows) = read_table(&python, &config);
    assert_eq!(rows.len(), before.len() + during.len() + after.len());
    for (id, want) in during.iter().chain(&after) {
        assert_eq!(&rows[id], want, "{id}");
    }
    let platform = meshd_config::PlatformConfig::load(Some(&config), std::iter::empty()).unwrap();
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
    let table = catalog
        .load_table(&iceberg::TableIdent::from_strs(TABLE.split('.')).unwrap())
        .await
        .unwrap();
    let schema = table.metadata().current_schema();
    let id = |name: &str| schema.field_by_name(name).unwrap().id;
    assert!(
        id("_kafka") > id("event_time") && id("note") > id("_kafka.headers"),
        "`_kafka` comes after the port's columns, `note` after it: {schema:?}"
    );
}
