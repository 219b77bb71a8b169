//! Opening a run for writing: create, check space, lock, recover if its last
//! collector died, resume. What comes out is everything a writer needs to
//! continue exactly where the published state ends.

use super::{RunDir, RunLock};
use crate::atomic_file::sync_dir;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::{Manifest, RunStatus};
use crate::part_file::Format;
use crate::publisher::now_rfc3339;
use crate::recover::recover_locked;
use crate::summary::Aggregates;
use std::sync::Arc;
use std::time::Duration;

/// How to open a run.
pub(crate) struct OpenOptions {
    /// The filesystem files are written through.
    pub fs: Arc<dyn FileSystem>,
    /// The part format (recovery writes replayed rows in it).
    pub format: Format,
    /// Refuse to open with less free space than this (0: no check).
    pub min_free_bytes: u64,
    /// How long to wait for another collector to let go of the run.
    pub lock_wait: Duration,
}

/// A run opened for writing, its lock held.
pub(crate) struct OpenRun {
    pub run: RunDir,
    pub lock: RunLock,
    /// Status `running`, `records` = `published_seq` (the next `_seq`).
    pub manifest: Manifest,
    /// The statistics so far (empty for a new run).
    pub aggregates: Aggregates,
}

impl RunDir {
    /// Opens the run for writing (see the module docs), storing its manifest
    /// as `running` and pointing `OUT/latest` at it.
    pub(crate) fn open(self, opts: &OpenOptions) -> Result<OpenRun, Error> {
        std::fs::create_dir_all(self.path()).map_err(Error::io(format!("create {}", self.path().display())))?;
        self.check_free_space(opts)?;
        let lock = RunLock::acquire_waiting(&self, opts.lock_wait)?;
        self.remove_temp_files();
        // A compaction cut short by a crash: the manifest says which
        // generation of each stream is the real one.
        if let Ok(m) = self.load_manifest() {
            self.reconcile_generations(opts.fs.as_ref(), &m)?;
        }
        // A run left `running` with its lock free lost its collector: recover
        // it (replay the log) before continuing it.
        if self.load_manifest().is_ok_and(|m| m.status == RunStatus::Running) {
            recover_locked(&self, opts.fs.clone(), opts.format)?;
        }
        let (manifest, aggregates) = self.resume()?;
        manifest.store(opts.fs.as_ref(), &self)?;
        sync_dir(opts.fs.as_ref(), self.out())?;
        self.point_latest()?;
        Ok(OpenRun {
            run: self,
            lock,
            manifest,
            aggregates,
        })
    }

    fn check_free_space(&self, opts: &OpenOptions) -> Result<(), Error> {
        if opts.min_free_bytes == 0 {
            return Ok(());
        }
        let free = opts
            .fs
            .available_bytes(self.path())
            .map_err(Error::io(format!("check free space of {}", self.path().display())))?;
        if free < opts.min_free_bytes {
            return Err(Error::LowDiskSpace {
                path: self.path().to_owned(),
                available_mb: free >> 20,
                required_mb: opts.min_free_bytes >> 20,
            });
        }
        Ok(())
    }

    /// The manifest and statistics to continue from: a new run's, or the
    /// published state of an earlier one (after recovery, if it crashed).
    fn resume(&self) -> Result<(Manifest, Aggregates), Error> {
        if !self.manifest_path().exists() {
            return Ok((Manifest::new_run(self.id(), now_rfc3339()), Aggregates::default()));
        }
        let mut manifest = self.load_manifest()?;
        let clean_end = manifest.status != RunStatus::Running;
        if !clean_end {
            tracing::warn!(
                "run {} was not closed cleanly; continuing after its last published record (_seq {})",
                self.id(),
                manifest.published_seq
            );
        }
        // Records past the last checkpoint of a crashed run are not on disk;
        // numbering resumes at the first unpublished `_seq` so rows stay gap-free.
        manifest.records = manifest.published_seq;
        manifest.status = RunStatus::Running;
        let aggregates = match clean_end {
            true => self.load_summary().map(|s| Aggregates::resume(&s)).unwrap_or_default(),
            false => Aggregates::default(),
        };
        Ok((manifest, aggregates))
    }
}
