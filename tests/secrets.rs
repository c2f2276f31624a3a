//! Secrets stay secret: a masking key and a SASL password given to meshd never appear in its
//! log, in `/metrics` or `/readyz`, in dead-letter headers, or in an error message (a catalog
//! URI with a password is redacted).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use rdkafka::producer::FutureProducer;
use support::{Meshd, Tansu, http_get, poll};

const TOPIC: &str = "secrets-e2e";
const KEY: &str = "k3y-SECRET-4567";
const PASSWORD: &str = "pa55-SECRET-8910";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_key_and_sasl_password_never_leak() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    tansu.create_topic(TOPIC, 1).await;
    let descriptor = support::example_product(dir.path(), TOPIC, &[support::COMMIT_EVERY_SECOND]);
    std::fs::write(dir.path().join("masking.key"), KEY).unwrap();
    // The SASL settings ride along on a plaintext listener: librdkafka keeps the password in its
    // configuration, which is what must never be printed.
    let password = format!("sasl.password: {PASSWORD}");
    let key_file = format!(
        "masking:\n  keyFile: {}/masking.key\n",
        dir.path().display()
    );
    let (config, listen) = support::meshd_config(
        dir.path(),
        "meshd",
        &tansu.bootstrap,
        &["sasl.username: meshd", &password],
        &key_file,
    );
    let meshd = Meshd::start(
        &config,
        &[&descriptor],
        &listen,
        dir.path().join("meshd.log"),
    );

    // Good and malformed records (1 in 10), so both the table and the DLQ see traffic.
    let producer: FutureProducer = tansu.client().create().unwrap();
    for n in 0..500u64 {
        support::send_payment_event(&producer, TOPIC, n, 10).await;
    }
    poll(
        "all 500 records committed or dead-lettered",
        Duration::from_secs(120),
        || {
            let s = meshd.scrape()?;
            (s.sum("meshd_records_committed_total") + s.sum("meshd_records_dead_lettered_total")
                == 500.0)
                .then_some(())
        },
    );

    let metrics = http_get(&format!("http://{listen}/metrics")).unwrap();
    let ready = http_get(&format!("http://{listen}/readyz")).unwrap_or_default();
    let log = meshd.log_text();
    for (place, text) in [
        ("/metrics", &metrics),
        ("/readyz", &ready),
        ("the log", &log),
    ] {
        assert!(
            !text.contains(KEY) && !text.contains(PASSWORD),
            "a secret appears in {place}"
        );
    }

    let letters = support::read_dead_letters(
        &tansu.bootstrap,
        &[&format!("{TOPIC}.dlq")],
        50,
        Duration::from_secs(60),
    );
    for (key, value) in letters.values().flatten() {
        assert!(
            !value.contains(KEY) && !value.contains(PASSWORD),
            "a secret appears in DLQ header {key}"
        );
    }

    // An error about a catalog URI that carries a password names the URI without it.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!("catalog:\n  uri: postgres://meshd:{PASSWORD}@127.0.0.1:1/catalog\n"),
    )
    .unwrap();
    let (code, text) = support::meshd_output(&[
        "plan",
        "--config",
        &bad.display().to_string(),
        &descriptor.display().to_string(),
    ]);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("127.0.0.1:1") && !text.contains(PASSWORD),
        "{text}"
    );
}

/// The platform's secrets: the S3 secret key (from `AWS_SECRET_ACCESS_KEY`), the PostgreSQL
/// password (`MESHD_CATALOG_PASSWORD`) and a REST catalog's credential and token appear in no
/// output of `meshd plan`, whether it succeeds or fails (wrong password, unreachable REST
/// catalog). The many-hosts test checks the logs, `/metrics` and `/readyz` of running workers.
#[test]
fn storage_and_catalog_secrets_never_leak() {
    use support::services::{Moto, PG_PASSWORD, Postgres, S3_SECRET_KEY};
    let dir = support::test_dir();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    pg.create_database("secrets");
    moto.create_bucket("data-mesh");
    let descriptor = support::example_product(dir.path(), TOPIC, &[]);
    const CREDENTIAL: &str = "client-id:rest-SECRET-1357";
    const TOKEN: &str = "bearer-SECRET-2468";
    let plan = |config: &str, password: &str| {
        let path = dir.path().join("platform.yaml");
        std::fs::write(&path, config).unwrap();
        let mut env = moto.aws_env();
        env.push(("MESHD_CATALOG_PASSWORD", password.to_string()));
        env.push(("MESHD_CATALOG_CREDENTIAL", CREDENTIAL.to_string()));
        env.push(("MESHD_CATALOG_TOKEN", TOKEN.to_string()));
        env.push(("MESHD_LOG", "debug".to_string()));
        let (code, text) = support::meshd_output_on_host(
            &[
                "plan",
                "--config",
                &path.display().to_string(),
                &descriptor.display().to_string(),
            ],
            None,
            &env,
        );
        for secret in [S3_SECRET_KEY, PG_PASSWORD, CREDENTIAL, TOKEN, "rest-SECRET"] {
            assert!(
                !text.contains(secret),
                "a secret in meshd's output:\n{text}"
            );
        }
        (code == Some(0), text)
    };
    let shared = format!(
        "catalog:\n  uri: {}\nwarehouse: s3://data-mesh/warehouse\n",
        pg.uri("secrets")
    );
    let (ok, text) = plan(&shared, PG_PASSWORD);
    assert!(ok && text.contains("create"), "{text}");
    let (ok, text) = plan(&shared, "wrong-SECRET-password");
    assert!(!ok && !text.contains("wrong-SECRET-password"), "{text}");
    let rest = format!(
        "catalog:\n  type: rest\n  uri: http://127.0.0.1:{}/catalog\n",
        support::free_port()
    );
    let (ok, text) = plan(&rest, PG_PASSWORD);
    assert!(!ok && text.contains("rest"), "{text}");
}

/// The schema registry's password and token (from the environment, or in the URL) appear in
/// no output of `meshd validate --registry`, whether the registry refuses or cannot be reached.
#[test]
fn schema_registry_credentials_never_leak() {
    use meshd_config::InputFormat;
    use support::product::Product;
    let dir = support::test_dir();
    let Some(python) = support::python() else {
        return;
    };
    let descriptor = Product::reference()
        .input_topic(TOPIC)
        .input_format(InputFormat::AvroConfluent)
        .write(dir.path());
    let registry = support::registry::SchemaRegistry::start(&python, dir.path(), &[]);
    const REGISTRY_PASSWORD: &str = "sr-SECRET-1122";
    const REGISTRY_TOKEN: &str = "sr-token-SECRET-3344";
    let closed = format!(
        "http://meshd:{REGISTRY_PASSWORD}@127.0.0.1:{}",
        support::free_port()
    );
    let with_credentials = registry
        .url()
        .replace("http://", &format!("http://meshd:{REGISTRY_PASSWORD}@"));
    for (url, token, expected) in [
        (closed.as_str(), false, "no answer"),
        (
            with_credentials.as_str(),
            true,
            "which the registry does not have",
        ),
    ] {
        let mut env = vec![
            ("MESHD_SCHEMA_REGISTRY_USERNAME", "meshd".to_string()),
            (
                "MESHD_SCHEMA_REGISTRY_PASSWORD",
                REGISTRY_PASSWORD.to_string(),
            ),
            ("MESHD_LOG", "debug".to_string()),
        ];
        if token {
            env.push(("MESHD_SCHEMA_REGISTRY_TOKEN", REGISTRY_TOKEN.to_string()));
        }
        let (code, text) = support::meshd_output_on_host(
            &[
                "validate",
                "--registry",
                url,
                &descriptor.display().to_string(),
            ],
            None,
            &env,
        );
        assert!(
            matches!(code, Some(1 | 2)) && text.contains(expected),
            "{text}"
        );
        for secret in [REGISTRY_PASSWORD, REGISTRY_TOKEN, "SECRET"] {
            assert!(
                !text.contains(secret),
                "a secret in meshd's output:\n{text}"
            );
        }
    }
}
