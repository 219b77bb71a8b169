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
    ingest_spools(&args.run_dir)?;
    Ok(ExitCode::SUCCESS)
}

/// Ingests the spool files clients wrote while the sidecar was gone, keeping
/// the run's status `recovered`.
fn ingest_spools(run_dir: &std::path::Path) -> Result<()> {
    let run = rlcollect::RunDir::at(run_dir)?;
    if run.spools().is_empty() {
        return Ok(());
    }
    let collector = rlcollect::Collector::builder(run.out())
        .run_id(run.id())
        .source("spool")
        .build()
        .context("opening the run to ingest spool files")?;
    let rows = rlcollect::ingest::ingest_spools(&collector.handle(), collector.run(), Default::default())
        .context("ingesting spool files")?;
    collector.close_as(rlcollect::RunStatus::Recovered)?;
    eprintln!("rlcollect: ingested {rows} spooled records into {}", run_dir.display());
    Ok(())
}
