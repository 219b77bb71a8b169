//! The `rlcollect` command: the collector as a sidecar process, plus tools to
//! inspect runs and a built-in demo.
//!
//! Exit codes (SPEC §5): 0 success (also after SIGINT/SIGTERM with a clean
//! final flush), 1 runtime failure, 2 bad usage or configuration.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    Run(cli::run::RunArgs),
    /// Recover a run whose collector died: replay its write-ahead log into part files.
    Recover(cli::recover::RecoverArgs),
    /// Show a run's state from its manifest.json.
    Status(cli::status::StatusArgs),
    /// Show a run's summary.json as a table.
    Summary(cli::summary::SummaryArgs),
    /// Simulate an RL backtest engine linked in-process and collect its records.
    Demo(cli::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging();
    let result = match cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::Recover(args) => cli::recover::recover(args),
        Command::Status(args) => cli::status::status(args),
        Command::Summary(args) => cli::summary::summary(args),
        Command::Demo(args) => cli::demo::demo(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rlcollect: error: {e:#}");
            ExitCode::from(cli::exit_code_for(&e))
        }
    }
}
