//! `rlcollect demo`: a simulated RL backtest engine that links the collector
//! in-process (no pipe). Three engine threads, one per pair, each drive a
//! random-walk market and a small epsilon-greedy Q-learning agent, and send
//! every step through their own `Handle` clone.

mod engine;

use anyhow::{Context, Result};
use engine::Engine;
use rlcollect::Collector;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Options of `rlcollect demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Output root.
    #[arg(long, default_value = "analysis_data")]
    out: PathBuf,
    /// Candles per pair (three pairs).
    #[arg(long, default_value_t = 20_000)]
    candles: u64,
    /// Checkpoint every N candle records.
    #[arg(long, default_value_t = 5_000)]
    every_candles: u64,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

const PAIRS: [&str; 3] = ["BTC/USDT", "ETH/USDT", "SOL/USDT"];

pub fn demo(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let run_id = format!("demo-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let collector = Collector::builder(&args.out)
        .run_id(run_id)
        .every_candles(args.every_candles)
        .every(Duration::from_secs(5))
        .source("demo-engine")
        .build()
        .context("cannot start the demo run")?;
    let run_dir = collector.run_dir().to_owned();
    let engines: Vec<_> = PAIRS
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let handle = collector.handle();
            let (candles, seed) = (args.candles, args.seed.wrapping_add(i as u64 * 7919));
            std::thread::spawn(move || Engine::new(pair, seed, handle).run(candles))
        })
        .collect();
    for e in engines {
        e.join().map_err(|_| anyhow::anyhow!("an engine thread panicked"))??;
    }
    let checkpoints = collector.stats().checkpoints;
    let summary = collector.close().context("final flush")?;
    let rows: u64 = summary.rows.values().sum();
    println!(
        "rlcollect demo: {} candles, {} rows in {:.2} s, {} checkpoints during the run",
        crate::cmd::thousands(summary.candles),
        crate::cmd::thousands(rows),
        started.elapsed().as_secs_f64(),
        checkpoints
    );
    println!("files: {}/  (also {}/latest)\n", run_dir.display(), args.out.display());
    print!("{}", crate::cmd::summary::render(&summary));
    let glob = run_dir.join("model_decisions").join("*.parquet");
    println!("\nRead it:");
    println!(
        "  python -c \"import polars as pl; print(pl.read_parquet('{}'))\"",
        glob.display()
    );
    println!(
        "  duckdb -c \"SELECT action_name, count(*), avg(reward) FROM read_parquet('{}', union_by_name=true) GROUP BY 1\"",
        glob.display()
    );
    println!("  rlcollect status {}", run_dir.display());
    Ok(ExitCode::SUCCESS)
}
