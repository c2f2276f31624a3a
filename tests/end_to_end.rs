//! The whole path on real components: a Tansu broker, `meshd run` as a process, an Iceberg
//! table in a SQLite catalog, read back by pyiceberg.
//!
//! 10,000 JSON payment events (50 malformed in five ways) are produced with librdkafka. The
//! worker is SIGKILLed mid-stream and restarted. At the end the table holds exactly the 9,950
//! good events once each, with PII masked, and the 50 bad ones are in the dead-letter topic
//! with their reasons; `/metrics` parses and freshness is back to 0.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::product::{Product, Schema};
use support::{Meshd, Tansu, free_port, poll, python, run_python};

const TOTAL: usize = 10_000;
const TOPIC: &str = "payments-e2e";
const KEY: &str = "e2e-masking-key";
/// The consumer session timeout in meshd.yaml: short, so a restart takes over in seconds.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// Base event time: 2025-11-24T16:00:00Z.
const BASE_MS: i64 = 1_764_000_000_000;

/// The five ways a record is malformed, and the reason meshd must give for each.
const MALFORMED: [&str; 5] = ["decode", "schema", "required", "enum", "decimal"];

const STATUSES: [&str; 3] = ["AUTHORIZED", "SETTLED", "REFUNDED"];

fn malformed_kind(i: usize) -> Option<&'static str> {
    (i % 200 == 199).then(|| MALFORMED[(i / 200) % MALFORMED.len()])
}

fn key(i: usize) -> String {
    format!("tx-{i:06}")
}

fn cents(i: usize) -> i64 {
    (i as i64 * 101) % 10_000_000
}

/// A good event, using each accepted JSON spelling of the logical types somewhere.
fn good(i: usize) -> Value {
    let amount = format!("{}.{:02}", cents(i) / 100, cents(i) % 100);
    let event_ms = BASE_MS + i as i64 * 1000;
    json!({
        "transaction_id": key(i),
        "account_id": 100_000 + i as i64,
        "email": format!("user{i}@example.com"),
        "card_last4": if i.is_multiple_of(3) { Value::Null } else { json!(format!("{:04}", i % 10_000)) },
        // Decimals as strings and as numbers; timestamps as epoch millis and RFC 3339.
        "amount": if i.is_multiple_of(2) { json!(amount) } else { serde_json::from_str::<Value>(&amount).unwrap() },
        "currency": if i.is_multiple_of(2) { "JPY" } else { "USD" },
        "region": if i.is_multiple_of(2) { "JP" } else { "US" },
        "status": STATUSES[i % 3],
        "event_time": if i.is_multiple_of(4) {
            json!(chrono::DateTime::from_timestamp_millis(event_ms).unwrap().to_rfc3339())
        } else {
            json!(event_ms)
        },
    })
}

fn payload(i: usize) -> Vec<u8> {
    let mut v = good(i);
    match malformed_kind(i) {
        None => {}
        Some("decode") => {
            return format!(r#"{{"transaction_id": "{}", "account_id": 1"#, key(i)).into_bytes();
        }
        Some("schema") => v["account_id"] = json!("not-a-number"),
        Some("required") => {
            v.as_object_mut().unwrap().remove("email");
        }
        Some("enum") => v["status"] = json!("CHARGEBACK"),
        Some(_) => v["amount"] = json!("123456789012345678.99"),
    }
    serde_json::to_vec(&v).unwrap()
}

/// Produces `range`; with `pause`, in batches of 500 with that pause between them, a stream.
async fn produce(bootstrap: &str, range: std::ops::Range<usize>, pause: Option<Duration>) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "10")
        .create()
        .unwrap();
    let mut pending = Vec::new();
    for i in range {
        let (k, p) = (key(i), payload(i));
        let record = FutureRecord::to(TOPIC)
            .key(&k)
            .payload(&p)
            .partition((i % 3) as i32);
        // At most 500 in flight, far below librdkafka's queue limit.
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        if pending.len() == 500 {
            for d in pending.drain(..) {
                d.await.unwrap().unwrap();
            }
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
}

/// The product under test: the reference reading [`TOPIC`], committing every second, without
/// policies.
fn product() -> Product {
    Product::reference()
        .input_topic(TOPIC)
        .commit_interval(Duration::from_secs(1))
        .without_policies()
}

fn write_files(dir: &Path, bootstrap: &str) -> std::path::PathBuf {
    product().write(dir);
    std::fs::write(dir.join("masking.key"), format!("{KEY}\n")).unwrap();
    // A short session timeout lets the restarted worker take over the killed one's partitions
    // in seconds; it starts only after that session expired (`wait_out_session`: Tansu gives a
    // member that joins while a dead one's session is live an empty assignment for good).
    let config = dir.join("meshd.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap.servers: {bootstrap}\n  session.timeout.ms: \"{session}\"\n  heartbeat.interval.ms: \"1000\"\ncatalog:\n  type: sql\n  uri: sqlite://{d}/catalog.db\nwarehouse: {d}/warehouse\nmasking:\n  keyFile: {d}/masking.key\n",
            d = dir.display(),
            session = SESSION_TIMEOUT.as_millis()
        ),
    )
    .unwrap();
    config
}

/// Writes the config with this run's metrics port.
fn with_listen(config: &Path, port: u16) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let path = config.with_file_name(format!("meshd-{port}.yaml"));
    std::fs::write(
        &path,
        format!("{text}metrics:\n  listen: 127.0.0.1:{port}\n"),
    )
    .unwrap();
    path
}

fn start(dir: &Path, config: &Path, run: &str) -> Meshd {
    start_products(dir, config, run, &[&dir.join("product.yaml")])
}

fn start_products(dir: &Path, config: &Path, run: &str, descriptors: &[&Path]) -> Meshd {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    Meshd::start(
        &with_listen(config, port),
        descriptors,
        &listen,
        dir.join(format!("meshd-{run}.log")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_survive_a_sigkill_exactly_once() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 3).await;
    let config = write_files(dir.path(), &tansu.bootstrap);

    // A first half, then the rest as a slow stream; the first worker is killed while it
    // holds consumed but uncommitted records.
    produce(&tansu.bootstrap, 0..TOTAL / 2, None).await;
    let mut first = start(dir.path(), &config, "1");
    poll(
        "the first worker to commit rows",
        Duration::from_secs(180),
        || {
            let committed = first.scrape()?.sum("meshd_records_committed_total");
            (committed >= 1000.0).then_some(())
        },
    );
    let rest = tokio::spawn({
        let bootstrap = tansu.bootstrap.clone();
        async move {
            produce(
                &bootstrap,
                TOTAL / 2..TOTAL,
                Some(Duration::from_millis(200)),
            )
            .await
        }
    });
    let before = poll(
        "the first worker to hold uncommitted records",
        Duration::from_secs(120),
        || {
            let s = first.scrape()?;
            let buffered = s.sum("meshd_records_consumed_total")
                - s.sum("meshd_records_committed_total")
                - s.sum("meshd_records_dead_lettered_total");
            (buffered > 0.0 && s.sum("meshd_records_consumed_total") > (TOTAL / 2) as f64)
                .then_some(s)
        },
    );
    first.kill();
    eprintln!(
        "SIGKILL after {} records consumed, {} committed",
        before.sum("meshd_records_consumed_total"),
        before.sum("meshd_records_committed_total")
    );
    rest.await.unwrap();
    support::wait_out_session(SESSION_TIMEOUT).await;

    // A new process resumes from the offsets recorded in the table; a second product in the
    // same process fails to start, and must not stop the first.
    // Its second output port gives `amount` another type than the first: the ports project
    // one input record, so the worker refuses it at start.
    let broken = product()
        .name("broken-product")
        .add_output_port(
            "clash",
            Schema::reference()
                .without_field("amount")
                .with_field(json!({"name": "amount", "type": "string"})),
        )
        .write(&dir.path().join("broken"));
    // A third is denied by governance: its schema tags `email` PII without masking.
    let denied = product()
        .name("denied-product")
        .without_masking("email")
        .write(&dir.path().join("denied"));
    let second = start_products(
        dir.path(),
        &config,
        "2",
        &[&dir.path().join("product.yaml"), &broken, &denied],
    );
    let scrape = poll(
        "the second worker to catch up (freshness 0, lag 0)",
        Duration::from_secs(240),
        || {
            let s = second.scrape()?;
            let done = s.sum("meshd_records_consumed_total") > 0.0
                && s.sum("meshd_freshness_seconds") == 0.0
                && s.sum("meshd_consumer_lag_records") == 0.0
                && s.has("meshd_last_commit_timestamp_seconds");
            done.then_some(s)
        },
    );
    for metric in meshd_runtime::metrics::DOCUMENTED
        .iter()
        .map(|(name, _)| *name)
    {
        assert!(
            scrape.has(metric),
            "/metrics lacks {metric}:\n{}",
            second.log_text()
        );
    }
    for sample in &scrape.0.samples {
        let documented = meshd_runtime::metrics::DOCUMENTED.iter().any(|(name, _)| {
            sample.metric == *name
                || sample
                    .metric
                    .strip_prefix(name)
                    .is_some_and(|s| s.starts_with('_'))
        });
        assert!(
            !sample.metric.starts_with("meshd_") || documented,
            "{} is exported but not documented",
            sample.metric
        );
    }

    let up = |product: &str| {
        scrape
            .0
            .samples
            .iter()
            .find(|s| s.metric == "meshd_worker_up" && s.labels.get("product") == Some(product))
            .map(|s| format!("{:?}", s.value))
    };
    assert_eq!(up("payment-transactions").as_deref(), Some("Gauge(1.0)"));
    assert_eq!(up("broken-product").as_deref(), Some("Gauge(0.0)"));
    // The only member of its group holds all three partitions.
    assert_eq!(
        scrape.sum_where(
            "meshd_partitions_assigned",
            &[("product", "payment-transactions")]
        ),
        3.0
    );
    let (status, ready) = second.readyz().unwrap();
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        ready["products"]["payment-transactions"]["ready"], true,
        "{ready}"
    );
    let refused = ready["products"]["denied-product"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        refused.contains("pii_masking") && refused.contains("'email'"),
        "{ready}"
    );
    assert_eq!(up("denied-product").as_deref(), Some("Gauge(0.0)"));
    assert!(
        second
            .log_text()
            .contains("Product refused: governance policies deny it")
    );
    let reason = ready["products"]["broken-product"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("has type"), "{ready}");

    let expected_rows: BTreeSet<String> = (0..TOTAL)
        .filter(|i| malformed_kind(*i).is_none())
        .map(key)
        .collect();
    assert_eq!(expected_rows.len(), 9_950);

    // The independent reader.
    let table = read_table(&python, dir.path());
    let rows = table["rows"].as_array().unwrap();
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["transaction_id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        ids.len(),
        9_950,
        "rows in the table (duplicates: {})",
        ids.len() - unique.len()
    );
    assert_eq!(unique, expected_rows);
    for row in rows {
        check_row(row);
    }
    assert_eq!(
        table["properties"]["datamesh.product"],
        "payment-transactions"
    );
    assert_eq!(table["properties"]["datamesh.sla.freshness"], "15min");
    let last = table["snapshots"].as_array().unwrap().last().unwrap();
    assert!(
        last["summary"]["meshd.commit-id"].is_string(),
        "snapshot summary: {last}"
    );
    assert!(
        last["summary"]["meshd.offsets.meshd.payments.payment-transactions"].is_string(),
        "snapshot summary: {last}"
    );

    check_dead_letters(&tansu);
    drop(second);
    plan_and_provision_a_schema_change(&python, dir.path(), &config);
}

/// `meshd plan` against the table the workers created: a new optional column is planned and
/// applied by `meshd provision` (pyiceberg sees it); a removed column is refused with exit 1.
fn plan_and_provision_a_schema_change(python: &Path, dir: &Path, config: &Path) {
    let schema_file = dir.join("schema/transactions.avsc");
    let meshd = |args: &[&str]| {
        let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        all.extend([
            "--config".into(),
            config.into(),
            dir.join("product.yaml").into(),
        ]);
        support::meshd_output(&all)
    };
    let (code, text) = meshd(&["plan"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("is up to date"), "{text}");

    let added = Schema::load(&schema_file).with_field(json!({
        "name": "note", "type": ["null", "string"], "default": null, "doc": "Free text"
    }));
    added.write(&schema_file);
    let (code, text) = meshd(&["plan"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("+ add optional column `note`"), "{text}");
    let (code, text) = meshd(&["provision"]);
    assert_eq!(code, Some(0), "{text}");
    let table = read_table(python, dir);
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9_950);
    assert!(
        rows.iter()
            .all(|r| r.as_object().unwrap().contains_key("note") && r["note"].is_null())
    );

    added.without_field("region").write(&schema_file);
    let (code, text) = meshd(&["plan"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("REFUSED") && text.contains("`region`"),
        "{text}"
    );
    let (code, _) = meshd(&["provision"]);
    assert_eq!(code, Some(1));
}

fn read_table(python: &Path, dir: &Path) -> Value {
    let out = run_python(
        python,
        "read_table.py",
        &[&support::sqlite_spec(dir), "payments.payment_transactions"],
    );
    serde_json::from_str(&out).unwrap()
}

fn sha256_hex(value: &str) -> String {
    let mut h = Sha256::new();
    h.update(KEY.as_bytes());
    h.update(value.as_bytes());
    hex::encode(h.finalize())
}

fn check_row(row: &Value) {
    let id = row["transaction_id"].as_str().unwrap();
    let i: usize = id.trim_start_matches("tx-").parse().unwrap();
    let raw_email = format!("user{i}@example.com");
    assert_eq!(row["email"], sha256_hex(&raw_email), "email of {id}");
    assert_ne!(row["email"], raw_email.as_str());
    let card = if i.is_multiple_of(3) {
        Value::Null
    } else {
        json!("[REDACTED]")
    };
    assert_eq!(row["card_last4"], card, "card_last4 of {id}");
    assert_eq!(row["account_id"], 100_000 + i as i64, "account_id of {id}");
    assert_eq!(
        row["amount"].as_str().unwrap(),
        format!("{}.{:02}", cents(i) / 100, cents(i) % 100),
        "amount of {id}"
    );
    assert_eq!(row["status"], STATUSES[i % 3], "status of {id}");
    assert_eq!(
        row["event_time"],
        BASE_MS + i as i64 * 1000,
        "event_time of {id}"
    );
    assert_eq!(
        row["currency"],
        if i.is_multiple_of(2) { "JPY" } else { "USD" }
    );
}

fn check_dead_letters(tansu: &Tansu) {
    // Dead letters are at least once: a crash may repeat one, so count distinct sources.
    let seen = support::read_dead_letters(
        &tansu.bootstrap,
        &[&format!("{TOPIC}.dlq")],
        50,
        Duration::from_secs(60),
    );
    assert_eq!(seen.len(), 50, "{seen:?}");
    for (key, headers) in &seen {
        let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
        let (kind, message) = (header("meshd.error.kind"), header("meshd.error.message"));
        let i: usize = key.trim_start_matches("tx-").parse().unwrap();
        assert_eq!(
            Some(kind.as_str()),
            malformed_kind(i),
            "reason for {key}: {message}"
        );
        assert!(!message.is_empty(), "{key} has no reason message");
    }
}
