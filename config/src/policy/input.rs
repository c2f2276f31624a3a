//! The policy input document: one normalized JSON document per output port, the only thing
//! Rego policies see. Its shape is documented in `docs/policy-input.md` and checked against
//! `docs/policy-input.schema.json` in tests. Durations and sizes carry the text as written
//! next to the number (`{"text": "15min", "seconds": 900}`), so rules can compare numbers and
//! still quote the author.

use serde_json::{Map, Value, json};

use super::filter::analyze_filter;
use crate::descriptor::{DataProduct, InputFormat};
use crate::schema::{Column, ColumnType};
use crate::units::HumanDuration;

/// Builds the input document for output port `port` of `product`.
pub fn policy_input(product: &DataProduct, port: usize) -> Value {
    let spec = &product.spec;
    let output = &spec.spec.output_ports[port];
    let (namespace, table) = product.table_ident(port);
    let schema = &product.schemas[port];
    let columns: Vec<Value> = schema.all_columns().into_iter().map(column).collect();
    let column_names: Vec<String> = schema.fields.iter().map(|c| c.name.clone()).collect();
    json!({
        "product": {
            "name": spec.metadata.name,
            "domain": spec.metadata.domain,
            "owner": spec.metadata.owner,
            "description": spec.metadata.description,
            "descriptor": product.path.display().to_string(),
        },
        "port": {
            "index": port,
            "name": output.name.clone().unwrap_or_else(|| spec.metadata.name.clone()),
            "table": format!("{namespace}.{table}"),
            "location": output.location,
            "schemaFile": schema.path.display().to_string(),
            "sla": {
                "freshness": duration(&output.sla.freshness),
                "availability": {"text": output.sla.availability.as_str(), "ratio": output.sla.availability.value()},
            },
            "partitioning": output.partitioning.iter().map(|p| json!({
                "column": p.column,
                "transform": p.transform.iceberg_name(),
            })).collect::<Vec<_>>(),
            "commit": {
                "interval": duration(&output.commit.interval),
                "maxRecords": output.commit.max_records,
                "targetFileSize": {"bytes": output.commit.target_file_size.0},
            },
            // Keys and headers go into `_kafka` unmasked: rules can refuse them for PII topics.
            "kafka": output.kafka.iter().map(|m| m.name()).collect::<Vec<_>>(),
        },
        "schema": {
            "name": schema.record_name,
            "file": schema.path.display().to_string(),
            "columns": columns,
        },
        "inputPorts": spec.spec.input_ports.iter().map(|i| json!({
            "source": i.source,
            "format": match i.format {
                InputFormat::Json => "json",
                InputFormat::Avro => "avro",
                InputFormat::AvroConfluent => "avro-confluent",
            },
            "deadLetterTopic": i.dead_letter_topic(),
        })).collect::<Vec<_>>(),
        "policies": policies(product, &column_names),
    })
}

fn duration(d: &HumanDuration) -> Value {
    json!({"text": d.as_str(), "seconds": d.duration().as_secs_f64()})
}

fn policies(product: &DataProduct, columns: &[String]) -> Value {
    let Some(p) = &product.spec.spec.policies else {
        return json!({});
    };
    let mut out = Map::new();
    if let Some(access) = &p.access_control {
        let mut a = Map::new();
        a.insert("role".into(), json!(access.role));
        if let Some(filter) = &access.filter {
            a.insert("filter".into(), json!(filter));
            a.insert(
                "filterAnalysis".into(),
                serde_json::to_value(analyze_filter(filter, columns)).unwrap_or(Value::Null),
            );
        }
        out.insert("accessControl".into(), Value::Object(a));
    }
    if let Some(retention) = &p.retention {
        out.insert("retention".into(), duration(&retention.period));
    }
    Value::Object(out)
}

/// A column as policies see it, nested fields too (at their `path`, e.g. `items[].note`), so
/// a rule over the columns reaches PII wherever a producer nests it. `masking` is absent (not
/// null) when unset, so the seed's `not input.schema.columns[i].masking` reads naturally.
fn column(c: &Column) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(c.name));
    m.insert("path".into(), json!(c.path));
    m.insert("type".into(), json!(type_name(&c.ty)));
    m.insert("optional".into(), json!(c.optional));
    m.insert("tags".into(), json!(c.tags));
    if let Some(doc) = &c.doc {
        m.insert("doc".into(), json!(doc));
    }
    if let Some(masking) = c.masking {
        m.insert("masking".into(), json!(masking.as_str()));
    }
    Value::Object(m)
}

/// The Iceberg-style name of a column type: `long`, `decimal(18,2)`, `timestamptz`, `list<string>`.
pub fn type_name(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Int => "int".into(),
        ColumnType::Long => "long".into(),
        ColumnType::Float => "float".into(),
        ColumnType::Double => "double".into(),
        ColumnType::String | ColumnType::Enum(_) => "string".into(),
        ColumnType::Bytes => "binary".into(),
        ColumnType::Fixed(n) => format!("fixed[{n}]"),
        ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        ColumnType::Date => "date".into(),
        ColumnType::Time { .. } => "time".into(),
        ColumnType::Timestamp { utc: true, .. } => "timestamptz".into(),
        ColumnType::Timestamp { utc: false, .. } => "timestamp".into(),
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Record(_) => "struct".into(),
        ColumnType::Array { items, .. } => format!("list<{}>", type_name(items)),
        ColumnType::Map { values, .. } => format!("map<string,{}>", type_name(values)),
    }
}
