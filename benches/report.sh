#!/usr/bin/env bash
# `rlcollect report` on a 10 M-row run: output size, wall time and peak RSS,
# min/median/max of 3 runs (release build). The run is made by `rlcollect
# demo` scaled up (about 7.6 rows per simulated candle over 3 pairs:
# decisions, predictions, signals, trades, episodes), checkpointing every
# 30 000 candle records (about 130 checkpoints, 650 part files).
#   BENCH_ROWS=10000000  rows wanted       BENCH_DIR=...  keep the run there
#   BENCH_REPEATS=3      runs of report    BENCH_EVERY=30000  --every-candles
#   RLCOLLECT_BIN=...    a release binary already built (else: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${RLCOLLECT_BIN:-}" ]; then
  cargo build --release --quiet -p rlcollect-cli
fi
BIN="${RLCOLLECT_BIN:-$CARGO_TARGET_DIR/release/rlcollect}"
ROWS="${BENCH_ROWS:-10000000}"
REPEATS="${BENCH_REPEATS:-3}"
WORK="${BENCH_DIR:-$(mktemp -d -t rlcollect-report-bench-XXXX)}"
mkdir -p "$WORK"
if [ ! -e "$WORK/runs/latest" ]; then
  # Rows per candle per pair in the demo: 152 714 rows for 3 x 20 000 candles.
  CANDLES=$(( ROWS * 20000 / 152714 ))
  echo "making the run: rlcollect demo --candles $CANDLES (3 pairs) ..."
  start=$SECONDS
  "$BIN" demo --out "$WORK/runs" --candles "$CANDLES" --every-candles "${BENCH_EVERY:-30000}" > "$WORK/demo.txt"
  echo "  made in $((SECONDS - start)) s"
fi
RUN="$(readlink -f "$WORK/runs/latest")"
python3 - "$RUN" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
files = sum(len(s["files"]) for s in m["streams"].values())
size = sum(f["bytes"] for s in m["streams"].values() for f in s["files"])
print(f"run: {m['records']:,} rows in {files} parquet parts, {size / 1e6:.0f} MB, {m['checkpoints']} checkpoints")
PY
OUT="$WORK/report.html"
: > "$WORK/times.txt"
for i in $(seq "$REPEATS"); do
  sync
  /usr/bin/time -f "%e %M" -o "$WORK/one.txt" "$BIN" report "$RUN" -o "$OUT" > /dev/null
  cat "$WORK/one.txt" >> "$WORK/times.txt"
done
BYTES=$(stat -c %s "$OUT")
python3 - "$WORK/times.txt" "$BYTES" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
secs = sorted(r[0] for r in rows)
rss = sorted(r[1] / 1024 for r in rows)
size = int(sys.argv[2])
print(f"report: {size / 1e6:.2f} MB ({size:,} bytes; limit 2 MB)")
print(f"time  s   min {secs[0]:.2f}  median {statistics.median(secs):.2f}  max {secs[-1]:.2f}   (limit 3 s)")
print(f"RSS MiB   min {rss[0]:.0f}  median {statistics.median(rss):.0f}  max {rss[-1]:.0f}")
PY
echo "files: $WORK"
