//! `--progress`: one line on stderr every 2 s with throughput and counters.

use rlcollect::Handle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prints progress until `stop` is set.
pub fn spawn_progress(handle: Handle, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut last = handle.stats();
        let mut last_at = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(2));
            let now = handle.stats();
            let secs = last_at.elapsed().as_secs_f64();
            last_at = Instant::now();
            eprintln!(
                "rlcollect: {:>10.0} records/s | {} records | {} buffered | {} checkpoints | {} files | {} rejected",
                (now.records - last.records) as f64 / secs,
                crate::cmd::thousands(now.records),
                crate::cmd::thousands(now.rows_buffered),
                now.checkpoints,
                now.files,
                now.rejected
            );
            last = now;
        }
    });
}
