//! `meshd validate`: loads descriptors, evaluates the policy set against every output port,
//! and renders the outcome for people (text), machines (json), CI test reports (junit) and
//! GitHub workflow annotations (github). Exit codes: 0 clean (warnings allowed), 1
//! violations, 2 could not evaluate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use meshd_config::DataProduct;
use meshd_config::policy::{Finding, PolicySet, Severity};
use serde::Serialize;

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

impl Report {
    /// 2 if anything could not be evaluated, else 1 on any violation, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.descriptors.iter().any(|d| d.error.is_some()) {
            2
        } else if self.violations() > 0 {
            1
        } else {
            0
        }
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

    /// Renders the report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default(),
            Format::Junit => self.junit(),
            Format::Github => self.github(),
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for d in &self.descriptors {
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
            self.descriptors.len(),
            self.violations(),
            self.count(Severity::Warn),
            self.descriptors
                .iter()
                .filter(|d| d.error.is_some())
                .count()
        );
        out
    }

    fn github(&self) -> String {
        let mut out = String::new();
        for d in &self.descriptors {
            if let Some(e) = &d.error {
                let _ = writeln!(
                    out,
                    "::error file={},title={}::{}",
                    property(&d.descriptor.display().to_string()),
                    property("meshd: cannot evaluate"),
                    data(e)
                );
            }
            for f in &d.findings {
                let level = if f.severity == Severity::Deny {
                    "error"
                } else {
                    "warning"
                };
                let _ = writeln!(
                    out,
                    "::{level} file={},line={},col={},title={}::{}",
                    property(&f.location.file),
                    f.location.line,
                    f.location.column,
                    property(&format!("meshd {} ({} {})", f.rule, f.product, f.port)),
                    data(&f.message)
                );
            }
        }
        out
    }

    fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let tests: usize = self
            .descriptors
            .iter()
            .map(|d| (d.ports.len() * self.rules.len()).max(1))
            .sum();
        let failures = self
            .descriptors
            .iter()
            .map(|d| {
                d.ports
                    .iter()
                    .flat_map(|port| self.rules.iter().map(move |rule| (port, rule)))
                    .filter(|(port, rule)| {
                        d.findings.iter().any(|f| {
                            &f.port == *port && &f.rule == *rule && f.severity == Severity::Deny
                        })
                    })
                    .count()
            })
            .sum::<usize>();
        let errors = self
            .descriptors
            .iter()
            .filter(|d| d.error.is_some())
            .count();
        let _ = writeln!(
            out,
            "<testsuites name=\"meshd validate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
        );
        for d in &self.descriptors {
            let name = d
                .product
                .clone()
                .unwrap_or_else(|| d.descriptor.display().to_string());
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" file=\"{}\">",
                xml(&name),
                xml(&d.descriptor.display().to_string())
            );
            if let Some(e) = &d.error {
                let _ = writeln!(
                    out,
                    "    <testcase name=\"load\" classname=\"{}\"><error message=\"cannot evaluate\">{}</error></testcase>",
                    xml(&name),
                    xml(e)
                );
            }
            for port in &d.ports {
                for rule in &self.rules {
                    let mine: Vec<&Finding> = d
                        .findings
                        .iter()
                        .filter(|f| &f.port == port && &f.rule == rule)
                        .collect();
                    let _ = write!(
                        out,
                        "    <testcase name=\"{}\" classname=\"{}\">",
                        xml(rule),
                        xml(&format!("{name}.{port}"))
                    );
                    for f in mine.iter().filter(|f| f.severity == Severity::Deny) {
                        let _ = write!(
                            out,
                            "<failure message=\"{}\">{}:{}:{}</failure>",
                            xml(&f.message),
                            xml(&f.location.file),
                            f.location.line,
                            f.location.column
                        );
                    }
                    let warnings: Vec<String> = mine
                        .iter()
                        .filter(|f| f.severity == Severity::Warn)
                        .map(|f| xml(&f.message))
                        .collect();
                    if !warnings.is_empty() {
                        let _ = write!(out, "<system-out>{}</system-out>", warnings.join("\n"));
                    }
                    let _ = writeln!(out, "</testcase>");
                }
            }
            let _ = writeln!(out, "  </testsuite>");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Workflow-command message data: `%`, CR and LF are escaped.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Workflow-command property values also escape `:` and `,`.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}
