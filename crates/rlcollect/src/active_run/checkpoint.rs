//! Checkpoints and the final flush of an [`ActiveRun`].
//!
//! A checkpoint seals every buffered row at the exact point it is cut and
//! hands the sealed batches to the writer thread, which encodes and writes
//! the parts while the worker takes more rows. When the parts are written,
//! `summary.json` (as it was when the checkpoint was cut), then
//! `manifest.json` are stored, and only then are the log segments whose rows
//! the manifest now lists released. On an error the rows stay buffered (and
//! logged), `last_error` goes into the manifest, and the next try waits for
//! the backoff.

use super::ActiveRun;
use crate::buffer::StreamBuffer;
use crate::error::Error;
use crate::manifest::RunStatus;
use crate::part_writer::PartResult;
use crate::publisher::now_rfc3339;
use crate::schedule::Trigger;
use crate::summary::RunSummary;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// A checkpoint whose parts the writer thread is writing.
pub(super) struct InFlight {
    trigger: Trigger,
    /// The parts, as (stream, part number), in the order of the job.
    parts: Vec<(Arc<str>, u32)>,
    /// The summary of the rows the job publishes, taken when it was cut.
    summary: RunSummary,
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
    /// writer thread. A requested checkpoint (and the final flush) waits for
    /// it and says how it went; the others finish in the background
    /// ([`parts_written`](Self::parts_written)). One is in flight at a time:
    /// a new one first waits for the last, so parts end exactly where their
    /// checkpoint was cut.
    pub(crate) fn checkpoint(&mut self, trigger: Trigger) -> Result<(), Error> {
        // A failure of the one in flight is recorded; its rows go with this one.
        let _ = self.settle();
        for buf in self.streams.values_mut() {
            buf.seal();
        }
        self.schedule.cut(Instant::now());
        let job = self.publisher.plan(&self.streams);
        self.in_flight = Some(InFlight {
            trigger,
            parts: job.iter().map(|p| (p.stream.clone(), p.number)).collect(),
            summary: self.summary(self.manifest.status),
            started: Instant::now(),
        });
        self.publisher.writer().submit(job);
        if matches!(trigger, Trigger::Requested | Trigger::Final) {
            self.settle()
        } else {
            Ok(())
        }
    }

    /// Waits for the checkpoint in flight, if any, and completes it.
    fn settle(&mut self) -> Result<(), Error> {
        if !self.publisher.writer().in_flight() {
            return Ok(());
        }
        let results = self.publisher.writer().wait();
        self.parts_written(results)
    }

    /// The writer thread finished the checkpoint in flight: lists what it
    /// wrote, then the summary and the manifest, then releases the log.
    pub(crate) fn parts_written(&mut self, results: Vec<PartResult>) -> Result<(), Error> {
        self.publisher.writer().received();
        let job = self.in_flight.take().expect("results answer a job in flight");
        let result = self.complete(&job, results);
        match &result {
            Ok(rows) => {
                self.schedule.succeeded();
                self.note_published(&job.parts);
                tracing::debug!(trigger = ?job.trigger, rows, elapsed = ?job.started.elapsed(), "checkpoint");
                // No checkpoint is in flight now: a merge may be committed.
                self.commit_pending_compaction();
                self.consider_compaction();
            }
            Err(e) => {
                let delay = self.schedule.failed(Instant::now());
                self.manifest.last_error = Some(format!("{}: {e}", now_rfc3339()));
                tracing::error!("checkpoint failed ({e}); rows stay buffered, retrying in {delay:?}");
                // Best effort: let readers of the manifest see the error.
                let _ = self.publisher.store_manifest(&mut self.manifest);
            }
        }
        self.publish_buffered_count();
        result.map(|_| ()).map_err(|source| Error::Checkpoint {
            source: Box::new(source),
        })
    }

    /// The steps after the parts are written; returns the rows published.
    fn complete(&mut self, job: &InFlight, results: Vec<PartResult>) -> Result<u64, Error> {
        let published = self
            .publisher
            .record(&job.parts, results, &mut self.streams, &mut self.manifest, &self.stats);
        self.manifest.published_seq = self
            .streams
            .values()
            .filter_map(StreamBuffer::first_pending_seq)
            .min()
            .unwrap_or(self.next_seq);
        self.manifest.rings = self.rings.published(self.manifest.published_seq);
        let published = published?;
        if published > 0 {
            self.manifest.checkpoints += 1;
            self.manifest.last_checkpoint_at = Some(now_rfc3339());
            self.stats.checkpoints.fetch_add(1, Relaxed);
        }
        self.rejected.sync()?;
        // The summary goes first: it then always covers at least the rows the
        // manifest lists, which recovery relies on.
        if published > 0 || job.trigger == Trigger::Final {
            self.publisher.store_summary(&job.summary)?;
        }
        self.publisher.store_manifest(&mut self.manifest)?;
        self.rings_published();
        // Only now, with the manifest naming the parts fsynced, may the log of
        // those rows go.
        if let Some(log) = self.log.as_mut() {
            log.wal.release_through(self.manifest.published_seq)?;
        }
        self.check_free_space();
        Ok(published)
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
