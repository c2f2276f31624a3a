//! What the end-to-end tests share: a real Tansu broker on loopback, `meshd run` as a child
//! process, a Prometheus scrape parsed with an independent parser, and pyiceberg as the
//! independent table reader; descriptors are built from typed values ([`product`]). A missing
//! tool fails the test when `CI=true` and skips it (loudly) otherwise.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

pub mod lake;
pub mod product;
pub mod registry;
pub mod services;

/// Whether a missing service must fail the test rather than skip it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Fails in CI, and outside CI says loudly that the test is skipped.
pub fn unavailable(what: &str) {
    assert!(
        !in_ci(),
        "{what} (CI=true: a test that cannot find its services fails)"
    );
    eprintln!("SKIPPED: {what}. Run `.ci/run` to install it; with CI=true this fails.");
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns Some or the deadline passes.
pub fn poll<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first `name` on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// A Tansu broker listening on a free loopback port.
///
/// Tests use its SQLite storage engine. Tansu 0.6.0's in-memory engine (dynostore) answers a
/// fetch from an offset inside a stored batch with the batches that start at or after it, so
/// a consumer resuming mid-batch silently skips the rest of that batch (the crash loop lost 8
/// records this way; `offsets.split_off(&offset)` in its `fetch`). The in-memory engine is
/// kept for the benchmark, which only reads from offset 0.
pub struct Tansu {
    /// `127.0.0.1:port`.
    pub bootstrap: String,
    _child: ChildGuard,
}

impl Tansu {
    /// Starts Tansu storing in `dir/tansu.db`, or returns None (outside CI) when it is not
    /// installed.
    pub fn start(dir: &Path) -> Option<Self> {
        Self::start_with(dir, "sqlite://tansu.db")
    }

    /// Starts Tansu with in-memory storage: faster, but see [`Tansu`] for why only readers
    /// that never resume mid-batch may use it.
    pub fn start_in_memory(dir: &Path) -> Option<Self> {
        Self::start_with(dir, "memory://tansu/")
    }

    fn start_with(log_dir: &Path, storage: &str) -> Option<Self> {
        // Nisshi is Tansu renamed, with a rewritten group coordinator; either serves the tests.
        let Some(binary) = std::env::var_os("TANSU")
            .map(PathBuf::from)
            .or_else(|| on_path("nisshi"))
            .or_else(|| on_path("tansu"))
        else {
            unavailable(
                "the Nisshi (or Tansu) broker is not on PATH (cargo install nisshi --no-default-features --features dynostore,libsql)",
            );
            return None;
        };
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(log_dir.join("tansu.log")).unwrap();
        let mut command = Command::new(&binary);
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", storage]);
        if binary.file_name().is_some_and(|n| n == "nisshi") {
            // Nisshi waits 3 s by default before forming a new group, as Kafka's
            // group.initial.rebalance.delay.ms does; the tests start members one by one.
            command.args(["--group-initial-rebalance-delay", "0s"]);
        }
        let child = command
            // The SQLite engine's path is relative to the working directory.
            .current_dir(log_dir)
            // TANSU_LOG from the test's environment wins, for debugging (e.g. `info`).
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let tansu = Self {
            bootstrap: format!("127.0.0.1:{port}"),
            _child: ChildGuard(child),
        };
        let consumer: BaseConsumer = tansu.client().create().unwrap();
        poll(
            "Tansu to answer metadata requests",
            Duration::from_secs(30),
            || consumer.fetch_metadata(None, Duration::from_secs(1)).ok(),
        );
        Some(tansu)
    }

    /// Client settings for this broker.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    /// Creates a topic and waits until its metadata shows every partition.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]).await;
    }

    /// The same with topic configs (`max.message.bytes`, as on Kafka).
    pub async fn create_topic_with(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> = self.client().create().unwrap();
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let results = admin
            .create_topics(&[topic], &AdminOptions::new())
            .await
            .unwrap();
        for r in results {
            r.unwrap();
        }
        let consumer: BaseConsumer = self.client().create().unwrap();
        poll(
            "the new topic's partitions",
            Duration::from_secs(30),
            || {
                let md = consumer
                    .fetch_metadata(Some(name), Duration::from_secs(1))
                    .ok()?;
                let n = md
                    .topics()
                    .iter()
                    .find(|t| t.name() == name)?
                    .partitions()
                    .len();
                (n == partitions as usize).then_some(())
            },
        );
    }
}

/// Whether `program args` runs and succeeds (a tool is installed and works).
fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python interpreter of the test venv (`.venv/`, made by `.ci/run`), if it has pyiceberg.
pub fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidate = std::env::var_os("MESHD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    if runs(&candidate, &["-c", "import pyiceberg"]) {
        Some(candidate)
    } else {
        unavailable(&format!(
            "{} with pyiceberg was not found",
            candidate.display()
        ));
        None
    }
}

/// A command-line tool from one of the tool venvs `.ci/run` makes beside `.venv`
/// (`.venv-datahub/bin/datahub`, `.venv-datacontract/bin/datacontract`): tools with heavy
/// dependency trees and pins of their own, kept out of the test venv so they cannot move
/// pyiceberg's. `MESHD_TEST_VENVS` names another folder holding the venvs.
pub fn venv_tool(venv: &str, tool: &str) -> Option<PathBuf> {
    let root = std::env::var_os("MESHD_TEST_VENVS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let candidate = root.join(venv).join("bin").join(tool);
    if runs(&candidate, &["--help"]) {
        Some(candidate)
    } else {
        unavailable(&format!("{} was not found", candidate.display()));
        None
    }
}

/// The catalog a meshd.yaml names, as the JSON spec the Python readers take
/// (`tests/catalog.py`): SQLite or PostgreSQL (password included) or REST, with the warehouse
/// and, when `s3` is given, that store's endpoint and credentials.
pub fn catalog_spec(config: &Path, s3: Option<&services::Moto>) -> String {
    let platform = meshd_config::PlatformConfig::load(Some(config), std::iter::empty()).unwrap();
    let catalog = &platform.catalog;
    let uri = if let Some(path) = catalog.uri.strip_prefix("sqlite://") {
        format!("sqlite:///{}", std::path::absolute(path).unwrap().display())
    } else if let Some(password) = &catalog.password {
        let mut url = url::Url::parse(&catalog.uri).unwrap();
        url.set_password(Some(password.expose())).unwrap();
        url.to_string()
            .replacen("postgres://", "postgresql+psycopg2://", 1)
    } else {
        catalog.uri.clone()
    };
    let warehouse = if platform.warehouse.contains("://") {
        platform.warehouse.clone()
    } else {
        format!(
            "file://{}",
            std::path::absolute(&platform.warehouse).unwrap().display()
        )
    };
    let mut properties = serde_json::Map::new();
    if let Some(moto) = s3 {
        for (key, value) in [
            ("s3.endpoint", moto.endpoint.as_str()),
            ("s3.access-key-id", services::S3_ACCESS_KEY),
            ("s3.secret-access-key", services::S3_SECRET_KEY),
            ("s3.region", "us-east-1"),
        ] {
            properties.insert(key.into(), value.into());
        }
    }
    let kind = match catalog.kind {
        meshd_config::CatalogKind::Sql => "sql",
        meshd_config::CatalogKind::Rest => "rest",
    };
    serde_json::json!({
        "type": kind,
        "name": catalog.name,
        "uri": uri,
        "warehouse": if kind == "rest" { catalog.warehouse.clone().unwrap_or_default() } else { warehouse },
        "properties": properties,
    })
    .to_string()
}

/// The spec of the embedded-default catalog (`catalog.db` and `warehouse/`) in `dir`.
pub fn sqlite_spec(dir: &Path) -> String {
    serde_json::json!({
        "type": "sql",
        "uri": format!("sqlite:///{}", dir.join("catalog.db").display()),
        "warehouse": format!("file://{}", dir.join("warehouse").display()),
    })
    .to_string()
}

/// Runs a script from `tests/` with the venv's Python and returns its stdout.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests")
        .join(script);
    let out = Command::new(python).arg(&path).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `meshd run` as a child process, with its log in a file.
pub struct Meshd {
    /// The child, for SIGKILL.
    pub child: Child,
    /// Where `/metrics` is.
    pub metrics_url: String,
    /// The log file.
    pub log: PathBuf,
}

impl Meshd {
    /// Starts `meshd run --config <config> <descriptors>`.
    pub fn start(config: &Path, descriptors: &[&Path], listen: &str, log: PathBuf) -> Self {
        Self::start_on_host(config, descriptors, listen, log, None, &[])
    }

    /// The same as a process on a host of its own: started in `workdir` (an empty folder:
    /// nothing local is shared) with `env` added (the credentials a host would have).
    pub fn start_on_host(
        config: &Path,
        descriptors: &[&Path],
        listen: &str,
        log: PathBuf,
        workdir: Option<&Path>,
        env: &[(&str, String)],
    ) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = Command::new(meshd_binary());
        if let Some(workdir) = workdir {
            command.current_dir(workdir);
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let child = command
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(descriptors)
            // MESHD_LOG from the test's environment wins, for debugging (e.g. `info,rdkafka=debug`).
            .env(
                "MESHD_LOG",
                std::env::var("MESHD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self {
            child,
            metrics_url: format!("http://{listen}/metrics"),
            log,
        }
    }

    /// `/readyz`: status and JSON body.
    pub fn readyz(&self) -> Option<(u16, serde_json::Value)> {
        let (status, body) = http_get_status(&self.metrics_url.replace("/metrics", "/readyz"))?;
        Some((status, serde_json::from_str(&body).ok()?))
    }

    /// Fetches and parses `/metrics`; None while the endpoint is not up.
    pub fn scrape(&self) -> Option<Scrape> {
        let text = http_get(&self.metrics_url)?;
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let parsed = prometheus_parse::Scrape::parse(lines)
            .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
        Some(Scrape(parsed))
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The log so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Meshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A parsed scrape.
pub struct Scrape(pub prometheus_parse::Scrape);

impl Scrape {
    /// Sum of every sample of `name` (counters, gauges and untyped).
    pub fn sum(&self, name: &str) -> f64 {
        self.sum_where(name, &[])
    }

    /// Sum of the samples of `name` whose labels include every `(label, value)` pair.
    pub fn sum_where(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(l, v)| s.labels.get(l) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .fold(0.0, |total, v| total + v)
    }

    /// Whether any sample of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.0
            .samples
            .iter()
            .any(|s| s.metric == name || s.metric.starts_with(&format!("{name}_")))
    }
}

/// A plain HTTP GET of a 200 response's body.
pub fn http_get(url: &str) -> Option<String> {
    let (status, body) = http_get_status(url)?;
    (status == 200).then_some(body)
}

/// A plain HTTP/1.0 GET over TCP (1.0: never a chunked body) (enough for our own endpoint; no client dependency):
/// the status code and the body.
pub fn http_get_status(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A change to the reference product, for [`example_product`].
pub type Edit = fn(product::Product) -> product::Product;

/// Commits every second (fault tests want commits to land often, so faults hit before, during
/// and after them).
pub const COMMIT_EVERY_SECOND: Edit = |product| product.commit_interval(Duration::from_secs(1));

/// The reference product reading `topic` (dead letters to `<topic>.dlq`) with `edits` applied,
/// written into `dir`; returns the descriptor's path. Shorthand for [`product::Product`].
pub fn example_product(dir: &Path, topic: &str, edits: &[Edit]) -> PathBuf {
    edits
        .iter()
        .fold(
            product::Product::reference().input_topic(topic),
            |product, edit| edit(product),
        )
        .write(dir)
}

/// A meshd platform config `<name>.yaml` in `dir` for a broker at `bootstrap`, with the catalog
/// and warehouse in `dir` and metrics on a free port. `kafka_extra` lines go into the `kafka:`
/// map (indented), `extra` lines at the top level. Returns the config and the metrics address.
pub fn meshd_config(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    kafka_extra: &[&str],
    extra: &str,
) -> (PathBuf, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let kafka: String = kafka_extra.iter().map(|l| format!("  {l}\n")).collect();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "kafka:\n  bootstrap.servers: {bootstrap}\n{kafka}catalog:\n  uri: sqlite://{d}/catalog.db\nwarehouse: {d}/warehouse\nmetrics:\n  listen: {listen}\n{extra}",
            d = dir.display()
        ),
    )
    .unwrap();
    (path, listen)
}

/// The platform config of a crash loop: a session of `session` (a restarted worker gets the
/// partitions once the killed member expires) and a fast heartbeat. Returns the config and a
/// function starting run `n` of meshd on `descriptor`, logging to `meshd-<n>.log`.
pub fn crash_loop_member<'a>(
    dir: &'a Path,
    bootstrap: &str,
    session: Duration,
    descriptor: &'a Path,
) -> (PathBuf, impl Fn(u64) -> Meshd + 'a) {
    let (config, listen) = meshd_config(
        dir,
        "meshd",
        bootstrap,
        &[
            &format!("session.timeout.ms: \"{}\"", session.as_millis()),
            "heartbeat.interval.ms: \"500\"",
        ],
        "",
    );
    let start_config = config.clone();
    let start = move |run: u64| {
        Meshd::start(
            &start_config,
            &[descriptor],
            &listen,
            dir.join(format!("meshd-{run}.log")),
        )
    };
    (config, start)
}

/// `kills` runs of meshd (`start(run)`), each SIGKILLed `pause_ms` (drawn from `rng`) after it
/// began consuming; the next starts once the dead member's `session` has expired.
pub async fn kill_at_random(
    start: impl Fn(u64) -> Meshd,
    kills: u64,
    pause_ms: std::ops::Range<u64>,
    rng: &mut impl rand::Rng,
    session: Duration,
) {
    for run in 0..kills {
        let mut meshd = start(run);
        until_consuming(&meshd, "the restarted worker");
        tokio::time::sleep(Duration::from_millis(rng.random_range(pause_ms.clone()))).await;
        meshd.kill();
        wait_out_session(session).await;
    }
}

/// Sends the reference payment event `n` (malformed when `n % bad_every == bad_every - 1`)
/// and waits for the broker's acknowledgement.
pub async fn send_payment_event(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    n: u64,
    bad_every: u64,
) {
    let (id, payload) = meshd_runtime::demo::payment_event(n, bad_every);
    let record = rdkafka::producer::FutureRecord::to(topic)
        .key(&id)
        .payload(&payload);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap();
}

/// Sends SIGTERM to a child process (a graceful stop request).
pub fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Runs the meshd binary to completion: its exit code and its stdout and stderr together.
pub fn meshd_output<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String) {
    meshd_output_on_host(args, None, &[])
}

/// The same in `workdir` with `env` added, as a host with its own folder and credentials runs it.
pub fn meshd_output_on_host<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    workdir: Option<&Path>,
    env: &[(&str, String)],
) -> (Option<i32>, String) {
    let mut command = Command::new(meshd_binary());
    if let Some(workdir) = workdir {
        command.current_dir(workdir);
    }
    let out = command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Every value of the string column `column` in `table` (`namespace.name`), read with
/// iceberg-rust's own scan: the second reader beside pyiceberg. None while the table does
/// not exist yet.
pub async fn table_strings(config: &Path, table: &str, column: &str) -> Option<Vec<String>> {
    use futures::TryStreamExt;
    let platform = meshd_config::PlatformConfig::load(Some(config), std::iter::empty()).unwrap();
    let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
    let ident = iceberg::TableIdent::from_strs(table.split('.')).unwrap();
    let table = catalog.load_table(&ident).await.ok()?;
    let batches: Vec<arrow_array::RecordBatch> = table
        .scan()
        .select([column])
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut values = Vec::new();
    for batch in &batches {
        let array = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::Utf8).unwrap();
        let strings = array
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        values.extend(strings.iter().map(|s| s.unwrap_or_default().to_string()));
    }
    Some(values)
}

/// A consumer config that reads without touching anyone's offsets: its own group (`purpose`
/// plus a UUID), nothing committed.
pub fn reader(bootstrap: &str, purpose: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{purpose}-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false");
    config
}

/// The dead letters in `topics`, by record key (or `topic/partition/offset` of the source
/// record when its key is null), each with its headers. Dead letters are at least once (a
/// crash may repeat one), so they are counted distinct; polls until `distinct` were seen.
pub fn read_dead_letters(
    bootstrap: &str,
    topics: &[&str],
    distinct: usize,
    deadline: Duration,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = reader(bootstrap, "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(topics).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    poll(
        &format!("{distinct} distinct dead letters in {topics:?}"),
        deadline,
        || {
            while let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let headers: std::collections::BTreeMap<String, String> = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                let value = h.value.unwrap_or_default();
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(value).to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let key = match m.key() {
                    Some(k) if !k.is_empty() => String::from_utf8_lossy(k).to_string(),
                    _ => [
                        "meshd.source.topic",
                        "meshd.source.partition",
                        "meshd.source.offset",
                    ]
                    .map(|h| headers.get(h).cloned().unwrap_or_default())
                    .join("/"),
                };
                seen.insert(key, headers);
            }
            (seen.len() >= distinct).then_some(())
        },
    );
    seen
}

/// Every meshd log in `dir` is free of the worker's "offsets do not continue / skip" warnings.
/// Test topics are neither compacted nor transactional, so each partition's records must arrive
/// in order: a warning is a record the broker skipped or one read twice.
pub fn assert_offsets_continue(dir: &Path) {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !name.ends_with(".log") || name == "tansu.log" {
            continue;
        }
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        found.extend(
            log.lines()
                .filter(|l| l.contains("Offsets do not continue") || l.contains("Offsets skip"))
                .map(|l| format!("{name}: {l}")),
        );
    }
    assert!(found.is_empty(), "offsets did not continue: {found:#?}");
}

/// Waits until a SIGKILLed member's consumer-group session has expired, before the next process
/// of the same group starts (systemd's `RestartSec=5` in deploy/ does the same). Not
/// synchronisation on meshd: Tansu 0.6.0's coordinator leaves a member that joins while a dead
/// member's session is live with an empty assignment for good (README, "Known broker issues"
/// (2)); Kafka rebalances instead.
pub async fn wait_out_session(session_timeout: Duration) {
    tokio::time::sleep(session_timeout + Duration::from_millis(500)).await;
}

/// Where `keys` are in `topic` ("key @ partition/offset"), read from the beginning to the high
/// watermarks: tells a record the broker never delivered from one meshd skipped.
pub fn locate_keys(bootstrap: &str, topic: &str, keys: &[String]) -> Vec<String> {
    use rdkafka::message::Message;
    let consumer: BaseConsumer = reader(bootstrap, "locator").create().unwrap();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return vec!["cannot read the topic's metadata".into()];
    };
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut remaining = 0;
    for t in metadata.topics() {
        for p in t.partitions() {
            remaining += consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .map_or(0, |(low, high)| high - low);
            let _ = tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning);
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while remaining > 0 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            remaining -= 1;
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            if keys.contains(&key) {
                found.push(format!("{key} @ {}/{}", m.partition(), m.offset()));
            }
        }
    }
    found
}

/// A steady stream of reference payment events (`n` = 0, 1, 2, …; every `bad_every`-th one
/// malformed), `rate` records a second in blocks of 100, until stopped.
pub struct Stream {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    produced: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<u64>,
}

impl Stream {
    /// Starts producing to `topic` with an idempotent producer (broker faults must not
    /// duplicate records in the topic, or the table would rightly hold them twice).
    pub fn start(bootstrap: &str, topic: &str, rate: u64, bad_every: u64) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producer: rdkafka::producer::FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        let topic = topic.to_string();
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn({
            let stop = std::sync::Arc::clone(&stop);
            let counter = std::sync::Arc::clone(&counter);
            async move {
                let mut every =
                    tokio::time::interval(Duration::from_millis(100_000 / rate.max(10)));
                let mut produced = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    every.tick().await;
                    let sends = (produced..produced + 100)
                        .map(|n| send_payment_event(&producer, &topic, n, bad_every));
                    futures::future::join_all(sends).await;
                    produced += 100;
                    counter.store(produced, std::sync::atomic::Ordering::SeqCst);
                }
                produced
            }
        });
        Self {
            stop,
            produced: counter,
            task,
        }
    }

    /// Records produced and acknowledged so far.
    pub fn produced(&self) -> u64 {
        self.produced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the stream; how many records were produced (all acknowledged).
    pub async fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// "Nothing lost, nothing twice" for a stream of `records` reference events with every
/// `bad_every`-th malformed: waits until the table holds every good record, then checks each
/// key is there exactly once with iceberg-rust's scan and with pyiceberg, and that every
/// malformed record is in the dead-letter topic with a reason. `log` explains a timeout.
/// `s3` is the store the table lives on, if not the local warehouse; `config` must name the
/// catalog and storage as the test process can reach them.
/// Returns (rows, dead letters).
pub async fn assert_exactly_once(
    config: &Path,
    s3: Option<&services::Moto>,
    python: &Path,
    bootstrap: &str,
    dead_letter_topic: &str,
    records: (u64, u64),
    log: impl Fn() -> String,
) -> (usize, usize) {
    assert_exactly_once_in(
        "payments.payment_transactions",
        config,
        s3,
        python,
        bootstrap,
        dead_letter_topic,
        records,
        log,
    )
    .await
}

/// [`assert_exactly_once`] for the table `TABLE` (`namespace.table`).
#[allow(clippy::too_many_arguments)]
pub async fn assert_exactly_once_in(
    table: &str,
    config: &Path,
    s3: Option<&services::Moto>,
    python: &Path,
    bootstrap: &str,
    dead_letter_topic: &str,
    (records, bad_every): (u64, u64),
    log: impl Fn() -> String,
) -> (usize, usize) {
    let is_bad = |n: u64| bad_every > 0 && n % bad_every == bad_every - 1;
    let bad: std::collections::BTreeSet<String> = (0..records)
        .filter(|&n| is_bad(n))
        .map(|n| meshd_runtime::demo::payment_event(n, bad_every).0)
        .collect();
    let good = records as usize - bad.len();
    let mut keys = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while keys.len() < good {
        if Instant::now() >= deadline {
            let have: std::collections::BTreeSet<&String> = keys.iter().collect();
            let missing: Vec<String> = (0..records)
                .filter(|&n| !is_bad(n))
                .map(|n| meshd_runtime::demo::payment_event(n, 0).0)
                .filter(|k| !have.contains(k))
                .take(50)
                .collect();
            let topic = dead_letter_topic.trim_end_matches(".dlq");
            let found = locate_keys(bootstrap, topic, &missing);
            // Every malformed record's letter, and any good one's: a good record dead-lettered
            // would be missing from the table too.
            let letters = std::panic::catch_unwind(|| {
                read_dead_letters(
                    bootstrap,
                    &[dead_letter_topic],
                    bad.len(),
                    Duration::from_secs(60),
                )
            })
            .unwrap_or_default();
            let lettered: Vec<String> = missing
                .iter()
                .filter_map(|k| letters.get(k).map(|h| format!("{k}: {h:?}")))
                .collect();
            panic!(
                "only {} of {good} rows after 300 s; missing (first 50): {missing:?}\nwhere the broker has them: {found:?}\ndead-lettered: {lettered:?}\n{}",
                keys.len(),
                log()
            );
        }
        keys = table_strings(config, table, "transaction_id")
            .await
            .unwrap_or_default();
        if keys.len() < good {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), good, "rows != records produced - dead letters");
    assert_eq!(distinct.len(), good, "duplicate keys in the table");
    assert!(
        distinct.iter().all(|k| {
            let n: u64 = k.trim_start_matches("tx-").parse().unwrap();
            n < records && !is_bad(n)
        }),
        "unexpected keys in the table"
    );

    let out = run_python(
        python,
        "table_keys.py",
        &[&catalog_spec(config, s3), table, "transaction_id"],
    );
    let counted: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counted["rows"], good, "pyiceberg: {counted}");
    assert_eq!(counted["distinct"], good, "pyiceberg: {counted}");
    assert_eq!(
        counted["repeated"],
        serde_json::json!({}),
        "pyiceberg: {counted}"
    );
    assert_eq!(counted["duckdb"]["rows"], good, "DuckDB: {counted}");
    assert_eq!(counted["duckdb"]["distinct"], good, "DuckDB: {counted}");

    let letters = read_dead_letters(
        bootstrap,
        &[dead_letter_topic],
        bad.len(),
        Duration::from_secs(60),
    );
    let lettered: std::collections::BTreeSet<String> = letters.keys().cloned().collect();
    assert_eq!(
        lettered, bad,
        "dead letters differ from the malformed records"
    );
    assert!(
        letters
            .values()
            .all(|h| h.get("meshd.error.kind").is_some_and(|k| !k.is_empty())),
        "a dead letter without a reason"
    );
    (good, bad.len())
}

/// An exclusive transaction on a SQLite catalog, held by another process until dropped:
/// every catalog read and commit of meshd fails meanwhile (the catalog is "down").
pub struct CatalogLock(ChildGuard);

impl CatalogLock {
    /// Takes the lock on `catalog_db` and returns once it is held.
    pub fn take(catalog_db: &Path) -> Self {
        let mut lock = ChildGuard(
            Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()",
                ])
                .arg(catalog_db)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(lock.0.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        Self(lock)
    }
}

/// A scratch folder for one test, removed afterwards unless `MESHD_TEST_KEEP` is set (then
/// its path is printed, with the broker's and every meshd process's log in it).
pub fn test_dir() -> tempfile::TempDir {
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var_os("MESHD_TEST_KEEP").is_some() {
        eprintln!(
            "MESHD_TEST_KEEP: logs and tables stay in {}",
            dir.path().display()
        );
        dir.disable_cleanup(true);
    }
    dir
}

/// One more `meshd run` of `descriptor` with its own config `<name>.yaml` (own metrics port,
/// shared catalog and warehouse in `dir`), logging to `<name>.log`: a member of a group.
pub fn start_member(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    kafka_extra: &[&str],
    descriptor: &Path,
) -> (Meshd, PathBuf) {
    let (config, listen) = meshd_config(dir, name, bootstrap, kafka_extra, "");
    let meshd = Meshd::start(
        &config,
        &[descriptor],
        &listen,
        dir.join(format!("{name}.log")),
    );
    (meshd, config)
}

/// Waits until `meshd` has consumed records: the group gave it partitions.
/// The meshd binary under test: this build's, or `MESHD_BIN` (to measure an older build with
/// the same test or bench, in the same run).
pub fn meshd_binary() -> std::ffi::OsString {
    std::env::var_os("MESHD_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_meshd").into())
}

pub fn until_consuming(meshd: &Meshd, who: &str) {
    poll(
        &format!("{who} to get partitions and consume"),
        Duration::from_secs(90),
        || (meshd.scrape()?.sum("meshd_records_consumed_total") > 0.0).then_some(()),
    );
}
