//! [`ActiveRun`]: a run being written. It is the one owner of `_seq`, the
//! per-stream buffers, the summary aggregates, the manifest and the
//! write-ahead log, and it runs without a thread of its own: the worker
//! drives it from the channel, recovery drives it from the log.
//!
//! * `mod.rs` (this file): accepting rows, numbering them, logging them.
//! * `checkpoint.rs`: publishing them, and the final flush.
//! * `rings.rs`: how far each shared-memory ring is consumed.

mod checkpoint;
mod rings;

pub(crate) use rings::RingMark;

use crate::buffer::{RowMeta, StreamBuffer};
use crate::error::Error;
use crate::manifest::Manifest;
use crate::message::{Batch, Ingested};
use crate::publisher::{now_rfc3339, Publisher};
use crate::record::{Control, Record, Row};
use crate::rejected_log::{Rejected, RejectedLog};
use crate::schedule::{CheckpointPolicy, Schedule};
use crate::stats::Stats;
use crate::summary::Aggregates;
use crate::timestamp::Timestamp;
use crate::wal::{RingEnd, WalWriter};
use rings::RingLedger;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// How a run treats what it is given.
pub(crate) struct RunSettings {
    /// Checkpoint triggers.
    pub policy: CheckpointPolicy,
    /// Store candle records in the `candles` stream.
    pub keep_candles: bool,
    /// The `_source` of records that name none and come with no batch.
    pub default_source: Arc<str>,
    /// Warn when the output filesystem has less than twice this free.
    pub min_free_bytes: u64,
}

/// A run being written (see the module docs).
pub(crate) struct ActiveRun {
    settings: RunSettings,
    publisher: Publisher,
    streams: BTreeMap<String, StreamBuffer>,
    manifest: Manifest,
    agg: Aggregates,
    next_seq: u64,
    schedule: Schedule,
    rejected: RejectedLog,
    log: Option<RowLog>,
    rings: RingLedger,
    stats: Arc<Stats>,
    low_space_warned: bool,
}

/// The write-ahead log as the run uses it: failures are reported once per
/// streak, and the rows stay in memory to be published by the next checkpoint.
struct RowLog {
    wal: WalWriter,
    failing: bool,
    /// Scratch space for rows that come without their NDJSON line.
    json: Vec<u8>,
    /// The spans of the current batch's stored rows in its `raw` bytes.
    stored: Vec<Range<usize>>,
}

impl ActiveRun {
    /// A run continuing `manifest`, publishing through `publisher`, logging
    /// to `wal` when given.
    pub(crate) fn new(
        settings: RunSettings,
        publisher: Publisher,
        manifest: Manifest,
        agg: Aggregates,
        wal: Option<WalWriter>,
        stats: Arc<Stats>,
    ) -> Self {
        stats.records.store(manifest.records, Relaxed);
        stats.checkpoints.store(manifest.checkpoints, Relaxed);
        stats.rejected.store(manifest.rejected, Relaxed);
        stats.candles.store(manifest.candles, Relaxed);
        ActiveRun {
            schedule: Schedule::new(settings.policy),
            rejected: RejectedLog::new(publisher.run().rejected_path()),
            rings: RingLedger::resume(&manifest.rings),
            next_seq: manifest.records,
            settings,
            publisher,
            streams: BTreeMap::new(),
            manifest,
            agg,
            log: wal.map(|wal| RowLog {
                wal,
                failing: false,
                json: Vec::with_capacity(512),
                stored: Vec::with_capacity(4096),
            }),
            stats,
            low_space_warned: false,
        }
    }

    /// How often the driver must call [`tick`](Self::tick) when nothing arrives.
    pub(crate) fn tick_every(&self) -> std::time::Duration {
        let every = self.schedule.tick_every();
        match &self.log {
            // The group commit must happen even when producers go quiet.
            Some(log) => every.min(log.wal.fsync_every().max(std::time::Duration::from_millis(1))),
            None => every,
        }
    }

    /// One record sent through a `Handle`.
    pub(crate) fn accept_record(&mut self, record: Record) {
        let source = self.settings.default_source.clone();
        let now = Timestamp::now();
        let first_seq = self.next_seq;
        if self.ingest(&record, &source, now) {
            if let Some(log) = self.log.as_mut() {
                log.json.clear();
                if let Some(row) = stored_row(&record) {
                    row.write_json(&mut log.json);
                }
                let result = log
                    .wal
                    .append_batch(first_seq, now, &source, None, [&log.json[..]].into_iter());
                self.note_log_result(result);
            }
        }
        self.publish_buffered_count();
    }

    /// Decoded lines from a reader, in order: their stored rows go into the
    /// log as one frame, with the ring position they end at.
    pub(crate) fn accept_batch(&mut self, batch: Batch) {
        let Batch {
            source,
            items,
            raw,
            spans,
            ring,
        } = batch;
        let now = Timestamp::now();
        let first_seq = self.next_seq;
        let mut stored = self
            .log
            .as_mut()
            .map(|l| std::mem::take(&mut l.stored))
            .unwrap_or_default();
        stored.clear();
        let mut spans = spans.into_iter();
        for item in items {
            match item {
                Ingested::Record(r) => {
                    let span = spans.next();
                    if self.ingest(&r, &source, now) {
                        stored.extend(span);
                    }
                }
                Ingested::Rejected(r) => self.reject(r),
            }
        }
        let logged = self.log_batch(first_seq, now, &source, ring.as_ref(), &raw, &stored);
        if let Some(log) = self.log.as_mut() {
            log.stored = stored;
        }
        if let Some(mark) = &ring {
            self.rings.batch(mark, self.next_seq, logged);
        }
        self.rejected.flush();
        self.publish_buffered_count();
    }

    /// Appends a batch's stored rows (and where it ended in its ring) to the
    /// log as one frame. True when it is in the log.
    fn log_batch(
        &mut self,
        first_seq: u64,
        now: Timestamp,
        source: &str,
        ring: Option<&RingMark>,
        raw: &[u8],
        stored: &[Range<usize>],
    ) -> bool {
        let Some(log) = self.log.as_mut() else { return false };
        if stored.is_empty() && ring.is_none() {
            return true;
        }
        let end = ring.map(|m| RingEnd {
            ring: &m.name,
            end: m.end,
        });
        let lines = stored.iter().map(|span| &raw[span.clone()]);
        let result = log.wal.append_batch(first_seq, now, source, end, lines);
        let ok = result.is_ok();
        self.note_log_result(result);
        ok
    }

    /// Handles one record; true when it was stored as a row (and took a `_seq`).
    fn ingest(&mut self, record: &Record, default_source: &str, now: Timestamp) -> bool {
        match record {
            Record::Control(Control::Checkpoint) => {
                let _ = self.checkpoint(crate::schedule::Trigger::Requested);
                false
            }
            // A reader consumes `hello` and `bye` itself; one sent through a
            // `Handle` has no connection to name or end.
            Record::Control(_) => false,
            Record::Candle(c) => {
                self.schedule.candle();
                self.manifest.candles += 1;
                self.stats.candles.fetch_add(1, Relaxed);
                let stored = self.settings.keep_candles;
                if stored {
                    self.store(c, default_source, now);
                }
                // Checked per candle, not per message: a batch of lines may
                // hold many candles, and each N-th one ends a checkpoint.
                self.maybe_checkpoint();
                stored
            }
            other => {
                self.agg.account(other);
                match other.row() {
                    Some(row) => {
                        self.store(row, default_source, now);
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// Recovery: stores a row read back from the write-ahead log under its
    /// original `_seq`, source and time. `in_summary` is false for rows the
    /// previous summary already counted.
    pub(crate) fn replay(&mut self, record: &Record, seq: u64, source: &str, at: Timestamp, in_summary: bool) {
        if in_summary {
            self.agg.account(record);
        }
        if let Some(row) = stored_row(record) {
            self.next_seq = seq;
            self.store(row, source, at);
        }
    }

    /// Recovery: a logged batch ended at `end` in ring `name`, and its rows
    /// are all below `seq_bound`.
    pub(crate) fn replay_ring(&mut self, name: &str, end: u64, seq_bound: u64) {
        let mark = RingMark {
            name: name.into(),
            map: None,
            end,
        };
        self.rings.batch(&mark, seq_bound, false);
    }

    /// The reader drained ring `name` to `end` and its producer is gone: the
    /// file goes once every frame of it is published.
    pub(crate) fn ring_ended(&mut self, name: &str, end: u64) {
        self.rings.ended(name, end);
    }

    /// Numbers one row and buffers it.
    fn store(&mut self, row: &dyn Row, default_source: &str, now: Timestamp) {
        let source = row.source().unwrap_or(default_source);
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = row.stream_name();
        if !self.streams.contains_key(name) {
            self.streams
                .insert(name.to_owned(), StreamBuffer::new(row.core_fields()));
        }
        let meta = RowMeta {
            seq,
            source,
            ingested_at: now,
        };
        self.streams.get_mut(name).expect("inserted above").append(row, meta);
        match self.manifest.sources.get_mut(source) {
            Some(n) => *n += 1,
            None => {
                self.manifest.sources.insert(source.to_owned(), 1);
            }
        }
        self.manifest.records = self.next_seq;
        self.stats.records.store(self.next_seq, Relaxed);
    }

    fn reject(&mut self, r: Rejected) {
        self.manifest.rejected += 1;
        let n = self.stats.rejected.fetch_add(1, Relaxed) + 1;
        // Rate-limited: the first 10, then every 1000th, so a flood of bad
        // lines cannot drown the log; every one is in rejected.ndjson anyway.
        if n <= 10 || n.is_multiple_of(1000) {
            tracing::warn!(line = r.line, source = %r.source, rejected_total = n, "rejected line: {}", r.error);
        }
        if let Err(e) = self.rejected.append(&r) {
            self.manifest.last_error = Some(e.to_string());
        }
    }

    /// Records which producers are connected now; best effort, for `status`.
    pub(crate) fn set_connected(&mut self, sources: Vec<String>) {
        if sources != self.manifest.connected {
            self.manifest.connected = sources;
            if let Err(e) = self.publisher.store_manifest(&mut self.manifest) {
                tracing::warn!("cannot update the manifest's connected sources: {e}");
            }
        }
    }

    /// Periodic work: the log's group commit and the checkpoint triggers.
    pub(crate) fn tick(&mut self) {
        if let Some(log) = self.log.as_mut() {
            let result = log.wal.sync_if_due();
            if result.as_ref().is_ok_and(|synced| *synced) {
                self.rings.log_synced();
            }
            self.note_log_result(result.map(|_| ()));
        }
        self.maybe_checkpoint();
    }

    fn note_log_result(&mut self, result: Result<(), Error>) {
        let Some(log) = self.log.as_mut() else { return };
        match result {
            Ok(()) => log.failing = false,
            Err(e) => {
                if !log.failing {
                    tracing::error!("write-ahead log failed ({e}); rows stay in memory until the next checkpoint");
                }
                log.failing = true;
                self.manifest.last_error = Some(format!("{}: {e}", now_rfc3339()));
            }
        }
    }

    fn buffered_rows(&self) -> usize {
        self.streams.values().map(StreamBuffer::pending_rows).sum()
    }

    fn publish_buffered_count(&self) {
        self.stats.rows_buffered.store(self.buffered_rows() as u64, Relaxed);
    }
}

/// The stored part of a record: its row, or a candle's (stored only with
/// `keep_candles`, so only those are ever logged or replayed).
fn stored_row(record: &Record) -> Option<&dyn Row> {
    match record {
        Record::Candle(c) => Some(c),
        other => other.row(),
    }
}
