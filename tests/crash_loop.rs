//! Crash loop: a stream of uniquely keyed records goes to a real broker while `meshd run` is
//! SIGKILLed at random moments and restarted. At the end every good key is in the table exactly
//! once (checked with iceberg-rust's scan and with pyiceberg) and every malformed one is in the
//! dead-letter topic.
//!
//! Run alone with more kills: `MESHD_CRASH_KILLS=100 MESHD_CRASH_RATE=2000 cargo test -p
//! meshd-runtime --test crash_loop -- --nocapture`; `MESHD_CRASH_SEED` replays a run's kill times.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::{Tansu, python};

const TOPIC: &str = "crash-loop";
/// Every 97th record is malformed (five kinds in turn).
const BAD_EVERY: u64 = 97;
/// The consumer session timeout the test runs with (`session.timeout.ms` below).
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_exactly_once_after_random_sigkills() {
    let kills = setting("MESHD_CRASH_KILLS", 20);
    let rate = setting("MESHD_CRASH_RATE", 1000).max(10);
    let seed = setting("MESHD_CRASH_SEED", rand::random::<u32>() as u64);
    eprintln!("crash loop: {kills} kills, {rate} records/s, MESHD_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 3).await;
    // Commits every second and every 500 rows, so kills land before, during and after commits.
    let descriptor = support::product::Product::reference()
        .input_topic(TOPIC)
        .commit_interval(Duration::from_secs(1))
        .commit_max_records(500)
        .write(dir.path());
    // A short session: a restarted worker gets the partitions once the killed member expires.
    let (config, start) =
        support::crash_loop_member(dir.path(), &tansu.bootstrap, SESSION_TIMEOUT, &descriptor);

    // The stream runs for the whole kill loop.
    let stream = support::Stream::start(&tansu.bootstrap, TOPIC, rate, BAD_EVERY);

    let started = Instant::now();
    let mut at_kill = Vec::new();
    for run in 0..kills {
        let mut meshd = start(run);
        // One kill in four during startup (catalog, group join); the others at a random
        // moment after the worker began consuming: mid-batch, mid-commit or just after one.
        if run % 4 != 3 {
            support::until_consuming(&meshd, "the restarted worker");
        }
        let after = Duration::from_millis(rng.random_range(0..2500));
        tokio::time::sleep(after).await;
        let s = meshd.scrape();
        let count = |name: &str| s.as_ref().map_or(0.0, |s| s.sum(name)) as u64;
        meshd.kill();
        support::wait_out_session(SESSION_TIMEOUT).await;
        at_kill.push((
            count("meshd_records_consumed_total"),
            count("meshd_records_committed_total") + count("meshd_records_dead_lettered_total"),
        ));
    }
    let records = stream.stop().await;
    eprintln!(
        "{kills} kills in {:.0?}; (consumed, committed or dead-lettered) by each killed process: {at_kill:?}",
        started.elapsed()
    );
    let killed_holding_data = at_kill.iter().filter(|(c, m)| c > m).count();
    assert!(
        killed_holding_data >= kills as usize / 4,
        "too few kills hit a worker holding uncommitted records: {at_kill:?}"
    );

    support::assert_offsets_continue(dir.path());
    let last = start(kills);
    let (rows, letters) = support::assert_exactly_once(
        &config,
        None,
        &python,
        &tansu.bootstrap,
        &format!("{TOPIC}.dlq"),
        (records, BAD_EVERY),
        || last.log_text(),
    )
    .await;
    eprintln!(
        "checked: {records} records, {rows} rows each exactly once (iceberg-rust and pyiceberg), {letters} dead letters, {kills} kills survived ({killed_holding_data} holding uncommitted records)"
    );
    drop(last);
}
