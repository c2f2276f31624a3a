//! The format for people: one block per descriptor, one line per finding, then a summary.

use std::fmt::Write as _;

use meshd_config::policy::Severity;

use crate::governance::Report;

/// Each descriptor with its product and ports, its findings (or `ok`), and a closing count
/// of violations, warnings and descriptors not evaluated.
pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    for d in &report.descriptors {
        match (&d.error, &d.product) {
            (Some(e), _) => {
                let _ = writeln!(
                    out,
                    "{}: cannot evaluate:\n  {}",
                    d.descriptor.display(),
                    e.replace('\n', "\n  ")
                );
            }
            (None, Some(product)) => {
                let _ = writeln!(
                    out,
                    "{}: product {product}, port {}",
                    d.descriptor.display(),
                    d.ports.join(", ")
                );
                if d.findings.is_empty() {
                    let _ = writeln!(out, "  ok");
                }
                for f in &d.findings {
                    let level = if f.severity == Severity::Deny {
                        "DENY"
                    } else {
                        "WARN"
                    };
                    let column = f
                        .column
                        .as_deref()
                        .map(|c| format!(" column {c}:"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  {level} [{}] {}:{}:{}:{column} {}",
                        f.rule, f.location.file, f.location.line, f.location.column, f.message
                    );
                }
            }
            (None, None) => {}
        }
    }
    let _ = writeln!(
        out,
        "{} descriptor(s): {} violation(s), {} warning(s), {} not evaluated",
        report.descriptors.len(),
        report.violations(),
        report.count(Severity::Warn),
        report.not_evaluated()
    );
    out
}
