//! Table upkeep racing ingestion and SIGKILLs: retention (its cut moving through the stream's
//! event times), compaction and snapshot expiry run inside `meshd run` every 2 s while a stream
//! flows and the process is killed at random moments and restarted. A final `meshd maintain`
//! after a graceful stop applies the cut once more. Then, read by iceberg-rust, pyiceberg and
//! DuckDB: no key twice, no key older than the cut, every good key younger than the cut
//! present; the table keeps few snapshots, and every restart resumed from the newest snapshot
//! alone (offsets continue).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use rand::SeedableRng;
use support::product::Product;
use support::{Tansu, poll, python};

const TOPIC: &str = "upkeep-races";
const BAD_EVERY: u64 = 89;
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
const TABLE: &str = "payments.payment_transactions";
/// Event `n` of the demo stream happened at this time plus `n` steps.
const BASE_MS: i64 = 1_764_000_000_000;
const STEP_MS: i64 = 37;
/// At the start, the cut falls on this event: retention has work from the first run.
const CUT_AT_START: i64 = 3_000;

fn event_time(n: u64) -> i64 {
    BASE_MS + n as i64 * STEP_MS
}

/// The first event at or after `cut_ms`.
fn first_kept(cut_ms: i64) -> u64 {
    u64::try_from((cut_ms - BASE_MS + STEP_MS - 1).div_euclid(STEP_MS)).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_compaction_and_expiry_race_a_crash_loop_and_lose_nothing_younger() {
    let kills: u64 = std::env::var("MESHD_UPKEEP_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed = rand::random::<u32>() as u64;
    eprintln!("upkeep races: {kills} kills, seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 3).await;
    let period_ms = chrono::Utc::now().timestamp_millis() - event_time(CUT_AT_START as u64);
    let period_s = period_ms / 1000;
    let descriptor = Product::reference()
        .input_topic(TOPIC)
        .commit_interval(Duration::from_secs(1))
        .commit_max_records(300)
        .retention(&format!("{period_s}s"))
        .compact_above(3)
        .snapshot_expiry(Duration::from_secs(2), 3, Duration::from_secs(2))
        .write(dir.path());
    let cut_now = || chrono::Utc::now().timestamp_millis() - period_s * 1000;
    let (config, start) =
        support::crash_loop_member(dir.path(), &tansu.bootstrap, SESSION_TIMEOUT, &descriptor);
    let stream = support::Stream::start(&tansu.bootstrap, TOPIC, 1000, BAD_EVERY);
    support::kill_at_random(&start, kills, 500..3000, &mut rng, SESSION_TIMEOUT).await;
    let records = stream.stop().await;
    let last = start(kills);
    let good = |n: &u64| n % BAD_EVERY != BAD_EVERY - 1;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let from = first_kept(cut_now()) + 50;
        let keys = support::table_strings(&config, TABLE, "transaction_id")
            .await
            .unwrap_or_default();
        let have: std::collections::BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let missing = (from..records)
            .filter(good)
            .filter(|&n| !have.contains(meshd_runtime::demo::payment_event(n, 0).0.as_str()))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} young keys missing after 300 s\n{}",
            last.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let scrape = poll("upkeep to have done work", Duration::from_secs(60), || {
        let s = last.scrape()?;
        (s.sum("meshd_retention_rows_removed_total") > 0.0
            && s.sum_where("meshd_maintenance_runs_total", &[("outcome", "ok")]) > 0.0)
            .then_some(s)
    });
    eprintln!(
        "retention removed {} rows, compaction replaced {} files in the last run",
        scrape.sum("meshd_retention_rows_removed_total"),
        scrape.sum("meshd_compacted_files_total")
    );
    support::sigterm(&last.child);
    let mut last = last;
    poll("meshd to stop", Duration::from_secs(60), || {
        last.child.try_wait().unwrap()
    });

    let before = cut_now();
    let (code, out) = support::meshd_output(&[
        "maintain",
        "--config",
        config.to_str().unwrap(),
        descriptor.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    let after = cut_now();
    let (oldest_allowed, youngest_required) = (first_kept(before), first_kept(after));

    let keys = support::table_strings(&config, TABLE, "transaction_id")
        .await
        .unwrap();
    let distinct: std::collections::BTreeSet<u64> = keys
        .iter()
        .map(|k| k.trim_start_matches("tx-").parse().unwrap())
        .collect();
    assert_eq!(distinct.len(), keys.len(), "a key twice");
    assert!(
        distinct.first().is_none_or(|&n| n >= oldest_allowed),
        "a row older than the cut: {:?} < {oldest_allowed}",
        distinct.first()
    );
    let lost: Vec<u64> = (youngest_required..records)
        .filter(good)
        .filter(|n| !distinct.contains(n))
        .take(20)
        .collect();
    assert!(lost.is_empty(), "young keys lost: {lost:?}");
    assert!(distinct.iter().all(|n| good(n) && *n < records));
    assert!(
        oldest_allowed > CUT_AT_START as u64,
        "retention had work: the cut moved past {CUT_AT_START}"
    );

    let counted: serde_json::Value = serde_json::from_str(&support::run_python(
        &python,
        "table_keys.py",
        &[
            &support::catalog_spec(&config, None),
            TABLE,
            "transaction_id",
        ],
    ))
    .unwrap();
    for reader in [&counted, &counted["duckdb"]] {
        assert_eq!(reader["rows"], keys.len(), "{counted}");
        assert_eq!(reader["distinct"], keys.len(), "{counted}");
    }
    support::assert_offsets_continue(dir.path());
    let platform = meshd_config::PlatformConfig::load(Some(&config), std::iter::empty()).unwrap();
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
    let table = catalog
        .load_table(&iceberg::TableIdent::from_strs(TABLE.split('.')).unwrap())
        .await
        .unwrap();
    assert!(
        table.metadata().snapshots().len() <= 6,
        "expiry kept up: {} snapshots",
        table.metadata().snapshots().len()
    );
}
