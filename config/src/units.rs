//! Human units at the edge: durations (`15min`, `7years`), ratios (`99.9%`) and byte sizes
//! (`128MiB`), parsed once into typed values so nothing downstream handles strings.
//!
//! Each type keeps the text it was written as, because operators want to see `15min` in
//! table properties and messages, not `900`.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// A duration written the way people write them in descriptors: `30s`, `15min`, `1h`,
/// `7days`, `7years`. Years are 365 days, months 30 days: retention is a policy, not a calendar.
#[derive(Clone, PartialEq)]
pub struct HumanDuration {
    duration: Duration,
    text: String,
}

const DURATION_UNITS: &[(&[&str], f64)] = &[
    (&["ms", "millis", "millisecond", "milliseconds"], 0.001),
    (&["s", "sec", "secs", "second", "seconds"], 1.0),
    (&["m", "min", "mins", "minute", "minutes"], 60.0),
    (&["h", "hr", "hrs", "hour", "hours"], 3600.0),
    (&["d", "day", "days"], 86_400.0),
    (&["w", "week", "weeks"], 604_800.0),
    (&["mo", "month", "months"], 2_592_000.0),
    (&["y", "yr", "yrs", "year", "years"], 31_536_000.0),
];

impl HumanDuration {
    /// Parses `<number><unit>`; the error says which units exist so the fix is obvious.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (number, unit) = split_number(text)?;
        let scale = DURATION_UNITS
            .iter()
            .find(|(names, _)| names.contains(&unit.to_ascii_lowercase().as_str()))
            .map(|(_, scale)| *scale)
            .ok_or_else(|| {
                format!(
                    "unknown duration unit `{unit}` in `{text}`; use one of ms, s, min, h, days, weeks, months, years (e.g. `15min`)"
                )
            })?;
        let seconds = number * scale;
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(format!("duration `{text}` must be greater than zero"));
        }
        // Found by the `descriptor` fuzz target: `from_secs_f64` panics past u64::MAX seconds.
        let duration = Duration::try_from_secs_f64(seconds)
            .ok()
            .filter(|d| *d <= Duration::from_secs(1_000 * 31_536_000))
            .ok_or_else(|| format!("duration `{text}` is too long; at most 1000 years"))?;
        Ok(Self {
            duration,
            text: text.trim().to_string(),
        })
    }

    /// Builds one from a `Duration`, for defaults that were never written down.
    pub fn from_duration(duration: Duration, text: &str) -> Self {
        Self {
            duration,
            text: text.to_string(),
        }
    }

    /// The parsed length.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The text as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.text, self.duration)
    }
}

/// A ratio written as a percentage (`99.9%`) or a fraction (`0.999`), stored as a fraction.
#[derive(Clone, PartialEq)]
pub struct Ratio {
    value: f64,
    text: String,
}

impl Ratio {
    /// Parses `99.9%` or `0.999`; anything outside (0, 1] is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let value = match trimmed.strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
            None => trimmed.parse::<f64>(),
        }
        .map_err(|_| format!("`{text}` is not a ratio; write a percentage such as `99.9%`"))?;
        if !(value > 0.0 && value <= 1.0) {
            return Err(format!("ratio `{text}` must be above 0% and at most 100%"));
        }
        Ok(Self {
            value,
            text: trimmed.to_string(),
        })
    }

    /// The fraction, e.g. 0.999.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The text as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.text)
    }
}

/// A byte size: `128MiB`, `64MB`, `1GiB` or a plain number of bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

const BYTE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("kib", 1 << 10),
    ("mb", 1_000_000),
    ("mib", 1 << 20),
    ("gb", 1_000_000_000),
    ("gib", 1 << 30),
];

impl ByteSize {
    /// Parses `128MiB`-style sizes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (number, unit) = split_number(text)?;
        let unit = if unit.is_empty() {
            "b".to_string()
        } else {
            unit.to_ascii_lowercase()
        };
        let scale = BYTE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                format!(
                    "unknown size unit `{unit}` in `{text}`; use B, KiB, MiB, GiB, KB, MB or GB"
                )
            })?;
        let bytes = number * scale as f64;
        if !(bytes.is_finite() && bytes >= 1.0) {
            return Err(format!("size `{text}` must be at least one byte"));
        }
        Ok(Self(bytes as u64))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

fn split_number(text: &str) -> Result<(f64, String), String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number (e.g. `15min`, `128MiB`)"))?;
    Ok((number, unit.trim().to_string()))
}

/// Implements `Deserialize` through `parse(&str)` inside the deserializer, so serde_yaml_ng
/// positions the error at the value rather than at its parent mapping.
macro_rules! serde_via_text {
    ($ty:ty, $expecting:literal) => {
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                struct Visitor;
                impl ::serde::de::Visitor<'_> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        <$ty>::parse(v).map_err(E::custom)
                    }
                    fn visit_u64<E: ::serde::de::Error>(self, v: u64) -> Result<$ty, E> {
                        <$ty>::parse(&v.to_string()).map_err(E::custom)
                    }
                    fn visit_f64<E: ::serde::de::Error>(self, v: f64) -> Result<$ty, E> {
                        <$ty>::parse(&v.to_string()).map_err(E::custom)
                    }
                }
                deserializer.deserialize_any(Visitor)
            }
        }
    };
}

pub(crate) use serde_via_text;

serde_via_text!(HumanDuration, "a duration such as `15min`");
serde_via_text!(Ratio, "a ratio such as `99.9%`");
serde_via_text!(ByteSize, "a size such as `128MiB`");

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absurdly_long_duration_is_an_error_not_a_panic() {
        let err = HumanDuration::parse(&format!("1{}min", "5".repeat(90))).unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert!(HumanDuration::parse("7years").is_ok());
    }

    #[test]
    fn durations_in_the_units_descriptors_use() {
        for (text, secs) in [
            ("30s", 30.0),
            ("15min", 900.0),
            ("1h", 3600.0),
            ("7days", 604_800.0),
            ("7years", 7.0 * 31_536_000.0),
            ("250ms", 0.25),
        ] {
            let d = HumanDuration::parse(text).unwrap();
            assert!((d.duration().as_secs_f64() - secs).abs() < 1e-9, "{text}");
            assert_eq!(d.as_str(), text);
        }
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        let err = HumanDuration::parse("15 fortnights").unwrap_err();
        assert!(err.contains("unknown duration unit `fortnights`"), "{err}");
        assert!(
            HumanDuration::parse("min")
                .unwrap_err()
                .contains("does not start with a number")
        );
        assert!(
            HumanDuration::parse("0s")
                .unwrap_err()
                .contains("greater than zero")
        );
    }

    #[test]
    fn ratios_and_sizes() {
        assert!((Ratio::parse("99.9%").unwrap().value() - 0.999).abs() < 1e-12);
        assert!((Ratio::parse("0.95").unwrap().value() - 0.95).abs() < 1e-12);
        assert!(Ratio::parse("120%").is_err());
        assert_eq!(ByteSize::parse("128MiB").unwrap().bytes(), 128 << 20);
        assert_eq!(ByteSize::parse("1000").unwrap().bytes(), 1000);
        assert!(ByteSize::parse("5 parsecs").is_err());
    }
}
