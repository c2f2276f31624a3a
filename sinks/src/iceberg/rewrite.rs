//! Snapshots that remove data files (and may add others in their place): the `delete`,
//! `overwrite` and `replace` operations iceberg-rust 0.10 has no action for. Built from the
//! table's current snapshot with iceberg's public manifest writers, committed through
//! [`super::commit`] with `assert-ref-snapshot-id` on `main`, so a concurrent append makes it a
//! conflict, never a lost append.
//!
//! Manifests that hold none of the removed files are kept as they are; each one that does is
//! rewritten with the removed files as `DELETED` entries and the others as `EXISTING` (their
//! sequence numbers kept), and the added files go into one new manifest. The new snapshot
//! carries every consumer group's offsets forward, so resuming never needs an older snapshot.

use std::collections::{BTreeSet, HashMap};

use iceberg::spec::{
    DataFile, FormatVersion, ManifestContentType, ManifestFile, ManifestListWriter,
    ManifestWriterBuilder, Operation, Snapshot, SnapshotReference, SnapshotRetention,
    SnapshotSummaryCollector, Summary,
};
use iceberg::table::Table;
use iceberg::{Error, ErrorKind, TableRequirement, TableUpdate};

use super::commit::MetadataChange;
use super::offsets;

/// What a rewrite commit removes and adds.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// Paths of live data files to remove.
    pub remove: BTreeSet<String>,
    /// New data files (already written).
    pub add: Vec<DataFile>,
    /// Extra summary properties (`meshd.retention.cut`).
    pub summary: HashMap<String, String>,
}

/// The prepared commit: the change, and every file written for it (to delete if it loses).
pub struct Prepared {
    /// Commit this.
    pub change: MetadataChange,
    /// Manifests and the manifest list written for it.
    pub written: Vec<String>,
    /// Files removed, with their sizes and row counts, as the summary counts them.
    pub removed: Vec<DataFile>,
}

/// Builds the snapshot for `rewrite` on `table`'s current snapshot. Fails if a file to remove is
/// not live there (someone removed it first: the caller plans again).
pub async fn prepare(table: &Table, rewrite: Rewrite) -> Result<Prepared, Error> {
    let metadata = table.metadata();
    let Some(parent) = metadata.current_snapshot() else {
        return Err(Error::new(
            ErrorKind::DataInvalid,
            "the table has no snapshot",
        ));
    };
    if metadata.format_version() != FormatVersion::V2 {
        return Err(Error::new(
            ErrorKind::FeatureUnsupported,
            format!(
                "removing data files is built for format version 2 tables; this one is {}",
                metadata.format_version()
            ),
        ));
    }
    let snapshot_id = unique_snapshot_id(table);
    let sequence = metadata.next_sequence_number();
    let schema = metadata.current_schema().clone();
    let commit = uuid::Uuid::now_v7();
    let manifest_path = |n: usize| {
        format!(
            "{}/metadata/{commit}-m{n}.avro",
            metadata.location().trim_end_matches('/')
        )
    };
    let mut written = Vec::new();
    let mut manifests: Vec<ManifestFile> = Vec::new();
    let mut removed = Vec::new();
    let mut summary = SnapshotSummaryCollector::default();
    let list = table.manifest_list_reader(parent).load().await?;
    for manifest in list.entries() {
        if manifest.content != ManifestContentType::Data {
            manifests.push(manifest.clone());
            continue;
        }
        let loaded = manifest.load_manifest(table.file_io()).await?;
        let hit = loaded
            .entries()
            .iter()
            .any(|e| e.is_alive() && rewrite.remove.contains(e.file_path()));
        if !hit {
            manifests.push(manifest.clone());
            continue;
        }
        let spec = metadata
            .partition_spec_by_id(manifest.partition_spec_id)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::DataInvalid,
                    format!("no partition spec {}", manifest.partition_spec_id),
                )
            })?;
        let path = manifest_path(written.len());
        let mut writer = ManifestWriterBuilder::new(
            table.file_io().new_output(&path)?,
            Some(snapshot_id),
            schema.clone(),
            (*spec).clone(),
        )
        .build_v2_data();
        written.push(path);
        for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
            let sequence_number = entry.sequence_number().unwrap_or(0);
            let file_sequence_number = entry.file_sequence_number;
            if rewrite.remove.contains(entry.file_path()) {
                summary.remove_file(entry.data_file(), schema.clone(), spec.clone());
                removed.push(entry.data_file().clone());
                writer.add_delete_file(
                    entry.data_file().clone(),
                    sequence_number,
                    file_sequence_number,
                )?;
            } else {
                writer.add_existing_file(
                    entry.data_file().clone(),
                    entry.snapshot_id().unwrap_or(parent.snapshot_id()),
                    sequence_number,
                    file_sequence_number,
                )?;
            }
        }
        manifests.push(writer.write_manifest_file().await?);
    }
    if removed.len() != rewrite.remove.len() {
        return Err(Error::new(
            ErrorKind::CatalogCommitConflicts,
            format!(
                "{} of the {} files to remove are no longer live (another maintenance run removed them)",
                rewrite.remove.len() - removed.len(),
                rewrite.remove.len()
            ),
        )
        .with_retryable(true));
    }
    if !rewrite.add.is_empty() {
        let spec = metadata.default_partition_spec().clone();
        let path = manifest_path(written.len());
        let mut writer = ManifestWriterBuilder::new(
            table.file_io().new_output(&path)?,
            Some(snapshot_id),
            schema.clone(),
            (*spec).clone(),
        )
        .build_v2_data();
        written.push(path);
        for file in &rewrite.add {
            summary.add_file(file, schema.clone(), spec.clone());
            writer.add_file(file.clone(), -1)?;
        }
        manifests.push(writer.write_manifest_file().await?);
    }

    let list_path = format!(
        "{}/metadata/snap-{snapshot_id}-0-{commit}.avro",
        metadata.location().trim_end_matches('/')
    );
    let mut list_writer = ManifestListWriter::v2(
        table.file_io().new_output(&list_path)?.writer().await?,
        snapshot_id,
        Some(parent.snapshot_id()),
        sequence,
    );
    list_writer.add_manifests(manifests.into_iter())?;
    list_writer.close().await?;
    written.push(list_path.clone());

    let operation = match (removed.is_empty(), rewrite.add.is_empty()) {
        (false, true) => Operation::Delete,
        _ if same_rows(&removed, &rewrite.add) => Operation::Replace,
        _ => Operation::Overwrite,
    };
    let mut properties = summary.build();
    properties.extend(totals(parent.summary(), &removed, &rewrite.add));
    properties.extend(carried_offsets(table));
    properties.extend(rewrite.summary);
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(Some(parent.snapshot_id()))
        .with_sequence_number(sequence)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .with_manifest_list(list_path)
        .with_schema_id(metadata.current_schema_id())
        .with_summary(Summary {
            operation,
            additional_properties: properties,
        })
        .build();
    let change = MetadataChange {
        requirements: vec![
            TableRequirement::UuidMatch {
                uuid: metadata.uuid(),
            },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: "main".into(),
                snapshot_id: Some(parent.snapshot_id()),
            },
        ],
        updates: vec![
            TableUpdate::AddSnapshot { snapshot },
            TableUpdate::SetSnapshotRef {
                ref_name: "main".into(),
                reference: SnapshotReference::new(
                    snapshot_id,
                    SnapshotRetention::branch(None, None, None),
                ),
            },
        ],
    };
    Ok(Prepared {
        change,
        written,
        removed,
    })
}

/// Compaction keeps the rows and changes only the files.
fn same_rows(removed: &[DataFile], added: &[DataFile]) -> bool {
    let count = |files: &[DataFile]| files.iter().map(DataFile::record_count).sum::<u64>();
    !added.is_empty() && count(removed) == count(added)
}

/// The parent's `total-*` figures moved by what changes (readers show them as table totals).
fn totals(parent: &Summary, removed: &[DataFile], added: &[DataFile]) -> HashMap<String, String> {
    let before = |key: &str| {
        parent
            .additional_properties
            .get(key)
            .and_then(|v| v.parse::<i128>().ok())
    };
    let sum = |files: &[DataFile], f: fn(&DataFile) -> u64| -> i128 {
        files.iter().map(|d| i128::from(f(d))).sum()
    };
    let mut out = HashMap::new();
    for (key, delta) in [
        (
            "total-records",
            sum(added, DataFile::record_count) - sum(removed, DataFile::record_count),
        ),
        (
            "total-files-size",
            sum(added, DataFile::file_size_in_bytes) - sum(removed, DataFile::file_size_in_bytes),
        ),
        (
            "total-data-files",
            added.len() as i128 - removed.len() as i128,
        ),
    ] {
        if let Some(total) = before(key) {
            out.insert(key.to_string(), (total + delta).max(0).to_string());
        }
    }
    for key in [
        "total-delete-files",
        "total-position-deletes",
        "total-equality-deletes",
    ] {
        if let Some(v) = parent.additional_properties.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    out
}

/// Every consumer group's offsets as of the current snapshot, marked complete.
fn carried_offsets(table: &Table) -> HashMap<String, String> {
    let metadata = table.metadata();
    let prefix = offsets::offsets_key("");
    let groups: BTreeSet<String> = metadata
        .snapshots()
        .flat_map(|s| {
            s.summary()
                .additional_properties
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut out = HashMap::new();
    for group in groups {
        let recorded = offsets::recorded_offsets(metadata, &group);
        if recorded.is_empty() {
            continue;
        }
        out.insert(offsets::offsets_key(&group), offsets::encode(&recorded));
        out.insert(offsets::complete_key(&group), "true".into());
    }
    out
}

/// A positive snapshot id no snapshot of the table has, as iceberg-rust makes them.
fn unique_snapshot_id(table: &Table) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) as i64).wrapping_abs();
        if id > 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Deletes files a lost commit wrote (best effort: what stays is an orphan, never a broken
/// table).
pub async fn discard(table: &Table, files: impl IntoIterator<Item = String>) {
    for file in files {
        if let Err(e) = table.file_io().delete(&file).await {
            tracing::debug!(file = %file, error = %e, "could not remove a file of a lost commit");
        }
    }
}
