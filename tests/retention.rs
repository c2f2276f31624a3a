//! Retention kept: a day-partitioned table holding events from the last 10 days, with
//! a retention of about 3 days, in seconds, chosen so the cut falls at noon (UTC): the day it
//! falls in holds rows on both sides, and one file surely straddles it. `meshd maintain --dry-run` says what it would remove and removes nothing;
//! `meshd maintain` drops the partitions wholly before the cut, rewrites the one the cut falls
//! in, and leaves every younger row exactly once (pyiceberg and DuckDB), the resume point
//! intact, and nothing to do on a second run.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use futures::TryStreamExt;

use serde_json::{Value, json};
use support::product::Product;

const EVENTS: i64 = 1_000;
const COMMITS: i64 = 10;
const DAY_MS: i64 = 86_400_000;
/// Events are this far apart, so 1,000 of them cover 10 days.
const STEP_MS: i64 = 10 * DAY_MS / EVENTS;
/// No event is this close to the cut: the cut moves with the clock while the test runs.
const MARGIN_MS: i64 = 10 * 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_older_than_the_retention_are_removed_and_younger_ones_kept_exactly_once() {
    let dir = support::test_dir();
    let Some(python) = support::python() else {
        return;
    };
    // The cut falls at noon (UTC) three days ago, whatever the time of day: a retention of
    // 3 days and the hours since then, in seconds. The day partition it falls in then always has
    // rows on both sides of it.
    let now = chrono::Utc::now().timestamp_millis();
    let noon = (now - 3 * DAY_MS).div_euclid(DAY_MS) * DAY_MS + DAY_MS / 2;
    let period_s = (now - noon) / 1000;
    let cut = now - period_s * 1000;
    // Snapshots older than 1 s expire (keeping the newest): the removed files must leave storage.
    let product_fixture = Product::reference()
        .retention(&format!("{period_s}s"))
        .snapshot_expiry(Duration::from_secs(1), 1, Duration::from_secs(3600));
    let support::lake::Lake {
        config,
        descriptor,
        product,
        spec,
        catalog,
        mut table,
        ..
    } = support::lake::Lake::embedded(dir.path(), product_fixture).await;

    // Event n happened n steps ago, skipping the margin around the cut.
    let time = |n: i64| {
        let t = now - 60_000 - n * STEP_MS;
        if (t - cut).abs() < MARGIN_MS {
            t - 2 * MARGIN_MS
        } else {
            t
        }
    };
    let event = |n: i64| {
        let (_, payload) = meshd_runtime::demo::payment_event(n as u64, 0);
        let mut e: Value = serde_json::from_slice(&payload).unwrap();
        e["event_time"] = json!(time(n));
        serde_json::to_vec(&e).unwrap()
    };
    let per_commit = EVENTS / COMMITS;
    for commit in 0..COMMITS {
        // Each commit spans every day: many small files per partition, as a stream makes.
        let first = commit * per_commit;
        support::lake::append_with(&mut table, &product, first..first + per_commit, |n| {
            event((n % COMMITS) * per_commit + n / COMMITS)
        })
        .await;
    }
    // One commit whose file surely straddles the cut: an hour before it and an hour after.
    let straddle = |n: i64| {
        let (_, payload) = meshd_runtime::demo::payment_event(n as u64, 0);
        let mut e: Value = serde_json::from_slice(&payload).unwrap();
        e["event_time"] = json!(if n == EVENTS {
            cut - 3_600_000
        } else {
            cut + 3_600_000
        });
        serde_json::to_vec(&e).unwrap()
    };
    support::lake::append_with(&mut table, &product, EVENTS..EVENTS + 2, straddle).await;
    let young = (0..EVENTS).filter(|&n| time(n) >= cut).count() + 1;
    assert!(
        young > 250 && young < 400,
        "{young} of {EVENTS} within the retention"
    );
    let table_name = format!("{}.{}", spec.namespace, spec.name);
    let count = |column: &str| -> Value {
        let out = support::run_python(
            &python,
            "table_keys.py",
            &[&support::catalog_spec(&config, None), &table_name, column],
        );
        serde_json::from_str(&out).unwrap()
    };

    let maintain = |dry: bool| support::lake::maintain(&config, &descriptor, dry);
    let total = EVENTS + 2;
    let label = format!("retention {period_s}s by event_time:");
    // "… N file(s) dropped, M rewritten": how many files the cut falls in.
    let rewritten = |out: &str| -> usize {
        out.lines()
            .find(|l| l.contains(&label))
            .and_then(|l| l.rsplit(", ").next())
            .and_then(|l| l.trim_end_matches(" rewritten").parse().ok())
            .unwrap_or_else(|| panic!("no retention line in {out}"))
    };
    let dry = maintain(true);
    assert!(dry.contains(&format!("{label} would remove")), "{dry}");
    assert!(
        rewritten(&dry) >= 1,
        "the straddling file is rewritten: {dry}"
    );
    assert_eq!(
        count("transaction_id")["rows"],
        total,
        "a dry run removes nothing"
    );

    let newest = table
        .table()
        .metadata()
        .current_snapshot()
        .unwrap()
        .timestamp_ms();
    support::poll(
        "the appends to be older than 1 s",
        Duration::from_secs(10),
        || (chrono::Utc::now().timestamp_millis() - newest > 1_100).then_some(()),
    );
    let done = maintain(false);
    assert!(
        done.contains(&format!(
            "{label} removed {} row(s)",
            total as usize - young
        )),
        "{done}"
    );
    let ids = count("transaction_id");
    assert_eq!(ids["rows"], young, "pyiceberg: {ids}");
    assert_eq!(ids["distinct"], young, "pyiceberg: {ids}");
    assert_eq!(ids["duckdb"]["rows"], young, "DuckDB: {ids}");
    assert_eq!(ids["duckdb"]["distinct"], young, "DuckDB: {ids}");
    let times = count("event_time");
    assert!(
        times["min"].as_i64().unwrap() >= cut,
        "no row older than the cut: {times}"
    );

    let reloaded = catalog
        .load_table(&iceberg::TableIdent::from_strs([&spec.namespace, &spec.name]).unwrap())
        .await
        .unwrap();
    let snapshot = reloaded.metadata().current_snapshot().unwrap();
    assert_eq!(
        snapshot.summary().operation,
        iceberg::spec::Operation::Overwrite,
        "whole partitions dropped and the cut's day rewritten"
    );
    assert_eq!(
        table.recover_offsets().await.unwrap(),
        support::lake::offsets(total),
        "the resume point is carried into the retention snapshot"
    );
    // Expiry removed every snapshot but the retention one: the files on storage are exactly the
    // live ones; the dropped and rewritten files are gone.
    let live: std::collections::BTreeSet<String> = reloaded
        .scan()
        .build()
        .unwrap()
        .plan_files()
        .await
        .unwrap()
        .map_ok(|task| {
            task.data_file_path
                .trim_start_matches("file://")
                .to_string()
        })
        .try_collect()
        .await
        .unwrap();
    let location = reloaded
        .metadata()
        .location()
        .trim_start_matches("file://")
        .to_string();
    let mut on_disk = std::collections::BTreeSet::new();
    let mut folders = vec![std::path::PathBuf::from(&location).join("data")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                on_disk.insert(path.display().to_string());
            }
        }
    }
    assert_eq!(on_disk, live, "storage holds exactly the live data files");
    let again = maintain(false);
    assert!(
        again.contains("removed 0 row(s): 0 file(s) dropped, 0 rewritten"),
        "{again}"
    );
}
