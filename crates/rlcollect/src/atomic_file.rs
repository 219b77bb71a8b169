//! Files that appear only when complete (SPEC §3): written to a dot-prefixed
//! temp name in the same folder, fsynced, renamed over the final name, and the
//! folder fsynced so the rename itself survives a power cut.

use crate::error::Error;
use crate::fs::{FileSystem, WritableFile};
use crate::run_dir::temp_path;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Fsyncs a directory so that renames and new entries in it are durable.
pub(crate) fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(), Error> {
    fs.sync_dir(dir)
        .map_err(Error::io(format!("fsync directory {}", dir.display())))
}

type Out = Box<dyn WritableFile>;

/// Writes a file atomically: `write` fills the temp file, which is then fsynced
/// and renamed to `path`; the folder is fsynced. On any error the temp file is
/// removed and `path` is untouched. Returns the file's size.
pub(crate) fn publish(
    fs: &dyn FileSystem,
    path: &Path,
    write: impl FnOnce(Out) -> Result<Out, Error>,
) -> Result<u64, Error> {
    write_temp(fs, path, write)?.commit(fs)
}

/// The first half of [`publish`]: `write` fills the temp file, whose
/// writeback to disk then starts without waiting. Nothing is durable or
/// visible yet. On an error the temp file is removed.
pub(crate) fn write_temp(
    fs: &dyn FileSystem,
    path: &Path,
    write: impl FnOnce(Out) -> Result<Out, Error>,
) -> Result<Written, Error> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = fs
            .create(&tmp)
            .map_err(Error::io(format!("create {}", tmp.display())))?;
        let mut file = write(file)?;
        file.flush().map_err(Error::io(format!("write {}", tmp.display())))?;
        file.start_writeback();
        Ok(file)
    })();
    match result {
        Ok(file) => Ok(Written {
            tmp,
            path: path.to_owned(),
            file,
        }),
        Err(e) => {
            let _ = fs.remove_file(&tmp);
            Err(e)
        }
    }
}

/// A file written under its temp name (see [`write_temp`]). Writing several
/// before committing any lets the disk take one's data while the next is
/// encoded, so the fsyncs of [`Written::commit`] wait less.
pub(crate) struct Written {
    tmp: PathBuf,
    path: PathBuf,
    file: Out,
}

impl Written {
    /// The second half of [`publish`]: fsync, rename to the final name,
    /// fsync the folder; returns the file's size. On an error before the
    /// rename the temp file is removed.
    pub(crate) fn commit(mut self, fs: &dyn FileSystem) -> Result<u64, Error> {
        let (tmp, path) = (&self.tmp, &self.path);
        let synced = self
            .file
            .sync_all()
            .map_err(Error::io(format!("fsync {}", tmp.display())));
        drop(self.file);
        let renamed = synced.and_then(|()| {
            fs.rename(tmp, path)
                .map_err(Error::io(format!("rename {} to {}", tmp.display(), path.display())))
        });
        if let Err(e) = renamed {
            let _ = fs.remove_file(tmp);
            return Err(e);
        }
        sync_dir(fs, path.parent().unwrap_or(Path::new(".")))?;
        Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
    }

    /// Gives the file up: its temp name is removed.
    pub(crate) fn abandon(self, fs: &dyn FileSystem) {
        drop(self.file);
        let _ = fs.remove_file(&self.tmp);
    }
}

/// Replaces a small file (manifest, summary) atomically.
pub(crate) fn publish_bytes(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<u64, Error> {
    publish(fs, path, |mut f| {
        f.write_all(bytes)
            .map_err(Error::io(format!("write {}", path.display())))?;
        Ok(f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Fault, FaultyFs, RealFs};
    use std::fs;

    #[test]
    fn every_injected_fault_leaves_no_file_and_no_temp_and_short_writes_are_completed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let fs = FaultyFs::new();
        for fault in [Fault::DiskFull, Fault::SyncFails, Fault::RenameFails] {
            fs.set(Some(fault));
            let err = publish_bytes(&fs, &path, &[b'x'; 100_000]).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{fault:?}: {err}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{fault:?}");
        }
        fs.set(Some(Fault::ShortWrites));
        publish_bytes(&fs, &path, b"complete despite short writes").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"complete despite short writes");
    }

    #[test]
    fn failed_write_leaves_no_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let err = publish(&RealFs, &path, |_| Err(Error::Config("boom".into()))).unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn files_written_first_appear_only_when_committed_and_a_failed_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let bytes = |b: &'static [u8]| {
            move |mut f: Out| {
                f.write_all(b).unwrap();
                Ok(f)
            }
        };
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        let written = [
            write_temp(&fs, &a, bytes(b"aa")).unwrap(),
            write_temp(&fs, &b, bytes(b"bbb")).unwrap(),
            write_temp(&fs, &c, bytes(b"c")).unwrap(),
        ];
        assert!(
            !a.exists() && !b.exists() && !c.exists(),
            "nothing visible before a commit"
        );
        let [wa, wb, wc] = written;
        assert_eq!(wa.commit(&fs).unwrap(), 2);
        fs.set(Some(Fault::SyncFails));
        assert!(wb.commit(&fs).is_err());
        fs.set(None);
        wc.abandon(&fs);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a"], "the committed file only: no temp file is left");
        assert_eq!(fs::read(&a).unwrap(), b"aa");
    }

    #[test]
    fn publish_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        publish_bytes(&RealFs, &path, b"one").unwrap();
        publish_bytes(&RealFs, &path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
