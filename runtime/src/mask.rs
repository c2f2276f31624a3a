//! Mask: every column or nested field with a `masking` attribute is replaced before the batch
//! reaches a writer, so raw PII never lands in a data file. Works column-at-a-time on Arrow
//! arrays; the keyed hash state is built once and cloned per value, not re-keyed.
//!
//! The port's schema becomes a tree of [`Rule`]s that reaches only the masked fields: into a
//! record's fields, an array's items and a map's values. Applying it rebuilds just the arrays
//! on that way (a struct with one child replaced, a list or map with its values replaced)
//! and shares every other buffer (offsets, validity, unmasked children) with the input.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, GenericListArray, MapArray, OffsetSizeTrait, RecordBatch, StringArray,
    StructArray, new_null_array,
};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema};
use hmac::{Hmac, Mac};
use meshd_config::{Column, ColumnType, Masking, PortSchema, Sensitive};
use sha2::{Digest, Sha256};

/// The fixed replacement for `REDACT`.
pub const REDACTED: &str = "[REDACTED]";

/// Applies a port's masking rules to decoded batches.
pub struct Masker {
    columns: Vec<(String, Rule)>,
    methods: Vec<Masking>,
    key: Option<Sensitive<Vec<u8>>>,
}

/// What happens to one column or nested field. Built once per port, so a batch only walks
/// the fields that hold something masked.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    /// Replace the values. On an array or a map the items or values are masked one by one
    /// (map keys are kept); `NULL` instead nulls the whole field.
    Mask(Masking),
    /// A record: rules for some of its fields, by name.
    Fields(Vec<(String, Rule)>),
    /// An array: the rule for each item.
    Items(Box<Rule>),
    /// A map: the rule for each value.
    Values(Box<Rule>),
}

impl Rule {
    fn of_column(c: &Column) -> Option<Rule> {
        match c.masking {
            Some(m) => Some(Rule::Mask(m)),
            None => Rule::of_type(&c.ty),
        }
    }

    fn of_type(ty: &ColumnType) -> Option<Rule> {
        match ty {
            ColumnType::Record(children) => {
                let rules: Vec<(String, Rule)> = children
                    .iter()
                    .filter_map(|c| Rule::of_column(c).map(|r| (c.name.clone(), r)))
                    .collect();
                (!rules.is_empty()).then_some(Rule::Fields(rules))
            }
            ColumnType::Array { items, .. } => {
                Rule::of_type(items).map(|r| Rule::Items(Box::new(r)))
            }
            ColumnType::Map { values, .. } => {
                Rule::of_type(values).map(|r| Rule::Values(Box::new(r)))
            }
            _ => None,
        }
    }

    /// Whether the result may hold nulls where the input had none.
    fn nulls_values(&self) -> bool {
        matches!(self, Rule::Mask(Masking::Null))
    }
}

impl Masker {
    /// Masks the columns of `schema` that declare `masking`, at any depth.
    pub fn new(schema: &PortSchema, key: Option<Sensitive<Vec<u8>>>) -> Self {
        let columns = schema
            .fields
            .iter()
            .filter_map(|c| Rule::of_column(c).map(|r| (c.name.clone(), r)))
            .collect();
        let methods = schema
            .all_columns()
            .into_iter()
            .filter_map(|c| c.masking)
            .collect();
        Self {
            columns,
            methods,
            key,
        }
    }

    /// Whether a key is configured (without one, SHA256 is unkeyed and HMAC cannot run).
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The methods in use, nested fields' included, for the startup checks about the key.
    pub fn methods(&self) -> impl Iterator<Item = Masking> + '_ {
        self.methods.iter().copied()
    }

    /// Replaces every masked column or nested field; everything else is shared, not copied.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        if self.columns.is_empty() {
            return Ok(batch.clone());
        }
        let schema = batch.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        for (name, rule) in &self.columns {
            let Some((i, _)) = schema.column_with_name(name) else {
                continue;
            };
            let masked = self.apply_rule(&arrays[i], rule, name)?;
            fields[i] = Field::new(name, masked.data_type().clone(), true)
                .with_metadata(fields[i].metadata().clone());
            arrays[i] = masked;
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
    }

    /// `path` names the field in errors (never a value).
    fn apply_rule(
        &self,
        array: &ArrayRef,
        rule: &Rule,
        path: &str,
    ) -> Result<ArrayRef, ArrowError> {
        match rule {
            Rule::Mask(method) => self.mask_array(array, *method, path),
            Rule::Fields(rules) => {
                let Some(record) = array.as_struct_opt() else {
                    return Err(expected("a record", path, array));
                };
                let (fields, mut children, nulls) = record.clone().into_parts();
                let mut fields: Vec<Field> = fields.iter().map(|f| f.as_ref().clone()).collect();
                for (name, rule) in rules {
                    let Some(i) = fields.iter().position(|f| f.name() == name) else {
                        continue;
                    };
                    let masked = self.apply_rule(&children[i], rule, &format!("{path}.{name}"))?;
                    fields[i] = replaced(&fields[i], &masked, rule.nulls_values());
                    children[i] = masked;
                }
                Ok(Arc::new(StructArray::try_new(
                    Fields::from(fields),
                    children,
                    nulls,
                )?))
            }
            Rule::Items(inner) => map_items(array, path, inner.nulls_values(), |items, at| {
                self.apply_rule(items, inner, at)
            }),
            Rule::Values(inner) => map_values(array, path, inner.nulls_values(), |values, at| {
                self.apply_rule(values, inner, at)
            }),
        }
    }

    fn mask_array(
        &self,
        array: &ArrayRef,
        method: Masking,
        path: &str,
    ) -> Result<ArrayRef, ArrowError> {
        if method == Masking::Null {
            return Ok(new_null_array(array.data_type(), array.len()));
        }
        match array.data_type() {
            DataType::List(_) | DataType::LargeList(_) => {
                map_items(array, path, false, |items, at| {
                    self.mask_array(items, method, at)
                })
            }
            DataType::Map(..) => map_values(array, path, false, |values, at| {
                self.mask_array(values, method, at)
            }),
            DataType::Struct(_) => Err(ArrowError::InvalidArgumentError(format!(
                "masking {method} cannot apply to the record `{path}`; mask its fields"
            ))),
            _ => {
                let as_text = arrow_cast::cast(array, &DataType::Utf8)?;
                let Some(strings) = as_text.as_string_opt::<i32>() else {
                    return Err(expected("text", path, array));
                };
                let key = self.key.as_ref().map(|k| k.expose().as_slice());
                Ok(Arc::new(mask_strings(strings, method, key)?))
            }
        }
    }
}

fn expected(what: &str, path: &str, array: &ArrayRef) -> ArrowError {
    ArrowError::SchemaError(format!(
        "masking expected {what} at `{path}`, found {}",
        array.data_type()
    ))
}

/// `field` carrying `masked`'s type; `NULL` masking makes it nullable.
fn replaced(field: &Field, masked: &ArrayRef, nulls_values: bool) -> Field {
    field
        .clone()
        .with_data_type(masked.data_type().clone())
        .with_nullable(field.is_nullable() || nulls_values)
}

/// A list (or large list) with `f` applied to its items array; offsets and validity are kept.
fn map_items(
    array: &ArrayRef,
    path: &str,
    nulls_values: bool,
    f: impl FnOnce(&ArrayRef, &str) -> Result<ArrayRef, ArrowError>,
) -> Result<ArrayRef, ArrowError> {
    fn rebuild<O: OffsetSizeTrait>(
        list: &GenericListArray<O>,
        path: &str,
        nulls_values: bool,
        f: impl FnOnce(&ArrayRef, &str) -> Result<ArrayRef, ArrowError>,
    ) -> Result<ArrayRef, ArrowError> {
        let (field, offsets, items, nulls) = list.clone().into_parts();
        let masked = f(&items, &format!("{path}[]"))?;
        let field = replaced(&field, &masked, nulls_values);
        Ok(Arc::new(GenericListArray::<O>::try_new(
            Arc::new(field),
            offsets,
            masked,
            nulls,
        )?))
    }
    if let Some(list) = array.as_list_opt::<i32>() {
        rebuild(list, path, nulls_values, f)
    } else if let Some(list) = array.as_list_opt::<i64>() {
        rebuild(list, path, nulls_values, f)
    } else {
        Err(expected("an array", path, array))
    }
}

/// A map with `f` applied to its values array; keys, offsets and validity are kept.
fn map_values(
    array: &ArrayRef,
    path: &str,
    nulls_values: bool,
    f: impl FnOnce(&ArrayRef, &str) -> Result<ArrayRef, ArrowError>,
) -> Result<ArrayRef, ArrowError> {
    let Some(map) = array.as_any().downcast_ref::<MapArray>() else {
        return Err(expected("a map", path, array));
    };
    let (field, offsets, entries, nulls, ordered) = map.clone().into_parts();
    let (entry_fields, mut kv, entry_nulls) = entries.into_parts();
    if kv.len() != 2 {
        return Err(expected("a map of keys and values", path, array));
    }
    let masked = f(&kv[1], &format!("{path}{{}}"))?;
    let value_field = replaced(&entry_fields[1], &masked, nulls_values);
    kv[1] = masked;
    let entry_fields = Fields::from(vec![entry_fields[0].as_ref().clone(), value_field]);
    let field = field
        .as_ref()
        .clone()
        .with_data_type(DataType::Struct(entry_fields.clone()));
    let entries = StructArray::try_new(entry_fields, kv, entry_nulls)?;
    Ok(Arc::new(MapArray::try_new(
        Arc::new(field),
        offsets,
        entries,
        nulls,
        ordered,
    )?))
}

/// Masks a string array with one method; `key` feeds SHA256 (prefix) and HMAC-SHA256.
pub fn mask_strings(
    values: &StringArray,
    method: Masking,
    key: Option<&[u8]>,
) -> Result<StringArray, ArrowError> {
    let len = values.len();
    let mut out = StringBuilder::with_capacity(len, len * 64);
    let mut hex_buf = [0u8; 64];
    match method {
        Masking::Sha256 => {
            let mut base = Sha256::new();
            if let Some(k) = key {
                base.update(k);
            }
            for v in values.iter() {
                match v {
                    None => out.append_null(),
                    Some(s) => {
                        let mut h = base.clone();
                        h.update(s.as_bytes());
                        out.append_value(hex(&h.finalize(), &mut hex_buf));
                    }
                }
            }
        }
        Masking::HmacSha256 => {
            let k = key.ok_or_else(|| {
                ArrowError::InvalidArgumentError(
                    "HMAC-SHA256 masking needs a key: set masking.keyFile or masking.keyEnv".into(),
                )
            })?;
            let base = <Hmac<Sha256> as Mac>::new_from_slice(k).map_err(|_| {
                ArrowError::InvalidArgumentError("the masking key cannot key HMAC-SHA256".into())
            })?;
            for v in values.iter() {
                match v {
                    None => out.append_null(),
                    Some(s) => {
                        let mut m = base.clone();
                        m.update(s.as_bytes());
                        out.append_value(hex(&m.finalize().into_bytes(), &mut hex_buf));
                    }
                }
            }
        }
        Masking::Redact => {
            for v in values.iter() {
                match v {
                    None => out.append_null(),
                    Some(_) => out.append_value(REDACTED),
                }
            }
        }
        Masking::Last4 => {
            let mut buf = String::new();
            for v in values.iter() {
                match v {
                    None => out.append_null(),
                    Some(s) => {
                        buf.clear();
                        let n = s.chars().count();
                        for (i, c) in s.chars().enumerate() {
                            buf.push(if i + 4 < n { '*' } else { c });
                        }
                        out.append_value(&buf);
                    }
                }
            }
        }
        Masking::Null => {
            for _ in 0..len {
                out.append_null();
            }
        }
    }
    Ok(out.finish())
}

fn hex<'a>(digest: &[u8], buf: &'a mut [u8; 64]) -> &'a str {
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(digest, buf);
    std::str::from_utf8(buf).unwrap_or_default()
}

/// The masked value of one string, as the worker computes it: for tests and the demo.
pub fn mask_one(value: &str, method: Masking, key: Option<&[u8]>) -> Option<String> {
    let arr = StringArray::from(vec![Some(value)]);
    let out = mask_strings(&arr, method, key).ok()?;
    (!out.is_null(0)).then(|| out.value(0).to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::*;
    use crate::decode::{AvroDecoderFactory, DecoderFactory, JsonDecoderFactory, decode_all, wire};

    const KEY: &[u8] = b"k3y";

    /// Every shape a producer nests PII in, each with another method.
    const NESTED: &str = r#"{"type":"record","name":"Order","fields":[
        {"name":"id","type":"string"},
        {"name":"customer","type":["null",{"type":"record","name":"Customer","fields":[
            {"name":"name","type":"string"},
            {"name":"email","type":"string","tags":["PII"],"masking":"HMAC-SHA256"},
            {"name":"phone","type":["null","string"],"default":null,"tags":["PII"],"masking":"LAST4"},
            {"name":"ssn","type":["null","long"],"default":null,"tags":["PII"],"masking":"SHA256"},
            {"name":"age","type":["null","int"],"default":null,"tags":["PII"],"masking":"NULL"},
            {"name":"address","type":{"type":"record","name":"Address","fields":[
                {"name":"city","type":"string"},
                {"name":"street","type":"string","tags":["PII"],"masking":"REDACT"}
            ]}}
        ]}],"default":null},
        {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
            {"name":"sku","type":"string"},
            {"name":"note","type":["null","string"],"default":null,"tags":["PII"],"masking":"REDACT"}
        ]}}},
        {"name":"codes","type":{"type":"array","items":"string"},"tags":["PII"],"masking":"LAST4"},
        {"name":"attributes","type":{"type":"map","values":"string"},"tags":["PII"],"masking":"REDACT"},
        {"name":"contacts","type":{"type":"map","values":{"type":"record","name":"Contact","fields":[
            {"name":"kind","type":"string"},
            {"name":"email","type":"string","tags":["PII"],"masking":"SHA256"}
        ]}}}
    ]}"#;

    const ORDER: &str = r#"{"id":"o1",
        "customer":{"name":"Alice","email":"alice@example.com","phone":"+81 90 1234 5678","ssn":123456789,"age":41,
                    "address":{"city":"Tokyo","street":"1-2-3 Chiyoda"}},
        "items":[{"sku":"A-1","note":"leave at door"},{"sku":"B-2","note":null}],
        "codes":["4111111111111111","12"],
        "attributes":{"ip":"10.1.2.3","ua":"curl"},
        "contacts":{"work":{"kind":"office","email":"a@work.example"}}}"#;

    /// No customer, no items, nothing in the maps: masking keeps the nulls and empties.
    const EMPTY: &str =
        r#"{"id":"o2","customer":null,"items":[],"codes":[],"attributes":{},"contacts":{}}"#;

    fn port() -> PortSchema {
        PortSchema::parse(NESTED, Path::new("nested.avsc")).expect("schema")
    }

    /// The worker's path for `batch`: validate, mask, conform to the table; rows as JSON.
    fn through_the_worker(schema: &PortSchema, batch: &RecordBatch) -> Vec<Value> {
        assert_eq!(crate::validate::validate(batch, &schema.fields), vec![]);
        let masked = Masker::new(schema, Some(Sensitive::new(KEY.to_vec())))
            .apply(batch)
            .expect("masked");
        let table = iceberg::arrow::schema_to_arrow_schema(&schema.iceberg_schema().expect("ice"))
            .expect("arrow");
        let rows = wire::conform(&masked, &Arc::new(table)).expect("conformed");
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::JsonArray>(Vec::new());
        writer.write(&rows).expect("json");
        writer.finish().expect("json");
        serde_json::from_slice(&writer.into_inner()).expect("rows")
    }

    fn json_rows(records: &[&str]) -> Vec<Value> {
        let schema = port();
        let factory = JsonDecoderFactory::new(wire::json_wire_schema(&schema));
        let payloads: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
        let decoded = decode_all(&factory, &payloads, 1 << 20);
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        through_the_worker(&schema, &decoded.batches[0].0)
    }

    fn mask(value: &str, method: Masking) -> Value {
        json!(mask_one(value, method, Some(KEY)).expect("masked"))
    }

    #[test]
    fn fields_of_a_record_are_masked_with_every_method_and_siblings_kept() {
        let rows = json_rows(&[ORDER]);
        assert_eq!(
            rows[0]["customer"],
            json!({
                "name": "Alice",
                "email": mask("alice@example.com", Masking::HmacSha256),
                "phone": "************5678",
                "ssn": mask("123456789", Masking::Sha256),
                "age": null,
                "address": {"city": "Tokyo", "street": REDACTED},
            })
        );
        assert_eq!(rows[0]["id"], "o1");
    }

    #[test]
    fn fields_of_records_in_an_array_are_masked_item_by_item() {
        let rows = json_rows(&[ORDER]);
        assert_eq!(
            rows[0]["items"],
            json!([{"sku": "A-1", "note": REDACTED}, {"sku": "B-2", "note": null}])
        );
    }

    #[test]
    fn masking_on_an_array_or_a_map_masks_each_item_or_value_and_keeps_keys() {
        let rows = json_rows(&[ORDER]);
        assert_eq!(rows[0]["codes"], json!(["************1111", "12"]));
        assert_eq!(
            rows[0]["attributes"],
            json!({"ip": REDACTED, "ua": REDACTED})
        );
    }

    #[test]
    fn fields_of_records_in_a_map_are_masked_value_by_value() {
        let rows = json_rows(&[ORDER]);
        assert_eq!(
            rows[0]["contacts"],
            json!({"work": {"kind": "office", "email": mask("a@work.example", Masking::Sha256)}})
        );
    }

    #[test]
    fn null_records_and_empty_collections_stay_as_they_were() {
        let rows = json_rows(&[EMPTY, ORDER, EMPTY]);
        for row in [&rows[0], &rows[2]] {
            assert_eq!(
                *row,
                json!({"id": "o2", "customer": null, "items": [], "codes": [], "attributes": {}, "contacts": {}})
            );
        }
        assert_eq!(rows[1]["items"][0]["note"], REDACTED);
    }

    /// arrow-avro names list items and map entries its own way; masking finds them by shape.
    #[test]
    fn avro_decoded_nested_fields_are_masked_the_same() {
        use apache_avro::types::Value as A;
        let schema = port();
        let avro = apache_avro::Schema::parse_str(NESTED).expect("avro");
        let s = |v: &str| A::String(v.into());
        let some = |v: A| A::Union(1, Box::new(v));
        let record = A::Record(vec![
            ("id".into(), s("o1")),
            (
                "customer".into(),
                some(A::Record(vec![
                    ("name".into(), s("Alice")),
                    ("email".into(), s("alice@example.com")),
                    ("phone".into(), some(s("+81 90 1234 5678"))),
                    ("ssn".into(), some(A::Long(123_456_789))),
                    ("age".into(), some(A::Int(41))),
                    (
                        "address".into(),
                        A::Record(vec![
                            ("city".into(), s("Tokyo")),
                            ("street".into(), s("1-2-3 Chiyoda")),
                        ]),
                    ),
                ])),
            ),
            (
                "items".into(),
                A::Array(vec![A::Record(vec![
                    ("sku".into(), s("A-1")),
                    ("note".into(), some(s("leave at door"))),
                ])]),
            ),
            ("codes".into(), A::Array(vec![s("4111111111111111")])),
            (
                "attributes".into(),
                A::Map([("ip".to_string(), s("10.1.2.3"))].into()),
            ),
            (
                "contacts".into(),
                A::Map(
                    [(
                        "work".to_string(),
                        A::Record(vec![
                            ("kind".into(), s("office")),
                            ("email".into(), s("a@work.example")),
                        ]),
                    )]
                    .into(),
                ),
            ),
        ]);
        let datum = apache_avro::to_avro_datum(&avro, record).expect("encode");
        let factory = AvroDecoderFactory::new(NESTED).expect("factory");
        let decoded = decode_all(&factory as &dyn DecoderFactory, &[Some(&datum)], 1 << 20);
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        let rows = through_the_worker(&schema, &decoded.batches[0].0);
        let row = &rows[0];
        assert_eq!(
            row["customer"]["email"],
            mask("alice@example.com", Masking::HmacSha256)
        );
        assert_eq!(row["customer"]["age"], Value::Null);
        assert_eq!(row["customer"]["address"]["street"], REDACTED);
        assert_eq!(row["items"], json!([{"sku": "A-1", "note": REDACTED}]));
        assert_eq!(row["codes"], json!(["************1111"]));
        assert_eq!(row["attributes"], json!({"ip": REDACTED}));
        assert_eq!(
            row["contacts"]["work"]["email"],
            mask("a@work.example", Masking::Sha256)
        );
    }

    /// The key check at start must see nested HMAC fields, or the first batch would fail.
    #[test]
    fn nested_methods_are_reported_and_hmac_without_a_key_fails() {
        let schema = port();
        let masker = Masker::new(&schema, None);
        let mut methods: Vec<&str> = masker.methods().map(Masking::as_str).collect();
        methods.sort();
        assert_eq!(
            methods,
            [
                "HMAC-SHA256",
                "LAST4",
                "LAST4",
                "NULL",
                "REDACT",
                "REDACT",
                "REDACT",
                "SHA256",
                "SHA256"
            ]
        );
        let factory = JsonDecoderFactory::new(wire::json_wire_schema(&schema));
        let decoded = decode_all(&factory, &[Some(ORDER.as_bytes())], 1 << 20);
        let err = masker.apply(&decoded.batches[0].0).unwrap_err();
        assert!(err.to_string().contains("needs a key"), "{err}");
    }

    #[test]
    fn a_schema_without_nested_masking_leaves_batches_untouched() {
        let schema = PortSchema::parse(
            r#"{"type":"record","name":"P","fields":[
                {"name":"customer","type":{"type":"record","name":"C","fields":[{"name":"city","type":"string"}]}},
                {"name":"items","type":{"type":"array","items":"string"}}
            ]}"#,
            Path::new("p.avsc"),
        )
        .expect("schema");
        let masker = Masker::new(&schema, None);
        assert!(masker.columns.is_empty());
        assert_eq!(masker.methods().count(), 0);
    }

    #[test]
    fn every_method_matches_its_definition() {
        let key = b"k3y".as_slice();
        let sha = hex::encode(Sha256::digest(b"k3yalice@example.com"));
        assert_eq!(
            mask_one("alice@example.com", Masking::Sha256, Some(key)).unwrap(),
            sha
        );
        let plain = hex::encode(Sha256::digest(b"alice@example.com"));
        assert_eq!(
            mask_one("alice@example.com", Masking::Sha256, None).unwrap(),
            plain
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        mac.update(b"alice@example.com");
        assert_eq!(
            mask_one("alice@example.com", Masking::HmacSha256, Some(key)).unwrap(),
            hex::encode(mac.finalize().into_bytes())
        );
        assert_eq!(mask_one("4242", Masking::Redact, None).unwrap(), REDACTED);
        assert_eq!(
            mask_one("4111111111111111", Masking::Last4, None).unwrap(),
            "************1111"
        );
        assert_eq!(mask_one("abc", Masking::Last4, None).unwrap(), "abc");
        assert_eq!(mask_one("x", Masking::Null, None), None);
        assert!(mask_one("x", Masking::HmacSha256, None).is_none());
    }
}
