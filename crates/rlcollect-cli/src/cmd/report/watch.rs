//! `--watch`: look at the manifests every `--interval`, rewrite the report
//! (atomically) whenever a checkpoint published something new, and stop with
//! one final rewrite once no run is `running` any more.

use super::{open_runs, write, Settings};
use anyhow::Result;
use rlcollect::RunStatus;
use std::process::ExitCode;

/// Polls in a row during which a `running` run had no live collector before
/// watching gives up on it (the collector died: `rlcollect recover`).
const DEAD_POLLS: u32 = 5;

/// The part of a manifest whose change means "new data to show".
fn state(runs: &[super::Run]) -> Vec<(u64, u64, u64, RunStatus)> {
    runs.iter()
        .map(|r| {
            let m = &r.manifest;
            (m.checkpoints, m.published_seq, m.rejected, m.status)
        })
        .collect()
}

pub fn watch(s: &Settings) -> Result<ExitCode> {
    let mut shown = None;
    let mut dead = 0;
    loop {
        let runs = open_runs(s)?;
        let running = runs.iter().any(|r| r.manifest.status == RunStatus::Running);
        let now = state(&runs);
        let orphaned = running && runs.iter().all(|r| r.manifest.status != RunStatus::Running || !r.live);
        dead = if orphaned { dead + 1 } else { 0 };
        let last = !running || dead >= DEAD_POLLS;
        if shown.as_ref() != Some(&now) || last {
            // While live, the page reloads itself, so an open tab follows the run.
            let refresh = (running && !last).then_some(s.interval.as_secs().clamp(2, 60) as u32);
            let written = write(s, &runs, refresh)?;
            let checkpoints: u64 = runs.iter().map(|r| r.manifest.checkpoints).sum();
            eprintln!(
                "rlcollect report: wrote {} ({checkpoints} checkpoints)",
                s.output.display()
            );
            shown = Some(now);
            if last {
                println!("{}", s.output.display());
                if running {
                    eprintln!("rlcollect: error: the run is still marked running but no collector holds it: `rlcollect recover` it");
                    return Ok(ExitCode::from(1));
                }
                return Ok(written.exit_code());
            }
        }
        std::thread::sleep(s.interval);
    }
}
