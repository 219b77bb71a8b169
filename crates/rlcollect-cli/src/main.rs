//! The `rlcollect` command: the collector as a sidecar process, plus tools to
//! inspect runs and a built-in demo. This file only dispatches; each
//! subcommand lives in `cmd/`, with its arguments beside it.
//!
//! Exit codes (SPEC §5): 0 success (also after SIGINT/SIGTERM with a clean
//! final flush), 1 runtime failure, 2 bad usage or configuration.

mod alloc;
mod cmd;
mod exit;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Rows are allocated on reader threads and freed on the worker thread;
/// mimalloc handles such cross-thread frees without the arena-lock contention
/// glibc malloc shows here (see `benches/ingest.sh`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rlcollect",
    version,
    about = "Crash-safe analytics data collector for RL trading strategies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Collect NDJSON records from stdin (and a Unix socket with --listen) into a run directory.
    Run(cmd::run::RunArgs),
    /// Recover a run whose collector died: replay its write-ahead log into part files.
    Recover(cmd::recover::RecoverArgs),
    /// Merge a finished run's part files into few large ones (also runs written before compaction).
    Compact(cmd::compact::CompactArgs),
    /// Publish ended runs as Delta Lake tables on S3 (or a shared folder), one table per stream.
    Publish(cmd::publish::PublishArgs),
    /// List the Delta tables (streams) under s3://BUCKET/PREFIX or a folder, one per line.
    Tables(cmd::publish::TablesArgs),
    /// Retention: remove whole finished runs under OUT (--keep-last N or --older-than 7d).
    Gc(cmd::gc::GcArgs),
    /// Show a run's state from its manifest.json.
    Status(cmd::status::StatusArgs),
    /// Show a run's summary.json as a table.
    Summary(cmd::summary::SummaryArgs),
    /// Simulate an RL backtest engine linked in-process and collect its records.
    Demo(cmd::demo::DemoArgs),
    /// Write one self-contained HTML report of a run, or of several runs overlaid.
    Report(cmd::report::ReportArgs),
}

fn main() -> ExitCode {
    alloc::tune();
    let cli = Cli::parse();
    cmd::init_logging();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Recover(args) => cmd::recover::recover(args),
        Command::Compact(args) => cmd::compact::compact(args),
        Command::Publish(args) => cmd::publish::publish(args),
        Command::Tables(args) => cmd::publish::tables(args),
        Command::Gc(args) => cmd::gc::gc(args),
        Command::Status(args) => cmd::status::status(args),
        Command::Summary(args) => cmd::summary::summary(args),
        Command::Demo(args) => cmd::demo::demo(args),
        Command::Report(args) => cmd::report::report(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rlcollect: error: {}", exit::message(&e));
            ExitCode::from(exit::code(&e))
        }
    }
}
