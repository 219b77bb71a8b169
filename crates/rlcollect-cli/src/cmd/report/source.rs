//! Reading a run for the report. The manifest is the truth: parts are read
//! exactly as it lists them (never a glob: compaction rewrites parts, and a
//! live run's folder may hold a part being written). Each part's row groups
//! are streamed with a projection of the columns a panel asks for, cast to
//! the type it wants, so memory stays flat whatever the run's size. Parts may
//! differ in schema: a column a part lacks reads as null, and an int column
//! of an old part reads as float where a newer part widened it.

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_cast::cast::{cast_with_options, CastOptions};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use rlcollect::{FileEntry, Manifest, RunDir, RunStatus};
use std::path::Path;

/// The type a panel wants a column as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Float64 (ints widen; numeric text parses; anything else is null).
    F64,
    /// Int64 (timestamps as epoch milliseconds).
    I64,
    /// Text.
    Str,
    /// Boolean.
    Bool,
}

/// One run to report on: where it is, its manifest as read now, and whether
/// a collector is writing it.
#[derive(Debug)]
pub struct Run {
    pub dir: RunDir,
    pub manifest: Manifest,
    pub live: bool,
    /// The name the report shows (the run id, made unique among the runs).
    pub label: String,
}

impl Run {
    /// Opens the run at `path`. A path that is not a run directory (no
    /// manifest.json) is a usage error (exit 2).
    pub fn open(path: &Path) -> Result<Run> {
        let not_a_run =
            || rlcollect::Error::Config(format!("{} is not an rlcollect run (no manifest.json)", path.display()));
        let dir = RunDir::at(path).map_err(|_| not_a_run())?;
        if !dir.manifest_path().is_file() {
            return Err(not_a_run().into());
        }
        let manifest = dir
            .load_manifest()
            .with_context(|| format!("cannot read the run at {}", path.display()))?;
        let live = manifest.status == RunStatus::Running && dir.is_live();
        let label = manifest.run_id.clone();
        Ok(Run {
            dir,
            manifest,
            live,
            label,
        })
    }

    /// Rows the manifest lists for `stream` (0 when absent).
    pub fn rows(&self, stream: &str) -> u64 {
        self.manifest.streams.get(stream).map_or(0, |s| s.rows)
    }

    /// The Parquet parts of `stream`, oldest first (`_seq` order).
    pub fn parts(&self, stream: &str) -> Vec<FileEntry> {
        self.manifest
            .streams
            .get(stream)
            .map(|s| s.files.iter().filter(|f| f.format == "parquet").cloned().collect())
            .unwrap_or_default()
    }
}

/// A part that could not be read (whole or in part), for the health panel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unreadable {
    pub path: String,
    pub error: String,
    /// Rows read from it before the error.
    pub rows_read: u64,
}

/// A slice of rows with the requested columns, in request order, each cast
/// to the wanted type; `None` where the part has no such column.
pub struct Batch {
    pub rows: usize,
    cols: Vec<Option<ArrayRef>>,
}

impl Batch {
    pub fn f64(&self, i: usize) -> Option<&Float64Array> {
        Some(self.cols.get(i)?.as_ref()?.as_primitive::<Float64Type>())
    }
    pub fn i64(&self, i: usize) -> Option<&Int64Array> {
        Some(self.cols.get(i)?.as_ref()?.as_primitive::<Int64Type>())
    }
    pub fn str(&self, i: usize) -> Option<&StringArray> {
        Some(self.cols.get(i)?.as_ref()?.as_string::<i32>())
    }
    pub fn bool(&self, i: usize) -> Option<&BooleanArray> {
        Some(self.cols.get(i)?.as_ref()?.as_boolean())
    }
}

/// Rows per read: large enough to amortise per-batch work, small enough that
/// a few projected columns stay a few hundred KB.
const BATCH_ROWS: usize = 16 * 1024;

/// Where a scan delivers its rows.
pub trait Sink {
    /// The next rows, in `_seq` order.
    fn batch(&mut self, b: &Batch);
    /// A part was read to its end.
    fn part_done(&mut self, part: &FileEntry);
}

/// Streams every listed Parquet part of `stream` through `sink`, in `_seq`
/// order, and returns the parts that could not be read.
pub fn scan(run: &Run, stream: &str, columns: &[(String, Want)], sink: &mut dyn Sink) -> Vec<Unreadable> {
    let mut unreadable = Vec::new();
    for part in run.parts(stream) {
        // In the generation this manifest names: a compaction that swaps the
        // stream meanwhile leaves these files readable for its grace.
        let path = run.dir.path().join(run.manifest.file_rel_path(stream, &part));
        let mut rows_read = 0u64;
        let result = scan_part(&path, columns, |b| {
            rows_read += b.rows as u64;
            sink.batch(b);
        });
        match result {
            Ok(()) => sink.part_done(&part),
            Err(e) => {
                tracing::warn!(file = %part.path, "cannot read this part: {e:#}");
                unreadable.push(Unreadable {
                    path: part.path.clone(),
                    error: format!("{e:#}"),
                    rows_read,
                });
            }
        }
    }
    unreadable
}

fn scan_part(path: &Path, columns: &[(String, Want)], mut sink: impl FnMut(&Batch)) -> Result<()> {
    let file = std::fs::File::open(path).context("open")?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).context("not a readable Parquet file")?;
    // Our parts are flat: column i of the Arrow schema is root i of the Parquet one.
    let schema = builder.schema().clone();
    let index: Vec<Option<usize>> = columns.iter().map(|(name, _)| schema.index_of(name).ok()).collect();
    let mut roots: Vec<usize> = index.iter().flatten().copied().collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .context("read")?;
    for batch in reader {
        let batch = batch.context("decode a row group")?;
        let cols = columns
            .iter()
            .zip(&index)
            .map(|((_, want), at)| {
                // The projected batch keeps the file's column order.
                let pos = roots.binary_search(&(*at)?).ok()?;
                as_wanted(batch.column(pos), *want)
            })
            .collect();
        sink(&Batch {
            rows: batch.num_rows(),
            cols,
        });
    }
    Ok(())
}

/// `array` as the wanted type; `None` when it cannot be (e.g. text as a
/// boolean), which the panels treat like a missing column.
fn as_wanted(array: &ArrayRef, want: Want) -> Option<ArrayRef> {
    let target = match want {
        Want::F64 => DataType::Float64,
        Want::I64 => DataType::Int64,
        Want::Str => DataType::Utf8,
        Want::Bool => DataType::Boolean,
    };
    if array.data_type() == &target {
        return Some(array.clone());
    }
    let bad_type = match want {
        // A timestamp read as a float would be fine, but text as a timestamp
        // or a boolean is not a value the panels can use.
        Want::I64 | Want::Bool => matches!(array.data_type(), DataType::Utf8 | DataType::LargeUtf8),
        _ => false,
    };
    if bad_type {
        return None;
    }
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    cast_with_options(array, &target, &safe)
        .ok()
        .filter(|a| a.len() == array.len())
}
