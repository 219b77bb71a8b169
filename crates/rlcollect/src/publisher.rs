//! Publishing: sealed batches become part files, and the manifest and summary
//! that name them are replaced, each file atomically (`atomic_file.rs`).
//!
//! The order is what makes a crash at any point safe: parts first, then
//! `summary.json`, then `manifest.json`. A part the manifest does not list is
//! a leftover that recovery removes (its rows are replayed from the log); the
//! summary always covers at least the rows the manifest lists.

use crate::atomic_file::{publish_bytes, sync_dir};
use crate::buffer::{SealedBatch, StreamBuffer};
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::{FileEntry, Manifest, SchemaField};
use crate::part_file::{publish_csv, publish_parquet, Format};
use crate::run_dir::RunDir;
use crate::stats::Stats;
use crate::summary::RunSummary;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Writes a run's part files, summary and manifest.
pub(crate) struct Publisher {
    run: RunDir,
    fs: Arc<dyn FileSystem>,
    format: Format,
    /// The next part number of each stream.
    next_part: HashMap<String, u32>,
}

impl Publisher {
    /// A publisher continuing the parts `manifest` already lists.
    pub(crate) fn new(run: RunDir, fs: Arc<dyn FileSystem>, format: Format, manifest: &Manifest) -> Self {
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
        Publisher {
            run,
            fs,
            format,
            next_part,
        }
    }

    /// The run directory.
    pub(crate) fn run(&self) -> &RunDir {
        &self.run
    }

    /// The filesystem files are written through.
    pub(crate) fn fs(&self) -> &dyn FileSystem {
        self.fs.as_ref()
    }

    /// Publishes every sealed batch of every stream, oldest first, and lists
    /// each file in `manifest` (not yet stored). A batch leaves its buffer only
    /// once its files are published; a stream stops at its first failure and
    /// keeps the rest. Returns the rows published, or the first error.
    pub(crate) fn publish_sealed(
        &mut self,
        streams: &mut BTreeMap<Arc<str>, StreamBuffer>,
        manifest: &mut Manifest,
        stats: &Stats,
    ) -> Result<u64, Error> {
        let mut published = 0u64;
        let mut first_error = None;
        for (name, buf) in streams.iter_mut() {
            while let Some(part) = buf.front() {
                let number = *self.next_part.get(&**name).unwrap_or(&1);
                let files = match self.publish_part(name, number, part) {
                    Ok(files) => files,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        break;
                    }
                };
                let rows = part.rows as u64;
                stats.files.fetch_add(files.len() as u64, Relaxed);
                stats
                    .bytes_written
                    .fetch_add(files.iter().map(|f| f.bytes).sum(), Relaxed);
                let entry = manifest.streams.entry(name.to_string()).or_default();
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
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    /// Writes one batch as part `number` of `stream`, in every configured format.
    fn publish_part(&self, stream: &str, number: u32, part: &SealedBatch) -> Result<Vec<FileEntry>, Error> {
        let dir = self.run.stream_dir(stream);
        if !dir.is_dir() {
            self.fs
                .create_dir_all(&dir)
                .map_err(Error::io(format!("create {}", dir.display())))?;
            sync_dir(self.fs(), self.run.path())?;
        }
        let mut files = Vec::with_capacity(2);
        for (ext, wanted) in [("parquet", self.format.parquet()), ("csv", self.format.csv())] {
            if !wanted {
                continue;
            }
            let name = self.run.part(stream, number, ext);
            let bytes = match ext {
                "parquet" => publish_parquet(self.fs(), &name.path, part, self.run.id())?,
                _ => publish_csv(self.fs(), &name.path, part)?,
            };
            files.push(FileEntry {
                path: name.rel,
                format: ext.to_owned(),
                rows: part.rows as u64,
                first_seq: part.first_seq,
                last_seq: part.last_seq,
                bytes,
            });
        }
        Ok(files)
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
