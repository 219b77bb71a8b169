//! Publishing: sealed batches become part files (written by the
//! `PartWriter` thread), and the manifest and summary that name them are
//! replaced, each file atomically (`atomic_file.rs`).
//!
//! The order is what makes a crash at any point safe: parts first, then
//! `summary.json`, then `manifest.json`. A part the manifest does not list is
//! a leftover that recovery removes (its rows are replayed from the log); the
//! summary always covers at least the rows the manifest lists.

use crate::atomic_file::publish_bytes;
use crate::buffer::StreamBuffer;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::{Manifest, SchemaField};
use crate::part_file::{Format, PartCodec};
use crate::part_writer::{PartJob, PartResult, PartWriter};
use crate::run_dir::RunDir;
use crate::stats::Stats;
use crate::summary::RunSummary;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

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
    writer: PartWriter,
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
        let writer = PartWriter::spawn(run.clone(), fs.clone(), format, codec)?;
        Ok(Publisher {
            run,
            fs,
            next_part,
            dirs,
            new_streams_in_generations: false,
            writer,
        })
    }

    /// The thread that writes part files.
    pub(crate) fn writer(&mut self) -> &mut PartWriter {
        &mut self.writer
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
        let bytes = serde_json::to_vec_pretty(summary).expect("a summary serializes");
        publish_bytes(self.fs(), &self.run.summary_path(), &bytes).map(|_| ())
    }

    /// Replaces `manifest.json`, stamping the time.
    pub(crate) fn store_manifest(&self, manifest: &mut Manifest) -> Result<(), Error> {
        manifest.updated_at = now_rfc3339();
        manifest.store(self.fs(), &self.run)
    }
}

/// The time now as RFC 3339 with milliseconds, as the manifest records times.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
