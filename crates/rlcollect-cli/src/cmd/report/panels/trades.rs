//! The trades panel: equity curve with the max-drawdown window, underwater
//! curve, profit per pair and per exit reason, rolling win rate, trade
//! durations, and how many trades are open at once.
//!
//! The totals are counted exactly as the collector's `summary.json` counts
//! them (same rules, same compensated sum, same `_seq` order), so they are
//! equal to it. The curves need the trades in `close_date` order, which need
//! not be the order they arrived in: they keep (open, close, profit) of each
//! trade, 24 bytes a trade, and no other column.

use super::trade_curves::{equity_by_close_time, max_drawdown, open_at_once, timeframe, Drawdown};
use super::{Ctx, Fold, RunReport};
use crate::cmd::report::chart::{secs, Axis, Chart, Fmt, Kind, Mark, Series};
use crate::cmd::report::fmt::{duration_ms, num};
use crate::cmd::report::lttb::downsample;
use crate::cmd::report::source::{Batch, Want};
use crate::cmd::report::stats::{Rolling, Sum};
use arrow_array::Array;
use serde::Serialize;
use std::collections::BTreeMap;

const PANEL: &str = "trades";

/// Count and profit of a group, as `summary.json` has it (plus wins).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupTotal {
    pub count: u64,
    pub profit_abs: f64,
    #[serde(skip)]
    pub wins: u64,
}

/// The printed trade totals; the first fields mirror `summary.json`'s `trades`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TradeTotals {
    pub count: u64,
    pub wins: u64,
    pub losses: u64,
    pub draws: u64,
    pub win_rate: f64,
    pub profit_abs_total: f64,
    pub profit_ratio_mean: f64,
    pub by_pair: BTreeMap<String, GroupTotal>,
    pub by_exit_reason: BTreeMap<String, GroupTotal>,
    /// Largest fall of the cumulative profit from a previous high (as
    /// Freqtrade computes it: trades by close date, from the first trade on).
    pub max_drawdown_abs: f64,
    pub drawdown_start_ms: Option<i64>,
    pub drawdown_end_ms: Option<i64>,
    /// Most trades open at the same time.
    pub max_open: u64,
    pub first_close_ms: Option<i64>,
    pub last_close_ms: Option<i64>,
}

/// The running fold over the `trades` stream.
pub struct Trades {
    count: u64,
    wins: u64,
    losses: u64,
    draws: u64,
    profit: Sum,
    ratio: Sum,
    ratio_n: u64,
    by_pair: BTreeMap<String, (u64, Sum, u64)>,
    by_exit: BTreeMap<String, (u64, Sum)>,
    /// (close ms, profit) of each trade with both.
    closes: Vec<(i64, f64)>,
    /// (open ms, close ms) of each trade with both.
    spans: Vec<(i64, i64)>,
    /// Minutes each trade was open (8 bytes a trade): binned at the end,
    /// when the 95th percentile is known, so a long tail does not squash
    /// the histogram into one bar.
    durations: Vec<f64>,
}

const PAIR: usize = 0;
const PROFIT: usize = 1;
const RATIO: usize = 2;
const EXIT: usize = 3;
const OPEN: usize = 4;
const CLOSE: usize = 5;
const MINUTES: usize = 6;

impl Trades {
    pub fn new() -> Trades {
        Trades {
            count: 0,
            wins: 0,
            losses: 0,
            draws: 0,
            profit: Sum::default(),
            ratio: Sum::default(),
            ratio_n: 0,
            by_pair: BTreeMap::new(),
            by_exit: BTreeMap::new(),
            closes: Vec::new(),
            spans: Vec::new(),
            durations: Vec::new(),
        }
    }

    /// One trade, counted as the collector's summary counts it.
    fn count_trade(&mut self, pair: &str, profit: Option<f64>, ratio: Option<f64>, exit: &str) {
        self.count += 1;
        let profit = profit.filter(|p| !p.is_nan());
        let win = profit.is_some_and(|p| p > 0.0);
        if let Some(p) = profit {
            match p.partial_cmp(&0.0) {
                Some(std::cmp::Ordering::Greater) => self.wins += 1,
                Some(std::cmp::Ordering::Less) => self.losses += 1,
                _ => self.draws += 1,
            }
            self.profit.add(p);
        }
        let p = profit.unwrap_or(0.0);
        let g = group(&mut self.by_pair, pair);
        g.0 += 1;
        g.1.add(p);
        g.2 += u64::from(win);
        let e = group(&mut self.by_exit, exit);
        e.0 += 1;
        e.1.add(p);
        if let Some(r) = ratio.filter(|r| !r.is_nan()) {
            self.ratio.add(r);
            self.ratio_n += 1;
        }
    }
}

/// The group `key`, made on first use (no allocation when it exists).
fn group<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}

impl Fold for Trades {
    fn columns(&self) -> Vec<(String, Want)> {
        [
            ("pair", Want::Str),
            ("profit_abs", Want::F64),
            ("profit_ratio", Want::F64),
            ("exit_reason", Want::Str),
            ("open_date", Want::I64),
            ("close_date", Want::I64),
            ("trade_duration", Want::F64),
        ]
        .map(|(n, w)| (n.to_owned(), w))
        .to_vec()
    }

    fn add(&mut self, b: &Batch) {
        let (pair, profit, ratio, exit) = (b.str(PAIR), b.f64(PROFIT), b.f64(RATIO), b.str(EXIT));
        let (open, close, minutes) = (b.i64(OPEN), b.i64(CLOSE), b.f64(MINUTES));
        for i in 0..b.rows {
            let p = profit.and_then(|c| c.is_valid(i).then(|| c.value(i)));
            let r = ratio.and_then(|c| c.is_valid(i).then(|| c.value(i)));
            let pair = pair.filter(|c| c.is_valid(i)).map_or("unknown", |c| c.value(i));
            let exit = exit.filter(|c| c.is_valid(i)).map_or("unknown", |c| c.value(i));
            self.count_trade(pair, p, r, exit);
            let o = open.and_then(|c| c.is_valid(i).then(|| c.value(i)));
            let c = close.and_then(|c| c.is_valid(i).then(|| c.value(i)));
            if let (Some(c), Some(p)) = (c, p.filter(|p| p.is_finite())) {
                self.closes.push((c, p));
            }
            if let (Some(o), Some(c)) = (o, c) {
                self.spans.push((o, c));
            }
            let m = minutes.and_then(|m| m.is_valid(i).then(|| m.value(i)));
            let m = m.or_else(|| Some((c? - o?) as f64 / 60_000.0));
            if let Some(m) = m.filter(|m| m.is_finite()) {
                self.durations.push(m);
            }
        }
    }
}

impl Trades {
    pub fn finish(mut self, run: usize, ctx: &Ctx, out: &mut RunReport) {
        if self.count == 0 {
            return;
        }
        self.closes.sort_by_key(|c| c.0); // stable: ties keep `_seq` order
        let equity = equity_by_close_time(&self.closes);
        let dd = max_drawdown(&equity);
        let mut totals = self.totals();
        if let Some(d) = &dd {
            totals.max_drawdown_abs = d.abs;
            totals.drawdown_start_ms = Some(equity[d.start].0);
            totals.drawdown_end_ms = Some(equity[d.end].0);
        }
        totals.first_close_ms = self.closes.first().map(|c| c.0);
        totals.last_close_ms = self.closes.last().map(|c| c.0);
        let (open_time, max_open) = open_at_once(&mut self.spans);
        totals.max_open = max_open;
        let mut charts = vec![self.equity_chart(run, ctx, &equity, dd.as_ref())];
        charts.push(self.underwater_chart(run, ctx, &equity));
        charts.extend(group_charts(run, &totals));
        charts.push(self.win_rate_chart(run, ctx));
        charts.push(duration_chart(run, &mut self.durations));
        charts.push(open_chart(run, &open_time));
        out.charts.extend(charts.into_iter().filter(Chart::has_data));
        for t in [totals.first_close_ms, totals.last_close_ms].into_iter().flatten() {
            out.totals.data_span.add(t);
        }
        out.totals.trades = Some(totals);
    }

    fn totals(&self) -> TradeTotals {
        let decided = self.wins + self.losses + self.draws;
        let group = |n: u64, s: Sum, wins: u64| GroupTotal {
            count: n,
            profit_abs: s.value(),
            wins,
        };
        TradeTotals {
            count: self.count,
            wins: self.wins,
            losses: self.losses,
            draws: self.draws,
            win_rate: if decided > 0 {
                self.wins as f64 / decided as f64
            } else {
                0.0
            },
            profit_abs_total: self.profit.value(),
            profit_ratio_mean: if self.ratio_n > 0 {
                self.ratio.value() / self.ratio_n as f64
            } else {
                0.0
            },
            by_pair: self
                .by_pair
                .iter()
                .map(|(k, (n, s, w))| (k.clone(), group(*n, *s, *w)))
                .collect(),
            by_exit_reason: self
                .by_exit
                .iter()
                .map(|(k, (n, s))| (k.clone(), group(*n, *s, 0)))
                .collect(),
            ..TradeTotals::default()
        }
    }

    fn equity_chart(&self, run: usize, ctx: &Ctx, equity: &[(i64, f64)], dd: Option<&Drawdown>) -> Chart {
        let points: Vec<(f64, f64)> = equity.iter().map(|(t, e)| (secs(*t), *e)).collect();
        let curve = downsample(points.into_iter(), ctx.points);
        let title = "Equity: cumulative profit by close date";
        let mut chart = Chart::new(
            PANEL,
            "equity",
            title,
            Kind::Line,
            Axis::time("close date (UTC)"),
            Axis::new("cumulative profit_abs", Fmt::Num),
        )
        .note("shaded: the max-drawdown window, from the high to the lowest point after it")
        .with(Series::xy(run, "", &curve));
        if let Some(d) = dd {
            chart.marks.push(Mark {
                run,
                from: secs(equity[d.start].0),
                to: secs(equity[d.end].0),
                label: "max drawdown".into(),
            });
        }
        chart
    }

    fn underwater_chart(&self, run: usize, ctx: &Ctx, equity: &[(i64, f64)]) -> Chart {
        let mut high = f64::NEG_INFINITY;
        let under: Vec<(f64, f64)> = equity
            .iter()
            .map(|&(t, e)| {
                high = high.max(e);
                (secs(t), e - high)
            })
            .collect();
        let under = downsample(under.into_iter(), ctx.points);
        let title = "Underwater: distance below the running high";
        Chart::new(
            PANEL,
            "underwater",
            title,
            Kind::Line,
            Axis::time("close date (UTC)"),
            Axis::new("drawdown (profit_abs)", Fmt::Num),
        )
        .with(Series::xy(run, "", &under))
    }

    fn win_rate_chart(&self, run: usize, ctx: &Ctx) -> Chart {
        let window = (self.closes.len() / 20).clamp(10, 200);
        let mut rolling = Rolling::new(window);
        let rate: Vec<(f64, f64)> = self
            .closes
            .iter()
            .map(|(t, p)| (secs(*t), rolling.push(f64::from(u8::from(*p > 0.0)))))
            .collect();
        let rate = downsample(rate.into_iter(), ctx.points);
        let title = format!("Win rate, rolling over {window} trades");
        Chart::new(
            PANEL,
            "win_rate",
            title,
            Kind::Line,
            Axis::time("close date (UTC)"),
            Axis::new("win rate", Fmt::Pct),
        )
        .with(Series::xy(run, "", &rate))
    }
}

fn open_chart(run: usize, time: &[f64]) -> Chart {
    let total: f64 = time.iter().sum();
    let s = Series {
        run,
        cats: (0..time.len()).map(|k| format!("{k} open")).collect(),
        y: time.iter().map(|t| t / total).collect(),
        text: time.iter().map(|t| duration_ms(*t)).collect(),
        ..Series::default()
    };
    let title = "Trades open at once: share of the time";
    let chart = Chart::new(
        PANEL,
        "open",
        title,
        Kind::Hbars,
        Axis::new("open trades", Fmt::Int),
        Axis::new("share of time", Fmt::Pct),
    );
    if total > 0.0 {
        chart.with(s)
    } else {
        chart
    }
}

/// Profit per pair and per exit reason, largest first.
fn group_charts(run: usize, t: &TradeTotals) -> Vec<Chart> {
    let bars = |groups: &BTreeMap<String, GroupTotal>, with_rate: bool| {
        let mut g: Vec<(&String, &GroupTotal)> = groups.iter().collect();
        g.sort_by(|a, b| b.1.profit_abs.total_cmp(&a.1.profit_abs));
        let th = crate::cmd::thousands;
        Series {
            run,
            cats: g.iter().map(|(k, _)| (*k).clone()).collect(),
            y: g.iter().map(|(_, v)| v.profit_abs).collect(),
            text: g
                .iter()
                .map(|(_, v)| match with_rate {
                    true => format!(
                        "{} trades · {:.0}% won",
                        th(v.count),
                        100.0 * v.wins as f64 / v.count.max(1) as f64
                    ),
                    false => format!("{} trade{}", th(v.count), if v.count == 1 { "" } else { "s" }),
                })
                .collect(),
            ..Series::default()
        }
    };
    let y = Axis::new("profit_abs", Fmt::Num);
    vec![
        Chart::new(
            PANEL,
            "by_pair",
            "Profit per pair",
            Kind::Hbars,
            Axis::new("pair", Fmt::Num),
            y.clone(),
        )
        .with(bars(&t.by_pair, true)),
        Chart::new(
            PANEL,
            "by_exit",
            "Profit per exit reason",
            Kind::Hbars,
            Axis::new("exit reason", Fmt::Num),
            y,
        )
        .with(bars(&t.by_exit_reason, false)),
    ]
}

/// A histogram of trade durations up to their 95th percentile, in about 30
/// bins (a power-of-two width, so several runs' bins line up); longer
/// trades count in the last bin, as the note says.
fn duration_chart(run: usize, durations: &mut [f64]) -> Chart {
    let chart = Chart::new(
        PANEL,
        "duration",
        "Trade duration",
        Kind::Hist,
        Axis::new("duration (minutes)", Fmt::Num),
        Axis::new("trades", Fmt::Int),
    );
    if durations.is_empty() {
        return chart;
    }
    let at = (durations.len() - 1) * 95 / 100;
    let (_, &mut p95, _) = durations.select_nth_unstable_by(at, f64::total_cmp);
    let lo = durations.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
    // Candle-based durations are multiples of the timeframe (5 min): bins a
    // power-of-two multiple of it have no empty gaps between them.
    let (unit, finest) = timeframe(durations).map_or((1.0, i32::MIN), |u| (u, 0));
    let w = unit * 2f64.powi((((p95 - lo).max(1e-9) / 30.0 / unit).log2().ceil() as i32).max(finest));
    let first = (lo / w).floor();
    let n = ((p95 / w).floor() - first) as usize + 1; // through p95's bin
    let mut counts = vec![0u64; n];
    let mut longer = 0u64;
    for &d in durations.iter() {
        let k = ((d / w).floor() - first).max(0.0) as usize;
        longer += u64::from(k >= n);
        counts[k.min(n - 1)] += 1;
    }
    let x: Vec<f64> = (0..n).map(|k| (first + k as f64) * w).collect();
    let y: Vec<f64> = counts.iter().map(|c| *c as f64).collect();
    let chart = match longer {
        0 => chart,
        n => chart.note(format!(
            "the last bin also holds the {n} longest trades (up to {} min)",
            num(durations.iter().copied().fold(0.0, f64::max))
        )),
    };
    chart.with(Series {
        run,
        x,
        y,
        w: Some(w),
        ..Series::default()
    })
}
