//! Integration tests: real files, real readers, the real binary, real signals.
//! One test binary (faster to build and link); each test uses its own temp dir.

mod durability;
mod freqtrade;
mod library;
mod sidecar;
mod spec_cases;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rlcollect::Manifest;
use std::path::{Path, PathBuf};

/// The folder with the test data copied from `../shared`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Reads one Parquet file with the parquet crate.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{} is not a readable parquet file: {e}", path.display()))
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

pub fn manifest(run_dir: &Path) -> Manifest {
    Manifest::load(run_dir).unwrap()
}

/// Every `_seq` stored in the run's Parquet files (as listed in the
/// manifest), per stream or for all streams, sorted.
pub fn stored_seqs(run_dir: &Path, stream: Option<&str>) -> Vec<u64> {
    let m = manifest(run_dir);
    let mut out = Vec::new();
    for (name, s) in &m.streams {
        if stream.is_some_and(|want| want != name) {
            continue;
        }
        for f in s.files.iter().filter(|f| f.format == "parquet") {
            for b in read_parquet(&run_dir.join(&f.path)) {
                let col = b
                    .column_by_name("_seq")
                    .expect("_seq column")
                    .as_primitive::<UInt64Type>();
                out.extend(col.values().iter().copied());
            }
        }
    }
    out.sort_unstable();
    out
}

/// Asserts `seqs` is exactly 0..n.
pub fn assert_gap_free(seqs: &[u64], n: u64) {
    assert_eq!(seqs.len() as u64, n, "row count");
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(*s, i as u64, "_seq must be gap-free and unique");
    }
}

/// Parquet part files in `dir` (published ones only: no dot-temp names).
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return vec![] };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("part-") && n.ends_with(".parquet")
        })
        .collect();
    v.sort();
    v
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub fn wait_for(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}
