//! Orphaned data files: Parquet files under a table's `data/` folder that no snapshot
//! references. A worker that crashes, is revoked or fails to commit leaves the files it had
//! written; the table never shows them, but they use storage until they are removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use iceberg::table::Table;

use crate::SinkError;

/// A data file no snapshot references.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// Local path of the file.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Time since it was last written: recent files may belong to a commit in progress.
    pub age: Duration,
}

/// Data files under the table's location that no snapshot (current or older) references.
/// Only local warehouses are listed; for object storage this returns `Unsupported`.
pub async fn orphan_files(table: &Table) -> Result<Vec<Orphan>, SinkError> {
    let name = table.identifier().to_string();
    let err = |action, source| SinkError::Table {
        table: name.clone(),
        action,
        source,
    };
    let metadata = table.metadata();
    let Some(root) = metadata.location().strip_prefix("file://") else {
        return Err(SinkError::Unsupported {
            what: format!("listing orphan files under {}", metadata.location()),
            fix: "only local warehouses are listed; use your object store's lifecycle rules".into(),
        });
    };
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
            for entry in manifest.entries() {
                let path = entry.data_file().file_path();
                referenced.insert(path.strip_prefix("file://").unwrap_or(path).to_string());
            }
        }
    }
    let now = SystemTime::now();
    let mut orphans = Vec::new();
    let mut folders = vec![Path::new(root).join("data")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                folders.push(path);
            } else if !referenced.contains(path.to_string_lossy().as_ref()) {
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                orphans.push(Orphan {
                    path,
                    bytes: meta.len(),
                    age,
                });
            }
        }
    }
    orphans.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(orphans)
}
