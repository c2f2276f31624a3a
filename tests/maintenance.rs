//! `meshd maintain`: snapshot expiry on a table with 200 commits. `--dry-run` changes nothing;
//! then every snapshot older than `snapshotMaxAge` beyond the newest 10 is expired, the files
//! only they used are gone, every remaining snapshot still reads completely (pyiceberg time
//! travel), an orphaned data file older than a day is deleted and a fresh one kept, `meshd
//! orphans` finds nothing, and the resume point survives in the newest snapshot.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::lake::offsets;
use support::product::Product;

const COMMITS: i64 = 200;
const ROWS_PER_COMMIT: i64 = 5;
const KEEP: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_keeps_every_live_snapshot_readable_and_deletes_only_what_expired_ones_used() {
    let dir = support::test_dir();
    let Some(python) = support::python() else {
        return;
    };
    let product_fixture = Product::reference()
        .snapshot_expiry(Duration::from_secs(1), KEEP, Duration::from_secs(3600))
        // Expiry alone: compaction's `replace` snapshot would be one more to count.
        .compact_above(1_000);
    let support::lake::Lake {
        config,
        descriptor,
        product,
        catalog,
        mut table,
        ..
    } = support::lake::Lake::embedded(dir.path(), product_fixture).await;
    // Expiry alone: a manifest merge (200 commits make 200 manifests) would be one more snapshot.
    let tx = iceberg::transaction::Transaction::new(table.table());
    let tx = iceberg::transaction::ApplyTransactionAction::apply(
        tx.update_table_properties()
            .set("commit.manifest-merge.enabled".into(), "false".into()),
        tx,
    )
    .unwrap();
    tx.commit(catalog.as_ref()).await.unwrap();
    for commit in 0..COMMITS {
        let first = commit * ROWS_PER_COMMIT;
        support::lake::append_payments(&mut table, &product, first..first + ROWS_PER_COMMIT).await;
    }
    let metadata = table.table().metadata().clone();
    assert_eq!(metadata.snapshots().len(), COMMITS as usize);
    let newest = metadata
        .snapshots()
        .map(|s| s.timestamp_ms())
        .max()
        .unwrap();
    support::poll(
        "the snapshots to be older than 1 s",
        Duration::from_secs(10),
        || (chrono::Utc::now().timestamp_millis() - newest > 1_100).then_some(()),
    );
    let mut by_age: Vec<_> = metadata.snapshots().cloned().collect();
    by_age.sort_by_key(|s| s.sequence_number());
    let lists: Vec<String> = by_age
        .iter()
        .map(|s| s.manifest_list().to_string())
        .collect();
    let on_disk =
        |location: &str| std::path::Path::new(location.trim_start_matches("file://")).exists();
    assert!(lists.iter().all(|l| on_disk(l)));

    // Two orphans in the table's data folder: one two days old, one fresh (a commit in progress).
    let data = std::path::Path::new(metadata.location().trim_start_matches("file://")).join("data");
    let (stale, fresh) = (
        data.join("stale-orphan.parquet"),
        data.join("fresh-orphan.parquet"),
    );
    for orphan in [&stale, &fresh] {
        std::fs::write(orphan, b"not referenced").unwrap();
    }
    let aged = std::process::Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(&stale)
        .status()
        .unwrap();
    assert!(aged.success());

    let descriptor = descriptor.to_str().unwrap();
    let config = config.to_str().unwrap();
    let (code, out) =
        support::meshd_output(&["maintain", "--dry-run", "--config", config, descriptor]);
    assert_eq!(code, Some(0), "{out}");
    let expire = COMMITS as usize - KEEP;
    assert!(
        out.contains(&format!(
            "would expire {expire} snapshot(s) older than 1s, {KEEP} kept"
        )),
        "{out}"
    );
    assert!(
        lists.iter().all(|l| on_disk(l)),
        "a dry run deletes nothing"
    );
    assert!(
        out.contains("would delete 1 orphaned data file(s) older than a day"),
        "{out}"
    );
    assert!(stale.exists(), "a dry run deletes nothing");

    let (code, out) = support::meshd_output(&["maintain", "--config", config, descriptor]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("expired {expire} snapshot(s)")),
        "{out}"
    );
    assert!(
        out.contains("deleted 1 orphaned data file(s) older than a day"),
        "{out}"
    );
    assert!(
        !stale.exists() && fresh.exists(),
        "only the old orphan goes"
    );
    std::fs::remove_file(&fresh).unwrap();
    for (i, list) in lists.iter().enumerate() {
        assert_eq!(
            on_disk(list),
            i >= expire,
            "manifest list of snapshot {i}: {list}\n{out}"
        );
    }

    // Every remaining snapshot reads completely: the k-th commit holds k × 5 rows.
    let spec_json = support::catalog_spec(std::path::Path::new(config), None);
    let rows: BTreeMap<String, i64> = serde_json::from_str(&support::run_python(
        &python,
        "snapshot_rows.py",
        &[&spec_json, "payments.payment_transactions"],
    ))
    .unwrap();
    assert_eq!(rows.len(), KEEP, "{rows:?}");
    for (k, snapshot) in by_age.iter().enumerate().skip(expire) {
        assert_eq!(
            rows[&snapshot.snapshot_id().to_string()],
            (k as i64 + 1) * ROWS_PER_COMMIT,
            "snapshot {k}"
        );
    }
    let (code, out) = support::meshd_output(&["orphans", "--config", config, descriptor]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 orphan data file(s)"), "{out}");
    // The resume point is in the newest snapshot, whatever expired.
    assert_eq!(
        table.recover_offsets().await.unwrap(),
        offsets(COMMITS * ROWS_PER_COMMIT)
    );
}
