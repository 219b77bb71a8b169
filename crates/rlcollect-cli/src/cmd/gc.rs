//! `rlcollect gc OUT --keep-last N | --older-than DURATION [--dry-run]`:
//! retention. Removes whole finished runs (status complete, interrupted or
//! recovered, lock free); never a running, locked or crashed-unrecovered one.
//! `OUT/latest` is moved to the newest run left when it pointed at a removed one.

use anyhow::{Context, Result};
use rlcollect::{Error, RunDir, RunStatus};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Options of `rlcollect gc`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("rule").required(true).multiple(false))]
pub struct GcArgs {
    /// Output root holding the runs.
    out: PathBuf,
    /// Keep the N newest runs (of any status); older finished runs go.
    #[arg(long, group = "rule")]
    keep_last: Option<usize>,
    /// Remove finished runs last updated longer ago than this (e.g. 7d, 12h, 30m, 90s, 2w).
    #[arg(long, group = "rule")]
    older_than: Option<String>,
    /// Only list what would be removed.
    #[arg(long)]
    dry_run: bool,
}

/// One run under OUT, as gc sees it.
struct Found {
    run: RunDir,
    status: RunStatus,
    live: bool,
    started_at: String,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Found {
    fn removable(&self) -> bool {
        !self.live && self.status != RunStatus::Running
    }
}

pub fn gc(args: GcArgs) -> Result<ExitCode> {
    let older_than = args.older_than.as_deref().map(parse_duration).transpose()?;
    if !args.out.is_dir() {
        return Err(Error::Config(format!("{} is not a folder", args.out.display())).into());
    }
    let mut runs = find_runs(&args.out);
    runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.run.id().cmp(a.run.id())));
    let now = chrono::Utc::now();
    let doomed: Vec<usize> = (0..runs.len())
        .filter(|&i| match (args.keep_last, older_than) {
            (Some(keep), _) => i >= keep,
            (_, Some(age)) => runs[i]
                .updated_at
                .is_some_and(|t| now.signed_duration_since(t).to_std().unwrap_or_default() > age),
            _ => false,
        })
        .collect();
    let mut removed = Vec::new();
    for &i in &doomed {
        let f = &runs[i];
        if !f.removable() {
            let why = if f.live { "live" } else { "crashed, not recovered" };
            eprintln!("rlcollect: keeping {} ({why})", f.run.id());
            continue;
        }
        if args.dry_run {
            println!("would remove {} ({})", f.run.path().display(), f.status);
            continue;
        }
        match f.run.remove_finished() {
            Ok(()) => {
                println!("removed {} ({})", f.run.path().display(), f.status);
                removed.push(f.run.id().to_owned());
            }
            Err(e) => eprintln!("rlcollect: keeping {}: {e}", f.run.id()),
        }
    }
    fix_latest(&args.out, &runs, &removed)?;
    Ok(ExitCode::SUCCESS)
}

/// Points `OUT/latest` at the newest run left if it named a removed one.
fn fix_latest(out: &Path, runs: &[Found], removed: &[String]) -> Result<()> {
    let Some(latest) = RunDir::latest_id(out) else {
        return Ok(());
    };
    if !removed.contains(&latest) {
        return Ok(());
    }
    let newest = runs.iter().find(|f| !removed.iter().any(|r| r == f.run.id()));
    RunDir::set_latest(out, newest.map(|f| &f.run)).context("moving the latest link")?;
    Ok(())
}

/// The runs under `out`: folders with a readable manifest (not `latest`, not dot-names).
fn find_runs(out: &Path) -> Vec<Found> {
    let Ok(rd) = std::fs::read_dir(out) else { return vec![] };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let run = RunDir::at(e.path()).ok()?;
            let m = run.load_manifest().ok()?;
            Some(Found {
                live: run.is_live(),
                status: m.status,
                started_at: m.started_at,
                updated_at: chrono::DateTime::parse_from_rfc3339(&m.updated_at)
                    .ok()
                    .map(|t| t.with_timezone(&chrono::Utc)),
                run,
            })
        })
        .collect()
}

/// `7d`, `12h`, `30m`, `90s`, `2w` as a duration; anything else is a usage error.
fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::Config(format!(
            "--older-than takes a number and a unit (s, m, h, d, w), e.g. 7d; got {s:?}"
        ))
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_number_and_a_unit() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        for bad in ["", "7", "d", "7x", "-1d", "1.5h"] {
            assert!(parse_duration(bad).unwrap_err().is_config(), "{bad:?}");
        }
    }
}
