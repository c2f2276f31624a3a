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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use iceberg::spec::{
    DataFile, FormatVersion, Manifest, ManifestContentType, ManifestFile, ManifestListWriter,
    ManifestWriter, ManifestWriterBuilder, Operation, PartitionSpec, Snapshot, SnapshotReference,
    SnapshotRetention, SnapshotSummaryCollector, Summary,
};
use iceberg::table::Table;
use iceberg::{Catalog, Error, ErrorKind, TableIdent, TableRequirement, TableUpdate};

use futures::TryStreamExt;
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::expr::Predicate;

use super::commit::{MetadataChange, MetadataCommitter};
use super::offsets;
use super::writer::DataFiles;
use crate::SinkError;
use meshd_config::Codec;

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
    /// The new snapshot's id: how to tell whether a commit with a lost answer landed.
    pub snapshot_id: i64,
}

/// How a rewrite commit ended.
#[derive(Debug)]
pub enum Outcome {
    /// Committed; the files it removed.
    Committed(Vec<DataFile>),
    /// Some file to remove is no longer live (another maintenance run removed it first): the
    /// added files were deleted again and nothing changed.
    Stale,
}

/// How many times a rewrite is rebased onto commits that landed meanwhile.
const REBASES: usize = 10;

/// Above this many data manifests (the worker adds one per commit and nothing merges them), a
/// rewrite merges them all into one per partition spec, so planning stays cheap for every reader:
/// Iceberg's `commit.manifest.min-count-to-merge` (default 100), off with
/// `commit.manifest-merge.enabled=false`, as the Java implementation reads them.
const MERGE_ABOVE: usize = 100;

/// The table's manifest-merge threshold, `None` when merging is off.
fn merge_above(table: &Table) -> Option<usize> {
    let properties = table.metadata().properties();
    if properties
        .get("commit.manifest-merge.enabled")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
    {
        return None;
    }
    Some(
        properties
            .get("commit.manifest.min-count-to-merge")
            .and_then(|v| v.parse().ok())
            .unwrap_or(MERGE_ABOVE),
    )
}

/// Manifests already read, by path: they never change, so a rebase reads only the new ones.
pub type ManifestCache = HashMap<String, Arc<Manifest>>;

/// `manifest` read once: from `cache`, or from storage into it.
pub async fn cached_manifest(
    table: &Table,
    manifest: &ManifestFile,
    cache: &mut ManifestCache,
) -> Result<Arc<Manifest>, Error> {
    if let Some(m) = cache.get(&manifest.manifest_path) {
        return Ok(Arc::clone(m));
    }
    let m = Arc::new(manifest.load_manifest(table.file_io()).await?);
    cache.insert(manifest.manifest_path.clone(), Arc::clone(&m));
    Ok(m)
}

/// Commits `rewrite` on the current snapshot of `ident`; when another commit lands first (a
/// worker's append), rebases onto it as long as every file to remove is still live there, and
/// gives up cleanly ([`Outcome::Stale`]) when one is not. When the catalog's answer is lost (a
/// connection cut, a 5xx), looks at the table before deciding, and deletes nothing it may
/// reference.
pub async fn commit_rewrite(
    catalog: &dyn Catalog,
    committer: &MetadataCommitter,
    ident: &TableIdent,
    rewrite: &Rewrite,
    cache: &mut ManifestCache,
) -> Result<Outcome, SinkError> {
    let failed = |action, source| SinkError::Table {
        table: ident.to_string(),
        action,
        source,
    };
    let added: Vec<String> = rewrite
        .add
        .iter()
        .map(|f| f.file_path().to_string())
        .collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let table = super::load_table(catalog, ident).await?;
        let prepared = match prepare(&table, rewrite, cache).await {
            Ok(Some(prepared)) => prepared,
            Ok(None) => {
                discard(&table, added).await;
                return Ok(Outcome::Stale);
            }
            Err(e) => {
                discard(&table, added).await;
                return Err(failed("writing the manifests", e));
            }
        };
        let snapshot_id = prepared.snapshot_id;
        match committer.commit(&table, prepared.change).await {
            Ok(()) => return Ok(Outcome::Committed(prepared.removed)),
            Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => {
                discard(&table, prepared.written).await;
                if attempt < REBASES {
                    tracing::info!(table = %ident, attempt, "Another commit landed first; rebasing the rewrite onto it.");
                    continue;
                }
                discard(&table, added).await;
                return Err(failed("committing the rewrite", e));
            }
            Err(e) => {
                // Outcome unknown: it may have landed. Files stay either way (orphans, if not).
                let landed = catalog
                    .load_table(ident)
                    .await
                    .is_ok_and(|t| t.metadata().snapshot_by_id(snapshot_id).is_some());
                if landed {
                    return Ok(Outcome::Committed(prepared.removed));
                }
                return Err(failed("committing the rewrite", e));
            }
        }
    }
}

/// Builds the snapshot for `rewrite` on `table`'s current snapshot; `None` if a file to remove
/// is not live there. Manifests holding a removed file are rewritten (and, past the table's
/// merge threshold, all of them, merged per partition spec); manifests with no live file left
/// are dropped.
pub async fn prepare(
    table: &Table,
    rewrite: &Rewrite,
    cache: &mut ManifestCache,
) -> Result<Option<Prepared>, Error> {
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
    // A new data manifest of this snapshot for `spec`, its path recorded in `written`.
    let new_manifest = |written: &mut Vec<String>, spec: &PartitionSpec| {
        let path = format!(
            "{}/metadata/{commit}-m{}.avro",
            metadata.location().trim_end_matches('/'),
            written.len()
        );
        let output = table.file_io().new_output(&path)?;
        written.push(path);
        Ok::<_, Error>(
            ManifestWriterBuilder::new(output, Some(snapshot_id), schema.clone(), spec.clone())
                .build_v2_data(),
        )
    };
    let mut written = Vec::new();
    let mut manifests: Vec<ManifestFile> = Vec::new();
    let mut removed = Vec::new();
    let mut summary = SnapshotSummaryCollector::default();
    let list = table.manifest_list_reader(parent).load().await?;
    let data_manifests = list
        .entries()
        .iter()
        .filter(|m| m.content == ManifestContentType::Data)
        .count();
    let merge = merge_above(table).is_some_and(|above| data_manifests > above);
    // One writer per partition spec for the manifests rewritten.
    let mut writers: BTreeMap<i32, ManifestWriter> = BTreeMap::new();
    for manifest in list.entries() {
        if manifest.content != ManifestContentType::Data {
            manifests.push(manifest.clone());
            continue;
        }
        let no_live =
            manifest.added_files_count == Some(0) && manifest.existing_files_count == Some(0);
        if no_live {
            continue;
        }
        let loaded = cached_manifest(table, manifest, cache).await?;
        let hit = loaded
            .entries()
            .iter()
            .any(|e| e.is_alive() && rewrite.remove.contains(e.file_path()));
        if !hit && !merge {
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
        let writer = match writers.entry(manifest.partition_spec_id) {
            std::collections::btree_map::Entry::Occupied(w) => w.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(new_manifest(&mut written, &spec)?)
            }
        };
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
    }
    for writer in writers.into_values() {
        manifests.push(writer.write_manifest_file().await?);
    }
    if removed.len() != rewrite.remove.len() {
        discard(table, written).await;
        return Ok(None);
    }
    if !rewrite.add.is_empty() {
        let spec = metadata.default_partition_spec().clone();
        let mut writer = new_manifest(&mut written, &spec)?;
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
        // Manifests merged, no data file changed.
        (true, true) => Operation::Replace,
        (false, true) => Operation::Delete,
        _ if same_rows(&removed, &rewrite.add) => Operation::Replace,
        _ => Operation::Overwrite,
    };
    let mut properties = summary.build();
    properties.extend(totals(parent.summary(), &removed, &rewrite.add));
    properties.extend(carried_offsets(table));
    properties.extend(rewrite.summary.clone());
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
    Ok(Some(Prepared {
        change,
        written,
        removed,
        snapshot_id,
    }))
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

/// How many data manifests the current snapshot of `table` lists.
pub async fn data_manifests(table: &Table) -> Result<usize, Error> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(0);
    };
    let list = table.manifest_list_reader(snapshot).load().await?;
    Ok(list
        .entries()
        .iter()
        .filter(|m| m.content == ManifestContentType::Data)
        .count())
}

/// Whether `count` data manifests of `table` call for a merge.
pub fn needs_merge(table: &Table, count: usize) -> bool {
    merge_above(table).is_some_and(|above| count > above)
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

/// Reads the live data files `paths` of `table` (keeping only the rows `keep` selects) and
/// writes their rows as new files of about `target_size` bytes with the port's `codec`, named
/// `<prefix>-…`; returns the rows written and the files.
pub async fn copy_files(
    table: &Table,
    paths: &BTreeSet<&str>,
    keep: Option<Predicate>,
    (target_size, codec): (usize, Codec),
    prefix: &str,
) -> Result<(u64, Vec<DataFile>), SinkError> {
    let name = table.identifier().to_string();
    let failed = |action, source| SinkError::Table {
        table: name.clone(),
        action,
        source,
    };
    let mut scan = table.scan();
    if let Some(keep) = keep {
        scan = scan.with_filter(keep);
    }
    let tasks: Vec<_> = scan
        .build()
        .map_err(|e| failed("planning the rewrite", e))?
        .plan_files()
        .await
        .map_err(|e| failed("planning the rewrite", e))?
        .try_filter(|task| std::future::ready(paths.contains(task.data_file_path())))
        .try_collect()
        .await
        .map_err(|e| failed("planning the rewrite", e))?;
    let reader =
        ArrowReaderBuilder::new(table.file_io().clone(), iceberg::Runtime::current()).build();
    let mut batches = reader
        .read(Box::pin(futures::stream::iter(tasks.into_iter().map(Ok))))
        .map_err(|e| failed("reading the files to rewrite", e))?
        .stream();
    let mut files = DataFiles::with_codec(table, prefix.to_string(), target_size, codec)?;
    while let Some(batch) = batches
        .try_next()
        .await
        .map_err(|e| failed("reading the files to rewrite", e))?
    {
        files.write(batch).await?;
    }
    let rows = files.rows();
    Ok((rows, files.close().await?))
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
