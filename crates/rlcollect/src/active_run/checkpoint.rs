//! Checkpoints and the final flush of an [`ActiveRun`].
//!
//! A checkpoint goes through two stages, the parts and then the summary and
//! manifest, each written by a thread of the publisher while the worker
//! takes more rows:
//! 1. every buffered row is sealed at the exact point it is cut, and the
//!    part writer encodes and writes the parts;
//! 2. the worker lists them in its manifest and serializes it, and the store
//!    thread stores `summary.json` (as it was when the checkpoint was cut),
//!    then `manifest.json`. Only then are the log segments whose rows the
//!    manifest now lists released, and ring space acknowledged.
//!
//! The next checkpoint's parts may be written while a manifest is stored,
//! but the next manifest waits for it. On an error the rows stay in memory
//! (and in the log), `last_error` goes into the manifest, and the next try
//! waits for the backoff.
//!
//! Manifest stores never overtake each other: one is handed to the store
//! thread at a time, and the worker stores one itself (a failure, a
//! connection change, a compaction, the final flush) only with none in
//! flight, so an older copy never lands after a newer one.

use super::ActiveRun;
use crate::buffer::StreamBuffer;
use crate::error::Error;
use crate::manifest::RunStatus;
use crate::part_writer::PartResult;
use crate::publisher::{now_rfc3339, Done};
use crate::schedule::Trigger;
use crate::summary::RunSummary;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// A checkpoint whose parts are being written.
pub(super) struct Cut {
    trigger: Trigger,
    /// The parts, as (stream, part number), in the order of the job.
    parts: Vec<(Arc<str>, u32)>,
    /// The summary of the rows the job publishes, taken when it was cut.
    summary: RunSummary,
    started: Instant,
}

/// A checkpoint whose parts are listed, and whose summary and manifest are
/// being stored.
pub(super) struct Listed {
    trigger: Trigger,
    /// Rows the manifest publishes.
    rows: u64,
    /// Every `_seq` below this is in a part the manifest lists.
    published_seq: u64,
    started: Instant,
}

impl ActiveRun {
    /// Checkpoints if a trigger fires now. A failure is recorded in the
    /// manifest and retried with backoff.
    pub(crate) fn maybe_checkpoint(&mut self) {
        if let Some(trigger) = self.schedule.due(self.buffered_rows(), Instant::now()) {
            let _ = self.checkpoint(trigger);
        }
    }

    /// Cuts a checkpoint: every buffered row is sealed and handed to the
    /// part writer. A requested checkpoint (and the final flush) waits until
    /// it is complete and says how it went; the others finish in the
    /// background ([`stage_done`](Self::stage_done)). One checkpoint's parts
    /// are written at a time, so parts end exactly where it was cut.
    pub(crate) fn checkpoint(&mut self, trigger: Trigger) -> Result<(), Error> {
        // A failure of the one before is recorded; its rows go with this one.
        self.wait_for_parts();
        if self.merge_pending() {
            // Under steady load each store completes while the next parts
            // are written, so a merge could wait for a moment with nothing
            // in flight forever: make one.
            let _ = self.settle();
        }
        for buf in self.streams.values_mut() {
            buf.seal();
        }
        self.schedule.cut(Instant::now());
        let job = self.publisher.plan(&self.streams);
        debug_assert!(self.writing.is_none(), "one checkpoint's parts at a time");
        self.writing = Some(Cut {
            trigger,
            parts: job.iter().map(|p| (p.stream.clone(), p.number)).collect(),
            summary: self.summary(self.manifest.status),
            started: Instant::now(),
        });
        self.publisher.write_parts(job);
        if matches!(trigger, Trigger::Requested | Trigger::Final) {
            self.settle()
        } else {
            Ok(())
        }
    }

    /// True while a checkpoint's parts are written or its manifest stored.
    pub(super) fn checkpoint_in_flight(&self) -> bool {
        self.writing.is_some() || self.storing.is_some()
    }

    /// Waits until no checkpoint is in flight, and says how the last one
    /// went.
    pub(super) fn settle(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        while self.checkpoint_in_flight() {
            result = self.wait_next_stage();
        }
        result
    }

    /// Waits until no parts are being written (a failure is recorded).
    fn wait_for_parts(&mut self) {
        while self.writing.is_some() {
            let _ = self.wait_next_stage();
        }
    }

    /// Waits until no manifest is being stored (a failure is recorded).
    pub(super) fn wait_for_store(&mut self) {
        while self.storing.is_some() {
            let _ = self.wait_next_stage();
        }
    }

    fn wait_next_stage(&mut self) -> Result<(), Error> {
        let done = self.publisher.wait();
        self.stage_done(done)
    }

    /// A thread of the publisher finished a stage of a checkpoint: its parts
    /// are written (they are listed, and its manifest goes to be stored), or
    /// its manifest is stored (the checkpoint is complete).
    pub(crate) fn stage_done(&mut self, done: Done) -> Result<(), Error> {
        let result = match done {
            Done::Parts(results) => {
                // The manifest before must be stored before this one. (Still
                // `writing` meanwhile: no merge may be committed while
                // written parts are not yet listed.)
                self.wait_for_store();
                let cut = self.writing.take().expect("parts answer a checkpoint being written");
                self.list(cut, results)
            }
            Done::Stored(stored) => {
                let listed = self.storing.take().expect("a store answers a checkpoint being stored");
                stored.and_then(|()| self.stored(listed))
            }
        };
        if let Err(e) = &result {
            let delay = self.schedule.failed(Instant::now());
            self.manifest.last_error = Some(format!("{}: {e}", now_rfc3339()));
            tracing::error!("checkpoint failed ({e}); rows stay in memory and in the log, retrying in {delay:?}");
            // Best effort: let readers of the manifest see the error. No
            // store is in flight, so this is the newest manifest stored.
            let _ = self.publisher.store_manifest(&mut self.manifest);
        }
        self.publish_buffered_count();
        result.map_err(|source| Error::Checkpoint {
            source: Box::new(source),
        })
    }

    /// The parts are written: lists them in the manifest, and hands the
    /// summary and a copy of the manifest to the store thread.
    fn list(&mut self, cut: Cut, results: Vec<PartResult>) -> Result<(), Error> {
        let published = self
            .publisher
            .record(&cut.parts, results, &mut self.streams, &mut self.manifest, &self.stats);
        self.manifest.published_seq = self
            .streams
            .values()
            .filter_map(StreamBuffer::first_pending_seq)
            .min()
            .unwrap_or(self.next_seq);
        self.manifest.rings = self.rings.published(self.manifest.published_seq);
        let rows = published?;
        if rows > 0 {
            self.manifest.checkpoints += 1;
            self.manifest.last_checkpoint_at = Some(now_rfc3339());
            self.stats.checkpoints.fetch_add(1, Relaxed);
        }
        self.rejected.sync()?;
        // Merges wait `min_age` from now, not from the store.
        self.note_published(&cut.parts);
        let summary = (rows > 0 || cut.trigger == Trigger::Final).then_some(cut.summary);
        debug_assert!(self.storing.is_none(), "one manifest store at a time");
        self.publisher.store(summary, &mut self.manifest);
        self.storing = Some(Listed {
            trigger: cut.trigger,
            rows,
            published_seq: self.manifest.published_seq,
            started: cut.started,
        });
        Ok(())
    }

    /// The manifest naming the checkpoint's parts is stored: ring space and
    /// the log of those rows may go, and a merge may be committed.
    fn stored(&mut self, listed: Listed) -> Result<(), Error> {
        self.rings_published();
        // Only now, with the manifest naming the parts fsynced, may the log of
        // those rows go.
        if let Some(log) = self.log.as_mut() {
            log.wal.release_through(listed.published_seq)?;
        }
        self.check_free_space();
        self.schedule.succeeded();
        let (trigger, rows, elapsed) = (listed.trigger, listed.rows, listed.started.elapsed());
        tracing::debug!(?trigger, rows, ?elapsed, "checkpoint");
        if self.writing.is_none() {
            // No checkpoint is in flight now: a merge may be committed.
            self.commit_pending_compaction();
        }
        self.consider_compaction();
        Ok(())
    }

    /// The manifest naming the rings' published offsets is stored: producers
    /// may reuse that space, and drained rings of gone producers go.
    fn rings_published(&mut self) {
        self.rings.manifest_stored();
        for name in self.rings.retire(self.publisher.run()) {
            self.manifest.rings.remove(&name);
        }
    }

    /// The final flush: every row published, then the status, summary and
    /// manifest. If it fails the status stays `running`, which marks the run
    /// for recovery, and the log stays.
    pub(crate) fn finish(&mut self, status: RunStatus) -> Result<RunSummary, Error> {
        // A record sent from now on is handed back; every one before is taken.
        self.direct.close();
        self.flush_direct();
        self.schedule.clear_backoff();
        if let Some(log) = self.log.as_mut() {
            let result = log.wal.sync();
            if result.is_ok() {
                self.rings.log_synced();
            }
            self.note_log_result(result);
        }
        self.checkpoint(Trigger::Final)?;
        self.manifest.status = status;
        self.manifest.connected.clear();
        let summary = self.summary(status);
        self.publisher.store_summary(&summary)?;
        self.publisher.store_manifest(&mut self.manifest)?;
        self.rings_published();
        // Every row is published and the manifest says so: the log has done its job.
        if self.log.take().is_some() {
            self.publisher.run().remove_wal()?;
        }
        self.stats.rows_buffered.store(0, Relaxed);
        // The run is complete on disk; merging its parts changes no row.
        self.final_compaction();
        Ok(summary)
    }

    /// The run's summary now.
    fn summary(&self, status: RunStatus) -> RunSummary {
        let rows = self.manifest.streams.iter().map(|(k, s)| (k.clone(), s.rows)).collect();
        let mut summary = self.agg.summary(
            self.publisher.run().id(),
            status,
            rows,
            self.manifest.candles,
            self.manifest.rejected,
        );
        // Recovery counts only rows past this, so nothing is counted twice.
        summary.records = self.counted_through.max(self.next_seq);
        summary
    }

    /// Warns once when free space drops under twice the configured minimum.
    fn check_free_space(&mut self) {
        if self.settings.min_free_bytes == 0 {
            return;
        }
        let Ok(free) = self.publisher.fs().available_bytes(self.publisher.run().path()) else {
            return;
        };
        let low = free < 2 * self.settings.min_free_bytes;
        if low && !self.low_space_warned {
            tracing::warn!(
                free_mb = free >> 20,
                "the output filesystem is running out of space (under twice --min-free-mb)"
            );
        }
        self.low_space_warned = low;
    }
}
