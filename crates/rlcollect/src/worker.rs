//! The worker thread: a loop that feeds an [`ActiveRun`] from the channel
//! and a ticker, and nothing else.
//!
//! Shutdown is a handshake: `Shutdown` queues behind every record already
//! sent; the worker drains, does the final flush (summary and manifest
//! fsynced) and only then answers. If every sender is gone without a
//! `Shutdown`, the run ends as `complete`, as on drop.

use crate::active_run::ActiveRun;
use crate::error::Error;
use crate::manifest::RunStatus;
use crate::message::Msg;
use crate::run_dir::RunLock;
use crate::schedule::Trigger;
use crossbeam_channel::{select, tick, Receiver};

/// The worker: the run it drives, its inbox, and the run's lock, held until
/// the loop ends.
pub(crate) struct Worker {
    run: ActiveRun,
    inbox: Receiver<Msg>,
    _lock: RunLock,
}

impl Worker {
    pub(crate) fn new(run: ActiveRun, inbox: Receiver<Msg>, lock: RunLock) -> Self {
        Worker {
            run,
            inbox,
            _lock: lock,
        }
    }

    /// Runs until `Shutdown`, or until every sender is gone.
    pub(crate) fn run(mut self) {
        let ticker = tick(self.run.tick_every());
        let written = self.run.publisher_done();
        let compacted = self.run.compaction_results();
        loop {
            select! {
                recv(self.inbox) -> msg => match msg {
                    Ok(Msg::Shutdown { status, ack }) => {
                        let _ = ack.send(self.run.finish(status));
                        return;
                    }
                    Ok(msg) => {
                        self.handle(msg);
                        self.run.after_message();
                    }
                    Err(_) => {
                        if let Err(e) = self.run.finish(RunStatus::Complete) {
                            tracing::error!("final flush after the last sender left failed: {e}");
                        }
                        return;
                    }
                },
                recv(written) -> done => {
                    if let Ok(done) = done {
                        let _ = self.run.stage_done(done);
                    }
                }
                recv(compacted) -> merged => {
                    if let Ok(merged) = merged {
                        self.run.compacted(merged);
                    }
                }
                recv(ticker) -> _ => self.run.tick(),
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::BatchReady(shard) => self.run.batch_ready(shard),
            Msg::Chunk(chunk) => self.run.accept_chunk(chunk),
            Msg::Checkpoint(ack) => {
                // Records sent one by one before the request go with it. Not
                // inside `checkpoint`: a request in a chunk's rows must not
                // pull that batch's later chunks ahead of the chunk's rest.
                self.run.flush_direct();
                let result: Result<(), Error> = self.run.checkpoint(Trigger::Requested);
                if let Some(ack) = ack {
                    let _ = ack.send(result);
                }
            }
            Msg::Connected(sources) => self.run.set_connected(sources),
            Msg::RingEnded { name, end } => self.run.ring_ended(&name, end),
            Msg::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }
}

impl Drop for Worker {
    /// However the loop ended (a panic too), `Handle::send` now says so
    /// rather than gather records nobody will take.
    fn drop(&mut self) {
        self.run.direct_batches().close();
    }
}
