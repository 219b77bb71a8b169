//! The public face of the engine: [`Collector`], its builder, and the cheap
//! [`Handle`] that producer threads clone.

use crate::error::Error;
use crate::fs::{FileSystem, RealFs};
use crate::lock::RunLock;
use crate::manifest::{Manifest, RunStatus, MANIFEST_FILE};
use crate::policy::CheckpointPolicy;
use crate::record::Record;
use crate::recover::recover_locked;
use crate::sink::{remove_temp_files, sync_dir, Format};
use crate::stats::{Stats, StatsSnapshot};
use crate::summary::{Aggregates, RunSummary, SUMMARY_FILE};
use crate::wal::{WalOptions, WalWriter};
use crate::worker::{now_rfc3339, Batch, Msg, Worker, WorkerConfig};
use crossbeam_channel::{bounded, Sender, TrySendError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Name of the symlink in the output root that points at the newest run.
pub const LATEST_LINK: &str = "latest";

/// Configures and starts a [`Collector`].
#[derive(Debug, Clone)]
pub struct CollectorBuilder {
    out_dir: PathBuf,
    run_id: Option<String>,
    policy: CheckpointPolicy,
    format: Format,
    channel_capacity: usize,
    keep_candles: bool,
    drop_timeout: Duration,
    source: String,
    fs: Arc<dyn FileSystem>,
    wal: Option<WalOptions>,
    min_free_bytes: u64,
    lock_wait: Duration,
}

impl CollectorBuilder {
    /// Durability mode `wal`: log every row to `RUN/wal/` before it counts as
    /// received, fsyncing at least every `opts.fsync_every`, so that even a
    /// SIGKILL loses at most that window. Off by default in-process (the
    /// sidecar turns it on).
    pub fn wal(mut self, opts: WalOptions) -> Self {
        self.wal = Some(opts);
        self
    }

    /// When another collector holds the run's lock (e.g. it is finishing the
    /// run), wait up to this long for it before failing. Default 0: fail at once.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Refuse to start when the output filesystem has less than this many
    /// bytes free, and warn at checkpoints below twice that. Default 0 (off).
    pub fn min_free_bytes(mut self, bytes: u64) -> Self {
        self.min_free_bytes = bytes;
        self
    }

    /// The filesystem checkpoints write through (tests inject faults with
    /// [`crate::fs::FaultyFs`]). Default: the real one.
    pub fn filesystem(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// The run's id, i.e. its directory name under the output root. Default: the
    /// UTC start time, e.g. `20261122T101500Z`.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Checkpoint every `n` candle records (0 turns the trigger off). Default 1000.
    pub fn every_candles(mut self, n: u64) -> Self {
        self.policy.every_candles = n;
        self
    }

    /// Checkpoint when rows have waited this long, even with no candles. Default 60 s.
    pub fn every(mut self, period: Duration) -> Self {
        self.policy.every = Some(period);
        self
    }

    /// Checkpoint when this many rows are buffered (bounds memory). Default 250 000.
    pub fn max_buffered_rows(mut self, n: usize) -> Self {
        self.policy.max_buffered_rows = n;
        self
    }

    /// Part file format. Default Parquet.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Messages the channel holds before `send` blocks (backpressure). Default 65 536.
    pub fn channel_capacity(mut self, n: usize) -> Self {
        self.channel_capacity = n;
        self
    }

    /// Store candle records in the `candles` stream. Default off.
    pub fn keep_candles(mut self, keep: bool) -> Self {
        self.keep_candles = keep;
        self
    }

    /// How long `Drop` waits for the final flush before giving up (and saying
    /// so through `tracing`). Default 30 s.
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// The `_source` of records sent through [`Handle::send`] that name none.
    /// Default `library`.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Creates (or resumes) the run directory, takes its lock, and starts the worker.
    pub fn build(self) -> Result<Collector, Error> {
        if self.channel_capacity == 0 {
            return Err(Error::Config("channel capacity must be at least 1".into()));
        }
        if self.policy.max_buffered_rows == 0 {
            return Err(Error::Config("max buffered rows must be at least 1".into()));
        }
        if self.policy.every == Some(Duration::ZERO) {
            return Err(Error::Config("the checkpoint period must be longer than zero".into()));
        }
        let run_id = self.run_id.unwrap_or_else(default_run_id);
        if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
            return Err(Error::Config(format!(
                "invalid run id {run_id:?}: use a plain folder name"
            )));
        }
        let run_dir = self.out_dir.join(&run_id);
        std::fs::create_dir_all(&run_dir).map_err(Error::io(format!("create {}", run_dir.display())))?;
        if self.min_free_bytes > 0 {
            let free = self
                .fs
                .available_bytes(&run_dir)
                .map_err(Error::io(format!("check free space of {}", run_dir.display())))?;
            if free < self.min_free_bytes {
                return Err(Error::LowDiskSpace {
                    path: run_dir,
                    available_mb: free >> 20,
                    required_mb: self.min_free_bytes >> 20,
                });
            }
        }
        let lock = RunLock::acquire_waiting(&run_dir, &run_id, self.lock_wait)?;
        remove_temp_files(&run_dir);
        // A run left `running` with its lock free lost its collector: recover
        // it (replay the log) before continuing it.
        if Manifest::load(&run_dir).is_ok_and(|m| m.status == RunStatus::Running) {
            recover_locked(&run_dir, self.fs.clone(), self.format)?;
        }
        let (manifest, agg) = open_run(&run_dir, &run_id)?;
        manifest.store(self.fs.as_ref(), &run_dir)?;
        sync_dir(self.fs.as_ref(), &self.out_dir)?;
        point_latest(&self.out_dir, &run_id)?;
        let wal = match self.wal {
            Some(opts) => Some(WalWriter::open(&run_dir, manifest.records, opts)?),
            None => None,
        };

        let stats = Arc::new(Stats::default());
        let (tx, rx) = bounded(self.channel_capacity);
        let cfg = WorkerConfig {
            run_dir: run_dir.clone(),
            run_id: run_id.clone(),
            format: self.format,
            policy: self.policy,
            keep_candles: self.keep_candles,
            default_source: self.source.into(),
            fs: self.fs,
            wal: self.wal,
            min_free_bytes: self.min_free_bytes,
        };
        let worker = Worker::new(cfg, manifest, agg, stats.clone(), wal, Some(lock));
        let thread = std::thread::Builder::new()
            .name("rlcollect-worker".into())
            .spawn(move || worker.run(rx))
            .map_err(Error::io("spawn the worker thread"))?;
        Ok(Collector {
            handle: Handle { tx, stats },
            thread: Some(thread),
            run_dir,
            run_id,
            drop_timeout: self.drop_timeout,
        })
    }
}

/// Loads the manifest of an existing run to continue it, or starts a new one.
fn open_run(run_dir: &Path, run_id: &str) -> Result<(Manifest, Aggregates), Error> {
    if !run_dir.join(MANIFEST_FILE).exists() {
        let now = now_rfc3339();
        let manifest = Manifest {
            collector_version: env!("CARGO_PKG_VERSION").into(),
            run_id: run_id.into(),
            status: RunStatus::Running,
            started_at: now.clone(),
            updated_at: now,
            last_checkpoint_at: None,
            candles: 0,
            checkpoints: 0,
            records: 0,
            published_seq: 0,
            rejected: 0,
            last_error: None,
            sources: Default::default(),
            connected: Vec::new(),
            streams: Default::default(),
        };
        return Ok((manifest, Aggregates::default()));
    }
    let mut manifest = Manifest::load(run_dir)?;
    let clean_end = manifest.status != RunStatus::Running;
    if !clean_end {
        tracing::warn!(
            "run {run_id} was not closed cleanly; continuing after its last published record (_seq {})",
            manifest.published_seq
        );
    }
    // Records past the last checkpoint of a crashed run are not on disk;
    // numbering resumes at the first unpublished `_seq` so rows stay gap-free.
    manifest.records = manifest.published_seq;
    manifest.status = RunStatus::Running;
    let agg = if clean_end {
        std::fs::read(run_dir.join(SUMMARY_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<RunSummary>(&b).ok())
            .map(|s| Aggregates::resume(&s))
            .unwrap_or_default()
    } else {
        Aggregates::default()
    };
    Ok((manifest, agg))
}

/// Points `out/latest` at `run_id`, replacing the link atomically.
fn point_latest(out_dir: &Path, run_id: &str) -> Result<(), Error> {
    let link = out_dir.join(LATEST_LINK);
    let tmp = out_dir.join(format!(".{LATEST_LINK}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(run_id, &tmp)
        .and_then(|_| std::fs::rename(&tmp, &link))
        .map_err(Error::io(format!("point {} at {run_id}", link.display())))
}

fn default_run_id() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// A cheap, cloneable sender of records to a [`Collector`].
#[derive(Debug, Clone)]
pub struct Handle {
    tx: Sender<Msg>,
    stats: Arc<Stats>,
}

/// The collector has stopped; the record is given back.
#[derive(Debug, thiserror::Error)]
#[error("the collector has stopped")]
pub struct Closed<T>(pub T);

impl Handle {
    /// Sends a record; blocks while the channel is full (backpressure).
    // The error gives the record back unboxed: boxing would cost every send an allocation.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, record: Record) -> Result<(), Closed<Record>> {
        self.tx.send(Msg::Record(record)).map_err(|e| match e.into_inner() {
            Msg::Record(r) => Closed(r),
            _ => unreachable!("the message sent was a record"),
        })
    }

    /// Sends a record if the channel has room; gives it back otherwise.
    #[allow(clippy::result_large_err)] // see `send`
    pub fn try_send(&self, record: Record) -> Result<(), TrySendError<Record>> {
        self.tx.try_send(Msg::Record(record)).map_err(|e| match e {
            TrySendError::Full(Msg::Record(r)) => TrySendError::Full(r),
            TrySendError::Disconnected(Msg::Record(r)) => TrySendError::Disconnected(r),
            _ => unreachable!("the message sent was a record"),
        })
    }

    /// Sends decoded lines of one source (used by the NDJSON readers).
    pub fn send_batch(&self, batch: Batch) -> Result<(), Closed<()>> {
        self.tx.send(Msg::Batch(batch)).map_err(|_| Closed(()))
    }

    /// Asks for a checkpoint and waits until it is done.
    pub fn checkpoint(&self) -> Result<(), Error> {
        let (ack, done) = bounded(1);
        self.tx
            .send(Msg::Checkpoint(Some(ack)))
            .map_err(|_| Error::WorkerGone)?;
        match done.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Config(format!("checkpoint failed: {e}"))),
            Err(_) => Err(Error::WorkerGone),
        }
    }

    /// The collector's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Records which producers are connected now (listed in the manifest).
    pub fn set_connected(&self, sources: Vec<String>) {
        let _ = self.tx.send(Msg::Connected(sources));
    }
}

/// The collector: a worker thread that buffers records and checkpoints them
/// into a run directory. End it with [`close`](Self::close); dropping it does a
/// best-effort final flush.
#[must_use = "a Collector flushes on close or drop; keep it alive while producers send"]
#[derive(Debug)]
pub struct Collector {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    run_dir: PathBuf,
    run_id: String,
    drop_timeout: Duration,
}

impl Collector {
    /// Starts configuring a collector writing runs under `out_dir`.
    pub fn builder(out_dir: impl Into<PathBuf>) -> CollectorBuilder {
        CollectorBuilder {
            out_dir: out_dir.into(),
            run_id: None,
            policy: CheckpointPolicy {
                every_candles: 1000,
                every: Some(Duration::from_secs(60)),
                max_buffered_rows: 250_000,
            },
            format: Format::Parquet,
            channel_capacity: 65_536,
            keep_candles: false,
            drop_timeout: Duration::from_secs(30),
            source: "library".into(),
            fs: Arc::new(RealFs),
            wal: None,
            min_free_bytes: 0,
            lock_wait: Duration::ZERO,
        }
    }

    /// A sender for producer threads.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Sends one record through the collector's own handle.
    #[allow(clippy::result_large_err)] // see `Handle::send`
    pub fn send(&self, record: Record) -> Result<(), Closed<Record>> {
        self.handle.send(record)
    }

    /// Forces a checkpoint and waits for it.
    pub fn checkpoint(&self) -> Result<(), Error> {
        self.handle.checkpoint()
    }

    /// The collector's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.handle.stats()
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Drains every record sent so far, writes the final checkpoint,
    /// `summary.json` and the final manifest (status `complete`), and returns
    /// the summary once all of it is fsynced.
    pub fn close(self) -> Result<RunSummary, Error> {
        self.close_as(RunStatus::Complete)
    }

    /// Like [`close`](Self::close), recording `status` (e.g. `Interrupted`
    /// after a signal) in the manifest.
    pub fn close_as(mut self, status: RunStatus) -> Result<RunSummary, Error> {
        self.shutdown(status, None)
    }

    fn shutdown(&mut self, status: RunStatus, timeout: Option<Duration>) -> Result<RunSummary, Error> {
        let Some(thread) = self.thread.take() else {
            return Err(Error::WorkerGone);
        };
        let (ack, done) = bounded(1);
        if self.handle.tx.send(Msg::Shutdown { status, ack }).is_err() {
            let _ = thread.join();
            return Err(Error::WorkerGone);
        }
        let answer = match timeout {
            None => done.recv().map_err(|_| Error::WorkerGone),
            Some(t) => done.recv_timeout(t).map_err(|e| match e {
                crossbeam_channel::RecvTimeoutError::Timeout => Error::Timeout(t),
                crossbeam_channel::RecvTimeoutError::Disconnected => Error::WorkerGone,
            }),
        };
        match answer {
            Ok(result) => {
                let _ = thread.join();
                result.map_err(|message| Error::Corrupt {
                    path: self.run_dir.clone(),
                    message: format!("final flush failed: {message}"),
                })
            }
            // The worker is still flushing (or hung): leave it running rather than block forever.
            Err(e) => Err(e),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        let timeout = self.drop_timeout;
        if let Err(e) = self.shutdown(RunStatus::Complete, Some(timeout)) {
            tracing::error!(run_dir = %self.run_dir.display(), "collector dropped without close(); final flush failed: {e}");
        }
    }
}
