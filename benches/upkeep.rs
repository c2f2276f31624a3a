//! Table upkeep, in one run on the embedded default (SQLite catalog, local warehouse):
//! - compaction: many small files of reference rows rewritten into target-size files, MB/s of
//!   input (and rows/s);
//! - snapshot expiry: a table with `MESHD_BENCH_SNAPSHOTS` snapshots (default 10,000) expired
//!   down to one, and how long building that history took per commit as the metadata grew;
//! - ingest beside upkeep: the release meshd draining a backlog (`MESHD_BENCH_RECORDS`,
//!   default 1,000,000 reference records, Tansu in memory) with upkeep off (the default 1 h
//!   interval never fires) and with retention, compaction and expiry every 2 s; records/s of
//!   each and their ratio.
//!
//! `cargo bench -p meshd-runtime --bench upkeep` prints the figures and writes
//! `target/meshd-bench/upkeep.json`. Under `cargo test` it runs once on tiny inputs against
//! librdkafka's mock cluster.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

mod measure;

use std::path::Path;
use std::time::{Duration, Instant};

use measure::{cpu_seconds, mb, produce, setting};
use meshd_config::{DataProduct, PlatformConfig};
use meshd_sinks::iceberg::OutputTable;
use meshd_sinks::iceberg::commit::MetadataCommitter;
use rdkafka::mocking::MockCluster;
use serde_json::{Value, json};

/// A table of the reference product in `dir`, its platform and product.
async fn table(dir: &Path) -> (PlatformConfig, DataProduct, OutputTable) {
    let lake = support::lake::Lake::embedded(dir, support::product::Product::reference()).await;
    (lake.platform, lake.product, lake.table)
}

/// `files` commits of `rows` rows each (the demo's events, a day or two), then compaction.
async fn compaction(files: i64, rows: i64) -> Value {
    let dir = support::test_dir();
    let (platform, product, mut table) = table(dir.path()).await;
    for commit in 0..files {
        let first = commit * rows;
        support::lake::append_payments(&mut table, &product, first..first + rows).await;
    }
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
    let committer = MetadataCommitter::open(&platform).await.unwrap();
    let ident = table.table().identifier().clone();
    let started = Instant::now();
    let report = meshd_sinks::iceberg::compact::compact(
        catalog.as_ref(),
        &committer,
        &ident,
        (128 << 20, meshd_config::Codec::default()),
        3,
        false,
    )
    .await
    .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    // A commit whose events cross midnight writes one file per day.
    assert!(report.files_in as i64 >= files, "{report:?}");
    json!({
        "files_in": report.files_in,
        "files_out": report.files_out,
        "input_mb": mb(report.bytes),
        "rows": files * rows,
        "seconds": seconds,
        "mb_per_s": mb(report.bytes) / seconds,
        "rows_per_s": (files * rows) as f64 / seconds,
    })
}

/// A table with `snapshots` snapshots, then expiry of all but the newest. The history is
/// written as a day without upkeep would leave it (one snapshot per commit, each with its own
/// manifest list over the same data), but in one metadata commit: appending 10,000 times would
/// rewrite a metadata file that grows with every snapshot, which measures the catalog, not expiry.
async fn expiry(snapshots: i64) -> Value {
    let dir = support::test_dir();
    let (platform, product, mut table) = table(dir.path()).await;
    support::lake::append_payments(&mut table, &product, 0..100).await;
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
    let committer = MetadataCommitter::open(&platform).await.unwrap();
    let started = Instant::now();
    history(table.table(), &committer, snapshots - 1).await;
    let build = started.elapsed().as_secs_f64();
    let loaded = catalog
        .load_table(table.table().identifier())
        .await
        .unwrap();
    let metadata_bytes = loaded
        .metadata_location()
        .and_then(|l| std::fs::metadata(l.trim_start_matches("file://")).ok())
        .map_or(0, |m| m.len());
    assert_eq!(loaded.metadata().snapshots().len() as i64, snapshots);
    let newest = loaded.metadata().current_snapshot().unwrap().timestamp_ms();
    support::poll("the history to age", Duration::from_secs(30), || {
        (chrono::Utc::now().timestamp_millis() > newest).then_some(())
    });
    let started = Instant::now();
    let expired = meshd_sinks::iceberg::expire::expire_snapshots(
        catalog.as_ref(),
        &loaded,
        Duration::ZERO,
        1,
        false,
    )
    .await
    .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(expired.expired.len() as i64, snapshots - 1);
    json!({
        "snapshots": snapshots,
        "build_seconds": build,
        "metadata_json_mb": mb(metadata_bytes),
        "expiry_seconds": seconds,
        "files_deleted": expired.files.len(),
    })
}

/// Adds `count` snapshots on top of the current one, after it and a hundred to the millisecond
/// (a table's history may not start more than a minute before its last update), each with a
/// manifest list of the current snapshot's manifests.
async fn history(table: &iceberg::table::Table, committer: &MetadataCommitter, count: i64) {
    use iceberg::spec::{
        ManifestListWriter, Operation, Snapshot, SnapshotReference, SnapshotRetention, Summary,
    };
    let metadata = table.metadata();
    let current = metadata.current_snapshot().unwrap();
    let manifests = table.manifest_list_reader(current).load().await.unwrap();
    let after = current.timestamp_ms() + 1;
    let first_sequence = metadata.next_sequence_number();
    let mut parent = current.snapshot_id();
    let mut updates = Vec::new();
    for i in 0..count {
        let id = 1_000_000 + i;
        let sequence = first_sequence + i;
        let list = format!("{}/metadata/snap-{id}-bench.avro", metadata.location());
        let mut writer = ManifestListWriter::v2(
            table
                .file_io()
                .new_output(&list)
                .unwrap()
                .writer()
                .await
                .unwrap(),
            id,
            Some(parent),
            sequence,
        );
        writer
            .add_manifests(manifests.entries().iter().cloned())
            .unwrap();
        writer.close().await.unwrap();
        let mut summary = current.summary().additional_properties.clone();
        summary.remove("meshd.commit-id");
        updates.push(iceberg::TableUpdate::AddSnapshot {
            snapshot: Snapshot::builder()
                .with_snapshot_id(id)
                .with_parent_snapshot_id(Some(parent))
                .with_sequence_number(sequence)
                .with_timestamp_ms(after + i / 100)
                .with_manifest_list(list)
                .with_schema_id(metadata.current_schema_id())
                .with_summary(Summary {
                    operation: Operation::Append,
                    additional_properties: summary,
                })
                .build(),
        });
        parent = id;
    }
    updates.push(iceberg::TableUpdate::SetSnapshotRef {
        ref_name: "main".into(),
        reference: SnapshotReference::new(parent, SnapshotRetention::branch(None, None, None)),
    });
    committer
        .commit(
            table,
            meshd_sinks::iceberg::commit::MetadataChange {
                requirements: Vec::new(),
                updates,
            },
        )
        .await
        .unwrap();
}

/// The release meshd draining `records` with and without upkeep beside it.
async fn ingest(records: usize, quick: bool) -> Value {
    let mut out = serde_json::Map::new();
    for (name, upkeep) in [("without_upkeep", false), ("with_upkeep", true)] {
        let dir = support::test_dir();
        let mock;
        let tansu;
        let bootstrap = if quick {
            mock = MockCluster::new(1).unwrap();
            mock.create_topic("upkeep", 3, 1).unwrap();
            mock.create_topic("upkeep.dlq", 1, 1).unwrap();
            mock.bootstrap_servers()
        } else {
            tansu = support::Tansu::start_in_memory(dir.path()).expect("Tansu");
            tansu.create_topic("upkeep", 3).await;
            tansu.create_topic("upkeep.dlq", 1).await;
            tansu.bootstrap.clone()
        };
        let payloads: Vec<Vec<u8>> = (0..records as u64)
            .map(|n| meshd_runtime::demo::payment_event(n, u64::MAX).1)
            .collect();
        let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
        produce(&bootstrap, "upkeep", &payloads).await;
        let mut product = support::product::Product::reference()
            .input_topic("upkeep")
            .commit_interval(Duration::from_secs(1));
        if upkeep {
            // The reference keeps rows 7 years: retention plans every run and removes nothing,
            // as it does on most runs in production.
            product = product.compact_above(3).snapshot_expiry(
                Duration::from_secs(2),
                3,
                Duration::from_secs(2),
            );
        }
        let descriptor = product.write(dir.path());
        let (config, listen) = support::meshd_config(dir.path(), "meshd", &bootstrap, &[], "");
        let meshd = support::Meshd::start(
            &config,
            &[&descriptor],
            &listen,
            dir.path().join("meshd.log"),
        );
        let pid = meshd.child.id();
        let (started, cpu0) = support::poll("meshd to consume", Duration::from_secs(120), || {
            (meshd.scrape()?.sum("meshd_records_consumed_total") > 0.0)
                .then(|| (Instant::now(), cpu_seconds(pid)))
        });
        let scrape = support::poll(
            "meshd to commit everything",
            Duration::from_secs(1800),
            || {
                let s = meshd.scrape()?;
                (s.sum("meshd_records_committed_total") >= records as f64).then_some(s)
            },
        );
        let seconds = started.elapsed().as_secs_f64();
        out.insert(
            name.into(),
            json!({
                "records_per_s": records as f64 / seconds,
                "mb_per_s": mb(bytes) / seconds,
                "cores_used": (cpu_seconds(pid) - cpu0) / seconds,
                "commits": scrape.sum_where("meshd_commits_total", &[("outcome", "committed")]),
                "commit_seconds_mean": scrape.sum("meshd_commit_duration_seconds_sum")
                    / scrape.sum("meshd_commit_duration_seconds_count").max(1.0),
                "maintenance_runs_ok": scrape.sum_where("meshd_maintenance_runs_total", &[("outcome", "ok")]),
                "retention_rows_removed": scrape.sum("meshd_retention_rows_removed_total"),
                "compacted_files": scrape.sum("meshd_compacted_files_total"),
            }),
        );
    }
    let ratio = out["with_upkeep"]["records_per_s"].as_f64().unwrap_or(0.0)
        / out["without_upkeep"]["records_per_s"]
            .as_f64()
            .unwrap_or(1.0);
    out.insert("ratio_with_to_without".into(), json!(ratio));
    Value::Object(out)
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test` this is a smoke run on tiny inputs.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (files, rows, snapshots, records) = if quick {
        (8, 50, 20, 2_000)
    } else {
        (
            400,
            2_000,
            setting("MESHD_BENCH_SNAPSHOTS", "10000").parse().unwrap(),
            setting("MESHD_BENCH_RECORDS", "1000000").parse().unwrap(),
        )
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let compaction = runtime.block_on(compaction(files, rows));
    eprintln!("compaction: {compaction}");
    let expiry = runtime.block_on(expiry(snapshots));
    eprintln!("expiry: {expiry}");
    let ingest = runtime.block_on(ingest(records, quick));
    eprintln!("ingest: {ingest}");
    let doc = json!({
        "machine": { "cores": std::thread::available_parallelism().map_or(0, |n| n.get()) },
        "quick": quick,
        "compaction": compaction,
        "expiry": expiry,
        "ingest": ingest,
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/meshd-bench");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join(if quick {
        "upkeep-smoke.json"
    } else {
        "upkeep.json"
    });
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}
