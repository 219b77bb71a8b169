//! [`DirectBatches`]: records sent one by one through
//! [`Handle::send`](crate::Handle::send), gathered into chunks on the
//! sending threads.
//!
//! Each producer thread appends its records to the columns of a batch of its
//! own (one of [`SHARDS`], picked once per thread), so the per-record work
//! (column appends, the log line's JSON, freeing the record) runs on the
//! producers' cores, not on the worker. A full batch becomes a ready chunk and
//! the worker is told which batch has one; the worker then takes that batch's
//! ready chunks in order. Only the worker takes, so the rows of one thread
//! keep their order; and it takes everything, partial batches too, on every
//! tick, every requested checkpoint and the final flush, so a record waits at
//! most one tick, as it did when the worker gathered them itself.
//!
//! Backpressure: a thread whose batch holds as many ready records as the
//! channel would hold (at most [`MAX_READY`] chunks) waits until the worker
//! takes them. After [`close`](DirectBatches::close)
//! (the final flush) every push hands its record back.

use crate::chunk::{Chunk, ChunkBuilder};
use crate::record::{Control, Record};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};

/// How many batches a run keeps. Threads beyond this share one (still in
/// order per thread: a batch is one ordered sequence).
pub(crate) const SHARDS: usize = 8;

/// Ready chunks a batch may hold before its thread waits for the worker,
/// at most: 4 chunks of 4096 rows keep a thread well ahead of the worker's
/// take, and a longer queue only costs memory.
const MAX_READY: usize = 4;

/// How much one batch holds: records per chunk, and ready chunks before its
/// thread waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backlog {
    batch_rows: usize,
    max_ready: usize,
}

impl Backlog {
    /// Chunks of `batch_rows` records, with about `records` (the channel's
    /// capacity) waiting per thread: at least one chunk, at most [`MAX_READY`].
    pub(crate) fn new(batch_rows: usize, records: usize) -> Self {
        let batch_rows = batch_rows.min(records).max(1);
        Backlog {
            batch_rows,
            max_ready: (records / batch_rows).clamp(1, MAX_READY),
        }
    }
}

/// Why a push gave its record back.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The batch is full and the caller would not wait.
    Full(Record),
    /// The run's final flush has begun.
    Closed(Record),
}

/// The batches of one run (see the module docs).
pub(crate) struct DirectBatches {
    shards: Box<[Shard]>,
    backlog: Backlog,
    /// Some record was ever pushed. A sidecar's run never pushes, and its
    /// worker then need not lock every batch on each message. Relaxed is
    /// enough: a push publishes it with the batch lock it then releases (and
    /// any message it sends after), and the final flush's `close` takes
    /// every batch lock before it looks.
    used: AtomicBool,
}

struct Shard {
    state: Mutex<ShardState>,
    /// Signalled when the worker takes this batch's ready chunks, or closes.
    taken: Condvar,
}

struct ShardState {
    builder: ChunkBuilder,
    ready: VecDeque<Chunk>,
    /// Rows in `ready` (for the buffered-rows count).
    ready_rows: usize,
    /// The worker has been told about `ready` and has not taken it yet.
    announced: bool,
    closed: bool,
}

impl DirectBatches {
    /// [`SHARDS`] batches, each building with a builder from `builder`.
    pub(crate) fn new(builder: impl Fn() -> ChunkBuilder, backlog: Backlog) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard {
                state: Mutex::new(ShardState {
                    builder: builder(),
                    ready: VecDeque::new(),
                    ready_rows: 0,
                    announced: false,
                    closed: false,
                }),
                taken: Condvar::new(),
            })
            .collect();
        DirectBatches {
            shards,
            backlog,
            used: AtomicBool::new(false),
        }
    }

    /// Appends `record` to the calling thread's batch. `wait`: block while the
    /// batch is full instead of handing the record back. `Ok(Some(shard))`:
    /// that batch has a ready chunk the worker has not been told about yet
    /// (the caller tells it).
    // The record comes back unboxed, as from `Handle::send`.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(&self, record: Record, wait: bool) -> Result<Option<usize>, Refused> {
        if !self.used.load(Relaxed) {
            self.used.store(true, Relaxed);
        }
        let index = thread_slot() % self.shards.len();
        let shard = &self.shards[index];
        let mut state = lock(&shard.state);
        loop {
            if state.closed {
                return Err(Refused::Closed(record));
            }
            if state.ready.len() < self.backlog.max_ready {
                break;
            }
            if !wait {
                return Err(Refused::Full(record));
            }
            state = shard.taken.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.builder.push(&record, None, true);
        let requested = matches!(record, Record::Control(Control::Checkpoint));
        if state.builder.len() < self.backlog.batch_rows && !requested {
            return Ok(None);
        }
        let chunk = state.builder.take(None);
        state.ready_rows += chunk.rows as usize;
        state.ready.push_back(chunk);
        let tell = !std::mem::replace(&mut state.announced, true);
        drop(state);
        // The record's strings are freed here, outside the lock.
        drop(record);
        Ok(tell.then_some(index))
    }

    /// The ready chunks of batch `shard`, in order.
    pub(crate) fn take_ready(&self, shard: usize) -> Vec<Chunk> {
        let Some(shard) = self.shards.get(shard) else {
            return Vec::new();
        };
        let mut state = lock(&shard.state);
        let chunks = take_ready(&mut state);
        drop(state);
        shard.taken.notify_all();
        chunks
    }

    /// Every batch's chunks, partial ones too, in order per batch.
    pub(crate) fn take_all(&self) -> Vec<Chunk> {
        self.take_all_but(None)
    }

    /// As [`take_all`](Self::take_all), leaving batch `skip` alone.
    pub(crate) fn take_all_but(&self, skip: Option<usize>) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        if !self.used.load(Relaxed) {
            return chunks;
        }
        for (_, shard) in self.shards.iter().enumerate().filter(|(i, _)| Some(*i) != skip) {
            let mut state = lock(&shard.state);
            chunks.extend(take_ready(&mut state));
            if state.builder.len() > 0 {
                chunks.push(state.builder.take(None));
            }
            drop(state);
            shard.taken.notify_all();
        }
        chunks
    }

    /// From now on every push hands its record back; threads waiting for
    /// room get theirs back too. What was pushed before stays to be taken.
    pub(crate) fn close(&self) {
        for shard in self.shards.iter() {
            lock(&shard.state).closed = true;
            shard.taken.notify_all();
        }
    }

    /// Rows pushed and not taken yet.
    pub(crate) fn pending_rows(&self) -> usize {
        if !self.used.load(Relaxed) {
            return 0;
        }
        self.shards
            .iter()
            .map(|shard| {
                let state = lock(&shard.state);
                state.ready_rows + state.builder.rows() as usize
            })
            .sum()
    }
}

fn take_ready(state: &mut ShardState) -> Vec<Chunk> {
    state.announced = false;
    state.ready_rows = 0;
    state.ready.drain(..).collect()
}

/// A push runs no user code; should one panic anyway, the worker still takes
/// the batch rather than lose every later record of the run.
fn lock(state: &Mutex<ShardState>) -> MutexGuard<'_, ShardState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's batch number, assigned round-robin on first use, so that a
/// few producer threads get a batch each.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SLOT: usize = NEXT.fetch_add(1, Relaxed));
    SLOT.with(|slot| *slot)
}

#[cfg(test)]
mod tests;
