//! Kafka metadata in the table: an output port may keep, per row, where and how its record
//! arrived (key, partition, offset, timestamp, headers), as Redpanda's key-value mode and
//! Kafka Connect's `InsertField`/`HeaderTo…` transforms give their users. The descriptor
//! selects the subfields (`kafka: [key, offset]`); the table gains one struct column,
//! [`KAFKA_COLUMN`], holding exactly those, after the port's own columns.
//!
//! Every subfield is optional in Iceberg terms, even `partition` and `offset`, which meshd
//! always fills: a table that already has the column gains a newly selected subfield by
//! schema evolution, and Iceberg only adds optional fields to existing data.

use iceberg::spec::{ListType, NestedField, PrimitiveType, StructType, Type};
use serde::{Deserialize, Serialize};

/// The name of the struct column Kafka metadata is kept in. The leading `_` keeps it apart
/// from the columns a team designs (and a schema that has one anyway is refused).
pub const KAFKA_COLUMN: &str = "_kafka";

/// One piece of Kafka metadata a port can keep, a subfield of [`KAFKA_COLUMN`].
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum KafkaMetadata {
    /// `key` (binary, null when the record had none): the record key as sent, so rows can be
    /// joined back to the topic or deduplicated by key without the key being in the value.
    Key,
    /// `partition` (int): the partition the record was read from.
    Partition,
    /// `offset` (long): the record's offset in its partition; with `partition`, the row's
    /// exact place in the topic, for lineage and audits.
    Offset,
    /// `timestamp` (timestamptz, null when the record has none): the record's Kafka timestamp,
    /// its producer's create time or the broker's log-append time as the topic is configured.
    Timestamp,
    /// `headers` (list of `{key: string, value: binary}`, value null for a null header): every
    /// header in the order it was sent. A list, not a map: Kafka header keys may repeat
    /// (tracing and routing headers are appended hop by hop), and a map would keep one value
    /// per key and lose the order.
    Headers,
}

impl KafkaMetadata {
    /// Every subfield, in the order they appear in the struct whatever order the descriptor
    /// lists them in, so reordering the list changes nothing in the table.
    pub const ALL: [Self; 5] = [
        Self::Key,
        Self::Partition,
        Self::Offset,
        Self::Timestamp,
        Self::Headers,
    ];

    /// The subfield's name in the struct (and in the descriptor).
    pub fn name(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Partition => "partition",
            Self::Offset => "offset",
            Self::Timestamp => "timestamp",
            Self::Headers => "headers",
        }
    }

    fn doc(self) -> &'static str {
        match self {
            Self::Key => "The record's Kafka key as sent; null when it had none.",
            Self::Partition => "The Kafka partition the record was read from.",
            Self::Offset => "The record's offset in its Kafka partition.",
            Self::Timestamp => {
                "The record's Kafka timestamp (create or log-append time); null when it has none."
            }
            Self::Headers => {
                "The record's Kafka headers in the order sent; a key may repeat, a value may be null."
            }
        }
    }
}

/// The [`KAFKA_COLUMN`] struct for `selection` (in canonical order, duplicates ignored), with
/// field ids from `first_id` on: the struct, its subfields, then the headers' element and its
/// key and value. The same order is what Iceberg assigns when it adds the column to an
/// existing table. None when nothing is selected.
pub(crate) fn iceberg_field(selection: &[KafkaMetadata], first_id: i32) -> Option<NestedField> {
    let chosen: Vec<KafkaMetadata> = KafkaMetadata::ALL
        .into_iter()
        .filter(|m| selection.contains(m))
        .collect();
    if chosen.is_empty() {
        return None;
    }
    let mut next = first_id + 1 + chosen.len() as i32;
    let fields = chosen
        .iter()
        .zip(first_id + 1..)
        .map(|(m, id)| {
            let ty = match m {
                KafkaMetadata::Key => Type::Primitive(PrimitiveType::Binary),
                KafkaMetadata::Partition => Type::Primitive(PrimitiveType::Int),
                KafkaMetadata::Offset => Type::Primitive(PrimitiveType::Long),
                KafkaMetadata::Timestamp => Type::Primitive(PrimitiveType::Timestamptz),
                KafkaMetadata::Headers => {
                    let (element, key, value) = (next, next + 1, next + 2);
                    next += 3;
                    let header = StructType::new(vec![
                        NestedField::required(key, "key", Type::Primitive(PrimitiveType::String))
                            .into(),
                        NestedField::optional(
                            value,
                            "value",
                            Type::Primitive(PrimitiveType::Binary),
                        )
                        .into(),
                    ]);
                    Type::List(ListType::new(
                        NestedField::list_element(element, Type::Struct(header), true).into(),
                    ))
                }
            };
            NestedField::optional(id, m.name(), ty)
                .with_doc(m.doc())
                .into()
        })
        .collect::<Vec<_>>();
    Some(
        NestedField::optional(
            first_id,
            KAFKA_COLUMN,
            Type::Struct(StructType::new(fields)),
        )
        .with_doc("Kafka metadata of the record this row came from, kept by meshd."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subfields_follow_the_canonical_order_with_ids_from_the_first() {
        let field = iceberg_field(
            &[
                KafkaMetadata::Headers,
                KafkaMetadata::Key,
                KafkaMetadata::Key,
            ],
            10,
        )
        .expect("a selection");
        assert_eq!(field.id, 10);
        assert!(!field.required);
        let Type::Struct(s) = &*field.field_type else {
            panic!("a struct: {field:?}")
        };
        let names: Vec<(&str, i32)> = s.fields().iter().map(|f| (f.name.as_str(), f.id)).collect();
        assert_eq!(names, [("key", 11), ("headers", 12)]);
        assert!(s.fields().iter().all(|f| !f.required));
        let Type::List(headers) = &*s.fields()[1].field_type else {
            panic!("headers are a list: {s:?}")
        };
        let element = &headers.element_field;
        assert_eq!((element.id, element.required), (13, true));
        let Type::Struct(header) = &*element.field_type else {
            panic!("a header is a struct: {element:?}")
        };
        let parts: Vec<(&str, i32, bool, String)> = header
            .fields()
            .iter()
            .map(|f| (f.name.as_str(), f.id, f.required, f.field_type.to_string()))
            .collect();
        assert_eq!(
            parts,
            [
                ("key", 14, true, "string".to_string()),
                ("value", 15, false, "binary".to_string())
            ]
        );
        assert!(iceberg_field(&[], 1).is_none());
    }
}
