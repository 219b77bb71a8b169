//! [`ActiveRun`]: a run being written. It is the one owner of `_seq`, the
//! per-stream buffers, the summary aggregates, the manifest and the
//! write-ahead log, and it runs without a thread of its own: the worker
//! drives it from the channel, recovery drives it from the log.
//!
//! * `mod.rs` (this file): the run's state, records sent one by one, ticks.
//! * `intake.rs`: chunks: numbering their rows, logging them, their events.
//! * `checkpoint.rs`: publishing rows, and the final flush.
//! * `rings.rs`: how far each shared-memory ring is consumed.
//! * `compaction.rs`: background merges, committed between checkpoints.

mod checkpoint;
mod compaction;
mod intake;
mod rings;

pub(crate) use rings::RingMark;

use crate::buffer::StreamBuffer;
use crate::chunk::{Chunk, ChunkBuilder, LinesPool};
use crate::direct::{Backlog, DirectBatches};
use crate::error::Error;
use crate::manifest::Manifest;
use crate::publisher::{now_rfc3339, Publisher};
use crate::rejected_log::{Rejected, RejectedLog};
use crate::schedule::{CheckpointPolicy, Schedule};
use crate::stats::Stats;
use crate::summary::Aggregates;
use crate::wal::WalWriter;
use rings::RingLedger;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Records sent one by one are gathered into chunks of this many.
const DIRECT_CHUNK: usize = 4096;

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
    /// Records sent one by one that a thread may have waiting for the
    /// worker before `send` blocks (the channel capacity).
    pub direct_backlog: usize,
}

/// A run being written (see the module docs).
pub(crate) struct ActiveRun {
    settings: RunSettings,
    publisher: Publisher,
    streams: BTreeMap<Arc<str>, StreamBuffer>,
    manifest: Manifest,
    agg: Aggregates,
    /// The next `_seq`: every row below it is in a buffer or published.
    next_seq: u64,
    /// `agg` counts every row below this `_seq` (a chunk's rows are counted
    /// as a whole before its rows are all numbered).
    counted_through: u64,
    /// Records sent one by one through a `Handle`, not yet taken.
    direct: Arc<DirectBatches>,
    schedule: Schedule,
    rejected: RejectedLog,
    log: Option<RowLog>,
    rings: RingLedger,
    /// The checkpoint whose parts the part writer is writing.
    writing: Option<checkpoint::Cut>,
    /// The checkpoint whose manifest the store thread is storing.
    storing: Option<checkpoint::Listed>,
    stats: Arc<Stats>,
    low_space_warned: bool,
    /// The background compactor, when compaction is on.
    compactor: Option<crate::compact::Compactor>,
}

/// The write-ahead log as the run uses it: failures are reported once per
/// streak, and the rows stay in memory to be published by the next checkpoint.
struct RowLog {
    wal: WalWriter,
    failing: bool,
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
        let (source, keep_candles, keep_lines, pool) = (
            settings.default_source.clone(),
            settings.keep_candles,
            wal.is_some(),
            LinesPool::new(),
        );
        let direct = Arc::new(DirectBatches::new(
            || ChunkBuilder::new(source.clone(), keep_candles, keep_lines).with_pool(pool.clone()),
            Backlog::new(
                DIRECT_CHUNK.min(settings.policy.max_buffered_rows),
                settings.direct_backlog,
            ),
        ));
        ActiveRun {
            schedule: Schedule::new(settings.policy),
            rejected: RejectedLog::new(publisher.run().rejected_path()),
            rings: RingLedger::resume(&manifest.rings),
            next_seq: manifest.records,
            counted_through: manifest.records,
            direct,
            settings,
            publisher,
            streams: BTreeMap::new(),
            manifest,
            agg,
            log: wal.map(|wal| RowLog { wal, failing: false }),
            writing: None,
            storing: None,
            stats,
            low_space_warned: false,
            compactor: None,
        }
    }

    /// The statistics it resumed from count every row below `seq`.
    pub(crate) fn counts_through(&mut self, seq: u64) {
        self.counted_through = self.counted_through.max(seq);
    }

    /// What producers need to build chunks for this run: keep candle rows?
    /// keep each row's line for the log?
    pub(crate) fn chunk_settings(&self) -> (bool, bool) {
        (self.settings.keep_candles, self.log.is_some())
    }

    /// Where the publisher's threads report each stage of a checkpoint as
    /// done (for the driver's `select!`; hand them to [`stage_done`](Self::stage_done)).
    pub(crate) fn publisher_done(&self) -> crossbeam_channel::Receiver<crate::publisher::Done> {
        self.publisher.done().clone()
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

    /// Where `Handle`s put records sent one by one.
    pub(crate) fn direct_batches(&self) -> Arc<DirectBatches> {
        self.direct.clone()
    }

    /// Batch `shard` of records sent one by one has chunks ready.
    pub(crate) fn batch_ready(&mut self, shard: usize) {
        let ready = self.direct.take_ready(shard);
        if ready.iter().any(Chunk::requests_checkpoint) {
            // A checkpoint requested among a thread's records also takes
            // what the other threads sent before it, as `Handle::checkpoint`
            // does. This batch's own rest came after the request.
            for chunk in self.direct.take_all_but(Some(shard)) {
                self.accept_chunk(chunk);
            }
        }
        for chunk in ready {
            self.accept_chunk(chunk);
        }
    }

    /// Takes every record sent one by one so far, partial batches too.
    pub(crate) fn flush_direct(&mut self) {
        for chunk in self.direct.take_all() {
            self.accept_chunk(chunk);
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
        if let Err(e) = self.rejected.append(&r) {
            self.manifest.last_error = Some(e.to_string());
        }
    }

    /// Records which producers are connected now; best effort, for `status`.
    pub(crate) fn set_connected(&mut self, sources: Vec<String>) {
        if sources != self.manifest.connected {
            // The store thread may have an older copy: this one lands after it.
            self.wait_for_store();
            self.manifest.connected = sources;
            if let Err(e) = self.publisher.store_manifest(&mut self.manifest) {
                tracing::warn!("cannot update the manifest's connected sources: {e}");
            }
        }
    }

    /// The reader drained ring `name` to `end` and its producer is gone: the
    /// file goes once every frame of it is published.
    pub(crate) fn ring_ended(&mut self, name: &str, end: u64) {
        self.rings.ended(name, end);
    }

    /// Periodic work: records sent one by one become a chunk, then as
    /// [`after_message`](Self::after_message).
    pub(crate) fn tick(&mut self) {
        self.flush_direct();
        self.after_message();
        self.compaction_tick();
    }

    /// The log's group commit when it is due, and the checkpoint triggers.
    pub(crate) fn after_message(&mut self) {
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
        self.streams.values().map(StreamBuffer::pending_rows).sum::<usize>() + self.direct.pending_rows()
    }

    fn publish_buffered_count(&self) {
        self.stats.rows_buffered.store(self.buffered_rows() as u64, Relaxed);
    }
}
