//! `meshd init <domain>/<name>`: the scaffolded folder passes `meshd policy test` and `meshd
//! validate` as generated (run as its CI workflow runs them), `meshd run --config meshd.yaml`
//! on it (the embedded default, pointed at a Nisshi broker by environment) writes the records
//! a producer sends with the PII column hashed, and `init` never overwrites a file and refuses
//! names a descriptor would refuse.
#![allow(clippy::unwrap_used)]

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use support::{Meshd, Tansu, free_port, meshd_output, meshd_output_on_host, poll, table_strings};

const PRODUCT: &str = "payments/refund-requests";
const TOPIC: &str = "payments.refund-requests";
const TABLE: &str = "payments.refund_requests";
const FILES: [&str; 7] = [
    "product.yaml",
    "schema/refund-requests.avsc",
    "policies/columns_documented.rego",
    "policies/columns_documented_test.rego",
    "meshd.yaml",
    ".gitignore",
    ".github/workflows/data-product.yml",
];

fn init(dir: &Path) -> (Option<i32>, String) {
    let args: [&OsStr; 4] = [
        "init".as_ref(),
        PRODUCT.as_ref(),
        "--dir".as_ref(),
        dir.as_ref(),
    ];
    meshd_output(&args)
}

/// The `meshd …` commands of the generated workflow's steps.
fn workflow_commands(product: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(product.join(".github/workflows/data-product.yml")).unwrap();
    let workflow: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    workflow["jobs"]["governance"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|step| step["run"].as_str())
        .filter(|run| run.starts_with("meshd "))
        .map(str::to_string)
        .collect()
}

#[test]
fn scaffold_validates_as_generated_and_never_overwrites() {
    let dir = support::test_dir();
    let product = dir.path().join("refunds");
    let (code, out) = init(&product);
    assert_eq!(code, Some(0), "{out}");
    for file in FILES {
        assert!(product.join(file).is_file(), "{file} missing:\n{out}");
    }

    let commands = workflow_commands(&product);
    assert_eq!(
        commands,
        [
            "meshd policy test policies",
            "meshd validate --policy policies product.yaml --format github"
        ]
    );
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        let (code, out) = meshd_output_on_host(&words, Some(&product), &[]);
        assert_eq!(code, Some(0), "`{command}`:\n{out}");
        assert!(!out.contains("::error"), "`{command}`:\n{out}");
    }
    let (code, out) = meshd_output_on_host(&["policy", "test", "policies"], Some(&product), &[]);
    assert!(
        out.contains("3 test(s): 3 passed, 0 failed"),
        "{code:?} {out}"
    );
    // The team rule runs in `validate`: a column without a doc is denied.
    let schema = product.join("schema/refund-requests.avsc");
    let original = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        original.replace(", \"doc\": \"Free text, optional\"", ""),
    )
    .unwrap();
    let (code, out) = meshd_output_on_host(
        &["validate", "--policy", "policies", "product.yaml"],
        Some(&product),
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[columns_documented]") && out.contains("'note'"),
        "{out}"
    );
    std::fs::write(&schema, &original).unwrap();

    // A second init writes nothing and names what exists.
    let (code, out) = init(&product);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("product.yaml already exists"), "{out}");
    // One existing file is enough to write nothing at all.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("policies")).unwrap();
    std::fs::write(other.join("policies/columns_documented.rego"), "# ours\n").unwrap();
    let (code, out) = init(&other);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("columns_documented.rego already exists")
            && out.contains("nothing was written"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(other.join("policies/columns_documented.rego")).unwrap(),
        "# ours\n"
    );
    let written: Vec<_> = walk(&other);
    assert_eq!(written, ["policies/columns_documented.rego"], "{out}");

    for bad in [
        "refunds",
        "Payments/refunds",
        "payments/refunds/v1",
        "payments/re funds",
        "/refunds",
    ] {
        let (code, out) = meshd_output(&[
            "init",
            bad,
            "--dir",
            dir.path().join("bad").to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{bad}: {out}");
        assert!(
            out.contains(&format!("in `{bad}`")) || out.contains("is not `<domain>/<name>`"),
            "{bad}: {out}"
        );
    }
    assert!(!dir.path().join("bad").exists());
}

/// Files under `dir`, relative, sorted.
fn walk(dir: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                go(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffold_runs_against_the_embedded_default() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let product = dir.path().join("refunds");
    let (code, out) = init(&product);
    assert_eq!(code, Some(0), "{out}");
    tansu.create_topic(TOPIC, 1).await;

    // The generated meshd.yaml as written, run from the product folder: only the broker and
    // the metrics port come from the environment.
    let listen = format!("127.0.0.1:{}", free_port());
    let meshd = Meshd::start_on_host(
        Path::new("meshd.yaml"),
        &[Path::new("product.yaml")],
        &listen,
        dir.path().join("meshd.log"),
        Some(&product),
        &[
            ("MESHD_KAFKA_BOOTSTRAP_SERVERS", tansu.bootstrap.clone()),
            ("MESHD_METRICS_LISTEN", listen.clone()),
        ],
    );
    // Records sent before the worker is up are read too (a new group starts at the earliest).

    let producer: FutureProducer = tansu.client().create().unwrap();
    let ids: Vec<String> = (0..5).map(|n| format!("refund-{n}")).collect();
    for (n, id) in ids.iter().enumerate() {
        let record = json!({
            "event_id": id,
            "customer_email": format!("customer{n}@example.com"),
            "amount": format!("{n}.50"),
            "region": if n % 2 == 0 { "EU" } else { "JP" },
            "note": null,
            "event_time": 1_700_000_000_000_i64 + n as i64 * 1000,
        })
        .to_string();
        producer
            .send(
                FutureRecord::to(TOPIC).key(id).payload(&record),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    // The embedded default's catalog, read from the test's own working directory.
    let reader = dir.path().join("reader.yaml");
    let local = product.join(".meshd");
    std::fs::write(
        &reader,
        format!(
            "catalog:\n  uri: sqlite://{}/catalog.db\nwarehouse: {}/warehouse\n",
            local.display(),
            local.display()
        ),
    )
    .unwrap();
    let mut rows = Vec::new();
    for _ in 0..600 {
        if let Some(found) = table_strings(&reader, TABLE, "event_id").await
            && found.len() >= ids.len()
        {
            rows = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rows.sort();
    assert_eq!(rows, ids, "{}", meshd.log_text());
    let emails = table_strings(&reader, TABLE, "customer_email")
        .await
        .unwrap();
    assert_eq!(emails.len(), ids.len());
    assert!(
        emails
            .iter()
            .all(|e| e.len() == 64 && e.chars().all(|c| c.is_ascii_hexdigit())),
        "customer_email is hashed: {emails:?}"
    );
    assert!(product.join(".meshd/warehouse").is_dir());
    let (status, ready) = poll("/readyz", Duration::from_secs(30), || meshd.readyz());
    assert_eq!(status, 200, "{ready}");
}
