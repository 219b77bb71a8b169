//! Integration tests of the `rlcollect` binary: real pipes, sockets, signals,
//! SIGKILLs and a really full disk. One test binary; each test uses its own
//! temp dir. Shared helpers: `rlcollect::testing`.

mod compaction;
mod durability;
mod handoff;
mod report;
mod sidecar;

pub use rlcollect::testing::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// A file of the repository's test data (copied from `../shared`).
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// The binary under test, logging warnings only.
pub fn rlcollect() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlcollect"));
    c.env("RUST_LOG", "warn");
    c
}

/// (_seq, i, k) of every stored `ev` row, sorted by `_seq`.
pub fn stored_events(run_dir: &Path) -> Vec<(u64, i64, i64)> {
    stored_int_rows(run_dir, "ev", &["i", "k"])
        .into_iter()
        .map(|(seq, v)| (seq, v[0], v[1]))
        .collect()
}

/// Waits for `child` to exit; kills it and fails after `secs` seconds.
pub fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("rlcollect did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Held by the tests that run many processes at full speed (kill loops), so
/// that they do not run at the same time and starve each other: their
/// assertions about what reached disk in time assume a machine not swamped.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}
