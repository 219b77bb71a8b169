#!/usr/bin/env bash
# Python client overhead per record (see benches/client_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet
VENV="${RLCOLLECT_BENCH_VENV:-$HOME/.cache/rlcollect-bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check orjson
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
RLCOLLECT_BIN="$CARGO_TARGET_DIR/release/rlcollect" "$VENV/bin/python" benches/client_bench.py
