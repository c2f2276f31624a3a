//! One worker per data product: port → decode → validate → mask → batch → commit → metrics.
//!
//! Stages, each in its own module, data flowing one way:
//! - [`input`]: the consumer, its assignment, chunks of records, seeks;
//! - [`pipeline`]: a chunk → Arrow rows per output port, and the records that go to the
//!   dead-letter topic (pure, no I/O); [`metadata`] fills the `_kafka` column of a port that
//!   keeps Kafka metadata;
//! - [`output`]: one per output port, its open Parquet files and its exactly-once commit,
//!   with the [`tracker`] that owns the port's offsets;
//! - [`sla`]: freshness and availability metrics from what the worker publishes ([`status`]).
//!
//! This module is the loop that drives them: it reads a chunk, turns it into rows, sends its
//! dead letters, writes the rows, takes the offsets as pending, and commits each port when its
//! policy says so. Rebalances arrive as events from librdkafka's callback and are handled
//! here: an assignment starts at the tables' offsets, a revocation commits what is held
//! before the partitions are given up. If a commit keeps failing, consumption pauses (memory
//! stays bounded) and the same commit is retried until it lands; freshness grows meanwhile.

mod backoff;
mod chunk;
mod dead_letters;
mod freshness;
mod input;
mod metadata;
mod output;
mod pipeline;
mod process;
mod rebalance;
mod registry;
mod setup;
mod sla;
mod status;
mod tracker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::Catalog;
use meshd_config::{DataProduct, PlatformConfig, Sensitive};
use meshd_sinks::SinkError;
use meshd_sinks::dead_letter::DeadLetterOutput;
use meshd_sinks::iceberg::Offsets;
use meshd_sinks::iceberg::commit::MetadataCommitter;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use chunk::Chunk;
pub use freshness::FreshnessState;
pub use status::WorkerStatus;

use self::input::Input;
use self::output::{CommitFailed, Committed, OutputPort};
use self::pipeline::InputDecoder;
use crate::RuntimeError;
use crate::health::Health;
use crate::kafka::{InputStats, Rebalance};
use crate::metrics::Metrics;

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
    /// How long a revocation may take to commit what the revoked partitions hold; past it,
    /// what is held is dropped and the next owner re-reads it.
    pub revoke_deadline: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            max_chunk_records: 8192,
            max_chunk_bytes: 8 << 20,
            max_record_bytes: 1 << 20,
            drain_deadline: Duration::from_secs(30),
            revoke_deadline: Duration::from_secs(20),
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
    /// meshd's own metadata commits to it (schema widening).
    pub committer: MetadataCommitter,
    /// The masking key, if configured.
    pub masking_key: Option<Sensitive<Vec<u8>>>,
    /// Process metrics.
    pub metrics: Metrics,
    /// Process health.
    pub health: Health,
    /// Tuning.
    pub options: WorkerOptions,
}

/// Runs one product until `shutdown`, then commits what is buffered.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    let span = tracing::info_span!("worker", product = %ctx.product.name());
    tracing::Instrument::instrument(run_worker(ctx, shutdown), span).await
}

async fn run_worker(ctx: WorkerContext, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    let name = ctx.product.name().to_string();
    let mut worker = match Worker::start(&ctx).await {
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
    ports: Vec<OutputPort>,
    decoders: HashMap<String, InputDecoder>,
    dead_letters: DeadLetterOutput,
    /// Declared before `input`, so it is dropped first: the consumer's close then handles
    /// its final revocation itself.
    rebalances: mpsc::UnboundedReceiver<Rebalance>,
    input: Input,
    stats: watch::Receiver<InputStats>,
    status: watch::Sender<WorkerStatus>,
    /// The schema registry, for `avro-confluent` input ports.
    registry: Option<Arc<crate::registry::Registry>>,
    /// Held data was dropped while the consumer kept its position: consumption waits until
    /// every assigned partition is sought back to what the ports still need.
    resync: bool,
    /// Ports whose commit was fenced: their baseline must be re-read from the table first.
    rebase: Vec<usize>,
    /// No commit, resync or read before this instant (backoff after a failure).
    retry_at: Instant,
    /// How long to wait after the next failure of a write, commit or resync.
    backoff: backoff::Backoff,
    /// When the group's offsets were last committed. That commit is asynchronous and can fail
    /// (a rebalance in progress); with no new records nothing would repeat it, and the lag the
    /// group shows (and freshness reads) would stay stale.
    group_committed_at: Instant,
}

/// How often the group's offsets are committed again while no table commit does it.
const GROUP_OFFSETS_REFRESH: Duration = Duration::from_secs(5);

/// Why a chunk was not taken.
enum ChunkError {
    /// A stop was requested while its dead letters were being sent.
    Shutdown,
    /// Writing to a port's files failed.
    Write { port: usize, error: SinkError },
    /// The worker cannot go on.
    Fatal(RuntimeError),
}

impl Worker {
    async fn run(
        &mut self,
        ctx: &WorkerContext,
        shutdown: CancellationToken,
    ) -> Result<(), RuntimeError> {
        let clocks = self
            .ports
            .iter()
            .map(|p| sla::PortClock {
                label: p.label.clone(),
                freshness: Arc::clone(&p.freshness),
                slo: p.slo,
            })
            .collect();
        let ticker = sla::spawn(
            ctx.metrics.clone(),
            self.product.clone(),
            clocks,
            self.stats.clone(),
            self.status.subscribe(),
            shutdown.clone(),
        );
        ctx.health.running(&self.product, self.status.subscribe());
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result: Result<(), RuntimeError> = loop {
            let paused = self.ports.iter().any(OutputPort::is_committing)
                || self.resync
                || Instant::now() < self.retry_at;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ok(()),
                Some(event) = self.rebalances.recv() => {
                    if let Err(e) = self.rebalance(event, ctx, &shutdown).await {
                        break Err(e);
                    }
                }
                chunk = self.input.next_chunk(&ctx.options), if !paused => {
                    let Some(chunk) = chunk else { continue };
                    match self.process(chunk, ctx, &shutdown).await {
                        Ok(()) => {}
                        Err(ChunkError::Shutdown) => break Ok(()),
                        // Storage failing (warehouse unwritable, disk full): what is held
                        // cannot be committed; drop it, re-read it later.
                        Err(ChunkError::Write { port, error }) if error.retryable() => {
                            tracing::warn!(product = %self.product, port = %self.ports[port].label, error = %error, "Writing data files failed; dropping uncommitted data and re-reading it from the table's offsets in a second.");
                            self.report_sink(port, Some(error.to_string()));
                            self.drop_everything("writing data files failed");
                            self.retry_later();
                        }
                        Err(ChunkError::Write { error, .. }) => break Err(error.into()),
                        Err(ChunkError::Fatal(e)) => break Err(e),
                    }
                }
                _ = tick.tick() => {}
            }
            if self.resync && Instant::now() >= self.retry_at {
                self.resync().await;
            }
            if Instant::now() >= self.retry_at
                && let Err(e) = self.commit_due(ctx).await
            {
                break Err(e);
            }
        };
        let drained = match result {
            Ok(()) => self.drain(ctx).await,
            Err(_) => Ok(()),
        };
        ticker.abort();
        // From here on the consumer's callback acknowledges rebalances itself (closing the
        // consumer revokes everything and waits for that).
        self.rebalances.close();
        tracing::info!(product = %self.product, "Worker stopped.");
        result.and(drained)
    }

    /// Graceful stop: commit what is held, within the deadline.
    async fn drain(&mut self, ctx: &WorkerContext) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + ctx.options.drain_deadline;
        while self.ports.iter().any(OutputPort::holds_data) && Instant::now() < deadline {
            for i in 0..self.ports.len() {
                match self.commit_port(i, ctx).await {
                    Ok(()) => {}
                    Err(e) => return Err(e),
                }
            }
            if self.ports.iter().any(OutputPort::holds_data) {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if self.ports.iter().any(OutputPort::holds_data) {
            tracing::warn!(product = %self.product, "Drain deadline passed with data uncommitted; it will be re-read on restart.");
        }
        Ok(())
    }

    /// Commits every port whose policy says it is time; every few seconds, the group's
    /// offsets again.
    async fn commit_due(&mut self, ctx: &WorkerContext) -> Result<(), RuntimeError> {
        for i in 0..self.ports.len() {
            if self.ports[i].should_commit() {
                self.commit_port(i, ctx).await?;
            }
        }
        if self.group_committed_at.elapsed() >= GROUP_OFFSETS_REFRESH {
            self.commit_group_offsets();
        }
        Ok(())
    }

    /// Shows the tables' offsets as the group's committed offsets (lag display only).
    fn commit_group_offsets(&mut self) {
        let offsets = self.group_offsets();
        if !offsets.is_empty() {
            self.input.commit_group_offsets(&offsets);
        }
        self.group_committed_at = Instant::now();
    }

    /// Commits one port; a failure that can pass is reported and retried later.
    async fn commit_port(&mut self, i: usize, ctx: &WorkerContext) -> Result<(), RuntimeError> {
        let outcome = self.ports[i].commit(&self.product, &ctx.metrics).await;
        match outcome {
            Ok(Committed::Nothing) => Ok(()),
            Ok(Committed::Landed(_)) => {
                self.report_sink(i, None);
                self.backoff.reset();
                self.commit_group_offsets();
                Ok(())
            }
            Ok(Committed::Fenced) => {
                self.report_sink(i, None);
                self.rebase.push(i);
                self.resync = true;
                Ok(())
            }
            Err(CommitFailed { error, dropped }) => {
                self.report_sink(i, Some(error.to_string()));
                if !error.retryable() {
                    return Err(error.into());
                }
                if dropped {
                    tracing::warn!(product = %self.product, port = %self.ports[i].label, error = %error, "Completing the data files failed; dropping uncommitted data and re-reading it from the table's offsets.");
                    self.resync = true;
                } else {
                    tracing::warn!(product = %self.product, port = %self.ports[i].label, error = %error, "Commit failed; consumption is paused and the same commit will be retried.");
                }
                self.retry_later();
                Ok(())
            }
        }
    }

    /// What the consumer group shows as committed: per partition, the lowest offset any
    /// port's table records.
    fn group_offsets(&self) -> Offsets {
        let recorded: Vec<Offsets> = self.ports.iter().map(|p| p.tracker.recorded()).collect();
        let mut out = Offsets::new();
        for (topic, partition) in self.input.assigned() {
            let lowest = recorded
                .iter()
                .map(|r| r.get(topic).and_then(|o| o.get(partition)).copied())
                .collect::<Option<Vec<i64>>>()
                .and_then(|v| v.into_iter().min());
            if let Some(offset) = lowest {
                out.entry(topic.clone())
                    .or_default()
                    .insert(*partition, offset);
            }
        }
        out
    }

    /// Forgets everything held by every port and re-reads it.
    fn drop_everything(&mut self, why: &str) {
        for port in &mut self.ports {
            port.drop_held(&self.product, why);
        }
        self.resync = true;
    }

    /// Seeks every assigned partition back to what the ports still need, after re-reading
    /// the baseline of fenced ports from their tables.
    async fn resync(&mut self) {
        while let Some(&i) = self.rebase.last() {
            match self.ports[i].rebase().await {
                Ok(()) => {
                    self.rebase.pop();
                }
                Err(e) => {
                    tracing::warn!(product = %self.product, port = %self.ports[i].label, error = %e, "Cannot read the table's offsets to resume from; retrying.");
                    self.retry_later();
                    return;
                }
            }
        }
        let mut resume = Vec::new();
        for (topic, partition) in self.input.assigned() {
            let from = tracker::read_from(self.ports.iter().map(|p| &p.tracker), topic, *partition);
            self.input.seek(topic, *partition, from);
            resume.push(format!(
                "{topic}[{partition}]@{}",
                from.map_or("start".into(), |o| o.to_string())
            ));
        }
        tracing::info!(product = %self.product, resume_from = ?resume, "Resuming from the offsets recorded in the tables.");
        self.resync = false;
    }

    /// Pauses commits, resyncs and reads until the backoff's next wait has passed.
    fn retry_later(&mut self) {
        self.retry_at = Instant::now() + self.backoff.next_wait();
    }

    /// What `/readyz` says about a port: its last error while writes or commits fail.
    fn report_sink(&self, port: usize, error: Option<String>) {
        let label = &self.ports[port].label;
        self.status.send_if_modified(|s| match &error {
            Some(e) => s.sink_errors.insert(label.clone(), e.clone()).as_ref() != Some(e),
            None => s.sink_errors.remove(label).is_some(),
        });
    }

    fn batch_error(&self, source: arrow_schema::ArrowError) -> ChunkError {
        ChunkError::Fatal(RuntimeError::Batch {
            product: self.product.clone(),
            source,
        })
    }
}
