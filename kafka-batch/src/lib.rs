//! librdkafka's batch consume, which rust-rdkafka does not wrap.
//!
//! rust-rdkafka hands out one message per poll: per message it reads the clock, locks the
//! queue, matches an event type and wraps the message, about 0.4 µs of CPU per record, which
//! for 200-byte records is more than meshd spends decoding, masking and writing them. Here
//! the assigned partitions' fetch queues are forwarded to one queue of our own and read
//! `rd_kafka_consume_batch_queue` at a time, copied by the caller, then destroyed.
//!
//! The consumer's own queue (rebalances, statistics, errors of the group) stays with
//! rust-rdkafka and must keep being polled: batch-consuming it would let librdkafka serve
//! rebalances itself, unassigning everything behind the worker's back.
//!
//! This is the only crate of the workspace that allows `unsafe`, and only in [`queue`]: every
//! block there carries a `SAFETY:` comment; its tests run under valgrind in CI.

#[allow(unsafe_code)]
mod message;
#[allow(unsafe_code)]
mod queue;

pub use message::{BatchMessage, Header};
pub use queue::{BatchQueue, MAX_BATCH};

use rdkafka::types::RDKafkaErrorCode;

/// What can go wrong reading in batches.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A topic name that librdkafka cannot take.
    #[error(
        "topic name {0:?} contains a NUL byte, which Kafka topic names cannot; fix the port's topic"
    )]
    TopicName(String),
    /// librdkafka would not hand out the partition's queue.
    #[error(
        "librdkafka has no queue for {topic}[{partition}]; its records keep arriving on the consumer's own queue"
    )]
    NoPartitionQueue {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// librdkafka delivered an error in place of a record (librdkafka retries the fetch).
    #[error("reading {topic}[{partition}] failed: {code}")]
    Consume {
        /// Topic, when librdkafka named it.
        topic: String,
        /// Partition (-1 when the error is not about one).
        partition: i32,
        /// librdkafka's error code.
        code: RDKafkaErrorCode,
    },
}
