//! Backpressure: with the sink stalled (the catalog locked) and a large backlog in the topic,
//! the worker stops consuming once what it holds cannot be committed; its resident memory stays
//! bounded (read from /proc) while the backlog grows, and consumption resumes when the sink
//! comes back.
//!
//! `MESHD_BACKLOG_MIB` sets the backlog (default 2048 MiB).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{CatalogLock, Meshd, Tansu, poll};

const TOPIC: &str = "backpressure";
/// The bound asserted on the worker's resident memory.
const RSS_LIMIT_MIB: f64 = 256.0;

/// Resident memory of a process in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A valid reference event of about 4 KiB (a long e-mail address), so the backlog is large in
/// bytes without millions of records.
fn big_event(n: u64) -> (String, Vec<u8>) {
    let (id, json) = meshd_runtime::demo::payment_event(n, 0);
    let padded = String::from_utf8(json).unwrap().replacen(
        "@example.com",
        &format!("@{}.example.com", "p".repeat(4000)),
        1,
    );
    (id, padded.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sink_pauses_consumption_and_memory_stays_bounded() {
    let backlog_mib: u64 = std::env::var("MESHD_BACKLOG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    tansu.create_topic(TOPIC, 3).await;
    let descriptor = support::example_product(dir.path(), TOPIC, &[support::COMMIT_EVERY_SECOND]);
    let (config, listen) = support::meshd_config(dir.path(), "meshd", &tansu.bootstrap, &[], "");
    let meshd = Meshd::start(
        &config,
        &[&descriptor],
        &listen,
        dir.path().join("meshd.log"),
    );
    let pid = meshd.child.id();
    let producer: FutureProducer = tansu
        .client()
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .create()
        .unwrap();
    let broker_log = dir.path().join("tansu.log");
    let send = |range: std::ops::Range<u64>| {
        let producer = &producer;
        let broker_log = &broker_log;
        async move {
            let events: Vec<(String, Vec<u8>)> = range.map(big_event).collect();
            let sends = events.iter().map(|(id, value)| {
                producer.send(
                    FutureRecord::to(TOPIC).key(id).payload(value),
                    Duration::from_secs(60),
                )
            });
            for sent in futures::future::join_all(sends).await {
                // The error alone: the unsent message would bury it under 4 KiB of padding.
                if let Err((error, _)) = sent {
                    let log = std::fs::read_to_string(broker_log).unwrap_or_default();
                    let tail = &log[log.floor_char_boundary(log.len().saturating_sub(2000))..];
                    panic!(
                        "producing the {backlog_mib} MiB backlog failed: {error} (a full disk is the usual cause); the broker's log ends:\n{tail}"
                    );
                }
            }
        }
    };
    send(0..100).await;
    poll("the first commit", Duration::from_secs(120), || {
        (meshd.scrape()?.sum("meshd_records_committed_total") >= 100.0).then_some(())
    });

    let lock = CatalogLock::take(&dir.path().join("catalog.db"));
    let record_bytes = big_event(0).1.len() as u64;
    let records = backlog_mib * 1024 * 1024 / record_bytes;
    let started = Instant::now();
    let mut peak: f64 = 0.0;
    let mut next = 100;
    while next < 100 + records {
        let end = (next + 2000).min(100 + records);
        send(next..end).await;
        next = end;
        peak = peak.max(rss_mib(pid).unwrap());
    }
    let produced_in = started.elapsed();
    // Keep watching after the backlog is in place: nothing may creep up.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(10) {
        peak = peak.max(rss_mib(pid).unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let s = meshd.scrape().unwrap();
    let consumed_mib = s.sum("meshd_bytes_consumed_total") / 1024.0 / 1024.0;
    eprintln!(
        "backlog {backlog_mib} MiB ({records} records of {record_bytes} B) produced in {produced_in:.0?} with the sink stalled; worker consumed {consumed_mib:.1} MiB, peak RSS {peak:.1} MiB"
    );
    assert!(
        peak <= RSS_LIMIT_MIB,
        "peak RSS {peak:.1} MiB above {RSS_LIMIT_MIB} MiB with a {backlog_mib} MiB backlog"
    );
    assert!(
        consumed_mib < backlog_mib as f64 / 4.0,
        "the worker kept consuming ({consumed_mib:.1} MiB) while its sink was stalled"
    );

    drop(lock);
    let before = s.sum("meshd_records_committed_total");
    poll(
        "consumption and commits to resume",
        Duration::from_secs(120),
        || {
            let now = meshd.scrape()?.sum("meshd_records_committed_total");
            (now >= before + 10_000.0).then_some(())
        },
    );
    let after = rss_mib(pid).unwrap();
    eprintln!("resumed: RSS {after:.1} MiB while draining");
}
