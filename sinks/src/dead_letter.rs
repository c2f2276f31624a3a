//! The dead-letter output: records that fail decoding or validation are produced, unchanged
//! (oversized payloads cut, see [`MAX_PAYLOAD_BYTES`]), to `<source>.dlq` with headers saying
//! why, so nothing consumed is ever silently dropped.
//! A record's offset counts as done only after its dead-letter produce is acknowledged.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::SinkError;

/// Header names on dead-letter records.
pub mod headers {
    /// Why it failed: `decode`, `validation`, `too-large`, ….
    pub const ERROR_KIND: &str = "meshd.error.kind";
    /// The human-readable reason (field path, expected type; never the value).
    pub const ERROR_MESSAGE: &str = "meshd.error.message";
    /// Source topic.
    pub const SOURCE_TOPIC: &str = "meshd.source.topic";
    /// Source partition.
    pub const SOURCE_PARTITION: &str = "meshd.source.partition";
    /// Source offset.
    pub const SOURCE_OFFSET: &str = "meshd.source.offset";
    /// The product whose worker rejected it.
    pub const PRODUCT: &str = "meshd.product";
    /// Set when the payload was cut to fit a Kafka message: the original size in bytes (the
    /// whole record stays in the source topic at the `meshd.source.*` coordinates).
    pub const PAYLOAD_TRUNCATED: &str = "meshd.payload.truncated";
}

/// Payloads above this are cut to [`TRUNCATED_PAYLOAD_BYTES`]: a dead letter must fit the
/// producer's and broker's default 1 MB message limit with its headers, or its produce would
/// fail for ever and stall the worker.
pub const MAX_PAYLOAD_BYTES: usize = 900_000;
/// How much of an oversized payload a dead letter keeps.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 64 * 1024;

/// One record to dead-letter.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// Dead-letter topic.
    pub topic: &'a str,
    /// Original key.
    pub key: Option<&'a [u8]>,
    /// Original value.
    pub payload: Option<&'a [u8]>,
    /// Short reason class (bounded set: used as a metric label).
    pub kind: &'static str,
    /// The reason.
    pub message: &'a str,
    /// Where it came from.
    pub source_topic: &'a str,
    /// Source partition.
    pub source_partition: i32,
    /// Source offset.
    pub source_offset: i64,
}

/// Produces dead letters and waits for their acknowledgement.
pub struct DeadLetterOutput {
    producer: FutureProducer,
    product: String,
}

impl DeadLetterOutput {
    /// A producer with `acks=all` on the same cluster as the input ports.
    pub fn new(mut config: ClientConfig, product: &str) -> Result<Self, SinkError> {
        config
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000");
        let producer = config.create().map_err(|source| SinkError::DeadLetter {
            topic: "(producer)".into(),
            source,
        })?;
        Ok(Self {
            producer,
            product: product.to_string(),
        })
    }

    /// Sends every letter and returns once all are acknowledged, or the first failure.
    pub async fn send_all(&self, letters: &[DeadLetter<'_>]) -> Result<(), SinkError> {
        let sends = letters.iter().map(|l| {
            let partition = l.source_partition.to_string();
            let offset = l.source_offset.to_string();
            let (payload, truncated) = match l.payload {
                Some(p) if p.len() > MAX_PAYLOAD_BYTES => (
                    Some(&p[..TRUNCATED_PAYLOAD_BYTES]),
                    Some(p.len().to_string()),
                ),
                other => (other, None),
            };
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: headers::ERROR_KIND,
                    value: Some(l.kind),
                })
                .insert(Header {
                    key: headers::ERROR_MESSAGE,
                    value: Some(l.message),
                })
                .insert(Header {
                    key: headers::SOURCE_TOPIC,
                    value: Some(l.source_topic),
                })
                .insert(Header {
                    key: headers::SOURCE_PARTITION,
                    value: Some(&partition),
                })
                .insert(Header {
                    key: headers::SOURCE_OFFSET,
                    value: Some(&offset),
                })
                .insert(Header {
                    key: headers::PRODUCT,
                    value: Some(&self.product),
                });
            if let Some(original) = &truncated {
                headers = headers.insert(Header {
                    key: headers::PAYLOAD_TRUNCATED,
                    value: Some(original),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(l.topic).headers(headers);
            if let Some(k) = l.key {
                record = record.key(k);
            }
            if let Some(p) = payload {
                record = record.payload(p);
            }
            let topic = l.topic.to_string();
            let fut = self
                .producer
                .send(record, Timeout::After(Duration::from_secs(60)));
            async move {
                fut.await
                    .map(|_| ())
                    .map_err(|(source, _)| SinkError::DeadLetter { topic, source })
            }
        });
        join_all(sends).await.into_iter().collect()
    }
}
