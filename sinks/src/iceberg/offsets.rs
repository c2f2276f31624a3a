//! Kafka offsets recorded in Iceberg snapshot summaries: the table, not the consumer group, is
//! the source of truth for where a product resumes.
//!
//! Every snapshot meshd commits carries `meshd.commit-id` and `meshd.offsets.<group>`, a JSON
//! object `{"topic": {"partition": next_offset}}` for every partition the group has ever
//! committed to the table (not only those of that commit), marked complete with
//! `meshd.offsets-complete.<group>`: the newest snapshot alone says where to resume, so
//! expiring older snapshots loses no resume point. Snapshots written before the marker existed
//! carry only their commit's partitions; the resume then walks back through them.

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

/// The summary key marking a snapshot whose offsets cover every partition of `group`.
pub fn complete_key(group: &str) -> String {
    format!("meshd.offsets-complete.{group}")
}

/// What a commit records: every partition already recorded, moved to `next` where the commit
/// covers it.
pub fn merged(recorded: &Offsets, next: &Offsets) -> Offsets {
    let mut all = recorded.clone();
    for (topic, parts) in next {
        all.entry(topic.clone())
            .or_default()
            .extend(parts.iter().map(|(p, o)| (*p, *o)));
    }
    all
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

/// Per partition, the newest offset recorded for `group`: the current snapshot's when it is
/// complete, else walking the history back until a complete snapshot (or the first one).
pub fn recorded_offsets(metadata: &TableMetadata, group: &str) -> Offsets {
    let key = offsets_key(group);
    let complete = complete_key(group);
    let mut found = Offsets::new();
    let mut next = metadata.current_snapshot().cloned();
    let mut guard = 0usize;
    while let Some(snapshot) = next {
        guard += 1;
        if guard > 100_000 {
            break;
        }
        let summary = &snapshot.summary().additional_properties;
        if let Some(text) = summary.get(&key)
            && let Some(offsets) = decode(text)
        {
            for (topic, parts) in offsets {
                let entry = found.entry(topic).or_default();
                for (p, o) in parts {
                    entry.entry(p).or_insert(o);
                }
            }
            if summary.contains_key(&complete) {
                break;
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
    fn a_commit_records_every_partition_it_has_ever_committed() {
        let mut recorded = Offsets::new();
        recorded
            .entry("t".into())
            .or_default()
            .extend([(0, 10), (1, 20)]);
        recorded.entry("u".into()).or_default().insert(0, 5);
        let mut next = Offsets::new();
        next.entry("t".into()).or_default().insert(1, 25);
        next.entry("v".into()).or_default().insert(0, 1);
        let all = merged(&recorded, &next);
        assert_eq!(
            encode(&all),
            r#"{"t":{"0":10,"1":25},"u":{"0":5},"v":{"0":1}}"#
        );
    }

    #[test]
    fn offsets_round_trip() {
        let mut o = Offsets::new();
        o.entry("t".into()).or_default().insert(3, 42);
        assert_eq!(decode(&encode(&o)).unwrap(), o);
        assert_eq!(encode(&o), r#"{"t":{"3":42}}"#);
    }
}
