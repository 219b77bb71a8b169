//! Publishes finished rlcollect runs to object storage (S3 or any
//! S3-compatible store) or a shared folder as **Delta Lake tables**: one
//! table per stream at `DEST/STREAM/`, partitioned by `run_id`, so one table
//! holds every run from every host, and polars, the `deltalake` package,
//! DuckDB's `delta` extension and Spark read it (docs/SPEC.md §8).
//!
//! Two ways in, one operation (`sync.rs`): [`publish`] ships an ended run
//! after the fact, and [`LiveSync`] (`rlcollect run --out s3://...`) ships a
//! live run's parts after each checkpoint while the run stays durable on
//! local disk. Per stream, a sync:
//! 1. reads the table's log (from its last checkpoint on);
//! 2. evolves the table schema by our widening rules (`schema.rs`);
//! 3. converts and uploads each Parquet file the run's manifest lists and
//!    the log lacks, under `run_id=RUN/HOST-FILE` (multipart when large):
//!    files nobody names yet, invisible to readers;
//! 4. commits one version holding their `add`s, the `remove`s of this run's
//!    files that compaction merged away (an optimize: each row once), and a
//!    `metaData` when the schema grew, with put-if-absent on
//!    `_delta_log/N.json`; losing the race to another writer means reading
//!    the log again and retrying;
//! 5. every tenth version, writes a Delta checkpoint (`checkpoint.rs`).
//!
//! A sync killed anywhere leaves either no commit (the uploads are orphans,
//! overwritten by the next attempt) or the whole commit: run again, it does
//! only what is left, so every row lands once. Network faults are retried
//! with backoff (`store.rs`).

mod aws_profile;
mod checkpoint;
mod data_file;
mod live;
mod log;
mod schema;
mod store;
mod sync;

pub use live::{default_state_dir, LiveSync, RemoteBuilder, RemoteCollector};

use rlcollect::{Manifest, RunDir, RunStatus, StreamEntry};
use std::collections::BTreeMap;
use std::path::Path;
use sync::{LocalFile, StreamSync};

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A bad destination or option (exit code 2).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The run cannot be published as it is (live, crashed, CSV only, ...).
    #[error("{0}")]
    Run(String),
    /// Reading the run's files or writing temp files failed.
    #[error("{0}")]
    Local(String),
    /// The table's log is unreadable or disagrees with the run.
    #[error("{0}")]
    Table(String),
    /// The store failed after its retries.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

/// Options of [`publish`] and [`LiveSync`].
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// An S3-compatible endpoint (else `AWS_ENDPOINT_URL`, else AWS).
    pub endpoint: Option<String>,
    /// The host name recorded with each file (files of one run from two
    /// hosts never collide).
    pub host: String,
}

/// What became of one stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamPublished {
    /// Committed as table version `version`: `added` files holding `rows`
    /// rows, and `removed` files of this run taken out (merged away).
    Committed {
        added: usize,
        removed: usize,
        rows: u64,
        version: u64,
    },
    /// The table already matched the run: nothing done.
    UpToDate,
}

/// Publishes the finished run at `run_dir` to `dest` (`s3://BUCKET/PREFIX`,
/// `file:///path` or a folder). See the crate docs.
pub fn publish(
    run_dir: &Path,
    dest: &str,
    opts: &PublishOptions,
) -> Result<BTreeMap<String, StreamPublished>, PublishError> {
    let run = RunDir::at(run_dir).map_err(|e| PublishError::Run(e.to_string()))?;
    if run.is_live() {
        return Err(PublishError::Run(format!(
            "{} is live: publish it once it has ended",
            run_dir.display()
        )));
    }
    let manifest = run.load_manifest().map_err(|e| PublishError::Run(e.to_string()))?;
    if manifest.status == RunStatus::Running {
        return Err(PublishError::Run(format!(
            "{} did not end cleanly: run `rlcollect recover` first",
            run_dir.display()
        )));
    }
    let dest = store::open(dest, opts.endpoint.as_deref())?;
    let runtime = store::runtime()?;
    let mut report = BTreeMap::new();
    for (stream, entry) in &manifest.streams {
        if let Some(done) = runtime.block_on(sync_stream(&dest, &run, &manifest, stream, entry, &opts.host))? {
            report.insert(stream.clone(), done);
        }
    }
    Ok(report)
}

/// The Delta tables directly under `dest` (folders holding a
/// `_delta_log/`), sorted: one per stream.
pub fn tables(dest: &str, endpoint: Option<&str>) -> Result<Vec<String>, PublishError> {
    let dest = store::open(dest, endpoint)?;
    store::runtime()?.block_on(log::tables(&dest))
}

/// Makes `stream`'s table match its manifest `entry`; `None` when the
/// stream has no Parquet file to ship.
async fn sync_stream(
    dest: &store::Destination,
    run: &RunDir,
    manifest: &Manifest,
    stream: &str,
    entry: &StreamEntry,
    host: &str,
) -> Result<Option<StreamPublished>, PublishError> {
    let files = parquet_files(run, entry, &manifest.run_id, host);
    if files.is_empty() {
        if !entry.files.is_empty() {
            tracing::warn!(stream, "only CSV files: not published (Delta tables hold Parquet)");
        }
        return Ok(None);
    }
    let origin = format!("{host}/{}", manifest.run_id);
    let job = StreamSync {
        dest,
        stream,
        entry,
        files,
        run_id: &manifest.run_id,
        origin: &origin,
    };
    job.run().await.map(Some)
}

/// The stream's Parquet files, where they are on disk now and where they
/// go in the table (`run_id=RUN/HOST-FILE`).
fn parquet_files(run: &RunDir, entry: &StreamEntry, run_id: &str, host: &str) -> Vec<LocalFile> {
    entry
        .files
        .iter()
        .filter(|f| f.format == "parquet")
        .map(|f| {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path);
            LocalFile {
                path: match &entry.dir {
                    Some(dir) => run.path().join(dir).join(name),
                    None => run.path().join(&f.path),
                },
                table_path: format!("{}={run_id}/{host}-{name}", schema::PARTITION),
            }
        })
        .collect()
}
