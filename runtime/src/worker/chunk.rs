//! A chunk of consumed records, copied once out of librdkafka's buffers into one contiguous
//! allocation; records are addressed by spans, so there is no allocation per record.
//!
//! Besides key and value, a chunk keeps each record's Kafka timestamp (a number, always) and,
//! only when a port of the worker keeps them in its table, its headers, copied into the same
//! buffer and addressed by spans too.

use std::ops::Range;
use std::panic::AssertUnwindSafe;

use meshd_kafka_batch::BatchMessage;
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

/// Where one record came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// Index into [`Chunk::topics`].
    pub topic: u16,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// One header of a record: spans of its key and value in the chunk's buffer.
#[derive(Debug, Clone)]
struct HeaderSpan {
    key: Range<usize>,
    value: Option<Range<usize>>,
}

/// Records consumed together and processed as one batch.
#[derive(Default)]
pub struct Chunk {
    data: Vec<u8>,
    values: Vec<Option<Range<usize>>>,
    keys: Vec<Option<Range<usize>>>,
    /// Where each record came from.
    pub origins: Vec<Origin>,
    /// Topic names seen in this chunk.
    pub topics: Vec<String>,
    /// Each record's Kafka timestamp, milliseconds since the epoch.
    timestamps: Vec<Option<i64>>,
    /// Whether headers are copied in: only when a port keeps them, so other workers do not
    /// pay for them.
    capture_headers: bool,
    /// Per record, its range in `headers` (empty unless headers are captured).
    header_runs: Vec<Range<usize>>,
    /// Every captured header, record after record.
    headers: Vec<HeaderSpan>,
}

impl Chunk {
    /// An empty chunk; with `capture_headers`, records' headers are copied in too.
    pub fn new(capture_headers: bool) -> Self {
        Self {
            capture_headers,
            ..Self::default()
        }
    }

    /// Copies a message in (one that came through the consumer's own queue).
    pub fn push(&mut self, message: &BorrowedMessage<'_>) {
        // Parsing headers costs: only when a port keeps them.
        let headers = if self.capture_headers {
            message.headers()
        } else {
            None
        };
        let count = headers.map_or(0, |h| h.count());
        self.push_record(
            (message.topic(), message.partition(), message.offset()),
            (message.key(), message.payload()),
            message.timestamp().to_millis(),
            (0..count).map_while(|i| {
                // rdkafka 0.39 unwraps a header key as UTF-8 and panics on other bytes, which
                // a producer can send: such a header is left out rather than the worker
                // brought down by one record.
                match std::panic::catch_unwind(AssertUnwindSafe(|| headers?.try_get(i))) {
                    Ok(header) => header.map(|h| Some((h.key, h.value))),
                    Err(_) => Some(None),
                }
            }),
        );
    }

    /// Copies a message of a batch in.
    pub fn push_batched(&mut self, message: &BatchMessage<'_>) {
        // Parsing headers costs: only when a port keeps them.
        let headers = self.capture_headers.then(|| message.headers());
        self.push_record(
            (message.topic(), message.partition(), message.offset()),
            (message.key(), message.payload()),
            message.timestamp_millis(),
            headers
                .into_iter()
                .flatten()
                .map(|h| h.key.ok().map(|key| (key, h.value))),
        );
    }

    /// Adds a record: where it came from, key and value, timestamp, and (when the chunk captures
    /// them) its headers, `None` for one whose key is not UTF-8, which is left out with a warning.
    fn push_record<'h>(
        &mut self,
        (topic, partition, offset): (&str, i32, i64),
        (key, value): (Option<&[u8]>, Option<&[u8]>),
        timestamp: Option<i64>,
        headers: impl Iterator<Item = Option<(&'h str, Option<&'h [u8]>)>>,
    ) {
        self.push_parts(topic, partition, offset, key, value);
        self.set_timestamp(timestamp);
        if !self.capture_headers {
            return;
        }
        for (i, header) in headers.enumerate() {
            match header {
                Some((key, value)) => self.add_header(key, value),
                None => tracing::warn!(
                    topic,
                    partition,
                    offset,
                    header = i,
                    "A Kafka header key is not UTF-8; that header is left out of the table."
                ),
            }
        }
    }

    /// Sets the Kafka timestamp (milliseconds since the epoch) of the record added last.
    pub fn set_timestamp(&mut self, millis: Option<i64>) {
        if let Some(last) = self.timestamps.last_mut() {
            *last = millis;
        }
    }

    /// Adds a header to the record added last; ignored unless the chunk captures headers.
    pub fn add_header(&mut self, key: &str, value: Option<&[u8]>) {
        if !self.capture_headers {
            return;
        }
        let key = self.copy(key.as_bytes());
        let value = value.map(|v| self.copy(v));
        self.headers.push(HeaderSpan { key, value });
        if let Some(run) = self.header_runs.last_mut() {
            run.end = self.headers.len();
        }
    }

    /// Record `i`'s Kafka timestamp, milliseconds since the epoch (None: it has none).
    pub fn timestamp(&self, i: usize) -> Option<i64> {
        self.timestamps[i]
    }

    /// Record `i`'s headers in the order sent (none unless the chunk captures headers).
    pub fn headers(&self, i: usize) -> impl Iterator<Item = (&str, Option<&[u8]>)> + '_ {
        let run = self.header_runs.get(i).cloned().unwrap_or_default();
        self.headers[run].iter().map(|h| {
            // Copied from a `&str`, so always UTF-8.
            let key = std::str::from_utf8(&self.data[h.key.clone()]).unwrap_or_default();
            (key, h.value.clone().map(|v| &self.data[v]))
        })
    }

    fn copy(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        start..self.data.len()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Record `i`'s value.
    pub fn value(&self, i: usize) -> Option<&[u8]> {
        self.values[i].clone().map(|r| &self.data[r])
    }

    /// Record `i`'s key.
    pub fn key(&self, i: usize) -> Option<&[u8]> {
        self.keys[i].clone().map(|r| &self.data[r])
    }

    /// Value bytes of the records of topic `t` (by index), for metrics.
    pub fn value_bytes_of(&self, t: u16) -> u64 {
        self.origins
            .iter()
            .zip(&self.values)
            .filter(|(o, _)| o.topic == t)
            .map(|(_, v)| v.as_ref().map_or(0, |r| r.len() as u64))
            .sum()
    }
}

/// The records of one partition within a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRun {
    /// Index into [`Chunk::topics`].
    pub topic: u16,
    /// Partition.
    pub partition: i32,
    /// The first offset.
    pub first: i64,
    /// The offset after the last.
    pub next: i64,
    /// Whether the offsets inside skip (a compacted or transactional topic, or records the
    /// broker did not deliver): `(expected, got)` of the first skip.
    pub skip: Option<(i64, i64)>,
}

impl Chunk {
    /// Per partition: where its records start and end, folded once so a topic name is looked
    /// up once per partition rather than per record.
    pub fn runs(&self) -> Vec<PartitionRun> {
        let mut runs: Vec<PartitionRun> = Vec::new();
        for o in &self.origins {
            // Records of one partition arrive in runs: the latest entry is the likely match.
            match runs
                .iter_mut()
                .rev()
                .find(|r| r.topic == o.topic && r.partition == o.partition)
            {
                Some(run) => {
                    if o.offset != run.next && run.skip.is_none() {
                        run.skip = Some((run.next, o.offset));
                    }
                    run.next = run.next.max(o.offset + 1);
                }
                None => runs.push(PartitionRun {
                    topic: o.topic,
                    partition: o.partition,
                    first: o.offset,
                    next: o.offset + 1,
                    skip: None,
                }),
            }
        }
        runs
    }

    /// Index of a topic in this chunk.
    pub fn topic_index(&self, topic: &str) -> Option<u16> {
        self.topics
            .iter()
            .position(|t| t == topic)
            .map(|i| i as u16)
    }

    /// Adds a record from its parts (tests and benches build chunks without a broker).
    pub fn push_parts(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) {
        let t = match self.topic_index(topic) {
            Some(i) => i,
            None => {
                self.topics.push(topic.to_string());
                (self.topics.len() - 1) as u16
            }
        };
        let value = value.map(|v| self.copy(v));
        let key = key.map(|k| self.copy(k));
        self.values.push(value);
        self.keys.push(key);
        self.origins.push(Origin {
            topic: t,
            partition,
            offset,
        });
        self.timestamps.push(None);
        if self.capture_headers {
            let at = self.headers.len();
            self.header_runs.push(at..at);
        }
    }
}
