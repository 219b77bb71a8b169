//! Publishes finished rlcollect runs to object storage (S3 or any
//! S3-compatible store) or a shared folder as **Delta Lake tables**: one
//! table per stream at `DEST/STREAM/`, partitioned by `run_id`, so one table
//! holds every run from every host, and polars, the `deltalake` package,
//! DuckDB's `delta` extension and Spark read it (docs/SPEC.md §8).
//!
//! Per stream, [`publish`]:
//! 1. reads the table's log; if it already holds this host's run, nothing
//!    is done (publishing is idempotent: run it again after any failure);
//! 2. evolves the table schema by our widening rules (`schema.rs`);
//! 3. converts and uploads each Parquet file of the run under
//!    `run_id=RUN/HOST-FILE` (multipart when large): files nobody names
//!    yet, invisible to readers;
//! 4. commits one version holding every `add` (and a `metaData` when the
//!    schema grew) with put-if-absent on `_delta_log/N.json`; losing the
//!    race to another publisher means reading the log again and retrying;
//! 5. every tenth version, writes a Delta checkpoint (`checkpoint.rs`).
//!
//! A publish killed anywhere leaves either no commit (the uploads are
//! orphans, overwritten by the next attempt) or the whole commit: every row
//! once. Network faults are retried with backoff (`store.rs`).

mod checkpoint;
mod data_file;
mod log;
mod schema;
mod store;

use object_store::path::Path as ObjectPath;
use rlcollect::{RunDir, RunStatus, StreamEntry};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How commits that lose a race are retried before giving up.
const COMMIT_ATTEMPTS: usize = 50;

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

/// Options of [`publish`].
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
    /// Committed as table version `version`.
    Added { files: usize, rows: u64, version: u64 },
    /// The table already held this host's run: nothing done.
    AlreadyThere,
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
    let origin = format!("{}/{}", opts.host, manifest.run_id);
    let mut report = BTreeMap::new();
    for (stream, entry) in &manifest.streams {
        let files = parquet_files(&run, entry);
        if files.is_empty() {
            if !entry.files.is_empty() {
                tracing::warn!(stream, "only CSV files: not published (Delta tables hold Parquet)");
            }
            continue;
        }
        let job = StreamJob {
            dest: &dest,
            stream,
            entry,
            files,
            run_id: &manifest.run_id,
            origin: &origin,
            host: &opts.host,
        };
        let done = store::block_on(job.publish())??;
        report.insert(stream.clone(), done);
    }
    Ok(report)
}

/// The stream's Parquet files, where they are on disk now.
fn parquet_files(run: &RunDir, entry: &StreamEntry) -> Vec<PathBuf> {
    entry
        .files
        .iter()
        .filter(|f| f.format == "parquet")
        .map(|f| match &entry.dir {
            Some(dir) => run.path().join(dir).join(f.path.rsplit('/').next().unwrap_or(&f.path)),
            None => run.path().join(&f.path),
        })
        .collect()
}

/// One stream of a run on its way into its table.
struct StreamJob<'a> {
    dest: &'a store::Destination,
    stream: &'a str,
    entry: &'a StreamEntry,
    files: Vec<PathBuf>,
    run_id: &'a str,
    origin: &'a str,
    host: &'a str,
}

impl StreamJob<'_> {
    async fn publish(&self) -> Result<StreamPublished, PublishError> {
        let mut snapshot = log::load(self.dest, self.stream).await?;
        if snapshot.origins.contains(self.origin) {
            return Ok(StreamPublished::AlreadyThere);
        }
        let schema = schema::evolve(snapshot.schema()?.as_ref(), &self.entry.schema)?;
        let (adds, rows) = self.upload(&schema).await?;
        for _ in 0..COMMIT_ATTEMPTS {
            let version = snapshot.version.map_or(0, |v| v + 1);
            let actions = self.actions(&snapshot, &adds)?;
            if log::try_commit(self.dest, self.stream, version, &actions).await? {
                tracing::info!(stream = self.stream, version, rows, "published");
                if version > 0 && version % checkpoint::EVERY == 0 {
                    self.checkpoint(version).await;
                }
                return Ok(StreamPublished::Added {
                    files: adds.len(),
                    rows,
                    version,
                });
            }
            // Another publisher took that version: read what it did, retry.
            snapshot = log::load(self.dest, self.stream).await?;
            if snapshot.origins.contains(self.origin) {
                return Ok(StreamPublished::AlreadyThere);
            }
        }
        Err(PublishError::Table(format!(
            "{}: gave up after {COMMIT_ATTEMPTS} lost commit races",
            self.stream
        )))
    }

    /// Writes the checkpoint of `version` (just committed). A failure is
    /// logged: the JSON commits are all still there.
    async fn checkpoint(&self, version: u64) {
        let result = async {
            let snapshot = log::load(self.dest, self.stream).await?;
            if snapshot.version != Some(version) {
                return Ok(()); // others committed meanwhile; one of them checkpoints later
            }
            checkpoint::write(self.dest, self.stream, version, &snapshot.state()).await
        };
        if let Err(e) = result.await {
            tracing::warn!(stream = self.stream, version, "no checkpoint written: {e}");
        }
    }

    /// Converts and uploads every file; returns their `add` actions and the rows.
    async fn upload(&self, schema: &schema::DeltaSchema) -> Result<(Vec<Value>, u64), PublishError> {
        let table = self.dest.prefix.clone().join(self.stream);
        let temp = tempfile::Builder::new()
            .prefix("rlcollect-publish-")
            .suffix(".parquet")
            .tempfile()
            .map_err(|e| PublishError::Local(format!("cannot make a temp file: {e}")))?;
        let mut adds = Vec::with_capacity(self.files.len());
        let mut total = 0;
        let partition = format!("{}={}", schema::PARTITION, self.run_id);
        for source in &self.files {
            let name = source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rel = format!("{partition}/{}-{name}", self.host);
            let rows = data_file::convert(source, schema, temp.path())?;
            let to = rel.split('/').fold(table.clone(), ObjectPath::join);
            let size = data_file::upload(self.dest, temp.path(), &to).await?;
            total += rows;
            adds.push(json!({"add": {
                "path": rel,
                "partitionValues": {schema::PARTITION: self.run_id},
                "size": size,
                "modificationTime": chrono::Utc::now().timestamp_millis(),
                "dataChange": true,
                "stats": json!({"numRecords": rows}).to_string(),
                "tags": {log::ORIGIN_TAG: self.origin},
            }}));
        }
        Ok((adds, total))
    }

    /// The actions of the commit: the table's creation or a schema change
    /// when needed, the adds, and `commitInfo`.
    fn actions(&self, snapshot: &log::Snapshot, adds: &[Value]) -> Result<Vec<Value>, PublishError> {
        let now = chrono::Utc::now().timestamp_millis();
        // The schema again: a commit that won the race may have grown it.
        let schema = schema::evolve(snapshot.schema()?.as_ref(), &self.entry.schema)?;
        let mut actions = match (&snapshot.metadata, snapshot.schema()?) {
            (None, _) => log::create_actions(&schema, now),
            (Some(meta), Some(old)) if old != schema => {
                vec![log::metadata_action(
                    meta["id"].as_str().unwrap_or_default(),
                    &schema,
                    now,
                )]
            }
            _ => vec![],
        };
        actions.extend_from_slice(adds);
        actions.push(json!({"commitInfo": {
            "timestamp": now,
            "operation": "WRITE",
            "operationParameters": {"mode": "Append", "partitionBy": format!("[\"{}\"]", schema::PARTITION)},
            "clientVersion": concat!("rlcollect-", env!("CARGO_PKG_VERSION")),
            "rlcollect.origin": self.origin,
        }}));
        Ok(actions)
    }
}
