//! `commit.compression`: the Parquet codec of a port's data files. The choice trades CPU per
//! record against storage and scan bytes (README, Performance, has the measurements behind the
//! default).

use std::fmt;

use serde::{Serialize, Serializer};

/// A Parquet compression codec, as a descriptor names it: `zstd` (level 1), `zstd(N)` (1–22),
/// `lz4_raw`, `snappy`, `uncompressed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Zstandard at a level.
    Zstd(u8),
    /// LZ4 in Parquet's raw framing (the deprecated `lz4` framing is not offered).
    Lz4Raw,
    /// Snappy.
    Snappy,
    /// No compression.
    Uncompressed,
}

impl Default for Codec {
    fn default() -> Self {
        Self::Zstd(1)
    }
}

impl Codec {
    /// Parses a descriptor value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        match t.as_str() {
            "zstd" => return Ok(Self::Zstd(1)),
            "lz4_raw" | "lz4" => return Ok(Self::Lz4Raw),
            "snappy" => return Ok(Self::Snappy),
            "uncompressed" | "none" => return Ok(Self::Uncompressed),
            _ => {}
        }
        if let Some(level) = t.strip_prefix("zstd(").and_then(|r| r.strip_suffix(')')) {
            return match level.trim().parse::<u8>() {
                Ok(l) if (1..=22).contains(&l) => Ok(Self::Zstd(l)),
                _ => Err(format!("zstd level `{level}` is not 1–22")),
            };
        }
        Err(format!(
            "unknown compression `{text}`; use zstd, zstd(N), lz4_raw, snappy or uncompressed"
        ))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zstd(1) => f.write_str("zstd"),
            Self::Zstd(l) => write!(f, "zstd({l})"),
            Self::Lz4Raw => f.write_str("lz4_raw"),
            Self::Snappy => f.write_str("snappy"),
            Self::Uncompressed => f.write_str("uncompressed"),
        }
    }
}

crate::units::serde_via_text!(Codec, "a codec such as `zstd`, `zstd(3)`, `lz4_raw`");

impl Serialize for Codec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_parse_and_print_back() {
        for text in ["zstd", "zstd(3)", "lz4_raw", "snappy", "uncompressed"] {
            assert_eq!(Codec::parse(text).unwrap().to_string(), text);
        }
        assert!(Codec::parse("zstd(0)").unwrap_err().contains("1–22"));
        assert!(Codec::parse("brotli").unwrap_err().contains("lz4_raw"));
    }
}
