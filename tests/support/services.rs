//! The shared platform's real servers, started by the tests on loopback: moto's S3 server and a
//! PostgreSQL cluster of its own. A missing one fails in CI and skips (loudly) elsewhere.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{ChildGuard, free_port, on_path, poll, unavailable};

/// The access key the tests give meshd and the readers; moto accepts any.
pub const S3_ACCESS_KEY: &str = "meshd-test-key";
/// The matching secret, which the secrets test looks for in logs and errors.
pub const S3_SECRET_KEY: &str = "s3-secret-Vx9w2Lq";

/// moto's S3 server (`moto_server` from the test venv) on a free loopback port.
pub struct Moto {
    /// `http://127.0.0.1:port`.
    pub endpoint: String,
    port: u16,
    _child: ChildGuard,
}

impl Moto {
    /// Starts moto, logging to `dir/moto.log`; None (outside CI) when it is not installed.
    /// moto keeps buckets in memory: to take the endpoint away while keeping the data, put a
    /// [`FaultProxy`] in front of it.
    pub fn start(dir: &Path) -> Option<Self> {
        let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
        if !binary.is_file() {
            unavailable("moto's S3 server (.venv/bin/moto_server) was not found");
            return None;
        }
        let port = free_port();
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            _child: ChildGuard(child),
        };
        poll("moto to answer", Duration::from_secs(30), || {
            moto.request("GET", "/").map(|_| ())
        });
        Some(moto)
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, Some(200), "creating bucket {bucket}");
    }

    /// Keys under `bucket/prefix`, as moto lists them.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let body = self
            .get_body(&format!(
                "/{bucket}?list-type=2&prefix={prefix}&max-keys=100000"
            ))
            .unwrap_or_default();
        body.split("<Key>")
            .skip(1)
            .filter_map(|part| part.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The environment an AWS client needs for this store: the standard variables.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let response = self.raw(method, path)?;
        response.split(' ').nth(1)?.parse().ok()
    }

    fn get_body(&self, path: &str) -> Option<String> {
        let response = self.raw("GET", path)?;
        Some(response.split_once("\r\n\r\n")?.1.to_string())
    }

    fn raw(&self, method: &str, path: &str) -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    }
}

/// The catalog database's password, which the secrets test looks for in logs and errors.
pub const PG_PASSWORD: &str = "pg-secret-Qm4t8Zr";

/// A PostgreSQL cluster of the test's own (Debian's server binaries, run as the `postgres`
/// user, which it requires), with password authentication over TCP on a free loopback port.
pub struct Postgres {
    /// `127.0.0.1:port`.
    pub address: String,
    port: u16,
    data: PathBuf,
    postgres: PathBuf,
    ids: (u32, u32),
    log: PathBuf,
    child: Option<ChildGuard>,
}

impl Postgres {
    /// Initialises a cluster under `dir/pg` and starts it; None (outside CI) without PostgreSQL.
    pub fn start(dir: &Path) -> Option<Self> {
        let Some(bin) = server_binaries() else {
            unavailable("PostgreSQL's server (initdb, postgres) was not found");
            return None;
        };
        let Some(ids) = postgres_user() else {
            unavailable("the `postgres` user (from Debian's postgresql package) does not exist");
            return None;
        };
        let data = dir.join("pg");
        std::fs::create_dir_all(&data).unwrap();
        let pwfile = dir.join("pg-password");
        std::fs::write(&pwfile, PG_PASSWORD).unwrap();
        for path in [&data, &pwfile, dir] {
            std::os::unix::fs::chown(path, Some(ids.0), Some(ids.1)).unwrap();
        }
        let out = Command::new(bin.join("initdb"))
            .args(["-D", &data.display().to_string(), "-U", "meshd"])
            .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .uid(ids.0)
            .gid(ids.1)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut pg = Self {
            address: format!("127.0.0.1:{port}"),
            port,
            data,
            postgres: bin.join("postgres"),
            ids,
            log: dir.join("postgres.log"),
            child: None,
        };
        pg.resume();
        Some(pg)
    }

    /// `postgres://meshd@127.0.0.1:port/<database>` (the password comes separately).
    pub fn uri(&self, database: &str) -> String {
        format!("postgres://meshd@{}/{database}", self.address)
    }

    /// The same with the password in it, as pyiceberg's SqlCatalog wants it.
    pub fn uri_with_password(&self, database: &str) -> String {
        format!(
            "postgresql://meshd:{PG_PASSWORD}@{}/{database}",
            self.address
        )
    }

    /// Creates a database (each test's catalog is a database of its own).
    pub fn create_database(&self, name: &str) {
        let socket_dir = self.data.display().to_string();
        let out = Command::new(self.postgres.with_file_name("createdb"))
            .args([
                "-h",
                &socket_dir,
                "-p",
                &self.port.to_string(),
                "-U",
                "meshd",
                name,
            ])
            .uid(self.ids.0)
            .gid(self.ids.1)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (SIGKILL of the postmaster: a crash, as a lost VM would be).
    pub fn stop(&mut self) {
        self.child = None;
        // The postmaster is gone; its backends exit when they notice. Wait until the port is free.
        poll("PostgreSQL to stop", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&self.address)
                .is_err()
                .then_some(())
        });
    }

    /// Starts the server again on the same data and port (crash recovery runs first).
    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.postgres)
            .args(["-D", &self.data.display().to_string()])
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                &format!("unix_socket_directories={}", self.data.display()),
            ])
            .uid(self.ids.0)
            .gid(self.ids.1)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(ChildGuard(child));
        poll(
            "PostgreSQL to accept connections",
            Duration::from_secs(60),
            || {
                let out = Command::new(self.postgres.with_file_name("pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .output()
                    .ok()?;
                out.status.success().then_some(())
            },
        );
    }
}

/// A meshd.yaml at `path` for the shared platform with every setting in the file (the catalog
/// password and `storage.*` keys included), as the test process itself reads the table.
pub fn shared_platform_yaml(
    path: &Path,
    pg: &Postgres,
    database: &str,
    moto: &Moto,
    warehouse: &str,
) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "catalog:\n  uri: {uri}\n  password: {PG_PASSWORD}\nwarehouse: {warehouse}\nstorage:\n  endpoint: {endpoint}\n  access_key_id: {S3_ACCESS_KEY}\n  secret_access_key: {S3_SECRET_KEY}\n  region: us-east-1\n",
            uri = pg.uri(database),
            endpoint = moto.endpoint,
        ),
    )
    .unwrap();
    path.to_path_buf()
}

/// Debian installs the server under /usr/lib/postgresql/<version>/bin, off the PATH.
fn server_binaries() -> Option<PathBuf> {
    if let Some(initdb) = on_path("initdb") {
        let resolved = std::fs::canonicalize(initdb).ok()?;
        return resolved.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn postgres_user() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// What a [`FaultProxy`] does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass every byte through to the real server.
    None,
    /// The endpoint is down: the port refuses connections, open ones are cut.
    Down,
    /// The endpoint answers every request with HTTP 403 and S3's `AccessDenied` error, as a
    /// store does when a bucket policy or a revoked key refuses the caller.
    Forbidden,
}

/// A TCP proxy in front of a real server (moto), to inject network faults the server cannot
/// produce on its own: the endpoint unreachable while its data survives, or refusing access.
/// It never answers a request itself except with the 403 of [`Fault::Forbidden`].
pub struct FaultProxy {
    /// `http://127.0.0.1:port`, the address meshd is given.
    pub endpoint: String,
    fault: std::sync::Arc<std::sync::Mutex<Fault>>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl FaultProxy {
    /// Starts forwarding a free loopback port to `upstream` (`http://127.0.0.1:port`).
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let port = free_port();
        let fault = std::sync::Arc::new(std::sync::Mutex::new(Fault::None));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let proxy = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            fault: fault.clone(),
            open: open.clone(),
        };
        std::thread::spawn(move || {
            loop {
                if *fault.lock().unwrap() == Fault::Down {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
                listener.set_nonblocking(true).unwrap();
                while *fault.lock().unwrap() != Fault::Down {
                    match listener.accept() {
                        Ok((client, _)) => {
                            client.set_nonblocking(false).unwrap();
                            let mode = *fault.lock().unwrap();
                            serve(client, &upstream, mode, &open);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        poll("the fault proxy to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
        proxy
    }

    /// Switches the fault; connections open at the time are cut.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn serve(
    client: std::net::TcpStream,
    upstream: &str,
    mode: Fault,
    open: &std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
) {
    if mode == Fault::Forbidden {
        open.lock().unwrap().push(client.try_clone().unwrap());
        std::thread::spawn(move || forbid(client));
        return;
    }
    let Ok(server) = std::net::TcpStream::connect(upstream) else {
        return;
    };
    {
        let mut open = open.lock().unwrap();
        open.push(client.try_clone().unwrap());
        open.push(server.try_clone().unwrap());
    }
    let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    };
    pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
    pipe(server, client);
}

/// Reads requests (headers and any body) and answers each with S3's AccessDenied.
fn forbid(mut client: std::net::TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            match client.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < end + 4 + length {
            match client.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..end + 4 + length);
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if client.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Where rustberg keeps its tables: a bucket on moto.
pub const REST_WAREHOUSE: &str = "s3://lake/warehouse";

/// rustberg on a free port with its catalog in `dir/rustberg/catalog.redb`, so that a restart
/// keeps every table.
pub struct Rustberg {
    binary: PathBuf,
    /// `http://127.0.0.1:port`.
    pub uri: String,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<ChildGuard>,
}

impl Rustberg {
    /// Starts it with its warehouse at [`REST_WAREHOUSE`] on `moto`.
    pub fn start(dir: &Path, moto: &Moto) -> Option<Self> {
        let Some(binary) = on_path("rustberg") else {
            unavailable("the rustberg REST catalog is not on PATH (cargo install rustberg)");
            return None;
        };
        let state = dir.join("rustberg");
        std::fs::create_dir_all(&state).unwrap();
        let config = dir.join("rustberg.toml");
        std::fs::write(
            &config,
            format!(
                "[storage]\ncatalog_url = \"file://{}\"\nwarehouse_location = \"{REST_WAREHOUSE}\"\n\n[storage.properties]\n\"s3.endpoint\" = \"{}\"\n\"s3.access-key-id\" = \"{S3_ACCESS_KEY}\"\n\"s3.secret-access-key\" = \"{S3_SECRET_KEY}\"\n\"s3.region\" = \"us-east-1\"\n\"s3.path-style-access\" = \"true\"\n\n[rate_limit]\nenabled = false\n\n[audit]\nsink = \"none\"\n",
                state.display(),
                moto.endpoint
            ),
        )
        .unwrap();
        let port = free_port();
        let mut rustberg = Self {
            binary,
            uri: format!("http://127.0.0.1:{port}"),
            port,
            config,
            log: dir.join("rustberg.log"),
            child: None,
        };
        rustberg.resume();
        Some(rustberg)
    }

    /// Starts the server (again) on its port and waits until it is ready.
    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args([
                "--dev",
                "--insecure-http",
                "--no-auth",
                "--host",
                "127.0.0.1",
            ])
            .args(["--port", &self.port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(ChildGuard(child));
        let ready = format!("{}/ready", self.uri);
        poll("rustberg to be ready", Duration::from_secs(60), || {
            super::http_get(&ready).map(|_| ())
        });
    }

    /// Stops the server; the port refuses connections until [`Rustberg::resume`].
    pub fn stop(&mut self) {
        self.child = None;
    }
}

/// meshd.yaml for the REST catalog with storage keys (rustberg vends no credentials).
pub fn rest_yaml(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    rest: &Rustberg,
    moto: &Moto,
) -> (PathBuf, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "kafka:\n  bootstrap.servers: {bootstrap}\ncatalog:\n  type: rest\n  uri: {}\nstorage:\n  endpoint: {}\n  access_key_id: {S3_ACCESS_KEY}\n  secret_access_key: {S3_SECRET_KEY}\n  region: us-east-1\nmetrics:\n  listen: {listen}\n",
            rest.uri, moto.endpoint
        ),
    )
    .unwrap();
    (path, listen)
}
