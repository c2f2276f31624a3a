//! Faults on the shared path: a worker on Tansu, PostgreSQL and moto's S3 server, while a
//! stream flows, loses the S3 endpoint for 20 s (its port refuses connections: a
//! fault-injecting TCP proxy sits between meshd and moto, so the store's data survives), then
//! gets HTTP 403 AccessDenied for 20 s, then loses PostgreSQL (the postmaster killed, restarted
//! 10 s later with crash recovery). Each time `/readyz` turns 503 with the reason,
//! `meshd_commits_total{outcome="failed"}` rises, and ingestion resumes by itself; at the end
//! every good key is in the table exactly once (pyiceberg and DuckDB) and every malformed one is
//! a dead letter.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::services::{Fault, FaultProxy, Moto, PG_PASSWORD, Postgres};
use support::{Meshd, Tansu, free_port, poll, python, until_consuming};

const TOPIC: &str = "shared-faults";
const BAD_EVERY: u64 = 89;
const OUTAGE: Duration = Duration::from_secs(20);

fn failed_commits(meshd: &Meshd) -> f64 {
    meshd
        .scrape()
        .map(|s| s.sum_where("meshd_commits_total", &[("outcome", "failed")]))
        .unwrap_or(0.0)
}

fn committed(meshd: &Meshd) -> f64 {
    meshd
        .scrape()
        .map(|s| s.sum("meshd_records_committed_total"))
        .unwrap_or(0.0)
}

/// Holds a fault for `OUTAGE` and checks what it must cause: `/readyz` 503 naming the sink
/// problem and a failed commit; then heals it and waits for commits to land again.
fn outage(meshd: &Meshd, what: &str, heal: impl FnOnce()) {
    let started = Instant::now();
    let failed_before = failed_commits(meshd);
    let reason = poll(
        &format!("/readyz to report {what}"),
        OUTAGE + Duration::from_secs(40),
        || {
            let (status, body) = meshd.readyz()?;
            (status == 503).then_some(body)
        },
    );
    poll(
        &format!("a failed commit during {what}"),
        OUTAGE + Duration::from_secs(40),
        || (failed_commits(meshd) > failed_before).then_some(()),
    );
    let left = OUTAGE.saturating_sub(started.elapsed());
    std::thread::sleep(left);
    heal();
    let committed_before = committed(meshd);
    poll(
        &format!("ingestion to resume after {what}"),
        Duration::from_secs(120),
        || {
            let ready = meshd.readyz().is_some_and(|(s, _)| s == 200);
            (ready && committed(meshd) > committed_before).then_some(())
        },
    );
    eprintln!("{what}: /readyz said {reason}; recovered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_s3_forbidden_and_postgres_restart_lose_nothing() {
    let dir = support::test_dir();
    let root = dir.path();
    let Some(tansu) = Tansu::start(root) else {
        return;
    };
    let Some(moto) = Moto::start(root) else {
        return;
    };
    let Some(mut pg) = Postgres::start(root) else {
        return;
    };
    let Some(python) = python() else { return };
    pg.create_database("faults");
    moto.create_bucket("data-mesh");
    let proxy = FaultProxy::start(&moto.endpoint);
    tansu.create_topic(TOPIC, 3).await;
    let descriptor = support::example_product(
        &root.join("product"),
        TOPIC,
        &[support::COMMIT_EVERY_SECOND],
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let config = root.join("meshd.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap.servers: {}\ncatalog:\n  uri: {}\nwarehouse: s3://data-mesh/warehouse\nmetrics:\n  listen: {listen}\n",
            tansu.bootstrap,
            pg.uri("faults")
        ),
    )
    .unwrap();
    let mut env = moto.aws_env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", proxy.endpoint.clone()));
    env.push(("MESHD_CATALOG_PASSWORD", PG_PASSWORD.to_string()));
    let workdir = root.join("host");
    std::fs::create_dir_all(&workdir).unwrap();
    let meshd = Meshd::start_on_host(
        &config,
        &[&descriptor],
        &listen,
        root.join("meshd.log"),
        Some(&workdir),
        &env,
    );
    let stream = support::Stream::start(&tansu.bootstrap, TOPIC, 1000, BAD_EVERY);
    until_consuming(&meshd, "the worker");
    poll("a first commit", Duration::from_secs(60), || {
        (committed(&meshd) > 0.0).then_some(())
    });

    proxy.set(Fault::Down);
    outage(&meshd, "the S3 endpoint down", || proxy.set(Fault::None));
    proxy.set(Fault::Forbidden);
    outage(&meshd, "S3 answering 403", || proxy.set(Fault::None));
    pg.stop();
    outage(&meshd, "PostgreSQL down", || pg.resume());

    let records = stream.stop().await;
    let reader = support::services::shared_platform_yaml(
        &root.join("reader.yaml"),
        &pg,
        "faults",
        &moto,
        "s3://data-mesh/warehouse",
    );
    let (rows, letters) = support::assert_exactly_once(
        &reader,
        Some(&moto),
        &python,
        &tansu.bootstrap,
        &format!("{TOPIC}.dlq"),
        (records, BAD_EVERY),
        || meshd.log_text(),
    )
    .await;
    support::assert_offsets_continue(root);
    // Catching up after each outage streams data files to S3 in multipart uploads at full
    // speed: the worker's peak memory stays within the bound the backpressure test sets.
    let status = std::fs::read_to_string(format!("/proc/{}/status", meshd.child.id())).unwrap();
    let peak_mib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .map(|kib: f64| kib / 1024.0)
        .unwrap();
    assert!(
        peak_mib <= 256.0,
        "peak RSS {peak_mib:.0} MiB with S3 as the store"
    );
    let log = meshd.log_text();
    assert!(!log.contains("panicked"), "meshd panicked:\n{log}");
    eprintln!(
        "checked: {records} records through S3 down, S3 403 and a PostgreSQL restart: {rows} rows each exactly once, {letters} dead letters, {} failed commits, peak RSS {peak_mib:.0} MiB",
        failed_commits(&meshd)
    );
}
