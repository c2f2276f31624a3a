//! What policy evaluation reports: findings (a rule's message about one product's port,
//! positioned in the descriptor or schema file) and test outcomes.

use serde::Serialize;
use serde_json::Value;

use crate::descriptor::DataProduct;
use crate::locate::locate;

/// Fail or report only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// From `deny` or `violation`: fails validation (exit 1) and refuses the product at run time.
    Deny,
    /// From `warn`: reported, never fails.
    Warn,
}

/// A file position an editor can jump to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The descriptor or schema file.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One message of one rule about one output port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Fail or warn.
    pub severity: Severity,
    /// The rule: the message's own `rule` field, else the last part of its package
    /// (`governance` for `package datamesh.governance`, `pii_masking` for a built-in).
    pub rule: String,
    /// The Rego package.
    pub package: String,
    /// The message, as the rule wrote it.
    pub message: String,
    /// `metadata.name`.
    pub product: String,
    /// The output port's table (`payments.payment_transactions`).
    pub port: String,
    /// The column the message is about, when the rule says (or its message quotes one).
    pub column: Option<String>,
    /// Where to look.
    pub location: Location,
}

impl Finding {
    /// Reads a rule's message: a string, or an object `{msg, rule, column, path}`.
    pub(crate) fn from_message(
        product: &DataProduct,
        port: usize,
        input: &Value,
        package: &str,
        severity: Severity,
        message: &Value,
    ) -> Self {
        let field = |k: &str| message.get(k).and_then(Value::as_str).map(str::to_string);
        let text = match message {
            Value::String(s) => s.clone(),
            other => field("msg").unwrap_or_else(|| other.to_string()),
        };
        let rule = field("rule")
            .unwrap_or_else(|| package.rsplit('.').next().unwrap_or(package).to_string());
        let columns: Vec<(&str, &str)> = input["schema"]["columns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| Some((c["path"].as_str()?, c["name"].as_str()?)))
                    .collect()
            })
            .unwrap_or_default();
        let column = field("column").or_else(|| quoted_column(&text, &columns));
        let location = match &column {
            Some(col) => schema_location(product, port, col),
            None => descriptor_location(
                product,
                &field("path").unwrap_or_else(|| format!("spec.outputPorts[{port}]")),
            ),
        };
        Self {
            severity,
            rule,
            package: package.to_string(),
            message: text,
            product: product.name().to_string(),
            port: input["port"]["table"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            column,
            location,
        }
    }
}

/// The column a message quotes ('email', "email" or `email`): by path, longest first, or by
/// the field's own name (a rule that prints `name`, as the seed's does, calls
/// `customer.email` 'email'). A quote that could mean several columns (`email` and
/// `customer.email`) names none: a finding without a column beats one at the wrong line.
fn quoted_column(text: &str, columns: &[(&str, &str)]) -> Option<String> {
    let quoted = |c: &str| {
        ['\'', '"', '`']
            .iter()
            .any(|q| text.contains(&format!("{q}{c}{q}")))
    };
    let mut paths: Vec<&str> = columns.iter().map(|(path, _)| *path).collect();
    paths.sort_by_key(|c| std::cmp::Reverse(c.len()));
    let quote = paths.into_iter().find(|c| quoted(c)).or_else(|| {
        columns
            .iter()
            .find(|(_, name)| quoted(name))
            .map(|(_, name)| *name)
    })?;
    let mut meant = columns
        .iter()
        .filter(|(path, name)| *path == quote || *name == quote);
    match (meant.next(), meant.next()) {
        (Some((path, _)), None) => Some(path.to_string()),
        _ => None,
    }
}

fn descriptor_location(product: &DataProduct, path: &str) -> Location {
    let text = std::fs::read_to_string(&product.path).unwrap_or_default();
    let (line, column) = locate(&text, path);
    Location {
        file: product.path.display().to_string(),
        line,
        column,
    }
}

/// The `"name": "<field>"` of a (possibly nested, dotted) column in the `.avsc`.
fn schema_location(product: &DataProduct, port: usize, column_path: &str) -> Location {
    let schema = &product.schemas[port];
    let text = &schema.text;
    let mut from = 0usize;
    let mut at = None;
    // `items[].sku` and `attributes{}.note` name the fields `items`, `attributes`, `sku`, `note`.
    for part in column_path.split('.') {
        let part = part.trim_end_matches(['[', ']', '{', '}']);
        match find_field_name(&text[from..], part) {
            Some(offset) => {
                at = Some(from + offset);
                from += offset + 1;
            }
            None => break,
        }
    }
    let (line, column) = at.map_or((0, 0), |offset| {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column)
    });
    Location {
        file: schema.path.display().to_string(),
        line,
        column,
    }
}

/// Byte offset of `"name"` in the first `"name": "<field>"` of `text`.
fn find_field_name(text: &str, field: &str) -> Option<usize> {
    let mut search = 0usize;
    while let Some(i) = text[search..].find("\"name\"") {
        let start = search + i;
        let rest = text[start + 6..].trim_start();
        if let Some(value) = rest.strip_prefix(':').map(str::trim_start)
            && value.starts_with(&format!("\"{field}\""))
        {
            return Some(start);
        }
        search = start + 6;
    }
    None
}

/// The result of one `test_*` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestOutcome {
    /// The policy file.
    pub file: String,
    /// The package.
    pub package: String,
    /// The test rule.
    pub name: String,
    /// Whether it was true.
    pub passed: bool,
    /// Why it failed.
    pub reason: Option<String>,
}

impl TestOutcome {
    pub(crate) fn pass(file: &str, package: &str, name: &str) -> Self {
        Self {
            file: file.to_string(),
            package: package.to_string(),
            name: name.to_string(),
            passed: true,
            reason: None,
        }
    }

    pub(crate) fn fail(file: &str, package: &str, name: &str, reason: String) -> Self {
        Self {
            passed: false,
            reason: Some(reason),
            ..Self::pass(file, package, name)
        }
    }
}
