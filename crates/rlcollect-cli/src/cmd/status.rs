//! `rlcollect status [RUN_DIR]`: a run's state from its manifest.json.

use anyhow::{Context, Result};
use rlcollect::{Manifest, RunDir};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `rlcollect status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Run directory (default: analysis_data/latest).
    run_dir: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let run_dir = args.run_dir.unwrap_or_else(super::default_run_dir);
    let run = RunDir::at(&run_dir).and_then(|run| run.load_manifest().map(|m| (run, m)));
    let (run, m) = run.with_context(|| format!("no readable run at {}", run_dir.display()))?;
    let age = m
        .last_checkpoint_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0);
    let live = run.is_live();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&as_json(&m, live, age))?);
    } else {
        print!("{}", as_text(&m, &run_dir, live, age));
    }
    Ok(ExitCode::SUCCESS)
}

/// The state for scripts.
fn as_json(m: &Manifest, live: bool, age: Option<f64>) -> serde_json::Value {
    let streams: serde_json::Map<String, serde_json::Value> = m
        .streams
        .iter()
        .map(|(k, s)| (k.clone(), serde_json::json!({"rows": s.rows, "files": s.files.len()})))
        .collect();
    serde_json::json!({
        "run_id": m.run_id, "status": m.status, "writer_alive": live,
        "records": m.records, "published_seq": m.published_seq,
        "candles": m.candles, "checkpoints": m.checkpoints,
        "last_checkpoint_at": m.last_checkpoint_at, "last_checkpoint_age_secs": age,
        "rejected": m.rejected, "last_error": m.last_error,
        "sources": m.sources, "connected": m.connected, "streams": streams,
    })
}

/// The state for people: counters, then a table of streams and of sources.
fn as_text(m: &Manifest, run_dir: &Path, live: bool, age: Option<f64>) -> String {
    let th = super::thousands;
    let mut o = String::new();
    let alive = if live { " (collector alive)" } else { "" };
    let _ = writeln!(o, "run          {}  ({})", m.run_id, run_dir.display());
    let _ = writeln!(o, "status       {}{alive}", m.status);
    let _ = writeln!(
        o,
        "records      {} accepted, {} published",
        th(m.records),
        th(m.published_seq)
    );
    let _ = writeln!(o, "candles      {}", th(m.candles));
    let _ = match age {
        Some(a) => writeln!(o, "checkpoints  {} (last {a:.1} s ago)", m.checkpoints),
        None => writeln!(o, "checkpoints  {} (none yet)", m.checkpoints),
    };
    let _ = writeln!(o, "rejected     {}", th(m.rejected));
    if let Some(e) = &m.last_error {
        let _ = writeln!(o, "last error   {e}");
    }
    let _ = writeln!(o, "\n{:<24} {:>12} {:>7}", "stream", "rows", "files");
    for (name, s) in &m.streams {
        let _ = writeln!(o, "{:<24} {:>12} {:>7}", name, th(s.rows), s.files.len());
    }
    if !m.sources.is_empty() || !m.connected.is_empty() {
        let _ = writeln!(o, "\n{:<24} {:>12}  connected", "source", "rows");
        let mut names: Vec<&String> = m.sources.keys().chain(&m.connected).collect();
        names.sort();
        names.dedup();
        for name in names {
            let rows = m.sources.get(name).copied().unwrap_or(0);
            let connected = if m.connected.contains(name) { "yes" } else { "" };
            let _ = writeln!(o, "{:<24} {:>12}  {connected}", name, th(rows));
        }
    }
    o
}
