//! Collecting the findings: load each descriptor, evaluate the policy set against it, and
//! record what happened as data. Nothing here formats output; `render` does that.

use std::path::{Path, PathBuf};

use meshd_config::policy::{Finding, Location, PolicySet, Severity};
use meshd_config::{DataProduct, PlatformConfig, startup_checks};

use super::{DescriptorReport, Report};

/// The rule name of what `meshd run` would refuse at start (`startup_checks`).
pub const STARTUP_RULE: &str = "startup";

/// Loads and checks every descriptor against `policies`, and against what `meshd run` refuses
/// at start (with `platform`, also what depends on the platform config).
pub fn validate(
    descriptors: &[PathBuf],
    policies: &PolicySet,
    platform: Option<&PlatformConfig>,
) -> Report {
    let reports = descriptors
        .iter()
        .map(|path| check(path, policies, platform))
        .collect();
    let mut rules = policies.rule_names();
    rules.push(STARTUP_RULE.to_string());
    Report {
        descriptors: reports,
        rules,
    }
}

/// One descriptor's outcome; a descriptor that does not load or evaluate carries the reason
/// instead of findings, so the others are still checked.
fn check(path: &Path, policies: &PolicySet, platform: Option<&PlatformConfig>) -> DescriptorReport {
    let mut report = DescriptorReport {
        descriptor: path.to_path_buf(),
        product: None,
        ports: Vec::new(),
        findings: Vec::new(),
        error: None,
    };
    let product = match DataProduct::load(path) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    report.product = Some(product.name().to_string());
    report.ports = (0..product.spec.spec.output_ports.len())
        .map(|i| {
            let (ns, name) = product.table_ident(i);
            format!("{ns}.{name}")
        })
        .collect();
    match policies.evaluate(&product) {
        Ok(findings) => report.findings = findings,
        Err(e) => report.error = Some(e.to_string()),
    }
    let (ns, table) = product.table_ident(0);
    report.findings.extend(
        startup_checks(&product, platform)
            .into_iter()
            .map(|d| Finding {
                severity: Severity::Deny,
                rule: STARTUP_RULE.to_string(),
                package: "meshd.startup".to_string(),
                message: match &d.hint {
                    Some(hint) => format!("{} (fix: {hint}); `meshd run` refuses it", d.message),
                    None => format!("{}; `meshd run` refuses it", d.message),
                },
                product: product.name().to_string(),
                port: format!("{ns}.{table}"),
                column: None,
                location: Location {
                    file: d.file.display().to_string(),
                    line: d.line,
                    column: d.column,
                },
            }),
    );
    report
}
