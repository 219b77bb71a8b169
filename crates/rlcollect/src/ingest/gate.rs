//! [`StopGate`]: lets the run's owner stop every reader at a line boundary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Readers decode inside the gate; closing it waits for them to leave.
#[derive(Debug, Default)]
pub struct StopGate {
    stop: AtomicBool,
    inside: RwLock<()>,
}

impl StopGate {
    /// A gate that lets readers run.
    pub fn new() -> Arc<Self> {
        Arc::new(StopGate::default())
    }

    /// Stops every reader and waits until none is mid-batch. Returns when all
    /// decoded lines are in the collector's channel.
    pub fn stop_and_wait(&self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.inside.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// True once [`stop_and_wait`](Self::stop_and_wait) was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A reader enters; `stop_and_wait` waits until the guard is dropped.
    pub(crate) fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.inside.read().unwrap_or_else(|e| e.into_inner())
    }
}
