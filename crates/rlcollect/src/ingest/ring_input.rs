//! Reading a producer's ring (SPEC §6): after a connection's `hello` names
//! one, or when a run is opened with rings an earlier sidecar left (adopted).
//!
//! The reader drains every published frame, sends it on in batches that say
//! where in the ring they end, and when the ring is empty polls it for a few
//! milliseconds before it sleeps on its wake source (the connection, whose
//! only traffic is wake bytes and `bye`; or, for an adopted ring, a timer and
//! the producer's lock). A producer that is gone (EOF, or its lock free) and
//! whose ring is drained ends the ring: the worker deletes it once its frames
//! are published.

use super::pump::Pump;
use super::{ready_within, OneWay, ReadCounts, ReadEnd, Readers};
use crate::error::Error;
use crate::ring::map::RingMap;
use crate::ring::reader::{RingReader, Scan};
use std::io::Read;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a published frame may fail its check before the ring counts as
/// corrupt (on weakly ordered memory its bytes may lag its offset briefly).
const INVALID_GRACE: Duration = Duration::from_secs(1);
/// Polls of an empty ring before sleeping on the wake source: a busy
/// producer never has to send a wake byte.
const SPIN: [Duration; 6] = [
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(200),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
];
/// The longest sleep: a wake byte the producer did not send costs no more.
const SLEEP_MS: i32 = 100;

/// What the wake source said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Nothing (a timeout) or a wake byte: look at the ring again.
    Look,
    /// The producer said `bye`: it closed the ring.
    Bye,
    /// The producer is gone (or closed the ring).
    Gone,
    /// Stop reading, but the producer goes on: the ring is not ended.
    Leave,
}

/// Where a ring reader waits when the ring is empty.
trait WakeSource {
    /// Waits at most `ms` milliseconds for the producer.
    fn wait(&mut self, ms: i32) -> Wake;
}

/// The producer's connection: wake bytes (empty lines), `bye`, or EOF.
struct Connection<'a, R> {
    input: &'a mut R,
    /// Bytes of an unfinished line.
    partial: Vec<u8>,
}

impl<R: Read + AsFd> Connection<'_, R> {
    /// Looks at bytes that came in with the `hello`.
    fn take(&mut self, bytes: &[u8]) -> Wake {
        self.partial.extend_from_slice(bytes);
        let mut wake = Wake::Look;
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line);
            match text.trim() {
                "" => {}
                t if t.contains("\"bye\"") => wake = Wake::Bye,
                t => tracing::warn!("unexpected line on a ring connection, ignored: {}", cut(t)),
            }
        }
        wake
    }
}

impl<R: Read + AsFd> WakeSource for Connection<'_, R> {
    fn wait(&mut self, ms: i32) -> Wake {
        if !ready_within(&*self.input, ms) {
            return Wake::Look;
        }
        let mut buf = [0u8; 512];
        match self.input.read(&mut buf) {
            Ok(0) => Wake::Gone,
            Ok(n) => self.take(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Wake::Look,
            Err(_) => Wake::Gone,
        }
    }
}

/// An adopted ring has no connection: a timer, and the producer's lock.
struct Adopted {
    map: Arc<RingMap>,
    /// Keep reading while the producer lives (`run`), or stop once drained (`recover`).
    follow: bool,
}

impl WakeSource for Adopted {
    fn wait(&mut self, ms: i32) -> Wake {
        if self.map.closed() || !self.map.producer_alive() {
            return Wake::Gone;
        }
        if !self.follow {
            return Wake::Leave;
        }
        std::thread::sleep(Duration::from_millis(ms.max(0) as u64));
        Wake::Look
    }
}

/// A `hello` named ring `name`: opens it, answers, and reads it to its end.
/// `None` when it cannot be used (the connection goes on with lines).
pub(super) fn switch<R: Read + AsFd>(
    readers: &Readers,
    name: String,
    pump: &mut Pump<'_>,
    input: &mut R,
    rest: &[u8],
) -> Option<(ReadEnd, ReadCounts)> {
    let claim = readers.claim(&name);
    let opened = match claim {
        Some(_) => open(readers, &name),
        None => Err(Error::Config(format!("ring {name} is already being read"))),
    };
    let map = match opened {
        Ok(map) => map,
        Err(e) => {
            tracing::warn!(ring = %name, "cannot use the producer's ring: {e}");
            let error = serde_json::to_string(&e.to_string()).unwrap_or_default();
            pump.session()
                .answer(&format!("{{\"hello\":\"error\",\"error\":{error}}}"));
            return None;
        }
    };
    if !pump.session().answer(&readers.answers.ring) {
        tracing::warn!(ring = %name, "a ring named on an input with no way back (stdin) is not used");
        return None;
    }
    let from = map.read();
    let mut conn = Connection {
        input,
        partial: Vec::new(),
    };
    let first = conn.take(rest);
    Some(serve(readers, name.into(), map, from, pump, &mut conn, first))
}

fn open(readers: &Readers, name: &str) -> Result<Arc<RingMap>, Error> {
    let path = readers
        .run
        .ring_path(name)
        .ok_or_else(|| Error::Config(format!("{name:?} is not a ring of this run (rings/<name>.ring)")))?;
    Ok(Arc::new(RingMap::open(&path)?))
}

impl Readers {
    /// Adopts a ring an earlier sidecar left: reads it from where it is
    /// durable (the larger of the manifest's `rings` entry and the ring's
    /// `read`) and, with `follow`, goes on while its producer lives.
    pub fn adopt(&self, name: &str, follow: bool) -> Result<(ReadEnd, ReadCounts), Error> {
        let Some(_claim) = self.claim(name) else {
            return Err(Error::Config(format!("ring {name} is already being read")));
        };
        let map = open(self, name)?;
        let published = self
            .run
            .load_manifest()
            .ok()
            .and_then(|m| m.rings.get(name).copied())
            .unwrap_or(0);
        let from = map.read().max(published);
        let source = map.identity().source;
        let source = if source.is_empty() {
            format!("ring-{}", map.identity().pid)
        } else {
            source
        };
        tracing::info!(ring = %name, from, producer_alive = map.producer_alive(), "adopting a ring");
        let mut session = OneWay;
        let mut pump = Pump::new(self, &mut session, &source);
        let mut wake = Adopted {
            map: map.clone(),
            follow,
        };
        Ok(serve(self, name.into(), map, from, &mut pump, &mut wake, Wake::Look))
    }
}

/// Reads the ring until its producer is gone (or said `bye`) and every frame
/// was sent, or the gate stops it.
fn serve(
    readers: &Readers,
    name: Arc<str>,
    map: Arc<RingMap>,
    from: u64,
    pump: &mut Pump<'_>,
    wake: &mut dyn WakeSource,
    first: Wake,
) -> (ReadEnd, ReadCounts) {
    let mut ring = RingReader::new(map.clone(), from);
    pump.read_ring(name.clone(), map, from);
    let mut state = first;
    let mut invalid_since: Option<Instant> = None;
    loop {
        let inside = readers.gate().enter();
        if readers.gate().is_stopped() {
            pump.flush();
            return (ReadEnd::Stopped, pump.counts());
        }
        let mut gone = false;
        let scan = ring.scan(usize::MAX, |payload, end| gone |= pump.frame(payload, end).is_err());
        if gone || !pump.flush() {
            return (ReadEnd::CollectorGone, pump.counts());
        }
        drop(inside);
        match scan {
            Scan::Limit => continue,
            Scan::Invalid { at } => {
                let since = *invalid_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= INVALID_GRACE {
                    tracing::error!(ring = %name, offset = at, "the ring is corrupt from here on: it is not read further");
                    return (ReadEnd::Eof, pump.counts());
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Scan::CaughtUp => invalid_since = None,
        }
        if state != Wake::Look {
            return finish(readers, &name, &ring, pump, state);
        }
        state = idle(&ring, wake);
    }
}

/// The ring is empty: polls it briefly, then sleeps on the wake source.
fn idle(ring: &RingReader, wake: &mut dyn WakeSource) -> Wake {
    let map = ring.map();
    for pause in SPIN {
        if map.write() > ring.position() {
            return Wake::Look;
        }
        std::thread::sleep(pause);
    }
    map.set_sleeping(true);
    // Read `write` again after announcing the sleep: a frame published before
    // the producer could see the flag is not missed (SPEC §6).
    let state = if map.write() > ring.position() {
        Wake::Look
    } else {
        wake.wait(SLEEP_MS)
    };
    map.set_sleeping(false);
    state
}

/// The producer is gone or said `bye`, and the ring is drained: the ring
/// ends, and a `bye` is answered.
fn finish(readers: &Readers, name: &str, ring: &RingReader, pump: &mut Pump<'_>, state: Wake) -> (ReadEnd, ReadCounts) {
    // After a `bye` the producer has closed the ring; after EOF it is gone:
    // either way nothing follows what was read.
    if state == Wake::Leave {
        return (ReadEnd::Stopped, pump.counts());
    }
    readers.handle.ring_ended(name, ring.position());
    match state {
        Wake::Bye => {
            let last = pump.session().bye();
            pump.session().answer(&format!("{{\"bye\":\"ok\",\"last\":{last}}}"));
            (ReadEnd::Bye { last }, pump.counts())
        }
        _ => (ReadEnd::Eof, pump.counts()),
    }
}

fn cut(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
