//! Opening the catalog and placing tables. The embedded default is a SQLite catalog with a
//! local warehouse, where `s3://bucket/path` locations are mapped under the warehouse folder.
//! Shared platforms use the SQL catalog on PostgreSQL or an Iceberg REST catalog, with tables on
//! object storage; every catalog gets meshd's object_store-backed storage.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iceberg::io::Storage;
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};
use meshd_config::{CatalogKind, PlatformConfig};

use super::object_storage::{ObjectStorage, ObjectStorageFactory};
use crate::SinkError;

/// Opens the configured catalog. SQLite files and their folders are created on first use.
pub async fn open_catalog(config: &PlatformConfig) -> Result<Arc<dyn Catalog>, SinkError> {
    let storage = Arc::new(storage_factory(config)?);
    match config.catalog.kind {
        CatalogKind::Rest => open_rest(config, storage).await,
        CatalogKind::Sql => open_sql(config, storage).await,
    }
}

/// Loads a table, an error naming it.
pub async fn load_table(
    catalog: &dyn Catalog,
    ident: &iceberg::TableIdent,
) -> Result<iceberg::table::Table, SinkError> {
    catalog
        .load_table(ident)
        .await
        .map_err(|source| SinkError::Table {
            table: ident.to_string(),
            action: "loading the table",
            source,
        })
}

/// meshd's storage for every catalog, with the `storage.*` keys checked.
pub fn storage_factory(config: &PlatformConfig) -> Result<ObjectStorageFactory, SinkError> {
    let options = config
        .storage
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().clone()))
        .collect();
    ObjectStorageFactory::new(options).map_err(|e| SinkError::Config {
        setting: format!("storage.{}", e.key),
        problem: "is not an object storage setting".into(),
        fix: "use object_store's names: endpoint, region, access_key_id, secret_access_key, session_token, allow_http, virtual_hosted_style_request (or their aws_/google_/azure_ forms)".into(),
    })
}

async fn open_sql(
    config: &PlatformConfig,
    storage: Arc<ObjectStorageFactory>,
) -> Result<Arc<dyn Catalog>, SinkError> {
    let (uri, bind_style) = sql_uri(&config.catalog.uri)?;
    let uri = with_password(uri, config)?;
    let warehouse = warehouse_uri(&config.warehouse)?;
    let catalog = SqlCatalogBuilder::default()
        .uri(uri)
        .warehouse_location(warehouse)
        .sql_bind_style(bind_style)
        .with_storage_factory(storage)
        .load(config.catalog.name.clone(), HashMap::new())
        .await
        .map_err(|source| SinkError::CatalogOpen {
            kind: "sql",
            uri: redact_uri(&config.catalog.uri),
            source: without_secrets(source, config),
        })?;
    Ok(Arc::new(catalog))
}

async fn open_rest(
    config: &PlatformConfig,
    storage: Arc<ObjectStorageFactory>,
) -> Result<Arc<dyn Catalog>, SinkError> {
    let catalog = &config.catalog;
    if !(catalog.uri.starts_with("http://") || catalog.uri.starts_with("https://")) {
        return Err(SinkError::Config {
            setting: "catalog.uri".into(),
            problem: format!(
                "`{}` is not an http(s) URL, which a REST catalog needs",
                redact_uri(&catalog.uri)
            ),
            fix: "set catalog.uri to the catalog's base URL, e.g. https://catalog.example.com/api/catalog".into(),
        });
    }
    let mut props: HashMap<String, String> = catalog.properties.clone().into_iter().collect();
    props.insert("uri".into(), catalog.uri.clone());
    if let Some(warehouse) = &catalog.warehouse {
        props.insert("warehouse".into(), warehouse.clone());
    }
    if let Some(credential) = &catalog.credential {
        props.insert("credential".into(), credential.expose().clone());
    }
    if let Some(token) = &catalog.token {
        props.insert("token".into(), token.expose().clone());
    }
    for (name, value) in &catalog.headers {
        props.insert(format!("header.{name}"), value.expose().clone());
    }
    let failed = |source| SinkError::CatalogOpen {
        kind: "rest",
        uri: redact_uri(&catalog.uri),
        source: without_secrets(source, config),
    };
    let opened = RestCatalogBuilder::default()
        .with_storage_factory(storage)
        .load(catalog.name.clone(), props)
        .await
        .map_err(failed)?;
    // The REST client fetches its config lazily: ask now, so a wrong URL or credential is an
    // error at start rather than at the first commit.
    opened.list_namespaces(None).await.map_err(failed)?;
    Ok(Arc::new(opened))
}

/// Checks that meshd may write where a table lives: a small probe object is written under
/// `location` and deleted again. `meshd provision` runs it so that a missing bucket, wrong
/// credentials or an unreachable endpoint show before the first commit does.
pub async fn probe_location(config: &PlatformConfig, location: &str) -> Result<(), SinkError> {
    let storage = storage(config)?;
    let probe = format!(
        "{}/.meshd-probe-{}",
        location.trim_end_matches('/'),
        uuid::Uuid::now_v7()
    );
    let fail = |action, source| SinkError::Storage {
        location: location.to_string(),
        action,
        source,
    };
    storage
        .write(&probe, bytes::Bytes::from_static(b"meshd write probe"))
        .await
        .map_err(|e| fail("writing a probe object", e))?;
    storage
        .delete(&probe)
        .await
        .map_err(|e| fail("deleting the probe object", e))
}

/// meshd's storage for tools that work on files directly (`meshd orphans`, the probe).
pub fn storage(config: &PlatformConfig) -> Result<ObjectStorage, SinkError> {
    Ok(storage_factory(config)?.storage())
}

/// The PostgreSQL password from `catalog.password`, percent-encoded into the URI.
fn with_password(uri: String, config: &PlatformConfig) -> Result<String, SinkError> {
    let Some(password) = &config.catalog.password else {
        return Ok(uri);
    };
    let Ok(mut url) = url::Url::parse(&uri) else {
        return Ok(uri);
    };
    if !url.scheme().starts_with("postgres") {
        return Ok(uri);
    }
    url.set_password(Some(password.expose()))
        .map_err(|()| SinkError::Config {
            setting: "catalog.password".into(),
            problem: "cannot be combined with this catalog.uri".into(),
            fix: "give the URI as postgres://user@host:port/database".into(),
        })?;
    Ok(url.to_string())
}

/// An error whose text cannot carry a configured secret (drivers sometimes echo the
/// connection string).
fn without_secrets(error: iceberg::Error, config: &PlatformConfig) -> iceberg::Error {
    let text = error.to_string();
    let cleaned = scrub(&text, config);
    if cleaned == text {
        return error;
    }
    iceberg::Error::new(error.kind(), cleaned).with_retryable(error.retryable())
}

/// `text` with every configured catalog secret replaced by `[redacted]`.
pub(super) fn scrub(text: &str, config: &PlatformConfig) -> String {
    let secrets = [
        config.catalog.password.as_ref(),
        config.catalog.credential.as_ref(),
        config.catalog.token.as_ref(),
    ];
    let mut cleaned = text.to_string();
    for secret in secrets.into_iter().flatten() {
        if !secret.expose().is_empty() {
            cleaned = cleaned.replace(secret.expose().as_str(), "[redacted]");
        }
    }
    if let Some(pass) = url::Url::parse(&config.catalog.uri)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        cleaned = cleaned.replace(&pass, "[redacted]");
    }
    cleaned
}

/// The SQL catalog's database URI with its password, and whether it binds `$1` (PostgreSQL)
/// rather than `?` (SQLite): what meshd's own metadata commit connects with.
pub(super) fn sql_connection(config: &PlatformConfig) -> Result<(String, bool), SinkError> {
    let (uri, style) = sql_uri(&config.catalog.uri)?;
    Ok((
        with_password(uri, config)?,
        matches!(style, SqlBindStyle::DollarNumeric),
    ))
}

/// sqlx wants `mode=rwc` to create a SQLite file, and its folder must exist.
fn sql_uri(uri: &str) -> Result<(String, SqlBindStyle), SinkError> {
    if let Some(path) = uri.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(parent) = Path::new(file)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| SinkError::CatalogOpen {
                kind: "sql",
                uri: uri.to_string(),
                source: iceberg::Error::new(
                    iceberg::ErrorKind::Unexpected,
                    format!("cannot create {}: {e}", parent.display()),
                ),
            })?;
        }
        let with_mode = if uri.contains("mode=") {
            uri.to_string()
        } else if uri.contains('?') {
            format!("{uri}&mode=rwc")
        } else {
            format!("{uri}?mode=rwc")
        };
        return Ok((with_mode, SqlBindStyle::QMark));
    }
    if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
        return Ok((uri.to_string(), SqlBindStyle::DollarNumeric));
    }
    Err(SinkError::Config {
        setting: "catalog.uri".into(),
        problem: format!(
            "`{}` is not a SQL catalog URI",
            redact_uri(uri)
        ),
        fix: "use sqlite://path/catalog.db or postgres://user@host:5432/database (or catalog.type: rest with an http(s) URL)".into(),
    })
}

/// A URI with any `user:password@` removed, safe for messages.
pub fn redact_uri(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://[redacted]@{}", &uri[..scheme], &uri[at + 1..])
        }
        _ => uri.to_string(),
    }
}

fn absolute(path: &str) -> Result<PathBuf, SinkError> {
    let path = Path::new(path.strip_prefix("file://").unwrap_or(path));
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| SinkError::Unsupported {
                what: format!("a relative warehouse path ({e})"),
                fix: "give an absolute warehouse path".into(),
            })?
            .join(path)
    };
    Ok(abs)
}

fn warehouse_uri(warehouse: &str) -> Result<String, SinkError> {
    if warehouse.contains("://") && !warehouse.starts_with("file://") {
        return Ok(warehouse.trim_end_matches('/').to_string());
    }
    Ok(format!("file://{}", absolute(warehouse)?.display()))
}

/// Where a table lives. On object storage (see [`PlatformConfig::uses_object_storage`]) a
/// port's `s3://…` location is used as it is and a relative one is placed under the warehouse.
/// In the embedded default, `s3://bucket/key` becomes `<warehouse>/bucket/key`. `file://` and
/// absolute paths are used as they are.
pub fn table_location(config: &PlatformConfig, location: &str) -> Result<String, SinkError> {
    if location.starts_with("file://") || location.starts_with('/') {
        return Ok(format!("file://{}", absolute(location)?.display()));
    }
    if let Some((_, rest)) = location.split_once("://") {
        if config.uses_object_storage() {
            return Ok(location.trim_end_matches('/').to_string());
        }
        let base = absolute(&config.warehouse)?;
        return Ok(format!(
            "file://{}",
            base.join(rest.trim_start_matches('/')).display()
        ));
    }
    let base = warehouse_uri(&config.warehouse)?;
    Ok(format!("{base}/{}", location.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_map_under_a_local_warehouse() {
        let config = PlatformConfig {
            warehouse: "/var/lib/meshd/warehouse".into(),
            ..PlatformConfig::default()
        };
        assert_eq!(
            table_location(&config, "s3://data-mesh/payments/transactions/v1").unwrap(),
            "file:///var/lib/meshd/warehouse/data-mesh/payments/transactions/v1"
        );
        assert_eq!(table_location(&config, "/tmp/t").unwrap(), "file:///tmp/t");
    }

    #[test]
    fn object_storage_locations_are_used_as_they_are() {
        let config = PlatformConfig {
            warehouse: "s3://lake/warehouse/".into(),
            ..PlatformConfig::default()
        };
        assert_eq!(
            table_location(&config, "s3://data-mesh/payments/transactions/v1/").unwrap(),
            "s3://data-mesh/payments/transactions/v1"
        );
        assert_eq!(
            table_location(&config, "payments/t").unwrap(),
            "s3://lake/warehouse/payments/t"
        );
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_uri("postgres://u:secret@db/x"),
            "postgres://[redacted]@db/x"
        );
        assert_eq!(redact_uri("sqlite://a.db"), "sqlite://a.db");
    }
}
