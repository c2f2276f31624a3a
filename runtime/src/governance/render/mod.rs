//! Rendering a [`Report`]: one module per output format, each a function from the report's
//! data to the text `meshd validate` prints. Renderers only read the report; what it says is
//! decided in `collect`.

mod github;
mod junit;
mod text;

use super::{Format, Report};

/// The report as `format` prints it.
pub(super) fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Json => json(report),
        Format::Junit => junit::render(report),
        Format::Github => github::render(report),
    }
}

/// The report's own fields as one pretty-printed JSON document.
fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}
