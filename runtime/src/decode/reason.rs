//! Why a record was rejected: a closed set, so the `reason` metric label stays bounded and
//! the dead-letter header `meshd.error.kind` has values consumers can match on.
//!
//! Decode and validation both produce a [`Reason`]; the wire spelling ([`Reason::as_str`])
//! is part of meshd's interface and never changes for an existing variant.

use std::fmt;

/// The class of a rejected record, named on its dead letter and counted per product and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not parseable in the port's format (broken JSON, text that is not UTF-8, truncated
    /// Avro, trailing bytes, an Avro union branch that does not exist).
    Decode,
    /// Parseable, but a value has the wrong type for the schema.
    Schema,
    /// A required field is missing or null.
    Required,
    /// An enum value is not one of the symbols.
    Enum,
    /// A decimal does not fit the declared precision.
    Decimal,
    /// A value is malformed for its logical type (uuid, fixed length).
    Format,
    /// The record has no value (a tombstone).
    NullValue,
    /// The record is larger than the configured limit.
    TooLarge,
    /// The record names a writer schema id the schema registry does not know.
    SchemaId,
    /// The writer schema cannot be read as the port's schema (the message names the field).
    SchemaResolution,
}

impl Reason {
    /// Every reason, so metrics and docs can enumerate the label values up front.
    pub const ALL: [Reason; 10] = [
        Reason::Decode,
        Reason::Schema,
        Reason::Required,
        Reason::Enum,
        Reason::Decimal,
        Reason::Format,
        Reason::NullValue,
        Reason::TooLarge,
        Reason::SchemaId,
        Reason::SchemaResolution,
    ];

    /// The wire spelling: the `reason` metric label and the dead-letter header value, which
    /// dashboards, alerts and dead-letter consumers match on.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Reason::Decode => "decode",
            Reason::Schema => "schema",
            Reason::Required => "required",
            Reason::Enum => "enum",
            Reason::Decimal => "decimal",
            Reason::Format => "format",
            Reason::NullValue => "null-value",
            Reason::TooLarge => "too-large",
            Reason::SchemaId => "schema-id",
            Reason::SchemaResolution => "schema-resolution",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The spellings are an interface (metric labels, dead-letter headers): pin them.
    #[test]
    fn wire_spellings_are_stable_and_distinct() {
        let spellings: Vec<&str> = Reason::ALL.iter().map(Reason::as_str).collect();
        assert_eq!(
            spellings,
            [
                "decode",
                "schema",
                "required",
                "enum",
                "decimal",
                "format",
                "null-value",
                "too-large",
                "schema-id",
                "schema-resolution"
            ]
        );
        assert_eq!(
            spellings.iter().collect::<HashSet<_>>().len(),
            Reason::ALL.len()
        );
        for reason in Reason::ALL {
            assert_eq!(reason.to_string(), reason.as_str());
        }
    }
}
