//! The signal propagation panel: a funnel by stage (the share of signals
//! each stage accepted, stages in the order they first appear) and the
//! reasons for rejection.

use super::{Fold, RunReport, Span};
use crate::cmd::report::chart::{Axis, Chart, Fmt, Kind, Series};
use crate::cmd::report::source::{Batch, Want};
use crate::cmd::report::stats::Slots;
use arrow_array::Array;
use serde::Serialize;

const PANEL: &str = "signals";
const MAX_STAGES: usize = 24;
const MAX_REASONS: usize = 24;

/// Signal totals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignalTotals {
    pub count: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// The fold over `signal_propagation`.
pub struct Signals {
    count: u64,
    stages: Slots,
    /// (signals, accepted, rejected) per stage slot.
    per_stage: Vec<(u64, u64, u64)>,
    reasons: Slots,
    per_reason: Vec<u64>,
    span: Span,
}

const TS: usize = 0;
const STAGE: usize = 1;
const ACCEPTED: usize = 2;
const REASON: usize = 3;

impl Signals {
    pub fn new() -> Signals {
        Signals {
            count: 0,
            stages: Slots::new(MAX_STAGES),
            per_stage: Vec::new(),
            reasons: Slots::new(MAX_REASONS),
            per_reason: Vec::new(),
            span: Span::default(),
        }
    }
}

fn bump<T: Default + Clone>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

impl Fold for Signals {
    fn columns(&self) -> Vec<(String, Want)> {
        [
            ("ts", Want::I64),
            ("stage", Want::Str),
            ("accepted", Want::Bool),
            ("reason", Want::Str),
        ]
        .map(|(n, w)| (n.to_owned(), w))
        .to_vec()
    }

    fn add(&mut self, b: &Batch) {
        let (ts, stage, accepted, reason) = (b.i64(TS), b.str(STAGE), b.bool(ACCEPTED), b.str(REASON));
        for i in 0..b.rows {
            self.count += 1;
            if let Some(t) = ts.filter(|c| c.is_valid(i)) {
                self.span.add(t.value(i));
            }
            let s = self
                .stages
                .slot(stage.filter(|c| c.is_valid(i)).map_or("(no stage)", |c| c.value(i)));
            let st = bump(&mut self.per_stage, s);
            st.0 += 1;
            match accepted.filter(|c| c.is_valid(i)).map(|c| c.value(i)) {
                Some(true) => st.1 += 1,
                Some(false) => {
                    st.2 += 1;
                    let r = reason
                        .filter(|c| c.is_valid(i))
                        .map_or("(no reason given)", |c| c.value(i));
                    let r = self.reasons.slot(r);
                    *bump(&mut self.per_reason, r) += 1;
                }
                None => {}
            }
        }
    }
}

impl Signals {
    pub fn finish(self, run: usize, out: &mut RunReport) {
        if self.count == 0 {
            return;
        }
        let funnel = Chart::new(
            PANEL,
            "funnel",
            "Funnel: share accepted at each stage",
            Kind::Hbars,
            Axis::new("stage", Fmt::Num),
            Axis::new("accepted", Fmt::Pct),
        );
        out.charts.push(funnel.with(self.funnel(run)));
        let rejected: u64 = self.per_stage.iter().map(|s| s.2).sum();
        let reasons = Chart::new(
            PANEL,
            "reasons",
            "Reasons for rejection",
            Kind::Hbars,
            Axis::new("reason", Fmt::Num),
            Axis::new("rejected signals", Fmt::Int),
        )
        .with(self.reasons(run, rejected));
        if reasons.has_data() {
            out.charts.push(reasons);
        }
        out.totals.data_span.merge(self.span);
        let accepted = self.per_stage.iter().map(|s| s.1).sum();
        out.totals.signal_propagation = Some(SignalTotals {
            count: self.count,
            accepted,
            rejected,
        });
    }

    /// The share each stage accepted, stages in order of first appearance.
    fn funnel(&self, run: usize) -> Series {
        Series {
            run,
            cats: self.stages.names(),
            y: self
                .per_stage
                .iter()
                .map(|(n, a, _)| *a as f64 / (*n).max(1) as f64)
                .collect(),
            text: self
                .per_stage
                .iter()
                .map(|(n, a, r)| format!("{a} of {n} accepted, {r} rejected"))
                .collect(),
            ..Series::default()
        }
    }

    /// Rejections per reason, most frequent first.
    fn reasons(&self, run: usize, rejected: u64) -> Series {
        let mut reasons: Vec<(String, u64)> = self
            .reasons
            .names()
            .into_iter()
            .zip(self.per_reason.iter().copied())
            .collect();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        Series {
            run,
            cats: reasons.iter().map(|r| r.0.clone()).collect(),
            y: reasons.iter().map(|r| r.1 as f64).collect(),
            text: reasons
                .iter()
                .map(|r| format!("{:.1}% of rejections", 100.0 * r.1 as f64 / rejected.max(1) as f64))
                .collect(),
            ..Series::default()
        }
    }
}
