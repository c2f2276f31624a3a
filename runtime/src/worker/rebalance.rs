//! Partitions coming and going: an assignment starts each partition where the ports' tables
//! say; a revocation commits what is held before the partitions are given up, so a member
//! joining or leaving does not make the group re-read what was already consumed. Also how a
//! chunk's offsets become a port's pending offsets.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::chunk::{Chunk, PartitionRun};
use super::output::OutputPort;
use super::tracker::{self, Continuity, OffsetTracker};
use super::{Worker, WorkerContext};
use crate::RuntimeError;
use crate::kafka::Rebalance;

impl Worker {
    /// Handles one rebalance event from the consumer's callback.
    pub(super) async fn rebalance(
        &mut self,
        event: Rebalance,
        ctx: &WorkerContext,
        shutdown: &CancellationToken,
    ) -> Result<(), RuntimeError> {
        match event {
            Rebalance::Assign(partitions) => self.assign(partitions, shutdown).await,
            Rebalance::Revoke { partitions, lost } => {
                self.revoke(partitions, lost, ctx, shutdown).await
            }
            Rebalance::Failed(reason) => {
                tracing::error!(product = %self.product, reason = %reason, "Rebalance failed; giving up every partition.");
                let all: Vec<(String, i32)> = self.input.assigned().iter().cloned().collect();
                self.revoke(all, true, ctx, shutdown).await
            }
        }
    }

    /// Takes partitions at the offsets their tables record. Assigning without them could
    /// duplicate rows, so a catalog that does not answer is retried (with backoff, until a
    /// stop is requested) before anything is read.
    async fn assign(
        &mut self,
        partitions: Vec<(String, i32)>,
        shutdown: &CancellationToken,
    ) -> Result<(), RuntimeError> {
        for port in &mut self.ports {
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
            let recorded = loop {
                match port.table_offsets().await {
                    Ok(recorded) => break recorded,
                    Err(e) if e.retryable() => {
                        let wait = backoff.next_wait();
                        tracing::warn!(product = %self.product, port = %port.label, error = %e, retry_in = ?wait, "Cannot read recorded offsets from the table; retrying before taking partitions.");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            for (topic, partition) in &partitions {
                let at = recorded.get(topic).and_then(|p| p.get(partition)).copied();
                port.tracker.assign(topic, *partition, at);
            }
        }
        let from: Vec<((String, i32), Option<i64>)> = partitions
            .iter()
            .map(|(topic, partition)| {
                let at =
                    tracker::read_from(self.ports.iter().map(|p| &p.tracker), topic, *partition);
                ((topic.clone(), *partition), at)
            })
            .collect();
        if let Err(source) = self.input.assign(&from) {
            return Err(RuntimeError::Kafka {
                what: "assigning partitions".into(),
                source,
            });
        }
        if !partitions.is_empty() {
            tracing::info!(product = %self.product, partitions = ?partitions, resume_from = ?from, "Partitions assigned; resuming from the offsets recorded in the tables.");
        }
        let held = self.input.assigned().len();
        self.status.send_modify(|s| {
            s.assigned = held;
            s.has_assignment = true;
        });
        Ok(())
    }

    /// Commits what is held (within the revoke deadline), then gives the partitions up. Only
    /// these partitions stop; the others keep flowing. What cannot be committed in time is
    /// dropped: the next owner re-reads the revoked partitions and this worker the others.
    async fn revoke(
        &mut self,
        partitions: Vec<(String, i32)>,
        lost: bool,
        ctx: &WorkerContext,
        shutdown: &CancellationToken,
    ) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + ctx.options.revoke_deadline;
        // Even a lost assignment is worth committing: if another member took the partitions
        // and committed first, the commit is fenced and nothing is written twice.
        while self.ports.iter().any(OutputPort::holds_data) && Instant::now() < deadline {
            for i in 0..self.ports.len() {
                self.commit_port(i, ctx).await?;
            }
            if self.ports.iter().any(OutputPort::holds_data) {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
        if self.ports.iter().any(OutputPort::holds_data) {
            self.drop_everything("partitions were revoked before the commit landed");
        }
        for port in &mut self.ports {
            for (topic, partition) in &partitions {
                port.tracker.revoke(topic, *partition);
            }
        }
        if let Err(source) = self.input.unassign(&partitions) {
            return Err(RuntimeError::Kafka {
                what: "giving up revoked partitions".into(),
                source,
            });
        }
        tracing::info!(product = %self.product, partitions = ?partitions, lost, "Partitions revoked after committing what they held.");
        let held = self.input.assigned().len();
        self.status.send_modify(|s| s.assigned = held);
        Ok(())
    }
}

/// Which records of `chunk` a port still needs (None: all of them, the common case): records
/// below its position are in its table or pending, records of partitions it does not hold are
/// not its own.
pub(super) fn needed_records(
    tracker: &OffsetTracker,
    chunk: &Chunk,
    runs: &[PartitionRun],
) -> Option<Vec<bool>> {
    let floors: Vec<Option<Option<i64>>> = runs
        .iter()
        .map(|r| {
            let topic = &chunk.topics[r.topic as usize];
            tracker
                .is_assigned(topic, r.partition)
                .then(|| tracker.position(topic, r.partition))
        })
        .collect();
    let all_needed = runs
        .iter()
        .zip(&floors)
        .all(|(r, floor)| matches!(floor, Some(f) if f.is_none_or(|f| f <= r.first)));
    if all_needed {
        return None;
    }
    Some(
        chunk
            .origins
            .iter()
            .map(|o| {
                runs.iter()
                    .zip(&floors)
                    .find(|(r, _)| r.topic == o.topic && r.partition == o.partition)
                    .is_some_and(
                        |(_, floor)| matches!(floor, Some(f) if f.is_none_or(|f| f <= o.offset)),
                    )
            })
            .collect(),
    )
}

/// Takes the chunk's records as pending for `port` (those it needed), warning where offsets
/// do not continue: a gap is records the broker did not deliver, a repeat is records read
/// twice; compacted and transactional topics have gaps legitimately. Either way the log names
/// partition and offsets, so a loss can be traced to the consumer or the broker.
pub(super) fn advance(
    product: &str,
    port: &mut OutputPort,
    chunk: &Chunk,
    runs: &[PartitionRun],
    consumed_at: Instant,
) {
    let mut took = false;
    for run in runs {
        let topic = &chunk.topics[run.topic as usize];
        if !port.tracker.is_assigned(topic, run.partition) {
            continue;
        }
        let from = port
            .tracker
            .position(topic, run.partition)
            .map_or(run.first, |p| p.max(run.first));
        if from >= run.next {
            continue;
        }
        took = true;
        match port.tracker.advance(topic, run.partition, from, run.next) {
            Continuity::Continues | Continuity::Unassigned => {}
            Continuity::Gap { expected, got } => {
                tracing::warn!(product, port = %port.label, topic = %topic, partition = run.partition, expected, got, "Offsets do not continue where this port's data ends (a gap is records the broker did not deliver; compacted and transactional topics have gaps legitimately).");
            }
        }
        if let Some((expected, got)) = run.skip {
            tracing::warn!(product, topic = %topic, partition = run.partition, expected, got, "Offsets skip inside a chunk (a gap is records the broker did not deliver; compacted and transactional topics have gaps legitimately).");
        }
    }
    if took {
        port.hold(consumed_at);
    }
}
