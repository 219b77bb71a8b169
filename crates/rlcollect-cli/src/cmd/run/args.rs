//! The arguments of `rlcollect run`, and their checked conversion into the
//! settings the run uses: every flag is validated here, once.

use rlcollect::ingest::ReaderOptions;
use rlcollect::{Collector, CollectorBuilder, CompactOptions, Error, Format, WalOptions};
use rlcollect_delta::PublishOptions;
use std::path::PathBuf;
use std::time::Duration;

/// Output format of part files.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    /// Parquet (zstd).
    Parquet,
    /// CSV with a header.
    Csv,
    /// Both side by side.
    Both,
}

/// How records are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// Log every record to a CRC-checked write-ahead log (fsync every --fsync-ms)
    /// before it counts as received: even SIGKILL loses at most that window.
    Wal,
    /// Records are safe once a checkpoint publishes them (faster; a SIGKILL
    /// loses what was buffered since the last checkpoint).
    Checkpoint,
}

/// Whether the run compacts its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Merge small parts in the background and fully at the end (SPEC §3).
    On,
    /// One part file per stream per checkpoint, never merged.
    Off,
}

/// Options of `rlcollect run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Output root; the run directory is OUT/RUN. Or s3://BUCKET/PREFIX:
    /// the run stays durable in --state-dir and its parts land in the Delta
    /// tables there after each checkpoint (SPEC §8).
    #[arg(long, default_value = "analysis_data")]
    out: String,
    /// With --out s3://...: the local output root (log, parts, manifest).
    /// Default: $RLCOLLECT_STATE_DIR, else $XDG_STATE_HOME/rlcollect, else
    /// ~/.local/state/rlcollect.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// With --out s3://...: an S3-compatible endpoint, e.g.
    /// http://localhost:8333 (default: $AWS_ENDPOINT_URL, else AWS).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// With --out s3://...: the host name recorded with the files (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// With --out s3://...: at the end, keep retrying the last upload this
    /// many seconds before giving up (the run stays in --state-dir for
    /// `rlcollect publish`).
    #[arg(long, default_value_t = 600.0)]
    upload_timeout_secs: f64,
    /// Run id (directory name). Default: the UTC start time, e.g. 20261122T101500Z.
    #[arg(long)]
    run: Option<String>,
    /// Also accept producers on this Unix socket (many at once).
    #[arg(long)]
    listen: Option<PathBuf>,
    /// With --listen: end the run when the last connection closes (and stdin is closed or unused).
    #[arg(long, requires = "listen")]
    exit_when_idle: bool,
    /// Checkpoint every N candle records (0 = off).
    #[arg(long, default_value_t = 1000)]
    every_candles: u64,
    /// Checkpoint buffered rows every T seconds, even with no candles.
    #[arg(long, default_value_t = 60.0)]
    every_secs: f64,
    /// Checkpoint when this many rows are buffered (bounds memory).
    #[arg(long, default_value_t = 25_000)]
    max_buffered_rows: usize,
    /// Part file format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: FormatArg,
    /// Reject lines longer than this many bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_line_bytes: usize,
    /// Store candle records in the `candles` stream.
    #[arg(long)]
    keep_candles: bool,
    /// Durability mode.
    #[arg(long, value_enum, default_value = "wal")]
    durability: DurabilityArg,
    /// With --durability wal: fsync the log at least this often (the most a crash can lose).
    #[arg(long, default_value_t = 200)]
    fsync_ms: u64,
    /// Refuse to start with less free space than this on the output filesystem; warn below twice it.
    #[arg(long, default_value_t = 512)]
    min_free_mb: u64,
    /// Wait up to this many seconds for the run's lock when another collector
    /// is finishing the same run (0: fail at once).
    #[arg(long, default_value_t = 0.0)]
    wait_lock: f64,
    /// Merge each stream's small part files in the background and fully at
    /// the end of the run (readers see every row once throughout).
    #[arg(long, value_enum, default_value = "on")]
    compact: OnOff,
    /// Compaction: a merged file holds at most about this many MiB.
    #[arg(long, default_value_t = 128)]
    compact_target_mb: u64,
    /// Compaction: a merged file holds at most this many rows.
    #[arg(long, default_value_t = 1 << 20)]
    compact_target_rows: u64,
    /// Compaction: merge when this many parts of one size tier exist.
    #[arg(long, default_value_t = 10)]
    compact_min_parts: usize,
    /// Compaction: seconds a replaced generation stays for readers that listed it.
    #[arg(long, default_value_t = 30.0)]
    compact_grace_secs: f64,
    /// Compaction: a part is merged in the background once it is this many
    /// seconds old (a burst is merged once, at its end).
    #[arg(long, default_value_t = 30.0)]
    compact_min_age_secs: f64,
    /// Print a progress line on stderr every 2 s (default: only when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

/// What `run` does, from checked arguments.
pub struct RunSettings {
    /// The collector to start.
    pub collector: CollectorBuilder,
    /// The socket to listen on, if any.
    pub listen: Option<PathBuf>,
    /// End the run when the last producer leaves.
    pub exit_when_idle: bool,
    /// How inputs are read.
    pub reader: ReaderOptions,
    /// Print progress lines.
    pub progress: bool,
    /// Where the run is shipped live, if `--out` is an object store.
    pub remote: Option<Remote>,
}

/// A live run's destination (`--out s3://...`).
pub struct Remote {
    /// `s3://BUCKET/PREFIX`.
    pub dest: String,
    /// Endpoint and host.
    pub opts: PublishOptions,
    /// How long the final upload is retried.
    pub within: Duration,
}

impl RunArgs {
    /// Checks every value and builds the settings; a bad value is a
    /// configuration error (exit code 2).
    pub fn into_settings(self) -> Result<RunSettings, Error> {
        if !(self.every_secs > 0.0 && self.every_secs.is_finite()) {
            return Err(Error::Config(format!(
                "--every-secs must be positive, got {}",
                self.every_secs
            )));
        }
        if self.max_line_bytes < 16 {
            return Err(Error::Config("--max-line-bytes must be at least 16".into()));
        }
        if !(self.wait_lock >= 0.0 && self.wait_lock.is_finite()) {
            return Err(Error::Config(format!(
                "--wait-lock must be 0 or more seconds, got {}",
                self.wait_lock
            )));
        }
        let compaction = self.compaction()?;
        let format = match self.format {
            FormatArg::Parquet => Format::Parquet,
            FormatArg::Csv => Format::Csv,
            FormatArg::Both => Format::Both,
        };
        let (local_out, remote) = self.destination()?;
        let mut collector = Collector::builder(local_out)
            .every_candles(self.every_candles)
            .every(Duration::from_secs_f64(self.every_secs))
            .max_buffered_rows(self.max_buffered_rows)
            .format(format)
            .keep_candles(self.keep_candles)
            .min_free_bytes(self.min_free_mb << 20)
            .lock_wait(Duration::from_secs_f64(self.wait_lock))
            // Messages are batches of up to 4096 records: a small queue bounds memory.
            .channel_capacity(4)
            .compaction(compaction)
            .source("stdin");
        if let Some(run) = &self.run {
            collector = collector.run_id(run);
        }
        if self.durability == DurabilityArg::Wal {
            collector = collector.wal(WalOptions {
                fsync_every: Duration::from_millis(self.fsync_ms),
                ..WalOptions::default()
            });
        }
        Ok(RunSettings {
            collector,
            listen: self.listen,
            exit_when_idle: self.exit_when_idle,
            reader: ReaderOptions {
                max_line_bytes: self.max_line_bytes,
                ..ReaderOptions::default()
            },
            progress: self.progress,
            remote,
        })
    }
}

impl RunArgs {
    /// The local output root, and the object store when `--out` is one.
    fn destination(&self) -> Result<(PathBuf, Option<Remote>), Error> {
        let remote_only = self.state_dir.is_some() || self.s3_endpoint.is_some() || self.host.is_some();
        if !self.out.starts_with("s3://") {
            if remote_only {
                return Err(Error::Config(
                    "--state-dir, --s3-endpoint and --host go with --out s3://BUCKET/PREFIX".into(),
                ));
            }
            return Ok((PathBuf::from(&self.out), None));
        }
        let within = self.upload_timeout_secs;
        if !(within >= 0.0 && within.is_finite()) {
            return Err(Error::Config(format!(
                "--upload-timeout-secs must be 0 or more, got {within}"
            )));
        }
        let remote = Remote {
            dest: self.out.clone(),
            opts: PublishOptions {
                endpoint: self.s3_endpoint.clone(),
                host: self.host.clone().unwrap_or_else(crate::cmd::hostname),
            },
            within: Duration::from_secs_f64(within),
        };
        let state = self
            .state_dir
            .clone()
            .unwrap_or_else(rlcollect_delta::default_state_dir);
        Ok((state, Some(remote)))
    }

    /// The compaction settings, checked.
    fn compaction(&self) -> Result<Option<CompactOptions>, Error> {
        if self.compact == OnOff::Off {
            return Ok(None);
        }
        let min_age = self.compact_min_age_secs;
        if !(min_age >= 0.0 && min_age.is_finite()) {
            return Err(Error::Config(format!(
                "--compact-min-age-secs must be 0 or more, got {min_age}"
            )));
        }
        let opts = compact_options(
            self.compact_target_mb,
            self.compact_target_rows,
            self.compact_min_parts,
            self.compact_grace_secs,
        )?;
        Ok(Some(CompactOptions {
            min_age: Duration::from_secs_f64(min_age),
            ..opts
        }))
    }
}

/// Checked compaction settings (shared with `rlcollect compact`).
pub fn compact_options(
    target_mb: u64,
    target_rows: u64,
    min_parts: usize,
    grace_secs: f64,
) -> Result<CompactOptions, Error> {
    if target_mb == 0 || target_rows == 0 {
        return Err(Error::Config(
            "--compact-target-mb and --compact-target-rows must be at least 1".into(),
        ));
    }
    if min_parts < 2 {
        return Err(Error::Config("--compact-min-parts must be at least 2".into()));
    }
    if !(grace_secs >= 0.0 && grace_secs.is_finite()) {
        return Err(Error::Config(format!(
            "--compact-grace-secs must be 0 or more, got {grace_secs}"
        )));
    }
    Ok(CompactOptions {
        target_bytes: target_mb.saturating_mul(1 << 20),
        target_rows,
        min_parts,
        grace: Duration::from_secs_f64(grace_secs),
        ..CompactOptions::default()
    })
}
