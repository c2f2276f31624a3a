//! Catalog and storage faults while a stream flows: the catalog locked (every read and commit
//! fails), the warehouse unwritable (data files cannot be created), and a worker killed while
//! its closed data files wait for a commit that cannot land. The worker retries with backoff,
//! reports the failure on `/readyz`, recovers without duplicates, and never commits a snapshot
//! that references a missing file (pyiceberg reads every file); `meshd orphans` lists the files
//! the killed worker left and deletes them without touching the table.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::{CatalogLock, Meshd, Tansu, poll, python};

const TOPIC: &str = "storage-faults";
const BAD_EVERY: u64 = 103;
/// The consumer session timeout (`session.timeout.ms` below).
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// Waits until `/readyz` reports the product not ready with a reason containing `why`.
fn until_not_ready(meshd: &Meshd, why: &str) {
    poll(
        &format!("/readyz to report {why}"),
        Duration::from_secs(60),
        || {
            let (status, ready) = meshd.readyz()?;
            let reason = ready["products"]["payment-transactions"]["reason"].as_str()?;
            (status == 503 && reason.contains(why)).then_some(())
        },
    );
}

/// Waits until the worker commits again and `/readyz` is 200.
fn until_recovered(meshd: &Meshd, after: &str) {
    let before = meshd.scrape().map_or(0.0, |s| {
        s.sum_where("meshd_commits_total", &[("outcome", "committed")])
    });
    poll(
        &format!("commits to resume after {after}"),
        Duration::from_secs(60),
        || {
            let s = meshd.scrape()?;
            let now = s.sum_where("meshd_commits_total", &[("outcome", "committed")]);
            (now > before && meshd.readyz()?.0 == 200).then_some(())
        },
    );
}

fn orphans(config: &Path, descriptor: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "orphans".to_string(),
        "--config".into(),
        config.display().to_string(),
        descriptor.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let (code, out) = support::meshd_output(&args);
    assert_eq!(code, Some(0), "{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_warehouse_faults_lose_nothing_and_leave_no_dangling_files() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 3).await;
    let descriptor = support::example_product(dir.path(), TOPIC, &[support::COMMIT_EVERY_SECOND]);
    let (config, listen) = support::meshd_config(
        dir.path(),
        "meshd",
        &tansu.bootstrap,
        &[&format!(
            "session.timeout.ms: \"{}\"",
            SESSION_TIMEOUT.as_millis()
        )],
        "",
    );
    let start = |run: &str| {
        Meshd::start(
            &config,
            &[&descriptor],
            &listen,
            dir.path().join(format!("meshd-{run}.log")),
        )
    };
    let catalog_db = dir.path().join("catalog.db");
    let stream = support::Stream::start(&tansu.bootstrap, TOPIC, 1000, BAD_EVERY);
    let mut meshd = start("1");
    until_recovered(&meshd, "start");

    // 1. The catalog is down for a while: commits fail and are retried with the same files.
    let lock = CatalogLock::take(&catalog_db);
    until_not_ready(&meshd, "commits are failing");
    drop(lock);
    until_recovered(&meshd, "the catalog came back");

    // 2. The warehouse cannot be written: the data folder is replaced by a plain file.
    let data = dir
        .path()
        .join("warehouse/data-mesh/payments/transactions/v1/data");
    let moved = data.with_extension("moved");
    std::fs::rename(&data, &moved).unwrap();
    std::fs::write(&data, b"not a folder").unwrap();
    until_not_ready(&meshd, "commits are failing");
    std::fs::remove_file(&data).unwrap();
    std::fs::rename(&moved, &data).unwrap();
    until_recovered(&meshd, "the warehouse became writable");

    // 3. Files written, their commit failing, and the worker killed: they are orphans.
    let lock = CatalogLock::take(&catalog_db);
    until_not_ready(&meshd, "commits are failing");
    meshd.kill();
    drop(lock);
    support::wait_out_session(SESSION_TIMEOUT).await;
    let meshd = start("2");
    let records = {
        until_recovered(&meshd, "a restart");
        stream.stop().await
    };
    let (rows, letters) = support::assert_exactly_once(
        &config,
        None,
        &python,
        &tansu.bootstrap,
        &format!("{TOPIC}.dlq"),
        (records, BAD_EVERY),
        || meshd.log_text(),
    )
    .await;
    let log = meshd.log_text();
    drop(meshd);
    assert!(
        log.lines().all(|l| !l.contains("panicked")),
        "meshd panicked:\n{log}"
    );

    let listed = orphans(&config, &descriptor, &[]);
    let count: usize = listed
        .lines()
        .next()
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        count >= 1,
        "the killed worker's closed files are not listed:\n{listed}"
    );
    let deleted = orphans(&config, &descriptor, &["--delete", "--older-than", "1ms"]);
    assert!(
        deleted.contains(&format!("deleted {count} file(s)")),
        "{deleted}"
    );
    assert!(
        orphans(&config, &descriptor, &[]).contains(": 0 orphan data file(s)"),
        "orphans left after --delete"
    );
    // Deleting orphans removed nothing the table references: every row still reads.
    support::assert_exactly_once(
        &config,
        None,
        &python,
        &tansu.bootstrap,
        &format!("{TOPIC}.dlq"),
        (records, BAD_EVERY),
        String::new,
    )
    .await;
    support::assert_offsets_continue(dir.path());
    eprintln!(
        "checked: {records} records through a catalog outage, an unwritable warehouse and a kill with closed files pending: {rows} rows each exactly once, {letters} dead letters, {count} orphan file(s) listed and deleted"
    );
}
