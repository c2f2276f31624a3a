//! Test descriptors from typed values. The reference product (`examples/payments`) is loaded
//! into meshd's own [`Descriptor`] and its Avro schema into a `serde_json::Value`; a test says
//! what differs from the reference with typed setters (`.commit_interval(..)`,
//! `.without_masking("email")`) and [`Product::write`] serializes both into a folder. No test
//! names the text it would replace, so a reworded comment or a reordered key in the example
//! cannot silently stop an edit from applying.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshd_config::{
    Descriptor, HumanDuration, InputFormat, InputPort, InputPortKind, KafkaMetadata,
};
use serde_json::{Map, Value};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A data product descriptor with the schema of its output ports, to be written into a folder.
#[derive(Clone)]
pub struct Product {
    descriptor: Descriptor,
    schema: Schema,
    /// Schemas of output ports added with [`Product::add_output_port`], by file.
    more_schemas: Vec<(PathBuf, Schema)>,
}

impl Product {
    /// The reference product, `examples/payments/product.yaml`, with its schema.
    pub fn reference() -> Self {
        let dir = examples().join("payments");
        let text = std::fs::read_to_string(dir.join("product.yaml")).unwrap();
        let descriptor: Descriptor = serde_yaml_ng::from_str(&text).unwrap();
        let schema = Schema::load(&dir.join(&descriptor.spec.output_ports[0].schema));
        Self {
            descriptor,
            schema,
            more_schemas: Vec::new(),
        }
    }

    /// The product's name (`metadata.name`), which also names its table.
    pub fn name(mut self, name: &str) -> Self {
        self.descriptor.metadata.name = name.to_string();
        self
    }

    /// The first input port reads `topic`, its dead letters go to `<topic>.dlq`.
    pub fn input_topic(mut self, topic: &str) -> Self {
        let port = &mut self.descriptor.spec.input_ports[0];
        port.source = topic.to_string();
        port.dead_letter_topic = Some(format!("{topic}.dlq"));
        self
    }

    /// How the first input port's record values are encoded.
    pub fn input_format(mut self, format: InputFormat) -> Self {
        self.descriptor.spec.input_ports[0].format = format;
        self
    }

    /// One more input port reading `topic` in `format`, with the default dead-letter topic.
    pub fn add_input_topic(mut self, topic: &str, format: InputFormat) -> Self {
        self.descriptor.spec.input_ports.push(InputPort {
            kind: InputPortKind::KafkaTopic,
            source: topic.to_string(),
            format,
            dead_letter_topic: None,
            subject: None,
        });
        self
    }

    /// Where every output port's table lives.
    pub fn location(mut self, location: &str) -> Self {
        for port in &mut self.descriptor.spec.output_ports {
            port.location = location.to_string();
        }
        self
    }

    /// Every output port's freshness SLO.
    pub fn freshness(mut self, slo: Duration) -> Self {
        for port in &mut self.descriptor.spec.output_ports {
            port.sla.freshness = human(slo);
        }
        self
    }

    /// Every output port's longest time between commits.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        for port in &mut self.descriptor.spec.output_ports {
            port.commit.interval = human(interval);
        }
        self
    }

    /// Every output port also commits after this many records.
    pub fn commit_max_records(mut self, records: u64) -> Self {
        for port in &mut self.descriptor.spec.output_ports {
            port.commit.max_records = Some(records);
        }
        self
    }

    /// The first output port keeps this Kafka metadata in its `_kafka` column (`kafka:`).
    pub fn kafka_metadata(mut self, metadata: &[KafkaMetadata]) -> Self {
        self.descriptor.spec.output_ports[0].kafka = metadata.to_vec();
        self
    }

    /// Snapshots older than `max_age` are expired by `meshd maintain` (and by `meshd run`
    /// every `interval`), keeping `min_snapshots`.
    pub fn snapshot_expiry(
        mut self,
        max_age: Duration,
        min_snapshots: usize,
        interval: Duration,
    ) -> Self {
        let maintenance = &mut self.descriptor.spec.maintenance;
        maintenance.snapshot_max_age = human(max_age);
        maintenance.min_snapshots = min_snapshots;
        maintenance.interval = human(interval);
        self
    }

    /// A partition with more than `files` small files is compacted by upkeep.
    pub fn compact_above(mut self, files: usize) -> Self {
        self.descriptor.spec.maintenance.max_files_per_partition = files;
        self
    }

    /// `metadata.description`.
    pub fn description(mut self, text: &str) -> Self {
        self.descriptor.metadata.description = Some(text.to_string());
        self
    }

    /// The row filter of `policies.accessControl` (which the reference declares).
    pub fn access_filter(mut self, filter: &str) -> Self {
        if let Some(access) = self
            .descriptor
            .spec
            .policies
            .as_mut()
            .and_then(|p| p.access_control.as_mut())
        {
            access.filter = Some(filter.to_string());
        }
        self
    }

    /// No `policies.retention`.
    pub fn without_retention(mut self) -> Self {
        if let Some(policies) = self.descriptor.spec.policies.as_mut() {
            policies.retention = None;
        }
        self
    }

    /// No `policies` section (no access control, no retention).
    pub fn without_policies(mut self) -> Self {
        self.descriptor.spec.policies = None;
        self
    }

    /// One more output port like the first, writing table `<domain>.<name>` with `schema`.
    pub fn add_output_port(mut self, name: &str, schema: Schema) -> Self {
        let mut port = self.descriptor.spec.output_ports[0].clone();
        port.name = Some(name.to_string());
        port.location = format!("{}-{name}", port.location);
        port.schema = PathBuf::from(format!("schema/{name}.avsc"));
        self.more_schemas.push((port.schema.clone(), schema));
        self.descriptor.spec.output_ports.push(port);
        self
    }

    /// Rows are kept for `period` (`3days`).
    pub fn retention(mut self, period: &str) -> Self {
        if let Some(policies) = self.descriptor.spec.policies.as_mut() {
            policies.retention = Some(meshd_config::Retention {
                period: HumanDuration::parse(period).unwrap(),
                column: None,
            });
        }
        self
    }

    /// The first output port's schema replaced by `schema`.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// The first output port's schema gains `field` (a JSON field object).
    pub fn with_field(mut self, field: Value) -> Self {
        self.schema = self.schema.with_field(field);
        self
    }

    /// The schema's `column` loses its `masking` attribute (keeping its `PII` tag).
    pub fn without_masking(mut self, column: &str) -> Self {
        self.schema = self.schema.without_masking(column);
        self
    }

    /// Writes `dir/product.yaml` and the schema where the output ports name it (relative to
    /// `dir`); returns the descriptor's path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        for port in &self.descriptor.spec.output_ports {
            match self
                .more_schemas
                .iter()
                .find(|(path, _)| *path == port.schema)
            {
                Some((_, schema)) => schema.write(&dir.join(&port.schema)),
                None => self.schema.write(&dir.join(&port.schema)),
            }
        }
        let mut yaml = serde_yaml_ng::to_value(&self.descriptor).unwrap();
        drop_nulls(&mut yaml);
        let path = dir.join("product.yaml");
        std::fs::write(&path, serde_yaml_ng::to_string(&yaml).unwrap()).unwrap();
        path
    }
}

/// Removes the keys of unset optional settings (`description: null`), so the file reads as
/// one written by hand and every default is the descriptor's own.
fn drop_nulls(value: &mut serde_yaml_ng::Value) {
    match value {
        serde_yaml_ng::Value::Mapping(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_yaml_ng::Value::Sequence(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// `d` as a descriptor writes it: whole seconds as `Ns`, anything finer as `Nms`.
fn human(d: Duration) -> HumanDuration {
    let text = if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    };
    HumanDuration::parse(&text).unwrap()
}

/// An Avro record schema (`.avsc`) as a JSON value. It is written in the reference's layout,
/// one field per line, so findings that name a field's line (`transactions.avsc:9`) still
/// point at that field.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema(Value);

impl Schema {
    /// The reference schema, `examples/payments/schema/transactions.avsc`.
    pub fn reference() -> Self {
        Self::load(&examples().join("payments/schema/transactions.avsc"))
    }

    /// Reads an `.avsc` file.
    pub fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        Self(serde_json::from_str(&text).unwrap())
    }

    /// The field named `column`, as a JSON object.
    fn field_mut(&mut self, column: &str) -> &mut Map<String, Value> {
        self.fields_mut()
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .find(|f| f.get("name").and_then(Value::as_str) == Some(column))
            .unwrap_or_else(|| panic!("the schema has no field `{column}`"))
    }

    fn fields_mut(&mut self) -> &mut Vec<Value> {
        self.0["fields"]
            .as_array_mut()
            .expect("a record schema has `fields`")
    }

    /// `column` loses its `masking` attribute (keeping its `PII` tag).
    pub fn without_masking(mut self, column: &str) -> Self {
        assert!(
            self.field_mut(column).remove("masking").is_some(),
            "the schema's `{column}` has no masking"
        );
        self
    }

    /// `field` (a JSON object with `name` and `type`) appended after the last field.
    pub fn with_field(mut self, field: Value) -> Self {
        assert!(field["name"].is_string(), "a field needs a name: {field}");
        self.fields_mut().push(field);
        self
    }

    /// The field named `column` with `key` (`type`, `doc`) set to `value`, in its place.
    pub fn with_attribute(mut self, column: &str, key: &str, value: Value) -> Self {
        self.field_mut(column).insert(key.to_string(), value);
        self
    }

    /// The field named `column` removed.
    pub fn without_field(mut self, column: &str) -> Self {
        let fields = self.fields_mut();
        let before = fields.len();
        fields.retain(|f| f["name"] != column);
        assert!(fields.len() < before, "the schema has no field `{column}`");
        self
    }

    /// The `.avsc` text: the record's attributes one a line (`type`, `name`, `namespace`,
    /// `doc` first), then `fields` with one field a line.
    pub fn to_text(&self) -> String {
        let record = self.0.as_object().expect("a record schema");
        let mut lines: Vec<String> = ordered(record, &["type", "name", "namespace", "doc"])
            .into_iter()
            .filter(|(key, _)| *key != "fields")
            .map(|(key, value)| format!("  {}: {}", Value::from(key), inline(value)))
            .collect();
        let fields: Vec<String> = record["fields"]
            .as_array()
            .expect("a record schema has `fields`")
            .iter()
            .map(|field| format!("    {}", inline(field)))
            .collect();
        lines.push(format!("  \"fields\": [\n{}\n  ]", fields.join(",\n")));
        format!("{{\n{}\n}}\n", lines.join(",\n"))
    }

    /// Writes the `.avsc` text to `path`, creating its folder.
    pub fn write(&self, path: &Path) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, self.to_text()).unwrap();
    }
}

/// The entries of `map`, those named in `first` leading in that order.
fn ordered<'a>(map: &'a Map<String, Value>, first: &[&str]) -> Vec<(&'a str, &'a Value)> {
    let leading = first
        .iter()
        .filter_map(|key| map.get_key_value(*key))
        .map(|(k, v)| (k.as_str(), v));
    let rest = map
        .iter()
        .filter(|(k, _)| !first.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v));
    leading.chain(rest).collect()
}

/// `value` on one line, as the reference writes it (`{"name": "id", "type": "string"}`).
fn inline(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = ordered(map, &["name", "type"])
                .into_iter()
                .map(|(key, value)| format!("{}: {}", Value::from(key), inline(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        scalar => scalar.to_string(),
    }
}
