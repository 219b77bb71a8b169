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

use std::path::{Path, PathBuf};

/// A file of the repository's test data (copied from `../shared`).
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}
pub use rlcollect::testing::*;
