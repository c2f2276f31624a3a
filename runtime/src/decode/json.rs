//! JSON records through arrow-json's tape decoder, straight into Arrow builders.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::reader::{Decoder, ReaderBuilder};
use arrow_schema::SchemaRef;

use super::{DecoderFactory, RowDecoder};

/// Builds JSON decoders for a wire schema.
pub struct JsonDecoderFactory {
    schema: SchemaRef,
}

impl JsonDecoderFactory {
    /// `schema` is the wire schema (see [`super::wire`]).
    pub fn new(schema: SchemaRef) -> Self {
        Self { schema }
    }
}

impl DecoderFactory for JsonDecoderFactory {
    fn decoder(&self, capacity: usize) -> Box<dyn RowDecoder> {
        let built = ReaderBuilder::new(Arc::clone(&self.schema))
            .with_batch_size(capacity.max(1))
            .build_decoder();
        Box::new(JsonRows {
            decoder: built.map_err(|e| e.to_string()),
            rows: 0,
        })
    }
}

struct JsonRows {
    decoder: Result<Decoder, String>,
    rows: usize,
}

impl RowDecoder for JsonRows {
    fn feed(&mut self, payload: &[u8]) -> Result<(), String> {
        let decoder = self.decoder.as_mut().map_err(|e| e.clone())?;
        let consumed = decoder
            .decode(payload)
            .map_err(|e| format!("invalid JSON: {e}"))?;
        if consumed != payload.len() {
            return Err("invalid JSON: the decoder stopped before the end of the record".into());
        }
        if decoder.has_partial_record() {
            return Err("invalid JSON: the record ends inside an object or string".into());
        }
        if decoder.len() != self.rows + 1 {
            return Err(format!(
                "invalid JSON: expected one object per record, found {}",
                decoder.len().saturating_sub(self.rows)
            ));
        }
        self.rows += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, String> {
        let decoder = self.decoder.as_mut().map_err(|e| e.clone())?;
        self.rows = 0;
        decoder.flush().map_err(|e| e.to_string())
    }
}
