//! How a [`Producer`](super::Producer)'s records leave it: into its ring (the
//! socket then carries only `hello`, wake bytes and `bye`), or as lines on the
//! socket when the sidecar refused the ring; into the spool file once the ring
//! is full and the sidecar is gone or does not make room in time.

use super::join::Joined;
use crate::error::Error;
use crate::record::{Control, Record};
use crate::ring::map::{RingIdentity, RingMap};
use crate::ring::writer::{AppendError, RingWriter};
use crate::run_dir::RunDir;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long the sidecar may take to answer `hello` or `bye`.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How long a last producer waits for the run's final flush.
const FLUSH_WAIT: Duration = Duration::from_secs(120);

/// Where records go now.
#[derive(Debug)]
enum Route {
    Ring(RingWriter),
    Lines,
    Spool(File),
}

/// The hand-off of one producer.
#[derive(Debug)]
pub(super) struct Handoff {
    run: RunDir,
    source: String,
    stream: UnixStream,
    answers: BufReader<UnixStream>,
    child: Option<Child>,
    route: Route,
    /// The sidecar hung up (EOF, EPIPE): records stay in the ring, then spool.
    sidecar_gone: bool,
    full_wait: Duration,
}

impl Handoff {
    /// Creates the ring (after the connection, so that no sidecar starting
    /// meanwhile can take it for a left-over ring) and announces it.
    pub(super) fn open(
        run: RunDir,
        joined: Joined,
        source: &str,
        ring_bytes: u64,
        full_wait: Duration,
    ) -> Result<Handoff, Error> {
        let Joined { stream, child } = joined;
        let answers = BufReader::new(stream.try_clone().map_err(Error::io("clone the socket"))?);
        let mut handoff = Handoff {
            run,
            source: source.to_owned(),
            stream,
            answers,
            child,
            route: Route::Lines,
            sidecar_gone: false,
            full_wait,
        };
        let (name, ring) = handoff.create_ring(ring_bytes)?;
        let hello = Control::Hello {
            source: source.to_owned(),
            ring: Some(name.clone()),
        };
        handoff.write_line(&Record::Control(hello))?;
        match handoff.answer()? {
            answer if answer.contains(r#""ring":true"#) => handoff.route = Route::Ring(RingWriter::new(ring)),
            answer => {
                tracing::warn!(ring = %name, "the sidecar refused the ring ({}); sending lines on the socket", answer.trim());
                drop(ring);
                let _ = std::fs::remove_file(handoff.run.path().join(&name));
            }
        }
        Ok(handoff)
    }

    fn create_ring(&self, bytes: u64) -> Result<(String, RingMap), Error> {
        std::fs::create_dir_all(self.run.rings_dir())
            .map_err(Error::io(format!("create {}", self.run.rings_dir().display())))?;
        let identity = RingIdentity {
            pid: std::process::id(),
            source: self.source.clone(),
        };
        loop {
            let name = self.run.new_ring_name(identity.pid);
            let path = self.run.ring_path(&name).expect("a ring name the run makes is valid");
            match RingMap::create(&path, bytes, &identity) {
                Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => continue,
                result => return result.map(|ring| (name, ring)),
            }
        }
    }

    /// True once records go to the spool file.
    pub(super) fn spilling(&self) -> bool {
        matches!(self.route, Route::Spool(_))
    }

    /// Hands one NDJSON line over.
    pub(super) fn send(&mut self, line: &[u8]) -> Result<(), Error> {
        match &mut self.route {
            Route::Ring(_) => self.append_to_ring(line),
            Route::Lines => {
                let mut framed = Vec::with_capacity(line.len() + 1);
                framed.extend_from_slice(line);
                framed.push(b'\n');
                if self.stream.write_all(&framed).is_err() {
                    self.sidecar_gone = true;
                    return self.spill(line);
                }
                Ok(())
            }
            Route::Spool(_) => self.spill(line),
        }
    }

    fn append_to_ring(&mut self, line: &[u8]) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let Route::Ring(ring) = &mut self.route else {
                return self.spill(line);
            };
            match ring.append(line) {
                Ok(wake) => {
                    if wake && !self.sidecar_gone {
                        self.wake();
                    }
                    return Ok(());
                }
                Err(AppendError::TooLarge) => {
                    return Err(Error::Config(format!(
                        "a record of {} bytes is larger than a quarter of the ring",
                        line.len()
                    )))
                }
                Err(AppendError::Full) => {
                    self.sidecar_gone |= self.hung_up();
                    if self.sidecar_gone || started.elapsed() >= self.full_wait {
                        tracing::warn!(
                            sidecar_gone = self.sidecar_gone,
                            "the ring is full: records go to the spool file from now on"
                        );
                        return self.spill(line);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// One wake byte; a socket that hung up means the sidecar is gone.
    fn wake(&mut self) {
        let _ = self.stream.set_nonblocking(true);
        match self.stream.write(b"\n") {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {} // wake bytes are already waiting
            Err(_) => self.sidecar_gone = true,
        }
        let _ = self.stream.set_nonblocking(false);
    }

    /// True when the sidecar's end of the socket is closed.
    fn hung_up(&self) -> bool {
        let _ = self.stream.set_nonblocking(true);
        let mut byte = [0u8; 1];
        let gone = matches!((&self.stream).read(&mut byte), Ok(0));
        let _ = self.stream.set_nonblocking(false);
        gone
    }

    /// Appends to the spool file, for the rest of this producer's life (so
    /// that its records stay in order).
    fn spill(&mut self, line: &[u8]) -> Result<(), Error> {
        if !matches!(self.route, Route::Spool(_)) {
            if let Route::Ring(ring) = &self.route {
                ring.close();
            }
            self.route = Route::Spool(self.open_spool()?);
        }
        let Route::Spool(file) = &mut self.route else {
            unreachable!("set above")
        };
        let mut framed = Vec::with_capacity(line.len() + 1);
        framed.extend_from_slice(line);
        framed.push(b'\n');
        file.write_all(&framed).map_err(Error::io(format!(
            "write {}",
            self.run.spool_path(std::process::id()).display()
        )))
    }

    fn open_spool(&self) -> Result<File, Error> {
        let path = self.run.spool_path(std::process::id());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(Error::io(format!("open {}", path.display())))?;
        // Held while we write: the sidecar ingests only unlocked spools.
        file.lock().map_err(Error::io(format!("lock {}", path.display())))?;
        let mut hello = Vec::new();
        Record::Control(Control::Hello {
            source: self.source.clone(),
            ring: None,
        })
        .write_json(&mut hello);
        hello.push(b'\n');
        file.write_all(&hello)
            .map_err(Error::io(format!("write {}", path.display())))?;
        Ok(file)
    }

    fn write_line(&mut self, record: &Record) -> Result<(), Error> {
        let mut line = Vec::with_capacity(128);
        record.write_json(&mut line);
        line.push(b'\n');
        self.stream
            .write_all(&line)
            .map_err(Error::io("write to the sidecar's socket"))
    }

    /// The sidecar's one-line answer.
    fn answer(&mut self) -> Result<String, Error> {
        self.answers
            .get_ref()
            .set_read_timeout(Some(ANSWER_WAIT))
            .map_err(Error::io("set a socket timeout"))?;
        let mut line = String::new();
        self.answers
            .read_line(&mut line)
            .map_err(Error::io("read the sidecar's answer"))?;
        Ok(line)
    }

    /// Closes the ring, says `bye`, and when this was the last producer waits
    /// for the final flush (the sidecar closes the socket after it). True then.
    pub(super) fn close(mut self) -> Result<bool, Error> {
        match &mut self.route {
            Route::Ring(ring) => ring.close(),
            Route::Spool(file) => {
                file.sync_all().map_err(Error::io("fsync the spool file"))?;
            }
            Route::Lines => {}
        }
        if self.sidecar_gone || self.write_line(&Record::Control(Control::Bye)).is_err() {
            return Ok(false);
        }
        let last = self.answer().is_ok_and(|a| a.contains(r#""last":true"#));
        if last {
            let _ = self.answers.get_ref().set_read_timeout(Some(FLUSH_WAIT));
            let mut rest = Vec::new();
            let _ = self.answers.read_to_end(&mut rest);
            if let Some(mut child) = self.child.take() {
                let _ = child.wait();
            }
        }
        Ok(last)
    }
}

impl Drop for Handoff {
    /// A producer dropped without `close` (or unwinding from a panic) still
    /// marks its ring closed, so the sidecar ends it once drained.
    fn drop(&mut self) {
        if let Route::Ring(ring) = &self.route {
            ring.close();
        }
    }
}
