//! Writer schemas for `avro-confluent` input ports, fetched before a chunk is decoded. An id
//! the registry does not know is the record's fault (a `schema-id` dead letter); a registry
//! that does not answer, answers 5xx or refuses the credentials is not: the chunk waits, with
//! backoff, `/readyz` says why, and nothing is dead-lettered or lost.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::chunk::Chunk;
use super::pipeline::Decoding;
use super::{ChunkError, Worker};

impl Worker {
    /// Learns every writer schema id of `chunk` that is not cached yet.
    pub(super) async fn learn_writer_schemas(
        &mut self,
        chunk: &Chunk,
        shutdown: &CancellationToken,
    ) -> Result<(), ChunkError> {
        let Some(registry) = self.registry.clone() else {
            return Ok(());
        };
        for (t, topic) in chunk.topics.iter().enumerate() {
            let Some(input) = self.decoders.get_mut(topic) else {
                continue;
            };
            let Decoding::Confluent { decoders, subject } = &mut input.decoding else {
                continue;
            };
            let values = (0..chunk.len())
                .filter(|&i| chunk.origins[i].topic as usize == t)
                .map(|i| chunk.value(i));
            let missing = decoders.missing(values);
            for id in missing {
                let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
                loop {
                    match registry.schema(id).await {
                        Ok(Some(schema)) => {
                            if let Some(why) = decoders.learn(id, &schema) {
                                tracing::warn!(product = %self.product, topic = %topic, subject = %subject, schema_id = id, "{why}; its records go to the dead-letter topic as schema-resolution.");
                            } else {
                                tracing::info!(product = %self.product, topic = %topic, subject = %subject, schema_id = id, "Learnt a writer schema.");
                            }
                            break;
                        }
                        Ok(None) => {
                            tracing::warn!(product = %self.product, topic = %topic, schema_id = id, "The schema registry does not know this schema id; its records go to the dead-letter topic as schema-id.");
                            decoders.unknown(id);
                            break;
                        }
                        Err(e) => {
                            let wait = backoff.next_wait();
                            tracing::warn!(product = %self.product, topic = %topic, schema_id = id, error = %e, retry_in = ?wait, "Cannot read a writer schema; the chunk waits (nothing is dead-lettered).");
                            let reason = e.to_string();
                            self.status.send_if_modified(|s| {
                                s.registry_error.replace(reason.clone()) != Some(reason)
                            });
                            tokio::select! {
                                _ = shutdown.cancelled() => return Err(ChunkError::Shutdown),
                                _ = tokio::time::sleep(wait) => {}
                            }
                        }
                    }
                }
            }
        }
        self.status
            .send_if_modified(|s| s.registry_error.take().is_some());
        Ok(())
    }
}
