//! An output port's schema: the Avro `.avsc` a team writes (with meshd's custom field
//! attributes `tags` and `masking`), turned into a column tree, an Iceberg schema with stable
//! field ids, and from there an Arrow schema.
//!
//! Field ids are assigned breadth-first in declaration order (top-level columns 1..n, then
//! nested ones), so the same `.avsc` always gives the same ids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apache_avro::Schema as Avro;
use iceberg::spec::{
    ListType, MapType, NestedField, PrimitiveType, Schema as IcebergSchema, StructType, Type,
};

use crate::descriptor::PartitionTransform;
use crate::error::{ConfigError, Diagnostic};
use crate::kafka_metadata::{self, KafkaMetadata};
use crate::masking::Masking;

/// A loaded port schema.
#[derive(Debug, Clone)]
pub struct PortSchema {
    /// The `.avsc` it came from.
    pub path: PathBuf,
    /// The Avro record name, e.g. `payments.Transaction`.
    pub record_name: String,
    /// The parsed Avro schema, for Avro decoding.
    pub avro: Avro,
    /// The `.avsc` text, for fingerprints and the policy input.
    pub text: String,
    /// Top-level columns in declaration order.
    pub fields: Vec<Column>,
}

/// One column (or nested field) with its governance attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Field name.
    pub name: String,
    /// Where the field is, from the top: `address.city`, `items[].sku` inside an array of
    /// records, `contacts{}.email` inside a map of records. Errors, masking and policies all
    /// name a nested field by it.
    pub path: String,
    /// The field's `doc`.
    pub doc: Option<String>,
    /// Custom `tags` attribute, e.g. `["PII"]`.
    pub tags: Vec<String>,
    /// Custom `masking` attribute.
    pub masking: Option<Masking>,
    /// Whether the value may be null (`["null", T]`).
    pub optional: bool,
    /// The value's type.
    pub ty: ColumnType,
}

/// Column types meshd supports, with Avro logical types resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// Avro boolean.
    Boolean,
    /// 32-bit int.
    Int,
    /// 64-bit long.
    Long,
    /// 32-bit float.
    Float,
    /// 64-bit double.
    Double,
    /// UTF-8 string.
    String,
    /// Variable-length bytes.
    Bytes,
    /// Fixed-length bytes.
    Fixed(usize),
    /// Decimal with precision and scale.
    Decimal {
        /// Total digits.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// Days since epoch.
    Date,
    /// Time of day; `micros` tells the wire unit.
    Time {
        /// Wire unit is microseconds (else milliseconds).
        micros: bool,
    },
    /// Instant; `utc` for Avro `timestamp-*`, false for `local-timestamp-*`.
    Timestamp {
        /// Wire unit is microseconds (else milliseconds).
        micros: bool,
        /// Adjusted to UTC (Iceberg `timestamptz`).
        utc: bool,
    },
    /// RFC 4122 UUID in its string form.
    Uuid,
    /// Enum; stored as its symbol string.
    Enum(Vec<String>),
    /// Nested record.
    Record(Vec<Column>),
    /// Array of items.
    Array {
        /// Item type.
        items: Box<ColumnType>,
        /// Items may be null.
        items_optional: bool,
    },
    /// Map from string to values.
    Map {
        /// Value type.
        values: Box<ColumnType>,
        /// Values may be null.
        values_optional: bool,
    },
}

impl ColumnType {
    /// The fields of the record this type holds: itself, or its items or map values at any
    /// depth (`array<array<record>>`). Paths through arrays and maps are written `items[]` and
    /// `attributes{}`, so a nested field keeps one spelling in errors, masking and policies.
    pub fn record_fields(&self) -> Option<&[Column]> {
        match self {
            ColumnType::Record(children) => Some(children),
            ColumnType::Array { items, .. } => items.record_fields(),
            ColumnType::Map { values, .. } => values.record_fields(),
            _ => None,
        }
    }

    /// The type a hashing, redacting or `LAST4` masking leaves: text wherever the values sit
    /// (an array's items, a map's values; map keys are kept). `NULL` keeps the type instead.
    pub fn masked(&self) -> ColumnType {
        match self {
            ColumnType::Array {
                items,
                items_optional,
            } => ColumnType::Array {
                items: Box::new(items.masked()),
                items_optional: *items_optional,
            },
            ColumnType::Map {
                values,
                values_optional,
            } => ColumnType::Map {
                values: Box::new(values.masked()),
                values_optional: *values_optional,
            },
            // Refused when the schema is parsed: a record is masked field by field.
            ColumnType::Record(_) => self.clone(),
            _ => ColumnType::String,
        }
    }
}

impl PortSchema {
    /// Reads and maps an `.avsc`; every unsupported field is reported with its line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `.avsc` text as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let diag =
            |line: usize, column: usize, field: &str, message: String, hint: Option<String>| {
                Diagnostic {
                    file: path.to_path_buf(),
                    line,
                    column,
                    path: field.to_string(),
                    message,
                    hint,
                }
            };
        // serde_json first: it knows where a syntax error is; apache-avro does not.
        let json = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(json) => json,
            Err(e) => {
                return Err(ConfigError::invalid(diag(
                    e.line(),
                    e.column(),
                    "",
                    format!("not valid JSON: {e}"),
                    Some("an .avsc file is a JSON document".into()),
                )));
            }
        };
        // apache-avro 0.21 panics on an invalid record, enum or fixed name or alias: check first.
        if let Some(bad) = invalid_avro_name(&json) {
            let at = text.find(&format!("\"{bad}\"")).unwrap_or(0);
            let line = text[..at].matches('\n').count() + 1;
            let column = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
            return Err(ConfigError::invalid(diag(
                line,
                column,
                "",
                format!("`{bad}` is not a valid Avro name"),
                Some("names are letters, digits and `_`, not starting with a digit; namespaces join names with `.`".into()),
            )));
        }
        // A safety net for other panics inside apache-avro: a bad schema is an error, not a crash.
        let Ok(parsed) = std::panic::catch_unwind(|| Avro::parse_str(text)) else {
            return Err(ConfigError::invalid(diag(
                1,
                1,
                "",
                "not a valid Avro schema: the Avro parser failed on it".into(),
                Some("check every name, type and default against the Avro specification".into()),
            )));
        };
        let avro = parsed.map_err(|e| {
            ConfigError::invalid(diag(
                1,
                1,
                "",
                format!("not a valid Avro schema: {e}"),
                None,
            ))
        })?;
        let Avro::Record(record) = &avro else {
            return Err(ConfigError::invalid(diag(
                1,
                1,
                "",
                "the top-level schema must be an Avro record".into(),
                Some(
                    "wrap the columns in {\"type\": \"record\", \"name\": …, \"fields\": […]}"
                        .into(),
                ),
            )));
        };
        let mut mapper = Mapper {
            names: BTreeMap::new(),
            errors: Vec::new(),
        };
        collect_names(&avro, &mut mapper.names);
        let fields = mapper.record_fields(&record.fields, "");
        if !mapper.errors.is_empty() {
            let diagnostics = mapper
                .errors
                .into_iter()
                .map(|(field, message, hint)| {
                    let (line, column) =
                        locate_field(text, field.rsplit('.').next().unwrap_or(&field));
                    diag(line, column, &field, message, hint)
                })
                .collect();
            return Err(ConfigError::Invalid { diagnostics });
        }
        Ok(Self {
            path: path.to_path_buf(),
            record_name: record.name.fullname(None),
            avro: avro.clone(),
            text: text.to_string(),
            fields,
        })
    }

    /// Every column, nested ones included, depth-first: the fields of records, and of the
    /// records inside arrays (`items[].sku`) and map values (`attributes{}.note`), each after
    /// its parent. Governance rules and masking must see a field wherever it is nested.
    pub fn all_columns(&self) -> Vec<&Column> {
        fn walk<'a>(cols: &'a [Column], out: &mut Vec<&'a Column>) {
            for c in cols {
                out.push(c);
                if let Some(children) = c.ty.record_fields() {
                    walk(children, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.fields, &mut out);
        out
    }

    /// The top-level column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.fields.iter().find(|c| c.name == name)
    }

    /// The Iceberg schema of the port's columns. Masked columns are strings (the hash or the
    /// redaction), except `NULL` masking which keeps the type.
    pub fn iceberg_schema(&self) -> Result<IcebergSchema, iceberg::Error> {
        self.table_schema(&[])
    }

    /// The Iceberg schema of the published table: the port's columns, then, when the port
    /// keeps Kafka metadata, the [`KAFKA_COLUMN`](crate::KAFKA_COLUMN) struct with the ids
    /// after the port's own, so selecting metadata leaves every existing id where it was.
    pub fn table_schema(&self, kafka: &[KafkaMetadata]) -> Result<IcebergSchema, iceberg::Error> {
        let mut ids = IdAllocator { next: 1 };
        let top: Vec<i32> = self.fields.iter().map(|_| ids.take()).collect();
        let mut fields = self
            .fields
            .iter()
            .zip(top)
            .map(|(c, id)| column_field(c, id, &mut ids).into())
            .collect::<Vec<_>>();
        fields.extend(kafka_metadata::iceberg_field(kafka, ids.next).map(Into::into));
        IcebergSchema::builder().with_fields(fields).build()
    }

    /// Checks a partition field's source before any table exists.
    pub fn check_partition_source(
        &self,
        column: &str,
        transform: PartitionTransform,
    ) -> Result<(), String> {
        let Some(c) = self.column(column) else {
            return Err(format!(
                "partition column `{column}` is not a top-level column of the schema"
            ));
        };
        let temporal = matches!(c.ty, ColumnType::Date | ColumnType::Timestamp { .. });
        match transform {
            PartitionTransform::Year | PartitionTransform::Month | PartitionTransform::Day
                if !temporal =>
            {
                Err(format!(
                    "`{}` needs a date or timestamp column; `{column}` is not one",
                    transform.iceberg_name()
                ))
            }
            PartitionTransform::Hour if !matches!(c.ty, ColumnType::Timestamp { .. }) => Err(
                format!("`hour` needs a timestamp column; `{column}` is not one"),
            ),
            _ if matches!(
                c.ty,
                ColumnType::Record(_) | ColumnType::Array { .. } | ColumnType::Map { .. }
            ) =>
            {
                Err(format!(
                    "`{column}` is nested; partition by a primitive column"
                ))
            }
            _ => Ok(()),
        }
    }
}

struct IdAllocator {
    next: i32,
}

impl IdAllocator {
    fn take(&mut self) -> i32 {
        let id = self.next;
        self.next += 1;
        id
    }
}

fn column_field(c: &Column, id: i32, ids: &mut IdAllocator) -> NestedField {
    // The masked type has the same shape, so it takes the same field ids.
    let ty = if c.masking.is_some_and(|m| m.output_is_string()) {
        iceberg_type(&c.ty.masked(), ids)
    } else {
        iceberg_type(&c.ty, ids)
    };
    let field = if c.optional {
        NestedField::optional(id, &c.name, ty)
    } else {
        NestedField::required(id, &c.name, ty)
    };
    match column_doc(c) {
        Some(doc) => field.with_doc(doc),
        None => field,
    }
}

/// The column's doc in the table: the `.avsc` doc, then its tags and masking, so a reader of
/// the table (Trino's `DESCRIBE`, Spark, pyiceberg) sees which columns are PII and how they
/// were masked without the descriptor at hand.
fn column_doc(c: &Column) -> Option<String> {
    let mut notes = Vec::new();
    if !c.tags.is_empty() {
        notes.push(c.tags.join(", "));
    }
    if let Some(masking) = c.masking {
        notes.push(format!("masked with {}", masking.as_str()));
    }
    match (&c.doc, notes.is_empty()) {
        (doc, true) => doc.clone(),
        (None, false) => Some(format!("[{}]", notes.join("; "))),
        (Some(doc), false) => Some(format!("{doc} [{}]", notes.join("; "))),
    }
}

fn iceberg_type(ty: &ColumnType, ids: &mut IdAllocator) -> Type {
    use PrimitiveType as P;
    match ty {
        ColumnType::Boolean => Type::Primitive(P::Boolean),
        ColumnType::Int => Type::Primitive(P::Int),
        ColumnType::Long => Type::Primitive(P::Long),
        ColumnType::Float => Type::Primitive(P::Float),
        ColumnType::Double => Type::Primitive(P::Double),
        ColumnType::String | ColumnType::Enum(_) => Type::Primitive(P::String),
        ColumnType::Bytes => Type::Primitive(P::Binary),
        ColumnType::Fixed(n) => Type::Primitive(P::Fixed(*n as u64)),
        ColumnType::Decimal { precision, scale } => Type::Primitive(P::Decimal {
            precision: *precision,
            scale: *scale,
        }),
        ColumnType::Date => Type::Primitive(P::Date),
        ColumnType::Time { .. } => Type::Primitive(P::Time),
        ColumnType::Timestamp { utc: true, .. } => Type::Primitive(P::Timestamptz),
        ColumnType::Timestamp { utc: false, .. } => Type::Primitive(P::Timestamp),
        ColumnType::Uuid => Type::Primitive(P::Uuid),
        ColumnType::Record(children) => {
            let child_ids: Vec<i32> = children.iter().map(|_| ids.take()).collect();
            let fields = children
                .iter()
                .zip(child_ids)
                .map(|(c, id)| column_field(c, id, ids).into())
                .collect::<Vec<_>>();
            Type::Struct(StructType::new(fields))
        }
        ColumnType::Array {
            items,
            items_optional,
        } => {
            let id = ids.take();
            let element = iceberg_type(items, ids);
            Type::List(ListType::new(
                NestedField::list_element(id, element, !items_optional).into(),
            ))
        }
        ColumnType::Map {
            values,
            values_optional,
        } => {
            let key_id = ids.take();
            let value_id = ids.take();
            let value = iceberg_type(values, ids);
            Type::Map(MapType::new(
                NestedField::map_key_element(key_id, Type::Primitive(P::String)).into(),
                NestedField::map_value_element(value_id, value, !values_optional).into(),
            ))
        }
    }
}

struct Mapper {
    names: BTreeMap<String, Avro>,
    errors: Vec<(String, String, Option<String>)>,
}

impl Mapper {
    fn record_fields(
        &mut self,
        fields: &[apache_avro::schema::RecordField],
        prefix: &str,
    ) -> Vec<Column> {
        fields
            .iter()
            .filter_map(|f| {
                let path = if prefix.is_empty() { f.name.clone() } else { format!("{prefix}.{}", f.name) };
                let tags = match f.custom_attributes.get("tags") {
                    None => Vec::new(),
                    Some(serde_json::Value::Array(items)) if items.iter().all(|v| v.is_string()) => items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    Some(_) => {
                        self.errors.push((
                            path.clone(),
                            "`tags` must be a list of strings".into(),
                            Some("write \"tags\": [\"PII\"]".into()),
                        ));
                        Vec::new()
                    }
                };
                let masking = match f.custom_attributes.get("masking") {
                    None => None,
                    Some(serde_json::Value::String(s)) => match s.parse::<Masking>() {
                        Ok(m) => Some(m),
                        Err(e) => {
                            self.errors.push((path.clone(), e, None));
                            None
                        }
                    },
                    Some(_) => {
                        self.errors.push((path.clone(), "`masking` must be a string".into(), None));
                        None
                    }
                };
                let (optional, ty) = self.field_type(&f.schema, &path)?;
                if let Some(m) = masking.filter(|m| m.output_is_string())
                    && ty.record_fields().is_some()
                {
                    self.errors.push((
                        path.clone(),
                        format!("masking {m} cannot hash or redact the record `{path}` as a whole"),
                        Some("put `masking` on the record's fields; only NULL masks a whole record".into()),
                    ));
                }
                if masking == Some(Masking::Null) && !optional {
                    self.errors.push((
                        path.clone(),
                        format!("masking NULL needs an optional column, but `{path}` is required"),
                        Some("make its type [\"null\", …] with \"default\": null, or pick another masking".into()),
                    ));
                }
                Some(Column {
                    name: f.name.clone(),
                    path,
                    doc: f.doc.clone(),
                    tags,
                    masking,
                    optional,
                    ty,
                })
            })
            .collect()
    }

    /// (optional, type) of a field schema; None after recording an error.
    fn field_type(&mut self, schema: &Avro, path: &str) -> Option<(bool, ColumnType)> {
        if let Avro::Union(u) = schema {
            let non_null: Vec<&Avro> = u
                .variants()
                .iter()
                .filter(|v| !matches!(v, Avro::Null))
                .collect();
            if non_null.len() == 1 && u.variants().len() == 2 {
                return self.value_type(non_null[0], path).map(|t| (true, t));
            }
            self.errors.push((
                path.to_string(),
                format!("union types other than [\"null\", T] are not supported (field `{path}`)"),
                Some(
                    "use [\"null\", T] for an optional value, or a record with optional fields"
                        .into(),
                ),
            ));
            return None;
        }
        self.value_type(schema, path).map(|t| (false, t))
    }

    fn value_type(&mut self, schema: &Avro, path: &str) -> Option<ColumnType> {
        Some(match schema {
            Avro::Boolean => ColumnType::Boolean,
            Avro::Int => ColumnType::Int,
            Avro::Long => ColumnType::Long,
            Avro::Float => ColumnType::Float,
            Avro::Double => ColumnType::Double,
            Avro::String => ColumnType::String,
            Avro::Bytes => ColumnType::Bytes,
            Avro::Fixed(f) => ColumnType::Fixed(f.size),
            Avro::Decimal(d) => {
                if d.precision == 0 || d.precision > 38 || d.scale > d.precision {
                    self.errors.push((
                        path.to_string(),
                        format!(
                            "decimal({}, {}) is out of range for field `{path}`",
                            d.precision, d.scale
                        ),
                        Some("precision must be 1..=38 and scale at most the precision".into()),
                    ));
                    return None;
                }
                ColumnType::Decimal {
                    precision: d.precision as u32,
                    scale: d.scale as u32,
                }
            }
            Avro::Uuid => ColumnType::Uuid,
            Avro::Date => ColumnType::Date,
            Avro::TimeMillis => ColumnType::Time { micros: false },
            Avro::TimeMicros => ColumnType::Time { micros: true },
            Avro::TimestampMillis => ColumnType::Timestamp {
                micros: false,
                utc: true,
            },
            Avro::TimestampMicros => ColumnType::Timestamp {
                micros: true,
                utc: true,
            },
            Avro::LocalTimestampMillis => ColumnType::Timestamp {
                micros: false,
                utc: false,
            },
            Avro::LocalTimestampMicros => ColumnType::Timestamp {
                micros: true,
                utc: false,
            },
            Avro::Enum(e) => ColumnType::Enum(e.symbols.clone()),
            Avro::Record(r) => ColumnType::Record(self.record_fields(&r.fields, path)),
            Avro::Array(a) => {
                let (items_optional, items) = self.field_type(&a.items, &format!("{path}[]"))?;
                ColumnType::Array {
                    items: Box::new(items),
                    items_optional,
                }
            }
            Avro::Map(m) => {
                let (values_optional, values) =
                    self.field_type(&m.types, &format!("{path}{{}}"))?;
                ColumnType::Map {
                    values: Box::new(values),
                    values_optional,
                }
            }
            Avro::Ref { name } => {
                let resolved = self.names.get(&name.fullname(None)).cloned();
                match resolved {
                    Some(s) if !matches!(s, Avro::Record(_)) => return self.value_type(&s, path),
                    _ => {
                        self.errors.push((
                            path.to_string(),
                            format!("named record references (`{}`) are not supported in field `{path}`", name.fullname(None)),
                            Some("inline the record definition; recursive records cannot become table columns".into()),
                        ));
                        return None;
                    }
                }
            }
            other => {
                self.errors.push((
                    path.to_string(),
                    format!("Avro type {} is not supported (field `{path}`)", avro_type_name(other)),
                    Some("supported: primitives, records, arrays, maps, enums, [\"null\", T], decimal, date, time-*, timestamp-*, uuid".into()),
                ));
                return None;
            }
        })
    }
}

fn avro_type_name(schema: &Avro) -> &'static str {
    match schema {
        Avro::Null => "null",
        Avro::BigDecimal => "big-decimal",
        Avro::TimestampNanos => "timestamp-nanos",
        Avro::LocalTimestampNanos => "local-timestamp-nanos",
        Avro::Duration => "duration",
        Avro::Union(_) => "union",
        _ => "this",
    }
}

fn collect_names(schema: &Avro, names: &mut BTreeMap<String, Avro>) {
    match schema {
        Avro::Record(r) => {
            names.insert(r.name.fullname(None), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Avro::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        Avro::Fixed(f) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        Avro::Array(a) => collect_names(&a.items, names),
        Avro::Map(m) => collect_names(&m.types, names),
        Avro::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

/// Line and column of `"name": "<field>"` in the `.avsc` text.
fn locate_field(text: &str, field: &str) -> (usize, usize) {
    let needle = format!(
        "\"{}\"",
        field.trim_end_matches("[]").trim_end_matches("{}")
    );
    for (n, line) in text.lines().enumerate() {
        if let Some(col) = line.find(&needle)
            && line[..col].trim_end().ends_with(':')
            && line[..col].contains("\"name\"")
        {
            let start = line.find("\"name\"").unwrap_or(col);
            return (n + 1, start + 1);
        }
    }
    (1, 1)
}

/// The first `name`, `namespace` or alias of a named type (record, enum, fixed) that is not a
/// valid Avro name, anywhere in the schema.
fn invalid_avro_name(json: &serde_json::Value) -> Option<String> {
    fn simple(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
    fn dotted(name: &str) -> bool {
        name.split('.').all(simple)
    }
    match json {
        serde_json::Value::Object(map) => {
            let named = map
                .get("type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| matches!(t, "record" | "error" | "enum" | "fixed"));
            if named {
                if let Some(name) = map.get("name").and_then(|n| n.as_str())
                    && !dotted(name)
                {
                    return Some(name.to_string());
                }
                if let Some(ns) = map.get("namespace").and_then(|n| n.as_str())
                    && !ns.is_empty()
                    && !dotted(ns)
                {
                    return Some(ns.to_string());
                }
                // apache-avro also unwraps each alias of a named type.
                if let Some(bad) = map
                    .get("aliases")
                    .and_then(|a| a.as_array())
                    .and_then(|a| a.iter().filter_map(|v| v.as_str()).find(|a| !dotted(a)))
                {
                    return Some(bad.to_string());
                }
            }
            map.values().find_map(invalid_avro_name)
        }
        serde_json::Value::Array(items) => items.iter().find_map(invalid_avro_name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PortSchema, ConfigError> {
        PortSchema::parse(text, Path::new("t.avsc"))
    }

    #[test]
    fn maps_every_supported_type_with_stable_ids() {
        let s = parse(r#"{"type":"record","name":"R","fields":[
            {"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
            {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"s","type":["null","string"]},
            {"name":"by","type":"bytes"},{"name":"fx","type":{"type":"fixed","name":"F","size":4}},
            {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
            {"name":"dt","type":{"type":"int","logicalType":"date"}},
            {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
            {"name":"r","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}},
            {"name":"a","type":{"type":"array","items":"string"}},
            {"name":"m","type":{"type":"map","values":["null","long"]}}
        ]}"#)
        .unwrap();
        let ice = s.iceberg_schema().unwrap();
        assert_eq!(ice.field_by_name("b").unwrap().id, 1);
        assert_eq!(ice.field_by_name("m").unwrap().id, 17);
        assert!(!ice.field_by_name("s").unwrap().required);
        assert_eq!(
            ice.field_by_name("ts").unwrap().field_type.to_string(),
            "timestamptz"
        );
        assert_eq!(
            ice.field_by_name("e").unwrap().field_type.to_string(),
            "string"
        );
        assert_eq!(ice.field_by_name("r.x").unwrap().id, 18);
        // Same text, same ids.
        assert_eq!(parse(&s.text).unwrap().iceberg_schema().unwrap(), ice);
    }

    #[test]
    fn unsupported_types_name_the_field() {
        let err = parse(
            r#"{"type":"record","name":"R","fields":[
  {"name":"ok","type":"int"},
  {"name":"choice","type":["int","string"]}
]}"#,
        )
        .unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.path, "choice");
        assert_eq!((d.line, d.column), (3, 4));
        assert!(d.message.contains("union"), "{d}");
    }

    const NESTED: &str = r#"{"type":"record","name":"N","fields":[
        {"name":"id","type":"string"},
        {"name":"customer","type":{"type":"record","name":"Customer","fields":[
            {"name":"email","type":"string","tags":["PII"],"masking":"HMAC-SHA256"},
            {"name":"age","type":["null","int"],"default":null,"tags":["PII"],"masking":"NULL"}
        ]}},
        {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
            {"name":"sku","type":"string"},
            {"name":"qty","type":"long","tags":["PII"],"masking":"REDACT"}
        ]}}},
        {"name":"attributes","type":{"type":"map","values":"long"},"tags":["PII"],"masking":"LAST4"},
        {"name":"contacts","type":{"type":"map","values":{"type":"record","name":"Contact","fields":[
            {"name":"phone","type":"string","tags":["PII"]}
        ]}}}
    ]}"#;

    /// Nested fields keep their governance attributes, at a path that says how they nest.
    #[test]
    fn nested_fields_keep_tags_and_masking_at_their_path() {
        let s = parse(NESTED).unwrap();
        let found: Vec<(&str, Vec<String>, Option<Masking>)> = s
            .all_columns()
            .into_iter()
            .map(|c| (c.path.as_str(), c.tags.clone(), c.masking))
            .collect();
        let pii = || vec!["PII".to_string()];
        assert_eq!(
            found,
            vec![
                ("id", vec![], None),
                ("customer", vec![], None),
                ("customer.email", pii(), Some(Masking::HmacSha256)),
                ("customer.age", pii(), Some(Masking::Null)),
                ("items", vec![], None),
                ("items[].sku", vec![], None),
                ("items[].qty", pii(), Some(Masking::Redact)),
                ("attributes", pii(), Some(Masking::Last4)),
                ("contacts", vec![], None),
                ("contacts{}.phone", pii(), None),
            ]
        );
    }

    /// A hashed or redacted value is text wherever it sits; the field ids do not move.
    #[test]
    fn masked_nested_fields_become_text_with_the_same_ids() {
        let s = parse(NESTED).unwrap();
        let ice = s.iceberg_schema().unwrap();
        let unmasked = parse(&NESTED.replace(r#","masking":"REDACT""#, ""))
            .unwrap()
            .iceberg_schema()
            .unwrap();
        let ty = |schema: &IcebergSchema, name: &str| {
            let f = schema.field_by_name(name).unwrap();
            (f.id, f.field_type.to_string())
        };
        assert_eq!(ty(&ice, "customer.email").1, "string");
        // NULL keeps the type.
        assert_eq!(ty(&ice, "customer.age").1, "int");
        let qty = ty(&ice, "items.element.qty");
        assert_eq!(qty.1, "string");
        assert_eq!(qty.0, ty(&unmasked, "items.element.qty").0);
        assert_eq!(ty(&unmasked, "items.element.qty").1, "long");
        let attributes = ice.field_by_name("attributes").unwrap();
        let Type::Map(map) = attributes.field_type.as_ref() else {
            panic!("{attributes:?}")
        };
        assert_eq!(map.value_field.field_type.to_string(), "string");
    }

    #[test]
    fn nested_masking_is_checked_like_top_level_masking() {
        let required = NESTED.replace(r#"["null","int"],"default":null"#, r#""int""#);
        let err = parse(&required).unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.path, "customer.age");
        assert!(
            d.message.contains("masking NULL needs an optional column"),
            "{d}"
        );

        let whole = NESTED.replace(
            r#"{"name":"customer","type""#,
            r#"{"name":"customer","masking":"SHA256","type""#,
        );
        let err = parse(&whole).unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.path, "customer");
        assert!(
            d.message.contains("cannot hash or redact the record"),
            "{d}"
        );
        let records_in_array = NESTED.replace(
            r#"{"name":"items","type""#,
            r#"{"name":"items","masking":"REDACT","type""#,
        );
        assert_eq!(
            parse(&records_in_array).unwrap_err().diagnostics()[0].path,
            "items"
        );
        let typo = NESTED.replace("HMAC-SHA256", "HMAC-SHA265");
        let err = parse(&typo).unwrap_err();
        assert_eq!(err.diagnostics()[0].path, "customer.email");
    }

    #[test]
    fn json_syntax_errors_have_positions() {
        let err = parse("{\"type\": \"record\",\n  \"name\": }").unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.line, 2);
        assert!(d.message.contains("not valid JSON"));
    }
}
