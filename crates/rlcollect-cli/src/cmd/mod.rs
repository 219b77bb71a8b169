//! Subcommands of the `rlcollect` binary, one file each.

pub mod compact;
pub mod demo;
pub mod gc;
pub mod publish;
pub mod recover;
pub mod report;
pub mod run;
pub mod status;
pub mod summary;

use std::io::IsTerminal;
use std::path::PathBuf;

/// Logs go to stderr only; stdout belongs to the user. `RUST_LOG` filters.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in a strategy's log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// The default run directory: `analysis_data/latest`.
pub fn default_run_dir() -> PathBuf {
    rlcollect::RunDir::latest("analysis_data")
}

/// A right-aligned count with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// This machine's host name (`gethostname`), or `host`: it names the files a
/// host adds to a shared Delta table.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_owned(),
        _ => "host".to_owned(),
    }
}
