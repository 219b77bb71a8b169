"""Durability measurements (run through benches/durability.sh):

1. Loss window: feed `rlcollect run --fsync-ms 200` at a steady rate, SIGKILL it
   at a random moment, `rlcollect recover`, and measure how long before the kill
   the first lost line was written. 10 kills; reports median and max.
2. Recovery time of a 1 GB write-ahead log: feed records with checkpoints off
   until RUN/wal holds 1 GB, SIGKILL, then time `rlcollect recover`.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pyarrow.parquet as pq

BIN = os.environ.get("RLCOLLECT_BIN", "target/release/rlcollect")
WAL_GB = float(os.environ.get("BENCH_WAL_GB", "1.0"))


def stored_count(run_dir):
    m = json.load(open(os.path.join(run_dir, "manifest.json")))
    files = [os.path.join(run_dir, f["path"]) for f in m["streams"].get("ev", {}).get("files", []) if f["format"] == "parquet"]
    return sum(pq.read_metadata(f).num_rows for f in files), m["status"]


def loss_window(work, kills=10):
    windows = []
    rnd = random.Random(1)
    for k in range(kills):
        out = os.path.join(work, "lw")
        run = f"k{k}"
        p = subprocess.Popen([BIN, "run", "--out", out, "--run", run, "--fsync-ms", "200", "--every-candles", "0",
                              "--every-secs", "3600", "--min-free-mb", "0"], stdin=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        log = []  # (time written, lines so far)

        def feed():
            i = 0
            try:
                while True:
                    chunk = "".join(f'{{"stream":"ev","i":{i + j}}}\n' for j in range(50))
                    p.stdin.write(chunk.encode())
                    p.stdin.flush()
                    i += 50
                    log.append((time.monotonic(), i))
                    time.sleep(0.001)
            except (BrokenPipeError, ValueError, OSError):
                pass

        t = threading.Thread(target=feed)
        t.start()
        time.sleep(rnd.uniform(0.8, 2.0))
        killed = time.monotonic()
        p.send_signal(signal.SIGKILL)
        p.wait()
        t.join()
        subprocess.run([BIN, "recover", os.path.join(out, run)], check=True, stderr=subprocess.DEVNULL)
        n, status = stored_count(os.path.join(out, run))
        assert status == "recovered", status
        written = log[-1][1] if log else 0
        # The first lost line went out in the first chunk whose count exceeds n.
        first_lost = next((ts for ts, c in log if c > n), None)
        window = (killed - first_lost) if first_lost is not None else 0.0
        windows.append(window)
        print(f"  kill {k}: {written} lines written, {n} stored, {written - n} lost; loss window {window * 1000:.0f} ms")
    windows.sort()
    print(f"loss window at --fsync-ms 200 over {kills} SIGKILLs: median {windows[len(windows) // 2] * 1000:.0f} ms, "
          f"max {windows[-1] * 1000:.0f} ms")


def wal_recovery(work):
    out = os.path.join(work, "big")
    run_dir = os.path.join(out, "r")
    p = subprocess.Popen([BIN, "run", "--out", out, "--run", "r", "--every-candles", "0", "--every-secs", "1000000",
                          "--max-buffered-rows", "1000000000", "--min-free-mb", "0"], stdin=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    target = int(WAL_GB * 1e9)
    line = ('{"stream":"model_decisions","ts":1704067200000,"pair":"BTC/USDT","episode":3,"step":%d,"action":1,'
            '"action_name":"Long_enter","position":1.0,"reward":0.0123,"total_reward":4.5,"total_profit":0.02,'
            '"confidence":0.7,"epsilon":0.1,"note":"padding to make a realistic record size"}\n')
    block = "".join(line % j for j in range(5000)).encode()
    wal = os.path.join(run_dir, "wal")

    def wal_bytes():
        try:
            return sum(os.path.getsize(os.path.join(wal, f)) for f in os.listdir(wal))
        except FileNotFoundError:
            return 0

    sent = 0
    while wal_bytes() < target:
        p.stdin.write(block)
        sent += 5000
        if sent % 200000 == 0:
            p.stdin.flush()
    p.stdin.flush()
    time.sleep(0.5)
    size = wal_bytes()
    p.send_signal(signal.SIGKILL)
    p.wait()
    t = time.perf_counter()
    subprocess.run([BIN, "recover", run_dir], check=True)
    secs = time.perf_counter() - t
    m = json.load(open(os.path.join(run_dir, "manifest.json")))
    print(f"recovery of a {size / 1e9:.2f} GB write-ahead log: {secs:.1f} s for {m['records']} rows "
          f"({size / 1e6 / secs:.0f} MB/s), status {m['status']}")


def main():
    work = tempfile.mkdtemp(prefix="rlcollect-durability-")
    print("1. loss window")
    loss_window(work)
    print("2. 1 GB WAL recovery")
    wal_recovery(work)


if __name__ == "__main__":
    main()
