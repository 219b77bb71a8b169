//! Real Freqtrade data: the 179 trades of a backtest export.

use crate::*;
use rlcollect::*;

fn export() -> serde_json::Value {
    let text = std::fs::read_to_string(data("backtest-result.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Each trade as the NDJSON line a strategy would send (Python's json.dumps style).
fn trade_lines(export: &serde_json::Value) -> Vec<String> {
    export["strategy"]["StrategyTestV3"]["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut t = t.as_object().unwrap().clone();
            t.insert("stream".into(), "trades".into());
            serde_json::to_string(&t)
                .unwrap()
                .replace("\":", "\": ")
                .replace(",\"", ", \"")
        })
        .collect()
}

#[test]
fn every_backtest_trade_round_trips_exactly() {
    let export = export();
    let lines = trade_lines(&export);
    assert_eq!(lines.len(), 179);
    for (line, orig) in lines
        .iter()
        .zip(export["strategy"]["StrategyTestV3"]["trades"].as_array().unwrap())
    {
        let Record::Trade(t) = Record::from_json(line.as_bytes()).unwrap() else {
            panic!("not a trade")
        };
        assert_eq!(t.pair, orig["pair"].as_str().unwrap());
        assert_eq!(t.profit_abs, orig["profit_abs"].as_f64());
        assert_eq!(t.profit_ratio, orig["profit_ratio"].as_f64());
        assert_eq!(t.open_rate, orig["open_rate"].as_f64());
        assert_eq!(t.close_rate, orig["close_rate"].as_f64());
        assert_eq!(t.amount, orig["amount"].as_f64());
        assert_eq!(t.trade_duration, orig["trade_duration"].as_i64());
        assert_eq!(t.exit_reason.as_deref(), orig["exit_reason"].as_str());
        assert_eq!(t.is_short, orig["is_short"].as_bool());
        // The date strings and the float epoch-ms columns agree.
        assert_eq!(t.open_date.map(|d| d.0 as f64), orig["open_timestamp"].as_f64());
        assert_eq!(t.close_date.map(|d| d.0 as f64), orig["close_timestamp"].as_f64());
        // Nothing dropped: every non-core field is an extra.
        for key in [
            "initial_stop_loss_abs",
            "stop_loss_ratio",
            "is_open",
            "orders",
            "max_stake_amount",
        ] {
            assert!(t.extra.get(key).is_some(), "{key} kept");
        }
    }
}

#[test]
fn summary_matches_freqtrades_own_tables() {
    let export = export();
    let strat = &export["strategy"]["StrategyTestV3"];
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path()).run_id("ft").build().unwrap();
    for line in trade_lines(&export) {
        c.send(Record::from_json(line.as_bytes()).unwrap()).unwrap();
    }
    let s = c.close().unwrap();
    assert_eq!(s.trades.count, strat["total_trades"].as_u64().unwrap());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-12);
    assert!(close(
        s.trades.profit_abs_total,
        strat["profit_total_abs"].as_f64().unwrap()
    ));
    let (mut pairs, mut wins, mut losses) = (0, 0, 0);
    for row in strat["results_per_pair"].as_array().unwrap() {
        let key = row["key"].as_str().unwrap();
        if key == "TOTAL" {
            continue;
        }
        pairs += 1;
        let got = &s.trades.by_pair[key];
        assert_eq!(got.count, row["trades"].as_u64().unwrap(), "{key}");
        assert!(
            close(got.profit_abs, row["profit_total_abs"].as_f64().unwrap()),
            "{key}: {} vs {}",
            got.profit_abs,
            row["profit_total_abs"]
        );
        wins += row["wins"].as_u64().unwrap();
        losses += row["losses"].as_u64().unwrap();
    }
    assert_eq!(pairs, s.trades.by_pair.len());
    assert_eq!((s.trades.wins, s.trades.losses), (wins, losses));
    // The run's summary.json holds the same numbers.
    let on_disk: RunSummary =
        serde_json::from_slice(&std::fs::read(RunDir::new(dir.path(), "ft").unwrap().summary_path()).unwrap()).unwrap();
    assert_eq!(on_disk.trades, s.trades);
    assert_gap_free(&stored_seqs(&dir.path().join("ft"), Some("trades")), 179);
}
