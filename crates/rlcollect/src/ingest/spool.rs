//! Spool files: records a Python client wrote to `RUN/spool-<pid>.ndjson`
//! while its sidecar was gone. `rlcollect run` (resuming the run) and
//! `rlcollect recover` ingest them.

use super::{OneWay, ReadEnd, ReaderOptions, Readers, StopGate};
use crate::collector::Handle;
use crate::error::Error;
use crate::run_dir::RunDir;
use std::fs::{File, TryLockError};

/// Ingests the run's spool files through `handle`, checkpoints so their rows
/// are published, then removes them. A client holds an `flock` on its spool
/// while it writes; a spool still locked is left for later. Returns the rows
/// ingested.
pub fn ingest_spools(handle: &Handle, run: &RunDir, opts: ReaderOptions) -> Result<u64, Error> {
    let readers = Readers::new(handle.clone(), run, opts, StopGate::new());
    let mut ingested = Vec::new();
    let mut rows = 0;
    for (pid, path) in run.spools() {
        let file = File::open(&path).map_err(Error::io(format!("open {}", path.display())))?;
        if let Err(TryLockError::WouldBlock) = file.try_lock() {
            tracing::info!(spool = %path.display(), "client {pid} is still writing its spool: left for later");
            continue;
        }
        let (end, counts) = readers.read(file, &format!("spool-{pid}"), &mut OneWay);
        if end != ReadEnd::Eof {
            return Err(Error::WorkerGone);
        }
        tracing::info!(spool = %path.display(), records = counts.records, "ingested a client's spool");
        rows += counts.records;
        ingested.push(path);
    }
    if !ingested.is_empty() {
        handle.checkpoint()?;
        for path in ingested {
            std::fs::remove_file(&path).map_err(Error::io(format!("remove {}", path.display())))?;
        }
    }
    Ok(rows)
}
