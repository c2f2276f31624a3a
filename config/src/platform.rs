//! Platform configuration (`meshd.yaml`): where Kafka, the catalog and the warehouse are.
//! Every key can be set by environment variable; with no file and no variables meshd runs on
//! the embedded default (SQLite catalog and warehouse under `.meshd/`, Kafka on localhost).
//!
//! Environment variables: `MESHD_WAREHOUSE`, `MESHD_CATALOG_TYPE`, `MESHD_CATALOG_URI`,
//! `MESHD_CATALOG_PASSWORD`, `MESHD_CATALOG_WAREHOUSE`, `MESHD_CATALOG_CREDENTIAL`,
//! `MESHD_CATALOG_TOKEN`, `MESHD_SCHEMA_REGISTRY_URL`, `MESHD_SCHEMA_REGISTRY_USERNAME`,
//! `MESHD_SCHEMA_REGISTRY_PASSWORD`, `MESHD_SCHEMA_REGISTRY_TOKEN`,
//! `MESHD_METRICS_LISTEN`, `MESHD_MASKING_KEY_FILE`, `MESHD_MASKING_KEY_ENV`,
//! `MESHD_STORAGE_<KEY>` and `MESHD_KAFKA_<PROPERTY>` (`MESHD_KAFKA_SASL_PASSWORD` sets
//! librdkafka's `sasl.password`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, Diagnostic, from_yaml};

/// A secret whose `Debug` is redacted and which has no `Display`: read it with
/// [`Sensitive::expose`] where it is used, never in a log line.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The platform config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformConfig {
    /// librdkafka properties passed through (`bootstrap.servers`, `security.protocol`,
    /// `sasl.*`, `ssl.*`). Values of keys naming a password, secret or key are redacted in logs.
    #[serde(default = "default_kafka")]
    pub kafka: BTreeMap<String, Sensitive<String>>,
    /// The Iceberg catalog.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// Warehouse root: a local path, or `s3://bucket/prefix` (also `gs://`, `abfss://`) for
    /// tables whose port gives no location. With a local warehouse and no `storage` keys (the
    /// embedded default), `s3://bucket/path` table locations are placed under it.
    #[serde(default = "default_warehouse")]
    pub warehouse: String,
    /// Object-storage settings, with object_store's key names (`endpoint`, `region`,
    /// `access_key_id`, `secret_access_key`, `session_token`, `allow_http`, …); they override
    /// the `AWS_*` environment variables.
    #[serde(default)]
    pub storage: BTreeMap<String, Sensitive<String>>,
    /// The HTTP endpoint for `/metrics`, `/healthz`, `/readyz`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Where the masking key comes from.
    #[serde(default)]
    pub masking: MaskingConfig,
    /// Which governance policies a worker checks before it starts.
    #[serde(default)]
    pub governance: GovernanceConfig,
    /// The Confluent-compatible schema registry `avro-confluent` input ports read writer
    /// schemas from.
    #[serde(default)]
    pub schema_registry: Option<SchemaRegistryConfig>,
}

/// Where writer schemas of `avro-confluent` records are looked up (Confluent Schema Registry,
/// Redpanda, Karapace, Apicurio's Confluent API).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SchemaRegistryConfig {
    /// Base URL, e.g. `http://registry:8081` (`MESHD_SCHEMA_REGISTRY_URL`).
    pub url: String,
    /// Basic-auth user (`MESHD_SCHEMA_REGISTRY_USERNAME`).
    #[serde(default)]
    pub username: Option<String>,
    /// Basic-auth password; keep it in a Secret (`MESHD_SCHEMA_REGISTRY_PASSWORD`).
    #[serde(default)]
    pub password: Option<Sensitive<String>>,
    /// Bearer token, instead of basic auth (`MESHD_SCHEMA_REGISTRY_TOKEN`).
    #[serde(default)]
    pub token: Option<Sensitive<String>>,
    /// A PEM file with the CA that signed the registry's certificate, when it is not in the
    /// system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Writer schemas kept per worker (each with its decoder); the least recently used goes
    /// first. Producers rarely have more than a few versions live.
    #[serde(default = "default_registry_cache")]
    pub cache_size: usize,
}

fn default_registry_cache() -> usize {
    1000
}

impl SchemaRegistryConfig {
    /// A registry at `url` with no credentials and the default cache.
    pub fn new(url: String) -> Self {
        Self {
            url,
            username: None,
            password: None,
            token: None,
            ca_file: None,
            cache_size: default_registry_cache(),
        }
    }
}

/// Governance at run time: the same policies `meshd validate` applies in CI are checked again
/// before a worker starts, and a product they deny is refused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GovernanceConfig {
    /// Apply the built-in library (default true).
    #[serde(default = "default_true")]
    pub builtin: bool,
    /// `.rego` files or folders added to it.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    /// Rules turned off by name.
    #[serde(default)]
    pub disable: Vec<String>,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            builtin: true,
            policies: Vec::new(),
            disable: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// Which catalog and where.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CatalogConfig {
    /// `sql` (SQLite or PostgreSQL) or `rest`.
    #[serde(rename = "type", default)]
    pub kind: CatalogKind,
    /// `sqlite://path` or `postgres://…` for `sql`; the base URL for `rest`.
    #[serde(default = "default_catalog_uri")]
    pub uri: String,
    /// Catalog name recorded with every table (pyiceberg's `SqlCatalog(name, …)`).
    #[serde(default = "default_catalog_name")]
    pub name: String,
    /// The PostgreSQL password, kept out of `uri` so that the URI can sit in a ConfigMap and
    /// the password in a Secret (`MESHD_CATALOG_PASSWORD`).
    #[serde(default)]
    pub password: Option<Sensitive<String>>,
    /// REST: the warehouse to ask the catalog for (its `warehouse` parameter).
    #[serde(default)]
    pub warehouse: Option<String>,
    /// REST: OAuth2 client credentials `client_id:client_secret`, exchanged for a token.
    #[serde(default)]
    pub credential: Option<Sensitive<String>>,
    /// REST: a bearer token.
    #[serde(default)]
    pub token: Option<Sensitive<String>>,
    /// REST: extra HTTP headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, Sensitive<String>>,
    /// REST: further catalog properties passed as they are (`oauth2-server-uri`, `scope`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            kind: CatalogKind::Sql,
            uri: default_catalog_uri(),
            name: default_catalog_name(),
            password: None,
            warehouse: None,
            credential: None,
            token: None,
            headers: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }
}

/// Catalog kinds.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    /// A SQL database (SQLite by default).
    #[default]
    Sql,
    /// An Iceberg REST catalog.
    Rest,
}

/// Metrics endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsConfig {
    /// Listen address; default `127.0.0.1:9464`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
        }
    }
}

/// Masking key source: a file or an environment variable, never the config itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaskingConfig {
    /// A file whose contents (trimmed) are the key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key.
    #[serde(default)]
    pub key_env: Option<String>,
}

fn default_kafka() -> BTreeMap<String, Sensitive<String>> {
    BTreeMap::from([(
        "bootstrap.servers".to_string(),
        Sensitive::new("localhost:9092".to_string()),
    )])
}

fn default_warehouse() -> String {
    ".meshd/warehouse".into()
}

fn default_catalog_uri() -> String {
    "sqlite://.meshd/catalog.db".into()
}

fn default_catalog_name() -> String {
    "meshd".into()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            kafka: default_kafka(),
            catalog: CatalogConfig::default(),
            warehouse: default_warehouse(),
            storage: BTreeMap::new(),
            metrics: MetricsConfig::default(),
            masking: MaskingConfig::default(),
            governance: GovernanceConfig::default(),
            schema_registry: None,
        }
    }
}

impl PlatformConfig {
    /// Reads `path` if given, then applies `MESHD_…` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            None => Self::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                let mut parsed: Self = serde_yaml_ng::from_str(&text)
                    .map_err(|e| ConfigError::invalid(from_yaml(path.to_path_buf(), &e)))?;
                parsed
                    .kafka
                    .entry("bootstrap.servers".into())
                    .or_insert_with(|| Sensitive::new("localhost:9092".into()));
                parsed
            }
        };
        let origin = path.map_or_else(|| PathBuf::from("<environment>"), Path::to_path_buf);
        for (key, value) in env {
            config.apply_env(&key, value, &origin)?;
        }
        if config
            .schema_registry
            .as_ref()
            .is_some_and(|r| r.url.is_empty())
        {
            return Err(ConfigError::invalid(Diagnostic {
                file: origin,
                line: 0,
                column: 0,
                path: "schemaRegistry.url".into(),
                message: "schema registry credentials are set but not its URL".into(),
                hint: Some("set schemaRegistry.url or MESHD_SCHEMA_REGISTRY_URL".into()),
            }));
        }
        Ok(config)
    }

    fn apply_env(&mut self, key: &str, value: String, origin: &Path) -> Result<(), ConfigError> {
        let Some(name) = key.strip_prefix("MESHD_") else {
            return Ok(());
        };
        let bad = |message: String| {
            ConfigError::invalid(Diagnostic {
                file: origin.to_path_buf(),
                line: 0,
                column: 0,
                path: key.to_string(),
                message,
                hint: None,
            })
        };
        match name {
            "WAREHOUSE" => self.warehouse = value,
            "CATALOG_URI" => self.catalog.uri = value,
            "CATALOG_NAME" => self.catalog.name = value,
            "CATALOG_PASSWORD" => self.catalog.password = Some(Sensitive::new(value)),
            "CATALOG_WAREHOUSE" => self.catalog.warehouse = Some(value),
            "CATALOG_CREDENTIAL" => self.catalog.credential = Some(Sensitive::new(value)),
            "CATALOG_TOKEN" => self.catalog.token = Some(Sensitive::new(value)),
            "CATALOG_TYPE" => {
                self.catalog.kind = match value.as_str() {
                    "sql" => CatalogKind::Sql,
                    "rest" => CatalogKind::Rest,
                    other => {
                        return Err(bad(format!(
                            "catalog type `{other}` is not `sql` or `rest`"
                        )));
                    }
                }
            }
            "METRICS_LISTEN" => {
                self.metrics.listen = value.parse().map_err(|_| {
                    bad(format!(
                        "`{value}` is not a socket address such as 127.0.0.1:9464"
                    ))
                })?
            }
            "SCHEMA_REGISTRY_URL" => match &mut self.schema_registry {
                Some(registry) => registry.url = value,
                None => self.schema_registry = Some(SchemaRegistryConfig::new(value)),
            },
            "SCHEMA_REGISTRY_USERNAME" | "SCHEMA_REGISTRY_PASSWORD" | "SCHEMA_REGISTRY_TOKEN" => {
                // Variables come in any order: the URL may follow (checked once all are read).
                let registry = self
                    .schema_registry
                    .get_or_insert_with(|| SchemaRegistryConfig::new(String::new()));
                match name {
                    "SCHEMA_REGISTRY_USERNAME" => registry.username = Some(value),
                    "SCHEMA_REGISTRY_PASSWORD" => registry.password = Some(Sensitive::new(value)),
                    _ => registry.token = Some(Sensitive::new(value)),
                }
            }
            "MASKING_KEY_FILE" => self.masking.key_file = Some(value.into()),
            "MASKING_KEY_ENV" => self.masking.key_env = Some(value),
            "GOVERNANCE_POLICIES" => {
                self.governance.policies = value
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect()
            }
            "GOVERNANCE_DISABLE" => {
                self.governance.disable = value
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            _ => {
                if let Some(prop) = name.strip_prefix("KAFKA_") {
                    self.kafka
                        .insert(env_to_property(prop), Sensitive::new(value));
                } else if let Some(key) = name.strip_prefix("STORAGE_") {
                    // object_store's key names: MESHD_STORAGE_ACCESS_KEY_ID → access_key_id.
                    self.storage
                        .insert(key.to_ascii_lowercase(), Sensitive::new(value));
                }
                // Other MESHD_ variables (e.g. MESHD_LOG) belong to the binary.
            }
        }
        Ok(())
    }

    /// `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        self.kafka
            .get("bootstrap.servers")
            .map_or("localhost:9092", |v| v.expose().as_str())
    }

    /// Whether the warehouse is a local folder (the embedded default).
    pub fn warehouse_is_local(&self) -> bool {
        !self.warehouse.contains("://") || self.warehouse.starts_with("file://")
    }

    /// Whether tables go to object storage: the warehouse is there, storage keys are set, or a
    /// REST catalog places them. Otherwise `s3://` locations are mapped under the local
    /// warehouse, so the descriptor of a production product runs unchanged on a laptop.
    pub fn uses_object_storage(&self) -> bool {
        !self.warehouse_is_local()
            || !self.storage.is_empty()
            || self.catalog.kind == CatalogKind::Rest
    }
}

fn env_to_property(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_and_secrets_stay_redacted() {
        let env = [
            ("MESHD_KAFKA_BOOTSTRAP_SERVERS", "broker:9093"),
            ("MESHD_KAFKA_SASL_PASSWORD", "hunter2"),
            ("MESHD_CATALOG_URI", "sqlite:///tmp/c.db"),
            ("MESHD_METRICS_LISTEN", "127.0.0.1:0"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = PlatformConfig::load(None, env).unwrap();
        assert_eq!(c.bootstrap_servers(), "broker:9093");
        assert_eq!(c.kafka["sasl.password"].expose(), "hunter2");
        assert_eq!(c.catalog.uri, "sqlite:///tmp/c.db");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_are_reported() {
        let err = PlatformConfig::load(
            None,
            [("MESHD_METRICS_LISTEN".to_string(), "nope".to_string())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("MESHD_METRICS_LISTEN"), "{err}");
    }
}
