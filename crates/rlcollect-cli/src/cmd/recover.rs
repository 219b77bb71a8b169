//! `rlcollect recover RUN_DIR`: replay a dead collector's write-ahead log.

use anyhow::{Context, Result};
use rlcollect::ingest::{ingest_spools, Readers, StopGate};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `rlcollect recover`.
#[derive(clap::Args, Debug)]
pub struct RecoverArgs {
    /// Run directory to recover.
    run_dir: PathBuf,
}

impl RecoverArgs {
    /// The arguments that recover `run_dir` (for `compact` of a crashed run).
    pub fn for_run(run_dir: PathBuf) -> Self {
        RecoverArgs { run_dir }
    }
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
    ingest_leftovers(&args.run_dir)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads what producers left outside the log: the frames of their rings
/// that no part holds yet, and the spool files they wrote while the sidecar
/// was gone. Keeps the run's status `recovered`.
fn ingest_leftovers(run_dir: &std::path::Path) -> Result<()> {
    let run = rlcollect::RunDir::at(run_dir)?;
    let rings = run.rings();
    if run.spools().is_empty() && rings.is_empty() {
        return Ok(());
    }
    let collector = rlcollect::Collector::builder(run.out())
        .run_id(run.id())
        .source("spool")
        .build()
        .context("opening the run to read its rings and spool files")?;
    let readers = Readers::new(collector.handle(), collector.run(), Default::default(), StopGate::new());
    let mut from_rings = 0;
    for name in &rings {
        // Drain what is there; a producer that still lives keeps its ring.
        let (_, counts) = readers
            .adopt(name, false)
            .with_context(|| format!("reading ring {name}"))?;
        from_rings += counts.records;
    }
    let spooled =
        ingest_spools(&collector.handle(), collector.run(), Default::default()).context("ingesting spool files")?;
    collector.close_as(rlcollect::RunStatus::Recovered)?;
    eprintln!(
        "rlcollect: read {from_rings} records from {} rings and {spooled} spooled records into {}",
        rings.len(),
        run_dir.display()
    );
    Ok(())
}
