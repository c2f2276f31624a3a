//! The batch queue: one librdkafka queue that the routed partitions' fetch queues forward to,
//! read a batch per call, with a wake-up when it turns non-empty.

use std::collections::BTreeSet;
use std::ffi::{CString, c_void};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::Notify;

use crate::{BatchError, BatchMessage};

/// At most this many messages per librdkafka call: the pointers live in a stack array.
pub const MAX_BATCH: usize = 512;

/// Fetched records of the routed partitions, read in batches.
///
/// Route a partition *before* assigning it: librdkafka then never forwards its fetch queue to
/// the consumer's queue (an application's forwarding takes precedence over fetch start's), so
/// no record of it can arrive on both paths and overtake another.
pub struct BatchQueue<C: ConsumerContext + 'static> {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Woken by librdkafka when the queue turns non-empty.
    ready: Arc<Notify>,
    /// Partitions forwarded here, handed back to the consumer's queue on drop.
    routed: Mutex<BTreeSet<(String, i32)>>,
    /// Keeps the client alive for as long as the queue: a queue must not outlive it.
    consumer: Arc<StreamConsumer<C>>,
}

// SAFETY: a librdkafka queue handle may be used from any thread (every operation takes the
// queue's own lock); the other fields are Send and Sync themselves.
unsafe impl<C: ConsumerContext + 'static> Send for BatchQueue<C> {}
// SAFETY: as for Send: `&self` methods only call librdkafka's thread-safe queue functions.
unsafe impl<C: ConsumerContext + 'static> Sync for BatchQueue<C> {}

impl<C: ConsumerContext + 'static> BatchQueue<C> {
    /// A new, empty queue on `consumer`'s client; nothing arrives until a partition is routed.
    pub fn new(consumer: Arc<StreamConsumer<C>>) -> Self {
        let rk = consumer.client().native_ptr();
        // SAFETY: `rk` is the live client, kept alive by `consumer` for as long as the queue.
        let raw = unsafe { rdsys::rd_kafka_queue_new(rk) };
        // librdkafka's allocator aborts rather than return NULL: never None.
        let queue = NonNull::new(raw).unwrap_or_else(|| std::process::abort());
        let ready = Arc::new(Notify::new());
        // SAFETY: `wake` only reads the `Notify` through this pointer; Drop unregisters it
        // before `ready` is released (see there).
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(wake),
                Arc::as_ptr(&ready).cast_mut().cast::<c_void>(),
            );
        }
        Self {
            queue,
            ready,
            routed: Mutex::new(BTreeSet::new()),
            consumer,
        }
    }

    /// The consumer whose partitions this queue reads.
    pub fn consumer(&self) -> &Arc<StreamConsumer<C>> {
        &self.consumer
    }

    /// Forwards a partition's fetched records here. Call it before every assignment of the
    /// partition; routing an already routed partition is harmless.
    pub fn route(&self, topic: &str, partition: i32) -> Result<(), BatchError> {
        self.forward(topic, partition, self.queue.as_ptr())?;
        self.routed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((topic.to_string(), partition));
        Ok(())
    }

    fn forward(
        &self,
        topic: &str,
        partition: i32,
        to: *mut rdsys::rd_kafka_queue_t,
    ) -> Result<(), BatchError> {
        let name = CString::new(topic).map_err(|_| BatchError::TopicName(topic.to_string()))?;
        let rk = self.consumer.client().native_ptr();
        // SAFETY: `rk` is the live client; `name` is NUL-terminated and outlives the call.
        let raw = unsafe { rdsys::rd_kafka_queue_get_partition(rk, name.as_ptr(), partition) };
        let Some(partition_queue) = NonNull::new(raw) else {
            return Err(BatchError::NoPartitionQueue {
                topic: topic.to_string(),
                partition,
            });
        };
        // SAFETY: both handles are live. Forwarding keeps its own reference on the target,
        // so the partition's handle is ours to destroy right away (the queue itself lives on
        // inside librdkafka's partition).
        unsafe {
            rdsys::rd_kafka_queue_forward(partition_queue.as_ptr(), to);
            rdsys::rd_kafka_queue_destroy(partition_queue.as_ptr());
        }
        Ok(())
    }

    /// Takes up to `max` (at most [`MAX_BATCH`]) records that are already fetched, without
    /// waiting, and hands each to `each` before it is destroyed. Returns how many were taken,
    /// errors included; fewer than asked means the queue was empty.
    pub fn take(
        &self,
        max: usize,
        mut each: impl FnMut(Result<BatchMessage<'_>, BatchError>),
    ) -> usize {
        let want = max.min(MAX_BATCH);
        if want == 0 {
            return 0;
        }
        let mut slots: [*mut rdsys::rd_kafka_message_t; MAX_BATCH] = [ptr::null_mut(); MAX_BATCH];
        // SAFETY: the queue is live; `slots` has room for `want` pointers; a timeout of 0
        // never blocks.
        let got = unsafe {
            rdsys::rd_kafka_consume_batch_queue(self.queue.as_ptr(), 0, slots.as_mut_ptr(), want)
        };
        // -1 only for invalid arguments, which these are not.
        let got = usize::try_from(got).unwrap_or(0).min(want);
        let batch = Taken(&slots[..got]);
        for &raw in batch.0 {
            // SAFETY: `raw` was just returned by librdkafka and is destroyed only when `batch`
            // drops, after this loop; `each` cannot keep the borrow past its call.
            let message = unsafe { BatchMessage::new(raw) };
            match message.error() {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR => each(Ok(message)),
                code => each(Err(BatchError::Consume {
                    topic: message.topic().to_string(),
                    partition: message.partition(),
                    code: code.into(),
                })),
            }
        }
        got
    }

    /// Waits until records may be ready. Returns at once if the queue turned non-empty since
    /// the last wait; a spurious return is possible, so callers take and wait in a loop.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}

impl<C: ConsumerContext + 'static> Drop for BatchQueue<C> {
    fn drop(&mut self) {
        // SAFETY: the queue is live. librdkafka calls `wake` holding the queue's lock and
        // replaces the callback under that lock, so once this returns `wake` will not run
        // again with a pointer to `ready`, which is released after this function.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, ptr::null_mut());
        }
        // Hand the routed partitions back to the consumer's queue, so a consumer that goes on
        // without this queue still receives them.
        let rk = self.consumer.client().native_ptr();
        // SAFETY: `rk` is the live client (kept by `self.consumer`).
        let consumer_queue = unsafe { rdsys::rd_kafka_queue_get_consumer(rk) };
        if !consumer_queue.is_null() {
            let routed = std::mem::take(
                self.routed
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for (topic, partition) in routed {
                // A partition librdkafka no longer knows has nothing to hand back.
                let _ = self.forward(&topic, partition, consumer_queue);
            }
            // SAFETY: the handle from rd_kafka_queue_get_consumer above, destroyed once.
            unsafe { rdsys::rd_kafka_queue_destroy(consumer_queue) };
        }
        // SAFETY: our own handle, destroyed once. Records still in it are destroyed by
        // librdkafka (the worker re-reads from its tables' offsets).
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue.as_ptr()) };
    }
}

/// Messages of one batch, destroyed when dropped (also when `each` panics).
struct Taken<'a>(&'a [*mut rdsys::rd_kafka_message_t]);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        for &message in self.0 {
            // SAFETY: each pointer was returned by rd_kafka_consume_batch_queue and is
            // destroyed exactly once, here.
            unsafe { rdsys::rd_kafka_message_destroy(message) };
        }
    }
}

/// librdkafka's callback when the queue turns non-empty (called on its threads, holding the
/// queue's lock: it must not call back into librdkafka).
unsafe extern "C" fn wake(_rk: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Notify` of a live BatchQueue: Drop unregisters this callback
    // before the `Notify` can be released.
    let ready = unsafe { &*opaque.cast_const().cast::<Notify>() };
    ready.notify_one();
}
