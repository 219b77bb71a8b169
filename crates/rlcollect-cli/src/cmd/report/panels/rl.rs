//! The RL training panel: reward per episode with a rolling mean, episode
//! length and profit (from `rl_episodes`); the action mix over training and
//! the position over time (from `model_decisions`).
//!
//! Episodes are drawn in the order they ended (x = 1, 2, ...), which is the
//! shared axis when several runs are overlaid; episode numbers repeat when
//! several pairs or environments train at once.

use super::{Ctx, Fold, RunReport, Span};
use crate::cmd::report::buckets::{Buckets, MeanAcc};
use crate::cmd::report::chart::{secs, Axis, Chart, Fmt, Kind, Role, Series};
use crate::cmd::report::lttb::Lttb;
use crate::cmd::report::source::{Batch, Want};
use crate::cmd::report::stats::{Rolling, Sum, OTHER};
use arrow_array::Array;
use serde::Serialize;
use std::collections::BTreeMap;

const PANEL: &str = "rl";

/// Episode totals; the fields mirror `summary.json`'s `rl_episodes`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EpisodeTotals {
    pub count: u64,
    pub total_reward_mean: f64,
    pub total_reward_min: Option<f64>,
    pub total_reward_max: Option<f64>,
    pub best_episode: Option<i64>,
}

/// The fold over `rl_episodes`.
pub struct Episodes {
    count: u64,
    reward_sum: Sum,
    min: Option<f64>,
    max: Option<f64>,
    best: Option<i64>,
    span: Span,
    rolling: Rolling,
    window: usize,
    reward: Lttb,
    mean: Lttb,
    steps: Lttb,
    profit: Lttb,
}

const EPISODE: usize = 0;
const REWARD: usize = 1;
const PROFIT: usize = 2;
const STEPS: usize = 3;
const END: usize = 4;

impl Episodes {
    pub fn new(rows: u64, ctx: &Ctx) -> Episodes {
        let window = (rows as usize / 20).clamp(5, 100);
        Episodes {
            count: 0,
            reward_sum: Sum::default(),
            min: None,
            max: None,
            best: None,
            span: Span::default(),
            rolling: Rolling::new(window),
            window,
            reward: Lttb::new(rows, ctx.points),
            mean: Lttb::new(rows, ctx.points),
            steps: Lttb::new(rows, ctx.points),
            profit: Lttb::new(rows, ctx.points),
        }
    }

    /// Counts one episode's reward as the collector's summary does.
    fn count_reward(&mut self, episode: Option<i64>, r: f64) {
        self.reward_sum.add(r);
        self.min = Some(self.min.map_or(r, |m| m.min(r)));
        if self.max.is_none_or(|m| r > m) {
            self.max = Some(r);
            self.best = episode;
        }
    }

    pub fn finish(self, run: usize, out: &mut RunReport) {
        if self.count == 0 {
            return;
        }
        let x = Axis::new("episode # (in the order they ended)", Fmt::Int);
        let reward = Chart::new(
            PANEL,
            "reward",
            "Reward per episode",
            Kind::Line,
            x.clone(),
            Axis::new("total_reward", Fmt::Num),
        )
        .note(format!(
            "faint: each episode; bold: rolling mean over {} episodes",
            self.window
        ))
        .with(Series::xy(run, "reward", &self.reward.finish()).role(Role::Faint))
        .with(Series::xy(run, "rolling mean", &self.mean.finish()).role(Role::Mean));
        let steps = Chart::new(
            PANEL,
            "steps",
            "Episode length",
            Kind::Line,
            x.clone(),
            Axis::new("steps", Fmt::Int),
        )
        .with(Series::xy(run, "", &self.steps.finish()));
        let profit = Chart::new(
            PANEL,
            "profit",
            "Profit per episode",
            Kind::Line,
            x,
            Axis::new("total_profit", Fmt::Num),
        )
        .with(Series::xy(run, "", &self.profit.finish()));
        out.charts
            .extend([reward, steps, profit].into_iter().filter(Chart::has_data));
        out.totals.data_span.merge(self.span);
        out.totals.rl_episodes = Some(EpisodeTotals {
            count: self.count,
            total_reward_mean: self.reward_sum.value() / self.count.max(1) as f64,
            total_reward_min: self.min,
            total_reward_max: self.max,
            best_episode: self.best,
        });
    }
}

impl Fold for Episodes {
    fn columns(&self) -> Vec<(String, Want)> {
        [
            ("episode", Want::I64),
            ("total_reward", Want::F64),
            ("total_profit", Want::F64),
            ("steps", Want::F64),
            ("end_ts", Want::I64),
        ]
        .map(|(n, w)| (n.to_owned(), w))
        .to_vec()
    }

    fn add(&mut self, b: &Batch) {
        let value = |c: Option<&arrow_array::Float64Array>, i: usize| c.filter(|c| c.is_valid(i)).map(|c| c.value(i));
        let (episode, end) = (b.i64(EPISODE), b.i64(END));
        for i in 0..b.rows {
            self.count += 1;
            let x = self.count as f64;
            let ep = episode.filter(|c| c.is_valid(i)).map(|c| c.value(i));
            if let Some(r) = value(b.f64(REWARD), i).filter(|r| !r.is_nan()) {
                self.count_reward(ep, r);
                if r.is_finite() {
                    self.reward.push(x, r);
                    self.mean.push(x, self.rolling.push(r));
                }
            }
            if let Some(p) = value(b.f64(PROFIT), i).filter(|p| p.is_finite()) {
                self.profit.push(x, p);
            }
            if let Some(s) = value(b.f64(STEPS), i).filter(|s| s.is_finite()) {
                self.steps.push(x, s);
            }
            if let Some(t) = end.filter(|c| c.is_valid(i)).map(|c| c.value(i)) {
                self.span.add(t);
            }
        }
    }
}

/// Decision totals; the fields mirror `summary.json`'s `model_decisions`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecisionTotals {
    pub count: u64,
    pub by_action: BTreeMap<String, u64>,
    /// The name of each action (from `action_name`), where one was given.
    pub action_names: BTreeMap<String, String>,
}

/// Distinct actions drawn in the action mix; more share one "other" band.
const MAX_ACTIONS: usize = 12;

/// The fold over `model_decisions`.
pub struct Decisions {
    count: u64,
    /// Exact count per action value (`None`: no action), in order of first appearance.
    actions: Vec<(Option<i64>, u64)>,
    names: BTreeMap<Option<i64>, String>,
    last: usize,
    with_episode: u64,
    by_episode: Buckets<Vec<u64>>,
    by_time: Buckets<Vec<u64>>,
    position: Buckets<MeanAcc>,
    span: Span,
}

const TS: usize = 0;
const D_EPISODE: usize = 1;
const ACTION: usize = 2;
const NAME: usize = 3;
const POSITION: usize = 4;

impl Decisions {
    pub fn new() -> Decisions {
        Decisions {
            count: 0,
            actions: Vec::new(),
            names: BTreeMap::new(),
            last: 0,
            with_episode: 0,
            by_episode: Buckets::new(0, 300),
            by_time: Buckets::new(10, 300),
            position: Buckets::new(10, 1000),
            span: Span::default(),
        }
    }

    /// The index of `action` among the actions seen (found fast when it
    /// repeats), counting it.
    fn count_action(&mut self, action: Option<i64>) -> usize {
        if self.actions.get(self.last).is_none_or(|a| a.0 != action) {
            self.last = match self.actions.iter().position(|a| a.0 == action) {
                Some(i) => i,
                None => {
                    self.actions.push((action, 0));
                    self.actions.len() - 1
                }
            };
        }
        self.actions[self.last].1 += 1;
        self.last
    }

    fn action_label(&self, a: Option<i64>) -> String {
        let key = a.map_or_else(|| "null".to_owned(), |a| a.to_string());
        match self.names.get(&a) {
            Some(name) => format!("{key} {name}"),
            None => key,
        }
    }
}

impl Fold for Decisions {
    fn columns(&self) -> Vec<(String, Want)> {
        [
            ("ts", Want::I64),
            ("episode", Want::I64),
            ("action", Want::I64),
            ("action_name", Want::Str),
            ("position", Want::F64),
        ]
        .map(|(n, w)| (n.to_owned(), w))
        .to_vec()
    }

    fn add(&mut self, b: &Batch) {
        let (ts, episode, action, name, position) =
            (b.i64(TS), b.i64(D_EPISODE), b.i64(ACTION), b.str(NAME), b.f64(POSITION));
        for i in 0..b.rows {
            self.count += 1;
            let a = action.filter(|c| c.is_valid(i)).map(|c| c.value(i));
            let slot = self.count_action(a).min(MAX_ACTIONS);
            if let Some(n) = name.filter(|c| c.is_valid(i)) {
                // Allocates once per action, not per row.
                if let std::collections::btree_map::Entry::Vacant(e) = self.names.entry(a) {
                    e.insert(n.value(i).to_owned());
                }
            }
            let bump = |cell: Option<&mut Vec<u64>>| {
                if let Some(cell) = cell {
                    if cell.len() <= slot {
                        cell.resize(slot + 1, 0);
                    }
                    cell[slot] += 1;
                }
            };
            if let Some(e) = episode.filter(|c| c.is_valid(i)).map(|c| c.value(i)) {
                self.with_episode += 1;
                bump(self.by_episode.at(e as f64));
            }
            let t = ts.filter(|c| c.is_valid(i)).map(|c| c.value(i));
            if let Some(t) = t {
                self.span.add(t);
                bump(self.by_time.at(t as f64));
                let p = position.filter(|c| c.is_valid(i)).map(|c| c.value(i));
                if let (Some(cell), Some(p)) = (self.position.at(t as f64), p.filter(|p| p.is_finite())) {
                    cell.add(p);
                }
            }
        }
    }
}

impl Decisions {
    pub fn finish(self, run: usize, _ctx: &Ctx, out: &mut RunReport) {
        if self.count == 0 {
            return;
        }
        let mix = self.mix_chart(run);
        let pos: Vec<(f64, f64)> = self
            .position
            .cells()
            .filter_map(|(t, m)| Some((secs(t as i64), m.mean()?)))
            .collect();
        let position = Chart::new(
            PANEL,
            "position",
            "Position over time (mean per time bucket)",
            Kind::Line,
            Axis::time("time (UTC)"),
            Axis::new("position", Fmt::Num),
        )
        .with(Series::xy(run, "", &pos));
        out.charts.extend([mix, position].into_iter().filter(Chart::has_data));
        out.totals.data_span.merge(self.span);
        out.totals.model_decisions = Some(self.totals());
    }

    /// Stacked shares of each action, per episode when most decisions name
    /// one, else per time bucket; bands bottom-up by action number, actions
    /// beyond MAX_ACTIONS sharing "other".
    fn mix_chart(&self, run: usize) -> Chart {
        let mut slots: Vec<usize> = (0..self.actions.len().min(MAX_ACTIONS)).collect();
        slots.sort_by_key(|&k| (self.actions[k].0.is_none(), self.actions[k].0));
        let mut bands: Vec<(usize, String)> = slots
            .iter()
            .map(|&k| (k, self.action_label(self.actions[k].0)))
            .collect();
        if self.actions.len() > MAX_ACTIONS {
            bands.push((MAX_ACTIONS, OTHER.to_owned()));
        }
        let per_episode = self.with_episode * 2 > self.count;
        let (buckets, x, scale) = match per_episode {
            true => (&self.by_episode, Axis::new("episode", Fmt::Int), 1.0),
            false => (&self.by_time, Axis::time("time (UTC)"), 1e-3),
        };
        let y = Axis::new("share of decisions", Fmt::Pct);
        let mut mix = Chart::new(PANEL, "actions", "Action mix over training", Kind::Stacked, x, y).per_run();
        for (slot, band) in bands {
            let points: Vec<(f64, f64)> = buckets
                .cells()
                .map(|(x, c)| (x, c.iter().sum::<u64>(), c.get(slot).copied().unwrap_or(0)))
                .filter(|(_, all, _)| *all > 0)
                .map(|(x, all, n)| (x * scale, n as f64 / all as f64))
                .collect();
            mix = mix.with(Series::xy(run, band, &points));
        }
        mix
    }

    fn totals(&self) -> DecisionTotals {
        let key = |a: Option<i64>| a.map_or_else(|| "null".to_owned(), |a| a.to_string());
        DecisionTotals {
            count: self.count,
            by_action: self.actions.iter().map(|(a, n)| (key(*a), *n)).collect(),
            action_names: self.names.iter().map(|(a, n)| (key(*a), n.clone())).collect(),
        }
    }
}
