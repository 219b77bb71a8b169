//! [`Compactor`]: the background thread of a live run. It merges parts
//! (step 1) at a lower CPU priority, and removes replaced generations once
//! their grace is over (step 5). It never touches the manifest or the
//! stream links: the worker commits what it merged (`commit.rs`) between two
//! checkpoints, so ingestion and checkpoints never wait for a merge.

use super::{merge_stream, CompactOptions, Group, Merged};
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::StreamEntry;
use crate::run_dir::RunDir;
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The nice value of the compactor thread: merging yields to ingestion.
const NICE: i32 = 10;

enum Request {
    Merge {
        stream: String,
        entry: StreamEntry,
        groups: Vec<Group>,
    },
    Retire {
        dirs: Vec<PathBuf>,
        at: Instant,
    },
}

/// The compactor thread, owned by the worker's `ActiveRun`.
pub(crate) struct Compactor {
    pub(crate) opts: CompactOptions,
    run_path: PathBuf,
    requests: Option<Sender<Request>>,
    done: Receiver<Result<Merged, Error>>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<PathBuf>>>,
    /// A merge is under way.
    busy: bool,
    /// A merge done while a checkpoint was in flight, waiting to be committed.
    pub(crate) pending: Option<Merged>,
}

impl Compactor {
    /// Starts the thread for `run`.
    pub(crate) fn spawn(run: RunDir, fs: Arc<dyn FileSystem>, opts: CompactOptions) -> Result<Compactor, Error> {
        let (requests, incoming) = unbounded::<Request>();
        let (results, done) = unbounded();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let run_path = run.path().to_owned();
        let thread = std::thread::Builder::new()
            .name("rlcollect-compact".into())
            .spawn(move || {
                lower_priority();
                serve(&run, fs.as_ref(), &incoming, &results, &stop)
            })
            .map_err(Error::io("spawn the compactor thread"))?;
        Ok(Compactor {
            opts,
            run_path,
            requests: Some(requests),
            done,
            cancel,
            thread: Some(thread),
            busy: false,
            pending: None,
        })
    }

    /// True when no merge is under way or waiting to be committed.
    pub(crate) fn idle(&self) -> bool {
        !self.busy && self.pending.is_none()
    }

    /// Where finished merges arrive (for the worker's `select!`).
    pub(crate) fn done(&self) -> Receiver<Result<Merged, Error>> {
        self.done.clone()
    }

    /// Starts merging `groups` of `entry`'s files.
    pub(crate) fn merge(&mut self, stream: &str, entry: StreamEntry, groups: Vec<Group>) {
        self.busy = true;
        self.send(Request::Merge {
            stream: stream.to_owned(),
            entry,
            groups,
        });
    }

    /// A merge's result arrived.
    pub(crate) fn received(&mut self) {
        self.busy = false;
    }

    /// Removes `dirs` once the grace is over.
    pub(crate) fn retire(&self, dirs: Vec<PathBuf>) {
        if !dirs.is_empty() {
            let at = Instant::now() + self.opts.grace;
            self.send(Request::Retire { dirs, at });
        }
    }

    fn send(&self, request: Request) {
        if let Some(tx) = &self.requests {
            let _ = tx.send(request);
        }
    }

    /// Stops the thread: a merge under way is cancelled (its folder removed);
    /// returns the replaced generations still waiting for their grace.
    pub(crate) fn stop(&mut self) -> Vec<PathBuf> {
        self.cancel.store(true, Ordering::Relaxed);
        drop(self.requests.take());
        let mut waiting = self
            .thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        // A merge that finished meanwhile is not committed: nothing names its folder.
        let uncommitted = self.pending.take().into_iter().chain(self.done.try_iter().flatten());
        waiting.extend(uncommitted.map(|m| self.run_path.join(m.dir)));
        waiting
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread's loop: merges on request, removes retired folders when due.
/// Returns the folders still waiting when the run ends.
fn serve(
    run: &RunDir,
    fs: &dyn FileSystem,
    incoming: &Receiver<Request>,
    results: &Sender<Result<Merged, Error>>,
    cancel: &AtomicBool,
) -> Vec<PathBuf> {
    let mut retiring: Vec<(Instant, PathBuf)> = Vec::new();
    loop {
        let now = Instant::now();
        retiring.retain(|(at, dir)| {
            let due = *at <= now;
            if due {
                if let Err(e) = fs.remove_dir_all(dir) {
                    tracing::warn!(dir = %dir.display(), "cannot remove a replaced generation: {e}");
                }
            }
            !due
        });
        let wait = retiring.iter().map(|(at, _)| at.saturating_duration_since(now)).min();
        let request = match wait {
            Some(wait) => incoming.recv_timeout(wait.max(Duration::from_millis(1))),
            None => incoming.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match request {
            Ok(Request::Merge { stream, entry, groups }) => {
                let merged = merge_stream(run, fs, &stream, &entry, &groups, cancel);
                if results.send(merged).is_err() {
                    break;
                }
            }
            Ok(Request::Retire { dirs, at }) => retiring.extend(dirs.into_iter().map(|d| (at, d))),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    retiring.into_iter().map(|(_, d)| d).collect()
}

/// The idle I/O class (`IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT`): the
/// merge's reads and writes wait for the checkpoints' where the I/O scheduler
/// honours classes (BFQ); elsewhere it changes nothing.
const IOPRIO_IDLE: libc::c_int = 3 << 13;

/// Lowers this thread's CPU and I/O priority (Linux: both calls on the
/// thread id apply to that thread only). Best effort.
fn lower_priority() {
    // SAFETY: gettid has no arguments and cannot fail; setpriority and
    // ioprio_set only read their integer arguments.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid);
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE);
        libc::syscall(libc::SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, tid, IOPRIO_IDLE);
    }
}
