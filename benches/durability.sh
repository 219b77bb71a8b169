#!/usr/bin/env bash
# Durability measurements (see benches/durability_bench.py): loss window under
# SIGKILL and recovery time of a 1 GB write-ahead log.
source "$(dirname "$0")/setup.sh" pyarrow
"$BENCH_PY" benches/durability_bench.py
