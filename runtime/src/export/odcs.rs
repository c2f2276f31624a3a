//! A data contract in the Open Data Contract Standard (ODCS) v3.1.0: what the product
//! promises its consumers, in the open format data-contract tools read.
//!
//! From the descriptor: `id`, `name`, `domain` and `dataProduct`; the owner as the team's
//! member with role `owner`; one schema object per output port (the published Iceberg table,
//! `physicalType: table`) whose properties carry Iceberg's types, `required`, the partition
//! columns, and for tagged columns `classification` (the first tag, e.g. `PII`), all tags, and
//! the masking method as a custom property; SLA properties `latency` (the freshness SLA) and
//! `availability` per table, and `retention`; the access role as a role with read access and
//! its row filter. ODCS has no product version, so the contract's `version` is `1.0.0` and the
//! descriptor's SHA-256 identifies the revision.

use std::time::Duration;

use iceberg::spec::{NestedFieldRef, PrimitiveType, Type};
use meshd_config::DataProduct;
use serde_json::{Value, json};

use super::columns::{Table, describe, native_type, record_fields};
use crate::RuntimeError;

/// The ODCS version written, and the JSON Schema it is checked against.
pub const API_VERSION: &str = "v3.1.0";

/// The contract of `product` as a JSON value (serialize it as YAML or JSON).
pub fn contract(product: &DataProduct) -> Result<Value, RuntimeError> {
    let meta = &product.spec.metadata;
    let mut schema = Vec::new();
    let mut sla = Vec::new();
    for (i, port) in product.spec.spec.output_ports.iter().enumerate() {
        let table = Table::of(product, i)?;
        let partitions: Vec<&str> = port
            .partitioning
            .iter()
            .map(|p| p.column.as_str())
            .collect();
        let properties = properties(&table, table.schema.as_struct().fields(), "", &partitions);
        schema.push(json!({
            "name": table.name,
            "physicalName": table.qualified,
            "physicalType": "table",
            "logicalType": "object",
            "description": format!("Iceberg table `{}` at {}", table.qualified, port.location),
            "properties": properties,
        }));
        let (value, unit) = amount(port.sla.freshness.duration());
        sla.push(json!({
            "property": "latency",
            "value": value,
            "unit": unit,
            "element": table.name,
            "description": format!("Committed rows are at most {} old", port.sla.freshness.as_str()),
        }));
        sla.push(json!({
            "property": "availability",
            "value": port.sla.availability.as_str(),
            "element": table.name,
            "description": "Share of time the table answers reads",
        }));
    }
    let mut roles = Vec::new();
    let mut custom = vec![json!({ "property": "descriptorSha256", "value": product.sha256 })];
    if let Some(policies) = &product.spec.spec.policies {
        if let Some(retention) = &policies.retention {
            let (value, unit) = amount(retention.period.duration());
            sla.push(json!({
                "property": "retention",
                "value": value,
                "unit": unit,
                "description": format!("Rows are kept {}", retention.period.as_str()),
            }));
        }
        if let Some(access) = &policies.access_control {
            let mut role = json!({
                "role": access.role,
                "access": "read",
                "description": match &access.filter {
                    Some(f) => format!("Members read the rows where {f}"),
                    None => "Members read every row".to_string(),
                },
            });
            if let Some(filter) = &access.filter {
                role["customProperties"] = json!([{ "property": "rowFilter", "value": filter }]);
                custom.push(json!({ "property": "accessFilter", "value": filter }));
            }
            roles.push(role);
        }
    }
    let purpose = super::columns::description(product);
    let mut doc = json!({
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": format!("{}.{}", meta.domain, meta.name),
        "name": meta.name,
        "version": "1.0.0",
        "status": "active",
        "domain": meta.domain,
        "dataProduct": meta.name,
        "description": { "purpose": purpose },
        "schema": schema,
        "team": {
            "name": meta.domain,
            "members": [{ "username": meta.owner, "role": "owner" }],
        },
        "slaProperties": sla,
        "customProperties": custom,
    });
    if !roles.is_empty() {
        doc["roles"] = Value::Array(roles);
    }
    Ok(doc)
}

/// The contract as YAML text.
pub fn contract_yaml(product: &DataProduct) -> Result<String, RuntimeError> {
    let doc = contract(product)?;
    // A JSON value of strings, numbers, arrays and maps always serializes.
    Ok(serde_yaml_ng::to_string(&doc).unwrap_or_default())
}

/// ODCS properties of `fields`, nested structs as `properties`, lists as `items`.
fn properties(
    table: &Table<'_>,
    fields: &[NestedFieldRef],
    meshd_prefix: &str,
    partitions: &[&str],
) -> Vec<Value> {
    fields
        .iter()
        .map(|field| {
            let meshd_path = format!("{meshd_prefix}{}", field.name);
            let mut p = json!({ "name": field.name, "required": field.required });
            describe_type(table, &mut p, &field.field_type, &meshd_path);
            let column = table.column(&meshd_path);
            if let Some(text) = describe(field.doc.as_deref(), column) {
                p["description"] = Value::String(text);
            }
            if let Some(c) = column {
                if let Some(first) = c.tags.first() {
                    p["classification"] = Value::String(first.clone());
                    p["tags"] = json!(c.tags);
                }
                if let Some(m) = c.masking {
                    p["customProperties"] = json!([{ "property": "masking", "value": m.as_str() }]);
                }
            }
            if meshd_prefix.is_empty()
                && let Some(k) = partitions.iter().position(|c| *c == field.name)
            {
                p["partitioned"] = Value::Bool(true);
                p["partitionKeyPosition"] = json!(k + 1);
            }
            p
        })
        .collect()
}

/// `logicalType`, `physicalType`, and the nested `properties` or `items` of a type.
fn describe_type(table: &Table<'_>, p: &mut Value, ty: &Type, meshd_path: &str) {
    p["physicalType"] = Value::String(native_type(ty));
    p["logicalType"] = Value::String(logical_type(ty).into());
    match ty {
        Type::Struct(s) => {
            p["properties"] = json!(properties(
                table,
                s.fields(),
                &format!("{meshd_path}."),
                &[]
            ));
        }
        Type::List(l) => {
            let mut items = json!({});
            describe_type(
                table,
                &mut items,
                &l.element_field.field_type,
                &format!("{meshd_path}[]"),
            );
            p["items"] = items;
        }
        Type::Map(_) => {
            // ODCS has no map type: an object whose keys are data; the value's fields, if it
            // is a record, are still listed.
            if let Some((fields, suffix)) = record_fields(ty) {
                p["properties"] = json!(properties(
                    table,
                    fields,
                    &format!("{meshd_path}{suffix}."),
                    &[]
                ));
            }
        }
        Type::Primitive(_) => {}
    }
}

fn logical_type(ty: &Type) -> &'static str {
    match ty {
        Type::Primitive(p) => match p {
            PrimitiveType::Boolean => "boolean",
            PrimitiveType::Int | PrimitiveType::Long => "integer",
            PrimitiveType::Float | PrimitiveType::Double | PrimitiveType::Decimal { .. } => {
                "number"
            }
            PrimitiveType::Date => "date",
            PrimitiveType::Time => "time",
            PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs => "timestamp",
            PrimitiveType::String
            | PrimitiveType::Uuid
            | PrimitiveType::Fixed(_)
            | PrimitiveType::Binary => "string",
        },
        Type::Struct(_) | Type::Map(_) => "object",
        Type::List(_) => "array",
    }
}

/// A duration in the largest unit that divides it (ODCS units: `y`, `d`, `h`, `min`, `s`,
/// `ms`): `15min` → (15, "min"), `7years` → (7, "y").
fn amount(d: Duration) -> (u64, &'static str) {
    let ms = d.as_millis() as u64;
    for (unit, size) in [
        ("y", 31_536_000_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return (ms / size, unit);
        }
    }
    (ms, "ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_largest_exact_unit() {
        assert_eq!(amount(Duration::from_secs(900)), (15, "min"));
        assert_eq!(amount(Duration::from_secs(7 * 31_536_000)), (7, "y"));
        assert_eq!(amount(Duration::from_secs(90)), (90, "s"));
        assert_eq!(amount(Duration::from_millis(1500)), (1500, "ms"));
        assert_eq!(amount(Duration::from_secs(2 * 86_400)), (2, "d"));
    }
}
