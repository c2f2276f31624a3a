//! Collecting the findings: load each descriptor, evaluate the policy set against it, and
//! record what happened as data. Nothing here formats output; `render` does that.

use std::path::{Path, PathBuf};

use meshd_config::DataProduct;
use meshd_config::policy::PolicySet;

use super::{DescriptorReport, Report};

/// Loads and checks every descriptor against `policies`.
pub fn validate(descriptors: &[PathBuf], policies: &PolicySet) -> Report {
    let reports = descriptors
        .iter()
        .map(|path| check(path, policies))
        .collect();
    Report {
        descriptors: reports,
        rules: policies.rule_names(),
    }
}

/// One descriptor's outcome; a descriptor that does not load or evaluate carries the reason
/// instead of findings, so the others are still checked.
fn check(path: &Path, policies: &PolicySet) -> DescriptorReport {
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
    report
}
