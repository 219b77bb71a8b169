//! `rlcollect compact RUN`: merge a finished (or crashed, then recovered)
//! run's part files into few large ones. Works on runs written before
//! compaction existed (plain stream folders); running it again changes no row.

use anyhow::{bail, Context, Result};
use rlcollect::{RunDir, RunStatus};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `rlcollect compact`.
#[derive(clap::Args, Debug)]
pub struct CompactArgs {
    /// Run directory to compact (not a live one: a live run compacts itself).
    run_dir: PathBuf,
    /// A merged file holds at most about this many MiB.
    #[arg(long, default_value_t = 128)]
    target_mb: u64,
    /// A merged file holds at most this many rows.
    #[arg(long, default_value_t = 1 << 20)]
    target_rows: u64,
    /// Seconds the replaced files stay for readers that listed them already.
    #[arg(long, default_value_t = 30.0)]
    grace_secs: f64,
}

pub fn compact(args: CompactArgs) -> Result<ExitCode> {
    let opts = super::run::compact_options(args.target_mb, args.target_rows, 10, args.grace_secs)?;
    let run = RunDir::at(&args.run_dir)?;
    if run.is_live() {
        bail!(
            "{} is live (a collector holds its lock); a live run compacts itself (rlcollect run --compact on)",
            args.run_dir.display()
        );
    }
    let status = run
        .load_manifest()
        .with_context(|| format!("{} is not a run", args.run_dir.display()))?
        .status;
    if status == RunStatus::Running {
        eprintln!("rlcollect: {} crashed; recovering it first", args.run_dir.display());
        super::recover::recover(super::recover::RecoverArgs::for_run(args.run_dir.clone()))?;
    }
    let started = std::time::Instant::now();
    let report = rlcollect::compact_run(&args.run_dir, &opts)
        .with_context(|| format!("cannot compact {}", args.run_dir.display()))?;
    for (stream, (before, after)) in &report.files {
        println!("{stream:<24} {before:>7} files -> {after:>5}");
    }
    eprintln!(
        "rlcollect: compacted {} in {:.2} s",
        args.run_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
