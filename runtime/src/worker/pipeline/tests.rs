use std::path::Path;

use arrow_array::cast::AsArray;
use meshd_config::Sensitive;

use super::*;
use crate::decode::{JsonDecoderFactory, Reason};

const REFERENCE: &str = include_str!("../../../../examples/payments/schema/transactions.avsc");

/// The reference schema without `email`, and with a required `note` the input never has.
const AUDIT: &str = r#"{"type": "record", "name": "Audit", "fields": [
    {"name": "transaction_id", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}},
    {"name": "region", "type": "string"}
]}"#;

const NOTE: &str = r#"{"type": "record", "name": "Noted", "fields": [
    {"name": "transaction_id", "type": "string"},
    {"name": "note", "type": "string"}
]}"#;

const GOOD: &str = r#"{"transaction_id":"t1","account_id":1,"email":"a@b.c","card_last4":null,"amount":"1.50","currency":"JPY","region":"JP","status":"SETTLED","event_time":1764000000000}"#;

fn schema(text: &str) -> PortSchema {
    PortSchema::parse(text, Path::new("x.avsc")).expect("test schema")
}

fn shape(port: &PortSchema) -> PortShape {
    let table = port.iceberg_schema().expect("iceberg schema");
    let arrow = iceberg::arrow::schema_to_arrow_schema(&table).expect("arrow schema");
    let masker = Masker::new(port, Some(Sensitive::new(b"k".to_vec())));
    PortShape::new(port, masker, Arc::new(arrow))
}

fn chunk(values: &[&str]) -> Chunk {
    let mut c = Chunk::default();
    for (i, v) in values.iter().enumerate() {
        c.push_parts("in", 0, i as i64, None, Some(v.as_bytes()));
    }
    c
}

fn decoders(ports: &[&PortSchema]) -> HashMap<String, InputDecoder> {
    HashMap::from([(
        "in".to_string(),
        InputDecoder {
            decoding: Decoding::Fixed(Box::new(JsonDecoderFactory::new(json_input_schema(ports)))),
            dead_letter_topic: "in.dlq".into(),
        },
    )])
}

#[test]
fn each_port_takes_its_projection_with_its_own_masking() {
    let reference = schema(REFERENCE);
    let audit = schema(AUDIT);
    let decoded = decode_chunk(
        &mut decoders(&[&reference, &audit]),
        &chunk(&[GOOD, GOOD]),
        1 << 20,
    );
    assert!(decoded.letters.is_empty());
    let (batch, rows) = &decoded.batches[0];
    assert_eq!(rows, &vec![0, 1]);

    let full = shape(&reference).shape(batch).expect("shaped");
    let full = full.rows.expect("rows");
    let email = full
        .column_by_name("email")
        .expect("email")
        .as_string::<i32>();
    assert_ne!(
        email.value(0),
        "a@b.c",
        "email is masked in the reference port"
    );

    let narrow = shape(&audit).shape(batch).expect("shaped");
    let narrow = narrow.rows.expect("rows");
    assert_eq!(narrow.num_columns(), 3);
    assert!(narrow.column_by_name("email").is_none(), "email is dropped");
    assert_eq!(narrow.num_rows(), 2);
}

#[test]
fn a_required_column_the_input_lacks_fails_that_port_only() {
    let reference = schema(REFERENCE);
    let noted = schema(NOTE);
    // The input schema holds `note` (from the second port), but records do not carry it.
    let decoded = decode_chunk(
        &mut decoders(&[&reference, &noted]),
        &chunk(&[GOOD]),
        1 << 20,
    );
    let (batch, _) = &decoded.batches[0];
    let ok = shape(&reference).shape(batch).expect("shaped");
    assert!(ok.invalid.is_empty());
    assert_eq!(ok.rows.map(|r| r.num_rows()), Some(1));
    let bad = shape(&noted).shape(batch).expect("shaped");
    assert!(bad.rows.is_none());
    assert_eq!(bad.invalid.len(), 1);
    assert_eq!(bad.invalid[0].kind, Reason::Required);
    assert!(
        bad.invalid[0].message.contains("note"),
        "{}",
        bad.invalid[0].message
    );
}

#[test]
fn undecodable_records_become_letters_with_their_chunk_index() {
    let reference = schema(REFERENCE);
    let decoded = decode_chunk(
        &mut decoders(&[&reference]),
        &chunk(&[GOOD, "{not json", GOOD]),
        1 << 20,
    );
    assert_eq!(decoded.letters.len(), 1);
    assert_eq!(decoded.letters[0].record, 1);
    assert_eq!(decoded.letters[0].kind, Reason::Decode);
    let rows: Vec<usize> = decoded
        .batches
        .iter()
        .flat_map(|(_, r)| r.clone())
        .collect();
    assert_eq!(rows, vec![0, 2]);
}

#[test]
fn keep_rows_drops_what_a_port_already_has() {
    let reference = schema(REFERENCE);
    let decoded = decode_chunk(
        &mut decoders(&[&reference]),
        &chunk(&[GOOD, GOOD, GOOD]),
        1 << 20,
    );
    let (batch, _) = &decoded.batches[0];
    let kept = keep_rows(batch, vec![false, true, true]).expect("filtered");
    assert_eq!(kept.num_rows(), 2);
}
