//! Tables that leave the machine: the output port on moto's S3 server with the SQL catalog on
//! PostgreSQL, both real servers on loopback. Data files (one large enough for a multipart
//! upload), manifests and metadata land under the port's `s3://` location; commits keep their
//! exactly-once checks on PostgreSQL's compare-and-swap; pyiceberg and DuckDB read the table
//! from S3; orphans are listed and deleted on S3; and bad settings (missing bucket, unreachable
//! endpoint, wrong password, malformed URI, unknown key) are clear errors that never carry a
//! secret.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use meshd_config::PlatformConfig;
use meshd_sinks::SinkError;
use meshd_sinks::iceberg::{
    CommitOutcome, DataFiles, Offsets, OutputTable, TableSpec, open_catalog, probe_location,
};
use support::services::{Moto, PG_PASSWORD, Postgres, S3_SECRET_KEY};

const LOCATION: &str = "s3://data-mesh/payments/keys/v1";
/// Rows of the first commit: one data file of ~12 MB, above the 8 MiB multipart part size.
const BIG: u64 = 600_000;

/// meshd.yaml for PostgreSQL + S3 with every setting in the file (`storage.*` keys), as the
/// test process itself reads it.
fn platform_yaml(dir: &Path, pg: &Postgres, moto: &Moto, database: &str) -> std::path::PathBuf {
    support::services::shared_platform_yaml(
        &dir.join(format!("{database}.yaml")),
        pg,
        database,
        moto,
        "s3://lake/warehouse",
    )
}

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(
                1,
                "key",
                Type::Primitive(PrimitiveType::String),
            )),
            Arc::new(NestedField::optional(
                2,
                "payload",
                Type::Primitive(PrimitiveType::String),
            )),
        ])
        .build()
        .unwrap()
}

/// Rows `from..to` with a payload that does not compress (hex of a hash chain), so that a few
/// hundred thousand rows make a Parquet file above the multipart part size.
fn batch(table: &OutputTable, from: u64, to: u64) -> RecordBatch {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let arrow =
        iceberg::arrow::schema_to_arrow_schema(table.table().metadata().current_schema()).unwrap();
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let keys: Vec<String> = (from..to).map(|n| format!("k-{n}")).collect();
    let payloads: Vec<String> = (from..to)
        .map(|n| {
            let a = hasher.hash_one(n);
            let b = hasher.hash_one(a);
            format!("{a:016x}{b:016x}")
        })
        .collect();
    RecordBatch::try_new(
        Arc::new(arrow),
        vec![
            Arc::new(StringArray::from(keys)),
            Arc::new(StringArray::from(payloads)),
        ],
    )
    .unwrap()
}

fn offsets(next: u64) -> Offsets {
    let mut o = Offsets::new();
    o.entry("in".into())
        .or_default()
        .insert(0, i64::try_from(next).unwrap());
    o
}

async fn write(table: &OutputTable, from: u64, to: u64) -> Vec<iceberg::spec::DataFile> {
    let mut files = DataFiles::new(table.table(), "t".into(), 512 << 20).unwrap();
    let mut at = from;
    while at < to {
        let end = (at + 50_000).min(to);
        files.write(batch(table, at, end)).await.unwrap();
        at = end;
    }
    files.close().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_on_s3_with_a_postgres_catalog_are_exactly_once_and_readable_by_others() {
    let dir = support::test_dir();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    let Some(python) = support::python() else {
        return;
    };
    pg.create_database("shared");
    moto.create_bucket("data-mesh");
    moto.create_bucket("lake");
    let config_path = platform_yaml(dir.path(), &pg, &moto, "shared");
    let platform = PlatformConfig::load(Some(&config_path), std::iter::empty()).unwrap();

    probe_location(&platform, LOCATION).await.unwrap();
    let catalog = open_catalog(&platform).await.unwrap();
    let spec = TableSpec {
        namespace: "payments".into(),
        name: "keys".into(),
        location: LOCATION.into(),
        schema: schema(),
        partitioning: vec![],
        properties: HashMap::from([
            ("datamesh.domain".to_string(), "payments".to_string()),
            (
                "datamesh.owner".to_string(),
                "payment-team@example.com".to_string(),
            ),
        ]),
    };
    let mut table = OutputTable::open(Arc::clone(&catalog), &spec, "g".into())
        .await
        .unwrap();

    // 1. A large file (multipart) and a small one, in two commits; the second retried.
    let big = write(&table, 0, BIG).await;
    let big_bytes: u64 = big.iter().map(|f| f.file_size_in_bytes()).sum();
    assert!(
        big_bytes > 8 << 20,
        "the first data file ({big_bytes} bytes) must exceed one 8 MiB upload part"
    );
    assert_eq!(
        table
            .commit(big, &offsets(BIG), &Offsets::new(), "c1", &[])
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    let small = write(&table, BIG, BIG + 1_000).await;
    assert_eq!(
        table
            .commit(
                small.clone(),
                &offsets(BIG + 1_000),
                &offsets(BIG),
                "c2",
                &[]
            )
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        table
            .commit(small, &offsets(BIG + 1_000), &offsets(BIG), "c2", &[])
            .await
            .unwrap(),
        CommitOutcome::AlreadyCommitted,
        "a repeated commit id is recognised on PostgreSQL"
    );

    // 2. A stale worker (expects the table at 400,000) is fenced.
    let stale = write(&table, BIG + 1_000, BIG + 1_010).await;
    let fenced = table
        .commit(stale, &offsets(BIG + 1_010), &offsets(BIG), "c3", &[])
        .await
        .unwrap_err();
    assert!(matches!(fenced, SinkError::Fenced { .. }), "{fenced}");

    // 3. Everything lives under the port's location in the bucket.
    let keys = moto.list("data-mesh", "payments/keys/v1/");
    let count = |part: &str| keys.iter().filter(|k| k.contains(part)).count();
    assert!(count("/data/") >= 3, "{keys:?}");
    assert!(
        count("/metadata/") >= 4,
        "metadata, manifests, manifest lists: {keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.ends_with(".metadata.json")),
        "{keys:?}"
    );
    assert!(
        moto.list("lake", "").is_empty(),
        "nothing outside the port's location"
    );

    // 4. Independent readers from S3: pyiceberg through PostgreSQL, DuckDB on the metadata.
    let out = support::run_python(
        &python,
        "table_keys.py",
        &[
            &support::catalog_spec(&config_path, Some(&moto)),
            "payments.keys",
            "key",
        ],
    );
    let counted: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counted["rows"], BIG + 1_000, "pyiceberg: {counted}");
    assert_eq!(counted["distinct"], BIG + 1_000, "pyiceberg: {counted}");
    assert_eq!(counted["duckdb"]["rows"], BIG + 1_000, "DuckDB: {counted}");
    assert_eq!(
        counted["duckdb"]["distinct"],
        BIG + 1_000,
        "DuckDB: {counted}"
    );
    let namespace = catalog
        .get_namespace(&iceberg::NamespaceIdent::new("payments".into()))
        .await
        .unwrap();
    assert_eq!(namespace.properties().get("domain").unwrap(), "payments");
    assert_eq!(
        namespace.properties().get("owner").unwrap(),
        "payment-team@example.com"
    );

    // 5. The fenced worker's file is an orphan on S3: listed, then deleted, and every row
    //    still reads.
    let storage = meshd_sinks::iceberg::storage(&platform).unwrap();
    let current = catalog
        .load_table(&iceberg::TableIdent::from_strs(["payments", "keys"]).unwrap())
        .await
        .unwrap();
    let orphans = meshd_sinks::iceberg::orphans::orphan_files(&current, &storage)
        .await
        .unwrap();
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert!(
        orphans[0]
            .location
            .starts_with("s3://data-mesh/payments/keys/v1/data/"),
        "{orphans:?}"
    );
    current
        .file_io()
        .delete(&orphans[0].location)
        .await
        .unwrap();
    assert!(
        meshd_sinks::iceberg::orphans::orphan_files(&current, &storage)
            .await
            .unwrap()
            .is_empty()
    );
    let again = support::run_python(
        &python,
        "table_keys.py",
        &[
            &support::catalog_spec(&config_path, Some(&moto)),
            "payments.keys",
            "key",
        ],
    );
    assert!(
        again.contains(&format!("\"rows\": {}", BIG + 1_000)),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_storage_and_catalog_settings_are_clear_errors_without_secrets() {
    let dir = support::test_dir();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    pg.create_database("bad");
    let good = PlatformConfig::load(
        Some(&platform_yaml(dir.path(), &pg, &moto, "bad")),
        std::iter::empty(),
    )
    .unwrap();
    let show = |e: &SinkError| {
        let text = e.to_string();
        for secret in [PG_PASSWORD, S3_SECRET_KEY] {
            assert!(!text.contains(secret), "a secret in an error: {text}");
        }
        text
    };

    // No such bucket.
    let err = probe_location(&good, "s3://no-such-bucket/t")
        .await
        .unwrap_err();
    let text = show(&err);
    assert!(
        text.contains("no such bucket") && text.contains("no-such-bucket"),
        "{text}"
    );

    // Refused: the store answers 403 AccessDenied (a bucket policy, a revoked key).
    let proxy = support::services::FaultProxy::start(&moto.endpoint);
    proxy.set(support::services::Fault::Forbidden);
    let mut refused = good.clone();
    refused.storage.insert(
        "endpoint".into(),
        meshd_config::Sensitive::new(proxy.endpoint.clone()),
    );
    let err = probe_location(&refused, "s3://lake/t").await.unwrap_err();
    let text = show(&err);
    assert!(
        text.contains("access denied") && text.contains("s3://lake/t"),
        "{text}"
    );

    // The endpoint down.
    let mut down = good.clone();
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    down.storage.insert(
        "endpoint".into(),
        meshd_config::Sensitive::new(closed.clone()),
    );
    let err = probe_location(&down, "s3://lake/t").await.unwrap_err();
    let text = show(&err);
    assert!(text.contains("endpoint unreachable"), "{text}");

    // An unknown storage key names itself and the fix.
    let mut typo = good.clone();
    typo.storage
        .insert("endpont".into(), meshd_config::Sensitive::new(closed));
    let err = open_catalog(&typo).await.err().unwrap();
    let text = show(&err);
    assert!(
        text.contains("storage.endpont") && text.contains("endpoint"),
        "{text}"
    );

    // The wrong database password.
    let mut wrong = good.clone();
    wrong.catalog.password = Some(meshd_config::Sensitive::new("not-the-password".into()));
    let err = open_catalog(&wrong).await.err().unwrap();
    let text = show(&err);
    assert!(
        text.contains("catalog") && text.contains("password authentication failed"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");

    // A malformed catalog URI and an unknown catalog type.
    let mut malformed = good.clone();
    malformed.catalog.uri = "mysql://db/x".into();
    let text = show(&open_catalog(&malformed).await.err().unwrap());
    assert!(
        text.contains("catalog.uri") && text.contains("postgres://"),
        "{text}"
    );
    let yaml = dir.path().join("unknown-type.yaml");
    std::fs::write(&yaml, "catalog:\n  type: hive\n").unwrap();
    let err = PlatformConfig::load(Some(&yaml), std::iter::empty()).unwrap_err();
    assert!(err.to_string().contains("catalog.type"), "{err}");
}

/// `meshd run` with two products on the shared platform, one of them placed in a bucket that
/// does not exist: that product is marked failed on `/readyz` with the bucket named and the fix,
/// while the process and the other product keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_whose_bucket_is_missing_fails_alone() {
    let dir = support::test_dir();
    let Some(tansu) = support::Tansu::start(dir.path()) else {
        return;
    };
    tansu.create_topic("raw-good", 1).await;
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    pg.create_database("two");
    moto.create_bucket("data-mesh");
    let good = support::example_product(&dir.path().join("good"), "raw-good", &[]);
    let missing = support::product::Product::reference()
        .input_topic("raw-missing")
        .name("payment-refunds")
        .location("s3://no-such-bucket/payments/refunds/v1")
        .write(&dir.path().join("missing"));
    let listen = format!("127.0.0.1:{}", support::free_port());
    let config = dir.path().join("meshd.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap.servers: {}\ncatalog:\n  uri: {}\n  password: {PG_PASSWORD}\nwarehouse: s3://data-mesh/warehouse\nmetrics:\n  listen: {listen}\n",
            tansu.bootstrap,
            pg.uri("two"),
        ),
    )
    .unwrap();
    let mut env = moto.aws_env();
    env.push(("MESHD_LOG", "info".to_string()));
    let mut meshd = support::Meshd::start_on_host(
        &config,
        &[&good, &missing],
        &listen,
        dir.path().join("meshd.log"),
        Some(dir.path()),
        &env,
    );
    let body = support::poll(
        "the product with the missing bucket to be marked failed",
        std::time::Duration::from_secs(60),
        || {
            let (_, body) = meshd.readyz()?;
            (body["products"]["payment-refunds"]["state"] == "failed").then_some(body)
        },
    );
    let reason = body["products"]["payment-refunds"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("no such bucket") && reason.contains("no-such-bucket"),
        "{body}"
    );
    support::poll(
        "the other product to run and hold its partition",
        std::time::Duration::from_secs(60),
        || {
            let (_, body) = meshd.readyz()?;
            let good = &body["products"]["payment-transactions"];
            (good["state"] == "running" && good["ready"] == true).then_some(())
        },
    );
    assert!(
        meshd.child.try_wait().unwrap().is_none(),
        "the process keeps running"
    );
    for secret in [PG_PASSWORD, S3_SECRET_KEY] {
        assert!(!meshd.log_text().contains(secret), "a secret in the log");
    }
    meshd.kill();
}
