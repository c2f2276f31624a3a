//! The one error type of the runtime library; the binary wraps it with `anyhow` at the edge.

use meshd_config::ConfigError;
use meshd_sinks::SinkError;

/// What can stop a worker or the process.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A descriptor or the platform config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Iceberg or dead-letter output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A Kafka client operation failed.
    #[error("Kafka: {what} failed: {source} (check kafka bootstrap.servers and security settings)")]
    Kafka {
        /// What we were doing.
        what: String,
        /// The client error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A topic could not be created.
    #[error("Kafka: cannot create topic {topic}: {message}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        message: String,
    },
    /// The product uses something this version cannot run yet.
    #[error("product {product}: {message}")]
    Unsupported {
        /// The product.
        product: String,
        /// What and how to change it.
        message: String,
    },
    /// An Arrow operation on a batch failed (a bug or an unexpected schema).
    #[error("product {product}: processing a batch failed: {source}")]
    Batch {
        /// The product.
        product: String,
        /// The Arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The schema registry could not be used (unreachable, refusing, misconfigured).
    #[error("schema registry {url}: {problem}")]
    Registry {
        /// The request's URL, without credentials.
        url: String,
        /// What went wrong and what to check.
        problem: String,
    },
    /// The masking key could not be read.
    #[error("masking key: {0}")]
    MaskingKey(String),
    /// The metrics registry could not be built (a bug: metric names are static).
    #[error("registering metrics failed: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A worker task ended abnormally (it panicked or was aborted).
    #[error("a worker task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The metrics endpoint could not start.
    #[error(
        "cannot listen on {addr} for metrics: {source} (set metrics.listen or MESHD_METRICS_LISTEN)"
    )]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An export's output cannot be written where it was asked to go.
    #[error("{}: {message}", path.display())]
    ExportTarget {
        /// The output file or folder.
        path: std::path::PathBuf,
        /// What is wrong and how to proceed.
        message: String,
    },
    /// Writing an exported file failed.
    #[error("cannot write {}: {source}", path.display())]
    ExportWrite {
        /// The file.
        path: std::path::PathBuf,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
}
