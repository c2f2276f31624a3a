use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, StringArray};
use meshd_config::PortSchema;

use super::*;
use crate::decode::{Reason, wire};

const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"}]}"#;

/// The Arrow schema of a table with one `id` column and the `_kafka` struct of `selection`,
/// as iceberg-rust reads it from the table (field ids in the metadata).
fn table(selection: &[KafkaMetadata]) -> Arc<Schema> {
    let port = PortSchema::parse(SCHEMA, Path::new("r.avsc")).expect("schema");
    let iceberg = port.table_schema(selection).expect("iceberg schema");
    Arc::new(iceberg::arrow::schema_to_arrow_schema(&iceberg).expect("arrow schema"))
}

fn kafka_field(table: &Schema) -> Field {
    table
        .field_with_name(KAFKA_COLUMN)
        .expect("a _kafka column")
        .clone()
}

/// Three records: keyed with a timestamp and three headers (`trace` twice, a null value),
/// unkeyed with neither, and a binary key with timestamp 0 and an empty header value.
fn chunk(capture_headers: bool) -> Chunk {
    let mut c = Chunk::new(capture_headers);
    c.push_parts("in", 2, 40, Some(b"k0"), Some(b"{}"));
    c.set_timestamp(Some(1_764_000_000_123));
    c.add_header("trace", Some(b"a"));
    c.add_header("trace", Some(b"b"));
    c.add_header("empty", None);
    c.push_parts("in", 0, 7, None, Some(b"{}"));
    c.push_parts("in", 1, 9, Some(&[0xff, 0x00]), None);
    c.set_timestamp(Some(0));
    c.add_header("h", Some(b""));
    c
}

fn struct_of(array: &ArrayRef) -> &StructArray {
    array.as_struct()
}

/// The headers of row `i` as (key, value) pairs.
fn headers_at(array: &StructArray, i: usize) -> Vec<(String, Option<Vec<u8>>)> {
    let list = array
        .column_by_name("headers")
        .expect("headers")
        .as_list::<i32>()
        .value(i);
    let entries = list.as_struct();
    let keys = entries.column_by_name("key").expect("key");
    let keys = keys.as_any().downcast_ref::<StringArray>().expect("text");
    let values = entries
        .column_by_name("value")
        .expect("value")
        .as_binary::<i64>();
    (0..entries.len())
        .map(|j| {
            (
                keys.value(j).to_string(),
                values.is_valid(j).then(|| values.value(j).to_vec()),
            )
        })
        .collect()
}

#[test]
fn every_subfield_comes_from_its_record() {
    let table = table(&KafkaMetadata::ALL);
    let field = kafka_field(&table);
    let array = column(&chunk(true), &[2, 0, 1], &KafkaMetadata::ALL, &field).expect("column");
    // In the table's own type: the field ids of the subfields and the headers' parts included.
    assert_eq!(array.data_type(), field.data_type());
    let s = struct_of(&array);
    assert_eq!(s.null_count(), 0);
    let keys = s.column_by_name("key").expect("key").as_binary::<i64>();
    assert_eq!(keys.value(0), [0xff, 0x00]);
    assert_eq!(keys.value(1), b"k0");
    assert!(keys.is_null(2), "a record without a key has a null key");
    let partitions = s
        .column_by_name("partition")
        .expect("partition")
        .as_primitive::<Int32Type>();
    assert_eq!(partitions.values(), &[1, 2, 0]);
    let offsets = s
        .column_by_name("offset")
        .expect("offset")
        .as_primitive::<Int64Type>();
    assert_eq!(offsets.values(), &[9, 40, 7]);
    let timestamps = s
        .column_by_name("timestamp")
        .expect("timestamp")
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(timestamps.value(0), 0);
    assert_eq!(timestamps.value(1), 1_764_000_000_123_000);
    assert!(
        timestamps.is_null(2),
        "a record without a timestamp has null"
    );
    assert_eq!(headers_at(s, 0), [("h".to_string(), Some(Vec::new()))]);
    assert_eq!(
        headers_at(s, 1),
        [
            ("trace".to_string(), Some(b"a".to_vec())),
            ("trace".to_string(), Some(b"b".to_vec())),
            ("empty".to_string(), None),
        ],
        "repeated keys stay, in the order sent, and a null value is null"
    );
    assert_eq!(headers_at(s, 2), [], "no headers: an empty list");
}

#[test]
fn only_the_selected_subfields_are_there() {
    use KafkaMetadata::{Headers, Key, Offset, Partition, Timestamp};
    for (selection, names) in [
        (vec![Offset], vec!["offset"]),
        (vec![Timestamp, Key], vec!["key", "timestamp"]),
        (vec![Headers, Partition], vec!["partition", "headers"]),
    ] {
        let field = kafka_field(&table(&selection));
        let array = column(&chunk(true), &[0, 1], &selection, &field).expect("column");
        let s = struct_of(&array);
        let got: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(got, names, "{selection:?}");
        assert_eq!(s.len(), 2);
    }
}

#[test]
fn headers_are_empty_lists_when_the_chunk_does_not_capture_them() {
    let selection = [KafkaMetadata::Headers];
    let field = kafka_field(&table(&selection));
    let array = column(&chunk(false), &[0, 1, 2], &selection, &field).expect("column");
    let s = struct_of(&array);
    assert!((0..3).all(|i| headers_at(s, i).is_empty()));
}

#[test]
fn attach_fills_the_column_for_the_rows_that_survived_validation() {
    let selection = [KafkaMetadata::Offset, KafkaMetadata::Key];
    let table = table(&selection);
    // Input rows 0, 1, 2 came from chunk records 1, 0, 2; row 1 failed the port's checks.
    let survivors = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["a", "c"]))],
    )
    .expect("batch");
    let conformed = wire::conform(&survivors, &table).expect("conform");
    assert_eq!(
        conformed
            .column_by_name(KAFKA_COLUMN)
            .expect("_kafka")
            .null_count(),
        2
    );
    let invalid = [Invalid {
        row: 1,
        kind: Reason::Required,
        message: "id is missing".into(),
    }];
    let chunk = chunk(true);
    let rows = attach(
        Some(conformed.clone()),
        &[1, 0, 2],
        &invalid,
        &chunk,
        &selection,
    )
    .expect("attach")
    .expect("rows");
    assert_eq!(
        rows.schema(),
        table,
        "the table's schema, field ids included"
    );
    let s = struct_of(rows.column_by_name(KAFKA_COLUMN).expect("_kafka"));
    let offsets = s.column_by_name("offset").expect("offset");
    assert_eq!(offsets.as_primitive::<Int64Type>().values(), &[7, 9]);
    let keys = s.column_by_name("key").expect("key").as_binary::<i64>();
    assert!(keys.is_null(0));
    assert_eq!(keys.value(1), [0xff, 0x00]);
    assert_eq!(
        rows.column(0),
        conformed.column(0),
        "the port's columns are untouched"
    );

    // A port without metadata gets its rows back as they are; a row count that does not
    // match the records is an error, not a shifted column.
    let same = attach(Some(conformed.clone()), &[1, 0, 2], &invalid, &chunk, &[]).expect("attach");
    assert_eq!(same, Some(conformed.clone()));
    assert!(attach(Some(conformed), &[1, 0, 2], &[], &chunk, &selection).is_err());
    assert_eq!(
        attach(None, &[1], &[], &chunk, &selection).expect("attach"),
        None
    );
}

#[test]
fn check_refuses_a_table_that_cannot_hold_the_selection() {
    use KafkaMetadata::{Headers, Key};
    assert!(check(&[], &table(&[])).is_ok());
    assert!(check(&[Key, Headers], &table(&[Key, Headers])).is_ok());
    let err = check(&[Key], &table(&[])).expect_err("no column");
    assert!(err.to_string().contains("no `_kafka` column"), "{err}");
    let err = check(&[Key, Headers], &table(&[Key])).expect_err("no headers");
    assert!(err.to_string().contains("has no `headers`"), "{err}");
}
