//! Compaction: a stream committed every few seconds leaves many small files per partition, and
//! every query plans and opens each of them. A partition (of the table's current partition
//! spec) holding more than `maxFilesPerPartition` small files (below half the port's
//! `targetFileSize`) has them rewritten into files of the target size, in one `replace`
//! snapshot with the same rows. Ingestion goes on meanwhile: the commit is rebased onto the
//! worker's appends, and gives up cleanly (deleting what it wrote) if another run removed one of
//! its files first. A table whose current snapshot lists more data manifests than Iceberg's
//! `commit.manifest.min-count-to-merge` (default 100; the worker adds one per commit) has them
//! merged in the same commit, or in one of their own when no file needs compacting.

use std::collections::{BTreeSet, HashMap};

use iceberg::spec::{DataFile, ManifestContentType, Struct};
use iceberg::table::Table;
use iceberg::{Catalog, TableIdent};

use meshd_config::Codec;

use super::commit::MetadataCommitter;
use super::rewrite::{self, Outcome, Rewrite};
use crate::SinkError;

/// What compaction did, or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Partitions compacted.
    pub partitions: usize,
    /// Small files replaced.
    pub files_in: usize,
    /// Files written in their place (0 in a dry run).
    pub files_out: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Whether another run removed a file first, so nothing was committed.
    pub gave_up: bool,
    /// Data manifests merged into one per partition spec (0: none were).
    pub manifests_merged: usize,
}

/// Compacts every partition of `ident` with more than `max_small_files` files below half of
/// `target_size` bytes; with `dry_run`, says what it would do.
pub async fn compact(
    catalog: &dyn Catalog,
    committer: &MetadataCommitter,
    ident: &TableIdent,
    (target_size, codec): (u64, Codec),
    max_small_files: usize,
    dry_run: bool,
) -> Result<Compaction, SinkError> {
    let table = super::load_table(catalog, ident).await?;
    // The manifests read to plan are the ones the commit rewrites: read once for both.
    let mut cache = rewrite::ManifestCache::new();
    let groups = small_files(&table, target_size / 2, max_small_files, &mut cache)
        .await
        .map_err(|source| SinkError::Table {
            table: ident.to_string(),
            action: "reading the manifests for compaction",
            source,
        })?;
    let files: Vec<&DataFile> = groups.iter().flatten().collect();
    let mut report = Compaction {
        partitions: groups.len(),
        files_in: files.len(),
        bytes: files.iter().map(|f| f.file_size_in_bytes()).sum(),
        ..Compaction::default()
    };
    let manifests = rewrite::data_manifests(&table)
        .await
        .map_err(|source| SinkError::Table {
            table: ident.to_string(),
            action: "reading the manifest list",
            source,
        })?;
    if rewrite::needs_merge(&table, manifests) {
        report.manifests_merged = manifests;
    }
    if dry_run || (files.is_empty() && report.manifests_merged == 0) {
        return Ok(report);
    }
    let paths: BTreeSet<&str> = files.iter().map(|f| f.file_path()).collect();
    let (_, added) = if paths.is_empty() {
        (0, Vec::new())
    } else {
        rewrite::copy_files(
            &table,
            &paths,
            None,
            (usize::try_from(target_size).unwrap_or(usize::MAX), codec),
            "compacted",
        )
        .await?
    };
    report.files_out = added.len();
    let rewrite = Rewrite {
        remove: paths.iter().map(|p| p.to_string()).collect(),
        add: added,
        summary: HashMap::from([(
            "meshd.compaction.files".to_string(),
            report.files_in.to_string(),
        )]),
    };
    match rewrite::commit_rewrite(catalog, committer, ident, &rewrite, &mut cache).await? {
        Outcome::Committed(_) => {}
        Outcome::Stale => {
            report.gave_up = true;
            report.files_out = 0;
            report.manifests_merged = 0;
        }
    }
    Ok(report)
}

/// The small live files of each partition of the default spec that has more than `max` of them.
async fn small_files(
    table: &Table,
    below: u64,
    max: usize,
    cache: &mut rewrite::ManifestCache,
) -> iceberg::Result<Vec<Vec<DataFile>>> {
    let metadata = table.metadata();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(Vec::new());
    };
    let spec_id = metadata.default_partition_spec_id();
    let mut by_partition: HashMap<Struct, Vec<DataFile>> = HashMap::new();
    let list = table.manifest_list_reader(snapshot).load().await?;
    for manifest in list.entries() {
        if manifest.content != ManifestContentType::Data || manifest.partition_spec_id != spec_id {
            continue;
        }
        let loaded = rewrite::cached_manifest(table, manifest, cache).await?;
        for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
            let file = entry.data_file();
            if file.file_size_in_bytes() < below {
                by_partition
                    .entry(file.partition().clone())
                    .or_default()
                    .push(file.clone());
            }
        }
    }
    Ok(by_partition
        .into_values()
        .filter(|files| files.len() > max)
        .collect())
}
