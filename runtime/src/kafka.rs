//! The Kafka input port. A worker's consumer is assigned partitions at the offsets recorded
//! in its Iceberg table (the source of truth), falling back to the group's committed offsets
//! and then to `earliest`. Kafka offsets are committed only after a table commit, for lag
//! visibility. Consumer lag comes from librdkafka's statistics, without extra requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iceberg::{Catalog, TableIdent};
use meshd_config::PlatformConfig;
use meshd_sinks::iceberg::offsets::{self, Offsets};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::RuntimeError;

/// librdkafka settings from the platform config, secrets included (never logged).
pub fn client_config(platform: &PlatformConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in &platform.kafka {
        config.set(key, value.expose());
    }
    config
}

/// What the consumer context shares with its worker.
#[derive(Default)]
pub struct Assignment {
    /// Bumped on every revoke: pending data of an older generation must be dropped.
    pub generation: AtomicU64,
    /// For each assigned partition, the offset recorded in the table at assignment
    /// (None: nothing recorded yet). The worker's fencing baseline.
    pub recorded: Mutex<Offsets>,
    /// Partitions currently assigned.
    pub assigned: Mutex<Vec<(String, i32)>>,
    /// Consumer lag per topic from the latest statistics.
    pub lag: Mutex<BTreeMap<String, i64>>,
    /// The last commit's error while commits keep failing (readiness: the catalog or the
    /// warehouse is not working); None once a commit succeeds.
    pub sink_error: Mutex<Option<String>>,
    /// Whether at least one assignment has happened (readiness).
    pub has_assignment: std::sync::atomic::AtomicBool,
    /// Since when the leader of an assigned partition has been unreachable: the worker cannot
    /// know what it is missing, so freshness counts from then (None: every leader is up).
    pub blind_since: Mutex<Option<std::time::Instant>>,
}

/// Consumer context: assigns at table offsets and records lag.
pub struct InputContext {
    catalog: Arc<dyn Catalog>,
    table: TableIdent,
    group: String,
    runtime: tokio::runtime::Handle,
    /// State shared with the worker.
    pub state: Arc<Assignment>,
}

impl InputContext {
    fn table_offsets(&self) -> Offsets {
        let mut wait = Duration::from_millis(200);
        loop {
            let loaded = tokio::task::block_in_place(|| {
                self.runtime.block_on(self.catalog.load_table(&self.table))
            });
            match loaded {
                Ok(table) => return offsets::recorded_offsets(table.metadata(), &self.group),
                Err(e) => {
                    // Assigning without the table's offsets could duplicate rows: wait.
                    tracing::warn!(table = %self.table, error = %e, "Cannot read recorded offsets from the table; retrying before taking partitions.");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

impl ClientContext for InputContext {
    fn stats(&self, statistics: Statistics) {
        let mut lag = BTreeMap::new();
        for (name, topic) in &statistics.topics {
            let total: i64 = topic
                .partitions
                .iter()
                .filter(|(p, _)| **p >= 0)
                .map(|(_, part)| part.consumer_lag.max(0))
                .sum();
            lag.insert(name.clone(), total);
        }
        if let Ok(mut l) = self.state.lag.lock() {
            *l = lag;
        }
        let blind = leader_unreachable(&statistics);
        if let Ok(mut since) = self.state.blind_since.lock() {
            match (blind, *since) {
                (true, None) => {
                    tracing::warn!(group = %self.group, "The leader of an assigned partition is unreachable; freshness counts from now until it is back.");
                    *since = Some(std::time::Instant::now());
                }
                (false, Some(_)) => {
                    tracing::info!(group = %self.group, "Every assigned partition's leader is reachable again.");
                    *since = None;
                }
                _ => {}
            }
        }
    }
}

/// Whether an assigned partition's leader broker is not connected (down, or unknown).
fn leader_unreachable(statistics: &Statistics) -> bool {
    statistics.topics.values().any(|topic| {
        topic
            .partitions
            .iter()
            .filter(|(p, part)| **p >= 0 && part.desired)
            .any(|(_, part)| {
                part.leader < 0
                    || !statistics
                        .brokers
                        .values()
                        .any(|b| b.nodeid == part.leader && b.state == "UP")
            })
    })
}

/// The table's offsets for `partitions` only: where a worker resumes them, and the baseline a
/// commit must still find in the table (fencing). Partitions without a recorded offset are
/// absent (the consumer's `auto.offset.reset` applies).
pub fn baseline(recorded: &Offsets, partitions: &[(String, i32)]) -> Offsets {
    let mut baseline = Offsets::new();
    for (topic, partition) in partitions {
        if let Some(offset) = recorded.get(topic).and_then(|p| p.get(partition)) {
            baseline
                .entry(topic.clone())
                .or_default()
                .insert(*partition, *offset);
        }
    }
    baseline
}

impl ConsumerContext for InputContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assigned: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                let baseline = baseline(&self.table_offsets(), &assigned);
                for (topic, parts) in &baseline {
                    for (&partition, &offset) in parts {
                        let _ = tpl.set_partition_offset(topic, partition, Offset::Offset(offset));
                    }
                }
                tracing::info!(group = %self.group, partitions = ?assigned, resume_from = ?baseline, "Partitions assigned; resuming from the offsets recorded in the table.");
                if let Ok(mut r) = self.state.recorded.lock() {
                    *r = baseline;
                }
                if let Ok(mut a) = self.state.assigned.lock() {
                    *a = assigned;
                }
                if let Err(e) = base_consumer.assign(tpl) {
                    tracing::error!(error = %e, "Assigning partitions failed.");
                }
                self.state.has_assignment.store(true, Ordering::SeqCst);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.state.generation.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut a) = self.state.assigned.lock() {
                    a.clear();
                }
                tracing::info!(group = %self.group, "Partitions revoked; uncommitted data will be dropped and re-read by the next owner.");
                if let Err(e) = base_consumer.unassign() {
                    tracing::error!(error = %e, "Unassigning partitions failed.");
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                tracing::error!(error = %code, "Rebalance error.");
                let _ = base_consumer.unassign();
            }
        }
    }
}

/// Consumer settings meshd picks unless the platform config's `kafka:` sets them.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("statistics.interval.ms", "1000"),
    ("fetch.max.bytes", "52428800"),
    // Prefetched records per consumer: with the open Parquet files, what bounds memory.
    ("queued.max.messages.kbytes", "65536"),
];

/// A consumer for one worker's input topics.
pub fn consumer(
    platform: &PlatformConfig,
    group: &str,
    topics: &[String],
    catalog: Arc<dyn Catalog>,
    table: TableIdent,
) -> Result<(StreamConsumer<InputContext>, Arc<Assignment>), RuntimeError> {
    let state = Arc::new(Assignment::default());
    let context = InputContext {
        catalog,
        table,
        group: group.to_string(),
        runtime: tokio::runtime::Handle::current(),
        state: Arc::clone(&state),
    };
    let mut config = client_config(platform);
    // Tuning defaults the platform config may override: how much librdkafka prefetches is the
    // consumer's share of the worker's memory bound.
    for (key, value) in CONSUMER_DEFAULTS {
        if config.get(key).is_none() {
            config.set(*key, *value);
        }
    }
    // What exactly-once relies on, whatever the platform config says.
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Eager rebalancing: every rebalance revokes everything, which the worker relies on.
        .set("partition.assignment.strategy", "range,roundrobin");
    let consumer: StreamConsumer<InputContext> =
        config
            .create_with_context(context)
            .map_err(|source| RuntimeError::Kafka {
                what: "creating the consumer".into(),
                source,
            })?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|source| RuntimeError::Kafka {
            what: format!("subscribing to {}", topics.join(", ")),
            source,
        })?;
    Ok((consumer, state))
}

/// Creates topics that do not exist yet (the dead-letter topic, and in the demo the input).
pub async fn ensure_topics(
    platform: &PlatformConfig,
    topics: &[(String, i32)],
) -> Result<(), RuntimeError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(platform)
            .create()
            .map_err(|source| RuntimeError::Kafka {
                what: "creating the admin client".into(),
                source,
            })?;
    let existing = existing_topics(&admin)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|(name, _)| !existing.contains(name))
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(-1)))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(|source| RuntimeError::Kafka {
            what: "creating topics".into(),
            source,
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(RuntimeError::Topic {
                    topic,
                    message: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Names of the topics the cluster already has: creating only what is missing keeps startup
/// working on brokers (and librdkafka's mock cluster) that do not answer CreateTopics.
fn existing_topics(
    admin: &AdminClient<DefaultClientContext>,
) -> Result<std::collections::HashSet<String>, RuntimeError> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .map_err(|source| RuntimeError::Kafka {
            what: "fetching cluster metadata".into(),
            source,
        })?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect())
}

/// Commits `next` offsets to the consumer group (lag visibility only; the table is the truth).
pub fn commit_group_offsets(
    consumer: &StreamConsumer<InputContext>,
    next: &Offsets,
) -> KafkaResult<()> {
    let mut tpl = TopicPartitionList::new();
    for (topic, parts) in next {
        for (partition, offset) in parts {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
    }
    consumer.commit(&tpl, rdkafka::consumer::CommitMode::Async)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_keeps_the_assigned_partitions_that_have_a_recorded_offset() {
        let recorded: Offsets = [
            ("t".to_string(), [(0, 5), (1, 7)].into()),
            ("u".to_string(), [(0, 1)].into()),
        ]
        .into();
        let assigned = [
            ("t".to_string(), 1),
            ("t".to_string(), 2),
            ("u".to_string(), 0),
        ];
        let expected: Offsets = [
            ("t".to_string(), [(1, 7)].into()),
            ("u".to_string(), [(0, 1)].into()),
        ]
        .into();
        assert_eq!(baseline(&recorded, &assigned), expected);
    }
}
