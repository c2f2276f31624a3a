//! The masking methods a column's `masking` attribute can name. The hashing itself lives in
//! the runtime; this is the vocabulary shared by config, policy and worker.

use std::fmt;
use std::str::FromStr;

/// How a PII column is transformed before it reaches a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Masking {
    /// Hex SHA-256 of key‖value (plain SHA-256 when no key is configured).
    Sha256,
    /// Hex HMAC-SHA256 keyed with the platform masking key.
    HmacSha256,
    /// The fixed string `[REDACTED]`.
    Redact,
    /// Null (the column must be optional).
    Null,
    /// All but the last four characters replaced by `*`.
    Last4,
}

impl Masking {
    /// Every method, in the spelling descriptors use.
    pub const ALL: [(&'static str, Masking); 5] = [
        ("SHA256", Masking::Sha256),
        ("HMAC-SHA256", Masking::HmacSha256),
        ("REDACT", Masking::Redact),
        ("NULL", Masking::Null),
        ("LAST4", Masking::Last4),
    ];

    /// Whether the masked column is a string whatever the source type.
    pub fn output_is_string(self) -> bool {
        !matches!(self, Masking::Null)
    }

    /// The spelling descriptors use.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(s, _)| *s)
            .unwrap_or("SHA256")
    }
}

impl FromStr for Masking {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase().replace('_', "-");
        Self::ALL
            .iter()
            .find(|(name, _)| *name == upper || name.replace('-', "") == upper)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                let hint = crate::error::closest(s, &names)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                format!(
                    "unknown masking `{s}`; use one of {}{hint}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for Masking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_spellings() {
        assert_eq!("SHA256".parse::<Masking>().unwrap(), Masking::Sha256);
        assert_eq!(
            "hmac-sha256".parse::<Masking>().unwrap(),
            Masking::HmacSha256
        );
        assert_eq!(
            "HMAC_SHA256".parse::<Masking>().unwrap(),
            Masking::HmacSha256
        );
        assert!(
            "SHA265"
                .parse::<Masking>()
                .unwrap_err()
                .contains("did you mean `SHA256`")
        );
    }
}
