//! The Iceberg REST catalog: meshd on rustberg (a REST catalog server built on iceberg-rust,
//! its state in a file) with tables on moto's S3 server, both on loopback. A port location
//! outside the catalog's warehouse is refused with a message that says so; inside it, a worker
//! commits exactly once while the catalog is stopped and restarted (`/readyz` 503 and failed
//! commits meanwhile, resuming by itself), and pyiceberg's RestCatalog and DuckDB read every
//! good key once.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::services::{Moto, Rustberg, rest_yaml};
use support::{Meshd, Tansu, poll, python, until_consuming};

const TOPIC: &str = "rest-catalog";
const BAD_EVERY: u64 = 83;

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
