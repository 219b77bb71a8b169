//! One writer per run directory: an advisory lock on `RUN/.lock`, held for the
//! collector's lifetime. The operating system releases it when the process
//! dies, however it dies, so a lock that can be taken means no live writer.

use crate::error::Error;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// File name of the lock inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// The held lock; released on drop.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `run_dir`, or fails at once naming the holder.
    pub fn acquire(run_dir: &Path, run_id: &str) -> Result<RunLock, Error> {
        let path = run_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io(format!("open {}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::RunLocked {
                    run_dir: run_dir.to_owned(),
                    holder: holder.trim().to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(format!("lock {}", path.display()))(e)),
        }
        let info = format!(
            "pid {} (run {}, since {})",
            std::process::id(),
            run_id,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(info.as_bytes()))
            .map_err(Error::io(format!("write {}", path.display())))?;
        Ok(RunLock { _file: file, path })
    }

    /// Like [`acquire`](Self::acquire), retrying for up to `wait` while another
    /// collector holds the lock (one finishing the same run, say).
    pub fn acquire_waiting(run_dir: &Path, run_id: &str, wait: std::time::Duration) -> Result<RunLock, Error> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Self::acquire(run_dir, run_id) {
                Err(Error::RunLocked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// True when a live collector holds the lock of `run_dir`.
    pub fn is_held(run_dir: &Path) -> bool {
        let Ok(file) = OpenOptions::new().read(true).write(true).open(run_dir.join(LOCK_FILE)) else {
            return false;
        };
        matches!(file.try_lock(), Err(TryLockError::WouldBlock))
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holder_named_then_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "r1").unwrap();
        assert!(RunLock::is_held(dir.path()));
        let err = RunLock::acquire(dir.path(), "r1").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert!(msg.contains("already in use"), "{msg}");
        drop(first);
        assert!(!RunLock::is_held(dir.path()));
        RunLock::acquire(dir.path(), "r1").unwrap();
    }
}
