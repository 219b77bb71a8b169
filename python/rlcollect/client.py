"""The client: a cheap, thread-safe way for a Python process to hand records to
an ``rlcollect`` sidecar.

Two transports (SPEC §6 "Which path guarantees what"):

* ``ring`` (the default): each record is encoded and framed into a
  shared-memory ring file in the run directory (``rlcollect.ring``). A record
  is safe once the call returns: the kernel keeps the mapping's pages when
  this process dies (SIGKILL, the OOM killer, SIGTERM with Python's default
  handler, ``os._exit``), and the sidecar drains them. No system call per
  record: the socket only carries ``hello``, wake bytes for a sleeping reader,
  and ``bye``.
* ``buffered``: records are encoded into a buffer that a thread sends as
  NDJSON lines every ``flush_secs`` (and at 64 KiB). Up to ``flush_secs`` of
  records die with the process. The fallback when the sidecar cannot take a
  ring (an older ``rlcollect``), and the bench's comparison.

The client never raises into the strategy because the sidecar died, the pipe
broke or the ring is full: it logs once and spools records to
``RUN/spool-<pid>.ndjson`` for the rest of its life (in order), which
``rlcollect run`` (resuming the run) and ``rlcollect recover`` ingest.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from . import encoding, forks
from .encoding import encode  # noqa: F401  (public: rlcollect.encode)
from .ring import DEFAULT_CAPACITY, RingFile, Writer, check_capacity
from .spool import Spool
from .transport import HELLO_TIMEOUT, Link, find_binary, join_or_spawn, socket_path  # noqa: F401

log = logging.getLogger("rlcollect")

_FLUSH_BYTES = 64 * 1024
_TRANSPORTS = ("ring", "buffered")
_CHECKPOINT = {"stream": "control", "op": "checkpoint"}
# The record methods and their streams: in ring mode each is a closure made by
# the ring's writer, set on the instance (its state in closure cells, not
# attributes: see ring.Writer).
_METHODS = (("trade", "trades"), ("episode", "rl_episodes"), ("prediction", "predictions"),
            ("signal", "signal_propagation"), ("decision", "model_decisions"), ("candle", "candle"))



def default_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def default_state_dir() -> Path:
    """Where runs shipped to an object store keep their local state (the
    same rule as the binary's ``--state-dir`` default)."""
    if os.environ.get("RLCOLLECT_STATE_DIR"):
        return Path(os.environ["RLCOLLECT_STATE_DIR"])
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]) / "rlcollect"
    return Path.home() / ".local" / "state" / "rlcollect"


def _default_source() -> str:
    return f"{Path(sys.argv[0] or 'python').name}-{os.getpid()}"


class Collector:
    """Sends records to the run's ``rlcollect`` sidecar.

    With no ``socket`` it joins the sidecar listening on the run's well-known
    socket, or starts one (``rlcollect run --listen ... --exit-when-idle``);
    exactly one process of a run starts it. With ``socket=PATH`` it joins
    the sidecar listening there (``rlcollect run --listen PATH``), which
    names its run directory: the ring and the spool file go there, whatever
    ``out`` and ``run`` say. ``source`` names this producer.

    ``out="s3://BUCKET/PREFIX"`` ships the run, live, into the Delta Lake
    tables there (docs/SPEC.md §8): the sidecar keeps the run durable in
    ``state_dir`` (default ``$RLCOLLECT_STATE_DIR``, else
    ``$XDG_STATE_HOME/rlcollect``, else ``~/.local/state/rlcollect``) and
    uploads each checkpoint's parts. ``s3_endpoint`` (else
    ``AWS_ENDPOINT_URL``) selects an S3-compatible store, ``host`` names
    this machine's files; credentials come from the usual ``AWS_*``
    variables.

    ``transport``: ``"ring"`` (default, env ``RLCOLLECT_TRANSPORT``) or
    ``"buffered"``. ``ring_bytes``: the ring's capacity (a power of two,
    64 KiB to 1 GiB; default 16 MiB, env ``RLCOLLECT_RING_BYTES``).
    ``ring_wait_secs``: how long a call waits for room in a full ring while
    the sidecar lives, before records go to the spool file.
    """

    def __init__(
        self,
        out: str = "analysis_data",
        run: Optional[str] = None,
        *,
        socket: Optional[str] = None,
        source: Optional[str] = None,
        every_candles: int = 1000,
        every_secs: float = 60,
        fmt: str = "parquet",
        flush_secs: float = 0.2,
        extra_args: tuple = (),
        transport: Optional[str] = None,
        ring_bytes: Optional[int] = None,
        ring_wait_secs: float = 30.0,
        state_dir: Optional[str] = None,
        s3_endpoint: Optional[str] = None,
        host: Optional[str] = None,
    ) -> None:
        # An object store is the sidecar's --out; the run itself is local.
        self.dest = str(out) if str(out).startswith("s3://") else None
        self.out = Path(out)
        remote = ()
        if self.dest:
            self.out = Path(state_dir) if state_dir else default_state_dir()
            remote = ("--state-dir", str(self.out), *(("--s3-endpoint", s3_endpoint) if s3_endpoint else ()),
                      *(("--host", host) if host else ()))
        self.run = run or os.environ.get("RLCOLLECT_RUN") or default_run_id()
        # Processes this one starts later (hyperopt, SubprocVecEnv workers)
        # inherit the run and join it.
        os.environ.setdefault("RLCOLLECT_RUN", self.run)
        self.run_dir = self.out / self.run
        self.transport = transport or os.environ.get("RLCOLLECT_TRANSPORT") or "ring"
        if self.transport not in _TRANSPORTS:
            raise ValueError(f"transport must be one of {_TRANSPORTS}, not {self.transport!r}")
        self._ring_bytes = check_capacity(int(ring_bytes or os.environ.get("RLCOLLECT_RING_BYTES")
                                              or DEFAULT_CAPACITY))
        self._ring_wait = ring_wait_secs
        self._auto_source = source is None
        self.source = source or _default_source()
        self._socket = socket
        self._spawn_args = ("--every-candles", str(every_candles), "--every-secs", str(every_secs),
                            "--format", fmt, *remote, *extra_args)
        self._flush_secs = flush_secs
        self._lock = threading.Lock()
        self._closed = False
        self._forked = False
        self._init_state()
        self._open()
        forks.register(self)
        atexit.register(self.close)

    def _init_state(self) -> None:
        """The per-process state (made again in a forked child)."""
        self._ready = False  # the hot path may write at once (not closed, not forked, not spilled)
        self._spilled = False  # records go to the spool file, for the rest of this life
        self._link: Optional[Link] = None
        self._ring: Optional[RingFile] = None
        self._writer: Optional[Writer] = None
        self._answers = False  # the sidecar answers hello/bye (not an old one)
        self._buf = bytearray()
        self._spool = Spool(self.run_dir / f"spool-{os.getpid()}.ndjson", self.source)
        self._push: Callable[[Dict[str, Any]], None] = self._push_slow_fields
        for name, _ in _METHODS:  # back to the class's methods (they call _push)
            self.__dict__.pop(name, None)

    # -- opening ---------------------------------------------------------------

    def _open(self) -> None:
        """Joins (or starts) the sidecar, then announces the ring, or falls
        back to lines on the socket."""
        if self._socket is not None:
            self._link = Link.join(self._socket)
            if not self._follow_sidecar_run():
                self._open_buffered()  # an older sidecar, or none answered
                self._ready = not self._spilled
                return
        else:
            self._link = join_or_spawn(self.dest or self.out, self.run, self.run_dir, self._spawn_args)
        announced = False
        if self.transport == "ring":
            announced = self._open_ring()
            if self._writer is not None:
                self._install(self._writer)
                self._ready = True
                return
        if not announced:
            answer = self._link.request({"stream": "control", "op": "hello", "source": self.source}, HELLO_TIMEOUT)
            self._answers = answer is not None
        self._open_buffered()
        self._ready = not self._spilled

    def _follow_sidecar_run(self) -> bool:
        """With ``socket=``: a first ``hello`` asks the sidecar for its run
        directory, where our ring and spool file then go (``out``/``run``
        given here may not be the sidecar's). False when no answer names one;
        the ring's ``hello`` follows as a second one."""
        answer = self._link.request({"stream": "control", "op": "hello", "source": self.source}, HELLO_TIMEOUT)
        self._answers = answer is not None
        run_dir = answer.get("run") if answer is not None else None
        if not isinstance(run_dir, str):
            if self.transport == "ring" and answer is not None:
                log.warning("rlcollect: the sidecar on %s does not name its run directory (an older rlcollect?); "
                            "sending buffered lines on the socket", self._socket)
            return False
        self.run_dir = Path(run_dir)
        self.out, self.run = self.run_dir.parent, self.run_dir.name
        self._spool = Spool(self.run_dir / f"spool-{os.getpid()}.ndjson", self.source)
        return True

    def _open_ring(self) -> bool:
        """Creates our ring and names it in the connection's ``hello``; the
        writer is made when the sidecar took it. True when a hello was sent."""
        try:
            ring = RingFile.create(self.run_dir / "rings", self.source, self._ring_bytes)
        except OSError as e:
            log.warning("rlcollect: cannot make a ring in %s (%s); sending buffered lines on the socket",
                        self.run_dir / "rings", e)
            return False
        link = self._link
        answer = link.request({"stream": "control", "op": "hello", "source": self.source,
                               "ring": f"rings/{ring.path.name}"}, HELLO_TIMEOUT)
        self._answers = answer is not None
        if answer is not None and answer.get("hello") == "ok" and answer.get("ring") is True:
            link.quiet()
            self._ring = ring
            self._writer = Writer(ring, self._lock, self._divert, link.wake, link.alive, self._ring_wait)
            return True
        ring.discard()
        if answer is None and link.dead:
            self._spill(f"the sidecar (pid {link.pid}) closed the connection before it answered")
        elif answer is None:
            log.warning("rlcollect: the sidecar (pid %s) did not answer the ring's hello within %s s (an older "
                        "rlcollect?); sending buffered lines on the socket instead", link.pid, HELLO_TIMEOUT)
        else:
            log.warning("rlcollect: the sidecar cannot use a ring (%s); sending buffered lines on the socket",
                        answer.get("error", answer))
        return True

    def _install(self, writer: Writer) -> None:
        """The ring's closures become this instance's record methods."""
        self._push = writer.push
        for name, stream in _METHODS:
            setattr(self, name, writer.method(stream))

    def _open_buffered(self) -> None:
        """Lines on the socket, sent by a thread every ``flush_secs``."""
        self._link.sock.settimeout(None)  # blocking: the sidecar's backpressure
        self._push = self._push_buffered
        threading.Thread(target=self._flush_loop, name="rlcollect-flush", daemon=True).start()

    # -- records -------------------------------------------------------------

    def send(self, stream: str, **fields: Any) -> None:
        """Sends one record of ``stream`` (a core stream or your own name)."""
        fields["stream"] = stream
        self._push(fields)

    def trade(self, **fields: Any) -> None:
        """A closed trade (``pair`` required)."""
        fields["stream"] = "trades"
        self._push(fields)

    def episode(self, **fields: Any) -> None:
        """The end of an RL episode (``episode`` required)."""
        fields["stream"] = "rl_episodes"
        self._push(fields)

    def prediction(self, **fields: Any) -> None:
        """A model prediction (``ts`` and ``pair`` required)."""
        fields["stream"] = "predictions"
        self._push(fields)

    def signal(self, **fields: Any) -> None:
        """A signal propagation step (``ts`` and ``pair`` required)."""
        fields["stream"] = "signal_propagation"
        self._push(fields)

    def decision(self, **fields: Any) -> None:
        """An agent step (``ts`` and ``pair`` required)."""
        fields["stream"] = "model_decisions"
        self._push(fields)

    def candle(self, **fields: Any) -> None:
        """A candle tick: advances the collector's checkpoint counter."""
        fields["stream"] = "candle"
        self._push(fields)

    def checkpoint(self) -> None:
        """Asks the sidecar to checkpoint now (sends what is buffered first)."""
        self._push(dict(_CHECKPOINT))
        with self._lock:
            if self._ready and self._ring is None:
                self._flush_locked()

    def _push_buffered(self, fields: Dict[str, Any]) -> None:
        """The hot path of the buffered transport: encode, then append to the
        buffer under the lock."""
        try:
            line = encoding.encode(fields)
        except Exception:
            return _dropped(fields)
        with self._lock:
            if self._ready:
                self._buf += line
                if len(self._buf) >= _FLUSH_BYTES:
                    self._flush_locked()
                return
            self._put_slow(line[:-1])

    def _push_slow_fields(self, fields: Dict[str, Any]) -> None:
        """The push of a collector that is not open (closed, or a forked
        child before its first record)."""
        data = encoding.payload(fields)
        if data is None:
            return _dropped(fields)
        with self._lock:
            self._put_slow(data)

    def _divert(self, data: bytes, why: Optional[str]) -> None:
        """Under the lock, from the ring's writer: a record it does not take.
        ``why`` says why it spills (the ring is full or the sidecar gone);
        None: the writer was stopped (closed, or forked)."""
        if why is not None:
            self._spill(why)
        self._put_slow(data)

    def _put_slow(self, data: bytes) -> None:
        """Under the lock, a record the hot path could not place: a closed
        collector drops it; a forked child first opens its own connection;
        then the ring, the buffer or the spool takes it."""
        if self._closed:
            return
        if self._forked:
            self._reopen_in_child()
        if self._spilled:
            self._spool.write(data + b"\n")
        elif self._writer is not None:
            self._writer_put(data)
        else:  # buffered
            self._buf += data + b"\n"

    def _writer_put(self, data: bytes) -> None:
        if len(data) > self._writer.max_payload:
            log.error("rlcollect: dropped a record of %d bytes: the ring takes at most %d (capacity/4; "
                      "raise ring_bytes=)", len(data), self._writer.max_payload)
        elif not self._writer.put(data):
            self._writer.stop()
            self._spill("the ring is full" if self._link.alive() else "the sidecar is gone and the ring is full")
            self._spool.write(data + b"\n")

    def _spill(self, why: str) -> None:
        """From now on, records go to the spool file (never back: order)."""
        self._ready = False
        self._spilled = True
        log.error("rlcollect: %s; this process's further records go to %s (in order; `rlcollect run` "
                  "or `recover` ingests it)", why, self._spool.path)

    # -- the buffered transport's sending --------------------------------------

    def _flush_loop(self) -> None:
        while True:
            time.sleep(self._flush_secs)
            with self._lock:
                if self._closed or self._forked:
                    return
                self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._buf:
            return
        data = bytes(self._buf)
        self._buf.clear()
        if not self._spilled:
            try:
                self._link.send_lines(data)
                return
            except (OSError, ValueError) as e:
                self._link.dead = True
                self._spill(f"the sidecar (pid {self._link.pid}) is gone ({e})")
        self._spool.write(data)

    # -- fork ------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """Runs in a forked child (holding the lock, see ``forks._before_fork``):
        the parent's ring, socket and buffer stay the parent's. Their
        descriptors are closed (not unlocked: see ``RingFile.forget``), so that
        a ring outliving its producer is not kept "alive" by a child's
        inherited lock. The next record opens this process's own connection
        and ring."""
        if self._closed:
            return
        if self._writer is not None:
            self._writer.stop()  # closures still referenced elsewhere divert to _put_slow
        if self._ring is not None:
            self._ring.forget()
        if self._link is not None:
            self._link.forget()
        self._spool.forget()
        self._forked = True
        if self._auto_source:
            self.source = _default_source()
        self._init_state()

    def _reopen_in_child(self) -> None:
        """The first record of a forked child: its own connection and ring."""
        self._forked = False
        try:
            self._open()
        except Exception as e:  # a record call must not raise
            log.error("rlcollect: a forked process cannot join the run's sidecar (%s: %s); spooling",
                      type(e).__name__, e)
            self._spill("no sidecar")

    # -- lifetime ------------------------------------------------------------

    @property
    def pid(self) -> Optional[int]:
        """The sidecar's process id."""
        return self._link.pid if self._link is not None else None

    @property
    def _proc(self):
        """The sidecar process when this client started it."""
        return self._link.proc if self._link is not None else None

    @property
    def spooling(self) -> bool:
        """True once records go to the spool file (sidecar lost, or ring full)."""
        return self._spilled

    @property
    def ring_path(self) -> Optional[Path]:
        """This process's ring file, when the ring transport is in use."""
        return self._ring.path if self._ring is not None else None

    def close(self, timeout: float = 120.0) -> Optional[dict]:
        """Ends this producer: marks the ring closed, says ``bye``, and when
        it was the run's last producer waits for the sidecar's final flush.
        Returns the run's summary when the run ended, else None. The ring
        file stays: the sidecar deletes it once its frames are durable."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            self._ready = False
            link = self._link
            if self._forked or link is None:  # a forked child that never wrote, or one that could not join
                self._spool.close()
                return None
            if self._writer is None:
                self._flush_locked()
            else:
                self._writer.stop()
                self._ring.mark_closed()
            self._spool.close()  # unlocked: the sidecar may take it
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        try:
            return self._say_bye(link, time.monotonic() + timeout)
        finally:
            self._release()

    def _say_bye(self, link: Link, deadline: float) -> Optional[dict]:
        """``bye``; after a ``last`` answer, waits for the sidecar to close the
        connection (after its final flush) and reads the summary."""
        if not self._answers or not link.alive():
            return None  # an old sidecar that does not answer bye, or gone (logged)
        answer = link.bye(max(0.0, deadline - time.monotonic()))
        if answer is None:
            log.error("rlcollect: the sidecar (pid %s) did not answer bye", link.pid)
            return None
        self._release_ring()  # drained: the sidecar may delete it once it is durable
        if not answer.get("last"):
            return None
        if not link.wait_closed(deadline):
            log.error("rlcollect: the sidecar (pid %s) did not finish its final flush in time", link.pid)
            return None
        try:
            return json.loads((self.run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            return None

    def _release_ring(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
            self._writer = None

    def _release(self) -> None:
        self._release_ring()
        if self._link is not None:
            self._link.close()

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _dropped(fields: Dict[str, Any]) -> None:
    log.warning("rlcollect: dropped a record of %s that cannot be encoded", fields.get("stream"))
