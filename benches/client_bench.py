"""Per-call cost of the Python client in the calling thread: the ring
transport and the buffered one side by side, with orjson and with the stdlib
encoder. Run: benches/client.sh (or this file with RLCOLLECT_BIN set).

Each call is timed on its own with ``time.perf_counter_ns`` (the timer's own
cost is printed; it is included in the per-call figures), and the rounds of
the transports alternate so that machine noise hits them alike. The ring is
64 MiB, so the sidecar never makes the producer wait for room: this is the
cost in the calling thread. ``--offline`` measures the same calls with no
sidecar at all (a process that reads and discards; hello answered
in-process), which isolates the client from the sidecar's CPU use (and the
buffered transport from its backpressure) on a small machine. ``--baseline
FILE`` adds an earlier client (one module, e.g. ``git show
main:python/rlcollect/client.py``) as a third row.
"""

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlcollect import Collector, encoding
from rlcollect.transport import Link

TS = dt.datetime(2024, 10, 1, tzinfo=dt.timezone.utc)
BASELINE = None  # --baseline: an earlier client module, measured as a third row
RING_BYTES = 64 << 20  # over 400 000 records of this bench: never full


def plain(c, i):
    """A model_decisions record of plain values (the README's RL example)."""
    c.decision(ts=1727740800000 + i, pair="BTC/USDT", episode=3, step=i, action=i % 3,
               reward=0.01, total_reward=1.5, position=1.0)


def with_none(c, i):
    """As the RL hooks send it: a datetime and fields that are None."""
    c.decision(ts=TS, pair="BTC/USDT", episode=3, step=i, action=i % 3, action_name=None,
               reward=0.01, model=None, total_reward=1.5, position=1.0)


def timer_cost(n=200_000):
    now = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = now()
        samples.append(now() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def per_call(c, record, n):
    """Each call's own time, ns."""
    now = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = now()
        record(c, i)
        out[i] = now() - t0
    return out


DRAIN = r"""
import os, socket, sys, threading
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(64)
def drain(conn):
    while conn.recv(1 << 20):
        pass
while True:
    conn, _ = server.accept()
    threading.Thread(target=drain, args=(conn,), daemon=True).start()
"""


class _Offline:
    """No sidecar: every client connects with ``socket=`` to a process that
    reads and discards; the hello and bye of this client are answered
    in-process (the ring is never read: it is big enough)."""

    def __enter__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "drain.sock")
        self.drain = subprocess.Popen([sys.executable, "-c", DRAIN, self.path])
        while not os.path.exists(self.path):
            time.sleep(0.01)
        self._saved = Link.request

        def answer(link, record, timeout):
            if record.get("op") == "hello":
                return {"hello": "ok", "ring": "ring" in record}
            return {"bye": "ok", "last": False}  # close() then returns at once

        Link.request = answer
        return self

    def __exit__(self, *exc):
        Link.request = self._saved
        self.drain.kill()
        self.drain.wait()
        self.dir.cleanup()


OFFLINE = None


def make_collector(out, transport):
    args = ("--durability", "checkpoint", "--min-free-mb", "0")
    sock = {} if OFFLINE is None else {"socket": OFFLINE.path}
    if transport == "baseline":
        return BASELINE.Collector(out, "bench-baseline", extra_args=args, **sock)
    if OFFLINE is not None:
        (Path(out) / f"bench-{transport}").mkdir(parents=True, exist_ok=True)  # where the ring goes
    return Collector(out, f"bench-{transport}", transport=transport, ring_bytes=RING_BYTES, extra_args=args, **sock)


def one_round(out, transport, record, n, warmup):
    c = make_collector(out, transport)
    for i in range(warmup):
        record(c, i)
    times = per_call(c, record, n)
    assert not getattr(c, "spooling", False)
    ring = getattr(c, "ring_path", None)
    c.close()
    if OFFLINE is not None and ring is not None:
        ring.unlink()  # no sidecar deletes it: its dirty pages would be written back during later rounds
    return times


def stats(samples):
    s = sorted(samples)
    return s[len(s) // 2] / 1000, s[int(len(s) * 0.99)] / 1000, sum(s) / len(s) / 1000


def measure(label, record, n, rounds, offline):
    order = ["ring", "buffered"] + (["baseline"] if BASELINE else [])
    results = {t: [] for t in order}
    with tempfile.TemporaryDirectory() as out:
        for r in range(rounds):
            for transport in order if r % 2 == 0 else order[::-1]:
                results[transport] += one_round(Path(out) / f"r{r}", transport, record, n, warmup=n // 10)
    for transport, samples in results.items():
        med, p99, mean = stats(samples)
        print(f"| {label:8s} | {record.__name__:9s} | {transport:8s} | {med:6.2f} | {p99:6.2f} | {mean:6.2f} |"
              f" {len(samples)} |{' offline' if offline else ''}")


def load_baseline(path):
    """The client of an earlier version, from its file (it is one module)."""
    global BASELINE
    import importlib.util

    spec = importlib.util.spec_from_file_location("rlcollect_baseline_client", path)
    BASELINE = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(BASELINE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=int(os.environ.get("BENCH_RECORDS", "100000")))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--offline", action="store_true", help="no sidecar (see the module's docstring)")
    ap.add_argument("--encoder", choices=["orjson", "stdlib"], help="only this encoder")
    ap.add_argument("--baseline", help="an earlier client.py (e.g. `git show main:python/rlcollect/client.py`)")
    args = ap.parse_args()
    if args.baseline:
        load_baseline(args.baseline)
    print(f"python {sys.version.split()[0]}, orjson {'yes' if encoding.orjson_available() else 'no'}, "
          f"sidecar {'none (offline)' if args.offline else os.environ.get('RLCOLLECT_BIN', 'rlcollect')}, "
          f"perf_counter_ns pair costs {timer_cost()} ns (included below)")
    print("| encoder  | record    | transport | median µs | p99 µs | mean µs | calls |")
    print("|---|---|---|---|---|---|---|")
    encoders = ["orjson", "stdlib"] if encoding.orjson_available() else ["stdlib"]
    if args.encoder:
        encoders = [e for e in encoders if e == args.encoder]
    global OFFLINE
    OFFLINE = _Offline().__enter__() if args.offline else None
    try:
        for enc in encoders:
            encoding.use_orjson(enc == "orjson")
            if BASELINE is not None:
                BASELINE._orjson = encoding._orjson
            for record in (plain, with_none):
                n = args.records if enc == "orjson" else args.records // 4
                measure(enc, record, n, args.rounds, args.offline)
    finally:
        if OFFLINE is not None:
            OFFLINE.__exit__(None, None, None)
        encoding.use_orjson(True)


if __name__ == "__main__":
    main()
