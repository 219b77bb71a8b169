//! NDJSON readers: one per input (stdin, each socket connection). A reader
//! splits lines, decodes them on its own thread, and sends batches to the
//! collector, so the worker only appends typed rows.
//!
//! Two rules keep every record safe:
//! * *Flush before block*: a reader sends what it decoded before it blocks on
//!   the next read, so no complete line ever waits in a reader while the
//!   input is quiet.
//! * *Stop gate*: a reader decodes only while holding the gate's shared lock
//!   and checks the stop flag under it. Whoever ends the run (a signal) sets
//!   the flag, then takes the exclusive lock: from then on every line that was
//!   decoded is in the channel, ahead of the shutdown message.

use crate::collector::Handle;
use crate::error::DecodeError;
use crate::record::{Control, Record};
use crate::worker::{Batch, Ingested, Rejected};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Longest `raw` text kept in `rejected.ndjson`.
pub const RAW_CUT: usize = 4096;

/// Reader settings.
#[derive(Debug, Clone, Copy)]
pub struct ReaderOptions {
    /// Lines longer than this are rejected (SPEC default 1 MiB).
    pub max_line_bytes: usize,
    /// Records per batch sent to the worker.
    pub batch_records: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            max_line_bytes: 1 << 20,
            batch_records: 4096,
        }
    }
}

/// Lets the run's owner stop every reader at a line boundary.
#[derive(Debug, Default)]
pub struct StopGate {
    stop: AtomicBool,
    busy: RwLock<()>,
}

impl StopGate {
    /// A gate that lets readers run.
    pub fn new() -> Arc<Self> {
        Arc::new(StopGate::default())
    }

    /// Stops every reader and waits until none is mid-batch. Returns when all
    /// decoded lines are in the collector's channel.
    pub fn stop_and_wait(&self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.busy.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// True once [`stop_and_wait`](Self::stop_and_wait) was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// How a reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The input reached end of file; every line was sent.
    Eof,
    /// The gate was closed.
    Stopped,
    /// The collector has stopped.
    CollectorGone,
}

/// Totals of one reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadCounts {
    /// Lines read (blank lines included).
    pub lines: u64,
    /// Records sent.
    pub records: u64,
    /// Lines rejected.
    pub rejected: u64,
}

struct Pump<'a> {
    handle: &'a Handle,
    on_hello: &'a mut dyn FnMut(&str),
    opts: ReaderOptions,
    source: Arc<str>,
    batch: Vec<Ingested>,
    /// The lines of the records in `batch`, and each one's range.
    raw: Vec<u8>,
    spans: Vec<std::ops::Range<usize>>,
    counts: ReadCounts,
    /// Set while skipping the rest of an over-long line: its length so far and its start.
    overlong: Option<(usize, Vec<u8>)>,
}

impl Pump<'_> {
    fn line(&mut self, raw: &[u8]) {
        self.counts.lines += 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if line.len() > self.opts.max_line_bytes {
            let err = DecodeError::LineTooLong {
                len: line.len(),
                max: self.opts.max_line_bytes,
            };
            return self.reject(line, err);
        }
        match Record::from_json(line) {
            Ok(Record::Control(Control::Hello { source })) => {
                self.flush();
                (self.on_hello)(&source);
                self.source = source.into();
            }
            Ok(record) => {
                self.counts.records += 1;
                self.batch.push(Ingested::Record(record));
                let start = self.raw.len();
                self.raw.extend_from_slice(line);
                self.spans.push(start..self.raw.len());
            }
            Err(err) => self.reject(line, err),
        }
    }

    fn reject(&mut self, line: &[u8], err: DecodeError) {
        self.counts.rejected += 1;
        let cut = &line[..line.len().min(RAW_CUT)];
        self.batch.push(Ingested::Rejected(Rejected {
            line: self.counts.lines,
            source: self.source.to_string(),
            error: err.to_string(),
            raw: String::from_utf8_lossy(cut).into_owned(),
        }));
    }

    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let items = std::mem::replace(&mut self.batch, Vec::with_capacity(self.opts.batch_records));
        let raw = std::mem::replace(&mut self.raw, Vec::with_capacity(self.opts.batch_records * 256));
        let spans = std::mem::replace(&mut self.spans, Vec::with_capacity(self.opts.batch_records));
        self.handle
            .send_batch(Batch {
                source: self.source.clone(),
                items,
                raw,
                spans,
            })
            .is_ok()
    }

    /// Handles every complete line in `data`; returns how many bytes it used.
    fn lines(&mut self, data: &[u8]) -> Result<usize, ReadEnd> {
        let mut used = 0;
        while let Some(nl) = data[used..].iter().position(|&b| b == b'\n') {
            let line = &data[used..used + nl];
            if let Some((len, head)) = self.overlong.take() {
                let len = len + line.len();
                self.counts.lines += 1;
                self.reject_overlong(len, head);
            } else {
                self.line(line);
            }
            used += nl + 1;
            if self.batch.len() >= self.opts.batch_records && !self.flush() {
                return Err(ReadEnd::CollectorGone);
            }
        }
        Ok(used)
    }

    fn reject_overlong(&mut self, len: usize, head: Vec<u8>) {
        let err = DecodeError::LineTooLong {
            len,
            max: self.opts.max_line_bytes,
        };
        self.reject(&head, err);
    }
}

/// True when a read on `fd` would return at once (data, EOF or an error).
fn input_ready(fd: &impl AsFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for a file descriptor we borrow for the call;
    // a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0
}

/// Reads NDJSON from `input` until EOF (or the gate stops it), sending records
/// tagged `source` (until a `hello` renames it) through `handle`. I/O errors
/// on the input end the reader like EOF, after sending what was read.
pub fn read_ndjson<R: Read + AsFd>(
    input: R,
    source: &str,
    handle: &Handle,
    opts: ReaderOptions,
    gate: &StopGate,
) -> (ReadEnd, ReadCounts) {
    read_ndjson_with(input, source, handle, opts, gate, &mut |_| {})
}

/// [`read_ndjson`], calling `on_hello` with the name each `hello` record gives.
pub fn read_ndjson_with<R: Read + AsFd>(
    mut input: R,
    source: &str,
    handle: &Handle,
    opts: ReaderOptions,
    gate: &StopGate,
    on_hello: &mut dyn FnMut(&str),
) -> (ReadEnd, ReadCounts) {
    let mut pump = Pump {
        handle,
        on_hello,
        opts,
        source: source.into(),
        batch: Vec::with_capacity(opts.batch_records),
        raw: Vec::new(),
        spans: Vec::new(),
        counts: ReadCounts::default(),
        overlong: None,
    };
    let chunk = 256 * 1024;
    let mut buf = vec![0u8; chunk];
    let mut filled = 0;
    // Held while this reader has decoded lines not yet sent, so the gate
    // cannot close on them; released only right before a read that may block.
    let mut busy = None;
    loop {
        if filled == buf.len() {
            if pump.overlong.is_none() && buf.len() <= opts.max_line_bytes {
                buf.resize(buf.len() * 2, 0);
            } else {
                // A line longer than the limit: keep its head for the report
                // and skip the rest until its newline, in constant memory.
                let (len, head) = pump
                    .overlong
                    .take()
                    .unwrap_or_else(|| (0, buf[..RAW_CUT.min(filled)].to_vec()));
                pump.overlong = Some((len + filled, head));
                filled = 0;
            }
        }
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(source, "reading input failed, treating as end of input: {e}");
                0
            }
        };
        if busy.is_none() {
            busy = Some(gate.busy.read().unwrap_or_else(|e| e.into_inner()));
        }
        if gate.is_stopped() {
            // Lines decoded earlier go out ahead of the shutdown; the chunk
            // just read is dropped unread.
            pump.flush();
            return (ReadEnd::Stopped, pump.counts);
        }
        if n == 0 {
            // A last line without '\n' is accepted at EOF (SPEC §2).
            if let Some((len, head)) = pump.overlong.take() {
                pump.counts.lines += 1;
                pump.reject_overlong(len + filled, head);
            } else if filled > 0 {
                let rest = buf[..filled].to_vec();
                pump.line(&rest);
            }
            let end = if pump.flush() {
                ReadEnd::Eof
            } else {
                ReadEnd::CollectorGone
            };
            return (end, pump.counts);
        }
        let end = filled + n;
        let used = match pump.lines(&buf[..end]) {
            Ok(used) => used,
            Err(end) => return (end, pump.counts),
        };
        buf.copy_within(used..end, 0);
        filled = end - used;
        // Flush before block: hand over the batch unless more input is ready
        // right now (then keep filling it: fewer, larger messages).
        if !input_ready(&input) {
            if !pump.flush() {
                return (ReadEnd::CollectorGone, pump.counts);
            }
            busy = None;
        }
    }
}

/// Spool files that Python clients wrote while their sidecar was gone
/// (`RUN/spool-<pid>.ndjson`), as (writer pid, path).
pub fn spool_files(run_dir: &std::path::Path) -> Vec<(u32, std::path::PathBuf)> {
    crate::fs::numbered_files(run_dir, "spool-", ".ndjson")
}

/// Ingests the run's spool files through `handle`, checkpoints so their rows
/// are published, then removes them. A client holds an `flock` on its spool
/// while it writes; a spool still locked is left for later. Returns the rows
/// ingested.
pub fn ingest_spools(
    handle: &Handle,
    run_dir: &std::path::Path,
    opts: ReaderOptions,
) -> Result<u64, crate::error::Error> {
    let gate = StopGate::default();
    let mut ingested = Vec::new();
    let mut rows = 0;
    for (pid, path) in spool_files(run_dir) {
        let file = std::fs::File::open(&path).map_err(crate::error::Error::io(format!("open {}", path.display())))?;
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
            tracing::info!(spool = %path.display(), "client {pid} is still writing its spool: left for later");
            continue;
        }
        let (end, counts) = read_ndjson(file, &format!("spool-{pid}"), handle, opts, &gate);
        if end != ReadEnd::Eof {
            return Err(crate::error::Error::WorkerGone);
        }
        tracing::info!(spool = %path.display(), records = counts.records, "ingested a client's spool");
        rows += counts.records;
        ingested.push(path);
    }
    if !ingested.is_empty() {
        handle.checkpoint()?;
        for path in ingested {
            std::fs::remove_file(&path).map_err(crate::error::Error::io(format!("remove {}", path.display())))?;
        }
    }
    Ok(rows)
}
