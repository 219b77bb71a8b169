//! The filesystem seam: the file operations of a checkpoint go through
//! [`FileSystem`], so tests can inject the failures a real disk produces
//! (ENOSPC, failing fsync or rename, short writes) with `FaultyFs` (feature
//! `test-util`), as vector-buffers' disk buffer does. Production code only
//! ever uses [`RealFs`].

#[cfg(any(test, feature = "test-util"))]
mod faulty;
#[cfg(any(test, feature = "test-util"))]
pub use faulty::{Fault, FaultyFs};

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file being written.
pub trait WritableFile: Write + Send {
    /// Flushes the file's data and metadata to stable storage (fsync).
    fn sync_all(&mut self) -> io::Result<()>;

    /// Starts writing the file's data to disk without waiting for it, so a
    /// later [`sync_all`](Self::sync_all) has less to wait for. Only a hint:
    /// it promises nothing about durability, and may do nothing.
    fn start_writeback(&mut self) {}
}

/// The operations the collector performs on part and manifest files.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a folder and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Fsyncs a folder, making renames and new entries in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Bytes available to an unprivileged user on the filesystem holding `path`.
    fn available_bytes(&self, path: &Path) -> io::Result<u64>;
    /// Makes `link` a second name of the file `original` (a hard link).
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()>;
    /// Creates a symbolic link `link` whose target is `target` (taken as is).
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Swaps the two names `a` and `b` atomically (`renameat2` with
    /// `RENAME_EXCHANGE`); both must exist.
    fn exchange(&self, a: &Path, b: &Path) -> io::Result<()>;
    /// Removes a folder and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl WritableFile for File {
    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor we own for the call; the range 0..0 means
        // the whole file. An error only means no head start: ignored.
        let _ = unsafe { libc::sync_file_range(self.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
}

impl FileSystem for RealFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(File::create(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn available_bytes(&self, path: &Path) -> io::Result<u64> {
        available_bytes(path)
    }
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        fs::hard_link(original, link)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }
    fn exchange(&self, a: &Path, b: &Path) -> io::Result<()> {
        exchange(a, b)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }
}

/// Swaps two names atomically with `renameat2(RENAME_EXCHANGE)` (Linux 3.15+;
/// every local filesystem we write to supports it). Used once per stream, to
/// turn a stream folder of the layout before generations into a symlink
/// without a moment where the name is missing.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid C strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Files in `dir` named `<prefix><number><suffix>` (e.g. `seg-00042.wal`), as
/// (number, path), sorted by number. A missing folder has none.
pub(crate) fn numbered_files<N: std::str::FromStr + Ord>(dir: &Path, prefix: &str, suffix: &str) -> Vec<(N, PathBuf)> {
    let Ok(rd) = fs::read_dir(dir) else { return vec![] };
    let mut files: Vec<(N, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// Free bytes for unprivileged users on the filesystem holding `path` (statvfs).
pub fn available_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: statvfs fills the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_reports_free_space() {
        assert!(available_bytes(Path::new("/")).unwrap() > 0);
        assert!(available_bytes(Path::new("/no/such/dir")).is_err());
    }
}
