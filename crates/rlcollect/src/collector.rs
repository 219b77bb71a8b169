//! The public face of the engine: [`Collector`] and the cheap [`Handle`] that
//! producer threads clone. Settings live in [`CollectorBuilder`].

use crate::builder::CollectorBuilder;
use crate::chunk::{Chunk, LinesPool};
use crate::direct::{DirectBatches, Refused};
use crate::error::Error;
use crate::manifest::RunStatus;
use crate::message::Msg;
use crate::record::Record;
use crate::run_dir::RunDir;
use crate::stats::{Stats, StatsSnapshot};
use crate::summary::RunSummary;
use crossbeam_channel::{bounded, RecvTimeoutError, Sender, TrySendError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A cheap, cloneable sender of records to a [`Collector`].
///
/// Each thread gathers what it sends into chunks of its own (columns built
/// on the sending thread, not on the worker); the worker takes them when a
/// chunk is full, on every tick (a few times a second at most), on every
/// checkpoint and at the final flush. Memory is bounded:
/// [`send`](Self::send) blocks while the thread's chunks wait for the worker
/// (backpressure, never an unbounded queue and never a dropped record);
/// [`try_send`](Self::try_send) gives the record back instead.
#[derive(Clone)]
pub struct Handle {
    pub(crate) tx: Sender<Msg>,
    pub(crate) stats: Arc<Stats>,
    /// Where records sent one by one gather.
    pub(crate) direct: Arc<DirectBatches>,
    /// What chunks for this run keep: candle rows, each row's line (for the log).
    pub(crate) chunk_settings: (bool, bool),
    /// The readers' buffers for the log's lines.
    pub(crate) lines_pool: LinesPool,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

/// The collector has stopped; the record is given back.
#[derive(Debug, thiserror::Error)]
#[error("the collector has stopped")]
pub struct Closed<T>(pub T);

impl Handle {
    /// Sends a record; blocks while this thread's earlier records wait for
    /// the worker (backpressure).
    // The error gives the record back unboxed: boxing would cost every send an allocation.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, record: Record) -> Result<(), Closed<Record>> {
        self.push(record, true).map_err(|e| match e {
            Refused::Closed(record) | Refused::Full(record) => Closed(record),
        })
    }

    /// Sends a record if this thread's chunks have room; gives it back otherwise.
    #[allow(clippy::result_large_err)] // see `send`
    pub fn try_send(&self, record: Record) -> Result<(), TrySendError<Record>> {
        self.push(record, false).map_err(|e| match e {
            Refused::Full(record) => TrySendError::Full(record),
            Refused::Closed(record) => TrySendError::Disconnected(record),
        })
    }

    /// Appends `record` to this thread's batch (`wait`: block while it is
    /// full) and tells the worker when the batch has a chunk ready.
    #[allow(clippy::result_large_err)] // see `send`
    fn push(&self, record: Record, wait: bool) -> Result<(), Refused> {
        if let Some(shard) = self.direct.push(record, wait)? {
            // A failed send means the worker is gone, and with it the run:
            // `close` (or a panic) ended it after this push. A full channel
            // (`try_send`) delays the batch to the next tick at most.
            let _ = match wait {
                true => self.tx.send(Msg::BatchReady(shard)).map_err(|_| ()),
                false => self.tx.try_send(Msg::BatchReady(shard)).map_err(|_| ()),
            };
        }
        Ok(())
    }

    /// Sends decoded records of one producer (the readers do).
    pub(crate) fn send_chunk(&self, chunk: Chunk) -> Result<(), Closed<()>> {
        self.tx.send(Msg::Chunk(chunk)).map_err(|_| Closed(()))
    }

    /// The buffers all readers take the log's lines in.
    pub(crate) fn lines_pool(&self) -> &LinesPool {
        &self.lines_pool
    }

    /// Whether chunks for this run keep candle rows and each row's line.
    pub(crate) fn chunk_settings(&self) -> (bool, bool) {
        self.chunk_settings
    }

    /// A ring reader drained ring `name` to `end` and its producer is gone.
    pub(crate) fn ring_ended(&self, name: &str, end: u64) {
        let _ = self.tx.send(Msg::RingEnded {
            name: name.to_owned(),
            end,
        });
    }

    /// Asks for a checkpoint and waits until it is done. On failure the rows
    /// stay buffered and the error says why ([`Error::Checkpoint`]).
    pub fn checkpoint(&self) -> Result<(), Error> {
        let (ack, done) = bounded(1);
        self.tx
            .send(Msg::Checkpoint(Some(ack)))
            .map_err(|_| Error::WorkerGone)?;
        done.recv().map_err(|_| Error::WorkerGone)?
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
    pub(crate) handle: Handle,
    pub(crate) thread: Option<JoinHandle<()>>,
    pub(crate) run: RunDir,
    pub(crate) drop_timeout: Duration,
}

impl Collector {
    /// Starts configuring a collector writing runs under `out_dir`.
    pub fn builder(out_dir: impl Into<PathBuf>) -> CollectorBuilder {
        CollectorBuilder::new(out_dir.into())
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
        self.run.path()
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        self.run.id()
    }

    /// The run directory and the names in it.
    pub fn run(&self) -> &RunDir {
        &self.run
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
                RecvTimeoutError::Timeout => Error::Timeout(t),
                RecvTimeoutError::Disconnected => Error::WorkerGone,
            }),
        };
        // On a timeout the worker is still flushing (or hung): leave it
        // running rather than block forever.
        let result = answer?;
        let _ = thread.join();
        result.map_err(|source| Error::FinalFlush {
            run_dir: self.run.path().to_owned(),
            source: Box::new(source),
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        let timeout = self.drop_timeout;
        if let Err(e) = self.shutdown(RunStatus::Complete, Some(timeout)) {
            tracing::error!(run_dir = %self.run.path().display(), "collector dropped without close(); final flush failed: {e}");
        }
    }
}
