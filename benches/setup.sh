# Shared by the bench scripts: builds the release binary and prepares a venv
# with the given PyPI packages. Sets RLCOLLECT_BIN and BENCH_PY.
# Usage (from a bench script): source "$(dirname "$0")/setup.sh" pkg1 pkg2 ...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet
VENV="${RLCOLLECT_BENCH_VENV:-$HOME/.cache/rlcollect-bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
export RLCOLLECT_BIN="$CARGO_TARGET_DIR/release/rlcollect"
BENCH_PY="$VENV/bin/python"
