//! Per-stage micro-benchmarks on the reference schema, 8,192 events per iteration (one worker
//! chunk): JSON and Avro decode into Arrow, each masking method, and Parquet encoding with the
//! writer settings data files use under each `commit.compression` codec, on both data sets of
//! `reference.rs` (encoded sizes printed beside). Reported as bytes/s of input and records/s.

mod reference;

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::StringArray;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshd_config::Masking;
use meshd_runtime::decode::{self, AvroDecoderFactory, JsonDecoderFactory, wire};
use meshd_runtime::mask::mask_strings;
use meshd_sinks::iceberg::parquet_properties_for;
use parquet::arrow::ArrowWriter;
use reference::{avro_datum, json_event};

const EVENTS: u64 = 8192;

fn stages(c: &mut Criterion) {
    let schema = reference::schema();
    let json: Vec<Vec<u8>> = (0..EVENTS).map(json_event).collect();
    let avro_schema = apache_avro::Schema::parse_str(&schema.text).expect("avro schema");
    let avro: Vec<Vec<u8>> = (0..EVENTS).map(|n| avro_datum(&avro_schema, n)).collect();

    let mut group = c.benchmark_group("decode");
    for (name, events, factory) in [
        (
            "json",
            &json,
            Box::new(JsonDecoderFactory::new(wire::json_wire_schema(&schema)))
                as Box<dyn decode::DecoderFactory>,
        ),
        (
            "avro",
            &avro,
            Box::new(AvroDecoderFactory::new(&schema.text).expect("avro factory")),
        ),
    ] {
        let payloads: Vec<Option<&[u8]>> = events.iter().map(|e| Some(e.as_slice())).collect();
        group.throughput(Throughput::Bytes(
            events.iter().map(Vec::len).sum::<usize>() as u64,
        ));
        group.bench_function(name, |b| {
            b.iter(|| decode::decode_all(factory.as_ref(), black_box(&payloads), 1 << 20))
        });
    }
    // The same datums in Confluent's wire format, from two writer versions (the port's
    // schema, and one with a field the port lacks): grouped by id, decoded by resolution, the
    // writer schemas learnt once (the registry is not in the loop).
    let mut v2 = serde_json::from_str::<serde_json::Value>(&schema.text).expect("schema json");
    v2["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!({"name": "channel", "type": "string", "default": "web"}));
    let v2_schema = apache_avro::Schema::parse_str(&v2.to_string()).expect("v2 schema");
    let framed: Vec<Vec<u8>> = (0..EVENTS)
        .map(|n| {
            let (id, datum) = if n % 2 == 0 {
                (1u32, avro_datum(&avro_schema, n))
            } else {
                (
                    2u32,
                    reference::avro_datum_with(&v2_schema, n, &[("channel", "app")]),
                )
            };
            let mut frame = vec![0u8];
            frame.extend_from_slice(&id.to_be_bytes());
            frame.extend(datum);
            frame
        })
        .collect();
    let mut confluent = decode::confluent::ConfluentDecoders::new(&schema.text, 16);
    assert_eq!(confluent.learn(1, &schema.text), None);
    assert_eq!(confluent.learn(2, &v2.to_string()), None);
    let payloads: Vec<Option<&[u8]>> = framed.iter().map(|e| Some(e.as_slice())).collect();
    group.throughput(Throughput::Bytes(
        framed.iter().map(Vec::len).sum::<usize>() as u64,
    ));
    group.bench_function("avro-confluent", |b| {
        b.iter(|| confluent.decode(black_box(&payloads), 1 << 20))
    });
    group.finish();

    let emails = StringArray::from_iter_values((0..EVENTS).map(|n| format!("user{n}@example.com")));
    let mut group = c.benchmark_group("mask");
    group.throughput(Throughput::Elements(EVENTS));
    for method in [
        Masking::Sha256,
        Masking::HmacSha256,
        Masking::Redact,
        Masking::Last4,
    ] {
        group.bench_function(method.as_str(), |b| {
            b.iter(|| mask_strings(black_box(&emails), method, Some(b"bench-key")))
        });
    }
    group.finish();

    let factory_json = JsonDecoderFactory::new(wire::json_wire_schema(&schema));
    // Parquet encoding of one chunk already in the table's Arrow schema, per codec and data set;
    // each encoded size is printed beside the speeds (the codec trades CPU against bytes).
    let table = reference::table_schema(&schema);
    let masker = reference::masker(&schema);
    for data in reference::Data::from_env() {
        let events: Vec<Vec<u8>> = (0..EVENTS).map(|n| data.json(n)).collect();
        let payloads: Vec<Option<&[u8]>> = events.iter().map(|e| Some(e.as_slice())).collect();
        let decoded = decode::decode_all(&factory_json, &payloads, 1 << 20);
        let batch = wire::conform(&masker.apply(&decoded.batches[0].0).expect("mask"), &table)
            .expect("conform");
        let mut group = c.benchmark_group(format!("parquet/{}", data.name()));
        let input = events.iter().map(Vec::len).sum::<usize>();
        group.throughput(Throughput::Bytes(input as u64));
        let codec = |text: &str| meshd_config::Codec::parse(text).expect("codec");
        let variants = [
            ("zstd", parquet_properties_for(codec("zstd"), &[])),
            (
                "zstd, no dictionary: email",
                parquet_properties_for(codec("zstd"), &["email"]),
            ),
            (
                "zstd, no dictionary: email, transaction_id",
                parquet_properties_for(codec("zstd"), &["email", "transaction_id"]),
            ),
            ("zstd(3)", parquet_properties_for(codec("zstd(3)"), &[])),
            ("lz4_raw", parquet_properties_for(codec("lz4_raw"), &[])),
            ("snappy", parquet_properties_for(codec("snappy"), &[])),
            (
                "uncompressed",
                parquet_properties_for(codec("uncompressed"), &[]),
            ),
        ];
        for (name, properties) in variants {
            let encode = || {
                let mut out = Vec::with_capacity(1 << 20);
                let mut writer =
                    ArrowWriter::try_new(&mut out, Arc::clone(&table), Some(properties.clone()))
                        .expect("writer");
                writer.write(black_box(&batch)).expect("write");
                writer.close().expect("close");
                out.len()
            };
            eprintln!(
                "parquet/{}/{name}: {} bytes for {EVENTS} rows ({input} bytes of JSON input)",
                data.name(),
                encode()
            );
            group.bench_function(name, |b| b.iter(encode));
        }
        group.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
