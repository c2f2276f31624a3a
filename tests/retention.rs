//! Retention kept: a day-partitioned table holding events from the last 10 days, with
//! `retention: 3days`. `meshd maintain --dry-run` says what it would remove and removes nothing;
//! `meshd maintain` drops the partitions wholly before the cut, rewrites the one the cut falls
//! in, and leaves every younger row exactly once (pyiceberg and DuckDB), the resume point
//! intact, and nothing to do on a second run.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use meshd_sinks::iceberg::OutputTable;
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
    let descriptor = Product::reference().retention("3days").write(dir.path());
    let (config, _) = support::meshd_config(dir.path(), "meshd", "127.0.0.1:9", &[], "");
    let platform = meshd_config::PlatformConfig::load(Some(&config), std::iter::empty()).unwrap();
    let product = meshd_config::DataProduct::load(&descriptor).unwrap();
    let spec = meshd_runtime::provision::table_spec(&platform, &product, 0).unwrap();
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
    let mut table = OutputTable::open(Arc::clone(&catalog), &spec, product.consumer_group())
        .await
        .unwrap();

    let now = chrono::Utc::now().timestamp_millis();
    let cut = now - 3 * DAY_MS;
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
    let young = (0..EVENTS).filter(|&n| time(n) >= cut).count();
    assert!(
        young > 250 && young < 350,
        "{young} of {EVENTS} within 3 days"
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

    let maintain = |dry: bool| {
        let mut args = vec!["maintain", "--config", config.to_str().unwrap()];
        if dry {
            args.push("--dry-run");
        }
        args.push(descriptor.to_str().unwrap());
        let (code, out) = support::meshd_output(&args);
        assert_eq!(code, Some(0), "{out}");
        out
    };
    let dry = maintain(true);
    assert!(
        dry.contains("retention 3days by event_time: would remove") && dry.contains("1 rewritten"),
        "{dry}"
    );
    assert_eq!(
        count("transaction_id")["rows"],
        EVENTS,
        "a dry run removes nothing"
    );

    let done = maintain(false);
    assert!(
        done.contains(&format!(
            "retention 3days by event_time: removed {} row(s)",
            EVENTS as usize - young
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
        support::lake::offsets(EVENTS),
        "the resume point is carried into the retention snapshot"
    );
    let again = maintain(false);
    assert!(
        again.contains("removed 0 row(s): 0 file(s) dropped, 0 rewritten"),
        "{again}"
    );
}
