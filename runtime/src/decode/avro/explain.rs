//! Why one Avro datum failed to build: the datum is walked against the writer schema, byte
//! by byte, the way arrow-avro 58 reads it.
//!
//! arrow-avro checks an enum's index and a string's UTF-8 only when it builds the batch, and
//! both failures surface as the same `ArrowError::InvalidArgumentError`; the walk tells
//! them apart by where the datum breaks the schema, and names the field, never the value.

use std::collections::HashMap;

use arrow_array::types::{Decimal128Type, Decimal256Type, DecimalType};
use arrow_buffer::i256;
use serde_json::{Map, Value};

use crate::decode::{Diagnosis, Reason};

/// Deepest schema nesting walked (recursive schemas can nest as deep as the data goes).
const MAX_DEPTH: usize = 64;

/// The writer schema, as much of it as the walk needs. Named types are nodes in `nodes`, so
/// a recursive schema is a cycle of indices rather than an infinite tree.
#[derive(Debug)]
pub(super) struct WalkSchema {
    nodes: Vec<Node>,
    root: usize,
}

#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    /// `bytes`; with `decimal`, its precision.
    Bytes {
        decimal: Option<u8>,
    },
    /// `string` (a `uuid` too: arrow-avro checks those while feeding, before any flush).
    String,
    Fixed {
        size: usize,
        decimal: Option<u8>,
    },
    Enum {
        symbols: Vec<String>,
    },
    Record {
        fields: Vec<(String, usize)>,
    },
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    /// A named type being defined (replaced once its definition is read).
    Pending,
}

impl WalkSchema {
    /// Reads an `.avsc`; `None` if it uses something the walk does not model (the factory
    /// then explains failures by its default).
    pub(super) fn parse(avsc: &str) -> Option<Self> {
        let json: Value = serde_json::from_str(avsc).ok()?;
        let mut parser = SchemaParser::default();
        let root = parser.node(&json, "")?;
        Some(Self {
            nodes: parser.nodes,
            root,
        })
    }

    /// The first problem in `datum` (a raw Avro datum, no header), in field order; `None` if
    /// the datum reads cleanly or the walk gives up (too deep, too many items).
    pub(super) fn diagnose(&self, datum: &[u8]) -> Option<Diagnosis> {
        let mut walk = Walk {
            schema: self,
            buf: datum,
            pos: 0,
            budget: datum.len().saturating_mul(4).saturating_add(4096),
            first: None,
        };
        match walk.value(self.root, "", 0) {
            Err(Stop::Malformed(path)) => Some(Diagnosis::new(
                Reason::Decode,
                if path.is_empty() {
                    "invalid Avro datum: it ends early or is malformed".into()
                } else {
                    format!("invalid Avro datum: it ends early or is malformed at `{path}`")
                },
            )),
            Err(Stop::GaveUp) => None,
            Ok(()) if walk.pos != datum.len() => Some(Diagnosis::new(
                Reason::Decode,
                "invalid Avro datum: trailing bytes after the record".into(),
            )),
            Ok(()) => walk.first,
        }
    }
}

#[derive(Default)]
struct SchemaParser {
    nodes: Vec<Node>,
    named: HashMap<String, usize>,
}

impl SchemaParser {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn node(&mut self, json: &Value, namespace: &str) -> Option<usize> {
        match json {
            Value::String(name) => self.by_name(name, namespace),
            Value::Array(branches) => {
                let branches = branches
                    .iter()
                    .map(|b| self.node(b, namespace))
                    .collect::<Option<Vec<_>>>()?;
                Some(self.push(Node::Union(branches)))
            }
            Value::Object(object) => self.complex(object, namespace),
            _ => None,
        }
    }

    fn by_name(&mut self, name: &str, namespace: &str) -> Option<usize> {
        let primitive = match name {
            "null" => Node::Null,
            "boolean" => Node::Boolean,
            "int" => Node::Int,
            "long" => Node::Long,
            "float" => Node::Float,
            "double" => Node::Double,
            "bytes" => Node::Bytes { decimal: None },
            "string" => Node::String,
            _ => {
                let qualified = format!("{namespace}.{name}");
                return self
                    .named
                    .get(&qualified)
                    .or_else(|| self.named.get(name))
                    .copied();
            }
        };
        Some(self.push(primitive))
    }

    fn complex(&mut self, object: &Map<String, Value>, namespace: &str) -> Option<usize> {
        let logical = object.get("logicalType").and_then(Value::as_str);
        let decimal = || {
            (logical == Some("decimal"))
                .then(|| object.get("precision").and_then(Value::as_u64))
                .flatten()
                .and_then(|p| u8::try_from(p).ok())
        };
        let ty = match object.get("type")? {
            Value::String(ty) => ty.as_str(),
            // `{"type": {...}}`: the type is nested one level down.
            nested => return self.node(nested, namespace),
        };
        match ty {
            "bytes" => Some(self.push(Node::Bytes { decimal: decimal() })),
            "string" => Some(self.push(Node::String)),
            "array" => {
                let items = self.node(object.get("items")?, namespace)?;
                Some(self.push(Node::Array(items)))
            }
            "map" => {
                let values = self.node(object.get("values")?, namespace)?;
                Some(self.push(Node::Map(values)))
            }
            "fixed" | "enum" | "record" | "error" => {
                let (full, inner) = full_name(object, namespace)?;
                let index = self.push(Node::Pending);
                self.named.insert(full, index);
                let node = match ty {
                    "fixed" => Node::Fixed {
                        size: usize::try_from(object.get("size")?.as_u64()?).ok()?,
                        decimal: decimal(),
                    },
                    "enum" => Node::Enum {
                        symbols: object
                            .get("symbols")?
                            .as_array()?
                            .iter()
                            .map(|s| s.as_str().map(str::to_string))
                            .collect::<Option<_>>()?,
                    },
                    _ => {
                        let mut fields = Vec::new();
                        for field in object.get("fields")?.as_array()? {
                            let name = field.get("name")?.as_str()?.to_string();
                            fields.push((name, self.node(field.get("type")?, &inner)?));
                        }
                        Node::Record { fields }
                    }
                };
                self.nodes[index] = node;
                Some(index)
            }
            other => self.by_name(other, namespace),
        }
    }
}

/// A named type's full name and the namespace its children inherit.
fn full_name(object: &Map<String, Value>, namespace: &str) -> Option<(String, String)> {
    let name = object.get("name")?.as_str()?;
    if let Some((ns, _)) = name.rsplit_once('.') {
        return Some((name.to_string(), ns.to_string()));
    }
    let ns = object
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(namespace);
    let full = if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}.{name}")
    };
    Some((full, ns.to_string()))
}

enum Stop {
    /// The bytes do not frame as the schema says (ends early, bad varint, no such branch).
    Malformed(String),
    /// Too deep or too many items to walk; say nothing rather than guess.
    GaveUp,
}

struct Walk<'s, 'a> {
    schema: &'s WalkSchema,
    buf: &'a [u8],
    pos: usize,
    budget: usize,
    /// The first value problem met; the walk goes on to check the framing after it.
    first: Option<Diagnosis>,
}

impl<'a> Walk<'_, 'a> {
    fn value(&mut self, node: usize, path: &str, depth: usize) -> Result<(), Stop> {
        if depth > MAX_DEPTH || self.budget == 0 {
            return Err(Stop::GaveUp);
        }
        self.budget -= 1;
        let malformed = || Stop::Malformed(path.to_string());
        let schema = self.schema;
        match schema.nodes.get(node).ok_or(Stop::GaveUp)? {
            Node::Null => {}
            Node::Boolean => {
                self.take(1).ok_or_else(malformed)?;
            }
            Node::Int => {
                let v = self.varint().ok_or_else(malformed)?;
                u32::try_from(v).map_err(|_| malformed())?;
            }
            Node::Long => {
                self.varint().ok_or_else(malformed)?;
            }
            Node::Float => {
                self.take(4).ok_or_else(malformed)?;
            }
            Node::Double => {
                self.take(8).ok_or_else(malformed)?;
            }
            Node::Bytes { decimal } => {
                let raw = self.bytes().ok_or_else(malformed)?;
                if let Some(precision) = decimal {
                    self.check_decimal(raw, *precision, path);
                }
            }
            Node::Fixed { size, decimal } => {
                let raw = self.take(*size).ok_or_else(malformed)?;
                if let Some(precision) = decimal {
                    self.check_decimal(raw, *precision, path);
                }
            }
            Node::String => {
                let raw = self.bytes().ok_or_else(malformed)?;
                if std::str::from_utf8(raw).is_err() {
                    self.note(Reason::Decode, || format!("`{path}` is not valid UTF-8"));
                }
            }
            Node::Enum { symbols } => {
                let index = self.long().ok_or_else(malformed)?;
                if usize::try_from(index).map_or(true, |i| i >= symbols.len()) {
                    self.note(Reason::Enum, || {
                        format!("`{path}` is not one of the symbols {}", symbols.join(", "))
                    });
                }
            }
            Node::Record { fields } => {
                for (name, field) in fields {
                    let child = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    self.value(*field, &child, depth + 1)?;
                }
            }
            Node::Array(items) => {
                let child = format!("{path}[*]");
                self.blocks(path, |walk| walk.value(*items, &child, depth + 1))?;
            }
            Node::Map(values) => {
                let child = format!("{path}[*]");
                self.blocks(path, |walk| {
                    let key = walk.bytes().ok_or_else(|| Stop::Malformed(child.clone()))?;
                    if std::str::from_utf8(key).is_err() {
                        walk.note(Reason::Decode, || {
                            format!("a key of `{path}` is not valid UTF-8")
                        });
                    }
                    walk.value(*values, &child, depth + 1)
                })?;
            }
            Node::Union(branches) => {
                let branch = self.long().ok_or_else(malformed)?;
                let chosen = usize::try_from(branch)
                    .ok()
                    .and_then(|b| branches.get(b))
                    .ok_or_else(malformed)?;
                self.value(*chosen, path, depth + 1)?;
            }
            Node::Pending => return Err(Stop::GaveUp),
        }
        Ok(())
    }

    /// Array and map items come in blocks: a count (negative: followed by a byte size), the
    /// items, and a zero count at the end.
    fn blocks(
        &mut self,
        path: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        let malformed = || Stop::Malformed(path.to_string());
        loop {
            let count = self.long().ok_or_else(malformed)?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long().ok_or_else(malformed)?;
            }
            for _ in 0..count.unsigned_abs() {
                if self.budget == 0 {
                    return Err(Stop::GaveUp);
                }
                item(self)?;
            }
        }
    }

    fn note(&mut self, reason: Reason, message: impl FnOnce() -> String) {
        if self.first.is_none() {
            self.first = Some(Diagnosis::new(reason, message()));
        }
    }

    /// arrow-avro reads a decimal into an i128 (precision up to 38) or an i256; a value that
    /// does not fit there, or has more digits than the precision, is a [`Reason::Decimal`].
    fn check_decimal(&mut self, raw: &[u8], precision: u8, path: &str) {
        let fits = match sign_extend_256(raw) {
            Some(v) if precision <= 38 => v
                .to_i128()
                .is_some_and(|v| Decimal128Type::is_valid_decimal_precision(v, precision)),
            Some(v) => Decimal256Type::is_valid_decimal_precision(v, precision),
            None => false,
        };
        if !fits {
            self.note(Reason::Decimal, || {
                format!("`{path}` has more than {precision} digits")
            });
        }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// An unsigned LEB128 varint of at most 10 bytes, the last carrying at most one bit.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.take(1)?.first()?;
            if i == 9 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn long(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.long()?).ok()?;
        self.take(len)
    }
}

/// A big-endian two's-complement integer as an i256, if it fits in 32 bytes.
fn sign_extend_256(raw: &[u8]) -> Option<i256> {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0x00 };
    let mut bytes = [fill; 32];
    let (extra, kept) = if raw.len() > 32 {
        raw.split_at(raw.len() - 32)
    } else {
        (&[][..], raw)
    };
    if extra.iter().any(|&b| b != fill) {
        return None;
    }
    bytes[32 - kept.len()..].copy_from_slice(kept);
    if (bytes[0] & 0x80 != 0) != negative {
        return None;
    }
    Some(i256::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_sign_extend_and_refuse_what_does_not_fit() {
        assert_eq!(sign_extend_256(&[0x04, 0xe2]), Some(i256::from_i128(1250)));
        assert_eq!(sign_extend_256(&[0xff, 0x38]), Some(i256::from_i128(-200)));
        assert_eq!(sign_extend_256(&[]), Some(i256::ZERO));
        let mut wide = vec![0u8; 33];
        assert_eq!(sign_extend_256(&wide), Some(i256::ZERO));
        wide[0] = 1;
        assert_eq!(sign_extend_256(&wide), None);
    }

    #[test]
    fn named_types_resolve_across_namespaces_and_recursion() {
        let schema = WalkSchema::parse(
            r#"{"type":"record","name":"a.Node","fields":[
                {"name":"s","type":{"type":"enum","name":"S","symbols":["X","Y"]}},
                {"name":"again","type":"a.S"},
                {"name":"next","type":["null","Node"]}
            ]}"#,
        )
        .expect("schema");
        // s=Y, again=X, next=Node{s=X, again=Y, next=null}
        assert_eq!(schema.diagnose(&[2, 0, 2, 0, 2, 0]), None);
        let bad = schema.diagnose(&[2, 0, 2, 0, 4, 0]).expect("bad enum");
        assert_eq!(bad.reason, Reason::Enum);
        assert_eq!(bad.message, "`next.again` is not one of the symbols X, Y");
    }
}
