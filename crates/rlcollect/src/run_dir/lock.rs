//! One writer per run directory: an advisory lock on `RUN/.lock`, held for the
//! collector's lifetime. The operating system releases it when the process
//! dies, however it dies, so a lock that can be taken means no live writer.

use super::RunDir;
use crate::error::Error;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The held lock; released on drop.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of `run`, or fails at once naming the holder.
    pub(crate) fn acquire(run: &RunDir) -> Result<RunLock, Error> {
        let path = run.lock_path();
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
                    run_dir: run.path().to_owned(),
                    holder: holder.trim().to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(format!("lock {}", path.display()))(e)),
        }
        let info = format!(
            "pid {} (run {}, since {})",
            std::process::id(),
            run.id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(info.as_bytes()))
            .map_err(Error::io(format!("write {}", path.display())))?;
        Ok(RunLock { _file: file })
    }

    /// Like [`acquire`](Self::acquire), retrying for up to `wait` while another
    /// collector holds the lock (one finishing the same run, say).
    pub(crate) fn acquire_waiting(run: &RunDir, wait: Duration) -> Result<RunLock, Error> {
        let deadline = Instant::now() + wait;
        loop {
            match Self::acquire(run) {
                Err(Error::RunLocked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// True when a live process holds the lock file at `path`.
    pub(crate) fn is_held(path: &Path) -> bool {
        let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
            return false;
        };
        matches!(file.try_lock(), Err(TryLockError::WouldBlock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holder_named_then_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path(), "r1").unwrap();
        std::fs::create_dir(run.path()).unwrap();
        let first = RunLock::acquire(&run).unwrap();
        assert!(run.is_live());
        let err = RunLock::acquire(&run).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert!(msg.contains("already in use"), "{msg}");
        drop(first);
        assert!(!run.is_live());
        RunLock::acquire(&run).unwrap();
    }
}
