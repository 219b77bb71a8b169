//! `rlcollect status [RUN_DIR]`: a run's state from its manifest.json.

use anyhow::{Context, Result};
use rlcollect::Manifest;
use std::path::PathBuf;
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
    let m = Manifest::load(&run_dir).with_context(|| format!("no readable run at {}", run_dir.display()))?;
    let age = m
        .last_checkpoint_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0);
    let live = rlcollect::RunLock::is_held(&run_dir);
    if args.json {
        let streams: serde_json::Map<String, serde_json::Value> = m
            .streams
            .iter()
            .map(|(k, s)| (k.clone(), serde_json::json!({"rows": s.rows, "files": s.files.len()})))
            .collect();
        let out = serde_json::json!({
            "run_id": m.run_id, "status": m.status, "writer_alive": live,
            "records": m.records, "published_seq": m.published_seq,
            "candles": m.candles, "checkpoints": m.checkpoints,
            "last_checkpoint_at": m.last_checkpoint_at, "last_checkpoint_age_secs": age,
            "rejected": m.rejected, "last_error": m.last_error,
            "sources": m.sources, "connected": m.connected, "streams": streams,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let th = super::thousands;
    println!("run          {}  ({})", m.run_id, run_dir.display());
    println!(
        "status       {}{}",
        m.status,
        if live { " (collector alive)" } else { "" }
    );
    println!(
        "records      {} accepted, {} published",
        th(m.records),
        th(m.published_seq)
    );
    println!("candles      {}", th(m.candles));
    match age {
        Some(a) => println!("checkpoints  {} (last {a:.1} s ago)", m.checkpoints),
        None => println!("checkpoints  {} (none yet)", m.checkpoints),
    }
    println!("rejected     {}", th(m.rejected));
    if let Some(e) = &m.last_error {
        println!("last error   {e}");
    }
    println!();
    println!("{:<24} {:>12} {:>7}", "stream", "rows", "files");
    for (name, s) in &m.streams {
        println!("{:<24} {:>12} {:>7}", name, th(s.rows), s.files.len());
    }
    if !m.sources.is_empty() || !m.connected.is_empty() {
        println!();
        println!("{:<24} {:>12}  connected", "source", "rows");
        let mut names: Vec<&String> = m.sources.keys().chain(&m.connected).collect();
        names.sort();
        names.dedup();
        for name in names {
            let rows = m.sources.get(name).copied().unwrap_or(0);
            let live = if m.connected.contains(name) { "yes" } else { "" };
            println!("{:<24} {:>12}  {live}", name, th(rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}
