#!/usr/bin/env bash
# How fsync latency slows a bulk load (see benches/fsync_delay_bench.py):
# the 1 M-record file through `rlcollect run`, with every fsync delayed by an
# LD_PRELOAD shim (benches/fsync_delay.c, built here with the C compiler).
source "$(dirname "$0")/setup.sh" pip
SHIM="$(mktemp -d)/fsync_delay.so"
cc -shared -fPIC -O2 -o "$SHIM" benches/fsync_delay.c -ldl
FSYNC_DELAY_SHIM="$SHIM" "$BENCH_PY" benches/fsync_delay_bench.py
