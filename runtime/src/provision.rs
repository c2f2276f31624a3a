//! What a product needs in the catalog, and how to get there: the table spec a worker creates
//! (schema, partition spec, `datamesh.*` properties), the plan against the live catalog
//! (create, evolve, or nothing), and applying it. `meshd plan` prints the plan, `meshd
//! provision` applies it, and a worker applies compatible changes before it writes.
//!
//! The properties carry the product's metadata to every engine that reads the table (pyiceberg's
//! `table.properties`, Trino's `$properties`, Spark's `SHOW TBLPROPERTIES`): who owns it, what
//! it promises, who may read which rows, and per column its tags and masking. Column metadata
//! is in properties, not in the Iceberg field `doc`: iceberg-rust 0.10 cannot change the doc of
//! an existing column, and a table's docs would otherwise depend on when it was created.

use std::collections::HashMap;

use iceberg::{Catalog, NamespaceIdent, TableIdent};
use meshd_config::{DataProduct, OutputPort, PlatformConfig};
use meshd_sinks::SinkError;
use meshd_sinks::iceberg::commit::MetadataCommitter;
use meshd_sinks::iceberg::evolution::{self, Change};
use meshd_sinks::iceberg::properties::{self, PropertyChange};
use meshd_sinks::iceberg::{TableSpec, table_location};
use serde::Serialize;

use crate::RuntimeError;

/// The table output port `port` of `product` becomes.
pub fn table_spec(
    platform: &PlatformConfig,
    product: &DataProduct,
    port: usize,
) -> Result<TableSpec, RuntimeError> {
    let output = &product.spec.spec.output_ports[port];
    let (namespace, name) = product.table_ident(port);
    let schema = product.schemas[port]
        .table_schema(&output.kafka)
        .map_err(|source| SinkError::Table {
            table: format!("{namespace}.{name}"),
            action: "mapping the schema",
            source,
        })?;
    Ok(TableSpec {
        location: table_location(platform, &output.location)?,
        namespace,
        name,
        schema,
        partitioning: output.partitioning.clone(),
        properties: table_properties(product, port),
    })
}

/// The properties of output port `port`'s table: the product's metadata, its SLA, its
/// policies and, per tagged or masked column, `datamesh.column.<path>.tags` (comma-separated)
/// and `datamesh.column.<path>.masking` (the method), `<path>` spelt as findings spell it
/// (`customer.email`, `items[].sku`).
pub fn table_properties(product: &DataProduct, port: usize) -> HashMap<String, String> {
    let meta = &product.spec.metadata;
    let output: &OutputPort = &product.spec.spec.output_ports[port];
    let mut properties = HashMap::from([
        ("datamesh.product".into(), meta.name.clone()),
        ("datamesh.domain".into(), meta.domain.clone()),
        ("datamesh.owner".into(), meta.owner.clone()),
        (
            "datamesh.sla.freshness".into(),
            output.sla.freshness.as_str().to_string(),
        ),
        (
            "datamesh.sla.availability".into(),
            output.sla.availability.as_str().to_string(),
        ),
        ("datamesh.descriptor.sha256".into(), product.sha256.clone()),
    ]);
    if let Some(description) = &meta.description {
        properties.insert("datamesh.description".into(), description.clone());
        // The table comment Trino, Spark and Hive show.
        properties.insert("comment".into(), description.clone());
    }
    if let Some(policies) = &product.spec.spec.policies {
        if let Some(retention) = &policies.retention {
            properties.insert(
                "datamesh.retention".into(),
                retention.period.as_str().to_string(),
            );
        }
        if let Some(access) = &policies.access_control {
            properties.insert("datamesh.access.role".into(), access.role.clone());
            if let Some(filter) = &access.filter {
                properties.insert("datamesh.access.filter".into(), filter.clone());
            }
        }
    }
    for column in product.schemas[port].all_columns() {
        if !column.tags.is_empty() {
            properties.insert(
                format!("datamesh.column.{}.tags", column.path),
                column.tags.join(","),
            );
        }
        if let Some(masking) = column.masking {
            properties.insert(
                format!("datamesh.column.{}.masking", column.path),
                masking.as_str().to_string(),
            );
        }
    }
    properties
}

/// What provisioning would do to one table.
#[derive(Debug, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum TablePlan {
    /// The table does not exist: create it.
    Create {
        /// `namespace.table`.
        table: String,
        /// Where.
        location: String,
        /// Partition fields, `column: transform`.
        partitioning: Vec<String>,
        /// Table properties.
        properties: HashMap<String, String>,
        /// Columns with their Iceberg types.
        columns: Vec<String>,
    },
    /// The table exists and its schema or its `datamesh.*` properties differ.
    Evolve {
        /// `namespace.table`.
        table: String,
        /// Column changes.
        changes: Vec<Change>,
        /// Property changes (always applicable).
        properties: Vec<PropertyChange>,
    },
    /// Nothing to do.
    UpToDate {
        /// `namespace.table`.
        table: String,
    },
}

impl TablePlan {
    /// Whether the plan contains a change meshd refuses.
    pub fn refused(&self) -> bool {
        matches!(self, Self::Evolve { changes, .. } if evolution::has_breaking(changes))
    }
}

/// Reads the live catalog and plans `spec`.
pub async fn plan(catalog: &dyn Catalog, spec: &TableSpec) -> Result<TablePlan, RuntimeError> {
    let table = format!("{}.{}", spec.namespace, spec.name);
    let err = |action, source| SinkError::Table {
        table: table.clone(),
        action,
        source,
    };
    let ident = TableIdent::new(
        NamespaceIdent::new(spec.namespace.clone()),
        spec.name.clone(),
    );
    let exists = catalog
        .table_exists(&ident)
        .await
        .map_err(|e| err("checking the table", e))?;
    if !exists {
        return Ok(TablePlan::Create {
            table,
            location: spec.location.clone(),
            partitioning: spec
                .partitioning
                .iter()
                .map(|p| format!("{}: {}", p.column, p.transform.iceberg_name()))
                .collect(),
            properties: spec.properties.clone(),
            columns: spec
                .schema
                .as_struct()
                .fields()
                .iter()
                .map(|f| {
                    format!(
                        "{} {}{}",
                        f.name,
                        evolution::type_name(&f.field_type),
                        if f.required { "" } else { " (optional)" }
                    )
                })
                .collect(),
        });
    }
    let loaded = catalog
        .load_table(&ident)
        .await
        .map_err(|e| err("loading the table", e))?;
    let changes = evolution::diff(loaded.metadata().current_schema(), &spec.schema);
    let properties = properties::diff(loaded.metadata().properties(), &spec.properties);
    Ok(if changes.is_empty() && properties.is_empty() {
        TablePlan::UpToDate { table }
    } else {
        TablePlan::Evolve {
            table,
            changes,
            properties,
        }
    })
}

/// What [`evolve_table`] changed.
#[derive(Debug, Default)]
pub struct Evolved {
    /// Schema changes applied: columns added, types widened, docs changed.
    pub columns: Vec<Change>,
    /// Properties set or removed.
    pub properties: Vec<PropertyChange>,
}

/// Applies the compatible schema changes of an existing table (new optional columns, type
/// promotions, required→optional, docs), then brings its properties up to date; fails, changing
/// nothing, on a breaking schema change. A missing table is left to [`meshd_sinks::iceberg::OutputTable::open`],
/// which creates it with the spec's properties.
pub async fn evolve_table(
    catalog: &dyn Catalog,
    committer: &MetadataCommitter,
    spec: &TableSpec,
) -> Result<Evolved, RuntimeError> {
    let TablePlan::Evolve { changes, .. } = plan(catalog, spec).await? else {
        return Ok(Evolved::default());
    };
    let ident = TableIdent::new(
        NamespaceIdent::new(spec.namespace.clone()),
        spec.name.clone(),
    );
    let table = meshd_sinks::iceberg::load_table(catalog, &ident).await?;
    let table = evolution::apply(catalog, committer, &table, &spec.schema, &changes).await?;
    let properties = properties::apply(catalog, &table, &spec.properties).await?;
    let columns = changes
        .into_iter()
        .filter(|c| !matches!(c.kind, evolution::ChangeKind::Breaking { .. }))
        .collect();
    Ok(Evolved {
        columns,
        properties,
    })
}

/// Renders plans for people.
pub fn render_plan(product: &str, plan: &TablePlan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    match plan {
        TablePlan::Create {
            table,
            location,
            partitioning,
            properties,
            columns,
        } => {
            let _ = writeln!(out, "product {product}: create table {table} at {location}");
            if !partitioning.is_empty() {
                let _ = writeln!(out, "  partitioned by {}", partitioning.join(", "));
            }
            for c in columns {
                let _ = writeln!(out, "  column {c}");
            }
            let mut props: Vec<_> = properties.iter().collect();
            props.sort();
            for (k, v) in props {
                let _ = writeln!(out, "  property {k} = {v}");
            }
        }
        TablePlan::Evolve {
            table,
            changes,
            properties,
        } => {
            let _ = writeln!(out, "product {product}: change table {table}");
            for c in changes {
                let mark = match c.kind {
                    evolution::ChangeKind::AddOptional { .. } => "+",
                    evolution::ChangeKind::Widen { .. } | evolution::ChangeKind::Doc => "~",
                    evolution::ChangeKind::Breaking { .. } => "REFUSED",
                };
                let _ = writeln!(out, "  {mark} {c}");
            }
            for p in properties {
                let mark = match (&p.from, &p.to) {
                    (None, _) => "+",
                    (Some(_), Some(_)) => "~",
                    (Some(_), None) => "-",
                };
                let _ = writeln!(out, "  {mark} {p}");
            }
        }
        TablePlan::UpToDate { table } => {
            let _ = writeln!(out, "product {product}: table {table} is up to date");
        }
    }
    out
}
