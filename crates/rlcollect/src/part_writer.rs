//! [`PartWriter`]: a thread that encodes sealed batches into part files
//! (Parquet, CSV), each written atomically, so the worker goes on taking
//! rows while a checkpoint's parts are compressed and fsynced.
//!
//! The worker hands over one job at a time (a checkpoint's parts, in order)
//! and learns per part whether it was written (`Done::Parts`); it alone
//! then lists the files in the manifest (`publisher.rs`). Within a stream,
//! parts are written in order and a failure stops that stream's later
//! parts, so the published parts of a stream are always a prefix of its
//! sealed ones. The parts are encoded here and committed by [`Committers`],
//! streams side by side.

use crate::atomic_file::{sync_dir, Written};
use crate::buffer::SealedBatch;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::job_thread::JobThread;
use crate::manifest::FileEntry;
pub(crate) use crate::part_commit::PartResult;
use crate::part_commit::{waits_for_earlier, Committers, Pending};
use crate::part_file::{write_csv, write_parquet, Format, PartCodec};
use crate::publisher::{panicked, unless_panicked, Done};
use crate::run_dir::RunDir;
use crossbeam_channel::Sender;
use std::collections::HashSet;
use std::sync::Arc;

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

/// The part writer thread's name.
const THREAD: &str = "rlcollect-parts";

/// The part writer thread.
pub(crate) struct PartWriter(JobThread<Vec<PartJob>>);

impl PartWriter {
    /// Starts the thread writing into `run` through `fs`, in `format`
    /// (Parquet pages compressed with `codec`). Each job's results go to
    /// `done`.
    pub(crate) fn spawn(
        run: RunDir,
        fs: Arc<dyn FileSystem>,
        format: Format,
        codec: PartCodec,
        done: Sender<Done>,
    ) -> Result<PartWriter, Error> {
        let mut committers = Committers::new(fs.clone());
        let serve = move |job: Vec<PartJob>| {
            let parts = job.len();
            let write = || write_job(&run, fs.as_ref(), format, codec, &mut committers, job);
            let written = unless_panicked(THREAD, write).unwrap_or_else(|_| {
                // Its helpers may still hold answers of the job that
                // panicked: start with new ones. No part is published.
                committers = Committers::new(fs.clone());
                (0..parts).map(|_| Err(panicked(THREAD))).collect()
            });
            done.send(Done::Parts(written)).is_ok()
        };
        let thread = JobThread::spawn(THREAD, serve).map_err(Error::io("spawn the part writer thread"))?;
        Ok(PartWriter(thread))
    }

    /// Hands a checkpoint's parts over, in order.
    pub(crate) fn submit(&self, job: Vec<PartJob>) {
        self.0.submit(job);
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
