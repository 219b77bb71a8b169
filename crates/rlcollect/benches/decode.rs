//! `cargo bench --bench decode`: how fast one reader thread decodes NDJSON
//! into columns, with nothing else running (no worker, no log, no parts), so
//! a change to decoding can be measured apart from the machine's noise in a
//! whole run. Input: `BENCH_INPUT` (an NDJSON file, e.g. the one
//! `benches/ingest.sh` writes), or 1 M generated records of the same mix.
//! Prints min / median / max of `BENCH_REPEATS` (default 7) passes.
//!
//! A plain `main` (harness = false), like the `send` bench.

use rlcollect::testing::decode_like_a_reader;
use std::fmt::Write as _;
use std::time::Instant;

/// 1 M records mixed as `benches/ingest_bench.py` mixes them: decisions,
/// predictions, signals, trades, episodes and candles, with floats written
/// at full precision as Python's `repr` writes them.
fn generated() -> Vec<u8> {
    let mut state = 7u64;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT"];
    let mut out = String::with_capacity(250 << 20);
    for i in 0..1_000_000u64 {
        let (ts, pair) = (1_704_067_200_000 + (i / 5) * 300_000, pairs[(i % 3) as usize]);
        let line = match i % 20 {
            0..=7 => format!(
                r#"{{"stream": "model_decisions", "ts": {ts}, "pair": "{pair}", "episode": {}, "step": {}, "action": {}, "action_name": "Long_enter", "position": 1.0, "reward": {:?}, "total_reward": {:?}, "total_profit": {:?}, "q_values": null, "epsilon": 0.1}}"#,
                i / 5000,
                i % 5000,
                i % 5,
                rnd() - 0.5,
                rnd(),
                rnd()
            ),
            8..=12 => format!(
                r#"{{"stream": "predictions", "ts": {ts}, "pair": "{pair}", "model": "PPO", "prediction": {:?}, "label": "up", "confidence": {:?}, "do_predict": 1, "DI_values": {:?}}}"#,
                rnd(),
                rnd(),
                rnd()
            ),
            13..=15 => format!(
                r#"{{"stream": "signal_propagation", "ts": {ts}, "pair": "{pair}", "stage": "filter", "signal": "enter_long", "value": {:?}, "accepted": {}, "reason": null}}"#,
                rnd(),
                i % 2 == 0
            ),
            16 => format!(
                r#"{{"stream": "trades", "pair": "{pair}", "trade_id": {i}, "is_short": false, "open_date": "2024-01-01 00:05:00+00:00", "close_date": "2024-01-01 01:05:00+00:00", "open_rate": {:?}, "close_rate": 101.0, "amount": 1.0, "stake_amount": 100.0, "profit_ratio": {:?}, "profit_abs": {:?}, "exit_reason": "roi", "open_timestamp": {ts}.0, "orders": null}}"#,
                100.0 + rnd(),
                rnd() * 0.02 - 0.01,
                rnd() - 0.5
            ),
            17 => format!(
                r#"{{"stream": "rl_episodes", "episode": {i}, "pair": "{pair}", "steps": 1000, "total_reward": {:?}, "total_profit": {:?}, "trades": 3, "model": "PPO"}}"#,
                rnd(),
                rnd()
            ),
            _ => format!(r#"{{"stream": "candle", "ts": {ts}, "pair": "{pair}", "close": 100.0}}"#),
        };
        writeln!(out, "{line}").expect("writing to a String");
    }
    out.into_bytes()
}

fn main() {
    let input = match std::env::var("BENCH_INPUT") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("BENCH_INPUT {path}: {e}")),
        Err(_) => generated(),
    };
    let repeats: usize = std::env::var("BENCH_REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let mut seconds = Vec::new();
    let mut stored = (0, 0);
    for _ in 0..repeats {
        let started = Instant::now();
        stored = decode_like_a_reader(&input, 4096, true);
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let mb = input.len() as f64 / 1e6;
    let (min, median, max) = (seconds[0], seconds[repeats / 2], seconds[repeats - 1]);
    println!(
        "decode, one reader thread, {mb:.0} MB, {} rows stored, {} rejected: {min:.3} / {median:.3} / {max:.3} s (min / median / max of {repeats}), {:.0} MB/s at the median",
        stored.0,
        stored.1,
        mb / median
    );
}
