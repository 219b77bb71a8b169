"""Compaction measurements (run through benches/compaction.sh).

1. Read time: a run of 2,000 checkpoints (200 model_decisions rows each, 400k
   rows, one part per checkpoint, `--compact off`), counted with
   rlcollect.load, polars, DuckDB and pyarrow: before compaction, after
   `rlcollect compact`, and as one Parquet file. Best of 5 reads each.
2. Ingest: the same input into `rlcollect run` with `--compact on` and `off`,
   3 runs each, interleaved: min / median / max wall time (with `on`, the
   final full merge and its 1 s grace included) and rows per second.

Environment: BENCH_CHECKPOINTS (2000), BENCH_ROWS_PER_CHECKPOINT (200).
"""

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq

import rlcollect

BIN = os.environ.get("RLCOLLECT_BIN", "target/release/rlcollect")
CHECKPOINTS = int(os.environ.get("BENCH_CHECKPOINTS", "2000"))
PER = int(os.environ.get("BENCH_ROWS_PER_CHECKPOINT", "200"))


def ndjson(path: Path):
    with open(path, "w") as f:
        i = 0
        for _ in range(CHECKPOINTS):
            for _ in range(PER):
                f.write(
                    f'{{"stream":"model_decisions","ts":{1700000000000 + i * 1000},"pair":"BTC/USDT",'
                    f'"episode":{i // 5000},"step":{i},"action":{i % 3},"reward":{(i % 7) * 0.1},'
                    f'"total_reward":{i * 0.01},"confidence":0.5}}\n'
                )
                i += 1
            f.write('{"stream":"candle"}\n')


def run(out: Path, run_id: str, data: Path, *flags) -> float:
    started = time.perf_counter()
    with open(data, "rb") as stdin:
        subprocess.run([BIN, "run", "--out", str(out), "--run", run_id, "--every-candles", "1",
                        "--min-free-mb", "0", *flags], stdin=stdin, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def readers(run_dir: Path, glob: str):
    return {
        "rlcollect.load": lambda: rlcollect.load(run_dir)["model_decisions"].select(pl.len()).collect().item(),
        "polars": lambda: pl.scan_parquet(glob).select(pl.len()).collect().item(),
        "duckdb": lambda: duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [glob]).fetchone()[0],
        "pyarrow": lambda: ds.dataset(glob.rsplit("/", 1)[0], format="parquet").count_rows(),
    }


def best_of(fn, n=5):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t)
    return min(times), rows


def main():
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data = work / "in.ndjson"
        ndjson(data)
        rows = CHECKPOINTS * PER
        print(f"input: {CHECKPOINTS} checkpoints x {PER} model_decisions rows = {rows} rows")
        run(work / "out", "long", data, "--compact", "off")
        run_dir = work / "out" / "long"
        glob = str(run_dir / "model_decisions" / "*.parquet")
        one = work / "one"
        one.mkdir()
        pq.write_table(pq.read_table(str(run_dir / "model_decisions")), one / "all.parquet")
        cases = [("before (2,000 parts)", run_dir, glob)]
        results = {}
        for label, d, g in cases:
            results[label] = {k: best_of(fn) for k, fn in readers(d, g).items()}
        started = time.perf_counter()
        subprocess.run([BIN, "compact", "--grace-secs", "0", str(run_dir)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        compact_s = time.perf_counter() - started
        results["after rlcollect compact"] = {k: best_of(fn) for k, fn in readers(run_dir, glob).items()}
        one_glob = str(one / "*.parquet")
        results["one file"] = {
            k: best_of(fn) for k, fn in readers(run_dir, one_glob).items() if k != "rlcollect.load"
        }
        print(f"rlcollect compact of the 2,000-part run: {compact_s:.2f} s")
        print(f"{'reader':<16}" + "".join(f"{label:>26}" for label in results))
        for reader in readers(run_dir, glob):
            cells = []
            for label in results:
                cell = results[label].get(reader)
                text = "-" if not cell else f"{cell[0]:.3f} s" if cell[1] == rows else f"WRONG {cell[1]}"
                cells.append(f"{text:>26}")
            print(f"{reader:<16}" + "".join(cells))
        # Interleaved, so that the load of a shared machine drifting over the
        # minutes of the bench does not favour one mode.
        times = {"on": [], "off": []}
        for k in range(3):
            for mode in times:
                times[mode].append(run(work / f"ingest-{mode}", f"r{k}", data, "--compact", mode))
        for mode, t in times.items():
            print(f"ingest --compact {mode:<3}: min {min(t):.2f} s, median {statistics.median(t):.2f} s, "
                  f"max {max(t):.2f} s; median {rows / statistics.median(t):,.0f} rows/s"
                  + (" (with the final merge)" if mode == "on" else ""))


if __name__ == "__main__":
    main()
