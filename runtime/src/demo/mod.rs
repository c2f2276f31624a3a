//! `meshd demo`: the whole path on one machine with no services. librdkafka's mock cluster
//! runs in-process; payment events (a few malformed) are produced while a real worker
//! decodes, masks and commits them to a real Iceberg table under `.meshd/`. With
//! `--format avro-confluent` the events are framed as Confluent's serializers frame them and
//! the demo serves the schema registry in-process.

mod confluent;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use iceberg::TableIdent;
use meshd_config::{
    DataProduct, Descriptor, InputFormat, Masking, PlatformConfig, SchemaRegistryConfig, Sensitive,
};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::RuntimeError;
use crate::mask::mask_one;
use crate::process::{Process, Services};
use crate::worker::WorkerOptions;

const PRODUCT: &str = include_str!("../../../examples/payments/product.yaml");
const SCHEMA: &str = include_str!("../../../examples/payments/schema/transactions.avsc");
const TOPIC: &str = "raw-payment-events";

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long the worker runs.
    pub duration: Duration,
    /// Records produced per second.
    pub rate: u64,
    /// Where the catalog and warehouse go.
    pub state_dir: PathBuf,
    /// Metrics endpoint.
    pub listen: SocketAddr,
    /// How events are encoded on the topic.
    pub format: InputFormat,
}

/// One sample event kept to show masking.
struct Sample {
    id: String,
    email: String,
    card: String,
}

/// A realistic payment event, or every `bad_every`th a malformed one.
pub fn payment_event(n: u64, bad_every: u64) -> (String, Vec<u8>) {
    let id = format!("tx-{n:010}");
    if bad_every > 0 && n % bad_every == bad_every - 1 {
        let bad = match (n / bad_every) % 5 {
            0 => "{\"transaction_id\": \"broken".to_string(),
            1 => format!("{{\"transaction_id\":\"{id}\",\"account_id\":1}}"),
            2 => event_json(n, &id)
                .replace("SETTLED", "LOST")
                .replace("AUTHORIZED", "LOST")
                .replace("REFUNDED", "LOST"),
            3 => event_json(n, &id).replace(
                &format!("\"account_id\":{}", 100_000 + n % 5000),
                "\"account_id\":\"many\"",
            ),
            _ => "not json at all".to_string(),
        };
        return (id, bad.into_bytes());
    }
    (id.clone(), event_json(n, &id).into_bytes())
}

fn event_json(n: u64, id: &str) -> String {
    const REGIONS: [&str; 4] = ["JP", "JP", "US", "DE"];
    const STATUS: [&str; 3] = ["AUTHORIZED", "SETTLED", "REFUNDED"];
    const CURRENCY: [&str; 4] = ["JPY", "JPY", "USD", "EUR"];
    let r = (n % 4) as usize;
    let card = if n.is_multiple_of(10) {
        "null".to_string()
    } else {
        format!("\"{:04}\"", (n * 7919) % 10_000)
    };
    let millis = 1_764_000_000_000u64 + n * 37;
    format!(
        "{{\"transaction_id\":\"{id}\",\"account_id\":{},\"email\":\"user{}@example.com\",\"card_last4\":{card},\"amount\":\"{}.{:02}\",\"currency\":\"{}\",\"region\":\"{}\",\"status\":\"{}\",\"event_time\":{millis}}}",
        100_000 + n % 5000,
        n % 5000,
        n % 100_000,
        n % 100,
        CURRENCY[r],
        REGIONS[r],
        STATUS[(n % 3) as usize],
    )
}

/// Runs the demo and writes progress and the summary to `out`.
pub async fn run(options: DemoOptions, out: &mut (dyn Write + Send)) -> Result<(), RuntimeError> {
    let kafka_err = |what: &str| {
        let what = what.to_string();
        move |source| RuntimeError::Kafka { what, source }
    };
    let cluster = MockCluster::new(1).map_err(kafka_err("starting the mock cluster"))?;
    cluster
        .create_topic(TOPIC, 3, 1)
        .map_err(kafka_err("creating the input topic"))?;
    cluster
        .create_topic(&format!("{TOPIC}.dlq"), 1, 1)
        .map_err(kafka_err("creating the dead-letter topic"))?;
    let bootstrap = cluster.bootstrap_servers();

    let dir = options.state_dir.join("demo");
    let write = |path: &Path, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
            .and_then(|_| std::fs::write(path, text))
    };
    let descriptor = dir.join("product.yaml");
    let product = match options.format {
        InputFormat::Json => PRODUCT.to_string(),
        format => {
            let mut typed: Descriptor = serde_yaml_ng::from_str(PRODUCT).map_err(|e| {
                RuntimeError::MaskingKey(format!("the demo's product does not parse: {e}"))
            })?;
            typed.spec.input_ports[0].format = format;
            serde_yaml_ng::to_string(&typed).map_err(|e| {
                RuntimeError::MaskingKey(format!("the demo's product does not serialize: {e}"))
            })?
        }
    };
    write(&descriptor, &product)
        .and_then(|_| write(&dir.join("schema/transactions.avsc"), SCHEMA))
        .map_err(|e| {
            RuntimeError::MaskingKey(format!(
                "cannot write the demo product under {}: {e}",
                dir.display()
            ))
        })?;
    let key = b"demo-masking-key".to_vec();
    let mut platform = PlatformConfig::default();
    platform.kafka.insert(
        "bootstrap.servers".into(),
        Sensitive::new(bootstrap.clone()),
    );
    platform.catalog.uri = format!(
        "sqlite://{}",
        options.state_dir.join("catalog.db").display()
    );
    platform.warehouse = options.state_dir.join("warehouse").display().to_string();
    platform.metrics.listen = options.listen;
    let key_file = options.state_dir.join("demo/masking.key");
    std::fs::write(&key_file, &key).map_err(|e| {
        RuntimeError::MaskingKey(format!("cannot write {}: {e}", key_file.display()))
    })?;
    platform.masking.key_file = Some(key_file);
    let registry_stop = tokio_util::sync::CancellationToken::new();
    let _stop_registry = registry_stop.clone().drop_guard();
    let avro_schema = if options.format == InputFormat::AvroConfluent {
        let url = confluent::serve_registry(SCHEMA, registry_stop).await?;
        platform.schema_registry = Some(SchemaRegistryConfig::new(url));
        Some(apache_avro::Schema::parse_str(SCHEMA).map_err(|e| {
            RuntimeError::MaskingKey(format!("the demo's schema does not parse: {e}"))
        })?)
    } else {
        None
    };
    let platform = Arc::new(platform);

    let Services {
        metrics,
        health,
        shutdown,
        bound,
    } = Services::start(platform.metrics.listen).await?;

    // The producer: `rate` events a second, 1 in 97 malformed.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .create()
        .map_err(kafka_err("creating the demo producer"))?;
    let produce_for = options
        .duration
        .saturating_sub(Duration::from_secs(3))
        .max(Duration::from_secs(1));
    let rate = options.rate.max(1);
    let producing = tokio::spawn(async move {
        let start = Instant::now();
        let mut n = 0u64;
        let mut samples = Vec::new();
        while start.elapsed() < produce_for {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            let mut sends = Vec::new();
            while n < due {
                let (id, mut payload) = payment_event(n, 97);
                if let Some(schema) = &avro_schema {
                    payload = confluent::frame(n, &payload, schema, 97);
                }
                if samples.len() < 3 && n % 97 != 96 && !n.is_multiple_of(10) {
                    samples.push(Sample {
                        id: id.clone(),
                        email: format!("user{}@example.com", n % 5000),
                        card: format!("{:04}", (n * 7919) % 10_000),
                    });
                }
                let record = FutureRecord::to(TOPIC).key(id.as_bytes()).payload(&payload);
                match producer.send_result(record) {
                    Ok(delivery) => sends.push(delivery),
                    // Queue full: wait for what is in flight, then try this event again.
                    Err(_) => break,
                }
                n += 1;
            }
            for s in sends {
                let _ = s.await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (n, samples)
    });

    let process = Process {
        platform: Arc::clone(&platform),
        descriptors: vec![descriptor.clone()],
        options: WorkerOptions::default(),
        metrics: metrics.clone(),
        health,
    };
    let worker_token = shutdown.clone();
    let worker = tokio::spawn(async move { process.run(worker_token).await });

    let _ = writeln!(
        out,
        "meshd demo: mock Kafka at {bootstrap}, metrics at http://{bound}/metrics"
    );
    let started = Instant::now();
    let mut last_consumed = 0.0;
    while started.elapsed() < options.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let text = metrics.render();
        let consumed = sum_metric(&text, "meshd_records_consumed_total");
        let _ = write!(
            out,
            "\r  {:>3}s  {:>7.0} records/s  {:>8.0} rows committed  {:>5.0} dead letters  freshness {:>5.1}s   ",
            started.elapsed().as_secs(),
            consumed - last_consumed,
            sum_metric(&text, "meshd_records_committed_total"),
            sum_metric(&text, "meshd_records_dead_lettered_total"),
            sum_metric(&text, "meshd_freshness_seconds"),
        );
        let _ = out.flush();
        last_consumed = consumed;
    }
    let _ = writeln!(out);
    let (produced, samples) = producing.await.unwrap_or_default();
    shutdown.cancel();
    let failed = worker.await??;
    let text = metrics.render();
    summary(
        &platform,
        &descriptor,
        produced,
        &samples,
        &key,
        failed,
        &text,
        out,
    )
    .await?;
    drop(cluster);
    Ok(())
}

/// Sums every sample of a metric in Prometheus text.
pub fn sum_metric(text: &str, name: &str) -> f64 {
    crate::metrics::sample_values(text, name).fold(0.0, |total, value| total + value)
}

#[allow(clippy::too_many_arguments)]
async fn summary(
    platform: &PlatformConfig,
    descriptor: &Path,
    produced: u64,
    samples: &[Sample],
    key: &[u8],
    failed: usize,
    metrics: &str,
    out: &mut (dyn Write + Send),
) -> Result<(), RuntimeError> {
    let product = DataProduct::load(descriptor)?;
    let (ns, name) = product.table_ident(0);
    let catalog = meshd_sinks::iceberg::open_catalog(platform).await?;
    let ident = TableIdent::from_strs([ns.as_str(), name.as_str()])
        .map_err(|e| table_err(&ns, &name, e))?;
    let table = catalog
        .load_table(&ident)
        .await
        .map_err(|e| table_err(&ns, &name, e))?;
    let meta = table.metadata();
    let rows: u64 = meta
        .current_snapshot()
        .and_then(|s| {
            s.summary()
                .additional_properties
                .get("total-records")
                .cloned()
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let wanted: BTreeMap<&str, &Sample> = samples.iter().map(|s| (s.id.as_str(), s)).collect();
    let found = match masked_samples(&table, &wanted).await {
        Ok(found) => found,
        Err(e) => {
            let _ = writeln!(out, "  (could not read back masked samples: {e})");
            Vec::new()
        }
    };
    let _ = writeln!(out, "\nSummary");
    let _ = writeln!(out, "  table        {ns}.{name}");
    let _ = writeln!(out, "  location     {}", meta.location());
    let _ = writeln!(out, "  snapshots    {}", meta.snapshots().len());
    let _ = writeln!(out, "  produced     {produced} records");
    let _ = writeln!(out, "  rows         {rows}");
    let _ = writeln!(
        out,
        "  dead letters {:.0} (topic {TOPIC}.dlq)",
        sum_metric(metrics, "meshd_records_dead_lettered_total")
    );
    if failed > 0 {
        let _ = writeln!(
            out,
            "  FAILED       {failed} product(s) failed; see the log above"
        );
    }
    let _ = writeln!(
        out,
        "  masked values (as stored, next to what they replaced):"
    );
    for (s, email, card) in &found {
        let expected = mask_one(&s.email, Masking::Sha256, Some(key)).unwrap_or_default();
        let ok = if *email == expected { "ok" } else { "MISMATCH" };
        let _ = writeln!(
            out,
            "    {:<24} email SHA256 {}…  ({ok})",
            s.email,
            &email[..16.min(email.len())]
        );
        let _ = writeln!(
            out,
            "    {:<24} card_last4 REDACT {}",
            s.card,
            card.as_deref().unwrap_or("null")
        );
    }
    let catalog_file = platform.catalog.uri.trim_start_matches("sqlite://");
    let _ = writeln!(out, "  read it with pyiceberg:");
    let _ = writeln!(out, "    from pyiceberg.catalog.sql import SqlCatalog");
    let _ = writeln!(
        out,
        "    cat = SqlCatalog(\"{}\", uri=\"sqlite:///{}\", warehouse=\"file://{}\")",
        platform.catalog.name,
        std::path::absolute(catalog_file)
            .unwrap_or_default()
            .display(),
        std::path::absolute(&platform.warehouse)
            .unwrap_or_default()
            .display(),
    );
    let _ = writeln!(
        out,
        "    print(cat.load_table(\"{ns}.{name}\").scan().to_arrow().num_rows)"
    );
    Ok(())
}

/// Reads back the stored email and card of the sampled events, to show masking at work.
async fn masked_samples<'a>(
    table: &iceberg::table::Table,
    wanted: &BTreeMap<&str, &'a Sample>,
) -> Result<Vec<(&'a Sample, String, Option<String>)>, iceberg::Error> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let stream = table
        .scan()
        .select(["transaction_id", "email", "card_last4"])
        .build()?
        .to_arrow()
        .await?;
    let batches: Vec<_> = stream.try_collect().await?;
    let mut found = Vec::new();
    for batch in batches {
        let ids = batch.column(0).as_string::<i32>();
        let emails = batch.column(1).as_string::<i32>();
        let cards = batch.column(2).as_string::<i32>();
        for i in 0..batch.num_rows() {
            if let Some(s) = wanted.get(ids.value(i)) {
                found.push((
                    *s,
                    emails.value(i).to_string(),
                    cards.is_valid(i).then(|| cards.value(i).to_string()),
                ));
            }
        }
    }
    Ok(found)
}

fn table_err(ns: &str, name: &str, source: iceberg::Error) -> RuntimeError {
    RuntimeError::Sink(meshd_sinks::SinkError::Table {
        table: format!("{ns}.{name}"),
        action: "reading the demo table",
        source,
    })
}
