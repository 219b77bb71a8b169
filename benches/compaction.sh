#!/usr/bin/env bash
# Compaction benchmark (see benches/compaction_bench.py): a simulated long run
# of 2,000 checkpoints read before and after `rlcollect compact` and as one
# file, with rlcollect.load, polars, DuckDB and pyarrow; ingest throughput
# with compaction on and off.
source "$(dirname "$0")/setup.sh" duckdb polars pyarrow
PYTHONPATH="$PWD/python" "$BENCH_PY" benches/compaction_bench.py
