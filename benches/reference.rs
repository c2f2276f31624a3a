//! The reference data every benchmark uses: the payments schema, its events as JSON and as
//! binary Avro datums (~200 bytes each), and the table-side pieces (Arrow schema, masker).
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use apache_avro::types::Value;
use arrow_schema::SchemaRef;
use meshd_config::{PortSchema, Sensitive};
use meshd_runtime::mask::Masker;

/// The reference schema (`examples/payments/schema/transactions.avsc`).
pub fn schema() -> PortSchema {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments/schema/transactions.avsc");
    PortSchema::load(&path).expect("reference schema loads")
}

/// The table's Arrow schema for the reference schema.
pub fn table_schema(schema: &PortSchema) -> SchemaRef {
    Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema.iceberg_schema().expect("iceberg"))
            .expect("arrow"),
    )
}

/// The masker a worker with a key would use.
pub fn masker(schema: &PortSchema) -> Masker {
    Masker::new(schema, Some(Sensitive::new(b"bench-key".to_vec())))
}

/// Event `n` as JSON, never malformed.
pub fn json_event(n: u64) -> Vec<u8> {
    meshd_runtime::demo::payment_event(n, u64::MAX).1
}

/// Event `n` as a binary Avro datum of the reference schema.
pub fn avro_datum(schema: &apache_avro::Schema, n: u64) -> Vec<u8> {
    avro_datum_with(schema, n, &[])
}

/// [`avro_datum`] for a schema with extra string fields after the reference's, set to `extra`.
pub fn avro_datum_with(schema: &apache_avro::Schema, n: u64, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (
            "transaction_id".into(),
            Value::String(format!("tx-{n:010}")),
        ),
        ("account_id".into(), Value::Long(100_000 + n as i64)),
        (
            "email".into(),
            Value::String(format!("user{}@example.com", n % 5000)),
        ),
        (
            "card_last4".into(),
            Value::Union(1, Box::new(Value::String(format!("{:04}", n % 10_000)))),
        ),
        (
            "amount".into(),
            Value::Decimal(apache_avro::Decimal::from(
                ((n * 101) as i64).to_be_bytes().to_vec(),
            )),
        ),
        ("currency".into(), Value::String("JPY".into())),
        ("region".into(), Value::String("JP".into())),
        ("status".into(), Value::Enum(1, "SETTLED".into())),
        (
            "event_time".into(),
            Value::TimestampMillis(1_764_000_000_000 + n as i64),
        ),
    ];
    fields.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string()))),
    );
    apache_avro::to_avro_datum(schema, Value::Record(fields)).expect("encode")
}
