//! `rlcollect summary RUN_DIR`: summary.json as a readable table.

use anyhow::{Context, Result};
use rlcollect::{RunDir, RunSummary};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `rlcollect summary`.
#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// Run directory (default: analysis_data/latest).
    run_dir: Option<PathBuf>,
}

pub fn summary(args: SummaryArgs) -> Result<ExitCode> {
    let run_dir = args.run_dir.unwrap_or_else(super::default_run_dir);
    let s = load(&run_dir)?;
    print!("{}", render(&s));
    Ok(ExitCode::SUCCESS)
}

/// The run's summary, with a message that names the run when there is none.
pub fn load(run_dir: &Path) -> Result<RunSummary> {
    RunDir::at(run_dir)
        .and_then(|run| run.load_summary())
        .with_context(|| format!("no summary for {}", run_dir.display()))
}

/// One table of trade groups: count and profit per key.
fn group_table(o: &mut String, key: &str, groups: &std::collections::BTreeMap<String, rlcollect::Group>) {
    use std::fmt::Write;
    let _ = writeln!(o, "{key:<24} {:>8} {:>16}", "trades", "profit_abs");
    for (k, g) in groups {
        let _ = writeln!(o, "{k:<24} {:>8} {:>16.8}", g.count, g.profit_abs);
    }
}

/// The summary as text tables.
pub fn render(s: &RunSummary) -> String {
    use std::fmt::Write;
    let th = super::thousands;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "run {}  status {}  candles {}  rejected {}",
        s.run_id,
        s.status,
        th(s.candles),
        th(s.rejected)
    );
    let _ = writeln!(o, "\n{:<24} {:>12}", "stream", "rows");
    for (k, n) in &s.rows {
        let _ = writeln!(o, "{:<24} {:>12}", k, th(*n));
    }
    let t = &s.trades;
    if t.count > 0 {
        let _ = writeln!(
            o,
            "\ntrades {}  wins {}  losses {}  draws {}  win rate {:.2}%  profit_abs {:.8}  mean profit_ratio {:.6}",
            t.count,
            t.wins,
            t.losses,
            t.draws,
            t.win_rate * 100.0,
            t.profit_abs_total,
            t.profit_ratio_mean
        );
        group_table(&mut o, "pair", &t.by_pair);
        group_table(&mut o, "exit_reason", &t.by_exit_reason);
    }
    let e = &s.rl_episodes;
    if e.count > 0 {
        let _ = writeln!(
            o,
            "\nrl_episodes {}  reward mean {:.4}  min {:.4}  max {:.4}  best episode {}",
            e.count,
            e.total_reward_mean,
            e.total_reward_min.unwrap_or(f64::NAN),
            e.total_reward_max.unwrap_or(f64::NAN),
            e.best_episode.map_or("-".into(), |b| b.to_string())
        );
    }
    let d = &s.model_decisions;
    if d.count > 0 {
        let actions: Vec<String> = d.by_action.iter().map(|(a, n)| format!("{a}: {}", th(*n))).collect();
        let _ = writeln!(
            o,
            "\nmodel_decisions {}  by action  {}",
            th(d.count),
            actions.join("  ")
        );
    }
    o
}
