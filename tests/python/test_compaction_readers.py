"""Readers poll a live run whose parts are merged all the time.

Through the manifest (``rlcollect.files``, ``rlcollect.load``) or through the
generation folder the symlink resolves to, DuckDB, polars and pyarrow see
every row exactly once at every moment: never a row twice, never more rows
than were sent, never fewer than the manifest had published before the read.

A plain glob of ``RUN/STREAM/*.parquet`` never sees a row twice either. It can
miss rows in one case that is the readers' own: DuckDB and pyarrow list the
folder, then stat each ``RUN/STREAM/NAME`` by path and silently drop a name
that is gone by then (merged away by a swap in that instant). Those misses are
counted and printed, not failed; the only error a glob may meet is a file that
vanished before it was opened (the reader retries).

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


def glob(run: Path):
    return str(run / "ev" / "*.parquet")


def generation(run: Path):
    """The folder the symlink points at now, resolved once (`realpath`)."""
    return os.path.realpath(run / "ev") + "/*.parquet"


def manifest_files(run: Path):
    return rlcollect.files(run, "ev")


def read_duckdb(source):
    con = duckdb.connect()
    return con.execute("SELECT count(*), count(DISTINCT _seq) FROM read_parquet(?, union_by_name=true)", [source]).fetchone()


def read_polars(source):
    return pl.scan_parquet(source).select(pl.len(), pl.col("_seq").n_unique()).collect().row(0)


def read_pyarrow(source):
    dataset = ds.dataset(os.path.dirname(source) if isinstance(source, str) else source, format="parquet")
    if not dataset.files:
        # Every name pyarrow listed was gone when it looked (a glob while a
        # swap replaced them all): a read of no rows, which the caller judges.
        return 0, 0
    table = dataset.to_table(columns=["_seq"])
    return table.num_rows, len(set(table.column("_seq").to_pylist()))


def read_load(run: Path):
    return rlcollect.load(run)["ev"].select(pl.len(), pl.col("_seq").n_unique()).collect().row(0)


ENGINES = {"duckdb": read_duckdb, "polars": read_polars, "pyarrow": read_pyarrow}
SOURCES = {"files": manifest_files, "generation": generation, "glob": glob}
# name -> (what to read in the run, how)
READERS = {f"{e}/{s}": (src, read) for e, read in ENGINES.items() for s, src in SOURCES.items()}
READERS["load"] = (lambda run: run, read_load)


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


def test_readers_see_each_row_once_while_compaction_runs(tmp_path):
    run = tmp_path / "r"
    proc = subprocess.Popen(
        [BIN, "run", "--out", str(tmp_path), "--run", "r", "--every-candles", "1", "--min-free-mb", "0",
         "--compact-target-rows", "4000", "--compact-min-parts", "3", "--compact-grace-secs", "2",
         "--compact-min-age-secs", "0"],
        stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    feeder = Feeder(proc.stdin)
    feeder.start()
    ok = {name: 0 for name in READERS}
    vanished_count = {name: 0 for name in READERS}
    glob_missed = {name: 0 for name in READERS if name.endswith("/glob")}
    compacted = False
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for name, (source, read) in READERS.items():
                before = published(run)
                try:
                    rows, distinct = read(source(run))
                except Exception as e:  # noqa: BLE001 - only a vanished file is allowed
                    if before == 0:
                        continue  # no manifest or no part yet: nothing to read
                    if vanished(e):
                        vanished_count[name] += 1
                        continue
                    raise
                sent = feeder.sent
                assert rows == distinct, f"{name}: a row seen twice ({rows} rows, {distinct} distinct _seq)"
                assert rows <= sent, f"{name}: {rows} rows but only {sent} sent"
                if name in glob_missed:
                    glob_missed[name] += rows < before
                else:
                    assert rows >= before, f"{name}: {rows} rows but {before} were published before the read"
                ok[name] += 1
            # The stream starts in generation 0; a compaction makes the next.
            compacted |= (run / "ev").is_symlink() and not os.readlink(run / "ev").endswith("g000000")
    finally:
        feeder.stop.set()
        feeder.join()
    assert proc.wait(timeout=60) == 0
    assert compacted, "compaction swapped generations during the reads"
    for name in READERS:
        assert ok[name] >= 3, f"{name}: only {ok[name]} reads succeeded ({vanished_count[name]} retried)"
    # Through the manifest nothing needs a retry: the grace outlasts a read.
    assert vanished_count["load"] + sum(vanished_count[f"{e}/files"] for e in ENGINES) <= 1, vanished_count
    # The finished run: every row once, in few files.
    for name, (source, read) in READERS.items():
        assert read(source(run)) == (feeder.sent, feeder.sent), name
    m = json.loads((run / "manifest.json").read_text())
    assert len(m["streams"]["ev"]["files"]) <= 2 * feeder.sent // 4000 + 1
    print({"reads": ok, "retried": vanished_count, "glob misses": glob_missed, "sent": feeder.sent})


if __name__ == "__main__":
    pytest.main([__file__, "-q", "-s"])
