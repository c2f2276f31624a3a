//! The per-record hot path of a worker, without Kafka or Iceberg I/O: JSON payment events →
//! Arrow (decode) → validate → mask → conform to the table schema, on each data set of
//! `reference.rs` (`MESHD_BENCH_DATA`). Throughput is reported in input bytes, the unit of the
//! per-core targets.

mod reference;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshd_config::{PortSchema, Sensitive};
use meshd_runtime::decode::{self, JsonDecoderFactory, wire};
use meshd_runtime::mask::Masker;
use meshd_runtime::validate;

fn hot_path(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments/schema/transactions.avsc");
    let schema = PortSchema::load(&path).expect("reference schema loads");
    let iceberg = schema.iceberg_schema().expect("iceberg schema");
    let table = Arc::new(iceberg::arrow::schema_to_arrow_schema(&iceberg).expect("arrow schema"));
    let factory = JsonDecoderFactory::new(wire::json_wire_schema(&schema));
    let masker = Masker::new(&schema, Some(Sensitive::new(b"bench-key".to_vec())));
    let columns: Vec<_> = schema.all_columns().into_iter().cloned().collect();

    for data in reference::Data::from_env() {
        // One chunk as the worker sees it: 8,192 events, none malformed.
        let events: Vec<Vec<u8>> = (0..8192u64).map(|n| data.json(n)).collect();
        let payloads: Vec<Option<&[u8]>> = events.iter().map(|e| Some(e.as_slice())).collect();
        let bytes: usize = events.iter().map(Vec::len).sum();

        let mut group = c.benchmark_group(format!("hot_path/{}", data.name()));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("decode", |b| {
            b.iter(|| decode::decode_all(&factory, black_box(&payloads), 1 << 20))
        });
        group.bench_function("decode_validate_mask_conform", |b| {
            b.iter(|| {
                let decoded = decode::decode_all(&factory, black_box(&payloads), 1 << 20);
                for (batch, _) in decoded.batches {
                    let invalid = validate::validate(&batch, &columns);
                    assert!(invalid.is_empty());
                    let masked = masker.apply(&batch).expect("mask");
                    black_box(wire::conform(&masked, &table).expect("conform"));
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
