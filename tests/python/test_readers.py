"""Real readers (pyarrow, polars, DuckDB, pandas) read what rlcollect wrote.

The binary comes from RLCOLLECT_BIN (set by tests/run_all.sh after `cargo test`
built it). Files are listed from manifest.json, as a notebook should.
"""

import json
import math
import os
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

BIN = os.environ.get("RLCOLLECT_BIN", "rlcollect")


def run_stdin(out: Path, run: str, lines, *extra):
    data = "".join(line + "\n" for line in lines).encode()
    subprocess.run([BIN, "run", "--out", str(out), "--run", run, *extra], input=data, check=True)
    return out / run


def manifest(run_dir: Path):
    return json.loads((run_dir / "manifest.json").read_text())


def files(run_dir: Path, stream: str, fmt: str = "parquet"):
    m = manifest(run_dir)
    return [str(run_dir / f["path"]) for f in m["streams"][stream]["files"] if f["format"] == fmt]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    subprocess.run([BIN, "demo", "--out", str(out), "--candles", "3000", "--every-candles", "1000"], check=True,
                   stdout=subprocess.DEVNULL)
    return (out / "latest").resolve()


STREAMS = ["trades", "rl_episodes", "predictions", "signal_propagation", "model_decisions"]


@pytest.mark.parametrize("stream", STREAMS)
def test_pyarrow_reads_every_part_with_typed_columns(demo_run, stream):
    m = manifest(demo_run)
    tables = [pq.read_table(f) for f in files(demo_run, stream)]
    assert len(tables) >= 1
    table = pa.concat_tables(tables, promote_options="default")
    assert table.num_rows == m["streams"][stream]["rows"]
    assert table.schema.field("_seq").type == pa.uint64()
    assert table.schema.field("_ingested_at").type == pa.timestamp("ms", tz="UTC")
    meta = pq.read_metadata(files(demo_run, stream)[0]).metadata
    assert int(meta[b"rlcollect.first_seq"]) <= int(meta[b"rlcollect.last_seq"])


def test_polars_reads_the_run_and_seq_is_unique(demo_run):
    m = manifest(demo_run)
    seqs = []
    for stream in STREAMS:
        df = pl.concat([pl.scan_parquet(f) for f in files(demo_run, stream)], how="diagonal_relaxed").collect()
        assert df.height == m["streams"][stream]["rows"]
        seqs.extend(df["_seq"].to_list())
    assert sorted(seqs) == list(range(m["records"]))
    md = pl.read_parquet(files(demo_run, "model_decisions"))
    assert md.schema["ts"] == pl.Datetime("ms", "UTC")
    assert md.schema["action"] == pl.Int64


def test_duckdb_reads_with_union_by_name(demo_run):
    m = manifest(demo_run)
    con = duckdb.connect()
    for stream in STREAMS:
        n = con.execute("SELECT count(*) FROM read_parquet(?, union_by_name=true)", [files(demo_run, stream)]).fetchone()[0]
        assert n == m["streams"][stream]["rows"]
    by_pair = con.execute(
        "SELECT pair, count(*), sum(profit_abs) FROM read_parquet(?) GROUP BY pair ORDER BY pair",
        [files(demo_run, "trades")],
    ).fetchall()
    summary = json.loads((demo_run / "summary.json").read_text())
    for pair, count, profit in by_pair:
        assert summary["trades"]["by_pair"][pair]["count"] == count
        assert math.isclose(summary["trades"]["by_pair"][pair]["profit_abs"], profit, rel_tol=1e-9)


def test_schema_change_parts_union_by_name_in_every_reader(tmp_path):
    lines = [json.dumps({"stream": "metrics", "step": i, "loss": 1.0 / (i + 1)}) for i in range(3)]
    lines += [json.dumps({"stream": "metrics", "step": 3, "loss": 0.2, "lr": 0.001})]
    lines += [json.dumps({"stream": "metrics", "step": 4, "lr": "auto", "cfg": {"gamma": 0.99}})]
    # One part per schema: compaction (which would merge them) off.
    run = run_stdin(tmp_path, "r", lines, "--compact", "off")
    parts = files(run, "metrics")
    assert len(parts) == 3
    df = pl.concat([pl.scan_parquet(f) for f in parts], how="diagonal_relaxed").collect().sort("_seq")
    assert df["step"].to_list() == [0, 1, 2, 3, 4]
    assert df["lr"].to_list()[3:] == ["0.001", "auto"]
    assert df["cfg"].to_list()[4] == '{"gamma":0.99}'
    n = duckdb.execute("SELECT count(*) FROM read_parquet(?, union_by_name=true)", [parts]).fetchone()[0]
    assert n == 5
    # pyarrow will not merge double with string by itself: the manifest's schema
    # gives each column's widest type, which a loader casts every part to.
    target = {f["name"]: f["type"] for f in manifest(run)["streams"]["metrics"]["schema"]}
    assert target["lr"] == "string" and target["loss"] == "float64"
    tables = []
    for p in parts:
        t = pq.read_table(p)
        for name in t.column_names:
            if target[name] == "string" and t.schema.field(name).type != pa.string():
                t = t.set_column(t.schema.get_field_index(name), name, t[name].cast(pa.string()))
        tables.append(t)
    t = pa.concat_tables(tables, promote_options="permissive")
    assert t.num_rows == 5 and t["lr"].to_pylist()[3:] == ["0.001", "auto"]


def test_nan_inf_and_csv_from_python_json_dumps(tmp_path):
    rows = [
        {"stream": "model_decisions", "ts": "2024-10-01 00:05:00+00:00", "pair": "ETH/USDT",
         "reward": float("nan"), "total_reward": float("-inf"), "q": float("inf")},
        {"stream": "model_decisions", "ts": 1727741100000.0, "pair": "ETH/USDT", "reward": 1.5,
         "total_reward": 2.0, "q": 0.0},
    ]
    run = run_stdin(tmp_path, "r", [json.dumps(r) for r in rows], "--format", "both")
    t = pq.read_table(files(run, "model_decisions")).to_pydict()
    assert math.isnan(t["reward"][0]) and t["reward"][1] == 1.5
    assert t["total_reward"][0] == float("-inf") and t["q"][0] == float("inf")
    assert [ts.isoformat() for ts in t["ts"]] == ["2024-10-01T00:05:00+00:00", "2024-10-01T00:05:00+00:00"]
    csv = pd.read_csv(files(run, "model_decisions", "csv")[0])
    assert len(csv) == 2 and list(csv["pair"]) == ["ETH/USDT", "ETH/USDT"]
    assert math.isnan(csv["reward"][0])
    assert pd.to_datetime(csv["ts"][0]) == pd.Timestamp("2024-10-01T00:05:00Z")
