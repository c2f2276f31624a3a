//! Decimal texts arrow-cast 58 cannot read safely. Its `parse_decimal` counts a decimal's
//! digits in a `u8` and adds the scale to that count in a `u8` (more than ~180 digits overflow
//! it), and `parse_e_notation` folds the exponent into an `i16` and then shifts it by the
//! digit counts (an exponent of 10,000 or more overflows it). None of that arithmetic is
//! checked: a panic with overflow checks, a silently wrong value without (meshd's release
//! build). Records that may hold such a text under a decimal column are found before
//! arrow-json sees them and checked field by field ([`super::explain`]); the texts themselves
//! are rejected there, with their reason, by [`beyond_arrow`].
//!
//! Below [`MAX_TEXT`] bytes and with an exponent of at most four digits, every step of
//! arrow-cast's parse stays in range for any precision and scale up to 76.
//!
//! The screen looks only where a decimal can be: at the values of the keys that name decimal
//! columns (one substring search per key, so a record costs about as much as one `memchr`),
//! or, when a decimal sits under a map whose keys are data, at every number in the record.

use arrow_schema::{DataType, Field, Fields};
use memchr::memmem::Finder;

/// Longest decimal text meshd hands to arrow-cast: more than any of the 76 digits a decimal
/// can hold needs, far below where its digit counters overflow.
pub(super) const MAX_TEXT: usize = 128;

/// Largest exponent meshd hands to arrow-cast (its magnitude).
pub(super) const MAX_EXPONENT: i16 = 9_999;

/// Where a schema's decimals can appear in a JSON record.
pub(super) enum DecimalScreen {
    /// No decimal column: no record needs a look.
    Nothing,
    /// The values of these keys (`"name"`, quotes included), at any depth.
    Keys(Vec<Finder<'static>>),
    /// A decimal under a map, or a name a record could spell with escapes: every value.
    Everywhere,
}

impl DecimalScreen {
    /// The screen for a wire schema's columns.
    pub(super) fn for_fields(fields: &Fields) -> Self {
        let mut keys = Vec::new();
        if !decimal_keys(fields, &mut keys) {
            return Self::Everywhere;
        }
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            Self::Nothing
        } else {
            Self::Keys(
                keys.iter()
                    .map(|k| Finder::new(format!("\"{k}\"").as_bytes()).into_owned())
                    .collect(),
            )
        }
    }

    /// Whether `payload` may hold a decimal text arrow-cast cannot read safely; false means
    /// every decimal in it is safe to parse. Any `\u` escape counts as may (it could spell a
    /// key, a digit or an `e`).
    pub(super) fn may_hold_unsafe(&self, payload: &[u8]) -> bool {
        let found = match self {
            Self::Nothing => return false,
            Self::Everywhere => has_long_number(payload) || may_hold_long_exponent(payload),
            Self::Keys(finders) => finders.iter().any(|finder| {
                finder
                    .find_iter(payload)
                    .any(|at| value_may_be_unsafe(&payload[at + finder.needle().len()..]))
            }),
        };
        found || has_unicode_escape(payload)
    }
}

/// Whether arrow-cast 58 must not be given `text` as a decimal: longer than [`MAX_TEXT`], or
/// an exponent beyond ±[`MAX_EXPONENT`]. No such text is a decimal any column holds (but
/// zeros written at length, which meshd rejects as well).
pub(super) fn beyond_arrow(text: &str) -> bool {
    if text.len() > MAX_TEXT {
        return true;
    }
    let Some(at) = text.find(['e', 'E']) else {
        return false;
    };
    let mut exponent: i16 = 0;
    for digit in exponent_digits(&text.as_bytes()[at + 1..]) {
        match exponent
            .checked_mul(10)
            .and_then(|e| e.checked_add(i16::from(digit - b'0')))
        {
            Some(e) if e <= MAX_EXPONENT => exponent = e,
            _ => return true,
        }
    }
    false
}

/// Collects the names of the object keys under which a decimal value can appear; false when
/// some cannot be known (a map's keys are data) or searched for literally (a name a record
/// could write with escapes).
fn decimal_keys(fields: &Fields, keys: &mut Vec<String>) -> bool {
    fields
        .iter()
        .all(|field| match holds_decimal(field.data_type()) {
            Holds::No => true,
            Holds::Directly => {
                keys.push(field.name().clone());
                // Avro's names; anything else a record might spell with an escape (`\/`).
                field
                    .name()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }
            Holds::InFields(inner) => decimal_keys(inner, keys),
            Holds::UnderMap => false,
        })
}

/// How a column's type holds a decimal.
enum Holds<'a> {
    No,
    /// The value under the column's own key is a decimal or a list of them.
    Directly,
    /// The decimals are fields of a struct (or of a list's structs), under their own keys.
    InFields(&'a Fields),
    /// Under a map: keyed by data.
    UnderMap,
}

fn holds_decimal(ty: &DataType) -> Holds<'_> {
    let holds = |field: &Field| !matches!(holds_decimal(field.data_type()), Holds::No);
    match ty {
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Holds::Directly,
        DataType::Struct(fields) if fields.iter().any(|f| holds(f)) => Holds::InFields(fields),
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            holds_decimal(item.data_type())
        }
        // The entries are a struct of key and value.
        DataType::Map(entries, _) if holds(entries) => Holds::UnderMap,
        _ => Holds::No,
    }
}

/// Whether the value after a key's closing quote may be unsafe. Only a key is followed by
/// `:`; the same text as a string value is not a key and holds nothing.
fn value_may_be_unsafe(after_key: &[u8]) -> bool {
    let Some(rest) = skip_whitespace(after_key).strip_prefix(b":") else {
        return false;
    };
    let value = skip_whitespace(rest);
    if value.first() == Some(&b'[') {
        list_may_be_unsafe(&value[1..])
    } else {
        token_may_be_unsafe(scalar(value))
    }
}

/// A list's items, each screened; anything but scalars separated by commas (a nested list,
/// an object, a record cut short) counts as may.
fn list_may_be_unsafe(mut items: &[u8]) -> bool {
    loop {
        items = skip_whitespace(items);
        match items.first() {
            Some(b']') => return false,
            Some(b'[' | b'{') | None => return true,
            Some(_) => {}
        }
        let item = scalar(items);
        if token_may_be_unsafe(item) {
            return true;
        }
        items = skip_whitespace(&items[item.len()..]);
        match items.first() {
            Some(b',') => items = &items[1..],
            Some(b']') => return false,
            _ => return true,
        }
    }
}

/// The scalar at the start of `value`: a string through its closing quote (an escaped quote
/// ends it early, which is safe: arrow-cast stops at a quote too), or a literal up to the next
/// delimiter.
fn scalar(value: &[u8]) -> &[u8] {
    let end = if value.first() == Some(&b'"') {
        memchr::memchr(b'"', &value[1..]).map_or(value.len(), |i| i + 2)
    } else {
        value
            .iter()
            .position(|b| matches!(b, b',' | b'}' | b']') || is_whitespace(*b))
            .unwrap_or(value.len())
    };
    &value[..end]
}

fn token_may_be_unsafe(token: &[u8]) -> bool {
    token.len() > MAX_TEXT || may_hold_long_exponent(token)
}

/// Whether a run of digits and points longer than [`MAX_TEXT`] appears anywhere: the only way
/// a number, or a string arrow-cast reads as one, can grow its digit count that far.
fn has_long_number(payload: &[u8]) -> bool {
    payload
        .split(|b| !(b.is_ascii_digit() || *b == b'.'))
        .any(|run| run.len() > MAX_TEXT)
}

/// JSON's whitespace, as arrow-json's tape decoder skips it.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !is_whitespace(*b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn has_unicode_escape(payload: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', payload).any(|i| payload.get(i + 1) == Some(&b'u'))
}

/// The digits arrow-cast 58 folds into the exponent, from the byte after the `e`: every digit
/// up to the first other byte, except that one sign is taken anywhere among them (`E8+040000`
/// reads as 8040000: `parse_e_notation` lets the sign in at any position, once).
fn exponent_digits(after_e: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut signed = false;
    after_e
        .iter()
        .take_while(move |b| match b {
            b'+' | b'-' if !signed => {
                signed = true;
                true
            }
            b => b.is_ascii_digit(),
        })
        .copied()
        .filter(u8::is_ascii_digit)
}

/// Whether bytes may hold a number with an exponent of five or more digits, as arrow-cast
/// would read it: from the start of a value (after `"`, `:`, `,`, `[` or space), an optional
/// sign, digits and a point, `e` or `E`, five digits with one sign anywhere among them. An `e`
/// inside a word or an id (`a3e45678`) does not pass it.
fn may_hold_long_exponent(bytes: &[u8]) -> bool {
    let long_exponent_at = |i: usize| {
        exponent_digits(&bytes[i + 1..]).take(5).count() == 5 && starts_a_value(&bytes[..i])
    };
    // A single value is a few bytes: a plain loop beats setting up a vector search.
    if bytes.len() < SHORT {
        (0..bytes.len()).any(|i| matches!(bytes[i], b'e' | b'E') && long_exponent_at(i))
    } else {
        memchr::memchr2_iter(b'e', b'E', bytes).any(long_exponent_at)
    }
}

/// Below this many bytes, a byte-by-byte scan is cheaper than a vector search.
const SHORT: usize = 32;

/// Whether what precedes an `e` is the start of a value followed by a number's sign, digits
/// and point.
fn starts_a_value(before: &[u8]) -> bool {
    let mut at = before.len();
    while at > 0 && (before[at - 1].is_ascii_digit() || before[at - 1] == b'.') {
        at -= 1;
    }
    if at > 0 && matches!(before[at - 1], b'+' | b'-') {
        at -= 1;
    }
    at == 0
        || matches!(
            before[at - 1],
            b'"' | b':' | b',' | b'[' | b' ' | b'\t' | b'\n' | b'\r'
        )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn texts_beyond_arrow_are_the_long_and_the_far_exponents() {
        for beyond in [
            "2E400000",
            "2e+40000}.3.",
            "-1.5E-99999",
            "E8+040000}.3.",
            "1e32767",
            "1e10000",
            "1e3-2768",
            &"1".repeat(MAX_TEXT + 1),
        ] {
            assert!(beyond_arrow(beyond), "{beyond}");
        }
        for within in [
            "1.5E4",
            "1E00001",
            "123.45",
            "1e9999",
            "1e+-40000",
            &"1".repeat(MAX_TEXT),
        ] {
            assert!(!beyond_arrow(within), "{within}");
        }
        assert!(may_hold_long_exponent(br#"{"amount":"2E400000"}"#));
        assert!(may_hold_long_exponent(br#"{"amount":1.e-12345}"#));
        assert!(may_hold_long_exponent(br#"{"amount":"E4020000"}"#));
        assert!(may_hold_long_exponent(br#"{"amount":"-1.5e-12345"}"#));
        assert!(may_hold_long_exponent(br#"{"amount":"E8+040000}.3."}"#));
        assert!(may_hold_long_exponent(br#"{"amount":1.5e1234-5}"#));
        assert!(!may_hold_long_exponent(
            br#"{"event_time":1764000000000,"e":"e1234"}"#
        ));
        assert!(!may_hold_long_exponent(br#"{"amount":1E1234}"#));
        assert!(!may_hold_long_exponent(
            br#"{"id":"a3e45678","email":"x-12e34567@y"}"#
        ));
    }

    fn screen(fields: Vec<Field>) -> DecimalScreen {
        DecimalScreen::for_fields(&Fields::from(fields))
    }

    fn decimal(name: &str) -> Field {
        Field::new(name, DataType::Decimal128(18, 2), true)
    }

    #[test]
    fn only_the_values_of_decimal_keys_are_screened() {
        let fee = Fields::from(vec![
            decimal("value"),
            Field::new("note", DataType::Utf8, true),
        ]);
        let keys = screen(vec![
            Field::new("id", DataType::Utf8, true),
            decimal("amount"),
            Field::new("fee", DataType::Struct(fee), true),
            Field::new_list(
                "splits",
                Field::new_list_field(DataType::Decimal128(9, 2), true),
                true,
            ),
        ]);
        assert!(matches!(&keys, DecimalScreen::Keys(k) if k.len() == 3));
        let long = format!(r#"{{"amount":{}}}"#, "1".repeat(MAX_TEXT + 1));
        let long_in_list = format!(r#"{{"splits":[1, "{}"]}}"#, "1".repeat(MAX_TEXT));
        let flagged = [
            r#"{"amount":"2E400000"}"#,
            r#"{"amount": 1.e-12345}"#,
            r#"{"amount" :"E4020000"}"#,
            "{\"amount\"\n:\t2e12345}",
            r#"{"id":"x","fee":{"note":"n","value":-1.5e-12345}}"#,
            r#"{"splits":[1,2,3e+12345]}"#,
            r#"{"splits":[1,[2]]}"#,
            r#"{"splits":[1,2"#,
            r#"{"amount":"2\u004512345"}"#,
            r#"{"\u0061mount":2e12345}"#,
            &long,
            &long_in_list,
        ];
        for record in flagged {
            assert!(keys.may_hold_unsafe(record.as_bytes()), "{record}");
        }
        let long_id = format!(r#"{{"id":"{}","amount":1}}"#, "1".repeat(300));
        let passed = [
            r#"{"amount":1E1234,"id":"a3e45678"}"#,
            r#"{"id":"1e99999","amount":1}"#,
            r#"{"id":"amount","amount":12.5}"#,
            r#"{"fee":{"note":"9e99999","value":null}}"#,
            r#"{"amount":"12.50","splits":[]}"#,
            r#"{"splits":[ 1 , "2.5" ,null ]}"#,
            &long_id,
        ];
        for record in passed {
            assert!(!keys.may_hold_unsafe(record.as_bytes()), "{record}");
        }
    }

    #[test]
    fn a_decimal_under_a_map_screens_every_value_and_no_decimal_screens_none() {
        let entries = |value: DataType| {
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", value, true),
                ])),
                false,
            ))
        };
        let map = screen(vec![Field::new(
            "m",
            DataType::Map(entries(DataType::Decimal128(9, 2)), false),
            true,
        )]);
        assert!(matches!(map, DecimalScreen::Everywhere));
        assert!(map.may_hold_unsafe(br#"{"m":{"k":1e99999}}"#));
        let long = format!(r#"{{"m":{{"k":"{}"}}}}"#, "9".repeat(MAX_TEXT + 1));
        assert!(map.may_hold_unsafe(long.as_bytes()));
        assert!(!map.may_hold_unsafe(br#"{"m":{"k":1e9,"l":"12.50"}}"#));
        let plain_map = screen(vec![Field::new(
            "m",
            DataType::Map(entries(DataType::Utf8), false),
            true,
        )]);
        assert!(matches!(plain_map, DecimalScreen::Nothing));
        let slashed = screen(vec![decimal("a/b")]);
        assert!(matches!(slashed, DecimalScreen::Everywhere));
        assert!(slashed.may_hold_unsafe(br#"{"a\/b":1e99999}"#));
        assert!(!plain_map.may_hold_unsafe(br#"{"m":{"k":1e99999}}"#));
    }
}
