//! `rlcollect report RUN [RUN ...] [-o FILE] [--watch]`: one self-contained
//! HTML file that shows a run, or several runs overlaid, at a glance.
//!
//! `source.rs` reads a run through its manifest, streaming each part's row
//! groups; `panels/` folds each stream into small aggregates (`buckets.rs`,
//! `lttb.rs`, `stats.rs`) and turns them into charts and totals (`chart.rs`);
//! `html.rs` writes the page with uPlot inlined; `watch.rs` rewrites it at
//! each checkpoint of a live run.

mod buckets;
mod chart;
mod fmt;
mod html;
mod lttb;
mod panels;
mod source;
mod stats;
mod watch;

use anyhow::Result;
use rlcollect::Error;
use source::Run;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Options of `rlcollect report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Run directories (default: analysis_data/latest). Several runs are drawn
    /// on shared axes, one colour per run.
    runs: Vec<PathBuf>,
    /// The HTML file to write (default: RUN/report.html for one run,
    /// ./report.html for several).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Rewrite the file at each new checkpoint until the run is no longer
    /// running (then once more, and exit).
    #[arg(long)]
    watch: bool,
    /// With --watch: seconds between looks at the manifest.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Points per drawn series (LTTB downsampling); totals always use every row.
    #[arg(long, default_value_t = 2000)]
    points: usize,
}

/// Checked settings of a report.
pub struct Settings {
    runs: Vec<PathBuf>,
    output: PathBuf,
    watch: bool,
    interval: Duration,
    ctx: panels::Ctx,
}

impl ReportArgs {
    /// Checks every value; a bad one is a usage error (exit code 2).
    fn into_settings(self) -> Result<Settings, Error> {
        if !(self.interval > 0.0 && self.interval.is_finite()) {
            return Err(Error::Config(format!(
                "--interval must be positive, got {}",
                self.interval
            )));
        }
        if !(10..=1_000_000).contains(&self.points) {
            return Err(Error::Config(format!(
                "--points must be 10 to 1000000, got {}",
                self.points
            )));
        }
        let runs = if self.runs.is_empty() {
            vec![super::default_run_dir()]
        } else {
            self.runs
        };
        let output = match (self.output, runs.as_slice()) {
            (Some(o), _) => o,
            (None, [one]) => one.join("report.html"),
            (None, _) => PathBuf::from("report.html"),
        };
        Ok(Settings {
            runs,
            output,
            watch: self.watch,
            interval: Duration::from_secs_f64(self.interval),
            ctx: panels::Ctx { points: self.points },
        })
    }
}

pub fn report(args: ReportArgs) -> Result<ExitCode> {
    let settings = args.into_settings()?;
    if settings.watch {
        return watch::watch(&settings);
    }
    let runs = open_runs(&settings)?;
    let written = write(&settings, &runs, None)?;
    println!("{}", settings.output.display());
    Ok(written.exit_code())
}

/// Opens every run, giving each a label unique among them.
fn open_runs(s: &Settings) -> Result<Vec<Run>> {
    let mut runs = s.runs.iter().map(|p| Run::open(p)).collect::<Result<Vec<_>>>()?;
    for i in 0..runs.len() {
        let taken = runs[..i].iter().any(|r| r.label == runs[i].label);
        if taken {
            // Same run id in two output roots (seeds in separate folders).
            let parent = runs[i].dir.out().file_name().map(|n| n.to_string_lossy().into_owned());
            runs[i].label = format!("{}/{}", parent.unwrap_or_default(), runs[i].label);
            if runs[..i].iter().any(|r| r.label == runs[i].label) {
                runs[i].label = format!("{} #{}", runs[i].label, i + 1);
            }
        }
    }
    Ok(runs)
}

/// What writing a report found.
struct Written {
    /// Parts were listed but none could be read.
    nothing_readable: bool,
}

impl Written {
    fn exit_code(&self) -> ExitCode {
        if self.nothing_readable {
            eprintln!("rlcollect: error: no part of the run could be read (the report lists them)");
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Folds the runs and writes the page atomically.
fn write(s: &Settings, runs: &[Run], refresh_secs: Option<u32>) -> Result<Written> {
    let reports = panels::fold_runs(runs, &s.ctx);
    let rows: u64 = reports.iter().flat_map(|r| r.totals.rows.values()).sum();
    let unreadable = reports.iter().map(|r| r.unreadable.len()).sum::<usize>();
    let page = html::page(runs, reports, &html::PageOpts { refresh_secs })?;
    html::write_atomic(&s.output, page.as_bytes())?;
    Ok(Written {
        nothing_readable: rows == 0 && unreadable > 0,
    })
}
