use apache_avro::types::Value;

use super::*;

const PORT: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"},
    {"name": "qty", "type": "long"},
    {"name": "note", "type": ["null", "string"], "default": null}
]}"#;

/// Version 1: `qty` as int, no `note`, another namespace.
const V1: &str = r#"{"type": "record", "name": "Order", "namespace": "com.acme", "fields": [
    {"name": "id", "type": "string"},
    {"name": "qty", "type": "int"}
]}"#;

/// Version 2: the port's schema plus a field the port does not have.
const V2: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"},
    {"name": "qty", "type": "long"},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "channel", "type": "string", "default": "web"}
]}"#;

/// `id` became a long: cannot be read as the port's string.
const BAD: &str = r#"{"type": "record", "name": "Order", "fields": [
    {"name": "id", "type": "long"},
    {"name": "qty", "type": "long"}
]}"#;

fn framed(id: u32, schema: &str, fields: Vec<(&str, Value)>) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema).expect("schema");
    let record = Value::Record(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    let mut out = vec![MAGIC];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(&schema, record).expect("datum"));
    out
}

#[test]
fn schema_ids_are_read_from_the_header_and_bad_headers_explained() {
    assert_eq!(schema_id(&[0, 0, 0, 1, 2, 9]), Ok(258));
    assert!(
        schema_id(&[1, 0, 0, 0, 1])
            .unwrap_err()
            .contains("first byte is 1")
    );
    assert!(
        schema_id(&[0, 0, 1])
            .unwrap_err()
            .contains("shorter than the 5-byte header")
    );
    assert!(schema_id(&[]).is_err());
}

#[test]
fn two_writer_versions_decode_into_the_port_schema_and_bad_records_get_their_reason() {
    let mut decoders = ConfluentDecoders::new(PORT, 10);
    let v1 = framed(
        1,
        V1,
        vec![("id", Value::String("a".into())), ("qty", Value::Int(3))],
    );
    let v2 = framed(
        2,
        V2,
        vec![
            ("id", Value::String("b".into())),
            ("qty", Value::Long(1 << 40)),
            (
                "note",
                Value::Union(1, Box::new(Value::String("gift".into()))),
            ),
            ("channel", Value::String("app".into())),
        ],
    );
    let bad = framed(
        3,
        BAD,
        vec![("id", Value::Long(1)), ("qty", Value::Long(1))],
    );
    let unknown = framed(
        9,
        V1,
        vec![("id", Value::String("c".into())), ("qty", Value::Int(1))],
    );
    let truncated = &v2[..v2.len() - 2];
    let payloads: Vec<Option<&[u8]>> = vec![
        Some(&v1),
        Some(&v2),
        Some(&bad),
        Some(&unknown),
        Some(truncated),
        Some(b"\x01\x00\x00\x00\x01xx"),
        Some(b"\x00\x00"),
        None,
        Some(&v1),
    ];
    let missing = decoders.missing(payloads.iter().copied());
    assert_eq!(missing.into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 9]);
    assert_eq!(decoders.learn(1, V1), None);
    assert_eq!(decoders.learn(2, V2), None);
    let why = decoders.learn(3, BAD).expect("unreadable");
    assert!(
        why.contains("field `id`: long is written, the port reads string"),
        "{why}"
    );
    decoders.unknown(9);
    assert!(decoders.missing(payloads.iter().copied()).is_empty());

    let decoded = decoders.decode(&payloads, 1 << 20);
    let (mut rows, rejected) = decoded.outcome();
    rows.sort_unstable();
    assert_eq!(rows, vec![0, 1, 8]);
    assert_eq!(
        rejected,
        vec![
            (2, Reason::SchemaResolution),
            (3, Reason::SchemaId),
            (4, Reason::Decode),
            (5, Reason::Decode),
            (6, Reason::Decode),
            (7, Reason::NullValue)
        ]
    );
    for (batch, _) in &decoded.batches {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            ["id", "qty", "note"],
            "every writer decodes into the port's columns"
        );
    }
    let values: Vec<String> = decoded
        .batches
        .iter()
        .flat_map(|(batch, _)| {
            (0..batch.num_rows()).map(|r| {
                let show = |c: &str| {
                    arrow_cast::display::array_value_to_string(
                        batch.column_by_name(c).expect("column"),
                        r,
                    )
                    .expect("display")
                };
                format!("{}/{}/{}", show("id"), show("qty"), show("note"))
            })
        })
        .collect();
    let mut values = values;
    values.sort();
    assert_eq!(
        values,
        ["a/3/", "a/3/", "b/1099511627776/gift"],
        "int widened, note defaulted"
    );
    // Unknown ids are asked again in the next chunk.
    assert_eq!(
        decoders
            .missing(payloads.iter().copied())
            .into_iter()
            .collect::<Vec<_>>(),
        vec![9]
    );
}

#[test]
fn the_cache_keeps_the_most_recently_used_writers() {
    let mut decoders = ConfluentDecoders::new(PORT, 2);
    decoders.learn(1, V1);
    decoders.learn(2, V2);
    let v1 = framed(
        1,
        V1,
        vec![("id", Value::String("a".into())), ("qty", Value::Int(3))],
    );
    decoders.decode(&[Some(&v1)], 1 << 20);
    decoders.learn(3, V2);
    let ids = |d: &ConfluentDecoders| {
        let mut ids: Vec<u32> = d.writers.keys().copied().collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(&decoders), vec![1, 3], "2 was the least recently used");
}
