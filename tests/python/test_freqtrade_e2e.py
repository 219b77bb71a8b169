"""Real Freqtrade runs (backtesting, FreqAI, hyperopt, futures) recording through
RLCollectMixin, checked against what Freqtrade and FreqAI wrote themselves.

The README's Freqtrade quick-start strategy is run verbatim, so the README
cannot show code that records wrong data. See tests/freqtrade/README.md.
"""

import collections
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest

from rlcollect import find_binary, load

REPO = Path(__file__).resolve().parents[2]
FT_DIR = REPO / "tests" / "freqtrade"
CANDLES = REPO / "tests" / "data" / "UNITTEST_BTC-5m.feather"
FT_PYTHON = os.environ.get("FREQTRADE_PYTHON")
# Opt-in: a Python with freqtrade, torch and stable-baselines3 (see tests/freqtrade/README.md).
RL_PYTHON = os.environ.get("RLCOLLECT_RL_PYTHON")
README_TIMERANGE = "20180115-20180125"  # the range: FreqAI windows of 4, 4 and 2 days
FULL_TIMERANGE = "20180110-20180130"
FIVE_MINUTES_MS = 5 * 60 * 1000

needs_freqtrade = pytest.mark.skipif(
    not FT_PYTHON or not os.access(FT_PYTHON, os.X_OK),
    reason="FREQTRADE_PYTHON (a venv with freqtrade, FreqAI's LightGBM and this client) is not set; "
           "tests/run_all.sh sets it",
)


def readme_strategy():
    """The README's quick-start strategy: (class name, source), taken verbatim
    from the ```python block after the quick-start marker."""
    text = (REPO / "README.md").read_text()
    marker = text.index("<!-- rlcollect:freqtrade-quickstart")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    source = block.group(1)
    name = re.search(r"^class (\w+)\(", source, re.M).group(1)
    return name, source


class Run:
    """One freqtrade command in its own folder, with its outputs."""

    def __init__(self, tmp: Path, done: subprocess.CompletedProcess):
        self.tmp = tmp
        self.userdir = tmp / "user_data"
        self.run_dir = tmp / "analysis_data" / "run"
        self.stdout = done.stdout
        spawns = tmp / "spawns.log"
        self.spawns = spawns.read_text().splitlines() if spawns.exists() else []

    def manifest(self) -> dict:
        return json.loads((self.run_dir / "manifest.json").read_text())

    def export(self, strategy: str) -> dict:
        [archive] = (self.userdir / "backtest_results").glob("*.zip")
        with zipfile.ZipFile(archive) as z:
            name = next(n for n in z.namelist() if n.endswith(".json") and not n.endswith("_config.json"))
            return json.loads(z.read(name))["strategy"][strategy]

    def freqai_windows(self, identifier: str):
        """FreqAI's own backtesting predictions, one frame per backtest window."""
        folder = self.userdir / "models" / identifier / "backtesting_predictions"
        return [pl.read_ipc(f) for f in sorted(folder.glob("*_prediction.feather"))]

    def stored(self, stream: str) -> pl.DataFrame:
        frames = load(self.run_dir)
        return frames[stream].collect() if stream in frames else pl.DataFrame()


def spy_binary(tmp: Path) -> Path:
    """The real rlcollect binary behind a script that logs each start."""
    spy = tmp / "bin" / "rlcollect"
    spy.parent.mkdir()
    spy.write_text(f'#!/bin/sh\necho "$*" >> "{tmp}/spawns.log"\nexec "{find_binary()}" "$@"\n')
    spy.chmod(0o755)
    return spy


def futures_data(datadir: Path) -> None:
    """Futures candles for UNITTEST/BTC:BTC: the real spot candles, their 8-hour
    mark candles, and a zero funding rate (no funding history exists offline)."""
    import pandas as pd

    futures = datadir / "futures"
    futures.mkdir(parents=True)
    candles = pd.read_feather(CANDLES)
    candles.to_feather(futures / "UNITTEST_BTC_BTC-5m-futures.feather")
    ohlc = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    mark = candles.set_index("date").resample("8h").agg(ohlc).dropna().reset_index()
    mark.to_feather(futures / "UNITTEST_BTC_BTC-8h-mark.feather")
    mark.assign(open=0.0, high=0.0, low=0.0, close=0.0, volume=0.0).to_feather(
        futures / "UNITTEST_BTC_BTC-8h-funding_rate.feather")


def freqtrade(tmp: Path, command: str, *args: str, strategy=None, extra_sources=(), configs=("config.json",),
              futures=False, python=None, check=True) -> Run:
    """Runs ``freqtrade COMMAND`` offline in ``tmp`` (the working folder, so
    the strategies' default ``analysis_data`` lands there) on the real candles."""
    userdir = tmp / "user_data"
    datadir = userdir / "data" / "binance"
    datadir.mkdir(parents=True)
    shutil.copy(CANDLES, datadir)
    if futures:
        futures_data(datadir)
    shutil.copytree(FT_DIR / "strategies", userdir / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    for name, source in extra_sources:
        (userdir / "strategies" / f"{name}.py").write_text(source)
    launcher = "freqtrade_offline_futures.py" if futures else "freqtrade_offline.py"
    cmd = [python or FT_PYTHON, str(FT_DIR / launcher), command, "--userdir", str(userdir)]
    for config in configs:
        cmd += ["-c", str(FT_DIR / config)]
    if strategy:
        cmd += ["--strategy", strategy]
    env = dict(os.environ, RLCOLLECT_BIN=str(spy_binary(tmp)), RLCOLLECT_RUN="run",
               FREQTRADE_OFFLINE_PAIRS="UNITTEST/BTC")
    done = subprocess.run(cmd + list(args), cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return Run(tmp, done)


def backtest(tmp: Path, strategy: str, timerange: str, *args: str, **kwargs) -> Run:
    return freqtrade(tmp, "backtesting", "--timerange", timerange, "--fee", "0.001", "--export", "trades",
                     "--cache", "none", *args, strategy=strategy, **kwargs)


# -- the checks ------------------------------------------------------------------------


def assert_complete_run(run: Run) -> dict:
    m = run.manifest()
    assert m["status"] == "complete" and m["rejected"] == 0
    assert len(run.spawns) == 1, f"one sidecar per run, started {run.spawns}"
    return m


def assert_trades_as_exported(run: Run, export: dict) -> list:
    """Every closed trade stored once, with the export's values."""
    stored = run.stored("trades")
    ours = sorted(stored.to_dicts(), key=lambda t: (t["pair"], t["open_date"]))
    theirs = sorted(export["trades"], key=lambda t: (t["pair"], t["open_date"]))
    assert len(ours) == len(theirs) == export["total_trades"]
    for mine, ft in zip(ours, theirs):
        assert mine["pair"] == ft["pair"]
        assert mine["open_date"].isoformat() == ft["open_date"].replace(" ", "T")
        assert mine["close_date"].isoformat() == ft["close_date"].replace(" ", "T")
        assert abs(mine["profit_abs"] - ft["profit_abs"]) <= 1e-12, (mine, ft)
        assert math.isclose(mine["profit_ratio"], ft["profit_ratio"], rel_tol=1e-9, abs_tol=1e-15)
        for field in ("close_rate", "exit_reason", "is_short", "leverage", "open_rate", "amount", "stake_amount",
                      "trade_duration"):
            assert mine[field] == ft[field], (field, mine, ft)
    summary = json.loads((run.run_dir / "summary.json").read_text())["trades"]
    assert math.isclose(summary["profit_abs_total"], export["profit_total_abs"], rel_tol=1e-9, abs_tol=1e-15)
    return theirs


def backtest_candles(export: dict) -> int:
    """Candles Freqtrade's backtest loop visits: bot_loop_start runs once per
    candle from the first candle after the start to the end, inclusive."""
    return (export["backtest_end_ts"] - export["backtest_start_ts"]) // FIVE_MINUTES_MS


def assert_predictions_as_freqai_wrote(run: Run, identifier: str, model: str) -> list:
    """Every candle FreqAI predicted is stored once, with FreqAI's values."""
    windows = run.freqai_windows(identifier)
    assert windows, "FreqAI wrote no backtesting predictions"
    theirs = pl.concat(windows, how="diagonal_relaxed").sort("date")
    ours = run.stored("predictions").sort("ts")
    assert ours.height == theirs.height
    assert ours["ts"].to_list() == theirs["date"].dt.cast_time_unit("ms").to_list()
    assert ours["ts"].n_unique() == ours.height, "each candle once"
    for w in windows:  # per window
        lo, hi = w["date"].min(), w["date"].max()
        assert ours.filter(pl.col("ts").is_between(lo, hi)).height == w.height
    for column in theirs.columns:
        if column == "date":
            continue
        mine, ft = ours[column].cast(pl.Float64).to_numpy(), theirs[column].cast(pl.Float64).to_numpy()
        assert ((mine == ft) | (mine != mine) & (ft != ft)).all(), column  # equal, NaN where NaN
    label = next(c for c in theirs.columns if c.startswith("&") and not c.endswith(("_mean", "_std")))
    assert ours["prediction"].to_list() == theirs[label].cast(pl.Float64).to_list()
    assert ours["model"].unique().to_list() == [model] and ours["pair"].unique().to_list() == ["UNITTEST/BTC"]
    return [w.height for w in windows]


# -- the tests -----------------------------------------------------------------------------


@needs_freqtrade
def test_readme_quickstart_records_every_freqai_prediction_trade_and_candle(tmp_path):
    name, source = readme_strategy()
    run = backtest(tmp_path, name, README_TIMERANGE, "--freqaimodel", "LightGBMRegressor",
                   extra_sources=[(name, source)], configs=("config.json", "config-freqai.json"))
    m = assert_complete_run(run)
    export = run.export(name)
    windows = assert_predictions_as_freqai_wrote(run, "rlcollect-e2e", "LightGBMRegressor")
    assert windows == [1152, 1152, 576]  # 2 880 candles: 10 days of 5-minute candles, 3 windows
    assert len(assert_trades_as_exported(run, export)) > 100
    assert m["candles"] == backtest_candles(export) == 2880
    print(f"\npredictions stored/FreqAI {run.stored('predictions').height}/{sum(windows)} {windows}; "
          f"trades stored/exported {run.stored('trades').height}/{export['total_trades']}; "
          f"candles {m['candles']}/{backtest_candles(export)}")


@needs_freqtrade
def test_partial_exits_added_entries_and_the_final_force_exit_as_exported(tmp_path):
    run = backtest(tmp_path, "RLCollectPositions", FULL_TIMERANGE)
    m = assert_complete_run(run)
    export = run.export("RLCollectPositions")
    trades = assert_trades_as_exported(run, export)
    exits = [sum(not o["ft_is_entry"] for o in t["orders"]) for t in trades]
    entries = [sum(o["ft_is_entry"] for o in t["orders"]) for t in trades]
    assert max(exits) > 1 and max(entries) > 1, "the backtest has partial exits and added entries"
    assert trades[-1]["exit_reason"] == "force_exit"
    assert m["candles"] == backtest_candles(export)
    print(f"\ntrades stored/exported {len(trades)}/{export['total_trades']} "
          f"({sum(e > 1 for e in exits)} with partial exits, {collections.Counter(t['exit_reason'] for t in trades)})")


@needs_freqtrade
def test_short_trades_with_leverage_on_futures_as_exported(tmp_path):
    run = backtest(tmp_path, "RLCollectShorts", FULL_TIMERANGE, futures=True,
                   configs=("config.json", "config-futures.json"))
    assert_complete_run(run)
    export = run.export("RLCollectShorts")
    trades = assert_trades_as_exported(run, export)
    shorts = [t for t in trades if t["is_short"]]
    assert shorts and len(shorts) < len(trades) and {t["leverage"] for t in trades} == {3.0}
    assert any(sum(not o["ft_is_entry"] for o in t["orders"]) > 1 for t in shorts)
    print(f"\ntrades stored/exported {len(trades)}/{export['total_trades']} ({len(shorts)} shorts)")


@needs_freqtrade
def test_listing_or_importing_the_strategy_starts_no_collector(tmp_path):
    name, source = readme_strategy()
    run = freqtrade(tmp_path, "list-strategies", extra_sources=[(name, source)])
    assert name in run.stdout and "RLCollectPositions" in run.stdout
    assert "RLCollectMixin" not in run.stdout, "the mixin is not listed as a strategy"
    path = run.userdir / "strategies" / f"{name}.py"
    script = ("import importlib.util, sys\n"
              f"spec = importlib.util.spec_from_file_location('s', {str(path)!r})\n"
              "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
              "import rlcollect.shared\n"
              "assert not rlcollect.shared._SHARED\n")
    env = dict(os.environ, RLCOLLECT_BIN=str(tmp_path / "bin" / "rlcollect"))
    subprocess.run([FT_PYTHON, "-c", script], cwd=tmp_path, env=env, check=True, timeout=120)
    assert run.spawns == [] and not (tmp_path / "spawns.log").exists()
    assert not (tmp_path / "analysis_data").exists()


@needs_freqtrade
def test_hyperopt_records_the_freqai_predictions_once_and_no_epochs(tmp_path):
    name, source = readme_strategy()
    run = freqtrade(tmp_path, "hyperopt", "--freqaimodel", "LightGBMRegressor", "--timerange", README_TIMERANGE,
                    "--fee", "0.001", "--hyperopt-loss", "SharpeHyperOptLoss", "--spaces", "roi", "stoploss",
                    "-e", "3", "-j", "2", "--random-state", "1", strategy=name, extra_sources=[(name, source)],
                    configs=("config.json", "config-freqai.json"))
    m = assert_complete_run(run)
    assert set(m["streams"]) == {"predictions"} and m["candles"] == 0, "epochs are trials: no trades, no ticks"
    assert assert_predictions_as_freqai_wrote(run, "rlcollect-e2e", "LightGBMRegressor") == [1152, 1152, 576]


@needs_freqtrade
def test_dry_run_order_of_calls_with_freqtrades_own_trade_objects(tmp_path):
    name, source = readme_strategy()
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    env = dict(os.environ, RLCOLLECT_BIN=str(spy_binary(tmp_path)), RLCOLLECT_RUN="run")
    done = subprocess.run([FT_PYTHON, str(FT_DIR / "live_fills.py"), str(path), name], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "rlcollect:" not in done.stderr, done.stderr[-3000:]
    expected = json.loads(done.stdout)
    run = Run(tmp_path, done)
    m = assert_complete_run(run)
    # Trades: the closing fills only (a partial exit leaves its trade open; a
    # fill reported twice is stored once), with the closed trade's values.
    assert expected["partial_left_open"]
    ours = run.stored("trades").sort("trade_id").to_dicts()
    assert [t["trade_id"] for t in ours] == [t["trade_id"] for t in expected["trades"]] == [1, 2]
    for mine, ft in zip(ours, expected["trades"]):
        assert (mine["profit_abs"], mine["profit_ratio"]) == (ft["profit_abs"], ft["profit_ratio"])
        assert (mine["close_rate"], mine["exit_reason"], mine["amount"]) == (ft["close_rate"], ft["exit_reason"],
                                                                             ft["amount"])
    # Candle ticks: one per candle, however often the bot loops.
    assert m["candles"] == len(expected["ticks"]) == 4
    # Predictions: the newest candle first, then each new candle once.
    preds = run.stored("predictions").sort("ts")
    assert [t.isoformat() for t in preds["ts"]] == [p["ts"] for p in expected["predictions"]]
    assert preds["&-s_close"].to_list() == [p["&-s_close"] for p in expected["predictions"]]
    assert preds.height == 5


@pytest.mark.skipif(not RL_PYTHON, reason="opt-in: RLCOLLECT_RL_PYTHON is a Python with freqtrade, torch and "
                                          "stable-baselines3 (about 7 GB; see tests/freqtrade/README.md)")
def test_readme_quickstart_with_freqais_reinforcement_learner(tmp_path):
    """The README strategy with the RL parts FreqAI's docs prescribe, trained by
    ReinforcementLearner (PPO, the 5-action env) over the issue's range."""
    name, source = readme_strategy()
    rl_source = source + RL_VARIANT.format(base=name)
    run = backtest(tmp_path, "MyRLStrategy", README_TIMERANGE, "--freqaimodel", "ReinforcementLearner",
                   extra_sources=[("MyRLStrategy", rl_source)], configs=("config.json", "config-freqai-rl.json"),
                   python=RL_PYTHON)
    m = assert_complete_run(run)
    export = run.export("MyRLStrategy")
    windows = assert_predictions_as_freqai_wrote(run, "rlcollect-e2e-rl", "ReinforcementLearner")
    assert windows == [1152, 1152, 576]
    assert_trades_as_exported(run, export)
    assert m["candles"] == backtest_candles(export) == 2880


RL_VARIANT = '''

class MyRLStrategy({base}):
    """FreqAI's RL inputs and outputs: raw prices as features, the agent's action."""

    def feature_engineering_standard(self, dataframe, **kwargs):
        dataframe = super().feature_engineering_standard(dataframe, **kwargs)
        for column in ("open", "high", "low", "close"):
            dataframe[f"%-raw_{{column}}"] = dataframe[column]
        return dataframe

    def set_freqai_targets(self, dataframe, **kwargs):
        dataframe["&-action"] = 0
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe.loc[(dataframe["do_predict"] == 1) & (dataframe["&-action"] == 1), "enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe.loc[(dataframe["do_predict"] == 1) & (dataframe["&-action"] == 2), "exit_long"] = 1
        return dataframe
'''

if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v", "-s"]))
