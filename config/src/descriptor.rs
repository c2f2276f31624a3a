//! The DataProduct descriptor (`apiVersion: datamesh/v1`, `kind: DataProduct`): what a domain
//! team writes to publish a product. Parsing is strict (unknown keys are errors with a hint),
//! then [`DataProduct::load`] runs the cross-field checks and loads each output port's schema.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ConfigError, Diagnostic, from_yaml};
use crate::kafka_metadata::{KAFKA_COLUMN, KafkaMetadata};
use crate::locate::locate;
use crate::schema::PortSchema;
use crate::units::{ByteSize, HumanDuration, Ratio};

/// A parsed, checked descriptor with its schemas loaded: what a worker is built from.
#[derive(Debug, Clone)]
pub struct DataProduct {
    /// Where it was read from; relative schema paths resolve against its folder.
    pub path: PathBuf,
    /// Hex SHA-256 of the descriptor text, recorded in table properties for audit.
    pub sha256: String,
    /// The descriptor as written.
    pub spec: Descriptor,
    /// One loaded schema per output port, in the same order.
    pub schemas: Vec<PortSchema>,
}

/// The descriptor document.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Descriptor {
    /// Must be `datamesh/v1`.
    pub api_version: ApiVersion,
    /// Must be `DataProduct`.
    pub kind: Kind,
    /// Who owns the product and where it belongs.
    pub metadata: Metadata,
    /// Ports and policies.
    pub spec: Spec,
}

/// The only descriptor version this meshd understands.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum ApiVersion {
    /// `datamesh/v1`
    #[serde(rename = "datamesh/v1")]
    V1,
}

/// The only kind of document this meshd runs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum Kind {
    /// `DataProduct`
    DataProduct,
}

/// Identity and ownership.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Product name, unique within its domain (`payment-transactions`).
    pub name: String,
    /// The owning domain (`payments`); becomes the Iceberg namespace.
    pub domain: String,
    /// The owning team's contact, usually an email.
    pub owner: String,
    /// Free text for catalogs and people.
    #[serde(default)]
    pub description: Option<String>,
}

/// Ports and policies.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// The Kafka topics the product reads.
    pub input_ports: Vec<InputPort>,
    /// The Iceberg tables it publishes.
    pub output_ports: Vec<OutputPort>,
    /// Governance settings checked in CI and carried into the table.
    #[serde(default)]
    pub policies: Option<Policies>,
    /// Table upkeep (`meshd maintain`): how long snapshots are kept.
    #[serde(default)]
    pub maintenance: Maintenance,
}

/// Table upkeep: without it, a table committed to every few seconds keeps thousands of
/// snapshots a day and query planning slows down for every reader.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Maintenance {
    /// Snapshots older than this are expired (Iceberg's `history.expire.max-snapshot-age-ms`
    /// default, 5 days); time travel reaches back this far.
    #[serde(default = "default_snapshot_max_age")]
    pub snapshot_max_age: HumanDuration,
    /// Snapshots always kept, however old (the newest ones).
    #[serde(default = "default_min_snapshots")]
    pub min_snapshots: usize,
    /// How often `meshd run` keeps tables up in the background, beside ingestion.
    #[serde(default = "default_maintenance_interval")]
    pub interval: HumanDuration,
    /// A partition with more small files than this (below half of `commit.targetFileSize`) is
    /// compacted into target-size files.
    #[serde(default = "default_max_files_per_partition")]
    pub max_files_per_partition: usize,
}

impl Default for Maintenance {
    fn default() -> Self {
        Self {
            snapshot_max_age: default_snapshot_max_age(),
            min_snapshots: default_min_snapshots(),
            interval: default_maintenance_interval(),
            max_files_per_partition: default_max_files_per_partition(),
        }
    }
}

fn default_max_files_per_partition() -> usize {
    10
}

fn default_snapshot_max_age() -> HumanDuration {
    HumanDuration::from_duration(std::time::Duration::from_secs(5 * 86_400), "5days")
}

fn default_maintenance_interval() -> HumanDuration {
    HumanDuration::from_duration(std::time::Duration::from_secs(3600), "1h")
}

fn default_min_snapshots() -> usize {
    1
}

/// One Kafka topic the product consumes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InputPort {
    /// Port kind; only `kafka-topic` today.
    #[serde(rename = "type")]
    pub kind: InputPortKind,
    /// The topic name.
    pub source: String,
    /// How record values are encoded.
    #[serde(default)]
    pub format: InputFormat,
    /// Where records that fail decoding or validation go; default `<source>.dlq`.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// The registry subject of the topic's values (`avro-confluent`); default
    /// `<source>-value`, Confluent's topic name strategy.
    #[serde(default)]
    pub subject: Option<String>,
}

impl InputPort {
    /// The registry subject holding the schemas producers write this topic's values with.
    pub fn subject(&self) -> String {
        self.subject
            .clone()
            .unwrap_or_else(|| format!("{}-value", self.source))
    }

    /// The dead-letter topic for this port.
    pub fn dead_letter_topic(&self) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", self.source))
    }
}

/// Input port kinds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InputPortKind {
    /// A Kafka topic.
    KafkaTopic,
}

/// Encodings of record values. The Confluent wire format (magic byte + schema id) will be
/// a third variant once a schema registry is supported.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// One JSON object per record (the default: what most producers send).
    #[default]
    Json,
    /// A binary Avro datum written with the output port's schema, no framing.
    Avro,
    /// Confluent's wire format: byte 0, a 4-byte schema id, then an Avro datum written with
    /// the schema registered under that id (what Confluent's serializers, Kafka Connect and
    /// Debezium produce). Needs `schemaRegistry` in the platform config.
    AvroConfluent,
}

/// One Iceberg table the product publishes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutputPort {
    /// Port kind; only `iceberg-table` today.
    #[serde(rename = "type")]
    pub kind: OutputPortKind,
    /// Table name; default the product's `metadata.name`.
    #[serde(default)]
    pub name: Option<String>,
    /// Table location (`s3://…`, `file://…` or a path).
    pub location: String,
    /// Path of the Avro schema (`.avsc`), relative to the descriptor's folder.
    pub schema: PathBuf,
    /// What consumers are promised.
    pub sla: Sla,
    /// Iceberg partition fields.
    #[serde(default)]
    pub partitioning: Vec<PartitionField>,
    /// When buffered records are committed.
    #[serde(default)]
    pub commit: CommitPolicy,
    /// Kafka metadata to keep with each row, any of `[key, partition, offset, timestamp,
    /// headers]`, in a `_kafka` struct column after the schema's own; default none, so a
    /// table holds only what its schema promises unless the team asks for provenance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kafka: Vec<KafkaMetadata>,
}

/// Output port kinds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OutputPortKind {
    /// An Apache Iceberg table.
    IcebergTable,
}

/// Service level the product promises.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sla {
    /// Maximum age of data not yet visible in the table (`15min`).
    pub freshness: HumanDuration,
    /// Fraction of time the freshness promise holds (`99.9%`).
    pub availability: Ratio,
}

/// One Iceberg partition field.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PartitionField {
    /// Source column (top-level) in the port schema.
    pub column: String,
    /// Iceberg transform: identity, year, month, day, hour, bucket[N], truncate[W].
    pub transform: PartitionTransform,
}

/// The Iceberg partition transforms a descriptor may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTransform {
    /// The value itself.
    Identity,
    /// Years since 1970.
    Year,
    /// Months since 1970.
    Month,
    /// Days since 1970.
    Day,
    /// Hours since 1970.
    Hour,
    /// Hash into N buckets.
    Bucket(u32),
    /// Truncate to width W.
    Truncate(u32),
}

impl PartitionTransform {
    /// Parses `identity`, `day`, `bucket[16]`, ….
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        let arg = |prefix: &str| -> Option<Result<u32, String>> {
            let inner = t
                .strip_prefix(prefix)?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            Some(
                inner
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        format!("`{text}` needs a positive whole number, e.g. `{prefix}[16]`")
                    }),
            )
        };
        Ok(match t.as_str() {
            "identity" => Self::Identity,
            "year" => Self::Year,
            "month" => Self::Month,
            "day" => Self::Day,
            "hour" => Self::Hour,
            _ => {
                if let Some(n) = arg("bucket") {
                    Self::Bucket(n?)
                } else if let Some(w) = arg("truncate") {
                    Self::Truncate(w?)
                } else {
                    return Err(format!(
                        "unknown partition transform `{text}`; use identity, year, month, day, hour, bucket[N] or truncate[W]"
                    ));
                }
            }
        })
    }

    /// The Iceberg spelling, e.g. `bucket[16]`.
    pub fn iceberg_name(self) -> String {
        match self {
            Self::Identity => "identity".into(),
            Self::Year => "year".into(),
            Self::Month => "month".into(),
            Self::Day => "day".into(),
            Self::Hour => "hour".into(),
            Self::Bucket(n) => format!("bucket[{n}]"),
            Self::Truncate(w) => format!("truncate[{w}]"),
        }
    }
}

crate::units::serde_via_text!(
    PartitionTransform,
    "a transform such as `day` or `bucket[16]`"
);

impl Serialize for PartitionTransform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.iceberg_name())
    }
}

/// When to turn buffered records into a table snapshot: whichever limit is reached first.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommitPolicy {
    /// Longest time between commits; must be below the freshness SLA.
    #[serde(default = "default_commit_interval")]
    pub interval: HumanDuration,
    /// Commit after this many records, if set.
    #[serde(default)]
    pub max_records: Option<u64>,
    /// Roll data files at this size and commit when one is full.
    #[serde(default = "default_target_file_size")]
    pub target_file_size: ByteSize,
    /// The Parquet codec of the port's data files (default zstd level 1).
    #[serde(default)]
    pub compression: crate::Codec,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        Self {
            interval: default_commit_interval(),
            max_records: None,
            target_file_size: default_target_file_size(),
            compression: crate::Codec::default(),
        }
    }
}

fn default_commit_interval() -> HumanDuration {
    HumanDuration::from_duration(std::time::Duration::from_secs(10), "10s")
}

fn default_target_file_size() -> ByteSize {
    ByteSize(128 << 20)
}

/// Governance settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policies {
    /// Who may read, and which rows.
    #[serde(default)]
    pub access_control: Option<AccessControl>,
    /// How long data is kept (`7years`), and by which time column.
    #[serde(default)]
    pub retention: Option<crate::Retention>,
}

/// Read access: a role and a row filter.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessControl {
    /// The role granted read access.
    pub role: String,
    /// SQL boolean expression rows must satisfy (`region = 'JP'`).
    #[serde(default)]
    pub filter: Option<String>,
    /// Query-engine groups cleared to see PII columns unmasked (e.g. `[fraud-investigators]`);
    /// everyone else, role members included, gets PII columns masked at query time (see
    /// `meshd export trino-opa`). Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pii_cleared: Vec<String>,
}

impl DataProduct {
    /// Reads, parses and checks a descriptor file, and loads its output port schemas.
    /// All problems found after parsing are reported together.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str_at(&text, path)
    }

    /// Parses descriptor text as if read from `path` (used by tests and `meshd demo`).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let spec: Descriptor = serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError::invalid(from_yaml(path.to_path_buf(), &e)))?;
        let mut diagnostics = Vec::new();
        let at = |key_path: String, message: String, hint: Option<String>| {
            let (line, column) = locate(text, &key_path);
            Diagnostic {
                file: path.to_path_buf(),
                line,
                column,
                path: key_path,
                message,
                hint,
            }
        };
        if spec.spec.input_ports.is_empty() {
            diagnostics.push(at(
                "spec.inputPorts".into(),
                "a product needs at least one input port".into(),
                None,
            ));
        }
        if spec.spec.output_ports.is_empty() {
            diagnostics.push(at(
                "spec.outputPorts".into(),
                "a product needs at least one output port".into(),
                None,
            ));
        }
        if !is_identifier(&spec.metadata.name) {
            diagnostics.push(at(
                "metadata.name".into(),
                format!("`{}` is not a valid product name", spec.metadata.name),
                Some("use lowercase letters, digits, `-` and `_`".into()),
            ));
        }
        if !is_identifier(&spec.metadata.domain) {
            diagnostics.push(at(
                "metadata.domain".into(),
                format!("`{}` is not a valid domain name", spec.metadata.domain),
                Some("use lowercase letters, digits, `-` and `_`".into()),
            ));
        }
        if let Some(access) = spec
            .spec
            .policies
            .as_ref()
            .and_then(|p| p.access_control.as_ref())
        {
            if access.role.trim().is_empty() {
                diagnostics.push(at(
                    "spec.policies.accessControl.role".into(),
                    "the access role is empty".into(),
                    Some(
                        "name the group whose members may read the product, e.g. `data-analyst`"
                            .into(),
                    ),
                ));
            }
            for (i, group) in access.pii_cleared.iter().enumerate() {
                if group.trim().is_empty() {
                    diagnostics.push(at(
                        format!("spec.policies.accessControl.piiCleared[{i}]"),
                        "a cleared group name is empty".into(),
                        Some("list group names, or drop the entry".into()),
                    ));
                }
            }
        }
        // Every output port is a table of its own: two ports writing one table would each
        // commit the other's offsets away.
        let mut tables: Vec<String> = Vec::new();
        for (i, port) in spec.spec.output_ports.iter().enumerate() {
            let table = sanitize(port.name.as_deref().unwrap_or(&spec.metadata.name));
            if let Some(first) = tables.iter().position(|t| *t == table) {
                diagnostics.push(at(
                    format!("spec.outputPorts[{i}].name"),
                    format!(
                        "output ports {first} and {i} both write table `{}.{table}`",
                        sanitize(&spec.metadata.domain)
                    ),
                    Some("give each output port its own `name`".into()),
                ));
            }
            tables.push(table);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut schemas = Vec::new();
        for (i, port) in spec.spec.output_ports.iter().enumerate() {
            let commit = &port.commit;
            if commit.interval.duration() >= port.sla.freshness.duration() {
                diagnostics.push(at(
                    format!("spec.outputPorts[{i}].commit.interval"),
                    format!(
                        "commit interval {} is not below the freshness SLA {}",
                        commit.interval.as_str(),
                        port.sla.freshness.as_str()
                    ),
                    Some(
                        "commit more often than the SLA allows data to age, e.g. a tenth of it"
                            .into(),
                    ),
                ));
            }
            if let Some(name) = &port.name
                && !is_identifier(name)
            {
                diagnostics.push(at(
                    format!("spec.outputPorts[{i}].name"),
                    format!("`{name}` is not a valid table name"),
                    Some("use lowercase letters, digits, `-` and `_`".into()),
                ));
            }
            for (j, item) in port.kafka.iter().enumerate() {
                if port.kafka[..j].contains(item) {
                    diagnostics.push(at(
                        format!("spec.outputPorts[{i}].kafka"),
                        format!("`{}` is listed twice", item.name()),
                        Some("list each piece of Kafka metadata once".into()),
                    ));
                }
            }
            // Without `.` components, so messages say `dir/schema/x.avsc`, not `dir/./schema/x.avsc`.
            let schema_path: PathBuf = base.join(&port.schema).components().collect();
            match PortSchema::load(&schema_path) {
                Ok(schema) => {
                    if !port.kafka.is_empty() && schema.column(KAFKA_COLUMN).is_some() {
                        diagnostics.push(at(
                            format!("spec.outputPorts[{i}].kafka"),
                            format!(
                                "Kafka metadata goes into a column `{KAFKA_COLUMN}`, and the schema {} already has one",
                                schema_path.display()
                            ),
                            Some(format!(
                                "rename the schema's `{KAFKA_COLUMN}` column, or drop `kafka`"
                            )),
                        ));
                    }
                    if let Some(retention) = &spec
                        .spec
                        .policies
                        .as_ref()
                        .and_then(|p| p.retention.clone())
                        && let Err(message) = retention.column_for(&schema, &port.partitioning)
                    {
                        let key = if retention.column.is_some() {
                            "spec.policies.retention.column"
                        } else {
                            "spec.policies.retention"
                        };
                        diagnostics.push(at(
                            key.into(),
                            format!("retention cannot age the rows of output port {i}: {message}"),
                            Some("name the time column: `retention: {period: \"7years\", column: <date or timestamp column>}`, or partition the port by day(<column>)".into()),
                        ));
                    }
                    for (j, field) in port.partitioning.iter().enumerate() {
                        if let Err(message) =
                            schema.check_partition_source(&field.column, field.transform)
                        {
                            let names: Vec<&str> =
                                schema.fields.iter().map(|f| f.name.as_str()).collect();
                            diagnostics.push(at(
                                format!("spec.outputPorts[{i}].partitioning[{j}].column"),
                                message,
                                crate::error::closest(&field.column, &names)
                                    .map(|c| format!("did you mean `{c}`?")),
                            ));
                        }
                    }
                    schemas.push(schema);
                }
                Err(ConfigError::Invalid { diagnostics: found }) => diagnostics.extend(found),
                Err(ConfigError::Read { source, .. }) => diagnostics.push(at(
                    format!("spec.outputPorts[{i}].schema"),
                    format!("cannot read schema {}: {source}", schema_path.display()),
                    Some("the path is relative to the descriptor's folder".into()),
                )),
                Err(other @ ConfigError::Policy { .. }) => diagnostics.push(at(
                    format!("spec.outputPorts[{i}].schema"),
                    other.to_string(),
                    None,
                )),
            }
        }
        if !diagnostics.is_empty() {
            return Err(ConfigError::Invalid { diagnostics });
        }
        Ok(Self {
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            spec,
            schemas,
        })
    }

    /// The product name.
    pub fn name(&self) -> &str {
        &self.spec.metadata.name
    }

    /// The owning domain.
    pub fn domain(&self) -> &str {
        &self.spec.metadata.domain
    }

    /// The Kafka consumer group: `meshd.<domain>.<name>`.
    pub fn consumer_group(&self) -> String {
        format!("meshd.{}.{}", self.domain(), self.name())
    }

    /// Iceberg (namespace, table) of output port `i`: `<domain>`, `<name>` with `-` → `_`.
    pub fn table_ident(&self, i: usize) -> (String, String) {
        let port = &self.spec.spec.output_ports[i];
        let name = port.name.as_deref().unwrap_or(self.name());
        (sanitize(self.domain()), sanitize(name))
    }
}

fn sanitize(name: &str) -> String {
    name.replace('-', "_")
}

/// Whether `name` may be a product, domain or table name: lowercase ASCII letters, digits,
/// `-` and `_`, not empty.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
