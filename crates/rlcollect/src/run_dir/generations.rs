//! Stream generations: how a compacted stream's files are swapped for their
//! merged replacement in one atomic step that every reader sees whole
//! (SPEC §3).
//!
//! ```text
//! RUN/
//!   trades -> .streams/trades/g000003      the visible name: a relative symlink
//!   .streams/trades/g000003/               the current generation (manifest `dir`)
//!     part-000001-000412.parquet           a merged file (parts 1 to 412)
//!     part-000413.parquet                  a part (a hard link if it came from g000002)
//!   .streams/trades/g000002/               the replaced generation, removed after a grace
//!   .trades.link.tmp                       the new symlink, before it is renamed over `trades`
//! ```
//!
//! A new generation is complete before anything points at it; the manifest
//! names it (the commit point), then one `rename` of a temp symlink over
//! `RUN/STREAM` shows it to readers that glob. A stream still in the layout
//! from before generations (a plain folder) is converted by the first swap
//! with `renameat2(RENAME_EXCHANGE)`: the plain folder and the new symlink
//! trade places atomically, so the name is never missing.

use super::RunDir;
use crate::atomic_file::sync_dir;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::Manifest;
use std::path::{Path, PathBuf};

/// The folder of every stream's generations.
pub(super) const GENERATIONS_DIR: &str = ".streams";

impl RunDir {
    /// A stream's generation `n`, relative to the run (as the manifest's `dir`
    /// and the symlink's target name it).
    pub(crate) fn generation_rel(stream: &str, n: u32) -> String {
        format!("{GENERATIONS_DIR}/{stream}/g{n:06}")
    }

    /// The number of a generation named by [`generation_rel`](Self::generation_rel).
    pub(crate) fn generation_number(rel: &str) -> Option<u32> {
        rel.rsplit('/').next()?.strip_prefix('g')?.parse().ok()
    }

    /// The folder of a stream's generations.
    pub(crate) fn generations_dir(&self, stream: &str) -> PathBuf {
        self.path().join(GENERATIONS_DIR).join(stream)
    }

    /// Where the symlink that will replace `RUN/STREAM` is made.
    fn link_temp(&self, stream: &str) -> PathBuf {
        self.path().join(format!(".{stream}.link.tmp"))
    }

    /// Points `RUN/STREAM` at generation `dir` (relative to the run) atomically,
    /// then fsyncs the run folder. Returns the folder that held the stream's
    /// files before when it was a plain folder (now moved into the
    /// generations as `g000000`, to be removed after the grace).
    pub(crate) fn swap_generation(
        &self,
        fs: &dyn FileSystem,
        stream: &str,
        dir: &str,
    ) -> Result<Option<PathBuf>, Error> {
        let link = self.stream_dir(stream);
        let tmp = self.link_temp(stream);
        let io = |what: &str| Error::io(format!("{what} {} -> {dir}", link.display()));
        remove_any(&tmp);
        fs.symlink(Path::new(dir), &tmp).map_err(io("make the symlink for"))?;
        let plain = std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir());
        if !plain {
            fs.rename(&tmp, &link).map_err(io("swap"))?;
            sync_dir(fs, self.path())?;
            return Ok(None);
        }
        match fs.exchange(&tmp, &link) {
            Ok(()) => {}
            // A filesystem without RENAME_EXCHANGE: move the folder away, then
            // the link in. Between the two renames the name is missing: a
            // reader fails (and retries), it never counts a row twice.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)) => {
                let aside = self.path().join(format!(".{stream}.plain.tmp"));
                fs.rename(&link, &aside).map_err(io("move aside"))?;
                fs.rename(&tmp, &link).map_err(io("swap"))?;
                fs.rename(&aside, &tmp).map_err(io("move aside"))?;
            }
            Err(e) => return Err(io("exchange")(e)),
        }
        sync_dir(fs, self.path())?;
        // `tmp` now names the old plain folder; it becomes generation 0.
        let retired = self.path().join(Self::generation_rel(stream, 0));
        fs.rename(&tmp, &retired).map_err(io("retire the plain folder of"))?;
        sync_dir(fs, &self.generations_dir(stream))?;
        Ok(Some(retired))
    }

    /// The generation `RUN/STREAM` points at now (`None`: a plain folder or nothing).
    pub(crate) fn linked_generation(&self, stream: &str) -> Option<String> {
        let target = std::fs::read_link(self.stream_dir(stream)).ok()?;
        target.to_str().map(str::to_owned)
    }

    /// Makes the generations agree with the manifest, which is the truth
    /// after a crash at any step of a compaction: `RUN/STREAM` points at the
    /// generation the manifest names, and every other generation, temp link
    /// and half-made generation goes. Returns how many folders went.
    pub(crate) fn reconcile_generations(&self, fs: &dyn FileSystem, manifest: &Manifest) -> Result<usize, Error> {
        let mut removed = 0;
        let mut streams: Vec<String> = manifest.streams.keys().cloned().collect();
        streams.extend(list_names(&self.path().join(GENERATIONS_DIR)));
        streams.sort();
        streams.dedup();
        for stream in streams {
            remove_any(&self.link_temp(&stream));
            let dir = manifest.streams.get(&stream).and_then(|s| s.dir.clone());
            if let Some(dir) = &dir {
                if self.linked_generation(&stream).as_deref() != Some(dir) {
                    tracing::warn!(stream, dir, "pointing the stream at the generation the manifest names");
                    self.swap_generation(fs, &stream, dir)?;
                }
            }
            let gens = self.generations_dir(&stream);
            for name in list_names(&gens) {
                let rel = format!("{GENERATIONS_DIR}/{stream}/{name}");
                if Some(&rel) != dir.as_ref() {
                    fs.remove_dir_all(&gens.join(&name))
                        .or_else(|_| fs.remove_file(&gens.join(&name)))
                        .map_err(Error::io(format!("remove {}", gens.join(&name).display())))?;
                    removed += 1;
                }
            }
            if dir.is_none() {
                let _ = std::fs::remove_dir(&gens);
                // A stream started in a generation before the manifest named it.
                if self.linked_generation(&stream).is_some() {
                    remove_any(&self.stream_dir(&stream));
                }
            }
        }
        let _ = std::fs::remove_dir(self.path().join(GENERATIONS_DIR));
        Ok(removed)
    }
}

/// Removes a file, symlink or folder at `path`, if there is one.
fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => drop(std::fs::remove_dir_all(path)),
        Ok(_) => drop(std::fs::remove_file(path)),
        Err(_) => {}
    }
}

/// The names in a folder (none if it is missing).
fn list_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return vec![] };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Fault, FaultyFs, RealFs};
    use crate::manifest::StreamEntry;

    fn run_with_plain_stream() -> (tempfile::TempDir, RunDir) {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path(), "r").unwrap();
        std::fs::create_dir_all(run.stream_dir("ev")).unwrap();
        std::fs::write(run.stream_dir("ev").join("part-000001.parquet"), b"old").unwrap();
        (tmp, run)
    }

    #[test]
    fn a_plain_stream_folder_is_exchanged_for_a_link_and_becomes_generation_zero() {
        let (_tmp, run) = run_with_plain_stream();
        let g1 = RunDir::generation_rel("ev", 1);
        std::fs::create_dir_all(run.path().join(&g1)).unwrap();
        std::fs::write(run.path().join(&g1).join("part-000001.parquet"), b"new").unwrap();
        let retired = run.swap_generation(&RealFs, "ev", &g1).unwrap().unwrap();
        assert_eq!(run.linked_generation("ev").as_deref(), Some(g1.as_str()));
        assert_eq!(
            std::fs::read(run.stream_dir("ev").join("part-000001.parquet")).unwrap(),
            b"new"
        );
        assert_eq!(std::fs::read(retired.join("part-000001.parquet")).unwrap(), b"old");
        assert_eq!(RunDir::generation_number(&g1), Some(1));
    }

    #[test]
    fn reconcile_points_the_link_at_the_manifests_generation_and_drops_the_others() {
        let (_tmp, run) = run_with_plain_stream();
        let mut m = Manifest::new_run("r", "now".into());
        for n in [1, 2] {
            std::fs::create_dir_all(run.path().join(RunDir::generation_rel("ev", n))).unwrap();
        }
        // The manifest names g2 but the crash came before the swap.
        m.streams.insert(
            "ev".into(),
            StreamEntry {
                dir: Some(RunDir::generation_rel("ev", 2)),
                ..StreamEntry::default()
            },
        );
        let removed = run.reconcile_generations(&RealFs, &m).unwrap();
        assert_eq!(removed, 2, "g1 and the retired plain folder");
        assert_eq!(run.linked_generation("ev"), Some(RunDir::generation_rel("ev", 2)));
        assert_eq!(list_names(&run.generations_dir("ev")), vec!["g000002".to_string()]);
        // Idempotent.
        assert_eq!(run.reconcile_generations(&RealFs, &m).unwrap(), 0);
    }

    #[test]
    fn a_swap_that_fails_leaves_the_old_folder_visible() {
        let (_tmp, run) = run_with_plain_stream();
        let g1 = RunDir::generation_rel("ev", 1);
        std::fs::create_dir_all(run.path().join(&g1)).unwrap();
        let fs = FaultyFs::new();
        fs.set(Some(Fault::RenameFails));
        assert!(run.swap_generation(&fs, "ev", &g1).is_err());
        assert_eq!(
            std::fs::read(run.stream_dir("ev").join("part-000001.parquet")).unwrap(),
            b"old"
        );
    }

    #[test]
    fn a_stream_started_in_a_generation_the_manifest_never_named_goes_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path(), "r").unwrap();
        // The first part of a new stream was written, the crash came before
        // the manifest named its generation.
        let g0 = RunDir::generation_rel("ev", 0);
        std::fs::create_dir_all(run.path().join(&g0)).unwrap();
        std::fs::write(run.path().join(&g0).join("part-000001.parquet"), b"x").unwrap();
        run.swap_generation(&RealFs, "ev", &g0).unwrap();
        let m = Manifest::new_run("r", "now".into());
        assert_eq!(run.reconcile_generations(&RealFs, &m).unwrap(), 1);
        assert!(
            std::fs::symlink_metadata(run.stream_dir("ev")).is_err(),
            "no dangling link"
        );
        assert!(!run.path().join(GENERATIONS_DIR).exists());
    }
}
