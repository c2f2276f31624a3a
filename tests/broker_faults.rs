//! Broker faults, injected with librdkafka's mock cluster (real brokers on loopback TCP, with
//! a complete group coordinator): errors on fetch, on offset commit and on the dead-letter
//! produce, partition leader changes, every broker down and back, and a group member killed
//! with nobody replacing it. Two `meshd run` processes share the group throughout; they keep
//! going, lose nothing, write nothing twice, and freshness shows the outage.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::{Meshd, poll, python};

const TOPIC: &str = "broker-faults";
const BAD_EVERY: u64 = 89;
const BROKERS: i32 = 3;

/// Records consumed so far by the processes still alive.
fn consumed(processes: &[&Meshd]) -> f64 {
    processes
        .iter()
        .filter_map(|m| m.scrape())
        .map(|s| s.sum("meshd_records_consumed_total"))
        .sum()
}

/// Waits until the processes consumed `more` records beyond now: they keep going.
fn keeps_going(processes: &[&Meshd], more: f64, after: &str) {
    let from = consumed(processes);
    poll(
        &format!("consumption to continue after {after}"),
        Duration::from_secs(90),
        || (consumed(processes) >= from + more).then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_of_the_broker_lose_nothing_and_show_in_freshness() {
    let dir = support::test_dir();
    let Some(python) = python() else { return };
    let cluster = MockCluster::new(BROKERS).unwrap();
    cluster.create_topic(TOPIC, 3, 3).unwrap();
    cluster.create_topic(&format!("{TOPIC}.dlq"), 1, 3).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let descriptor = support::example_product(dir.path(), TOPIC, &[support::COMMIT_EVERY_SECOND]);
    let start = |name: &str| {
        support::start_member(
            dir.path(),
            name,
            &bootstrap,
            &[
                "session.timeout.ms: \"6000\"",
                "heartbeat.interval.ms: \"500\"",
                // A small prefetch, so an outage leaves records in the broker.
                "queued.max.messages.kbytes: \"256\"",
            ],
            &descriptor,
        )
    };

    let stream = support::Stream::start(&bootstrap, TOPIC, 1000, BAD_EVERY);
    let (a, config) = start("meshd-a");
    let (mut b, _) = start("meshd-b");
    support::until_consuming(&a, "A");
    support::until_consuming(&b, "B");
    let both = [&a, &b];

    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE,
        ]
        .repeat(5),
    );
    keeps_going(&both, 2000.0, "20 fetch errors");
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ]
        .repeat(5),
    );
    keeps_going(&both, 2000.0, "15 offset-commit errors");
    // Produce errors hit the dead-letter producer (and the test's idempotent producer).
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ]
        .repeat(5),
    );
    keeps_going(&both, 2000.0, "15 produce errors");
    for partition in 0..3 {
        cluster
            .partition_leader(TOPIC, partition, Some((partition + 1) % BROKERS + 1))
            .unwrap();
    }
    cluster
        .partition_leader(&format!("{TOPIC}.dlq"), 0, Some(3))
        .unwrap();
    keeps_going(&both, 2000.0, "every partition's leader moved");

    // Every broker down: the workers cannot see their input, and freshness must say so.
    let outage = Duration::from_secs(8);
    for id in 1..=BROKERS {
        cluster.broker_down(id).unwrap();
    }
    let down_at = Instant::now();
    let mut worst: f64 = 0.0;
    while down_at.elapsed() < outage {
        for m in both {
            if let Some(s) = m.scrape() {
                worst = worst.max(s.sum("meshd_freshness_seconds"));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for id in 1..=BROKERS {
        cluster.broker_up(id).unwrap();
    }
    assert!(
        worst >= outage.as_secs_f64() - 3.0,
        "freshness peaked at {worst} s during an {outage:?} outage of every broker"
    );
    keeps_going(&both, 2000.0, "the brokers came back");

    // A member dies and nobody replaces it: its partitions move to A once its session expires.
    b.kill();
    keeps_going(&[&a], 5000.0, "B was killed");
    let records = stream.stop().await;
    let (rows, letters) = support::assert_exactly_once(
        &config,
        None,
        &python,
        &bootstrap,
        &format!("{TOPIC}.dlq"),
        (records, BAD_EVERY),
        || a.log_text(),
    )
    .await;
    support::assert_offsets_continue(dir.path());
    poll(
        "A's freshness to return to 0",
        Duration::from_secs(60),
        || (a.scrape()?.sum("meshd_freshness_seconds") == 0.0).then_some(()),
    );
    eprintln!(
        "checked: {records} records through fetch, offset-commit and produce errors, leader moves, an {outage:?} outage (freshness peaked at {worst:.1} s) and a killed member: {rows} rows each exactly once, {letters} dead letters"
    );
}
