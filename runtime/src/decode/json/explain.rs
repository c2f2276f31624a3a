//! Why one JSON record failed to build: the record is re-read with serde_json and each field
//! is checked against the wire schema, with the acceptance rules of arrow-json 58's default
//! decoder (no primitive coercion, unknown fields ignored, the last of duplicate keys wins).
//!
//! arrow-json reports every build error as `ArrowError::JsonError(text)`, and the text quotes
//! the offending value; so the reason comes from this structural check, never from the
//! text, and the message names the field path and the expected type, never the value.

use std::collections::HashMap;

use arrow_array::ArrowPrimitiveType;
use arrow_array::timezone::Tz;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, DecimalType, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_cast::parse::{Parser, parse_decimal, string_to_datetime};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use serde_json::value::RawValue;

use super::decimal_screen::{MAX_EXPONENT, MAX_TEXT, beyond_arrow};
use crate::decode::{Diagnosis, Reason};

/// Deepest nesting checked; arrow-json would have built anything deeper the same way, so a
/// record this deep is left to the caller's default.
const MAX_DEPTH: usize = 64;

/// The first problem in `payload` against `fields` (the wire schema's columns), in field
/// order, as arrow-json meets them; `None` if the record looks decodable.
pub(super) fn diagnose(fields: &Fields, payload: &[u8]) -> Option<Diagnosis> {
    let Ok(text) = std::str::from_utf8(payload) else {
        return Some(Diagnosis::new(
            Reason::Decode,
            "the record is not valid UTF-8 text".into(),
        ));
    };
    let Ok(root) = serde_json::from_str::<&RawValue>(text) else {
        return Some(Diagnosis::new(
            Reason::Decode,
            "invalid JSON: the record is not one JSON value".into(),
        ));
    };
    match Json::read(root)? {
        Json::Object(members) => check_members(fields, &members, "", 0),
        other => Some(Diagnosis::new(
            Reason::Schema,
            format!("the record should be a JSON object, found {}", other.kind()),
        )),
    }
}

/// One JSON value, read only as deep as the check needs.
enum Json<'a> {
    Null,
    Bool,
    Number(&'a str),
    String(String),
    Array(Vec<&'a RawValue>),
    Object(HashMap<String, &'a RawValue>),
}

impl<'a> Json<'a> {
    /// `None` only if serde_json refuses a value it already accepted as raw JSON.
    fn read(raw: &'a RawValue) -> Option<Self> {
        let text = raw.get();
        Some(match text.trim_start().as_bytes().first()? {
            b'n' => Json::Null,
            b't' | b'f' => Json::Bool,
            b'"' => Json::String(serde_json::from_str(text).ok()?),
            b'[' => Json::Array(serde_json::from_str(text).ok()?),
            b'{' => Json::Object(serde_json::from_str(text).ok()?),
            _ => Json::Number(text.trim()),
        })
    }

    /// The JSON kind, for messages: never the value itself.
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn check_members(
    fields: &Fields,
    members: &HashMap<String, &RawValue>,
    parent: &str,
    depth: usize,
) -> Option<Diagnosis> {
    fields.iter().find_map(|field| {
        let path = join(parent, field.name());
        match members.get(field.name()) {
            Some(raw) => check(field, raw, &path, depth + 1),
            None if field.is_nullable() => None,
            None => Some(required(&path)),
        }
    })
}

fn required(path: &str) -> Diagnosis {
    Diagnosis::new(
        Reason::Required,
        format!("required field `{path}` is missing or null"),
    )
}

fn wrong_type(path: &str, expected: &DataType, found: &Json<'_>) -> Diagnosis {
    Diagnosis::new(
        Reason::Schema,
        format!(
            "`{path}` should be {}, found {}",
            describe(expected),
            found.kind()
        ),
    )
}

fn unparsable(path: &str, expected: &DataType) -> Diagnosis {
    Diagnosis::new(
        Reason::Schema,
        format!(
            "`{path}` should be {}, found a string that is not one",
            describe(expected)
        ),
    )
}

/// The problem with one value of `field`, if any.
fn check(field: &Field, raw: &RawValue, path: &str, depth: usize) -> Option<Diagnosis> {
    if depth > MAX_DEPTH {
        return None;
    }
    let value = Json::read(raw)?;
    if let Json::Null = value {
        return (!field.is_nullable()).then(|| required(path));
    }
    let ty = field.data_type();
    match ty {
        DataType::Struct(children) => match &value {
            Json::Object(members) => check_members(children, members, path, depth),
            _ => Some(wrong_type(path, ty, &value)),
        },
        DataType::List(item) | DataType::LargeList(item) => match &value {
            Json::Array(items) => {
                let path = format!("{path}[*]");
                items.iter().find_map(|v| check(item, v, &path, depth + 1))
            }
            _ => Some(wrong_type(path, ty, &value)),
        },
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return None;
            };
            let values = kv.get(1)?;
            match &value {
                Json::Object(members) => {
                    let path = format!("{path}[*]");
                    members
                        .values()
                        .find_map(|v| check(values, v, &path, depth + 1))
                }
                _ => Some(wrong_type(path, ty, &value)),
            }
        }
        DataType::Boolean => match value {
            Json::Bool => None,
            _ => Some(wrong_type(path, ty, &value)),
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match value {
            Json::String(_) => None,
            _ => Some(wrong_type(path, ty, &value)),
        },
        DataType::Decimal128(p, s) => check_decimal::<Decimal128Type>(path, ty, &value, *p, *s),
        DataType::Decimal256(p, s) => check_decimal::<Decimal256Type>(path, ty, &value, *p, *s),
        DataType::Timestamp(_, tz) => check_timestamp(path, ty, &value, tz.as_deref()),
        DataType::Int8 => check_primitive::<Int8Type>(path, ty, &value, int_fits(i8::MIN, i8::MAX)),
        DataType::Int16 => {
            check_primitive::<Int16Type>(path, ty, &value, int_fits(i16::MIN, i16::MAX))
        }
        DataType::Int32 => {
            check_primitive::<Int32Type>(path, ty, &value, int_fits(i32::MIN, i32::MAX))
        }
        DataType::Int64 => {
            check_primitive::<Int64Type>(path, ty, &value, int_fits(i64::MIN, i64::MAX))
        }
        DataType::UInt8 => check_primitive::<UInt8Type>(path, ty, &value, uint_fits(u8::MAX)),
        DataType::UInt16 => check_primitive::<UInt16Type>(path, ty, &value, uint_fits(u16::MAX)),
        DataType::UInt32 => check_primitive::<UInt32Type>(path, ty, &value, uint_fits(u32::MAX)),
        DataType::UInt64 => check_primitive::<UInt64Type>(path, ty, &value, uint_fits(u64::MAX)),
        DataType::Float32 => check_primitive::<Float32Type>(path, ty, &value, float_parses),
        DataType::Float64 => check_primitive::<Float64Type>(path, ty, &value, float_parses),
        DataType::Date32 => {
            check_primitive::<Date32Type>(path, ty, &value, int_fits(i32::MIN, i32::MAX))
        }
        DataType::Date64 => {
            check_primitive::<Date64Type>(path, ty, &value, int_fits(i64::MIN, i64::MAX))
        }
        DataType::Time32(TimeUnit::Second) => {
            check_primitive::<Time32SecondType>(path, ty, &value, int_fits(i32::MIN, i32::MAX))
        }
        DataType::Time32(_) => {
            check_primitive::<Time32MillisecondType>(path, ty, &value, int_fits(i32::MIN, i32::MAX))
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            check_primitive::<Time64NanosecondType>(path, ty, &value, int_fits(i64::MIN, i64::MAX))
        }
        DataType::Time64(_) => {
            check_primitive::<Time64MicrosecondType>(path, ty, &value, int_fits(i64::MIN, i64::MAX))
        }
        // Types the wire schema does not use: nothing to say.
        _ => None,
    }
}

/// A string goes through arrow-cast's parser for `P` (as arrow-json does); a number must
/// pass `number_fits`; any other kind is the wrong type.
fn check_primitive<P: ArrowPrimitiveType + Parser>(
    path: &str,
    ty: &DataType,
    value: &Json<'_>,
    number_fits: impl Fn(&str) -> bool,
) -> Option<Diagnosis> {
    match value {
        Json::String(s) if P::parse(s).is_some() => None,
        Json::String(_) => Some(unparsable(path, ty)),
        Json::Number(n) if number_fits(n) => None,
        Json::Number(_) => Some(Diagnosis::new(
            Reason::Schema,
            format!(
                "`{path}` should be {}, found a number out of range",
                describe(ty)
            ),
        )),
        _ => Some(wrong_type(path, ty, value)),
    }
}

/// arrow-json parses an integer column's number as the integer, falling back to a float
/// that truncates into range.
fn int_fits(min: impl Into<i64>, max: impl Into<i64>) -> impl Fn(&str) -> bool {
    let (min, max) = (min.into(), max.into());
    move |n: &str| match n.parse::<i64>() {
        Ok(v) => (min..=max).contains(&v),
        Err(_) => n
            .parse::<f64>()
            .is_ok_and(|f| f.trunc() >= min as f64 && f.trunc() <= max as f64),
    }
}

fn uint_fits(max: impl Into<u64>) -> impl Fn(&str) -> bool {
    let max = max.into();
    move |n: &str| match n.parse::<u64>() {
        Ok(v) => v <= max,
        Err(_) => n
            .parse::<f64>()
            .is_ok_and(|f| f.trunc() >= 0.0 && f.trunc() <= max as f64),
    }
}

fn float_parses(n: &str) -> bool {
    n.parse::<f64>().is_ok()
}

fn check_timestamp(
    path: &str,
    ty: &DataType,
    value: &Json<'_>,
    tz: Option<&str>,
) -> Option<Diagnosis> {
    match value {
        Json::String(s) => {
            let parses = match tz {
                None => string_to_datetime(&chrono::Utc, s).is_ok(),
                Some(tz) => match tz.parse::<Tz>() {
                    Ok(tz) => string_to_datetime(&tz, s).is_ok(),
                    // arrow-json would have refused the schema; nothing to say about the value.
                    Err(_) => true,
                },
            };
            (!parses).then(|| unparsable(path, ty))
        }
        Json::Number(n) => (!(n.parse::<i64>().is_ok() || n.parse::<f64>().is_ok())).then(|| {
            Diagnosis::new(
                Reason::Schema,
                format!(
                    "`{path}` should be {}, found a number out of range",
                    describe(ty)
                ),
            )
        }),
        _ => Some(wrong_type(path, ty, value)),
    }
}

/// A decimal arrives as a number or a string. One that is a well-formed decimal but has too
/// many digits for the precision is a [`Reason::Decimal`]; a string that is no number at all,
/// or another JSON kind, is a [`Reason::Schema`].
fn check_decimal<D: DecimalType>(
    path: &str,
    ty: &DataType,
    value: &Json<'_>,
    precision: u8,
    scale: i8,
) -> Option<Diagnosis> {
    let text = match value {
        Json::Number(n) => *n,
        Json::String(s) => s.as_str(),
        _ => return Some(wrong_type(path, ty, value)),
    };
    let too_long = beyond_arrow(text);
    if !too_long && parse_decimal::<D>(text, precision, scale).is_ok() {
        return None;
    }
    if !is_decimal_text(text) {
        return Some(unparsable(path, ty));
    }
    let message = if too_long {
        format!(
            "`{path}` is written with more than {MAX_TEXT} characters or an exponent beyond ±{MAX_EXPONENT}; write decimal({precision}, {scale}) values in fewer digits"
        )
    } else {
        format!("`{path}` does not fit decimal({precision}, {scale})")
    };
    Some(Diagnosis::new(Reason::Decimal, message))
}

/// Whether `s` is written as a decimal number: an optional sign, digits with at most one
/// point (and at least one digit), and an optional exponent.
fn is_decimal_text(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// The expected type, in words, for messages.
fn describe(ty: &DataType) -> String {
    match ty {
        DataType::Boolean => "a boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "a 32-bit integer".into(),
        DataType::Int64 => "a 64-bit integer".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            "an unsigned integer".into()
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "a number".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "a string".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            format!("a decimal({p}, {s}) as a number or a string")
        }
        DataType::Date32 | DataType::Date64 => "a date (days since 1970 or YYYY-MM-DD)".into(),
        DataType::Time32(_) | DataType::Time64(_) => "a time of day".into(),
        DataType::Timestamp(_, _) => "a timestamp (epoch number or RFC 3339 string)".into(),
        DataType::Struct(_) => "an object".into(),
        DataType::List(_) | DataType::LargeList(_) => "an array".into(),
        DataType::Map(_, _) => "an object (a map)".into(),
        other => format!("a {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_is_recognised_by_its_shape() {
        for yes in [
            "1",
            "-1.50",
            "+0.5",
            ".5",
            "5.",
            "1e3",
            "1.2E-7",
            "99999999999999999999",
        ] {
            assert!(is_decimal_text(yes), "{yes}");
        }
        for no in [
            "", ".", "-", "1.2.3", "1e", "e5", "abc", "1,5", "0x10", "1 ",
        ] {
            assert!(!is_decimal_text(no), "{no}");
        }
    }

    #[test]
    fn integers_fit_as_arrow_json_casts_them() {
        let fits = int_fits(i32::MIN, i32::MAX);
        assert!(fits("2147483647") && fits("-2147483648") && fits("1.9") && fits("1e3"));
        assert!(!fits("2147483648") && !fits("1e10"));
    }
}
