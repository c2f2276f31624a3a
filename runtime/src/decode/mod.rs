//! Decode: Kafka record values → Arrow `RecordBatch`es in the port's *wire* schema, plus the
//! records that could not be decoded, each with its reason.
//!
//! Records are fed one by one into a streaming Arrow decoder (arrow-json or arrow-avro), so
//! there is no per-record value tree. A record that breaks framing is rejected alone and the
//! decoder is rebuilt from the good records before it; an error that only shows when the
//! batch is built (a wrong type in JSON) is narrowed down by bisection. Each good record is
//! decoded at most about twice; the common all-good batch is decoded once.
//!
//! Why a record was rejected is a [`Reason`]. Once bisection has isolated a record that will
//! not build, its factory [diagnoses](DecoderFactory::diagnose) it from its bytes and the
//! schema, not from the decoder's error text, which quotes values and changes between arrow
//! releases.

mod avro;
pub mod confluent;
mod json;
mod reason;
pub mod resolve;
pub mod wire;

use arrow_array::RecordBatch;

pub use avro::AvroDecoderFactory;
pub use json::JsonDecoderFactory;
pub use reason::Reason;

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
    /// Why `payload`, a record that fed but did not build, is rejected, found by re-reading
    /// it against the schema: the decoder's own error is text, quoting the value. `None`
    /// when no field explains it; the record is then rejected as [`Reason::Schema`].
    fn diagnose(&self, payload: &[u8]) -> Option<Diagnosis>;
    /// Why `payload` must not reach the decoder at all (a value the decoder would mis-parse
    /// rather than reject); checked before every record is fed. `None` by default.
    fn precheck(&self, _payload: &[u8]) -> Option<Diagnosis> {
        None
    }
}

/// A reason and a message for one record, from a structural check of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The class of the problem.
    pub reason: Reason,
    /// What is wrong, naming the field path; never the value (it may be PII).
    pub message: String,
}

impl Diagnosis {
    /// Shorthand for the explainers, which build many of these.
    pub(crate) fn new(reason: Reason, message: String) -> Self {
        Self { reason, message }
    }
}

/// A record that will go to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the record in the input slice.
    pub index: u32,
    /// Why: the metric label and the dead letter's `meshd.error.kind`.
    pub kind: Reason,
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
        let bytes = match decodable(*payload, max_record_bytes) {
            Ok(bytes) => bytes,
            Err((reason, message)) => {
                out.reject(index, reason, message);
                continue;
            }
        };
        if let Some(Diagnosis { reason, message }) = factory.precheck(bytes) {
            out.reject(index, reason, message);
            continue;
        }
        match decoder.feed(bytes) {
            Ok(()) => run.push(index),
            Err(message) => {
                out.reject(index, Reason::Decode, message);
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

/// A record's bytes, or why it is rejected before any decoder sees it: no value (a
/// tombstone), or larger than the limit.
pub(crate) fn decodable(
    payload: Option<&[u8]>,
    max_record_bytes: usize,
) -> Result<&[u8], (Reason, String)> {
    let Some(bytes) = payload else {
        return Err((
            Reason::NullValue,
            "the record has no value (a tombstone)".into(),
        ));
    };
    if bytes.len() > max_record_bytes {
        return Err((
            Reason::TooLarge,
            format!(
                "the record is {} bytes, above the {max_record_bytes}-byte limit",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

impl Decoded {
    /// Input indices that became rows, and (index, reason) of the rejected ones, sorted.
    #[cfg(test)]
    pub(crate) fn outcome(&self) -> (Vec<u32>, Vec<(u32, Reason)>) {
        let rows = self
            .batches
            .iter()
            .flat_map(|(_, rows)| rows.iter().copied())
            .collect();
        let mut rejected: Vec<(u32, Reason)> =
            self.rejected.iter().map(|r| (r.index, r.kind)).collect();
        rejected.sort();
        (rows, rejected)
    }

    fn reject(&mut self, index: u32, kind: Reason, message: String) {
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
                out.reject(i, Reason::Decode, message);
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
            Reason::Decode,
            "the record does not decode to exactly one row".into(),
        ),
        Err(message) if fed.len() == 1 => {
            let bytes = payloads[fed[0] as usize].unwrap_or_default();
            let (kind, message) = match factory.diagnose(bytes) {
                Some(found) => (found.reason, found.message),
                // No field explains it: keep the decoder's words, without the values it quotes.
                None => (Reason::Schema, redact_values(&message)),
            };
            out.reject(fed[0], kind, message);
        }
        _ => bisect(factory, payloads, fed, out),
    }
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
                (1, Reason::Schema),
                (3, Reason::Decimal),
                (4, Reason::Decode),
                (5, Reason::NullValue)
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

    /// Each bad record sits between good ones, so bisection has to isolate it before it is
    /// diagnosed; the reason and the message come from the record's structure.
    #[test]
    fn json_build_failures_are_classified_by_field_and_type() {
        let with = |from: &str, to: &str| {
            assert!(GOOD.contains(from), "{from}");
            GOOD.replacen(from, to, 1).into_bytes()
        };
        let mut not_utf8 = with(r#""email":"a@b.c""#, r#""email":"secret-mail""#);
        let at = not_utf8.iter().position(|&b| b == b'-').expect("dash");
        not_utf8[at] = 0xff;
        let cases: Vec<(Vec<u8>, Reason, &str)> = vec![
            (
                with(r#""account_id":1"#, r#""account_id":"secret-42""#),
                Reason::Schema,
                "`account_id` should be a 64-bit integer, found a string that is not one",
            ),
            (
                with(r#""account_id":1"#, r#""account_id":[42]"#),
                Reason::Schema,
                "`account_id` should be a 64-bit integer, found an array",
            ),
            (
                with(r#""currency":"JPY""#, r#""currency":{"secret":1}"#),
                Reason::Schema,
                "`currency` should be a string, found an object",
            ),
            (
                with(r#""currency":"JPY""#, r#""currency":42"#),
                Reason::Schema,
                "`currency` should be a string, found a number",
            ),
            (
                with(r#""event_time":1764000000000"#, r#""event_time":true"#),
                Reason::Schema,
                "`event_time` should be a timestamp (epoch number or RFC 3339 string), found a boolean",
            ),
            (
                with(
                    r#""event_time":1764000000000"#,
                    r#""event_time":"secret-time""#,
                ),
                Reason::Schema,
                "`event_time` should be a timestamp (epoch number or RFC 3339 string), found a string that is not one",
            ),
            (
                with(r#""amount":"1.50""#, r#""amount":"secret-1.50""#),
                Reason::Schema,
                "`amount` should be a decimal(18, 2) as a number or a string, found a string that is not one",
            ),
            (
                with(r#""amount":"1.50""#, r#""amount":true"#),
                Reason::Schema,
                "`amount` should be a decimal(18, 2) as a number or a string, found a boolean",
            ),
            (
                with(r#""amount":"1.50""#, r#""amount":"123456789012345678.99""#),
                Reason::Decimal,
                "`amount` does not fit decimal(18, 2)",
            ),
            (
                with(r#""amount":"1.50""#, r#""amount":-123456789012345678"#),
                Reason::Decimal,
                "`amount` does not fit decimal(18, 2)",
            ),
            (
                with(r#""amount":"1.50""#, r#""amount":1.5e30"#),
                Reason::Decimal,
                "`amount` does not fit decimal(18, 2)",
            ),
            (
                not_utf8,
                Reason::Decode,
                "the record is not valid UTF-8 text",
            ),
            (
                br#"["secret",1]"#.to_vec(),
                Reason::Schema,
                "the record should be a JSON object, found an array",
            ),
        ];
        let factory = factory();
        for (payload, reason, message) in &cases {
            let payloads: Vec<Option<&[u8]>> = vec![
                Some(GOOD.as_bytes()),
                Some(GOOD.as_bytes()),
                Some(payload),
                Some(GOOD.as_bytes()),
            ];
            let decoded = decode_all(&factory, &payloads, 1 << 20);
            let (rows, rejected) = decoded.outcome();
            assert_eq!(rows, vec![0, 1, 3], "{message}");
            assert_eq!(rejected, vec![(2, *reason)], "{message}");
            assert_eq!(decoded.rejected[0].message, *message);
            assert!(!decoded.rejected[0].message.contains("secret"));
        }
    }

    #[test]
    fn json_that_does_not_parse_is_a_decode_failure() {
        let cases: [&[u8]; 4] = [
            &GOOD.as_bytes()[..40],
            b"{\"transaction_id\":",
            b"#secret",
            b"{} {}",
        ];
        for payload in cases {
            let decoded = decode_all(&factory(), &[Some(payload)], 1 << 20);
            assert_eq!(decoded.outcome(), (vec![], vec![(0, Reason::Decode)]));
        }
    }

    #[test]
    fn records_without_a_value_are_rejected_before_decoding() {
        let decoded = decode_all(&factory(), &[None, Some(GOOD.as_bytes())], 1 << 20);
        assert_eq!(decoded.outcome(), (vec![1], vec![(0, Reason::NullValue)]));
    }

    #[test]
    fn oversized_records_are_rejected_before_decoding() {
        let payloads: Vec<Option<&[u8]>> = vec![Some(GOOD.as_bytes())];
        let decoded = decode_all(&factory(), &payloads, 10);
        assert_eq!(decoded.rejected.len(), 1);
        assert_eq!(decoded.rejected[0].kind, Reason::TooLarge);
    }
}
