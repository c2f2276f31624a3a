//! One product's output table: created on first run with its partition spec and the
//! product's metadata as properties, then appended to with exactly-once commits.
//!
//! A commit is resolved, never blindly retried: each attempt reloads the table, returns early
//! if a snapshot already carries this commit id (an earlier attempt whose reply was lost), and
//! refuses ("fences") the commit if another worker has moved a covered partition since.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use iceberg::spec::{DataFile, Schema, Transform, UnboundPartitionSpec};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use meshd_config::PartitionField;

use super::offsets::{self, COMMIT_ID_KEY, Offsets};
use crate::SinkError;

/// What to create when the table does not exist yet.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Namespace (the domain).
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// Resolved location (`file://…`).
    pub location: String,
    /// Iceberg schema with field ids.
    pub schema: Schema,
    /// Partition fields from the descriptor.
    pub partitioning: Vec<PartitionField>,
    /// Table properties (`datamesh.*`).
    pub properties: HashMap<String, String>,
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new snapshot was created.
    Committed,
    /// An earlier attempt had already committed it (its reply was lost).
    AlreadyCommitted,
}

/// Bounded exponential backoff for retryable commit failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before giving up.
    pub attempts: u32,
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

/// A product's output table.
pub struct OutputTable {
    catalog: Arc<dyn Catalog>,
    ident: TableIdent,
    table: Table,
    group: String,
    retry: RetryPolicy,
}

impl OutputTable {
    /// Loads the table, creating its namespace and the table itself on first run.
    pub async fn open(
        catalog: Arc<dyn Catalog>,
        spec: &TableSpec,
        group: String,
    ) -> Result<Self, SinkError> {
        let namespace = NamespaceIdent::new(spec.namespace.clone());
        let ident = TableIdent::new(namespace.clone(), spec.name.clone());
        let name = ident.to_string();
        let err = |action, source| SinkError::Table {
            table: name.clone(),
            action,
            source,
        };
        let ns_exists = catalog
            .namespace_exists(&namespace)
            .await
            .map_err(|e| err("checking the namespace", e))?;
        if !ns_exists {
            match catalog
                .create_namespace(&namespace, namespace_properties(spec))
                .await
            {
                Ok(_) => {}
                // Another worker created it first (the SQL catalog reports that race as a
                // unique-constraint error, not as NamespaceAlreadyExists).
                Err(e) if e.kind() == ErrorKind::NamespaceAlreadyExists => {}
                Err(e) if catalog.namespace_exists(&namespace).await.unwrap_or(false) => {
                    tracing::debug!(namespace = ?namespace, error = %e, "Another worker created the namespace first.");
                }
                Err(e) => return Err(err("creating the namespace", e)),
            }
        }
        let exists = catalog
            .table_exists(&ident)
            .await
            .map_err(|e| err("checking the table", e))?;
        let table = if exists {
            catalog
                .load_table(&ident)
                .await
                .map_err(|e| err("loading the table", e))?
        } else {
            let mut properties = spec.properties.clone();
            // meshd resolves conflicts itself (see `commit`); iceberg must not re-apply blindly.
            properties.insert("commit.retry.num-retries".into(), "0".into());
            properties.insert("write.parquet.compression-codec".into(), "zstd".into());
            let creation = TableCreation::builder()
                .name(spec.name.clone())
                .location(spec.location.clone())
                .schema(spec.schema.clone())
                .partition_spec(
                    partition_spec(&spec.schema, &spec.partitioning)
                        .map_err(|e| err("building the partition spec", e))?,
                )
                .properties(properties)
                .build();
            match catalog.create_table(&namespace, creation).await {
                Ok(t) => t,
                // Another worker (another process for the same product) created it first.
                Err(e)
                    if e.kind() == ErrorKind::TableAlreadyExists
                        || catalog.table_exists(&ident).await.unwrap_or(false) =>
                {
                    catalog
                        .load_table(&ident)
                        .await
                        .map_err(|e| err("loading the table", e))?
                }
                Err(e) if e.to_string().contains("outside") => {
                    // REST catalogs that vend storage access (Polaris, rustberg, …) place
                    // tables inside their warehouse only.
                    return Err(SinkError::Config {
                        setting: "spec.outputPorts[].location".into(),
                        problem: format!(
                            "`{}` was refused by the catalog: {e}",
                            spec.location
                        ),
                        fix: "with a REST catalog, put the location inside the catalog's warehouse (usually <warehouse>/<namespace>/<table>)".into(),
                    });
                }
                Err(e) => return Err(err("creating the table", e)),
            }
        };
        Ok(Self {
            catalog,
            ident,
            table,
            group,
            retry: RetryPolicy::default(),
        })
    }

    /// Overrides the retry policy (tests use short waits).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The table as last loaded.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// `namespace.table`.
    pub fn name(&self) -> String {
        self.ident.to_string()
    }

    /// Reloads the table and returns the offsets recorded for this consumer group.
    pub async fn recover_offsets(&mut self) -> Result<Offsets, SinkError> {
        self.reload().await?;
        Ok(offsets::recorded_offsets(
            self.table.metadata(),
            &self.group,
        ))
    }

    async fn reload(&mut self) -> Result<(), SinkError> {
        self.table = bounded("loading the table", self.catalog.load_table(&self.ident))
            .await
            .map_err(|source| SinkError::Table {
                table: self.ident.to_string(),
                action: "loading the table",
                source,
            })?;
        Ok(())
    }

    /// Appends `files` in one snapshot recording `next` offsets, exactly once.
    ///
    /// `expected` holds, for each partition in `next`, the offset this worker believes the
    /// table records now (None if nothing is recorded): a mismatch means another worker took
    /// the partition, and the commit is fenced.
    pub async fn commit(
        &mut self,
        files: Vec<DataFile>,
        next: &Offsets,
        expected: &Offsets,
        commit_id: &str,
        extra_summary: &[(&str, String)],
    ) -> Result<CommitOutcome, SinkError> {
        let mut wait = self.retry.initial;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .try_commit(files.clone(), next, expected, commit_id, extra_summary)
                .await;
            match result {
                Ok(outcome) => return Ok(outcome),
                Err(e) if e.retryable() && attempt < self.retry.attempts => {
                    tracing::warn!(table = %self.ident, commit_id, attempt, error = %e, "Commit attempt failed; reloading the table and trying again.");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.retry.max);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_commit(
        &mut self,
        files: Vec<DataFile>,
        next: &Offsets,
        expected: &Offsets,
        commit_id: &str,
        extra_summary: &[(&str, String)],
    ) -> Result<CommitOutcome, SinkError> {
        self.reload().await?;
        if offsets::has_commit(self.table.metadata(), commit_id) {
            return Ok(CommitOutcome::AlreadyCommitted);
        }
        let recorded = offsets::recorded_offsets(self.table.metadata(), &self.group);
        for (topic, parts) in next {
            for partition in parts.keys() {
                let now = recorded.get(topic).and_then(|p| p.get(partition)).copied();
                let want = expected.get(topic).and_then(|p| p.get(partition)).copied();
                if now.is_some() && now != want {
                    return Err(SinkError::Fenced {
                        table: self.ident.to_string(),
                        commit_id: commit_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                        recorded: now,
                        expected: want,
                    });
                }
            }
        }
        let mut summary: HashMap<String, String> = extra_summary
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        summary.insert(COMMIT_ID_KEY.into(), commit_id.to_string());
        summary.insert(
            offsets::offsets_key(&self.group),
            offsets::encode(&offsets::merged(&recorded, next)),
        );
        summary.insert(offsets::complete_key(&self.group), "true".into());
        let tx = Transaction::new(&self.table);
        let append = tx
            .fast_append()
            .with_check_duplicate(false)
            .add_data_files(files)
            .set_snapshot_properties(summary);
        let table_name = self.ident.to_string();
        let tx = append.apply(tx).map_err(|source| SinkError::Table {
            table: table_name.clone(),
            action: "preparing the append",
            source,
        })?;
        match bounded("committing", tx.commit(self.catalog.as_ref())).await {
            Ok(table) => {
                self.table = table;
                Ok(CommitOutcome::Committed)
            }
            Err(source) => {
                // The outcome may be unknown (e.g. the catalog answered with an error after
                // writing). Look for our commit id before deciding anything.
                if self.reload().await.is_ok()
                    && offsets::has_commit(self.table.metadata(), commit_id)
                {
                    return Ok(CommitOutcome::AlreadyCommitted);
                }
                Err(SinkError::Table {
                    table: table_name,
                    action: "committing the snapshot",
                    source,
                })
            }
        }
    }
}

/// How long one catalog call may take. Without a bound, a catalog that stops answering (a
/// PostgreSQL server gone without closing its connections waits out sqlx's 30 s pool timeout
/// per attempt; a REST server that hangs, forever) keeps the worker from reporting the outage
/// on `/readyz`. A commit cut off here has an unknown outcome, which the next attempt resolves by
/// looking for its commit id.
pub const CATALOG_CALL_TIMEOUT: Duration = Duration::from_secs(10);

async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, iceberg::Error>>,
) -> Result<T, iceberg::Error> {
    tokio::time::timeout(CATALOG_CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(iceberg::Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{what}: the catalog did not answer within {}s (is it reachable?)",
                    CATALOG_CALL_TIMEOUT.as_secs()
                ),
            )
            .with_retryable(true))
        })
}

/// A new namespace (the domain) says which domain it is and who owns it, for catalog
/// browsers and the engines' `SHOW SCHEMAS`.
fn namespace_properties(spec: &TableSpec) -> HashMap<String, String> {
    [("domain", "datamesh.domain"), ("owner", "datamesh.owner")]
        .into_iter()
        .filter_map(|(key, from)| {
            spec.properties
                .get(from)
                .map(|value| (key.to_string(), value.clone()))
        })
        .collect()
}

fn partition_spec(
    schema: &Schema,
    fields: &[PartitionField],
) -> Result<UnboundPartitionSpec, iceberg::Error> {
    let mut builder = UnboundPartitionSpec::builder();
    for field in fields {
        let source = schema.field_by_name(&field.column).ok_or_else(|| {
            iceberg::Error::new(
                ErrorKind::DataInvalid,
                format!("partition column `{}` is not in the schema", field.column),
            )
        })?;
        let transform: Transform = field.transform.iceberg_name().parse()?;
        let name = match field.transform {
            meshd_config::PartitionTransform::Identity => field.column.clone(),
            t => format!(
                "{}_{}",
                field.column,
                t.iceberg_name().split('[').next().unwrap_or("p")
            ),
        };
        builder = builder.add_partition_field(source.id, name, transform)?;
    }
    Ok(builder.build())
}
