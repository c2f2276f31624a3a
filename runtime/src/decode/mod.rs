//! Decode: Kafka record values → Arrow `RecordBatch`es in the port's *wire* schema, plus the
//! records that could not be decoded, each with its reason.
//!
//! Records are fed one by one into a streaming Arrow decoder (arrow-json or arrow-avro), so
//! there is no per-record value tree. A record that breaks framing is rejected alone and the
//! decoder is rebuilt from the good records before it; an error that only shows when the
//! batch is built (a wrong type in JSON) is narrowed down by bisection. Each good record is
//! decoded at most about twice; the common all-good batch is decoded once.

mod avro;
mod json;
pub mod wire;

use arrow_array::RecordBatch;

pub use avro::AvroDecoderFactory;
pub use json::JsonDecoderFactory;

/// Rejection reasons: a bounded set, used as the `reason` metric label and DLQ header.
pub mod reason {
    /// Not parseable in the port's format (broken JSON, truncated Avro, trailing bytes).
    pub const DECODE: &str = "decode";
    /// Parseable, but a value has the wrong type for the schema.
    pub const SCHEMA: &str = "schema";
    /// A required field is missing or null.
    pub const REQUIRED: &str = "required";
    /// An enum value is not one of the symbols.
    pub const ENUM: &str = "enum";
    /// A decimal does not fit the declared precision.
    pub const DECIMAL: &str = "decimal";
    /// A value is malformed for its logical type (uuid, fixed length).
    pub const FORMAT: &str = "format";
    /// The record has no value (a tombstone).
    pub const NULL_VALUE: &str = "null-value";
    /// The record is larger than the configured limit.
    pub const TOO_LARGE: &str = "too-large";
}

/// A streaming decoder for one batch of records.
pub trait RowDecoder: Send {
    /// Adds one record. An error means the record is malformed; the decoder must then be
    /// discarded, because its state is unknown.
    fn feed(&mut self, payload: &[u8]) -> Result<(), String>;
    /// Builds the rows fed so far.
    fn flush(&mut self) -> Result<Option<RecordBatch>, String>;
}

/// Makes decoders for a port; one factory per worker.
pub trait DecoderFactory: Send + Sync {
    /// A fresh decoder for up to `capacity` records.
    fn decoder(&self, capacity: usize) -> Box<dyn RowDecoder>;
}

/// A record that will go to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the record in the input slice.
    pub index: u32,
    /// One of [`reason`].
    pub kind: &'static str,
    /// What is wrong, naming the field; never the value.
    pub message: String,
}

/// The outcome of decoding a slice of records.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Batches in input order, each with the input index of every row.
    pub batches: Vec<(RecordBatch, Vec<u32>)>,
    /// Records that could not be decoded.
    pub rejected: Vec<Rejection>,
}

/// Decodes `payloads` (None for a record without a value).
pub fn decode_all(
    factory: &dyn DecoderFactory,
    payloads: &[Option<&[u8]>],
    max_record_bytes: usize,
) -> Decoded {
    let mut out = Decoded::default();
    let mut run: Vec<u32> = Vec::with_capacity(payloads.len());
    let mut decoder = factory.decoder(payloads.len().max(1));
    for (i, payload) in payloads.iter().enumerate() {
        let index = i as u32;
        let Some(bytes) = payload else {
            out.reject(
                index,
                reason::NULL_VALUE,
                "the record has no value (a tombstone)".into(),
            );
            continue;
        };
        if bytes.len() > max_record_bytes {
            out.reject(
                index,
                reason::TOO_LARGE,
                format!(
                    "the record is {} bytes, above the {max_record_bytes}-byte limit",
                    bytes.len()
                ),
            );
            continue;
        }
        match decoder.feed(bytes) {
            Ok(()) => run.push(index),
            Err(message) => {
                out.reject(index, reason::DECODE, message);
                // The decoder's state is unknown now: rebuild the good run before this record.
                flush_segment(factory, payloads, std::mem::take(&mut run), &mut out);
                decoder = factory.decoder(payloads.len().max(1));
            }
        }
    }
    match decoder.flush() {
        Ok(Some(batch)) if batch.num_rows() == run.len() => out.batches.push((batch, run)),
        Ok(None) if run.is_empty() => {}
        // A wrong type or a row-count surprise: find the culprits.
        _ => bisect(factory, payloads, run, &mut out),
    }
    out
}

impl Decoded {
    /// Input indices that became rows, and (index, reason) of the rejected ones, sorted.
    #[cfg(test)]
    pub(crate) fn outcome(&self) -> (Vec<u32>, Vec<(u32, &'static str)>) {
        let rows = self
            .batches
            .iter()
            .flat_map(|(_, rows)| rows.iter().copied())
            .collect();
        let mut rejected: Vec<(u32, &'static str)> =
            self.rejected.iter().map(|r| (r.index, r.kind)).collect();
        rejected.sort();
        (rows, rejected)
    }

    fn reject(&mut self, index: u32, kind: &'static str, message: String) {
        self.rejected.push(Rejection {
            index,
            kind,
            message,
        });
    }
}

/// Decodes a run of records known to frame correctly; on a flush error, bisects.
fn flush_segment(
    factory: &dyn DecoderFactory,
    payloads: &[Option<&[u8]>],
    run: Vec<u32>,
    out: &mut Decoded,
) {
    if run.is_empty() {
        return;
    }
    let mut decoder = factory.decoder(run.len());
    let mut fed = Vec::with_capacity(run.len());
    for &i in &run {
        let bytes = payloads[i as usize].unwrap_or_default();
        match decoder.feed(bytes) {
            Ok(()) => fed.push(i),
            Err(message) => {
                // Should not happen for records that fed before; stay safe anyway.
                out.reject(i, reason::DECODE, message);
                flush_segment(factory, payloads, std::mem::take(&mut fed), out);
                decoder = factory.decoder(run.len());
            }
        }
    }
    match decoder.flush() {
        Ok(Some(batch)) if batch.num_rows() == fed.len() => out.batches.push((batch, fed)),
        Ok(None) if fed.is_empty() => {}
        Ok(_) if fed.len() == 1 => out.reject(
            fed[0],
            reason::DECODE,
            "the record does not decode to exactly one row".into(),
        ),
        Err(message) if fed.len() == 1 => {
            let (kind, message) = flush_rejection(&message);
            out.reject(fed[0], kind, message);
        }
        _ => bisect(factory, payloads, fed, out),
    }
}

/// A decoder's error for one record, as a reason and a message without the offending value:
/// arrow-json quotes the value it could not parse, and that value may be PII.
fn flush_rejection(message: &str) -> (&'static str, String) {
    let lower = message.to_ascii_lowercase();
    let kind = if lower.contains("decimal")
        && (lower.contains("overflow") || lower.contains("precision"))
    {
        reason::DECIMAL
    } else if lower.contains("utf-8") || lower.contains("utf8") {
        // Bytes in a string field that are not text: the record is not decodable.
        reason::DECODE
    } else if lower.contains("dictionary key") {
        // arrow-avro decodes enums as dictionaries: an index past the symbols.
        reason::ENUM
    } else {
        reason::SCHEMA
    };
    (kind, redact_values(message))
}

/// Replaces double-quoted and parenthesised spans (where decoders put values) by `<value>`.
fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut closing: Option<char> = None;
    for c in message.chars() {
        match closing {
            Some(end) if c == end => closing = None,
            Some(_) => {}
            None if c == '"' => {
                closing = Some('"');
                out.push_str("<value>");
            }
            None if c == '(' => {
                closing = Some(')');
                out.push_str("(<value>)");
            }
            None => out.push(c),
        }
    }
    out
}

fn bisect(
    factory: &dyn DecoderFactory,
    payloads: &[Option<&[u8]>],
    mut run: Vec<u32>,
    out: &mut Decoded,
) {
    if run.len() <= 1 {
        flush_segment(factory, payloads, run, out);
        return;
    }
    let right = run.split_off(run.len() / 2);
    flush_segment(factory, payloads, run, out);
    flush_segment(factory, payloads, right, out);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn factory() -> JsonDecoderFactory {
        let text = include_str!("../../../examples/payments/schema/transactions.avsc");
        let schema = meshd_config::PortSchema::parse(text, Path::new("transactions.avsc"))
            .expect("reference schema");
        JsonDecoderFactory::new(wire::json_wire_schema(&schema))
    }

    const GOOD: &str = r#"{"transaction_id":"t1","account_id":1,"email":"a@b.c","card_last4":null,"amount":"1.50","currency":"JPY","region":"JP","status":"SETTLED","event_time":1764000000000}"#;

    #[test]
    fn bad_records_are_isolated_with_a_reason_and_without_their_value() {
        let bad_type = GOOD.replace(r#""account_id":1"#, r#""account_id":"secret-42""#);
        let overflow = GOOD.replace(r#""amount":"1.50""#, r#""amount":"123456789012345678.99""#);
        let broken = &GOOD[..40];
        let payloads: Vec<Option<&[u8]>> = vec![
            Some(GOOD.as_bytes()),
            Some(bad_type.as_bytes()),
            Some(GOOD.as_bytes()),
            Some(overflow.as_bytes()),
            Some(broken.as_bytes()),
            None,
            Some(GOOD.as_bytes()),
        ];
        let decoded = decode_all(&factory(), &payloads, 1 << 20);
        let (rows, rejected) = decoded.outcome();
        assert_eq!(rows, vec![0, 2, 6]);
        assert_eq!(
            rejected,
            vec![
                (1, reason::SCHEMA),
                (3, reason::DECIMAL),
                (4, reason::DECODE),
                (5, reason::NULL_VALUE)
            ]
        );
        for r in &decoded.rejected {
            assert!(
                !r.message.contains("secret-42") && !r.message.contains("123456789"),
                "{}",
                r.message
            );
        }
    }

    #[test]
    fn oversized_records_are_rejected_before_decoding() {
        let payloads: Vec<Option<&[u8]>> = vec![Some(GOOD.as_bytes())];
        let decoded = decode_all(&factory(), &payloads, 10);
        assert_eq!(decoded.rejected.len(), 1);
        assert_eq!(decoded.rejected[0].kind, reason::TOO_LARGE);
    }
}
