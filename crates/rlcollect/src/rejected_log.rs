//! `rejected.ndjson`: every line that could not be decoded, with its line
//! number, source and reason (SPEC §2 "Bad input"). Opened on the first
//! rejection, so a clean run has no such file.

use crate::error::Error;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// A line that could not be decoded, on its way to `rejected.ndjson`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Rejected {
    /// Line number within its source (1-based).
    pub line: u64,
    /// The connection's source name.
    pub source: String,
    /// Why it was rejected.
    pub error: String,
    /// The line (lossy UTF-8), cut at 4 KiB.
    pub raw: String,
}

/// The append-only log of rejected lines.
pub(crate) struct RejectedLog {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl RejectedLog {
    pub(crate) fn new(path: PathBuf) -> Self {
        RejectedLog { path, out: None }
    }

    /// Appends one line (buffered; see [`flush`](Self::flush) and [`sync`](Self::sync)).
    pub(crate) fn append(&mut self, r: &Rejected) -> Result<(), Error> {
        if self.out.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(Error::io(format!("open {}", self.path.display())))?;
            self.out = Some(BufWriter::new(file));
        }
        let out = self.out.as_mut().expect("opened above");
        let mut line = serde_json::to_vec(r).expect("a rejected line serializes");
        line.push(b'\n');
        out.write_all(&line)
            .map_err(Error::io(format!("write {}", self.path.display())))
    }

    /// Hands what is buffered to the OS, so `tail -f` shows it.
    pub(crate) fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
    }

    /// Writes out and fsyncs what was appended (at every checkpoint).
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
        if let Some(out) = self.out.as_mut() {
            out.flush()
                .and_then(|_| out.get_ref().sync_data())
                .map_err(Error::io(format!("fsync {}", self.path.display())))?;
        }
        Ok(())
    }
}
