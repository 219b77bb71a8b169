"""1 M-record NDJSON ingest benchmark: rlcollect run vs DuckDB, side by side.

Generates two mixed files (all five streams, candles, extra fields, as
Python's json.dumps writes them): a clean one, and one whose rewards are
sometimes NaN (Python writes the bare token NaN, which DuckDB cannot read).
Then, alternating the contenders in each round so that drifts of this noisy
VM hit all of them alike, times:
  * rlcollect run (default durability: wal) and --durability checkpoint,
    on the clean file and on the NaN file, and the default without
    compaction (--compact off: what merging parts costs a bulk load);
  * DuckDB: COPY (SELECT * FROM read_json_auto(clean)) TO x.parquet (FORMAT
    parquet, COMPRESSION zstd);
  * rlcollect run --listen with 8 producer processes streaming 1/8 of the
    clean file each into the socket at once;
and reports min / median / max seconds until the process ended and, for the
stdin runs, until the run was complete (its final flush, read off the
manifest; compaction's end-of-run merge comes after), MB/s and peak RSS (each contender runs
as a child process; RSS is that child's ru_maxrss), the throughput ratios
against DuckDB (medians), and the peak RSS of a run on 3x the input.
Run through benches/ingest.sh. BENCH_RECORDS and BENCH_REPEATS override the
size and the number of rounds; RLCOLLECT_BASE_BIN adds an older build as a
contender.
"""

import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile

N = int(os.environ.get("BENCH_RECORDS", "1000000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BIN = os.environ.get("RLCOLLECT_BIN", "target/release/rlcollect")
# An older build to compare with in the same rounds (optional), e.g. one built
# from the commit before a change: RLCOLLECT_BASE_BIN=/path/to/rlcollect.
BASE_BIN = os.environ.get("RLCOLLECT_BASE_BIN")
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def record(i, rnd, nan):
    ts = 1704067200000 + (i // 5) * 300000
    pair = PAIRS[i % 3]
    k = i % 20
    if k < 8:
        r = {"stream": "model_decisions", "ts": ts, "pair": pair, "episode": i // 5000, "step": i % 5000,
             "action": i % 5, "action_name": "Long_enter", "position": 1.0, "reward": rnd.gauss(0, 1),
             "total_reward": rnd.random(), "total_profit": rnd.random(),
             "q_values": [rnd.random() for _ in range(3)] if k == 0 else None, "epsilon": 0.1}
        if k == 1 and nan:
            r["reward"] = math.nan
        return r
    if k < 13:
        return {"stream": "predictions", "ts": ts, "pair": pair, "model": "PPO", "prediction": rnd.random(),
                "label": "up", "confidence": rnd.random(), "do_predict": 1, "DI_values": rnd.random()}
    if k < 16:
        return {"stream": "signal_propagation", "ts": ts, "pair": pair, "stage": "filter", "signal": "enter_long",
                "value": rnd.random(), "accepted": k % 2 == 0, "reason": None}
    if k < 17:
        return {"stream": "trades", "pair": pair, "trade_id": i, "is_short": False,
                "open_date": "2024-01-01 00:05:00+00:00", "close_date": "2024-01-01 01:05:00+00:00",
                "open_rate": 100.0 + rnd.random(), "close_rate": 101.0, "amount": 1.0, "stake_amount": 100.0,
                "profit_ratio": rnd.gauss(0, 0.01), "profit_abs": rnd.gauss(0, 1), "exit_reason": "roi",
                "open_timestamp": float(ts), "orders": None}
    if k < 18:
        return {"stream": "rl_episodes", "episode": i, "pair": pair, "steps": 1000, "total_reward": rnd.random(),
                "total_profit": rnd.random(), "trades": 3, "model": "PPO"}
    return {"stream": "candle", "ts": ts, "pair": pair, "close": 100.0}


def generate(path, nan, copies=1):
    rnd = random.Random(7)
    lines = [json.dumps(record(i, rnd, nan)) + "\n" for i in range(N)]
    with open(path, "w") as f:
        for _ in range(copies):
            f.writelines(lines)


PROBE = """
import json, resource, subprocess, sys, time
argv, src = json.loads(sys.argv[1]), sys.argv[2]
t = time.perf_counter()
subprocess.run(argv, stdin=open(src, "rb") if src else None, check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""

# One producer of the 8-producer run: streams its slice of the file.
SEND = '''
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = open(sys.argv[2], "rb")
a, b = int(sys.argv[3]), int(sys.argv[4])
f.seek(a)
while a < b:
    d = f.read(min(b - a, 1 << 20))
    s.sendall(d)
    a += len(d)
s.close()
'''

# The 8-producer run: the sidecar listens; 8 processes each send their slice
# of the file; the clock stops when the sidecar has done its final flush.
EIGHT = """
import json, os, resource, socket, subprocess, sys, time
bin_, out, run, src, send = sys.argv[1:6]
sock = os.path.join(out, run + ".sock")
os.makedirs(out, exist_ok=True)
size = os.path.getsize(src)
cuts = [0]
with open(src, "rb") as f:
    for k in range(1, 8):
        f.seek(size * k // 8)
        f.readline()
        cuts.append(f.tell())
cuts.append(size)
t = time.perf_counter()
sidecar = subprocess.Popen([bin_, "run", "--out", out, "--run", run, "--listen", sock, "--exit-when-idle",
                            "--min-free-mb", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
while not os.path.exists(sock):
    time.sleep(0.001)
senders = []
for k in range(8):
    code = send
    senders.append(subprocess.Popen([sys.executable, "-c", code, sock, src, str(cuts[k]), str(cuts[k + 1])]))
for p in senders:
    p.wait()
_, status, usage = os.wait4(sidecar.pid, 0)  # the sidecar's own peak RSS, not the senders'
assert status == 0, status
print(time.perf_counter() - t, usage.ru_maxrss / 1024)
"""


def measure(argv, stdin_path=None):
    """Runs argv as a child; returns (seconds, peak RSS MiB)."""
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), stdin_path or ""],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def measure_eight(out, run, src):
    res = subprocess.run([sys.executable, "-c", EIGHT, BIN, out, run, src, SEND],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(res[0]), float(res[1])


def until_complete(run_dir):
    """Seconds from the run's start to its final flush (every row published,
    status complete), off its manifest: the end-of-run merge comes after."""
    from datetime import datetime
    m = json.load(open(os.path.join(run_dir, "manifest.json")))
    at = lambda key: datetime.fromisoformat(m[key].replace("Z", "+00:00"))  # noqa: E731
    return (at("last_checkpoint_at") - at("started_at")).total_seconds()


def measure_run(argv, src, run_dir):
    """measure() of an rlcollect run, plus its time until complete."""
    secs, rss = measure(argv, src)
    return secs, rss, until_complete(run_dir)


def contenders(work, clean, nan):
    out = os.path.join(work, "out")
    run = lambda name, extra, src: (lambda k: measure_run([BIN, "run", "--out", out, "--run", f"{name}{k}",  # noqa: E731
                                                           "--min-free-mb", "0", *extra], src,
                                                          os.path.join(out, f"{name}{k}")))
    duck = (f"import duckdb; duckdb.execute(\"COPY (SELECT * FROM read_json_auto('{clean}')) "
            f"TO '{work}/duck.parquet' (FORMAT parquet, COMPRESSION zstd)\")")
    base = {}
    if BASE_BIN:
        base["baseline build: rlcollect run (wal)"] = lambda k: measure(
            [BASE_BIN, "run", "--out", out, "--run", f"base{k}", "--min-free-mb", "0"], clean)
    return base | {
        "rlcollect run (wal)": run("wal", [], clean),
        "rlcollect run (wal) --compact off": run("walnc", ["--compact", "off"], clean),
        "rlcollect run --durability checkpoint": run("ckpt", ["--durability", "checkpoint"], clean),
        "rlcollect run (wal), NaN file": run("walnan", [], nan),
        "rlcollect run --durability checkpoint, NaN file": run("ckptnan", ["--durability", "checkpoint"], nan),
        "rlcollect run (wal), 8 socket producers": lambda k: measure_eight(out, f"eight{k}", clean),
        "duckdb read_json_auto -> parquet (zstd)": lambda k: measure([sys.executable, "-c", duck]),
    }


def main():
    work = tempfile.mkdtemp(prefix="rlcollect-bench-")
    clean, nan = os.path.join(work, "clean.ndjson"), os.path.join(work, "nan.ndjson")
    generate(clean, nan=False)
    generate(nan, nan=True)
    size_mb = os.path.getsize(clean) / 1e6
    print(f"input: {N} records, {size_mb:.1f} MB clean, {os.path.getsize(nan) / 1e6:.1f} MB with NaN ({work})")
    runs = contenders(work, clean, nan)
    trials = {name: [] for name in runs}
    for k in range(REPEATS):
        for name, go in runs.items():
            trials[name].append(go(k))
    medians = {}
    for name, got in trials.items():
        secs = [t[0] for t in got]
        med = statistics.median(secs)
        medians[name] = med
        print(f"{name:48s} min {min(secs):6.2f}  median {med:6.2f}  max {max(secs):6.2f} s  "
              f"{size_mb / med:7.1f} MB/s  {N / med:11,.0f} rec/s  peak RSS {max(t[1] for t in got):6.1f} MiB")
        if len(got[0]) > 2:
            done = [t[2] for t in got]
            print(f"{'  of which until complete (before the end-of-run merge)':48s} min {min(done):6.2f}  "
                  f"median {statistics.median(done):6.2f}  max {max(done):6.2f} s")
    duck = medians["duckdb read_json_auto -> parquet (zstd)"]
    for name, med in medians.items():
        if name.startswith(("rlcollect", "baseline")):
            print(f"{name}: {duck / med:.2f}x DuckDB's throughput (medians)")
    m = json.load(open(os.path.join(work, "out", "wal0", "manifest.json")))
    print(f"rlcollect stored {m['records']} rows, rejected {m['rejected']}, {m['checkpoints']} checkpoints")
    triple = os.path.join(work, "triple.ndjson")
    generate(triple, nan=False, copies=3)
    secs, rss = measure([BIN, "run", "--out", os.path.join(work, "out"), "--run", "triple", "--min-free-mb", "0"],
                        triple)
    print(f"3x the input ({3 * N} records): {secs:.2f} s, peak RSS {rss:.1f} MiB")


if __name__ == "__main__":
    main()
