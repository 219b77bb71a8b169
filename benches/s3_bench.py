"""Object-store measurements (run through benches/s3.sh), against a real
SeaweedFS on loopback (tests/python/s3store.py starts it):

1. Live run: the same input (BENCH_ROWS model_decisions rows, 1 M by
   default, a checkpoint every 5,000 rows) into `rlcollect run --out DIR`
   and into `rlcollect run --out s3://...` (local state dir, every part
   uploaded and committed while the run goes on, the rest at the end),
   3 rounds alternating: min / median / max seconds to exit, input MB/s.
2. Publish: the finished local run's Parquet files into the store and into
   a local folder (both through object_store), 3 rounds each, into a fresh
   prefix: MB/s of Parquet bytes.
3. Commit latency: each live sync's timings from the sidecar's debug log
   (`sync timing`: reading the table's log, uploading, the put-if-absent
   commit): min / median / p95 / max, from a paced live run (BENCH_PACED_SECS,
   20 s, 500 rows every 50 ms, a checkpoint every 100 candles), where the sync
   commits about once a second as in a training run, and from the bulk runs.

Environment: BENCH_ROWS (1000000).
"""

import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
from s3store import KEY, SECRET, SeaweedFS  # noqa: E402

BIN = os.environ["RLCOLLECT_BIN"]
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))


PACED_SECS = float(os.environ.get("BENCH_PACED_SECS", "20"))
TIMINGS = ("load_ms", "upload_ms", "commit_ms")


def line(i: int, rnd: random.Random) -> str:
    # Random rewards and confidences: Parquet of realistic size, not a few runs of constants.
    return (f'{{"stream":"model_decisions","ts":{1700000000000 + i * 1000},"pair":"BTC/USDT",'
            f'"episode":{i // 5000},"step":{i},"action":{rnd.randrange(3)},"reward":{rnd.gauss(0, 1)},'
            f'"total_reward":{i * 0.01},"confidence":{rnd.random()}}}\n')


def ndjson(path: Path):
    rnd = random.Random(7)
    with open(path, "w") as f:
        for i in range(ROWS):
            f.write(line(i, rnd))
            if i % 100 == 99:
                f.write('{"stream":"candle"}\n')


def sync_timings(log: str) -> dict:
    return {key: [float(v) for v in re.findall(rf"\b{key}=([0-9.]+)", log)] for key in TIMINGS}


def paced(env, work: Path) -> dict:
    """A live run fed 500 rows every 50 ms for PACED_SECS; its sync timings."""
    cmd = [BIN, "run", "--out", "s3://lake/paced", "--state-dir", str(work / "paced"), "--run", "p",
           "--host", "bench", "--every-candles", "100", "--min-free-mb", "0"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    rnd, i, end = random.Random(3), 0, time.monotonic() + PACED_SECS
    while time.monotonic() < end:
        chunk = []
        for _ in range(500):
            chunk.append(line(i, rnd))
            i += 1
            if i % 10 == 0:
                chunk.append('{"stream":"candle"}\n')
        proc.stdin.write("".join(chunk))
        proc.stdin.flush()
        time.sleep(0.05)
    _, log = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"paced run failed:\n{log[-2000:]}")
    return sync_timings(log)


def timed(cmd, env, stdin_path=None):
    started = time.perf_counter()
    with open(stdin_path or os.devnull, "rb") as stdin:
        done = subprocess.run(cmd, stdin=stdin, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stderr


def spread(xs):
    return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}"


def quantiles(xs):
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"{xs[0]:.1f} / {statistics.median(xs):.1f} / {p95:.1f} / {xs[-1]:.1f} ms (n={len(xs)})"


def main():
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data = work / "in.ndjson"
        ndjson(data)
        mb = data.stat().st_size / 1e6
        store = SeaweedFS(work / "weed").start()
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_ENDPOINT_URL=store.endpoint,
                   RUST_LOG="warn,rlcollect_delta=debug")
        try:
            print(f"input: {ROWS} rows, {mb:.1f} MB; store: SeaweedFS {store.endpoint}")
            base = [BIN, "run", "--every-candles", "50", "--min-free-mb", "0"]
            local, live, timings = [], [], {key: [] for key in TIMINGS}
            for k in range(3):
                t, _ = timed(base + ["--out", str(work / f"local{k}"), "--run", "r"], env, data)
                local.append(t)
                t, log = timed(base + ["--out", f"s3://lake/live{k}", "--state-dir", str(work / f"state{k}"),
                                       "--run", "r", "--host", "bench"], env, data)
                live.append(t)
                for key, xs in sync_timings(log).items():
                    timings[key] += xs
            print(f"live run, local disk   : {spread(local)} s  ({mb / statistics.median(local):.0f} MB/s)")
            print(f"live run, --out s3://  : {spread(live)} s  ({mb / statistics.median(live):.0f} MB/s)")
            run_dir = work / "local0" / "r"
            parquet = sum(p.stat().st_size for p in run_dir.rglob("*.parquet") if "/.streams/" in str(p)
                          or p.parent.name == "model_decisions")
            to_s3, to_dir = [], []
            for k in range(3):
                t, _ = timed([BIN, "publish", str(run_dir), "--to", f"s3://lake/pub{k}", "--host", "b"], env)
                to_s3.append(t)
                t, _ = timed([BIN, "publish", str(run_dir), "--to", str(work / f"folder{k}"), "--host", "b"], env)
                to_dir.append(t)
            pmb = parquet / 1e6
            print(f"publish {pmb:.1f} MB of Parquet -> s3    : {spread(to_s3)} s  "
                  f"({pmb / statistics.median(to_s3):.0f} MB/s)")
            print(f"publish {pmb:.1f} MB of Parquet -> folder: {spread(to_dir)} s  "
                  f"({pmb / statistics.median(to_dir):.0f} MB/s)")
            for key, xs in timings.items():
                if xs:
                    print(f"bulk live sync {key[:-3]:<7} min / median / p95 / max: {quantiles(xs)}")
            for key, xs in paced(env, work).items():
                if xs:
                    print(f"paced live sync {key[:-3]:<7} min / median / p95 / max: {quantiles(xs)}")
        finally:
            store.stop()


if __name__ == "__main__":
    main()
