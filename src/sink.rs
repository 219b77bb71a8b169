//! Files that appear only when complete (SPEC §3): written to a dot-prefixed
//! temp name in the same folder, fsynced, renamed over the final name, and the
//! folder fsynced so the rename itself survives a power cut.

use crate::buffer::{encode_error, SealedBatch};
use crate::error::Error;
use crate::fs::{FileSystem, WritableFile};
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

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

/// Fsyncs a directory so that renames and new entries in it are durable.
pub(crate) fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(), Error> {
    fs.sync_dir(dir)
        .map_err(Error::io(format!("fsync directory {}", dir.display())))
}

fn temp_path(final_path: &Path) -> PathBuf {
    let name = final_path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    final_path.with_file_name(format!(".{name}.tmp"))
}

type Out = Box<dyn WritableFile>;

/// Writes a file atomically: `write` fills the temp file, which is then fsynced
/// and renamed to `path`; the folder is fsynced. On any error the temp file is
/// removed and `path` is untouched. Returns the file's size.
pub(crate) fn publish(
    fs: &dyn FileSystem,
    path: &Path,
    write: impl FnOnce(Out) -> Result<Out, Error>,
) -> Result<u64, Error> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = fs
            .create(&tmp)
            .map_err(Error::io(format!("create {}", tmp.display())))?;
        let mut file = write(file)?;
        file.flush().map_err(Error::io(format!("write {}", tmp.display())))?;
        file.sync_all().map_err(Error::io(format!("fsync {}", tmp.display())))?;
        drop(file);
        fs.rename(&tmp, path)
            .map_err(Error::io(format!("rename {} to {}", tmp.display(), path.display())))?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            sync_dir(fs, path.parent().unwrap_or(Path::new(".")))?;
            Ok(fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        }
        Err(e) => {
            let _ = fs.remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces a small file (manifest, summary) atomically.
pub(crate) fn publish_bytes(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<u64, Error> {
    publish(fs, path, |mut f| {
        f.write_all(bytes)
            .map_err(Error::io(format!("write {}", path.display())))?;
        Ok(f)
    })
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
            part.batch.schema(),
            Some(props),
        )
        .map_err(|e| encode_error(path, e))?;
        writer.write(&part.batch).map_err(|e| encode_error(path, e))?;
        let buffered = writer.into_inner().map_err(|e| encode_error(path, e))?;
        buffered
            .into_inner()
            .map_err(|e| Error::io(format!("write {}", path.display()))(e.into_error()))
    })
}

/// Writes one sealed batch as CSV with a header (timestamps as RFC 3339).
pub(crate) fn publish_csv(fs: &dyn FileSystem, path: &Path, batch: &RecordBatch) -> Result<u64, Error> {
    let batch = &with_offset_timezone(batch).map_err(|e| encode_error(path, e))?;
    publish(fs, path, |file| {
        let mut writer = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.3f%:z".to_owned())
            .build(BufWriter::with_capacity(1 << 20, file));
        writer.write(batch).map_err(|e| encode_error(path, e))?;
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

/// Removes temp files a crash left behind in `dir` (names `.<name>.tmp`).
pub(crate) fn remove_temp_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Fault, FaultyFs, RealFs};

    #[test]
    fn every_injected_fault_leaves_no_file_and_no_temp_and_short_writes_are_completed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let fs = FaultyFs::new();
        for fault in [Fault::DiskFull, Fault::SyncFails, Fault::RenameFails] {
            fs.set(Some(fault));
            let err = publish_bytes(&fs, &path, &[b'x'; 100_000]).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{fault:?}: {err}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{fault:?}");
        }
        fs.set(Some(Fault::ShortWrites));
        publish_bytes(&fs, &path, b"complete despite short writes").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"complete despite short writes");
    }

    #[test]
    fn failed_write_leaves_no_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let err = publish(&RealFs, &path, |_| Err(Error::Config("boom".into()))).unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn publish_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        publish_bytes(&RealFs, &path, b"one").unwrap();
        publish_bytes(&RealFs, &path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
