//! The Kafka input port's client side. A worker's consumer joins its group with incremental
//! (cooperative-sticky) rebalancing; the rebalance callback only records what librdkafka
//! announced, and the worker loop assigns partitions at the offsets recorded in its Iceberg
//! tables (the source of truth), falling back to the group's committed offsets and then to
//! `earliest`. Kafka offsets are committed only after a table commit, for lag visibility.
//! Consumer lag comes from librdkafka's statistics, without extra requests.

use std::collections::BTreeMap;
use std::time::Duration;

use meshd_config::PlatformConfig;
use meshd_sinks::iceberg::offsets::Offsets;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::RuntimeError;

/// librdkafka settings from the platform config, secrets included (never logged).
pub fn client_config(platform: &PlatformConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in &platform.kafka {
        config.set(key, value.expose());
    }
    config
}

/// A rebalance as librdkafka announced it. The callback only records it: the worker loop
/// loads the table's offsets, commits what it holds and calls `incremental_assign` /
/// `incremental_unassign` itself, so nothing blocks inside librdkafka's poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    /// These partitions are offered; the worker assigns them at the table's offsets.
    Assign(Vec<(String, i32)>),
    /// These partitions are taken away; the worker commits what it holds, then gives them up.
    /// `lost`: the group already moved them (session timeout), another member may own them.
    Revoke {
        /// The partitions.
        partitions: Vec<(String, i32)>,
        /// Whether the assignment was lost rather than handed over.
        lost: bool,
    },
    /// The rebalance failed; the worker gives up everything it holds.
    Failed(String),
}

/// What librdkafka's statistics say about the input, every `statistics.interval.ms`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputStats {
    /// Consumer lag per topic.
    pub lag: BTreeMap<String, i64>,
    /// Since when the leader of an assigned partition has been unreachable: the worker cannot
    /// know what it is missing, so freshness counts from then (None: every leader is up).
    pub blind_since: Option<std::time::Instant>,
}

/// Consumer context: hands rebalances to the worker loop and publishes statistics.
pub struct InputContext {
    group: String,
    rebalances: mpsc::UnboundedSender<Rebalance>,
    stats: watch::Sender<InputStats>,
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
        let blind = leader_unreachable(&statistics);
        self.stats.send_modify(|stats| {
            stats.lag = lag;
            match (blind, stats.blind_since) {
                (true, None) => {
                    tracing::warn!(group = %self.group, "The leader of an assigned partition is unreachable; freshness counts from now until it is back.");
                    stats.blind_since = Some(std::time::Instant::now());
                }
                (false, Some(_)) => {
                    tracing::info!(group = %self.group, "Every assigned partition's leader is reachable again.");
                    stats.blind_since = None;
                }
                _ => {}
            }
        });
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

impl ConsumerContext for InputContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions = || -> Vec<(String, i32)> {
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect()
        };
        let event = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(partitions()),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke {
                partitions: partitions(),
                lost: base_consumer.assignment_lost(),
            },
            other => {
                let code: RDKafkaErrorCode = other.into();
                Rebalance::Failed(code.to_string())
            }
        };
        tracing::debug!(group = %self.group, event = ?event, "Rebalance recorded for the worker loop.");
        if self.rebalances.send(event).is_err() {
            // The worker loop has ended and the consumer is closing: librdkafka waits for the
            // final revocation to be acknowledged, so acknowledge it here (neither call blocks).
            let done = match err {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                    base_consumer.incremental_assign(tpl)
                }
                _ => base_consumer.incremental_unassign(tpl),
            };
            if let Err(e) = done {
                tracing::debug!(group = %self.group, error = %e, "Acknowledging a rebalance while closing failed.");
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
    // librdkafka waits this long before fetching again once the prefetch is full (default
    // 1000 ms). A worker empties it in milliseconds, then sat idle for the rest of the second:
    // measured on a backlog, 20 ms drains it ~4x faster at the same CPU per GB and memory.
    ("fetch.queue.backoff.ms", "20"),
];

/// A worker's consumer, with the rebalances it announces and its statistics.
pub struct InputConsumer {
    /// The consumer, subscribed; nothing is assigned until the worker handles a rebalance.
    pub consumer: StreamConsumer<InputContext>,
    /// Rebalances in the order librdkafka announced them.
    pub rebalances: mpsc::UnboundedReceiver<Rebalance>,
    /// Lag and leader reachability from the latest statistics.
    pub stats: watch::Receiver<InputStats>,
}

/// A consumer for one worker's input topics.
pub fn consumer(
    platform: &PlatformConfig,
    group: &str,
    topics: &[String],
) -> Result<InputConsumer, RuntimeError> {
    let (rebalance_tx, rebalances) = mpsc::unbounded_channel();
    let (stats_tx, stats) = watch::channel(InputStats::default());
    let context = InputContext {
        group: group.to_string(),
        rebalances: rebalance_tx,
        stats: stats_tx,
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
        // Incremental rebalancing: a member joining or leaving moves only the partitions that
        // change owner, and the worker commits a revoked partition's records before giving it up.
        .set("partition.assignment.strategy", "cooperative-sticky");
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
    Ok(InputConsumer {
        consumer,
        rebalances,
        stats,
    })
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
