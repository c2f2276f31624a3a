//! One output port: its table, the Parquet files it is filling, the offsets those files
//! cover, and its exactly-once commit.
//!
//! A commit closes the open files, gives the commit an id, and records exactly the offsets the
//! files cover. If the catalog refuses or does not answer, the same files are committed again
//! under the same id (the table resolves a lost reply by that id) while consumption pauses; if
//! closing the files fails, they are gone, so the port drops what it holds and the worker
//! re-reads it from the table's offsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use iceberg::spec::DataFile;
use meshd_config::KafkaMetadata;
use meshd_sinks::SinkError;
use meshd_sinks::iceberg::{CommitOutcome, DataFiles, Offsets, OutputTable};

use super::freshness::FreshnessState;
use super::pipeline::PortShape;
use super::tracker::OffsetTracker;
use crate::metrics::Metrics;

/// When a port commits.
#[derive(Debug, Clone)]
pub struct CommitPolicy {
    /// Commit at least this often while records are held.
    pub interval: Duration,
    /// Commit once this many rows are held.
    pub max_records: Option<u64>,
    /// Roll (and commit) once an open file reaches this size.
    pub target_file_size: usize,
    /// The data files' Parquet codec.
    pub codec: meshd_config::Codec,
    /// Columns written without a dictionary: hashed PII, whose values rarely repeat.
    pub plain_columns: Vec<String>,
}

/// A commit prepared and not yet landed: retried as it is until it lands or is fenced.
#[derive(Clone)]
struct Prepared {
    files: Vec<DataFile>,
    commit_id: String,
    next: Offsets,
    expected: Offsets,
    rows: u64,
}

/// How a commit ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Nothing was held.
    Nothing,
    /// The snapshot is visible; these offsets are recorded.
    Landed(Offsets),
    /// Another worker committed one of the partitions first: what was held is dropped, the
    /// port's baseline must be re-read from the table and the consumer sought back.
    Fenced,
}

/// A failed commit.
#[derive(Debug)]
pub struct CommitFailed {
    /// Why.
    pub error: SinkError,
    /// Whether the held data was dropped (the consumer must re-read from the table's
    /// offsets); otherwise the same commit is retried.
    pub dropped: bool,
}

/// One output port of a worker.
pub struct OutputPort {
    /// `namespace.table`, the `port` label of its metrics.
    pub label: String,
    /// Offsets this port holds and has recorded.
    pub tracker: OffsetTracker,
    /// Freshness of this port's table.
    pub freshness: Arc<FreshnessState>,
    /// The port's freshness SLO.
    pub slo: Duration,
    shape: PortShape,
    /// Kafka metadata the port keeps in its `_kafka` column (empty: none).
    kafka: Vec<KafkaMetadata>,
    table: OutputTable,
    policy: CommitPolicy,
    file_prefix: String,
    files: Option<DataFiles>,
    rows: u64,
    since: Option<Instant>,
    prepared: Option<Prepared>,
}

impl OutputPort {
    /// A port writing to `table`.
    pub fn new(
        table: OutputTable,
        shape: PortShape,
        policy: CommitPolicy,
        file_prefix: String,
        slo: Duration,
    ) -> Self {
        Self {
            label: table.name(),
            tracker: OffsetTracker::default(),
            freshness: Arc::new(FreshnessState::default()),
            slo,
            shape,
            kafka: Vec::new(),
            table,
            policy,
            file_prefix,
            files: None,
            rows: 0,
            since: None,
            prepared: None,
        }
    }

    /// The port keeps this Kafka metadata of each record in its `_kafka` column.
    pub fn with_kafka_metadata(mut self, kafka: Vec<KafkaMetadata>) -> Self {
        self.kafka = kafka;
        self
    }

    /// What the port makes of input rows.
    pub fn shape(&self) -> &PortShape {
        &self.shape
    }

    /// The Kafka metadata the port keeps (empty: none).
    pub fn kafka_metadata(&self) -> &[KafkaMetadata] {
        &self.kafka
    }

    /// Appends rows (already in the table's schema) to the open files.
    pub async fn write(&mut self, rows: RecordBatch) -> Result<(), SinkError> {
        if self.files.is_none() {
            let plain: Vec<&str> = self
                .policy
                .plain_columns
                .iter()
                .map(String::as_str)
                .collect();
            self.files = Some(DataFiles::with_properties(
                self.table.table(),
                self.file_prefix.clone(),
                self.policy.target_file_size,
                meshd_sinks::iceberg::parquet_properties_for(self.policy.codec, &plain),
            )?);
        }
        if let Some(files) = self.files.as_mut() {
            files.write(rows).await?;
            self.rows = files.rows();
        }
        Ok(())
    }

    /// Records consumed at `consumed_at` are now held (as rows, or as dead letters whose
    /// offsets wait for the commit): the commit interval and freshness count from then.
    pub fn hold(&mut self, consumed_at: Instant) {
        self.since.get_or_insert(consumed_at);
        self.freshness.pending_since(consumed_at);
    }

    /// Whether records are held (in open files, or in a commit not landed yet).
    pub fn holds_data(&self) -> bool {
        self.tracker.has_pending() || self.prepared.is_some()
    }

    /// Whether a prepared commit is waiting to land (consumption pauses meanwhile, so memory
    /// stays bounded and the commit's offsets stay exact).
    pub fn is_committing(&self) -> bool {
        self.prepared.is_some()
    }

    /// Whether the commit policy says it is time.
    pub fn should_commit(&self) -> bool {
        if self.prepared.is_some() {
            return true;
        }
        if !self.tracker.has_pending() {
            return false;
        }
        let due = self
            .since
            .is_some_and(|s| s.elapsed() >= self.policy.interval);
        let full = self.policy.max_records.is_some_and(|m| self.rows >= m);
        let big = self
            .files
            .as_ref()
            .is_some_and(|f| f.largest_open_file_bytes() >= self.policy.target_file_size);
        due || full || big
    }

    /// Commits what the port holds, exactly once.
    pub async fn commit(
        &mut self,
        product: &str,
        metrics: &Metrics,
    ) -> Result<Committed, CommitFailed> {
        let labels = [product, self.label.as_str()];
        let count = |outcome: &str| {
            metrics
                .commits
                .with_label_values(&[labels[0], labels[1], outcome])
                .inc()
        };
        if self.prepared.is_none() {
            if !self.tracker.has_pending() {
                return Ok(Committed::Nothing);
            }
            let files = match self.files.take() {
                Some(files) => match files.close().await {
                    Ok(files) => files,
                    Err(error) => {
                        // Completing the data files is the commit's first step; on object
                        // storage it is where an unreachable or refusing store shows. The
                        // files are gone with the writer: committing the offsets without them
                        // would lose their rows.
                        count("failed");
                        self.drop_held(product, "completing the data files failed");
                        return Err(CommitFailed {
                            error,
                            dropped: true,
                        });
                    }
                },
                None => Vec::new(),
            };
            self.prepared = Some(Prepared {
                files,
                commit_id: uuid::Uuid::new_v4().to_string(),
                next: self.tracker.pending(),
                expected: self.tracker.expected(),
                rows: self.rows,
            });
        }
        let Some(prepared) = self.prepared.clone() else {
            return Ok(Committed::Nothing);
        };
        let started = Instant::now();
        let summary = [
            ("meshd.product", product.to_string()),
            ("meshd.rows", prepared.rows.to_string()),
        ];
        let outcome = self
            .table
            .commit(
                prepared.files,
                &prepared.next,
                &prepared.expected,
                &prepared.commit_id,
                &summary,
            )
            .await;
        match outcome {
            Ok(outcome) => {
                metrics
                    .commit_duration
                    .with_label_values(&labels)
                    .observe(started.elapsed().as_secs_f64());
                count(match outcome {
                    CommitOutcome::Committed => "committed",
                    CommitOutcome::AlreadyCommitted => "already_committed",
                });
                metrics
                    .records_committed
                    .with_label_values(&labels)
                    .inc_by(prepared.rows);
                metrics
                    .last_commit_timestamp
                    .with_label_values(&labels)
                    .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                tracing::debug!(product, port = %self.label, commit_id = %prepared.commit_id, rows = prepared.rows, offsets = ?prepared.next, "Committed.");
                self.tracker.committed(&prepared.next);
                self.prepared = None;
                self.rows = 0;
                self.since = None;
                self.freshness.committed();
                Ok(Committed::Landed(prepared.next))
            }
            Err(e @ SinkError::Fenced { .. }) => {
                count("fenced");
                tracing::warn!(product, port = %self.label, error = %e, "Commit fenced: another worker committed one of our partitions; dropping uncommitted data and resuming from the table's offsets.");
                self.drop_held(product, "the commit was fenced");
                Ok(Committed::Fenced)
            }
            Err(error) => {
                count("failed");
                Err(CommitFailed {
                    error,
                    dropped: false,
                })
            }
        }
    }

    /// Forgets what the port holds; it will be re-read from the table's offsets.
    pub fn drop_held(&mut self, product: &str, why: &str) {
        if self.holds_data() {
            tracing::info!(product, port = %self.label, rows = self.rows, reason = why, "Dropping uncommitted data; it will be re-read.");
        }
        self.tracker.drop_pending();
        self.files = None;
        self.prepared = None;
        self.rows = 0;
        self.since = None;
        self.freshness.committed();
    }

    /// The offsets the table records for this worker's group (reloading the table).
    pub async fn table_offsets(&mut self) -> Result<Offsets, SinkError> {
        self.table.recover_offsets().await
    }

    /// After a fenced commit the table is ahead of what this port read (a revoked owner's
    /// late commit landed first): take the table's offsets as the new baseline, or every later
    /// commit would be fenced too.
    pub async fn rebase(&mut self) -> Result<(), SinkError> {
        let recorded = self.table.recover_offsets().await?;
        self.tracker.rebase(&recorded);
        Ok(())
    }
}
