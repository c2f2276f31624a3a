//! Instructions per record, counted by valgrind (cachegrind, no cache simulation), for each
//! stage of the per-record path and for the whole pipeline, on both data sets and formats.
//! Wall-clock figures move ±20 % between runs on this shared machine; instruction counts move
//! by well under 1 %, so a change of a few percent in one stage is visible here.
//!
//! How: the bench runs itself under valgrind twice per case, processing N and 2N records
//! after the same setup (the input for 2N is always built), and reports the difference / N:
//! setup, process start and valgrind's own constant costs cancel out.
//!
//! The consume path is counted the same way against the test broker (Nisshi, in memory): a
//! consumer reads a topic of N records and one of 2N, one message per poll as rust-rdkafka
//! hands them out (`consume-poll`) and in batches as the worker reads them (`consume-batch`);
//! only the consumer's process is counted, librdkafka's threads included.
//!
//! `cargo bench -p meshd-runtime --bench instructions` (N = 8,192, one worker chunk;
//! `MESHD_BENCH_STAGES=encode,pipeline,consume` picks stages, `MESHD_BENCH_DATA` data sets); under
//! `cargo test` one small case runs as a smoke test. Writes
//! `target/meshd-bench/instructions.json`. Needs valgrind (`deploy/setup.sh test`).

#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

mod measure;
mod reference;

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;

use arrow_array::RecordBatch;
use meshd_runtime::decode::{self, AvroDecoderFactory, DecoderFactory, JsonDecoderFactory, wire};
use meshd_sinks::iceberg::parquet_properties_for;
use parquet::arrow::ArrowWriter;
use reference::Data;
use serde_json::json;

/// The stages measured, in pipeline order, and the whole pipeline. `decode-whole` (JSON only)
/// is an experiment: arrow-json fed a whole chunk in one call, as it would be without the
/// per-record boundaries that dead letters need.
const STAGES: [&str; 7] = [
    "decode",
    "decode-whole",
    "validate",
    "mask",
    "conform",
    "encode",
    "pipeline",
];
/// Records per worker chunk.
const CHUNK: usize = 8192;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--inner") {
        let [data, format, stage, n, built] = &args[at + 1..at + 6] else {
            panic!("--inner <data> <format> <stage> <records> <records built>");
        };
        let n: usize = n.parse().expect("records");
        if let Some(how) = stage.strip_prefix("consume-") {
            consume(how, &args[at + 6], &args[at + 7], n);
            return;
        }
        let data = if data == "easy" {
            Data::Easy
        } else {
            Data::Realistic
        };
        inner(
            data,
            format,
            stage,
            n,
            built.parse().expect("records built"),
        );
        return;
    }
    // `cargo bench` passes --bench; under `cargo test` this is a smoke run.
    let quick = !args.iter().any(|a| a == "--bench");
    if Command::new("valgrind").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "valgrind is missing: install it (deploy/setup.sh test)"
        );
        eprintln!("valgrind is missing: instruction counts skipped");
        return;
    }
    let (n, cases): (usize, Vec<(Data, &str, &str)>) = if quick {
        (1024, vec![(Data::Realistic, "json", "pipeline")])
    } else {
        let mut cases = Vec::new();
        for data in Data::from_env() {
            if wanted("consume") {
                cases.push((data, "json", "consume-poll"));
                cases.push((data, "json", "consume-batch"));
            }
            for format in ["json", "avro"] {
                for stage in STAGES {
                    if stage == "decode-whole" && format != "json" || !wanted(stage) {
                        continue;
                    }
                    cases.push((data, format, stage));
                }
            }
        }
        (CHUNK, cases)
    };
    let dir = support::test_dir();
    let broker = cases
        .iter()
        .any(|(_, _, stage)| stage.starts_with("consume-"))
        .then(|| support::Tansu::start_in_memory(dir.path()).expect("the test broker (Nisshi)"));
    let mut results = Vec::new();
    println!(
        "\n{:<10} {:<5} {:<9} {:>14}",
        "data", "fmt", "stage", "instr/record"
    );
    for (data, format, stage) in cases {
        let (at_n, at_2n) = match &broker {
            Some(broker) if stage.starts_with("consume-") => topics(broker, data, format, stage, n),
            _ => Default::default(),
        };
        let once = instructions(data, format, stage, [n, 2 * n], &at_n);
        let twice = instructions(data, format, stage, [2 * n, 2 * n], &at_2n);
        // A stage that costs nothing per record (conform when the types already match) may
        // come out below zero: the setup's hash tables are seeded afresh in every process,
        // which moves a run's total by up to ~0.2 % (~150 instructions per record at N =
        // 8,192). Shown as 0; only a clearly smaller count for 2N is a broken case.
        assert!(
            twice as f64 >= once as f64 * 0.995,
            "{stage}: 2N records ran fewer instructions than N ({twice} vs {once})"
        );
        let per_record = (twice.saturating_sub(once)) as f64 / n as f64;
        println!(
            "{:<10} {:<5} {:<9} {:>14.0}",
            data.name(),
            format,
            stage,
            per_record
        );
        results.push(json!({
            "data": data.name(), "format": format, "stage": stage,
            "records": n, "instructions_per_record": per_record,
        }));
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/meshd-bench");
    std::fs::create_dir_all(&out).expect("bench output dir");
    std::fs::write(
        out.join("instructions.json"),
        serde_json::to_string_pretty(&results).expect("json"),
    )
    .expect("writing instructions.json");
}

/// Whether `MESHD_BENCH_STAGES` (a comma-separated list; all by default) names this stage.
fn wanted(stage: &str) -> bool {
    std::env::var("MESHD_BENCH_STAGES")
        .map_or(true, |list| list.split(',').any(|s| s.trim() == stage))
}

/// Instructions the bench's inner mode ran for one case, as valgrind counted them.
/// `[records, built]`: how many records the stage runs on, of how many built beforehand.
fn instructions(
    data: Data,
    format: &str,
    stage: &str,
    [records, built]: [usize; 2],
    extra: &[String],
) -> u64 {
    let me = std::env::current_exe().expect("bench binary");
    let run = Command::new("valgrind")
        .args([
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
        ])
        .arg(me)
        .args(["--inner", data.name(), format, stage])
        .args([records.to_string(), built.to_string()])
        .args(extra)
        .output()
        .expect("running valgrind");
    let report = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "valgrind failed: {report}");
    report
        .lines()
        .find_map(|l| {
            // `==pid== I   refs:      27,462,699`
            let words: Vec<&str> = l.split_whitespace().skip(1).collect();
            match words.as_slice() {
                ["I", "refs:", n] => Some(n.replace(',', "")),
                _ => None,
            }
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no instruction count in valgrind's report: {report}"))
}

/// Builds the input of `built` records (the same setup whatever `records` is), then runs `stage`
/// over the first `records`, a worker chunk at a time.
fn inner(data: Data, format: &str, stage: &str, records: usize, built: usize) {
    let schema = reference::schema();
    let table = reference::table_schema(&schema);
    let masker = reference::masker(&schema);
    let columns: Vec<_> = schema.all_columns().into_iter().cloned().collect();
    let avro = apache_avro::Schema::parse_str(&schema.text).expect("avro schema");
    let factory: Box<dyn DecoderFactory> = match format {
        "avro" => Box::new(AvroDecoderFactory::new(&schema.text).expect("avro factory")),
        _ => Box::new(JsonDecoderFactory::new(wire::json_wire_schema(&schema))),
    };
    // One worker chunk, or half of what is built for a smaller smoke run: the same in both runs.
    let chunk = CHUNK.min(built / 2).max(1);
    let payloads: Vec<Vec<u8>> = (0..built as u64)
        .map(|n| match format {
            "avro" => data.avro(&avro, n),
            _ => data.json(n),
        })
        .collect();
    let chunks: Vec<Vec<Option<&[u8]>>> = payloads
        .chunks(chunk)
        .map(|c| c.iter().map(|p| Some(p.as_slice())).collect())
        .collect();
    let decode = |chunk: &[Option<&[u8]>]| -> RecordBatch {
        let mut decoded = decode::decode_all(factory.as_ref(), chunk, 1 << 20);
        decoded.batches.remove(0).0
    };
    // Each stage's input, prepared for every chunk (so setup does not depend on `records`).
    let whole: Vec<Vec<u8>> = if stage == "decode-whole" {
        chunks
            .iter()
            .map(|c| {
                c.iter()
                    .flatten()
                    .copied()
                    .collect::<Vec<&[u8]>>()
                    .join(&b'\n')
            })
            .collect()
    } else {
        Vec::new()
    };
    let wire_schema = wire::json_wire_schema(&schema);
    let decoded: Vec<RecordBatch> = if matches!(stage, "decode" | "decode-whole" | "pipeline") {
        Vec::new()
    } else {
        chunks.iter().map(|c| decode(c)).collect()
    };
    let masked: Vec<RecordBatch> = if matches!(stage, "conform" | "encode") {
        decoded
            .iter()
            .map(|b| masker.apply(b).expect("mask"))
            .collect()
    } else {
        Vec::new()
    };
    let conformed: Vec<RecordBatch> = if stage == "encode" {
        masked
            .iter()
            .map(|b| wire::conform(b, &table).expect("conform"))
            .collect()
    } else {
        Vec::new()
    };
    let properties = parquet_properties_for(
        meshd_config::Codec::parse("zstd").expect("codec"),
        &["email"],
    );
    let mut out = Vec::with_capacity(64 << 20);
    let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(&table), Some(properties))
        .expect("parquet writer");
    let used = records.div_ceil(chunk);
    for i in 0..used {
        match stage {
            "decode" => drop(black_box(decode(&chunks[i]))),
            "decode-whole" => {
                let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(&wire_schema))
                    .with_batch_size(chunk)
                    .build_decoder()
                    .expect("json decoder");
                assert_eq!(decoder.decode(&whole[i]).expect("decode"), whole[i].len());
                drop(black_box(decoder.flush().expect("flush")));
            }
            "validate" => {
                assert!(meshd_runtime::validate::validate(&decoded[i], &columns).is_empty())
            }
            "mask" => drop(black_box(masker.apply(&decoded[i]).expect("mask"))),
            "conform" => drop(black_box(
                wire::conform(&masked[i], &table).expect("conform"),
            )),
            "encode" => writer.write(&conformed[i]).expect("write"),
            _ => {
                let batch = decode(&chunks[i]);
                assert!(meshd_runtime::validate::validate(&batch, &columns).is_empty());
                let masked = masker.apply(&batch).expect("mask");
                writer
                    .write(&wire::conform(&masked, &table).expect("conform"))
                    .expect("write");
            }
        }
    }
    // Closing flushes what was written: part of encoding, so it is inside the count (a
    // writer with nothing written closes at a constant cost, which cancels out).
    writer.close().expect("close");
    black_box(out.len());
}

/// Two one-partition topics of `n` and `2n` records for a consume case, as the inner runs
/// take them: `[bootstrap, topic]` for each.
fn topics(
    broker: &support::Tansu,
    data: Data,
    format: &str,
    stage: &str,
    n: usize,
) -> (Vec<String>, Vec<String>) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let schema = reference::schema();
    let avro = apache_avro::Schema::parse_str(&schema.text).expect("avro schema");
    let bootstrap = broker.bootstrap.clone();
    let mut out = Vec::new();
    for count in [n, 2 * n] {
        let topic = format!("count-{}-{format}-{stage}-{count}", data.name());
        let payloads: Vec<Vec<u8>> = (0..count as u64)
            .map(|i| match format {
                "avro" => data.avro(&avro, i),
                _ => data.json(i),
            })
            .collect();
        runtime.block_on(async {
            broker.create_topic(&topic, 1).await;
            measure::produce(&bootstrap, &topic, &payloads).await;
        });
        out.push(vec![bootstrap.clone(), topic]);
    }
    let large = out.pop().unwrap_or_default();
    (out.pop().unwrap_or_default(), large)
}

/// Reads `records` records of `topic` from the beginning, then stops: one message per poll
/// (`how` = `poll`) or a batch per call through [`BatchQueue`] (`batch`).
fn consume(how: &str, bootstrap: &str, topic: &str, records: usize) {
    use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let config = support::reader(bootstrap, "bench-instructions");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("offset");
    let mut seen = 0;
    if how == "poll" {
        let consumer: BaseConsumer = config.create().expect("consumer");
        consumer.assign(&tpl).expect("assign");
        while seen < records {
            if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(100)) {
                black_box(m.payload());
                seen += 1;
            }
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _in_runtime = runtime.enter();
    let consumer: Arc<StreamConsumer> = Arc::new(config.create().expect("consumer"));
    let queue = meshd_kafka_batch::BatchQueue::new(Arc::clone(&consumer));
    queue.route(topic, 0).expect("route");
    consumer.assign(&tpl).expect("assign");
    runtime.block_on(async {
        while seen < records {
            let taken = queue.take(meshd_kafka_batch::MAX_BATCH, |m| {
                black_box(m.ok().and_then(|m| m.payload()));
            });
            seen += taken;
            if taken == 0 {
                let _ = futures::FutureExt::now_or_never(consumer.recv());
                let _ = tokio::time::timeout(std::time::Duration::from_millis(100), queue.ready())
                    .await;
            }
        }
    });
}
