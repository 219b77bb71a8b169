//! The `rlcollect` command: the collector as a sidecar process, plus tools to
//! inspect runs and a built-in demo.
//!
//! Exit codes (SPEC §5): 0 success (also after SIGINT/SIGTERM with a clean
//! final flush), 1 runtime failure, 2 bad usage or configuration.

mod cli;

/// Records are allocated on reader threads and freed on the worker thread;
/// mimalloc handles such cross-thread frees without the arena-lock contention
/// glibc malloc shows here (see `benches/ingest.sh`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// mimalloc's `mi_option_purge_delay`: its index in the C enum of the bundled
/// mimalloc (libmimalloc-sys names no constant for it). Checked by running with
/// `MIMALLOC_PURGE_DELAY=77`, which shows up at this index.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the OS at once instead of after 1 s, which keeps the
/// sidecar's peak RSS near its live data. Only done when the option at that
/// index holds the bundled mimalloc's default (1000 ms), so a renumbered enum
/// changes nothing.
fn tune_allocator() {
    // SAFETY: reading and setting a mimalloc option has no preconditions.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == 1000 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
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
