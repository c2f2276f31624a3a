//! Table properties that travel with the table: the product's metadata (owner, SLA, access
//! role and filter, per-column PII tags and masking, …) as `datamesh.*` properties, kept
//! current. [`diff`] compares what the descriptor says with what the table carries; [`apply`]
//! commits the difference with one `update_table_properties` transaction.
//!
//! meshd owns every key under [`OWNED_PREFIX`]: a key the descriptor no longer produces is
//! removed. Other keys are the table's own (`commit.retry.num-retries`, or what an engine's
//! `ALTER TABLE … SET TBLPROPERTIES` added) and are never removed; a desired key outside the
//! prefix (`comment`, the table comment engines show) is set, and left alone once the
//! descriptor stops producing it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, table::Table};
use serde::Serialize;

use crate::SinkError;

/// Keys meshd owns: removed when the descriptor no longer produces them.
pub const OWNED_PREFIX: &str = "datamesh.";

/// Attempts at committing a property update that conflicts with another writer's commit (a
/// worker of the same product committing data, or starting at the same moment).
const ATTEMPTS: u32 = 5;

/// One property that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyChange {
    /// The property key.
    pub key: String,
    /// The table's value; none when the key is new.
    pub from: Option<String>,
    /// The descriptor's value; none when the key is removed.
    pub to: Option<String>,
}

impl fmt::Display for PropertyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.from, &self.to) {
            (None, Some(to)) => write!(f, "property {} = {to:?}", self.key),
            (Some(from), Some(to)) => write!(f, "property {}: {from:?} → {to:?}", self.key),
            (Some(from), None) => write!(f, "property {} removed (was {from:?})", self.key),
            (None, None) => write!(f, "property {}", self.key),
        }
    }
}

/// What changes from the table's `current` properties to `desired`, sorted by key.
pub fn diff(
    current: &HashMap<String, String>,
    desired: &HashMap<String, String>,
) -> Vec<PropertyChange> {
    let mut changes = BTreeMap::new();
    for (key, want) in desired {
        if current.get(key) != Some(want) {
            changes.insert(
                key.clone(),
                PropertyChange {
                    key: key.clone(),
                    from: current.get(key).cloned(),
                    to: Some(want.clone()),
                },
            );
        }
    }
    for (key, have) in current {
        if key.starts_with(OWNED_PREFIX) && !desired.contains_key(key) {
            changes.insert(
                key.clone(),
                PropertyChange {
                    key: key.clone(),
                    from: Some(have.clone()),
                    to: None,
                },
            );
        }
    }
    changes.into_values().collect()
}

/// Brings the table's properties to `desired` in one transaction and returns what changed
/// (nothing when they already match). A commit that conflicts with another writer's is retried
/// on the reloaded table, a few times with a short wait.
pub async fn apply(
    catalog: &dyn Catalog,
    table: &Table,
    desired: &HashMap<String, String>,
) -> Result<Vec<PropertyChange>, SinkError> {
    let name = table.identifier().to_string();
    let err = |action, source| SinkError::Table {
        table: name.clone(),
        action,
        source,
    };
    let mut table = table.clone();
    let mut attempt = 1;
    loop {
        let changes = diff(table.metadata().properties(), desired);
        if changes.is_empty() {
            return Ok(changes);
        }
        let tx = Transaction::new(&table);
        let mut update = tx.update_table_properties();
        for change in &changes {
            update = match &change.to {
                Some(value) => update.set(change.key.clone(), value.clone()),
                None => update.remove(change.key.clone()),
            };
        }
        let tx = update
            .apply(tx)
            .map_err(|e| err("preparing the property update", e))?;
        match tx.commit(catalog).await {
            Ok(_) => return Ok(changes),
            Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                tracing::debug!(table = %name, attempt, error = %e, "The property update conflicted with another commit; retrying on the reloaded table.");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                table = catalog
                    .load_table(table.identifier())
                    .await
                    .map_err(|e| err("loading the table", e))?;
                attempt += 1;
            }
            Err(e) => return Err(err("committing the property update", e)),
        }
    }
}

fn retryable(e: &iceberg::Error) -> bool {
    e.retryable() || e.kind() == iceberg::ErrorKind::CatalogCommitConflicts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn owned_keys_are_set_changed_and_removed_others_kept() {
        let current = props(&[
            ("datamesh.owner", "a@example.com"),
            ("datamesh.retention", "7years"),
            ("datamesh.sla.freshness", "15min"),
            ("commit.retry.num-retries", "0"),
            ("comment", "old"),
        ]);
        let desired = props(&[
            ("datamesh.owner", "a@example.com"),
            ("datamesh.sla.freshness", "5min"),
            ("datamesh.description", "Payments"),
        ]);
        let changes = diff(&current, &desired);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "property datamesh.description = \"Payments\"",
                "property datamesh.retention removed (was \"7years\")",
                "property datamesh.sla.freshness: \"15min\" → \"5min\"",
            ]
        );
        assert!(diff(&desired, &desired).is_empty());
    }
}
