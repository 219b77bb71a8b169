#!/usr/bin/env bash
# The project's one test command (README "Run the tests"; .ci/run calls it):
# format, lints, every Rust test, then the Python reader tests in a venv.
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

echo "== python reader tests (venv: $VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check pytest pyarrow polars duckdb pandas numpy gymnasium orjson
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python

# A real Freqtrade (own venv: it pins its own pandas/numpy) for the end-to-end tests,
# with what FreqAI's LightGBMRegressor needs (lightgbm, scikit-learn, datasieve; FreqAI
# imports xgboost when torch is absent: xgboost-cpu is the 6 MB build without CUDA) and
# hyperopt's optuna, cmaes, filelock. No torch: the RL test is opt-in (tests/freqtrade/README.md).
# Installed on every run (a no-op when present), so an older cached venv gets them too.
FT_VENV="${RLCOLLECT_FREQTRADE_VENV:-$HOME/.cache/rlcollect-freqtrade-venv}"
if [ ! -x "$FT_VENV/bin/python" ]; then
  python3 -m venv "$FT_VENV"
fi
"$FT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check freqtrade \
  lightgbm scikit-learn datasieve xgboost-cpu optuna cmaes filelock
"$FT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python

RLCOLLECT_BIN="$CARGO_TARGET_DIR/debug/rlcollect" FREQTRADE_PYTHON="$FT_VENV/bin/python" \
  "$VENV/bin/python" -m pytest -q tests/python
