//! The published table's columns as consumers see them: the Iceberg schema of an output
//! port (masked columns are strings, Kafka metadata is a `_kafka` struct), each field with the
//! governance attributes (`tags`, `masking`, `doc`) its `.avsc` gives it.

use iceberg::spec::{NestedFieldRef, Schema as IcebergSchema, Type};
use meshd_config::{Column, DataProduct, PortSchema};
use meshd_sinks::SinkError;

use crate::RuntimeError;

/// One output port's table: its name and schema, with the port's own columns for lookups.
pub(crate) struct Table<'a> {
    /// `<namespace>.<table>`, e.g. `payments.payment_transactions`.
    pub qualified: String,
    /// The table name alone.
    pub name: String,
    /// The schema the table is created with.
    pub schema: IcebergSchema,
    /// The port's `.avsc`, mapped.
    pub port: &'a PortSchema,
}

impl<'a> Table<'a> {
    /// Output port `i` of `product`.
    pub fn of(product: &'a DataProduct, i: usize) -> Result<Self, RuntimeError> {
        let (namespace, name) = product.table_ident(i);
        let qualified = format!("{namespace}.{name}");
        let schema = product.schemas[i]
            .table_schema(&product.spec.spec.output_ports[i].kafka)
            .map_err(|source| SinkError::Table {
                table: qualified.clone(),
                action: "mapping the schema",
                source,
            })?;
        Ok(Self {
            qualified,
            name,
            schema,
            port: &product.schemas[i],
        })
    }

    /// The governance attributes of the field at meshd's `path` (`items[].sku`); none for the
    /// `_kafka` column meshd adds.
    pub fn column(&self, path: &str) -> Option<&'a Column> {
        self.port.all_columns().into_iter().find(|c| c.path == path)
    }
}

/// The struct fields `ty` holds: its own, or those of a list's elements or a map's values at
/// any depth, with the suffix meshd's paths give each level (`[]` for lists, `{}` for maps).
pub(crate) fn record_fields(ty: &Type) -> Option<(&[NestedFieldRef], String)> {
    match ty {
        Type::Struct(s) => Some((s.fields(), String::new())),
        Type::List(l) => {
            record_fields(&l.element_field.field_type).map(|(f, s)| (f, format!("[]{s}")))
        }
        Type::Map(m) => {
            record_fields(&m.value_field.field_type).map(|(f, s)| (f, format!("{{}}{s}")))
        }
        Type::Primitive(_) => None,
    }
}

/// The type as Iceberg spells it, nested types with their element types:
/// `decimal(18, 2)`, `list<string>`, `map<string, long>`, `struct`.
pub(crate) fn native_type(ty: &Type) -> String {
    match ty {
        Type::Primitive(p) => p.to_string(),
        Type::Struct(_) => "struct".into(),
        Type::List(l) => format!("list<{}>", native_type(&l.element_field.field_type)),
        Type::Map(m) => format!(
            "map<{}, {}>",
            native_type(&m.key_field.field_type),
            native_type(&m.value_field.field_type)
        ),
    }
}

/// The sentence a catalog shows for a column: its `doc`, then how it is masked.
pub(crate) fn describe(field_doc: Option<&str>, column: Option<&Column>) -> Option<String> {
    let doc = field_doc.or(column.and_then(|c| c.doc.as_deref()));
    let masking = column
        .and_then(|c| c.masking)
        .map(|m| format!("Masked with {} before it is written.", m.as_str()));
    match (doc, masking) {
        (Some(d), Some(m)) => Some(format!("{}. {m}", d.trim_end_matches('.'))),
        (Some(d), None) => Some(d.to_string()),
        (None, m) => m,
    }
}

/// What a product is, for catalogs and contracts: its description, or a sentence naming its
/// domain and input topics when the descriptor has none.
pub(super) fn description(product: &meshd_config::DataProduct) -> String {
    let meta = &product.spec.metadata;
    meta.description.clone().unwrap_or_else(|| {
        let topics: Vec<&str> = product
            .spec
            .spec
            .input_ports
            .iter()
            .map(|p| p.source.as_str())
            .collect();
        format!(
            "Data product `{}` of domain `{}`, published by meshd from Kafka topic{} {}.",
            meta.name,
            meta.domain,
            if topics.len() == 1 { "" } else { "s" },
            topics.join(", ")
        )
    })
}
