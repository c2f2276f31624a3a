//! The systemd notify protocol as a `Type=notify` unit with `WatchdogSec=` sees it: meshd runs
//! with `NOTIFY_SOCKET` pointing at a datagram socket this test reads, against a real Tansu
//! broker. Expected: READY=1 once the worker has started, STATUS= lines naming the products
//! and freshness, WATCHDOG=1 pings, and STOPPING=1 then a clean exit (0) on SIGTERM.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Tansu, free_port, poll};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_status_watchdog_and_stopping_reach_systemd() {
    let dir = support::test_dir();
    let Some(tansu) = Tansu::start(dir.path()) else {
        return;
    };
    tansu.create_topic("raw-payment-events", 1).await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments/product.yaml");
    let config = dir.path().join("meshd.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap.servers: {}\ncatalog:\n  uri: sqlite://{d}/catalog.db\nwarehouse: {d}/warehouse\nmetrics:\n  listen: 127.0.0.1:{}\n",
            tansu.bootstrap,
            free_port(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut child = support::ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_meshd"))
            .args([
                "run",
                "--config",
                &config.display().to_string(),
                &example.display().to_string(),
            ])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "1000000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let mut seen: Vec<String> = Vec::new();
    let receive = |seen: &mut Vec<String>| {
        let mut buf = [0u8; 4096];
        if let Ok(n) = socket.recv(&mut buf) {
            seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            );
        }
    };
    poll(
        "READY=1, STATUS= and WATCHDOG=1 from meshd",
        Duration::from_secs(90),
        || {
            receive(&mut seen);
            let has = |prefix: &str| seen.iter().any(|l| l.starts_with(prefix));
            (has("READY=1") && has("WATCHDOG=1") && has("STATUS=1 product(s) running"))
                .then_some(())
        },
    );
    let status = seen.iter().find(|l| l.starts_with("STATUS=")).unwrap();
    assert!(status.contains("worst freshness"), "{status}");

    support::sigterm(&child.0);
    poll("STOPPING=1 after SIGTERM", Duration::from_secs(30), || {
        receive(&mut seen);
        seen.iter().any(|l| l == "STOPPING=1").then_some(())
    });
    let started = Instant::now();
    let code = poll(
        "meshd to exit after SIGTERM",
        Duration::from_secs(45),
        || child.0.try_wait().unwrap(),
    );
    assert_eq!(code.code(), Some(0), "exit after {:?}", started.elapsed());
}
