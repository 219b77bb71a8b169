"""Readers that glob ``RUN/STREAM/*.parquet`` (DuckDB, polars, pyarrow) and
``rlcollect.load`` poll a live run whose parts are merged all the time: no
read ever sees a row twice or more rows than were sent, none sees fewer than
the manifest had published before it started, and the only failure a glob may
meet is a file that vanished at the moment of a swap (the reader retries).

The binary comes from RLCOLLECT_BIN.
"""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest

import rlcollect

BIN = os.environ.get("RLCOLLECT_BIN", "rlcollect")


def published(run: Path) -> int:
    """Rows of ``ev`` the manifest names now (0 before the first checkpoint)."""
    for _ in range(50):
        try:
            m = json.loads((run / "manifest.json").read_text())
            return m["streams"].get("ev", {}).get("rows", 0)
        except (FileNotFoundError, ValueError):
            time.sleep(0.01)
    return 0


def vanished(e: Exception) -> bool:
    """A file listed by the glob was gone when opened: a swap, retry."""
    text = str(e).lower()
    return isinstance(e, FileNotFoundError) or "no such file" in text or "not found" in text or "no files found" in text


def read_duckdb(run: Path):
    con = duckdb.connect()
    return con.execute(
        "SELECT count(*), count(DISTINCT _seq) FROM read_parquet(?, union_by_name=true)", [str(run / "ev" / "*.parquet")]
    ).fetchone()


def read_polars(run: Path):
    df = pl.scan_parquet(str(run / "ev" / "*.parquet")).select(pl.len(), pl.col("_seq").n_unique()).collect()
    return df.row(0)


def read_pyarrow(run: Path):
    table = ds.dataset(str(run / "ev"), format="parquet").to_table(columns=["_seq"])
    return table.num_rows, len(set(table.column("_seq").to_pylist()))


def read_load(run: Path):
    df = rlcollect.load(run)["ev"].select(pl.len(), pl.col("_seq").n_unique()).collect()
    return df.row(0)


READERS = {"duckdb": read_duckdb, "polars": read_polars, "pyarrow": read_pyarrow, "load": read_load}


class Feeder(threading.Thread):
    """Writes ``ev`` rows and a candle (a checkpoint) every 20 rows."""

    def __init__(self, stdin):
        super().__init__(daemon=True)
        self.stdin = stdin
        self.sent = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            lines = "".join(f'{{"stream":"ev","i":{self.sent + j}}}\n' for j in range(20))
            self.stdin.write((lines + '{"stream":"candle"}\n').encode())
            self.stdin.flush()
            self.sent += 20
            time.sleep(0.004)
        self.stdin.close()


def test_globbing_readers_and_load_see_each_row_once_while_compaction_runs(tmp_path):
    run = tmp_path / "r"
    proc = subprocess.Popen(
        [BIN, "run", "--out", str(tmp_path), "--run", "r", "--every-candles", "1", "--min-free-mb", "0",
         "--compact-target-rows", "4000", "--compact-min-parts", "3", "--compact-grace-secs", "2"],
        stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    feeder = Feeder(proc.stdin)
    feeder.start()
    ok = {name: 0 for name in READERS}
    vanished_count = {name: 0 for name in READERS}
    compacted = False
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for name, read in READERS.items():
                before = published(run)
                try:
                    rows, distinct = read(run)
                except Exception as e:  # noqa: BLE001 - only a vanished file is allowed
                    if before == 0 or vanished(e):
                        vanished_count[name] += 1
                        continue
                    raise
                sent = feeder.sent
                assert rows == distinct, f"{name}: a row seen twice ({rows} rows, {distinct} distinct _seq)"
                assert rows <= sent, f"{name}: {rows} rows but only {sent} sent"
                assert rows >= before, f"{name}: {rows} rows but {before} were published before the read"
                ok[name] += 1
            compacted |= (run / "ev").is_symlink()
    finally:
        feeder.stop.set()
        feeder.join()
    assert proc.wait(timeout=60) == 0
    assert compacted, "compaction swapped generations during the reads"
    for name in READERS:
        assert ok[name] >= 5, f"{name}: only {ok[name]} reads succeeded ({vanished_count[name]} retried)"
    # rlcollect.load reads through the manifest: it never needs a retry.
    assert vanished_count["load"] <= 1, vanished_count
    # The finished run: every row once, in few files.
    for name, read in READERS.items():
        assert read(run) == (feeder.sent, feeder.sent), name
    m = json.loads((run / "manifest.json").read_text())
    assert len(m["streams"]["ev"]["files"]) <= 2 * feeder.sent // 4000 + 1
    print({"reads": ok, "retried": vanished_count, "sent": feeder.sent})


if __name__ == "__main__":
    pytest.main([__file__, "-q", "-s"])
