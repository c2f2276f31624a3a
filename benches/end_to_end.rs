//! End-to-end benchmark: reference records (~200 bytes, JSON and Avro) in a topic on a real
//! broker (Tansu, and librdkafka's mock cluster), then in one run:
//! - meshd (the release binary, as a process) from offset 0 to "all committed": records/s,
//!   MB/s, CPU seconds per GB of input, peak RSS;
//! - the consume limit: a bare librdkafka consumer reading the same topic, doing nothing;
//! - the encode limit: Parquet-encoding the same data, already in Arrow;
//! - the pipeline: decode → validate → mask → conform → Parquet encode in this process, the
//!   part of meshd that is not Kafka or the catalog;
//! - freshness at a steady produce rate below capacity: p50/p99 of (commit visible − produce
//!   time), beside the commit interval.
//!
//! `cargo bench -p meshd-runtime --bench end_to_end` prints one table and writes
//! `target/meshd-bench/end_to_end.json` (`benches/plot.py` turns it into a PNG).
//! `MESHD_BENCH_DATA=easy,realistic` (the data sets of `reference.rs`; both by default),
//! `MESHD_BENCH_RECORDS` (default 1,000,000), `MESHD_BENCH_BROKERS=tansu` (or `mock`: librdkafka's
//! mock cluster stops serving a partition after some 20,000–60,000 records, so it only suits
//! small runs), `MESHD_BENCH_FORMATS=json,avro,avro-confluent` (`avro-confluent`: the Avro datums
//! framed with schema id 1, its schema served by `tests/registry.py`), `MESHD_BENCH_STORES=local,s3` (`s3`: the
//! table on moto's S3 server with the catalog on PostgreSQL, both on loopback). Under `cargo
//! test` it runs once on 2,000 records against the mock cluster.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

mod measure;
mod reference;

use measure::{cpu_seconds, mb, peak_rss_mib, produce, setting};
use reference::Data;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use meshd_kafka_batch::{BatchQueue, MAX_BATCH};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};

const PARTITIONS: i32 = 3;
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// A broker the bench runs against.
enum Broker {
    Tansu(support::Tansu),
    Mock(MockCluster<'static, rdkafka::producer::DefaultProducerContext>),
}

impl Broker {
    fn bootstrap(&self) -> String {
        match self {
            Self::Tansu(t) => t.bootstrap.clone(),
            Self::Mock(m) => m.bootstrap_servers(),
        }
    }

    /// Creates `topic` and its dead-letter topic (the mock cluster has no CreateTopics).
    async fn create_topic(&self, topic: &str) {
        let dlq = format!("{topic}.dlq");
        match self {
            Self::Tansu(t) => {
                t.create_topic(topic, PARTITIONS).await;
                t.create_topic(&dlq, 1).await;
            }
            Self::Mock(m) => {
                m.create_topic(topic, PARTITIONS, 1).unwrap();

                m.create_topic(&dlq, 1, 1).unwrap();
            }
        }
    }
}

/// A bare consumer's settings: meshd's prefetch and fetch-backoff defaults, nothing else.
fn bare_reader(bootstrap: &str, purpose: &str) -> ClientConfig {
    let mut config = support::reader(bootstrap, purpose);
    for (key, value) in meshd_runtime::kafka::CONSUMER_DEFAULTS {
        config.set(*key, *value);
    }
    config
}

/// Every partition of the bench's topic, from its first record.
fn from_beginning(topic: &str) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    tpl
}

/// The consume limit: a bare consumer reading `count` records from the beginning. Returns the
/// time from its first record to its last, and the CPU seconds this process spent meanwhile
/// (librdkafka's threads included), which is the per-core ceiling for any consumer.
fn consume_limit(bootstrap: &str, topic: &str, count: usize) -> (Duration, f64) {
    let cpu0 = cpu_seconds(std::process::id());
    let consumer: BaseConsumer = bare_reader(bootstrap, "bench-bare").create().unwrap();
    consumer.assign(&from_beginning(topic)).unwrap();
    let mut seen = 0;
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut report = Instant::now();
    while seen < count && Instant::now() < deadline {
        if report.elapsed() > Duration::from_secs(5) {
            eprintln!("  bare consumer: {seen} of {count}");
            report = Instant::now();
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            std::hint::black_box(m.payload());
            seen += 1;
        }
    }
    assert_eq!(seen, count, "the bare consumer did not read every record");
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    (elapsed, cpu_seconds(std::process::id()) - cpu0)
}

/// The batch consume limit: as [`consume_limit`], reading through meshd's [`BatchQueue`]
/// (librdkafka's `rd_kafka_consume_batch_queue`, what the worker does) instead of one
/// message per poll. Returns the same pair.
async fn batch_consume_limit(bootstrap: &str, topic: &str, count: usize) -> (Duration, f64) {
    let cpu0 = cpu_seconds(std::process::id());
    let consumer: std::sync::Arc<StreamConsumer> =
        std::sync::Arc::new(bare_reader(bootstrap, "bench-bare-batch").create().unwrap());
    let queue = BatchQueue::new(std::sync::Arc::clone(&consumer));
    for p in 0..PARTITIONS {
        queue.route(topic, p).unwrap();
    }
    consumer.assign(&from_beginning(topic)).unwrap();
    let mut seen = 0;
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < count && Instant::now() < deadline {
        let taken = queue.take(MAX_BATCH, |m| {
            std::hint::black_box(m.ok().and_then(|m| m.payload()));
        });
        if taken > 0 {
            started.get_or_insert_with(Instant::now);
            seen += taken;
        } else {
            // Serve the consumer's own queue, as the worker does, then wait for records.
            let _ = futures::FutureExt::now_or_never(consumer.recv());
            let _ = tokio::time::timeout(Duration::from_millis(100), queue.ready()).await;
        }
    }
    assert_eq!(seen, count, "the batch consumer did not read every record");
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    (elapsed, cpu_seconds(std::process::id()) - cpu0)
}

/// Reference event `n` as `format` encodes it: JSON, a bare Avro datum, or the datum in
/// Confluent's wire format under schema id 1.
fn payload(data: Data, format: &str, avro: &apache_avro::Schema, n: u64) -> Vec<u8> {
    match format {
        "avro" => data.avro(avro, n),
        "avro-confluent" => {
            let mut frame = vec![0u8, 0, 0, 0, 1];
            frame.extend(data.avro(avro, n));
            frame
        }
        _ => data.json(n),
    }
}

/// The test registry with the reference schema as id 1 under `topic`'s subject, for
/// `avro-confluent` runs (None otherwise).
fn registry(format: &str, dir: &Path, topic: &str) -> Option<support::registry::SchemaRegistry> {
    if format != "avro-confluent" {
        return None;
    }
    let python = support::python().expect("Python with the test venv, for the schema registry");
    let schema = reference::schema();
    Some(support::registry::SchemaRegistry::start(
        &python,
        dir,
        &[(&format!("{topic}-value"), &schema.text)],
    ))
}

/// The pipeline and the encode limit, in this process on one core: (pipeline, encode) time.
fn pipeline_and_encode(format: &str, payloads: &[Vec<u8>]) -> (Duration, Duration) {
    use meshd_runtime::decode::{
        self, AvroDecoderFactory, DecoderFactory, JsonDecoderFactory, wire,
    };
    let schema = reference::schema();
    let table = reference::table_schema(&schema);
    let masker = reference::masker(&schema);
    let columns: Vec<_> = schema.all_columns().into_iter().cloned().collect();
    let factory: Box<dyn DecoderFactory> = match format {
        "avro" => Box::new(AvroDecoderFactory::new(&schema.text).unwrap()),
        _ => Box::new(JsonDecoderFactory::new(wire::json_wire_schema(&schema))),
    };
    let mut confluent = (format == "avro-confluent").then(|| {
        let mut decoders = decode::confluent::ConfluentDecoders::new(&schema.text, 16);
        assert_eq!(decoders.learn(1, &schema.text), None);
        decoders
    });
    let encode = |batches: &[arrow_array::RecordBatch]| {
        let mut out = Vec::with_capacity(64 << 20);
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            &mut out,
            std::sync::Arc::clone(&table),
            Some(meshd_sinks::iceberg::parquet_properties()),
        )
        .unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
        out.len()
    };
    let started = Instant::now();
    let mut conformed = Vec::new();
    for chunk in payloads.chunks(8192) {
        let refs: Vec<Option<&[u8]>> = chunk.iter().map(|p| Some(p.as_slice())).collect();
        let decoded = match confluent.as_mut() {
            Some(decoders) => decoders.decode(&refs, 1 << 20),
            None => decode::decode_all(factory.as_ref(), &refs, 1 << 20),
        };
        for (batch, _) in decoded.batches {
            assert!(meshd_runtime::validate::validate(&batch, &columns).is_empty());
            let masked = masker.apply(&batch).unwrap();
            conformed.push(wire::conform(&masked, &table).unwrap());
        }
    }
    std::hint::black_box(encode(&conformed));
    let pipeline = started.elapsed();
    let started = Instant::now();
    std::hint::black_box(encode(&conformed));
    (pipeline, started.elapsed())
}

/// Where the table goes: the embedded default, or PostgreSQL + S3 (moto) on loopback.
enum Store {
    Local,
    Shared(Box<(support::services::Moto, support::services::Postgres)>),
}

impl Store {
    fn start(name: &str, dir: &Path) -> Self {
        if name != "s3" {
            return Self::Local;
        }
        let moto = support::services::Moto::start(dir).expect("moto for the s3 store");
        let pg = support::services::Postgres::start(dir).expect("PostgreSQL for the s3 store");
        pg.create_database("bench");
        moto.create_bucket("data-mesh");
        Self::Shared(Box::new((moto, pg)))
    }

    /// meshd.yaml lines that replace the embedded catalog and warehouse.
    fn platform_lines(&self, dir: &Path) -> String {
        match self {
            Self::Local => format!(
                "catalog:\n  uri: sqlite://{d}/catalog.db\nwarehouse: {d}/warehouse\n",
                d = dir.display()
            ),
            Self::Shared(shared) => {
                let (moto, pg) = shared.as_ref();
                format!(
                    "catalog:\n  uri: {}\n  password: {}\nwarehouse: s3://data-mesh/warehouse\nstorage:\n  endpoint: {}\n  access_key_id: {}\n  secret_access_key: {}\n  region: us-east-1\n",
                    pg.uri("bench"),
                    support::services::PG_PASSWORD,
                    moto.endpoint,
                    support::services::S3_ACCESS_KEY,
                    support::services::S3_SECRET_KEY,
                )
            }
        }
    }
}

/// A meshd process for one product reading `topic` in `format`, its table on `store`.
fn start_meshd(
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    format: &str,
    store: &Store,
    registry: Option<&support::registry::SchemaRegistry>,
) -> support::Meshd {
    let descriptor = support::product::Product::reference()
        .input_topic(topic)
        .commit_interval(COMMIT_INTERVAL)
        .input_format(serde_json::from_value(json!(format)).unwrap())
        .write(dir);
    std::fs::write(dir.join("masking.key"), "bench-key").unwrap();
    let listen = format!("127.0.0.1:{}", support::free_port());
    let config = dir.join("meshd.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap.servers: {bootstrap}\n  session.timeout.ms: \"6000\"\n{}{}metrics:\n  listen: {listen}\nmasking:\n  keyFile: {}/masking.key\n{}",
            extra_kafka_settings(),
            store.platform_lines(dir),
            dir.display(),
            registry.map_or(String::new(), |r| format!("schemaRegistry:\n  url: {}\n", r.url())),
        ),
    )
    .unwrap();
    support::Meshd::start(&config, &[&descriptor], &listen, dir.join("meshd.log"))
}

/// `MESHD_BENCH_KAFKA=key=value,...`: librdkafka settings added to meshd's `kafka:` section,
/// to measure a knob (`statistics.interval.ms=0`, `queued.min.messages=1000000`).
fn extra_kafka_settings() -> String {
    setting("MESHD_BENCH_KAFKA", "")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| format!("  {}: \"{}\"\n", k.trim(), v.trim()))
        .collect()
}

/// meshd from offset 0 to all committed: (seconds from first consumption, CPU seconds, peak RSS).
fn meshd_backlog(meshd: &support::Meshd, count: usize) -> (f64, f64, f64) {
    let pid = meshd.child.id();
    let (started, cpu0) =
        support::poll("meshd to start consuming", Duration::from_secs(120), || {
            (meshd.scrape()?.sum("meshd_records_consumed_total") > 0.0)
                .then(|| (Instant::now(), cpu_seconds(pid)))
        });
    support::poll(
        "meshd to commit everything",
        Duration::from_secs(1800),
        || {
            let s = meshd.scrape()?;
            let done =
                s.sum("meshd_records_committed_total") + s.sum("meshd_records_dead_lettered_total");
            (done >= count as f64).then_some(())
        },
    );
    (
        started.elapsed().as_secs_f64(),
        cpu_seconds(pid) - cpu0,
        peak_rss_mib(pid),
    )
}

/// The pipeline a team would write instead (`benches/peer_pipeline.py`: confluent-kafka, json,
/// hashlib, pyiceberg appends of 100,000 rows) on the same topic: its CPU per GB and memory
/// beside meshd's `meshd_cpu` seconds for the same `bytes`.
fn peer(
    bootstrap: &str,
    topic: &str,
    records: usize,
    dir: &Path,
    bytes: u64,
    meshd_cpu: f64,
) -> Option<Value> {
    let python = support::python()?;
    let out = support::run_python(
        &python,
        "../benches/peer_pipeline.py",
        &[
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--count",
            &records.to_string(),
            "--catalog-uri",
            &format!("sqlite:///{}/peer-catalog.db", dir.display()),
            "--warehouse",
            &format!("file://{}/peer-warehouse", dir.display()),
            "--table",
            "peer.payments",
        ],
    );
    let run: Value = serde_json::from_str(out.trim().lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(
        run["rows"], records,
        "the peer appended every record: {run}"
    );
    let cpu = run["cpu_seconds"].as_f64().unwrap_or(0.0);
    let seconds = run["seconds"].as_f64().unwrap_or(0.0);
    Some(json!({
        "seconds": seconds,
        "mb_per_s": mb(bytes) / seconds.max(1e-9),
        "mb_per_s_per_core": mb(bytes) / cpu.max(1e-9),
        "cpu_s_per_gb": cpu / (bytes as f64 / 1e9),
        "peak_rss_mib": run["peak_rss_mib"],
        "peer_cpu_over_meshd_cpu": cpu / meshd_cpu.max(1e-9),
    }))
}

/// Freshness at a steady rate: p50 and p99 of (snapshot commit time − produce time), in s.
async fn freshness(
    dir: &Path,
    broker: &Broker,
    data: Data,
    format: &str,
    rate: u64,
    seconds: u64,
    store: &Store,
) -> Steady {
    let topic = format!("bench-fresh-{format}-{rate}");
    broker.create_topic(&topic).await;
    let dir = dir.join(format!("fresh-{rate}"));
    std::fs::create_dir_all(&dir).unwrap();
    let registry = registry(format, &dir, &topic);
    let meshd = start_meshd(
        &dir,
        &broker.bootstrap(),
        &topic,
        format,
        store,
        registry.as_ref(),
    );
    // Wait for the worker to be assigned before the clock starts.
    support::poll(
        "the freshness worker to be ready",
        Duration::from_secs(120),
        || (meshd.readyz()?.0 == 200).then_some(()),
    );
    let schema = reference::schema();
    let avro = apache_avro::Schema::parse_str(&schema.text).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let per_tick = (rate / 10).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let sending = Instant::now();
    let mut sent = Vec::new();
    let mut n = 0;
    let mut bytes = 0u64;
    let pid = meshd.child.id();
    let cpu0 = cpu_seconds(pid);
    for _ in 0..seconds * 10 {
        tick.tick().await;
        let payloads: Vec<Vec<u8>> = (n..n + per_tick)
            .map(|i| payload(data, format, &avro, i))
            .collect();
        n += per_tick;
        bytes += payloads.iter().map(|p| p.len() as u64).sum::<u64>();
        // The produce time is taken here: not every broker returns a timestamp on delivery.
        let produced_ms = chrono::Utc::now().timestamp_millis();
        let sends = payloads.iter().map(|p| {
            producer.send(
                FutureRecord::<(), [u8]>::to(&topic).payload(p.as_slice()),
                Duration::from_secs(30),
            )
        });
        for d in futures::future::join_all(sends).await {
            let d = d.unwrap();
            sent.push((d.partition, d.offset, produced_ms));
        }
    }
    // What the producer achieved: at high rates it may fall behind the ticks.
    let achieved = sent.len() as f64 / sending.elapsed().as_secs_f64();
    support::poll(
        "the steady stream to be committed",
        Duration::from_secs(300),
        || {
            (meshd.scrape()?.sum("meshd_records_committed_total") >= sent.len() as f64)
                .then_some(())
        },
    );
    // Everything meshd spent while the stream ran: idle polling and per-commit costs included.
    let cpu_s_per_gb = (cpu_seconds(pid) - cpu0) / (bytes as f64 / 1e9);
    // Each record is visible from the first snapshot whose recorded offset passes it.
    let platform =
        meshd_config::PlatformConfig::load(Some(&dir.join("meshd.yaml")), std::iter::empty())
            .unwrap();
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
    let table = catalog
        .load_table(&iceberg::TableIdent::from_strs(["payments", "payment_transactions"]).unwrap())
        .await
        .unwrap();
    let key = meshd_sinks::iceberg::offsets::offsets_key("meshd.payments.payment-transactions");
    let mut snapshots: Vec<(i64, BTreeMap<i32, i64>)> = table
        .metadata()
        .snapshots()
        .filter_map(|s| {
            let text = s.summary().additional_properties.get(&key)?;
            let mut offsets = meshd_sinks::iceberg::offsets::decode(text)?;
            Some((s.timestamp_ms(), offsets.remove(&topic)?))
        })
        .collect();
    snapshots.sort_by_key(|(ts, _)| *ts);
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(p, o, produced)| {
            let (visible, _) = snapshots
                .iter()
                .find(|(_, offsets)| offsets.get(p).is_some_and(|next| next > o))?;
            Some((visible - produced) as f64 / 1000.0)
        })
        .collect();
    assert_eq!(latencies.len(), sent.len(), "a record is in no snapshot");
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Steady {
        rate,
        achieved,
        cpu_s_per_gb,
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// meshd at a steady rate below capacity: freshness, and CPU per GB with the idle and
/// per-commit costs that a saturated drain hides.
struct Steady {
    /// Records per second asked of the producer.
    rate: u64,
    /// Records per second it sent.
    achieved: f64,
    cpu_s_per_gb: f64,
    p50: f64,
    p99: f64,
}

impl Steady {
    fn json(&self) -> Value {
        json!({
            "rate_records_per_s": self.rate,
            "achieved_records_per_s": self.achieved,
            "commit_interval_s": COMMIT_INTERVAL.as_secs_f64(),
            "cpu_s_per_gb": self.cpu_s_per_gb,
            "p50_s": self.p50,
            "p99_s": self.p99,
        })
    }
}

async fn run_config(
    broker_name: &str,
    data: Data,
    format: &str,
    store_name: &str,
    records: usize,
    quick: bool,
) -> Value {
    let dir = support::test_dir();
    let store = Store::start(store_name, dir.path());
    let broker = match broker_name {
        "mock" => Broker::Mock(MockCluster::new(1).unwrap()),
        _ => Broker::Tansu(
            support::Tansu::start_in_memory(dir.path())
                .expect("Tansu is needed for this configuration"),
        ),
    };
    let bootstrap = broker.bootstrap();
    let topic = format!("bench-{format}");
    broker.create_topic(&topic).await;
    let schema = reference::schema();
    let avro = apache_avro::Schema::parse_str(&schema.text).unwrap();
    let payloads: Vec<Vec<u8>> = (0..records as u64)
        .map(|n| payload(data, format, &avro, n))
        .collect();
    let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    produce(&bootstrap, &topic, &payloads).await;

    let (consume, consume_cpu) = consume_limit(&bootstrap, &topic, records);
    let (_, batch_consume_cpu) = batch_consume_limit(&bootstrap, &topic, records).await;
    let consume = consume.as_secs_f64();
    let (pipeline, encode) = pipeline_and_encode(format, &payloads);
    let registry = registry(format, dir.path(), &topic);
    let meshd = start_meshd(
        dir.path(),
        &bootstrap,
        &topic,
        format,
        &store,
        registry.as_ref(),
    );
    let (seconds, cpu, rss) = meshd_backlog(&meshd, records);
    drop(meshd);
    let meshd_mbps = mb(bytes) / seconds;
    let consume_mbps = mb(bytes) / consume;
    let pipeline_mbps = mb(bytes) / pipeline.as_secs_f64();
    let encode_mbps = mb(bytes) / encode.as_secs_f64();
    let peer = (format == "json" && store_name == "local")
        .then(|| peer(&bootstrap, &topic, records, dir.path(), bytes, cpu))
        .flatten();
    // Below capacity: a tenth and half of what meshd just sustained (the rate the producer
    // achieved is reported beside the one asked).
    let mut steady = Vec::new();
    for share in [0.1, 0.5] {
        let rate = ((records as f64 / seconds) * share).max(100.0) as u64;
        let run = freshness(
            dir.path(),
            &broker,
            data,
            format,
            rate,
            if quick { 2 } else { 15 },
            &store,
        )
        .await;
        steady.push(run);
    }
    let half = &steady[1];
    json!({
        "broker": broker_name,
        "data": data.name(),
        "format": format,
        "store": store_name,
        "records": records,
        "input_mb": mb(bytes),
        "record_bytes": bytes as f64 / records as f64,
        "meshd": {
            "seconds": seconds,
            "records_per_s": records as f64 / seconds,
            "mb_per_s": meshd_mbps,
            "cpu_s_per_gb": cpu / (bytes as f64 / 1e9),
            "cores_used": cpu / seconds,
            "mb_per_s_per_core": mb(bytes) / cpu.max(1e-9),
            "peak_rss_mib": rss,
        },
        "peer": peer,
        "consume_limit_mb_per_s": consume_mbps,
        "consume_limit_mb_per_s_per_core": mb(bytes) / consume_cpu.max(1e-9),
        "consume_limit_cpu_us_per_record": consume_cpu * 1e6 / records as f64,
        "batch_consume_limit_mb_per_s_per_core": mb(bytes) / batch_consume_cpu.max(1e-9),
        "batch_consume_limit_cpu_us_per_record": batch_consume_cpu * 1e6 / records as f64,
        "encode_limit_mb_per_s": encode_mbps,
        "pipeline_mb_per_s": pipeline_mbps,
        "ratio_meshd_to_consume_limit": meshd_mbps / consume_mbps,
        "ratio_pipeline_to_encode_limit": pipeline_mbps / encode_mbps,
        // Freshness at half of capacity, and both steady rates.
        "freshness": half.json(),
        "steady": {"10%": steady[0].json(), "50%": steady[1].json()},
    })
}

fn print_table(results: &[Value]) {
    println!(
        "\n{:<6} {:<9} {:<14} {:<5} {:>9} {:>8} {:>9} {:>10} {:>8} {:>9} {:>9} {:>10} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>9} {:>9}",
        "broker",
        "data",
        "fmt",
        "store",
        "records",
        "meshd",
        "MB/s/core",
        "CPU s/GB",
        "RSS MiB",
        "consume",
        "c/core",
        "batch/core",
        "pipeline",
        "encode",
        "e2e/c",
        "pipe/e",
        "fr p50",
        "fr p99",
        "peer s/GB",
        "peer/m",
        "s/GB@10%",
        "s/GB@50%"
    );
    for r in results {
        let m = &r["meshd"];
        println!(
            "{:<6} {:<9} {:<14} {:<5} {:>9} {:>8.1} {:>9.1} {:>10.2} {:>8.1} {:>9.1} {:>9.1} {:>10.1} {:>9.1} {:>9.1} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>9.1} {:>7.1} {:>9.1} {:>9.1}",
            r["broker"].as_str().unwrap_or(""),
            r["data"].as_str().unwrap_or(""),
            r["format"].as_str().unwrap_or(""),
            r["store"].as_str().unwrap_or(""),
            r["records"],
            m["mb_per_s"].as_f64().unwrap_or(0.0),
            m["mb_per_s_per_core"].as_f64().unwrap_or(0.0),
            m["cpu_s_per_gb"].as_f64().unwrap_or(0.0),
            m["peak_rss_mib"].as_f64().unwrap_or(0.0),
            r["consume_limit_mb_per_s"].as_f64().unwrap_or(0.0),
            r["consume_limit_mb_per_s_per_core"].as_f64().unwrap_or(0.0),
            r["batch_consume_limit_mb_per_s_per_core"]
                .as_f64()
                .unwrap_or(0.0),
            r["pipeline_mb_per_s"].as_f64().unwrap_or(0.0),
            r["encode_limit_mb_per_s"].as_f64().unwrap_or(0.0),
            r["ratio_meshd_to_consume_limit"].as_f64().unwrap_or(0.0),
            r["ratio_pipeline_to_encode_limit"].as_f64().unwrap_or(0.0),
            r["freshness"]["p50_s"].as_f64().unwrap_or(0.0),
            r["freshness"]["p99_s"].as_f64().unwrap_or(0.0),
            r["peer"]["cpu_s_per_gb"].as_f64().unwrap_or(0.0),
            r["peer"]["peer_cpu_over_meshd_cpu"].as_f64().unwrap_or(0.0),
            r["steady"]["10%"]["cpu_s_per_gb"].as_f64().unwrap_or(0.0),
            r["steady"]["50%"]["cpu_s_per_gb"].as_f64().unwrap_or(0.0),
        );
    }
    println!(
        "(MB/s of input; meshd = offset 0 to all committed; commit interval {COMMIT_INTERVAL:?}; fr = freshness in s; peer = benches/peer_pipeline.py on the same topic (json, local), peer/m = its CPU over meshd's)"
    );
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test` this is a smoke run on a tiny input.
    let quick = !std::env::args().any(|a| a == "--bench");
    let records: usize = if quick {
        2_000
    } else {
        setting("MESHD_BENCH_RECORDS", "1000000").parse().unwrap()
    };
    let brokers = setting("MESHD_BENCH_BROKERS", if quick { "mock" } else { "tansu" });
    let formats = setting("MESHD_BENCH_FORMATS", "json,avro,avro-confluent");
    // The embedded default and the shared platform (PostgreSQL + S3 on loopback), same run.
    let stores = setting("MESHD_BENCH_STORES", "local,s3");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Both data sets in a full run; the smoke run takes the realistic one only.
    let data = if quick && std::env::var("MESHD_BENCH_DATA").is_err() {
        vec![Data::Realistic]
    } else {
        Data::from_env()
    };
    let mut results = Vec::new();
    for broker in brokers.split(',') {
        for set in &data {
            for format in formats.split(',') {
                for store in stores.split(',') {
                    eprintln!(
                        "end_to_end: {broker} {} {format} {store}, {records} records",
                        set.name()
                    );
                    let result =
                        runtime.block_on(run_config(broker, *set, format, store, records, quick));
                    eprintln!("{result}");
                    results.push(result);
                }
            }
        }
    }
    print_table(&results);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/meshd-bench");
    std::fs::create_dir_all(&out).unwrap();
    let doc = json!({
        "machine": { "cores": std::thread::available_parallelism().map_or(0, |n| n.get()) },
        "quick": quick,
        "results": results,
    });
    let file = out.join(if quick {
        "end_to_end-smoke.json"
    } else {
        "end_to_end.json"
    });
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    println!("wrote {}", file.display());
}
