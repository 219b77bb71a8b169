//! Publishing: sealed batches become part files (written by the
//! `PartWriter` thread), and the manifest and summary that name them are
//! replaced, each file atomically (`atomic_file.rs`), by the store thread
//! or, with no store in flight, by the worker itself.
//!
//! The order is what makes a crash at any point safe: parts first, then
//! `summary.json`, then `manifest.json`. A part the manifest does not list is
//! a leftover that recovery removes (its rows are replayed from the log); the
//! summary always covers at least the rows the manifest lists.
//!
//! Both threads answer on one channel ([`Done`]), so the worker waits for
//! whichever finishes first. The store thread has a thread of its own so
//! that a checkpoint's manifest is flushed while the next checkpoint's
//! parts are encoded: on a disk whose flush takes milliseconds, those four
//! flushes (two files and their folder, twice) were a bulk load's largest
//! serial wait.

use crate::atomic_file::publish_bytes;
use crate::buffer::StreamBuffer;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::job_thread::JobThread;
use crate::manifest::{Manifest, SchemaField};
use crate::part_file::{Format, PartCodec};
use crate::part_writer::{PartJob, PartResult, PartWriter};
use crate::run_dir::RunDir;
use crate::stats::Stats;
use crate::summary::RunSummary;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// What one of the publisher's threads finished.
pub(crate) enum Done {
    /// The parts of a checkpoint: each one's files, or why it was not
    /// published, in the order they were handed over.
    Parts(Vec<PartResult>),
    /// A summary and manifest handed to [`Publisher::store`]: stored, or
    /// the error.
    Stored(Result<(), Error>),
}

/// The contents of a `summary.json` (when given) and a `manifest.json` to
/// store, in that order. Serialized on the worker: that costs about what a
/// copy of the manifest would, the worker's manifest goes on changing, and
/// the store thread allocates next to nothing.
struct StoreJob {
    summary: Option<Vec<u8>>,
    manifest: Vec<u8>,
}

/// Writes a run's part files (through its [`PartWriter`] thread), summary
/// and manifest.
pub(crate) struct Publisher {
    run: RunDir,
    fs: Arc<dyn FileSystem>,
    /// The next part number of each stream.
    next_part: HashMap<String, u32>,
    /// The generation folder of each compacted stream (manifest `dir`).
    dirs: HashMap<String, String>,
    /// A new stream starts in generation 0 behind its symlink (compaction is
    /// on), so readers never meet a plain folder being exchanged for a link.
    new_streams_in_generations: bool,
    parts: PartWriter,
    stores: JobThread<StoreJob>,
    done: Receiver<Done>,
}

impl Publisher {
    /// A publisher continuing the parts `manifest` already lists.
    pub(crate) fn new(
        run: RunDir,
        fs: Arc<dyn FileSystem>,
        format: Format,
        codec: PartCodec,
        manifest: &Manifest,
    ) -> Result<Self, Error> {
        let next_part = manifest
            .streams
            .iter()
            .map(|(name, s)| {
                let highest = s
                    .files
                    .iter()
                    .filter_map(|f| RunDir::part_number(&f.path))
                    .max()
                    .unwrap_or(0);
                (name.clone(), highest + 1)
            })
            .collect();
        let dirs = manifest
            .streams
            .iter()
            .filter_map(|(name, s)| Some((name.clone(), s.dir.clone()?)))
            .collect();
        // One result of each thread at most is ever waiting: neither blocks.
        let (finished, done) = bounded(2);
        let parts = PartWriter::spawn(run.clone(), fs.clone(), format, codec, finished.clone())?;
        let stores = spawn_store_thread(run.clone(), fs.clone(), finished)?;
        Ok(Publisher {
            run,
            fs,
            next_part,
            dirs,
            new_streams_in_generations: false,
            parts,
            stores,
            done,
        })
    }

    /// Hands a checkpoint's parts to the part writer; the results come as
    /// [`Done::Parts`]. One job at a time.
    pub(crate) fn write_parts(&self, job: Vec<PartJob>) {
        self.parts.submit(job);
    }

    /// Hands `summary` (when given) and `manifest` to the store thread; the
    /// result comes as [`Done::Stored`]. One at a time; while one is in
    /// flight the worker must not store a manifest itself (it would be
    /// overtaken by the older copy).
    pub(crate) fn store(&self, summary: Option<RunSummary>, manifest: &mut Manifest) {
        manifest.updated_at = now_rfc3339();
        let job = StoreJob {
            summary: summary.as_ref().map(RunSummary::to_json),
            manifest: manifest.to_json(),
        };
        self.stores.submit(job);
    }

    /// Where the threads report what they finished (for a `select!`).
    pub(crate) fn done(&self) -> &Receiver<Done> {
        &self.done
    }

    /// Waits for the next thing a thread finishes; something must be in
    /// flight.
    pub(crate) fn wait(&self) -> Done {
        self.done.recv().expect("the publisher's threads answer every job")
    }

    /// The run directory.
    pub(crate) fn run(&self) -> &RunDir {
        &self.run
    }

    /// The filesystem files are written through.
    pub(crate) fn fs(&self) -> &dyn FileSystem {
        self.fs.as_ref()
    }

    /// A compaction moved `stream` to generation `dir`: later parts go there.
    pub(crate) fn set_dir(&mut self, stream: &str, dir: String) {
        self.dirs.insert(stream.to_owned(), dir);
    }

    /// Streams that have no part yet start in generation 0 (`RUN/STREAM` a
    /// symlink from the first part on); streams already published keep
    /// their layout.
    pub(crate) fn start_new_streams_in_generations(&mut self) {
        self.new_streams_in_generations = true;
    }

    /// The parts to write now: every sealed batch of every stream, oldest
    /// first, numbered after the stream's last published part.
    pub(crate) fn plan(&mut self, streams: &BTreeMap<Arc<str>, StreamBuffer>) -> Vec<PartJob> {
        let mut job = Vec::new();
        for (name, buf) in streams {
            let is_new = !self.next_part.contains_key(&**name) && !self.dirs.contains_key(&**name);
            // (A plain folder left by an older version keeps that layout.)
            let plain = || std::fs::symlink_metadata(self.run.stream_dir(name)).is_ok_and(|m| m.is_dir());
            if is_new && self.new_streams_in_generations && buf.sealed().next().is_some() && !plain() {
                self.dirs.insert(name.to_string(), RunDir::generation_rel(name, 0));
            }
            let first = *self.next_part.get(&**name).unwrap_or(&1);
            for (i, part) in buf.sealed().enumerate() {
                job.push(PartJob {
                    stream: name.clone(),
                    dir: self.dirs.get(&**name).cloned(),
                    number: first + i as u32,
                    part: part.clone(),
                });
            }
        }
        job
    }

    /// Lists the parts of a job that were written in `manifest` (not yet
    /// stored) and drops them from their buffers. Returns the rows published,
    /// or the first error.
    pub(crate) fn record(
        &mut self,
        job: &[(Arc<str>, u32)],
        results: Vec<PartResult>,
        streams: &mut BTreeMap<Arc<str>, StreamBuffer>,
        manifest: &mut Manifest,
        stats: &Stats,
    ) -> Result<u64, Error> {
        let mut published = 0u64;
        let mut first_error = None;
        for ((name, number), result) in job.iter().zip(results) {
            let files = match result {
                Ok(files) => files,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let buf = streams.get_mut(name).expect("a job's stream has a buffer");
            let rows = buf.front().map_or(0, |p| p.rows as u64);
            stats.files.fetch_add(files.len() as u64, Relaxed);
            stats
                .bytes_written
                .fetch_add(files.iter().map(|f| f.bytes).sum(), Relaxed);
            let entry = manifest.streams.entry(name.to_string()).or_default();
            if entry.dir.is_none() {
                entry.dir = self.dirs.get(&**name).cloned();
            }
            entry.rows += rows;
            entry.files.extend(files);
            entry.schema = buf
                .schema()
                .iter()
                .map(|(n, t)| SchemaField {
                    name: n.clone(),
                    ty: *t,
                })
                .collect();
            self.next_part.insert(name.to_string(), number + 1);
            buf.pop_published();
            published += rows;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    /// Replaces `summary.json`.
    pub(crate) fn store_summary(&self, summary: &RunSummary) -> Result<(), Error> {
        summary.store(self.fs(), &self.run)
    }

    /// Replaces `manifest.json`, stamping the time.
    pub(crate) fn store_manifest(&self, manifest: &mut Manifest) -> Result<(), Error> {
        manifest.updated_at = now_rfc3339();
        manifest.store(self.fs(), &self.run)
    }
}

/// The store thread's name.
const STORE_THREAD: &str = "rlcollect-store";

/// Starts the thread that stores summaries and manifests handed to
/// [`Publisher::store`], answering on `done`.
fn spawn_store_thread(run: RunDir, fs: Arc<dyn FileSystem>, done: Sender<Done>) -> Result<JobThread<StoreJob>, Error> {
    let serve = move |job: StoreJob| {
        let store = || {
            if let Some(summary) = &job.summary {
                publish_bytes(fs.as_ref(), &run.summary_path(), summary)?;
            }
            publish_bytes(fs.as_ref(), &run.manifest_path(), &job.manifest).map(|_| ())
        };
        let stored = unless_panicked(STORE_THREAD, store).and_then(|stored| stored);
        done.send(Done::Stored(stored)).is_ok()
    };
    JobThread::spawn(STORE_THREAD, serve).map_err(Error::io("spawn the manifest store thread"))
}

/// Runs `work`, or says that it panicked. The worker waits for every job
/// of the publisher's threads on one channel, so a thread must answer even
/// when its job panics (a bug in an encoder, say): the checkpoint then
/// fails and is retried, its rows still in memory and in the log, instead
/// of the collector hanging.
pub(crate) fn unless_panicked<T>(thread: &str, work: impl FnOnce() -> T) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| panicked(thread))
}

/// The error of a job whose thread panicked.
pub(crate) fn panicked(thread: &str) -> Error {
    Error::Io {
        context: format!("thread {thread} panicked"),
        source: std::io::Error::other("a bug: see the panic message above"),
    }
}

/// The time now as RFC 3339 with milliseconds, as the manifest records times.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
