//! Binary Avro datums through arrow-avro. Raw datums carry no framing, so each record is
//! given the single-object header (magic + Rabin fingerprint of the port schema) as it is
//! copied into the decoder's input; arrow-avro then decodes straight into Arrow builders.

use arrow_array::RecordBatch;
use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, SINGLE_OBJECT_MAGIC, SchemaStore};
use arrow_schema::{ArrowError, SchemaRef};

use super::{DecoderFactory, RowDecoder};

/// Builds Avro decoders for one writer schema.
pub struct AvroDecoderFactory {
    store: SchemaStore,
    prefix: [u8; 10],
    schema: SchemaRef,
}

impl AvroDecoderFactory {
    /// `avsc` is the port's schema text; records must be written with it.
    pub fn new(avsc: &str) -> Result<Self, ArrowError> {
        let mut store = SchemaStore::new();
        let fingerprint = store.register(AvroSchema::new(avsc.to_string()))?;
        let Fingerprint::Rabin(rabin) = fingerprint else {
            return Err(ArrowError::SchemaError(
                "expected a Rabin fingerprint".into(),
            ));
        };
        let mut prefix = [0u8; 10];
        prefix[..2].copy_from_slice(&SINGLE_OBJECT_MAGIC);
        prefix[2..].copy_from_slice(&rabin.to_le_bytes());
        let probe = ReaderBuilder::new()
            .with_writer_schema_store(store.clone())
            .build_decoder()?;
        Ok(Self {
            schema: probe.schema(),
            store,
            prefix,
        })
    }

    /// The Arrow schema arrow-avro decodes into (the Avro wire schema).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl DecoderFactory for AvroDecoderFactory {
    fn decoder(&self, capacity: usize) -> Box<dyn RowDecoder> {
        let decoder = ReaderBuilder::new()
            .with_writer_schema_store(self.store.clone())
            .with_batch_size(capacity.max(1))
            .build_decoder()
            .map_err(|e| e.to_string());
        Box::new(AvroRows {
            decoder,
            prefix: self.prefix,
            scratch: Vec::with_capacity(256),
        })
    }
}

struct AvroRows {
    decoder: Result<Decoder, String>,
    prefix: [u8; 10],
    scratch: Vec<u8>,
}

impl RowDecoder for AvroRows {
    fn feed(&mut self, payload: &[u8]) -> Result<(), String> {
        let decoder = self.decoder.as_mut().map_err(|e| e.clone())?;
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.prefix);
        self.scratch.extend_from_slice(payload);
        let before = decoder.capacity();
        let consumed = decoder
            .decode(&self.scratch)
            .map_err(|e| format!("invalid Avro datum: {e}"))?;
        if consumed != self.scratch.len() || before.saturating_sub(decoder.capacity()) != 1 {
            return Err(format!(
                "invalid Avro datum: {} of {} bytes form one record (truncated or trailing bytes)",
                consumed.saturating_sub(self.prefix.len()),
                payload.len()
            ));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, String> {
        let decoder = self.decoder.as_mut().map_err(|e| e.clone())?;
        decoder.flush().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;

    use super::*;
    use crate::decode::{decode_all, reason};

    const AVSC: &str = include_str!("../../../examples/payments/schema/transactions.avsc");

    fn datum(n: i64) -> Vec<u8> {
        let schema = apache_avro::Schema::parse_str(AVSC).expect("schema");
        let record = Value::Record(vec![
            ("transaction_id".into(), Value::String(format!("t{n}"))),
            ("account_id".into(), Value::Long(n)),
            ("email".into(), Value::String("a@b.c".into())),
            (
                "card_last4".into(),
                Value::Union(1, Box::new(Value::String("4242".into()))),
            ),
            (
                "amount".into(),
                Value::Decimal(apache_avro::Decimal::from(1250i64.to_be_bytes().to_vec())),
            ),
            ("currency".into(), Value::String("JPY".into())),
            ("region".into(), Value::String("JP".into())),
            ("status".into(), Value::Enum(1, "SETTLED".into())),
            (
                "event_time".into(),
                Value::TimestampMillis(1_764_000_000_000),
            ),
        ]);
        apache_avro::to_avro_datum(&schema, record).expect("encode")
    }

    #[test]
    fn binary_datums_decode_and_truncated_ones_are_dead_lettered() {
        let factory = AvroDecoderFactory::new(AVSC).expect("factory");
        let (good, other) = (datum(7), datum(8));
        let truncated = &good[..good.len() - 3];
        let mut trailing = other.clone();
        trailing.extend_from_slice(b"xx");
        let payloads: Vec<Option<&[u8]>> = vec![
            Some(&good),
            Some(truncated),
            Some(&other),
            Some(&trailing),
            Some(b"\xff\xff\xff"),
        ];
        let decoded = decode_all(&factory, &payloads, 1 << 20);
        let (rows, rejected) = decoded.outcome();
        assert_eq!(rows, vec![0, 2]);
        assert_eq!(
            rejected,
            vec![
                (1, reason::DECODE),
                (3, reason::DECODE),
                (4, reason::DECODE)
            ]
        );
        let batch = &decoded.batches[0].0;
        let ids = batch.column_by_name("account_id").expect("account_id");
        assert_eq!(
            arrow_cast::display::array_value_to_string(ids, 0).expect("display"),
            "7"
        );
    }
}
