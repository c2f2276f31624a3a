//! Several output ports per product: every input record goes to every port, each port takes
//! its projection of the record and masks it its own way, and each table is exactly once.
//!
//! One product, two tables: the reference port (`email` masked with SHA256) and an `audit`
//! port whose schema drops `email`. A stream flows while `meshd run` is SIGKILLed at random
//! moments and restarted; at the end each table holds every good key exactly once, `email`
//! is masked in the first and absent from the second. Snapshot expiry runs inside `meshd run`
//! every 2 s (snapshots older than 2 s beyond the newest 3) all along, racing the commits and
//! the kills: every restart resumes from the newest snapshot alone.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use rand::SeedableRng;
use support::product::{Product, Schema};
use support::{Tansu, python};

const TOPIC: &str = "two-ports";
const BAD_EVERY: u64 = 97;
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
const AUDIT: &str = "payments.payment_audit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_output_ports_are_each_exactly_once_through_sigkills() {
    let kills: u64 = std::env::var("MESHD_PORTS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed = rand::random::<u32>() as u64;
    eprintln!("two output ports: {kills} kills, seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    let Some(python) = python() else { return };
    tansu.create_topic(TOPIC, 3).await;
    let descriptor = Product::reference()
        .input_topic(TOPIC)
        .commit_interval(Duration::from_secs(1))
        .commit_max_records(500)
        .snapshot_expiry(Duration::from_secs(2), 3, Duration::from_secs(2))
        .add_output_port("payment-audit", Schema::reference().without_field("email"))
        .write(dir.path());
    let (config, start) =
        support::crash_loop_member(dir.path(), &tansu.bootstrap, SESSION_TIMEOUT, &descriptor);
    let stream = support::Stream::start(&tansu.bootstrap, TOPIC, 1000, BAD_EVERY);
    support::kill_at_random(&start, kills, 0..2500, &mut rng, SESSION_TIMEOUT).await;
    let records = stream.stop().await;
    let last = start(kills);
    let dlq = format!("{TOPIC}.dlq");
    for table in ["payments.payment_transactions", AUDIT] {
        let (rows, letters) = support::assert_exactly_once_in(
            table,
            &config,
            None,
            &python,
            &tansu.bootstrap,
            &dlq,
            (records, BAD_EVERY),
            || last.log_text(),
        )
        .await;
        eprintln!(
            "{table}: {records} records, {rows} rows each exactly once, {letters} dead letters"
        );
    }
    support::assert_offsets_continue(dir.path());

    let emails = support::table_strings(&config, "payments.payment_transactions", "email")
        .await
        .unwrap();
    assert!(
        emails.iter().all(|e| !e.contains('@') && e.len() == 64),
        "email is masked in the reference port"
    );
    let platform = meshd_config::PlatformConfig::load(Some(&config), std::iter::empty()).unwrap();
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
    let audit = catalog
        .load_table(&iceberg::TableIdent::from_strs(AUDIT.split('.')).unwrap())
        .await
        .unwrap();
    let schema = audit.metadata().current_schema();
    assert!(schema.field_by_name("email").is_none(), "{schema:?}");
    assert!(schema.field_by_name("transaction_id").is_some());
    let s = last.scrape().unwrap();
    for table in ["payments.payment_transactions", AUDIT] {
        assert!(
            s.sum_where("meshd_commits_total", &[("port", table)]) > 0.0,
            "commits of {table} are counted under its own port label"
        );
    }
    // Upkeep kept going beside ingestion: each table ends with the newest few snapshots.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut counts = Vec::new();
        for table in ["payments.payment_transactions", AUDIT] {
            let ident = iceberg::TableIdent::from_strs(table.split('.')).unwrap();
            counts.push(
                catalog
                    .load_table(&ident)
                    .await
                    .unwrap()
                    .metadata()
                    .snapshots()
                    .len(),
            );
        }
        let ok_runs = last.scrape().map_or(0.0, |s| {
            s.sum_where("meshd_maintenance_runs_total", &[("outcome", "ok")])
        });
        if ok_runs > 0.0 && counts.iter().all(|&n| n <= 5) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expiry did not shrink the tables: {counts:?} snapshots, {ok_runs} runs\n{}",
            last.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
