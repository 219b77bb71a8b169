//! The predictions panel: confidence histogram, the `do_predict` share (by
//! value, and over time), and prediction against label where labels exist:
//! the mean label per prediction bin when labels are numbers, the
//! prediction's distribution per label when they are classes.

use super::{Ctx, Fold, RunReport, Span};
use crate::cmd::report::buckets::{Buckets, MeanAcc};
use crate::cmd::report::chart::{secs, Axis, Chart, Fmt, Kind, Series};
use crate::cmd::report::source::{Batch, Want};
use crate::cmd::report::stats::Slots;
use arrow_array::Array;
use serde::Serialize;
use std::collections::BTreeMap;

const PANEL: &str = "predictions";

/// Prediction totals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PredictionTotals {
    pub count: u64,
    /// Rows per `do_predict` value (`null` when absent).
    pub do_predict: BTreeMap<String, u64>,
    /// Share of rows with `do_predict == 1` among rows that have one.
    pub do_predict_share: Option<f64>,
    pub confidence_mean: Option<f64>,
}

/// Labels drawn separately; more share one "other" series.
const MAX_LABELS: usize = 6;
/// Finest starting width for values of unknown scale (2^-24 ≈ 6e-8).
const FINE: i32 = -24;

/// The fold over `predictions`.
pub struct Predictions {
    count: u64,
    confidence: Buckets<u64>,
    confidence_sum: MeanAcc,
    do_predict: BTreeMap<Option<i64>, u64>,
    predict_over_time: Buckets<MeanAcc>,
    /// While every label read so far is a number: mean label per prediction bin.
    numeric: bool,
    labelled: u64,
    label_by_prediction: Buckets<MeanAcc>,
    /// Prediction histogram per label class, and of unlabelled rows.
    classes: Slots,
    per_class: Vec<Buckets<u64>>,
    unlabelled: Buckets<u64>,
    span: Span,
}

const TS: usize = 0;
const CONFIDENCE: usize = 1;
const DO_PREDICT: usize = 2;
const PREDICTION: usize = 3;
const LABEL: usize = 4;

impl Predictions {
    pub fn new() -> Predictions {
        Predictions {
            count: 0,
            confidence: Buckets::new(FINE, 40),
            confidence_sum: MeanAcc::default(),
            do_predict: BTreeMap::new(),
            predict_over_time: Buckets::new(10, 600),
            numeric: true,
            labelled: 0,
            label_by_prediction: Buckets::new(FINE, 60),
            classes: Slots::new(MAX_LABELS),
            per_class: Vec::new(),
            unlabelled: Buckets::new(FINE, 40),
            span: Span::default(),
        }
    }

    fn add_label(&mut self, prediction: f64, label: Option<&str>) {
        let Some(label) = label else {
            if let Some(c) = self.unlabelled.at(prediction) {
                *c += 1;
            }
            return;
        };
        self.labelled += 1;
        if self.numeric {
            match label.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    if let Some(c) = self.label_by_prediction.at(prediction) {
                        c.add(v);
                    }
                }
                _ => self.numeric = false,
            }
        }
        let slot = self.classes.slot(label);
        if self.per_class.len() <= slot {
            self.per_class.resize_with(slot + 1, || Buckets::new(FINE, 40));
        }
        if let Some(c) = self.per_class[slot].at(prediction) {
            *c += 1;
        }
    }
}

impl Fold for Predictions {
    fn columns(&self) -> Vec<(String, Want)> {
        [
            ("ts", Want::I64),
            ("confidence", Want::F64),
            ("do_predict", Want::I64),
            ("prediction", Want::F64),
            ("label", Want::Str),
        ]
        .map(|(n, w)| (n.to_owned(), w))
        .to_vec()
    }

    fn add(&mut self, b: &Batch) {
        let (ts, conf, dp, pred, label) = (
            b.i64(TS),
            b.f64(CONFIDENCE),
            b.i64(DO_PREDICT),
            b.f64(PREDICTION),
            b.str(LABEL),
        );
        for i in 0..b.rows {
            self.count += 1;
            let t = ts.filter(|c| c.is_valid(i)).map(|c| c.value(i));
            if let Some(c) = conf
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i))
                .filter(|c| c.is_finite())
            {
                self.confidence_sum.add(c);
                if let Some(cell) = self.confidence.at(c) {
                    *cell += 1;
                }
            }
            let d = dp.filter(|c| c.is_valid(i)).map(|c| c.value(i));
            *self.do_predict.entry(d).or_default() += 1;
            if let Some(t) = t {
                self.span.add(t);
                if let (Some(d), Some(cell)) = (d, self.predict_over_time.at(t as f64)) {
                    cell.add(f64::from(u8::from(d == 1)));
                }
            }
            if let Some(p) = pred
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i))
                .filter(|p| p.is_finite())
            {
                self.add_label(p, label.filter(|c| c.is_valid(i)).map(|c| c.value(i)));
            }
        }
    }
}

fn hist(run: usize, name: String, b: Buckets<u64>) -> Series {
    let w = b.width();
    let (x, y): (Vec<f64>, Vec<f64>) = b.into_cells().map(|(x, n)| (x, n as f64)).unzip();
    Series {
        run,
        name,
        x,
        y,
        w: Some(w),
        ..Series::default()
    }
}

impl Predictions {
    pub fn finish(mut self, run: usize, _ctx: &Ctx, out: &mut RunReport) {
        if self.count == 0 {
            return;
        }
        let totals = self.totals();
        let mut charts = vec![
            Chart::new(
                PANEL,
                "confidence",
                "Confidence",
                Kind::Hist,
                Axis::new("confidence", Fmt::Num),
                Axis::new("predictions", Fmt::Int),
            )
            .with(hist(
                run,
                String::new(),
                std::mem::replace(&mut self.confidence, Buckets::new(0, 2)),
            )),
            self.do_predict_chart(run),
        ];
        let over_time: Vec<(f64, f64)> = self
            .predict_over_time
            .cells()
            .filter_map(|(t, m)| Some((secs(t as i64), m.mean()?)))
            .collect();
        charts.push(
            Chart::new(
                PANEL,
                "do_predict_time",
                "Share of do_predict = 1 over time",
                Kind::Line,
                Axis::time("time (UTC)"),
                Axis::new("do_predict = 1", Fmt::Pct),
            )
            .with(Series::xy(run, "", &over_time)),
        );
        charts.push(self.label_chart(run));
        out.charts.extend(charts.into_iter().filter(Chart::has_data));
        out.totals.data_span.merge(self.span);
        out.totals.predictions = Some(totals);
    }

    fn totals(&self) -> PredictionTotals {
        let key = |d: &Option<i64>| d.map_or_else(|| "null".to_owned(), |d| d.to_string());
        let with_value: u64 = self
            .do_predict
            .iter()
            .filter(|(d, _)| d.is_some())
            .map(|(_, n)| n)
            .sum();
        let ones = self.do_predict.get(&Some(1)).copied().unwrap_or(0);
        PredictionTotals {
            count: self.count,
            do_predict: self.do_predict.iter().map(|(d, n)| (key(d), *n)).collect(),
            do_predict_share: (with_value > 0).then(|| ones as f64 / with_value as f64),
            confidence_mean: self.confidence_sum.mean(),
        }
    }

    fn do_predict_chart(&self, run: usize) -> Chart {
        let with_value: u64 = self
            .do_predict
            .iter()
            .filter(|(d, _)| d.is_some())
            .map(|(_, n)| n)
            .sum();
        let rows: Vec<(String, u64)> = self
            .do_predict
            .iter()
            .filter_map(|(d, n)| Some((d.as_ref()?.to_string(), *n)))
            .collect();
        let s = Series {
            run,
            cats: rows.iter().map(|(k, _)| format!("do_predict = {k}")).collect(),
            y: rows.iter().map(|(_, n)| *n as f64 / with_value.max(1) as f64).collect(),
            text: rows.iter().map(|(_, n)| format!("{n} rows")).collect(),
            ..Series::default()
        };
        Chart::new(
            PANEL,
            "do_predict",
            "do_predict share",
            Kind::Hbars,
            Axis::new("value", Fmt::Num),
            Axis::new("share of rows", Fmt::Pct),
        )
        .with(s)
    }

    fn label_chart(&mut self, run: usize) -> Chart {
        let x = Axis::new("prediction", Fmt::Num);
        if self.labelled > 0 && self.numeric {
            let points: Vec<(f64, f64)> = self
                .label_by_prediction
                .cells()
                .filter_map(|(x, m)| Some((x + self.label_by_prediction.width() / 2.0, m.mean()?)))
                .collect();
            return Chart::new(
                PANEL,
                "vs_label",
                "Prediction against label (mean label per prediction bin)",
                Kind::Line,
                x,
                Axis::new("label", Fmt::Num),
            )
            .with(Series::xy(run, "", &points));
        }
        if self.labelled == 0 {
            let all = std::mem::replace(&mut self.unlabelled, Buckets::new(0, 2));
            return Chart::new(
                PANEL,
                "prediction",
                "Prediction (no labels in this run)",
                Kind::Hist,
                x,
                Axis::new("predictions", Fmt::Int),
            )
            .with(hist(run, String::new(), all));
        }
        // Classes: one histogram per label on a shared grid.
        let log2 = self.per_class.iter().map(Buckets::log2).max().unwrap_or(0);
        let mut chart = Chart::new(
            PANEL,
            "vs_label",
            "Prediction per label",
            Kind::Hist,
            x,
            Axis::new("predictions", Fmt::Int),
        )
        .per_run();
        for (name, mut b) in self
            .classes
            .names()
            .into_iter()
            .zip(std::mem::take(&mut self.per_class))
        {
            b.coarsen_to(log2);
            chart = chart.with(hist(run, format!("label {name}"), b));
        }
        chart
    }
}
