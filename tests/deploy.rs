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
    let dir = support::test_dir();
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
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed/product.yaml");
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
    assert!(
        rules.contains("(meshd_last_maintenance_timestamp_seconds{product=\"payment-transactions\",port=\"payments.payment_transactions\"}) > 10800"),
        "upkeep alert at three times the default 1h interval: {rules}"
    );
    let dir = support::test_dir();
    let path = dir.path().join("generated.yml");
    std::fs::write(&path, &rules).unwrap();
    let Some((ok, out)) = run("promtool", &["check", "rules", &path.display().to_string()]) else {
        return;
    };
    assert!(ok, "{out}\n{rules}");
}

/// A tool from the test venv (`.venv/bin`, made by `.ci/run`).
fn venv_tool(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/bin")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn the_dockerfile_lints_clean() {
    let dockerfile = deploy().join("container/Dockerfile").display().to_string();
    let Some((ok, out)) = run(&venv_tool("hadolint"), &[&dockerfile]) else {
        return;
    };
    assert!(ok, "{out}");
}

#[test]
fn kubernetes_manifests_match_their_schemas_and_each_other() {
    let dir = deploy().join("kubernetes");
    let sidecar = dir.join("sidecar.yaml").display().to_string();
    let Some((ok, out)) = run(&venv_tool("kubernetes-validate"), &["--strict", &sidecar]) else {
        return;
    };
    assert!(
        ok && out.contains("passed for resource deployment/payments"),
        "{out}"
    );

    // The Operator's custom resources have no schema offline: check what ties them together.
    let docs = |file: &str| -> Vec<serde_yaml_ng::Value> {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    };
    let deployment = docs("sidecar.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let monitor = &docs("podmonitor.yaml")[0];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            &pod_labels[k.as_str().unwrap()],
            v,
            "the PodMonitor selects the sidecar's pods"
        );
    }
    let port = monitor["spec"]["podMetricsEndpoints"][0]["port"]
        .as_str()
        .unwrap();
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    let meshd = containers.iter().find(|c| c["name"] == "meshd").unwrap();
    assert!(
        meshd["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port)
    );
    assert_eq!(meshd["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(meshd["readinessProbe"]["httpGet"]["path"], "/readyz");

    // The sidecar keeps no state: its table and catalog are shared (S3 + PostgreSQL), its
    // secrets come from the Secret, and its meshd.yaml is one meshd accepts.
    assert!(
        !std::fs::read_to_string(dir.join("sidecar.yaml"))
            .unwrap()
            .contains("emptyDir"),
        "the sidecar must not keep its table or catalog in the pod"
    );
    let config_map = docs("sidecar.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    let platform_yaml = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        platform_yaml.path(),
        config_map["data"]["meshd.yaml"].as_str().unwrap(),
    )
    .unwrap();
    let platform =
        meshd_config::PlatformConfig::load(Some(platform_yaml.path()), std::iter::empty()).unwrap();
    assert!(platform.catalog.uri.starts_with("postgres://"));
    assert!(platform.warehouse.starts_with("s3://") && platform.uses_object_storage());
    let secret = docs("sidecar.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Secret")
        .unwrap();
    assert_eq!(
        meshd["envFrom"][0]["secretRef"]["name"], secret["metadata"]["name"],
        "meshd reads the Secret"
    );
    for key in ["MESHD_CATALOG_PASSWORD", "AWS_SECRET_ACCESS_KEY"] {
        assert!(
            !secret["stringData"][key].is_null(),
            "the Secret carries {key}"
        );
    }

    let rule = &docs("prometheusrule.yaml")[0];
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(deploy().join("prometheus/meshd-rules.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        rule["spec"], rules,
        "the PrometheusRule carries exactly deploy/prometheus/meshd-rules.yml"
    );
}

#[test]
fn the_dashboard_queries_only_exported_metrics_and_recorded_series() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/meshd.json")).unwrap(),
    )
    .unwrap();
    let documented: Vec<&str> = meshd_runtime::metrics::DOCUMENTED
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let panels = dashboard["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "Freshness vs SLO",
        "Error budget left (30 days)",
        "Throughput",
        "Dead letters by reason",
        "Commit latency",
    ] {
        assert!(titles.contains(&wanted), "{titles:?}");
    }
    let mut checked = 0;
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(base) = word.strip_prefix("meshd_") {
                let name = format!("meshd_{base}");
                let histogram_part = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s));
                let known = documented.contains(&name.as_str())
                    || histogram_part.is_some_and(|h| documented.contains(&h));
                assert!(
                    known,
                    "the dashboard queries {name}, which meshd does not export"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} metric references found");
}

#[test]
fn production_examples_are_configs_meshd_accepts() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for (file, kind) in [
        (
            "production/s3-postgres.yaml",
            meshd_config::CatalogKind::Sql,
        ),
        ("production/s3-rest.yaml", meshd_config::CatalogKind::Rest),
        ("meshd.yaml", meshd_config::CatalogKind::Sql),
    ] {
        let config =
            meshd_config::PlatformConfig::load(Some(&examples.join(file)), std::iter::empty())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(config.catalog.kind, kind, "{file}");
        assert_eq!(
            config.uses_object_storage(),
            file.starts_with("production/"),
            "{file}"
        );
    }
}
