"""How fsync latency slows a bulk load: `rlcollect run < 1 M-record NDJSON`
(default settings: a checkpoint every 1000 candles, about 15 fsyncs each)
with every fsync and fdatasync delayed by 0, 1 and 2 ms (an LD_PRELOAD shim,
benches/fsync_delay.c). This VM flushes in about 0.13 ms; consumer NVMe and
cloud volumes take 1-3 ms.

Reports min / median / max seconds of REPEATS alternating rounds per delay;
RLCOLLECT_BASE_BIN adds an older build to the same rounds. Run through
benches/fsync_delay.sh. BENCH_RECORDS, BENCH_REPEATS and FSYNC_DELAYS_US
(comma-separated) override the size, rounds and delays.
"""

import os
import statistics
import sys
import tempfile

from ingest_bench import BASE_BIN, BIN, N, REPEATS, generate, measure

SHIM = os.environ["FSYNC_DELAY_SHIM"]
DELAYS_US = [int(d) for d in os.environ.get("FSYNC_DELAYS_US", "0,1000,2000").split(",")]


def run(bin_, out, name, src, delay_us):
    """Seconds of one run, the shim preloaded into rlcollect only."""
    argv = ["env", f"LD_PRELOAD={SHIM}", f"FSYNC_DELAY_US={delay_us}",
            bin_, "run", "--out", out, "--run", name, "--min-free-mb", "0"]
    return measure(argv, src)[0]


def main():
    work = tempfile.mkdtemp(prefix="rlcollect-fsync-bench-")
    src = os.path.join(work, "clean.ndjson")
    generate(src, nan=False)
    print(f"input: {N} records, {os.path.getsize(src) / 1e6:.1f} MB ({work})")
    builds = ([("baseline build", BASE_BIN)] if BASE_BIN else []) + [("this build", BIN)]
    out = os.path.join(work, "out")
    for delay in DELAYS_US:
        secs = {label: [] for label, _ in builds}
        for k in range(REPEATS):
            for label, bin_ in builds:
                secs[label].append(run(bin_, out, f"{label[0]}{delay}-{k}", src, delay))
        for label, got in secs.items():
            print(f"fsync +{delay / 1000:.1f} ms  {label:15s} min {min(got):6.2f}  "
                  f"median {statistics.median(got):6.2f}  max {max(got):6.2f} s")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
