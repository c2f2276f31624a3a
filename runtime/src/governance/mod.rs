//! `meshd validate`: loads descriptors, evaluates the policy set against every output port,
//! and renders the outcome for people (text), machines (json), CI test reports (junit) and
//! GitHub workflow annotations (github). Exit codes: 0 clean (warnings allowed), 1
//! violations, 2 could not evaluate.
//!
//! Data flows in two steps that do not know about each other: [`validate`] (in `collect`)
//! loads each descriptor and gathers its findings into a [`Report`], which is plain data;
//! [`Report::render`] (in `render`, one module per format) turns that data into text. A new
//! format touches `render` and [`Format`] only; a new kind of finding touches `collect` only.

mod collect;
pub mod registry;
mod render;

use std::path::PathBuf;

use meshd_config::policy::{Finding, Severity};
use serde::Serialize;

pub use collect::validate;

/// The outcome for one descriptor.
#[derive(Debug, Serialize)]
pub struct DescriptorReport {
    /// The descriptor file.
    pub descriptor: PathBuf,
    /// `metadata.name`, when it loaded.
    pub product: Option<String>,
    /// Output port tables, when it loaded.
    pub ports: Vec<String>,
    /// Policy findings.
    pub findings: Vec<Finding>,
    /// Why it could not be evaluated (unreadable, does not parse, a policy failed).
    pub error: Option<String>,
}

/// The outcome for every descriptor.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Per descriptor, in the order given.
    pub descriptors: Vec<DescriptorReport>,
    /// Rules that ran, for per-rule reports.
    pub rules: Vec<String>,
}

/// Output formats of `meshd validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON document.
    Json,
    /// JUnit XML: one test case per rule per port.
    Junit,
    /// GitHub Actions workflow annotations.
    Github,
}

impl Report {
    /// 2 if anything could not be evaluated, else 1 on any violation, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.not_evaluated() > 0 {
            2
        } else if self.violations() > 0 {
            1
        } else {
            0
        }
    }

    /// Renders the report in `format`.
    pub fn render(&self, format: Format) -> String {
        render::render(self, format)
    }

    fn violations(&self) -> usize {
        self.count(Severity::Deny)
    }

    fn count(&self, severity: Severity) -> usize {
        self.descriptors
            .iter()
            .flat_map(|d| &d.findings)
            .filter(|f| f.severity == severity)
            .count()
    }

    /// Descriptors that could not be evaluated.
    fn not_evaluated(&self) -> usize {
        self.descriptors
            .iter()
            .filter(|d| d.error.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use meshd_config::policy::{Finding, Location, Severity};

    use super::{DescriptorReport, Report};

    fn descriptor(severity: Option<Severity>, error: Option<&str>) -> DescriptorReport {
        let findings = severity
            .map(|severity| Finding {
                severity,
                rule: "pii_masking".into(),
                package: "datamesh.builtin.pii_masking".into(),
                message: "m".into(),
                product: "p".into(),
                port: "ns.t".into(),
                column: None,
                location: Location {
                    file: "p.yaml".into(),
                    line: 1,
                    column: 1,
                },
            })
            .into_iter()
            .collect();
        DescriptorReport {
            descriptor: "p.yaml".into(),
            product: Some("p".into()),
            ports: vec!["ns.t".into()],
            findings,
            error: error.map(str::to_string),
        }
    }

    fn exit_code(descriptors: Vec<DescriptorReport>) -> u8 {
        Report {
            descriptors,
            rules: vec!["pii_masking".into()],
        }
        .exit_code()
    }

    #[test]
    fn not_evaluated_outranks_violations_which_outrank_warnings() {
        assert_eq!(exit_code(vec![descriptor(None, None)]), 0);
        assert_eq!(exit_code(vec![descriptor(Some(Severity::Warn), None)]), 0);
        let deny = || descriptor(Some(Severity::Deny), None);
        assert_eq!(exit_code(vec![deny()]), 1);
        assert_eq!(exit_code(vec![deny(), descriptor(None, Some("no"))]), 2);
    }
}
