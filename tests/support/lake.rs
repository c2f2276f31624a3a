//! Tables filled without Kafka: the demo's payment events decoded, conformed and committed
//! exactly once through meshd's own writer, for tests of what happens to tables afterwards.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iceberg::Catalog;
use meshd_config::{DataProduct, PlatformConfig};
use meshd_runtime::decode::{self, JsonDecoderFactory, wire};
use meshd_sinks::iceberg::{DataFiles, Offsets, OutputTable, TableSpec};

use super::product::Product;

/// A product's first output table, opened (created) through meshd's own writer, with what a test
/// needs around it: the files it was configured from, the platform, the catalog.
pub struct Lake {
    /// The platform config file.
    pub config: PathBuf,
    /// The descriptor file.
    pub descriptor: PathBuf,
    /// The platform.
    pub platform: PlatformConfig,
    /// The loaded product.
    pub product: DataProduct,
    /// The table's spec (namespace, name, location).
    pub spec: TableSpec,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The output table, for appends.
    pub table: OutputTable,
}

impl Lake {
    /// `product` written into `dir` on the embedded default (SQLite catalog and warehouse in
    /// `dir`).
    pub async fn embedded(dir: &Path, product: Product) -> Self {
        let (config, _) = super::meshd_config(dir, "meshd", "127.0.0.1:9", &[], "");
        Self::on(dir, &config, product).await
    }

    /// `product` written into `dir`, its table in the catalog `config` names.
    pub async fn on(dir: &Path, config: &Path, product: Product) -> Self {
        let descriptor = product.write(dir);
        let platform = PlatformConfig::load(Some(config), std::iter::empty()).unwrap();
        let product = DataProduct::load(&descriptor).unwrap();
        let spec = meshd_runtime::provision::table_spec(&platform, &product, 0).unwrap();
        let catalog = meshd_sinks::iceberg::open_catalog(&platform).await.unwrap();
        let table = OutputTable::open(Arc::clone(&catalog), &spec, product.consumer_group())
            .await
            .unwrap();
        Self {
            config: config.to_path_buf(),
            descriptor,
            platform,
            product,
            spec,
            catalog,
            table,
        }
    }
}

/// `meshd maintain --config <config> <descriptor>` (with `--dry-run` when `dry`); its output,
/// exit 0 asserted.
pub fn maintain(config: &Path, descriptor: &Path, dry: bool) -> String {
    let mut args = vec!["maintain", "--config", config.to_str().unwrap()];
    if dry {
        args.push("--dry-run");
    }
    args.push(descriptor.to_str().unwrap());
    let (code, out) = super::meshd_output(&args);
    assert_eq!(code, Some(0), "{out}");
    out
}

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
