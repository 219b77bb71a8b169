"""One run, many processes (issue: scattered collector instances). Real
processes: simultaneous starts, multiprocessing pools (fork and spawn), an
early leaver, and a stale socket left by a SIGKILLed sidecar."""

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlcollect import Collector, load

BIN = os.environ.get("RLCOLLECT_BIN", "rlcollect")


@pytest.fixture(autouse=True, params=["ring", "buffered"])
def transport(request, monkeypatch):
    """Every test with both transports (child processes inherit the choice)."""
    monkeypatch.setenv("RLCOLLECT_BIN", BIN)
    monkeypatch.setenv("RLCOLLECT_TRANSPORT", request.param)
    monkeypatch.delenv("RLCOLLECT_RUN", raising=False)
    return request.param


def run_dirs(out):
    return [p for p in Path(out).iterdir() if p.is_dir() and not p.is_symlink()]


def manifest(run_dir):
    return json.loads((Path(run_dir) / "manifest.json").read_text())


PRODUCER = """
import sys, time
from rlcollect import Collector
out, run, n, go, pause, leave = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), sys.argv[6]
while not __import__("os").path.exists(go):
    time.sleep(0.001)
c = Collector(out, run)
print(c.pid, flush=True)
for i in range(n):
    c.decision(ts=1704067200000 + i, pair="BTC/USDT", step=i)
    if pause and i % 100 == 0:
        time.sleep(pause)
while leave and not __import__("os").path.exists(leave):
    time.sleep(0.001)
c.close()
"""


def start(out, run, n, go, pause=0.0, leave=""):
    return subprocess.Popen([sys.executable, "-c", PRODUCER, str(out), run, str(n), str(go), str(pause), str(leave)],
                            stdout=subprocess.PIPE, text=True)


def test_four_processes_started_together_share_one_sidecar_and_one_run(tmp_path):
    go = tmp_path / "go"
    procs = [start(tmp_path / "out", "shared", 25_000, go) for _ in range(4)]
    time.sleep(0.3)
    go.touch()  # all four start at the same moment
    pids = set()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        pids.add(int(out.split()[0]))
    assert len(pids) == 1, f"exactly one sidecar ever ran, saw {pids}"
    [run] = run_dirs(tmp_path / "out")
    deadline = time.time() + 30
    while manifest(run)["status"] == "running" and time.time() < deadline:
        time.sleep(0.05)
    m = manifest(run)
    assert m["status"] == "complete"
    assert len(m["sources"]) == 4 and set(m["sources"].values()) == {25_000}
    d = load(run)["model_decisions"].collect()
    assert d.height == 100_000 and d["_source"].n_unique() == 4
    assert sorted(d["_seq"].to_list()) == list(range(100_000))


def pool_task(k):
    c = Collector(os.environ["TEST_OUT"])  # no run id: the parent's RLCOLLECT_RUN
    for i in range(1000):
        c.decision(ts=1704067200000 + i, pair=f"W{k}", step=i)
    c.close()
    return c.run


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_pool_writes_into_one_run(tmp_path, monkeypatch, method):
    out = tmp_path / "out"
    monkeypatch.setenv("TEST_OUT", str(out))
    parent = Collector(out)  # sets RLCOLLECT_RUN for the workers
    parent.trade(pair="X/Y", profit_abs=1.0)
    with mp.get_context(method).Pool(3) as pool:
        runs = pool.map(pool_task, range(6))
    assert set(runs) == {parent.run}
    parent.close()
    [run] = run_dirs(out)
    deadline = time.time() + 30
    while manifest(run)["status"] == "running" and time.time() < deadline:
        time.sleep(0.05)
    frames = load(run)
    assert frames["model_decisions"].collect().height == 6000
    assert frames["trades"].collect().height == 1
    assert manifest(run)["status"] == "complete"


def test_the_first_process_leaving_early_loses_nothing_and_the_run_ends_with_the_last(tmp_path):
    go = tmp_path / "go"
    go.touch()
    leave = tmp_path / "leave"
    first = start(tmp_path / "out", "r", 1000, go, leave=leave)  # it spawns the sidecar
    sidecar = int(first.stdout.readline())
    late = [start(tmp_path / "out", "r", 3000, go, pause=0.05) for _ in range(2)]
    deadline = time.time() + 30
    while time.time() < deadline:  # everyone connected
        try:
            if len(manifest(tmp_path / "out" / "r").get("connected", [])) == 3:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    leave.touch()
    assert first.wait(timeout=60) == 0
    time.sleep(0.3)
    os.kill(sidecar, 0)  # still running: the others are sending
    assert manifest(tmp_path / "out" / "r")["status"] == "running"
    for p in late:
        assert p.wait(timeout=120) == 0
    deadline = time.time() + 30
    while manifest(tmp_path / "out" / "r")["status"] == "running" and time.time() < deadline:
        time.sleep(0.05)
    m = manifest(tmp_path / "out" / "r")
    assert m["status"] == "complete" and m["connected"] == []
    assert sorted(m["sources"].values()) == [1000, 3000, 3000]
    assert sorted(load(tmp_path / "out" / "r")["model_decisions"].collect()["_seq"].to_list()) == list(range(7000))


def test_a_stale_socket_of_a_sigkilled_sidecar_is_recovered_and_the_run_goes_on(tmp_path, caplog):
    out = tmp_path / "out"
    first = Collector(out, "r")
    for i in range(500):
        first.decision(ts=1704067200000 + i, pair="A", step=i)
    first.checkpoint()  # sends the buffer now
    time.sleep(0.8)  # past the write-ahead log's 200 ms group commit
    os.kill(first.pid, signal.SIGKILL)
    first._proc.wait()
    first.close()
    sock = out / "r" / "collector.sock"
    assert sock.exists(), "the dead sidecar left its socket"
    second = Collector(out, "r")
    assert second.pid != first.pid
    assert "ended before this client connected" not in caplog.text, "the new sidecar waited for its producer"
    for i in range(500, 1000):
        second.decision(ts=1704067200000 + i, pair="A", step=i)
    second.close()
    m = manifest(out / "r")
    assert m["status"] == "complete"
    d = load(out / "r")["model_decisions"].collect().sort("_seq")
    assert d["step"].to_list() == list(range(1000))
    assert d["_seq"].to_list() == list(range(1000))


def test_producers_arriving_while_the_run_ends_join_or_continue_it_without_loss(tmp_path):
    # Each producer starts as the previous one leaves, so some arrive during a
    # final flush: they either join before it starts or spawn a successor that
    # waits for the run's lock and continues the same run directory.
    go = tmp_path / "go"
    go.touch()
    sidecars = set()
    for k in range(6):
        p = start(tmp_path / "out", "r", 200, go)
        sidecars.add(int(p.stdout.readline()))
        assert p.wait(timeout=60) == 0
    deadline = time.time() + 30
    while manifest(tmp_path / "out" / "r")["status"] == "running" and time.time() < deadline:
        time.sleep(0.05)
    m = manifest(tmp_path / "out" / "r")
    assert m["status"] == "complete"
    assert sum(m["sources"].values()) == 1200 and len(m["sources"]) == 6
    assert sorted(load(tmp_path / "out" / "r")["model_decisions"].collect()["_seq"].to_list()) == list(range(1200))
    assert len(run_dirs(tmp_path / "out")) == 1
