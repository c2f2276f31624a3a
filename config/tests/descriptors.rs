//! The seed descriptor parses as written; malformed descriptors and schemas are reported with
//! file:line:col, the key path and a useful message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use meshd_config::{
    ConfigError, DataProduct, InputFormat, KAFKA_COLUMN, KafkaMetadata, Masking, PartitionTransform,
};

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed")
}

const SCHEMA: &str = r#"{"type":"record","name":"T","fields":[
  {"name":"id","type":"string"},
  {"name":"email","type":"string","tags":["PII"],"masking":"SHA256"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}
]}"#;

const GOOD: &str = "apiVersion: datamesh/v1
kind: DataProduct
metadata:
  name: orders
  domain: sales
  owner: sales@example.com
spec:
  inputPorts:
    - type: kafka-topic
      source: raw-orders
  outputPorts:
    - type: iceberg-table
      location: s3://lake/sales/orders
      schema: ./t.avsc
      sla:
        freshness: \"15min\"
        availability: \"99.9%\"
";

/// Writes a descriptor (and the schema it points at) into a temp dir and loads it.
fn load(descriptor: &str, schema: &str) -> Result<DataProduct, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.avsc"), schema).unwrap();
    let path = dir.path().join("product.yaml");
    std::fs::write(&path, descriptor).unwrap();
    DataProduct::load(&path)
}

/// Loads, expects failure, and returns the first diagnostic's (line, col, path, message).
fn first_error(descriptor: &str, schema: &str) -> (usize, usize, String, String) {
    let err = load(descriptor, schema).expect_err("should be rejected");
    let d = err
        .diagnostics()
        .first()
        .unwrap_or_else(|| panic!("no diagnostics: {err}"))
        .clone();
    let shown = d.to_string();
    (d.line, d.column, d.path, shown)
}

#[test]
fn seed_example_parses_as_written() {
    let product = DataProduct::load(&seed_dir().join("product.yaml")).unwrap();
    assert_eq!(product.name(), "payment-transactions");
    assert_eq!(product.domain(), "payments");
    assert_eq!(
        product.table_ident(0),
        ("payments".into(), "payment_transactions".into())
    );
    assert_eq!(
        product.consumer_group(),
        "meshd.payments.payment-transactions"
    );
    let port = &product.spec.spec.output_ports[0];
    assert_eq!(port.sla.freshness.duration().as_secs(), 900);
    assert!((port.sla.availability.value() - 0.999).abs() < 1e-12);
    assert_eq!(port.commit.interval.duration().as_secs(), 10);
    assert_eq!(product.spec.spec.input_ports[0].format, InputFormat::Json);
    assert_eq!(
        product.spec.spec.input_ports[0].dead_letter_topic(),
        "raw-payment-events.dlq"
    );
    let policies = product.spec.spec.policies.as_ref().unwrap();
    assert_eq!(
        policies.access_control.as_ref().unwrap().filter.as_deref(),
        Some("region = 'JP'")
    );
    assert_eq!(
        policies.retention.as_ref().unwrap().period.as_str(),
        "7years"
    );
    let schema = &product.schemas[0];
    let email = schema.column("email").unwrap();
    assert_eq!(email.tags, vec!["PII"]);
    assert_eq!(email.masking, Some(Masking::Sha256));
    assert_eq!(
        schema.column("card_last4").unwrap().masking,
        Some(Masking::Redact)
    );
    assert!(schema.column("card_last4").unwrap().optional);
    let iceberg = schema.iceberg_schema().unwrap();
    assert_eq!(iceberg.as_struct().fields().len(), 9);
}

#[test]
fn extensions_parse() {
    let text = GOOD.replace(
        "      source: raw-orders\n",
        "      source: raw-orders\n      format: avro\n      deadLetterTopic: orders-dlq\n",
    ) + "      partitioning:\n        - column: at\n          transform: day\n        - column: id\n          transform: bucket[16]\n      commit:\n        interval: 30s\n        maxRecords: 50000\n        targetFileSize: 64MiB\n";
    let p = load(&text, SCHEMA).unwrap();
    let port = &p.spec.spec.output_ports[0];
    assert_eq!(p.spec.spec.input_ports[0].format, InputFormat::Avro);
    assert_eq!(p.spec.spec.input_ports[0].dead_letter_topic(), "orders-dlq");
    assert_eq!(
        port.partitioning[1].transform,
        PartitionTransform::Bucket(16)
    );
    assert_eq!(port.commit.max_records, Some(50_000));
    assert_eq!(port.commit.target_file_size.bytes(), 64 << 20);
}

#[test]
fn misspelt_key_points_at_it_with_a_hint() {
    let (line, col, path, shown) = first_error(&GOOD.replace("freshness:", "freshnes:"), SCHEMA);
    assert_eq!((line, col), (16, 9), "{shown}");
    assert_eq!(path, "spec.outputPorts[0].sla");
    assert!(shown.contains("unknown field `freshnes`"), "{shown}");
    assert!(shown.contains("did you mean `freshness`?"), "{shown}");
    assert!(shown.contains("product.yaml:16:9"), "{shown}");
}

#[test]
fn bad_duration_unit() {
    let (line, col, path, shown) =
        first_error(&GOOD.replace("\"15min\"", "\"15 mins please\""), SCHEMA);
    assert_eq!(
        (line, col, path.as_str()),
        (16, 20, "spec.outputPorts[0].sla.freshness"),
        "{shown}"
    );
    assert!(shown.contains("unknown duration unit"), "{shown}");
}

#[test]
fn bad_availability() {
    let (line, _, path, shown) = first_error(&GOOD.replace("\"99.9%\"", "\"lots\""), SCHEMA);
    assert_eq!(
        (line, path.as_str()),
        (17, "spec.outputPorts[0].sla.availability"),
        "{shown}"
    );
    assert!(shown.contains("not a ratio"), "{shown}");
}

#[test]
fn wrong_api_version() {
    let (line, col, path, shown) = first_error(&GOOD.replace("datamesh/v1", "datamesh/v9"), SCHEMA);
    assert_eq!((line, col, path.as_str()), (1, 13, "apiVersion"), "{shown}");
    assert!(shown.contains("unknown variant `datamesh/v9`"), "{shown}");
}

#[test]
fn wrong_kind_suggests_data_product() {
    let (line, _, _, shown) = first_error(
        &GOOD.replace("kind: DataProduct", "kind: DataProdcut"),
        SCHEMA,
    );
    assert_eq!(line, 2);
    assert!(shown.contains("did you mean `DataProduct`?"), "{shown}");
}

#[test]
fn missing_required_key() {
    let (line, _, path, shown) =
        first_error(&GOOD.replace("  owner: sales@example.com\n", ""), SCHEMA);
    assert_eq!((line, path.as_str()), (4, "metadata"), "{shown}");
    assert!(shown.contains("missing field `owner`"), "{shown}");
}

#[test]
fn wrong_type_for_a_list() {
    let (line, _, path, shown) = first_error(
        &GOOD.replace(
            "  inputPorts:\n    - type: kafka-topic\n      source: raw-orders\n",
            "  inputPorts: raw-orders\n",
        ),
        SCHEMA,
    );
    assert_eq!((line, path.as_str()), (8, "spec.inputPorts"), "{shown}");
    assert!(shown.contains("invalid type: string"), "{shown}");
}

#[test]
fn unknown_port_type() {
    let (line, _, path, shown) = first_error(
        &GOOD.replace("type: kafka-topic", "type: kafka-topik"),
        SCHEMA,
    );
    assert_eq!(
        (line, path.as_str()),
        (9, "spec.inputPorts[0].type"),
        "{shown}"
    );
    assert!(shown.contains("did you mean `kafka-topic`?"), "{shown}");
}

#[test]
fn unknown_input_format() {
    let text = GOOD.replace(
        "      source: raw-orders\n",
        "      source: raw-orders\n      format: protobuf\n",
    );
    let (line, _, path, shown) = first_error(&text, SCHEMA);
    assert_eq!(
        (line, path.as_str()),
        (11, "spec.inputPorts[0].format"),
        "{shown}"
    );
    assert!(shown.contains("unknown variant `protobuf`"), "{shown}");
}

#[test]
fn commit_interval_not_below_freshness() {
    let text = GOOD.to_string() + "      commit:\n        interval: 1h\n";
    let (line, col, path, shown) = first_error(&text, SCHEMA);
    assert_eq!(
        (line, col, path.as_str()),
        (19, 9, "spec.outputPorts[0].commit.interval"),
        "{shown}"
    );
    assert!(
        shown.contains("not below the freshness SLA 15min"),
        "{shown}"
    );
}

#[test]
fn bad_partition_transform() {
    let text = GOOD.to_string()
        + "      partitioning:\n        - column: at\n          transform: bucket[0]\n";
    let (line, _, path, shown) = first_error(&text, SCHEMA);
    assert_eq!(
        (line, path.as_str()),
        (20, "spec.outputPorts[0].partitioning[0].transform"),
        "{shown}"
    );
    assert!(shown.contains("positive whole number"), "{shown}");
}

#[test]
fn partition_column_that_does_not_exist() {
    let text =
        GOOD.to_string() + "      partitioning:\n        - column: att\n          transform: day\n";
    let (line, col, path, shown) = first_error(&text, SCHEMA);
    assert_eq!(
        (line, col, path.as_str()),
        (19, 11, "spec.outputPorts[0].partitioning[0].column"),
        "{shown}"
    );
    assert!(shown.contains("did you mean `at`?"), "{shown}");
}

#[test]
fn malformed_yaml() {
    let (line, _, _, shown) = first_error(
        &GOOD.replace("  domain: sales\n", "  domain: [sales\n"),
        SCHEMA,
    );
    assert!(line >= 5, "{shown}");
    assert!(shown.contains("product.yaml:"), "{shown}");
}

#[test]
fn missing_schema_file() {
    let (line, _, path, shown) = first_error(&GOOD.replace("./t.avsc", "./nope.avsc"), SCHEMA);
    assert_eq!(
        (line, path.as_str()),
        (14, "spec.outputPorts[0].schema"),
        "{shown}"
    );
    assert!(shown.contains("cannot read schema"), "{shown}");
}

#[test]
fn unknown_masking_in_schema() {
    let (line, col, path, shown) = first_error(GOOD, &SCHEMA.replace("\"SHA256\"", "\"SHA265\""));
    assert_eq!((line, col, path.as_str()), (3, 4, "email"), "{shown}");
    assert!(shown.contains("t.avsc:3:4"), "{shown}");
    assert!(shown.contains("did you mean `SHA256`?"), "{shown}");
}

#[test]
fn null_masking_on_required_column() {
    let (line, _, path, shown) = first_error(GOOD, &SCHEMA.replace("\"SHA256\"", "\"NULL\""));
    assert_eq!((line, path.as_str()), (3, "email"), "{shown}");
    assert!(shown.contains("needs an optional column"), "{shown}");
}

#[test]
fn several_problems_are_reported_together() {
    let text =
        GOOD.replace("name: orders", "name: Orders!") + "      commit:\n        interval: 1h\n";
    let err = load(&text, SCHEMA).unwrap_err();
    assert_eq!(err.diagnostics().len(), 2, "{err}");
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let err = DataProduct::load(Path::new("/no/such/product.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read /no/such/product.yaml"),
        "{err}"
    );
}

/// `text` as bad.avsc is refused with "`{bad}` is not a valid Avro name" at line `line`.
fn assert_invalid_avro_name(text: &str, bad: &str, line: usize) {
    let err = meshd_config::PortSchema::parse(text, std::path::Path::new("bad.avsc"))
        .expect_err("an invalid Avro name is refused");
    let message = err.to_string();
    assert!(
        message.contains(&format!("`{bad}` is not a valid Avro name")),
        "{message}"
    );
    assert!(message.contains(&format!("bad.avsc:{line}:")), "{message}");
}

#[test]
fn an_invalid_avro_record_name_is_an_error_not_a_panic() {
    // Found by the `schema` fuzz target: apache-avro 0.21 unwraps on an invalid name.
    let text =
        r#"{"type": "record", "name": "T. Bad name", "fields": [{"name": "a", "type": "string"}]}"#;
    assert_invalid_avro_name(text, "T. Bad name", 1);
}

#[test]
fn an_invalid_avro_alias_is_an_error_at_its_position() {
    // Found by the `schema` fuzz target in CI: apache-avro 0.21 unwraps on an invalid alias.
    let text = "{\"type\": \"record\", \"name\": \"T\",\n \"aliases\": [\"Old\", \"n,ing\"],\n \"fields\": [{\"name\": \"a\", \"type\": \"string\"}]}";
    assert_invalid_avro_name(text, "n,ing", 2);
}

#[test]
fn two_output_ports_may_not_write_one_table() {
    let second = "    - type: iceberg-table
      location: s3://lake/sales/orders2
      schema: ./t.avsc
      sla:
        freshness: \"15min\"
        availability: \"99.9%\"
";
    let (line, _, path, shown) = first_error(&(GOOD.to_string() + second), SCHEMA);
    assert_eq!(
        (line, path.as_str()),
        (18, "spec.outputPorts[1].name"),
        "{shown}"
    );
    assert!(
        shown.contains("output ports 0 and 1 both write table `sales.orders`"),
        "{shown}"
    );
    let named = second.replace(
        "    - type: iceberg-table\n",
        "    - type: iceberg-table\n      name: orders-audit\n",
    );
    let product = load(&(GOOD.to_string() + &named), SCHEMA).unwrap();
    assert_eq!(product.table_ident(1).1, "orders_audit");
}

#[test]
fn kafka_metadata_is_a_struct_column_after_the_schema() {
    let text = GOOD.to_string() + "      kafka: [headers, key, offset]\n";
    let p = load(&text, SCHEMA).unwrap();
    let kafka = &p.spec.spec.output_ports[0].kafka;
    assert_eq!(
        kafka,
        &[
            KafkaMetadata::Headers,
            KafkaMetadata::Key,
            KafkaMetadata::Offset
        ]
    );
    let table = p.schemas[0].table_schema(kafka).unwrap();
    let ids = |name: &str| table.field_by_name(name).map(|f| f.id);
    // The schema's own ids stay; the struct and its subfields come after, in canonical order.
    assert_eq!(ids("at"), Some(3));
    assert_eq!(ids(KAFKA_COLUMN), Some(4));
    assert_eq!(ids("_kafka.key"), Some(5));
    assert_eq!(ids("_kafka.offset"), Some(6));
    assert_eq!(ids("_kafka.headers"), Some(7));
    assert_eq!(ids("_kafka.partition"), None, "only what is selected");
    assert!(!table.field_by_name(KAFKA_COLUMN).unwrap().required);
    // Without a selection there is no column.
    assert_eq!(
        p.schemas[0].table_schema(&[]).unwrap(),
        p.schemas[0].iceberg_schema().unwrap()
    );
    assert!(
        load(GOOD, SCHEMA).unwrap().spec.spec.output_ports[0]
            .kafka
            .is_empty()
    );
}

#[test]
fn unknown_kafka_metadata_points_at_it_with_a_hint() {
    let text = GOOD.to_string() + "      kafka: [key, offest]\n";
    let (line, col, path, shown) = first_error(&text, SCHEMA);
    assert_eq!(
        (line, col, path.as_str()),
        (18, 20, "spec.outputPorts[0].kafka[1]"),
        "{shown}"
    );
    assert!(shown.contains("unknown variant `offest`"), "{shown}");
    assert!(shown.contains("did you mean `offset`?"), "{shown}");
}

#[test]
fn kafka_column_clashing_with_the_schema_is_refused_with_every_other_problem() {
    let schema = SCHEMA.replace(
        r#"{"name":"id","type":"string"},"#,
        r#"{"name":"id","type":"string"},{"name":"_kafka","type":"string"},"#,
    );
    // Without `kafka` the schema's own `_kafka` is an ordinary column.
    load(GOOD, &schema).unwrap();
    let text = GOOD.to_string() + "      kafka: [key, partition, key]\n";
    let err = load(&text, &schema).expect_err("should be rejected");
    let found: Vec<(usize, usize, &str, &str)> = err
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.column, d.path.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(found.len(), 2, "{err}");
    assert!(
        found.iter().all(
            |(line, col, path, _)| (*line, *col, *path) == (18, 7, "spec.outputPorts[0].kafka")
        ),
        "{err}"
    );
    assert!(
        found.iter().any(|d| d.3 == "`key` is listed twice"),
        "{err}"
    );
    assert!(
        found.iter().any(|d| d.3.contains("already has one")),
        "{err}"
    );
    assert!(err.to_string().contains("product.yaml:18:7"), "{err}");
}

#[test]
fn pii_cleared_groups_are_optional_and_parse() {
    let seed = DataProduct::load(&seed_dir().join("product.yaml")).unwrap();
    let access = seed.spec.spec.policies.unwrap().access_control.unwrap();
    assert!(access.pii_cleared.is_empty());
    let cleared = format!(
        "{GOOD}  policies:\n    accessControl:\n      role: analyst\n      piiCleared: [fraud, audit]\n"
    );
    let product = load(&cleared, SCHEMA).unwrap();
    let access = product.spec.spec.policies.unwrap().access_control.unwrap();
    assert_eq!(access.pii_cleared, ["fraud", "audit"]);
}

#[test]
fn empty_role_and_cleared_group_are_refused() {
    let bad = format!(
        "{GOOD}  policies:\n    accessControl:\n      role: \"\"\n      piiCleared: [\" \"]\n"
    );
    let err = load(&bad, SCHEMA).expect_err("refused");
    let found: Vec<(usize, String)> = err
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.path.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (20, "spec.policies.accessControl.role".to_string()),
            (21, "spec.policies.accessControl.piiCleared[0]".to_string())
        ]
    );
}

/// `retention` as the seed writes it ages rows by the only timestamp column; naming a column
/// takes the map form; no usable column is an error at the key, with the fix.
#[test]
fn retention_finds_or_names_its_time_column() {
    let seed = DataProduct::load(&seed_dir().join("product.yaml")).unwrap();
    let (period, column) = seed.retention_of(0).unwrap();
    assert_eq!(column, "event_time", "the seed's only timestamp column");
    assert_eq!(period.as_secs(), 7 * 365 * 86_400);

    let named =
        format!("{GOOD}  policies:\n    retention:\n      period: 30days\n      column: at\n");
    assert_eq!(
        load(&named, SCHEMA).unwrap().retention_of(0).unwrap().1,
        "at"
    );

    let not_time =
        format!("{GOOD}  policies:\n    retention:\n      period: 30days\n      column: id\n");
    let (line, _, path, shown) = first_error(&not_time, SCHEMA);
    assert_eq!(
        (line, path.as_str()),
        (21, "spec.policies.retention.column"),
        "{shown}"
    );
    assert!(
        shown.contains("`id` is not a date or timestamp column"),
        "{shown}"
    );

    let no_time = SCHEMA.replace(
        r#"{"type":"long","logicalType":"timestamp-millis"}"#,
        r#""long""#,
    );
    let plain = format!("{GOOD}  policies:\n    retention: 30days\n");
    let (_, _, path, shown) = first_error(&plain, &no_time);
    assert_eq!(path, "spec.policies.retention", "{shown}");
    assert!(
        shown.contains("no date or timestamp column") && shown.contains("column:"),
        "{shown}"
    );

    let typo = format!("{GOOD}  policies:\n    retention:\n      perod: 30days\n");
    let err = load(&typo, SCHEMA).unwrap_err().to_string();
    assert!(err.contains("perod") && err.contains("period"), "{err}");
}
