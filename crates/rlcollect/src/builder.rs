//! [`CollectorBuilder`]: the settings of a [`Collector`], checked once, and
//! `build()`: validate, open the run directory, spawn the worker.

use crate::active_run::{ActiveRun, RunSettings};
use crate::chunk::LinesPool;
use crate::collector::{Collector, Handle};
use crate::compact::{CompactOptions, Compactor};
use crate::error::Error;
use crate::fs::{FileSystem, RealFs};
use crate::part_file::{Format, PartCodec};
use crate::publisher::Publisher;
use crate::run_dir::{OpenOptions, RunDir};
use crate::schedule::CheckpointPolicy;
use crate::stats::Stats;
use crate::wal::{WalOptions, WalWriter};
use crate::worker::Worker;
use crossbeam_channel::bounded;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    compaction: Option<CompactOptions>,
}

impl CollectorBuilder {
    /// The defaults (see each setting).
    pub(crate) fn new(out_dir: PathBuf) -> Self {
        CollectorBuilder {
            out_dir,
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
            compaction: None,
        }
    }

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

    /// Background compaction (SPEC §3): a stream's small parts are merged
    /// into files of `opts`' target size while the run goes on, on a thread
    /// of lower priority, and fully at the final flush. `None` (the library's
    /// default; the sidecar turns it on) keeps one part per checkpoint.
    pub fn compaction(mut self, opts: Option<CompactOptions>) -> Self {
        self.compaction = opts;
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
    #[cfg(feature = "test-util")]
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

    /// Backpressure (default 65 536): the messages the worker's channel holds
    /// (readers' chunks), and about the records one thread's
    /// [`Handle::send`](crate::Handle::send) may have waiting for the worker
    /// (in chunks of up to 4096, at most 4 chunks) before `send` blocks.
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
        self.validate()?;
        let run = RunDir::new(&self.out_dir, self.run_id.clone().unwrap_or_else(default_run_id))?;
        let opened = run.open(&OpenOptions {
            fs: self.fs.clone(),
            format: self.format,
            min_free_bytes: self.min_free_bytes,
            lock_wait: self.lock_wait,
        })?;
        let wal = match self.wal {
            Some(opts) => Some(WalWriter::open(&opened.run, opened.manifest.records, opts)?),
            None => None,
        };
        let stats = Arc::new(Stats::default());
        let settings = RunSettings {
            policy: self.policy,
            keep_candles: self.keep_candles,
            default_source: self.source.into(),
            min_free_bytes: self.min_free_bytes,
            direct_backlog: self.channel_capacity,
        };
        // Parts that compaction will rewrite need no zstd (part_file.rs).
        let codec = if self.compaction.is_some() {
            PartCodec::Lz4
        } else {
            PartCodec::Zstd
        };
        let publisher = Publisher::new(
            opened.run.clone(),
            self.fs.clone(),
            self.format,
            codec,
            &opened.manifest,
        )?;
        let mut active = ActiveRun::new(
            settings,
            publisher,
            opened.manifest,
            opened.aggregates,
            wal,
            stats.clone(),
        );
        if let Some(opts) = self.compaction {
            active.set_compactor(Compactor::spawn(opened.run.clone(), self.fs, opts)?);
        }
        let (tx, rx) = bounded(self.channel_capacity);
        let chunk_settings = active.chunk_settings();
        let direct = active.direct_batches();
        let worker = Worker::new(active, rx, opened.lock);
        let thread = std::thread::Builder::new()
            .name("rlcollect-worker".into())
            .spawn(move || worker.run())
            .map_err(Error::io("spawn the worker thread"))?;
        Ok(Collector {
            handle: Handle {
                tx,
                stats,
                direct,
                chunk_settings,
                lines_pool: LinesPool::new(),
            },
            thread: Some(thread),
            run: opened.run,
            drop_timeout: self.drop_timeout,
        })
    }

    fn validate(&self) -> Result<(), Error> {
        let out = self.out_dir.to_string_lossy();
        if out.contains("://") && !out.starts_with("file://") {
            // The core has no network code: object stores are the
            // rlcollect-delta crate's (a local run plus a sync thread).
            return Err(Error::Config(format!(
                "{out} is not a local folder: for object storage use rlcollect_delta::RemoteCollector::builder({out:?}) \
                 (or `rlcollect run --out {out}`)"
            )));
        }
        if self.channel_capacity == 0 {
            return Err(Error::Config("channel capacity must be at least 1".into()));
        }
        if self.policy.max_buffered_rows == 0 {
            return Err(Error::Config("max buffered rows must be at least 1".into()));
        }
        if let Some(c) = &self.compaction {
            if c.target_rows == 0 || c.target_bytes == 0 || c.min_parts < 2 {
                return Err(Error::Config(
                    "compaction targets must be above zero and it must merge at least 2 parts".into(),
                ));
            }
        }
        if self.policy.every == Some(Duration::ZERO) {
            return Err(Error::Config("the checkpoint period must be longer than zero".into()));
        }
        Ok(())
    }
}

fn default_run_id() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}
