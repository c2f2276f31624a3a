//! `policies.retention`: how long rows are kept, and by which time column. Written as a
//! duration (`retention: "7years"`, the seed's form) or as a map naming the column
//! (`retention: {period: "7years", column: booked_at}`).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::schema::{ColumnType, PortSchema};
use crate::{HumanDuration, PartitionTransform};

/// How long rows are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// Rows whose time is older than now minus this are removed.
    pub period: HumanDuration,
    /// The time column rows are aged by; default: the source of the port's first time-based
    /// partition field, else the schema's only date or timestamp column.
    pub column: Option<String>,
}

impl Retention {
    /// The column retention ages a port's rows by, or why there is none.
    pub fn column_for(
        &self,
        schema: &PortSchema,
        partitioning: &[crate::PartitionField],
    ) -> Result<String, String> {
        let temporal =
            |c: &crate::Column| matches!(c.ty, ColumnType::Date | ColumnType::Timestamp { .. });
        if let Some(name) = &self.column {
            return match schema.column(name) {
                Some(c) if temporal(c) => Ok(name.clone()),
                Some(_) => Err(format!("`{name}` is not a date or timestamp column")),
                None => Err(format!("`{name}` is not a top-level column of the schema")),
            };
        }
        if let Some(field) = partitioning.iter().find(|f| {
            matches!(
                f.transform,
                PartitionTransform::Year
                    | PartitionTransform::Month
                    | PartitionTransform::Day
                    | PartitionTransform::Hour
            )
        }) {
            return Ok(field.column.clone());
        }
        let times: Vec<&str> = schema
            .fields
            .iter()
            .filter(|c| temporal(c))
            .map(|c| c.name.as_str())
            .collect();
        match times.as_slice() {
            [only] => Ok((*only).to_string()),
            [] => Err("the schema has no date or timestamp column to age rows by".into()),
            many => Err(format!(
                "the schema has several time columns ({}) and no time partitioning says which ages a row",
                many.join(", ")
            )),
        }
    }
}

impl Serialize for Retention {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.column {
            None => self.period.serialize(s),
            Some(column) => {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("period", &self.period)?;
                map.serialize_entry("column", column)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RetentionVisitor;
        impl<'de> Visitor<'de> for RetentionVisitor {
            type Value = Retention;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as `7years`, or {period: 7years, column: <time column>}",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Retention, E> {
                Ok(Retention {
                    period: HumanDuration::parse(v).map_err(E::custom)?,
                    column: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Retention, A::Error> {
                let (mut period, mut column) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "period" => period = Some(map.next_value::<HumanDuration>()?),
                        "column" => column = Some(map.next_value::<String>()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["period", "column"]));
                        }
                    }
                }
                Ok(Retention {
                    period: period.ok_or_else(|| de::Error::missing_field("period"))?,
                    column,
                })
            }
        }
        deserializer.deserialize_any(RetentionVisitor)
    }
}

impl crate::DataProduct {
    /// How long output port `port` keeps rows, and the column that ages them; `None` without a
    /// retention policy. Loading checked that the column exists.
    pub fn retention_of(&self, port: usize) -> Option<(std::time::Duration, String)> {
        let retention = self.spec.spec.policies.as_ref()?.retention.as_ref()?;
        let schema = self.schemas.get(port)?;
        let partitioning = &self.spec.spec.output_ports.get(port)?.partitioning;
        let column = retention.column_for(schema, partitioning).ok()?;
        Some((retention.period.duration(), column))
    }
}
