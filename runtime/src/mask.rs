//! Mask: every column with a `masking` attribute is replaced before the batch reaches a
//! writer, so raw PII never lands in a data file. Works column-at-a-time on Arrow arrays;
//! the keyed hash state is built once and cloned per value, not re-keyed.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use hmac::{Hmac, Mac};
use meshd_config::{Masking, PortSchema, Sensitive};
use sha2::{Digest, Sha256};

/// The fixed replacement for `REDACT`.
pub const REDACTED: &str = "[REDACTED]";

/// Applies a port's masking rules to decoded batches.
pub struct Masker {
    columns: Vec<(String, Masking)>,
    key: Option<Sensitive<Vec<u8>>>,
}

impl Masker {
    /// Masks the top-level columns of `schema` that declare `masking`.
    pub fn new(schema: &PortSchema, key: Option<Sensitive<Vec<u8>>>) -> Self {
        let columns = schema
            .fields
            .iter()
            .filter_map(|c| c.masking.map(|m| (c.name.clone(), m)))
            .collect();
        Self { columns, key }
    }

    /// Whether a key is configured (without one, SHA256 is unkeyed and HMAC cannot run).
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The methods in use, for the startup warning about unkeyed hashing.
    pub fn methods(&self) -> impl Iterator<Item = Masking> + '_ {
        self.columns.iter().map(|(_, m)| *m)
    }

    /// Replaces every masked column; other columns are shared, not copied.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        if self.columns.is_empty() {
            return Ok(batch.clone());
        }
        let schema = batch.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        for (name, method) in &self.columns {
            let Some((i, _)) = schema.column_with_name(name) else {
                continue;
            };
            let masked = self.mask_array(&arrays[i], *method)?;
            fields[i] = Field::new(name, masked.data_type().clone(), true)
                .with_metadata(fields[i].metadata().clone());
            arrays[i] = masked;
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
    }

    fn mask_array(&self, array: &ArrayRef, method: Masking) -> Result<ArrayRef, ArrowError> {
        if method == Masking::Null {
            return Ok(new_null_array(array.data_type(), array.len()));
        }
        let as_text = arrow_cast::cast(array, &DataType::Utf8)?;
        let strings = as_text
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| ArrowError::CastError("masking needs a string column".into()))?;
        let key = self.key.as_ref().map(|k| k.expose().as_slice());
        Ok(Arc::new(mask_strings(strings, method, key)?))
    }
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
    use super::*;

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
