//! [`RunDir`]: the one owner of every name inside a run directory, and of its
//! lifecycle (open, lock, recover if crashed, resume; see `open.rs`).
//!
//! ```text
//! OUT/
//!   latest -> RUN_ID                     newest run (symlink, replaced atomically)
//!   RUN_ID/
//!     .lock                              flock of the one live writer (lock.rs)
//!     manifest.json                      index of published files; the truth
//!     summary.json                       statistics, written before each manifest
//!     rejected.ndjson                    lines that could not be decoded
//!     wal/seg-<first _seq>.wal           write-ahead log segments
//!     spool-<pid>.ndjson                 a Python client's records while its sidecar was gone
//!     rings/p<pid>-<hex>.ring            a producer's shared-memory ring (SPEC §6)
//!     collector.sock, .spawn.lock        the join-or-spawn socket of a shared run, and its lock
//!     STREAM/part-NNNNNN.parquet|csv     published parts, numbered per stream
//!     STREAM/part-AAAAAA-BBBBBB.parquet  parts A to B merged by compaction
//!     STREAM/.part-NNNNNN.parquet.tmp    a part being written (never listed)
//!     STREAM -> .streams/STREAM/gNNNNNN  once compacted: a symlink to the current
//!                                        generation (generations.rs)
//! ```
//!
//! Nothing else in the crate formats a path inside a run.

mod generations;
mod lock;
mod open;
mod remove;

pub(crate) use lock::RunLock;
pub(crate) use open::OpenOptions;

use crate::error::Error;
use crate::fs::numbered_files;
use crate::manifest::Manifest;
use crate::summary::RunSummary;
use std::path::{Path, PathBuf};

const LATEST_LINK: &str = "latest";
const MANIFEST_FILE: &str = "manifest.json";
const SUMMARY_FILE: &str = "summary.json";
const REJECTED_FILE: &str = "rejected.ndjson";
const LOCK_FILE: &str = ".lock";
const WAL_DIR: &str = "wal";
const RINGS_DIR: &str = "rings";
const SOCKET_FILE: &str = "collector.sock";
const SPAWN_LOCK_FILE: &str = ".spawn.lock";
const PART_PREFIX: &str = "part-";

/// A run directory `OUT/RUN_ID`, and the names of everything in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    out: PathBuf,
    id: String,
    path: PathBuf,
}

/// The name of one part file: its path relative to the run (as the manifest
/// lists it) and its full path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartName {
    pub rel: String,
    pub path: PathBuf,
}

impl RunDir {
    /// The run `id` under the output root `out`. The id must be a plain folder name.
    pub fn new(out: impl Into<PathBuf>, id: impl Into<String>) -> Result<RunDir, Error> {
        let (out, id) = (out.into(), id.into());
        if id.is_empty() || id.contains(['/', '\\', '\0']) || id.starts_with('.') || id == LATEST_LINK {
            return Err(Error::Config(format!("invalid run id {id:?}: use a plain folder name")));
        }
        let path = out.join(&id);
        Ok(RunDir { out, id, path })
    }

    /// The run directory at `path` (its last component is the run id). A
    /// `latest` link is followed, so the id is the real one.
    pub fn at(path: impl AsRef<Path>) -> Result<RunDir, Error> {
        let given = path.as_ref();
        let real = match std::fs::read_link(given) {
            Ok(target) => given.with_file_name(target),
            Err(_) => given.to_owned(),
        };
        let id = real
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Config(format!("{} does not name a run directory", given.display())))?;
        let out = real.parent().map_or_else(|| PathBuf::from("."), Path::to_owned);
        RunDir::new(out, id)
    }

    /// `OUT/latest`: the newest run under `out`.
    pub fn latest(out: impl AsRef<Path>) -> PathBuf {
        out.as_ref().join(LATEST_LINK)
    }

    /// The run directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run id (the directory's name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The output root that holds this run.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// `manifest.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.path.join(MANIFEST_FILE)
    }

    /// `summary.json`.
    pub fn summary_path(&self) -> PathBuf {
        self.path.join(SUMMARY_FILE)
    }

    /// `rejected.ndjson`.
    pub fn rejected_path(&self) -> PathBuf {
        self.path.join(REJECTED_FILE)
    }

    /// The write-ahead log's folder.
    pub fn wal_dir(&self) -> PathBuf {
        self.path.join(WAL_DIR)
    }

    /// The well-known socket of the run's sidecar: `RUN/collector.sock`, or,
    /// when that path is too long for a Unix socket, a name in the temp folder
    /// made from the run's absolute path (SPEC §7; the Python client agrees).
    pub fn socket_path(&self) -> PathBuf {
        // Symlinks resolved, as Python's Path.resolve() does.
        let absolute = std::fs::canonicalize(&self.path)
            .or_else(|_| std::path::absolute(&self.path))
            .unwrap_or_else(|_| self.path.clone());
        let path = absolute.join(SOCKET_FILE);
        // Over 100 bytes it may not fit a `sun_path` (108 bytes with its NUL).
        if path.as_os_str().len() <= 100 {
            return path;
        }
        let digest = crc32fast::hash(absolute.as_os_str().as_encoded_bytes());
        std::env::temp_dir().join(format!("rlcollect-{digest:08x}.sock"))
    }

    /// The lock that makes join-or-spawn of a shared run race-free.
    pub fn spawn_lock_path(&self) -> PathBuf {
        self.path.join(SPAWN_LOCK_FILE)
    }

    pub(crate) fn lock_path(&self) -> PathBuf {
        self.path.join(LOCK_FILE)
    }

    /// The log segment whose first row has `_seq` `first_seq`.
    pub(crate) fn wal_segment(&self, first_seq: u64) -> PathBuf {
        self.wal_dir().join(format!("seg-{first_seq:020}.wal"))
    }

    /// Log segments as (first `_seq`, path), oldest first.
    pub fn wal_segments(&self) -> Vec<(u64, PathBuf)> {
        numbered_files(&self.wal_dir(), "seg-", ".wal")
    }

    /// The spool file of the client with process id `pid`.
    pub fn spool_path(&self, pid: u32) -> PathBuf {
        self.path.join(format!("spool-{pid}.ndjson"))
    }

    /// Spool files as (writer pid, path), oldest pid first.
    pub fn spools(&self) -> Vec<(u32, PathBuf)> {
        numbered_files(&self.path, "spool-", ".ndjson")
    }

    /// The folder of the producers' rings.
    pub fn rings_dir(&self) -> PathBuf {
        self.path.join(RINGS_DIR)
    }

    /// The full path of a ring named as the run names it (`rings/p<pid>-<hex>.ring`);
    /// `None` for a name outside the rings folder.
    pub fn ring_path(&self, name: &str) -> Option<PathBuf> {
        let file = name.strip_prefix(RINGS_DIR)?.strip_prefix('/')?;
        let plain = !file.is_empty() && !file.starts_with('.') && !file.contains(['/', '\\', '\0']);
        (plain && file.ends_with(".ring")).then(|| self.rings_dir().join(file))
    }

    /// A new ring's name for process `pid`: unique, so it never meets an old one.
    pub fn new_ring_name(&self, pid: u32) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mix = (nanos as u64) ^ (u64::from(pid) << 40) ^ (self as *const Self as u64);
        format!("{RINGS_DIR}/p{pid}-{:012x}.ring", mix & 0xFFFF_FFFF_FFFF)
    }

    /// The rings in the run, by name, sorted.
    pub fn rings(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.rings_dir()) else {
            return vec![];
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = format!("{RINGS_DIR}/{}", e.file_name().to_str()?);
                self.ring_path(&name).map(|_| name)
            })
            .collect();
        names.sort();
        names
    }

    /// The folder of a stream's parts.
    pub(crate) fn stream_dir(&self, stream: &str) -> PathBuf {
        self.path.join(stream)
    }

    /// Part `number` of `stream` with extension `ext` (`parquet` or `csv`).
    pub(crate) fn part(&self, stream: &str, number: u32, ext: &str) -> PartName {
        let rel = format!("{stream}/{PART_PREFIX}{number:06}.{ext}");
        PartName {
            path: self.path.join(&rel),
            rel,
        }
    }

    /// The part number in a manifest path such as `trades/part-000042.parquet`
    /// (for a merged file `part-000001-000042.parquet`, the last: 42).
    pub(crate) fn part_number(rel: &str) -> Option<u32> {
        Self::part_range(rel).map(|(_, last)| last)
    }

    /// The parts a file holds: `(42, 42)` for `part-000042.parquet`, `(1, 42)`
    /// for the merged `part-000001-000042.parquet`.
    pub(crate) fn part_range(rel: &str) -> Option<(u32, u32)> {
        let name = rel.rsplit('/').next()?;
        let numbers = name.strip_prefix(PART_PREFIX)?.split('.').next()?;
        match numbers.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => numbers.parse().ok().map(|n| (n, n)),
        }
    }

    /// The name of a file holding parts `first` to `last` of `stream`, merged.
    pub(crate) fn merged_part(stream: &str, first: u32, last: u32) -> String {
        format!("{stream}/{PART_PREFIX}{first:06}-{last:06}.parquet")
    }

    /// Reads `manifest.json`.
    pub fn load_manifest(&self) -> Result<Manifest, Error> {
        Manifest::load(&self.manifest_path())
    }

    /// Reads `summary.json` (there is none before the first checkpoint).
    pub fn load_summary(&self) -> Result<RunSummary, Error> {
        let path = self.summary_path();
        let bytes = std::fs::read(&path).map_err(Error::io(format!("read {}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// True when a live collector holds the run's lock.
    pub fn is_live(&self) -> bool {
        RunLock::is_held(&self.lock_path())
    }

    /// Points `OUT/latest` at this run, replacing the link atomically.
    pub(crate) fn point_latest(&self) -> Result<(), Error> {
        let link = Self::latest(&self.out);
        let tmp = self.out.join(format!(".{LATEST_LINK}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&self.id, &tmp)
            .and_then(|_| std::fs::rename(&tmp, &link))
            .map_err(Error::io(format!("point {} at {}", link.display(), self.id)))
    }

    /// Removes the whole write-ahead log. Only once the manifest says every
    /// row in it is published.
    pub(crate) fn remove_wal(&self) -> Result<(), Error> {
        for (_, path) in self.wal_segments() {
            std::fs::remove_file(&path).map_err(Error::io(format!("remove {}", path.display())))?;
        }
        let _ = std::fs::remove_dir(self.wal_dir());
        Ok(())
    }

    /// Removes the dot-temp files a crash left in the run and its stream
    /// folders. Returns how many went.
    pub(crate) fn remove_temp_files(&self) -> usize {
        let mut removed = remove_temp_files(&self.path);
        for dir in self.stream_dirs() {
            removed += remove_temp_files(&dir);
        }
        removed
    }

    /// Removes part files the manifest does not list: a crash between
    /// publishing a part and storing the manifest leaves them, and their rows
    /// are replayed from the log. Returns how many went.
    pub(crate) fn remove_unlisted_parts(&self, manifest: &Manifest) -> usize {
        let listed: std::collections::HashSet<&str> = manifest
            .streams
            .values()
            .flat_map(|s| &s.files)
            .map(|f| f.path.as_str())
            .collect();
        let mut removed = 0;
        for dir in self.stream_dirs() {
            let stream = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Ok(parts) = std::fs::read_dir(&dir) else { continue };
            for part in parts.flatten() {
                let rel = format!("{stream}/{}", part.file_name().to_string_lossy());
                let unlisted = Self::part_number(&rel).is_some() && !listed.contains(rel.as_str());
                if unlisted && std::fs::remove_file(part.path()).is_ok() {
                    tracing::warn!(file = %rel, "removed a part file the manifest does not list (its rows are replayed)");
                    removed += 1;
                }
            }
        }
        removed
    }

    /// The folders of the run that may hold parts: every folder (or symlink
    /// to a generation) but the log's, the rings' and dot-names.
    fn stream_dirs(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return vec![];
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                e.path().is_dir() && name != WAL_DIR && name != RINGS_DIR && !name.to_string_lossy().starts_with('.')
            })
            .map(|e| e.path())
            .collect()
    }
}

/// The temp name a file is written under before it is renamed into place:
/// dot-prefixed, so globs and `ls` skip it.
pub(crate) fn temp_path(final_path: &Path) -> PathBuf {
    let name = final_path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    final_path.with_file_name(format!(".{name}.tmp"))
}

/// Removes temp files a crash left behind in `dir`.
fn remove_temp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_here() {
        let run = RunDir::new("/o", "r1").unwrap();
        assert_eq!(run.path(), Path::new("/o/r1"));
        assert_eq!(run.part("trades", 42, "parquet").rel, "trades/part-000042.parquet");
        assert_eq!(RunDir::part_number("trades/part-000042.parquet"), Some(42));
        assert_eq!(RunDir::part_number("trades/other.parquet"), None);
        assert_eq!(RunDir::part_range("trades/part-000001-000042.parquet"), Some((1, 42)));
        assert_eq!(RunDir::part_number("trades/part-000001-000042.parquet"), Some(42));
        assert_eq!(RunDir::merged_part("ev", 3, 9), "ev/part-000003-000009.parquet");
        assert_eq!(RunDir::generation_rel("ev", 2), ".streams/ev/g000002");
        assert_eq!(run.wal_segment(7), Path::new("/o/r1/wal/seg-00000000000000000007.wal"));
        assert_eq!(
            temp_path(Path::new("/o/r1/manifest.json")),
            Path::new("/o/r1/.manifest.json.tmp")
        );
    }

    #[test]
    fn run_ids_are_plain_folder_names() {
        for bad in ["", "a/b", ".hidden", "latest", "a\\b"] {
            assert!(matches!(RunDir::new("/o", bad), Err(Error::Config(_))), "{bad:?}");
        }
        let latest = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("r9", latest.path().join("latest")).unwrap();
        assert_eq!(RunDir::at(latest.path().join("latest")).unwrap().id(), "r9");
    }
}
