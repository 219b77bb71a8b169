//! [`Producer`]: hand records to a run's sidecar through a shared-memory ring
//! (SPEC §6), so that once [`Producer::send`] returns the record is in the run
//! whatever ends this process: a panic that aborts, SIGKILL, the OOM killer.
//!
//! For engines that want to survive their own crash. An engine that does not
//! need that links the in-process [`Collector`](crate::Collector) instead.
//!
//! ```no_run
//! use rlcollect::{Producer, Record, Trade};
//! # fn main() -> Result<(), rlcollect::Error> {
//! let producer = Producer::builder("analysis_data").run_id("backtest-7").source("engine").join()?;
//! producer.send(&Record::Trade(Trade { pair: "BTC/USDT".into(), profit_abs: Some(1.0), ..Trade::default() }))?;
//! producer.close()?; // optional: a dropped or killed producer loses nothing either
//! # Ok(()) }
//! ```
//!
//! * `join.rs`: join the run's sidecar, or start one.
//! * `handoff.rs`: the ring (or, when it cannot be used, lines on the socket),
//!   waiting for space, and the spool file when the sidecar is gone.

mod handoff;
mod join;

use crate::error::Error;
use crate::record::Record;
use crate::run_dir::RunDir;
use crate::summary::RunSummary;
use handoff::Handoff;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Settings of a [`Producer`].
#[derive(Debug, Clone)]
pub struct ProducerBuilder {
    out: PathBuf,
    run_id: Option<String>,
    source: Option<String>,
    ring_bytes: u64,
    binary: Option<PathBuf>,
    sidecar_args: Vec<OsString>,
    full_wait: Duration,
}

impl ProducerBuilder {
    /// The run to join. Default: `RLCOLLECT_RUN`, else the UTC start time.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// The `_source` of this producer's rows. Default: `rust-<pid>`.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The ring's data area, a power of two from 64 KiB to 1 GiB. Default 16 MiB.
    pub fn ring_bytes(mut self, bytes: u64) -> Self {
        self.ring_bytes = bytes;
        self
    }

    /// The `rlcollect` binary to start when no sidecar runs. Default:
    /// `RLCOLLECT_BIN`, then `PATH`.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Further arguments for `rlcollect run` when this producer starts it
    /// (`--every-candles 500`, `--durability checkpoint`, ...).
    pub fn sidecar_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.sidecar_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// How long `send` waits for room in a full ring while the sidecar lives,
    /// before it spills to the spool file. Default 30 s.
    pub fn full_wait(mut self, wait: Duration) -> Self {
        self.full_wait = wait;
        self
    }

    /// Joins the run's sidecar (starting one if none runs) and opens a ring.
    pub fn join(self) -> Result<Producer, Error> {
        let run_id = self
            .run_id
            .or_else(|| std::env::var("RLCOLLECT_RUN").ok())
            .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
        let run = RunDir::new(&self.out, run_id)?;
        let source = self.source.unwrap_or_else(|| format!("rust-{}", std::process::id()));
        let joined = join::join_or_spawn(&run, self.binary.as_deref(), &self.sidecar_args)?;
        let handoff = Handoff::open(run.clone(), joined, &source, self.ring_bytes, self.full_wait)?;
        Ok(Producer {
            run,
            inner: Mutex::new(handoff),
        })
    }
}

/// A producer of records for a run's sidecar (see the module docs). Threads
/// may share it: sends are serialised on an internal lock.
#[derive(Debug)]
pub struct Producer {
    run: RunDir,
    inner: Mutex<Handoff>,
}

impl Producer {
    /// Starts configuring a producer for a run under `out`.
    pub fn builder(out: impl Into<PathBuf>) -> ProducerBuilder {
        ProducerBuilder {
            out: out.into(),
            run_id: None,
            source: None,
            ring_bytes: 16 << 20,
            binary: None,
            sidecar_args: Vec::new(),
            full_wait: Duration::from_secs(30),
        }
    }

    /// The run this producer writes into.
    pub fn run(&self) -> &RunDir {
        &self.run
    }

    /// Hands one record over. When this returns, the record is in the ring
    /// (or, with the sidecar gone and the ring full, in the spool file).
    pub fn send(&self, record: &Record) -> Result<(), Error> {
        let mut line = Vec::with_capacity(256);
        record.write_json(&mut line);
        self.send_line(&line)
    }

    /// Hands one NDJSON record (no newline) over, as [`send`](Self::send).
    pub fn send_line(&self, line: &[u8]) -> Result<(), Error> {
        self.lock().send(line)
    }

    /// True once the ring was full with the sidecar gone: records go to the
    /// spool file, which the next `rlcollect run` or `recover` ingests.
    pub fn spilling(&self) -> bool {
        self.lock().spilling()
    }

    /// Closes the ring and says `bye`. When this producer was the last one,
    /// waits for the run's final flush and returns its summary.
    pub fn close(self) -> Result<Option<RunSummary>, Error> {
        let handoff = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        let last = handoff.close()?;
        Ok(if last { self.run.load_summary().ok() } else { None })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Handoff> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
