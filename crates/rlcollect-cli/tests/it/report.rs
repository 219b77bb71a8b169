//! `rlcollect report`: the totals it prints equal summary.json (and, for a
//! real Freqtrade backtest, Freqtrade's own export); the demo run, a run
//! with only user streams, an empty run and a live run; `--watch`; bad input.
//! The page in a real browser is tests/python/test_report.py.

use crate::*;
use rlcollect::{Collector, Record, RunStatus};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Output, Stdio};

/// Runs `rlcollect report ARGS`.
fn report(args: &[&Path]) -> Output {
    let mut c = rlcollect();
    c.arg("report").args(args);
    c.output().unwrap()
}

/// The JSON block the page draws from.
fn page_data(html: &Path) -> Value {
    let text = std::fs::read_to_string(html).unwrap();
    let start = text
        .find(r#"<script id="rlcollect-data" type="application/json">"#)
        .expect("data block");
    let body = &text[start..];
    let body = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
    serde_json::from_str(body).expect("the data block is JSON")
}

/// The exact value the header prints for `key` (its `data-value`).
fn kpi(html: &Path, run: usize, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(html).unwrap();
    let needle = format!(r#"data-run="{run}" data-key="{key}" data-value=""#);
    let at = text.find(&needle)? + needle.len();
    Some(text[at..at + text[at..].find('"')?].to_owned())
}

fn panels(data: &Value) -> Vec<String> {
    let mut p: Vec<String> = data["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["panel"].as_str().unwrap().to_owned())
        .collect();
    p.dedup();
    p
}

fn summary_json(run: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

fn demo(out: &Path, candles: &str) -> PathBuf {
    let st = rlcollect()
        .args(["demo", "--candles", candles, "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::canonicalize(out.join("latest")).unwrap()
}

#[test]
fn the_demo_runs_report_prints_the_totals_of_summary_json() {
    let dir = tempfile::tempdir().unwrap();
    let run = demo(dir.path(), "3000");
    let html = dir.path().join("r.html");
    let out = report(&[&run, Path::new("-o"), &html]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), html.display().to_string());
    let data = page_data(&html);
    let totals = &data["runs"][0]["totals"];
    let s = summary_json(&run);
    for key in [
        "count",
        "wins",
        "losses",
        "draws",
        "win_rate",
        "profit_abs_total",
        "profit_ratio_mean",
        "by_pair",
        "by_exit_reason",
    ] {
        assert_eq!(totals["trades"][key], s["trades"][key], "trades.{key}");
    }
    for key in [
        "count",
        "total_reward_mean",
        "total_reward_min",
        "total_reward_max",
        "best_episode",
    ] {
        assert_eq!(totals["rl_episodes"][key], s["rl_episodes"][key], "rl_episodes.{key}");
    }
    assert_eq!(totals["model_decisions"]["count"], s["model_decisions"]["count"]);
    assert_eq!(
        totals["model_decisions"]["by_action"],
        s["model_decisions"]["by_action"]
    );
    assert_eq!(totals["rows"], s["rows"]);
    // The header prints the same numbers.
    for (key, want) in [
        ("trades.count", &s["trades"]["count"]),
        ("trades.profit_abs_total", &s["trades"]["profit_abs_total"]),
        ("trades.win_rate", &s["trades"]["win_rate"]),
        ("rl_episodes.count", &s["rl_episodes"]["count"]),
        ("rl_episodes.total_reward_mean", &s["rl_episodes"]["total_reward_mean"]),
    ] {
        let got: Value = serde_json::from_str(&kpi(&html, 0, key).unwrap()).unwrap();
        assert_eq!(&got, want, "{key}");
    }
    assert_eq!(panels(&data), ["trades", "rl", "predictions", "signals", "health"]);
    // One file, nothing fetched: no external script, style, font or image.
    let text = std::fs::read_to_string(&html).unwrap();
    for external in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!text.contains(external), "{external}");
    }
    // Every drawn series holds at most --points points.
    for c in data["charts"].as_array().unwrap() {
        for s in c["series"].as_array().unwrap() {
            assert!(s["y"].as_array().unwrap().len() <= 2002, "{}", c["id"]);
        }
    }
}

fn backtest_export() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("backtest-result.json")).unwrap()).unwrap()
}

#[test]
fn a_real_freqtrade_backtests_totals_equal_freqtrades_own_export() {
    let export = backtest_export();
    let strat = &export["strategy"]["StrategyTestV3"];
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path()).run_id("ft").build().unwrap();
    for t in strat["trades"].as_array().unwrap() {
        let mut t = t.as_object().unwrap().clone();
        t.insert("stream".into(), "trades".into());
        c.send(Record::from_json(serde_json::to_string(&t).unwrap().as_bytes()).unwrap())
            .unwrap();
    }
    c.close().unwrap();
    let html = dir.path().join("ft.html");
    assert!(report(&[&dir.path().join("ft"), Path::new("-o"), &html])
        .status
        .success());
    let t = &page_data(&html)["runs"][0]["totals"]["trades"];
    let close = |a: &Value, b: &Value| {
        (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-12 * b.as_f64().unwrap().abs().max(1e-12)
    };
    assert_eq!(t["count"], strat["total_trades"]);
    assert!(
        close(&t["profit_abs_total"], &strat["profit_total_abs"]),
        "{} vs {}",
        t["profit_abs_total"],
        strat["profit_total_abs"]
    );
    let total = strat["results_per_pair"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "TOTAL")
        .unwrap();
    for key in ["wins", "losses", "draws"] {
        assert_eq!(t[key], total[key], "{key}");
    }
    for row in strat["results_per_pair"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["key"] != "TOTAL")
    {
        let got = &t["by_pair"][row["key"].as_str().unwrap()];
        assert_eq!(got["count"], row["trades"]);
        assert!(close(&got["profit_abs"], &row["profit_total_abs"]), "{}", row["key"]);
    }
    for row in strat["exit_reason_summary"].as_array().unwrap() {
        let got = &t["by_exit_reason"][row["exit_reason"].as_str().unwrap()];
        assert_eq!(got["count"], row["trades"]);
        assert!(close(&got["profit_abs"], &row["profit_total_abs"]));
    }
    // Freqtrade's max drawdown: the same size, from the same high to the same low.
    assert!(
        close(&t["max_drawdown_abs"], &strat["max_drawdown_abs"]),
        "{} vs {}",
        t["max_drawdown_abs"],
        strat["max_drawdown_abs"]
    );
    assert_eq!(t["drawdown_start_ms"].as_f64(), strat["drawdown_start_ts"].as_f64());
    assert_eq!(t["drawdown_end_ms"].as_f64(), strat["drawdown_end_ts"].as_f64());
    assert!(t["max_open"].as_u64().unwrap() <= strat["max_open_trades"].as_u64().unwrap());
}

/// A sidecar on a pipe, for runs written line by line.
struct Sidecar {
    child: Child,
    stdin: ChildStdin,
    run: PathBuf,
}

impl Sidecar {
    fn start(out: &Path) -> Sidecar {
        let mut child = rlcollect()
            .args([
                "run",
                "--run",
                "live",
                "--every-secs",
                "3600",
                "--min-free-mb",
                "0",
                "--out",
            ])
            .arg(out)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        Sidecar {
            child,
            stdin,
            run: out.join("live"),
        }
    }

    /// Sends the lines, then a checkpoint, and waits until it is published.
    fn publish(&mut self, lines: &[String]) {
        let before = std::fs::read(self.run.join("manifest.json"))
            .ok()
            .map_or(0, |_| manifest(&self.run).checkpoints);
        for l in lines {
            writeln!(self.stdin, "{l}").unwrap();
        }
        writeln!(self.stdin, r#"{{"stream":"control","op":"checkpoint"}}"#).unwrap();
        self.stdin.flush().unwrap();
        let run = self.run.clone();
        assert!(wait_for(20.0, || run.join("manifest.json").exists()
            && manifest(&run).checkpoints > before));
    }

    fn finish(self) {
        let Sidecar { mut child, stdin, .. } = self;
        drop(stdin);
        assert!(wait_exit(&mut child, 30).success());
    }
}

fn metric_lines(from: u64, n: u64, float: bool) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            let v = if float { format!("{}.5", i) } else { i.to_string() };
            format!(
                r#"{{"stream":"my_metrics","ts":{},"loss":{v},"tag":"a"}}"#,
                1_700_000_000_000u64 + i * 60_000
            )
        })
        .collect()
}

#[test]
fn a_run_with_only_user_streams_gets_the_generic_panel_with_int_and_float_parts_read_as_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut side = Sidecar::start(dir.path());
    side.publish(&metric_lines(0, 100, false)); // `loss` is int64 in this part...
    side.publish(&metric_lines(100, 100, true)); // ...and float64 in this one
    let run = side.run.clone();
    side.finish();
    assert!(report(&[&run]).status.success());
    let data = page_data(&run.join("report.html"));
    assert_eq!(panels(&data), ["user:my_metrics", "health"]);
    assert_eq!(data["runs"][0]["totals"]["rows"]["my_metrics"], 200);
    let table = data["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "user:my_metrics.columns")
        .unwrap();
    let loss = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[1] == "loss")
        .unwrap();
    assert_eq!(loss[2], "200"); // every value counted, none null
    assert_eq!(loss[5], "99.75"); // mean of 0..99 and 100.5..199.5
}

#[test]
fn an_empty_run_says_there_is_nothing_to_draw() {
    let dir = tempfile::tempdir().unwrap();
    let side = Sidecar::start(dir.path());
    let run = side.run.clone();
    side.finish();
    let out = report(&[&run]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = run.join("report.html");
    let data = page_data(&html);
    assert!(data["charts"].as_array().unwrap().is_empty());
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("No rows are published"));
}

fn trade_line(i: u64) -> String {
    format!(
        r#"{{"stream":"trades","pair":"BTC/USDT","open_date":{},"close_date":{},"profit_abs":{},"exit_reason":"roi"}}"#,
        1_700_000_000_000u64 + i * 600_000,
        1_700_000_300_000u64 + i * 600_000,
        if i.is_multiple_of(3) { -1.0 } else { 2.0 }
    )
}

#[test]
fn a_live_run_reports_what_is_published_and_watch_rewrites_at_each_checkpoint_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut side = Sidecar::start(dir.path());
    side.publish(&(0..10).map(trade_line).collect::<Vec<_>>());
    let run = side.run.clone();
    // A plain report of the live run: what the manifest lists now.
    let once = dir.path().join("once.html");
    assert!(report(&[&run, Path::new("-o"), &once]).status.success());
    let meta = &page_data(&once)["runs"][0];
    assert_eq!(
        (meta["status"].as_str(), meta["live"].as_bool()),
        (Some("running"), Some(true))
    );
    assert_eq!(meta["totals"]["trades"]["count"], 10);

    let html = dir.path().join("watch.html");
    let mut watch = rlcollect()
        .args(["report", "--watch", "--interval", "0.1", "-o"])
        .arg(&html)
        .arg(&run)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let trades = |html: &Path| {
        html.exists()
            .then(|| page_data(html)["runs"][0]["totals"]["trades"]["count"].as_u64())
            .flatten()
    };
    assert!(wait_for(20.0, || trades(&html) == Some(10)));
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains("http-equiv=\"refresh\""),
        "a live page reloads itself"
    );
    side.publish(&(10..25).map(trade_line).collect::<Vec<_>>());
    assert!(
        wait_for(20.0, || trades(&html) == Some(25)),
        "rewritten at the new checkpoint"
    );
    side.finish();
    let status = wait_exit(&mut watch, 30);
    assert!(status.success(), "--watch ends when the run is no longer running");
    let last = page_data(&html);
    assert_eq!(last["runs"][0]["status"], "complete");
    assert_eq!(manifest(&run).status, RunStatus::Complete);
    assert!(!std::fs::read_to_string(&html)
        .unwrap()
        .contains("http-equiv=\"refresh\""));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temp file left behind");
}

#[test]
fn bad_input_is_a_clear_error_and_a_corrupt_part_is_listed_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let out = report(&[dir.path()]);
    assert_eq!(out.status.code(), Some(2), "not a run is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an rlcollect run"));

    let mut side = Sidecar::start(dir.path());
    side.publish(&(0..5).map(trade_line).collect::<Vec<_>>());
    side.publish(&metric_lines(0, 5, false));
    let run = side.run.clone();
    side.finish();
    let trades_part = run.join(&manifest(&run).streams["trades"].files[0].path);
    std::fs::write(&trades_part, b"not parquet at all").unwrap();
    let out = report(&[&run]);
    assert!(out.status.success(), "one corrupt part: the rest is still reported");
    let data = page_data(&run.join("report.html"));
    let unreadable = data["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "health.unreadable")
        .expect("listed in health");
    assert_eq!(unreadable["rows"][0][1], "trades/part-000001.parquet");
    assert_eq!(panels(&data), ["user:my_metrics", "health"]);

    let metrics_part = run.join(&manifest(&run).streams["my_metrics"].files[0].path);
    std::fs::write(&metrics_part, b"PAR1 broken").unwrap();
    let out = report(&[&run]);
    assert_eq!(out.status.code(), Some(1), "nothing readable at all");
    assert!(
        run.join("report.html").exists(),
        "the report still says which files failed"
    );
}
