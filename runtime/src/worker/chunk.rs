//! A chunk of consumed records, copied once out of librdkafka's buffers into one contiguous
//! allocation; records are addressed by spans, so there is no allocation per record.

use std::ops::Range;

use rdkafka::Message;
use rdkafka::message::BorrowedMessage;

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
}

impl Chunk {
    /// Copies a message in.
    pub fn push(&mut self, message: &BorrowedMessage<'_>) {
        self.push_parts(
            message.topic(),
            message.partition(),
            message.offset(),
            message.key(),
            message.payload(),
        );
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
        let mut span = |bytes: Option<&[u8]>| {
            bytes.map(|b| {
                let start = self.data.len();
                self.data.extend_from_slice(b);
                start..self.data.len()
            })
        };
        let value = span(value);
        let key = span(key);
        self.values.push(value);
        self.keys.push(key);
        self.origins.push(Origin {
            topic: t,
            partition,
            offset,
        });
    }
}
