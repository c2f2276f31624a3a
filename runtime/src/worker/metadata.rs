//! The `_kafka` column: Kafka metadata of each row's record (key, partition, offset,
//! timestamp, headers), for ports whose descriptor selects it with `kafka: [...]`.
//!
//! A port's rows are conformed to its table's Arrow schema first, which leaves `_kafka` null
//! (the record's value does not carry it); [`attach`] then replaces that column with the
//! struct [`column`] builds from the chunk, for the chunk records the rows came from. The
//! struct is built in the table's own Arrow field, so the Iceberg field ids of the table (not
//! those meshd would assign) go into the data files. Pure functions over a chunk and Arrow,
//! one allocation per array, none per record; a port without metadata costs one branch.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, LargeBinaryBuilder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Field, Schema};
use meshd_config::{DataProduct, KAFKA_COLUMN, KafkaMetadata};

use super::chunk::Chunk;
use crate::validate::Invalid;

/// Whether any port of `product` keeps headers: only then do chunks copy them.
pub fn captures_headers(product: &DataProduct) -> bool {
    product
        .spec
        .spec
        .output_ports
        .iter()
        .any(|p| p.kafka.contains(&KafkaMetadata::Headers))
}

/// Checks, when a port starts, that its table's `_kafka` column can hold `selection`, so a
/// mismatch stops the port with a message instead of failing its first batch.
pub fn check(selection: &[KafkaMetadata], table: &Schema) -> Result<(), ArrowError> {
    if selection.is_empty() {
        return Ok(());
    }
    let (_, field) = table.column_with_name(KAFKA_COLUMN).ok_or_else(|| {
        ArrowError::SchemaError(format!(
            "the table has no `{KAFKA_COLUMN}` column for the port's Kafka metadata"
        ))
    })?;
    column(&Chunk::default(), &[], selection, field).map(drop)
}

/// A port's shaped rows with their `_kafka` column filled. `rows` came from the input batch
/// whose row `i` is chunk record `records[i]`, less the rows in `invalid`. Without a
/// selection, `rows` are returned as they are.
pub fn attach(
    rows: Option<RecordBatch>,
    records: &[usize],
    invalid: &[Invalid],
    chunk: &Chunk,
    selection: &[KafkaMetadata],
) -> Result<Option<RecordBatch>, ArrowError> {
    if selection.is_empty() {
        return Ok(rows);
    }
    let Some(batch) = rows else {
        return Ok(None);
    };
    let kept: Cow<'_, [usize]> = if invalid.is_empty() {
        Cow::Borrowed(records)
    } else {
        let mut keep = vec![true; records.len()];
        for bad in invalid {
            if let Some(k) = keep.get_mut(bad.row) {
                *k = false;
            }
        }
        Cow::Owned(
            records
                .iter()
                .zip(keep)
                .filter_map(|(&r, k)| k.then_some(r))
                .collect(),
        )
    };
    if kept.len() != batch.num_rows() {
        return Err(ArrowError::InvalidArgumentError(format!(
            "{} rows but {} records to take Kafka metadata from",
            batch.num_rows(),
            kept.len()
        )));
    }
    let schema = batch.schema();
    let (index, field) = schema.column_with_name(KAFKA_COLUMN).ok_or_else(|| {
        ArrowError::SchemaError(format!("the rows have no `{KAFKA_COLUMN}` column"))
    })?;
    let mut columns = batch.columns().to_vec();
    columns[index] = column(chunk, &kept, selection, field)?;
    RecordBatch::try_new(Arc::clone(&schema), columns).map(Some)
}

/// The `_kafka` struct of chunk records `records`, in the table's Arrow `field`: each
/// selected subfield from the chunk, a subfield the table has but the port does not keep as
/// nulls. Fails if the field is not a struct or lacks a selected subfield.
pub fn column(
    chunk: &Chunk,
    records: &[usize],
    selection: &[KafkaMetadata],
    field: &Field,
) -> Result<ArrayRef, ArrowError> {
    let DataType::Struct(children) = field.data_type() else {
        return Err(ArrowError::SchemaError(format!(
            "the table's `{KAFKA_COLUMN}` column is {}, not a struct",
            field.data_type()
        )));
    };
    if let Some(missing) = selection.iter().find(|m| children.find(m.name()).is_none()) {
        return Err(ArrowError::SchemaError(format!(
            "the table's `{KAFKA_COLUMN}` column has no `{}`",
            missing.name()
        )));
    }
    let arrays = children
        .iter()
        .map(|child| {
            let kept = selection.iter().copied().find(|m| m.name() == child.name());
            let array: ArrayRef = match kept {
                None => arrow_array::new_null_array(child.data_type(), records.len()),
                Some(KafkaMetadata::Key) => keys(chunk, records),
                Some(KafkaMetadata::Partition) => Arc::new(Int32Array::from_iter_values(
                    records.iter().map(|&r| chunk.origins[r].partition),
                )),
                Some(KafkaMetadata::Offset) => Arc::new(Int64Array::from_iter_values(
                    records.iter().map(|&r| chunk.origins[r].offset),
                )),
                // Far-future millisecond timestamps that overflow microseconds become null.
                Some(KafkaMetadata::Timestamp) => Arc::new(
                    records
                        .iter()
                        .map(|&r| chunk.timestamp(r).and_then(|ms| ms.checked_mul(1000)))
                        .collect::<TimestampMicrosecondArray>()
                        .with_timezone("+00:00"),
                ),
                Some(KafkaMetadata::Headers) => headers(chunk, records, child)?,
            };
            fit(array, child)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(StructArray::try_new(
        children.clone(),
        arrays,
        None,
    )?))
}

fn keys(chunk: &Chunk, records: &[usize]) -> ArrayRef {
    let bytes = records
        .iter()
        .map(|&r| chunk.key(r).map_or(0, <[u8]>::len))
        .sum();
    let mut out = LargeBinaryBuilder::with_capacity(records.len(), bytes);
    for &r in records {
        out.append_option(chunk.key(r));
    }
    Arc::new(out.finish())
}

/// Headers as a list of `{key, value}` structs per record (an empty list when it has none),
/// built in the table's list field so the element and its parts keep their field ids.
fn headers(chunk: &Chunk, records: &[usize], target: &Field) -> Result<ArrayRef, ArrowError> {
    let not_headers = || {
        ArrowError::SchemaError(format!(
            "the table's `{KAFKA_COLUMN}.headers` is {}, not a list of key and value",
            target.data_type()
        ))
    };
    let DataType::List(element) = target.data_type() else {
        return Err(not_headers());
    };
    let DataType::Struct(parts) = element.data_type() else {
        return Err(not_headers());
    };
    let mut offsets = Vec::with_capacity(records.len() + 1);
    offsets.push(0i32);
    let mut keys = StringBuilder::new();
    let mut values = LargeBinaryBuilder::new();
    for &r in records {
        for (key, value) in chunk.headers(r) {
            keys.append_value(key);
            values.append_option(value);
        }
        offsets.push(i32::try_from(keys.len()).map_err(|_| {
            ArrowError::InvalidArgumentError("more than 2^31 headers in one batch".into())
        })?);
    }
    let (keys, values): (ArrayRef, ArrayRef) = (Arc::new(keys.finish()), Arc::new(values.finish()));
    let arrays = parts
        .iter()
        .map(|part| match part.name().as_str() {
            "key" => fit(Arc::clone(&keys), part),
            "value" => fit(Arc::clone(&values), part),
            _ => Err(not_headers()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let entries = StructArray::try_new(parts.clone(), arrays, None)?;
    Ok(Arc::new(ListArray::try_new(
        Arc::clone(element),
        OffsetBuffer::new(offsets.into()),
        Arc::new(entries),
        None,
    )?))
}

/// `array` in `target`'s type: the same when meshd built it so (always, for tables meshd
/// created), else cast (a `binary` column read as `Binary`, a timestamp zone spelt `UTC`).
fn fit(array: ArrayRef, target: &Field) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == target.data_type() {
        Ok(array)
    } else {
        arrow_cast::cast(&array, target.data_type())
    }
}

#[cfg(test)]
mod tests;
