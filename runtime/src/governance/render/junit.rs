//! JUnit XML for CI test reports: one test suite per descriptor, one test case per rule per
//! output port, a failure per denying finding, warnings as the case's output.

use std::fmt::Write as _;

use meshd_config::policy::{Finding, Severity};

use crate::governance::{DescriptorReport, Report};

/// The whole `<testsuites>` document, counts first so CI can summarise without parsing cases.
pub(super) fn render(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let tests: usize = report
        .descriptors
        .iter()
        .map(|d| (d.ports.len() * report.rules.len()).max(1))
        .sum();
    let failures = report
        .descriptors
        .iter()
        .map(|d| failed_cases(d, &report.rules))
        .sum::<usize>();
    let errors = report.not_evaluated();
    let _ = writeln!(
        out,
        "<testsuites name=\"meshd validate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
    );
    for d in &report.descriptors {
        suite(&mut out, d, &report.rules);
    }
    out.push_str("</testsuites>\n");
    out
}

/// Test cases (port × rule) of `d` with at least one denying finding.
fn failed_cases(d: &DescriptorReport, rules: &[String]) -> usize {
    d.ports
        .iter()
        .flat_map(|port| rules.iter().map(move |rule| (port, rule)))
        .filter(|(port, rule)| {
            d.findings
                .iter()
                .any(|f| &f.port == *port && &f.rule == *rule && f.severity == Severity::Deny)
        })
        .count()
}

/// One descriptor's `<testsuite>`: a `load` error case when it could not be evaluated, else
/// a case per port and rule.
fn suite(out: &mut String, d: &DescriptorReport, rules: &[String]) {
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
        for rule in rules {
            let mine: Vec<&Finding> = d
                .findings
                .iter()
                .filter(|f| &f.port == port && &f.rule == rule)
                .collect();
            case(out, &name, port, rule, &mine);
        }
    }
    let _ = writeln!(out, "  </testsuite>");
}

/// The `<testcase>` of `rule` on `port`, given the findings that rule made there.
fn case(out: &mut String, product: &str, port: &str, rule: &str, findings: &[&Finding]) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\">",
        xml(rule),
        xml(&format!("{product}.{port}"))
    );
    for f in findings.iter().filter(|f| f.severity == Severity::Deny) {
        let _ = write!(
            out,
            "<failure message=\"{}\">{}:{}:{}</failure>",
            xml(&f.message),
            xml(&f.location.file),
            f.location.line,
            f.location.column
        );
    }
    let warnings: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warn)
        .map(|f| xml(&f.message))
        .collect();
    if !warnings.is_empty() {
        let _ = write!(out, "<system-out>{}</system-out>", warnings.join("\n"));
    }
    let _ = writeln!(out, "</testcase>");
}

/// Text escaped for XML attribute values and element content.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::xml;

    #[test]
    fn xml_escapes_markup_and_both_quotes_once() {
        assert_eq!(
            xml(r#"<a href="x">Tom's & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom&apos;s &amp; co&lt;/a&gt;"
        );
    }
}
