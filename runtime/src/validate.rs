//! Validate: checks that need the schema's intent, not just its types: required fields,
//! enum symbols, decimal precision, UUID and fixed-length formats. Runs over whole Arrow
//! columns and returns, per bad row, the first problem found; the worker dead-letters those
//! rows and filters them out.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, DecimalType};
use arrow_array::{Array, ArrayRef, RecordBatch};
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
            check(column, array, &Rows::Same(None), &mut bad);
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

/// Which batch row each element of an array belongs to, and whether it is there at all: an
/// element inside a null record, or an item of a null list, excuses its own checks.
enum Rows {
    /// Element `i` is row `i`; present unless this validity (of the enclosing records) says
    /// otherwise.
    Same(Option<NullBuffer>),
    /// Element `i` (an array item or a map value) belongs to this row, or to none.
    Mapped(Vec<Option<usize>>),
}

impl Rows {
    fn row(&self, i: usize) -> Option<usize> {
        match self {
            Rows::Same(parent) => parent.as_ref().is_none_or(|p| p.is_valid(i)).then_some(i),
            Rows::Mapped(rows) => rows.get(i).copied().flatten(),
        }
    }

    /// The rows of the children of a struct with this validity.
    fn within(&self, nulls: Option<&NullBuffer>) -> Rows {
        match self {
            Rows::Same(parent) => Rows::Same(NullBuffer::union(parent.as_ref(), nulls)),
            Rows::Mapped(rows) => Rows::Mapped(
                rows.iter()
                    .enumerate()
                    .map(|(i, row)| row.filter(|_| nulls.is_none_or(|n| n.is_valid(i))))
                    .collect(),
            ),
        }
    }

    /// The rows of the `len` items a list (or map) with these offsets and validity holds.
    fn items(&self, offsets: &[usize], nulls: Option<&NullBuffer>, len: usize) -> Rows {
        let mut rows = vec![None; len];
        for (i, range) in offsets.windows(2).enumerate() {
            let Some(row) = self.row(i).filter(|_| nulls.is_none_or(|n| n.is_valid(i))) else {
                continue;
            };
            if let Some(items) = rows.get_mut(range[0]..range[1]) {
                items.fill(Some(row));
            }
        }
        Rows::Mapped(rows)
    }
}

/// Whether values of this type have anything to check beyond their own nullness.
fn has_checks(ty: &ColumnType) -> bool {
    match ty {
        ColumnType::Enum(_)
        | ColumnType::Decimal { .. }
        | ColumnType::Uuid
        | ColumnType::Fixed(_)
        | ColumnType::Record(_) => true,
        ColumnType::Array {
            items,
            items_optional,
        } => !items_optional || has_checks(items),
        ColumnType::Map {
            values,
            values_optional,
        } => !values_optional || has_checks(values),
        _ => false,
    }
}

fn check(column: &Column, array: &ArrayRef, rows: &Rows, bad: &mut [Option<Invalid>]) {
    if !column.optional && array.null_count() > 0 {
        for i in 0..array.len() {
            if array.is_null(i)
                && let Some(row) = rows.row(i)
            {
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
            for i in 0..text.len() {
                if text.is_valid(i)
                    && !symbols.iter().any(|s| s == text.value(i))
                    && let Some(row) = rows.row(i)
                {
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
                for i in 0..decimals.len() {
                    if decimals.is_valid(i)
                        && !Decimal128Type::is_valid_decimal_precision(
                            decimals.value(i),
                            *precision as u8,
                        )
                        && let Some(row) = rows.row(i)
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
            for i in 0..text.len() {
                if text.is_valid(i)
                    && uuid::Uuid::try_parse(text.value(i)).is_err()
                    && let Some(row) = rows.row(i)
                {
                    record(bad, row, Reason::Format, || {
                        format!("`{}` is not a UUID", column.path)
                    });
                }
            }
        }
        ColumnType::Fixed(width) if array.data_type() == &DataType::Utf8 => {
            let text = array.as_string::<i32>();
            for i in 0..text.len() {
                if text.is_valid(i)
                    && text.value(i).len() != *width
                    && let Some(row) = rows.row(i)
                {
                    record(bad, row, Reason::Format, || {
                        format!("`{}` must be exactly {width} bytes", column.path)
                    });
                }
            }
        }
        ColumnType::Record(children) => {
            if let Some(s) = array.as_struct_opt() {
                let rows = rows.within(s.nulls());
                for child in children {
                    if let Some(child_array) = s.column_by_name(&child.name) {
                        check(child, child_array, &rows, bad);
                    }
                }
            }
        }
        ColumnType::Array {
            items,
            items_optional,
        } if has_checks(&column.ty) => {
            let item = element(column, "[]", items, *items_optional);
            if let Some(list) = array.as_list_opt::<i32>() {
                let offsets: Vec<usize> = list.offsets().iter().map(|&o| o as usize).collect();
                let rows = rows.items(&offsets, list.nulls(), list.values().len());
                check(&item, list.values(), &rows, bad);
            } else if let Some(list) = array.as_list_opt::<i64>() {
                let offsets: Vec<usize> = list.offsets().iter().map(|&o| o as usize).collect();
                let rows = rows.items(&offsets, list.nulls(), list.values().len());
                check(&item, list.values(), &rows, bad);
            }
        }
        ColumnType::Map {
            values,
            values_optional,
        } if has_checks(&column.ty) => {
            if let Some(map) = array.as_map_opt() {
                let value = element(column, "{}", values, *values_optional);
                let offsets: Vec<usize> = map.offsets().iter().map(|&o| o as usize).collect();
                let rows = rows.items(&offsets, map.nulls(), map.values().len());
                check(&value, map.values(), &rows, bad);
            }
        }
        _ => {}
    }
}

/// An array's items or a map's values as a column of their own, at `items[]` or
/// `attributes{}`: the spelling the schema's nested paths use.
fn element(parent: &Column, suffix: &str, ty: &ColumnType, optional: bool) -> Column {
    Column {
        name: format!("{}{suffix}", parent.name),
        path: format!("{}{suffix}", parent.path),
        doc: None,
        tags: Vec::new(),
        masking: None,
        optional,
        ty: ty.clone(),
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

    /// Decodes `records`, validates them, and checks that the only problem is `expected` at
    /// `row` (or that there is none).
    fn check_rows(
        factory: &JsonDecoderFactory,
        schema: &PortSchema,
        records: &[&str],
        row: usize,
        expected: Option<(Reason, &str)>,
    ) {
        let payloads: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
        let decoded = decode_all(factory, &payloads, 1 << 20);
        assert!(
            decoded.rejected.is_empty(),
            "{records:?}: {:?}",
            decoded.rejected
        );
        let (batch, _) = &decoded.batches[0];
        let invalid: Vec<_> = validate(batch, &schema.fields)
            .into_iter()
            .map(|bad| (bad.row, bad.kind, bad.message))
            .collect();
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(reason, message)| (row, reason, message.to_string()))
            .collect();
        assert_eq!(invalid, expected, "{records:?}");
    }

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
            check_rows(&factory, &schema, &[json.as_str()], 0, expected);
        }
    }

    const COLLECTIONS: &str = r#"{"type":"record","name":"C","fields":[
        {"name":"items","type":["null",{"type":"array","items":{"type":"record","name":"Item","fields":[
            {"name":"sku","type":"string"},
            {"name":"size","type":{"type":"enum","name":"Size","symbols":["S","M"]}}
        ]}}],"default":null},
        {"name":"codes","type":{"type":"array","items":"string"}},
        {"name":"ids","type":{"type":"map","values":{"type":"string","logicalType":"uuid"}}},
        {"name":"contacts","type":{"type":"map","values":["null",{"type":"record","name":"Contact","fields":[
            {"name":"email","type":"string"}
        ]}]}}
    ]}"#;

    const FINE: &str = r#"{"items":[{"sku":"a","size":"S"}],"codes":["x"],"ids":{"a":"0b6f3f2e-8d1a-4c7e-9f00-5a1b2c3d4e5f"},"contacts":{"w":{"email":"e"},"h":null}}"#;

    /// Items of arrays and values of maps are held to their schema like columns, and a bad
    /// one names the row that holds it, at the `items[]` / `contacts{}` path.
    #[test]
    fn items_of_arrays_and_values_of_maps_are_validated_for_their_row() {
        let schema = PortSchema::parse(COLLECTIONS, Path::new("c.avsc")).expect("schema");
        let factory = JsonDecoderFactory::new(wire::json_wire_schema(&schema));
        let with = |from: &str, to: &str| {
            assert!(FINE.contains(from), "{from}");
            FINE.replacen(from, to, 1)
        };
        let cases = [
            (
                with(r#""items":[{"sku":"a","size":"S"}]"#, r#""items":null"#),
                None,
            ),
            (
                with(r#""items":[{"sku":"a","size":"S"}]"#, r#""items":[]"#),
                None,
            ),
            (
                with(r#""sku":"a","#, ""),
                Some((
                    Reason::Required,
                    "required field `items[].sku` is missing or null",
                )),
            ),
            (
                with(r#""size":"S""#, r#""size":"XL""#),
                Some((
                    Reason::Enum,
                    "`items[].size` is not one of the symbols S, M",
                )),
            ),
            (
                with(r#""codes":["x"]"#, r#""codes":["x",null]"#),
                Some((
                    Reason::Required,
                    "required field `codes[]` is missing or null",
                )),
            ),
            (
                with(r#""0b6f"#, r#""not-0b6f"#),
                Some((Reason::Format, "`ids{}` is not a UUID")),
            ),
            (
                with(r#"{"email":"e"}"#, r#"{"email":null}"#),
                Some((
                    Reason::Required,
                    "required field `contacts{}.email` is missing or null",
                )),
            ),
        ];
        for (json, expected) in cases {
            // The bad record between two good ones: its row, and only its row, is named.
            check_rows(&factory, &schema, &[FINE, json.as_str(), FINE], 1, expected);
        }
    }
}
