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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::StreamEntry;

    fn file(path: &str, format: &str, first: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            format: format.into(),
            rows: 10,
            first_seq: first,
            last_seq: first + 9,
            bytes: 100,
        }
    }

    fn manifest_with(files: Vec<FileEntry>, dir: Option<&str>) -> Manifest {
        let mut m = Manifest::new_run("r", "now".into());
        m.streams.insert(
            "ev".into(),
            StreamEntry {
                rows: 40,
                files,
                dir: dir.map(str::to_owned),
                ..StreamEntry::default()
            },
        );
        m
    }

    fn merged(base: Option<&str>, replaced: &[&str], into: FileEntry) -> Merged {
        Merged {
            stream: "ev".into(),
            base_dir: base.map(str::to_owned),
            dir: ".streams/ev/g000002".into(),
            groups: vec![(replaced.iter().map(|s| s.to_string()).collect(), into)],
        }
    }

    #[test]
    fn a_group_takes_the_place_of_its_first_part_and_survivors_keep_their_order() {
        let m = manifest_with(
            vec![
                file("ev/part-000001.parquet", "parquet", 0),
                file("ev/part-000001.csv", "csv", 0),
                file("ev/part-000002.parquet", "parquet", 10),
                file("ev/part-000003.parquet", "parquet", 20),
            ],
            None,
        );
        let into = file("ev/part-000001-000002.parquet", "parquet", 0);
        let list = new_file_list(
            &m,
            &merged(None, &["ev/part-000001.parquet", "ev/part-000002.parquet"], into),
        );
        let paths: Vec<_> = list.unwrap().into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "ev/part-000001-000002.parquet",
                "ev/part-000001.csv",
                "ev/part-000003.parquet"
            ]
        );
    }

    #[test]
    fn a_merge_of_another_generation_or_of_parts_gone_is_stale() {
        let parts = vec![
            file("ev/part-000001.parquet", "parquet", 0),
            file("ev/part-000002.parquet", "parquet", 10),
        ];
        let into = file("ev/part-000001-000002.parquet", "parquet", 0);
        let replaced = ["ev/part-000001.parquet", "ev/part-000002.parquet"];
        let moved_on = manifest_with(parts.clone(), Some(".streams/ev/g000003"));
        assert!(new_file_list(&moved_on, &merged(Some(".streams/ev/g000001"), &replaced, into.clone())).is_none());
        let gone = manifest_with(parts[..1].to_vec(), None);
        assert!(new_file_list(&gone, &merged(None, &replaced, into)).is_none());
    }
}
