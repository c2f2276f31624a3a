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

use crate::decode::reason;

/// A row that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Row in the batch.
    pub row: usize,
    /// One of [`reason`].
    pub kind: &'static str,
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

fn record(
    bad: &mut [Option<Invalid>],
    row: usize,
    kind: &'static str,
    message: impl FnOnce() -> String,
) {
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
                record(bad, row, reason::REQUIRED, || {
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
                    record(bad, row, reason::ENUM, || {
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
                        record(bad, row, reason::DECIMAL, || {
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
                    record(bad, row, reason::FORMAT, || {
                        format!("`{}` is not a UUID", column.path)
                    });
                }
            }
        }
        ColumnType::Fixed(width) if array.data_type() == &DataType::Utf8 => {
            let text = array.as_string::<i32>();
            for row in 0..text.len() {
                if text.is_valid(row) && text.value(row).len() != *width {
                    record(bad, row, reason::FORMAT, || {
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
