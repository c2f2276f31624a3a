//! GitHub Actions workflow commands: an `::error` or `::warning` annotation per finding, at
//! the file, line and column it points to, so a pull request shows it on the changed line.

use std::fmt::Write as _;

use meshd_config::policy::Severity;

use crate::governance::Report;

/// One annotation per descriptor that could not be evaluated and per finding.
pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    for d in &report.descriptors {
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

#[cfg(test)]
mod tests {
    use super::{data, property};

    #[test]
    fn messages_keep_colons_and_properties_escape_them() {
        assert_eq!(data("50% a:b,c\r\nd"), "50%25 a:b,c%0D%0Ad");
        assert_eq!(property("50% a:b,c\nd"), "50%25 a%3Ab%2Cc%0Ad");
    }
}
