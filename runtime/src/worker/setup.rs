//! Building a worker from its product: refusing what it cannot run, opening (or creating) each
//! output port's table, the decoders of each input port, and the consumer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshd_config::{DataProduct, InputFormat, Masking, PlatformConfig, PortSchema, startup_checks};
use meshd_sinks::SinkError;
use meshd_sinks::dead_letter::DeadLetterOutput;
use meshd_sinks::iceberg::{OutputTable, RetryPolicy};
use tokio::sync::watch;

use super::backoff::Backoff;
use super::input::Input;
use super::metadata;
use super::output::{CommitPolicy, OutputPort};
use super::pipeline::{self, Decoding, InputDecoder, PortShape};
use super::status::WorkerStatus;
use super::{Worker, WorkerContext};
use crate::RuntimeError;
use crate::decode::confluent::ConfluentDecoders;
use crate::decode::{AvroDecoderFactory, DecoderFactory, JsonDecoderFactory};
use crate::kafka;
use crate::mask::Masker;
use crate::provision;
use crate::registry::Registry;

impl Worker {
    /// Checks the product, opens its tables and subscribes its consumer.
    pub(super) async fn start(ctx: &WorkerContext) -> Result<Self, RuntimeError> {
        let product = &ctx.product;
        let name = product.name().to_string();
        check_ports(product, &ctx.platform)?;
        let mut ports = Vec::new();
        for index in 0..product.spec.spec.output_ports.len() {
            ports.push(open_port(ctx, index).await?);
        }
        let schemas: Vec<&PortSchema> = product.schemas.iter().collect();
        let mut decoders = HashMap::new();
        let mut topics = Vec::new();
        let mut registry = None;
        for input in &product.spec.spec.input_ports {
            let fixed = |factory: Box<dyn DecoderFactory>| Decoding::Fixed(factory);
            let avro_error = |source| RuntimeError::Batch {
                product: name.clone(),
                source,
            };
            let decoding = match input.format {
                InputFormat::Json => fixed(Box::new(JsonDecoderFactory::new(
                    pipeline::json_input_schema(&schemas),
                ))),
                // An Avro datum can only be read with the schema it was written with: the
                // first output port's. Other ports take their columns from it by name.
                InputFormat::Avro => fixed(Box::new(
                    AvroDecoderFactory::new(&product.schemas[0].text).map_err(avro_error)?,
                )),
                // Written with a registered schema, read as the first output port's.
                InputFormat::AvroConfluent => {
                    let Some(config) = &ctx.platform.schema_registry else {
                        return Err(RuntimeError::Unsupported {
                            product: name.clone(),
                            message: format!(
                                "input port `{}` reads avro-confluent: set schemaRegistry.url in the platform config (or MESHD_SCHEMA_REGISTRY_URL)",
                                input.source
                            ),
                        });
                    };
                    if registry.is_none() {
                        registry = Some(Arc::new(Registry::new(config)?));
                    }
                    Decoding::Confluent {
                        decoders: ConfluentDecoders::new(
                            &product.schemas[0].text,
                            config.cache_size,
                        ),
                        subject: input.subject(),
                    }
                }
            };
            topics.push(input.source.clone());
            decoders.insert(
                input.source.clone(),
                InputDecoder {
                    decoding,
                    dead_letter_topic: input.dead_letter_topic(),
                },
            );
        }
        let dlq_topics: Vec<(String, i32)> = decoders
            .values()
            .map(|d| (d.dead_letter_topic.clone(), 1))
            .collect();
        kafka::ensure_topics(&ctx.platform, &dlq_topics).await?;
        let dead_letters = DeadLetterOutput::new(kafka::client_config(&ctx.platform), &name)?;
        let group = product.consumer_group();
        let consumer = kafka::consumer(&ctx.platform, &group, &topics)?;
        let labels: Vec<&str> = ports
            .iter()
            .map(|p: &OutputPort| p.label.as_str())
            .collect();
        tracing::info!(product = %name, tables = ?labels, group = %group, topics = ?topics, "Worker started.");
        let (status, _) = watch::channel(WorkerStatus::default());
        Ok(Self {
            product: name,
            ports,
            decoders,
            dead_letters,
            input: Input::new(consumer.consumer, metadata::captures_headers(product)),
            rebalances: consumer.rebalances,
            stats: consumer.stats,
            status,
            registry,
            resync: false,
            rebase: Vec::new(),
            retry_at: Instant::now(),
            // The first retry comes soon (most outages are a restart); a long one is asked
            // every 5 s, which bounds how late the worker notices the recovery.
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(5)),
            group_committed_at: Instant::now(),
        })
    }
}

/// Refuses what `meshd validate` would report for this product and platform (the same checks,
/// `meshd_config::startup_checks`), with every problem and its fix in the message.
fn check_ports(product: &DataProduct, platform: &PlatformConfig) -> Result<(), RuntimeError> {
    let problems = startup_checks(product, Some(platform));
    if problems.is_empty() {
        return Ok(());
    }
    Err(RuntimeError::Unsupported {
        product: product.name().to_string(),
        message: problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// Opens one output port: its masking, its table (created or evolved), its commit policy.
async fn open_port(ctx: &WorkerContext, index: usize) -> Result<OutputPort, RuntimeError> {
    let product = &ctx.product;
    let name = product.name();
    let port = &product.spec.spec.output_ports[index];
    let schema = &product.schemas[index];
    let masker = Masker::new(schema, ctx.masking_key.clone());
    if !masker.has_key() && masker.methods().any(|m| m == Masking::Sha256) {
        tracing::warn!(product = %name, "No masking key configured: SHA256 columns are hashed without a key and can be reversed by guessing; set masking.keyFile or masking.keyEnv.");
    }
    let spec = provision::table_spec(&ctx.platform, product, index)?;
    if ctx.platform.uses_object_storage() {
        // A missing bucket or refused credentials fail this product now, with the fix in
        // the message, instead of at its first commit.
        meshd_sinks::iceberg::probe_location(&ctx.platform, &spec.location).await?;
    } else if port.location.contains("://") {
        tracing::info!(product = %name, location = %port.location, mapped_to = %spec.location, "No object storage configured: the s3:// location is placed under the local warehouse.");
    }
    let evolved = provision::evolve_table(ctx.catalog.as_ref(), &ctx.committer, &spec).await?;
    let table_name = format!("{}.{}", spec.namespace, spec.name);
    for change in evolved.columns {
        tracing::info!(product = %name, table = %table_name, "Schema evolved: {change}.");
    }
    for change in evolved.properties {
        tracing::info!(product = %name, table = %table_name, "Table metadata updated: {change}.");
    }
    // Few attempts inside one commit: the run loop retries a failed commit every second for
    // as long as it takes, and in between reports the failure on `/readyz`.
    let table = OutputTable::open(Arc::clone(&ctx.catalog), &spec, product.consumer_group())
        .await?
        .with_retry(RetryPolicy {
            attempts: 2,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        });
    let table_schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(table.table().metadata().current_schema()).map_err(
            |e| {
                RuntimeError::Sink(SinkError::Table {
                    table: table.name(),
                    action: "reading the table schema",
                    source: e,
                })
            },
        )?,
    );
    let policy = CommitPolicy {
        interval: port.commit.interval.duration(),
        max_records: port.commit.max_records,
        target_file_size: port.commit.target_file_size.bytes() as usize,
        codec: port.commit.compression,
        plain_columns: hashed_columns(schema),
    };
    metadata::check(&port.kafka, &table_schema).map_err(|source| RuntimeError::Batch {
        product: name.to_string(),
        source,
    })?;
    let output = OutputPort::new(
        table,
        PortShape::new(schema, masker, table_schema),
        policy,
        name.to_string(),
        port.sla.freshness.duration(),
    )
    .with_kafka_metadata(port.kafka.clone());
    let labels = [name, output.label.as_str()];
    ctx.metrics
        .freshness_slo
        .with_label_values(&labels)
        .set(port.sla.freshness.duration().as_secs_f64());
    ctx.metrics
        .availability_target
        .with_label_values(&labels)
        .set(port.sla.availability.value());
    Ok(output)
}

/// The columns masked to SHA-256 or HMAC-SHA256 hex digests, reached through structs only (a
/// dictionary inside lists and maps is left to Parquet): their values rarely repeat, so they are
/// written without a dictionary.
fn hashed_columns(schema: &meshd_config::PortSchema) -> Vec<String> {
    schema
        .all_columns()
        .into_iter()
        .filter(|c| {
            matches!(
                c.masking,
                Some(meshd_config::Masking::Sha256 | meshd_config::Masking::HmacSha256)
            ) && !c.path.contains(['[', '{'])
        })
        .map(|c| c.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn only_hash_masked_columns_go_without_a_dictionary() {
        let text = include_str!("../../../examples/payments/schema/transactions.avsc");
        let schema = meshd_config::PortSchema::parse(text, Path::new("transactions.avsc"))
            .expect("reference schema");
        // email is SHA256; card_last4 is REDACT (one value), so it keeps its dictionary.
        assert_eq!(hashed_columns(&schema), ["email"]);
    }
}
