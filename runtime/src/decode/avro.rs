//! Binary Avro datums through arrow-avro. Raw datums carry no framing, so each record is
//! given the single-object header (magic + Rabin fingerprint of the port schema) as it is
//! copied into the decoder's input; arrow-avro then decodes straight into Arrow builders. A
//! datum that fails to build is explained by [`explain`].

mod explain;

use arrow_array::RecordBatch;
use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, SINGLE_OBJECT_MAGIC, SchemaStore};
use arrow_schema::{ArrowError, SchemaRef};

use super::{DecoderFactory, Diagnosis, RowDecoder};

/// Builds Avro decoders for one writer schema.
pub struct AvroDecoderFactory {
    store: SchemaStore,
    /// The port's schema when it differs from the writer's (Avro schema resolution).
    reader: Option<AvroSchema>,
    prefix: [u8; 10],
    schema: SchemaRef,
    /// The writer schema for explaining failures; `None` if it uses something the walk does
    /// not model, and then failures get the caller's default reason.
    walk: Option<explain::WalkSchema>,
}

impl AvroDecoderFactory {
    /// `avsc` is the port's schema text; records must be written with it.
    pub fn new(avsc: &str) -> Result<Self, ArrowError> {
        Self::build(avsc, None)
    }

    /// Records written with `writer`, read as `reader` (the port's schema) by Avro schema
    /// resolution: defaults for fields the writer lacks, promotions, dropped writer fields.
    pub fn resolving(writer: &str, reader: &str) -> Result<Self, ArrowError> {
        Self::build(writer, Some(AvroSchema::new(reader.to_string())))
    }

    fn build(avsc: &str, reader: Option<AvroSchema>) -> Result<Self, ArrowError> {
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
        let probe = builder(&store, reader.as_ref()).build_decoder()?;
        Ok(Self {
            schema: probe.schema(),
            store,
            reader,
            prefix,
            walk: explain::WalkSchema::parse(avsc),
        })
    }

    /// The Arrow schema arrow-avro decodes into (the Avro wire schema).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl DecoderFactory for AvroDecoderFactory {
    fn decoder(&self, capacity: usize) -> Box<dyn RowDecoder> {
        let decoder = builder(&self.store, self.reader.as_ref())
            .with_batch_size(capacity.max(1))
            .build_decoder()
            .map_err(|e| e.to_string());
        Box::new(AvroRows {
            decoder,
            prefix: self.prefix,
            scratch: Vec::with_capacity(256),
        })
    }

    fn diagnose(&self, payload: &[u8]) -> Option<Diagnosis> {
        self.walk.as_ref()?.diagnose(payload)
    }
}

fn builder(store: &SchemaStore, reader: Option<&AvroSchema>) -> ReaderBuilder {
    let builder = ReaderBuilder::new().with_writer_schema_store(store.clone());
    match reader {
        Some(reader) => builder.with_reader_schema(reader.clone()),
        None => builder,
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
    use crate::decode::{Decoded, Reason, decode_all};

    const AVSC: &str = include_str!("../../../examples/payments/schema/transactions.avsc");

    fn datum(n: i64) -> Vec<u8> {
        datum_of(&format!("t{n}"), n, "a@b.c")
    }

    /// A reference record with these id, account and email, through apache-avro.
    fn datum_of(id: &str, account: i64, email: &str) -> Vec<u8> {
        let schema = apache_avro::Schema::parse_str(AVSC).expect("schema");
        let record = Value::Record(vec![
            ("transaction_id".into(), Value::String(id.into())),
            ("account_id".into(), Value::Long(account)),
            ("email".into(), Value::String(email.into())),
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
                (1, Reason::Decode),
                (3, Reason::Decode),
                (4, Reason::Decode)
            ]
        );
        let batch = &decoded.batches[0].0;
        let ids = batch.column_by_name("account_id").expect("account_id");
        assert_eq!(
            arrow_cast::display::array_value_to_string(ids, 0).expect("display"),
            "7"
        );
    }

    /// A transactions datum written by hand, so a test can break what an encoder refuses to.
    struct Raw {
        email: Vec<u8>,
        card_branch: i64,
        amount: Vec<u8>,
        status: i64,
    }

    impl Raw {
        fn good() -> Self {
            Self {
                email: b"secret@example.com".to_vec(),
                card_branch: 1,
                amount: 1250i64.to_be_bytes().to_vec(),
                status: 1,
            }
        }

        fn encode(&self) -> Vec<u8> {
            fn long(v: i64, out: &mut Vec<u8>) {
                let mut z = ((v << 1) ^ (v >> 63)) as u64;
                while z >= 0x80 {
                    out.push((z as u8) | 0x80);
                    z >>= 7;
                }
                out.push(z as u8);
            }
            fn bytes(b: &[u8], out: &mut Vec<u8>) {
                long(b.len() as i64, out);
                out.extend_from_slice(b);
            }
            let mut out = Vec::new();
            bytes(b"t-1", &mut out);
            long(42, &mut out);
            bytes(&self.email, &mut out);
            long(self.card_branch, &mut out);
            if self.card_branch == 1 {
                bytes(b"4242", &mut out);
            }
            bytes(&self.amount, &mut out);
            bytes(b"JPY", &mut out);
            bytes(b"JP", &mut out);
            long(self.status, &mut out);
            long(1_764_000_000_000, &mut out);
            out
        }
    }

    fn reasons(payload: Vec<u8>) -> Decoded {
        let factory = AvroDecoderFactory::new(AVSC).expect("factory");
        let good = Raw::good().encode();
        let payloads: Vec<Option<&[u8]>> =
            vec![Some(&good), Some(&good), Some(&payload), Some(&good)];
        let decoded = decode_all(&factory, &payloads, 1 << 20);
        for r in &decoded.rejected {
            assert!(!r.message.contains("secret"), "{}", r.message);
        }
        decoded
    }

    /// arrow-avro checks enum indices and UTF-8 only when it builds the batch, with one
    /// error kind for both; the walk over the datum tells them apart.
    #[test]
    fn build_failures_are_classified_by_walking_the_datum() {
        let handmade = Raw::good().encode();
        assert_eq!(
            handmade,
            datum_like_raw(),
            "the hand encoder matches apache-avro"
        );

        for status in [3, 9, -1] {
            let decoded = reasons(
                Raw {
                    status,
                    ..Raw::good()
                }
                .encode(),
            );
            assert_eq!(decoded.outcome(), (vec![0, 1, 3], vec![(2, Reason::Enum)]));
            assert_eq!(
                decoded.rejected[0].message,
                "`status` is not one of the symbols AUTHORIZED, SETTLED, REFUNDED"
            );
        }

        let email = b"secret\xff\xfe@example.com".to_vec();
        let decoded = reasons(
            Raw {
                email,
                ..Raw::good()
            }
            .encode(),
        );
        assert_eq!(
            decoded.outcome(),
            (vec![0, 1, 3], vec![(2, Reason::Decode)])
        );
        assert_eq!(decoded.rejected[0].message, "`email` is not valid UTF-8");
    }

    #[test]
    fn datums_that_do_not_frame_are_decode_failures() {
        let good = Raw::good().encode();
        let bad_branch = Raw {
            card_branch: 2,
            ..Raw::good()
        }
        .encode();
        let mut trailing = good.clone();
        trailing.push(0);
        for payload in [bad_branch, trailing, good[..good.len() - 1].to_vec()] {
            assert_eq!(
                reasons(payload).outcome(),
                (vec![0, 1, 3], vec![(2, Reason::Decode)])
            );
        }
    }

    /// A decimal that decodes but has more digits than its precision is caught by validation;
    /// the walk reports the same reason for one too wide to decode at all.
    #[test]
    fn decimals_beyond_the_precision_are_decimal_rejections() {
        let schema =
            meshd_config::PortSchema::parse(AVSC, std::path::Path::new("t.avsc")).expect("schema");
        let amount = (i128::MAX / 3).to_be_bytes().to_vec();
        let decoded = reasons(
            Raw {
                amount,
                ..Raw::good()
            }
            .encode(),
        );
        // It decodes; the precision is validation's to check.
        assert_eq!(decoded.outcome(), (vec![0, 1, 2, 3], vec![]));
        let invalid: Vec<_> = decoded
            .batches
            .iter()
            .flat_map(|(batch, rows)| {
                crate::validate::validate(batch, &schema.fields)
                    .into_iter()
                    .map(|bad| (rows[bad.row], bad.kind, bad.message))
            })
            .collect();
        assert_eq!(
            invalid,
            vec![(
                2,
                Reason::Decimal,
                "`amount` has more than 18 digits".to_string()
            )]
        );

        let factory = AvroDecoderFactory::new(AVSC).expect("factory");
        let mut wide = vec![0x01];
        wide.extend_from_slice(&[0u8; 16]);
        let found = factory
            .diagnose(
                &Raw {
                    amount: wide,
                    ..Raw::good()
                }
                .encode(),
            )
            .expect("diagnosis");
        assert_eq!(found.reason, Reason::Decimal);
        assert_eq!(found.message, "`amount` has more than 18 digits");
        assert_eq!(factory.diagnose(&Raw::good().encode()), None);
    }

    #[test]
    fn records_without_a_value_or_too_large_are_rejected_before_decoding() {
        let factory = AvroDecoderFactory::new(AVSC).expect("factory");
        let good = Raw::good().encode();
        let payloads: Vec<Option<&[u8]>> = vec![None, Some(&good)];
        let decoded = decode_all(&factory, &payloads, good.len() - 1);
        assert_eq!(
            decoded.outcome(),
            (vec![], vec![(0, Reason::NullValue), (1, Reason::TooLarge)])
        );
    }

    /// The same record as [`Raw::good`], through apache-avro.
    fn datum_like_raw() -> Vec<u8> {
        datum_of("t-1", 42, "secret@example.com")
    }
}
