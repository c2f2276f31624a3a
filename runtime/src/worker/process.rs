//! One chunk through the stages: decode → validate → mask → conform per output port, dead
//! letters, then rows to each port's files and offsets to each port's tracker. Dead letters
//! go first: their offsets count only once acknowledged, and if a stop interrupts the wait,
//! nothing of the chunk has been written yet.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::chunk::Chunk;
use super::{ChunkError, Worker, WorkerContext, dead_letters, metadata, pipeline, rebalance};
use crate::metrics::Metrics;

impl Worker {
    /// Decode → validate → mask → dead letters → write → offsets, for one chunk.
    pub(super) async fn process(
        &mut self,
        chunk: Chunk,
        ctx: &WorkerContext,
        shutdown: &CancellationToken,
    ) -> Result<(), ChunkError> {
        let consumed_at = Instant::now();
        self.count_consumed(&chunk, &ctx.metrics);
        let runs = chunk.runs();
        // Which records each port still needs (None: all of them): a re-read after a seek
        // brings records a port already holds or has committed.
        let needs: Vec<Option<Vec<bool>>> = self
            .ports
            .iter()
            .map(|port| rebalance::needed_records(&port.tracker, &chunk, &runs))
            .collect();
        let needed_by_any = |i: usize| needs.iter().any(|n| n.as_ref().is_none_or(|keep| keep[i]));
        self.learn_writer_schemas(&chunk, shutdown).await?;
        let decoded =
            pipeline::decode_chunk(&mut self.decoders, &chunk, ctx.options.max_record_bytes);
        let mut letters: Vec<pipeline::Letter> = decoded
            .letters
            .into_iter()
            .filter(|l| needed_by_any(l.record))
            .collect();
        let many = self.ports.len() > 1;
        let mut rows: Vec<Vec<arrow_array::RecordBatch>> = vec![Vec::new(); self.ports.len()];
        for (p, port) in self.ports.iter().enumerate() {
            for (batch, records) in &decoded.batches {
                let (batch, records) = match &needs[p] {
                    None => (batch.clone(), records.clone()),
                    Some(keep) => {
                        let mask: Vec<bool> = records.iter().map(|&r| keep[r]).collect();
                        let kept: Vec<usize> =
                            records.iter().copied().filter(|&r| keep[r]).collect();
                        let batch = pipeline::keep_rows(batch, mask)
                            .map_err(|source| self.batch_error(source))?;
                        (batch, kept)
                    }
                };
                if batch.num_rows() == 0 {
                    continue;
                }
                let shaped = port
                    .shape()
                    .shape(&batch)
                    .map_err(|source| self.batch_error(source))?;
                let shaped_rows = metadata::attach(
                    shaped.rows,
                    &records,
                    &shaped.invalid,
                    &chunk,
                    port.kafka_metadata(),
                )
                .map_err(|source| self.batch_error(source))?;
                letters.extend(shaped.invalid.into_iter().map(|bad| pipeline::Letter {
                    record: records[bad.row],
                    kind: bad.kind,
                    message: if many {
                        format!("output port {}: {}", port.label, bad.message)
                    } else {
                        bad.message
                    },
                }));
                rows[p].extend(shaped_rows);
            }
        }
        // Dead letters first: their offsets count only once acknowledged, and if a stop
        // interrupts the wait, nothing of this chunk has been written yet.
        dead_letters::send(
            &self.dead_letters,
            &self.decoders,
            &self.product,
            &chunk,
            &letters,
            &ctx.metrics,
            shutdown,
        )
        .await
        .map_err(|e| match e {
            dead_letters::NotSent::Shutdown => ChunkError::Shutdown,
            dead_letters::NotSent::Failed(e) => ChunkError::Fatal(e.into()),
        })?;
        for (p, batches) in rows.into_iter().enumerate() {
            for batch in batches {
                self.ports[p]
                    .write(batch)
                    .await
                    .map_err(|error| ChunkError::Write { port: p, error })?;
            }
        }
        for port in &mut self.ports {
            rebalance::advance(&self.product, port, &chunk, &runs, consumed_at);
        }
        Ok(())
    }

    fn count_consumed(&self, chunk: &Chunk, metrics: &Metrics) {
        for (t, topic) in chunk.topics.iter().enumerate() {
            let n = chunk
                .origins
                .iter()
                .filter(|o| o.topic as usize == t)
                .count() as u64;
            metrics
                .records_consumed
                .with_label_values(&[&self.product, topic])
                .inc_by(n);
            metrics
                .bytes_consumed
                .with_label_values(&[&self.product, topic])
                .inc_by(chunk.value_bytes_of(t as u16));
        }
    }
}
