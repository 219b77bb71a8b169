//! A live run into Delta tables: the run stays a normal local run in a
//! state directory (log, parts, manifest: everything is durable on local
//! disk first), and a sync thread ships what each checkpoint and compaction
//! published, as [`publish`](crate::publish) does for an ended run.
//!
//! Ownership: the collector's worker owns the run; the sync thread only
//! reads its manifest (replaced atomically) and the files it names, and
//! owns the store connection. A part leaves the local disk only through
//! compaction, whose merged file holds its rows, so every row is on local
//! disk until the table holds it. On a SIGKILL the local run recovers as
//! any run does, and the next sync (the restarted run's, or `rlcollect
//! publish`) ships exactly what the table lacks. A store that is down only
//! delays the upload: the run goes on locally, and the thread retries.

use crate::{store, sync_stream, PublishError, PublishOptions, StreamPublished};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use rlcollect::{Collector, CollectorBuilder, Manifest, RunDir, RunSummary};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a stream looked like when it was last shipped: its files.
type Shipped = BTreeMap<String, Vec<String>>;

/// The connection a sync thread owns, handed back when it stops.
struct Link {
    dest: store::Destination,
    runtime: tokio::runtime::Runtime,
    run: RunDir,
    host: String,
}

impl Link {
    /// Ships every stream of the manifest whose files changed since
    /// `shipped`; returns the last error (the others are logged).
    fn round(&self, shipped: &mut Shipped) -> Result<BTreeMap<String, StreamPublished>, PublishError> {
        let manifest = self.run.load_manifest().map_err(|e| PublishError::Run(e.to_string()))?;
        let mut report = BTreeMap::new();
        let mut failed = None;
        for (stream, entry) in &manifest.streams {
            let files = fingerprint(&manifest, stream);
            if shipped.get(stream) == Some(&files) {
                continue;
            }
            let done = sync_stream(&self.dest, &self.run, &manifest, stream, entry, &self.host);
            match self.runtime.block_on(done) {
                Ok(done) => {
                    shipped.insert(stream.clone(), files);
                    report.extend(done.map(|d| (stream.clone(), d)));
                }
                Err(e) => {
                    if self.files_moved(stream, &files) {
                        // Compaction replaced the files this manifest named.
                        tracing::debug!(stream, "files moved while shipping them; next round: {e}");
                    } else {
                        tracing::warn!(stream, "upload failed (retried at the next round): {e}");
                    }
                    failed = Some(e);
                }
            }
        }
        failed.map_or(Ok(report), Err)
    }

    /// Whether the manifest lists other files for `stream` than `files` now.
    fn files_moved(&self, stream: &str, files: &[String]) -> bool {
        self.run
            .load_manifest()
            .is_ok_and(|m| m.streams.contains_key(stream) && fingerprint(&m, stream) != files)
    }
}

fn fingerprint(manifest: &Manifest, stream: &str) -> Vec<String> {
    manifest.streams[stream].files.iter().map(|f| f.path.clone()).collect()
}

/// The sync thread of a live run (see the module docs).
pub struct LiveSync {
    stop: Sender<()>,
    thread: Option<JoinHandle<(Link, Shipped)>>,
}

impl LiveSync {
    /// Opens `dest` (a bad one fails here) and starts shipping the run at
    /// `run_dir` every `every`.
    pub fn start(run_dir: &Path, dest: &str, opts: &PublishOptions, every: Duration) -> Result<LiveSync, PublishError> {
        let dest = store::open(dest, opts.endpoint.as_deref())?;
        Self::spawn(run_dir, dest, &opts.host, every)
    }

    /// Starts the thread on an opened destination.
    fn spawn(run_dir: &Path, dest: store::Destination, host: &str, every: Duration) -> Result<LiveSync, PublishError> {
        let link = Link {
            dest,
            runtime: store::runtime()?,
            run: RunDir::at(run_dir).map_err(|e| PublishError::Run(e.to_string()))?,
            host: host.to_owned(),
        };
        let (stop, stopped) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("rlcollect-sync".into())
            .spawn(move || sync_loop(link, &stopped, every))
            .map_err(|e| PublishError::Local(format!("cannot start the sync thread: {e}")))?;
        Ok(LiveSync {
            stop,
            thread: Some(thread),
        })
    }

    /// Call once the run has ended (its collector closed): stops the
    /// thread and ships what is left, retrying for up to `within`. On an
    /// error every row is still in the local run, for `rlcollect publish`.
    pub fn finish(mut self, within: Duration) -> Result<BTreeMap<String, StreamPublished>, PublishError> {
        let _ = self.stop.send(());
        let thread = self.thread.take().expect("finish is called once");
        let (link, mut shipped) = thread
            .join()
            .map_err(|_| PublishError::Local("the sync thread panicked".into()))?;
        let deadline = Instant::now() + within;
        loop {
            shipped.clear(); // the final round checks every stream against its table
            match link.round(&mut shipped) {
                Ok(done) => return Ok(done),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }
}

impl Drop for LiveSync {
    /// Without `finish` (an error path): stops the thread, ships nothing more.
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

fn sync_loop(link: Link, stopped: &Receiver<()>, every: Duration) -> (Link, Shipped) {
    let mut shipped = Shipped::new();
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return (link, shipped),
        }
        if let Err(e) = link.round(&mut shipped) {
            tracing::debug!("sync round: {e}");
        }
    }
}

/// A [`Collector`] whose run also lands, live, in the Delta tables at an
/// object store: `RemoteCollector::builder("s3://bucket/prefix")`.
pub struct RemoteCollector {
    collector: Collector,
    sync: LiveSync,
}

/// Builds a [`RemoteCollector`].
pub struct RemoteBuilder {
    dest: String,
    state_dir: PathBuf,
    opts: PublishOptions,
    every: Duration,
    configure: Box<dyn FnOnce(CollectorBuilder) -> CollectorBuilder>,
}

impl RemoteCollector {
    /// A collector for `dest` (`s3://BUCKET/PREFIX` or a shared folder).
    /// The local run goes to [`default_state_dir`] unless told otherwise.
    pub fn builder(dest: impl Into<String>) -> RemoteBuilder {
        RemoteBuilder {
            dest: dest.into(),
            state_dir: default_state_dir(),
            opts: PublishOptions {
                endpoint: None,
                host: "host".into(),
            },
            every: Duration::from_secs(1),
            configure: Box::new(|b| b),
        }
    }

    /// The local collector (send records through it or its handles).
    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    /// Ends the run (final flush, as [`Collector::close`]) and ships what
    /// is left, retrying for up to `within`.
    pub fn close_within(
        self,
        within: Duration,
    ) -> Result<(RunSummary, BTreeMap<String, StreamPublished>), PublishError> {
        let summary = self.collector.close().map_err(|e| PublishError::Local(e.to_string()))?;
        let shipped = self.sync.finish(within)?;
        Ok((summary, shipped))
    }
}

impl std::ops::Deref for RemoteCollector {
    type Target = Collector;
    fn deref(&self) -> &Collector {
        &self.collector
    }
}

impl RemoteBuilder {
    /// Where the local run (log, parts, manifest) lives.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// The S3-compatible endpoint (else `AWS_ENDPOINT_URL`, else AWS).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.opts.endpoint = Some(url.into());
        self
    }

    /// The host name the files are recorded with.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.opts.host = host.into();
        self
    }

    /// How often the sync thread looks for newly published files.
    pub fn sync_every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Sets the local collector's options (checkpoints, WAL, compaction, ...).
    pub fn collector(mut self, f: impl FnOnce(CollectorBuilder) -> CollectorBuilder + 'static) -> Self {
        self.configure = Box::new(f);
        self
    }

    /// Opens the destination, starts the local run and its sync thread.
    pub fn build(self) -> Result<RemoteCollector, PublishError> {
        // Opened first: a bad destination fails before a local run exists.
        let dest = store::open(&self.dest, self.opts.endpoint.as_deref())?;
        let collector = (self.configure)(Collector::builder(&self.state_dir))
            .build()
            .map_err(|e| PublishError::Local(e.to_string()))?;
        let sync = LiveSync::spawn(collector.run_dir(), dest, &self.opts.host, self.every)?;
        Ok(RemoteCollector { collector, sync })
    }
}

/// Where live runs for object stores keep their local state:
/// `$RLCOLLECT_STATE_DIR`, else `$XDG_STATE_HOME/rlcollect`, else
/// `~/.local/state/rlcollect`, else `.rlcollect-state`.
pub fn default_state_dir() -> PathBuf {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("RLCOLLECT_STATE_DIR")
        .or_else(|| env("XDG_STATE_HOME").map(|d| d.join("rlcollect")))
        .or_else(|| env("HOME").map(|h| h.join(".local/state/rlcollect")))
        .unwrap_or_else(|| PathBuf::from(".rlcollect-state"))
}
