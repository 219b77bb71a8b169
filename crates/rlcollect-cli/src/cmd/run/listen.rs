//! `run --listen PATH`: the Unix socket. An accept thread starts one reader
//! thread per connection (each connection is one producer, `conn-<n>` until its
//! `hello`).
//!
//! Stopping is race-free for producers arriving at the end of a run: the
//! socket file is removed first (from then on a new producer cannot connect,
//! so it starts a successor collector, which waits for this run's lock), then
//! every connection already queued is still accepted and read to its end.

use super::inputs::{Event, InputIds};
use super::session::InputSession;
use anyhow::{bail, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use rlcollect::ingest::{ReadEnd, Readers, StopGate};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The listening socket and its accept thread.
pub struct Listener {
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    /// Connections whose reader is still running.
    active: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

/// What every reader thread needs.
struct Shared {
    readers: Readers,
    events: Sender<Event>,
    active: Arc<AtomicUsize>,
    ids: Arc<InputIds>,
    /// Closed (its sender dropped) once the run's final flush is done.
    flushed: Receiver<()>,
}

impl Listener {
    /// Binds `path` (replacing a stale socket) and starts accepting.
    /// `flushed` closes once the run's final flush is done: a producer whose
    /// `bye` ended the run keeps its connection until then.
    pub fn start(
        path: &Path,
        readers: Readers,
        events: Sender<Event>,
        ids: Arc<InputIds>,
        flushed: Receiver<()>,
    ) -> Result<Self> {
        let listener = bind_replacing_stale(path)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            readers,
            events,
            active: active.clone(),
            ids,
            flushed,
        };
        let stop = stopping.clone();
        let accept = std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(listener, shared, stop))?;
        Ok(Listener {
            path: path.to_owned(),
            stopping,
            active,
            accept: Some(accept),
        })
    }

    /// Stops accepting (the socket file goes first, then every connection
    /// already queued is still accepted) and waits until every connection's
    /// reader has read its input to the end. A signal meanwhile stops the
    /// readers at a line boundary instead.
    pub fn drain(mut self, events: &Receiver<Event>, gate: &StopGate) {
        self.stop_accepting();
        while self.active.load(Ordering::SeqCst) > 0 {
            if let Ok(Event::Signal) = events.recv_timeout(Duration::from_millis(50)) {
                gate.stop_and_wait();
                return;
            }
        }
    }

    /// Stops accepting; the readers were stopped by the gate.
    pub fn stop(mut self) {
        self.stop_accepting();
    }

    /// Removes the socket file, then serves every connection already queued,
    /// and stops accepting.
    fn stop_accepting(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

/// True when `listener` has a connection waiting, within `ms` milliseconds.
fn readable(listener: &UnixListener, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for a descriptor we own for the whole call.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

fn accept_loop(listener: UnixListener, shared: Shared, stopping: Arc<AtomicBool>) {
    loop {
        let stop = stopping.load(Ordering::SeqCst);
        // Poll with a timeout so a stop is seen; once stopping, take only
        // what is already queued.
        if !readable(&listener, if stop { 0 } else { 100 }) {
            if stop {
                return;
            }
            continue;
        }
        match listener.accept() {
            Ok((conn, _)) => serve(conn, shared.ids.next(), &shared),
            Err(e) => tracing::warn!("accept failed: {e}"),
        }
    }
}

fn serve(conn: UnixStream, id: u64, shared: &Shared) {
    let source = format!("conn-{id}");
    shared.active.fetch_add(1, Ordering::SeqCst);
    let _ = shared.events.send(Event::Opened {
        id,
        source: source.clone(),
    });
    let (readers, events, active, flushed) = (
        shared.readers.clone(),
        shared.events.clone(),
        shared.active.clone(),
        shared.flushed.clone(),
    );
    let spawned = std::thread::Builder::new().name(source.clone()).spawn(move || {
        let mut session = InputSession::socket(id, events.clone(), conn.try_clone().ok());
        let (end, counts) = readers.read(&conn, &source, &mut session);
        tracing::debug!(%source, ?end, ?counts, "connection ended");
        active.fetch_sub(1, Ordering::SeqCst);
        match end {
            // The run ends with this producer: it hears the socket close only
            // once everything is flushed.
            ReadEnd::Bye { last: true } => while flushed.recv().is_ok() {},
            // The main thread closed the input when it answered the bye.
            ReadEnd::Bye { last: false } | ReadEnd::Stopped => {}
            ReadEnd::Eof | ReadEnd::CollectorGone => {
                let _ = events.send(Event::Closed { id });
            }
        }
    });
    if let Err(e) = spawned {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        tracing::error!("cannot start a reader for a connection: {e}");
    }
}

/// Binds `path`; a socket file left by a dead collector (nobody accepts on it)
/// is replaced, a live one is never stolen.
fn bind_replacing_stale(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        match UnixStream::connect(path) {
            Ok(_) => bail!(
                "{} is the socket of a live collector; not taking it over",
                path.display()
            ),
            Err(_) => {
                tracing::warn!(path = %path.display(), "replacing a stale socket left by a dead collector");
                std::fs::remove_file(path).with_context(|| format!("removing stale socket {}", path.display()))?;
            }
        }
    }
    UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))
}
