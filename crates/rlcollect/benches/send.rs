//! `cargo bench --bench send`: throughput of `Handle::send` with 4 producer
//! threads, and bytes written against final data size for a 1 M-record run
//! with a checkpoint every 1000 candles (incremental parts must keep the
//! write amplification near 1).
//!
//! A plain `main` (harness = false): it measures whole runs, not micro-ops.

use rlcollect::{Candle, Collector, ModelDecision, Record, Timestamp, Trade};
use std::time::Instant;

fn decision(i: u64, pair: &str) -> Record {
    Record::ModelDecision(ModelDecision {
        ts: Timestamp(1_700_000_000_000 + i as i64 * 300_000),
        pair: pair.into(),
        episode: Some((i / 1000) as i64),
        step: Some((i % 1000) as i64),
        action: Some((i % 3) as i64),
        action_name: Some(["Neutral", "Long_enter", "Long_exit"][(i % 3) as usize].into()),
        reward: Some((i % 17) as f64 * 0.01),
        total_reward: Some(i as f64 * 0.001),
        ..Default::default()
    })
}

fn four_producers(total: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::builder(tmp.path()).run_id("bench").build().unwrap();
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = c.handle();
            std::thread::spawn(move || {
                let pair = format!("PAIR{t}/USDT");
                for i in 0..total / 4 {
                    h.send(decision(i, &pair)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let sent = started.elapsed();
    let s = c.close().unwrap();
    let all = started.elapsed();
    let rows: u64 = s.rows.values().sum();
    assert_eq!(rows, total);
    println!(
        "Handle::send, 4 producers, {total} model_decisions: {:.0} rows/s accepted (all sent in {:.2} s), {:.0} rows/s to disk incl. final flush ({:.2} s)",
        total as f64 / sent.as_secs_f64(),
        sent.as_secs_f64(),
        total as f64 / all.as_secs_f64(),
        all.as_secs_f64()
    );
}

fn write_amplification(total: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::builder(tmp.path())
        .run_id("bench")
        .every_candles(1000)
        .max_buffered_rows(usize::MAX)
        .build()
        .unwrap();
    let started = Instant::now();
    // Per step: a candle, a decision; a trade every 50 steps.
    for i in 0..total {
        c.send(Record::Candle(Candle::default())).unwrap();
        if i % 50 == 0 {
            c.send(Record::Trade(Trade {
                pair: "BTC/USDT".into(),
                profit_abs: Some((i % 7) as f64 - 3.0),
                ..Default::default()
            }))
            .unwrap();
        }
        c.send(decision(i, "BTC/USDT")).unwrap();
    }
    let run_dir = c.run_dir().to_owned();
    let handle = c.handle(); // its counters outlive the collector
    c.close().unwrap();
    let written = handle.stats().bytes_written;
    let m = rlcollect::RunDir::at(&run_dir).unwrap().load_manifest().unwrap();
    let final_size: u64 = m
        .streams
        .values()
        .flat_map(|s| &s.files)
        .map(|f| std::fs::metadata(run_dir.join(&f.path)).unwrap().len())
        .sum();
    println!(
        "{total} decisions + {} trades, checkpoint every 1000 candles: {:.2} s, {} checkpoints, part bytes written {written} vs final data size {final_size} (ratio {:.3})",
        total / 50,
        started.elapsed().as_secs_f64(),
        m.checkpoints,
        written as f64 / final_size as f64,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run small then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 20_000 } else { 1_000_000 };
    // Names after the flags pick benches (`cargo bench --bench send -- four`), as with libtest.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let picked = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    if picked("four_producers") {
        four_producers(n);
    }
    if picked("write_amplification") {
        write_amplification(n);
    }
}
