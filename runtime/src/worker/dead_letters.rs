//! Sends a chunk's dead letters and waits until the broker acknowledged every one: their
//! offsets count as done only then. A failure that can pass is retried with backoff; one that
//! cannot stops the worker; a shutdown request ends the wait (the chunk is then not taken, so
//! its records are re-read after the restart).

use std::collections::HashMap;
use std::time::Duration;

use meshd_sinks::SinkError;
use meshd_sinks::dead_letter::{DeadLetter, DeadLetterOutput};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::chunk::Chunk;
use super::pipeline::{InputDecoder, Letter};
use crate::metrics::Metrics;

/// Why the letters were not all acknowledged.
#[derive(Debug)]
pub enum NotSent {
    /// A stop was requested while retrying.
    Shutdown,
    /// The failure cannot pass by retrying (an authorization or configuration error).
    Failed(SinkError),
}

/// Produces `letters` (records of `chunk`) and waits for every acknowledgement.
pub async fn send(
    output: &DeadLetterOutput,
    decoders: &HashMap<String, InputDecoder>,
    product: &str,
    chunk: &Chunk,
    letters: &[Letter],
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), NotSent> {
    if letters.is_empty() {
        return Ok(());
    }
    let batch: Vec<DeadLetter<'_>> = letters
        .iter()
        .filter_map(|letter| {
            let origin = chunk.origins[letter.record];
            let topic = &chunk.topics[origin.topic as usize];
            let input = decoders.get(topic)?;
            Some(DeadLetter {
                topic: &input.dead_letter_topic,
                key: chunk.key(letter.record),
                payload: chunk.value(letter.record),
                kind: letter.kind.as_str(),
                message: &letter.message,
                source_topic: topic,
                source_partition: origin.partition,
                source_offset: origin.offset,
            })
        })
        .collect();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match output.send_all(&batch).await {
            Ok(()) => break,
            Err(e) if e.retryable() => {
                let wait = backoff.next_wait();
                tracing::warn!(product, error = %e, retry_in = ?wait, "Dead-letter produce failed; retrying.");
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(NotSent::Shutdown),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => return Err(NotSent::Failed(e)),
        }
    }
    for letter in &batch {
        metrics
            .records_dead_lettered
            .with_label_values(&[product, letter.source_topic, letter.kind])
            .inc();
    }
    Ok(())
}
