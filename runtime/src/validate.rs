//! Validate: checks that need the schema's intent, not just its types: required fields,
//! enum symbols, decimal precision, UUID and fixed-length formats. Runs over whole Arrow
//! columns and returns, per bad row, the first problem found; the worker dead-letters those
//! rows and filters them out.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, DecimalType};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use meshd_config::{Column, ColumnType};

use crate::decode::Reason;

/// A row that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Row in the batch.
    pub row: usize,
    /// Why: the metric label and the dead letter's `meshd.error.kind`.
    pub kind: Reason,
    /// What is wrong, naming the field.
    pub message: String,
}

/// Validates every row of a wire batch against the port's columns.
pub fn validate(batch: &RecordBatch, columns: &[Column]) -> Vec<Invalid> {
    let mut bad: Vec<Option<Invalid>> = vec![None; batch.num_rows()];
    for column in columns {
        if let Some(array) = batch.column_by_name(&column.name) {
            check(column, array, None, &mut bad);
        }
    }
    bad.into_iter().flatten().collect()
}

fn record(bad: &mut [Option<Invalid>], row: usize, kind: Reason, message: impl FnOnce() -> String) {
    if bad[row].is_none() {
        bad[row] = Some(Invalid {
            row,
            kind,
            message: message(),
        });
    }
}

/// `parent` is the validity of the enclosing struct: a null parent excuses its children.
fn check(
    column: &Column,
    array: &ArrayRef,
    parent: Option<&NullBuffer>,
    bad: &mut [Option<Invalid>],
) {
    let present = |row: usize| parent.is_none_or(|p| p.is_valid(row));
    if !column.optional && array.null_count() > 0 {
        for row in 0..array.len() {
            if array.is_null(row) && present(row) {
                record(bad, row, Reason::Required, || {
                    format!("required field `{}` is missing or null", column.path)
                });
            }
        }
    }
    match &column.ty {
        ColumnType::Enum(symbols) => {
            let Ok(text) = arrow_cast::cast(array, &DataType::Utf8) else {
                return;
            };
            let text = text.as_string::<i32>();
            for row in 0..text.len() {
                if text.is_valid(row) && !symbols.iter().any(|s| s == text.value(row)) {
                    record(bad, row, Reason::Enum, || {
                        format!(
                            "`{}` is not one of the symbols {}",
                            column.path,
                            symbols.join(", ")
                        )
                    });
                }
            }
        }
        ColumnType::Decimal { precision, .. } => {
            if let Some(decimals) = array.as_primitive_opt::<Decimal128Type>() {
                for row in 0..decimals.len() {
                    if decimals.is_valid(row)
                        && !Decimal128Type::is_valid_decimal_precision(
                            decimals.value(row),
                            *precision as u8,
                        )
                    {
                        record(bad, row, Reason::Decimal, || {
                            format!("`{}` has more than {precision} digits", column.path)
                        });
                    }
                }
            }
        }
        ColumnType::Uuid if array.data_type() == &DataType::Utf8 => {
            let text = array.as_string::<i32>();
            for row in 0..text.len() {
                if text.is_valid(row) && uuid::Uuid::try_parse(text.value(row)).is_err() {
                    record(bad, row, Reason::Format, || {
                        format!("`{}` is not a UUID", column.path)
                    });
                }
            }
        }
        ColumnType::Fixed(width) if array.data_type() == &DataType::Utf8 => {
            let text = array.as_string::<i32>();
            for row in 0..text.len() {
                if text.is_valid(row) && text.value(row).len() != *width {
                    record(bad, row, Reason::Format, || {
                        format!("`{}` must be exactly {width} bytes", column.path)
                    });
                }
            }
        }
        ColumnType::Record(children) => {
            if let Some(s) = array.as_any().downcast_ref::<StructArray>() {
                let validity = NullBuffer::union(parent, s.nulls());
                for child in children {
                    if let Some(child_array) = s.column_by_name(&child.name) {
                        check(child, child_array, validity.as_ref(), bad);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use meshd_config::PortSchema;

    use super::*;
    use crate::decode::{JsonDecoderFactory, decode_all, wire};

    const AVSC: &str = r#"{"type":"record","name":"V","fields":[
        {"name":"id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"code","type":{"type":"fixed","name":"Code","size":3}},
        {"name":"status","type":{"type":"enum","name":"S","symbols":["ON","OFF"]}},
        {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}},
        {"name":"address","type":["null",{"type":"record","name":"A","fields":[
            {"name":"city","type":"string"}
        ]}],"default":null}
    ]}"#;

    const GOOD: &str = r#"{"id":"0b6f3f2e-8d1a-4c7e-9f00-5a1b2c3d4e5f","code":"abc","status":"ON","amount":"12.50","address":{"city":"x"}}"#;

    /// JSON decodes into an all-nullable wire schema, so what the schema means beyond types
    /// (required fields, enum symbols, UUIDs, fixed widths) is validation's to reject.
    #[test]
    fn rows_that_break_the_schemas_intent_get_their_reason() {
        let schema = PortSchema::parse(AVSC, Path::new("v.avsc")).expect("schema");
        let factory = JsonDecoderFactory::new(wire::json_wire_schema(&schema));
        let with = |from: &str, to: &str| {
            assert!(GOOD.contains(from), "{from}");
            GOOD.replacen(from, to, 1)
        };
        let cases = [
            (GOOD.to_string(), None),
            (with(r#""address":{"city":"x"}"#, r#""address":null"#), None),
            (
                with(r#""status":"ON","#, ""),
                Some((
                    Reason::Required,
                    "required field `status` is missing or null",
                )),
            ),
            (
                with(r#""city":"x""#, r#""city":null"#),
                Some((
                    Reason::Required,
                    "required field `address.city` is missing or null",
                )),
            ),
            (
                with(r#""status":"ON""#, r#""status":"secret""#),
                Some((Reason::Enum, "`status` is not one of the symbols ON, OFF")),
            ),
            (
                with(r#""id":"0b6f"#, r#""id":"secret-0b6f"#),
                Some((Reason::Format, "`id` is not a UUID")),
            ),
            (
                with(r#""code":"abc""#, r#""code":"secret""#),
                Some((Reason::Format, "`code` must be exactly 3 bytes")),
            ),
        ];
        for (json, expected) in cases {
            let decoded = decode_all(&factory, &[Some(json.as_bytes())], 1 << 20);
            assert!(
                decoded.rejected.is_empty(),
                "{json}: {:?}",
                decoded.rejected
            );
            let (batch, _) = &decoded.batches[0];
            let invalid: Vec<_> = validate(batch, &schema.fields)
                .into_iter()
                .map(|bad| (bad.row, bad.kind, bad.message))
                .collect();
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(reason, message)| (0, reason, message.to_string()))
                .collect();
            assert_eq!(invalid, expected, "{json}");
        }
    }
}
