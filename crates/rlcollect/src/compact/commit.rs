//! Steps 2 to 4 of a compaction, serialised with part publishing (on the
//! worker, with no checkpoint in flight, or in `compact_run` under the run's
//! lock): every surviving part is hard-linked into the new generation, the
//! manifest naming it is stored (the commit point), and `RUN/STREAM` is
//! swapped to it. Only links, one small file and one rename: milliseconds.

use super::merge::{source_path, Merged};
use crate::atomic_file::sync_dir;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::{FileEntry, Manifest};
use crate::publisher::now_rfc3339;
use crate::run_dir::RunDir;
use std::collections::HashSet;
use std::path::PathBuf;

/// What became of a merged generation.
#[derive(Debug, PartialEq)]
pub(crate) enum Applied {
    /// Committed and visible; these folders (the replaced generation) go
    /// after the grace.
    Swapped(Vec<PathBuf>),
    /// The stream changed under the merge (another compaction came first):
    /// the new generation was dropped, nothing changed.
    Stale,
}

/// Commits `merged` into `manifest` (see the module docs). On an error
/// before the manifest is stored, `manifest` is as it was; the new folder is
/// left for recovery, because a failed store may still have reached the disk.
pub(crate) fn apply(
    run: &RunDir,
    fs: &dyn FileSystem,
    manifest: &mut Manifest,
    merged: Merged,
) -> Result<Applied, Error> {
    let Some(files) = new_file_list(manifest, &merged) else {
        let _ = fs.remove_dir_all(&run.path().join(&merged.dir));
        return Ok(Applied::Stale);
    };
    let new_dir = run.path().join(&merged.dir);
    let merged_names: HashSet<&str> = merged.groups.iter().map(|(_, f)| f.path.as_str()).collect();
    for f in files.iter().filter(|f| !merged_names.contains(f.path.as_str())) {
        let from = source_path(run, merged.base_dir.as_deref(), f);
        let to = new_dir.join(f.path.rsplit('/').next().unwrap_or(&f.path));
        fs.hard_link(&from, &to)
            .map_err(Error::io(format!("link {} to {}", from.display(), to.display())))?;
    }
    sync_dir(fs, &new_dir)?;
    let entry = manifest
        .streams
        .get_mut(&merged.stream)
        .expect("checked by new_file_list");
    let before = std::mem::replace(&mut entry.files, files);
    let before_dir = entry.dir.replace(merged.dir.clone());
    manifest.updated_at = now_rfc3339();
    if let Err(e) = manifest.store(fs, run) {
        let entry = manifest.streams.get_mut(&merged.stream).expect("still there");
        entry.files = before;
        entry.dir = before_dir;
        return Err(e);
    }
    // Committed. Readers that glob see the new generation from the swap on.
    let plain = run.swap_generation(fs, &merged.stream, &merged.dir)?;
    let mut retired: Vec<PathBuf> = plain.into_iter().collect();
    if let Some(old) = &merged.base_dir {
        retired.push(run.path().join(old));
    }
    tracing::debug!(stream = merged.stream, dir = merged.dir, "compaction committed");
    Ok(Applied::Swapped(retired))
}

/// The stream's files with each group replaced by its merged file (at the
/// place of its first part), or `None` when the stream no longer holds every
/// replaced part in the generation the merge read.
fn new_file_list(manifest: &Manifest, merged: &Merged) -> Option<Vec<FileEntry>> {
    let entry = manifest.streams.get(&merged.stream)?;
    if entry.dir != merged.base_dir {
        return None;
    }
    let listed: HashSet<&str> = entry.files.iter().map(|f| f.path.as_str()).collect();
    let replaced: HashSet<&str> = merged.groups.iter().flat_map(|(r, _)| r).map(String::as_str).collect();
    if !replaced.iter().all(|p| listed.contains(p)) {
        return None;
    }
    let mut files = Vec::with_capacity(entry.files.len());
    for f in &entry.files {
        if let Some((_, m)) = merged.groups.iter().find(|(r, _)| r.first() == Some(&f.path)) {
            files.push(m.clone());
        } else if !replaced.contains(f.path.as_str()) {
            files.push(f.clone());
        }
    }
    Some(files)
}
