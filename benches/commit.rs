//! Per-batch commit overhead, on the embedded default (SQLite catalog, local warehouse) and on a
//! shared platform (PostgreSQL catalog, tables on moto's S3 server, both on loopback, started
//! here): closing one chunk (8,192 reference rows) into a Parquet data file, and committing one
//! data file as a snapshot that records offsets. Each commit adds a snapshot, so the table's
//! history grows as the benchmark runs, as it does in production between snapshot expiries.
//! Loopback S3 and PostgreSQL measure meshd's own per-commit work and request count, not a
//! network: add your store's round trips to the S3 figures.
#![allow(clippy::unwrap_used)]

mod reference;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::RecordBatch;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use meshd_config::{DataProduct, PlatformConfig};
use meshd_runtime::decode::{self, JsonDecoderFactory, wire};
use meshd_sinks::iceberg::{DataFiles, Offsets, OutputTable, open_catalog};

/// One worker chunk of reference events in the table's Arrow schema.
fn chunk() -> RecordBatch {
    let schema = reference::schema();
    let factory = JsonDecoderFactory::new(wire::json_wire_schema(&schema));
    let events: Vec<Vec<u8>> = (0..8192).map(reference::json_event).collect();
    let payloads: Vec<Option<&[u8]>> = events.iter().map(|e| Some(e.as_slice())).collect();
    let decoded = decode::decode_all(&factory, &payloads, 1 << 20);
    let masked = reference::masker(&schema)
        .apply(&decoded.batches[0].0)
        .expect("mask");
    wire::conform(&masked, &reference::table_schema(&schema)).expect("conform")
}

fn commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = PlatformConfig {
        warehouse: dir.path().join("warehouse").display().to_string(),
        catalog: meshd_config::CatalogConfig {
            uri: format!("sqlite://{}/catalog.db", dir.path().display()),
            ..Default::default()
        },
        ..Default::default()
    };
    commit_on(c, "embedded", &embedded);
    let Some(moto) = support::services::Moto::start(dir.path()) else {
        return;
    };
    let Some(pg) = support::services::Postgres::start(dir.path()) else {
        return;
    };
    pg.create_database("bench");
    moto.create_bucket("data-mesh");
    let mut shared = PlatformConfig::default();
    shared.catalog.uri = pg.uri("bench");
    shared.catalog.password = Some(meshd_config::Sensitive::new(
        support::services::PG_PASSWORD.to_string(),
    ));
    shared.warehouse = "s3://data-mesh/warehouse".into();
    for (key, value) in [
        ("endpoint", moto.endpoint.as_str()),
        ("access_key_id", support::services::S3_ACCESS_KEY),
        ("secret_access_key", support::services::S3_SECRET_KEY),
        ("region", "us-east-1"),
    ] {
        shared
            .storage
            .insert(key.into(), meshd_config::Sensitive::new(value.to_string()));
    }
    commit_on(c, "s3_postgres", &shared);
}

fn commit_on(c: &mut Criterion, variant: &str, platform: &PlatformConfig) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let platform = platform.clone();
    let product = DataProduct::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments/product.yaml"),
    )
    .expect("reference product");
    let spec = meshd_runtime::provision::table_spec(&platform, &product, 0).expect("spec");
    let table = runtime.block_on(async {
        let catalog = open_catalog(&platform).await.expect("catalog");
        OutputTable::open(Arc::clone(&catalog), &spec, "bench".into())
            .await
            .expect("table")
    });
    // Files are written in the setup and committed in the measured routine: both need the table.
    let table = std::cell::RefCell::new(table);
    let rows = chunk();
    let write = |table: &OutputTable| {
        runtime.block_on(async {
            let mut files =
                DataFiles::new(table.table(), "bench".into(), 128 << 20).expect("data files");
            files.write(rows.clone()).await.expect("write");
            files.close().await.expect("close")
        })
    };

    let mut group = c.benchmark_group(format!("commit/{variant}"));
    group.throughput(Throughput::Elements(rows.num_rows() as u64));
    group.bench_function("write_and_close_8192_rows", |b| {
        b.iter(|| black_box(write(&table.borrow())))
    });
    group.throughput(Throughput::Elements(1));
    let mut next = 0i64;
    group.bench_function("commit_one_file", |b| {
        b.iter_batched(
            || write(&table.borrow()),
            |files| {
                next += 8192;
                let mut offsets = Offsets::new();
                offsets.entry("bench".into()).or_default().insert(0, next);
                let mut expected = Offsets::new();
                if next > 8192 {
                    expected
                        .entry("bench".into())
                        .or_default()
                        .insert(0, next - 8192);
                }
                runtime
                    .block_on(table.borrow_mut().commit(
                        files,
                        &offsets,
                        &expected,
                        &uuid::Uuid::new_v4().to_string(),
                        &[],
                    ))
                    .expect("commit")
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    let snapshots = table.borrow().table().metadata().snapshots().count();
    eprintln!("commit bench ({variant}): the table ended with {snapshots} snapshots");
}

criterion_group!(benches, commit);
criterion_main!(benches);
