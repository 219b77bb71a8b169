#!/usr/bin/env bash
# Python client: per-call cost in the calling thread, the ring and the
# buffered transport side by side (see benches/client_bench.py). Extra
# arguments go to the bench, e.g. --offline, --records N, --rounds N, or
# --baseline FILE (a client.py of an earlier version, measured as a third row).
source "$(dirname "$0")/setup.sh" orjson numpy
PYTHONPATH="$PWD/python" "$BENCH_PY" benches/client_bench.py "$@"
