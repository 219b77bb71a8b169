#!/usr/bin/env bash
# Python client overhead per record (see benches/client_bench.py).
source "$(dirname "$0")/setup.sh" orjson
"$BENCH_PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
"$BENCH_PY" benches/client_bench.py
