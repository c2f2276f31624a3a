//! Orphaned data files: Parquet files under a table's `data/` folder that no snapshot
//! references. A worker that crashes, is revoked or fails to commit leaves the files it had
//! written; the table never shows them, but they use storage until they are removed.
//! Listing works the same on a local warehouse and on object storage.

use std::collections::HashSet;
use std::time::Duration;

use iceberg::table::Table;

use super::object_storage::ObjectStorage;
use crate::SinkError;

/// A data file no snapshot references.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// Where it is: `file:///…` or `s3://bucket/key`.
    pub location: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Time since it was last written: recent files may belong to a commit in progress.
    pub age: Duration,
}

/// Data files under the table's location that no snapshot (current or older) references, on
/// a local warehouse or on object storage.
pub async fn orphan_files(
    table: &Table,
    storage: &ObjectStorage,
) -> Result<Vec<Orphan>, SinkError> {
    let name = table.identifier().to_string();
    let err = |action, source| SinkError::Table {
        table: name.clone(),
        action,
        source,
    };
    let metadata = table.metadata();
    let mut referenced = HashSet::new();
    for snapshot in metadata.snapshots() {
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(|e| err("reading a manifest list", e))?;
        for manifest in list.entries() {
            let manifest = manifest
                .load_manifest(table.file_io())
                .await
                .map_err(|e| err("reading a manifest", e))?;
            // A DELETED entry (retention, compaction) means "not in this snapshot".
            for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                referenced.insert(normalized(entry.data_file().file_path()));
            }
        }
    }
    let data = format!("{}/data", metadata.location().trim_end_matches('/'));
    let listed = storage
        .list(&data)
        .await
        .map_err(|source| SinkError::Storage {
            location: data.clone(),
            action: "listing data files",
            source,
        })?;
    let now = chrono::Utc::now();
    let mut orphans: Vec<Orphan> = listed
        .into_iter()
        .filter(|f| !referenced.contains(&normalized(&f.location)))
        .map(|f| Orphan {
            age: (now - f.modified).to_std().unwrap_or_default(),
            location: f.location,
            bytes: f.bytes,
        })
        .collect();
    orphans.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(orphans)
}

/// `file:///a` and `/a` name the same local file.
fn normalized(location: &str) -> String {
    location
        .strip_prefix("file://")
        .unwrap_or(location)
        .to_string()
}
