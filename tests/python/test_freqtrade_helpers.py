"""rlcollect.freqtrade without freqtrade: prediction selection, the mixin's
dry-run/live rules, bad input, and what importing it does. The real Freqtrade
runs are in test_freqtrade_e2e.py."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import rlcollect.shared
from rlcollect import load, shared_collector
from rlcollect.freqtrade import RLCollectMixin, closes_trade, prediction_records, trade_record

BIN = os.environ.get("RLCOLLECT_BIN", "rlcollect")
T0 = pd.Timestamp("2018-01-15", tz="UTC")
FIVE = pd.Timedelta(minutes=5)


@pytest.fixture(autouse=True)
def binary(monkeypatch):
    monkeypatch.setenv("RLCOLLECT_BIN", BIN)


def freqai_frame(end, n=10, seed=0):
    """A dataframe as FreqAI hands it back: OHLCV plus its output columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "date": pd.date_range(end=end, periods=n, freq="5min", tz="UTC"), "close": 1.0,
        "&-s_close": rng.normal(size=n), "&-s_close_mean": 0.1, "&-s_close_std": 0.2,
        "&-extra": rng.normal(size=n), "do_predict": np.ones(n), "DI_values": rng.random(n), "%-feature": 1.0,
    })


class Strategy(RLCollectMixin):
    """The mixin on a stand-in strategy: only what the mixin reads."""

    timeframe = "5m"
    rlcollect_run = "r"

    def __init__(self, out, mode="dry_run"):
        self.rlcollect_out = str(out)
        self.config = {"runmode": mode, "freqaimodel": "LightGBMRegressor"}


def close_run(out):
    shared_collector(str(out), "r").close()
    return load(out / "r")


def test_importing_the_helpers_imports_neither_freqtrade_nor_pandas():
    code = ("import sys, rlcollect.freqtrade as f\n"
            "assert 'freqtrade' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)\n"
            "assert f.RLCollectMixin.__bases__ == (object,)  # IStrategy only when freqtrade is there\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_prediction_records_keep_every_freqai_column_within_the_bounds():
    df = freqai_frame(T0 + 9 * FIVE)
    recs = prediction_records(df, "A/B", model="M", start=T0 + 2 * FIVE, stop=T0 + 8 * FIVE, after=T0 + 3 * FIVE)
    assert [r["ts"] for r in recs] == [T0 + i * FIVE for i in range(4, 8)]
    r = recs[0]
    assert r["prediction"] == r["&-s_close"] == df["&-s_close"][4] and r["&-extra"] == df["&-extra"][4]
    assert (r["&-s_close_mean"], r["&-s_close_std"], r["DI_values"]) == (0.1, 0.2, df["DI_values"][4])
    assert r["do_predict"] == 1 and type(r["do_predict"]) is int
    assert "%-feature" not in r and "close" not in r and (r["pair"], r["model"]) == ("A/B", "M")
    classes = pd.DataFrame({"date": [T0], "&-class": ["up"], "do_predict": [np.nan]})
    [c] = prediction_records(classes, "A/B")
    assert c["label"] == "up" and "prediction" not in c and c["do_predict"] is None


def test_live_sends_the_newest_candle_then_each_new_candle_once(tmp_path):
    s = Strategy(tmp_path)
    s.bot_start()
    frames = [freqai_frame(T0 + k * FIVE, seed=k) for k in (0, 1, 1, 4)]  # a repeat, then two skipped candles
    for df in frames:
        s.rlcollect_predictions(df, {"pair": "A/B"})
    s.rlcollect_predictions(freqai_frame(T0 + 4 * FIVE, seed=9), {"pair": "C/D"})
    p = close_run(tmp_path)["predictions"].collect().sort("pair", "ts")
    ab = p.filter(p["pair"] == "A/B")
    assert ab["ts"].to_list() == [T0 + k * FIVE for k in (0, 1, 2, 3, 4)]
    assert ab["&-s_close"].to_list()[:2] == [frames[0]["&-s_close"].iloc[-1], frames[1]["&-s_close"].iloc[-1]]
    assert p.filter(p["pair"] == "C/D").height == 1 and set(p["model"]) == {"LightGBMRegressor"}


def test_hyperopt_epochs_and_other_modes_record_nothing(tmp_path):
    s = Strategy(tmp_path, mode="hyperopt")
    s.bot_start()
    s.bot_loop_start(current_time=T0)
    s.rlcollect_predictions(freqai_frame(T0), {"pair": "A/B"})
    s._rlcollect_state.pid = -1  # as in a hyperopt worker: bot_start ran in another process
    s.rlcollect_predictions(freqai_frame(T0 + FIVE), {"pair": "A/B"})
    m = close_run(tmp_path)
    assert m["predictions"].collect().height == 10 and "trades" not in m
    plot = Strategy(tmp_path / "plot", mode="plot")
    plot.bot_start()
    plot.rlcollect_predictions(freqai_frame(T0), {"pair": "A/B"})
    assert not (tmp_path / "plot").exists() and not any(k[1].startswith(str(tmp_path / "plot"))
                                                        for k in rlcollect.shared._SHARED)


def test_bad_input_is_logged_never_raised(tmp_path, caplog):
    s = Strategy(tmp_path)
    caplog.set_level(logging.WARNING, "rlcollect")
    s.rlcollect_predictions(pd.DataFrame({"date": [T0], "close": [1.0]}), {"pair": "A/B"})
    s.rlcollect_predictions(pd.DataFrame({"date": [T0], "close": [1.0]}), {"pair": "A/B"})  # warned once
    s.rlcollect_predictions("not a dataframe", {"pair": "A/B"})
    s.rlcollect_predictions(freqai_frame(T0).drop(columns="date"), None)
    s.order_filled("A/B", object(), object(), T0)  # a trade object without any field
    s.bot_loop_start(current_time=None)

    class Closed:  # closed, but without a pair
        is_open, entry_side, id = False, "buy", 3

    class Exit:
        ft_order_side = "sell"

    s.order_filled("A/B", Closed(), Exit(), T0)
    text = caplog.text
    assert text.count("has no FreqAI columns") == 2  # A/B once, and the pair-less call
    assert "without a pair" in text
    assert closes_trade(object(), object()) is False
    assert trade_record(object())["pair"] is None


def test_a_collector_that_cannot_start_is_logged_once_and_the_strategy_goes_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RLCOLLECT_BIN", str(tmp_path / "missing"))
    s = Strategy(tmp_path)
    caplog.set_level(logging.ERROR, "rlcollect")
    s.bot_start()
    s.bot_loop_start(current_time=T0)
    s.rlcollect_predictions(freqai_frame(T0), {"pair": "A/B"})
    assert caplog.text.count("cannot start or join the collector") == 1


def test_a_callback_that_skips_super_is_reported(tmp_path, caplog):
    class Forgetful(Strategy):
        def order_filled(self, pair, trade, order, current_time, **kwargs):
            pass  # no super(): the mixin never sees a fill

        def bot_loop_start(self, current_time=None, **kwargs):
            super().bot_loop_start(current_time=current_time, **kwargs)

    caplog.set_level(logging.ERROR, "rlcollect")
    Forgetful(tmp_path).bot_start()
    close_run(tmp_path)
    assert "Forgetful.order_filled does not call super().order_filled" in caplog.text
    assert "bot_loop_start does not" not in caplog.text


def test_one_collector_per_process_and_run(tmp_path):
    a = shared_collector(str(tmp_path), "r")
    assert shared_collector(str(tmp_path), "r") is a and shared_collector(str(tmp_path), "other") is not a
    a.close()
    b = shared_collector(str(tmp_path), "r")
    assert b is not a
    b.close()
    shared_collector(str(tmp_path), "other").close()


def test_candle_ticks_once_per_candle(tmp_path):
    s = Strategy(tmp_path)
    for t in (T0, T0, T0 + FIVE, T0 + FIVE, T0 + 3 * FIVE):  # live loops see a candle several times
        s.bot_loop_start(current_time=t.to_pydatetime())
    shared_collector(str(tmp_path), "r").close()
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["candles"] == 3
