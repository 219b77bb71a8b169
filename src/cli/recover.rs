//! `rlcollect recover RUN_DIR`: replay a dead collector's write-ahead log.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `rlcollect recover`.
#[derive(clap::Args, Debug)]
pub struct RecoverArgs {
    /// Run directory to recover.
    run_dir: PathBuf,
}

pub fn recover(args: RecoverArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let report =
        rlcollect::recover(&args.run_dir).with_context(|| format!("cannot recover {}", args.run_dir.display()))?;
    if report.recovered {
        eprintln!(
            "rlcollect: recovered {} in {:.2} s: {} rows replayed from {} log segments, {} corrupt records skipped, {} torn bytes truncated, {} leftover files removed",
            args.run_dir.display(),
            started.elapsed().as_secs_f64(),
            report.replayed,
            report.segments,
            report.corrupt_records,
            report.truncated_bytes,
            report.files_removed
        );
    } else {
        eprintln!(
            "rlcollect: {} is {}, not a crashed run: nothing to recover",
            args.run_dir.display(),
            report.status_before
        );
    }
    Ok(ExitCode::SUCCESS)
}
