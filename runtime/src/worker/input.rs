//! The input stage: the worker's consumer, what it holds, and how records leave it in chunks.
//! Assignments, revocations and seeks are called from the worker loop, never from
//! librdkafka's callbacks.
//!
//! Records arrive in batches: every partition is routed to a [`BatchQueue`] before it is
//! assigned, and read `rd_kafka_consume_batch_queue` at a time (rust-rdkafka's per-message
//! poll cost more CPU than decoding the record). The consumer's own queue is still polled on
//! every chunk: rebalances, statistics and group errors arrive there, and librdkafka counts
//! those polls against `max.poll.interval.ms`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use meshd_kafka_batch::{BatchQueue, MAX_BATCH};
use meshd_sinks::iceberg::Offsets;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use super::WorkerOptions;
use super::chunk::Chunk;
use crate::kafka::InputContext;

/// The worker's consumer and the partitions it has assigned.
pub struct Input {
    consumer: Arc<StreamConsumer<InputContext>>,
    /// Where the assigned partitions' records are read from, in batches.
    batches: BatchQueue<InputContext>,
    assigned: BTreeSet<(String, i32)>,
    /// Whether chunks copy records' headers (a port keeps them in its table).
    capture_headers: bool,
}

impl Input {
    /// Wraps a subscribed consumer that holds nothing yet; with `capture_headers`, its chunks
    /// carry the records' headers.
    pub fn new(consumer: StreamConsumer<InputContext>, capture_headers: bool) -> Self {
        let consumer = Arc::new(consumer);
        Self {
            batches: BatchQueue::new(Arc::clone(&consumer)),
            consumer,
            assigned: BTreeSet::new(),
            capture_headers,
        }
    }

    /// The partitions assigned now.
    pub fn assigned(&self) -> &BTreeSet<(String, i32)> {
        &self.assigned
    }

    /// Waits for records, then takes whatever else is already fetched, without waiting, up
    /// to the chunk limits. A consumer error is logged and yields no chunk (librdkafka retries).
    pub async fn next_chunk(&self, options: &WorkerOptions) -> Option<Chunk> {
        let mut chunk = Chunk::new(self.capture_headers);
        loop {
            if !self.serve_consumer_queue(&mut chunk, options) {
                return None;
            }
            self.take_batches(&mut chunk, options);
            if !chunk.is_empty() {
                return Some(chunk);
            }
            tokio::select! {
                message = self.consumer.recv() => match message {
                    Ok(message) => chunk.push(&message),
                    Err(e) => {
                        tracing::warn!(error = %e, "Consumer error; librdkafka will retry.");
                        return None;
                    }
                },
                () = self.batches.ready() => {}
            }
        }
    }

    /// Polls the consumer's own queue without waiting: serves rebalances and statistics, and
    /// takes the records of any partition that could not be routed. False on a consumer error.
    ///
    /// One message stream serves the whole call: `recv()` per message would register and
    /// unregister a waker slot (a mutex each way) every time.
    fn serve_consumer_queue(&self, chunk: &mut Chunk, options: &WorkerOptions) -> bool {
        let mut messages = self.consumer.stream();
        while !full(chunk, options) {
            match messages.next().now_or_never().flatten() {
                Some(Ok(message)) => chunk.push(&message),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Consumer error; librdkafka will retry.");
                    return false;
                }
                None => break,
            }
        }
        true
    }

    /// Takes fetched records of the routed partitions, a batch per librdkafka call.
    fn take_batches(&self, chunk: &mut Chunk, options: &WorkerOptions) {
        while !full(chunk, options) {
            let want = (options.max_chunk_records - chunk.len()).min(MAX_BATCH);
            let taken = self.batches.take(want, |message| match message {
                Ok(message) => chunk.push_batched(&message),
                Err(e) => tracing::warn!(error = %e, "Consumer error; librdkafka will retry."),
            });
            if taken < want {
                break;
            }
        }
    }

    /// Starts reading `partitions`, each from its offset (None: the group's committed offset,
    /// else `auto.offset.reset`).
    pub fn assign(&mut self, partitions: &[((String, i32), Option<i64>)]) -> KafkaResult<()> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in partitions {
            // Before the assignment, so that none of its records takes the other path.
            if let Err(e) = self.batches.route(topic, *partition) {
                tracing::warn!(topic, partition, error = %e, "Reading this partition record by record.");
            }
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

/// Whether a chunk has reached its limits.
fn full(chunk: &Chunk, options: &WorkerOptions) -> bool {
    chunk.len() >= options.max_chunk_records || chunk.bytes() >= options.max_chunk_bytes
}
