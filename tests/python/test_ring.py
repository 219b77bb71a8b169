"""The ring transport against the real sidecar (SPEC §6), with real processes
and real signals: producers killed at random moments (SIGKILL and SIGTERM),
a stopped sidecar and a full ring, a producer killed in the middle of a
frame, threads, fork, and eight producers at once. Every check is "each
record a call handed over is stored exactly once"."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

import rlcollect.client as client
from rlcollect import Collector, load
from rlcollect.ring_reader import Header
from rlcollect.transport import socket_path

BIN = os.environ.get("RLCOLLECT_BIN", "rlcollect")
PY = sys.executable


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("RLCOLLECT_BIN", BIN)
    monkeypatch.delenv("RLCOLLECT_RUN", raising=False)
    monkeypatch.delenv("RLCOLLECT_TRANSPORT", raising=False)


def manifest(run_dir):
    return json.loads((Path(run_dir) / "manifest.json").read_text())


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_complete(run_dir, timeout=60):
    def done():
        try:
            return manifest(run_dir)["status"] != "running"
        except (OSError, ValueError):
            return False

    wait_for(done, timeout, "the run's final flush")
    return manifest(run_dir)


def steps_by_pair(run_dir):
    d = load(run_dir)["model_decisions"].collect()
    assert sorted(d["_seq"].to_list()) == list(range(d.height)), "_seq is gap-free"
    out = {}
    for (pair,), group in d.group_by(["pair"]):
        out[pair] = sorted(group["step"].to_list())
    return d, out


def drained(c):
    """Whether the sidecar has consumed everything this producer published."""
    head = Header(c._ring.mm)
    return head.read == head.write


# -- producers killed at random moments ------------------------------------------------

PRODUCER = r"""
import os, sys
from rlcollect import Collector
out, run, pair, fd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Collector(out, run)
i = 0
while True:
    c.decision(ts=1704067200000 + i, pair=pair, step=i, note="x" * (i % 50))
    os.write(fd, i.to_bytes(8, "little"))  # after the call returned: it was handed over
    i += 1
"""


def run_and_kill(out, run, pair, sig, delay):
    """Starts a producer, kills it with ``sig`` after ``delay`` seconds and
    returns the numbers of the calls it reported as returned."""
    r, w = os.pipe()
    env = dict(os.environ, RLCOLLECT_RING_BYTES=str(1 << 20))
    p = subprocess.Popen([PY, "-c", PRODUCER, str(out), run, pair, str(w)], pass_fds=(w,), env=env)
    os.close(w)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 1 << 16), b"")))
    reader.start()
    time.sleep(delay)
    p.send_signal(sig)
    assert p.wait(timeout=30) == -sig
    reader.join(timeout=30)
    os.close(r)
    raw = b"".join(chunks)
    assert len(raw) % 8 == 0, "pipe writes of 8 bytes are atomic"
    numbers = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]
    assert numbers == list(range(len(numbers)))
    return len(numbers)


def check_exactly_once(run_dir, reported):
    _, stored = steps_by_pair(run_dir)
    for pair, n in reported.items():
        steps = stored.get(pair, [])
        assert len(steps) == len(set(steps)), f"{pair}: duplicates"
        # Every reported call is stored; at most one more (its call returned,
        # the kill came before it was reported). Nothing else.
        assert steps == list(range(len(steps))), f"{pair}: a gap"
        assert n <= len(steps) <= n + 1, f"{pair}: {n} reported, {len(steps)} stored"
    assert set(stored) <= set(reported)
    return sum(len(v) for v in stored.values())


def test_producers_killed_at_random_moments_lose_nothing_they_handed_over(tmp_path):
    """SIGKILL x20 and SIGTERM x10 (Python's default action: no atexit), all
    into one run while a keeper process stays connected: one sidecar outlives
    30 producers that come and go, as a strategy's workers do. Some die
    before their first record, most mid-stream."""
    seed = int(os.environ.get("RLCOLLECT_TEST_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    out, run = tmp_path / "out", "k"
    keeper = Collector(out, run)
    kills = [signal.SIGKILL] * 20 + [signal.SIGTERM] * 10
    rng.shuffle(kills)
    reported = {}
    for k, sig in enumerate(kills):
        reported[f"P{k}"] = run_and_kill(out, run, f"P{k}", sig, rng.uniform(0.05, 0.6))
    keeper.close()  # its bye may come before the sidecar saw the last killed producer's end
    assert wait_complete(out / run)["status"] == "complete"
    stored = check_exactly_once(out / run, reported)
    print(f"\nkill test (seed {seed}): {len(kills)} producers killed, {sum(reported.values())} calls reported, "
          f"{stored} rows stored, 0 duplicates; {sum(1 for n in reported.values() if n == 0)} died before "
          "their first record")


def test_producers_killed_with_no_one_else_connected_each_end_and_resume_the_run(tmp_path):
    """No keeper: each killed producer was the run's last, so its sidecar
    drains the ring, does the final flush and exits; the next producer starts
    a new sidecar on the same run (SIGKILL x3, SIGTERM x2)."""
    rng = random.Random(7)
    out, run = tmp_path / "out", "solo"
    reported = {}
    for k, sig in enumerate([signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]):
        reported[f"P{k}"] = run_and_kill(out, run, f"P{k}", sig, rng.uniform(0.4, 0.8))
    wait_complete(out / run)
    # The last sidecar may still be finishing: the manifest says complete
    # only after its final flush.
    check_exactly_once(out / run, reported)


# -- a stopped sidecar, a full ring ----------------------------------------------------

def write_steps(c, start, stop):
    for i in range(start, stop):
        c.decision(ts=1704067200000 + i, pair="S", step=i, note="y" * 60)


def test_a_stopped_sidecar_fills_the_ring_and_the_producer_spills_in_order(tmp_path):
    c = Collector(tmp_path, "s", ring_bytes=64 * 1024, ring_wait_secs=1.0)
    write_steps(c, 0, 10)
    wait_for(lambda: drained(c), what="the sidecar to drain the first records")
    os.kill(c.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        write_steps(c, 10, 3000)  # ~400 KB into a 64 KiB ring nobody reads: never raises
        waited = time.monotonic() - started
        assert c.spooling and 1.0 <= waited < 15
        spool = tmp_path / "s" / f"spool-{os.getpid()}.ndjson"
        assert spool.exists()
    finally:
        os.kill(c.pid, signal.SIGCONT)
    write_steps(c, 3000, 3100)  # the rest of this life goes to the spool, in order
    summary = c.close()
    assert summary is not None, "the run ended after the final flush"
    d, stored = steps_by_pair(tmp_path / "s")
    assert stored == {"S": list(range(3100))}
    assert d.sort("_seq")["step"].to_list() == list(range(3100)), "ring first, then the spool"
    assert not spool.exists(), "the sidecar took the spool at its end"


def test_a_full_ring_makes_the_producer_wait_until_the_sidecar_reads_again(tmp_path):
    c = Collector(tmp_path, "b", ring_bytes=64 * 1024, ring_wait_secs=60)
    write_steps(c, 0, 10)
    wait_for(lambda: drained(c), what="the sidecar to drain the first records")
    os.kill(c.pid, signal.SIGSTOP)
    writer = threading.Thread(target=write_steps, args=(c, 10, 3000))
    try:
        writer.start()
        time.sleep(1.0)
        assert writer.is_alive(), "it waits for room"
        head = Header(c._ring.mm)
        assert head.write - head.read > 60 * 1024
    finally:
        os.kill(c.pid, signal.SIGCONT)
    writer.join(timeout=60)
    assert not writer.is_alive() and not c.spooling
    assert c.close() is not None
    assert steps_by_pair(tmp_path / "b")[1] == {"S": list(range(3000))}


# -- a producer killed in the middle of a frame ------------------------------------

MID_FRAME = r"""
import os, struct, sys, zlib
from rlcollect import Collector
c = Collector(sys.argv[1], sys.argv[2], every_secs=3600)
for i in range(1000):
    c.decision(ts=1704067200000 + i, pair="M", step=i)
print(c.pid, flush=True)
# What a producer killed while framing leaves: a frame's bytes (even a whole,
# valid one) and garbage after the published `write`, which never moved.
ring, w = c._ring, c._writer.published()
p = b'{"stream":"model_decisions","ts":1704067200000,"pair":"M","step":-1}'
at = 4096 + w % ring.capacity
struct.pack_into(f"<II{len(p)}s", ring.mm, at, len(p), zlib.crc32(p, w & 0xFFFFFFFF), p)
ring.mm[at + 8 + len(p):at + 200] = os.urandom(200 - 8 - len(p))
os._exit(0)
"""


def test_a_frame_that_was_never_published_does_not_exist(tmp_path):
    p = subprocess.run([PY, "-c", MID_FRAME, str(tmp_path), "m"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    m = wait_complete(tmp_path / "m")
    assert m["status"] == "complete" and m["rejected"] == 0
    assert steps_by_pair(tmp_path / "m")[1] == {"M": list(range(1000))}


# -- threads, fork, many processes ----------------------------------------------------

def test_threads_share_one_ring(tmp_path):
    c = Collector(tmp_path, "t", ring_bytes=64 * 1024)  # small: wraps and waits under contention

    def work(k):
        for i in range(5000):
            c.decision(ts=1704067200000 + i, pair=f"T{k}", step=i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c._writer.published() > 4 * 64 * 1024, "several laps"
    assert c.close() is not None
    assert steps_by_pair(tmp_path / "t")[1] == {f"T{k}": list(range(5000)) for k in range(4)}


def test_a_forked_child_writes_its_own_ring_and_leaves_the_parents_alone(tmp_path):
    c = Collector(tmp_path, "f")
    c.decision(ts=1704067200000, pair="parent", step=0)
    parent_ring, published = c.ring_path, c._writer.published()
    pid = os.fork()
    if pid == 0:  # the child: the inherited collector opens its own ring on first use
        code = 1
        try:
            for i in range(1000):
                c.decision(ts=1704067200000 + i, pair="child", step=i)
            code = 0 if c.ring_path not in (None, parent_ring) and c.source.endswith(f"-{os.getpid()}") else 2
            c.close()
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert c._writer.published() == published and Header(c._ring.mm).write == published, "parent's ring untouched"
    c.decision(ts=1704067200000, pair="parent", step=1)
    c.close()
    wait_complete(tmp_path / "f")
    d, stored = steps_by_pair(tmp_path / "f")
    assert stored == {"parent": [0, 1], "child": list(range(1000))}
    sources = dict(d.select("pair", "_source").unique().iter_rows())
    assert sources["parent"] != sources["child"] and sources["child"].endswith(f"-{pid}")


_INHERITED = None


def inherited_task(k):
    for i in range(500):
        _INHERITED.decision(ts=1704067200000 + i, pair=f"W{k}", step=i)
    return os.getpid(), str(_INHERITED.ring_path)


def test_a_multiprocessing_fork_pool_writes_through_an_inherited_collector(tmp_path):
    import multiprocessing as mp

    global _INHERITED
    _INHERITED = c = Collector(tmp_path, "pool")
    c.decision(ts=1704067200000, pair="parent", step=0)
    parent_ring, published = str(c.ring_path), c._writer.published()
    try:
        with mp.get_context("fork").Pool(3) as pool:
            done = pool.map(inherited_task, range(6))
            pool.close()
            pool.join()  # workers exit without close(): their connections end, their rings are drained
    finally:
        _INHERITED = None
    rings = {ring for _, ring in done}
    assert parent_ring not in rings and len(rings) == len({pid for pid, _ in done})
    assert c._writer.published() == published
    c.close()
    assert wait_complete(tmp_path / "pool")["status"] == "complete"
    stored = steps_by_pair(tmp_path / "pool")[1]
    assert stored == {"parent": [0], **{f"W{k}": list(range(500)) for k in range(6)}}


EIGHT = r"""
import os, sys, time
from rlcollect import Collector
out, run, k, go = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.001)
c = Collector(out, run)
for i in range(5000):
    c.decision(ts=1704067200000 + i, pair=f"E{k}", step=i)
c.close()
"""


def test_eight_producers_at_once_into_one_run(tmp_path):
    go = tmp_path / "go"
    procs = [subprocess.Popen([PY, "-c", EIGHT, str(tmp_path / "out"), "eight", str(k), str(go)])
             for k in range(8)]
    time.sleep(0.3)
    go.touch()
    for p in procs:
        assert p.wait(timeout=180) == 0
    run = tmp_path / "out" / "eight"
    m = wait_complete(run)
    assert m["status"] == "complete" and len(m["sources"]) == 8
    assert steps_by_pair(run)[1] == {f"E{k}": list(range(5000)) for k in range(8)}


# -- the socket protocol ---------------------------------------------------------

def test_close_returns_the_summary_only_when_the_run_ended(tmp_path):
    first = Collector(tmp_path, "c")
    second = Collector(tmp_path, "c")
    assert first.pid == second.pid and first.ring_path != second.ring_path
    first.trade(pair="A/B", profit_abs=1.0)
    second.trade(pair="A/B", profit_abs=2.0)
    assert first.close() is None, "another producer is still connected"
    summary = second.close()
    assert summary["trades"]["count"] == 2 and summary["status"] == "complete"
    assert first._proc.wait(timeout=30) == 0
    assert list((tmp_path / "c" / "rings").iterdir()) == [], "the sidecar deletes rings once durable"


class FakeSidecar:
    """A socket that answers each ``hello`` with the next of ``answers`` (and
    none once they run out), ``bye`` with last=true, and keeps every line it
    reads."""

    def __init__(self, path, answers):
        self.lines = []
        self.answers = list(answers)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn, conn.makefile("rb") as f:
            for line in f:
                record = json.loads(line)
                self.lines.append(record)
                if record.get("op") == "hello" and self.answers:
                    conn.sendall(json.dumps(self.answers.pop(0)).encode() + b"\n")
                elif record.get("op") == "bye":
                    conn.sendall(b'{"bye":"ok","last":true}\n')
                    return


def _run_answer(run_dir):
    return {"hello": "ok", "ring": False, "run": str(run_dir)}


@pytest.mark.parametrize("case", ["ring refused", "ring not answered", "no run named", "nothing answered"])
def test_a_sidecar_that_refuses_the_ring_or_does_not_answer_gets_lines(tmp_path, monkeypatch, caplog, case):
    """With ``socket=`` the client asks for the run directory, then names a
    ring made there; whatever fails on the way, records go as lines."""
    monkeypatch.setattr(client, "HELLO_TIMEOUT", 0.5)
    run_dir = tmp_path / "sidecar-out" / "r"
    (run_dir / "rings").mkdir(parents=True)
    answers = {
        "ring refused": [_run_answer(run_dir), {"hello": "error", "error": "no such ring"}],
        "ring not answered": [_run_answer(run_dir)],
        "no run named": [{"hello": "ok", "ring": False}],  # an older sidecar
        "nothing answered": [],
    }[case]
    fake = FakeSidecar(tmp_path / "s.sock", answers)
    c = Collector(tmp_path / "elsewhere", "x", socket=str(tmp_path / "s.sock"), source="me")
    assert c.ring_path is None and list((run_dir / "rings").iterdir()) == []
    assert "sending buffered lines" in caplog.text or case == "nothing answered"
    c.decision(ts=1, pair="A", step=1)
    c.close()
    fake.thread.join(timeout=10)
    hellos = [r for r in fake.lines if r.get("op") == "hello"]
    assert hellos[0] == {"stream": "control", "op": "hello", "source": "me"}, "the first asks for the run"
    if case.startswith("ring"):
        assert c.run_dir == run_dir, "the sidecar's run directory is the client's"
        assert len(hellos) == 2 and hellos[1]["ring"].startswith("rings/p")
    else:
        assert len(hellos) == 1
    record = fake.lines[len(hellos)]
    assert record == {"ts": 1, "pair": "A", "step": 1, "stream": "model_decisions"}
    answered_all = case != "nothing answered" and case != "ring not answered"
    assert [r.get("op") for r in fake.lines[len(hellos) + 1:]] == (["bye"] if answered_all else [])


def test_the_socket_path_rule_is_the_one_rust_uses(tmp_path, monkeypatch):
    short = tmp_path / "r"
    short.mkdir()
    assert socket_path(short) == str(short.resolve() / "collector.sock")
    long = tmp_path / ("x" * 120)
    long.mkdir()
    monkeypatch.setenv("TMPDIR", "/some/tmp")
    expected = "/some/tmp/rlcollect-%08x.sock" % zlib.crc32(str(long.resolve()).encode())
    assert socket_path(long) == expected and len(expected.split("-")[1]) == len("01234567.sock")
    monkeypatch.delenv("TMPDIR")
    assert socket_path(long) == "/tmp/" + os.path.basename(expected)


def test_a_record_after_a_quiet_spell_wakes_the_sleeping_reader(tmp_path):
    """The sidecar's reader sleeps on the socket (up to 100 ms) once the ring
    is empty; the producer's wake byte makes it read at once."""
    c = Collector(tmp_path, "w")
    latencies = []
    for i in range(10):
        time.sleep(0.25)  # the reader has gone to sleep
        assert Header(c._ring.mm).sleeping == 1
        started = time.monotonic()
        c.decision(ts=1704067200000 + i, pair="W", step=i)
        wait_for(lambda: drained(c), 10, "the record to be read")
        latencies.append(time.monotonic() - started)
    c.close()
    latencies.sort()
    assert latencies[5] < 0.05, f"woken, not timed out: {latencies}"
