//! Writes Arrow batches into Parquet data files of one table, split by partition, until the
//! worker commits them. Composition follows iceberg-rust: Parquet writer → rolling file
//! writer → data file writer, one per partition value.

use std::collections::HashMap;

use arrow_array::RecordBatch;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{DataFile, DataFileFormat, Struct};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{CurrentFileStatus, IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::SinkError;
use meshd_config::Codec;

type Builder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type Writer =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Parquet settings for data files: the default codec (zstd level 1), and row groups small
/// enough that a worker's memory stays bounded whatever the commit interval.
pub fn parquet_properties() -> WriterProperties {
    parquet_properties_with(Codec::default())
}

/// [`parquet_properties`] with a port's `commit.compression`.
pub fn parquet_properties_with(codec: Codec) -> WriterProperties {
    parquet_properties_for(codec, &[])
}

/// [`parquet_properties_with`], with dictionary encoding off for the `unique` columns (dotted
/// paths through structs), whose values rarely repeat: SHA-256 and HMAC-SHA256 masked PII. On
/// realistic data (a distinct email per event) that encodes 9.5 % faster and 2.5 % smaller; a
/// dictionary only pays where values repeat (README, Performance).
pub fn parquet_properties_for(codec: Codec, unique: &[&str]) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(compression(codec))
        .set_max_row_group_row_count(Some(64 * 1024));
    for column in unique {
        let parts = column.split('.').map(str::to_string).collect();
        builder = builder
            .set_column_dictionary_enabled(parquet::schema::types::ColumnPath::new(parts), false);
    }
    builder.build()
}

/// The Parquet codec for a descriptor's.
fn compression(codec: Codec) -> Compression {
    match codec {
        Codec::Zstd(level) => {
            Compression::ZSTD(ZstdLevel::try_new(i32::from(level)).unwrap_or_default())
        }
        Codec::Lz4Raw => Compression::LZ4_RAW,
        Codec::Snappy => Compression::SNAPPY,
        Codec::Uncompressed => Compression::UNCOMPRESSED,
    }
}

/// Open data files for one pending commit.
pub struct DataFiles {
    table_name: String,
    builder: Builder,
    splitter: Option<RecordBatchPartitionSplitter>,
    writers: HashMap<Option<Struct>, Writer>,
    rows: u64,
}

impl DataFiles {
    /// Starts a set of data files. Every set gets its own name prefix (`file_prefix` plus a fresh
    /// UUID): the file counter restarts with each set, and reusing a name would overwrite a
    /// file an earlier snapshot already references.
    pub fn new(
        table: &Table,
        file_prefix: String,
        target_file_size: usize,
    ) -> Result<Self, SinkError> {
        Self::with_codec(table, file_prefix, target_file_size, Codec::default())
    }

    /// [`DataFiles::new`] writing with `codec` (the port's `commit.compression`).
    pub fn with_codec(
        table: &Table,
        file_prefix: String,
        target_file_size: usize,
        codec: Codec,
    ) -> Result<Self, SinkError> {
        Self::with_properties(
            table,
            file_prefix,
            target_file_size,
            parquet_properties_with(codec),
        )
    }

    /// [`DataFiles::new`] writing with `properties` (see [`parquet_properties_for`]).
    pub fn with_properties(
        table: &Table,
        file_prefix: String,
        target_file_size: usize,
        properties: WriterProperties,
    ) -> Result<Self, SinkError> {
        let table_name = table.identifier().to_string();
        let err = |action, source| SinkError::Table {
            table: table_name.clone(),
            action,
            source,
        };
        let metadata = table.metadata();
        let location =
            DefaultLocationGenerator::new(metadata).map_err(|e| err("locating data files", e))?;
        let names = DefaultFileNameGenerator::new(
            format!("{file_prefix}-{}", uuid::Uuid::now_v7()),
            None,
            DataFileFormat::Parquet,
        );
        let parquet = ParquetWriterBuilder::new(properties, metadata.current_schema().clone());
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            target_file_size,
            table.file_io().clone(),
            location,
            names,
        );
        let spec = metadata.default_partition_spec();
        let splitter = if spec.is_unpartitioned() {
            None
        } else {
            Some(
                RecordBatchPartitionSplitter::try_new_with_computed_values(
                    metadata.current_schema().clone(),
                    spec.clone(),
                )
                .map_err(|e| err("preparing the partition splitter", e))?,
            )
        };
        Ok(Self {
            table_name,
            builder: DataFileWriterBuilder::new(rolling),
            splitter,
            writers: HashMap::new(),
            rows: 0,
        })
    }

    /// Appends a batch (already in the table's Arrow schema).
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        self.rows += batch.num_rows() as u64;
        let parts = match &self.splitter {
            None => vec![(None, batch)],
            Some(splitter) => splitter
                .split(&batch)
                .map_err(|e| self.err("splitting by partition", e))?
                .into_iter()
                .map(|(key, b)| (Some(key), b))
                .collect(),
        };
        for (key, part) in parts {
            let slot = key.as_ref().map(|k| k.data().clone());
            if !self.writers.contains_key(&slot) {
                let writer = self
                    .builder
                    .build(key.clone())
                    .await
                    .map_err(|e| self.err("opening a data file", e))?;
                self.writers.insert(slot.clone(), writer);
            }
            if let Some(writer) = self.writers.get_mut(&slot) {
                let table = self.table_name.clone();
                writer
                    .write(part)
                    .await
                    .map_err(|source| SinkError::Table {
                        table,
                        action: "writing a data file",
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes in the largest file currently open: the commit trigger for `targetFileSize`.
    pub fn largest_open_file_bytes(&self) -> usize {
        self.writers
            .values()
            .map(|w| w.current_written_size())
            .max()
            .unwrap_or(0)
    }

    /// Closes every file and returns them for the commit.
    pub async fn close(self) -> Result<Vec<DataFile>, SinkError> {
        let mut files = Vec::new();
        for (_, mut writer) in self.writers {
            files.extend(writer.close().await.map_err(|source| SinkError::Table {
                table: self.table_name.clone(),
                action: "closing a data file",
                source,
            })?);
        }
        Ok(files)
    }

    fn err(&self, action: &'static str, source: iceberg::Error) -> SinkError {
        SinkError::Table {
            table: self.table_name.clone(),
            action,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use parquet::schema::types::ColumnPath;

    use super::*;

    #[test]
    fn hashed_columns_are_written_without_a_dictionary_nested_ones_too() {
        let props = parquet_properties_for(Codec::default(), &["email", "customer.email"]);
        let path = |p: &[&str]| ColumnPath::new(p.iter().map(|s| s.to_string()).collect());
        assert!(!props.dictionary_enabled(&path(&["email"])));
        assert!(!props.dictionary_enabled(&path(&["customer", "email"])));
        assert!(props.dictionary_enabled(&path(&["region"])));
        assert!(props.dictionary_enabled(&path(&["customer", "name"])));
    }
}
