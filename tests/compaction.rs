//! Compaction: 100 commits of one row in each of 5 day partitions leave 500 small files;
//! `meshd maintain --dry-run` says what it would compact and changes nothing, `meshd maintain`
//! replaces them with one file per partition in a `replace` snapshot, and every row reads back
//! the same (pyiceberg, value by value; DuckDB counts), with the resume point intact.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::product::Product;

const COMMITS: i64 = 100;
const DAYS: i64 = 5;
const DAY_MS: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_become_one_per_partition_with_the_same_rows() {
    let dir = support::test_dir();
    let Some(python) = support::python() else {
        return;
    };
    let product_fixture = Product::reference();
    let support::lake::Lake {
        config,
        descriptor,
        platform,
        product,
        spec,
        catalog,
        mut table,
    } = support::lake::Lake::embedded(dir.path(), product_fixture).await;
    let day0 = 1_764_028_800_000; // 2025-11-25T00:00:00Z
    for commit in 0..COMMITS {
        let first = commit * DAYS;
        support::lake::append_with(&mut table, &product, first..first + DAYS, |n| {
            let (_, payload) = meshd_runtime::demo::payment_event(n as u64, 0);
            let mut e: Value = serde_json::from_slice(&payload).unwrap();
            e["event_time"] = json!(day0 + (n % DAYS) * DAY_MS + n * 1000);
            serde_json::to_vec(&e).unwrap()
        })
        .await;
    }
    let files = |table: &iceberg::table::Table| {
        table
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .additional_properties["total-data-files"]
            .clone()
    };
    assert_eq!(files(table.table()), (COMMITS * DAYS).to_string());
    let table_name = format!("{}.{}", spec.namespace, spec.name);
    let spec_json = support::catalog_spec(&config, None);
    let rows = || -> Vec<Value> {
        let out = support::run_python(&python, "read_table.py", &[&spec_json, &table_name]);
        let read: Value = serde_json::from_str(&out).unwrap();
        let mut rows = read["rows"].as_array().unwrap().clone();
        rows.sort_by_key(|r| r["transaction_id"].as_str().unwrap().to_string());
        rows
    };
    let before = rows();
    assert_eq!(before.len(), (COMMITS * DAYS) as usize);

    let maintain = |dry: bool| support::lake::maintain(&config, &descriptor, dry);
    let dry = maintain(true);
    assert!(
        dry.contains("would compact 500 small file(s) in 5 partition(s)"),
        "{dry}"
    );
    let done = maintain(false);
    assert!(
        done.contains("compacted 500 small file(s) in 5 partition(s) into 5 file(s)"),
        "{done}"
    );
    let ident = iceberg::TableIdent::from_strs([&spec.namespace, &spec.name]).unwrap();
    let compacted = catalog.load_table(&ident).await.unwrap();
    assert_eq!(files(&compacted), DAYS.to_string());
    assert_eq!(
        compacted
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .operation,
        iceberg::spec::Operation::Replace
    );
    assert_eq!(rows(), before, "the same rows, value by value");
    let counted: Value = serde_json::from_str(&support::run_python(
        &python,
        "table_keys.py",
        &[&spec_json, &table_name, "transaction_id"],
    ))
    .unwrap();
    assert_eq!(counted["duckdb"]["rows"], COMMITS * DAYS, "{counted}");
    assert_eq!(counted["duckdb"]["distinct"], COMMITS * DAYS, "{counted}");
    assert_eq!(
        table.recover_offsets().await.unwrap(),
        support::lake::offsets(COMMITS * DAYS)
    );
    let again = maintain(false);
    assert!(again.contains("compacted 0 small file(s)"), "{again}");
    let compacted = catalog.load_table(&ident).await.unwrap();
    let manifests = meshd_sinks::iceberg::rewrite::data_manifests(&compacted)
        .await
        .unwrap();
    assert!(
        manifests <= 2,
        "the rewritten manifests merged: {manifests}"
    );

    // Merging alone: 101 more one-file commits make 101 more manifests; with nothing to compact,
    // compaction merges them in a `replace` snapshot of their own, every row kept.
    let more = 101;
    let first = COMMITS * DAYS;
    for n in first..first + more {
        support::lake::append_with(&mut table, &product, n..n + 1, |n| {
            meshd_runtime::demo::payment_event(n as u64, 0).1
        })
        .await;
    }
    let committer = meshd_sinks::iceberg::commit::MetadataCommitter::open(&platform)
        .await
        .unwrap();
    let merged = meshd_sinks::iceberg::compact::compact(
        catalog.as_ref(),
        &committer,
        &ident,
        (128 << 20, meshd_config::Codec::default()),
        usize::MAX,
        false,
    )
    .await
    .unwrap();
    assert_eq!(merged.files_in, 0, "{merged:?}");
    assert!(merged.manifests_merged > 100, "{merged:?}");
    let after = catalog.load_table(&ident).await.unwrap();
    assert_eq!(
        meshd_sinks::iceberg::rewrite::data_manifests(&after)
            .await
            .unwrap(),
        1
    );
    let counted: Value = serde_json::from_str(&support::run_python(
        &python,
        "table_keys.py",
        &[&spec_json, &table_name, "transaction_id"],
    ))
    .unwrap();
    assert_eq!(counted["rows"], first + more, "{counted}");
    assert_eq!(counted["distinct"], first + more, "{counted}");
    assert_eq!(counted["duckdb"]["rows"], first + more, "{counted}");
}
