"""`pip install ./python` is the whole install: the wheel carries the
`rlcollect` binary, and a Collector finds it with no RLCOLLECT_BIN and no
PATH entry (a venv's Python run without activating the venv)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FRESH = os.environ.get("RLCOLLECT_FRESH_VENV")

pytestmark = pytest.mark.skipif(
    not FRESH, reason="RLCOLLECT_FRESH_VENV (a venv made by `pip install ./python`) is not set; tests/run_all.sh sets it"
)

SCRIPT = """
import os, sys
from rlcollect import Collector, find_binary
print(find_binary())
with Collector(sys.argv[1], "r") as c:
    print(os.readlink(f"/proc/{c.pid}/exe"))
    for i in range(100):
        c.decision(ts=1_700_000_000_000 + i, pair="BTC/USDT", action=i % 3, reward=0.5)
    c.trade(pair="BTC/USDT", profit_abs=1.25)
"""


def test_a_fresh_venv_runs_a_collector_with_the_installed_binary(tmp_path):
    python = Path(FRESH) / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("RLCOLLECT_BIN", "RLCOLLECT_RUN", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"  # neither the venv's bin nor a cargo target folder
    done = subprocess.run([str(python), "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found, running = done.stdout.split()
    installed = Path(FRESH) / "bin" / "rlcollect"
    assert Path(found) == installed
    assert Path(running).resolve() == installed.resolve(), "the sidecar is the binary the wheel installed"
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["status"] == "complete"
    assert m["streams"]["model_decisions"]["rows"] == 100 and m["streams"]["trades"]["rows"] == 1


def test_the_installed_binary_is_the_cli():
    out = subprocess.run([str(Path(FRESH) / "bin" / "rlcollect"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("rlcollect "), out
    assert sys.version_info >= (3, 9)
