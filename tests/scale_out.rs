//! Rebalance and scale-out on one machine: up to three `meshd run` processes for one product
//! share a consumer group on Tansu while a stream flows. Four processes join and two leave
//! over time; partitions move between them, each new owner resumes from the offsets recorded
//! in the table, and concurrent commits to the one table retry on conflict. At the end every
//! good key is in the table exactly once and every malformed one is in the dead-letter topic.
//!
//! Members commit what they hold when partitions are revoked (cooperative-sticky assignment),
//! so joins and leaves re-read (almost) nothing: the test reports and bounds the re-reads.
//!
//! A member that is SIGKILLed while others stay is covered by `broker_faults.rs` on librdkafka's
//! mock cluster: Tansu 0.6.0's coordinator strands a dead member's partitions when the member
//! expires in a formed group (`Inner<Formed>::heartbeat` drops it without a new generation).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{Tansu, poll, python, until_consuming};

const TOPIC: &str = "scale-out";
const BAD_EVERY: u64 = 101;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_join_and_leave_and_every_key_lands_once() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 6).await;
    let descriptor = support::example_product(dir.path(), TOPIC, &[support::COMMIT_EVERY_SECOND]);
    let start = |name: &str| {
        support::start_member(
            dir.path(),
            name,
            &tansu.bootstrap,
            &[
                "session.timeout.ms: \"6000\"",
                "heartbeat.interval.ms: \"500\"",
            ],
            &descriptor,
        )
    };

    let stream = support::Stream::start(&tansu.bootstrap, TOPIC, 1000, BAD_EVERY);

    let (mut a, config) = start("meshd-a");
    until_consuming(&a, "the first process");
    let (mut b, _) = start("meshd-b");
    until_consuming(&b, "the second process (scale-out to two)");
    let (c, _) = start("meshd-c");
    until_consuming(&c, "the third process (scale-out to three)");
    let a_before = a.scrape().unwrap().sum("meshd_records_consumed_total");
    // A graceful leave: A commits what it holds and its partitions move.
    support::sigterm(&a.child);
    let status = poll("A to exit after SIGTERM", Duration::from_secs(30), || {
        a.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "{}", a.log_text());
    // B is replaced: D joins, then B leaves with SIGTERM.
    let (d, _) = start("meshd-d");
    until_consuming(&d, "the fourth process");
    let b_before = b.scrape().unwrap().sum("meshd_records_consumed_total");
    support::sigterm(&b.child);
    let status = poll("B to exit after SIGTERM", Duration::from_secs(30), || {
        b.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "{}", b.log_text());
    let c_before = c.scrape().unwrap().sum("meshd_records_consumed_total");
    let d_before = d.scrape().unwrap().sum("meshd_records_consumed_total");
    poll(
        "C and D to share the stream",
        Duration::from_secs(90),
        || {
            let c_now = c.scrape()?.sum("meshd_records_consumed_total");
            let d_now = d.scrape()?.sum("meshd_records_consumed_total");
            (c_now > c_before + 1000.0 && d_now > d_before + 1000.0).then_some(())
        },
    );
    let records = stream.stop().await;
    eprintln!(
        "{records} records; consumed by A {a_before} and B {b_before} (before their SIGTERM), C {c_before} and D {d_before} (when D began)"
    );

    let (rows, letters) = support::assert_exactly_once(
        &config,
        None,
        &python,
        &tansu.bootstrap,
        &format!("{TOPIC}.dlq"),
        (records, BAD_EVERY),
        || format!("C:\n{}\nD:\n{}", c.log_text(), d.log_text()),
    )
    .await;
    support::assert_offsets_continue(dir.path());
    // Re-reads: records consumed beyond those produced. A and B are counted just before their
    // SIGTERM (they stop consuming at it); C and D now that every record is in the table.
    let consumed = a_before
        + b_before
        + c.scrape().unwrap().sum("meshd_records_consumed_total")
        + d.scrape().unwrap().sum("meshd_records_consumed_total");
    let rereads = consumed - records as f64;
    eprintln!(
        "re-reads: {rereads} ({consumed} consumed for {records} produced, {:.1} %)",
        100.0 * rereads / records as f64
    );
    // With eager rebalancing every join and leave dropped what every member held: 169–208 %
    // re-reads in this test (stop 19, two runs). Committing on revoke with cooperative-sticky
    // assignment measured 0 in four runs; 2 % leaves room for a commit that misses the revoke
    // deadline on a slow machine.
    assert!(
        rereads <= 0.02 * records as f64,
        "{rereads} records were read twice ({consumed} consumed for {records} produced)"
    );
    for (name, meshd) in [("C", &c), ("D", &d)] {
        let s = meshd.scrape().unwrap();
        eprintln!(
            "{name}: {} commits, {} fenced, {} failed",
            s.sum_where("meshd_commits_total", &[("outcome", "committed")]),
            s.sum_where("meshd_commits_total", &[("outcome", "fenced")]),
            s.sum_where("meshd_commits_total", &[("outcome", "failed")]),
        );
    }
    eprintln!("checked: {rows} rows each exactly once, {letters} dead letters");
}
