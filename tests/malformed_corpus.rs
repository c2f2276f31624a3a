//! Bad input: a seeded corpus of 10,000+ malformed records, JSON and binary Avro, interleaved
//! with good ones on two input ports of one product. Every malformed record lands in its
//! dead-letter topic with the specific reason for its kind, meshd does not panic, and every
//! good record around them (null keys and huge-but-allowed strings included) is committed.
//!
//! `MESHD_CORPUS_SEED` replays a corpus; `MESHD_CORPUS_PER_KIND` makes it larger.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use meshd_config::InputFormat;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{Meshd, Tansu, poll};

const JSON_TOPIC: &str = "corpus-json";
const AVRO_TOPIC: &str = "corpus-avro";
/// meshd's default per-record limit (1 MiB).
const LIMIT: usize = 1 << 20;

/// One record to send: which port, its key, its value, and the reason expected (None: good).
struct Case {
    topic: &'static str,
    key: Option<String>,
    value: Option<Vec<u8>>,
    expect: Option<&'static str>,
}

fn good_json(n: u64) -> Vec<u8> {
    meshd_runtime::demo::payment_event(n, 0).1
}

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn avro_bytes(b: &[u8], out: &mut Vec<u8>) {
    zigzag(b.len() as i64, out);
    out.extend_from_slice(b);
}

/// The fields of a reference record in binary Avro, with hooks to break each part.
struct AvroRecord {
    id: String,
    email: Vec<u8>,
    union_branch: i64,
    amount_cents: i128,
    amount_width: usize,
    status: i64,
    string_len_override: Option<i64>,
}

impl AvroRecord {
    fn new(n: u64) -> Self {
        Self {
            id: format!("a-{n:08}"),
            email: format!("user{n}@example.com").into_bytes(),
            union_branch: 1,
            amount_cents: (n as i128 * 101) % 10_000_000,
            amount_width: 8,
            status: (n % 3) as i64,
            string_len_override: None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        avro_bytes(self.id.as_bytes(), &mut out);
        zigzag(100_000, &mut out);
        match self.string_len_override {
            Some(len) => {
                zigzag(len, &mut out);
                out.extend_from_slice(&self.email);
            }
            None => avro_bytes(&self.email, &mut out),
        }
        zigzag(self.union_branch, &mut out);
        if self.union_branch == 1 {
            avro_bytes(b"4242", &mut out);
        }
        let full = self.amount_cents.to_be_bytes();
        avro_bytes(&full[16 - self.amount_width..], &mut out);
        avro_bytes(b"JPY", &mut out);
        avro_bytes(b"JP", &mut out);
        zigzag(self.status, &mut out);
        zigzag(1_764_000_000_000, &mut out);
        out
    }
}

/// The corpus: `per_kind` records of each malformed kind per format, and good records
/// between them.
fn corpus(rng: &mut StdRng, per_kind: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut n = 0u64;
    let mut next = || {
        n += 1;
        n
    };
    let bad = |topic, value: Option<Vec<u8>>, expect, key: Option<String>| Case {
        topic,
        key,
        value,
        expect: Some(expect),
    };
    for i in 0..per_kind {
        // JSON.
        let m = next();
        let key = Some(format!("jm-{m:08}"));
        let mut random = vec![0u8; rng.random_range(1..300)];
        rng.fill(&mut random[..]);
        // A leading `#` keeps random bytes from being, by chance, a JSON value or blank.
        random[0] = b'#';
        cases.push(bad(JSON_TOPIC, Some(random), "decode", key.clone()));
        let good = good_json(m);
        let cut = rng.random_range(1..good.len() - 1);
        cases.push(bad(
            JSON_TOPIC,
            Some(good[..cut].to_vec()),
            "decode",
            Some(format!("jt-{m:08}")),
        ));
        let text = String::from_utf8(good_json(m)).unwrap();
        let wrong_type = match i % 3 {
            0 => text.replacen("\"account_id\":", "\"account_id\":\"many\",\"x\":", 1),
            1 => text.replacen("\"event_time\":", "\"event_time\":true,\"y\":", 1),
            _ => text.replacen("\"currency\":", "\"currency\":{\"a\":1},\"z\":", 1),
        };
        cases.push(bad(
            JSON_TOPIC,
            Some(wrong_type.into_bytes()),
            "schema",
            Some(format!("jw-{m:08}")),
        ));
        let missing = text.replacen(&format!("\"transaction_id\":\"tx-{m:010}\","), "", 1);
        cases.push(bad(
            JSON_TOPIC,
            Some(missing.into_bytes()),
            "required",
            Some(format!("jr-{m:08}")),
        ));
        let unknown = text
            .replace("AUTHORIZED", "LOST")
            .replace("SETTLED", "LOST")
            .replace("REFUNDED", "LOST");
        cases.push(bad(
            JSON_TOPIC,
            Some(unknown.into_bytes()),
            "enum",
            Some(format!("je-{m:08}")),
        ));
        let overflow = text.replacen("\"amount\":\"", "\"amount\":\"99999999999999999", 1);
        cases.push(bad(
            JSON_TOPIC,
            Some(overflow.into_bytes()),
            "decimal",
            Some(format!("jd-{m:08}")),
        ));
        let mut invalid_utf8 = text.clone().into_bytes();
        let at = invalid_utf8.windows(5).position(|w| w == b"@exam").unwrap();
        invalid_utf8[at] = 0xff;
        cases.push(bad(
            JSON_TOPIC,
            Some(invalid_utf8),
            "decode",
            Some(format!("ju-{m:08}")),
        ));
        // A null key on a malformed record; the dead letter keeps the null key.
        cases.push(bad(
            JSON_TOPIC,
            Some(b"{\"transaction_id\":".to_vec()),
            "decode",
            None,
        ));
        if i % 50 == 0 {
            let huge = text.replacen("@example.com", &"x".repeat(LIMIT), 1);
            cases.push(bad(
                JSON_TOPIC,
                Some(huge.into_bytes()),
                "too-large",
                Some(format!("jl-{m:08}")),
            ));
            cases.push(bad(
                JSON_TOPIC,
                None,
                "null-value",
                Some(format!("jn-{m:08}")),
            ));
        }

        // Avro.
        let m = next();
        let mut random = vec![0u8; rng.random_range(1..300)];
        rng.fill(&mut random[..]);
        cases.push(bad(
            AVRO_TOPIC,
            Some(random),
            "decode",
            Some(format!("am-{m:08}")),
        ));
        let good = AvroRecord::new(m).encode();
        let cut = rng.random_range(1..good.len() - 1);
        cases.push(bad(
            AVRO_TOPIC,
            Some(good[..cut].to_vec()),
            "decode",
            Some(format!("at-{m:08}")),
        ));
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"\x02\x04junk");
        cases.push(bad(
            AVRO_TOPIC,
            Some(trailing),
            "decode",
            Some(format!("ax-{m:08}")),
        ));
        let mut record = AvroRecord::new(m);
        record.status = 3 + (i as i64 % 5);
        cases.push(bad(
            AVRO_TOPIC,
            Some(record.encode()),
            "enum",
            Some(format!("ae-{m:08}")),
        ));
        let mut record = AvroRecord::new(m);
        record.union_branch = 2 + (i as i64 % 3);
        cases.push(bad(
            AVRO_TOPIC,
            Some(record.encode()),
            "decode",
            Some(format!("ab-{m:08}")),
        ));
        let mut record = AvroRecord::new(m);
        record.string_len_override = Some(if i % 2 == 0 { -3 } else { 1 << 40 });
        cases.push(bad(
            AVRO_TOPIC,
            Some(record.encode()),
            "decode",
            Some(format!("al-{m:08}")),
        ));
        let mut record = AvroRecord::new(m);
        record.email = vec![b'u', 0xff, 0xfe, b'@'];
        cases.push(bad(
            AVRO_TOPIC,
            Some(record.encode()),
            "decode",
            Some(format!("au-{m:08}")),
        ));
        let mut record = AvroRecord::new(m);
        record.amount_cents = i128::MAX / 3;
        record.amount_width = 16;
        cases.push(bad(
            AVRO_TOPIC,
            Some(record.encode()),
            "decimal",
            Some(format!("ad-{m:08}")),
        ));

        // Good records around them: plain, with a null key, and with a huge allowed string.
        for topic in [JSON_TOPIC, AVRO_TOPIC] {
            let g = next();
            let (key, value) = if topic == JSON_TOPIC {
                let (id, value) = meshd_runtime::demo::payment_event(g, 0);
                (id, value)
            } else {
                let record = AvroRecord::new(g);
                (record.id.clone(), record.encode())
            };
            let value = if i % 100 == 7 && topic == JSON_TOPIC {
                String::from_utf8(value)
                    .unwrap()
                    .replacen(
                        "@example.com",
                        &format!("@{}.example.com", "y".repeat(LIMIT / 2)),
                        1,
                    )
                    .into_bytes()
            } else {
                value
            };
            cases.push(Case {
                topic,
                key: (i % 10 != 3).then_some(key),
                value: Some(value),
                expect: None,
            });
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_record_is_dead_lettered_with_its_reason() {
    let per_kind: usize = std::env::var("MESHD_CORPUS_PER_KIND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(640);
    let seed: u64 = std::env::var("MESHD_CORPUS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::random::<u32>() as u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let cases = corpus(&mut rng, per_kind);
    let malformed = cases.iter().filter(|c| c.expect.is_some()).count();
    let good = cases.len() - malformed;
    eprintln!("corpus: {malformed} malformed, {good} good records, MESHD_CORPUS_SEED={seed}");
    assert!(malformed >= 10_000);

    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    // Oversized records are part of the corpus: the topics take them, as a Kafka topic with a
    // raised `max.message.bytes` does (Nisshi enforces the 1 MB default, as Kafka does).
    let big = [("max.message.bytes", "4000000")];
    tansu.create_topic_with(JSON_TOPIC, 2, &big).await;
    tansu.create_topic_with(AVRO_TOPIC, 2, &big).await;
    let descriptor = support::product::Product::reference()
        .input_topic(JSON_TOPIC)
        .add_input_topic(AVRO_TOPIC, InputFormat::Avro)
        .write(dir.path());
    let (config, listen) = support::meshd_config(dir.path(), "meshd", &tansu.bootstrap, &[], "");
    let meshd = Meshd::start(
        &config,
        &[&descriptor],
        &listen,
        dir.path().join("meshd.log"),
    );

    let producer: FutureProducer = tansu
        .client()
        .set("message.max.bytes", "4000000")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for block in cases.chunks(500) {
        let sends = block.iter().map(|c| {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(c.topic);
            if let Some(key) = &c.key {
                record = record.key(key.as_bytes());
            }
            if let Some(value) = &c.value {
                record = record.payload(value.as_slice());
            }
            producer.send(record, Duration::from_secs(30))
        });
        for sent in futures::future::join_all(sends).await {
            sent.unwrap();
        }
    }

    // Every good record committed (the rows, with JSON and Avro ids apart).
    let table = "payments.payment_transactions";
    let rows = poll(
        "every good record in the table",
        Duration::from_secs(300),
        || {
            let rt = tokio::runtime::Handle::current();
            let keys = tokio::task::block_in_place(|| {
                rt.block_on(support::table_strings(&config, table, "transaction_id"))
            })?;
            (keys.len() >= good).then_some(keys)
        },
    );
    assert_eq!(
        rows.len(),
        good,
        "rows: {} for {good} good records",
        rows.len()
    );

    // Every malformed record dead-lettered once with its reason.
    let mut expected: BTreeMap<String, &str> = BTreeMap::new();
    let mut null_keyed = 0;
    for c in cases.iter().filter(|c| c.expect.is_some()) {
        match &c.key {
            Some(k) => {
                expected.insert(k.clone(), c.expect.unwrap());
            }
            None => null_keyed += 1,
        }
    }
    let letters = support::read_dead_letters(
        &tansu.bootstrap,
        &[&format!("{JSON_TOPIC}.dlq"), &format!("{AVRO_TOPIC}.dlq")],
        malformed,
        Duration::from_secs(120),
    );
    let mut wrong = Vec::new();
    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    let mut nulls = 0;
    for (key, headers) in &letters {
        let kind = headers.get("meshd.error.kind").map(String::as_str);
        match expected.get(key) {
            Some(want) if Some(*want) == kind => {}
            Some(want) => {
                *summary
                    .entry(format!("{}: want {want}, got {kind:?}", &key[..2]))
                    .or_default() += 1;
                wrong.push(format!(
                    "{key}: want {want}, got {kind:?} ({:?})",
                    headers.get("meshd.error.message")
                ))
            }
            None if key.contains('/') => nulls += 1,
            None => wrong.push(format!(
                "{key}: not malformed, but dead-lettered as {kind:?}"
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {malformed} with the wrong reason: {summary:#?}, e.g.:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(nulls, null_keyed, "dead letters with a null key");
    let too_large = letters.iter().filter(|(k, _)| k.starts_with("jl-"));
    for (key, headers) in too_large {
        assert!(
            headers.contains_key("meshd.payload.truncated"),
            "{key}: an oversized dead letter must say its payload was cut"
        );
    }
    assert_eq!(letters.len(), malformed);
    let log = meshd.log_text();
    assert!(!log.contains("panicked"), "meshd panicked:\n{log}");
    eprintln!(
        "checked: {malformed} malformed records each dead-lettered with its reason, {good} good records committed, no panic"
    );
}
