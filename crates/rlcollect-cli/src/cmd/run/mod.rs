//! `rlcollect run`: the sidecar. Reader threads decode NDJSON from stdin and
//! from socket connections, and drain the producers' rings; the main thread
//! only waits for events (a signal, an input ending) and decides when the run
//! ends.
//!
//! Ending: EOF on stdin (or, with `--listen --exit-when-idle`, the last
//! producer leaving) → final flush, status `complete`. SIGINT/SIGTERM/SIGHUP
//! → readers stop at a line boundary, final flush of everything read, status
//! `interrupted`. A second signal during the flush exits 1 at once.
//!
//! * `args.rs`: flags, checked once into [`args::RunSettings`].
//! * `inputs.rs`: events and the rule for when the run is over.
//! * `session.rs`: what a reader reports and answers.
//! * `listen.rs`: the Unix socket. `signals.rs`, `progress.rs`.

mod args;
mod inputs;
mod listen;
mod progress;
mod session;
mod signals;

pub use args::{compact_options, RunArgs};

use anyhow::{Context, Result};
use crossbeam_channel::{unbounded, Receiver, RecvError, RecvTimeoutError, Sender};
use inputs::{Event, InputIds, Inputs, Verdict};
use listen::Listener;
use rlcollect::ingest::{ingest_spools, ReaderOptions, Readers, StopGate};
use rlcollect::{Collector, Handle, RunStatus};
use session::InputSession;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs the sidecar until its inputs end or a signal arrives.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let settings = args.into_settings()?;
    let collector = settings.collector.clone().build().context("cannot start the run")?;
    tracing::info!(run_dir = %collector.run_dir().display(), "collecting");
    let sync = match &settings.remote {
        Some(remote) => Some(
            rlcollect_delta::LiveSync::start(collector.run_dir(), &remote.dest, &remote.opts, SYNC_EVERY)
                .with_context(|| format!("cannot ship the run to {}", remote.dest))?,
        ),
        None => None,
    };
    // Records a client spooled while an earlier sidecar of this run was gone.
    ingest_spools(&collector.handle(), collector.run(), ReaderOptions::default()).context("ingesting spool files")?;

    let (events, incoming) = unbounded();
    signals::install_signal_handler(events.clone())?;
    let readers = Readers::new(collector.handle(), collector.run(), settings.reader, StopGate::new());
    let ids = Arc::new(InputIds::new());
    // Dropped after the final flush: a producer whose bye ended the run waits for it.
    let (flushed_tx, flushed) = crossbeam_channel::bounded::<()>(0);
    // Rings an earlier sidecar of this run left (their producers may live on).
    adopt_rings(&readers, collector.run(), &events, &ids)?;
    let listener = match &settings.listen {
        Some(path) => Some(Listener::start(
            path,
            readers.clone(),
            events.clone(),
            ids.clone(),
            flushed.clone(),
        )?),
        None => None,
    };
    let read_stdin = listener.is_none() || !std::io::stdin().is_terminal();
    if read_stdin {
        spawn_stdin_reader(readers.clone(), events)?;
    }
    let progress_stop = Arc::new(AtomicBool::new(false));
    if settings.progress || std::io::stderr().is_terminal() {
        progress::spawn_progress(collector.handle(), progress_stop.clone());
    }

    let mut inputs = Inputs::new(read_stdin);
    let status = wait_for_end(&incoming, &mut inputs, &collector.handle(), readers.gate(), &settings);
    if let Some(listener) = listener {
        match status {
            // No new producer can connect from here on; queued ones are served.
            RunStatus::Complete => listener.drain(&incoming, readers.gate()),
            _ => listener.stop(),
        }
    }
    progress_stop.store(true, Ordering::SeqCst);
    // Records a client spilled to its spool while this sidecar ran.
    if let Err(e) = ingest_spools(&collector.handle(), collector.run(), ReaderOptions::default()) {
        tracing::error!("cannot ingest spool files at the end of the run (they stay for the next run): {e:#}");
    }
    let run_dir = collector.run_dir().to_owned();
    let result = match (finish(collector, status), sync, &settings.remote) {
        (Ok(_), Some(sync), Some(remote)) => ship_the_rest(sync, remote, &run_dir).map(|()| ExitCode::SUCCESS),
        (result, ..) => result,
    };
    // A producer whose bye ended the run learns now that its rows are
    // stored (and, with --out s3://..., in the tables).
    drop(flushed_tx);
    result
}

/// With `--out s3://...`: how often the sync thread looks for new parts.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// After the final flush: the last upload and commit, retried for
/// `--upload-timeout-secs`. A failure leaves every row in the local run.
fn ship_the_rest(sync: rlcollect_delta::LiveSync, remote: &args::Remote, run_dir: &std::path::Path) -> Result<()> {
    let started = std::time::Instant::now();
    let shipped = sync.finish(remote.within).with_context(|| {
        format!(
            "the run ended but its last parts are not in {} (every row is in {}: \
             `rlcollect publish {} --to {}` ships them)",
            remote.dest,
            run_dir.display(),
            run_dir.display(),
            remote.dest
        )
    })?;
    tracing::info!(
        dest = %remote.dest,
        streams = shipped.len(),
        secs = started.elapsed().as_secs_f64(),
        "shipped"
    );
    Ok(())
}

/// How long a sidecar whose only producers were adopted rings waits, once
/// they are drained, for a producer to connect before it ends
/// (`--exit-when-idle`): its spawner connects within milliseconds of the
/// socket appearing; a sidecar started by hand to drain rings ends soon after.
const ADOPTED_ONLY_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The main thread's loop: applies events until the run is over; returns
/// how it ends.
fn wait_for_end(
    incoming: &Receiver<Event>,
    inputs: &mut Inputs,
    handle: &Handle,
    gate: &StopGate,
    settings: &args::RunSettings,
) -> RunStatus {
    let verdict = |inputs: &Inputs| inputs.finished(settings.listen.is_some(), settings.exit_when_idle);
    loop {
        let event = match verdict(inputs) {
            Verdict::Ended => return RunStatus::Complete,
            Verdict::EndsAfterGrace => match incoming.recv_timeout(ADOPTED_ONLY_GRACE) {
                Err(RecvTimeoutError::Timeout) => return RunStatus::Complete,
                received => received.map_err(|_| RecvError),
            },
            Verdict::Running => incoming.recv(),
        };
        match event {
            Ok(Event::Signal) | Err(_) => {
                tracing::info!("signal received: stopping input, final flush of everything read");
                gate.stop_and_wait();
                return RunStatus::Interrupted;
            }
            Ok(Event::Bye { id, reply }) => {
                inputs.apply(Event::Closed { id });
                handle.set_connected(inputs.connected());
                let last = verdict(inputs) == Verdict::Ended;
                let _ = reply.send(last);
                if last {
                    return RunStatus::Complete;
                }
            }
            Ok(event) => {
                inputs.apply(event);
                handle.set_connected(inputs.connected());
            }
        }
    }
}

/// Reads standard input on its own thread, reporting to the main thread.
fn spawn_stdin_reader(readers: Readers, events: Sender<Event>) -> Result<()> {
    std::thread::Builder::new().name("read-stdin".into()).spawn(move || {
        let _ = events.send(Event::Opened {
            id: 0,
            source: "stdin".into(),
        });
        let mut session = InputSession::stdin(events.clone());
        let (end, counts) = readers.read(std::io::stdin().lock(), "stdin", &mut session);
        tracing::debug!(?end, ?counts, "stdin ended");
        let _ = events.send(Event::StdinDone {
            records: counts.records,
        });
    })?;
    Ok(())
}

/// One reader thread per ring left in the run: each drains its ring from
/// where it is durable and follows it while its producer lives. They count
/// as inputs, so `--exit-when-idle` waits for those producers too.
fn adopt_rings(readers: &Readers, run: &rlcollect::RunDir, events: &Sender<Event>, ids: &InputIds) -> Result<()> {
    for name in run.rings() {
        let id = ids.next();
        let (readers, events) = (readers.clone(), events.clone());
        let _ = events.send(Event::Adopted {
            id,
            source: name.clone(),
        });
        std::thread::Builder::new().name(format!("ring-{id}")).spawn(move || {
            match readers.adopt(&name, true) {
                Ok((end, counts)) => tracing::info!(ring = %name, ?end, records = counts.records, "adopted ring ended"),
                Err(e) => tracing::warn!(ring = %name, "cannot adopt the ring: {e}"),
            }
            let _ = events.send(Event::Closed { id });
        })?;
    }
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
