"""The Python client against the real sidecar binary: sockets, SIGKILL,
spooling, Freqtrade helpers, the RL wrapper, and the notebook loaders, with
both transports (the ring, the default; and buffered lines)."""

import datetime as dt
import enum
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import rlcollect
import rlcollect.transport
from rlcollect import Collector, load, load_pandas, runs
from rlcollect.freqtrade import send_trades, trade_record

BIN = os.environ.get("RLCOLLECT_BIN", "rlcollect")
DATA = Path(__file__).resolve().parent.parent / "data"
T0 = dt.datetime(2024, 10, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True, params=["ring", "buffered"])
def transport(request, monkeypatch):
    """Every test with both transports (child processes inherit the choice)."""
    monkeypatch.setenv("RLCOLLECT_BIN", BIN)
    monkeypatch.setenv("RLCOLLECT_TRANSPORT", request.param)
    return request.param


def manifest(run_dir):
    return json.loads((Path(run_dir) / "manifest.json").read_text())


def test_every_method_round_trips(tmp_path):
    with Collector(tmp_path, "r") as c:
        assert c.pid and c.pid != os.getpid()
        c.trade(pair="BTC/USDT", profit_abs=1.5, exit_reason="roi", open_date=T0)
        c.episode(episode=1, total_reward=3.5, steps=10)
        c.prediction(ts=T0, pair="BTC/USDT", prediction=0.7, label="up", do_predict=1)
        c.signal(ts=T0, pair="BTC/USDT", stage="filter", accepted=False, reason="volatility")
        c.decision(ts=T0, pair="BTC/USDT", action=1, reward=0.1, custom_feature=3)
        c.candle(ts=T0, pair="BTC/USDT", close=100.0)
        c.send("my_metrics", loss=0.25, step=3)
        c.checkpoint()
    run = tmp_path / "r"
    m = manifest(run)
    assert m["status"] == "complete" and m["candles"] == 1 and m["rejected"] == 0
    frames = load(run)
    assert set(frames) == {"trades", "rl_episodes", "predictions", "signal_propagation", "model_decisions", "my_metrics"}
    t = frames["trades"].collect()
    assert t["profit_abs"].to_list() == [1.5] and t["open_date"].to_list() == [T0]
    d = frames["model_decisions"].collect()
    assert d["custom_feature"].to_list() == [3] and d["_source"].to_list()[0].endswith(f"-{os.getpid()}")
    assert frames["my_metrics"].collect()["loss"].to_list() == [0.25]
    assert frames["signal_propagation"].collect()["accepted"].to_list() == [False]


def test_nan_datetimes_numpy_and_pandas_values(tmp_path):
    with Collector(tmp_path, "r") as c:
        c.decision(ts=pd.Timestamp("2024-10-01 00:05:00", tz="UTC"), pair="A", reward=float("nan"),
                   total_reward=np.float64("-inf"), action=np.int64(2), position=np.float32(0.5),
                   q=[np.float64(1.0), 2.0], naive=dt.datetime(2024, 1, 1), missing=pd.NaT)
        c.decision(ts=dt.datetime(2024, 10, 1, 2, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), pair="A",
                   reward=np.float64(1.25), total_reward=0.0, action=1, position=1.0, q=[0.0, 0.0],
                   naive=dt.datetime(2024, 1, 2), missing=None)
    d = load(tmp_path / "r")["model_decisions"].collect().sort("_seq")
    assert math.isnan(d["reward"][0]) and d["reward"][1] == 1.25
    assert d["total_reward"][0] == float("-inf")
    assert d["action"].to_list() == [2, 1] and d["position"].to_list() == [0.5, 1.0]
    assert d["ts"].to_list() == [T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=5)]
    assert d["q"].to_list() == ["[1.0,2.0]", "[0.0,0.0]"]


def test_two_threads_send_at_once(tmp_path):
    c = Collector(tmp_path, "r")

    def work(k):
        for i in range(5000):
            c.decision(ts=T0, pair=f"T{k}", step=i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.close()
    d = load(tmp_path / "r")["model_decisions"].collect()
    assert d.height == 10_000
    for k in range(2):
        assert sorted(d.filter(pl.col("pair") == f"T{k}")["step"].to_list()) == list(range(5000))
    assert sorted(d["_seq"].to_list()) == list(range(10_000))


def test_sidecar_sigkilled_under_the_client_loses_nothing_after_recover(tmp_path, caplog, transport):
    c = Collector(tmp_path, "r", every_candles=10**9, every_secs=3600)
    for i in range(100):
        c.decision(ts=T0, pair="A", step=i)
    c.checkpoint()
    run = tmp_path / "r"
    deadline = time.time() + 20
    def published():
        try:
            return manifest(run)["published_seq"]
        except (OSError, ValueError):
            return 0  # the sidecar is still starting

    while time.time() < deadline and published() < 100:
        time.sleep(0.05)
    assert manifest(run)["published_seq"] == 100
    os.kill(c.pid, signal.SIGKILL)
    c._proc.wait()
    for i in range(100, 200):  # never raises into the strategy
        c.decision(ts=T0, pair="A", step=i)
    c.checkpoint()
    ring = c.ring_path
    assert c.close() is None
    spool = run / f"spool-{os.getpid()}.ndjson"
    if transport == "ring":  # the ring had room: the records wait there
        assert not c.spooling and not spool.exists() and ring.exists()
    else:
        assert c.spooling and spool.exists()
        assert any("spooling" in r.message or "spool" in r.message for r in caplog.records)
    subprocess.run([BIN, "recover", str(run)], check=True)
    assert not spool.exists()
    m = manifest(run)
    assert m["status"] == "recovered"
    d = load(run)["model_decisions"].collect().sort("_seq")
    assert d["step"].to_list() == list(range(200))
    assert sorted(d["_seq"].to_list()) == list(range(200))


WORKER = """
import os, sys, time
from pathlib import Path
from rlcollect import Collector
c = Collector(socket=sys.argv[1], source=sys.argv[2])  # the sidecar names its run: the ring goes there
assert (c.ring_path is not None) == (os.environ["RLCOLLECT_TRANSPORT"] == "ring")
assert c.run_dir == Path(sys.argv[4]) / "s" and (c.ring_path is None or c.ring_path.parent == c.run_dir / "rings")
open(sys.argv[3] + ".ready", "w").close()
while not os.path.exists(sys.argv[3] + ".go"):  # all connected before anyone leaves
    time.sleep(0.01)
for i in range(1000):
    c.decision(ts=1704067200000 + i, pair=sys.argv[2], step=i)
c.close()
"""


def test_socket_mode_with_three_processes(tmp_path):
    sock = tmp_path / "collector.sock"
    sidecar = subprocess.Popen([BIN, "run", "--out", str(tmp_path), "--run", "s", "--listen", str(sock),
                                "--exit-when-idle"], stdin=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not sock.exists() and time.time() < deadline:
        time.sleep(0.02)
    marks = [str(tmp_path / f"w{i}") for i in range(3)]
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(sock), f"w{i}", marks[i], str(tmp_path)])
               for i in range(3)]
    while not all(os.path.exists(m + ".ready") for m in marks):
        time.sleep(0.01)
    for m in marks:
        open(m + ".go", "w").close()
    for w in workers:
        assert w.wait(timeout=60) == 0
    assert sidecar.wait(timeout=60) == 0
    m = manifest(tmp_path / "s")
    assert m["sources"] == {"w0": 1000, "w1": 1000, "w2": 1000}
    d = load(tmp_path / "s")["model_decisions"].collect()
    assert d.height == 3000 and sorted(d["_seq"].to_list()) == list(range(3000))


def test_socket_client_reports_the_sidecar_pid(tmp_path):
    sock = tmp_path / "c.sock"
    sidecar = subprocess.Popen([BIN, "run", "--out", str(tmp_path), "--run", "s", "--listen", str(sock),
                                "--exit-when-idle"], stdin=subprocess.DEVNULL)
    while not sock.exists():
        time.sleep(0.02)
    with Collector(socket=str(sock), source="me") as c:
        assert c.pid == sidecar.pid
        c.trade(pair="X/Y", profit_abs=1.0)
    assert sidecar.wait(timeout=30) == 0


def test_freqtrade_trade_helper_on_real_backtest_trades(tmp_path):
    export = json.loads((DATA / "backtest-result.json").read_text())["strategy"]["StrategyTestV3"]
    with Collector(tmp_path, "ft") as c:
        assert send_trades(c, export["trades"]) == 179
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())["trades"]
    for row in export["results_per_pair"]:
        if row["key"] == "TOTAL":
            continue
        assert summary["by_pair"][row["key"]]["count"] == row["trades"]
        assert math.isclose(summary["by_pair"][row["key"]]["profit_abs"], row["profit_total_abs"], rel_tol=1e-12)
    t = load(tmp_path / "ft")["trades"].collect()
    assert t.height == 179 and t["trade_duration"].sum() == sum(x["trade_duration"] for x in export["trades"])


def test_freqtrade_trade_helper_from_trade_attributes():
    class Trade:  # the attributes Freqtrade's LocalTrade has at exit
        id, pair, is_short, leverage = 7, "ETH/BTC", False, 1.0
        open_date = T0
        close_date = T0 + dt.timedelta(minutes=95)
        open_rate, close_rate, amount, stake_amount = 0.05, 0.051, 0.2, 0.01
        fee_open = fee_close = 0.0025
        close_profit, close_profit_abs = 0.015, 0.00015
        exit_reason, enter_tag, min_rate, max_rate = "roi", "tag", 0.049, 0.052

    r = trade_record(Trade(), strategy="S")
    assert (r["trade_id"], r["profit_ratio"], r["profit_abs"], r["trade_duration"], r["strategy"]) == (7, 0.015, 0.00015, 95, "S")


class Actions(enum.Enum):
    Neutral = 0
    Long_enter = 1
    Long_exit = 2


def tiny_freqai_env_class():
    gym = pytest.importorskip("gymnasium")

    class TinyFreqAIEnv(gym.Env):
        """Emits FreqAI BaseEnvironment's info dict keys."""

        observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        action_space = gym.spaces.Discrete(3)

        def __init__(self):
            self.actions = Actions

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self._tick, self._total, self._pos = 0, 0.0, 0
            return np.zeros(1, np.float32), {}

        def step(self, action):
            self._tick += 1
            self._pos = 1 if action == 1 else 0 if action == 2 else self._pos
            reward = 0.1 if self._pos else -0.01
            self._total += reward
            info = {"tick": self._tick, "action": int(action), "total_reward": self._total,
                    "total_profit": 1.0 + self._total / 10, "position": self._pos, "trade_duration": 0,
                    "current_profit_pct": 0.0}
            return np.zeros(1, np.float32), reward, self._tick >= 10, False, info

    return TinyFreqAIEnv


def play(env, episodes=3):
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            done = term or trunc


def test_rl_wrapper_on_a_gymnasium_env_with_freqai_info(tmp_path):
    import gymnasium as gym

    from rlcollect.rl import RLCollectWrapper

    TinyFreqAIEnv = tiny_freqai_env_class()
    c = Collector(tmp_path, "rl")
    env = RLCollectWrapper(TinyFreqAIEnv(), c, pair="BTC/USDT", model="PPO")
    assert isinstance(env, gym.Wrapper)
    play(env)
    c.close()
    frames = load(tmp_path / "rl")
    d = frames["model_decisions"].collect()
    assert d.height == 30
    assert set(d["action_name"].to_list()) <= {"Neutral", "Long_enter", "Long_exit"}
    assert d["current_profit_pct"].to_list() == [0.0] * 30
    e = frames["rl_episodes"].collect().sort("episode")
    assert e["episode"].to_list() == [0, 1, 2] and e["steps"].to_list() == [10, 10, 10]


def test_rl_env_mixin_records_from_inside_the_env_class(tmp_path, monkeypatch):
    from rlcollect.rl import RLCollectEnvMixin

    base = tiny_freqai_env_class()

    class MyRLEnv(RLCollectEnvMixin, base):  # as inside a ReinforcementLearner subclass
        rlcollect_out = str(tmp_path)
        rlcollect_run = "mixin"
        rlcollect_model = "PPO"
        pair = "ETH/BTC"

    env = MyRLEnv()
    play(env, episodes=2)
    env._rlcollect_recorder().collector.close()
    frames = load(tmp_path / "mixin")
    d = frames["model_decisions"].collect()
    assert d.height == 20 and set(d["pair"].to_list()) == {"ETH/BTC"} and set(d["model"].to_list()) == {"PPO"}
    assert frames["rl_episodes"].collect()["steps"].to_list() == [10, 10]


def test_sb3_step_recorder_logic_and_callback_when_installed(tmp_path):
    from rlcollect.rl import RLCollectCallback, StepRecorder

    with Collector(tmp_path, "sb3") as c:
        rec = StepRecorder(c, pair="BTC/USDT")
        for t in range(4):  # two envs, as an SB3 VecEnv's locals hold them
            rec.on_step({
                "infos": [{"tick": t, "action": 1, "total_reward": t, "position": 1},
                          {"tick": t, "action": 0, "total_reward": -t, "position": 0}],
                "actions": np.array([1, 0]), "rewards": np.array([1.0, -1.0]),
                "dones": np.array([t == 3, False]),
            })
    frames = load(tmp_path / "sb3")
    assert frames["model_decisions"].collect().height == 8
    assert frames["rl_episodes"].collect().height == 1
    if RLCollectCallback is None:
        pytest.skip("stable-baselines3 is not installed (it needs torch, too heavy for CI)")


def test_loaders_list_runs_and_give_pandas(tmp_path):
    for run in ("a", "b"):
        with Collector(tmp_path, run) as c:
            c.trade(pair="X/Y", profit_abs=1.0)
    listed = runs(tmp_path)
    assert [r["run_id"] for r in listed] == ["a", "b"]
    assert listed[0]["status"] == "complete" and listed[0]["rows"] == {"trades": 1}
    df = load_pandas(tmp_path / "a")["trades"]
    assert isinstance(df, pd.DataFrame) and df["profit_abs"].tolist() == [1.0]
    with pytest.raises(FileNotFoundError, match="not an rlcollect run"):
        load(tmp_path / "nope")


def test_a_missing_binary_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RLCOLLECT_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    # Not in this environment's scripts folder either (pip install puts it there).
    monkeypatch.setattr(rlcollect.transport, "_install_schemes", lambda: [str(tmp_path)])
    with pytest.raises(FileNotFoundError, match=r"pip install \./python"):
        Collector(tmp_path, "r")


def test_the_binary_pip_installed_beside_the_client_is_found_without_path(tmp_path, monkeypatch):
    monkeypatch.delenv("RLCOLLECT_BIN")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "rlcollect").symlink_to(os.path.abspath(BIN))
    monkeypatch.setattr(rlcollect.transport, "_install_schemes", lambda: [str(tmp_path / "none"), str(scripts)])
    assert rlcollect.find_binary() == str(scripts / "rlcollect")


def test_encode_writes_python_nan_tokens_and_compact_json():
    assert rlcollect.encode({"a": float("nan"), "b": 1}) == b'{"a":NaN,"b":1}\n'
    assert rlcollect.encode({"t": T0})[:-1].decode() in ('{"t":"2024-10-01T00:00:00+00:00"}',)
