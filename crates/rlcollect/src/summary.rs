//! Live aggregates kept by the worker as rows arrive (no file is re-read), and
//! `summary.json` (SPEC §3).

use crate::atomic_file::publish_bytes;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::manifest::RunStatus;
use crate::record::{CoreVal, ModelDecision, ParsedLine, Record, RlEpisode, Trade};
use crate::run_dir::RunDir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sum that stays exact to the last bits over many small floats
/// (Neumaier's compensated summation), so per-pair profits match the engine's.
/// Public so that readers of a run (the report) add values the same way and
/// print the same totals as `summary.json`, to the last bit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    /// Adds `x`.
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// The sum so far.
    pub fn value(self) -> f64 {
        self.sum + self.compensation
    }

    /// Adds another compensated sum (of later values) to this one.
    pub fn merge(&mut self, other: CompensatedSum) {
        self.add(other.sum);
        self.add(other.compensation);
    }
}

type Sum = CompensatedSum;

/// Counts one more `key` in a map, allocating the key only the first time.
fn count_map(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

fn count_in(map: &mut BTreeMap<String, Group>, key: &str) {
    match map.get_mut(key) {
        Some(g) => g.count += 1,
        None => {
            map.insert(
                key.to_owned(),
                Group {
                    count: 1,
                    profit_abs: 0.0,
                },
            );
        }
    }
}

fn add_to(map: &mut BTreeMap<String, Sum>, key: &str, x: f64) {
    match map.get_mut(key) {
        Some(s) => s.add(x),
        None => map.entry(key.to_owned()).or_default().add(x),
    }
}

/// Count and profit of a group of trades.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Trades in the group.
    pub count: u64,
    /// Sum of `profit_abs`.
    pub profit_abs: f64,
}

/// Trade statistics. Wins are `profit_abs > 0`, losses `< 0`, draws `= 0`;
/// trades without a profit count in `count` only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TradeStats {
    /// Trades seen.
    pub count: u64,
    /// Trades with `profit_abs > 0`.
    pub wins: u64,
    /// Trades with `profit_abs < 0`.
    pub losses: u64,
    /// Trades with `profit_abs == 0`.
    pub draws: u64,
    /// wins / (wins + losses + draws), 0 without trades.
    pub win_rate: f64,
    /// Sum of `profit_abs`.
    pub profit_abs_total: f64,
    /// Mean of `profit_ratio` over trades that have one.
    pub profit_ratio_mean: f64,
    /// Per pair.
    pub by_pair: BTreeMap<String, Group>,
    /// Per exit reason.
    pub by_exit_reason: BTreeMap<String, Group>,
}

/// RL episode statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    /// Episodes seen.
    pub count: u64,
    /// Mean of `total_reward`.
    pub total_reward_mean: f64,
    /// Smallest `total_reward`.
    pub total_reward_min: Option<f64>,
    /// Largest `total_reward`.
    pub total_reward_max: Option<f64>,
    /// Episode with the largest `total_reward`.
    pub best_episode: Option<i64>,
}

/// Model decision statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionStats {
    /// Decisions seen.
    pub count: u64,
    /// Decisions per action index (`null` action counted as `"null"`).
    pub by_action: BTreeMap<String, u64>,
}

/// The summary of a run: what `close` returns and `summary.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// Run state at the time of writing.
    pub status: RunStatus,
    /// Rows per stream.
    pub rows: BTreeMap<String, u64>,
    /// Candle records seen.
    pub candles: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// Data records these statistics cover (every `_seq` below this).
    #[serde(default)]
    pub records: u64,
    /// Trade statistics.
    pub trades: TradeStats,
    /// RL episode statistics.
    pub rl_episodes: EpisodeStats,
    /// Model decision statistics.
    pub model_decisions: DecisionStats,
}

impl RunSummary {
    /// Replaces the run's `summary.json` atomically (fsynced).
    pub(crate) fn store(&self, fs: &dyn FileSystem, run: &RunDir) -> Result<(), Error> {
        publish_bytes(fs, &run.summary_path(), &self.to_json()).map(|_| ())
    }

    /// The contents of `summary.json`.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a summary serializes")
    }
}

/// The running sums behind a [`RunSummary`].
#[derive(Debug, Default)]
pub(crate) struct Aggregates {
    trades: TradeStats,
    profit_total: Sum,
    by_pair: BTreeMap<String, Sum>,
    by_exit: BTreeMap<String, Sum>,
    ratio_sum: Sum,
    ratio_count: u64,
    episodes: EpisodeStats,
    reward_sum: Sum,
    decisions: DecisionStats,
}

impl Aggregates {
    /// Restores the sums from a previous summary of the same run, so a resumed
    /// run keeps counting where it stopped.
    pub(crate) fn resume(prev: &RunSummary) -> Self {
        let t = &prev.trades;
        let mut a = Aggregates {
            trades: t.clone(),
            episodes: prev.rl_episodes.clone(),
            decisions: prev.model_decisions.clone(),
            ..Default::default()
        };
        a.profit_total.add(t.profit_abs_total);
        for (k, g) in &t.by_pair {
            a.by_pair.entry(k.clone()).or_default().add(g.profit_abs);
        }
        for (k, g) in &t.by_exit_reason {
            a.by_exit.entry(k.clone()).or_default().add(g.profit_abs);
        }
        a.ratio_count = t.count;
        a.ratio_sum.add(t.profit_ratio_mean * t.count as f64);
        a.reward_sum
            .add(prev.rl_episodes.total_reward_mean * prev.rl_episodes.count as f64);
        a
    }

    /// Counts one record in the statistics it feeds (trades, episodes and
    /// decisions; other records feed none). Used alike for live rows and for
    /// rows replayed from the log.
    pub(crate) fn account(&mut self, record: &Record) {
        match record {
            Record::Trade(t) => self.add_trade(&t.pair, t.profit_abs, t.profit_ratio, t.exit_reason.as_deref()),
            Record::RlEpisode(e) => self.add_episode(e.episode, e.total_reward),
            Record::ModelDecision(d) => self.add_decision(d.action),
            _ => {}
        }
    }

    /// [`account`](Self::account) for a line decoded in place.
    pub(crate) fn account_parsed(&mut self, p: &ParsedLine<'_>) {
        let f64_of = |name| match p.core(name) {
            Some(CoreVal::F64(v)) => Some(*v),
            _ => None,
        };
        let str_of = |name| match p.core(name) {
            Some(CoreVal::Str(s)) => Some(s.as_ref()),
            _ => None,
        };
        let i64_of = |name| match p.core(name) {
            Some(CoreVal::I64(v)) => Some(*v),
            _ => None,
        };
        match p.stream() {
            Some(Trade::STREAM) => self.add_trade(
                str_of("pair").unwrap_or_default(),
                f64_of("profit_abs"),
                f64_of("profit_ratio"),
                str_of("exit_reason"),
            ),
            Some(RlEpisode::STREAM) => self.add_episode(i64_of("episode").unwrap_or_default(), f64_of("total_reward")),
            Some(ModelDecision::STREAM) => self.add_decision(i64_of("action")),
            _ => {}
        }
    }

    /// Adds the statistics of later rows, counted elsewhere (a producer
    /// counts its chunk's rows as it builds them).
    pub(crate) fn merge(&mut self, other: Aggregates) {
        let (t, o) = (&mut self.trades, &other.trades);
        t.count += o.count;
        t.wins += o.wins;
        t.losses += o.losses;
        t.draws += o.draws;
        for (k, g) in &o.by_pair {
            t.by_pair.entry(k.clone()).or_default().count += g.count;
        }
        for (k, g) in &o.by_exit_reason {
            t.by_exit_reason.entry(k.clone()).or_default().count += g.count;
        }
        self.profit_total.merge(other.profit_total);
        for (k, s) in other.by_pair {
            self.by_pair.entry(k).or_default().merge(s);
        }
        for (k, s) in other.by_exit {
            self.by_exit.entry(k).or_default().merge(s);
        }
        self.ratio_sum.merge(other.ratio_sum);
        self.ratio_count += other.ratio_count;
        self.merge_episodes(&other.episodes, other.reward_sum);
        self.decisions.count += other.decisions.count;
        for (k, n) in other.decisions.by_action {
            *self.decisions.by_action.entry(k).or_default() += n;
        }
    }

    fn merge_episodes(&mut self, o: &EpisodeStats, reward_sum: Sum) {
        let e = &mut self.episodes;
        e.count += o.count;
        self.reward_sum.merge(reward_sum);
        if let Some(min) = o.total_reward_min {
            e.total_reward_min = Some(e.total_reward_min.map_or(min, |m| m.min(min)));
        }
        // The first episode with the largest reward stays the best, as when
        // counted one by one.
        if let Some(max) = o.total_reward_max {
            if e.total_reward_max.is_none_or(|m| max > m) {
                e.total_reward_max = Some(max);
                e.best_episode = o.best_episode;
            }
        }
    }

    fn add_trade(&mut self, pair: &str, profit_abs: Option<f64>, profit_ratio: Option<f64>, exit_reason: Option<&str>) {
        let s = &mut self.trades;
        s.count += 1;
        let profit = profit_abs.filter(|p| !p.is_nan());
        if let Some(p) = profit {
            match p.partial_cmp(&0.0) {
                Some(std::cmp::Ordering::Greater) => s.wins += 1,
                Some(std::cmp::Ordering::Less) => s.losses += 1,
                _ => s.draws += 1,
            }
            self.profit_total.add(p);
        }
        let p = profit.unwrap_or(0.0);
        count_in(&mut s.by_pair, pair);
        add_to(&mut self.by_pair, pair, p);
        let reason = exit_reason.unwrap_or("unknown");
        count_in(&mut s.by_exit_reason, reason);
        add_to(&mut self.by_exit, reason, p);
        if let Some(r) = profit_ratio.filter(|r| !r.is_nan()) {
            self.ratio_sum.add(r);
            self.ratio_count += 1;
        }
    }

    fn add_episode(&mut self, episode: i64, total_reward: Option<f64>) {
        let s = &mut self.episodes;
        s.count += 1;
        if let Some(r) = total_reward.filter(|r| !r.is_nan()) {
            self.reward_sum.add(r);
            s.total_reward_min = Some(s.total_reward_min.map_or(r, |m| m.min(r)));
            if s.total_reward_max.is_none_or(|m| r > m) {
                s.total_reward_max = Some(r);
                s.best_episode = Some(episode);
            }
        }
    }

    fn add_decision(&mut self, action: Option<i64>) {
        self.decisions.count += 1;
        let mut buf = itoa::Buffer::new();
        let key: &str = match action {
            Some(a) => buf.format(a),
            None => "null",
        };
        count_map(&mut self.decisions.by_action, key);
    }

    pub(crate) fn summary(
        &self,
        run_id: &str,
        status: RunStatus,
        rows: BTreeMap<String, u64>,
        candles: u64,
        rejected: u64,
    ) -> RunSummary {
        let mut trades = self.trades.clone();
        let decided = trades.wins + trades.losses + trades.draws;
        trades.win_rate = if decided > 0 {
            trades.wins as f64 / decided as f64
        } else {
            0.0
        };
        trades.profit_abs_total = self.profit_total.value();
        trades.profit_ratio_mean = if self.ratio_count > 0 {
            self.ratio_sum.value() / self.ratio_count as f64
        } else {
            0.0
        };
        for (k, g) in trades.by_pair.iter_mut() {
            g.profit_abs = self.by_pair.get(k).copied().unwrap_or_default().value();
        }
        for (k, g) in trades.by_exit_reason.iter_mut() {
            g.profit_abs = self.by_exit.get(k).copied().unwrap_or_default().value();
        }
        let mut rl_episodes = self.episodes.clone();
        let rewarded = rl_episodes.count.max(1) as f64;
        rl_episodes.total_reward_mean = self.reward_sum.value() / rewarded;
        RunSummary {
            run_id: run_id.to_owned(),
            status,
            rows,
            candles,
            rejected,
            records: 0,
            trades,
            rl_episodes,
            model_decisions: self.decisions.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(pair: &str, profit: Option<f64>, reason: &str) -> Trade {
        Trade {
            pair: pair.into(),
            profit_abs: profit,
            profit_ratio: profit.map(|p| p / 10.0),
            exit_reason: Some(reason.into()),
            ..Trade::default()
        }
    }

    #[test]
    fn counts_wins_losses_draws_and_groups() {
        let mut a = Aggregates::default();
        a.account(&Record::Trade(trade("A", Some(1.0), "roi")));
        a.account(&Record::Trade(trade("A", Some(-0.5), "stop_loss")));
        a.account(&Record::Trade(trade("B", Some(0.0), "roi")));
        a.account(&Record::Trade(trade("B", None, "roi")));
        let s = a.summary("r", RunStatus::Complete, BTreeMap::new(), 0, 0);
        let t = &s.trades;
        assert_eq!((t.count, t.wins, t.losses, t.draws), (4, 1, 1, 1));
        assert!((t.win_rate - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(t.profit_abs_total, 0.5);
        assert_eq!(
            t.by_pair["A"],
            Group {
                count: 2,
                profit_abs: 0.5
            }
        );
        assert_eq!(t.by_exit_reason["roi"].count, 3);
        assert!((t.profit_ratio_mean - 0.05 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn episodes_track_best() {
        let mut a = Aggregates::default();
        for (ep, r) in [(1, 2.0), (2, 9.0), (3, -1.0)] {
            a.account(&Record::RlEpisode(RlEpisode {
                episode: ep,
                total_reward: Some(r),
                ..RlEpisode::default()
            }));
        }
        let e = a.summary("r", RunStatus::Complete, BTreeMap::new(), 0, 0).rl_episodes;
        assert_eq!(
            (e.count, e.best_episode, e.total_reward_min, e.total_reward_max),
            (3, Some(2), Some(-1.0), Some(9.0))
        );
        assert!((e.total_reward_mean - 10.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn merged_partial_counts_equal_counting_one_by_one() {
        let trades = [
            ("A", Some(1.0), "roi"),
            ("B", Some(-0.5), "stop_loss"),
            ("A", Some(0.0), "roi"),
            ("B", None, "roi"),
        ];
        let (mut whole, mut first, mut second) = (Aggregates::default(), Aggregates::default(), Aggregates::default());
        for (i, (pair, profit, reason)) in trades.iter().enumerate() {
            let rec = Record::Trade(trade(pair, *profit, reason));
            whole.account(&rec);
            if i < 2 {
                first.account(&rec)
            } else {
                second.account(&rec)
            }
        }
        for (ep, r) in [(1, 2.0), (2, 9.0), (3, 9.0), (4, -1.0)] {
            let rec = Record::RlEpisode(RlEpisode {
                episode: ep,
                total_reward: Some(r),
                ..RlEpisode::default()
            });
            whole.account(&rec);
            if ep < 3 {
                first.account(&rec)
            } else {
                second.account(&rec)
            }
        }
        first.merge(second);
        let summary = |a: &Aggregates| a.summary("r", RunStatus::Complete, BTreeMap::new(), 0, 0);
        assert_eq!(summary(&first), summary(&whole));
    }

    #[test]
    fn compensated_sum_is_exact_where_naive_is_not() {
        let mut s = Sum::default();
        for x in [1e16, 1.0, -1e16] {
            s.add(x);
        }
        assert_eq!(s.value(), 1.0);
    }
}
