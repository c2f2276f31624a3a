//! JSON records through arrow-json's tape decoder, straight into Arrow builders; a record
//! that fails to build is explained by [`explain`].

mod decimal_screen;
mod explain;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::reader::{Decoder, ReaderBuilder};
use arrow_schema::SchemaRef;

use self::decimal_screen::DecimalScreen;
use super::{DecoderFactory, Diagnosis, RowDecoder};

/// Builds JSON decoders for a wire schema.
pub struct JsonDecoderFactory {
    schema: SchemaRef,
    /// Which records may hold a decimal text arrow-cast would misread: those are checked
    /// field by field first.
    decimals: DecimalScreen,
}

impl JsonDecoderFactory {
    /// `schema` is the wire schema (see [`super::wire`]).
    pub fn new(schema: SchemaRef) -> Self {
        let decimals = DecimalScreen::for_fields(schema.fields());
        Self { schema, decimals }
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

    fn diagnose(&self, payload: &[u8]) -> Option<Diagnosis> {
        explain::diagnose(self.schema.fields(), payload)
    }

    /// arrow-cast 58 counts a decimal's digits and exponent in unchecked small integers: a
    /// long text or a long exponent overflows them (a panic with overflow checks, a wrong
    /// value without; see [`decimal_screen`]). A record that may hold one under a decimal
    /// column is checked field by field first, and rejected with what that check finds.
    fn precheck(&self, payload: &[u8]) -> Option<Diagnosis> {
        if !self.decimals.may_hold_unsafe(payload) {
            return None;
        }
        self.diagnose(payload)
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

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Fields, Schema};

    use super::*;
    use crate::decode::{Reason, decode_all};

    /// The port's wire schema keeps every field nullable (validation reports missing ones), but
    /// a decoder given non-nullable fields must still say which one is missing.
    #[test]
    fn missing_fields_of_a_non_nullable_schema_are_required() {
        let inner = Fields::from(vec![Field::new("city", DataType::Utf8, false)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("address", DataType::Struct(inner), true),
        ]));
        let factory = JsonDecoderFactory::new(schema);
        let cases = [
            (r#"{"id":1,"address":{"city":"x"}}"#, None),
            (r#"{"id":1,"address":null}"#, None),
            (r#"{"address":{"city":"x"}}"#, Some("`id`")),
            (r#"{"id":null}"#, Some("`id`")),
            (r#"{"id":1,"address":{}}"#, Some("`address.city`")),
            (
                r#"{"id":1,"address":{"city":null}}"#,
                Some("`address.city`"),
            ),
        ];
        for (json, missing) in cases {
            let decoded = decode_all(&factory, &[Some(json.as_bytes())], 1 << 20);
            match missing {
                None => assert!(
                    decoded.rejected.is_empty(),
                    "{json}: {:?}",
                    decoded.rejected
                ),
                Some(path) => {
                    assert_eq!(
                        decoded.outcome(),
                        (vec![], vec![(0, Reason::Required)]),
                        "{json}"
                    );
                    assert_eq!(
                        decoded.rejected[0].message,
                        format!("required field {path} is missing or null")
                    );
                }
            }
        }
    }

    /// arrow-cast 58 overflows an `i16` on a decimal exponent of five digits (a panic in
    /// debug builds: found by the `decode_json` fuzz target): such records are rejected
    /// before the decoder sees them, the others in the chunk kept.
    /// Which records became rows, and the rejected ones with their reasons.
    fn outcome(factory: &JsonDecoderFactory, records: &[&[u8]]) -> (Vec<u32>, Vec<(u32, Reason)>) {
        let payloads: Vec<Option<&[u8]>> = records.iter().map(|r| Some(*r)).collect();
        decode_all(factory, &payloads, 1 << 20).outcome()
    }

    #[test]
    fn decimal_exponents_beyond_arrow_s_reach_are_rejected_not_parsed() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(12, 2), true),
        ]));
        let factory = JsonDecoderFactory::new(schema);
        let long = format!(r#"{{"id":"i","amount":1{}}}"#, "0".repeat(259));
        let long_zeros = format!(r#"{{"id":"j","amount":"0.1{}"}}"#, "0".repeat(200));
        let records: Vec<&[u8]> = vec![
            br#"{"id":"a","amount":"12.5"}"#,
            br#"{"id":"b","amount":"2E400000"}"#,
            br#"{"id":"c","amount":2E400000}"#,
            br#"{"id":"d","amount":"2E400000}.3."}"#,
            br#"{"id":"f","amount":"E4020000"}"#,
            br#"{"id":"e12345","amount":"1E00001"}"#,
            br#"{"id":"g","amount"		:"E8+040000}.3."}"#,
            br#"{"id":"h","amount":1e32767}"#,
            long.as_bytes(),
            long_zeros.as_bytes(),
            br#"{"id":"k","amount":"1e3"}"#,
            br#"{"id":"l","amount":-1.25e+2}"#,
            // arrow-cast 58 in a release build: 10.00, the exponent wrapped around 16 bits.
            br#"{"id":"m","amount":1e65537}"#,
        ];
        let (kept, rejected) = outcome(&factory, &records);
        assert_eq!(kept, vec![0, 5, 10, 11], "{rejected:?}");
        assert_eq!(
            rejected,
            vec![
                (1, Reason::Decimal),
                (2, Reason::Decimal),
                (3, Reason::Schema),
                (4, Reason::Schema),
                (6, Reason::Schema),
                (7, Reason::Decimal),
                (8, Reason::Decimal),
                (9, Reason::Decimal),
                (12, Reason::Decimal),
            ]
        );
    }

    /// Decimals in lists and structs are screened under their own keys; a map of decimals
    /// (keys are data) has every value screened.
    #[test]
    fn nested_decimals_beyond_arrow_s_reach_are_rejected_not_parsed() {
        let fee = Fields::from(vec![Field::new("value", DataType::Decimal128(9, 2), true)]);
        let entries = Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Decimal128(9, 2), true),
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new_list(
                "splits",
                Field::new_list_field(DataType::Decimal128(9, 2), true),
                true,
            ),
            Field::new("fee", DataType::Struct(fee), true),
            Field::new(
                "rates",
                DataType::Map(
                    Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                    false,
                ),
                true,
            ),
        ]));
        let factory = JsonDecoderFactory::new(schema);
        let records: Vec<&[u8]> = vec![
            br#"{"splits":[1.5, "2"],"fee":{"value":0.25},"rates":{"eur":"1.1"}}"#,
            br#"{"splits":[1.5, "2e+12345"]}"#,
            br#"{"fee":{"value":"-1.5E1234-5"}}"#,
            br#"{"rates":{"eur":1e99999}}"#,
        ];
        let (kept, rejected) = outcome(&factory, &records);
        assert_eq!(kept, vec![0], "{rejected:?}");
        assert_eq!(
            rejected,
            vec![
                (1, Reason::Decimal),
                (2, Reason::Schema),
                (3, Reason::Decimal)
            ]
        );
    }

    /// Nested values are checked with the rules of their own type, and the message points at
    /// the element (`[*]`) without saying which key or index held it.
    #[test]
    fn nested_values_are_diagnosed_at_their_path() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
                true,
            ),
            Field::new(
                "prices",
                DataType::Map(
                    Arc::new(Field::new(
                        "entries",
                        DataType::Struct(Fields::from(vec![
                            Field::new("keys", DataType::Utf8, false),
                            Field::new("values", DataType::Decimal128(4, 2), true),
                        ])),
                        false,
                    )),
                    false,
                ),
                true,
            ),
        ]));
        let factory = JsonDecoderFactory::new(schema);
        let cases = [
            (r#"{"tags":[1,"2",null],"prices":{"a":"1.5"}}"#, None),
            (
                r#"{"tags":[1,"secret"]}"#,
                Some((
                    Reason::Schema,
                    "`tags[*]` should be a 32-bit integer, found a string that is not one",
                )),
            ),
            (
                r#"{"tags":[1,4294967296]}"#,
                Some((
                    Reason::Schema,
                    "`tags[*]` should be a 32-bit integer, found a number out of range",
                )),
            ),
            (
                r#"{"tags":{"secret":1}}"#,
                Some((Reason::Schema, "`tags` should be an array, found an object")),
            ),
            (
                r#"{"prices":{"secret":"123.45"}}"#,
                Some((Reason::Decimal, "`prices[*]` does not fit decimal(4, 2)")),
            ),
        ];
        for (json, expected) in cases {
            let decoded = decode_all(&factory, &[Some(json.as_bytes())], 1 << 20);
            match expected {
                None => assert!(
                    decoded.rejected.is_empty(),
                    "{json}: {:?}",
                    decoded.rejected
                ),
                Some((reason, message)) => {
                    assert_eq!(decoded.outcome(), (vec![], vec![(0, reason)]), "{json}");
                    assert_eq!(decoded.rejected[0].message, message);
                }
            }
        }
    }
}
