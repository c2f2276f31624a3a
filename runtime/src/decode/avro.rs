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
