//! One worker per data product: port → decode → validate → mask → batch → commit → metrics.
//!
//! The worker consumes its input topics in chunks, turns each chunk into Arrow batches in the
//! table's schema, appends them to open Parquet files, and commits those files as one Iceberg
//! snapshot that records the next Kafka offset of every partition it covers. Records that
//! cannot become rows go to the dead-letter topic first; their offsets count only once the
//! broker acknowledged them. If a commit keeps failing, the worker stops consuming (so memory
//! stays bounded) and retries the same commit id until it lands; freshness grows meanwhile.

mod chunk;
mod freshness;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use futures::{FutureExt, StreamExt};
use iceberg::Catalog;
use iceberg::spec::DataFile;
use meshd_config::{DataProduct, InputFormat, PlatformConfig, PortSchema, Sensitive};
use meshd_sinks::SinkError;
use meshd_sinks::dead_letter::{DeadLetter, DeadLetterOutput};
use meshd_sinks::iceberg::{CommitOutcome, DataFiles, Offsets, OutputTable, RetryPolicy};
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

pub use chunk::Chunk;
pub use freshness::FreshnessState;

use crate::RuntimeError;
use crate::decode::{self, AvroDecoderFactory, DecoderFactory, JsonDecoderFactory, wire};
use crate::health::Health;
use crate::kafka::{self, Assignment, InputContext};
use crate::mask::Masker;
use crate::metrics::Metrics;
use crate::{provision, validate};

/// Tuning that is not part of the descriptor.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Records per processing chunk.
    pub max_chunk_records: usize,
    /// Bytes per processing chunk.
    pub max_chunk_bytes: usize,
    /// Larger records are dead-lettered as `too-large`.
    pub max_record_bytes: usize,
    /// How long a graceful stop may take to commit what is buffered.
    pub drain_deadline: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            max_chunk_records: 8192,
            max_chunk_bytes: 8 << 20,
            max_record_bytes: 1 << 20,
            drain_deadline: Duration::from_secs(30),
        }
    }
}

/// Everything a worker needs, built by the process.
pub struct WorkerContext {
    /// The product to run.
    pub product: DataProduct,
    /// Platform settings.
    pub platform: Arc<PlatformConfig>,
    /// The shared catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The masking key, if configured.
    pub masking_key: Option<Sensitive<Vec<u8>>>,
    /// Process metrics.
    pub metrics: Metrics,
    /// Process health.
    pub health: Health,
    /// Tuning.
    pub options: WorkerOptions,
}

/// How one input port is decoded.
struct PortDecoder {
    factory: Box<dyn DecoderFactory>,
    dead_letter_topic: String,
}

/// One partition's offsets within a chunk.
struct PartitionSpan {
    topic: u16,
    partition: i32,
    first: i64,
    next: i64,
}

/// Offsets a partition skipped (or repeated) inside a chunk: `got` came where `expected` should.
struct Gap {
    topic: u16,
    partition: i32,
    expected: i64,
    got: i64,
}

/// Data consumed but not yet visible in the table.
struct Pending {
    files: Option<DataFiles>,
    next: Offsets,
    rows: u64,
    since: Option<Instant>,
    generation: u64,
    /// Files closed for a commit that has not landed yet, with its commit id.
    closed: Option<(Vec<DataFile>, String)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.next.is_empty() && self.closed.is_none()
    }
}

/// Runs one product until `shutdown`, then commits what is buffered.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    let span = tracing::info_span!("worker", product = %ctx.product.name());
    tracing::Instrument::instrument(run_worker(ctx, shutdown), span).await
}

async fn run_worker(ctx: WorkerContext, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    let name = ctx.product.name().to_string();
    let result = Worker::start(&ctx).await;
    let mut worker = match result {
        Ok(w) => w,
        Err(e) => {
            ctx.health.failed(&name, &e.to_string());
            ctx.metrics.worker_up.with_label_values(&[&name]).set(0);
            return Err(e);
        }
    };
    ctx.metrics.worker_up.with_label_values(&[&name]).set(1);
    let outcome = worker.run(&ctx, shutdown).await;
    ctx.metrics.worker_up.with_label_values(&[&name]).set(0);
    match &outcome {
        Ok(()) => ctx.health.stopped(&name),
        Err(e) => ctx.health.failed(&name, &e.to_string()),
    }
    outcome
}

struct Worker {
    product: String,
    port_label: String,
    table: OutputTable,
    table_schema: SchemaRef,
    columns: Vec<meshd_config::Column>,
    decoders: HashMap<String, PortDecoder>,
    masker: Masker,
    dead_letters: DeadLetterOutput,
    consumer: StreamConsumer<InputContext>,
    assignment: Arc<Assignment>,
    freshness: Arc<FreshnessState>,
    pending: Pending,
    interval: Duration,
    max_records: Option<u64>,
    target_file_size: usize,
    file_prefix: String,
    slo: Duration,
    /// Uncommitted data was dropped while the consumer kept its position: consumption waits
    /// until every assigned partition is sought back to the table's offsets.
    resync: bool,
}

impl Worker {
    async fn start(ctx: &WorkerContext) -> Result<Self, RuntimeError> {
        let product = &ctx.product;
        let name = product.name().to_string();
        let unsupported = |message: String| RuntimeError::Unsupported {
            product: name.clone(),
            message,
        };
        if product.spec.spec.output_ports.len() != 1 {
            return Err(unsupported(
                "a product with more than one output port is not supported yet; split it into one product per table".into(),
            ));
        }
        let port = &product.spec.spec.output_ports[0];
        let schema: &PortSchema = &product.schemas[0];
        if let Some(nested) = schema
            .all_columns()
            .into_iter()
            .find(|c| c.path.contains('.') && c.masking.is_some())
        {
            return Err(unsupported(format!(
                "masking on nested field `{}` is not supported yet; mask a top-level column",
                nested.path
            )));
        }
        let masker = Masker::new(schema, ctx.masking_key.clone());
        if !masker.has_key() {
            if masker
                .methods()
                .any(|m| m == meshd_config::Masking::HmacSha256)
            {
                return Err(unsupported(
                    "HMAC-SHA256 masking needs a key: set masking.keyFile or masking.keyEnv".into(),
                ));
            }
            if masker.methods().any(|m| m == meshd_config::Masking::Sha256) {
                tracing::warn!(product = %name, "No masking key configured: SHA256 columns are hashed without a key and can be reversed by guessing; set masking.keyFile or masking.keyEnv.");
            }
        }
        let spec = provision::table_spec(&ctx.platform, product, 0)?;
        if ctx.platform.uses_object_storage() {
            // A missing bucket or refused credentials fail this product now, with the fix in
            // the message, instead of at its first commit.
            meshd_sinks::iceberg::probe_location(&ctx.platform, &spec.location).await?;
        } else if port.location.contains("://") {
            tracing::info!(product = %name, location = %port.location, mapped_to = %spec.location, "No object storage configured: the s3:// location is placed under the local warehouse.");
        }
        for change in provision::evolve_schema(ctx.catalog.as_ref(), &spec).await? {
            tracing::info!(product = %name, table = %format!("{}.{}", spec.namespace, spec.name), "Schema evolved: {change}.");
        }
        let group = product.consumer_group();
        // Few attempts inside one commit: the run loop retries a failed commit every second for
        // as long as it takes, and in between reports the failure on `/readyz`.
        let table = OutputTable::open(Arc::clone(&ctx.catalog), &spec, group.clone())
            .await?
            .with_retry(RetryPolicy {
                attempts: 2,
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
            });
        let table_schema = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(table.table().metadata().current_schema())
                .map_err(|e| {
                    RuntimeError::Sink(SinkError::Table {
                        table: table.name(),
                        action: "reading the table schema",
                        source: e,
                    })
                })?,
        );
        let mut decoders = HashMap::new();
        let mut topics = Vec::new();
        for input in &product.spec.spec.input_ports {
            let factory: Box<dyn DecoderFactory> = match input.format {
                InputFormat::Json => {
                    Box::new(JsonDecoderFactory::new(wire::json_wire_schema(schema)))
                }
                InputFormat::Avro => {
                    Box::new(AvroDecoderFactory::new(&schema.text).map_err(|source| {
                        RuntimeError::Batch {
                            product: name.clone(),
                            source,
                        }
                    })?)
                }
            };
            topics.push(input.source.clone());
            decoders.insert(
                input.source.clone(),
                PortDecoder {
                    factory,
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
        let (consumer, assignment) = kafka::consumer(
            &ctx.platform,
            &group,
            &topics,
            Arc::clone(&ctx.catalog),
            table.table().identifier().clone(),
        )?;
        let port_label = table.name();
        ctx.metrics
            .freshness_slo
            .with_label_values(&[&name, &port_label])
            .set(port.sla.freshness.duration().as_secs_f64());
        ctx.metrics
            .availability_target
            .with_label_values(&[&name, &port_label])
            .set(port.sla.availability.value());
        tracing::info!(product = %name, table = %port_label, group = %group, topics = ?topics, "Worker started.");
        Ok(Self {
            product: name.clone(),
            port_label,
            table,
            table_schema,
            columns: schema.fields.clone(),
            decoders,
            masker,
            dead_letters,
            consumer,
            assignment,
            freshness: Arc::new(FreshnessState::default()),
            pending: Pending {
                files: None,
                next: Offsets::new(),
                rows: 0,
                since: None,
                generation: 0,
                closed: None,
            },
            interval: port.commit.interval.duration(),
            max_records: port.commit.max_records,
            target_file_size: port.commit.target_file_size.bytes() as usize,
            file_prefix: name.clone(),
            slo: port.sla.freshness.duration(),
            resync: false,
        })
    }

    async fn run(
        &mut self,
        ctx: &WorkerContext,
        shutdown: CancellationToken,
    ) -> Result<(), RuntimeError> {
        let sla = self.spawn_sla_ticker(ctx, shutdown.clone());
        ctx.health
            .running(&self.product, Arc::clone(&self.assignment));
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry_at = Instant::now();
        let result: Result<(), RuntimeError> = loop {
            let stuck = self.pending.closed.is_some() || self.resync || Instant::now() < retry_at;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ok(()),
                first = self.consumer.recv(), if !stuck => {
                    match first {
                        Ok(message) => {
                            let mut chunk = Chunk::default();
                            let mut generation = self.assignment.generation.load(Ordering::SeqCst);
                            chunk.push(&message);
                            drop(message);
                            self.fill(&mut chunk, &mut generation, &ctx.options);
                            match self.process(chunk, generation, ctx).await {
                                Ok(()) => {}
                                // Storage failing (warehouse unwritable, disk full): what is
                                // buffered cannot be committed; drop it, re-read it later.
                                Err(RuntimeError::Sink(e)) if e.retryable() => {
                                    tracing::warn!(product = %self.product, error = %e, "Writing data files failed; dropping uncommitted data and re-reading it from the table's offsets in a second.");
                                    self.report_sink(Some(e.to_string()));
                                    self.drop_pending("writing data files failed");
                                    self.resync = true;
                                    retry_at = Instant::now() + Duration::from_secs(1);
                                }
                                Err(e) => break Err(e),
                            }
                        }
                        Err(e) => tracing::warn!(product = %self.product, error = %e, "Consumer error; librdkafka will retry."),
                    }
                }
                _ = tick.tick() => {}
            }
            if self.resync && Instant::now() >= retry_at {
                match self.resume_from_table().await {
                    Ok(()) => self.resync = false,
                    Err(e) => {
                        tracing::warn!(product = %self.product, error = %e, "Cannot read the table's offsets to resume from; retrying.");
                        retry_at = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            if self.should_commit() && Instant::now() >= retry_at {
                let committed = self.commit(ctx).await;
                self.report_sink(committed.as_ref().err().map(ToString::to_string));
                match committed {
                    Ok(()) => retry_at = Instant::now(),
                    Err(e) if e.retryable() => {
                        tracing::warn!(product = %self.product, error = %e, "Commit failed; consumption is paused and the same commit will be retried.");
                        retry_at = Instant::now() + Duration::from_secs(1);
                    }
                    Err(e) => break Err(e.into()),
                }
            }
        };
        // Graceful stop: commit what is buffered within the deadline.
        let drained = if result.is_ok() {
            let deadline = Instant::now() + ctx.options.drain_deadline;
            let mut outcome = Ok(());
            while !self.pending.is_empty() && Instant::now() < deadline {
                match self.commit(ctx).await {
                    Ok(()) => {}
                    Err(e) if e.retryable() => tokio::time::sleep(Duration::from_millis(500)).await,
                    Err(e) => {
                        outcome = Err(e.into());
                        break;
                    }
                }
            }
            if !self.pending.is_empty() && outcome.is_ok() {
                tracing::warn!(product = %self.product, "Drain deadline passed with data uncommitted; it will be re-read on restart.");
            }
            outcome
        } else {
            Ok(())
        };
        sla.abort();
        tracing::info!(product = %self.product, "Worker stopped.");
        result.and(drained)
    }

    /// Adds already-fetched messages to the chunk without waiting.
    ///
    /// A rebalance can run inside any poll. If one did, what the chunk holds is stale and is
    /// dropped (the new owner re-reads it from the table's offsets), but the message this poll
    /// returned is the first of the new assignment: it starts the chunk again under the new
    /// `generation`. Dropping it too would skip it for good, since the consumer has moved past it.
    ///
    /// One message stream serves the whole fill: `recv()` per message would register and
    /// unregister a waker slot (a mutex each way) for every record.
    fn fill(&self, chunk: &mut Chunk, generation: &mut u64, options: &WorkerOptions) {
        let mut messages = self.consumer.stream();
        while chunk.len() < options.max_chunk_records && chunk.bytes() < options.max_chunk_bytes {
            match messages.next().now_or_never().flatten() {
                Some(Ok(message)) => {
                    let now = self.assignment.generation.load(Ordering::SeqCst);
                    if now != *generation {
                        tracing::info!(product = %self.product, stale = chunk.len(), "Partitions were reassigned while filling a chunk; its records will be re-read, the new assignment's first record starts a new chunk.");
                        *chunk = Chunk::default();
                        *generation = now;
                    }
                    chunk.push(&message);
                }
                Some(Err(e)) => {
                    tracing::warn!(product = %self.product, error = %e, "Consumer error; librdkafka will retry.");
                    return;
                }
                None => return,
            }
        }
    }

    async fn process(
        &mut self,
        chunk: Chunk,
        generation: u64,
        ctx: &WorkerContext,
    ) -> Result<(), RuntimeError> {
        if generation != self.pending.generation {
            self.drop_pending("partitions were revoked");
            self.pending.generation = generation;
        }
        if chunk.is_empty() || self.assignment.generation.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        let consumed_at = Instant::now();
        let m = &ctx.metrics;
        for (t, topic) in chunk.topics.iter().enumerate() {
            let n = chunk
                .origins
                .iter()
                .filter(|o| o.topic as usize == t)
                .count() as u64;
            m.records_consumed
                .with_label_values(&[&self.product, topic])
                .inc_by(n);
            m.bytes_consumed
                .with_label_values(&[&self.product, topic])
                .inc_by(chunk.value_bytes_of(t as u16));
        }
        let mut letters: Vec<(usize, &'static str, String)> = Vec::new();
        for (t, topic) in chunk.topics.iter().enumerate() {
            let Some(port) = self.decoders.get(topic) else {
                continue;
            };
            let indices: Vec<usize> = (0..chunk.len())
                .filter(|&i| chunk.origins[i].topic as usize == t)
                .collect();
            let payloads: Vec<Option<&[u8]>> = indices.iter().map(|&i| chunk.value(i)).collect();
            let decoded = decode::decode_all(
                port.factory.as_ref(),
                &payloads,
                ctx.options.max_record_bytes,
            );
            for r in decoded.rejected {
                letters.push((indices[r.index as usize], r.kind.as_str(), r.message));
            }
            for (batch, rows) in decoded.batches {
                let invalid = validate::validate(&batch, &self.columns);
                let batch = if invalid.is_empty() {
                    batch
                } else {
                    let mut keep = vec![true; batch.num_rows()];
                    for bad in invalid {
                        keep[bad.row] = false;
                        letters.push((
                            indices[rows[bad.row] as usize],
                            bad.kind.as_str(),
                            bad.message,
                        ));
                    }
                    arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep))
                        .map_err(|source| self.batch_error(source))?
                };
                if batch.num_rows() > 0 {
                    self.write(batch).await?;
                }
            }
        }
        if !letters.is_empty() {
            send_dead_letters(
                &self.dead_letters,
                &self.decoders,
                &self.product,
                &chunk,
                &letters,
                &ctx.metrics,
            )
            .await;
        }
        // Per partition: the first offset in the chunk and the next one after it, folded over
        // the chunk first so the topic name is looked up (and cloned) once per partition.
        let mut spans: Vec<PartitionSpan> = Vec::new();
        let mut gaps: Vec<Gap> = Vec::new();
        for o in &chunk.origins {
            // Records of one partition arrive in runs: the latest entry is the likely match.
            match spans
                .iter_mut()
                .rev()
                .find(|s| s.topic == o.topic && s.partition == o.partition)
            {
                Some(span) => {
                    if o.offset != span.next {
                        gaps.push(Gap {
                            topic: o.topic,
                            partition: o.partition,
                            expected: span.next,
                            got: o.offset,
                        });
                    }
                    span.next = span.next.max(o.offset + 1);
                }
                None => spans.push(PartitionSpan {
                    topic: o.topic,
                    partition: o.partition,
                    first: o.offset,
                    next: o.offset + 1,
                }),
            }
        }
        self.check_continuity(&chunk, &spans, &gaps);
        for span in spans {
            let topic = &chunk.topics[span.topic as usize];
            let parts = match self.pending.next.get_mut(topic) {
                Some(parts) => parts,
                None => self.pending.next.entry(topic.clone()).or_default(),
            };
            let entry = parts.entry(span.partition).or_insert(span.next);
            *entry = (*entry).max(span.next);
        }
        self.pending.since.get_or_insert(consumed_at);
        self.freshness.pending_since(consumed_at);
        Ok(())
    }

    /// Warns when a chunk does not continue where this worker's data for a partition ends
    /// (its pending data, else the table's offsets at assignment), or skips offsets inside.
    /// Compacted and transactional topics have such gaps legitimately; anywhere else a gap is
    /// records the broker never delivered, and a repeat is records read twice. Either way the
    /// log names partition and offsets, so a loss can be traced to the consumer or the broker.
    fn check_continuity(&self, chunk: &Chunk, spans: &[PartitionSpan], gaps: &[Gap]) {
        let Ok(recorded) = self.assignment.recorded.lock() else {
            return;
        };
        for span in spans {
            let topic = &chunk.topics[span.topic as usize];
            let known = self
                .pending
                .next
                .get(topic)
                .and_then(|p| p.get(&span.partition))
                .or_else(|| recorded.get(topic).and_then(|p| p.get(&span.partition)));
            if let Some(&expected) = known
                && expected != span.first
            {
                tracing::warn!(product = %self.product, topic = %topic, partition = span.partition, expected, got = span.first, "Offsets do not continue where this worker's data ends (a gap is records the broker did not deliver; compacted and transactional topics have gaps legitimately).");
            }
        }
        for gap in gaps {
            tracing::warn!(product = %self.product, topic = %chunk.topics[gap.topic as usize], partition = gap.partition, expected = gap.expected, got = gap.got, "Offsets skip inside a chunk (a gap is records the broker did not deliver; compacted and transactional topics have gaps legitimately).");
        }
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<(), RuntimeError> {
        let masked = self.masker.apply(&batch).map_err(|e| self.batch_error(e))?;
        let rows = wire::conform(&masked, &self.table_schema).map_err(|e| self.batch_error(e))?;
        if self.pending.files.is_none() {
            self.pending.files = Some(DataFiles::new(
                self.table.table(),
                self.file_prefix.clone(),
                self.target_file_size,
            )?);
        }
        if let Some(files) = self.pending.files.as_mut() {
            files.write(rows).await?;
            self.pending.rows = files.rows();
        }
        Ok(())
    }

    fn should_commit(&self) -> bool {
        if self.pending.closed.is_some() {
            return true;
        }
        if self.pending.next.is_empty() {
            return false;
        }
        let due = self
            .pending
            .since
            .is_some_and(|s| s.elapsed() >= self.interval);
        let full = self.max_records.is_some_and(|m| self.pending.rows >= m);
        let big = self
            .pending
            .files
            .as_ref()
            .is_some_and(|f| f.largest_open_file_bytes() >= self.target_file_size);
        due || full || big
    }

    async fn commit(&mut self, ctx: &WorkerContext) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.assignment.generation.load(Ordering::SeqCst) != self.pending.generation {
            self.drop_pending("partitions were revoked before the commit");
            return Ok(());
        }
        if self.pending.closed.is_none() {
            let files = match self.pending.files.take() {
                Some(f) => match f.close().await {
                    Ok(files) => files,
                    Err(e) => {
                        // Completing the data files is the commit's first step; on object
                        // storage it is where an unreachable or refusing store shows. The
                        // files are gone with the writer: committing the offsets without them
                        // would lose their rows, so drop what is buffered and re-read it from
                        // the table's offsets.
                        ctx.metrics
                            .commits
                            .with_label_values(&[&self.product, &self.port_label, "failed"])
                            .inc();
                        tracing::warn!(product = %self.product, error = %e, "Completing the data files failed; dropping uncommitted data and re-reading it from the table's offsets.");
                        self.drop_pending("completing the data files failed");
                        self.resync = true;
                        return Err(e);
                    }
                },
                None => Vec::new(),
            };
            self.pending.closed = Some((files, uuid::Uuid::new_v4().to_string()));
        }
        let Some((files, commit_id)) = self.pending.closed.clone() else {
            return Ok(());
        };
        let expected = self
            .assignment
            .recorded
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let rows = self.pending.rows;
        let labels = [self.product.as_str(), self.port_label.as_str()];
        let started = Instant::now();
        let summary = [
            ("meshd.product", self.product.clone()),
            ("meshd.rows", rows.to_string()),
        ];
        let outcome = self
            .table
            .commit(files, &self.pending.next, &expected, &commit_id, &summary)
            .await;
        let m = &ctx.metrics;
        match outcome {
            Ok(outcome) => {
                m.commit_duration
                    .with_label_values(&labels)
                    .observe(started.elapsed().as_secs_f64());
                let label = match outcome {
                    CommitOutcome::Committed => "committed",
                    CommitOutcome::AlreadyCommitted => "already_committed",
                };
                m.commits
                    .with_label_values(&[labels[0], labels[1], label])
                    .inc();
                m.records_committed.with_label_values(&labels).inc_by(rows);
                m.last_commit_timestamp
                    .with_label_values(&labels)
                    .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                if let Ok(mut recorded) = self.assignment.recorded.lock() {
                    for (topic, parts) in &self.pending.next {
                        recorded
                            .entry(topic.clone())
                            .or_default()
                            .extend(parts.iter().map(|(p, o)| (*p, *o)));
                    }
                }
                if let Err(e) = kafka::commit_group_offsets(&self.consumer, &self.pending.next) {
                    tracing::debug!(product = %self.product, error = %e, "Committing group offsets failed (lag display only).");
                }
                tracing::debug!(product = %self.product, commit_id = %commit_id, rows, offsets = ?self.pending.next, "Committed.");
                self.reset_pending();
                self.freshness.committed();
                Ok(())
            }
            Err(e @ SinkError::Fenced { .. }) => {
                m.commits
                    .with_label_values(&[labels[0], labels[1], "fenced"])
                    .inc();
                tracing::warn!(product = %self.product, error = %e, "Commit fenced: another worker committed one of our partitions; dropping uncommitted data and resuming from the table's offsets.");
                self.drop_pending("the commit was fenced");
                self.resync = true;
                Ok(())
            }
            Err(e) => {
                m.commits
                    .with_label_values(&[labels[0], labels[1], "failed"])
                    .inc();
                Err(e)
            }
        }
    }

    /// After a fenced commit the table is ahead of what this worker read (a revoked owner's
    /// late commit landed first): take the table's offsets as the new baseline and seek every
    /// assigned partition there, or every later commit would be fenced too and the records
    /// in between would never be written by this worker.
    /// Called (via `resync`) after a fenced commit or a failed data-file write.
    async fn resume_from_table(&mut self) -> Result<(), SinkError> {
        let recorded = self.table.recover_offsets().await?;
        let assigned = self
            .assignment
            .assigned
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        let baseline = kafka::baseline(&recorded, &assigned);
        for (topic, parts) in &baseline {
            for (&partition, &offset) in parts {
                if let Err(e) = self.consumer.seek(
                    topic,
                    partition,
                    rdkafka::Offset::Offset(offset),
                    Duration::from_secs(10),
                ) {
                    tracing::warn!(product = %self.product, topic = %topic, partition, offset, error = %e, "Seeking to the table's offset failed.");
                }
            }
        }
        tracing::info!(product = %self.product, resume_from = ?baseline, "Resuming from the offsets recorded in the table.");
        if let Ok(mut r) = self.assignment.recorded.lock() {
            *r = baseline;
        }
        Ok(())
    }

    /// What `/readyz` says about the sink: the last error while writes or commits fail.
    fn report_sink(&self, error: Option<String>) {
        if let Ok(mut sink_error) = self.assignment.sink_error.lock() {
            *sink_error = error;
        }
    }

    fn reset_pending(&mut self) {
        let generation = self.pending.generation;
        self.pending = Pending {
            files: None,
            next: Offsets::new(),
            rows: 0,
            since: None,
            generation,
            closed: None,
        };
    }

    /// Forgets uncommitted data; it will be re-read from the offsets in the table.
    fn drop_pending(&mut self, why: &str) {
        if !self.pending.is_empty() {
            tracing::info!(product = %self.product, rows = self.pending.rows, reason = why, "Dropping uncommitted data; it will be re-read.");
        }
        self.reset_pending();
        self.freshness.committed();
    }

    fn batch_error(&self, source: arrow_schema::ArrowError) -> RuntimeError {
        RuntimeError::Batch {
            product: self.product.clone(),
            source,
        }
    }

    fn spawn_sla_ticker(
        &self,
        ctx: &WorkerContext,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let metrics = ctx.metrics.clone();
        let product = self.product.clone();
        let port = self.port_label.clone();
        let freshness = Arc::clone(&self.freshness);
        let assignment = Arc::clone(&self.assignment);
        let slo = self.slo;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {}
                }
                let lags = assignment.lag.lock().map(|l| l.clone()).unwrap_or_default();
                for (topic, lag) in &lags {
                    metrics
                        .consumer_lag
                        .with_label_values(&[&product, topic])
                        .set(*lag);
                }
                let held = assignment.assigned.lock().map_or(0, |a| a.len());
                metrics
                    .partitions_assigned
                    .with_label_values(&[&product])
                    .set(held as i64);
                let blind = assignment.blind_since.lock().ok().and_then(|b| *b);
                let seconds = freshness.seconds(lags.values().sum(), blind);
                let labels = [product.as_str(), port.as_str()];
                metrics.freshness.with_label_values(&labels).set(seconds);
                metrics.sla_evaluations.with_label_values(&labels).inc();
                if freshness::is_good(seconds, slo) {
                    metrics.sla_good.with_label_values(&labels).inc();
                }
            }
        })
    }
}

/// Produces the chunk's dead letters and waits until every one is acknowledged, retrying
/// with backoff: their offsets must not be committed before that.
async fn send_dead_letters(
    output: &DeadLetterOutput,
    decoders: &HashMap<String, PortDecoder>,
    product: &str,
    chunk: &Chunk,
    letters: &[(usize, &'static str, String)],
    metrics: &Metrics,
) {
    let batch: Vec<DeadLetter<'_>> = letters
        .iter()
        .filter_map(|(i, kind, message)| {
            let origin = chunk.origins[*i];
            let topic = &chunk.topics[origin.topic as usize];
            let port = decoders.get(topic)?;
            Some(DeadLetter {
                topic: &port.dead_letter_topic,
                key: chunk.key(*i),
                payload: chunk.value(*i),
                kind,
                message,
                source_topic: topic,
                source_partition: origin.partition,
                source_offset: origin.offset,
            })
        })
        .collect();
    // Offsets of these records count as done only once every letter is acknowledged.
    let mut wait = Duration::from_millis(200);
    loop {
        match output.send_all(&batch).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(product = %product, error = %e, "Dead-letter produce failed; retrying.");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
    for letter in &batch {
        metrics
            .records_dead_lettered
            .with_label_values(&[product, letter.source_topic, letter.kind])
            .inc();
    }
}
