//! Crash recovery: turns a run whose collector died (status still `running`,
//! lock free) back into a consistent run with status `recovered`.
//!
//! Steps, each idempotent:
//! 1. point each compacted stream at the generation the manifest names and
//!    remove the others (a compaction cut short: `run_dir/generations.rs`);
//!    remove leftover dot-temp files and part files the manifest does not list
//!    (a crash between publishing a part and storing the manifest leaves
//!    them; their rows are replayed from the log, so nothing is counted twice);
//! 2. read the write-ahead log, truncating a torn tail and skipping corrupt
//!    frames (both counted and logged with byte offsets);
//! 3. replay every row whose `_seq` is at or past the manifest's
//!    `published_seq` into part files, under its original `_seq`;
//! 4. write `summary.json` and the manifest (status `recovered`), then remove
//!    the log.
//!
//! A run that is not `running` is left alone, so recovering twice changes nothing.

use crate::active_run::{ActiveRun, RunSettings};
use crate::chunk::ChunkBuilder;
use crate::error::Error;
use crate::fs::{FileSystem, RealFs};
use crate::manifest::{Manifest, RunStatus};
use crate::part_file::Format;
use crate::part_file::PartCodec;
use crate::publisher::Publisher;
use crate::record::Record;
use crate::run_dir::{RunDir, RunLock};
use crate::schedule::CheckpointPolicy;
use crate::stats::Stats;
use crate::summary::{Aggregates, RunSummary};
use crate::timestamp::Timestamp;
use crate::wal::{read_segment, truncate_torn_tail, BatchEntry, Logged, RowEntry};
use std::path::Path;
use std::sync::Arc;

/// What a recovery did.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryReport {
    /// The run's status before recovery.
    pub status_before: RunStatus,
    /// False when the run needed no recovery (it was not `running`).
    pub recovered: bool,
    /// Rows replayed from the log into part files.
    pub replayed: u64,
    /// Log frames or records skipped as corrupt.
    pub corrupt_records: u64,
    /// Bytes cut from torn log tails.
    pub truncated_bytes: u64,
    /// Log segments read.
    pub segments: usize,
    /// Temp files and unlisted part files removed.
    pub files_removed: usize,
    /// The run's summary after recovery.
    pub summary: Option<RunSummary>,
}

/// Recovers the run at `run_dir` (see the module docs). Fails if a live
/// collector holds it.
pub fn recover(run_dir: &Path) -> Result<RecoveryReport, Error> {
    let run = RunDir::at(run_dir)?;
    let manifest = run.load_manifest()?;
    let _lock = RunLock::acquire(&run)?;
    recover_locked(&run, Arc::new(RealFs), infer_format(&manifest))
}

/// The formats a run's parts were written in.
fn infer_format(m: &Manifest) -> Format {
    let files = || m.streams.values().flat_map(|s| &s.files);
    match (
        files().any(|f| f.format == "parquet"),
        files().any(|f| f.format == "csv"),
    ) {
        (true, true) => Format::Both,
        (false, true) => Format::Csv,
        _ => Format::Parquet,
    }
}

/// [`recover`] for a caller that already holds the run's lock.
pub(crate) fn recover_locked(run: &RunDir, fs: Arc<dyn FileSystem>, format: Format) -> Result<RecoveryReport, Error> {
    let wrap = |source| Error::Recovery {
        run_dir: run.path().to_owned(),
        source: Box::new(source),
    };
    let manifest = run.load_manifest().map_err(wrap)?;
    let mut report = RecoveryReport {
        status_before: manifest.status,
        recovered: false,
        replayed: 0,
        corrupt_records: 0,
        truncated_bytes: 0,
        segments: 0,
        files_removed: 0,
        summary: None,
    };
    // Generations first, for every run: a compaction cut short leaves the
    // manifest naming one generation and the stream's link maybe another.
    report.files_removed = run.reconcile_generations(fs.as_ref(), &manifest).map_err(wrap)?;
    if manifest.status != RunStatus::Running {
        return Ok(report);
    }
    tracing::warn!(run_dir = %run.path().display(), "recovering a run whose collector died");
    // The unlisted parts are judged in the generation the manifest names.
    report.files_removed += run.remove_temp_files() + run.remove_unlisted_parts(&manifest);
    let mut replay = Replay::new(run, fs, format, manifest).map_err(wrap)?;
    for (_, segment) in run.wal_segments() {
        replay.segment(&segment, &mut report).map_err(wrap)?;
    }
    let summary = replay.run.finish(RunStatus::Recovered).map_err(wrap)?;
    // Everything replayed is published and the manifest says so.
    run.remove_wal().map_err(wrap)?;
    report.recovered = true;
    report.summary = Some(summary);
    tracing::info!(
        replayed = report.replayed,
        corrupt = report.corrupt_records,
        "run recovered"
    );
    Ok(report)
}

/// Replays log segments into a run with no thread and no log of its own.
struct Replay {
    run: ActiveRun,
    /// The next `_seq` to replay; anything below is published or a repeat.
    next_expected: u64,
    /// Rows below this are already counted in `summary.json`.
    counted_through: u64,
}

impl Replay {
    fn new(run: &RunDir, fs: Arc<dyn FileSystem>, format: Format, mut manifest: Manifest) -> Result<Self, Error> {
        // The summary is written before the manifest at every checkpoint, so
        // it covers at least the published rows; rows it already counts are
        // not counted again.
        // A missing or unreadable summary counts nothing: every row is counted anew.
        let previous = run.load_summary().ok();
        let counted_through = previous.as_ref().map_or(0, |s| s.records);
        let agg = previous.as_ref().map(Aggregates::resume).unwrap_or_default();
        let next_expected = manifest.published_seq;
        manifest.records = next_expected;
        let settings = RunSettings {
            policy: CheckpointPolicy {
                every_candles: 0,
                every: None,
                max_buffered_rows: 100_000,
            },
            keep_candles: false,
            default_source: "recovered".into(),
            // Nothing is sent one by one during recovery.
            direct_backlog: 1,
            min_free_bytes: 0,
        };
        let publisher = Publisher::new(run.clone(), fs, format, PartCodec::Zstd, &manifest)?;
        let mut active = ActiveRun::new(settings, publisher, manifest, agg, None, Arc::new(Stats::default()));
        active.counts_through(counted_through);
        Ok(Replay {
            run: active,
            next_expected,
            counted_through,
        })
    }

    /// Replays one segment, cutting its torn tail first.
    fn segment(&mut self, path: &Path, report: &mut RecoveryReport) -> Result<(), Error> {
        report.segments += 1;
        let bytes = std::fs::read(path).map_err(Error::io(format!("read {}", path.display())))?;
        let read = read_segment(&bytes);
        if read.valid_len < bytes.len() {
            let cut = bytes.len() - read.valid_len;
            tracing::warn!(segment = %path.display(), offset = read.valid_len, bytes = cut, "truncating a torn log tail");
            truncate_torn_tail(path, read.valid_len)?;
            report.truncated_bytes += cut as u64;
        }
        if read.corrupt > 0 {
            tracing::warn!(segment = %path.display(), frames = read.corrupt, "skipping corrupt log frames");
        }
        report.corrupt_records += read.corrupt as u64;
        for (offset, logged) in read.entries {
            let (replayed, undecodable) = match logged {
                Logged::Batch(batch) => self.batch(&batch),
                Logged::Row(row) => match self.row(&row) {
                    Line::Replayed => (1, 0),
                    Line::AlreadyPublished => (0, 0),
                    Line::Undecodable => (0, 1),
                },
                Logged::Undecodable => (0, 1),
            };
            if undecodable > 0 {
                tracing::warn!(segment = %path.display(), offset, lines = undecodable, "skipping logged lines that do not decode");
            }
            report.replayed += replayed;
            report.corrupt_records += undecodable;
        }
        Ok(())
    }

    /// Replays a batch frame's lines, and where it ended in its ring.
    /// Returns (lines replayed, lines that do not decode).
    fn batch(&mut self, batch: &BatchEntry<'_>) -> (u64, u64) {
        let mut run = Rows::new(batch.source, batch.ingested_at);
        let (mut replayed, mut undecodable) = (0, 0);
        for (i, line) in batch.lines.iter().enumerate() {
            let seq = batch.first_seq + i as u64;
            match self.line(&mut run, seq, line) {
                Line::Replayed => replayed += 1,
                Line::AlreadyPublished => {}
                Line::Undecodable => undecodable += 1,
            }
        }
        self.flush(&mut run);
        if let Some(ring) = batch.ring {
            let bound = batch.first_seq + u64::from(batch.lines.len());
            self.run.replay_ring(ring.ring, ring.end, bound);
        }
        (replayed, undecodable)
    }

    /// Replays a version 1 row.
    fn row(&mut self, row: &RowEntry<'_>) -> Line {
        let mut run = Rows::new(row.source, row.ingested_at);
        let line = self.line(&mut run, row.seq, Some(row.json));
        self.flush(&mut run);
        line
    }

    /// Adds one logged line, under its original `_seq`, to the rows being
    /// gathered; a line that is skipped ends them (rows keep their `_seq`s).
    fn line(&mut self, run: &mut Rows, seq: u64, json: Option<&[u8]>) -> Line {
        if seq < self.next_expected {
            self.flush(run);
            return Line::AlreadyPublished;
        }
        let Some(Ok(record)) = json.map(Record::from_json) else {
            self.flush(run);
            return Line::Undecodable;
        };
        if run.builder.rows() == 0 {
            run.base = seq;
        }
        run.builder.push(&record, None, seq >= self.counted_through);
        self.next_expected = seq + 1;
        Line::Replayed
    }

    /// Hands the rows gathered so far to the run.
    fn flush(&mut self, run: &mut Rows) {
        if run.builder.len() == 0 {
            return;
        }
        let mut chunk = run.builder.take(None);
        chunk.ingested_at = run.ingested_at;
        self.run.replay_chunk(chunk, run.base);
    }
}

/// Consecutive replayed rows of one log frame.
struct Rows {
    builder: ChunkBuilder,
    base: u64,
    ingested_at: Timestamp,
}

impl Rows {
    fn new(source: &str, ingested_at: Timestamp) -> Self {
        // The log holds stored rows only: a candle in it was kept as a row.
        Rows {
            builder: ChunkBuilder::new(source.into(), true, false),
            base: 0,
            ingested_at,
        }
    }
}

/// What became of one logged line.
enum Line {
    Replayed,
    /// Published before the crash, or a repeat of a row replayed already.
    AlreadyPublished,
    Undecodable,
}
