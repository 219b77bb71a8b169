//! `rlcollect publish RUN --to s3://BUCKET/PREFIX`: a finished run into the
//! Delta Lake tables that hold every run from every host (crate
//! `rlcollect-delta`, SPEC §8). Idempotent: run it again after any failure.

use anyhow::{Context, Result};
use rlcollect_delta::{PublishError, PublishOptions, StreamPublished};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `rlcollect publish`.
#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// Run directories to publish (ended runs; default analysis_data/latest).
    run_dirs: Vec<PathBuf>,
    /// Where the tables are: s3://BUCKET/PREFIX, or a shared folder.
    #[arg(long)]
    to: String,
    /// An S3-compatible endpoint, e.g. http://localhost:8333 (default:
    /// $AWS_ENDPOINT_URL, else AWS). Credentials: the usual AWS_* variables.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The host name recorded with the files (default: this machine's).
    #[arg(long)]
    host: Option<String>,
}

pub fn publish(args: PublishArgs) -> Result<ExitCode> {
    let opts = PublishOptions {
        endpoint: args.s3_endpoint,
        host: args.host.unwrap_or_else(super::hostname),
    };
    let runs = if args.run_dirs.is_empty() {
        vec![super::default_run_dir()]
    } else {
        args.run_dirs
    };
    for run in runs {
        let started = std::time::Instant::now();
        let report = rlcollect_delta::publish(&run, &args.to, &opts)
            .map_err(config_is_usage)
            .with_context(|| format!("cannot publish {} to {}", run.display(), args.to))?;
        for (stream, done) in &report {
            match done {
                StreamPublished::Committed {
                    added,
                    removed,
                    rows,
                    version,
                } => println!("{stream:<24} {rows:>10} rows in {added} files (removed {removed}) -> version {version}"),
                StreamPublished::UpToDate => println!("{stream:<24} already in the table"),
            }
        }
        eprintln!(
            "rlcollect: published {} in {:.2} s",
            run.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Options of `rlcollect tables`.
#[derive(clap::Args, Debug)]
pub struct TablesArgs {
    /// s3://BUCKET/PREFIX, or a shared folder.
    dest: String,
    /// An S3-compatible endpoint (default: $AWS_ENDPOINT_URL, else AWS).
    #[arg(long)]
    s3_endpoint: Option<String>,
}

/// Prints the tables under a destination (what `rlcollect.load("s3://...")` reads).
pub fn tables(args: TablesArgs) -> Result<ExitCode> {
    let names = rlcollect_delta::tables(&args.dest, args.s3_endpoint.as_deref())
        .map_err(config_is_usage)
        .with_context(|| format!("cannot list the tables in {}", args.dest))?;
    for name in names {
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A bad destination is a usage error (exit code 2), as elsewhere.
fn config_is_usage(e: PublishError) -> anyhow::Error {
    match e {
        PublishError::Config(text) => rlcollect::Error::Config(text).into(),
        other => other.into(),
    }
}
