//! meshd's own metadata commit on every catalog it supports: the SQL catalog on SQLite and on
//! PostgreSQL (compare-and-swap of `metadata_location`) and the REST catalog on rustberg
//! (`assert-ref-snapshot-id`). A change built from a table that another writer has appended to
//! since is refused as a conflict; rebased, it lands on top of the append, which is kept; then a
//! compaction commits a `replace` snapshot the same way. Every append's rows read back with
//! pyiceberg, and the change is in the metadata pyiceberg reads.
#![allow(clippy::unwrap_used)]
// The closures return the sinks crate's error, as its own code does (see sinks/src/lib.rs).
#![allow(clippy::result_large_err)]

mod support;

use std::collections::HashMap;
use std::path::Path;

use iceberg::{ErrorKind, TableRequirement, TableUpdate};
use meshd_sinks::iceberg::commit::{MetadataChange, MetadataCommitter, commit_with_rebase};
use serde_json::Value;
use support::product::Product;
use support::services::{Moto, Postgres, Rustberg, rest_yaml};

const ROWS: i64 = 50;

/// A change a `delete` snapshot would make in the same way: it must sit on the snapshot it was
/// built from.
fn change_on(table: &iceberg::table::Table, value: &str) -> MetadataChange {
    MetadataChange {
        requirements: vec![TableRequirement::RefSnapshotIdMatch {
            r#ref: "main".into(),
            snapshot_id: table.metadata().current_snapshot_id(),
        }],
        updates: vec![TableUpdate::SetProperties {
            updates: HashMap::from([("meshd.test.commit".to_string(), value.to_string())]),
        }],
    }
}

async fn conflicts_are_refused_then_rebased(dir: &Path, config: &Path, s3: Option<&Moto>) {
    let Some(python) = support::python() else {
        return;
    };
    let support::lake::Lake {
        platform,
        product,
        spec,
        catalog,
        mut table,
        ..
    } = support::lake::Lake::on(
        dir,
        config,
        Product::reference().location("s3://lake/warehouse/payments/payment_transactions"),
    )
    .await;
    let committer = MetadataCommitter::open(&platform).await.unwrap();
    support::lake::append_payments(&mut table, &product, 0..ROWS).await;
    let stale = table.table().clone();

    // Another writer appends after the change was built.
    support::lake::append_payments(&mut table, &product, ROWS..2 * ROWS).await;
    let err = committer
        .commit(&stale, change_on(&stale, "stale"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CatalogCommitConflicts, "{err}");

    let ident = stale.identifier().clone();
    let mut builds = 0;
    let committed = commit_with_rebase(catalog.as_ref(), &committer, &ident, "test", |now| {
        builds += 1;
        Ok(Some(change_on(now, "rebased")))
    })
    .await
    .unwrap();
    assert_eq!(builds, 1);
    assert_eq!(
        committed.metadata().properties()["meshd.test.commit"],
        "rebased"
    );
    assert_eq!(
        committed.metadata().current_snapshot_id(),
        table.table().metadata().current_snapshot_id(),
        "the append stays the current snapshot"
    );

    // A stale change whose requirement the catalog checks: rebased once, then applied.
    let before_third = catalog.load_table(&ident).await.unwrap();
    support::lake::append_payments(&mut table, &product, 2 * ROWS..3 * ROWS).await;
    let mut first = Some(before_third);
    let mut builds = 0;
    let committed = commit_with_rebase(catalog.as_ref(), &committer, &ident, "test", |now| {
        builds += 1;
        Ok(Some(change_on(
            first.take().as_ref().unwrap_or(now),
            "third",
        )))
    })
    .await
    .unwrap();
    assert_eq!(builds, 2, "one conflict, one rebase");
    assert_eq!(
        committed.metadata().properties()["meshd.test.commit"],
        "third"
    );

    // A `replace` snapshot through the same commit path: the three appends' files compacted.
    let compaction = meshd_sinks::iceberg::compact::compact(
        catalog.as_ref(),
        &committer,
        &ident,
        (128 << 20, meshd_config::Codec::default()),
        2,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        (compaction.files_in, compaction.files_out),
        (3, 1),
        "{compaction:?}"
    );

    let out = support::run_python(
        &python,
        "read_table.py",
        &[
            &support::catalog_spec(config, s3),
            &format!("{}.{}", spec.namespace, spec.name),
        ],
    );
    let read: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(read["properties"]["meshd.test.commit"], "third", "{out}");
    let rows = read["rows"].as_array().unwrap();
    let ids: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["transaction_id"].as_str().unwrap())
        .collect();
    assert_eq!(rows.len(), 3 * ROWS as usize, "no append lost");
    assert_eq!(ids.len(), rows.len(), "no row twice");
    assert_eq!(
        table.recover_offsets().await.unwrap(),
        support::lake::offsets(3 * ROWS),
        "the resume point is the newest append's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = support::test_dir();
    let (config, _) = support::meshd_config(dir.path(), "meshd", "127.0.0.1:9", &[], "");
    conflicts_are_refused_then_rebased(dir.path(), &config, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_on_s3() {
    let dir = support::test_dir();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    moto.create_bucket("lake");
    pg.create_database("commits");
    let config = support::services::shared_platform_yaml(
        &dir.path().join("meshd.yaml"),
        &pg,
        "commits",
        &moto,
        "s3://lake/warehouse",
    );
    conflicts_are_refused_then_rebased(dir.path(), &config, Some(&moto)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_on_s3() {
    let dir = support::test_dir();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    moto.create_bucket("lake");
    let Some(rest) = Rustberg::start(dir.path(), &moto) else {
        return;
    };
    let (config, _) = rest_yaml(dir.path(), "meshd", "127.0.0.1:9", &rest, &moto);
    conflicts_are_refused_then_rebased(dir.path(), &config, Some(&moto)).await;
}
