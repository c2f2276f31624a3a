//! Kafka offsets recorded in Iceberg snapshot summaries: the table, not the consumer group, is
//! the source of truth for where a product resumes.
//!
//! Every snapshot meshd commits carries `meshd.commit-id` and `meshd.offsets.<group>`, a JSON
//! object `{"topic": {"partition": next_offset}}` for the partitions that commit covers.

use std::collections::BTreeMap;

use iceberg::spec::TableMetadata;

/// The summary key holding the commit id.
pub const COMMIT_ID_KEY: &str = "meshd.commit-id";

/// Next offset to consume, per topic and partition.
pub type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// The summary key holding a consumer group's offsets.
pub fn offsets_key(group: &str) -> String {
    format!("meshd.offsets.{group}")
}

/// Encodes offsets for a snapshot summary.
pub fn encode(offsets: &Offsets) -> String {
    let as_strings: BTreeMap<&String, BTreeMap<String, i64>> = offsets
        .iter()
        .map(|(t, ps)| (t, ps.iter().map(|(p, o)| (p.to_string(), *o)).collect()))
        .collect();
    serde_json::to_string(&as_strings).unwrap_or_default()
}

/// Reads offsets as [`encode`] wrote them into a snapshot summary (None if malformed).
pub fn decode(text: &str) -> Option<Offsets> {
    let raw: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_str(text).ok()?;
    Some(
        raw.into_iter()
            .map(|(t, ps)| {
                (
                    t,
                    ps.into_iter()
                        .filter_map(|(p, o)| Some((p.parse().ok()?, o)))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// Walks the snapshot history from the current snapshot back and returns, per partition, the
/// newest offset recorded for `group`.
pub fn recorded_offsets(metadata: &TableMetadata, group: &str) -> Offsets {
    let key = offsets_key(group);
    let mut found = Offsets::new();
    let mut next = metadata.current_snapshot().cloned();
    let mut guard = 0usize;
    while let Some(snapshot) = next {
        guard += 1;
        if guard > 100_000 {
            break;
        }
        if let Some(text) = snapshot.summary().additional_properties.get(&key)
            && let Some(offsets) = decode(text)
        {
            for (topic, parts) in offsets {
                let entry = found.entry(topic).or_default();
                for (p, o) in parts {
                    entry.entry(p).or_insert(o);
                }
            }
        }
        next = snapshot
            .parent_snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id).cloned());
    }
    found
}

/// Whether a snapshot with this commit id exists in the table's history.
pub fn has_commit(metadata: &TableMetadata, commit_id: &str) -> bool {
    metadata.snapshots().any(|s| {
        s.summary()
            .additional_properties
            .get(COMMIT_ID_KEY)
            .is_some_and(|c| c == commit_id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let mut o = Offsets::new();
        o.entry("t".into()).or_default().insert(3, 42);
        assert_eq!(decode(&encode(&o)).unwrap(), o);
        assert_eq!(encode(&o), r#"{"t":{"3":42}}"#);
    }
}
