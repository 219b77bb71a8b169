//! [`FaultyFs`]: the real filesystem, with the failures of a real disk
//! injected on demand (feature `test-util`).

use super::{available_bytes, FileSystem, RealFs, WritableFile};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A failure [`FaultyFs`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every write fails with ENOSPC ("No space left on device").
    DiskFull,
    /// Every write writes at most 7 bytes (a short write, not an error).
    ShortWrites,
    /// Every fsync of a file fails with EIO.
    SyncFails,
    /// Every rename fails with EIO.
    RenameFails,
    /// The next N operations succeed, then every one fails with EIO: the
    /// disk "dies" at an exact point, for crash-at-any-point tests.
    CrashAfter(u64),
    /// Every fsync of a file or a folder takes this much longer: a disk
    /// slow to flush, so that work overlapping a flush shows.
    SlowSync(Duration),
    /// Every fsync (of a file or a folder) made by the thread of this name
    /// panics: a bug in that thread's code, for tests that the collector
    /// fails rather than hangs or loses rows.
    PanicIn(&'static str),
}

/// A [`FileSystem`] over the real one that injects a [`Fault`] while it is set.
#[derive(Debug, Default, Clone)]
pub struct FaultyFs {
    fault: Arc<Mutex<Option<Fault>>>,
    injected: Arc<AtomicU64>,
}

impl FaultyFs {
    /// A filesystem with no fault set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or with `None` clears) the fault.
    pub fn set(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// How many operations failed or were cut so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn current(&self) -> Option<Fault> {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hit(&self, fault: Fault) -> bool {
        let hit = self.current() == Some(fault);
        if hit {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        hit
    }

    /// Counts one operation against `CrashAfter`; true once the disk is "dead".
    fn crashed(&self) -> bool {
        let mut fault = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        match *fault {
            Some(Fault::CrashAfter(0)) => {
                self.injected.fetch_add(1, Ordering::SeqCst);
                true
            }
            Some(Fault::CrashAfter(n)) => {
                *fault = Some(Fault::CrashAfter(n - 1));
                false
            }
            _ => false,
        }
    }

    /// Waits as a slow disk would before a flush, or panics as a bug would.
    fn before_flush(&self) {
        match self.current() {
            Some(Fault::SlowSync(delay)) => std::thread::sleep(delay),
            Some(Fault::PanicIn(name)) if std::thread::current().name() == Some(name) => {
                self.injected.fetch_add(1, Ordering::SeqCst);
                panic!("injected panic in {name}");
            }
            _ => {}
        }
    }

    fn check_crash(&self) -> io::Result<()> {
        if self.crashed() {
            Err(eio())
        } else {
            Ok(())
        }
    }
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

struct FaultyFile {
    inner: File,
    fs: FaultyFs,
}

impl Write for FaultyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.fs.check_crash()?;
        if self.fs.hit(Fault::DiskFull) {
            return Err(enospc());
        }
        if self.fs.hit(Fault::ShortWrites) {
            return self.inner.write(&buf[..buf.len().min(7)]);
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl WritableFile for FaultyFile {
    fn start_writeback(&mut self) {
        self.inner.start_writeback();
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.fs.check_crash()?;
        if self.fs.hit(Fault::SyncFails) {
            return Err(eio());
        }
        self.fs.before_flush();
        self.inner.sync_all()
    }
}

impl FileSystem for FaultyFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check_crash()?;
        Ok(Box::new(FaultyFile {
            inner: File::create(path)?,
            fs: self.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_crash()?;
        if self.hit(Fault::RenameFails) {
            return Err(eio());
        }
        RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        self.check_crash()?;
        RealFs.hard_link(original, link)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.check_crash()?;
        RealFs.symlink(target, link)
    }
    fn exchange(&self, a: &Path, b: &Path) -> io::Result<()> {
        self.check_crash()?;
        if self.hit(Fault::RenameFails) {
            return Err(eio());
        }
        RealFs.exchange(a, b)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check_crash()?;
        RealFs.remove_dir_all(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check_crash()?;
        self.before_flush();
        RealFs.sync_dir(dir)
    }
    fn available_bytes(&self, path: &Path) -> io::Result<u64> {
        if self.current() == Some(Fault::DiskFull) {
            return Ok(0);
        }
        available_bytes(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_only_while_set() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let mut f = fs.create(&dir.path().join("a")).unwrap();
        fs.set(Some(Fault::DiskFull));
        let err = f.write_all(b"hello").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        fs.set(Some(Fault::ShortWrites));
        assert_eq!(f.write(b"0123456789").unwrap(), 7);
        fs.set(None);
        f.write_all(b"!").unwrap();
        f.sync_all().unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"0123456!");
        assert!(fs.injected() >= 2);
    }
}
