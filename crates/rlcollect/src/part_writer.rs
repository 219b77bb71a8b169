//! [`PartWriter`]: a thread that encodes sealed batches into part files
//! (Parquet, CSV), each written atomically, so the worker goes on taking
//! rows while a checkpoint's parts are compressed and fsynced.
//!
//! The worker hands over one job at a time (a checkpoint's parts, in order)
//! and learns per part whether it was written; it alone then lists the files
//! in the manifest (`publisher.rs`). Within a stream, parts are written in
//! order and a failure stops that stream's later parts, so the published
//! parts of a stream are always a prefix of its sealed ones. The parts are
//! encoded here and committed by [`Committers`], streams side by side.

use crate::atomic_file::{sync_dir, Written};
use crate::buffer::SealedBatch;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::FileEntry;
pub(crate) use crate::part_commit::PartResult;
use crate::part_commit::{waits_for_earlier, Committers, Pending};
use crate::part_file::{write_csv, write_parquet, Format, PartCodec};
use crate::run_dir::RunDir;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;

/// One part to write.
pub(crate) struct PartJob {
    pub stream: Arc<str>,
    /// The stream's generation folder (relative to the run), as the manifest
    /// names it; `None`: the plain folder `RUN/STREAM`. Named explicitly
    /// rather than through the `RUN/STREAM` symlink, so a part always lands
    /// where the manifest will say it is.
    pub dir: Option<String>,
    pub number: u32,
    pub part: SealedBatch,
}

/// The writer thread and its two channels.
pub(crate) struct PartWriter {
    jobs: Option<Sender<Vec<PartJob>>>,
    done: Receiver<Vec<PartResult>>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
}

impl PartWriter {
    /// Starts the thread writing into `run` through `fs`, in `format`
    /// (Parquet pages compressed with `codec`).
    pub(crate) fn spawn(
        run: RunDir,
        fs: Arc<dyn FileSystem>,
        format: Format,
        codec: PartCodec,
    ) -> Result<PartWriter, Error> {
        let (jobs, incoming) = bounded::<Vec<PartJob>>(1);
        let (results, done) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("rlcollect-parts".into())
            .spawn(move || {
                let mut committers = Committers::new(fs.clone());
                for job in incoming {
                    let written = write_job(&run, fs.as_ref(), format, codec, &mut committers, job);
                    if results.send(written).is_err() {
                        return;
                    }
                }
            })
            .map_err(Error::io("spawn the part writer thread"))?;
        Ok(PartWriter {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: false,
        })
    }

    /// True while a job is being written.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Where the results of jobs arrive (for a `select!`).
    pub(crate) fn done(&self) -> &Receiver<Vec<PartResult>> {
        &self.done
    }

    /// Hands a job over; there must be none in flight.
    pub(crate) fn submit(&mut self, job: Vec<PartJob>) {
        assert!(!self.in_flight, "one job at a time");
        let jobs = self.jobs.as_ref().expect("the writer runs until dropped");
        jobs.send(job)
            .expect("the part writer thread lives as long as its handle");
        self.in_flight = true;
    }

    /// Waits for the job in flight.
    pub(crate) fn wait(&mut self) -> Vec<PartResult> {
        let results = self.done.recv().expect("the part writer answers every job");
        self.in_flight = false;
        results
    }

    /// The job in flight's results were taken from [`done`](Self::done).
    pub(crate) fn received(&mut self) {
        self.in_flight = false;
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a job's parts in two passes: every part under its temp name first,
/// with its writeback started, then each made durable and visible by the
/// [`Committers`]. The disk so takes one part's data while the next is
/// encoded (the fsyncs were nearly half of this thread's time in a bulk
/// load). After a failure, later parts of the same stream are not published
/// (they would come after a missing part).
fn write_job(
    run: &RunDir,
    fs: &dyn FileSystem,
    format: Format,
    codec: PartCodec,
    committers: &mut Committers,
    job: Vec<PartJob>,
) -> Vec<PartResult> {
    let mut failed: HashSet<Arc<str>> = HashSet::new();
    let pending = job
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let written = if failed.contains(&p.stream) {
                Err(waits_for_earlier(&p.stream, p.number))
            } else {
                write_part(run, fs, (format, codec), p)
            };
            if written.is_err() {
                failed.insert(p.stream.clone());
            }
            Pending {
                index,
                stream: p.stream.clone(),
                number: p.number,
                written,
            }
        })
        .collect();
    committers.commit(pending)
}

/// Writes one batch as part `number` of its stream, in every configured
/// format, under temp names.
fn write_part(
    run: &RunDir,
    fs: &dyn FileSystem,
    (format, codec): (Format, PartCodec),
    job: &PartJob,
) -> Result<Vec<(Written, FileEntry)>, Error> {
    let dir = match &job.dir {
        Some(gen) => run.path().join(gen),
        None => run.stream_dir(&job.stream),
    };
    if !dir.is_dir() {
        fs.create_dir_all(&dir)
            .map_err(Error::io(format!("create {}", dir.display())))?;
        sync_dir(fs, dir.parent().expect("a stream folder is inside the run"))?;
    }
    if let Some(gen) = &job.dir {
        // A stream that starts in a generation: its symlink, from the first part on.
        if run.linked_generation(&job.stream).as_deref() != Some(gen.as_str()) {
            run.swap_generation(fs, &job.stream, gen)?;
        }
    }
    let part = &job.part;
    let mut files: Vec<(Written, FileEntry)> = Vec::with_capacity(2);
    for (ext, wanted) in [("parquet", format.parquet()), ("csv", format.csv())] {
        if !wanted {
            continue;
        }
        let name = run.part(&job.stream, job.number, ext);
        let path = dir.join(name.path.file_name().expect("a part has a file name"));
        let written = match ext {
            "parquet" => write_parquet(fs, &path, part, run.id(), codec),
            _ => write_csv(fs, &path, part),
        };
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                files.into_iter().for_each(|(w, _)| w.abandon(fs));
                return Err(e);
            }
        };
        files.push((
            written,
            FileEntry {
                path: name.rel,
                format: ext.to_owned(),
                rows: part.rows as u64,
                first_seq: part.first_seq,
                last_seq: part.last_seq,
                bytes: 0,
            },
        ));
    }
    Ok(files)
}
