//! Encoding a sealed batch of rows as one part file: zstd Parquet whose footer
//! records the batch's `_seq` range and run id, or CSV with a header.

use crate::atomic_file::publish;
use crate::buffer::SealedBatch;
use crate::error::Error;
use crate::fs::FileSystem;
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::io::BufWriter;
use std::path::Path;

/// Footer metadata keys written into every Parquet part.
pub const META_FIRST_SEQ: &str = "rlcollect.first_seq";
/// See [`META_FIRST_SEQ`].
pub const META_LAST_SEQ: &str = "rlcollect.last_seq";
/// See [`META_FIRST_SEQ`].
pub const META_RUN_ID: &str = "rlcollect.run_id";

/// Output formats of part files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Parquet, zstd-compressed (the default).
    #[default]
    Parquet,
    /// CSV with a header line.
    Csv,
    /// Both, side by side.
    Both,
}

impl Format {
    pub(crate) fn parquet(self) -> bool {
        matches!(self, Format::Parquet | Format::Both)
    }
    pub(crate) fn csv(self) -> bool {
        matches!(self, Format::Csv | Format::Both)
    }
}

/// Writes one sealed batch as a zstd Parquet file whose footer records the
/// batch's `_seq` range and run id.
pub(crate) fn publish_parquet(
    fs: &dyn FileSystem,
    path: &Path,
    part: &SealedBatch,
    run_id: &str,
) -> Result<u64, Error> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid")))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(META_FIRST_SEQ.into(), part.first_seq.to_string()),
            KeyValue::new(META_LAST_SEQ.into(), part.last_seq.to_string()),
            KeyValue::new(META_RUN_ID.into(), run_id.to_owned()),
        ]))
        .build();
    publish(fs, path, |file| {
        let mut writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            part.schema.clone(),
            Some(props),
        )
        .map_err(|e| encode_error(path, e))?;
        for batch in &part.batches {
            writer.write(batch).map_err(|e| encode_error(path, e))?;
        }
        let buffered = writer.into_inner().map_err(|e| encode_error(path, e))?;
        buffered
            .into_inner()
            .map_err(|e| Error::io(format!("write {}", path.display()))(e.into_error()))
    })
}

/// Writes one sealed batch as CSV with a header (timestamps as RFC 3339).
pub(crate) fn publish_csv(fs: &dyn FileSystem, path: &Path, part: &SealedBatch) -> Result<u64, Error> {
    publish(fs, path, |file| {
        let mut writer = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.3f%:z".to_owned())
            .build(BufWriter::with_capacity(1 << 20, file));
        for batch in &part.batches {
            let batch = with_offset_timezone(batch).map_err(|e| encode_error(path, e))?;
            writer.write(&batch).map_err(|e| encode_error(path, e))?;
        }
        writer
            .into_inner()
            .into_inner()
            .map_err(|e| Error::io(format!("write {}", path.display()))(e.into_error()))
    })
}

/// The same batch with timestamp columns labelled `+00:00` instead of `UTC`
/// (the same instants): arrow-csv formats offsets without a time zone database.
fn with_offset_timezone(batch: &RecordBatch) -> Result<RecordBatch, arrow_schema::ArrowError> {
    use arrow_array::{Array, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match column.as_any().downcast_ref::<TimestampMillisecondArray>() {
            Some(ts) if field.data_type() == &utc => {
                let relabelled = ts.clone().with_timezone("+00:00");
                fields.push(Field::new(field.name(), relabelled.data_type().clone(), true));
                columns.push(std::sync::Arc::new(relabelled) as arrow_array::ArrayRef);
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

/// An `Error::Encode` from an Arrow/Parquet error.
fn encode_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Encode {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
