//! `rlcollect demo`: a simulated RL backtest engine that links the collector
//! in-process (no pipe). Three engine threads, one per pair, each drive a
//! random-walk market and a small epsilon-greedy Q-learning agent, and send
//! every step through their own `Handle` clone.

use anyhow::{Context, Result};
use rlcollect::{
    Collector, Handle, ModelDecision, Prediction, Record, RlEpisode, SignalPropagation, Timestamp, Trade, Value,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Options of `rlcollect demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Output root.
    #[arg(long, default_value = "analysis_data")]
    out: PathBuf,
    /// Candles per pair (three pairs).
    #[arg(long, default_value_t = 20_000)]
    candles: u64,
    /// Checkpoint every N candle records.
    #[arg(long, default_value_t = 5_000)]
    every_candles: u64,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

const PAIRS: [&str; 3] = ["BTC/USDT", "ETH/USDT", "SOL/USDT"];
const ACTIONS: [&str; 3] = ["Neutral", "Long_enter", "Long_exit"];
const EPISODE_STEPS: u64 = 1_000;
const CANDLE_MS: i64 = 5 * 60 * 1000;
const FEE: f64 = 0.001;
const STAKE: f64 = 100.0;

pub fn demo(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let run_id = format!("demo-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let collector = Collector::builder(&args.out)
        .run_id(run_id)
        .every_candles(args.every_candles)
        .every(Duration::from_secs(5))
        .source("demo-engine")
        .build()
        .context("cannot start the demo run")?;
    let run_dir = collector.run_dir().to_owned();
    let engines: Vec<_> = PAIRS
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let handle = collector.handle();
            let (candles, seed) = (args.candles, args.seed.wrapping_add(i as u64 * 7919));
            std::thread::spawn(move || Engine::new(pair, seed, handle).run(candles))
        })
        .collect();
    for e in engines {
        e.join().map_err(|_| anyhow::anyhow!("an engine thread panicked"))??;
    }
    let checkpoints = collector.stats().checkpoints;
    let summary = collector.close().context("final flush")?;
    let rows: u64 = summary.rows.values().sum();
    println!(
        "rlcollect demo: {} candles, {} rows in {:.2} s, {} checkpoints during the run",
        super::thousands(summary.candles),
        super::thousands(rows),
        started.elapsed().as_secs_f64(),
        checkpoints
    );
    println!("files: {}/  (also {}/latest)\n", run_dir.display(), args.out.display());
    print!("{}", super::summary::render(&summary));
    let glob = run_dir.join("model_decisions").join("*.parquet");
    println!("\nRead it:");
    println!(
        "  python -c \"import polars as pl; print(pl.read_parquet('{}'))\"",
        glob.display()
    );
    println!(
        "  duckdb -c \"SELECT action_name, count(*), avg(reward) FROM read_parquet('{}', union_by_name=true) GROUP BY 1\"",
        glob.display()
    );
    println!("  rlcollect status {}", run_dir.display());
    Ok(ExitCode::SUCCESS)
}

/// One pair's market and agent.
struct Engine {
    pair: &'static str,
    rng: fastrand::Rng,
    handle: Handle,
    /// Q-values: state (3 trend buckets × in/out of position) × 3 actions.
    q: [[f64; 3]; 6],
    price: f64,
    last_returns: [f64; 3],
    entry: Option<(Timestamp, f64, f64, f64)>, // time, price, min, max
    trade_id: i64,
}

impl Engine {
    fn new(pair: &'static str, seed: u64, handle: Handle) -> Self {
        Engine {
            pair,
            rng: fastrand::Rng::with_seed(seed),
            handle,
            q: [[0.0; 3]; 6],
            price: 100.0 * (1.0 + seed as f64 % 7.0),
            last_returns: [0.0; 3],
            entry: None,
            trade_id: 0,
        }
    }

    fn send(&self, r: Record) -> Result<()> {
        self.handle.send(r).map_err(|_| anyhow::anyhow!("collector stopped"))
    }

    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.rng.f64()).sum::<f64>() - 6.0
    }

    fn state(&self) -> usize {
        let trend: f64 = self.last_returns.iter().sum();
        let bucket = if trend > 0.002 {
            2
        } else if trend < -0.002 {
            0
        } else {
            1
        };
        bucket * 2 + usize::from(self.entry.is_some())
    }

    fn run(mut self, candles: u64) -> Result<()> {
        let t0 = 1_704_067_200_000i64; // 2024-01-01
        let (mut episode, mut ep_reward, mut ep_profit, mut ep_trades, mut ep_start) = (1i64, 0.0, 0.0, 0i64, t0);
        let (mut total_reward, mut total_profit) = (0.0, 0.0);
        for step in 0..candles {
            let ts = Timestamp(t0 + step as i64 * CANDLE_MS);
            let drift = if (step / 2000) % 2 == 0 { 0.0002 } else { -0.0002 };
            let ret = drift + 0.004 * self.normal();
            self.price *= ret.exp();
            self.last_returns.rotate_left(1);
            self.last_returns[2] = ret;
            self.send(Record::Candle(rlcollect::Candle {
                ts: Some(ts),
                pair: Some(self.pair.into()),
                close: Some(self.price),
                ..Default::default()
            }))?;

            let s = self.state();
            let epsilon = 0.1;
            let action = if self.rng.f64() < epsilon {
                self.rng.usize(0..3)
            } else {
                (0..3)
                    .max_by(|&a, &b| self.q[s][a].total_cmp(&self.q[s][b]))
                    .unwrap_or(0)
            };
            let spread = self.q[s][1] - self.q[s][2];
            let confidence = 1.0 / (1.0 + (-spread * 100.0).exp());
            self.send(Record::Prediction(Prediction {
                ts,
                pair: self.pair.into(),
                model: Some("q-table".into()),
                prediction: Some(spread),
                label: Some(if spread > 0.0 { "up" } else { "down" }.into()),
                confidence: Some(confidence),
                do_predict: Some(1),
                ..Default::default()
            }))?;

            let mut reward = if self.entry.is_some() { ret } else { 0.0 };
            match (action, self.entry) {
                (1, None) => {
                    reward -= FEE;
                    self.entry = Some((ts, self.price, self.price, self.price));
                    self.signal(ts, "model", "enter_long", spread, true, None)?;
                    let volatile = ret.abs() > 0.01;
                    self.signal(
                        ts,
                        "risk",
                        "enter_long",
                        ret.abs(),
                        !volatile,
                        volatile.then_some("volatility"),
                    )?;
                }
                (2, Some((open_ts, open, lo, hi))) => {
                    reward -= FEE;
                    let profit_ratio = self.price / open - 1.0 - 2.0 * FEE;
                    let exit_reason = if profit_ratio < -0.02 {
                        "stop_loss"
                    } else {
                        "agent_exit"
                    };
                    self.signal(ts, "model", "exit_long", spread, true, None)?;
                    self.trade_id += 1;
                    ep_trades += 1;
                    ep_profit += profit_ratio;
                    total_profit += profit_ratio;
                    self.send(Record::Trade(Trade {
                        pair: self.pair.into(),
                        trade_id: Some(self.trade_id),
                        is_short: Some(false),
                        open_date: Some(open_ts),
                        close_date: Some(ts),
                        open_rate: Some(open),
                        close_rate: Some(self.price),
                        amount: Some(STAKE / open),
                        stake_amount: Some(STAKE),
                        leverage: Some(1.0),
                        fee_open: Some(FEE),
                        fee_close: Some(FEE),
                        profit_ratio: Some(profit_ratio),
                        profit_abs: Some(profit_ratio * STAKE),
                        exit_reason: Some(exit_reason.into()),
                        enter_tag: Some("q_long".into()),
                        trade_duration: Some((ts.0 - open_ts.0) / 60_000),
                        min_rate: Some(lo.min(self.price)),
                        max_rate: Some(hi.max(self.price)),
                        ..Default::default()
                    }))?;
                    self.entry = None;
                }
                _ => {}
            }
            if let Some((t, open, lo, hi)) = self.entry {
                self.entry = Some((t, open, lo.min(self.price), hi.max(self.price)));
            }
            // One-step Q-learning update.
            let next = self.state();
            let best_next = self.q[next].iter().copied().fold(f64::MIN, f64::max);
            self.q[s][action] += 0.1 * (reward + 0.95 * best_next - self.q[s][action]);
            ep_reward += reward;
            total_reward += reward;
            let mut extra = rlcollect::Extras::new();
            extra.insert("epsilon", Value::Float(epsilon));
            self.send(Record::ModelDecision(ModelDecision {
                ts,
                pair: self.pair.into(),
                episode: Some(episode),
                step: Some((step % EPISODE_STEPS) as i64),
                action: Some(action as i64),
                action_name: Some(ACTIONS[action].into()),
                position: Some(if self.entry.is_some() { 1.0 } else { 0.0 }),
                reward: Some(reward),
                total_reward: Some(total_reward),
                total_profit: Some(total_profit),
                confidence: Some(confidence),
                extra,
                ..Default::default()
            }))?;

            if (step + 1) % EPISODE_STEPS == 0 {
                self.send(Record::RlEpisode(RlEpisode {
                    episode,
                    pair: Some(self.pair.into()),
                    start_ts: Some(Timestamp(ep_start)),
                    end_ts: Some(ts),
                    steps: Some(EPISODE_STEPS as i64),
                    total_reward: Some(ep_reward),
                    total_profit: Some(ep_profit),
                    trades: Some(ep_trades),
                    model: Some("q-table".into()),
                    ..Default::default()
                }))?;
                episode += 1;
                (ep_reward, ep_profit, ep_trades, ep_start) = (0.0, 0.0, 0, ts.0 + CANDLE_MS);
            }
        }
        Ok(())
    }

    fn signal(
        &self,
        ts: Timestamp,
        stage: &str,
        signal: &str,
        value: f64,
        accepted: bool,
        reason: Option<&str>,
    ) -> Result<()> {
        self.send(Record::SignalPropagation(SignalPropagation {
            ts,
            pair: self.pair.into(),
            stage: Some(stage.into()),
            signal: Some(signal.into()),
            value: Some(value),
            accepted: Some(accepted),
            reason: reason.map(Into::into),
            ..Default::default()
        }))
    }
}
