//! What a running worker tells the rest of the process (`/readyz`, the readiness gauge,
//! systemd), published through a `watch` channel: readers see the latest value without
//! sharing a lock with the worker loop.

use std::collections::BTreeMap;

/// A running worker's state as health reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Partitions assigned now.
    pub assigned: usize,
    /// Whether the group has assigned this worker at least once (before that it cannot know
    /// which records are its own).
    pub has_assignment: bool,
    /// Per output port (`namespace.table`), the last error while its writes or commits keep
    /// failing; absent once one succeeds.
    pub sink_errors: BTreeMap<String, String>,
    /// The last error while writer schemas cannot be read from the schema registry.
    pub registry_error: Option<String>,
}

impl WorkerStatus {
    /// Why the worker is not ready, if it is not.
    pub fn not_ready_reason(&self) -> Option<String> {
        if !self.sink_errors.is_empty() {
            let ports: Vec<String> = self
                .sink_errors
                .iter()
                .map(|(port, e)| format!("{port}: {e}"))
                .collect();
            return Some(format!(
                "commits are failing (catalog or warehouse): {}",
                ports.join("; ")
            ));
        }
        if let Some(e) = &self.registry_error {
            return Some(format!(
                "waiting for the schema registry (records wait, none is dead-lettered): {e}"
            ));
        }
        if !self.has_assignment {
            return Some("waiting for a partition assignment from the consumer group".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_assigned_and_while_commits_succeed() {
        let mut s = WorkerStatus::default();
        assert!(
            s.not_ready_reason()
                .unwrap_or_default()
                .contains("assignment")
        );
        s.has_assignment = true;
        assert_eq!(s.not_ready_reason(), None);
        s.sink_errors
            .insert("payments.t".into(), "catalog down".into());
        let reason = s.not_ready_reason().unwrap_or_default();
        assert!(reason.contains("payments.t: catalog down"), "{reason}");
    }
}
