//! The run health panel: rows per stream and per source over (ingestion)
//! time, rows published part by part (each step a checkpoint's part), the
//! run's state, rejected lines grouped by reason, and parts that could not be
//! read.

use super::{Ctx, RunReport};
use crate::cmd::report::buckets::Buckets;
use crate::cmd::report::chart::{bucket_steps, secs, Axis, Chart, Fmt, Kind, Series, Table};
use crate::cmd::report::fmt::duration_ms;
use crate::cmd::report::source::{Batch, Run, Want};
use crate::cmd::report::stats::Slots;
use arrow_array::Array;
use rlcollect::FileEntry;
use std::collections::BTreeMap;
use std::io::BufRead;

const PANEL: &str = "health";
const MAX_SOURCES: usize = 16;
const BUCKETS: usize = 120;

/// Health counters of one stream, fed by the same pass as its panel.
pub struct StreamHealth {
    stream: String,
    ingested: Buckets<u64>,
    sources: Slots,
    per_source: Vec<Buckets<u64>>,
    /// (last ingestion time, rows) of each part read.
    parts: Vec<(i64, u64)>,
    part_last: i64,
}

impl StreamHealth {
    pub fn new(stream: &str) -> StreamHealth {
        StreamHealth {
            stream: stream.to_owned(),
            ingested: Buckets::new(0, BUCKETS),
            sources: Slots::new(MAX_SOURCES),
            per_source: Vec::new(),
            parts: Vec::new(),
            part_last: i64::MIN,
        }
    }

    /// The columns it reads, after the panel's.
    pub fn columns() -> [(String, Want); 2] {
        [
            ("_ingested_at".to_owned(), Want::I64),
            ("_source".to_owned(), Want::Str),
        ]
    }

    /// Counts a batch whose health columns start at `first`.
    pub fn add(&mut self, b: &Batch, first: usize) {
        let (at, source) = (b.i64(first), b.str(first + 1));
        for i in 0..b.rows {
            let Some(t) = at.filter(|c| c.is_valid(i)).map(|c| c.value(i)) else {
                continue;
            };
            self.part_last = self.part_last.max(t);
            if let Some(cell) = self.ingested.at(t as f64) {
                *cell += 1;
            }
            let name = source.filter(|c| c.is_valid(i)).map_or("(unknown)", |c| c.value(i));
            let slot = self.sources.slot(name);
            if self.per_source.len() <= slot {
                self.per_source.resize_with(slot + 1, || Buckets::new(0, BUCKETS));
            }
            if let Some(cell) = self.per_source[slot].at(t as f64) {
                *cell += 1;
            }
        }
    }

    /// Called after each part was read to its end.
    pub fn part_done(&mut self, part: &FileEntry) {
        if self.part_last > i64::MIN {
            self.parts.push((self.part_last, part.rows));
        }
        self.part_last = i64::MIN;
    }
}

/// The health counters of a whole run.
#[derive(Default)]
pub struct RunHealth {
    streams: Vec<(String, Buckets<u64>)>,
    sources: BTreeMap<String, Buckets<u64>>,
    parts: Vec<(i64, u64)>,
}

impl RunHealth {
    pub fn absorb(&mut self, s: StreamHealth) {
        if !s.ingested.is_empty() {
            self.streams.push((s.stream, s.ingested));
        }
        for (name, b) in s.sources.names().into_iter().zip(s.per_source) {
            match self.sources.get_mut(&name) {
                Some(have) => have.absorb(b),
                None => {
                    self.sources.insert(name, b);
                }
            }
        }
        self.parts.extend(s.parts);
    }

    pub fn finish(mut self, run_index: usize, run: &Run, _ctx: &Ctx, out: &mut RunReport) {
        let label = out.label.clone();
        let streams = std::mem::take(&mut self.streams);
        if let Some(c) = over_time(run_index, "rows", "Rows per stream over time", streams) {
            out.charts.push(c);
        }
        let sources = std::mem::take(&mut self.sources).into_iter().collect();
        if let Some(c) = over_time(run_index, "sources", "Rows per source over time", sources) {
            out.charts.push(c);
        }
        self.parts.sort_by_key(|p| p.0);
        let mut total = 0.0;
        let published: Vec<(f64, f64)> = self
            .parts
            .iter()
            .map(|(t, n)| {
                total += *n as f64;
                (secs(*t), total)
            })
            .collect();
        let note = format!(
            "{} checkpoints; each step is one part file, at its last row's ingestion time",
            run.manifest.checkpoints
        );
        let chart = Chart::new(
            PANEL,
            "published",
            "Rows published",
            Kind::Step,
            Axis::time("ingested at (UTC)"),
            Axis::new("rows published", Fmt::Int),
        )
        .note(note)
        .per_run()
        .with(Series::xy(run_index, "", &published));
        if chart.has_data() {
            out.charts.push(chart);
        }
        // An empty run has no health panel unless something needs saying
        // (rejected lines, unreadable parts): its header has the state.
        if out.totals.rows.values().any(|n| *n > 0) {
            out.tables.push(state_table(run, &label));
        }
        if let Some(t) = rejected_table(run, &label) {
            out.tables.push(t);
        }
        if !out.unreadable.is_empty() {
            out.tables.push(unreadable_table(out, &label));
        }
    }
}

/// Row counts per named series over ingestion time, on one grid.
fn over_time(run: usize, id: &str, title: &str, series: Vec<(String, Buckets<u64>)>) -> Option<Chart> {
    let log2 = series.iter().map(|(_, b)| b.log2()).max()?;
    let width = 2f64.powi(log2);
    let y = Axis::new(format!("rows per {}", duration_ms(width)), Fmt::Int);
    let mut chart = Chart::new(PANEL, id, title, Kind::Step, Axis::time("ingested at (UTC)"), y).per_run();
    for (name, mut b) in series {
        b.coarsen_to(log2);
        chart = chart.with(Series::xy(run, name, &bucket_steps(b, 1e-3)));
    }
    chart.has_data().then_some(chart)
}

fn state_table(run: &Run, label: &str) -> Table {
    let m = &run.manifest;
    let th = crate::cmd::thousands;
    let status = match (run.live, m.status) {
        (true, _) => format!("{} (collector alive)", m.status),
        (false, rlcollect::RunStatus::Running) => {
            "running (no collector holds the run: it may have died; `rlcollect recover`)".into()
        }
        _ => m.status.to_string(),
    };
    Table {
        id: "health.state".into(),
        panel: PANEL.into(),
        title: "State".into(),
        columns: [
            "run",
            "status",
            "records",
            "published",
            "candles",
            "checkpoints",
            "last checkpoint",
            "rejected",
            "last error",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![vec![
            label.to_owned(),
            status,
            th(m.records),
            th(m.published_seq),
            th(m.candles),
            th(m.checkpoints),
            m.last_checkpoint_at.clone().unwrap_or_else(|| "–".into()),
            th(m.rejected),
            m.last_error.clone().unwrap_or_else(|| "–".into()),
        ]],
    }
}

/// An error message with its particulars (quoted values, numbers) blanked,
/// so that lines rejected for the same reason group together.
fn reason_kind(error: &str) -> String {
    let mut out = String::with_capacity(error.len());
    let (mut quoted, mut digits) = (false, false);
    for c in error.chars() {
        match (quoted, c) {
            (true, '"') => quoted = false,
            (true, _) => {}
            (false, '"') => {
                quoted = true;
                out.push_str("\"…\"");
            }
            (false, c) if c.is_ascii_digit() => {
                if !digits {
                    out.push('N');
                }
            }
            (false, c) => out.push(c),
        }
        digits = !quoted && c.is_ascii_digit();
    }
    out
}

/// Rejected lines grouped by reason: count, first line, source, an example.
fn rejected_table(run: &Run, label: &str) -> Option<Table> {
    let file = std::fs::File::open(run.dir.rejected_path()).ok()?;
    let mut groups: BTreeMap<String, (u64, String, String, String)> = BTreeMap::new();
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let error = v["error"].as_str().unwrap_or("(no reason)");
        let key = reason_kind(error);
        let full = groups.len() >= 50 && !groups.contains_key(&key);
        let g = groups
            .entry(if full { "(other reasons)".into() } else { key })
            .or_insert_with(|| {
                let raw: String = v["raw"].as_str().unwrap_or("").chars().take(160).collect();
                (
                    0,
                    v["line"].to_string(),
                    v["source"].as_str().unwrap_or("").to_owned(),
                    raw,
                )
            });
        g.0 += 1;
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
    (!rows.is_empty()).then(|| Table {
        id: "health.rejected".into(),
        panel: PANEL.into(),
        title: "Rejected lines (rejected.ndjson), by reason".into(),
        columns: ["run", "reason", "lines", "first line", "source", "example"]
            .map(String::from)
            .to_vec(),
        rows: rows
            .into_iter()
            .map(|(k, (n, line, source, raw))| vec![label.to_owned(), k, crate::cmd::thousands(n), line, source, raw])
            .collect(),
    })
}

fn unreadable_table(out: &RunReport, label: &str) -> Table {
    Table {
        id: "health.unreadable".into(),
        panel: PANEL.into(),
        title: "Parts that could not be read (their rows are missing from the panels)".into(),
        columns: ["run", "file", "error", "rows read"].map(String::from).to_vec(),
        rows: out
            .unreadable
            .iter()
            .map(|u| {
                vec![
                    label.to_owned(),
                    u.path.clone(),
                    u.error.clone(),
                    crate::cmd::thousands(u.rows_read),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::reason_kind;

    #[test]
    fn reasons_group_without_their_particulars() {
        assert_eq!(
            reason_kind(r#"core field profit_abs: "abc" is not a number"#),
            r#"core field profit_abs: "…" is not a number"#
        );
        assert_eq!(
            reason_kind("not valid JSON at byte 33: unexpected end"),
            "not valid JSON at byte N: unexpected end"
        );
    }
}
