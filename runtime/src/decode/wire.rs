//! The *wire* schema (how values arrive) versus the *table* schema (how Iceberg stores them).
//!
//! JSON is decoded into a wire schema that mirrors the Avro types (timestamps in the schema's
//! unit, uuids as text, every field nullable so a missing field becomes a row-level
//! validation error instead of failing the batch). [`conform`] then casts column by column
//! into the table's Arrow schema, which carries Iceberg field ids.

use std::sync::Arc;

use arrow_array::builder::FixedSizeBinaryBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, StructArray};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use meshd_config::{Column, ColumnType, PortSchema};

/// The Arrow schema JSON records are decoded into.
pub fn json_wire_schema(schema: &PortSchema) -> SchemaRef {
    Arc::new(Schema::new(
        schema.fields.iter().map(wire_field).collect::<Vec<_>>(),
    ))
}

fn wire_field(c: &Column) -> Field {
    Field::new(&c.name, wire_type(&c.ty), true)
}

fn wire_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Int => DataType::Int32,
        ColumnType::Long => DataType::Int64,
        ColumnType::Float => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::String
        | ColumnType::Enum(_)
        | ColumnType::Uuid
        | ColumnType::Bytes
        | ColumnType::Fixed(_) => DataType::Utf8,
        ColumnType::Decimal { precision, scale } => {
            DataType::Decimal128(*precision as u8, *scale as i8)
        }
        ColumnType::Date => DataType::Date32,
        ColumnType::Time { micros: false } => DataType::Time32(TimeUnit::Millisecond),
        ColumnType::Time { micros: true } => DataType::Time64(TimeUnit::Microsecond),
        ColumnType::Timestamp { micros, utc } => DataType::Timestamp(
            if *micros {
                TimeUnit::Microsecond
            } else {
                TimeUnit::Millisecond
            },
            utc.then(|| "+00:00".into()),
        ),
        ColumnType::Record(children) => {
            DataType::Struct(children.iter().map(wire_field).collect::<Fields>())
        }
        ColumnType::Array { items, .. } => {
            DataType::List(Arc::new(Field::new_list_field(wire_type(items), true)))
        }
        ColumnType::Map { values, .. } => DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", wire_type(values), true),
                ])),
                false,
            )),
            false,
        ),
    }
}

/// Casts a (validated, masked) batch into the table's Arrow schema, matching columns by name.
pub fn conform(batch: &RecordBatch, table: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = table
        .fields()
        .iter()
        .map(|target| match batch.column_by_name(target.name()) {
            Some(array) => conform_array(array, target),
            None => Ok(arrow_array::new_null_array(
                target.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(table), columns)
}

fn conform_array(array: &ArrayRef, target: &Field) -> Result<ArrayRef, ArrowError> {
    match (array.data_type(), target.data_type()) {
        (a, b) if a == b => Ok(Arc::clone(array)),
        (DataType::Utf8, DataType::FixedSizeBinary(width)) => text_to_fixed(array, *width),
        (DataType::Utf8, DataType::LargeBinary) => arrow_cast::cast(
            &arrow_cast::cast(array, &DataType::Binary)?,
            &DataType::LargeBinary,
        ),
        (DataType::Struct(_), DataType::Struct(target_fields)) => {
            let source = array
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| ArrowError::CastError("expected a struct".into()))?;
            let children = target_fields
                .iter()
                .map(|f| match source.column_by_name(f.name()) {
                    Some(child) => conform_array(child, f),
                    None => Ok(arrow_array::new_null_array(f.data_type(), source.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                target_fields.clone(),
                children,
                source.nulls().cloned(),
            )?))
        }
        (_, to) => arrow_cast::cast(array, to),
    }
}

/// UUID text → 16 bytes; other fixed widths take the text's bytes (validated beforehand).
fn text_to_fixed(array: &ArrayRef, width: i32) -> Result<ArrayRef, ArrowError> {
    let text = array
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ArrowError::CastError("expected text".into()))?;
    let mut out = FixedSizeBinaryBuilder::with_capacity(text.len(), width);
    for v in text.iter() {
        match v {
            None => out.append_null(),
            Some(s) if width == 16 && s.len() == 36 => {
                let id = uuid::Uuid::try_parse(s)
                    .map_err(|e| ArrowError::CastError(format!("not a UUID: {e}")))?;
                out.append_value(id.as_bytes())?;
            }
            Some(s) => out.append_value(s.as_bytes())?,
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Decimal128Type, Time64MicrosecondType, TimestampMicrosecondType,
    };

    use super::*;
    use crate::decode::{JsonDecoderFactory, decode_all};

    const AVSC: &str = r#"{"type":"record","name":"L","fields":[
        {"name":"d","type":{"type":"int","logicalType":"date"}},
        {"name":"t","type":{"type":"long","logicalType":"time-micros"}},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"note","type":["null","string"],"default":null}
    ]}"#;

    /// Producers spell logical types in several ways; each must land as the same value.
    #[test]
    fn json_accepts_every_spelling_of_logical_types() {
        let schema = PortSchema::parse(AVSC, Path::new("l.avsc")).expect("schema");
        let table = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&schema.iceberg_schema().expect("iceberg"))
                .expect("arrow"),
        );
        let factory = JsonDecoderFactory::new(json_wire_schema(&schema));
        let id = "0b6f3f2e-8d1a-4c7e-9f00-5a1b2c3d4e5f";
        let spellings = [
            format!(
                r#"{{"d":"2025-11-24","t":3600000000,"ts":"2025-11-24T16:00:00Z","amount":"12.50","id":"{id}"}}"#
            ),
            format!(
                r#"{{"d":20416,"t":3600000000,"ts":1764000000000000,"amount":12.5,"id":"{id}","note":null}}"#
            ),
            format!(
                r#"{{"d":20416,"t":3600000000,"ts":"2025-11-24T17:00:00+01:00","amount":12.50,"id":"{id}"}}"#
            ),
        ];
        let payloads: Vec<Option<&[u8]>> = spellings.iter().map(|s| Some(s.as_bytes())).collect();
        let decoded = decode_all(&factory, &payloads, 1 << 20);
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        let (batch, rows) = &decoded.batches[0];
        assert_eq!(rows, &[0, 1, 2]);
        let rows = conform(batch, &table).expect("conform");
        let col = |name: &str| rows.column_by_name(name).expect("column").clone();
        for i in 0..3 {
            assert_eq!(col("d").as_primitive::<Date32Type>().value(i), 20416);
            assert_eq!(
                col("t").as_primitive::<Time64MicrosecondType>().value(i),
                3_600_000_000
            );
            assert_eq!(
                col("ts")
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(i),
                1_764_000_000_000_000
            );
            assert_eq!(
                col("amount").as_primitive::<Decimal128Type>().value(i),
                1250
            );
            assert_eq!(
                col("id").as_fixed_size_binary().value(i),
                uuid::Uuid::parse_str(id).expect("uuid").as_bytes()
            );
            assert!(col("note").is_null(i));
        }
    }
}
