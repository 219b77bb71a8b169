"""A real Freqtrade backtest streaming to rlcollect, checked against
Freqtrade's own export (see tests/freqtrade/README.md)."""

import json
import math
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from rlcollect import load

HERE = Path(__file__).resolve().parent.parent
FT_PYTHON = os.environ.get("FREQTRADE_PYTHON")

pytestmark = pytest.mark.skipif(
    not FT_PYTHON or not os.access(FT_PYTHON, os.X_OK),
    reason="FREQTRADE_PYTHON (a venv with freqtrade and this client) is not set; tests/run_all.sh sets it",
)


def backtest(tmp_path, extra=()):
    ud = tmp_path / "user_data"
    (ud / "data" / "binance").mkdir(parents=True)
    shutil.copytree(HERE / "freqtrade" / "strategies", ud / "strategies")
    shutil.copy(HERE / "data" / "UNITTEST_BTC-5m.feather", ud / "data" / "binance")
    env = dict(os.environ, RLCOLLECT_OUT=str(tmp_path / "analysis_data"), RLCOLLECT_RUN="backtest",
               FREQTRADE_OFFLINE_PAIRS="UNITTEST/BTC")
    cmd = [FT_PYTHON, str(HERE / "freqtrade" / "freqtrade_offline.py"), "backtesting",
           "-c", str(HERE / "freqtrade" / "config.json"), "--userdir", str(ud), "--strategy", "RLCollectE2E",
           "--timerange", "20180110-20180130", "--fee", "0.001", "--export", "trades", *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [archive] = (ud / "backtest_results").glob("*.zip")
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.endswith(".json") and not n.endswith("_config.json"))
        export = json.loads(z.read(name))["strategy"]["RLCollectE2E"]
    return tmp_path / "analysis_data" / "backtest", export


def test_every_trade_of_a_real_backtest_is_stored_as_freqtrade_exports_it(tmp_path):
    run, export = backtest(tmp_path)
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "complete" and m["rejected"] == 0
    assert m["candles"] > 5000, "populate_indicators streamed a candle per analysed row"
    stored = load(run)["trades"].collect().sort("open_date").to_dicts()
    theirs = sorted(export["trades"], key=lambda t: t["open_date"])
    assert len(stored) == len(theirs) == export["total_trades"] > 50
    for ours, ft in zip(stored, theirs):
        assert ours["pair"] == ft["pair"]
        assert ours["open_date"].isoformat() == ft["open_date"].replace(" ", "T")
        assert ours["close_date"].isoformat() == ft["close_date"].replace(" ", "T")
        assert ours["profit_abs"] == ft["profit_abs"]
        assert math.isclose(ours["profit_ratio"], ft["profit_ratio"], rel_tol=1e-9)
        assert ours["close_rate"] == ft["close_rate"] and ours["exit_reason"] == ft["exit_reason"]
        assert ours["trade_duration"] == ft["trade_duration"]
    summary = json.loads((run / "summary.json").read_text())["trades"]
    assert math.isclose(summary["profit_abs_total"], export["profit_total_abs"], rel_tol=1e-9)
    wins = sum(1 for t in theirs if t["profit_abs"] > 0)
    assert (summary["wins"], summary["losses"]) == (wins, len(theirs) - wins)
