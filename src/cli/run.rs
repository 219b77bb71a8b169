//! `rlcollect run`: the sidecar. Reader threads decode NDJSON from stdin and
//! from socket connections; the main thread only waits for events (a signal,
//! an input ending) and decides when the run ends.
//!
//! Ending: EOF on stdin (or, with `--listen --exit-when-idle`, the last
//! producer leaving) → final flush, status `complete`. SIGINT/SIGTERM/SIGHUP
//! → readers stop at a line boundary, final flush of everything read, status
//! `interrupted`. A second signal during the flush exits 1 at once.

use super::listen::Listener;
use anyhow::{Context, Result};
use crossbeam_channel::{unbounded, Sender};
use rlcollect::ingest::{read_ndjson_with, ReaderOptions, StopGate};
use rlcollect::{Collector, Format, Handle, RunStatus};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Output format of part files.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    /// Parquet (zstd).
    Parquet,
    /// CSV with a header.
    Csv,
    /// Both side by side.
    Both,
}

/// How records are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// Log every record to a CRC-checked write-ahead log (fsync every --fsync-ms)
    /// before it counts as received: even SIGKILL loses at most that window.
    Wal,
    /// Records are safe once a checkpoint publishes them (faster; a SIGKILL
    /// loses what was buffered since the last checkpoint).
    Checkpoint,
}

/// Options of `rlcollect run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Output root; the run directory is OUT/RUN.
    #[arg(long, default_value = "analysis_data")]
    out: PathBuf,
    /// Run id (directory name). Default: the UTC start time, e.g. 20261122T101500Z.
    #[arg(long)]
    run: Option<String>,
    /// Also accept producers on this Unix socket (many at once).
    #[arg(long)]
    listen: Option<PathBuf>,
    /// With --listen: end the run when the last connection closes (and stdin is closed or unused).
    #[arg(long, requires = "listen")]
    exit_when_idle: bool,
    /// Checkpoint every N candle records (0 = off).
    #[arg(long, default_value_t = 1000)]
    every_candles: u64,
    /// Checkpoint buffered rows every T seconds, even with no candles.
    #[arg(long, default_value_t = 60.0)]
    every_secs: f64,
    /// Checkpoint when this many rows are buffered (bounds memory).
    #[arg(long, default_value_t = 25_000)]
    max_buffered_rows: usize,
    /// Part file format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: FormatArg,
    /// Reject lines longer than this many bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_line_bytes: usize,
    /// Store candle records in the `candles` stream.
    #[arg(long)]
    keep_candles: bool,
    /// Durability mode.
    #[arg(long, value_enum, default_value = "wal")]
    durability: DurabilityArg,
    /// With --durability wal: fsync the log at least this often (the most a crash can lose).
    #[arg(long, default_value_t = 200)]
    fsync_ms: u64,
    /// Refuse to start with less free space than this on the output filesystem; warn below twice it.
    #[arg(long, default_value_t = 512)]
    min_free_mb: u64,
    /// Wait up to this many seconds for the run's lock when another collector
    /// is finishing the same run (0: fail at once).
    #[arg(long, default_value_t = 0.0)]
    wait_lock: f64,
    /// Print a progress line on stderr every 2 s (default: only when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

/// What the main thread waits for.
pub enum Event {
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// Standard input reached its end.
    StdinDone { records: u64 },
    /// An input opened; `id` 0 is stdin.
    Opened { id: u64, source: String },
    /// An input named itself with `hello`.
    Renamed { id: u64, source: String },
    /// An input closed.
    Closed { id: u64 },
}

/// How many termination signals arrived; the second one exits at once.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

pub fn run(args: RunArgs) -> Result<ExitCode> {
    if !(args.every_secs > 0.0 && args.every_secs.is_finite()) {
        return Err(rlcollect::Error::Config(format!("--every-secs must be positive, got {}", args.every_secs)).into());
    }
    if args.max_line_bytes < 16 {
        return Err(rlcollect::Error::Config("--max-line-bytes must be at least 16".into()).into());
    }
    let format = match args.format {
        FormatArg::Parquet => Format::Parquet,
        FormatArg::Csv => Format::Csv,
        FormatArg::Both => Format::Both,
    };
    let mut builder = Collector::builder(&args.out)
        .every_candles(args.every_candles)
        .every(Duration::from_secs_f64(args.every_secs))
        .max_buffered_rows(args.max_buffered_rows)
        .format(format)
        .keep_candles(args.keep_candles)
        .min_free_bytes(args.min_free_mb << 20)
        .lock_wait(Duration::from_secs_f64(args.wait_lock.max(0.0)))
        // Messages are batches of up to 4096 records: a small queue bounds memory.
        .channel_capacity(4)
        .source("stdin");
    if let Some(run) = &args.run {
        builder = builder.run_id(run);
    }
    if args.durability == DurabilityArg::Wal {
        builder = builder.wal(rlcollect::wal::WalOptions {
            fsync_every: Duration::from_millis(args.fsync_ms),
            ..Default::default()
        });
    }
    let collector = builder.build().context("cannot start the run")?;
    let run_dir = collector.run_dir().to_owned();
    tracing::info!(run_dir = %run_dir.display(), "collecting");

    // Records a client spooled while an earlier sidecar of this run was gone.
    rlcollect::ingest::ingest_spools(&collector.handle(), &run_dir, ReaderOptions::default())
        .context("ingesting spool files")?;

    let (events, incoming) = unbounded();
    install_signal_handler(events.clone())?;
    let gate = StopGate::new();
    let opts = ReaderOptions {
        max_line_bytes: args.max_line_bytes,
        ..ReaderOptions::default()
    };

    let listener = match &args.listen {
        Some(path) => Some(Listener::start(
            path,
            collector.handle(),
            opts,
            gate.clone(),
            events.clone(),
        )?),
        None => None,
    };
    let read_stdin = listener.is_none() || !std::io::stdin().is_terminal();
    if read_stdin {
        let (handle, gate, events) = (collector.handle(), gate.clone(), events.clone());
        std::thread::Builder::new().name("read-stdin".into()).spawn(move || {
            let _ = events.send(Event::Opened {
                id: 0,
                source: "stdin".into(),
            });
            let renamed = events.clone();
            let mut on_hello = |name: &str| {
                let _ = renamed.send(Event::Renamed {
                    id: 0,
                    source: name.to_owned(),
                });
            };
            let (end, counts) = read_ndjson_with(std::io::stdin().lock(), "stdin", &handle, opts, &gate, &mut on_hello);
            tracing::debug!(?end, ?counts, "stdin ended");
            let _ = events.send(Event::StdinDone {
                records: counts.records,
            });
        })?;
    }
    let progress_on = args.progress || std::io::stderr().is_terminal();
    let progress_stop = Arc::new(AtomicBool::new(false));
    if progress_on {
        spawn_progress(collector.handle(), progress_stop.clone());
    }

    let mut inputs = Inputs::new(read_stdin);
    let status = loop {
        match incoming.recv() {
            Ok(Event::Signal) | Err(_) => {
                tracing::info!("signal received: stopping input, final flush of everything read");
                gate.stop_and_wait();
                break RunStatus::Interrupted;
            }
            Ok(event) => {
                inputs.apply(event);
                collector.handle().set_connected(inputs.connected());
                if inputs.finished(listener.is_some(), args.exit_when_idle) {
                    break RunStatus::Complete;
                }
            }
        }
    };
    if let Some(mut listener) = listener {
        // No new producer can connect from here on; queued ones are served.
        listener.stop();
        if status == RunStatus::Complete {
            while listener.active.load(Ordering::SeqCst) > 0 {
                if let Ok(Event::Signal) = incoming.recv_timeout(Duration::from_millis(50)) {
                    gate.stop_and_wait();
                    break;
                }
            }
        }
    }
    progress_stop.store(true, Ordering::SeqCst);
    let summary = collector.close_as(status).context("final flush failed")?;
    let rows: u64 = summary.rows.values().sum();
    tracing::info!(
        status = %status,
        rows,
        rejected = summary.rejected,
        run_dir = %run_dir.display(),
        "run ended"
    );
    Ok(ExitCode::SUCCESS)
}

/// The run's inputs, as the main thread sees them through events.
struct Inputs {
    stdin_open: bool,
    stdin_records: u64,
    /// Open inputs by id (0 = stdin) with their current source names.
    open: std::collections::BTreeMap<u64, String>,
    ever_connected: bool,
}

impl Inputs {
    fn new(read_stdin: bool) -> Self {
        Inputs {
            stdin_open: read_stdin,
            stdin_records: 0,
            open: Default::default(),
            ever_connected: false,
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Opened { id, source } | Event::Renamed { id, source } => {
                self.ever_connected |= id != 0;
                self.open.insert(id, source);
            }
            Event::Closed { id } => {
                self.open.remove(&id);
            }
            Event::StdinDone { records } => {
                self.stdin_open = false;
                self.stdin_records = records;
                self.open.remove(&0);
            }
            Event::Signal => {}
        }
    }

    fn connected(&self) -> Vec<String> {
        self.open.values().cloned().collect()
    }

    /// Without a socket the run ends with stdin. With `--exit-when-idle` it ends
    /// once stdin is closed (or unused) and the last connection has left, after
    /// at least one producer was seen.
    fn finished(&self, listening: bool, exit_when_idle: bool) -> bool {
        if !listening {
            return !self.stdin_open;
        }
        let sockets_open = self.open.keys().any(|id| *id != 0);
        exit_when_idle && !self.stdin_open && !sockets_open && (self.ever_connected || self.stdin_records > 0)
    }
}

fn install_signal_handler(events: Sender<Event>) -> Result<()> {
    ctrlc::set_handler(move || {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = events.send(Event::Signal);
        } else {
            eprintln!("rlcollect: second signal during the final flush: exiting now without finishing it");
            std::process::exit(1);
        }
    })
    .context("installing the signal handler")
}

fn spawn_progress(handle: Handle, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut last = handle.stats();
        let mut last_at = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(2));
            let now = handle.stats();
            let secs = last_at.elapsed().as_secs_f64();
            last_at = Instant::now();
            eprintln!(
                "rlcollect: {:>10.0} records/s | {} records | {} buffered | {} checkpoints | {} files | {} rejected",
                (now.records - last.records) as f64 / secs,
                super::thousands(now.records),
                super::thousands(now.rows_buffered),
                now.checkpoints,
                now.files,
                now.rejected
            );
            last = now;
        }
    });
}
