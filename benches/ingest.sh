#!/usr/bin/env bash
# Ingest benchmark (see benches/ingest_bench.py): builds the release binary,
# makes a venv with DuckDB and polars, runs the comparison on a 1 M-record file.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet
VENV="${RLCOLLECT_BENCH_VENV:-$HOME/.cache/rlcollect-bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check duckdb polars
RLCOLLECT_BIN="$CARGO_TARGET_DIR/release/rlcollect" "$VENV/bin/python" benches/ingest_bench.py
