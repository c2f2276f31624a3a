//! Registration in DataHub: every output port of a product becomes a dataset on platform
//! `iceberg`, written as metadata change proposals (MCPs), the JSON list that DataHub's file
//! source (`datahub ingest`), `datahub put` and `datahub check metadata-file` read.
//!
//! Per table: `status`, `subTypes`, `datasetProperties` (description and custom properties:
//! SLA, retention, access role and filter, descriptor SHA-256), `schemaMetadata` (Iceberg
//! types, the descriptor's tags such as `PII` as `urn:li:tag:<tag>` on their fields, masking in
//! the field description), `ownership` (the owner email as a corpuser), `domains` and
//! `upstreamLineage` from the product's Kafka topics. Once per export: the domain and tag
//! entities the tables refer to. The output is deterministic (no clock), so an unchanged
//! descriptor exports the same file, and it is in the canonical form DataHub's own SDK writes
//! (defaults spelt out), so the tests can check that it reads back unchanged.

use std::collections::BTreeSet;

use iceberg::spec::{NestedFieldRef, PrimitiveType, Type};
use meshd_config::DataProduct;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::columns::{Table, describe, native_type, record_fields};
use crate::RuntimeError;

/// The environment (DataHub's "fabric") of every URN meshd writes.
pub const ENV: &str = "PROD";

/// The URN of dataset `name` on `platform` (`iceberg`, `kafka`).
pub fn dataset_urn(platform: &str, name: &str) -> String {
    format!("urn:li:dataset:(urn:li:dataPlatform:{platform},{name},{ENV})")
}

/// The MCPs registering `products`, in a deterministic order: each product's tables, then the
/// domains and tags they refer to.
pub fn proposals(products: &[DataProduct]) -> Result<Vec<Value>, RuntimeError> {
    let mut out = Vec::new();
    let mut domains = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for product in products {
        domains.insert(product.domain().to_string());
        for i in 0..product.spec.spec.output_ports.len() {
            let table = Table::of(product, i)?;
            for column in table.port.all_columns() {
                tags.extend(column.tags.iter().cloned());
            }
            out.extend(dataset(product, i, &table));
        }
    }
    for domain in domains {
        out.push(mcp(
            "domain",
            &format!("urn:li:domain:{domain}"),
            "domainProperties",
            json!({ "customProperties": {}, "name": domain }),
        ));
    }
    for tag in tags {
        let description = if tag == "PII" {
            "Personally identifiable information: masked by meshd before it is written".to_string()
        } else {
            format!("Tag `{tag}` from meshd descriptors")
        };
        out.push(mcp(
            "tag",
            &tag_urn(&tag),
            "tagProperties",
            json!({ "name": tag, "description": description }),
        ));
    }
    Ok(out)
}

/// The aspects of output port `i`'s dataset.
fn dataset(product: &DataProduct, i: usize, table: &Table<'_>) -> Vec<Value> {
    let urn = dataset_urn("iceberg", &table.qualified);
    let meta = &product.spec.metadata;
    let port = &product.spec.spec.output_ports[i];
    let description = super::columns::description(product);
    let mut properties = Map::new();
    let mut put = |k: &str, v: &str| properties.insert(k.into(), Value::String(v.into()));
    put("datamesh.product", &meta.name);
    put("datamesh.domain", &meta.domain);
    put("datamesh.owner", &meta.owner);
    if let Some(name) = &port.name {
        put("datamesh.port", name);
    }
    put("datamesh.location", &port.location);
    put("datamesh.sla.freshness", port.sla.freshness.as_str());
    put("datamesh.sla.availability", port.sla.availability.as_str());
    if let Some(policies) = &product.spec.spec.policies {
        if let Some(retention) = &policies.retention {
            put("datamesh.retention", retention.period.as_str());
        }
        if let Some(access) = &policies.access_control {
            put("datamesh.access.role", &access.role);
            if let Some(filter) = &access.filter {
                put("datamesh.access.filter", filter);
            }
        }
    }
    put("datamesh.descriptor.sha256", &product.sha256);
    let upstreams: Vec<Value> = product
        .spec
        .spec
        .input_ports
        .iter()
        .map(|p| p.source.as_str())
        .map(|topic| {
            json!({
                "auditStamp": stamp(),
                "dataset": dataset_urn("kafka", topic),
                "type": "TRANSFORMED",
            })
        })
        .collect();
    let mut fields = Vec::new();
    schema_fields(
        table,
        table.schema.as_struct().fields(),
        "",
        "",
        &mut fields,
    );
    vec![
        mcp("dataset", &urn, "status", json!({ "removed": false })),
        mcp(
            "dataset",
            &urn,
            "subTypes",
            json!({ "typeNames": ["Table"] }),
        ),
        mcp(
            "dataset",
            &urn,
            "datasetProperties",
            json!({
                "name": table.name,
                "qualifiedName": table.qualified,
                "description": description,
                "customProperties": properties,
                "tags": [],
            }),
        ),
        mcp(
            "dataset",
            &urn,
            "schemaMetadata",
            json!({
                "schemaName": table.qualified,
                "platform": "urn:li:dataPlatform:iceberg",
                "version": 0,
                "created": stamp(),
                "lastModified": stamp(),
                "hash": hex::encode(Sha256::digest(table.port.text.as_bytes())),
                "platformSchema": {
                    "com.linkedin.schema.OtherSchema": {
                        "rawSchema": serde_json::to_string(&table.schema).unwrap_or_default(),
                    }
                },
                "fields": fields,
            }),
        ),
        mcp(
            "dataset",
            &urn,
            "ownership",
            json!({
                "owners": [{
                    "owner": format!("urn:li:corpuser:{}", meta.owner),
                    "type": "TECHNICAL_OWNER",
                }],
                "ownerTypes": {},
                "lastModified": stamp(),
            }),
        ),
        mcp(
            "dataset",
            &urn,
            "domains",
            json!({ "domains": [format!("urn:li:domain:{}", meta.domain)] }),
        ),
        mcp(
            "dataset",
            &urn,
            "upstreamLineage",
            json!({ "upstreams": upstreams }),
        ),
    ]
}

/// DataHub's v1 field paths, nested fields joined with `.` (`items.sku` for a struct inside a
/// list), each with its type, nullability, description and tags.
fn schema_fields(
    table: &Table<'_>,
    fields: &[NestedFieldRef],
    prefix: &str,
    meshd_prefix: &str,
    out: &mut Vec<Value>,
) {
    for field in fields {
        let path = format!("{prefix}{}", field.name);
        let meshd_path = format!("{meshd_prefix}{}", field.name);
        let column = table.column(&meshd_path);
        let mut entry = json!({
            "fieldPath": path,
            "nullable": !field.required,
            "type": { "type": field_type(&field.field_type) },
            "nativeDataType": native_type(&field.field_type),
            "recursive": false,
            "isPartOfKey": false,
        });
        if let Some(text) = describe(field.doc.as_deref(), column) {
            entry["description"] = Value::String(text);
        }
        if let Some(c) = column.filter(|c| !c.tags.is_empty()) {
            let tags: Vec<Value> = c
                .tags
                .iter()
                .map(|t| json!({ "tag": tag_urn(t) }))
                .collect();
            entry["globalTags"] = json!({ "tags": tags });
        }
        out.push(entry);
        if let Some((children, suffix)) = record_fields(&field.field_type) {
            schema_fields(
                table,
                children,
                &format!("{path}."),
                &format!("{meshd_path}{suffix}."),
                out,
            );
        }
    }
}

/// DataHub's type union for an Iceberg type.
fn field_type(ty: &Type) -> Value {
    let (name, body) = match ty {
        Type::Primitive(p) => match p {
            PrimitiveType::Boolean => ("BooleanType", json!({})),
            PrimitiveType::Int
            | PrimitiveType::Long
            | PrimitiveType::Float
            | PrimitiveType::Double
            | PrimitiveType::Decimal { .. } => ("NumberType", json!({})),
            PrimitiveType::Date => ("DateType", json!({})),
            PrimitiveType::Time
            | PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs => ("TimeType", json!({})),
            PrimitiveType::String | PrimitiveType::Uuid => ("StringType", json!({})),
            PrimitiveType::Fixed(_) | PrimitiveType::Binary => ("BytesType", json!({})),
        },
        Type::Struct(_) => ("RecordType", json!({})),
        Type::List(l) => (
            "ArrayType",
            json!({ "nestedType": [native_type(&l.element_field.field_type)] }),
        ),
        Type::Map(m) => (
            "MapType",
            json!({
                "keyType": native_type(&m.key_field.field_type),
                "valueType": native_type(&m.value_field.field_type),
            }),
        ),
    };
    json!({ format!("com.linkedin.schema.{name}"): body })
}

fn tag_urn(tag: &str) -> String {
    format!("urn:li:tag:{tag}")
}

/// The audit stamp of generated metadata: time 0 and DataHub's unknown actor, as DataHub's own
/// SDK writes by default, so the file is the same on every export.
fn stamp() -> Value {
    json!({ "time": 0, "actor": "urn:li:corpuser:unknown" })
}

/// One UPSERT proposal in the file format (`aspect.json`).
fn mcp(entity: &str, urn: &str, aspect_name: &str, aspect: Value) -> Value {
    json!({
        "entityType": entity,
        "entityUrn": urn,
        "changeType": "UPSERT",
        "aspectName": aspect_name,
        "aspect": { "json": aspect },
    })
}

/// The body GMS's `POST /aspects?action=ingestProposal` takes for a proposal of
/// [`proposals`]: the same fields, the aspect serialized as a JSON string.
pub fn ingest_request(proposal: &Value) -> Value {
    let mut p = proposal.clone();
    let aspect = p["aspect"]["json"].to_string();
    p["aspect"] = json!({ "value": aspect, "contentType": "application/json" });
    json!({ "proposal": p })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_name_platform_table_and_environment() {
        assert_eq!(
            dataset_urn("iceberg", "payments.payment_transactions"),
            "urn:li:dataset:(urn:li:dataPlatform:iceberg,payments.payment_transactions,PROD)"
        );
    }

    #[test]
    fn the_rest_body_carries_the_aspect_as_a_json_string() {
        let p = mcp("dataset", "urn:x", "status", json!({ "removed": false }));
        let body = ingest_request(&p);
        assert_eq!(body["proposal"]["aspect"]["value"], r#"{"removed":false}"#);
        assert_eq!(
            body["proposal"]["aspect"]["contentType"],
            "application/json"
        );
        assert_eq!(body["proposal"]["aspectName"], "status");
    }
}
