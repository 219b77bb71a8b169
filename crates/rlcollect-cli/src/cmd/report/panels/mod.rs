//! The panels: one fold per stream, run over the run's parts in parallel
//! (one stream per thread: streams are independent), then turned into charts,
//! tables and the printed totals.

pub mod health;
pub mod predictions;
pub mod rl;
pub mod signals;
mod trade_curves;
pub mod trades;
pub mod user;

use super::chart::{Chart, Table};
use super::source::{scan, Batch, Run, Sink, Unreadable, Want};
use health::{RunHealth, StreamHealth};
use rlcollect::FileEntry;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Settings every panel shares.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// Points per downsampled series (LTTB threshold).
    pub points: usize,
}

/// A fold over one stream's rows: which columns it reads, and what it does
/// with each batch of them.
pub trait Fold {
    fn columns(&self) -> Vec<(String, Want)>;
    fn add(&mut self, b: &Batch);
}

/// The earliest and latest of some timestamps (epoch ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Span {
    pub first: Option<i64>,
    pub last: Option<i64>,
}

impl Span {
    pub fn add(&mut self, t: i64) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }
    pub fn merge(&mut self, o: Span) {
        for t in [o.first, o.last].into_iter().flatten() {
            self.add(t);
        }
    }
}

/// The totals a report prints for one run. Where a field has a namesake in
/// `summary.json` it is counted the same way and equals it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Rows per stream, as read.
    pub rows: BTreeMap<String, u64>,
    /// The data's own time range (trade dates, `ts` columns).
    pub data_span: Span,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trades: Option<trades::TradeTotals>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rl_episodes: Option<rl::EpisodeTotals>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_decisions: Option<rl::DecisionTotals>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictions: Option<predictions::PredictionTotals>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_propagation: Option<signals::SignalTotals>,
}

/// Everything the report shows of one run.
#[derive(Debug, Default)]
pub struct RunReport {
    pub label: String,
    pub totals: Totals,
    pub charts: Vec<Chart>,
    pub tables: Vec<Table>,
    pub unreadable: Vec<Unreadable>,
}

/// The fold a stream gets (one per stream: the size of the largest variant
/// costs nothing).
#[allow(clippy::large_enum_variant)]
enum Folder {
    Trades(trades::Trades),
    Episodes(rl::Episodes),
    Decisions(rl::Decisions),
    Predictions(predictions::Predictions),
    Signals(signals::Signals),
    User(user::User),
}

impl Folder {
    fn for_stream(run: &Run, stream: &str, ctx: &Ctx) -> Folder {
        let rows = run.rows(stream);
        match stream {
            "trades" => Folder::Trades(trades::Trades::new()),
            "rl_episodes" => Folder::Episodes(rl::Episodes::new(rows, ctx)),
            "model_decisions" => Folder::Decisions(rl::Decisions::new()),
            "predictions" => Folder::Predictions(predictions::Predictions::new()),
            "signal_propagation" => Folder::Signals(signals::Signals::new()),
            _ => Folder::User(user::User::new(run, stream)),
        }
    }

    fn fold(&mut self) -> &mut dyn Fold {
        match self {
            Folder::Trades(f) => f,
            Folder::Episodes(f) => f,
            Folder::Decisions(f) => f,
            Folder::Predictions(f) => f,
            Folder::Signals(f) => f,
            Folder::User(f) => f,
        }
    }

    /// Panels in page order: trades, RL, predictions, signals, user streams.
    fn order(&self) -> u8 {
        match self {
            Folder::Trades(_) => 0,
            Folder::Episodes(_) => 1,
            Folder::Decisions(_) => 2,
            Folder::Predictions(_) => 3,
            Folder::Signals(_) => 4,
            Folder::User(_) => 5,
        }
    }

    fn finish(self, run: usize, ctx: &Ctx, out: &mut RunReport) {
        match self {
            Folder::Trades(f) => f.finish(run, ctx, out),
            Folder::Episodes(f) => f.finish(run, out),
            Folder::Decisions(f) => f.finish(run, ctx, out),
            Folder::Predictions(f) => f.finish(run, ctx, out),
            Folder::Signals(f) => f.finish(run, out),
            Folder::User(f) => f.finish(run, ctx, out),
        }
    }
}

/// One stream of one run, folded by one thread.
struct Job {
    run: usize,
    stream: String,
    folder: Folder,
    health: StreamHealth,
    unreadable: Vec<Unreadable>,
    rows: u64,
}

/// A stream's rows go to its panel's fold and to its health counters.
struct JobSink<'a> {
    folder: &'a mut Folder,
    health: &'a mut StreamHealth,
    first_health: usize,
    rows: u64,
}

impl Sink for JobSink<'_> {
    fn batch(&mut self, b: &Batch) {
        self.rows += b.rows as u64;
        self.folder.fold().add(b);
        self.health.add(b, self.first_health);
    }
    fn part_done(&mut self, part: &FileEntry) {
        self.health.part_done(part);
    }
}

impl Job {
    fn execute(&mut self, run: &Run) {
        let mut columns = self.folder.fold().columns();
        let first_health = columns.len();
        columns.extend(StreamHealth::columns());
        let mut sink = JobSink {
            folder: &mut self.folder,
            health: &mut self.health,
            first_health,
            rows: 0,
        };
        self.unreadable = scan(run, &self.stream, &columns, &mut sink);
        self.rows = sink.rows;
    }
}

/// Folds every stream of every run and returns one report per run.
pub fn fold_runs(runs: &[Run], ctx: &Ctx) -> Vec<RunReport> {
    let mut jobs: Vec<Job> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for (stream, entry) in &run.manifest.streams {
            if entry.files.iter().any(|f| f.format == "parquet") {
                jobs.push(Job {
                    run: i,
                    stream: stream.clone(),
                    folder: Folder::for_stream(run, stream, ctx),
                    health: StreamHealth::new(stream),
                    unreadable: Vec::new(),
                    rows: 0,
                });
            }
        }
    }
    // Largest first, so the two cores finish together.
    jobs.sort_by_key(|j| std::cmp::Reverse(runs[j.run].rows(&j.stream)));
    let mut done = run_pool(jobs, runs);
    done.sort_by(|a, b| (a.run, a.folder.order(), &a.stream).cmp(&(b.run, b.folder.order(), &b.stream)));
    let mut reports: Vec<RunReport> = runs
        .iter()
        .map(|r| RunReport {
            label: r.label.clone(),
            ..Default::default()
        })
        .collect();
    let mut health: Vec<RunHealth> = runs.iter().map(|_| RunHealth::default()).collect();
    for job in done {
        let out = &mut reports[job.run];
        out.totals.rows.insert(job.stream.clone(), job.rows);
        out.unreadable.extend(job.unreadable);
        job.folder.finish(job.run, ctx, out);
        health[job.run].absorb(job.health);
    }
    for (i, (h, out)) in health.into_iter().zip(&mut reports).enumerate() {
        h.finish(i, &runs[i], ctx, out);
    }
    reports
}

/// Runs the jobs on as many threads as there are cores (at most one per job).
fn run_pool(jobs: Vec<Job>, runs: &[Run]) -> Vec<Job> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    let queue = Mutex::new(VecDeque::from(jobs));
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some(mut job) = queue.lock().expect("queue").pop_front() else {
                    break;
                };
                job.execute(&runs[job.run]);
                done.lock().expect("results").push(job);
            });
        }
    });
    done.into_inner().expect("results")
}
