//! The run's inputs as the main thread sees them: events from the reader
//! threads, the accept thread and the signal handler, and the rule that says
//! when the run is over.

use crossbeam_channel::Sender;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers the inputs: 0 is stdin, then sockets and adopted rings.
#[derive(Debug)]
pub struct InputIds(AtomicU64);

impl InputIds {
    pub fn new() -> Self {
        InputIds(AtomicU64::new(1))
    }

    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// What the main thread waits for.
pub enum Event {
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// Standard input reached its end.
    StdinDone { records: u64 },
    /// An input opened; `id` 0 is stdin.
    Opened { id: u64, source: String },
    /// A ring left in the run by an earlier sidecar was adopted as an input.
    Adopted { id: u64, source: String },
    /// An input named itself with `hello`.
    Renamed { id: u64, source: String },
    /// An input closed.
    Closed { id: u64 },
    /// An input said `bye`: it is closed; `reply` hears whether the run ends now.
    Bye { id: u64, reply: Sender<bool> },
}

/// The run's inputs, as the main thread sees them through events.
pub struct Inputs {
    stdin_open: bool,
    stdin_records: u64,
    /// Open inputs by id (0 = stdin) with their current source names.
    open: BTreeMap<u64, String>,
    /// A producer connected to the socket.
    ever_connected: bool,
    /// A ring left by an earlier sidecar was adopted.
    adopted_rings: bool,
}

/// Whether the run is over, as [`Inputs::finished`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Inputs are open, or none has been seen yet.
    Running,
    /// The run is over.
    Ended,
    /// Only adopted rings were seen and all are drained: the run is over
    /// unless a producer connects within the grace period. A sidecar
    /// spawned by a producer that finds a dead producer's ring drains it
    /// before its spawner had the time to connect; it must wait for it.
    EndsAfterGrace,
}

impl Inputs {
    pub fn new(read_stdin: bool) -> Self {
        Inputs {
            stdin_open: read_stdin,
            stdin_records: 0,
            open: Default::default(),
            ever_connected: false,
            adopted_rings: false,
        }
    }

    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Opened { id, source } | Event::Renamed { id, source } => {
                self.ever_connected |= id != 0;
                self.open.insert(id, source);
            }
            Event::Adopted { id, source } => {
                self.adopted_rings = true;
                self.open.insert(id, source);
            }
            Event::Closed { id } | Event::Bye { id, .. } => {
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

    pub fn connected(&self) -> Vec<String> {
        self.open.values().cloned().collect()
    }

    /// Without a socket the run ends with stdin. With `--exit-when-idle` it ends
    /// once stdin is closed (or unused) and the last connection has left, after
    /// at least one producer was seen; when that producer was only an adopted
    /// ring, after a grace period in which nobody connected.
    pub fn finished(&self, listening: bool, exit_when_idle: bool) -> Verdict {
        if !listening {
            return if self.stdin_open {
                Verdict::Running
            } else {
                Verdict::Ended
            };
        }
        let sockets_open = self.open.keys().any(|id| *id != 0);
        if !exit_when_idle || self.stdin_open || sockets_open {
            Verdict::Running
        } else if self.ever_connected || self.stdin_records > 0 {
            Verdict::Ended
        } else if self.adopted_rings {
            Verdict::EndsAfterGrace
        } else {
            Verdict::Running
        }
    }
}
