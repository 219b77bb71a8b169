//! [`compact_run`]: the full merge of a run that no collector writes (a
//! finished run, or a crashed one after `recover`), including runs written
//! before generations existed (plain stream folders).

use super::{apply, merge_stream, CompactOptions, Group, Merged};
use crate::error::Error;
use crate::fs::{FileSystem, RealFs};
use crate::manifest::{Manifest, RunStatus, StreamEntry};
use crate::run_dir::{RunDir, RunLock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

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
/// Streams are merged in parallel (one per core: the run has ended, so
/// nothing else needs them), largest first; commits are in stream order.
/// Returns the replaced generations (to be removed after the grace).
pub(crate) fn merge_all(
    run: &RunDir,
    fs: &dyn FileSystem,
    opts: &CompactOptions,
    manifest: &mut Manifest,
) -> Result<Vec<PathBuf>, Error> {
    let mut work: Vec<(String, StreamEntry, Vec<Group>)> = manifest
        .streams
        .iter()
        .map(|(stream, entry)| (stream.clone(), entry.clone(), opts.plan_full(entry)))
        .filter(|(_, _, groups)| !groups.is_empty())
        .collect();
    work.sort_by_key(|(_, entry, _)| std::cmp::Reverse(entry.files.iter().map(|f| f.bytes).sum::<u64>()));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(work.len());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<Merged, Error>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((stream, entry, groups)) = work.get(i) else {
                    return;
                };
                let merged = merge_stream(run, fs, stream, entry, groups, &AtomicBool::new(false));
                results.lock().expect("no merge panics").push((i, merged));
            });
        }
    });
    let mut results = results.into_inner().expect("no merge panics");
    results.sort_by(|a, b| work[a.0].0.cmp(&work[b.0].0));
    let mut retired = Vec::new();
    let mut first_error = None;
    for (_, merged) in results {
        let applied = merged.and_then(|m| apply(run, fs, manifest, m));
        match applied {
            Ok(super::commit::Applied::Swapped(dirs)) => retired.extend(dirs),
            Ok(super::commit::Applied::Stale) => {}
            Err(e) => drop(first_error.get_or_insert(e)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(retired),
    }
}

fn file_counts(m: &Manifest) -> BTreeMap<String, usize> {
    m.streams.iter().map(|(k, s)| (k.clone(), s.files.len())).collect()
}
