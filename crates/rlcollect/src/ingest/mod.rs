//! Input for a sidecar: one reader per input (stdin, each socket connection,
//! each ring, each spool file). A reader splits lines (or ring frames),
//! decodes them on its own thread, and sends batches to the collector, so the
//! worker only appends typed rows.
//!
//! Two rules keep every record safe:
//! * *Flush before block*: a reader sends what it decoded before it blocks on
//!   the next read, so nothing decoded ever waits in a reader while the input
//!   is quiet.
//! * *Stop gate* ([`StopGate`]): a reader decodes only while inside the gate
//!   and checks the stop flag there. Whoever ends the run (a signal) closes
//!   the gate: from then on every line that was decoded is in the channel,
//!   ahead of the shutdown message.
//!
//! * `pump.rs`: lines and frames into decoded batches.
//! * `ring_input.rs`: a connection that hands over through a ring, and rings
//!   adopted from an earlier sidecar (SPEC §6).
//! * `gate.rs`: the stop gate. `spool.rs`: spool files.

mod gate;
mod pump;
mod ring_input;
mod spool;

pub use gate::StopGate;
pub use spool::ingest_spools;

use crate::collector::Handle;
use crate::run_dir::RunDir;
use pump::{Action, Pump};
use std::collections::HashSet;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

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
    /// Input bytes that all readers together hold in batches they are
    /// building: a reader's batch is also full at its share of this (at
    /// least [`MIN_BATCH_BYTES`]), whichever bound comes first. Each
    /// producer's reader builds one batch, so this keeps the sidecar's
    /// memory from growing with the number of producers (8 producers with
    /// batches of 4096 records of 240 bytes peaked 7 MiB higher than with
    /// their 512 KiB shares of the default), while one producer alone keeps
    /// batches of 4096 records.
    pub batch_budget: usize,
}

/// The smallest share of [`ReaderOptions::batch_budget`]: smaller batches
/// would cost more per row than they save.
pub const MIN_BATCH_BYTES: usize = 64 * 1024;

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            max_line_bytes: 1 << 20,
            batch_records: 4096,
            batch_budget: 4 << 20,
        }
    }
}

/// How a reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The input reached end of file (the producer is gone); every line was sent.
    Eof,
    /// The producer said `bye`; `last` is what [`Session::bye`] answered.
    Bye {
        /// No other producer is left: the run ends.
        last: bool,
    },
    /// The gate was closed.
    Stopped,
    /// The collector has stopped.
    CollectorGone,
}

/// Totals of one reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadCounts {
    /// Lines (or ring frames) read, blank lines included.
    pub lines: u64,
    /// Records sent.
    pub records: u64,
    /// Lines rejected.
    pub rejected: u64,
}

/// What a reader tells the rest of the sidecar about its producer, and asks.
pub trait Session {
    /// The producer named itself (`hello`).
    fn hello(&mut self, source: &str);
    /// The producer leaves (`bye`); answers whether it was the last one, in
    /// which case the run ends.
    fn bye(&mut self) -> bool;
    /// Sends one line back to the producer. False where there is no way back
    /// (stdin): then rings cannot be used.
    fn answer(&mut self, line: &str) -> bool;
}

/// A session that only listens: stdin, spool files.
#[derive(Debug, Default)]
pub struct OneWay;

impl Session for OneWay {
    fn hello(&mut self, _source: &str) {}
    fn bye(&mut self) -> bool {
        false
    }
    fn answer(&mut self, _line: &str) -> bool {
        false
    }
}

/// What every reader of a run shares: where batches go, how lines are read,
/// the stop gate, and the run directory (rings live there).
#[derive(Debug, Clone)]
pub struct Readers {
    handle: Handle,
    run: RunDir,
    opts: ReaderOptions,
    gate: Arc<StopGate>,
    /// Rings being read now: never two readers on one ring.
    reading: Arc<Mutex<HashSet<String>>>,
    /// Readers building batches now, which share `opts.batch_budget`.
    active: Arc<AtomicUsize>,
    answers: Arc<HelloAnswers>,
}

/// The answers to a `hello` (SPEC §6). They name the run directory as an
/// absolute path: a client that joined by socket path makes its ring there.
#[derive(Debug)]
struct HelloAnswers {
    ring: String,
    no_ring: String,
}

impl HelloAnswers {
    fn new(run: &RunDir) -> Self {
        let dir = std::path::absolute(run.path()).unwrap_or_else(|_| run.path().to_owned());
        let dir = dir.to_string_lossy();
        let answer = |ring: bool| serde_json::json!({"hello": "ok", "ring": ring, "run": dir}).to_string();
        HelloAnswers {
            ring: answer(true),
            no_ring: answer(false),
        }
    }
}

impl Readers {
    /// Readers sending through `handle` into `run`.
    pub fn new(handle: Handle, run: &RunDir, opts: ReaderOptions, gate: Arc<StopGate>) -> Self {
        Readers {
            handle,
            run: run.clone(),
            opts,
            gate,
            reading: Arc::default(),
            active: Arc::default(),
            answers: Arc::new(HelloAnswers::new(run)),
        }
    }

    /// Claims ring `name` for one reader; false when another reads it. The
    /// claim ends when the guard is dropped.
    fn claim(&self, name: &str) -> Option<Claim<'_>> {
        let mut reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        reading.insert(name.to_owned()).then(|| Claim {
            readers: self,
            name: name.to_owned(),
        })
    }

    /// The stop gate.
    pub fn gate(&self) -> &StopGate {
        &self.gate
    }

    /// Reads NDJSON lines from `input` (tagged `source` until a `hello`
    /// renames it) until EOF, `bye` or the gate. A `hello` that names a ring
    /// switches to reading that ring, with `input` carrying only wake bytes and
    /// `bye` (SPEC §6). I/O errors on the input end it like EOF, after sending
    /// what was read.
    pub fn read<R: Read + AsFd>(&self, mut input: R, source: &str, session: &mut dyn Session) -> (ReadEnd, ReadCounts) {
        let mut pump = Pump::new(self, session, source);
        let mut buf = LineBuffer::new();
        // Held while this reader has decoded lines not yet sent, so the gate
        // cannot close on them; released only right before a read that may block.
        let mut inside = None;
        loop {
            buf.make_room(&mut pump, self.opts.max_line_bytes);
            let n = read_some(&mut input, buf.free(), source);
            if inside.is_none() {
                inside = Some(self.gate.enter());
            }
            if self.gate.is_stopped() {
                // Lines decoded earlier go out ahead of the shutdown; the chunk
                // just read is dropped unread.
                pump.flush();
                return (ReadEnd::Stopped, pump.counts());
            }
            if n == 0 {
                // A last line without '\n' is accepted at EOF (SPEC §2).
                let action = pump.last_line(buf.data());
                if let Some(end) = self.act(action, &mut pump, &mut input, &[]) {
                    return end;
                }
                let end = if pump.flush() {
                    ReadEnd::Eof
                } else {
                    ReadEnd::CollectorGone
                };
                return (end, pump.counts());
            }
            buf.filled += n;
            match pump.lines(buf.data()) {
                Ok((used, action)) => {
                    buf.consume(used);
                    if let Some(end) = self.act(action, &mut pump, &mut input, buf.data()) {
                        return end;
                    }
                }
                Err(()) => return (ReadEnd::CollectorGone, pump.counts()),
            }
            // Flush before block: hand over the batch unless more input is ready
            // right now (then keep filling it: fewer, larger messages).
            if !input_ready(&input) {
                if !pump.flush() {
                    return (ReadEnd::CollectorGone, pump.counts());
                }
                drop(inside.take());
            }
        }
    }

    /// Carries out what a line asked for; `Some` when the input is done.
    /// `rest` is what followed that line in the buffer.
    fn act<R: Read + AsFd>(
        &self,
        action: Option<Action>,
        pump: &mut Pump<'_>,
        input: &mut R,
        rest: &[u8],
    ) -> Option<(ReadEnd, ReadCounts)> {
        match action? {
            Action::Bye => {
                let sent = pump.flush();
                let last = pump.session().bye();
                pump.session().answer(&format!("{{\"bye\":\"ok\",\"last\":{last}}}"));
                let end = if sent {
                    ReadEnd::Bye { last }
                } else {
                    ReadEnd::CollectorGone
                };
                Some((end, pump.counts()))
            }
            Action::Ring(name) => ring_input::switch(self, name, pump, input, rest),
        }
    }
}

/// A ring claimed by one reader (see [`Readers::claim`]).
struct Claim<'a> {
    readers: &'a Readers,
    name: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut reading = self.readers.reading.lock().unwrap_or_else(|e| e.into_inner());
        reading.remove(&self.name);
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
}

/// True when a read on `fd` would return within `ms` milliseconds (data,
/// EOF or an error).
fn ready_within(fd: &impl AsFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for a file descriptor we borrow for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0
}

/// True when a read on `fd` would return at once.
fn input_ready(fd: &impl AsFd) -> bool {
    ready_within(fd, 0)
}
