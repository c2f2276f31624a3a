//! The Iceberg REST catalog: meshd on rustberg (a REST catalog server built on iceberg-rust,
//! its state in a file) with tables on moto's S3 server, both on loopback. A port location
//! outside the catalog's warehouse is refused with a message that says so; inside it, a worker
//! commits exactly once while the catalog is stopped and restarted (`/readyz` 503 and failed
//! commits meanwhile, resuming by itself), and pyiceberg's RestCatalog and DuckDB read every
//! good key once.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::services::{Moto, S3_ACCESS_KEY, S3_SECRET_KEY};
use support::{ChildGuard, Meshd, Tansu, free_port, poll, python, until_consuming};

const TOPIC: &str = "rest-catalog";
const BAD_EVERY: u64 = 83;
const WAREHOUSE: &str = "s3://lake/warehouse";

/// rustberg on a free port with its catalog in `dir/rustberg/catalog.redb`, so that a restart
/// keeps every table.
struct Rustberg {
    binary: PathBuf,
    uri: String,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<ChildGuard>,
}

impl Rustberg {
    fn start(dir: &Path, moto: &Moto) -> Option<Self> {
        let Some(binary) = support::on_path("rustberg") else {
            support::unavailable(
                "the rustberg REST catalog is not on PATH (cargo install rustberg)",
            );
            return None;
        };
        let state = dir.join("rustberg");
        std::fs::create_dir_all(&state).unwrap();
        let config = dir.join("rustberg.toml");
        std::fs::write(
            &config,
            format!(
                "[storage]\ncatalog_url = \"file://{}\"\nwarehouse_location = \"{WAREHOUSE}\"\n\n[storage.properties]\n\"s3.endpoint\" = \"{}\"\n\"s3.access-key-id\" = \"{S3_ACCESS_KEY}\"\n\"s3.secret-access-key\" = \"{S3_SECRET_KEY}\"\n\"s3.region\" = \"us-east-1\"\n\"s3.path-style-access\" = \"true\"\n\n[rate_limit]\nenabled = false\n\n[audit]\nsink = \"none\"\n",
                state.display(),
                moto.endpoint
            ),
        )
        .unwrap();
        let port = free_port();
        let mut rustberg = Self {
            binary,
            uri: format!("http://127.0.0.1:{port}"),
            port,
            config,
            log: dir.join("rustberg.log"),
            child: None,
        };
        rustberg.resume();
        Some(rustberg)
    }

    fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args([
                "--dev",
                "--insecure-http",
                "--no-auth",
                "--host",
                "127.0.0.1",
            ])
            .args(["--port", &self.port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(ChildGuard(child));
        let ready = format!("{}/ready", self.uri);
        poll("rustberg to be ready", Duration::from_secs(60), || {
            support::http_get(&ready).map(|_| ())
        });
    }

    /// Stops the server; the port refuses connections until [`Rustberg::resume`].
    fn stop(&mut self) {
        self.child = None;
    }
}

/// meshd.yaml for the REST catalog with storage keys (rustberg vends no credentials).
fn rest_yaml(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    rest: &Rustberg,
    moto: &Moto,
) -> (PathBuf, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "kafka:\n  bootstrap.servers: {bootstrap}\ncatalog:\n  type: rest\n  uri: {}\nstorage:\n  endpoint: {}\n  access_key_id: {S3_ACCESS_KEY}\n  secret_access_key: {S3_SECRET_KEY}\n  region: us-east-1\nmetrics:\n  listen: {listen}\n",
            rest.uri, moto.endpoint
        ),
    )
    .unwrap();
    (path, listen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_catalog_restart_loses_nothing_and_other_engines_read_the_table() {
    let dir = support::test_dir();
    let root = dir.path();
    let Some(tansu) = Tansu::start(root) else {
        return;
    };
    let Some(moto) = Moto::start(root) else {
        return;
    };
    moto.create_bucket("lake");
    moto.create_bucket("data-mesh");
    let Some(mut rest) = Rustberg::start(root, &moto) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 3).await;
    let (config, listen) = rest_yaml(root, "meshd", &tansu.bootstrap, &rest, &moto);

    // Outside the warehouse: refused, and the message says where tables must go.
    let outside = support::example_product(&root.join("outside"), TOPIC, &[]);
    let (code, text) = support::meshd_output(&[
        "provision",
        "--config",
        &config.display().to_string(),
        &outside.display().to_string(),
    ]);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("outside") && text.contains("warehouse"),
        "the refusal names the rule:\n{text}"
    );

    let descriptor = support::product::Product::reference()
        .input_topic(TOPIC)
        .commit_interval(Duration::from_secs(1))
        .location("s3://lake/warehouse/payments/payment_transactions")
        .write(&root.join("product"));
    let meshd = Meshd::start(&config, &[&descriptor], &listen, root.join("meshd.log"));
    let stream = support::Stream::start(&tansu.bootstrap, TOPIC, 1000, BAD_EVERY);
    until_consuming(&meshd, "the worker");
    let committed = |m: &Meshd| {
        m.scrape()
            .map(|s| s.sum("meshd_records_committed_total"))
            .unwrap_or(0.0)
    };
    let failed = |m: &Meshd| {
        m.scrape()
            .map(|s| s.sum_where("meshd_commits_total", &[("outcome", "failed")]))
            .unwrap_or(0.0)
    };
    poll("a first commit", Duration::from_secs(60), || {
        (committed(&meshd) > 0.0).then_some(())
    });

    rest.stop();
    let failed_before = failed(&meshd);
    poll(
        "/readyz 503 while the catalog is down",
        Duration::from_secs(60),
        || (meshd.readyz()?.0 == 503).then_some(()),
    );
    poll(
        "a failed commit while the catalog is down",
        Duration::from_secs(60),
        || (failed(&meshd) > failed_before).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(10));
    rest.resume();
    let before = committed(&meshd);
    poll(
        "commits to resume after the restart",
        Duration::from_secs(120),
        || {
            let ready = meshd.readyz().is_some_and(|(s, _)| s == 200);
            (ready && committed(&meshd) > before).then_some(())
        },
    );

    let records = stream.stop().await;
    let (rows, letters) = support::assert_exactly_once(
        &config,
        Some(&moto),
        &python,
        &tansu.bootstrap,
        &format!("{TOPIC}.dlq"),
        (records, BAD_EVERY),
        || meshd.log_text(),
    )
    .await;
    eprintln!(
        "checked: {records} records through a REST catalog restart: {rows} rows each exactly once (pyiceberg RestCatalog and DuckDB), {letters} dead letters, {} failed commits",
        failed(&meshd)
    );
}
