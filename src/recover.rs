//! Crash recovery: turns a run whose collector died (status still `running`,
//! lock free) back into a consistent run with status `recovered`.
//!
//! Steps, each idempotent:
//! 1. remove leftover dot-temp files and part files the manifest does not list
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

use crate::error::Error;
use crate::fs::{FileSystem, RealFs};
use crate::lock::RunLock;
use crate::manifest::{Manifest, RunStatus};
use crate::policy::CheckpointPolicy;
use crate::record::Record;
use crate::sink::{remove_temp_files, Format};
use crate::stats::Stats;
use crate::summary::{Aggregates, RunSummary, SUMMARY_FILE};
use crate::wal::{list_segments, scan_segment, WalEntry, WAL_DIR};
use crate::worker::{Worker, WorkerConfig};
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
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

/// Recovers `run_dir` (see the module docs). Fails if a live collector holds it.
pub fn recover(run_dir: &Path) -> Result<RecoveryReport, Error> {
    let manifest = Manifest::load(run_dir)?;
    let _lock = RunLock::acquire(run_dir, &manifest.run_id)?;
    recover_locked(run_dir, Arc::new(RealFs), infer_format(&manifest))
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
pub(crate) fn recover_locked(run_dir: &Path, fs: Arc<dyn FileSystem>, format: Format) -> Result<RecoveryReport, Error> {
    let mut manifest = Manifest::load(run_dir)?;
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
    if manifest.status != RunStatus::Running {
        return Ok(report);
    }
    tracing::warn!(run_dir = %run_dir.display(), "recovering a run whose collector died");
    report.files_removed = remove_leftovers(run_dir, &manifest);

    // The summary is written before the manifest at every checkpoint, so it
    // covers at least the published rows; rows it already counts are not
    // counted again.
    let previous: Option<RunSummary> = fs::read(run_dir.join(SUMMARY_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let counted_through = previous.as_ref().map_or(0, |s| s.records);
    let agg = previous.as_ref().map(Aggregates::resume).unwrap_or_default();
    let published = manifest.published_seq;
    manifest.records = published;
    let cfg = WorkerConfig {
        run_dir: run_dir.to_owned(),
        run_id: manifest.run_id.clone(),
        format,
        policy: CheckpointPolicy {
            every_candles: 0,
            every: None,
            max_buffered_rows: 100_000,
        },
        keep_candles: false,
        default_source: "recovered".into(),
        fs,
        wal: None,
        min_free_bytes: 0,
    };
    let mut worker = Worker::new(cfg, manifest, agg, Arc::new(Stats::default()), None, None);

    let wal_dir = run_dir.join(WAL_DIR);
    let mut next_expected = published;
    for (_, path) in list_segments(&wal_dir) {
        report.segments += 1;
        let bytes = fs::read(&path).map_err(Error::io(format!("read {}", path.display())))?;
        let scan = scan_segment(&bytes);
        if scan.valid_len < bytes.len() {
            let cut = bytes.len() - scan.valid_len;
            tracing::warn!(segment = %path.display(), offset = scan.valid_len, bytes = cut, "truncating a torn log tail");
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(scan.valid_len as u64).and_then(|_| f.sync_all()))
                .map_err(Error::io(format!("truncate {}", path.display())))?;
            report.truncated_bytes += cut as u64;
        }
        if scan.corrupt > 0 {
            tracing::warn!(segment = %path.display(), frames = scan.corrupt, "skipping corrupt log frames");
        }
        report.corrupt_records += scan.corrupt as u64;
        for (offset, range) in scan.frames {
            let Some(entry) = WalEntry::decode(&bytes[range]) else {
                tracing::warn!(segment = %path.display(), offset, "skipping an undecodable log entry");
                report.corrupt_records += 1;
                continue;
            };
            if entry.seq < next_expected {
                continue; // already published, or a repeat
            }
            match Record::from_json(entry.json) {
                Ok(record) => {
                    let in_summary = entry.seq >= counted_through;
                    worker.replay(&record, entry.seq, entry.source, entry.ingested_at, in_summary);
                    worker.maybe_checkpoint();
                    report.replayed += 1;
                    next_expected = entry.seq + 1;
                }
                Err(e) => {
                    tracing::warn!(segment = %path.display(), offset, "skipping a logged record that does not decode: {e}");
                    report.corrupt_records += 1;
                }
            }
        }
    }
    let summary = worker.finish(RunStatus::Recovered)?;
    // Everything replayed is published and the manifest says so.
    for (_, path) in list_segments(&wal_dir) {
        fs::remove_file(&path).map_err(Error::io(format!("remove {}", path.display())))?;
    }
    let _ = fs::remove_dir(&wal_dir);
    report.recovered = true;
    report.summary = Some(summary);
    tracing::info!(
        replayed = report.replayed,
        corrupt = report.corrupt_records,
        "run recovered"
    );
    Ok(report)
}

/// Removes dot-temp files and part files that the manifest does not list.
fn remove_leftovers(run_dir: &Path, manifest: &Manifest) -> usize {
    let listed: HashSet<&str> = manifest
        .streams
        .values()
        .flat_map(|s| &s.files)
        .map(|f| f.path.as_str())
        .collect();
    let mut removed = remove_temp_files(run_dir);
    let Ok(entries) = fs::read_dir(run_dir) else {
        return removed;
    };
    for dir in entries.flatten().filter(|e| e.path().is_dir()) {
        let stream = dir.file_name().to_string_lossy().into_owned();
        if stream == WAL_DIR {
            continue;
        }
        removed += remove_temp_files(&dir.path());
        let Ok(parts) = fs::read_dir(dir.path()) else { continue };
        for part in parts.flatten() {
            let name = part.file_name().to_string_lossy().into_owned();
            let rel = format!("{stream}/{name}");
            if name.starts_with("part-") && !listed.contains(rel.as_str()) && fs::remove_file(part.path()).is_ok() {
                tracing::warn!(file = %rel, "removed a part file the manifest does not list (its rows are replayed)");
                removed += 1;
            }
        }
    }
    removed
}
