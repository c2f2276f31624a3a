//! `meshd demo` as a newcomer runs it: no services, one command, and a summary whose numbers
//! add up (every produced event is a row or a dead letter) with masking shown and checked.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{free_port, python};

fn number_after(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{text}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs `meshd demo` with `args` for `seconds` at 1,000 events/s in a fresh state folder and
/// checks its accounting: every produced event is a row or a dead letter, some are dead
/// letters, and masked samples are shown and checked. Returns stdout and the row count.
fn run_demo(dir: &std::path::Path, seconds: u64, args: &[&str]) -> (String, u64) {
    let out = Command::new(support::meshd_binary())
        .arg("demo")
        .args(args)
        .args(["--seconds", &seconds.to_string(), "--rate", "1000"])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let produced = number_after(&stdout, "produced");
    let rows = number_after(&stdout, "rows");
    let dead = number_after(&stdout, "dead letters");
    assert!(produced > 1000, "{stdout}");
    assert!(
        dead > 0,
        "the demo produces some malformed events:\n{stdout}"
    );
    assert_eq!(
        rows + dead,
        produced,
        "every event is a row or a dead letter:\n{stdout}"
    );
    assert!(
        stdout.matches("(ok)").count() >= 1,
        "masked samples are shown and checked:\n{stdout}"
    );
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
    (stdout, rows)
}

#[test]
fn demo_accounts_for_every_event_and_masks_pii() {
    let dir = support::test_dir();
    let (stdout, rows) = run_demo(dir.path(), 10, &[]);
    assert!(stdout.contains("payments.payment_transactions"), "{stdout}");

    let Some(python) = python() else { return };
    let snippet = pyiceberg_snippet(&stdout);
    let out = Command::new(&python)
        .args(["-c", &snippet])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the printed pyiceberg snippet failed:\n{snippet}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reported: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("the snippet printed no row count ({e}):\n{snippet}"));
    assert_eq!(
        reported, rows,
        "pyiceberg reads the rows the summary reports"
    );
}

/// The Confluent variant: records framed as Confluent's serializer frames them, writer schemas
/// from the registry the demo serves in-process; the same accounting holds.
#[test]
fn the_avro_confluent_demo_accounts_for_every_event() {
    let dir = support::test_dir();
    run_demo(dir.path(), 8, &["--format", "avro-confluent"]);
}

/// The pyiceberg lines of the summary, exactly as printed and dedented, so the test runs what a
/// newcomer would paste.
fn pyiceberg_snippet(stdout: &str) -> String {
    let lines: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("read it with pyiceberg:"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    assert!(lines.len() >= 2, "no pyiceberg snippet in:\n{stdout}");
    lines.iter().map(|l| &l[4..]).collect::<Vec<_>>().join("\n")
}
