//! Where one output port stands on each assigned partition: the offset its table records (the
//! fencing baseline), and the offset after the records it holds but has not committed.
//!
//! The tracker is the only place that decides which offsets a commit may record, so the rules
//! of exactly-once live here, free of Kafka and Iceberg: a record below the port's position is
//! already in the table or pending (a re-read after a seek) and is skipped; pending offsets
//! only grow; a commit records exactly the pending offsets and moves the baseline to them;
//! dropping pending data moves the position back to the baseline, from where the consumer
//! must re-read.

use std::collections::BTreeMap;

use meshd_sinks::iceberg::Offsets;

/// One partition as one port sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PartitionState {
    /// The next offset the table records for this group (None: nothing recorded yet).
    recorded: Option<i64>,
    /// The next offset after the records held but not yet committed (None: none held).
    pending: Option<i64>,
}

impl PartitionState {
    fn position(&self) -> Option<i64> {
        self.pending.or(self.recorded)
    }
}

/// How a run of records continues what the port has for its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// The run starts where the port's data ends (or nothing was known yet).
    Continues,
    /// The run starts elsewhere: `expected` was the next offset, `got` came. A gap is records
    /// the broker did not deliver; compacted and transactional topics have gaps legitimately.
    Gap {
        /// The offset the port expected next.
        expected: i64,
        /// The first offset of the run.
        got: i64,
    },
    /// The partition is not assigned to this worker: the run must not be kept.
    Unassigned,
}

/// Offsets of one output port, per assigned partition.
#[derive(Debug, Default, Clone)]
pub struct OffsetTracker {
    partitions: BTreeMap<String, BTreeMap<i32, PartitionState>>,
}

impl OffsetTracker {
    fn state(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.partitions.get(topic)?.get(&partition)
    }

    /// Takes a partition at the offset its table records (None: nothing recorded).
    pub fn assign(&mut self, topic: &str, partition: i32, recorded: Option<i64>) {
        self.partitions
            .entry(topic.to_string())
            .or_default()
            .insert(
                partition,
                PartitionState {
                    recorded,
                    pending: None,
                },
            );
    }

    /// Gives a partition up. Returns whether it still held uncommitted records, which the
    /// caller must have committed or dropped first (they would be lost otherwise).
    pub fn revoke(&mut self, topic: &str, partition: i32) -> bool {
        let Some(parts) = self.partitions.get_mut(topic) else {
            return false;
        };
        let held = parts
            .remove(&partition)
            .is_some_and(|s| s.pending.is_some());
        if parts.is_empty() {
            self.partitions.remove(topic);
        }
        held
    }

    /// The partitions this port holds.
    #[cfg(test)]
    pub fn assigned(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.partitions
            .iter()
            .flat_map(|(t, ps)| ps.keys().map(move |p| (t.as_str(), *p)))
    }

    /// Whether the partition is assigned.
    pub fn is_assigned(&self, topic: &str, partition: i32) -> bool {
        self.state(topic, partition).is_some()
    }

    /// The first offset this port still needs from the partition (None: every offset, nothing
    /// is recorded or held). Records below it are in the table or pending: skip them.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.state(topic, partition)?.position()
    }

    /// Takes records `first..next` of a partition as pending (written to open files). The
    /// caller has skipped records below [`position`](Self::position).
    pub fn advance(&mut self, topic: &str, partition: i32, first: i64, next: i64) -> Continuity {
        let Some(state) = self
            .partitions
            .get_mut(topic)
            .and_then(|ps| ps.get_mut(&partition))
        else {
            return Continuity::Unassigned;
        };
        let continuity = match state.position() {
            Some(expected) if expected != first => Continuity::Gap {
                expected,
                got: first,
            },
            _ => Continuity::Continues,
        };
        let after = state.pending.map_or(next, |p| p.max(next));
        state.pending = Some(after);
        continuity
    }

    /// Whether any record is held uncommitted.
    pub fn has_pending(&self) -> bool {
        self.partitions
            .values()
            .flat_map(BTreeMap::values)
            .any(|s| s.pending.is_some())
    }

    /// The next offsets a commit records: every partition with pending records.
    pub fn pending(&self) -> Offsets {
        self.collect(|s| s.pending)
    }

    /// What the table must still record for the pending partitions, for the commit's fencing
    /// check (a partition with nothing recorded is absent).
    pub fn expected(&self) -> Offsets {
        self.collect(|s| s.pending.and(s.recorded))
    }

    /// What the table records for every assigned partition.
    pub fn recorded(&self) -> Offsets {
        self.collect(|s| s.recorded)
    }

    fn collect(&self, pick: impl Fn(&PartitionState) -> Option<i64>) -> Offsets {
        let mut out = Offsets::new();
        for (topic, parts) in &self.partitions {
            for (partition, state) in parts {
                if let Some(offset) = pick(state) {
                    out.entry(topic.clone())
                        .or_default()
                        .insert(*partition, offset);
                }
            }
        }
        out
    }

    /// A commit recording `next` landed: those offsets are the baseline now. Records read
    /// after the commit was prepared stay pending.
    pub fn committed(&mut self, next: &Offsets) {
        for (topic, parts) in next {
            for (partition, offset) in parts {
                if let Some(state) = self
                    .partitions
                    .get_mut(topic)
                    .and_then(|ps| ps.get_mut(partition))
                {
                    state.recorded = Some(*offset);
                    if state.pending.is_some_and(|p| p <= *offset) {
                        state.pending = None;
                    }
                }
            }
        }
    }

    /// Forgets every pending record: the position falls back to the baseline, from where the
    /// consumer must re-read.
    pub fn drop_pending(&mut self) {
        for state in self.partitions.values_mut().flat_map(BTreeMap::values_mut) {
            state.pending = None;
        }
    }

    /// The table moved under this port (a fenced commit: another owner committed): forget
    /// what is pending and take the table's offsets as the baseline of every assigned
    /// partition.
    pub fn rebase(&mut self, recorded: &Offsets) {
        for (topic, parts) in &mut self.partitions {
            for (partition, state) in parts.iter_mut() {
                state.pending = None;
                state.recorded = recorded.get(topic).and_then(|p| p.get(partition)).copied();
            }
        }
    }
}

/// Where the consumer must read a partition from so that every port gets what it still needs:
/// the lowest position over the ports (None if any port needs the partition from its start).
pub fn read_from<'a>(
    trackers: impl IntoIterator<Item = &'a OffsetTracker>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let mut lowest: Option<i64> = None;
    for tracker in trackers {
        match tracker.position(topic, partition) {
            None => return None,
            Some(p) => lowest = Some(lowest.map_or(p, |l| l.min(p))),
        }
    }
    lowest
}

#[cfg(test)]
mod tests;
