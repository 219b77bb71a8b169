"""Live runs into a real S3-compatible store (SeaweedFS) as Delta Lake tables:
``rlcollect run --out s3://...`` keeps each run durable in its own state
directory and ships every checkpoint's parts while it runs.

* four sidecars as four hosts (two of them in the same run id) write at once
  into one bucket; ``deltalake``, polars ``scan_delta`` and
  ``rlcollect.load("s3://...")`` find every row of every host exactly once,
  and rows are readable while the runs go on;
* the store stopped mid-run and started again: nothing lost, nothing twice;
* a sidecar SIGKILLed at random moments (mid-upload, mid-commit) and
  restarted on the same run: the table equals the local run, each row once;
* the Python client with ``out="s3://..."``;
* DuckDB's own ``delta`` extension reads the tables (in its own venv,
  RLCOLLECT_DUCKDB_DELTA_PYTHON: the extension is pinned to a DuckDB
  version, from PyPI's ``duckdb-extension-delta``).

The binary comes from RLCOLLECT_BIN.
"""

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from s3store import BIN, KEY, SECRET, SeaweedFS, storage_options

deltalake = pytest.importorskip("deltalake")


@pytest.fixture
def store(tmp_path):
    s = SeaweedFS(tmp_path / "weed").start()
    yield s
    s.stop()


def env(store: SeaweedFS) -> dict:
    return dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_ENDPOINT_URL=store.endpoint,
                RUST_LOG="warn")


def lines(host: str, start: int, n: int) -> bytes:
    """Decisions `start..start+n` of `host`, a candle after every tenth."""
    out = []
    for i in range(start, start + n):
        out.append(f'{{"stream":"model_decisions","ts":{1704067200000 + i * 60000},"pair":"BTC/USDT",'
                   f'"host":"{host}","step":{i},"action":{i % 3},"reward":{i * 0.5}}}\n')
        if i % 10 == 9:
            out.append('{"stream":"candle"}\n')
    return "".join(out).encode()


def sidecar(store: SeaweedFS, state: Path, host: str, run: str, prefix: str = "live") -> subprocess.Popen:
    cmd = [BIN, "run", "--out", f"s3://lake/{prefix}", "--state-dir", str(state), "--host", host, "--run", run,
           "--every-candles", "10", "--min-free-mb", "0", "--upload-timeout-secs", "120"]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, env=env(store))


def table(store: SeaweedFS, prefix: str = "live", stream: str = "model_decisions") -> pl.DataFrame:
    uri = f"s3://lake/{prefix}/{stream}"
    return pl.from_arrow(deltalake.DeltaTable(uri, storage_options=storage_options(store)).to_pyarrow_table())


def version(store: SeaweedFS, prefix: str = "live") -> int:
    try:
        return deltalake.DeltaTable(f"s3://lake/{prefix}/model_decisions",
                                    storage_options=storage_options(store)).version()
    except Exception:  # no table yet
        return -1


def assert_each_once(df: pl.DataFrame) -> None:
    dups = df.group_by("host", "step").len().filter(pl.col("len") > 1)
    assert dups.height == 0, f"rows stored twice: {dups.head()}"


def test_four_hosts_write_live_into_one_bucket_each_row_once(store, tmp_path):
    hosts = {"h0": "shared", "h1": "shared", "h2": "r2", "h3": "r3"}
    n = 3000
    procs = {h: sidecar(store, tmp_path / f"state-{h}", h, run) for h, run in hosts.items()}
    seen_live = 0
    for batch in range(30):
        for h, p in procs.items():
            p.stdin.write(lines(h, batch * 100, 100))
            p.stdin.flush()
        time.sleep(0.1)
        if batch == 25:
            seen_live = table(store).height if version(store) >= 0 else 0
    for p in procs.values():
        p.stdin.close()
    for h, p in procs.items():
        assert p.wait(timeout=180) == 0, h
    assert seen_live > 0, "rows are in the table while the runs go on"

    df = table(store)
    assert_each_once(df)
    assert df.group_by("host").len().sort("host").rows() == [(h, n) for h in sorted(hosts)]
    assert dict(df.group_by("run_id").len().rows()) == {"shared": 2 * n, "r2": n, "r3": n}
    scanned = pl.scan_delta("s3://lake/live/model_decisions", storage_options=storage_options(store)).collect()
    assert scanned.height == 4 * n

    import rlcollect

    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_ENDPOINT_URL=store.endpoint)
    frames = rlcollect.load("s3://lake/live", run="shared")
    assert set(frames) == {"model_decisions"}
    shared = frames["model_decisions"].collect()
    assert sorted(shared["host"].unique()) == ["h0", "h1"] and shared.height == 2 * n


def test_the_store_down_mid_run_loses_nothing_and_doubles_nothing(store, tmp_path):
    p = sidecar(store, tmp_path / "state", "h", "down")
    p.stdin.write(lines("h", 0, 1000))
    p.stdin.flush()
    deadline = time.monotonic() + 60
    while version(store) < 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert version(store) >= 0, "the first checkpoint landed"
    store.stop()  # uploads and commits now fail and are retried
    for k in range(10):
        p.stdin.write(lines("h", 1000 + k * 200, 200))
        p.stdin.flush()
        time.sleep(0.3)
    assert p.poll() is None, "the run goes on while the store is down"
    store.start()
    p.stdin.close()
    assert p.wait(timeout=180) == 0
    df = table(store)
    assert_each_once(df)
    assert sorted(df["step"].to_list()) == list(range(3000))


def test_a_sidecar_killed_mid_upload_or_commit_recovers_to_exactly_once(store, tmp_path):
    state, run = tmp_path / "state", "killed"
    rnd = random.Random(int(os.environ.get("RLCOLLECT_TEST_SEED", time.time_ns() % 1_000_000)))
    sent = 0
    for life in range(4):
        p = sidecar(store, state, "h", run)
        last_life = life == 3
        end = time.monotonic() + (1.0 if last_life else rnd.uniform(1.5, 4.0))
        while time.monotonic() < end:
            try:
                p.stdin.write(lines("h", sent, 100))
                p.stdin.flush()
            except BrokenPipeError:
                break
            sent += 100
            time.sleep(0.02)
        if last_life:
            p.stdin.close()
            assert p.wait(timeout=180) == 0
        else:
            p.send_signal(signal.SIGKILL)  # uploads and commits run all the time here
            p.wait()
    df = table(store)
    assert_each_once(df)

    import rlcollect

    local = rlcollect.load(state / run)["model_decisions"].collect()
    assert sorted(df["step"].to_list()) == sorted(local["step"].to_list()), "the table equals the local run"
    assert local.height >= sent * 0.5, (local.height, sent)


def test_the_python_client_ships_a_run_to_the_store(store, tmp_path, monkeypatch):
    import rlcollect

    for k, v in env(store).items():
        monkeypatch.setenv(k, v)
    c = rlcollect.Collector(out="s3://lake/client", run="c1", state_dir=str(tmp_path / "state"), host="notebook",
                            every_candles=50)
    for i in range(500):
        c.decision(ts=1704067200000 + i * 60000, pair="BTC/USDT", host="notebook", step=i, action=i % 3,
                   reward=0.1 * i)
        if i % 10 == 9:
            c.candle()
    c.close()
    assert (tmp_path / "state" / "c1" / "manifest.json").exists(), "the run is local"
    df = rlcollect.load("s3://lake/client", run="c1")["model_decisions"].collect()
    assert sorted(df["step"].to_list()) == list(range(500))


DUCKDB_READ = """
import duckdb, json, os, sys
import duckdb_extension_delta, duckdb_extension_httpfs
def ext(module, name):
    folder = os.path.join(os.path.dirname(module.__file__), "extensions", "v" + duckdb.__version__)
    return os.path.join(folder, name + ".duckdb_extension")
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"LOAD '{ext(duckdb_extension_httpfs, 'httpfs')}'")
con.execute(f"LOAD '{ext(duckdb_extension_delta, 'delta')}'")
endpoint, key, secret, uri = sys.argv[1:]
con.execute(f\"CREATE SECRET (TYPE s3, KEY_ID '{key}', SECRET '{secret}', ENDPOINT '{endpoint}', \"
            f\"URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')\")
rows = con.sql(f"SELECT run_id, host, step FROM delta_scan('{uri}')").fetchall()
print(json.dumps(rows))
"""


def test_duckdb_delta_extension_reads_a_live_table(store, tmp_path):
    python = os.environ.get("RLCOLLECT_DUCKDB_DELTA_PYTHON")
    if not python:
        pytest.skip("RLCOLLECT_DUCKDB_DELTA_PYTHON (tests/run_all.sh makes that venv) is not set")
    for host, run in (("h0", "a"), ("h1", "a"), ("h2", "b")):
        p = sidecar(store, tmp_path / f"state-{host}", host, run, prefix="duck")
        p.communicate(lines(host, 0, 700))
        assert p.returncode == 0
    endpoint = store.endpoint.removeprefix("http://")
    out = subprocess.run([python, "-c", DUCKDB_READ, endpoint, KEY, SECRET, "s3://lake/duck/model_decisions"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads(out.stdout)
    assert sorted(map(tuple, rows)) == sorted((run, host, i) for host, run in (("h0", "a"), ("h1", "a"), ("h2", "b"))
                                              for i in range(700))


def test_credentials_and_endpoint_from_an_aws_profile(store, tmp_path, monkeypatch):
    """No AWS_* keys: the binary and rlcollect.load read `aws configure`'s files."""
    (tmp_path / "credentials").write_text(f"[default]\naws_access_key_id = wrong\n\n[lab]\n"
                                          f"aws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    (tmp_path / "config").write_text(f"[profile lab]\nregion = us-east-1\nendpoint_url = {store.endpoint}\n")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "lab")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    cmd = [BIN, "run", "--out", "s3://lake/profile", "--state-dir", str(tmp_path / "state"), "--run", "p",
           "--host", "h", "--min-free-mb", "0"]
    done = subprocess.run(cmd, input=lines("h", 0, 300), capture_output=True)
    assert done.returncode == 0, done.stderr[-2000:]

    import rlcollect

    df = rlcollect.load("s3://lake/profile", run="p")["model_decisions"].collect()
    assert sorted(df["step"].to_list()) == list(range(300))
