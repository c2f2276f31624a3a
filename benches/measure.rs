//! What the end-to-end benchmarks share: reading a process's CPU time and memory from /proc,
//! and producing a backlog.
#![allow(dead_code)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// A bench setting from the environment.
pub fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// CPU seconds (user + system) a process has used, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

/// Peak resident memory of a process in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Bytes in MB (10^6).
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Produces every payload; returns (partition, offset, produce time in epoch ms) of each.
pub async fn produce(bootstrap: &str, topic: &str, payloads: &[Vec<u8>]) -> Vec<(i32, i64, i64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "10")
        // Batches under the consumers' 1 MiB max.partition.fetch.bytes: librdkafka's mock
        // cluster does not return a first batch larger than that, and a fetch would stall.
        .set("batch.size", "262144")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut out = Vec::with_capacity(payloads.len());
    for block in payloads.chunks(20_000) {
        let sends = block.iter().map(|p| {
            producer.send(
                FutureRecord::<(), [u8]>::to(topic).payload(p.as_slice()),
                Duration::from_secs(60),
            )
        });
        for sent in futures::future::join_all(sends).await {
            let delivery = sent.unwrap();
            out.push((
                delivery.partition,
                delivery.offset,
                delivery.timestamp.to_millis().unwrap_or(0),
            ));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    out
}
