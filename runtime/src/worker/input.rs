//! The input stage: the worker's consumer, what it holds, and how records leave it in chunks.
//! Assignments, revocations and seeks are called from the worker loop, never from
//! librdkafka's callbacks.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use meshd_sinks::iceberg::Offsets;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use super::WorkerOptions;
use super::chunk::Chunk;
use crate::kafka::InputContext;

/// The worker's consumer and the partitions it has assigned.
pub struct Input {
    consumer: StreamConsumer<InputContext>,
    assigned: BTreeSet<(String, i32)>,
    /// Whether chunks copy records' headers (a port keeps them in its table).
    capture_headers: bool,
}

impl Input {
    /// Wraps a subscribed consumer that holds nothing yet; with `capture_headers`, its chunks
    /// carry the records' headers.
    pub fn new(consumer: StreamConsumer<InputContext>, capture_headers: bool) -> Self {
        Self {
            consumer,
            assigned: BTreeSet::new(),
            capture_headers,
        }
    }

    /// The partitions assigned now.
    pub fn assigned(&self) -> &BTreeSet<(String, i32)> {
        &self.assigned
    }

    /// Waits for a record, then adds whatever else is already fetched, without waiting, up
    /// to the chunk limits. A consumer error is logged and yields no chunk (librdkafka retries).
    ///
    /// One message stream serves the whole fill: `recv()` per message would register and
    /// unregister a waker slot (a mutex each way) for every record.
    pub async fn next_chunk(&self, options: &WorkerOptions) -> Option<Chunk> {
        let first = match self.consumer.recv().await {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "Consumer error; librdkafka will retry.");
                return None;
            }
        };
        let mut chunk = Chunk::new(self.capture_headers);
        chunk.push(&first);
        drop(first);
        let mut messages = self.consumer.stream();
        while chunk.len() < options.max_chunk_records && chunk.bytes() < options.max_chunk_bytes {
            match messages.next().now_or_never().flatten() {
                Some(Ok(message)) => chunk.push(&message),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Consumer error; librdkafka will retry.");
                    break;
                }
                None => break,
            }
        }
        Some(chunk)
    }

    /// Starts reading `partitions`, each from its offset (None: the group's committed offset,
    /// else `auto.offset.reset`).
    pub fn assign(&mut self, partitions: &[((String, i32), Option<i64>)]) -> KafkaResult<()> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in partitions {
            let at = offset.map_or(Offset::Invalid, Offset::Offset);
            tpl.add_partition_offset(topic, *partition, at)?;
        }
        self.consumer.incremental_assign(&tpl)?;
        self.assigned
            .extend(partitions.iter().map(|(tp, _)| tp.clone()));
        Ok(())
    }

    /// Stops reading `partitions` and gives them back to the group.
    pub fn unassign(&mut self, partitions: &[(String, i32)]) -> KafkaResult<()> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in partitions {
            if self.assigned.contains(&(topic.clone(), *partition)) {
                tpl.add_partition(topic, *partition);
            }
        }
        for tp in partitions {
            self.assigned.remove(tp);
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer.incremental_unassign(&tpl)
    }

    /// Moves a partition's read position (None: its first offset).
    pub fn seek(&self, topic: &str, partition: i32, offset: Option<i64>) {
        let at = offset.map_or(Offset::Beginning, Offset::Offset);
        if let Err(e) = self
            .consumer
            .seek(topic, partition, at, Duration::from_secs(10))
        {
            tracing::warn!(topic, partition, offset = ?offset, error = %e, "Seeking to the table's offset failed.");
        }
    }

    /// Commits offsets to the consumer group: for lag display only, the tables are the truth.
    pub fn commit_group_offsets(&self, next: &Offsets) {
        if let Err(e) = crate::kafka::commit_group_offsets(&self.consumer, next) {
            tracing::debug!(error = %e, "Committing group offsets failed (lag display only).");
        }
    }
}
