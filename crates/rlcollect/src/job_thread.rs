//! [`JobThread`]: a named thread that takes jobs one at a time from a
//! bounded channel. Dropping the handle closes the channel and joins the
//! thread once it has served every job already handed over, so a file half
//! written is finished or cleaned up, never abandoned by a thread the
//! process outlives.

use crossbeam_channel::{bounded, Sender};
use std::thread::JoinHandle;

/// A thread serving jobs of type `J` (see the module docs).
pub(crate) struct JobThread<J> {
    jobs: Option<Sender<J>>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Send + 'static> JobThread<J> {
    /// Starts thread `name`, which calls `serve` on each job in turn. It
    /// stops when the handle is dropped, or when `serve` returns false
    /// (nobody takes its results any more).
    pub(crate) fn spawn(name: &str, mut serve: impl FnMut(J) -> bool + Send + 'static) -> std::io::Result<Self> {
        let (jobs, incoming) = bounded::<J>(1);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            for job in incoming {
                if !serve(job) {
                    return;
                }
            }
        })?;
        Ok(JobThread {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands a job over. Blocks while an earlier one waits to be taken.
    pub(crate) fn submit(&self, job: J) {
        let jobs = self.jobs.as_ref().expect("a job thread runs until dropped");
        jobs.send(job).expect("a job thread lives as long as its handle");
    }
}

impl<J> Drop for JobThread<J> {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_served_in_order_and_the_last_is_finished_on_drop() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let t = JobThread::spawn("test-jobs", move |n: u32| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            tx.send(n).is_ok()
        })
        .unwrap();
        for n in 0..4 {
            t.submit(n);
        }
        drop(t);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }
}
