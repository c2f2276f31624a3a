//! meshd's own metadata commit, for the changes iceberg-rust 0.10 has no action for (a schema
//! whose column types widen, a `delete` snapshot that drops expired files). Its `TableCommit`
//! cannot be built outside the crate, so meshd commits the way pyiceberg and the Java
//! implementation do:
//!
//! * **SQL catalog** (SQLite, PostgreSQL): the requirements are checked against the table's
//!   current metadata, the updates applied through iceberg's public `TableMetadataBuilder`
//!   (`TableUpdate::apply`), the new metadata file written next to the old one, and the
//!   catalog row swapped with `UPDATE … WHERE metadata_location = <the one we read>`, the same
//!   statement iceberg-catalog-sql runs. A writer that committed in between makes the swap
//!   touch no row: a conflict.
//! * **REST catalog**: `POST /v1/{prefix}/namespaces/{ns}/tables/{table}` with the requirements
//!   (`assert-ref-snapshot-id`, `assert-current-schema-id`) and updates; the server checks and
//!   applies them, `409` is a conflict.
//!
//! [`commit_with_rebase`] turns conflicts into retries: it reloads the table and asks the caller
//! to build its change again from what is there now, so a concurrent append is never lost.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, MetadataLocation, TableIdent, TableRequirement, TableUpdate,
};
use meshd_config::{CatalogKind, PlatformConfig};
use sqlx::AnyPool;

use crate::SinkError;

/// How many times a conflicting commit is rebased before giving up.
const REBASES: usize = 10;

/// A change to commit: checked against the table it was built from.
#[derive(Debug, Clone, Default)]
pub struct MetadataChange {
    /// What must still hold (the current schema, the main branch's snapshot).
    pub requirements: Vec<TableRequirement>,
    /// What changes.
    pub updates: Vec<TableUpdate>,
}

/// Commits metadata changes to the configured catalog with its optimistic check.
#[derive(Clone)]
pub struct MetadataCommitter {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Sql {
        pool: AnyPool,
        catalog: String,
        dollar: bool,
    },
    Rest(Arc<super::rest::RestTables>),
}

impl MetadataCommitter {
    /// Connects to the catalog's database, or reads the REST catalog's config (its prefix).
    pub async fn open(config: &PlatformConfig) -> Result<Self, SinkError> {
        let target = match config.catalog.kind {
            CatalogKind::Sql => {
                let (uri, dollar) = super::catalog::sql_connection(config)?;
                sqlx::any::install_default_drivers();
                let pool = sqlx::pool::PoolOptions::<sqlx::Any>::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_lazy(&uri)
                    .map_err(|e| SinkError::CatalogOpen {
                        kind: "sql",
                        uri: super::catalog::redact_uri(&config.catalog.uri),
                        source: Error::new(
                            ErrorKind::Unexpected,
                            super::catalog::scrub(&e.to_string(), config),
                        ),
                    })?;
                Target::Sql {
                    pool,
                    catalog: config.catalog.name.clone(),
                    dollar,
                }
            }
            CatalogKind::Rest => {
                Target::Rest(Arc::new(super::rest::RestTables::open(config).await?))
            }
        };
        Ok(Self { target })
    }

    /// Commits `change`, built from `table`. A certain refusal is an error of kind
    /// `CatalogCommitConflicts` (retryable); any other error leaves the outcome unknown: reload
    /// the table to see whether the change landed before deleting anything it references.
    pub async fn commit(&self, table: &Table, change: MetadataChange) -> Result<(), Error> {
        match &self.target {
            Target::Sql {
                pool,
                catalog,
                dollar,
            } => commit_sql(pool, catalog, *dollar, table, change).await,
            Target::Rest(rest) => rest.commit(table.identifier(), change).await,
        }
    }
}

/// Loads the table, lets `build` say what to change given what is there now (`None`: nothing),
/// and commits it; on a conflict, loads again and rebuilds. Returns the table after the commit,
/// or the unchanged table when there was nothing to do.
pub async fn commit_with_rebase<F>(
    catalog: &dyn Catalog,
    committer: &MetadataCommitter,
    ident: &TableIdent,
    action: &'static str,
    mut build: F,
) -> Result<Table, SinkError>
where
    F: FnMut(&Table) -> Result<Option<MetadataChange>, SinkError>,
{
    let failed = |source| SinkError::Table {
        table: ident.to_string(),
        action,
        source,
    };
    let mut attempt = 0;
    loop {
        let table = super::load_table(catalog, ident).await?;
        let Some(change) = build(&table)? else {
            return Ok(table);
        };
        match committer.commit(&table, change).await {
            Ok(()) => return super::load_table(catalog, ident).await,
            Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts && attempt < REBASES => {
                attempt += 1;
                tracing::info!(table = %ident, attempt, "{action}: the table changed meanwhile; rebasing");
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => return Err(failed(e)),
        }
    }
}

/// The new metadata `change` makes of `table`'s, checked against its requirements.
pub fn apply(table: &Table, change: &MetadataChange) -> Result<TableMetadata, Error> {
    for requirement in &change.requirements {
        requirement.check(Some(table.metadata())).map_err(|e| {
            Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("the table changed since the commit was built: {e}"),
            )
            .with_retryable(true)
        })?;
    }
    let location = table.metadata_location_result()?;
    let mut builder = table
        .metadata()
        .clone()
        .into_builder(Some(location.to_string()));
    for update in change.updates.iter().cloned() {
        builder = update.apply(builder)?;
    }
    Ok(builder.build()?.metadata)
}

async fn commit_sql(
    pool: &AnyPool,
    catalog: &str,
    dollar: bool,
    table: &Table,
    change: MetadataChange,
) -> Result<(), Error> {
    let ident = table.identifier();
    let current = table.metadata_location_result()?.to_string();
    let metadata = apply(table, &change)?;
    let next = MetadataLocation::from_str(&current)?
        .with_next_version()
        .with_new_metadata(&metadata);
    metadata.write_to(table.file_io(), &next).await?;
    let next = next.to_string();
    let sql = swap_statement(dollar);
    let swapped = sqlx::query(&sql)
        .bind(&next)
        .bind(&current)
        .bind(catalog)
        .bind(ident.name())
        .bind(ident.namespace().join("."))
        .bind(&current)
        .execute(pool)
        .await;
    match swapped {
        Ok(done) if done.rows_affected() == 1 => Ok(()),
        Ok(_) => {
            // Refused for certain: the new file is nobody's metadata (orphan cleanup would
            // remove it a day later).
            if let Err(e) = table.file_io().delete(&next).await {
                tracing::debug!(file = %next, error = %e, "could not remove an unused metadata file");
            }
            Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("{ident}: another writer committed first"),
            )
            .with_retryable(true))
        }
        // The statement may have committed before the connection failed: the new file stays
        // (it may be the table's metadata now) and the caller looks before deciding.
        Err(e) => Err(Error::new(
            ErrorKind::Unexpected,
            format!(
                "{ident}: swapping the metadata location in the catalog database failed, outcome unknown (reload the table to see whether it landed): {e}"
            ),
        )
        .with_retryable(true)),
    }
}

/// iceberg-catalog-sql's compare-and-swap of a table's metadata location.
fn swap_statement(dollar: bool) -> String {
    let p: Vec<String> = (1..=6)
        .map(|i| if dollar { format!("${i}") } else { "?".into() })
        .collect();
    format!(
        "UPDATE iceberg_tables SET metadata_location = {}, previous_metadata_location = {} \
         WHERE catalog_name = {} AND table_name = {} AND table_namespace = {} \
         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = {}",
        p[0], p[1], p[2], p[3], p[4], p[5]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swap_binds_in_each_style() {
        assert!(swap_statement(false).contains("metadata_location = ?"));
        let pg = swap_statement(true);
        assert!(
            pg.contains("SET metadata_location = $1") && pg.ends_with("metadata_location = $6")
        );
    }
}
