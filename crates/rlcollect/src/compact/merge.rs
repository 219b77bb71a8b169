//! Step 1 of a compaction: the merged files, written into a new generation
//! folder that nothing names yet. This is the slow part (reading and writing
//! Parquet), so it runs outside any lock, on the compactor thread; a crash
//! here leaves only an unnamed folder, which recovery removes.

use super::{Group, PAGE_ROWS, ROW_GROUP_ROWS};
use crate::atomic_file::{publish, sync_dir};
use crate::column::widen;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::{FileEntry, StreamEntry};
use crate::part_file::{encode_error, writer_properties, PartCodec, META_FIRST_SEQ, META_LAST_SEQ, META_RUN_ID};
use crate::run_dir::RunDir;
use crate::schema::ColumnType;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A new generation with merged files, ready to be committed.
#[derive(Debug)]
pub(crate) struct Merged {
    pub stream: String,
    /// The generation the parts were read from (`None`: the plain folder).
    pub base_dir: Option<String>,
    /// The new generation, relative to the run.
    pub dir: String,
    /// Each merged file, with the manifest paths of the parts it replaces.
    pub groups: Vec<(Vec<String>, FileEntry)>,
}

/// Writes each group of `entry`'s files as one merged file into a new
/// generation of `stream`. `cancel` stops it between files (the run ends).
pub(crate) fn merge_stream(
    run: &RunDir,
    fs: &dyn FileSystem,
    stream: &str,
    entry: &StreamEntry,
    groups: &[Group],
    cancel: &AtomicBool,
) -> Result<Merged, Error> {
    let dir = new_generation(run, fs, stream, entry)?;
    let mut merged = Merged {
        stream: stream.to_owned(),
        base_dir: entry.dir.clone(),
        dir: dir.clone(),
        groups: Vec::with_capacity(groups.len()),
    };
    let result = groups.iter().try_for_each(|group| {
        let files: Vec<&FileEntry> = group.iter().map(|&i| &entry.files[i]).collect();
        let file = merge_group(run, fs, stream, entry.dir.as_deref(), &dir, &files, cancel)?;
        merged
            .groups
            .push((files.iter().map(|f| f.path.clone()).collect(), file));
        Ok(())
    });
    if let Err(e) = result {
        // Nothing names the folder: it can go at once.
        let _ = fs.remove_dir_all(&run.path().join(&dir));
        return Err(e);
    }
    Ok(merged)
}

/// Creates the next generation folder of `stream` (after every one on disk,
/// so it never meets a leftover), durable before anything is written in it.
fn new_generation(run: &RunDir, fs: &dyn FileSystem, stream: &str, entry: &StreamEntry) -> Result<String, Error> {
    let gens = run.generations_dir(stream);
    let on_disk = std::fs::read_dir(&gens)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| RunDir::generation_number(&e.file_name().to_string_lossy()))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let current = entry.dir.as_deref().and_then(RunDir::generation_number).unwrap_or(0);
    let rel = RunDir::generation_rel(stream, on_disk.max(current) + 1);
    let path = run.path().join(&rel);
    fs.create_dir_all(&path)
        .map_err(Error::io(format!("create {}", path.display())))?;
    sync_dir(fs, &gens)?;
    sync_dir(fs, gens.parent().unwrap_or(run.path()))?;
    sync_dir(fs, run.path())?;
    Ok(rel)
}

/// Where a file of the stream is now: in its generation, or the plain folder.
pub(crate) fn source_path(run: &RunDir, base_dir: Option<&str>, entry: &FileEntry) -> PathBuf {
    let name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
    match base_dir {
        Some(dir) => run.path().join(dir).join(name),
        None => run.path().join(&entry.path),
    }
}

/// Merges `files` (consecutive, in `_seq` order) into one file in `dir`.
fn merge_group(
    run: &RunDir,
    fs: &dyn FileSystem,
    stream: &str,
    base_dir: Option<&str>,
    dir: &str,
    files: &[&FileEntry],
    cancel: &AtomicBool,
) -> Result<FileEntry, Error> {
    let (first, last) = (files[0], files[files.len() - 1]);
    let numbers = |f: &FileEntry| RunDir::part_range(&f.path).unwrap_or((0, 0));
    let rel = RunDir::merged_part(stream, numbers(first).0, numbers(last).1);
    let name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
    let path = run.path().join(dir).join(&name);
    let sources = files
        .iter()
        .map(|f| Source::open(source_path(run, base_dir, f)))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = widest_schema(&sources);
    // The parts' own encoding (part_file.rs) in zstd, with larger row groups.
    let props = writer_properties(&schema, PartCodec::Zstd)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(META_FIRST_SEQ.into(), first.first_seq.to_string()),
            KeyValue::new(META_LAST_SEQ.into(), last.last_seq.to_string()),
            KeyValue::new(META_RUN_ID.into(), run.id().to_owned()),
        ]))
        .build();
    let bytes = publish(fs, &path, |file| {
        let mut writer = ArrowWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema.clone(), Some(props))
            .map_err(|e| encode_error(&path, e))?;
        for source in &sources {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Io {
                    context: format!("merge into {}", path.display()),
                    source: std::io::Error::other("cancelled: the run is ending"),
                });
            }
            for batch in source.batches()? {
                let batch = cast_to(&batch.map_err(|e| encode_error(&source.path, e))?, &schema);
                writer.write(&batch).map_err(|e| encode_error(&path, e))?;
            }
        }
        let buffered = writer.into_inner().map_err(|e| encode_error(&path, e))?;
        buffered
            .into_inner()
            .map_err(|e| Error::io(format!("write {}", path.display()))(e.into_error()))
    })?;
    Ok(FileEntry {
        path: rel,
        format: "parquet".into(),
        rows: files.iter().map(|f| f.rows).sum(),
        first_seq: first.first_seq,
        last_seq: last.last_seq,
        bytes,
    })
}

/// One part to merge: its path and schema.
struct Source {
    path: PathBuf,
    schema: SchemaRef,
}

impl Source {
    /// Reads the part's schema off its footer. The rest of the footer is
    /// not kept: a merge takes up to hundreds of parts, and their footers
    /// held together cost megabytes.
    fn open(path: PathBuf) -> Result<Self, Error> {
        let file = std::fs::File::open(&path).map_err(Error::io(format!("open {}", path.display())))?;
        let meta =
            ArrowReaderMetadata::load(&file, ArrowReaderOptions::default()).map_err(|e| encode_error(&path, e))?;
        let schema = meta.schema().clone();
        Ok(Source { path, schema })
    }

    /// The part's batches, from the whole file read at once: read through a
    /// `File`, the parquet crate duplicates the descriptor, seeks and reads
    /// for every column chunk (20,000 `fcntl`+`lseek`+`read`+`close` in the
    /// merge of a 1 M-row bulk load). A part is small (one checkpoint's rows),
    /// and only one is held at a time.
    fn batches(&self) -> Result<ParquetRecordBatchReader, Error> {
        let bytes = std::fs::read(&self.path).map_err(Error::io(format!("read {}", self.path.display())))?;
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .and_then(|b| b.with_batch_size(ROW_GROUP_ROWS.min(64 * 1024)).build())
            .map_err(|e| encode_error(&self.path, e))
    }
}

/// The widest schema of the parts, by the stream's schema rules
/// (`ColumnType::merge`), columns in order of first appearance.
fn widest_schema(sources: &[Source]) -> SchemaRef {
    let mut columns: Vec<(String, ColumnType)> = Vec::new();
    for source in sources {
        for field in source.schema.fields() {
            let ty = column_type(field.data_type());
            match columns.iter_mut().find(|(n, _)| n == field.name()) {
                Some((_, have)) => *have = have.merge(ty),
                None => columns.push((field.name().clone(), ty)),
            }
        }
    }
    let fields: Vec<Field> = columns
        .into_iter()
        .map(|(name, ty)| Field::new(name, ty.arrow(), true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// A batch as `schema`: each column widened to its type, missing ones null.
fn cast_to(batch: &RecordBatch, schema: &SchemaRef) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let to = column_type(field.data_type());
            match batch.column_by_name(field.name()) {
                Some(col) => widen(col, column_type(col.data_type()), to),
                None => arrow_array::new_null_array(field.data_type(), batch.num_rows()),
            }
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("columns widened to the merged schema")
}

/// The stored column type of an Arrow type as parts are written.
fn column_type(ty: &DataType) -> ColumnType {
    match ty {
        DataType::Boolean => ColumnType::Bool,
        DataType::Int64 => ColumnType::Int64,
        DataType::UInt64 => ColumnType::UInt64,
        DataType::Float64 => ColumnType::Float64,
        DataType::Timestamp(..) => ColumnType::Timestamp,
        DataType::Null => ColumnType::Null,
        _ => ColumnType::String,
    }
}
