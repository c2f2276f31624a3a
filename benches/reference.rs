//! The reference data every benchmark uses: the payments schema, its events as JSON and as
//! binary Avro datums (~200 bytes each), and the table-side pieces (Arrow schema, masker).
//!
//! Two data sets: `easy` (the demo's events: 5,000 distinct emails, sequential ids and amounts,
//! few regions) and `realistic` (a unique transaction id and email per event, random accounts,
//! amounts, currencies, regions and statuses, a tenth of the cards null), so figures hold for
//! real products: masked hashes never repeat there, and dictionaries stop paying.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use apache_avro::types::Value;
use arrow_schema::SchemaRef;
use meshd_config::{PortSchema, Sensitive};
use meshd_runtime::mask::Masker;

/// The reference schema (`examples/payments/schema/transactions.avsc`).
pub fn schema() -> PortSchema {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments/schema/transactions.avsc");
    PortSchema::load(&path).expect("reference schema loads")
}

/// The table's Arrow schema for the reference schema.
pub fn table_schema(schema: &PortSchema) -> SchemaRef {
    Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema.iceberg_schema().expect("iceberg"))
            .expect("arrow"),
    )
}

/// The masker a worker with a key would use.
pub fn masker(schema: &PortSchema) -> Masker {
    Masker::new(schema, Some(Sensitive::new(b"bench-key".to_vec())))
}

/// Event `n` as JSON, never malformed.
pub fn json_event(n: u64) -> Vec<u8> {
    meshd_runtime::demo::payment_event(n, u64::MAX).1
}

/// Event `n` as a binary Avro datum of the reference schema.
pub fn avro_datum(schema: &apache_avro::Schema, n: u64) -> Vec<u8> {
    avro_datum_with(schema, n, &[])
}

/// [`avro_datum`] for a schema with extra string fields after the reference's, set to `extra`.
pub fn avro_datum_with(schema: &apache_avro::Schema, n: u64, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (
            "transaction_id".into(),
            Value::String(format!("tx-{n:010}")),
        ),
        ("account_id".into(), Value::Long(100_000 + n as i64)),
        (
            "email".into(),
            Value::String(format!("user{}@example.com", n % 5000)),
        ),
        (
            "card_last4".into(),
            Value::Union(1, Box::new(Value::String(format!("{:04}", n % 10_000)))),
        ),
        (
            "amount".into(),
            Value::Decimal(apache_avro::Decimal::from(
                ((n * 101) as i64).to_be_bytes().to_vec(),
            )),
        ),
        ("currency".into(), Value::String("JPY".into())),
        ("region".into(), Value::String("JP".into())),
        ("status".into(), Value::Enum(1, "SETTLED".into())),
        (
            "event_time".into(),
            Value::TimestampMillis(1_764_000_000_000 + n as i64),
        ),
    ];
    fields.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string()))),
    );
    apache_avro::to_avro_datum(schema, Value::Record(fields)).expect("encode")
}

/// Which events a bench runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    /// The demo's events: few distinct values.
    Easy,
    /// Unique ids and emails, random everything else.
    Realistic,
}

impl Data {
    /// The name in bench output and in `MESHD_BENCH_DATA`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Easy => "easy",
            Self::Realistic => "realistic",
        }
    }

    /// The data sets `MESHD_BENCH_DATA` names (default both).
    pub fn from_env() -> Vec<Self> {
        std::env::var("MESHD_BENCH_DATA")
            .unwrap_or_else(|_| "easy,realistic".into())
            .split(',')
            .filter_map(|d| match d.trim() {
                "easy" => Some(Self::Easy),
                "realistic" => Some(Self::Realistic),
                _ => None,
            })
            .collect()
    }

    /// Event `n` as JSON.
    pub fn json(self, n: u64) -> Vec<u8> {
        match self {
            Self::Easy => json_event(n),
            Self::Realistic => Realistic::of(n).json().into_bytes(),
        }
    }

    /// Event `n` as a binary Avro datum of the reference schema.
    pub fn avro(self, schema: &apache_avro::Schema, n: u64) -> Vec<u8> {
        match self {
            Self::Easy => avro_datum(schema, n),
            Self::Realistic => Realistic::of(n).avro(schema),
        }
    }
}

/// One realistic event, every field drawn from `n` by a fixed hash: the same `n` always gives the
/// same event, and no two events share an id or an email.
struct Realistic {
    id: String,
    account: i64,
    email: String,
    card: Option<String>,
    cents: i64,
    currency: &'static str,
    region: &'static str,
    status: (u32, &'static str),
    millis: i64,
}

impl Realistic {
    fn of(n: u64) -> Self {
        const CURRENCIES: [&str; 6] = ["JPY", "USD", "EUR", "GBP", "SGD", "AUD"];
        const REGIONS: [&str; 8] = ["JP", "US", "DE", "GB", "SG", "AU", "FR", "BR"];
        const DOMAINS: [&str; 5] = [
            "example.com",
            "mail.example",
            "corp.example",
            "shop.example",
            "isp.example",
        ];
        const STATUS: [(u32, &str); 3] = [(0, "AUTHORIZED"), (1, "SETTLED"), (2, "REFUNDED")];
        let h = |salt: u64| splitmix(n ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (a, b) = (h(1), h(2));
        let pick = |x: u64, len: usize| (x % len as u64) as usize;
        Self {
            id: format!("{:016x}-{:08x}", a, n),
            account: (h(3) % 1_000_000_000) as i64 + 1,
            email: format!("{:x}.{n}@{}", b >> 24, DOMAINS[pick(h(4), DOMAINS.len())]),
            card: (h(5) % 10 != 0).then(|| format!("{:04}", h(6) % 10_000)),
            cents: (h(7) % 5_000_000) as i64 + 1,
            currency: CURRENCIES[pick(h(8), CURRENCIES.len())],
            region: REGIONS[pick(h(9), REGIONS.len())],
            status: STATUS[pick(h(10), STATUS.len())],
            millis: 1_764_000_000_000 + n as i64 * 37 + (h(11) % 1000) as i64,
        }
    }

    fn json(&self) -> String {
        let card = self
            .card
            .as_ref()
            .map_or("null".to_string(), |c| format!("\"{c}\""));
        format!(
            "{{\"transaction_id\":\"{}\",\"account_id\":{},\"email\":\"{}\",\"card_last4\":{card},\"amount\":\"{}.{:02}\",\"currency\":\"{}\",\"region\":\"{}\",\"status\":\"{}\",\"event_time\":{}}}",
            self.id,
            self.account,
            self.email,
            self.cents / 100,
            self.cents % 100,
            self.currency,
            self.region,
            self.status.1,
            self.millis,
        )
    }

    fn avro(&self, schema: &apache_avro::Schema) -> Vec<u8> {
        let card = match &self.card {
            Some(c) => Value::Union(1, Box::new(Value::String(c.clone()))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        let fields = vec![
            ("transaction_id".into(), Value::String(self.id.clone())),
            ("account_id".into(), Value::Long(self.account)),
            ("email".into(), Value::String(self.email.clone())),
            ("card_last4".into(), card),
            (
                "amount".into(),
                Value::Decimal(apache_avro::Decimal::from(
                    self.cents.to_be_bytes().to_vec(),
                )),
            ),
            ("currency".into(), Value::String(self.currency.into())),
            ("region".into(), Value::String(self.region.into())),
            (
                "status".into(),
                Value::Enum(self.status.0, self.status.1.into()),
            ),
            ("event_time".into(), Value::TimestampMillis(self.millis)),
        ];
        apache_avro::to_avro_datum(schema, Value::Record(fields)).expect("encode")
    }
}

/// SplitMix64: a fixed, well-mixed hash of `x`.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
