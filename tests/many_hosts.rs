//! One product on many hosts: three `meshd run` processes that share nothing but Kafka
//! (Tansu), the catalog (PostgreSQL) and the bucket (moto's S3 server), each started in an
//! empty working directory of its own with the credentials a host would have (the standard AWS
//! variables and `MESHD_CATALOG_PASSWORD`). While at least 100,000 records flow, one process is
//! SIGKILLed and restarted after its group session expired, and another leaves with SIGTERM.
//! pyiceberg (through PostgreSQL) and DuckDB (on the metadata in S3) both find every good key
//! exactly once, every malformed one is a dead letter, and no host's folder holds table data.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::services::{Moto, PG_PASSWORD, Postgres};
use support::{Meshd, Tansu, free_port, poll, python, until_consuming};

const TOPIC: &str = "many-hosts";
const BAD_EVERY: u64 = 97;
const RECORDS: u64 = 100_000;
const SESSION: Duration = Duration::from_secs(6);

/// A host: its own folder and meshd.yaml (no secrets in it), and its metrics address.
struct Host {
    name: String,
    dir: PathBuf,
    config: PathBuf,
    listen: String,
}

fn host(root: &Path, name: &str, tansu: &Tansu, pg: &Postgres) -> Host {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = root.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap.servers: {bootstrap}\n  session.timeout.ms: \"{session}\"\n  heartbeat.interval.ms: \"500\"\ncatalog:\n  uri: {uri}\nwarehouse: s3://lake/warehouse\nmetrics:\n  listen: {listen}\n",
            bootstrap = tansu.bootstrap,
            session = SESSION.as_millis(),
            uri = pg.uri("mesh"),
        ),
    )
    .unwrap();
    Host {
        name: name.to_string(),
        dir,
        config,
        listen,
    }
}

fn start(host: &Host, root: &Path, descriptor: &Path, moto: &Moto) -> Meshd {
    let mut env = moto.aws_env();
    env.push(("MESHD_CATALOG_PASSWORD", PG_PASSWORD.to_string()));
    Meshd::start_on_host(
        &host.config,
        &[descriptor],
        &host.listen,
        root.join(format!("{}.log", host.name)),
        Some(&host.dir),
        &env,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_sharing_kafka_postgres_and_s3_run_one_product_exactly_once() {
    let dir = support::test_dir();
    let root = dir.path();
    let Some(tansu) = Tansu::start(root) else {
        return;
    };
    let Some(moto) = Moto::start(root) else {
        return;
    };
    let Some(pg) = Postgres::start(root) else {
        return;
    };
    let Some(python) = python() else { return };
    pg.create_database("mesh");
    moto.create_bucket("data-mesh");
    moto.create_bucket("lake");
    tansu.create_topic(TOPIC, 6).await;
    let product_dir = root.join("product");
    let descriptor = support::example_product(&product_dir, TOPIC, &[support::COMMIT_EVERY_SECOND]);

    let hosts: Vec<Host> = ["host-a", "host-b", "host-c"]
        .iter()
        .map(|name| host(root, name, &tansu, &pg))
        .collect();

    // Provisioning on the empty platform: a missing bucket is refused with its name, then the
    // namespace, table and dead-letter topic are created and the location proven writable.
    let provision = |descriptor: &Path| {
        let mut env = moto.aws_env();
        env.push(("MESHD_CATALOG_PASSWORD", PG_PASSWORD.to_string()));
        let config = hosts[0].config.display().to_string();
        let descriptor = descriptor.display().to_string();
        let (code, text) = support::meshd_output_on_host(
            &["provision", "--config", &config, &descriptor],
            Some(&hosts[0].dir),
            &env,
        );
        (code == Some(0), text)
    };
    let elsewhere = support::product::Product::reference()
        .input_topic(TOPIC)
        .location("s3://no-such-bucket/payments/transactions/v1")
        .write(&root.join("elsewhere"));
    let (ok, text) = provision(&elsewhere);
    assert!(
        !ok && text.contains("no such bucket") && text.contains("no-such-bucket"),
        "{text}"
    );
    let (ok, text) = provision(&descriptor);
    assert!(
        ok && text.contains("is writable") && text.contains("dead-letter topics ready"),
        "{text}"
    );
    let stream = support::Stream::start(&tansu.bootstrap, TOPIC, 2500, BAD_EVERY);
    let mut a = start(&hosts[0], root, &descriptor, &moto);
    until_consuming(&a, "host A");
    let b = start(&hosts[1], root, &descriptor, &moto);
    until_consuming(&b, "host B");
    let c = start(&hosts[2], root, &descriptor, &moto);
    until_consuming(&c, "host C");

    // A crashes and comes back once the group has expired it.
    a.kill();
    support::wait_out_session(SESSION).await;
    let a = start(&hosts[0], root, &descriptor, &moto);
    until_consuming(&a, "host A after its restart");
    // B leaves for good, committing what it holds.
    support::sigterm(&b.child);
    let mut b = b;
    let status = poll("B to exit after SIGTERM", Duration::from_secs(45), || {
        b.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "{}", b.log_text());

    poll(
        "the stream to reach 100,000 records",
        Duration::from_secs(180),
        || (stream.produced() >= RECORDS).then_some(()),
    );
    let records = stream.stop().await;

    // The test process reads the catalog and bucket with the settings in a file of its own.
    let reader = support::services::shared_platform_yaml(
        &root.join("reader.yaml"),
        &pg,
        "mesh",
        &moto,
        "s3://lake/warehouse",
    );
    let (rows, letters) = support::assert_exactly_once(
        &reader,
        Some(&moto),
        &python,
        &tansu.bootstrap,
        &format!("{TOPIC}.dlq"),
        (records, BAD_EVERY),
        || format!("A:\n{}\nC:\n{}", a.log_text(), c.log_text()),
    )
    .await;
    assert_eq!(
        rows as u64 + letters as u64,
        records,
        "rows + dead letters = produced"
    );
    support::assert_offsets_continue(root);

    // The hosts' secrets stay out of what they show.
    for (name, meshd) in [("A", &a), ("C", &c)] {
        let metrics = support::http_get(&meshd.metrics_url).unwrap_or_default();
        let ready = support::http_get(&meshd.metrics_url.replace("/metrics", "/readyz"))
            .unwrap_or_default();
        for (place, text) in [
            ("log", meshd.log_text()),
            ("/metrics", metrics),
            ("/readyz", ready),
        ] {
            for secret in [PG_PASSWORD, support::services::S3_SECRET_KEY] {
                assert!(!text.contains(secret), "a secret in host {name}'s {place}");
            }
        }
    }

    // Nothing of the table is on any host: it is all in the bucket.
    for host in &hosts {
        let local: Vec<_> = walk(&host.dir)
            .into_iter()
            .filter(|p| {
                let name = p.to_string_lossy();
                name.ends_with(".parquet") || name.ends_with(".avro") || name.ends_with(".db")
            })
            .collect();
        assert!(
            local.is_empty(),
            "{} keeps table files: {local:?}",
            host.name
        );
    }
    let in_bucket = moto.list("data-mesh", "payments/transactions/v1/data/");
    assert!(!in_bucket.is_empty(), "no data files in the bucket");
    eprintln!(
        "checked: {records} records over 3 hosts (one SIGKILLed and restarted, one SIGTERMed): {rows} rows each exactly once (pyiceberg and DuckDB), {letters} dead letters, {} data files in S3",
        in_bucket.len()
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}
