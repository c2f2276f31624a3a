//! The Iceberg output port against a real SQLite catalog and local warehouse: successive
//! commits keep every row, a commit id is applied once, and a stale worker is fenced.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use meshd_config::PlatformConfig;
use meshd_sinks::SinkError;
use meshd_sinks::iceberg::{
    CommitOutcome, DataFiles, Offsets, OutputTable, TableSpec, open_catalog,
};

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(
                1,
                "id",
                Type::Primitive(PrimitiveType::Long),
            )),
            Arc::new(NestedField::optional(
                2,
                "name",
                Type::Primitive(PrimitiveType::String),
            )),
        ])
        .build()
        .expect("static schema")
}

fn batch(table: &OutputTable, ids: std::ops::Range<i64>) -> RecordBatch {
    let arrow = iceberg::arrow::schema_to_arrow_schema(table.table().metadata().current_schema())
        .expect("arrow schema");
    let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        Arc::new(arrow),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from_iter_values(names)),
        ],
    )
    .expect("batch")
}

fn offsets(next: i64) -> Offsets {
    let mut o = Offsets::new();
    o.entry("in".into()).or_default().insert(0, next);
    o
}

async fn catalog(dir: &std::path::Path) -> Arc<dyn iceberg::Catalog> {
    let config = PlatformConfig {
        warehouse: dir.join("warehouse").display().to_string(),
        catalog: meshd_config::CatalogConfig {
            uri: format!("sqlite://{}/catalog.db", dir.display()),
            ..Default::default()
        },
        ..Default::default()
    };
    open_catalog(&config).await.expect("catalog")
}

async fn open(dir: &std::path::Path) -> OutputTable {
    let catalog = catalog(dir).await;
    let spec = TableSpec {
        namespace: "ns".into(),
        name: "t".into(),
        location: format!("file://{}/warehouse/ns/t", dir.display()),
        schema: schema(),
        partitioning: vec![],
        properties: HashMap::from([("datamesh.product".to_string(), "t".to_string())]),
    };
    OutputTable::open(catalog, &spec, "g".into())
        .await
        .expect("open table")
}

async fn write(table: &OutputTable, ids: std::ops::Range<i64>) -> Vec<iceberg::spec::DataFile> {
    let mut files = DataFiles::new(table.table(), "t".into(), 1 << 20).expect("data files");
    files.write(batch(table, ids)).await.expect("write");
    files.close().await.expect("close")
}

async fn ids(table: &OutputTable) -> Vec<i64> {
    let stream = table
        .table()
        .scan()
        .build()
        .expect("scan")
        .to_arrow()
        .await
        .expect("arrow");
    let batches: Vec<RecordBatch> = stream.try_collect().await.expect("read");
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let col = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("long")
                .clone();
            col.values().to_vec()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn successive_commits_keep_every_row_and_files_are_never_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut table = open(dir.path()).await;
    let first = write(&table, 0..100).await;
    assert_eq!(
        table
            .commit(first.clone(), &offsets(100), &Offsets::new(), "c1", &[])
            .await
            .expect("c1"),
        CommitOutcome::Committed
    );
    let second = write(&table, 100..250).await;
    let paths: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|f| f.file_path().to_string())
        .collect();
    let unique: std::collections::HashSet<_> = paths.iter().collect();
    assert_eq!(
        unique.len(),
        paths.len(),
        "data file names must never repeat: {paths:?}"
    );
    assert_eq!(
        table
            .commit(second, &offsets(250), &offsets(100), "c2", &[])
            .await
            .expect("c2"),
        CommitOutcome::Committed
    );
    assert_eq!(ids(&table).await, (0..250).collect::<Vec<_>>());
    assert_eq!(
        table.recover_offsets().await.expect("offsets"),
        offsets(250)
    );
}

#[tokio::test]
async fn a_commit_id_is_applied_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut table = open(dir.path()).await;
    let files = write(&table, 0..10).await;
    table
        .commit(files.clone(), &offsets(10), &Offsets::new(), "once", &[])
        .await
        .expect("first");
    let again = table
        .commit(files, &offsets(10), &Offsets::new(), "once", &[])
        .await
        .expect("again");
    assert_eq!(again, CommitOutcome::AlreadyCommitted);
    assert_eq!(ids(&table).await.len(), 10);
}

#[tokio::test]
async fn a_worker_with_stale_offsets_is_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut table = open(dir.path()).await;
    let files = write(&table, 0..10).await;
    table
        .commit(files, &offsets(10), &Offsets::new(), "a", &[])
        .await
        .expect("first");
    // A zombie that still believes nothing is recorded for the partition.
    let files = write(&table, 0..10).await;
    let err = table
        .commit(files, &offsets(10), &Offsets::new(), "zombie", &[])
        .await
        .expect_err("fenced");
    assert!(matches!(err, SinkError::Fenced { .. }), "{err}");
    assert_eq!(ids(&table).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_starting_together_share_one_table() {
    // Processes of one product start at once: each sees no table, all try to create it; the
    // SQL catalog rejects all but one with a unique-constraint error, which must not fail them.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let tasks = (0..8).map(|_| {
        let path = path.clone();
        tokio::spawn(async move { open(&path).await })
    });
    let opened: Vec<OutputTable> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|t| t.expect("task"))
        .collect();
    let locations: std::collections::BTreeSet<String> = opened
        .iter()
        .map(|t| t.table().metadata().location().to_string())
        .collect();
    assert_eq!(locations.len(), 1);
}

/// Every snapshot records every partition the group ever committed, marked complete, so the
/// newest snapshot alone says where to resume; a table whose older snapshots carry only their
/// own partitions (meshd before that) still resumes every partition.
#[tokio::test]
async fn every_snapshot_carries_every_partition_and_old_tables_still_resume() {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut table = open(dir.path()).await;
    // A snapshot in the old form: partition 0 only, no completeness marker.
    let catalog = catalog(dir.path()).await;
    let ident = iceberg::TableIdent::from_strs(["ns", "t"]).expect("ident");
    let loaded = catalog.load_table(&ident).await.expect("load");
    let files = write(&table, 0..10).await;
    let tx = Transaction::new(&loaded);
    let tx = tx
        .fast_append()
        .add_data_files(files)
        .set_snapshot_properties(HashMap::from([
            ("meshd.commit-id".to_string(), "old-form".to_string()),
            (
                "meshd.offsets.g".to_string(),
                r#"{"in":{"0":10}}"#.to_string(),
            ),
        ]))
        .apply(tx)
        .expect("append");
    tx.commit(catalog.as_ref()).await.expect("old-form commit");

    let mut next = Offsets::new();
    next.entry("in".into()).or_default().insert(1, 7);
    let files = write(&table, 10..20).await;
    table
        .commit(files, &next, &Offsets::new(), "new-form", &[])
        .await
        .expect("commit");
    let summary = &table
        .table()
        .metadata()
        .current_snapshot()
        .expect("snapshot")
        .summary()
        .additional_properties;
    assert_eq!(summary["meshd.offsets.g"], r#"{"in":{"0":10,"1":7}}"#);
    assert_eq!(summary["meshd.offsets-complete.g"], "true");
    let mut both = Offsets::new();
    both.entry("in".into())
        .or_default()
        .extend([(0, 10), (1, 7)]);
    assert_eq!(table.recover_offsets().await.expect("offsets"), both);
}
