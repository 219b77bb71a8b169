//! Integration tests of the library: real files, real readers, fault
//! injection, crash and recovery. One test binary (faster to build and link);
//! each test uses its own temp dir. Shared helpers: `rlcollect::testing`.
//! The many-thread `Handle` tests are in `tests/threads.rs`, a binary of its
//! own, so that their load does not meet the timed compaction tests here.

mod compaction;
mod durability;
mod freqtrade;
mod library;
mod readers;
mod rings;
mod slow_disk;
mod spec_cases;

use rlcollect::fs::FaultyFs;
use rlcollect::{Collector, CollectorBuilder, WalOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A file of the repository's test data (copied from `../shared`).
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}
pub use rlcollect::testing::*;

/// A builder of run `r` under `dir` writing through `fs`, with the log on:
/// fsynced every 5 ms, in segments of `segment_bytes` (small, so that tests
/// cross segment boundaries).
pub fn logged_run_on(dir: &Path, fs: &FaultyFs, segment_bytes: u64) -> CollectorBuilder {
    Collector::builder(dir)
        .run_id("r")
        .filesystem(Arc::new(fs.clone()))
        .wal(WalOptions {
            fsync_every: Duration::from_millis(5),
            segment_bytes,
        })
}
