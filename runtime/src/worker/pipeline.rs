//! The records stage: a chunk's bytes → Arrow rows for each output port, plus the records that
//! cannot become rows, each with its reason. Pure functions over Arrow: no Kafka, no Iceberg.
//!
//! A chunk is decoded once per input topic into the *input* schema (every column any output
//! port names); each output port then takes its projection by column name, validates it
//! against its own columns, masks it and conforms it to its table's Arrow schema.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{ArrowError, Field, Schema, SchemaRef};
use meshd_config::{Column, PortSchema};

use super::chunk::Chunk;
use crate::decode::confluent::ConfluentDecoders;
use crate::decode::{self, DecoderFactory, Reason, wire};
use crate::mask::Masker;
use crate::validate;

/// How one input topic is decoded, and where its bad records go.
pub struct InputDecoder {
    /// Decoders for the topic's format, in the input schema.
    pub decoding: Decoding,
    /// The input port's dead-letter topic.
    pub dead_letter_topic: String,
}

/// A topic's decoders.
pub enum Decoding {
    /// One schema for every record (JSON, bare Avro).
    Fixed(Box<dyn DecoderFactory>),
    /// Confluent's wire format: a writer schema per id, from the registry.
    Confluent {
        /// Writer schemas met so far, with their decoders.
        decoders: ConfluentDecoders,
        /// The registry subject (for messages).
        subject: String,
    },
}

/// A record that goes to the dead-letter topic instead of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// Index of the record in its chunk.
    pub record: usize,
    /// Why (the `reason` label and dead-letter header).
    pub kind: Reason,
    /// What is wrong, naming the field; never the value.
    pub message: String,
}

/// A chunk decoded into the input schema.
#[derive(Debug, Default)]
pub struct DecodedChunk {
    /// Batches, each with the chunk index of every row.
    pub batches: Vec<(RecordBatch, Vec<usize>)>,
    /// Records that could not be decoded.
    pub letters: Vec<Letter>,
}

/// Decodes every record of `chunk` with its topic's decoder.
pub fn decode_chunk(
    decoders: &mut HashMap<String, InputDecoder>,
    chunk: &Chunk,
    max_record_bytes: usize,
) -> DecodedChunk {
    let mut out = DecodedChunk::default();
    for (t, topic) in chunk.topics.iter().enumerate() {
        let Some(input) = decoders.get_mut(topic) else {
            continue;
        };
        let indices: Vec<usize> = (0..chunk.len())
            .filter(|&i| chunk.origins[i].topic as usize == t)
            .collect();
        let payloads: Vec<Option<&[u8]>> = indices.iter().map(|&i| chunk.value(i)).collect();
        let decoded = match &mut input.decoding {
            Decoding::Fixed(factory) => {
                decode::decode_all(factory.as_ref(), &payloads, max_record_bytes)
            }
            Decoding::Confluent { decoders, .. } => decoders.decode(&payloads, max_record_bytes),
        };
        out.letters
            .extend(decoded.rejected.into_iter().map(|r| Letter {
                record: indices[r.index as usize],
                kind: r.kind,
                message: r.message,
            }));
        for (batch, rows) in decoded.batches {
            let rows = rows.iter().map(|&r| indices[r as usize]).collect();
            out.batches.push((batch, rows));
        }
    }
    out
}

/// The JSON input schema: every column any output port names, the first port's definition
/// of a name winning (ports that share a name must agree on its type; see `setup`).
pub fn json_input_schema(ports: &[&PortSchema]) -> SchemaRef {
    let mut fields: Vec<Field> = Vec::new();
    for port in ports {
        let wire = wire::json_wire_schema(port);
        for field in wire.fields() {
            if !fields.iter().any(|f| f.name() == field.name()) {
                fields.push(field.as_ref().clone());
            }
        }
    }
    Arc::new(Schema::new(fields))
}

/// What one output port makes of input rows.
pub struct PortShape {
    columns: Vec<Column>,
    wire: SchemaRef,
    masker: Masker,
    table: SchemaRef,
}

/// One output port's rows from one input batch.
#[derive(Debug)]
pub struct Shaped {
    /// Rows in the table's schema (None if none survived).
    pub rows: Option<RecordBatch>,
    /// Rows of the input batch that failed the port's validation.
    pub invalid: Vec<validate::Invalid>,
}

impl PortShape {
    /// A port's shape: its columns, its masking, and its table's Arrow schema.
    pub fn new(schema: &PortSchema, masker: Masker, table: SchemaRef) -> Self {
        Self {
            columns: schema.fields.clone(),
            wire: wire::json_wire_schema(schema),
            masker,
            table,
        }
    }

    /// Projects, validates, masks and conforms an input batch. `invalid` rows index `batch`.
    pub fn shape(&self, batch: &RecordBatch) -> Result<Shaped, ArrowError> {
        let projected = self.project(batch)?;
        let invalid = validate::validate(&projected, &self.columns);
        let valid = if invalid.is_empty() {
            projected
        } else {
            let mut keep = vec![true; projected.num_rows()];
            for bad in &invalid {
                keep[bad.row] = false;
            }
            arrow_select::filter::filter_record_batch(&projected, &BooleanArray::from(keep))?
        };
        if valid.num_rows() == 0 {
            return Ok(Shaped {
                rows: None,
                invalid,
            });
        }
        let masked = self.masker.apply(&valid)?;
        Ok(Shaped {
            rows: Some(wire::conform(&masked, &self.table)?),
            invalid,
        })
    }

    /// The port's columns, by name, from the input batch; a column the input lacks is null
    /// (a required one then fails validation, for this port only).
    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        if batch.schema().fields().len() == self.columns.len()
            && self
                .columns
                .iter()
                .zip(batch.schema().fields())
                .all(|(c, f)| &c.name == f.name())
        {
            return Ok(batch.clone());
        }
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for field in self.wire.fields() {
            match batch.schema().column_with_name(field.name()) {
                Some((i, input)) => {
                    fields.push(input.clone());
                    arrays.push(Arc::clone(batch.column(i)));
                }
                None => {
                    fields.push(field.as_ref().clone().with_nullable(true));
                    arrays.push(arrow_array::new_null_array(
                        field.data_type(),
                        batch.num_rows(),
                    ));
                }
            }
        }
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
    }
}

/// Keeps the rows of `batch` whose flag is set (rows a port already has are dropped).
pub fn keep_rows(batch: &RecordBatch, keep: Vec<bool>) -> Result<RecordBatch, ArrowError> {
    arrow_select::filter::filter_record_batch(batch, &BooleanArray::from(keep))
}

#[cfg(test)]
mod tests;
