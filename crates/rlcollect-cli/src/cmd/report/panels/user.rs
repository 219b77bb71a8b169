//! A generic panel for any other stream (user streams, `candles`): rows over
//! time, and each numeric column summarised (count, nulls, mean, spread,
//! range) with its mean over time.

use super::{Ctx, Fold, RunReport, Span};
use crate::cmd::report::buckets::{Buckets, MeanAcc};
use crate::cmd::report::chart::{bucket_steps, secs, Axis, Chart, Fmt, Kind, Series, Table};
use crate::cmd::report::fmt::num;
use crate::cmd::report::source::{Batch, Run, Want};
use crate::cmd::report::stats::Moments;
use arrow_array::Array;
use rlcollect::ColumnType;

/// Numeric columns summarised; a wider stream lists the first ones.
const MAX_COLUMNS: usize = 16;
/// Numeric columns also drawn over time.
const MAX_DRAWN: usize = 6;

/// One numeric column's running summary.
struct Column {
    name: String,
    moments: Moments,
    nulls: u64,
    not_finite: u64,
    over_time: Buckets<MeanAcc>,
}

/// The fold over one user stream.
pub struct User {
    stream: String,
    has_ts: bool,
    rows: u64,
    over_time: Buckets<u64>,
    columns: Vec<Column>,
    span: Span,
}

impl User {
    pub fn new(run: &Run, stream: &str) -> User {
        let schema = run
            .manifest
            .streams
            .get(stream)
            .map(|s| s.schema.clone())
            .unwrap_or_default();
        let has_ts = schema.iter().any(|f| f.name == "ts" && f.ty == ColumnType::Timestamp);
        let columns = schema
            .iter()
            .filter(|f| !f.name.starts_with('_') && matches!(f.ty, ColumnType::Int64 | ColumnType::Float64))
            .take(MAX_COLUMNS)
            .map(|f| Column {
                name: f.name.clone(),
                moments: Moments::default(),
                nulls: 0,
                not_finite: 0,
                over_time: Buckets::new(10, 300),
            })
            .collect();
        User {
            stream: stream.to_owned(),
            has_ts,
            rows: 0,
            over_time: Buckets::new(10, 300),
            columns,
            span: Span::default(),
        }
    }
}

impl Fold for User {
    fn columns(&self) -> Vec<(String, Want)> {
        let time = if self.has_ts { "ts" } else { "_ingested_at" };
        let mut cols = vec![(time.to_owned(), Want::I64)];
        cols.extend(self.columns.iter().map(|c| (c.name.clone(), Want::F64)));
        cols
    }

    fn add(&mut self, b: &Batch) {
        let ts = b.i64(0);
        let times: Vec<Option<f64>> = (0..b.rows)
            .map(|i| ts.filter(|c| c.is_valid(i)).map(|c| c.value(i) as f64))
            .collect();
        self.rows += b.rows as u64;
        for t in times.iter().flatten() {
            if self.has_ts {
                self.span.add(*t as i64);
            }
            if let Some(cell) = self.over_time.at(*t) {
                *cell += 1;
            }
        }
        for (k, col) in self.columns.iter_mut().enumerate() {
            let Some(values) = b.f64(k + 1) else {
                col.nulls += b.rows as u64; // this part has no such column
                continue;
            };
            for (i, t) in times.iter().enumerate() {
                if !values.is_valid(i) {
                    col.nulls += 1;
                    continue;
                }
                let v = values.value(i);
                if !v.is_finite() {
                    col.not_finite += 1;
                    continue;
                }
                col.moments.add(v);
                if let Some(cell) = t.and_then(|t| col.over_time.at(t)) {
                    cell.add(v);
                }
            }
        }
    }
}

impl User {
    pub fn finish(self, run: usize, _ctx: &Ctx, out: &mut RunReport) {
        if self.rows == 0 {
            return;
        }
        let panel = format!("user:{}", self.stream);
        let label = out.label.clone();
        let time = Axis::time(if self.has_ts { "ts (UTC)" } else { "ingested at (UTC)" });
        let width = crate::cmd::report::fmt::duration_ms(self.over_time.width());
        let counts = bucket_steps(self.over_time.clone(), 1e-3);
        out.charts.push(
            Chart::new(
                &panel,
                "rows",
                format!("{}: rows over time", self.stream),
                Kind::Step,
                time.clone(),
                Axis::new(format!("rows per {width}"), Fmt::Int),
            )
            .with(Series::xy(run, "", &counts)),
        );
        for col in self.columns.iter().filter(|c| c.moments.n > 0).take(MAX_DRAWN) {
            let means: Vec<(f64, f64)> = col
                .over_time
                .cells()
                .filter_map(|(t, m)| Some((secs(t as i64), m.mean()?)))
                .collect();
            let chart = Chart::new(
                &panel,
                &col.name,
                format!("{}: mean of {} over time", self.stream, col.name),
                Kind::Line,
                time.clone(),
                Axis::new(col.name.clone(), Fmt::Num),
            )
            .with(Series::xy(run, "", &means));
            out.charts.push(chart);
        }
        out.tables.push(self.summary_table(&panel, &label));
        out.totals.data_span.merge(self.span);
    }

    fn summary_table(&self, panel: &str, label: &str) -> Table {
        let opt = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), num);
        Table {
            id: format!("{panel}.columns"),
            panel: panel.to_owned(),
            title: format!("{}: numeric columns", self.stream),
            columns: [
                "run", "column", "values", "null", "NaN/inf", "mean", "std", "min", "max",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .columns
                .iter()
                .map(|c| {
                    vec![
                        label.to_owned(),
                        c.name.clone(),
                        crate::cmd::thousands(c.moments.n),
                        crate::cmd::thousands(c.nulls),
                        crate::cmd::thousands(c.not_finite),
                        opt(c.moments.mean()),
                        opt(c.moments.std()),
                        opt(c.moments.min),
                        opt(c.moments.max),
                    ]
                })
                .collect(),
        }
    }
}
