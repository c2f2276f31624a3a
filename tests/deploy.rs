//! The deployment files, checked by the tools that consume them: `promtool check rules` and
//! `promtool test rules` (alert math, firing and non-firing cases) for the Prometheus rules,
//! `systemd-analyze verify` for the unit. Missing tools fail in CI and skip elsewhere.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Runs a tool; None (after `unavailable`) when it is not installed.
fn run(tool: &str, args: &[&str]) -> Option<(bool, String)> {
    match Command::new(tool).args(args).output() {
        Ok(out) => Some((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )),
        Err(_) => {
            support::unavailable(&format!(
                "{tool} is not installed (Debian package prometheus / systemd)"
            ));
            None
        }
    }
}

#[test]
fn prometheus_rules_are_valid_and_their_unit_tests_pass() {
    let rules = deploy().join("prometheus/meshd-rules.yml");
    let Some((ok, out)) = run(
        "promtool",
        &["check", "rules", &rules.display().to_string()],
    ) else {
        return;
    };
    assert!(ok, "{out}");
    let tests = deploy().join("prometheus/tests/meshd-rules.test.yml");
    let Some((ok, out)) = run("promtool", &["test", "rules", &tests.display().to_string()]) else {
        return;
    };
    assert!(ok, "{out}");
}

#[test]
fn prometheus_rules_use_only_metrics_meshd_exports() {
    let rules = std::fs::read_to_string(deploy().join("prometheus/meshd-rules.yml")).unwrap();
    let documented: Vec<&str> = meshd_runtime::metrics::DOCUMENTED
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        if word.starts_with("meshd_") {
            assert!(
                documented.contains(&word),
                "the rules use {word}, which meshd does not export"
            );
        }
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy().join("systemd/meshd.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let path = dir.path().join("meshd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/meshd", env!("CARGO_BIN_EXE_meshd")),
    )
    .unwrap();
    let Some((ok, out)) = run("systemd-analyze", &["verify", &path.display().to_string()]) else {
        return;
    };
    assert!(ok && !out.contains("meshd.service:"), "{out}");
}

#[test]
fn generated_rules_carry_the_descriptor_thresholds_and_pass_promtool() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seed-example/product.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_meshd"))
        .args(["export", "prometheus-rules", &seed.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = String::from_utf8(out.stdout).unwrap();
    assert!(rules.contains("meshd_freshness_seconds{product=\"payment-transactions\",port=\"payments.payment_transactions\"}) > 900"), "{rules}");
    assert!(rules.contains("> 0.0144 and"), "{rules}");
    assert!(rules.contains("> 0.006 and"), "{rules}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generated.yml");
    std::fs::write(&path, &rules).unwrap();
    let Some((ok, out)) = run("promtool", &["check", "rules", &path.display().to_string()]) else {
        return;
    };
    assert!(ok, "{out}\n{rules}");
}
