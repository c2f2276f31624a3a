//! Snapshot expiry: snapshots older than the product's `maintenance.snapshotMaxAge` are removed
//! from the table's metadata (keeping at least `maintenance.minSnapshots`, and every snapshot a
//! branch or tag points at), then the files that only expired snapshots referenced (their
//! manifest lists, manifests no live snapshot shares, data files no live manifest lists) are
//! deleted. A file any live snapshot references is never deleted.
//!
//! iceberg-rust's `ExpireSnapshotsAction` changes the metadata only; the file clean-up is here.
//! Every snapshot carries every partition's offsets (`offsets.rs`), so resuming needs only the
//! newest one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use iceberg::Catalog;
use iceberg::spec::SnapshotRef;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};

use crate::SinkError;

/// What an expiry did, or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Snapshot ids expired (or to expire), oldest first.
    pub expired: Vec<i64>,
    /// Snapshots left.
    pub kept: usize,
    /// Files deleted (or to delete): only expired snapshots referenced them.
    pub files: Vec<String>,
}

/// Expires the snapshots of `table` older than `max_age` beyond the newest `min_snapshots`; with
/// `dry_run`, changes nothing and says what it would do.
pub async fn expire_snapshots(
    catalog: &dyn Catalog,
    table: &Table,
    max_age: Duration,
    min_snapshots: usize,
    dry_run: bool,
) -> Result<Expiry, SinkError> {
    let name = table.identifier().to_string();
    let err = |action, source| SinkError::Table {
        table: name.clone(),
        action,
        source,
    };
    let metadata = table.metadata();
    let cut = chrono::Utc::now().timestamp_millis() - max_age.as_millis() as i64;
    let mut newest_first: Vec<&SnapshotRef> = metadata.snapshots().collect();
    newest_first.sort_by_key(|s| std::cmp::Reverse((s.timestamp_ms(), s.sequence_number())));
    let mut protected: HashSet<i64> = newest_first
        .iter()
        .take(min_snapshots.max(1))
        .map(|s| s.snapshot_id())
        .collect();
    protected.extend(metadata.current_snapshot_id());
    // Other branches and tags are iceberg's to protect: expiring one fails the commit.
    if let Some(main) = metadata.snapshot_for_ref("main") {
        protected.insert(main.snapshot_id());
    }
    let mut expired: Vec<i64> = newest_first
        .iter()
        .rev()
        .filter(|s| s.timestamp_ms() < cut && !protected.contains(&s.snapshot_id()))
        .map(|s| s.snapshot_id())
        .collect();
    let kept_snapshots: Vec<&SnapshotRef> = newest_first
        .iter()
        .filter(|s| !expired.contains(&s.snapshot_id()))
        .copied()
        .collect();
    if expired.is_empty() {
        return Ok(Expiry {
            kept: kept_snapshots.len(),
            ..Expiry::default()
        });
    }
    // Each manifest is read once: the kept snapshots share most of theirs with the expired.
    let mut manifests = HashMap::new();
    let before = referenced(table, newest_first.iter().copied(), &mut manifests)
        .await
        .map_err(|e| err("reading the snapshots' manifests", e))?;
    let after = referenced(table, kept_snapshots.iter().copied(), &mut manifests)
        .await
        .map_err(|e| err("reading the live snapshots' manifests", e))?;
    let location = metadata.location().trim_end_matches('/').to_string();
    let files: Vec<String> = before
        .difference(&after)
        .filter(|f| f.starts_with(&location))
        .cloned()
        .collect();
    let mut report = Expiry {
        expired: expired.clone(),
        kept: kept_snapshots.len(),
        files,
    };
    if dry_run {
        return Ok(report);
    }
    let tx = Transaction::new(table);
    let action = tx
        .expire_snapshots()
        .expire_snapshot_ids(std::mem::take(&mut expired))
        // By id alone: the age rule is meshd's (above), not the table property's default.
        .expire_older_than_ms(0);
    let tx = action
        .apply(tx)
        .map_err(|e| err("preparing the snapshot expiry", e))?;
    tx.commit(catalog)
        .await
        .map_err(|e| err("committing the snapshot expiry", e))?;
    // The metadata no longer names them: delete what only they used. A failure leaves a file
    // behind (an orphan), never a broken table, so it is reported and the rest goes on.
    let mut deleted = Vec::with_capacity(report.files.len());
    for file in &report.files {
        match table.file_io().delete(file).await {
            Ok(()) => deleted.push(file.clone()),
            Err(e) => {
                tracing::warn!(table = %name, file = %file, error = %e, "Could not delete a file only expired snapshots used; `meshd orphans` lists data files left behind.")
            }
        }
    }
    report.files = deleted;
    Ok(report)
}

/// Every file the snapshots reference: manifest lists, manifests, data files. `manifests`
/// caches each manifest's data files across calls.
async fn referenced<'a>(
    table: &Table,
    snapshots: impl Iterator<Item = &'a SnapshotRef>,
    manifests: &mut HashMap<String, Vec<String>>,
) -> Result<BTreeSet<String>, iceberg::Error> {
    let mut files = BTreeSet::new();
    for snapshot in snapshots {
        files.insert(snapshot.manifest_list().to_string());
        let list = table.manifest_list_reader(snapshot).load().await?;
        for manifest in list.entries() {
            files.insert(manifest.manifest_path.clone());
            if !manifests.contains_key(&manifest.manifest_path) {
                let loaded = manifest.load_manifest(table.file_io()).await?;
                // Live entries only: a file a manifest lists as DELETED (retention, compaction)
                // is not in that snapshot, and must not be kept alive by it.
                let data = loaded
                    .entries()
                    .iter()
                    .filter(|entry| entry.is_alive())
                    .map(|entry| entry.data_file().file_path().to_string())
                    .collect();
                manifests.insert(manifest.manifest_path.clone(), data);
            }
            if let Some(data) = manifests.get(&manifest.manifest_path) {
                files.extend(data.iter().cloned());
            }
        }
    }
    Ok(files)
}
