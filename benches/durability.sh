#!/usr/bin/env bash
# Durability measurements (see benches/durability_bench.py): loss window under
# SIGKILL and recovery time of a 1 GB write-ahead log.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet
VENV="${RLCOLLECT_BENCH_VENV:-$HOME/.cache/rlcollect-bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check pyarrow
RLCOLLECT_BIN="$CARGO_TARGET_DIR/release/rlcollect" "$VENV/bin/python" benches/durability_bench.py
