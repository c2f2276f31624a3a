//! Catalog exports read by the consumers' own tools: `meshd export datahub` is checked with
//! DataHub's CLI (`datahub check metadata-file`) and read back unchanged by DataHub's SDK
//! (`tests/datahub_roundtrip.py`); `meshd export odcs` is validated against ODCS's JSON Schema
//! (vendored, `tests/fixtures/odcs/`) and with `datacontract lint`. Both for the reference
//! product and for one with a nested PII field and two output ports; plus what they must say
//! (URNs, PII tags, owner, lineage, SLA, role) and what they must refuse (a descriptor that
//! does not load, an existing output file).
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::meshd_output;
use support::product::{Product, Schema};

const TABLE_URN: &str =
    "urn:li:dataset:(urn:li:dataPlatform:iceberg,payments.payment_transactions,PROD)";

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments/product.yaml")
}

/// The reference product with a nested record and an array of records each holding a PII
/// field, a second input topic and a second output port (`refunds`, the reference schema).
fn nested_multi_port(dir: &Path) -> PathBuf {
    Product::reference()
        .with_field(json!({
            "name": "customer",
            "type": {"type": "record", "name": "Customer", "fields": [
                {"name": "phone", "type": "string", "tags": ["PII"], "masking": "REDACT"},
                {"name": "country", "type": "string"}
            ]}
        }))
        .with_field(json!({
            "name": "items",
            "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
                {"name": "sku", "type": "string"},
                {"name": "gift_email", "type": ["null", "string"], "default": null, "tags": ["PII"], "masking": "SHA256"}
            ]}}
        }))
        .add_input_topic("card-events", meshd_config::InputFormat::Json)
        .add_output_port("refunds", Schema::reference())
        .write(dir)
}

fn export(args: &[&str]) -> String {
    let (code, out) = meshd_output(args);
    assert_eq!(code, Some(0), "meshd {args:?} failed:\n{out}");
    out
}

fn datahub_export(descriptors: &[&Path], out: &Path) -> Vec<Value> {
    let mut args = vec!["export".to_string(), "datahub".into()];
    args.extend(descriptors.iter().map(|d| d.display().to_string()));
    args.extend(["-o".into(), out.display().to_string()]);
    let (code, text) = meshd_output(&args);
    assert_eq!(code, Some(0), "meshd export datahub failed:\n{text}");
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// `datahub check metadata-file`, then the SDK round trip.
fn datahub_accepts(file: &Path) {
    let Some(datahub) = support::venv_tool(".venv-datahub", "datahub") else {
        return;
    };
    let out = Command::new(&datahub)
        .args(["check", "metadata-file"])
        .arg(file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all valid"),
        "datahub check metadata-file refused {}:\n{stdout}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let python = datahub.with_file_name("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/datahub_roundtrip.py");
    let out = Command::new(python).arg(script).arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "DataHub's SDK does not read {} back unchanged:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn aspect<'a>(proposals: &'a [Value], urn: &str, name: &str) -> &'a Value {
    proposals
        .iter()
        .find(|p| p["entityUrn"] == urn && p["aspectName"] == name)
        .map(|p| &p["aspect"]["json"])
        .unwrap_or_else(|| panic!("no {name} aspect for {urn}"))
}

fn field<'a>(schema: &'a Value, path: &str) -> &'a Value {
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fieldPath"] == path)
        .unwrap_or_else(|| panic!("no field {path}"))
}

fn tags(field: &Value) -> Vec<&str> {
    field["globalTags"]["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["tag"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn datahub_file_of_the_reference_product_is_what_datahub_reads() {
    let dir = support::test_dir();
    let file = dir.path().join("datahub.json");
    let proposals = datahub_export(&[&reference()], &file);
    datahub_accepts(&file);

    let schema = aspect(&proposals, TABLE_URN, "schemaMetadata");
    assert_eq!(schema["platform"], "urn:li:dataPlatform:iceberg");
    for pii in ["email", "card_last4"] {
        assert_eq!(tags(field(schema, pii)), ["urn:li:tag:PII"], "{pii}");
    }
    assert!(tags(field(schema, "region")).is_empty());
    assert_eq!(
        field(schema, "email")["type"]["type"],
        json!({"com.linkedin.schema.StringType": {}})
    );
    assert_eq!(field(schema, "amount")["nativeDataType"], "decimal(18, 2)");
    assert_eq!(field(schema, "card_last4")["nullable"], true);
    assert!(
        field(schema, "email")["description"]
            .as_str()
            .unwrap()
            .contains("SHA256")
    );

    let owners = &aspect(&proposals, TABLE_URN, "ownership")["owners"];
    assert_eq!(
        owners[0]["owner"],
        "urn:li:corpuser:payment-team@example.com"
    );
    assert_eq!(
        aspect(&proposals, TABLE_URN, "domains")["domains"],
        json!(["urn:li:domain:payments"])
    );
    let upstreams = &aspect(&proposals, TABLE_URN, "upstreamLineage")["upstreams"];
    assert_eq!(
        upstreams[0]["dataset"],
        "urn:li:dataset:(urn:li:dataPlatform:kafka,raw-payment-events,PROD)"
    );
    let properties = aspect(&proposals, TABLE_URN, "datasetProperties");
    let custom = &properties["customProperties"];
    assert_eq!(custom["datamesh.sla.freshness"], "15min");
    assert_eq!(custom["datamesh.sla.availability"], "99.9%");
    assert_eq!(custom["datamesh.retention"], "7years");
    assert_eq!(custom["datamesh.access.role"], "data-analyst");
    assert_eq!(custom["datamesh.access.filter"], "region = 'JP'");
    let sha = meshd_config::DataProduct::load(&reference())
        .unwrap()
        .sha256;
    assert_eq!(custom["datamesh.descriptor.sha256"], sha.as_str());
    assert!(
        properties["description"]
            .as_str()
            .unwrap()
            .contains("payment-transactions")
    );
    // The entities the dataset refers to exist in the same file.
    for (entity, urn) in [
        ("domain", "urn:li:domain:payments"),
        ("tag", "urn:li:tag:PII"),
    ] {
        assert!(
            proposals
                .iter()
                .any(|p| p["entityType"] == entity && p["entityUrn"] == urn),
            "no {urn}"
        );
    }
    // Deterministic: the same descriptor gives the same file.
    let again = dir.path().join("again.json");
    datahub_export(&[&reference()], &again);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn datahub_file_of_nested_and_multi_port_products() {
    let dir = support::test_dir();
    let descriptor = nested_multi_port(&dir.path().join("product"));
    let file = dir.path().join("datahub.json");
    let proposals = datahub_export(&[&descriptor, &reference()], &file);
    datahub_accepts(&file);

    let schema = aspect(&proposals, TABLE_URN, "schemaMetadata");
    assert_eq!(
        field(schema, "customer")["type"]["type"],
        json!({"com.linkedin.schema.RecordType": {}})
    );
    assert_eq!(tags(field(schema, "customer.phone")), ["urn:li:tag:PII"]);
    assert!(tags(field(schema, "customer.country")).is_empty());
    assert_eq!(
        field(schema, "items")["type"]["type"],
        json!({"com.linkedin.schema.ArrayType": {"nestedType": ["struct"]}})
    );
    assert_eq!(tags(field(schema, "items.gift_email")), ["urn:li:tag:PII"]);
    assert_eq!(field(schema, "items.gift_email")["nullable"], true);
    let refunds = "urn:li:dataset:(urn:li:dataPlatform:iceberg,payments.refunds,PROD)";
    assert_eq!(
        aspect(&proposals, refunds, "datasetProperties")["customProperties"]["datamesh.port"],
        "refunds"
    );
    let upstreams: Vec<&str> = aspect(&proposals, refunds, "upstreamLineage")["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(
        upstreams,
        [
            "urn:li:dataset:(urn:li:dataPlatform:kafka,raw-payment-events,PROD)",
            "urn:li:dataset:(urn:li:dataPlatform:kafka,card-events,PROD)",
        ]
    );
    // Two descriptors of one domain: the domain and the tag are declared once each.
    for urn in ["urn:li:domain:payments", "urn:li:tag:PII"] {
        assert_eq!(
            proposals.iter().filter(|p| p["entityUrn"] == urn).count(),
            1
        );
    }
}

fn odcs_schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/odcs/odcs-json-schema-v3.1.0.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Exports the contract to a file, validates it against the JSON Schema and with
/// `datacontract lint`; returns it.
fn odcs_export(descriptor: &Path, out: &Path) -> Value {
    export(&[
        "export",
        "odcs",
        &descriptor.display().to_string(),
        "-o",
        &out.display().to_string(),
    ]);
    let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let errors: Vec<String> = odcs_schema()
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not valid ODCS v3.1.0:\n{}",
        errors.join("\n")
    );
    if let Some(datacontract) = support::venv_tool(".venv-datacontract", "datacontract") {
        let lint = Command::new(datacontract)
            .arg("lint")
            .arg(out)
            .env("COLUMNS", "200")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&lint.stdout);
        assert!(
            lint.status.success() && stdout.contains("valid against ODCS v3.1.0"),
            "datacontract lint refused {}:\n{stdout}\n{}",
            out.display(),
            String::from_utf8_lossy(&lint.stderr)
        );
    }
    doc
}

fn property<'a>(object: &'a Value, name: &str) -> &'a Value {
    object["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no property {name}"))
}

fn sla<'a>(doc: &'a Value, property: &str) -> &'a Value {
    doc["slaProperties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["property"] == property)
        .unwrap_or_else(|| panic!("no SLA property {property}"))
}

#[test]
fn odcs_contract_of_the_reference_product_is_valid_and_complete() {
    let dir = support::test_dir();
    let doc = odcs_export(&reference(), &dir.path().join("contract.yaml"));
    // The schema is strict where the contract could go wrong: an unknown key is refused.
    let mut wrong = doc.clone();
    wrong["schema"][0]["properties"][0]["colour"] = json!("red");
    assert!(!odcs_schema().is_valid(&wrong));
    assert_eq!(doc["apiVersion"], "v3.1.0");
    assert_eq!(doc["domain"], "payments");
    assert_eq!(doc["dataProduct"], "payment-transactions");
    assert_eq!(
        doc["team"]["members"],
        json!([{"username": "payment-team@example.com", "role": "owner"}])
    );
    let table = &doc["schema"][0];
    assert_eq!(table["physicalName"], "payments.payment_transactions");
    for pii in ["email", "card_last4"] {
        assert_eq!(property(table, pii)["classification"], "PII", "{pii}");
    }
    assert!(property(table, "region").get("classification").is_none());
    assert_eq!(
        property(table, "email")["customProperties"],
        json!([{"property": "masking", "value": "SHA256"}])
    );
    assert_eq!(property(table, "event_time")["partitioned"], true);
    assert_eq!(sla(&doc, "latency")["value"], 15);
    assert_eq!(sla(&doc, "latency")["unit"], "min");
    assert_eq!(sla(&doc, "availability")["value"], "99.9%");
    assert_eq!(sla(&doc, "retention")["value"], 7);
    assert_eq!(sla(&doc, "retention")["unit"], "y");
    assert_eq!(doc["roles"][0]["role"], "data-analyst");
    assert_eq!(doc["roles"][0]["access"], "read");
    assert_eq!(
        doc["roles"][0]["customProperties"],
        json!([{"property": "rowFilter", "value": "region = 'JP'"}])
    );

    // Without `-o`, the same document on standard output.
    let (code, stdout) = {
        let out = Command::new(support::meshd_binary())
            .args(["export", "odcs"])
            .arg(reference())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(code, Some(0));
    assert_eq!(serde_yaml_ng::from_str::<Value>(&stdout).unwrap(), doc);
}

#[test]
fn odcs_contract_of_a_nested_multi_port_product_is_valid() {
    let dir = support::test_dir();
    let descriptor = nested_multi_port(&dir.path().join("product"));
    let doc = odcs_export(&descriptor, &dir.path().join("contract.yaml"));
    let tables: Vec<&str> = doc["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["physicalName"].as_str().unwrap())
        .collect();
    assert_eq!(
        tables,
        ["payments.payment_transactions", "payments.refunds"]
    );
    let customer = property(&doc["schema"][0], "customer");
    assert_eq!(customer["logicalType"], "object");
    assert_eq!(property(customer, "phone")["classification"], "PII");
    let items = property(&doc["schema"][0], "items");
    assert_eq!(items["logicalType"], "array");
    assert_eq!(items["items"]["logicalType"], "object");
    assert_eq!(
        property(&items["items"], "gift_email")["classification"],
        "PII"
    );
    assert_eq!(property(&items["items"], "sku").get("classification"), None);
    let latency: Vec<&str> = doc["slaProperties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["property"] == "latency")
        .map(|p| p["element"].as_str().unwrap())
        .collect();
    assert_eq!(latency, ["payment_transactions", "refunds"]);
}

#[test]
fn a_descriptor_that_does_not_load_fails_the_export_and_writes_nothing() {
    let dir = support::test_dir();
    let good = reference();
    let broken = dir.path().join("broken/product.yaml");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("freshness: \"15min\"", "freshness: \"15 parsecs\"");
    std::fs::write(&broken, text).unwrap();
    let out = dir.path().join("out");
    for command in ["datahub", "odcs"] {
        let mut args = vec!["export".to_string(), command.into()];
        if command == "datahub" {
            // One good descriptor first: nothing of it may be written either.
            args.push(good.display().to_string());
        }
        args.extend([
            broken.display().to_string(),
            "-o".into(),
            out.display().to_string(),
        ]);
        let (code, text) = meshd_output(&args);
        assert_ne!(code, Some(0), "{command}: {text}");
        let at = format!("{}:", broken.display());
        assert!(
            text.lines().any(|l| l.contains(&at)
                && l.split(':').filter(|p| p.parse::<u32>().is_ok()).count() >= 2),
            "{command}: no file:line:col in\n{text}"
        );
        assert!(!out.exists(), "{command} wrote {} anyway", out.display());
    }
}

#[test]
fn an_existing_output_file_is_refused_unless_forced() {
    let dir = support::test_dir();
    let out = dir.path().join("existing");
    for command in ["datahub", "odcs"] {
        std::fs::write(&out, "keep me").unwrap();
        let reference = reference().display().to_string();
        let path = out.display().to_string();
        let (code, text) = meshd_output(&["export", command, &reference, "-o", &path]);
        assert_ne!(code, Some(0), "{command}: {text}");
        assert!(text.contains("--force"), "{command}: {text}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
        export(&["export", command, &reference, "-o", &path, "--force"]);
        assert_ne!(std::fs::read_to_string(&out).unwrap(), "keep me");
    }
}

/// `--server` against a stand-in for GMS on loopback that records each request: every
/// proposal arrives at `/aspects?action=ingestProposal` in the REST form (no real DataHub
/// server runs here; the body shape is the one DataHub's REST emitter sends).
#[test]
fn server_posts_every_proposal_to_gms() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = std::thread::spawn(move || {
        let mut requests = Vec::new();
        listener.set_nonblocking(false).unwrap();
        // One connection (the client keeps it alive) or several: read until the client is done.
        while let Ok((stream, _)) = listener.accept() {
            let done = serve(stream, &mut requests);
            if done {
                break;
            }
        }
        requests
    });
    let dir = support::test_dir();
    let file = dir.path().join("datahub.json");
    let reference = reference().display().to_string();
    let out = export(&[
        "export",
        "datahub",
        &reference,
        "-o",
        &file.display().to_string(),
        "--server",
        &format!("http://{addr}/"),
    ]);
    // Wakes the recorder if it is waiting for another connection.
    let _ = std::net::TcpStream::connect(addr).map(|mut s| s.write_all(b"QUIT\r\n\r\n"));
    let requests = recorder.join().unwrap();
    let proposals: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        out.contains(&format!("posted {}", proposals.len())),
        "{out}"
    );
    assert_eq!(requests.len(), proposals.len());
    for ((head, body), proposal) in requests.iter().zip(&proposals) {
        assert!(
            head.starts_with("POST /aspects?action=ingestProposal HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("x-restli-protocol-version: 2.0.0"),
            "{head}"
        );
        let body: Value = serde_json::from_str(body).unwrap();
        let sent = &body["proposal"];
        assert_eq!(sent["entityUrn"], proposal["entityUrn"]);
        assert_eq!(sent["aspectName"], proposal["aspectName"]);
        assert_eq!(sent["aspect"]["contentType"], "application/json");
        let aspect: Value =
            serde_json::from_str(sent["aspect"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(aspect, proposal["aspect"]["json"]);
    }
}

/// Answers HTTP/1.1 requests on one connection with `200 {}`, recording (head, body); true
/// when the test said `QUIT`.
fn serve(stream: std::net::TcpStream, requests: &mut Vec<(String, String)>) -> bool {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return false;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        if head.starts_with("QUIT") {
            return true;
        }
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        requests.push((head, String::from_utf8(body).unwrap()));
        writer
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            )
            .unwrap();
    }
}
