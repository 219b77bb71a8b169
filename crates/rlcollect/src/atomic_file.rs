//! Files that appear only when complete (SPEC §3): written to a dot-prefixed
//! temp name in the same folder, fsynced, renamed over the final name, and the
//! folder fsynced so the rename itself survives a power cut.

use crate::error::Error;
use crate::fs::{FileSystem, WritableFile};
use crate::run_dir::temp_path;
use std::io::Write;
use std::path::Path;

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
    let tmp = temp_path(path);
    let result = (|| {
        let file = fs
            .create(&tmp)
            .map_err(Error::io(format!("create {}", tmp.display())))?;
        let mut file = write(file)?;
        file.flush().map_err(Error::io(format!("write {}", tmp.display())))?;
        file.sync_all().map_err(Error::io(format!("fsync {}", tmp.display())))?;
        drop(file);
        fs.rename(&tmp, path)
            .map_err(Error::io(format!("rename {} to {}", tmp.display(), path.display())))?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            sync_dir(fs, path.parent().unwrap_or(Path::new(".")))?;
            Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        }
        Err(e) => {
            let _ = fs.remove_file(&tmp);
            Err(e)
        }
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
    fn publish_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        publish_bytes(&RealFs, &path, b"one").unwrap();
        publish_bytes(&RealFs, &path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
