//! NDJSON input for a sidecar: one reader per input (stdin, each socket
//! connection, each spool file). A reader splits lines, decodes them on its
//! own thread, and sends batches to the collector, so the worker only appends
//! typed rows.
//!
//! Two rules keep every record safe:
//! * *Flush before block*: a reader sends what it decoded before it blocks on
//!   the next read, so no complete line ever waits in a reader while the
//!   input is quiet.
//! * *Stop gate* ([`StopGate`]): a reader decodes only while inside the gate
//!   and checks the stop flag there. Whoever ends the run (a signal) closes
//!   the gate: from then on every line that was decoded is in the channel,
//!   ahead of the shutdown message.
//!
//! * `pump.rs`: lines into decoded batches.
//! * `gate.rs`: the stop gate.
//! * `spool.rs`: the spool files of Python clients whose sidecar was gone.

mod gate;
mod pump;
mod spool;

pub use gate::StopGate;
pub use spool::ingest_spools;

use crate::collector::Handle;
use pump::Pump;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

/// Longest `raw` text kept in `rejected.ndjson`.
const RAW_CUT: usize = 4096;

/// The first read buffer; it doubles for longer lines, up to the line limit.
const CHUNK: usize = 256 * 1024;

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

/// Reads NDJSON from `input` until EOF (or the gate stops it), sending records
/// tagged `source` through `handle`, and calling `on_hello` with the name each
/// `hello` record gives (which renames the source from then on). I/O errors
/// on the input end the reader like EOF, after sending what was read.
pub fn read_ndjson<R: Read + AsFd>(
    mut input: R,
    source: &str,
    handle: &Handle,
    opts: ReaderOptions,
    gate: &StopGate,
    on_hello: &mut dyn FnMut(&str),
) -> (ReadEnd, ReadCounts) {
    let mut pump = Pump::new(handle, on_hello, opts, source);
    let mut buf = LineBuffer::new();
    // Held while this reader has decoded lines not yet sent, so the gate
    // cannot close on them; released only right before a read that may block.
    let mut inside = None;
    loop {
        buf.make_room(&mut pump, opts.max_line_bytes);
        let n = read_some(&mut input, buf.free(), source);
        if inside.is_none() {
            inside = Some(gate.enter());
        }
        if gate.is_stopped() {
            // Lines decoded earlier go out ahead of the shutdown; the chunk
            // just read is dropped unread.
            pump.flush();
            return (ReadEnd::Stopped, pump.counts());
        }
        if n == 0 {
            return pump.finish(buf.unterminated());
        }
        buf.filled += n;
        match pump.lines(buf.data()) {
            Ok(used) => buf.consume(used),
            Err(end) => return (end, pump.counts()),
        }
        // Flush before block: hand over the batch unless more input is ready
        // right now (then keep filling it: fewer, larger messages).
        if !input_ready(&input) {
            if !pump.flush() {
                return (ReadEnd::CollectorGone, pump.counts());
            }
            inside = None;
        }
    }
}

/// One read, retried on EINTR; an error ends the input like EOF.
fn read_some(input: &mut impl Read, into: &mut [u8], source: &str) -> usize {
    loop {
        match input.read(into) {
            Ok(n) => return n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(source, "reading input failed, treating as end of input: {e}");
                return 0;
            }
        }
    }
}

/// The bytes read but not yet split into lines.
struct LineBuffer {
    buf: Vec<u8>,
    filled: usize,
}

impl LineBuffer {
    fn new() -> Self {
        LineBuffer {
            buf: vec![0; CHUNK],
            filled: 0,
        }
    }

    /// Makes room for the next read when the buffer is full of one unfinished
    /// line: doubles it up to the line limit; past that, hands the line's
    /// head to the pump, which skips the rest in constant memory.
    fn make_room(&mut self, pump: &mut Pump<'_>, max_line_bytes: usize) {
        if self.filled < self.buf.len() {
            return;
        }
        if !pump.skipping_overlong() && self.buf.len() <= max_line_bytes {
            self.buf.resize(self.buf.len() * 2, 0);
        } else {
            pump.skip_overlong(&self.buf[..self.filled]);
            self.filled = 0;
        }
    }

    fn free(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    fn data(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// Drops the first `used` bytes (whole lines), keeping the rest.
    fn consume(&mut self, used: usize) {
        self.buf.copy_within(used..self.filled, 0);
        self.filled -= used;
    }

    /// What is left at EOF: a last line without `\n`.
    fn unterminated(&self) -> &[u8] {
        self.data()
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
