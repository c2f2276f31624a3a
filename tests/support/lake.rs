//! Tables filled without Kafka: the demo's payment events decoded, conformed and committed
//! exactly once through meshd's own writer, for tests of what happens to tables afterwards.

use std::ops::Range;
use std::sync::Arc;

use meshd_config::DataProduct;
use meshd_runtime::decode::{self, JsonDecoderFactory, wire};
use meshd_sinks::iceberg::{DataFiles, Offsets, OutputTable};

/// The topic the recorded offsets name.
pub const TOPIC: &str = "raw-payment-events";

/// Offsets with partition 0 of [`TOPIC`] at `next`.
pub fn offsets(next: i64) -> Offsets {
    let mut o = Offsets::new();
    o.entry(TOPIC.into()).or_default().insert(0, next);
    o
}

/// Appends the demo's payment events `events` to `table` in one commit that records
/// [`TOPIC`][0] at `events.end` (and expects it at `events.start`, nothing for 0).
pub async fn append_payments(table: &mut OutputTable, product: &DataProduct, events: Range<i64>) {
    append_with(table, product, events, |n| {
        meshd_runtime::demo::payment_event(n as u64, 0).1
    })
    .await;
}

/// [`append_payments`] with each event's JSON made by `event` (for times of a test's choosing).
pub async fn append_with(
    table: &mut OutputTable,
    product: &DataProduct,
    events: Range<i64>,
    event: impl Fn(i64) -> Vec<u8>,
) {
    let table_schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(table.table().metadata().current_schema()).unwrap(),
    );
    let factory = JsonDecoderFactory::new(wire::json_wire_schema(&product.schemas[0]));
    let payloads: Vec<Vec<u8>> = events.clone().map(event).collect();
    let payloads: Vec<Option<&[u8]>> = payloads.iter().map(|e| Some(e.as_slice())).collect();
    let decoded = decode::decode_all(&factory, &payloads, 1 << 20);
    let mut files = DataFiles::new(table.table(), "t".into(), 1 << 20).unwrap();
    for (batch, _) in decoded.batches {
        files
            .write(wire::conform(&batch, &table_schema).unwrap())
            .await
            .unwrap();
    }
    let expected = if events.start == 0 {
        Offsets::new()
    } else {
        offsets(events.start)
    };
    table
        .commit(
            files.close().await.unwrap(),
            &offsets(events.end),
            &expected,
            &format!("c{}", events.start),
            &[],
        )
        .await
        .unwrap();
}
