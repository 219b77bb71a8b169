//! `rlcollect run`: the sidecar. Reader threads decode NDJSON from stdin and
//! from socket connections; the main thread only waits for events (a signal,
//! an input ending) and decides when the run ends.
//!
//! Ending: EOF on stdin (or, with `--listen --exit-when-idle`, the last
//! producer leaving) → final flush, status `complete`. SIGINT/SIGTERM/SIGHUP
//! → readers stop at a line boundary, final flush of everything read, status
//! `interrupted`. A second signal during the flush exits 1 at once.
//!
//! * `args.rs`: flags, checked once into [`args::RunSettings`].
//! * `inputs.rs`: events and the rule for when the run is over.
//! * `listen.rs`: the Unix socket. `signals.rs`, `progress.rs`.

mod args;
mod inputs;
mod listen;
mod progress;
mod signals;

pub use args::RunArgs;

use anyhow::{Context, Result};
use crossbeam_channel::{unbounded, Receiver, Sender};
use inputs::{Event, Inputs};
use listen::Listener;
use rlcollect::ingest::{ingest_spools, read_ndjson, ReaderOptions, StopGate};
use rlcollect::{Collector, Handle, RunStatus};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs the sidecar until its inputs end or a signal arrives.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let settings = args.into_settings()?;
    let collector = settings.collector.clone().build().context("cannot start the run")?;
    tracing::info!(run_dir = %collector.run_dir().display(), "collecting");
    // Records a client spooled while an earlier sidecar of this run was gone.
    ingest_spools(&collector.handle(), collector.run(), ReaderOptions::default()).context("ingesting spool files")?;

    let (events, incoming) = unbounded();
    signals::install_signal_handler(events.clone())?;
    let gate = StopGate::new();
    let listener = match &settings.listen {
        Some(path) => Some(Listener::start(
            path,
            collector.handle(),
            settings.reader,
            gate.clone(),
            events.clone(),
        )?),
        None => None,
    };
    let read_stdin = listener.is_none() || !std::io::stdin().is_terminal();
    if read_stdin {
        spawn_stdin_reader(collector.handle(), settings.reader, gate.clone(), events)?;
    }
    let progress_stop = Arc::new(AtomicBool::new(false));
    if settings.progress || std::io::stderr().is_terminal() {
        progress::spawn_progress(collector.handle(), progress_stop.clone());
    }

    let mut inputs = Inputs::new(read_stdin);
    let status = wait_for_end(&incoming, &mut inputs, &collector.handle(), &gate, &settings);
    if let Some(listener) = listener {
        match status {
            // No new producer can connect from here on; queued ones are served.
            RunStatus::Complete => listener.drain(&incoming, &gate),
            _ => listener.stop(),
        }
    }
    progress_stop.store(true, Ordering::SeqCst);
    finish(collector, status)
}

/// The main thread's loop: applies events until the run is over; returns
/// how it ends.
fn wait_for_end(
    incoming: &Receiver<Event>,
    inputs: &mut Inputs,
    handle: &Handle,
    gate: &StopGate,
    settings: &args::RunSettings,
) -> RunStatus {
    loop {
        match incoming.recv() {
            Ok(Event::Signal) | Err(_) => {
                tracing::info!("signal received: stopping input, final flush of everything read");
                gate.stop_and_wait();
                return RunStatus::Interrupted;
            }
            Ok(event) => {
                inputs.apply(event);
                handle.set_connected(inputs.connected());
                if inputs.finished(settings.listen.is_some(), settings.exit_when_idle) {
                    return RunStatus::Complete;
                }
            }
        }
    }
}

/// Reads standard input on its own thread, reporting to the main thread.
fn spawn_stdin_reader(handle: Handle, opts: ReaderOptions, gate: Arc<StopGate>, events: Sender<Event>) -> Result<()> {
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
        let (end, counts) = read_ndjson(std::io::stdin().lock(), "stdin", &handle, opts, &gate, &mut on_hello);
        tracing::debug!(?end, ?counts, "stdin ended");
        let _ = events.send(Event::StdinDone {
            records: counts.records,
        });
    })?;
    Ok(())
}

/// The final flush, and one line that says how the run ended.
fn finish(collector: Collector, status: RunStatus) -> Result<ExitCode> {
    let run_dir = collector.run_dir().to_owned();
    let summary = collector.close_as(status)?;
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
