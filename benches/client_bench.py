"""Per-record cost of the Python client in the calling thread (encode + buffer),
with orjson and with the stdlib encoder. Run: benches/client.sh."""

import datetime as dt
import os
import sys
import tempfile
import time

import rlcollect.client as client
from rlcollect import Collector

N = int(os.environ.get("BENCH_RECORDS", "200000"))
TS = dt.datetime(2024, 10, 1, tzinfo=dt.timezone.utc)


def measure(label):
    with tempfile.TemporaryDirectory() as out:
        c = Collector(out, "bench", extra_args=("--durability", "checkpoint", "--min-free-mb", "0"))
        start = time.perf_counter()
        for i in range(N):
            c.decision(ts=1727740800000 + i, pair="BTC/USDT", episode=3, step=i, action=i % 3,
                       reward=0.01, total_reward=1.5, position=1.0)
        per = (time.perf_counter() - start) / N * 1e6
        c.close()
        start = time.perf_counter()
        for i in range(N // 10):
            client.encode({"stream": "model_decisions", "ts": TS, "pair": "BTC/USDT", "reward": float("nan")})
        nan_per = (time.perf_counter() - start) / (N // 10) * 1e6
        # The in-thread part alone: kwargs, encoding, buffering (no pipe, no sidecar).
        buf = bytearray()
        start = time.perf_counter()
        for i in range(N):
            buf += client.encode(dict(ts=1727740800000 + i, pair="BTC/USDT", episode=3, step=i, action=i % 3,
                                      reward=0.01, total_reward=1.5, position=1.0, stream="model_decisions"))
            if len(buf) > 65536:
                buf.clear()
        own = (time.perf_counter() - start) / N * 1e6
    print(f"{label:8s}: {own:.2f} us per record in the calling thread (encode + buffer); "
          f"{per:.2f} us per decision() call end to end with the sidecar draining the pipe ({N} calls, "
          f"includes waiting on backpressure); {nan_per:.2f} us to encode a record with a datetime and NaN")


if __name__ == "__main__":
    print(f"python {sys.version.split()[0]}, orjson {'yes' if client._orjson else 'no'}")
    measure("orjson" if client._orjson else "stdlib")
    if client._orjson:
        client._orjson = None
        measure("stdlib")
