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
use std::collections::VecDeque;
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
    /// Parts younger than `opts.min_age`, oldest first: not merged yet.
    young: VecDeque<(Arc<str>, u32, Instant)>,
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
            young: VecDeque::new(),
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

    /// Parts `(stream, number)` were published now.
    pub(crate) fn published(&mut self, parts: &[(Arc<str>, u32)]) {
        if self.opts.min_age.is_zero() {
            return;
        }
        let now = Instant::now();
        self.young.extend(parts.iter().map(|(s, n)| (s.clone(), *n, now)));
    }

    /// Forgets parts that are old enough now; true if there were any (a
    /// merge may have become possible).
    pub(crate) fn aged(&mut self) -> bool {
        let before = self.young.len();
        while self
            .young
            .front()
            .is_some_and(|(_, _, at)| at.elapsed() >= self.opts.min_age)
        {
            self.young.pop_front();
        }
        self.young.len() < before
    }

    /// How many of `entry`'s files (in order) may be merged now: those before
    /// the first that holds a young part.
    pub(crate) fn mergeable(&self, stream: &str, entry: &StreamEntry) -> usize {
        let first_young = self
            .young
            .iter()
            .filter(|(s, _, _)| &**s == stream)
            .map(|(_, n, _)| *n)
            .min();
        let Some(first_young) = first_young else {
            return entry.files.len();
        };
        entry
            .files
            .iter()
            .position(|f| RunDir::part_number(&f.path).is_some_and(|last| last >= first_young))
            .unwrap_or(entry.files.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;
    use crate::manifest::FileEntry;

    fn entry(names: &[&str]) -> StreamEntry {
        let files = names
            .iter()
            .map(|n| FileEntry {
                path: format!("ev/{n}"),
                format: "parquet".into(),
                rows: 1,
                first_seq: 0,
                last_seq: 0,
                bytes: 1,
            })
            .collect();
        StreamEntry {
            files,
            ..StreamEntry::default()
        }
    }

    #[test]
    fn parts_younger_than_the_minimum_age_and_those_after_them_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path(), "r").unwrap();
        let opts = CompactOptions {
            min_age: Duration::from_millis(200),
            ..CompactOptions::default()
        };
        let mut c = Compactor::spawn(run, Arc::new(RealFs), opts).unwrap();
        let ev = entry(&[
            "part-000001-000004.parquet",
            "part-000005.parquet",
            "part-000006.parquet",
        ]);
        c.published(&[("ev".into(), 5), ("ev".into(), 6)]);
        assert_eq!(c.mergeable("ev", &ev), 1, "only the merged file is old enough");
        assert_eq!(
            c.mergeable("other", &ev),
            3,
            "young parts of another stream do not count"
        );
        assert!(!c.aged());
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.aged(), "the parts came of age");
        assert_eq!(c.mergeable("ev", &ev), 3);
        assert!(!c.aged(), "nothing more to age");
    }
}
