//! Opening the catalog and placing tables: the embedded default is a SQLite catalog with a
//! local warehouse, where `s3://bucket/path` locations are mapped under the warehouse folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iceberg::io::LocalFsStorageFactory;
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};
use meshd_config::{CatalogKind, PlatformConfig};

use crate::SinkError;

/// Opens the configured catalog. SQLite files and their folders are created on first use.
pub async fn open_catalog(config: &PlatformConfig) -> Result<Arc<dyn Catalog>, SinkError> {
    if config.catalog.kind == CatalogKind::Rest {
        return Err(SinkError::Unsupported {
            what: "the REST catalog".into(),
            fix: "use catalog.type: sql with a sqlite:// or postgres:// URI".into(),
        });
    }
    if !config.warehouse_is_local() {
        return Err(SinkError::Unsupported {
            what: format!("warehouse {}", config.warehouse),
            fix: "object storage is not wired in yet; use a local warehouse path".into(),
        });
    }
    let (uri, bind_style) = sql_uri(&config.catalog.uri)?;
    let warehouse = warehouse_uri(&config.warehouse)?;
    let catalog = SqlCatalogBuilder::default()
        .uri(uri.clone())
        .warehouse_location(warehouse)
        .sql_bind_style(bind_style)
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load(config.catalog.name.clone(), HashMap::new())
        .await
        .map_err(|source| SinkError::CatalogOpen {
            kind: "sql",
            uri: redact_uri(&config.catalog.uri),
            source,
        })?;
    Ok(Arc::new(catalog))
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
    Err(SinkError::Unsupported {
        what: format!("catalog URI `{}`", redact_uri(uri)),
        fix: "use sqlite://path/catalog.db or postgres://host/db".into(),
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
    Ok(format!("file://{}", absolute(warehouse)?.display()))
}

/// Where a table lives. With a local warehouse, `s3://bucket/key` becomes
/// `<warehouse>/bucket/key`; `file://` and absolute paths are used as they are.
pub fn table_location(config: &PlatformConfig, location: &str) -> Result<String, SinkError> {
    if location.starts_with("file://") || location.starts_with('/') {
        return Ok(format!("file://{}", absolute(location)?.display()));
    }
    if let Some((scheme, rest)) = location.split_once("://") {
        if config.warehouse_is_local() {
            let base = absolute(&config.warehouse)?;
            return Ok(format!(
                "file://{}",
                base.join(rest.trim_start_matches('/')).display()
            ));
        }
        return Err(SinkError::Unsupported {
            what: format!("{scheme}:// table locations"),
            fix: "use a local warehouse until object storage lands".into(),
        });
    }
    Ok(format!(
        "file://{}",
        absolute(&config.warehouse)?.join(location).display()
    ))
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
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_uri("postgres://u:secret@db/x"),
            "postgres://[redacted]@db/x"
        );
        assert_eq!(redact_uri("sqlite://a.db"), "sqlite://a.db");
    }
}
