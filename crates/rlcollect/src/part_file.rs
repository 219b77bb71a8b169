//! Encoding a sealed batch of rows as one part file: zstd Parquet whose footer
//! records the batch's `_seq` range and run id, or CSV with a header.

use crate::atomic_file::{write_temp, Written};
use crate::buffer::SealedBatch;
use crate::error::Error;
use crate::fs::FileSystem;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
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

/// How a part's pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartCodec {
    /// zstd level 1: parts that stay as they are (compaction off).
    Zstd,
    /// LZ4 (raw): parts that compaction rewrites as zstd. The parquet crate
    /// makes a zstd compressor and decompressor for every column chunk it
    /// writes or reads; with a part per stream per checkpoint that was an
    /// eighth of a bulk load's CPU (perf: `ZSTD_createCCtx`,
    /// `ZSTD_createDCtx`, and the page faults of their buffers), spent on
    /// files that live until the next merge. LZ4 needs no such context, and
    /// every reader reads it.
    Lz4,
}

/// Writes one sealed batch under a temp name (commit it to publish it) as a
/// Parquet file whose footer records the batch's `_seq` range and run id.
pub(crate) fn write_parquet(
    fs: &dyn FileSystem,
    path: &Path,
    part: &SealedBatch,
    run_id: &str,
    codec: PartCodec,
) -> Result<Written, Error> {
    let props = writer_properties(&part.schema, codec)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(META_FIRST_SEQ.into(), part.first_seq.to_string()),
            KeyValue::new(META_LAST_SEQ.into(), part.last_seq.to_string()),
            KeyValue::new(META_RUN_ID.into(), run_id.to_owned()),
        ]))
        .build();
    write_temp(fs, path, |file| {
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

/// `codec`, and dictionary encoding only for text columns. Numbers and
/// timestamps (rewards, Q-values, prices, `_seq`) are mostly distinct: a
/// dictionary for them is built, found too large and thrown away page after
/// page, which cost the part writer about a sixth of its time; zstd already
/// folds the few repeated numeric columns (`position`, `epsilon`).
pub(crate) fn writer_properties(schema: &Schema, codec: PartCodec) -> WriterPropertiesBuilder {
    let compression = match codec {
        PartCodec::Zstd => Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid")),
        PartCodec::Lz4 => Compression::LZ4_RAW,
    };
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_dictionary_enabled(false);
    for field in schema.fields() {
        if matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
            props = props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
        }
    }
    props
}

/// Writes one sealed batch under a temp name (commit it to publish it) as
/// CSV with a header (timestamps as RFC 3339).
pub(crate) fn write_csv(fs: &dyn FileSystem, path: &Path, part: &SealedBatch) -> Result<Written, Error> {
    write_temp(fs, path, |file| {
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
pub(crate) fn encode_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Encode {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, StringArray};
    use arrow_schema::Field;
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use std::sync::Arc;

    #[test]
    fn text_columns_get_a_dictionary_and_numbers_do_not() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("pair", DataType::Utf8, true),
            Field::new("reward", DataType::Float64, true),
        ]));
        let pairs: ArrayRef = Arc::new(StringArray::from_iter_values((0..1000).map(|i| ["A", "B"][i % 2])));
        let rewards: ArrayRef = Arc::new(Float64Array::from_iter_values((0..1000).map(|i| i as f64 * 0.1)));
        let batch = RecordBatch::try_new(schema.clone(), vec![pairs, rewards]).unwrap();
        let part = SealedBatch {
            batches: vec![batch],
            schema,
            rows: 1000,
            first_seq: 0,
            last_seq: 999,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part.parquet");
        let fs = crate::fs::RealFs;
        write_parquet(&fs, &path, &part, "r", PartCodec::Zstd)
            .and_then(|w| w.commit(&fs))
            .unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        let dictionary = |i: usize| group.column(i).dictionary_page_offset().is_some();
        assert!(
            dictionary(0),
            "pair: {:?}",
            group.column(0).encodings().collect::<Vec<_>>()
        );
        assert!(
            !dictionary(1),
            "reward: {:?}",
            group.column(1).encodings().collect::<Vec<_>>()
        );
        assert!(!group.column(1).encodings().any(|e| e == Encoding::RLE_DICTIONARY));
    }
}
