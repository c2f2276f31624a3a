//! Retention: rows whose time column is older than the cut (now − `policies.retention`) are
//! removed from the table's current snapshot.
//!
//! A data file whose time partition (or, without one, whose column upper bound) lies wholly
//! before the cut is dropped without being read. A file that straddles the cut is rewritten
//! without its expired rows (copy-on-write) rather than given position deletes: readers then
//! never merge delete files (DuckDB and older engines read plain appends fastest, and meshd
//! writes no delete files anywhere else), and the rewrite touches only the few files of the
//! partition the cut falls in. Rows whose time is null are kept: their age is unknown.
//! One commit (`delete` when only whole files go, else `overwrite`) through
//! [`super::rewrite`]; the expired files stay on storage until snapshot expiry removes the
//! snapshots that still see them.

use std::collections::BTreeSet;

use iceberg::expr::Reference;
use iceberg::spec::{
    DataFile, Datum, PartitionSpec, PrimitiveLiteral, PrimitiveType, Transform, Type,
};
use iceberg::table::Table;
use iceberg::{Catalog, ErrorKind, TableIdent};

use meshd_config::Codec;

use super::commit::MetadataCommitter;
use super::rewrite::{self, Outcome, Rewrite};
use crate::SinkError;

/// How many times a retention run plans again after losing a race.
const ATTEMPTS: usize = 10;

/// What retention did, or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Data files dropped whole.
    pub dropped: usize,
    /// Data files rewritten without their expired rows.
    pub rewritten: usize,
    /// Rows removed (in dropped files, and filtered out of rewritten ones; a dry run counts
    /// only the dropped files' rows).
    pub rows: u64,
    /// Bytes of the files removed from the current snapshot.
    pub bytes: u64,
}

impl RetentionReport {
    /// Whether the run changes nothing.
    pub fn is_empty(&self) -> bool {
        self.dropped == 0 && self.rewritten == 0
    }
}

/// Removes every row of `ident` whose `column` is before `cut_micros` (microseconds since the
/// epoch); with `dry_run`, changes nothing and says what it would do.
pub async fn enforce_retention(
    catalog: &dyn Catalog,
    committer: &MetadataCommitter,
    ident: &TableIdent,
    column: &str,
    cut_micros: i64,
    codec: Codec,
    dry_run: bool,
) -> Result<RetentionReport, SinkError> {
    let failed = |action, source| SinkError::Table {
        table: ident.to_string(),
        action,
        source,
    };
    let mut attempt = 0;
    let mut cache = rewrite::ManifestCache::new();
    loop {
        attempt += 1;
        let table = super::load_table(catalog, ident).await?;
        // The plan's manifests are the ones the commit rewrites: read once for both.
        let plan = plan(&table, column, cut_micros, &mut cache)
            .await
            .map_err(|e| failed("reading the manifests for retention", e))?;
        let mut report = RetentionReport {
            dropped: plan.drop.len(),
            rewritten: plan.straddle.len(),
            rows: plan.drop.iter().map(DataFile::record_count).sum(),
            bytes: plan
                .drop
                .iter()
                .chain(&plan.straddle)
                .map(DataFile::file_size_in_bytes)
                .sum(),
        };
        if dry_run || report.is_empty() {
            return Ok(report);
        }
        let (kept, added) = keep_younger(&table, &plan, column, cut_micros, codec).await?;
        let straddled_rows: u64 = plan.straddle.iter().map(DataFile::record_count).sum();
        report.rows += straddled_rows.saturating_sub(kept);
        let mut summary = std::collections::HashMap::new();
        summary.insert(
            "meshd.retention.cut".to_string(),
            chrono::DateTime::from_timestamp_micros(cut_micros)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        );
        let rewrite = Rewrite {
            remove: plan
                .drop
                .iter()
                .chain(&plan.straddle)
                .map(|f| f.file_path().to_string())
                .collect::<BTreeSet<_>>(),
            add: added,
            summary,
        };
        match rewrite::commit_rewrite(catalog, committer, ident, &rewrite, &mut cache).await? {
            Outcome::Committed(_) => return Ok(report),
            Outcome::Stale if attempt < ATTEMPTS => {
                tracing::info!(table = %ident, attempt, "Another run removed files this retention meant to; planning again.");
            }
            Outcome::Stale => {
                return Err(failed(
                    "removing expired rows",
                    iceberg::Error::new(
                        ErrorKind::CatalogCommitConflicts,
                        "the files kept changing under it; the next run tries again",
                    ),
                ));
            }
        }
    }
}

/// The current snapshot's data files wholly before the cut, and those straddling it.
struct Plan {
    drop: Vec<DataFile>,
    straddle: Vec<DataFile>,
}

async fn plan(
    table: &Table,
    column: &str,
    cut_micros: i64,
    cache: &mut rewrite::ManifestCache,
) -> iceberg::Result<Plan> {
    let mut plan = Plan {
        drop: Vec::new(),
        straddle: Vec::new(),
    };
    let metadata = table.metadata();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(plan);
    };
    let field = metadata
        .current_schema()
        .field_by_name(column)
        .ok_or_else(|| {
            iceberg::Error::new(
                ErrorKind::DataInvalid,
                format!("the table has no column `{column}` to apply retention by"),
            )
        })?;
    let unit = TimeUnit::of(&field.field_type).ok_or_else(|| {
        iceberg::Error::new(
            ErrorKind::DataInvalid,
            format!(
                "column `{column}` is {}, not a date or timestamp",
                field.field_type
            ),
        )
    })?;
    let cut = unit.count_micros(cut_micros);
    let list = table.manifest_list_reader(snapshot).load().await?;
    for manifest in list.entries() {
        let spec = metadata.partition_spec_by_id(manifest.partition_spec_id);
        let loaded = rewrite::cached_manifest(table, manifest, cache).await?;
        for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
            let file = entry.data_file();
            let partition_end = spec.and_then(|s| partition_end_micros(s, file, field.id));
            let upper = file.upper_bounds().get(&field.id).and_then(as_i64);
            let lower = file.lower_bounds().get(&field.id).and_then(as_i64);
            let nulls = file
                .null_value_counts()
                .get(&field.id)
                .copied()
                .unwrap_or(0);
            if partition_end.is_some_and(|end| end <= cut_micros)
                || (nulls == 0 && upper.is_some_and(|u| u < cut))
            {
                plan.drop.push(file.clone());
            } else if lower.is_some_and(|l| l < cut) {
                plan.straddle.push(file.clone());
            }
        }
    }
    Ok(plan)
}

/// Reads the straddling files keeping rows at or after the cut (and rows without a time), and
/// writes them as new files; returns how many rows were kept, and the files.
async fn keep_younger(
    table: &Table,
    plan: &Plan,
    column: &str,
    cut_micros: i64,
    codec: Codec,
) -> Result<(u64, Vec<DataFile>), SinkError> {
    if plan.straddle.is_empty() {
        return Ok((0, Vec::new()));
    }
    let paths: BTreeSet<&str> = plan.straddle.iter().map(DataFile::file_path).collect();
    let field_type = table
        .metadata()
        .current_schema()
        .field_by_name(column)
        .map(|f| (*f.field_type).clone());
    let cut = match field_type.as_ref().and_then(TimeUnit::of) {
        Some(unit) => unit.datum(unit.count_micros(cut_micros)),
        None => Datum::timestamp_micros(cut_micros),
    };
    let keep = Reference::new(column)
        .greater_than_or_equal_to(cut)
        .or(Reference::new(column).is_null());
    rewrite::copy_files(table, &paths, Some(keep), (128 << 20, codec), "retention").await
}

/// A time column's unit: what its values and bounds count.
#[derive(Clone, Copy)]
enum TimeUnit {
    Days,
    Micros { tz: bool },
    Nanos { tz: bool },
}

impl TimeUnit {
    fn of(ty: &Type) -> Option<Self> {
        match ty {
            Type::Primitive(PrimitiveType::Date) => Some(Self::Days),
            Type::Primitive(PrimitiveType::Timestamp) => Some(Self::Micros { tz: false }),
            Type::Primitive(PrimitiveType::Timestamptz) => Some(Self::Micros { tz: true }),
            Type::Primitive(PrimitiveType::TimestampNs) => Some(Self::Nanos { tz: false }),
            Type::Primitive(PrimitiveType::TimestamptzNs) => Some(Self::Nanos { tz: true }),
            _ => None,
        }
    }

    /// The cut in this unit; for days, the first day wholly after the cut is not needed: a
    /// date before the cut's day is expired, the cut's own day is kept.
    fn count_micros(self, micros: i64) -> i64 {
        match self {
            Self::Days => micros.div_euclid(86_400_000_000),
            Self::Micros { .. } => micros,
            Self::Nanos { .. } => micros.saturating_mul(1000),
        }
    }

    fn datum(self, value: i64) -> Datum {
        match self {
            Self::Days => Datum::date(value as i32),
            Self::Micros { tz: false } => Datum::timestamp_micros(value),
            Self::Micros { tz: true } => Datum::timestamptz_micros(value),
            Self::Nanos { tz: false } => Datum::timestamp_nanos(value),
            Self::Nanos { tz: true } => Datum::timestamptz_nanos(value),
        }
    }
}

fn as_i64(datum: &Datum) -> Option<i64> {
    match datum.literal() {
        PrimitiveLiteral::Long(v) => Some(*v),
        PrimitiveLiteral::Int(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// Where the file's time partition ends (exclusive, microseconds), if the spec partitions by
/// a time transform of `field_id`.
fn partition_end_micros(spec: &PartitionSpec, file: &DataFile, field_id: i32) -> Option<i64> {
    let (index, field) = spec
        .fields()
        .iter()
        .enumerate()
        .find(|(_, f)| f.source_id == field_id)?;
    let value = match file.partition().fields().get(index)?.as_ref()? {
        iceberg::spec::Literal::Primitive(PrimitiveLiteral::Int(v)) => i64::from(*v),
        _ => return None,
    };
    const HOUR: i64 = 3_600_000_000;
    // Checked: a corrupt partition value must not wrap around to "long ago" and drop the file.
    let next = value.checked_add(1)?;
    match field.transform {
        Transform::Hour => next.checked_mul(HOUR),
        Transform::Day => next.checked_mul(24 * HOUR),
        Transform::Month => months_to_micros(next),
        Transform::Year => months_to_micros(next.checked_mul(12)?),
        _ => None,
    }
}

/// The start of month `months` after January 1970, in microseconds.
fn months_to_micros(months: i64) -> Option<i64> {
    let year = 1970 + months.div_euclid(12);
    let month = months.rem_euclid(12) as u32 + 1;
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_and_year_partitions_end_where_the_next_begins() {
        assert_eq!(months_to_micros(0), Some(0));
        // 1971-01-01
        assert_eq!(months_to_micros(12), Some(365 * 86_400_000_000));
        // 1970-02-01
        assert_eq!(months_to_micros(1), Some(31 * 86_400_000_000));
        // Before the epoch: 1969-12-01.
        assert_eq!(months_to_micros(-1), Some(-31 * 86_400_000_000));
    }

    #[test]
    fn a_corrupt_partition_value_never_wraps_to_the_past() {
        assert_eq!(months_to_micros(i64::MAX / 2), None);
        assert_eq!(months_to_micros(i64::MIN / 2), None);
    }

    #[test]
    fn a_date_cut_keeps_the_cuts_own_day() {
        let day = 86_400_000_000;
        assert_eq!(TimeUnit::Days.count_micros(3 * day + 5), 3);
        assert_eq!(TimeUnit::Days.count_micros(-1), -1);
        assert_eq!(TimeUnit::Nanos { tz: false }.count_micros(2), 2000);
    }
}
