//! How a reader thread reports its producer to the main thread, and answers
//! the producer (SPEC §6 "Socket protocol").

use super::inputs::Event;
use crossbeam_channel::{bounded, Sender};
use rlcollect::ingest::Session;
use std::io::Write;
use std::os::unix::net::UnixStream;

/// The session of one input (`id` 0 is stdin).
pub struct InputSession {
    id: u64,
    events: Sender<Event>,
    /// The way back to the producer: a socket; stdin has none.
    answers: Option<UnixStream>,
}

impl InputSession {
    /// Standard input: it can name itself, never hear back.
    pub fn stdin(events: Sender<Event>) -> Self {
        InputSession {
            id: 0,
            events,
            answers: None,
        }
    }

    /// A socket connection; answers go back on `answers` (a clone of it).
    pub fn socket(id: u64, events: Sender<Event>, answers: Option<UnixStream>) -> Self {
        InputSession { id, events, answers }
    }
}

impl Session for InputSession {
    fn hello(&mut self, source: &str) {
        let _ = self.events.send(Event::Renamed {
            id: self.id,
            source: source.to_owned(),
        });
    }

    /// Asks the main thread, which knows every input, whether the run ends
    /// now. If it no longer listens, the run is ending anyway.
    fn bye(&mut self) -> bool {
        if self.answers.is_none() {
            return false;
        }
        let (reply, answer) = bounded(1);
        if self.events.send(Event::Bye { id: self.id, reply }).is_err() {
            return true;
        }
        answer.recv().unwrap_or(true)
    }

    fn answer(&mut self, line: &str) -> bool {
        let Some(out) = self.answers.as_mut() else { return false };
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Err(e) = out.write_all(&bytes) {
            tracing::debug!("cannot answer a producer that left: {e}");
        }
        true
    }
}
