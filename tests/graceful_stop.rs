//! SIGTERM is a graceful stop: the worker stops consuming, commits what it buffered, commits
//! the group offsets and exits 0 well within the drain deadline; a restart continues without
//! losing or repeating a record.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use support::{Meshd, Tansu, poll, python, run_python};

const TOPIC: &str = "graceful-e2e";

async fn produce(bootstrap: &str, range: std::ops::Range<u64>) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for n in range {
        support::send_payment_event(&producer, TOPIC, n, 0).await;
    }
}

/// SIGTERM, then the exit status within `deadline`.
fn terminate(meshd: &mut Meshd, deadline: Duration) -> std::process::ExitStatus {
    support::sigterm(&meshd.child);
    poll("meshd to exit after SIGTERM", deadline, || {
        meshd.child.try_wait().unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_what_is_buffered_and_a_restart_continues_exactly() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 2).await;
    // A commit interval far longer than the test: only the drain on SIGTERM commits.
    let descriptor = support::product::Product::reference()
        .input_topic(TOPIC)
        .commit_interval(Duration::from_secs(600))
        .write(dir.path());
    let start = |run: &str| {
        let name = format!("meshd-{run}");
        let (config, listen) = support::meshd_config(
            dir.path(),
            &name,
            &tansu.bootstrap,
            &["session.timeout.ms: \"6000\""],
            "",
        );
        Meshd::start(
            &config,
            &[&descriptor],
            &listen,
            dir.path().join(format!("{name}.log")),
        )
    };

    produce(&tansu.bootstrap, 0..3000).await;
    let mut first = start("1");
    poll(
        "all 3,000 records consumed and buffered, none committed",
        Duration::from_secs(120),
        || {
            let s = first.scrape()?;
            (s.sum("meshd_records_consumed_total") == 3000.0
                && s.sum("meshd_records_committed_total") == 0.0)
                .then_some(())
        },
    );
    let status = terminate(&mut first, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", first.log_text());
    assert!(first.log_text().contains("Worker stopped."));

    let table_ids = |expected: usize| {
        let out = run_python(
            &python,
            "read_table.py",
            &[
                &support::sqlite_spec(dir.path()),
                "payments.payment_transactions",
            ],
        );
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let ids: Vec<String> = doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["transaction_id"].as_str().unwrap().to_string())
            .collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "duplicates in the table");
        assert_eq!(ids.len(), expected);
    };
    table_ids(3000);

    // The group's offsets were committed after the table commit (for lag visibility).
    let group: BaseConsumer = tansu
        .client()
        .set("group.id", "meshd.payments.payment-transactions")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    tpl.add_partition(TOPIC, 1);
    let committed = group
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            other => panic!("no committed offset: {other:?}"),
        })
        .sum();
    assert_eq!(total, 3000);

    // A restart reads only what is new.
    produce(&tansu.bootstrap, 3000..4000).await;
    let mut second = start("2");
    poll(
        "the second run to consume the 1,000 new records",
        Duration::from_secs(120),
        || (second.scrape()?.sum("meshd_records_consumed_total") == 1000.0).then_some(()),
    );
    let status = terminate(&mut second, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", second.log_text());
    table_ids(4000);
}
