//! One pair's simulated market and RL agent: a random walk with regime
//! changes, and a tabular epsilon-greedy Q-learning agent that enters and
//! exits long positions. Every step goes to the collector through the
//! engine's own `Handle`, as a linked backtest engine would send it.

use anyhow::Result;
use rlcollect::{
    Candle, Extras, Handle, ModelDecision, Prediction, Record, RlEpisode, SignalPropagation, Timestamp, Trade, Value,
};

const ACTIONS: [&str; 3] = ["Neutral", "Long_enter", "Long_exit"];
const ENTER: usize = 1;
const EXIT: usize = 2;
const EPISODE_STEPS: u64 = 1_000;
const CANDLE_MS: i64 = 5 * 60 * 1000;
const START_MS: i64 = 1_704_067_200_000; // 2024-01-01
const FEE: f64 = 0.001;
const STAKE: f64 = 100.0;
const EPSILON: f64 = 0.1;

/// An open position: entry time and price, and the price range seen since.
#[derive(Clone, Copy)]
struct Position {
    opened: Timestamp,
    open: f64,
    low: f64,
    high: f64,
}

/// Sums over the current episode.
#[derive(Default)]
struct Episode {
    number: i64,
    start_ms: i64,
    reward: f64,
    profit: f64,
    trades: i64,
}

/// One pair's market and agent.
pub struct Engine {
    pair: &'static str,
    rng: fastrand::Rng,
    handle: Handle,
    /// Q-values: state (3 trend buckets × in/out of position) × 3 actions.
    q: [[f64; 3]; 6],
    price: f64,
    last_returns: [f64; 3],
    position: Option<Position>,
    trade_id: i64,
    episode: Episode,
    total_reward: f64,
    total_profit: f64,
}

impl Engine {
    pub fn new(pair: &'static str, seed: u64, handle: Handle) -> Self {
        Engine {
            pair,
            rng: fastrand::Rng::with_seed(seed),
            handle,
            q: [[0.0; 3]; 6],
            price: 100.0 * (1.0 + seed as f64 % 7.0),
            last_returns: [0.0; 3],
            position: None,
            trade_id: 0,
            episode: Episode {
                number: 1,
                start_ms: START_MS,
                ..Episode::default()
            },
            total_reward: 0.0,
            total_profit: 0.0,
        }
    }

    /// Simulates `candles` steps, sending every record.
    pub fn run(mut self, candles: u64) -> Result<()> {
        for step in 0..candles {
            let ts = Timestamp(START_MS + step as i64 * CANDLE_MS);
            let ret = self.move_market(step);
            self.send(Record::Candle(Candle {
                ts: Some(ts),
                pair: Some(self.pair.into()),
                close: Some(self.price),
                ..Default::default()
            }))?;
            let state = self.state();
            let action = self.choose(state);
            let spread = self.q[state][ENTER] - self.q[state][EXIT];
            let confidence = 1.0 / (1.0 + (-spread * 100.0).exp());
            self.predict(ts, spread, confidence)?;
            let reward = self.act(ts, action, spread, ret)?;
            self.learn(state, action, reward);
            self.decide(ts, step, action, reward, confidence)?;
            if (step + 1).is_multiple_of(EPISODE_STEPS) {
                self.end_episode(ts)?;
            }
        }
        Ok(())
    }

    fn send(&self, r: Record) -> Result<()> {
        self.handle.send(r).map_err(|_| anyhow::anyhow!("collector stopped"))
    }

    /// One candle of the random walk; returns its log return.
    fn move_market(&mut self, step: u64) -> f64 {
        let drift = if (step / 2000).is_multiple_of(2) {
            0.0002
        } else {
            -0.0002
        };
        let ret = drift + 0.004 * self.normal();
        self.price *= ret.exp();
        self.last_returns.rotate_left(1);
        self.last_returns[2] = ret;
        if let Some(p) = self.position.as_mut() {
            p.low = p.low.min(self.price);
            p.high = p.high.max(self.price);
        }
        ret
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
        bucket * 2 + usize::from(self.position.is_some())
    }

    /// Epsilon-greedy over the Q-values of `state`.
    fn choose(&mut self, state: usize) -> usize {
        if self.rng.f64() < EPSILON {
            return self.rng.usize(0..3);
        }
        (0..3)
            .max_by(|&a, &b| self.q[state][a].total_cmp(&self.q[state][b]))
            .unwrap_or(0)
    }

    fn predict(&self, ts: Timestamp, spread: f64, confidence: f64) -> Result<()> {
        self.send(Record::Prediction(Prediction {
            ts,
            pair: self.pair.into(),
            model: Some("q-table".into()),
            prediction: Some(spread),
            label: Some(if spread > 0.0 { "up" } else { "down" }.into()),
            confidence: Some(confidence),
            do_predict: Some(1),
            ..Default::default()
        }))
    }

    /// Carries out `action`; returns the step's reward.
    fn act(&mut self, ts: Timestamp, action: usize, spread: f64, ret: f64) -> Result<f64> {
        let mut reward = if self.position.is_some() { ret } else { 0.0 };
        match (action, self.position) {
            (ENTER, None) => {
                reward -= FEE;
                self.position = Some(Position {
                    opened: ts,
                    open: self.price,
                    low: self.price,
                    high: self.price,
                });
                self.signal(ts, "model", "enter_long", spread, None)?;
                let volatile = ret.abs() > 0.01;
                self.signal(ts, "risk", "enter_long", ret.abs(), volatile.then_some("volatility"))?;
            }
            (EXIT, Some(position)) => {
                reward -= FEE;
                self.signal(ts, "model", "exit_long", spread, None)?;
                self.close(ts, position)?;
            }
            _ => {}
        }
        Ok(reward)
    }

    /// Closes the position at the current price and sends the trade.
    fn close(&mut self, ts: Timestamp, p: Position) -> Result<()> {
        let profit_ratio = self.price / p.open - 1.0 - 2.0 * FEE;
        let exit_reason = if profit_ratio < -0.02 {
            "stop_loss"
        } else {
            "agent_exit"
        };
        self.trade_id += 1;
        self.episode.trades += 1;
        self.episode.profit += profit_ratio;
        self.total_profit += profit_ratio;
        self.position = None;
        self.send(Record::Trade(Trade {
            pair: self.pair.into(),
            trade_id: Some(self.trade_id),
            is_short: Some(false),
            open_date: Some(p.opened),
            close_date: Some(ts),
            open_rate: Some(p.open),
            close_rate: Some(self.price),
            amount: Some(STAKE / p.open),
            stake_amount: Some(STAKE),
            leverage: Some(1.0),
            fee_open: Some(FEE),
            fee_close: Some(FEE),
            profit_ratio: Some(profit_ratio),
            profit_abs: Some(profit_ratio * STAKE),
            exit_reason: Some(exit_reason.into()),
            enter_tag: Some("q_long".into()),
            trade_duration: Some((ts.0 - p.opened.0) / 60_000),
            min_rate: Some(p.low),
            max_rate: Some(p.high),
            ..Default::default()
        }))
    }

    /// One signal propagation step; rejected when `reason` is given.
    fn signal(&self, ts: Timestamp, stage: &str, signal: &str, value: f64, reason: Option<&str>) -> Result<()> {
        self.send(Record::SignalPropagation(SignalPropagation {
            ts,
            pair: self.pair.into(),
            stage: Some(stage.into()),
            signal: Some(signal.into()),
            value: Some(value),
            accepted: Some(reason.is_none()),
            reason: reason.map(Into::into),
            ..Default::default()
        }))
    }

    /// One-step Q-learning update.
    fn learn(&mut self, state: usize, action: usize, reward: f64) {
        let next = self.state();
        let best_next = self.q[next].iter().copied().fold(f64::MIN, f64::max);
        self.q[state][action] += 0.1 * (reward + 0.95 * best_next - self.q[state][action]);
        self.episode.reward += reward;
        self.total_reward += reward;
    }

    fn decide(&self, ts: Timestamp, step: u64, action: usize, reward: f64, confidence: f64) -> Result<()> {
        self.send(Record::ModelDecision(ModelDecision {
            ts,
            pair: self.pair.into(),
            episode: Some(self.episode.number),
            step: Some((step % EPISODE_STEPS) as i64),
            action: Some(action as i64),
            action_name: Some(ACTIONS[action].into()),
            position: Some(if self.position.is_some() { 1.0 } else { 0.0 }),
            reward: Some(reward),
            total_reward: Some(self.total_reward),
            total_profit: Some(self.total_profit),
            confidence: Some(confidence),
            extra: Extras::new().with("epsilon", Value::Float(EPSILON)),
            ..Default::default()
        }))
    }

    fn end_episode(&mut self, ts: Timestamp) -> Result<()> {
        let e = &self.episode;
        self.send(Record::RlEpisode(RlEpisode {
            episode: e.number,
            pair: Some(self.pair.into()),
            start_ts: Some(Timestamp(e.start_ms)),
            end_ts: Some(ts),
            steps: Some(EPISODE_STEPS as i64),
            total_reward: Some(e.reward),
            total_profit: Some(e.profit),
            trades: Some(e.trades),
            model: Some("q-table".into()),
            ..Default::default()
        }))?;
        self.episode = Episode {
            number: e.number + 1,
            start_ms: ts.0 + CANDLE_MS,
            ..Episode::default()
        };
        Ok(())
    }
}
