//! The one error type of the config crate. A [`Diagnostic`] is what a user sees: where in
//! which file, which key path, what is wrong and how to fix it.

use std::fmt;
use std::path::PathBuf;

/// One problem in one file, positioned so an editor can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, 0 when the problem has no position (e.g. an empty file).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key path, e.g. `spec.outputPorts[0].sla.freshness`; empty for the document root.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong loading configuration. Variants carry the file, because a
/// message without a file name sends the user searching.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source} (check the path and its permissions)", path.display())]
    Read {
        /// The file we tried to read.
        path: PathBuf,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
    /// A Rego policy does not parse, or failed while being evaluated.
    #[error("policy {origin}: {message}")]
    Policy {
        /// The policy file (or `builtin:<rule>`).
        origin: String,
        /// What the Rego engine said, with its line and column.
        message: String,
    },
    /// The file was read but is not valid; every problem found is listed.
    #[error("{}", render(.diagnostics))]
    Invalid {
        /// The problems, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// Shorthand for a single diagnostic.
    pub fn invalid(diagnostic: Diagnostic) -> Self {
        Self::Invalid {
            diagnostics: vec![diagnostic],
        }
    }

    /// The diagnostics, if this is a validation error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid { diagnostics } => diagnostics,
            Self::Read { .. } | Self::Policy { .. } => &[],
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Turns a serde_yaml_ng error into a positioned diagnostic with a "did you mean" hint.
pub(crate) fn from_yaml(file: PathBuf, err: &serde_yaml_ng::Error) -> Diagnostic {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let mut text = err.to_string();
    if let Some(i) = text.rfind(" at line ") {
        text.truncate(i);
    }
    let (path, message) = split_path(&text);
    let hint = suggest(&message);
    Diagnostic {
        file,
        line,
        column,
        path,
        message,
        hint,
    }
}

/// serde_yaml_ng prefixes messages with the key path (`spec.outputPorts[0]: …`).
fn split_path(text: &str) -> (String, String) {
    if let Some((head, tail)) = text.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'));
        if looks_like_path {
            return (head.to_string(), tail.to_string());
        }
    }
    (String::new(), text.to_string())
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and variants), the closest
/// expected name.
pub(crate) fn suggest(message: &str) -> Option<String> {
    let is_unknown = message.starts_with("unknown field") || message.starts_with("unknown variant");
    if !is_unknown {
        return None;
    }
    let mut names = message.split('`').skip(1).step_by(2);
    let given = names.next()?;
    let candidates: Vec<&str> = names.collect();
    closest(given, &candidates).map(|best| format!("did you mean `{best}`?"))
}

/// The candidate closest to `given`, if any is close enough to be a plausible typo.
pub fn closest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| {
            (
                strsim::normalized_damerau_levenshtein(&given.to_lowercase(), &c.to_lowercase()),
                *c,
            )
        })
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_expected_key() {
        let hint = suggest("unknown field `freshnes`, expected `freshness` or `availability`");
        assert_eq!(hint.as_deref(), Some("did you mean `freshness`?"));
        assert_eq!(suggest("unknown field `zzz`, expected `freshness`"), None);
        assert_eq!(suggest("invalid type: string"), None);
    }
}
