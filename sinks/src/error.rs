//! The one error type of the sinks crate. Each variant names the table or topic involved;
//! [`SinkError::retryable`] says whether trying again can help.

/// Errors of the Iceberg and dead-letter outputs.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The catalog could not be opened.
    #[error(
        "cannot open the {kind} catalog at {uri}: {source} (check catalog.uri, the credentials, and that the catalog is reachable)"
    )]
    CatalogOpen {
        /// `sql` or `rest`.
        kind: &'static str,
        /// The catalog URI (never contains secrets for sqlite; postgres passwords are stripped).
        uri: String,
        /// The underlying error.
        #[source]
        source: iceberg::Error,
    },
    /// A platform setting is wrong: the message names it and says how to fix it.
    #[error("{setting} {problem}: {fix}")]
    Config {
        /// The setting (`catalog.uri`, `storage.endpoint`).
        setting: String,
        /// What is wrong with it.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// The table location on storage cannot be used (probe write, listing, deleting).
    #[error("storage at {location}: {action} failed: {source}")]
    Storage {
        /// The location (bucket and prefix, or local folder).
        location: String,
        /// What we were doing.
        action: &'static str,
        /// The storage error, whose message starts with the diagnosis and the fix.
        #[source]
        source: iceberg::Error,
    },
    /// This catalog or storage is not available in this build.
    #[error("{what} is not supported yet: {fix}")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// What to use instead.
        fix: String,
    },
    /// The port's schema differs from the table's in a way meshd will not apply.
    #[error(
        "table {table}: schema change refused: {changes} (run `meshd plan` to see every change)"
    )]
    SchemaChange {
        /// `namespace.table`.
        table: String,
        /// The refused or pending changes.
        changes: String,
    },
    /// A catalog operation on a table failed.
    #[error("table {table}: {action} failed: {source}")]
    Table {
        /// `namespace.table`.
        table: String,
        /// What we were doing.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: iceberg::Error,
    },
    /// Another worker recorded progress on a partition this commit covers: this worker lost
    /// the partition (a zombie) and must drop its uncommitted data.
    #[error(
        "table {table}: commit {commit_id} fenced: {topic}[{partition}] is recorded at offset {recorded:?} but this worker expected {expected:?}; another worker owns the partition now"
    )]
    Fenced {
        /// `namespace.table`.
        table: String,
        /// The commit that was refused.
        commit_id: String,
        /// Topic of the partition.
        topic: String,
        /// Partition number.
        partition: i32,
        /// What the table says.
        recorded: Option<i64>,
        /// What this worker expected.
        expected: Option<i64>,
    },
    /// A dead-letter record could not be produced.
    #[error("dead-letter topic {topic}: produce failed: {source}")]
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
        /// The Kafka error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl SinkError {
    /// Whether retrying the same operation can succeed (conflicts, unavailable services).
    pub fn retryable(&self) -> bool {
        match self {
            Self::CatalogOpen { .. } => true,
            Self::Table { source, .. } => {
                source.retryable()
                    || matches!(
                        source.kind(),
                        iceberg::ErrorKind::CatalogCommitConflicts | iceberg::ErrorKind::Unexpected
                    )
            }
            Self::DeadLetter { .. } => true,
            Self::Storage { source, .. } => source.retryable(),
            Self::Fenced { .. }
            | Self::Unsupported { .. }
            | Self::SchemaChange { .. }
            | Self::Config { .. } => false,
        }
    }
}
