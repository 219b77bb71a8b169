//! [`compact_run`]: the full merge of a run that no collector writes (a
//! finished run, or a crashed one after `recover`), including runs written
//! before generations existed (plain stream folders).

use super::{apply, merge_stream, CompactOptions};
use crate::error::Error;
use crate::fs::{FileSystem, RealFs};
use crate::manifest::{Manifest, RunStatus};
use crate::run_dir::{RunDir, RunLock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// What [`compact_run`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactReport {
    /// Per stream: (files before, files after), Parquet and CSV together.
    pub files: BTreeMap<String, (usize, usize)>,
    /// Leftover generations of an interrupted compaction that were removed first.
    pub leftovers_removed: usize,
}

/// Merges every stream of the run at `run_dir` into files of the target size
/// (SPEC §3), committing each stream as a live compaction does, then removes
/// the replaced generations after `opts.grace`. Running it again changes no
/// row. Fails if a collector holds the run, or if the run crashed and was
/// not recovered yet.
pub fn compact_run(run_dir: &Path, opts: &CompactOptions) -> Result<CompactReport, Error> {
    compact_run_with(run_dir, opts, &RealFs)
}

/// [`compact_run`] through a given filesystem (tests inject crashes).
#[doc(hidden)]
pub fn compact_run_with(run_dir: &Path, opts: &CompactOptions, fs: &dyn FileSystem) -> Result<CompactReport, Error> {
    let run = RunDir::at(run_dir)?;
    let _lock = RunLock::acquire(&run)?;
    let mut manifest = run.load_manifest()?;
    if manifest.status == RunStatus::Running {
        return Err(Error::Io {
            context: format!("compact {}", run.path().display()),
            source: std::io::Error::other("its collector died and it is not recovered: run `rlcollect recover` first"),
        });
    }
    let leftovers_removed = run.reconcile_generations(fs, &manifest)?;
    run.remove_temp_files();
    let before = file_counts(&manifest);
    let retired = merge_all(&run, fs, opts, &mut manifest)?;
    if !retired.is_empty() {
        std::thread::sleep(opts.grace);
        for dir in retired {
            fs.remove_dir_all(&dir)
                .map_err(Error::io(format!("remove {}", dir.display())))?;
        }
    }
    let after = file_counts(&manifest);
    let files = before
        .into_iter()
        .map(|(stream, n)| {
            let m = after.get(&stream).copied().unwrap_or(0);
            (stream, (n, m))
        })
        .collect();
    Ok(CompactReport {
        files,
        leftovers_removed,
    })
}

/// The full merge of every stream of `manifest`, each committed on its own.
/// Returns the replaced generations (to be removed after the grace).
pub(crate) fn merge_all(
    run: &RunDir,
    fs: &dyn FileSystem,
    opts: &CompactOptions,
    manifest: &mut Manifest,
) -> Result<Vec<PathBuf>, Error> {
    let mut retired = Vec::new();
    let streams: Vec<String> = manifest.streams.keys().cloned().collect();
    for stream in streams {
        let entry = manifest.streams[&stream].clone();
        let groups = opts.plan_full(&entry);
        if groups.is_empty() {
            continue;
        }
        let merged = merge_stream(run, fs, &stream, &entry, &groups, &AtomicBool::new(false))?;
        if let super::commit::Applied::Swapped(dirs) = apply(run, fs, manifest, merged)? {
            retired.extend(dirs);
        }
    }
    Ok(retired)
}

fn file_counts(m: &Manifest) -> BTreeMap<String, usize> {
    m.streams.iter().map(|(k, s)| (k.clone(), s.files.len())).collect()
}
