#!/usr/bin/env bash
# Ingest benchmark (see benches/ingest_bench.py): rlcollect run vs DuckDB on
# a 1 M-record file, clean and with NaN, stdin and 8 socket producers.
source "$(dirname "$0")/setup.sh" duckdb
"$BENCH_PY" benches/ingest_bench.py
