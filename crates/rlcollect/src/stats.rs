//! Counters the worker publishes for progress lines and status; the only state
//! shared between threads besides the channel.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters, updated by the worker.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub records: AtomicU64,
    pub rows_buffered: AtomicU64,
    pub checkpoints: AtomicU64,
    pub files: AtomicU64,
    pub rejected: AtomicU64,
    pub candles: AtomicU64,
    pub bytes_written: AtomicU64,
}

/// A snapshot of the collector's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Data records accepted.
    pub records: u64,
    /// Rows buffered, not yet published.
    pub rows_buffered: u64,
    /// Checkpoints that published rows.
    pub checkpoints: u64,
    /// Part files published.
    pub files: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// Candle records seen.
    pub candles: u64,
    /// Bytes of part files published.
    pub bytes_written: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            records: self.records.load(Relaxed),
            rows_buffered: self.rows_buffered.load(Relaxed),
            checkpoints: self.checkpoints.load(Relaxed),
            files: self.files.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            candles: self.candles.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
        }
    }
}
