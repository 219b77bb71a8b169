//! The worker thread: the one owner of buffers, part writers, the manifest,
//! the summary aggregates and `rejected.ndjson`. Producers only send messages.
//!
//! Loop: block on the channel or the ticker (`select!`), handle the message,
//! then ask the pure [`CheckpointPolicy`] whether to checkpoint. Shutdown is a
//! handshake: the `Shutdown` message queues behind every record already sent;
//! the worker drains, writes the final checkpoint, `summary.json` and the final
//! manifest (all fsynced), and only then answers.

use crate::buffer::{RowMeta, StreamBuffer};
use crate::error::Error;
use crate::fs::FileSystem;
use crate::lock::RunLock;
use crate::manifest::{FileEntry, Manifest, RunStatus, SchemaField};
use crate::policy::{retry_delay, CheckpointPolicy, PolicyState, Trigger};
use crate::record::{Control, Record, Row};
use crate::sink::{publish_bytes, publish_csv, publish_parquet, sync_dir, Format};
use crate::stats::Stats;
use crate::summary::{Aggregates, RunSummary, SUMMARY_FILE};
use crate::timestamp::Timestamp;
use crate::wal::{WalEntry, WalOptions, WalWriter};
use crossbeam_channel::{select, tick, Receiver, Sender};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// File name of the rejected-lines log inside a run directory.
pub const REJECTED_FILE: &str = "rejected.ndjson";

/// A line that could not be decoded, on its way to `rejected.ndjson`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rejected {
    /// Line number within its source (1-based).
    pub line: u64,
    /// The connection's source name.
    pub source: String,
    /// Why it was rejected.
    pub error: String,
    /// The line (lossy UTF-8), cut at 4 KiB.
    pub raw: String,
}

/// What a reader decoded from one stretch of input.
// Records are moved by value on purpose: boxing would add an allocation per
// record on the hot path, and batches are bounded (1024 items, 16 in flight).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Ingested {
    /// A decoded record.
    Record(Record),
    /// A rejected line.
    Rejected(Rejected),
}

/// Records from one source, in input order.
#[derive(Debug)]
pub struct Batch {
    /// The source of records that name none.
    pub source: Arc<str>,
    /// The items, in order.
    pub items: Vec<Ingested>,
    /// The NDJSON lines of the records, back to back, as read. The
    /// write-ahead log stores these bytes instead of encoding each row again.
    pub raw: Vec<u8>,
    /// One range of `raw` per `Ingested::Record` item, in order (may be empty:
    /// then rows are encoded for the log).
    pub spans: Vec<std::ops::Range<usize>>,
}

impl Batch {
    /// A batch without the original lines.
    pub fn new(source: Arc<str>, items: Vec<Ingested>) -> Self {
        Batch {
            source,
            items,
            raw: Vec::new(),
            spans: Vec::new(),
        }
    }
}

#[allow(clippy::large_enum_variant)] // see `Ingested`
pub(crate) enum Msg {
    Record(Record),
    Batch(Batch),
    Checkpoint(Option<Sender<Result<(), String>>>),
    Connected(Vec<String>),
    Shutdown {
        status: RunStatus,
        ack: Sender<Result<RunSummary, String>>,
    },
}

/// Settings the worker needs.
pub(crate) struct WorkerConfig {
    pub run_dir: PathBuf,
    pub run_id: String,
    pub format: Format,
    pub policy: CheckpointPolicy,
    pub keep_candles: bool,
    pub default_source: Arc<str>,
    pub fs: Arc<dyn FileSystem>,
    /// Durability mode `wal` when set.
    pub wal: Option<WalOptions>,
    /// Warn when the output filesystem has less than twice this free.
    pub min_free_bytes: u64,
}

pub(crate) struct Worker {
    cfg: WorkerConfig,
    streams: BTreeMap<String, StreamBuffer>,
    next_part: HashMap<String, u32>,
    manifest: Manifest,
    agg: Aggregates,
    next_seq: u64,
    candles_since: u64,
    last_checkpoint: Instant,
    failures: u32,
    retry_not_before: Option<Instant>,
    rejected_out: Option<BufWriter<File>>,
    stats: Arc<Stats>,
    wal: Option<WalWriter>,
    wal_failing: bool,
    json_buf: Vec<u8>,
    low_space_warned: bool,
    _lock: Option<RunLock>,
}

impl Worker {
    /// A worker continuing `manifest`. With `lock: None` it is a recovery
    /// worker whose caller holds the run's lock.
    pub(crate) fn new(
        cfg: WorkerConfig,
        manifest: Manifest,
        agg: Aggregates,
        stats: Arc<Stats>,
        wal: Option<WalWriter>,
        lock: Option<RunLock>,
    ) -> Self {
        let next_part = manifest
            .streams
            .iter()
            .map(|(name, s)| {
                let highest = s.files.iter().filter_map(|f| part_number(&f.path)).max().unwrap_or(0);
                (name.clone(), highest + 1)
            })
            .collect();
        stats.records.store(manifest.records, Relaxed);
        stats.checkpoints.store(manifest.checkpoints, Relaxed);
        stats.rejected.store(manifest.rejected, Relaxed);
        stats.candles.store(manifest.candles, Relaxed);
        Worker {
            next_seq: manifest.records,
            cfg,
            streams: BTreeMap::new(),
            next_part,
            manifest,
            agg,
            candles_since: 0,
            last_checkpoint: Instant::now(),
            failures: 0,
            retry_not_before: None,
            rejected_out: None,
            stats,
            wal,
            wal_failing: false,
            json_buf: Vec::with_capacity(512),
            low_space_warned: false,
            _lock: lock,
        }
    }

    /// Runs until a `Shutdown` message, or until every sender is gone (then
    /// the run ends as `complete`, as on drop).
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        let mut tick_every = self.cfg.policy.every.map_or(Duration::from_secs(1), |e| {
            (e / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
        });
        if let Some(wal) = &self.cfg.wal {
            // The group commit must happen even when producers go quiet.
            tick_every = tick_every.min(wal.fsync_every.max(Duration::from_millis(1)));
        }
        let ticker = tick(tick_every);
        loop {
            select! {
                recv(rx) -> msg => match msg {
                    Ok(Msg::Shutdown { status, ack }) => {
                        let result = self.finish(status).map_err(|e| format!("{e:#}"));
                        let _ = ack.send(result);
                        return;
                    }
                    Ok(msg) => self.handle(msg),
                    Err(_) => {
                        if let Err(e) = self.finish(RunStatus::Complete) {
                            tracing::error!("final flush after the last sender left failed: {e}");
                        }
                        return;
                    }
                },
                recv(ticker) -> _ => {}
            }
            self.sync_wal_if_due();
            self.maybe_checkpoint();
        }
    }

    fn sync_wal_if_due(&mut self) {
        if let Some(wal) = self.wal.as_mut() {
            let result = wal.sync_if_due();
            self.note_wal_result(result);
        }
    }

    /// WAL failures are reported once per streak; the rows stay in memory and
    /// are still published by the next checkpoint.
    fn note_wal_result(&mut self, result: Result<(), Error>) {
        match result {
            Ok(()) => self.wal_failing = false,
            Err(e) => {
                if !self.wal_failing {
                    tracing::error!("write-ahead log failed ({e}); rows stay in memory until the next checkpoint");
                }
                self.wal_failing = true;
                self.manifest.last_error = Some(format!("{}: {e}", now_rfc3339()));
            }
        }
    }

    pub(crate) fn maybe_checkpoint(&mut self) {
        if let Some(trigger) = self.cfg.policy.should_checkpoint(&self.policy_state(), Instant::now()) {
            // A failure is recorded in the manifest and retried with backoff.
            let _ = self.checkpoint(trigger);
        }
    }

    fn policy_state(&self) -> PolicyState {
        PolicyState {
            candles_since: self.candles_since,
            buffered_rows: self.buffered_rows(),
            last_checkpoint: self.last_checkpoint,
            retry_not_before: self.retry_not_before,
        }
    }

    fn buffered_rows(&self) -> usize {
        self.streams.values().map(StreamBuffer::pending_rows).sum()
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Record(record) => {
                let source = self.cfg.default_source.clone();
                self.ingest(record, &source, Timestamp::now(), None);
            }
            Msg::Batch(Batch {
                source,
                items,
                raw,
                spans,
            }) => {
                let now = Timestamp::now();
                let mut spans = spans.into_iter();
                for item in items {
                    match item {
                        Ingested::Record(r) => {
                            let line = spans.next().and_then(|span| raw.get(span));
                            self.ingest(r, &source, now, line)
                        }
                        Ingested::Rejected(r) => self.reject(r),
                    }
                }
                if let Some(out) = self.rejected_out.as_mut() {
                    let _ = out.flush();
                }
            }
            Msg::Checkpoint(ack) => {
                let result = self.checkpoint(Trigger::Requested).map_err(|e| e.to_string());
                if let Some(ack) = ack {
                    let _ = ack.send(result);
                }
            }
            Msg::Connected(sources) => {
                if sources != self.manifest.connected {
                    self.manifest.connected = sources;
                    // Best effort: `rlcollect status` shows who is connected.
                    if let Err(e) = self.store_manifest() {
                        tracing::warn!("cannot update the manifest's connected sources: {e}");
                    }
                }
            }
            Msg::Shutdown { .. } => unreachable!("handled by the loop"),
        }
        self.stats.rows_buffered.store(self.buffered_rows() as u64, Relaxed);
    }

    /// Handles one record; `line` is its NDJSON text when a reader has it.
    fn ingest(&mut self, record: Record, default_source: &str, now: Timestamp, line: Option<&[u8]>) {
        match &record {
            Record::Control(Control::Checkpoint) => {
                let _ = self.checkpoint(Trigger::Requested);
                return;
            }
            // A reader consumes `hello` itself; one sent through a `Handle` has no connection to rename.
            Record::Control(Control::Hello { .. }) => return,
            Record::Candle(c) => {
                self.candles_since += 1;
                self.manifest.candles += 1;
                self.stats.candles.fetch_add(1, Relaxed);
                if self.cfg.keep_candles {
                    self.store(c, default_source, now, line);
                }
                // Checked per candle, not per message: a batch of lines may
                // hold many candles, and each N-th one ends a checkpoint.
                self.maybe_checkpoint();
                return;
            }
            Record::Trade(t) => self.agg.add_trade(t),
            Record::RlEpisode(e) => self.agg.add_episode(e),
            Record::ModelDecision(d) => self.agg.add_decision(d),
            _ => {}
        }
        if let Some(row) = record.row() {
            self.store(row, default_source, now, line);
        }
    }

    fn store(&mut self, row: &dyn Row, default_source: &str, now: Timestamp, line: Option<&[u8]>) {
        let source = row.source().unwrap_or(default_source);
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = row.stream_name();
        if !self.streams.contains_key(name) {
            self.streams
                .insert(name.to_owned(), StreamBuffer::new(row.core_fields()));
        }
        let buf = self.streams.get_mut(name).expect("inserted above");
        buf.append(
            row,
            RowMeta {
                seq,
                source,
                ingested_at: now,
            },
        );
        match self.manifest.sources.get_mut(source) {
            Some(n) => *n += 1,
            None => {
                self.manifest.sources.insert(source.to_owned(), 1);
            }
        }
        self.manifest.records = self.next_seq;
        self.stats.records.store(self.next_seq, Relaxed);
        if let Some(wal) = self.wal.as_mut() {
            // The line as read decodes to this very record; only records
            // without one (from `Handle::send`) are encoded here.
            let json = match line {
                Some(line) => line,
                None => {
                    self.json_buf.clear();
                    row.write_json(&mut self.json_buf);
                    &self.json_buf
                }
            };
            let result = wal.append(&WalEntry {
                seq,
                ingested_at: now,
                source,
                json,
            });
            self.note_wal_result(result);
        }
    }

    /// Recovery: stores a row read back from the write-ahead log under its
    /// original `_seq`, source and time. `in_summary` is false for rows the
    /// previous summary already counted.
    pub(crate) fn replay(&mut self, record: &Record, seq: u64, source: &str, at: Timestamp, in_summary: bool) {
        if in_summary {
            match record {
                Record::Trade(t) => self.agg.add_trade(t),
                Record::RlEpisode(e) => self.agg.add_episode(e),
                Record::ModelDecision(d) => self.agg.add_decision(d),
                _ => {}
            }
        }
        let row: Option<&dyn Row> = match record {
            Record::Candle(c) => Some(c),
            other => other.row(),
        };
        if let Some(row) = row {
            self.next_seq = seq;
            self.store(row, source, at, None);
        }
    }

    fn reject(&mut self, r: Rejected) {
        self.manifest.rejected += 1;
        let n = self.stats.rejected.fetch_add(1, Relaxed) + 1;
        // Rate-limited: the first 10, then every 1000th, so a flood of bad
        // lines cannot drown the log; every one is in rejected.ndjson anyway.
        if n <= 10 || n.is_multiple_of(1000) {
            tracing::warn!(line = r.line, source = %r.source, rejected_total = n, "rejected line: {}", r.error);
        }
        if self.rejected_out.is_none() {
            let path = self.cfg.run_dir.join(REJECTED_FILE);
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => self.rejected_out = Some(BufWriter::new(f)),
                Err(e) => {
                    self.manifest.last_error = Some(format!("open {}: {e}", path.display()));
                    return;
                }
            }
        }
        let out = self.rejected_out.as_mut().expect("opened above");
        let mut line = serde_json::to_vec(&r).expect("rejected serializes");
        line.push(b'\n');
        if let Err(e) = out.write_all(&line) {
            self.manifest.last_error = Some(format!("write {REJECTED_FILE}: {e}"));
        }
    }

    /// Publishes every buffered row, stream by stream, then the manifest. A
    /// batch leaves memory only once its files are published; on error the
    /// rest stays buffered for the next attempt.
    fn checkpoint(&mut self, trigger: Trigger) -> Result<(), Error> {
        let started = Instant::now();
        let result = self.publish_all();
        self.candles_since = 0;
        self.last_checkpoint = Instant::now();
        let result = result.and_then(|published| {
            if published > 0 {
                self.manifest.checkpoints += 1;
                self.manifest.last_checkpoint_at = Some(now_rfc3339());
                self.stats.checkpoints.fetch_add(1, Relaxed);
            }
            self.sync_rejected()?;
            // The summary goes first: it then always covers at least the rows
            // the manifest lists, which recovery relies on.
            if published > 0 || trigger == Trigger::Final {
                self.store_summary(self.manifest.status)?;
            }
            self.store_manifest()?;
            // Only now, with the manifest naming the parts fsynced, may the log
            // of those rows go.
            if let Some(wal) = self.wal.as_mut() {
                wal.release_through(self.manifest.published_seq)?;
            }
            self.check_free_space();
            tracing::debug!(?trigger, rows = published, elapsed = ?started.elapsed(), "checkpoint");
            Ok(())
        });
        match &result {
            Ok(()) => {
                self.failures = 0;
                self.retry_not_before = None;
            }
            Err(e) => {
                self.failures += 1;
                let delay = retry_delay(self.failures);
                self.retry_not_before = Some(Instant::now() + delay);
                self.manifest.last_error = Some(format!("{}: {e}", now_rfc3339()));
                tracing::error!("checkpoint failed ({e}); rows stay buffered, retrying in {delay:?}");
                // Best effort: let readers of the manifest see the error.
                let _ = self.store_manifest();
            }
        }
        self.stats.rows_buffered.store(self.buffered_rows() as u64, Relaxed);
        result
    }

    fn check_free_space(&mut self) {
        if self.cfg.min_free_bytes == 0 {
            return;
        }
        let Ok(free) = self.cfg.fs.available_bytes(&self.cfg.run_dir) else {
            return;
        };
        let low = free < 2 * self.cfg.min_free_bytes;
        if low && !self.low_space_warned {
            tracing::warn!(
                free_mb = free >> 20,
                "the output filesystem is running out of space (under twice --min-free-mb)"
            );
        }
        self.low_space_warned = low;
    }

    fn publish_all(&mut self) -> Result<u64, Error> {
        let mut published = 0u64;
        let mut first_error = None;
        for (name, buf) in self.streams.iter_mut() {
            buf.seal();
            while let Some(part) = buf.front() {
                let number = *self.next_part.get(name).unwrap_or(&1);
                let result = publish_part(&self.cfg, name, number, part);
                match result {
                    Ok(files) => {
                        let rows = part.batch.num_rows() as u64;
                        let entry = self.manifest.streams.entry(name.clone()).or_default();
                        entry.rows += rows;
                        self.stats.files.fetch_add(files.len() as u64, Relaxed);
                        let bytes: u64 = files.iter().map(|f| f.bytes).sum();
                        self.stats.bytes_written.fetch_add(bytes, Relaxed);
                        entry.files.extend(files);
                        entry.schema = buf
                            .schema()
                            .iter()
                            .map(|(n, t)| SchemaField {
                                name: n.clone(),
                                ty: *t,
                            })
                            .collect();
                        self.next_part.insert(name.clone(), number + 1);
                        buf.pop_published();
                        published += rows;
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                        break;
                    }
                }
            }
        }
        self.manifest.published_seq = self
            .streams
            .values()
            .filter_map(StreamBuffer::first_pending_seq)
            .min()
            .unwrap_or(self.next_seq);
        match first_error {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    fn sync_rejected(&mut self) -> Result<(), Error> {
        if let Some(out) = self.rejected_out.as_mut() {
            out.flush()
                .and_then(|_| out.get_ref().sync_data())
                .map_err(Error::io(format!("fsync {REJECTED_FILE}")))?;
        }
        Ok(())
    }

    fn store_manifest(&mut self) -> Result<(), Error> {
        self.manifest.updated_at = now_rfc3339();
        self.manifest.store(self.cfg.fs.as_ref(), &self.cfg.run_dir)
    }

    fn summary(&self, status: RunStatus) -> RunSummary {
        let rows = self.manifest.streams.iter().map(|(k, s)| (k.clone(), s.rows)).collect();
        let mut summary = self.agg.summary(
            &self.cfg.run_id,
            status,
            rows,
            self.manifest.candles,
            self.manifest.rejected,
        );
        // Recovery counts only rows past this, so nothing is counted twice.
        summary.records = self.next_seq;
        summary
    }

    fn store_summary(&self, status: RunStatus) -> Result<RunSummary, Error> {
        let summary = self.summary(status);
        let bytes = serde_json::to_vec_pretty(&summary).expect("summary serializes");
        publish_bytes(self.cfg.fs.as_ref(), &self.cfg.run_dir.join(SUMMARY_FILE), &bytes)?;
        Ok(summary)
    }

    /// The final flush: every row published, then the status, summary and
    /// manifest. If it fails the status stays `running`, which marks the run
    /// for recovery.
    pub(crate) fn finish(&mut self, status: RunStatus) -> Result<RunSummary, Error> {
        self.retry_not_before = None;
        if let Some(wal) = self.wal.as_mut() {
            let result = wal.sync();
            self.note_wal_result(result);
        }
        self.checkpoint(Trigger::Final)?;
        self.manifest.status = status;
        self.manifest.connected.clear();
        let summary = self.store_summary(status)?;
        self.store_manifest()?;
        // Every row is published and the manifest says so: the log has done its job.
        if let Some(wal) = self.wal.take() {
            wal.remove_all()?;
        }
        self.stats.rows_buffered.store(0, Relaxed);
        Ok(summary)
    }
}

fn publish_part(
    cfg: &WorkerConfig,
    stream: &str,
    number: u32,
    part: &crate::buffer::SealedBatch,
) -> Result<Vec<FileEntry>, Error> {
    let dir = cfg.run_dir.join(stream);
    let fs = cfg.fs.as_ref();
    if !dir.is_dir() {
        fs.create_dir_all(&dir)
            .map_err(Error::io(format!("create {}", dir.display())))?;
        sync_dir(fs, &cfg.run_dir)?;
    }
    let mut files = Vec::with_capacity(2);
    let entry = |ext: &str, bytes: u64| FileEntry {
        path: format!("{stream}/part-{number:06}.{ext}"),
        format: ext.to_owned(),
        rows: part.batch.num_rows() as u64,
        first_seq: part.first_seq,
        last_seq: part.last_seq,
        bytes,
    };
    if cfg.format.parquet() {
        let path = dir.join(format!("part-{number:06}.parquet"));
        files.push(entry("parquet", publish_parquet(fs, &path, part, &cfg.run_id)?));
    }
    if cfg.format.csv() {
        let path = dir.join(format!("part-{number:06}.csv"));
        files.push(entry("csv", publish_csv(fs, &path, &part.batch)?));
    }
    Ok(files)
}

/// The part number in `stream/part-000042.parquet`.
pub(crate) fn part_number(path: &str) -> Option<u32> {
    let name = path.rsplit('/').next()?;
    name.strip_prefix("part-")?.split('.').next()?.parse().ok()
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn part_number_parses_names() {
        assert_eq!(super::part_number("trades/part-000042.parquet"), Some(42));
        assert_eq!(super::part_number("trades/other.parquet"), None);
    }
}
