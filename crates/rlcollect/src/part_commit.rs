//! [`Committers`]: the second pass of the part writer. A checkpoint's parts,
//! already in their temp files, are made durable and visible: each stream's
//! parts in order, the streams side by side.
//!
//! Why side by side: a commit waits on the disk twice (the file's fsync, then
//! its folder's), and a checkpoint has a part for every stream with rows. In
//! turn, on a disk whose flush takes 2 ms, a bulk load took 2.2 times as long
//! (about 10 of a checkpoint's 14 fsyncs are the parts'). A journaling
//! filesystem commits concurrent fsyncs together. The helper threads live as
//! long as the part writer: spawning them per checkpoint cost more than
//! the overlap saved on a disk that flushes in a tenth of a millisecond.

use crate::atomic_file::Written;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::job_thread::JobThread;
use crate::manifest::FileEntry;
use crossbeam_channel::{bounded, Receiver};
use std::sync::Arc;

/// What became of one part of a job, in the job's order.
pub(crate) type PartResult = Result<Vec<FileEntry>, Error>;

/// A part's files under their temp names, or why it was not written.
pub(crate) type WrittenPart = Result<Vec<(Written, FileEntry)>, Error>;

/// One part waiting to be committed.
pub(crate) struct Pending {
    /// Its place in the job.
    pub index: usize,
    pub stream: Arc<str>,
    pub number: u32,
    pub written: WrittenPart,
}

/// At most this many helpers: more streams than that share them.
const MAX_HELPERS: usize = 7;

/// The part writer's helper threads (see the module docs).
pub(crate) struct Committers {
    fs: Arc<dyn FileSystem>,
    helpers: Vec<Helper>,
}

struct Helper {
    tasks: JobThread<Vec<Pending>>,
    done: Receiver<Vec<(usize, PartResult)>>,
}

impl Committers {
    /// No helper yet: they start when a checkpoint first has several streams.
    pub(crate) fn new(fs: Arc<dyn FileSystem>) -> Self {
        Committers {
            fs,
            helpers: Vec::new(),
        }
    }

    /// Commits `parts` (a job's, in its order) and returns each one's
    /// result, in the same order.
    pub(crate) fn commit(&mut self, parts: Vec<Pending>) -> Vec<PartResult> {
        let mut streams = by_stream(parts).into_iter();
        let here = streams.next();
        let mut handed = 0;
        let mut done: Vec<(usize, PartResult)> = Vec::new();
        for task in streams {
            match self.helper(handed) {
                Some(helper) => {
                    helper.tasks.submit(task);
                    handed += 1;
                }
                None => done.extend(commit_in_order(self.fs.as_ref(), task)),
            }
        }
        if let Some(task) = here {
            done.extend(commit_in_order(self.fs.as_ref(), task));
        }
        for helper in &self.helpers[..handed] {
            done.extend(helper.done.recv().expect("a helper answers every task"));
        }
        // Every part has exactly one result: back into the job's order.
        done.sort_unstable_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, result)| result).collect()
    }

    /// The `n`th idle helper, started if need be; `None` when there is none
    /// to spare (the cap, or the system refused a thread).
    fn helper(&mut self, n: usize) -> Option<&Helper> {
        if n >= MAX_HELPERS {
            return None;
        }
        if n == self.helpers.len() {
            self.helpers.push(Helper::spawn(self.fs.clone())?);
        }
        self.helpers.get(n)
    }
}

impl Helper {
    fn spawn(fs: Arc<dyn FileSystem>) -> Option<Helper> {
        let (results, done) = bounded(1);
        let serve = move |task| results.send(commit_in_order(fs.as_ref(), task)).is_ok();
        match JobThread::spawn("rlcollect-commit", serve) {
            Ok(tasks) => Some(Helper { tasks, done }),
            Err(e) => {
                tracing::debug!("no commit helper thread ({e}); committing in turn");
                None
            }
        }
    }
}

/// The parts grouped by stream, streams in order of first appearance, each
/// stream's parts in job order.
fn by_stream(parts: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut streams: Vec<Vec<Pending>> = Vec::new();
    for p in parts {
        match streams.iter_mut().find(|s| s[0].stream == p.stream) {
            Some(s) => s.push(p),
            None => streams.push(vec![p]),
        }
    }
    streams
}

/// Commits one stream's parts in order. After a failure (in either pass),
/// the stream's later parts are given up: they would come after a missing
/// part. A part before the failure is still published.
fn commit_in_order(fs: &dyn FileSystem, parts: Vec<Pending>) -> Vec<(usize, PartResult)> {
    let mut failed = false;
    parts
        .into_iter()
        .map(|p| {
            let result = p.written.and_then(|files| {
                if failed {
                    files.into_iter().for_each(|(w, _)| w.abandon(fs));
                    return Err(waits_for_earlier(&p.stream, p.number));
                }
                commit_part(fs, files)
            });
            failed |= result.is_err();
            (p.index, result)
        })
        .collect()
}

/// The error of a part not published because an earlier part of its stream
/// failed.
pub(crate) fn waits_for_earlier(stream: &str, number: u32) -> Error {
    Error::Io {
        context: format!("{stream} part {number} waits for an earlier part"),
        source: std::io::Error::other("an earlier part of the stream failed"),
    }
}

/// Publishes a part's files (see [`Written::commit`]), each listed with its
/// size; after a failure the rest are given up.
fn commit_part(fs: &dyn FileSystem, files: Vec<(Written, FileEntry)>) -> PartResult {
    let mut entries = Vec::with_capacity(files.len());
    let mut files = files.into_iter();
    while let Some((written, entry)) = files.next() {
        match written.commit(fs) {
            Ok(bytes) => entries.push(FileEntry { bytes, ..entry }),
            Err(e) => {
                files.for_each(|(w, _)| w.abandon(fs));
                return Err(e);
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_file::write_temp;
    use crate::fs::{Fault, FaultyFs, RealFs};
    use std::io::Write;
    use std::path::Path;

    /// Part `number` of `stream` in `dir/stream/`, written under its temp
    /// name with `number` bytes.
    fn pending(fs: &dyn FileSystem, dir: &Path, index: usize, stream: &str, number: u32) -> Pending {
        let folder = dir.join(stream);
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(format!("part-{number}"));
        let written = write_temp(fs, &path, |mut f| {
            f.write_all(&vec![b'x'; number as usize]).unwrap();
            Ok(f)
        });
        let entry = FileEntry {
            path: format!("{stream}/part-{number}"),
            format: "parquet".into(),
            rows: 1,
            first_seq: index as u64,
            last_seq: index as u64,
            bytes: 0,
        };
        Pending {
            index,
            stream: stream.into(),
            number,
            written: written.map(|w| vec![(w, entry)]),
        }
    }

    /// Every file under `dir`, as sorted paths relative to it.
    fn files_in(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let (path, name) = (e.as_ref().unwrap().path(), e.unwrap().file_name());
            match path.is_dir() {
                true => names.extend(
                    files_in(&path)
                        .into_iter()
                        .map(|n| format!("{}/{n}", name.to_string_lossy())),
                ),
                false => names.push(name.to_string_lossy().into_owned()),
            }
        }
        names.sort();
        names
    }

    #[test]
    fn interleaved_streams_come_back_in_job_order_and_the_helpers_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let mut committers = Committers::new(fs.clone());
        let job = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)];
        for round in 0..3u32 {
            let parts = job
                .iter()
                .enumerate()
                .map(|(i, (s, n))| pending(fs.as_ref(), dir.path(), i, s, n + 10 * round))
                .collect();
            let results = committers.commit(parts);
            for (result, (s, n)) in results.into_iter().zip(job) {
                let entries = result.unwrap();
                assert_eq!(entries[0].path, format!("{s}/part-{}", n + 10 * round));
                assert_eq!(entries[0].bytes, u64::from(n + 10 * round), "the size once committed");
            }
            assert_eq!(committers.helpers.len(), 2, "three streams: two helpers, kept");
        }
        assert_eq!(files_in(dir.path()).len(), 15, "every part, no temp file");
    }

    #[test]
    fn a_failure_gives_up_the_later_parts_of_its_stream_only() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let mut parts = vec![
            pending(fs.as_ref(), dir.path(), 0, "a", 1),
            pending(fs.as_ref(), dir.path(), 1, "b", 2),
            pending(fs.as_ref(), dir.path(), 2, "b", 3),
            pending(fs.as_ref(), dir.path(), 3, "a", 4),
            pending(fs.as_ref(), dir.path(), 4, "b", 5),
        ];
        // b's first part failed to encode (the first pass).
        if let Ok(files) = std::mem::replace(&mut parts[1].written, Err(Error::Config("encode".into()))) {
            files.into_iter().for_each(|(w, _)| w.abandon(fs.as_ref()));
        }
        let results = Committers::new(fs).commit(parts);
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, false, true, false]);
        assert!(results[1].as_ref().unwrap_err().to_string().contains("encode"));
        assert!(results[2]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("b part 3 waits for an earlier part"));
        assert_eq!(
            files_in(dir.path()),
            ["a/part-1", "a/part-4"],
            "no temp file of b is left"
        );
    }

    #[test]
    fn a_disk_that_fails_every_fsync_publishes_nothing_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let faulty = FaultyFs::new();
        let fs: Arc<dyn FileSystem> = Arc::new(faulty.clone());
        let parts = ["a", "b", "c", "a"]
            .iter()
            .enumerate()
            .map(|(i, s)| pending(fs.as_ref(), dir.path(), i, s, i as u32 + 1))
            .collect();
        faulty.set(Some(Fault::SyncFails));
        let results = Committers::new(fs).commit(parts);
        assert!(results.iter().all(Result::is_err));
        assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));
    }
}
