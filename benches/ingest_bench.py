"""1 M-record NDJSON ingest benchmark: rlcollect run vs DuckDB vs polars.

Generates a mixed file (all five streams, candles, extra fields, NaN, as
Python's json.dumps writes it), then times on the same file:
  * rlcollect run --out X < file
  * DuckDB: COPY (SELECT * FROM read_json_auto(file)) TO 'x.parquet'
  * polars: read_ndjson(file).write_parquet(...)
and reports MB/s, records/s and peak RSS of each (each runs as its own child
process; RSS is that child's ru_maxrss). Run through benches/ingest.sh.
"""

import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("BENCH_RECORDS", "1000000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BIN = os.environ.get("RLCOLLECT_BIN", "target/release/rlcollect")
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def generate(path):
    rnd = random.Random(7)
    t0 = 1704067200000
    with open(path, "w") as f:
        for i in range(N):
            ts = t0 + (i // 5) * 300000
            pair = PAIRS[i % 3]
            k = i % 20
            if k < 8:
                r = {"stream": "model_decisions", "ts": ts, "pair": pair, "episode": i // 5000, "step": i % 5000,
                     "action": i % 5, "action_name": "Long_enter", "position": 1.0, "reward": rnd.gauss(0, 1),
                     "total_reward": rnd.random(), "total_profit": rnd.random(),
                     "q_values": [rnd.random() for _ in range(3)] if k == 0 else None, "epsilon": 0.1}
                if k == 1:
                    r["reward"] = math.nan
            elif k < 13:
                r = {"stream": "predictions", "ts": ts, "pair": pair, "model": "PPO", "prediction": rnd.random(),
                     "label": "up", "confidence": rnd.random(), "do_predict": 1, "DI_values": rnd.random()}
            elif k < 16:
                r = {"stream": "signal_propagation", "ts": ts, "pair": pair, "stage": "filter", "signal": "enter_long",
                     "value": rnd.random(), "accepted": k % 2 == 0, "reason": None}
            elif k < 17:
                r = {"stream": "trades", "pair": pair, "trade_id": i, "is_short": False,
                     "open_date": "2024-01-01 00:05:00+00:00", "close_date": "2024-01-01 01:05:00+00:00",
                     "open_rate": 100.0 + rnd.random(), "close_rate": 101.0, "amount": 1.0, "stake_amount": 100.0,
                     "profit_ratio": rnd.gauss(0, 0.01), "profit_abs": rnd.gauss(0, 1), "exit_reason": "roi",
                     "open_timestamp": float(ts), "orders": None}
            elif k < 18:
                r = {"stream": "rl_episodes", "episode": i, "pair": pair, "steps": 1000, "total_reward": rnd.random(),
                     "total_profit": rnd.random(), "trades": 3, "model": "PPO"}
            else:
                r = {"stream": "candle", "ts": ts, "pair": pair, "close": 100.0}
            f.write(json.dumps(r) + "\n")


def measure(argv, stdin_path=None):
    """Runs argv as a child; returns (seconds, peak RSS MiB)."""
    probe = (
        "import resource,subprocess,sys,time,json\n"
        "argv=json.loads(sys.argv[1]); src=sys.argv[2]\n"
        "t=time.perf_counter()\n"
        "subprocess.run(argv, stdin=open(src,'rb') if src else None, check=True, stdout=subprocess.DEVNULL)\n"
        "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, json.dumps(argv), stdin_path or ""],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main():
    work = tempfile.mkdtemp(prefix="rlcollect-bench-")
    src = os.path.join(work, "records.ndjson")
    generate(src)
    size_mb = os.path.getsize(src) / 1e6
    print(f"input: {N} records, {size_mb:.1f} MB ({src})")
    py = sys.executable
    runs = {
        "rlcollect run": ([BIN, "run", "--out", os.path.join(work, "out"), "--run", "bench", "--min-free-mb", "0"], src),
        "rlcollect run --durability checkpoint": ([BIN, "run", "--out", os.path.join(work, "out"), "--run", "bench-ckpt",
                                                   "--durability", "checkpoint", "--min-free-mb", "0"], src),
        "duckdb read_json_auto->parquet": ([py, "-c",
            f"import duckdb; duckdb.execute(\"COPY (SELECT * FROM read_json_auto('{src}')) TO '{work}/duck.parquet' (FORMAT parquet)\")"], None),
        "polars read_ndjson->parquet": ([py, "-c",
            f"import polars as pl; pl.read_ndjson('{src}', infer_schema_length=None).write_parquet('{work}/polars.parquet')"], None),
    }
    results = {}
    for name, (argv, stdin) in runs.items():
        try:
            # Median of 3: this VM's timings vary by tens of percent run to run.
            trials = []
            for k in range(REPEATS):
                trial_argv = [a.replace("bench", f"bench{k}") if a.startswith("bench") else a for a in argv]
                trials.append(measure(trial_argv, stdin))
            trials.sort()
            secs, rss = trials[len(trials) // 2][0], max(t[1] for t in trials)
        except subprocess.CalledProcessError as e:
            why = "polars cannot read Python's NaN tokens" if "polars" in name else str(e)
            print(f"{name:40s} FAILED ({why})")
            continue
        results[name] = secs
        print(f"{name:40s} {secs:7.2f} s {size_mb / secs:8.1f} MB/s {N / secs:12,.0f} records/s  peak RSS {rss:7.1f} MiB")
    for ours in [n for n in results if n.startswith("rlcollect")]:
        for name, secs in results.items():
            if not name.startswith("rlcollect"):
                print(f"{ours} vs {name}: {secs / results[ours]:.2f}x the throughput")
    m = json.load(open(os.path.join(work, "out", "bench0", "manifest.json")))
    print(f"rlcollect stored {m['records']} rows, rejected {m['rejected']}, {m['checkpoints']} checkpoints")


if __name__ == "__main__":
    main()
