//! PII inside nested fields, on real components: a Nisshi (Tansu) broker, `meshd run` as a
//! process, pyiceberg as the independent reader.
//!
//! The reference product's schema gains the shapes real producers nest PII in: a record
//! (`customer.email` HMAC-SHA256, `customer.phone` LAST4), an array of records
//! (`items[].note` REDACT), a map of strings (`attributes`, values REDACT) and a map of
//! records (`contacts{}.email` SHA256). JSON records are produced, and every nested value in
//! the table must be masked as its field says, computed here with the worker's own
//! [`mask_one`], while the fields beside them, map keys and nulls arrive intact.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use meshd_config::Masking;
use meshd_runtime::mask::{REDACTED, mask_one};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use support::product::Product;
use support::{Meshd, Tansu, python, run_python};

const TOPIC: &str = "nested-pii";
const KEY: &str = "nested-masking-key";
const RECORDS: u64 = 300;

fn pii(name: &str, ty: Value, masking: &str) -> Value {
    json!({"name": name, "type": ty, "tags": ["PII"], "masking": masking})
}

/// The reference product reading [`TOPIC`], its schema with every nested shape added.
fn product() -> Product {
    Product::reference()
        .input_topic(TOPIC)
        .commit_interval(Duration::from_secs(1))
        .with_field(json!({"name": "customer", "type": ["null", {
            "type": "record", "name": "Customer", "fields": [
                {"name": "name", "type": "string"},
                pii("email", json!("string"), "HMAC-SHA256"),
                pii("phone", json!(["null", "string"]), "LAST4"),
            ]
        }], "default": null}))
        .with_field(json!({"name": "items", "type": {"type": "array", "items": {
            "type": "record", "name": "Item", "fields": [
                {"name": "sku", "type": "string"},
                {"name": "quantity", "type": "int"},
                pii("note", json!(["null", "string"]), "REDACT"),
            ]
        }}}))
        .with_field(pii(
            "attributes",
            json!({"type": "map", "values": "string"}),
            "REDACT",
        ))
        .with_field(
            json!({"name": "contacts", "type": {"type": "map", "values": {
                "type": "record", "name": "Contact", "fields": [
                    {"name": "kind", "type": "string"},
                    pii("email", json!("string"), "SHA256"),
                ]
            }}}),
        )
}

/// The nested part of record `n`: every third has no customer, every fifth no items and
/// empty maps, every second item has no note, every fourth customer no phone.
fn nested(n: u64) -> Value {
    let customer = if n.is_multiple_of(3) {
        Value::Null
    } else {
        json!({
            "name": format!("Customer {n}"),
            "email": format!("customer{n}@example.com"),
            "phone": if n.is_multiple_of(4) { Value::Null } else { json!(format!("+81-90-{n:08}")) },
        })
    };
    let (items, attributes, contacts) = if n.is_multiple_of(5) {
        (json!([]), json!({}), json!({}))
    } else {
        let items: Vec<Value> = (0..n % 3 + 1)
            .map(|k| {
                json!({
                    "sku": format!("SKU-{n}-{k}"),
                    "quantity": k + 1,
                    "note": if k % 2 == 1 { Value::Null } else { json!(format!("ring {n} at door {k}")) },
                })
            })
            .collect();
        (
            json!(items),
            json!({"ip": format!("10.0.{}.{}", n / 256, n % 256), "agent": format!("app/{n}")}),
            json!({
                "work": {"kind": "office", "email": format!("w{n}@corp.example")},
                "home": {"kind": "private", "email": format!("h{n}@mail.example")},
            }),
        )
    };
    json!({"customer": customer, "items": items, "attributes": attributes, "contacts": contacts})
}

/// The reference payment event `n` with [`nested`] added.
fn payload(n: u64) -> (String, Vec<u8>) {
    let (id, event) = meshd_runtime::demo::payment_event(n, 0);
    let mut event: Value = serde_json::from_slice(&event).unwrap();
    for (field, value) in nested(n).as_object().unwrap() {
        event[field] = value.clone();
    }
    (id, serde_json::to_vec(&event).unwrap())
}

fn masked(value: &Value, method: Masking) -> Value {
    match value.as_str() {
        Some(text) => json!(mask_one(text, method, Some(KEY.as_bytes())).unwrap()),
        None => Value::Null,
    }
}

/// What the table must hold for record `n`'s nested fields, in pyiceberg's shapes (a map is
/// a list of `[key, value]` pairs, here sorted by key).
fn expected(n: u64) -> Value {
    let raw = nested(n);
    let customer = match &raw["customer"] {
        Value::Null => Value::Null,
        c => json!({
            "name": c["name"],
            "email": masked(&c["email"], Masking::HmacSha256),
            "phone": masked(&c["phone"], Masking::Last4),
        }),
    };
    let items: Vec<Value> = raw["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            json!({
                "sku": item["sku"],
                "quantity": item["quantity"],
                "note": if item["note"].is_null() { Value::Null } else { json!(REDACTED) },
            })
        })
        .collect();
    let attributes: BTreeMap<&String, Value> = raw["attributes"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k, json!(REDACTED)))
        .collect();
    let contacts: BTreeMap<&String, Value> = raw["contacts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| {
            (
                k,
                json!({"kind": c["kind"], "email": masked(&c["email"], Masking::Sha256)}),
            )
        })
        .collect();
    json!({
        "customer": customer,
        "items": items,
        "attributes": attributes.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "contacts": contacts.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
    })
}

/// A map column as pyiceberg returns it, its pairs sorted by key.
fn sorted_pairs(value: &Value) -> Value {
    let mut pairs = value.as_array().cloned().unwrap_or_default();
    pairs.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    Value::Array(pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_pii_is_masked_in_the_table_as_each_field_says() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 1).await;
    let descriptor = product().write(dir.path());
    std::fs::write(dir.path().join("masking.key"), format!("{KEY}\n")).unwrap();
    let (config, listen) = support::meshd_config(
        dir.path(),
        "meshd",
        &tansu.bootstrap,
        &[],
        &format!(
            "masking:\n  keyFile: {}\n",
            dir.path().join("masking.key").display()
        ),
    );

    let producer: FutureProducer = tansu.client().set("linger.ms", "5").create().unwrap();
    let mut pending = Vec::new();
    for n in 0..RECORDS {
        let (id, bytes) = payload(n);
        let record = FutureRecord::to(TOPIC).key(&id).payload(&bytes);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for delivery in pending {
        delivery.await.unwrap().unwrap();
    }

    let meshd = Meshd::start(
        &config,
        &[&descriptor],
        &listen,
        dir.path().join("meshd.log"),
    );
    support::poll(
        "every record to be committed",
        Duration::from_secs(120),
        || {
            let s = meshd.scrape()?;
            assert_eq!(
                s.sum("meshd_records_dead_lettered_total"),
                0.0,
                "{}",
                meshd.log_text()
            );
            (s.sum("meshd_records_committed_total") >= RECORDS as f64).then_some(())
        },
    );

    let out = run_python(
        &python,
        "read_table.py",
        &[
            &support::sqlite_spec(dir.path()),
            "payments.payment_transactions",
        ],
    );
    let table: Value = serde_json::from_str(&out).unwrap();
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), RECORDS as usize);
    let mut seen = 0;
    for row in rows {
        let id = row["transaction_id"].as_str().unwrap();
        let n: u64 = id.trim_start_matches("tx-").parse().unwrap();
        let want = expected(n);
        let got = json!({
            "customer": row["customer"],
            "items": row["items"],
            "attributes": sorted_pairs(&row["attributes"]),
            "contacts": sorted_pairs(&row["contacts"]),
        });
        assert_eq!(got, want, "nested fields of {id}");
        // No raw nested value survives anywhere in the row.
        let text = row.to_string();
        for secret in [
            "@example.com",
            "@corp.example",
            "@mail.example",
            "+81-90",
            "ring ",
            "10.0.",
        ] {
            assert!(!text.contains(secret), "{id} leaks {secret}: {text}");
        }
        // The top-level masking is unchanged beside it.
        assert_eq!(row["email"].as_str().map(str::len), Some(64), "{id}");
        seen += 1;
    }
    assert_eq!(seen, RECORDS);
}
