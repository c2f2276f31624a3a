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
        let topic = match self.topics.iter().position(|t| t == message.topic()) {
            Some(i) => i,
            None => {
                self.topics.push(message.topic().to_string());
                self.topics.len() - 1
            }
        };
        let mut span = |bytes: Option<&[u8]>| {
            bytes.map(|b| {
                let start = self.data.len();
                self.data.extend_from_slice(b);
                start..self.data.len()
            })
        };
        let value = span(message.payload());
        let key = span(message.key());
        self.values.push(value);
        self.keys.push(key);
        self.origins.push(Origin {
            topic: topic as u16,
            partition: message.partition(),
            offset: message.offset(),
        });
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
