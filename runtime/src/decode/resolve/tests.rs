use super::*;

fn record(fields: &str) -> String {
    format!(
        r#"{{"type": "record", "name": "Payment", "namespace": "payments", "fields": [{fields}]}}"#
    )
}

fn err(writer: &str, reader: &str) -> Incompatible {
    check(writer, reader).expect_err("should not resolve")
}

const ID: &str = r#"{"name": "id", "type": "string"}"#;

#[test]
fn the_same_schema_and_avros_promotions_resolve() {
    let reader = record(&format!(
        r#"{ID}, {{"name": "n", "type": "long"}}, {{"name": "x", "type": "double"}}"#
    ));
    assert_eq!(check(&reader, &reader), Ok(()));
    let writer = record(&format!(
        r#"{ID}, {{"name": "n", "type": "int"}}, {{"name": "x", "type": "float"}}"#
    ));
    assert_eq!(check(&writer, &reader), Ok(()));
    let narrowing = err(&reader, &writer);
    assert_eq!(narrowing.path, "n");
    assert!(
        narrowing
            .problem
            .contains("long is written, the port reads int"),
        "{narrowing}"
    );
}

#[test]
fn a_field_the_writer_lacks_needs_a_default() {
    let writer = record(ID);
    let with_default = record(&format!(
        r#"{ID}, {{"name": "note", "type": ["null", "string"], "default": null}}"#
    ));
    assert_eq!(check(&writer, &with_default), Ok(()));
    let required = record(&format!(r#"{ID}, {{"name": "note", "type": "string"}}"#));
    let e = err(&writer, &required);
    assert_eq!(e.path, "note");
    assert!(e.to_string().starts_with("field `note`: "), "{e}");
    // A field only the writer has is dropped.
    assert_eq!(check(&required, &writer), Ok(()));
}

#[test]
fn a_nullable_writer_field_cannot_feed_a_required_one() {
    let writer = record(r#"{"name": "id", "type": ["null", "string"], "default": null}"#);
    let e = err(&writer, &record(ID));
    assert_eq!(e.path, "id");
    assert!(e.problem.contains("allows null"), "{e}");
    // The other way round is fine.
    assert_eq!(check(&record(ID), &writer), Ok(()));
}

#[test]
fn enum_symbols_the_port_lacks_need_its_default() {
    let enum_of = |symbols: &str, default: &str| {
        record(&format!(
            r#"{{"name": "status", "type": {{"type": "enum", "name": "Status", "symbols": [{symbols}]{default}}}}}"#
        ))
    };
    let writer = enum_of(r#""A", "B", "C""#, "");
    let e = err(&writer, &enum_of(r#""A", "B""#, ""));
    assert_eq!(e.path, "status");
    assert!(e.problem.contains(r#"["C"]"#), "{e}");
    assert_eq!(
        check(&writer, &enum_of(r#""A", "B""#, r#", "default": "A""#)),
        Ok(())
    );
}

#[test]
fn logical_types_must_agree() {
    let decimal = |p: u32, s: u32| {
        record(&format!(
            r#"{{"name": "amount", "type": {{"type": "bytes", "logicalType": "decimal", "precision": {p}, "scale": {s}}}}}"#
        ))
    };
    assert_eq!(check(&decimal(18, 2), &decimal(18, 2)), Ok(()));
    let e = err(&decimal(18, 4), &decimal(18, 2));
    assert_eq!(e.path, "amount");
    assert!(e.problem.contains("decimal(18, 4)"), "{e}");
    let ts = |unit: &str| {
        record(&format!(
            r#"{{"name": "at", "type": {{"type": "long", "logicalType": "timestamp-{unit}"}}}}"#
        ))
    };
    let e = err(&ts("millis"), &ts("micros"));
    assert!(
        e.problem
            .contains("timestamp-millis is written, the port reads timestamp-micros"),
        "{e}"
    );
    let plain = record(r#"{"name": "at", "type": "long"}"#);
    assert_eq!(check(&plain, &ts("millis")), Ok(()));
}

#[test]
fn nested_fields_are_named_by_their_path_and_namespaces_do_not_matter() {
    let nested = |ty: &str, ns: &str| {
        format!(
            r#"{{"type": "record", "name": "Payment", "namespace": "{ns}", "fields": [
                {{"name": "customer", "type": {{"type": "record", "name": "Customer", "fields": [
                    {{"name": "phones", "type": {{"type": "array", "items": "{ty}"}}}}]}}}}]}}"#
        )
    };
    assert_eq!(
        check(&nested("string", "com.acme"), &nested("string", "payments")),
        Ok(())
    );
    let e = err(&nested("int", "a"), &nested("string", "b"));
    assert_eq!(e.path, "customer.phones[]");
}

#[test]
fn a_different_record_needs_an_alias() {
    let other =
        r#"{"type": "record", "name": "Refund", "fields": [{"name": "id", "type": "string"}]}"#;
    let e = err(other, &record(ID));
    assert!(
        e.problem
            .contains("record `Refund` is written where the port expects record `Payment`"),
        "{e}"
    );
    let aliased = r#"{"type": "record", "name": "Payment", "aliases": ["Refund"], "fields": [{"name": "id", "type": "string"}]}"#;
    assert_eq!(check(other, aliased), Ok(()));
}

#[test]
fn unions_resolve_branch_by_branch() {
    let writer = record(r#"{"name": "v", "type": ["null", "int", "string"]}"#);
    let reader = record(r#"{"name": "v", "type": ["null", "long", "string"]}"#);
    assert_eq!(check(&writer, &reader), Ok(()));
    let narrower = record(r#"{"name": "v", "type": ["null", "long"]}"#);
    let e = err(&writer, &narrower);
    assert!(e.problem.contains("may write string"), "{e}");
}

#[test]
fn invalid_schemas_are_reported_not_panicked_on() {
    let e = err("{not avro", &record(ID));
    assert!(e.problem.contains("writer schema is not valid Avro"), "{e}");
}
