#!/usr/bin/env bash
# Ingest benchmark (see benches/ingest_bench.py): rlcollect run vs DuckDB and
# polars on a 1 M-record file.
source "$(dirname "$0")/setup.sh" duckdb polars
"$BENCH_PY" benches/ingest_bench.py
